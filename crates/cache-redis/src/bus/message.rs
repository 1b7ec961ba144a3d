//! What crosses the fleet's channel: one [`Message`] per event, in a small
//! versioned binary encoding.
//!
//! ```text
//! offset  size  field
//!      0     4  magic: CA C4 50 42 ("\xCA\xC4PB")
//!      4     1  format version: 1
//!      5     1  kind: 1 deleted, 2 pattern deleted, 3 stored
//!      6    16  sender: the publishing instance's id, u128 big-endian
//!     22     8  at: Unix time in nanoseconds, u64 big-endian
//!     30     …  subject: the wallet id or glob pattern, UTF-8, to the end
//! ```
//!
//! Everything but the subject is fixed-width, so a reader can always tell
//! whose bytes it is looking at and which version wrote them. The magic
//! differs from the value [`envelope`](crate::envelope)'s, so neither is
//! ever taken for the other. To change the layout, bump [`VERSION`]: a
//! replica that meets a version it does not know ignores the message (and
//! counts it), which is what a rolling deploy needs; it may then miss an
//! invalidation from a newer replica, as it would miss a lost message.
//!
//! Decoding never panics: anything that is not a message of this version
//! is a [`DecodeError`].

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::envelope::EncodeError;

/// The first bytes of every message.
pub const MAGIC: [u8; 4] = [0xCA, 0xC4, b'P', b'B'];

/// The message format this version writes, and the only one it reads.
pub const VERSION: u8 = 1;

/// Bytes before the subject: magic, version, kind, sender, `at`.
pub const HEADER_LEN: usize = MAGIC.len() + 1 + 1 + 16 + 8;

/// The identity of one process on the channel: 128 random bits, so that a
/// replica can tell its own messages from the others' without any
/// coordination (two replicas draw the same id with odds of 2⁻¹²⁸).
///
/// # Examples
///
/// ```
/// use cache_redis::bus::InstanceId;
///
/// let (a, b) = (InstanceId::random(), InstanceId::random());
/// assert_ne!(a, b);
/// assert_eq!(InstanceId::from_u128(a.as_u128()), a);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct InstanceId(u128);

impl InstanceId {
    /// A fresh random id, from the thread-local generator (seeded by the
    /// operating system).
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// The id with these bits (for tests and logs).
    pub const fn from_u128(bits: u128) -> Self {
        Self(bits)
    }

    /// The id's bits.
    pub const fn as_u128(self) -> u128 {
        self.0
    }
}

impl fmt::Debug for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstanceId({self})")
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// What happened to the subject of a [`Message`]: a closed set, fit for a
/// metric label.
///
/// # Examples
///
/// ```
/// use cache_redis::bus::Kind;
///
/// assert_eq!(Kind::PatternDeleted.as_str(), "pattern_deleted");
/// assert_eq!(Kind::ALL.len(), 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The wallet was deleted: drop it from memory.
    Deleted,
    /// Every wallet the glob pattern matches was deleted.
    PatternDeleted,
    /// A newer entry for the wallet was stored: drop (or replace) any older
    /// copy.
    Stored,
}

impl Kind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 3] = [Self::Deleted, Self::PatternDeleted, Self::Stored];

    /// The kind in lower case, fit for a metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Deleted => "deleted",
            Self::PatternDeleted => "pattern_deleted",
            Self::Stored => "stored",
        }
    }

    const fn code(self) -> u8 {
        match self {
            Self::Deleted => 1,
            Self::PatternDeleted => 2,
            Self::Stored => 3,
        }
    }

    const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Deleted),
            2 => Some(Self::PatternDeleted),
            3 => Some(Self::Stored),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event on the fleet's channel.
///
/// # Examples
///
/// ```
/// use std::time::SystemTime;
/// use cache_redis::bus::{self, InstanceId, Kind, Message};
///
/// let message = Message {
///     kind: Kind::Deleted,
///     subject: "0xabc".to_owned(),
///     at: SystemTime::now(),
///     sender: InstanceId::random(),
/// };
/// let bytes = bus::encode(&message).unwrap();
/// assert_eq!(&bytes[..5], b"\xCA\xC4PB\x01");
/// assert_eq!(bus::decode(&bytes).unwrap(), message);
/// assert!(bus::decode(b"garbage").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// What happened.
    pub kind: Kind,
    /// The wallet id ([`Kind::Deleted`], [`Kind::Stored`]) or the glob
    /// pattern ([`Kind::PatternDeleted`]), as the service passes them to
    /// the tier.
    pub subject: String,
    /// For [`Kind::Stored`], the stored entry's `fetched_at`; for the
    /// deletions, when the deletion was made (the sender's clock).
    pub at: SystemTime,
    /// Who published it.
    pub sender: InstanceId,
}

/// Why bytes on the channel are not a message this version can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes end before the header does, or the subject is empty.
    #[error("cannot decode message: it ends early")]
    Truncated,
    /// The bytes do not start with [`MAGIC`]: not published by this crate.
    #[error("cannot decode message: no message magic")]
    BadMagic,
    /// Written by a format version this one does not read.
    #[error("cannot decode message: unknown message version {0}")]
    UnknownVersion(u8),
    /// A kind this version does not know.
    #[error("cannot decode message: unknown kind {0}")]
    UnknownKind(u8),
    /// The subject is not UTF-8.
    #[error("cannot decode message: the subject is not utf-8")]
    BadSubject,
}

/// `message` as bytes for the channel.
///
/// # Errors
///
/// [`EncodeError::FetchedAtOutOfRange`] if `at` is before 1970 or after
/// 2554, the range of the nanosecond field (the same as the value
/// envelope's).
pub fn encode(message: &Message) -> Result<Vec<u8>, EncodeError> {
    let nanos = message
        .at
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|since| u64::try_from(since.as_nanos()).ok())
        .ok_or(EncodeError::FetchedAtOutOfRange)?;
    let mut bytes = Vec::with_capacity(HEADER_LEN + message.subject.len());
    bytes.extend_from_slice(&MAGIC);
    bytes.push(VERSION);
    bytes.push(message.kind.code());
    bytes.extend_from_slice(&message.sender.0.to_be_bytes());
    bytes.extend_from_slice(&nanos.to_be_bytes());
    bytes.extend_from_slice(message.subject.as_bytes());
    Ok(bytes)
}

/// The message in `bytes`.
///
/// # Errors
///
/// A [`DecodeError`] saying why `bytes` are not a message of this version.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    let (magic, rest) = bytes.split_first_chunk::<4>().ok_or(DecodeError::Truncated)?;
    if *magic != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let (&version, rest) = rest.split_first().ok_or(DecodeError::Truncated)?;
    if version != VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let (&kind, rest) = rest.split_first().ok_or(DecodeError::Truncated)?;
    let kind = Kind::from_code(kind).ok_or(DecodeError::UnknownKind(kind))?;
    let (sender, rest) = rest.split_first_chunk::<16>().ok_or(DecodeError::Truncated)?;
    let (nanos, subject) = rest.split_first_chunk::<8>().ok_or(DecodeError::Truncated)?;
    if subject.is_empty() {
        return Err(DecodeError::Truncated);
    }
    let subject = std::str::from_utf8(subject).map_err(|_| DecodeError::BadSubject)?;
    Ok(Message {
        kind,
        subject: subject.to_owned(),
        // Any u64 of nanoseconds since 1970 is a valid `SystemTime` on the
        // platforms this runs on (64-bit seconds).
        at: UNIX_EPOCH + Duration::from_nanos(u64::from_be_bytes(*nanos)),
        sender: InstanceId(u128::from_be_bytes(*sender)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn message(kind: Kind, subject: &str) -> Message {
        Message {
            kind,
            subject: subject.to_owned(),
            at: UNIX_EPOCH + Duration::new(1_764_000_000, 123_456_789),
            sender: InstanceId(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10),
        }
    }

    #[test]
    fn the_layout_is_fixed_but_for_the_subject() {
        let bytes = encode(&message(Kind::Stored, "0xabc")).unwrap();
        assert_eq!(bytes.len(), HEADER_LEN + 5);
        assert_eq!(&bytes[..6], b"\xCA\xC4PB\x01\x03");
        assert_eq!(&bytes[6..22], &(1..=16).collect::<Vec<u8>>()[..]);
        assert_eq!(&bytes[22..30], &1_764_000_000_123_456_789_u64.to_be_bytes());
        assert_eq!(&bytes[30..], b"0xabc");
    }

    #[test]
    fn every_kind_round_trips() {
        for kind in Kind::ALL {
            let message = message(kind, "0xab*");
            assert_eq!(decode(&encode(&message).unwrap()).unwrap(), message);
        }
    }

    #[test]
    fn times_outside_the_field_are_refused() {
        let mut early = message(Kind::Deleted, "0xabc");
        early.at = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(encode(&early).unwrap_err(), EncodeError::FetchedAtOutOfRange);
    }

    #[test]
    fn what_is_not_a_message_is_told_apart() {
        let good = encode(&message(Kind::Deleted, "0xabc")).unwrap();
        assert_eq!(decode(b"").unwrap_err(), DecodeError::Truncated);
        assert_eq!(decode(b"garbage that is long enough to have a header").unwrap_err(), DecodeError::BadMagic);
        let envelope = crate::envelope::encode(&1_u8, SystemTime::now()).unwrap();
        assert_eq!(decode(&envelope).unwrap_err(), DecodeError::BadMagic, "a stored value is not a message");

        let mut newer = good.clone();
        newer[4] = 2;
        assert_eq!(decode(&newer).unwrap_err(), DecodeError::UnknownVersion(2));
        let mut strange = good.clone();
        strange[5] = 9;
        assert_eq!(decode(&strange).unwrap_err(), DecodeError::UnknownKind(9));
        for len in 0..=HEADER_LEN {
            assert_eq!(decode(&good[..len]).unwrap_err(), DecodeError::Truncated, "{len} bytes");
        }
        let mut latin1 = good[..HEADER_LEN].to_vec();
        latin1.push(0xE9);
        assert_eq!(decode(&latin1).unwrap_err(), DecodeError::BadSubject);
    }

    fn any_message() -> impl Strategy<Value = Message> {
        (prop::sample::select(Kind::ALL.to_vec()), "\\PC{1,80}", any::<u64>(), any::<u128>()).prop_map(
            |(kind, subject, nanos, sender)| Message {
                kind,
                subject,
                at: UNIX_EPOCH + Duration::from_nanos(nanos),
                sender: InstanceId(sender),
            },
        )
    }

    proptest! {
        #[test]
        fn messages_round_trip(message in any_message()) {
            let bytes = encode(&message).unwrap();
            prop_assert_eq!(decode(&bytes).unwrap(), message);
        }

        #[test]
        fn decoding_any_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn decoding_damaged_messages_never_panics(message in any_message(), cut in 0_usize..120, flip in 0_usize..120) {
            let mut bytes = encode(&message).unwrap();
            if let Some(byte) = bytes.get_mut(flip) {
                *byte ^= 0x5A;
            }
            bytes.truncate(cut);
            let _ = decode(&bytes);
        }
    }
}
