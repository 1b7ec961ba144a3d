//! The lock around each shard: a spin lock that yields.
//!
//! A shard's critical sections are a hash probe and a few pointer updates:
//! tens of nanoseconds, and they never block or allocate beyond the map's
//! own growth. For sections that short, the cost that matters is the lock's
//! own atomic operations. `std::sync::Mutex` takes one read-modify-write to
//! lock and another to unlock (it must learn whether anyone sleeps); a spin
//! lock unlocks with a plain store. On the benchmark machine that second
//! atomic is about 5 ns, a third of a whole cache hit (`docs/benchmarks.md`).
//!
//! The price of spinning is paid only under contention: a waiter spins on a
//! read-only load (no cache-line traffic), and every 64 spins it yields its
//! core, so that a lock holder preempted on the same core gets to run and
//! finish. The bulk operations (`invalidate_if`, `purge_expired`,
//! `for_each`) hold one shard at a time, so their waiters wait for one
//! shard's worth of work, not the whole cache's.

use std::cell::Cell;

/// A shard's lock.
pub(crate) type ShardLock<T> = spin::mutex::SpinMutex<T, SpinThenYield>;

/// Its guard.
pub(crate) type ShardGuard<'a, T> = spin::mutex::SpinMutexGuard<'a, T, SpinThenYield>;

/// Spins with the CPU's spin-wait hint, yielding the thread every 64 spins.
#[derive(Debug)]
pub(crate) struct SpinThenYield;

const SPINS_PER_YIELD: u32 = 64;

impl spin::RelaxStrategy for SpinThenYield {
    #[inline]
    fn relax() {
        thread_local! {
            static SPINS: Cell<u32> = const { Cell::new(0) };
        }
        let spins = SPINS.with(|s| {
            let n = s.get().wrapping_add(1);
            s.set(n);
            n
        });
        if spins.is_multiple_of(SPINS_PER_YIELD) {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::thread;

    use super::*;

    #[test]
    fn the_lock_excludes_and_waiters_make_progress() {
        // More threads than cores, so that holders are preempted while
        // others wait: the yield must let every thread finish.
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
}
