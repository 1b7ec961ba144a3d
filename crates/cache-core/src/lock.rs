//! The lock around each shard: `parking_lot::Mutex`.
//!
//! A shard's critical sections are a hash probe and a few pointer updates:
//! tens of nanoseconds, and they never block. For sections that short the
//! lock must be cheap when free (one atomic to lock, one to unlock), and
//! when it is taken a waiter should spin only briefly, then sleep.
//!
//! The sleeping is what matters. The holder of a lock can be preempted in
//! the middle of its few nanoseconds of work (more often on a machine with
//! more busy threads than cores, which is how services run); a spin lock's
//! waiters then burn their cores until the scheduler gets round to the
//! holder again, and yielding only helps if the holder happens to be
//! waiting on the same core. `parking_lot` spins a few dozen times with the
//! CPU's spin-wait hint and then parks the waiter on a futex, so it costs
//! nothing while the holder is away, and the holder's unlock wakes it. It is
//! also what `quick_cache` uses, and it takes one byte.
//!
//! It does not poison: a panic in a caller's predicate, glob or weigher
//! unwinds through the guard and unlocks. That is safe only because the
//! shard keeps its bookkeeping in step with its map at every point where
//! caller code runs (see [`Shard`](crate::shard)), so a shard left behind by
//! a panic is as consistent as one left behind by a return.
//!
//! The bulk operations (`invalidate_if`, `purge_expired`, `for_each`,
//! `stats`) hold one shard at a time, so their waiters wait for one shard's
//! worth of work, never the whole cache's.

/// A shard's lock.
pub(crate) type ShardLock<T> = parking_lot::Mutex<T>;

/// Its guard.
pub(crate) type ShardGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread;

    use super::*;

    #[test]
    fn the_lock_excludes_and_waiters_make_progress() {
        // More threads than cores, so that holders are preempted while
        // others wait.
        let counter = Arc::new(ShardLock::new(0_u64));
        let threads = 8;
        let rounds = 20_000;
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let counter = Arc::clone(&counter);
                thread::spawn(move || {
                    for _ in 0..rounds {
                        let mut guard = counter.lock();
                        // A read-modify-write split in two: a lost update
                        // would show if two threads were ever inside at once.
                        let seen = *guard;
                        std::hint::black_box(&seen);
                        *guard = seen + 1;
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread finished");
        }
        assert_eq!(*counter.lock(), threads * rounds);
    }

    /// The scheduler state of this process's thread named `name` (`R`
    /// running or runnable, `S` sleeping, ...), from `/proc`.
    #[cfg(target_os = "linux")]
    fn thread_state(name: &str) -> Option<char> {
        for task in std::fs::read_dir("/proc/self/task").ok()? {
            let dir = task.ok()?.path();
            if std::fs::read_to_string(dir.join("comm")).ok()?.trim_end() != name {
                continue;
            }
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            // `pid (comm) S ...`: the state follows the last parenthesis.
            return stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
        }
        None
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_waiter_sleeps_instead_of_spinning() {
        // The holder keeps the lock; a waiter that spins (or yields) stays
        // runnable the whole time and burns its core. One that parks shows
        // as sleeping. Waits on that condition, with a deadline.
        const NAME: &str = "shard-waiter";
        let lock = Arc::new(ShardLock::new(()));
        let held = lock.lock();
        let about_to_lock = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (lock, about_to_lock) = (Arc::clone(&lock), Arc::clone(&about_to_lock));
            thread::Builder::new()
                .name(NAME.to_owned())
                .spawn(move || {
                    about_to_lock.store(true, Ordering::SeqCst);
                    drop(lock.lock());
                })
                .expect("spawns")
        };
        while !about_to_lock.load(Ordering::SeqCst) {
            thread::yield_now();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        // Asleep on several looks in a row, so a waiter that spins and is
        // merely preempted at one look does not pass.
        let mut asleep_in_a_row = 0;
        while asleep_in_a_row < 20 {
            assert!(std::time::Instant::now() < deadline, "the waiter never went to sleep: it spins");
            if thread_state(NAME) == Some('S') {
                asleep_in_a_row += 1;
            } else {
                asleep_in_a_row = 0;
            }
            thread::sleep(std::time::Duration::from_millis(5));
        }
        drop(held);
        waiter.join().expect("the waiter got the lock");
    }
}
