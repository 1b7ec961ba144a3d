//! The list of high-value wallets (`POSITION_PRIORITY_FILE`): wallets, or
//! prefixes of them, that get a shorter TTL of their own and go to the
//! front of their class in the load queue.
//!
//! The file is text, one rule per line, `#` starting a comment:
//!
//! ```text
//! # wallet or prefix (ending in *)              class    TTL in seconds (optional)
//! 0x52908400098527886e0f7030069857d2e4169ee7     high     60
//! 0xabcdef*                                     high
//! 7EcDhSYGxXyscszYEp35KHN8vvw3svAuLKTzXwCFLtV    normal   120
//! ```
//!
//! `high` puts the wallet's refreshes (stale or eager) at the front of
//! their class; `normal` only gives it its TTL. A TTL must be shorter than
//! `POSITION_CACHE_TTL_SEC` (a longer one would make a wallet fresh that
//! every tier calls stale). An EVM wallet or prefix is matched lower-case,
//! as wallets are served. The file is read once, at start-up; a bad line
//! stops start-up naming the setting and the line.
//!
//! What it is not: a way to make a wallet's data older than the TTL count
//! as fresh, or to change the windows past it.

use std::collections::HashMap;
use std::time::Duration;

use crate::wallet::Wallet;

/// What the list says of one wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorityRule {
    /// Whether its refreshes go to the front of their class.
    pub high: bool,
    /// Its own fresh window, shorter than the TTL.
    pub ttl: Option<Duration>,
}

/// The parsed file: exact wallets, then prefixes, longest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriorityList {
    exact: HashMap<String, PriorityRule>,
    prefixes: Vec<(String, PriorityRule)>,
}

impl PriorityList {
    /// Parses the file's text; `ttl` is the cache's TTL, which every TTL
    /// in the file must be under.
    ///
    /// # Errors
    ///
    /// One line naming the first bad line and what is wrong with it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use positions_api::priority::PriorityList;
    ///
    /// let list = PriorityList::parse("0xAB* high 60\n# note\n", Duration::from_secs(900)).unwrap();
    /// let rule = list.rule("0xabcd").unwrap();
    /// assert!(rule.high);
    /// assert_eq!(rule.ttl, Some(Duration::from_secs(60)));
    /// assert!(list.rule("0xcd").is_none());
    /// assert!(PriorityList::parse("0xab high 900", Duration::from_secs(900)).is_err());
    /// ```
    pub fn parse(text: &str, ttl: Duration) -> Result<Self, String> {
        let mut list = Self::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let bad = |why: &str| format!("line {}: {why}", n + 1);
            let mut fields = line.split_whitespace();
            let (Some(pattern), Some(class)) = (fields.next(), fields.next()) else {
                return Err(bad("expected a wallet or prefix and a class (high or normal)"));
            };
            let high = match class {
                "high" => true,
                "normal" => false,
                other => return Err(bad(&format!("unknown class {other:?}: expected high or normal"))),
            };
            let rule_ttl = match fields.next() {
                None => None,
                Some(secs) => {
                    let secs: u64 = secs.parse().map_err(|_| bad(&format!("bad TTL {secs:?}: expected seconds")))?;
                    let own = Duration::from_secs(secs);
                    if secs == 0 || own >= ttl {
                        return Err(bad(&format!("TTL {secs} s must be above 0 and below POSITION_CACHE_TTL_SEC")));
                    }
                    Some(own)
                }
            };
            if fields.next().is_some() {
                return Err(bad("too many fields"));
            }
            let rule = PriorityRule { high, ttl: rule_ttl };
            let canonical = |p: &str| {
                if p.starts_with("0x") || p.starts_with("0X") { p.to_ascii_lowercase() } else { p.to_owned() }
            };
            if let Some(prefix) = pattern.strip_suffix('*') {
                if prefix.is_empty() || prefix.contains('*') {
                    return Err(bad("a prefix needs characters before its one trailing *"));
                }
                list.prefixes.push((canonical(prefix), rule));
            } else {
                let wallet = Wallet::parse(pattern).map_err(|e| bad(&e.to_string()))?;
                list.exact.insert(wallet.as_str().to_owned(), rule);
            }
        }
        list.prefixes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Ok(list)
    }

    /// Reads and parses the file at `path`.
    ///
    /// # Errors
    ///
    /// One line: the file could not be read, or a line is bad.
    pub fn load(path: &std::path::Path, ttl: Duration) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text, ttl)
    }

    /// The rule for `wallet` (its canonical form): an exact entry, else the
    /// longest matching prefix.
    pub fn rule(&self, wallet: &str) -> Option<PriorityRule> {
        if let Some(rule) = self.exact.get(wallet) {
            return Some(*rule);
        }
        self.prefixes.iter().find(|(prefix, _)| wallet.starts_with(prefix.as_str())).map(|(_, rule)| *rule)
    }

    /// Whether the list has no rule.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(900);

    #[test]
    fn exact_wallets_beat_prefixes_and_longer_prefixes_beat_shorter() {
        let list = PriorityList::parse(
            "0xab* normal 300\n0xabc* high\n0x52908400098527886E0F7030069857D2E4169EE7 high 60 # vip\n",
            TTL,
        )
        .unwrap();
        let vip = list.rule("0x52908400098527886e0f7030069857d2e4169ee7").unwrap();
        assert_eq!(vip, PriorityRule { high: true, ttl: Some(Duration::from_secs(60)) });
        assert_eq!(list.rule("0xabcd").unwrap(), PriorityRule { high: true, ttl: None });
        assert_eq!(list.rule("0xabff").unwrap(), PriorityRule { high: false, ttl: Some(Duration::from_secs(300)) });
        assert_eq!(list.rule("0xff"), None);
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, needle) in [
            ("0xab", "line 1"),
            ("\n0xab* top", "line 2: unknown class"),
            ("0xab* high 0", "above 0"),
            ("0xab* high 900", "below POSITION_CACHE_TTL_SEC"),
            ("0xab* high abc", "bad TTL"),
            ("0xzz high", "line 1"),
            ("* high", "a prefix"),
            ("0xab* high 60 extra", "too many"),
        ] {
            let error = PriorityList::parse(text, TTL).unwrap_err();
            assert!(error.contains(needle) && !error.contains('\n'), "{text:?}: {error}");
        }
    }
}
