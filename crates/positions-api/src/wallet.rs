//! Wallet addresses: what the API accepts, in one canonical form.
//!
//! Two families of address are accepted, and nothing else:
//!
//! - EVM: `0x` followed by 40 hexadecimal digits, in any letter case (a
//!   checksummed address is mixed-case); it is served, cached and passed to
//!   the source in lower case, so that every spelling of one wallet shares
//!   one cache entry;
//! - base58 (Solana style): 32 to 44 characters of the Bitcoin base58
//!   alphabet, which has no `0`, `O`, `I` or `l`; case matters and is kept.
//!
//! Validation happens once, at the edge; everything past it handles a
//! [`Wallet`], which cannot hold anything else. A wallet never needs
//! escaping in a Redis key or a glob pattern, because neither alphabet has
//! a character that means something there.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const EVM_HEX_DIGITS: usize = 40;
const BASE58_MIN: usize = 32;
const BASE58_MAX: usize = 44;
/// Longer input is not echoed back whole in an error message.
const ECHO_LIMIT: usize = 64;

/// A validated wallet address in canonical form.
///
/// Cheap to clone (a shared string), and usable as a cache key that can be
/// looked up by `&str`.
///
/// # Examples
///
/// ```
/// use positions_api::Wallet;
///
/// let w: Wallet = "0x52908400098527886E0F7030069857D2E4169EE7".parse().unwrap();
/// assert_eq!(w.as_str(), "0x52908400098527886e0f7030069857d2e4169ee7");
///
/// let sol: Wallet = "7EcDhSYGxXyscszYEp35KHN8vvw3svAuLKTzXwCFLtV".parse().unwrap();
/// assert_eq!(sol.as_str(), "7EcDhSYGxXyscszYEp35KHN8vvw3svAuLKTzXwCFLtV");
///
/// let err = "0xZZ".parse::<Wallet>().unwrap_err();
/// assert_eq!(err.to_string(), r#"invalid wallet "0xZZ": expected 0x and 40 hex digits"#);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Wallet(Arc<str>);

/// Why a string is not a wallet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid wallet {shown}: {reason}")]
pub struct InvalidWallet {
    shown: String,
    reason: &'static str,
}

impl Wallet {
    /// Parses and canonicalises `input`.
    ///
    /// # Errors
    ///
    /// [`InvalidWallet`], naming the input and what was expected.
    pub fn parse(input: &str) -> Result<Self, InvalidWallet> {
        let error = |reason| InvalidWallet { shown: shown(input), reason };
        if input.is_empty() {
            return Err(error("empty"));
        }
        if let Some(hex) = input.strip_prefix("0x").or_else(|| input.strip_prefix("0X")) {
            if hex.len() != EVM_HEX_DIGITS || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(error("expected 0x and 40 hex digits"));
            }
            // Lower-cased on the stack, then one allocation for the Arc.
            let mut canonical = [0_u8; 2 + EVM_HEX_DIGITS];
            canonical[..2].copy_from_slice(b"0x");
            for (to, from) in canonical[2..].iter_mut().zip(hex.bytes()) {
                *to = from.to_ascii_lowercase();
            }
            let canonical = std::str::from_utf8(&canonical).map_err(|_| error("expected 0x and 40 hex digits"))?;
            return Ok(Self(canonical.into()));
        }
        if !(BASE58_MIN..=BASE58_MAX).contains(&input.len()) || !input.bytes().all(is_base58) {
            return Err(error("expected an EVM address (0x and 40 hex digits) or 32 to 44 base58 characters"));
        }
        Ok(Self(input.into()))
    }

    /// The canonical address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is an EVM address.
    pub fn is_evm(&self) -> bool {
        self.0.starts_with("0x")
    }
}

fn is_base58(b: u8) -> bool {
    matches!(b, b'1'..=b'9' | b'A'..=b'H' | b'J'..=b'N' | b'P'..=b'Z' | b'a'..=b'k' | b'm'..=b'z')
}

/// The input, quoted and escaped, cut short if long.
fn shown(input: &str) -> String {
    match input.char_indices().nth(ECHO_LIMIT) {
        Some((cut, _)) => format!("{:?}… ({} bytes)", &input[..cut], input.len()),
        None => format!("{input:?}"),
    }
}

impl std::str::FromStr for Wallet {
    type Err = InvalidWallet;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Borrow<str> for Wallet {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Wallet {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Wallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Wallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Wallet({})", self.0)
    }
}

impl Serialize for Wallet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Wallet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evm_addresses_are_lower_cased() {
        let mixed = "0x52908400098527886E0F7030069857D2E4169EE7";
        let w = Wallet::parse(mixed).expect("valid");
        assert_eq!(w.as_str(), mixed.to_ascii_lowercase());
        assert!(w.is_evm());
        assert_eq!(Wallet::parse("0X52908400098527886E0F7030069857D2E4169EE7").expect("valid"), w);
    }

    #[test]
    fn base58_addresses_keep_their_case() {
        let w = Wallet::parse("DRpbCBMxVnDK7maPM5tGv6MvB3v1sRMC86PZ8okm21hy").expect("valid");
        assert_eq!(w.as_str(), "DRpbCBMxVnDK7maPM5tGv6MvB3v1sRMC86PZ8okm21hy");
        assert!(!w.is_evm());
    }

    #[test]
    fn everything_else_is_refused_with_a_reason() {
        let cases = [
            ("", "empty"),
            ("0x1234", "expected 0x and 40 hex digits"),
            ("0x52908400098527886e0f7030069857d2e4169eeg", "expected 0x and 40 hex digits"),
            ("0x52908400098527886e0f7030069857d2e4169ee7aa", "expected 0x and 40 hex digits"),
            ("*", "base58"),
            ("../x", "base58"),
            ("0OIl0OIl0OIl0OIl0OIl0OIl0OIl0OIl", "base58"),
            ("%30x52908400098527886e0f7030069857d2e4169ee7", "base58"),
            ("wället-with-ümlauts-and-more-than-32-chars", "base58"),
            (&"1".repeat(45), "base58"),
        ];
        for (input, reason) in cases {
            let err = Wallet::parse(input).expect_err(input);
            assert!(err.to_string().contains(reason), "{input:?}: {err}");
        }
    }

    #[test]
    fn long_input_is_not_echoed_whole() {
        let err = Wallet::parse(&"x".repeat(10_000)).expect_err("too long");
        assert!(err.to_string().len() < 300, "{err}");
        assert!(err.to_string().contains("10000 bytes"));
    }

    #[test]
    fn serde_round_trip_validates() {
        let w = Wallet::parse("0x52908400098527886e0f7030069857d2e4169ee7").expect("valid");
        let json = serde_json::to_string(&w).expect("serializes");
        assert_eq!(serde_json::from_str::<Wallet>(&json).expect("parses"), w);
        assert!(serde_json::from_str::<Wallet>("\"nope\"").is_err());
    }
}
