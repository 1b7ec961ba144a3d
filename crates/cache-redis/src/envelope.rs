//! The bytes stored in Redis: a small versioned header around a bincode
//! payload. The one place that knows the codec.
//!
//! ```text
//! offset  size  field
//!      0     4  magic: CA C4 50 43 ("\xCA\xC4PC")
//!      4     1  format version: 2
//!      5     8  fetched_at: Unix time in nanoseconds, u64 big-endian
//!     13     …  payload: the value, bincode 2 (serde, config::standard())
//! ```
//!
//! The header is fixed-width and codec-independent, so a reader can always
//! tell whose bytes it is looking at and which version wrote them. To change
//! the codec or the header, bump [`VERSION`]: a replica that meets a
//! version it does not know treats the value as a miss (and its next store
//! replaces it), which is what a rolling deploy needs. Keys carry their own
//! layout version (`…:v2:…`), which only changes if the key layout does.
//!
//! `fetched_at` round-trips a [`SystemTime`] exactly at nanosecond
//! precision, the precision of the system clock on Linux, for any time from
//! 1970 until 2554; times outside that range are refused when encoding.
//!
//! Decoding never panics and never trusts a length it reads: bincode's
//! allocation limit is set from the size of the payload (see
//! [`decode`]), and every byte must be consumed. What it is not: a general
//! serialization layer. The value type must be one bincode can decode
//! without `deserialize_any` (no `#[serde(flatten)]`, no untagged enums, no
//! `serde_json::Value`; `rust_decimal::Decimal` through
//! `rust_decimal::serde::str`).
//!
//! # Examples
//!
//! ```
//! use std::time::{Duration, SystemTime, UNIX_EPOCH};
//! use cache_redis::envelope::{self, DecodeError};
//!
//! let fetched_at = UNIX_EPOCH + Duration::new(1_764_000_000, 123_456_789);
//! let bytes = envelope::encode(&vec!["USDC".to_owned(), "WETH".to_owned()], fetched_at).unwrap();
//! assert_eq!(&bytes[..5], b"\xCA\xC4PC\x02");
//!
//! let stored = envelope::decode::<Vec<String>>(&bytes).unwrap();
//! assert_eq!(stored.value, ["USDC", "WETH"]);
//! assert_eq!(stored.fetched_at, fetched_at);
//!
//! assert_eq!(envelope::decode::<Vec<String>>(b"garbage").unwrap_err(), DecodeError::BadMagic(*b"garb"));
//! assert_eq!(envelope::decode::<Vec<String>>(&bytes[..bytes.len() - 1]).unwrap_err(), DecodeError::Truncated);
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bincode::config;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The first bytes of every value this crate writes.
pub const MAGIC: [u8; 4] = [0xCA, 0xC4, b'P', b'C'];

/// The envelope format this version writes, and the only one it reads.
///
/// 2: what is stored became the rendered, compressed entry the service
/// serves from (its `StoredSnapshot`) instead of the positions to render;
/// version 1 values are misses, replaced by the next store.
pub const VERSION: u8 = 2;

/// Bytes before the payload: magic, version, `fetched_at`.
pub const HEADER_LEN: usize = MAGIC.len() + 1 + 8;

/// A value read from Redis, with the time the service fetched it from its
/// source.
///
/// # Examples
///
/// ```
/// use std::time::SystemTime;
/// use cache_redis::Stored;
///
/// let stored = Stored { value: 42_u32, fetched_at: SystemTime::UNIX_EPOCH };
/// assert_eq!(stored.value, 42);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored<T> {
    /// The value.
    pub value: T,
    /// When the service got the value from its source (wall-clock time, so
    /// every replica agrees on its age).
    pub fetched_at: SystemTime,
}

/// Why a value could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// `fetched_at` does not fit the envelope's nanosecond field.
    #[error("cannot encode value: fetched_at is before 1970 or after 2554")]
    FetchedAtOutOfRange,
    /// The codec refused the value (bincode's message).
    #[error("cannot encode value: {0}")]
    Payload(String),
}

/// Why stored bytes are not a value this version can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes end before the header or the payload does.
    #[error("cannot decode value: it ends early")]
    Truncated,
    /// The bytes do not start with [`MAGIC`]: not written by this crate.
    #[error("cannot decode value: no envelope magic (starts with {0:02x?})")]
    BadMagic([u8; 4]),
    /// Written by a format version this one does not read.
    #[error("cannot decode value: unknown envelope version {0}")]
    UnknownVersion(u8),
    /// The payload is complete but not a value of the expected type
    /// (bincode's message).
    #[error("cannot decode value: {0}")]
    Payload(String),
    /// The payload decoded but left this many bytes unread.
    #[error("cannot decode value: {0} bytes after the payload")]
    TrailingBytes(usize),
}

/// `value` and `fetched_at` as envelope bytes.
///
/// # Errors
///
/// [`EncodeError::FetchedAtOutOfRange`] for a `fetched_at` before 1970 or
/// after 2554, [`EncodeError::Payload`] if serde or bincode refuses the
/// value.
pub fn encode<T: Serialize + ?Sized>(value: &T, fetched_at: SystemTime) -> Result<Vec<u8>, EncodeError> {
    let nanos = fetched_at
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|since| u64::try_from(since.as_nanos()).ok())
        .ok_or(EncodeError::FetchedAtOutOfRange)?;
    let mut bytes = Vec::with_capacity(HEADER_LEN + 256);
    bytes.extend_from_slice(&MAGIC);
    bytes.push(VERSION);
    bytes.extend_from_slice(&nanos.to_be_bytes());
    bincode::serde::encode_into_std_write(value, &mut bytes, config::standard())
        .map_err(|e| EncodeError::Payload(e.to_string()))?;
    Ok(bytes)
}

/// Reads envelope bytes back into a value and its `fetched_at`.
///
/// # Errors
///
/// A [`DecodeError`] naming what is wrong: too short, wrong magic, unknown
/// version, a payload that is not a `T`, or bytes left over after it.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<Stored<T>, DecodeError> {
    if bytes.len() < MAGIC.len() {
        return Err(DecodeError::Truncated);
    }
    let (magic, rest) = bytes.split_at(MAGIC.len());
    if magic != MAGIC {
        let mut found = [0; 4];
        found.copy_from_slice(magic);
        return Err(DecodeError::BadMagic(found));
    }
    let (&version, rest) = rest.split_first().ok_or(DecodeError::Truncated)?;
    if version != VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let (nanos, payload) = rest.split_first_chunk::<8>().ok_or(DecodeError::Truncated)?;
    let fetched_at = UNIX_EPOCH + Duration::from_nanos(u64::from_be_bytes(*nanos));
    let (value, read) = decode_payload::<T>(payload).map_err(|e| match e {
        bincode::error::DecodeError::UnexpectedEnd { .. } => DecodeError::Truncated,
        other => DecodeError::Payload(other.to_string()),
    })?;
    match payload.len() - read {
        0 => Ok(Stored { value, fetched_at }),
        left => Err(DecodeError::TrailingBytes(left)),
    }
}

/// Decodes with an allocation limit that fits the payload.
///
/// bincode reads a string's length from the input and allocates that much
/// before it reads the bytes, so a garbage length could ask for exabytes
/// and abort the process. A valid payload never claims more bytes than it
/// holds (through serde, only strings and byte buffers claim, and they claim
/// exactly their own length), so a limit of the payload's size would be
/// exact; the limit is a const generic, so the payload's size is rounded up
/// to a power of 16 instead. Garbage can then make a decode allocate at
/// most 16 times the bytes it came in.
fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<(T, usize), bincode::error::DecodeError> {
    const KIB: usize = 1 << 10;
    const MIB: usize = 1 << 20;
    let standard = config::standard();
    match payload.len() {
        ..=4096 => bincode::serde::decode_from_slice(payload, standard.with_limit::<{ 4 * KIB }>()),
        4097..=65_536 => bincode::serde::decode_from_slice(payload, standard.with_limit::<{ 64 * KIB }>()),
        65_537..=1_048_576 => bincode::serde::decode_from_slice(payload, standard.with_limit::<{ MIB }>()),
        1_048_577..=16_777_216 => bincode::serde::decode_from_slice(payload, standard.with_limit::<{ 16 * MIB }>()),
        // Redis refuses strings over 512 MiB, so nothing larger can come back.
        _ => bincode::serde::decode_from_slice(payload, standard.with_limit::<{ 512 * MIB }>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Sample {
        name: String,
        amounts: Vec<u64>,
        note: Option<String>,
    }

    fn sample() -> Sample {
        Sample { name: "USDC".to_owned(), amounts: vec![1, 2, u64::MAX], note: Some("ü".to_owned()) }
    }

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn round_trips_value_and_fetched_at_to_the_nanosecond() {
        for fetched_at in [UNIX_EPOCH, at(1_764_000_000, 1), at(1_764_000_000, 999_999_999), SystemTime::now()] {
            let bytes = encode(&sample(), fetched_at).unwrap();
            let stored: Stored<Sample> = decode(&bytes).unwrap();
            assert_eq!(stored, Stored { value: sample(), fetched_at });
        }
    }

    #[test]
    fn header_layout_is_as_documented() {
        let bytes = encode(&7_u8, at(1, 2)).unwrap();
        assert_eq!(&bytes[..4], &MAGIC);
        assert_eq!(bytes[4], VERSION);
        assert_eq!(&bytes[5..13], &1_000_000_002_u64.to_be_bytes());
        assert_eq!(&bytes[13..], &[7]);
        assert_eq!(HEADER_LEN, 13);
    }

    #[test]
    fn fetched_at_outside_the_field_is_refused() {
        let before_epoch = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(encode(&1_u8, before_epoch), Err(EncodeError::FetchedAtOutOfRange));
        let after_2554 = UNIX_EPOCH + Duration::from_nanos(u64::MAX) + Duration::from_secs(1);
        assert_eq!(encode(&1_u8, after_2554), Err(EncodeError::FetchedAtOutOfRange));
        let last = UNIX_EPOCH + Duration::from_nanos(u64::MAX);
        assert_eq!(decode::<u8>(&encode(&1_u8, last).unwrap()).unwrap().fetched_at, last);
    }

    #[test]
    fn every_kind_of_bad_bytes_is_a_typed_error() {
        let good = encode(&sample(), at(5, 5)).unwrap();
        let check = |bytes: &[u8], expected: DecodeError| {
            assert_eq!(decode::<Sample>(bytes).unwrap_err(), expected, "{bytes:02x?}");
        };
        check(b"", DecodeError::Truncated);
        check(b"\xCA\xC4", DecodeError::Truncated);
        check(b"\xCA\xC4PC", DecodeError::Truncated);
        check(&good[..HEADER_LEN - 1], DecodeError::Truncated);
        check(&good[..HEADER_LEN], DecodeError::Truncated);
        check(&good[..good.len() - 1], DecodeError::Truncated);
        check(b"{\"json\": true}", DecodeError::BadMagic(*b"{\"js"));

        let mut other_version = good.clone();
        other_version[4] = 1;
        check(&other_version, DecodeError::UnknownVersion(1));

        let mut trailing = good.clone();
        trailing.extend_from_slice(b"xy");
        check(&trailing, DecodeError::TrailingBytes(2));

        // A payload of the wrong type: a u64 where a string's length and
        // bytes should be, then invalid UTF-8.
        let mut bad_utf8 = good[..HEADER_LEN].to_vec();
        bad_utf8.extend_from_slice(&[2, 0xff, 0xfe, 0, 0]);
        assert!(matches!(decode::<Sample>(&bad_utf8), Err(DecodeError::Payload(_))));
    }

    #[test]
    fn a_huge_length_in_garbage_is_refused_without_allocating_it() {
        // A string whose length claims u64::MAX bytes (bincode's varint:
        // 253 then eight bytes), and one that claims 1 GiB.
        for claim in [u64::MAX, 1 << 30] {
            let mut bytes = encode(&(), UNIX_EPOCH).unwrap();
            bytes.push(253);
            bytes.extend_from_slice(&claim.to_le_bytes());
            let error = decode::<String>(&bytes).unwrap_err();
            assert!(matches!(error, DecodeError::Payload(_)), "{error:?}");
        }
    }

    #[test]
    fn random_bytes_after_a_valid_header_never_panic() {
        // Seeded, so that a failure repeats.
        let mut rng = SmallRng::seed_from_u64(0x2545_f491_4f6c_dd1d);
        let header = encode(&(), UNIX_EPOCH).unwrap();
        for _ in 0..20_000 {
            let len = rng.random_range(0..48);
            let mut bytes = header.clone();
            bytes.extend((0..len).map(|_| rng.random::<u8>()));
            let _ = decode::<Sample>(&bytes);
            let _ = decode::<Vec<Sample>>(&bytes);
        }
    }
}
