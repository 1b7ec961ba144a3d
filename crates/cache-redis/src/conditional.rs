//! Writes that several replicas can make to one Redis in any order and
//! still agree: the newest entry wins, and a delete is final for the loads
//! that started before it.
//!
//! Two replicas (or two loads on one) may finish in either order, and a
//! write travels from a detached task, so the order in which writes reach
//! Redis says nothing about the order in which their values were fetched.
//! A plain `SET` lets the last write win, older or not, and lets a load
//! that finished just before a `DELETE` bring the entry back after it.
//! Here each write is one Lua script, run by Redis atomically (`EVAL`:
//! the body, a few hundred bytes, travels with each call, and Redis finds
//! its compiled copy by the body's SHA-1; `EVALSHA` would save those bytes
//! but needs redis-rs's `script` feature and a SHA-1 crate, for little):
//!
//! - [`set_if_newer`](RedisTier::set_if_newer) reads the `fetched_at` of
//!   what is stored (bytes 6 to 13 of the envelope's fixed-width header,
//!   in Lua's 1-based `string.sub`: a `GETRANGE` of 13 bytes, whatever the
//!   entry's size) and writes only if the new value's is later. An equal
//!   time keeps what is there: the first of two writes of one fetch wins.
//!   What is stored but not an envelope of this version (corrupt, another
//!   format, another type) is replaced, as [`set`](RedisTier::set) would.
//!   Before that, it reads the wallet's tombstone and writes nothing if the
//!   tombstone records a deletion at or after the time the load started.
//! - [`delete_with_tombstone`](RedisTier::delete_with_tombstone) unlinks
//!   the entry and sets the tombstone, `<ns>:tombstone:v2:{<id>}`, holding
//!   the deletion time (the later one, if a tombstone is already there) and
//!   expiring after the caller's lifetime, which must be at least the load
//!   timeout: a load still running when its tombstone expires could store
//!   its result.
//!
//! Times are compared as 8-byte big-endian nanoseconds since the epoch,
//! byte by byte (not with Lua's `<`, which compares strings by the
//! server's locale).
//!
//! **Clock skew.** Every time compared here (`fetched_at`,
//! `load_started_at`, `deleted_at`) is the wall clock of the replica that
//! stamped it, not Redis's. Replicas kept by NTP differ by milliseconds;
//! the rule is that they differ by less than [`FETCHED_AT_SKEW`] (2 s),
//! the bound a read already clamps future times to. Within that bound two
//! events on different replicas may be ordered the wrong way round: a
//! write fetched up to the skew earlier on a replica whose clock runs
//! ahead beats a later one, and a load that started up to the skew after a
//! delete on a replica whose clock runs behind is refused (a refusal costs
//! one extra load, never a wrong answer for long: the next load stores).
//! Beyond the bound the rule is broken, and the damage is bounded by the
//! entry's expiry: an entry stamped by a clock that runs ahead refuses
//! every other replica's write as older until their clocks pass its stamp
//! or it expires (`expire_after`, TTL plus the stale window), whichever
//! comes first (reads meanwhile clamp its stamp to now: see
//! [`get`](RedisTier::get)). Stamping with
//! Redis's `TIME` instead would remove skew from the comparison but not
//! from the ages replicas compute with their own clocks, and would cost a
//! round trip before each load; a clock off by seconds is an incident to
//! alert on (NTP offset), not one to design around.
//!
//! **A pattern deletion is final too, for the wallets it can name.**
//! [`delete_matching_with_tombstones`](RedisTier::delete_matching_with_tombstones)
//! cannot know the ids of entries that are not stored, but every load that
//! coordinates holds the id's load lock (see [`load_lock`](crate::load_lock))
//! while it runs. So it scans for the pattern's entries *and* its load
//! locks, and runs [`delete_with_tombstone`](RedisTier::delete_with_tombstone)
//! for each id found: a stored entry goes, and a load in flight under a
//! lock stores nothing when it finishes. A load that runs without the lock
//! (Redis refused it, or it gave up waiting for another holder) is not
//! named, and can store its result after the deletion; the service's memory
//! tier keeps a tombstone of the pattern itself for its own loads.
//!
//! Like every operation of the tier, each write is one round trip under the
//! op timeout and through the breaker. One that is sent again after its
//! connection dropped (see [`RedisTier`]) may have run the first time: a
//! `set_if_newer` then reports [`WriteOutcome::Older`] for a write it made,
//! and a `delete_with_tombstone` reports `false` for an entry it dropped.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_redis::redis;
use serde::Serialize;

use crate::envelope;
use crate::error::Error;
use crate::op::Op;
#[cfg(doc)]
use crate::tier::FETCHED_AT_SKEW;
use crate::tier::{RedisTier, Request, expiry_millis};

/// Whether `a >= b`, both 8-byte big-endian: the helper every script here
/// starts with.
const LATER_OR_EQUAL: &str = r"
local function later_or_equal(a, b)
  for i = 1, 8 do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return true
end
";

/// KEYS: entry, tombstone. ARGV: envelope, `load_started_at`, expiry in ms.
/// Returns 0 (stored), 1 (older), 2 (deleted).
static SET_IF_NEWER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{LATER_OR_EQUAL}{}",
        r"
local deleted_at = redis.call('GET', KEYS[2])
if deleted_at and #deleted_at == 8 and later_or_equal(deleted_at, ARGV[2]) then
  return 2
end
local head = redis.pcall('GETRANGE', KEYS[1], 0, 12)
if type(head) == 'string' and #head == 13
    and string.sub(head, 1, 5) == string.sub(ARGV[1], 1, 5)
    and later_or_equal(string.sub(head, 6, 13), string.sub(ARGV[1], 6, 13)) then
  return 1
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 0
"
    )
});

/// KEYS: entry, tombstone. ARGV: `deleted_at`, tombstone lifetime in ms.
/// Returns what `UNLINK` removed.
static DELETE_WITH_TOMBSTONE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{LATER_OR_EQUAL}{}",
        r"
local deleted_at = ARGV[1]
local previous = redis.call('GET', KEYS[2])
if previous and #previous == 8 and later_or_equal(previous, deleted_at) then
  deleted_at = previous
end
redis.call('SET', KEYS[2], deleted_at, 'PX', ARGV[2])
return redis.call('UNLINK', KEYS[1])
"
    )
});

/// What a [`set_if_newer`](RedisTier::set_if_newer) did.
///
/// # Examples
///
/// ```
/// use cache_redis::WriteOutcome;
///
/// assert!(WriteOutcome::Stored.is_stored());
/// assert!(!WriteOutcome::Deleted.is_stored());
/// assert_eq!(WriteOutcome::Older.as_str(), "older");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub enum WriteOutcome {
    /// The value was written: nothing as new was stored, and no deletion
    /// since the load started.
    Stored,
    /// Nothing was written: the stored entry was fetched at the same time
    /// or later.
    Older,
    /// Nothing was written: the id was deleted at or after the time the
    /// load started.
    Deleted,
}

impl WriteOutcome {
    /// Whether the value was written.
    pub const fn is_stored(self) -> bool {
        matches!(self, Self::Stored)
    }

    /// The outcome in lower case, fit for a metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Stored => "stored",
            Self::Older => "older",
            Self::Deleted => "deleted",
        }
    }
}

impl RedisTier {
    /// Stores `value` for `id`, fetched at `fetched_at` by a load that
    /// started at `load_started_at`, to expire after `expire_after`, unless
    /// Redis holds an entry for `id` fetched at the same time or later
    /// ([`WriteOutcome::Older`]) or a tombstone that records a deletion of
    /// `id` at or after `load_started_at` ([`WriteOutcome::Deleted`]). One
    /// atomic script, one round trip; see the [module](self) for the rules
    /// and how clock skew bends them.
    ///
    /// A refusal is not an error: the value was superseded. It is heard by
    /// the observer as [`refused_older`](crate::Observer::refused_older) or
    /// [`stopped_by_tombstone`](crate::Observer::stopped_by_tombstone).
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set): [`Error::Encode`] if the value cannot be
    /// encoded (nothing is sent), [`Error::Reply`] if Redis refuses the
    /// script (`OOM`, `READONLY`), or a Redis error.
    pub async fn set_if_newer<T: Serialize + ?Sized>(
        &self,
        id: &str,
        value: &T,
        fetched_at: SystemTime,
        load_started_at: SystemTime,
        expire_after: Duration,
    ) -> Result<WriteOutcome, Error> {
        let shared = &self.shared;
        let bytes = envelope::encode(value, fetched_at).map_err(|error| {
            shared.observer.error(Op::Set);
            Error::from(error)
        })?;
        let mut command = eval(&SET_IF_NEWER, &[shared.keys.key(id), shared.keys.tombstone(id)]);
        command.arg(bytes).arg(&nanos(load_started_at)[..]).arg(expiry_millis(expire_after));
        let code: u8 = shared.round_trip(Op::Set, Request::Command(&command)).await?;
        match code {
            0 => Ok(WriteOutcome::Stored),
            1 => {
                shared.observer.refused_older();
                Ok(WriteOutcome::Older)
            }
            2 => {
                shared.observer.stopped_by_tombstone();
                Ok(WriteOutcome::Deleted)
            }
            other => {
                shared.observer.error(Op::Set);
                Err(Error::Redis { op: Op::Set, cause: format!("the conditional write answered {other}") })
            }
        }
    }

    /// Drops the entry for `id` and leaves a tombstone recording that it
    /// was deleted at `deleted_at`, for `tombstone_ttl` (at least the load
    /// timeout: see the [module](self)); one atomic script. `true` if there
    /// was an entry.
    ///
    /// A [`set_if_newer`](Self::set_if_newer) from a load that started at
    /// or before `deleted_at` then stores nothing, on any replica, for as
    /// long as the tombstone lives; one from a load that started after it
    /// stores as usual. A later tombstone already there is kept.
    ///
    /// # Errors
    ///
    /// A Redis error as for [`get`](Self::get), or [`Error::Reply`] if
    /// Redis refuses the script.
    pub async fn delete_with_tombstone(
        &self,
        id: &str,
        deleted_at: SystemTime,
        tombstone_ttl: Duration,
    ) -> Result<bool, Error> {
        let shared = &self.shared;
        let mut command = eval(&DELETE_WITH_TOMBSTONE, &[shared.keys.key(id), shared.keys.tombstone(id)]);
        command.arg(&nanos(deleted_at)[..]).arg(expiry_millis(tombstone_ttl));
        let removed: u64 = shared.round_trip(Op::Delete, Request::Command(&command)).await?;
        Ok(removed > 0)
    }
}

impl RedisTier {
    /// Drops every entry whose id the glob `id_pattern` matches and leaves
    /// a tombstone (as [`delete_with_tombstone`](Self::delete_with_tombstone),
    /// for `deleted_at` and `tombstone_ttl`) for each of them and for each
    /// id whose load lock is held now; returns how many entries it dropped.
    /// See the [module](self) for what it stops.
    ///
    /// Two walks of the keyspace as [`delete_matching`](Self::delete_matching)
    /// makes one (entries, then load locks), each page's scripts pipelined
    /// with the scan of the next page. The scripts touch one id's keys
    /// each, so they stay valid on a Redis Cluster.
    ///
    /// # Errors
    ///
    /// As [`delete_matching`](Self::delete_matching): a malformed pattern
    /// before anything is deleted, a Redis error that stops the deletion
    /// midway (running it again finishes the job), or, on a cluster,
    /// [`Error::Partial`] with how many entries went.
    pub async fn delete_matching_with_tombstones(
        &self,
        id_pattern: &str,
        deleted_at: SystemTime,
        tombstone_ttl: Duration,
    ) -> Result<u64, Error> {
        let keys = &self.shared.keys;
        let patterns = [keys.pattern(id_pattern)?, keys.load_lock_pattern(id_pattern)?];
        let (at, ttl) = (nanos(deleted_at), expiry_millis(tombstone_ttl));
        let mut removed = 0;
        let mut partial: Option<Error> = None;
        for pattern in &patterns {
            let walked = self
                .scan_and_apply(pattern, |pipeline, page| {
                    let mut added = 0;
                    for id in page.iter().filter_map(|key| keys.id_of(key)) {
                        pipeline.add_command(eval(&DELETE_WITH_TOMBSTONE, &[keys.key(id), keys.tombstone(id)]));
                        pipeline.arg(&at[..]).arg(ttl);
                        added += 1;
                    }
                    added
                })
                .await;
            // A partial walk of the entries still walks the load locks:
            // each tombstone left is one load fewer that can bring an entry
            // back. The answer is partial if either walk was.
            match walked {
                Ok(count) => removed += count,
                Err(Error::Partial { removed: count, unreached, primaries, cause }) => {
                    removed += count;
                    partial = Some(match partial.take() {
                        Some(Error::Partial { unreached: before, cause: first, .. }) => Error::Partial {
                            removed: 0,
                            unreached: unreached.max(before),
                            primaries,
                            cause: format!("{first}; {cause}"),
                        },
                        _ => Error::Partial { removed: 0, unreached, primaries, cause },
                    });
                }
                Err(error) => return Err(error),
            }
        }
        match partial {
            Some(Error::Partial { unreached, primaries, cause, .. }) => {
                Err(Error::Partial { removed, unreached, primaries, cause })
            }
            _ => Ok(removed),
        }
    }
}

/// `EVAL body numkeys keys…`, ready for the script's arguments. Every key
/// is passed as a key (not built inside the script), so that a Redis
/// Cluster can check that they share a slot.
pub(crate) fn eval<const N: usize>(body: &str, keys: &[String; N]) -> redis::Cmd {
    let mut command = redis::cmd("EVAL");
    command.arg(body).arg(N).arg(&keys[..]);
    command
}

/// `time` as the envelope writes `fetched_at`: nanoseconds since the epoch,
/// big-endian; saturated to the field (0 before 1970, all ones after 2554),
/// which keeps the order of any two times a replica can stamp.
fn nanos(time: SystemTime) -> [u8; 8] {
    let nanos = match time.duration_since(UNIX_EPOCH) {
        Ok(since) => u64::try_from(since.as_nanos()).unwrap_or(u64::MAX),
        Err(_) => 0,
    };
    nanos.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_the_envelope_writes_them() {
        let at = UNIX_EPOCH + Duration::new(1_764_000_000, 123);
        let bytes = envelope::encode(&1_u8, at).unwrap();
        assert_eq!(&bytes[5..13], &nanos(at));
        assert_eq!(nanos(UNIX_EPOCH - Duration::from_secs(1)), [0; 8]);
        assert_eq!(nanos(UNIX_EPOCH + Duration::from_nanos(u64::MAX) + Duration::from_secs(1)), [0xff; 8]);
    }

    #[test]
    fn byte_order_is_time_order() {
        let earlier = UNIX_EPOCH + Duration::new(1_764_000_000, 999_999_999);
        let later = earlier + Duration::from_nanos(1);
        assert!(nanos(earlier) < nanos(later));
        assert!(nanos(UNIX_EPOCH + Duration::from_nanos(255)) < nanos(UNIX_EPOCH + Duration::from_nanos(256)));
    }

    #[test]
    fn outcomes_have_distinct_labels() {
        let labels = [WriteOutcome::Stored, WriteOutcome::Older, WriteOutcome::Deleted].map(WriteOutcome::as_str);
        assert_eq!(labels, ["stored", "older", "deleted"]);
    }
}
