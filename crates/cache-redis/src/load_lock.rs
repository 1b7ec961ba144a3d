//! A per-id lock in Redis that lets one replica of a fleet load a wallet
//! while the others wait for its result: `SET <ns>:loadlock:v2:{<id>} token
//! NX PX ttl`, released by a script that deletes the key only if it still
//! holds the caller's token.
//!
//! **It saves work; it does not make anything correct.** A holder that
//! stalls past the lock's time to live (a long GC-free pause is still a
//! pause: a slow source, a CPU-starved pod), or a Redis that loses the key
//! (a restart without persistence, a failover), lets a second replica load
//! the same wallet at the same time. That costs a duplicate load, nothing
//! more, because what is stored is decided by the conditional writes of
//! [`conditional`](crate::conditional) (newest `fetched_at` wins, a delete
//! is final), never by who held the lock. So callers take the lock with a
//! time to live longer than their load timeout, and treat a lock they
//! cannot get, or an error, as "someone else may be loading": wait for
//! their result for a bounded time, then load anyway.
//!
//! The token is 128 random bits from the thread's CSPRNG, so a release by a
//! holder whose lock expired and was taken by another never drops the
//! other's lock. The lock is not reentrant and not renewed.

use std::fmt;
use std::time::Duration;

use deadpool_redis::redis;

use crate::conditional::eval;
use crate::error::Error;
use crate::op::Op;
use crate::tier::{RedisTier, Request, expiry_millis};

/// KEYS: the lock. ARGV: the token. Returns 1 if it released the lock.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Proof of holding the load lock of one id, returned by
/// [`try_lock_load`](RedisTier::try_lock_load) and given back to
/// [`unlock_load`](RedisTier::unlock_load).
///
/// Dropping it does not release the lock (that takes a round trip); the
/// lock then expires after its time to live.
#[derive(Clone, PartialEq, Eq)]
#[must_use = "a load lock is released by giving its token to unlock_load, or expires"]
pub struct LoadLockToken {
    token: String,
}

impl LoadLockToken {
    fn random() -> Self {
        Self { token: format!("{:032x}", rand::random::<u128>()) }
    }
}

impl fmt::Debug for LoadLockToken {
    /// The first bytes only: enough to tell two apart in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LoadLockToken").field(&format_args!("{}…", &self.token[..8])).finish()
    }
}

impl RedisTier {
    /// Takes the load lock of `id` for `ttl` if no one holds it: `Some`
    /// token if this caller now holds it, `None` if someone does. One round
    /// trip (`SET … NX PX`); `ttl` is counted in whole milliseconds, at
    /// least one. See the [module](crate::load_lock) for what the lock is
    /// worth.
    ///
    /// If the connection drops after Redis took the lock but before its
    /// answer arrives, the one retry on a fresh connection (see
    /// [`RedisTier`]) finds the lock taken, by this very caller, and says
    /// `None`; the lock then expires after `ttl`.
    ///
    /// # Errors
    ///
    /// A Redis error as for [`get`](Self::get): no one knows who holds the
    /// lock; carry on as if someone might.
    pub async fn try_lock_load(&self, id: &str, ttl: Duration) -> Result<Option<LoadLockToken>, Error> {
        let token = LoadLockToken::random();
        let mut command = redis::cmd("SET");
        command.arg(self.shared.keys.load_lock(id)).arg(&token.token).arg("NX").arg("PX").arg(expiry_millis(ttl));
        let reply: redis::Value = self.shared.round_trip(Op::Set, Request::Command(&command)).await?;
        Ok((!matches!(reply, redis::Value::Nil)).then_some(token))
    }

    /// Releases the load lock of `id` if `token` still holds it (a script
    /// that compares and deletes in one step); `true` if it did. `false`
    /// means the lock had expired, and may since have been taken by
    /// someone else, whose lock is left alone.
    ///
    /// # Errors
    ///
    /// A Redis error as for [`get`](Self::get); the lock then expires after
    /// its time to live.
    pub async fn unlock_load(&self, id: &str, token: &LoadLockToken) -> Result<bool, Error> {
        let mut command = eval(UNLOCK, &[self.shared.keys.load_lock(id)]);
        command.arg(&token.token);
        let released: u64 = self.shared.round_trip(Op::Delete, Request::Command(&command)).await?;
        Ok(released > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_their_debug_output_is_short() {
        let (a, b) = (LoadLockToken::random(), LoadLockToken::random());
        assert_ne!(a, b);
        assert_eq!(a.token.len(), 32);
        assert!(a.token.chars().all(|c| c.is_ascii_hexdigit()));
        let debug = format!("{a:?}");
        assert!(debug.starts_with("LoadLockToken(") && !debug.contains(&a.token), "{debug}");
    }
}
