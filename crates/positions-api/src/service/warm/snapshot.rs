//! The warm-start snapshot file (`POSITION_CACHE_SNAPSHOT_PATH`): the
//! wallets most in demand and their entries, for a replica without Redis
//! to start from.
//!
//! Layout (integers big-endian):
//!
//! ```text
//! "PCWS"  version (1 byte, 1)  count (u32)
//! count × [ wallet length (u16) | wallet | entry length (u32) | entry ]
//! CRC-32 of everything above (u32)
//! ```
//!
//! Each entry is the Redis tier's versioned envelope (`cache_redis::envelope`:
//! `fetched_at` and the stored snapshot), so the file holds exactly what
//! tier 2 would. A file is written whole to a temporary file beside it,
//! synced, then renamed over the old one, so a reader sees the old file or
//! the new one, never a mix; the checksum catches what a rename cannot (a
//! disk or a copy that cut it short). A file that is short, corrupt or of
//! another version is ignored as a whole, with a warning; an entry whose
//! envelope this version cannot read is skipped alone.

use std::io::Write as _;
use std::path::Path;
use std::time::SystemTime;

use cache_redis::envelope;

use crate::model::StoredSnapshot;

const MAGIC: [u8; 4] = *b"PCWS";
/// The file format's version; a file of another is ignored.
pub(crate) const VERSION: u8 = 1;

/// One wallet's entry as the file holds it.
#[derive(Debug, Clone)]
pub(crate) struct SavedEntry {
    pub(crate) wallet: String,
    pub(crate) value: StoredSnapshot,
    pub(crate) fetched_at: SystemTime,
}

/// Why a file was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SnapshotError {
    #[error("cannot read the snapshot: {0}")]
    Io(String),
    #[error("the snapshot is cut short")]
    Truncated,
    #[error("not a snapshot file")]
    BadMagic,
    #[error("snapshot format version {0}, this version reads {VERSION}")]
    Foreign(u8),
    #[error("the snapshot's checksum does not match")]
    Checksum,
}

/// The file's bytes for `entries`.
pub(crate) fn encode(entries: &[SavedEntry]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(16 + entries.len() * 1_024);
    bytes.extend_from_slice(&MAGIC);
    bytes.push(VERSION);
    let count_at = bytes.len();
    bytes.extend_from_slice(&0_u32.to_be_bytes());
    let mut count = 0_u32;
    for entry in entries {
        let (Ok(wallet_len), Ok(value)) =
            (u16::try_from(entry.wallet.len()), envelope::encode(&entry.value, entry.fetched_at))
        else {
            continue;
        };
        let Ok(value_len) = u32::try_from(value.len()) else { continue };
        bytes.extend_from_slice(&wallet_len.to_be_bytes());
        bytes.extend_from_slice(entry.wallet.as_bytes());
        bytes.extend_from_slice(&value_len.to_be_bytes());
        bytes.extend_from_slice(&value);
        count += 1;
    }
    bytes[count_at..count_at + 4].copy_from_slice(&count.to_be_bytes());
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    bytes
}

/// The entries in a file's bytes; entries this version cannot read are
/// left out.
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<SavedEntry>, SnapshotError> {
    if bytes.len() < MAGIC.len() + 1 {
        return Err(SnapshotError::Truncated);
    }
    if bytes[..MAGIC.len()] != MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    if bytes[MAGIC.len()] != VERSION {
        return Err(SnapshotError::Foreign(bytes[MAGIC.len()]));
    }
    if bytes.len() < MAGIC.len() + 1 + 4 + 4 {
        return Err(SnapshotError::Truncated);
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body) != u32::from_be_bytes(crc.try_into().map_err(|_| SnapshotError::Truncated)?) {
        return Err(SnapshotError::Checksum);
    }
    let mut rest = &body[MAGIC.len() + 1..];
    let count = take_u32(&mut rest)?;
    let mut entries = Vec::with_capacity(count.min(1 << 20) as usize);
    for _ in 0..count {
        let wallet_len = usize::from(u16::from_be_bytes(take(&mut rest, 2)?.try_into().unwrap_or_default()));
        let wallet = String::from_utf8_lossy(take(&mut rest, wallet_len)?).into_owned();
        let value_len = take_u32(&mut rest)? as usize;
        let value = take(&mut rest, value_len)?;
        if let Ok(stored) = envelope::decode::<StoredSnapshot>(value) {
            entries.push(SavedEntry { wallet, value: stored.value, fetched_at: stored.fetched_at });
        }
    }
    if !rest.is_empty() {
        return Err(SnapshotError::Truncated);
    }
    Ok(entries)
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], SnapshotError> {
    if rest.len() < n {
        return Err(SnapshotError::Truncated);
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, SnapshotError> {
    Ok(u32::from_be_bytes(take(rest, 4)?.try_into().unwrap_or_default()))
}

/// Writes `bytes` to `path` atomically: a temporary file beside it,
/// synced, then renamed over it.
///
/// # Errors
///
/// Whatever the file system says.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut name = path.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(name);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reads the file at `path`: `Ok(None)` if there is none.
///
/// # Errors
///
/// A [`SnapshotError`] for a file that cannot be read or used.
pub(crate) fn read(path: &Path) -> Result<Option<Vec<SavedEntry>>, SnapshotError> {
    match std::fs::read(path) {
        Ok(bytes) => decode(&bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SnapshotError::Io(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::Snapshot;
    use crate::wallet::Wallet;

    fn entry(wallet: &str, secs: u64) -> SavedEntry {
        let wallet = Wallet::parse(wallet).expect("wallet");
        let fetched_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs);
        let snapshot = Snapshot::render(&wallet, &crate::model::Positions::default(), fetched_at.into());
        SavedEntry { wallet: wallet.as_str().to_owned(), value: snapshot.to_stored(), fetched_at }
    }

    #[test]
    fn a_file_reads_back_what_was_written() {
        let entries = [
            entry("0x52908400098527886e0f7030069857d2e4169ee7", 1),
            entry("0x1111111111111111111111111111111111111111", 2),
        ];
        let back = decode(&encode(&entries)).expect("readable");
        assert_eq!(back.len(), 2);
        for (a, b) in entries.iter().zip(&back) {
            assert_eq!((&a.wallet, a.fetched_at, &a.value), (&b.wallet, b.fetched_at, &b.value));
        }
        assert_eq!(decode(&encode(&[])).expect("an empty file").len(), 0);
    }

    #[test]
    fn a_cut_changed_or_foreign_file_is_refused() {
        let bytes = encode(&[entry("0x52908400098527886e0f7030069857d2e4169ee7", 1)]);
        for cut in [0, 3, 5, 9, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert_eq!(decode(&flipped).unwrap_err(), SnapshotError::Checksum);
        let mut foreign = bytes.clone();
        foreign[4] = 9;
        assert_eq!(decode(&foreign).unwrap_err(), SnapshotError::Foreign(9));
        assert_eq!(decode(b"hello world, no snapshot").unwrap_err(), SnapshotError::BadMagic);
    }
}
