//! The freshness policy: how an entry's age decides what a read gets.
//!
//! Three windows, each measured from the entry's `fetched_at`. Each read
//! serves up to the end of its own window, and no further:
//!
//! | age of the entry                                   | [`Cache::get`], [`Cache::peek`]  | [`Cache::get_fail_safe`]         |
//! | -------------------------------------------------- | -------------------------------- | -------------------------------- |
//! | up to `ttl`                                        | the value, [`Freshness::Fresh`]  | the value, [`Freshness::Fresh`]  |
//! | past `ttl`, up to `ttl + stale_while_revalidate`   | the value, [`Freshness::Stale`]  | see the next row                 |
//! | past `ttl`, up to `ttl + stale_if_error`           | see the row above                | the value, [`Freshness::Stale`]  |
//! | past the read's own window                         | nothing: a miss                  | nothing: a miss                  |
//! | past both windows ([`Policy::retention`])          | nothing; the entry is dropped    | nothing; the entry is dropped    |
//!
//! So with `stale_if_error` shorter than `stale_while_revalidate` (zero,
//! say), [`Cache::get_fail_safe`] returns nothing that [`Cache::get`] would
//! only serve stale: it is asked once a load has failed, and a stale-if-error
//! window of zero means an error is wanted then, not old data. An entry is
//! kept until the longer of the two windows ends. An entry is stale, on every
//! read, exactly when its age is past `ttl` or it is marked stale
//! ([`Cache::mark_stale_before`]); a marked entry is still served, dropped
//! and aged by the table above, only never called fresh.
//!
//! The caller decides what "stale" triggers (the positions service starts one
//! background refresh); the cache only reports it.
//!
//! [`Cache::get`]: crate::Cache::get
//! [`Cache::get_fail_safe`]: crate::Cache::get_fail_safe
//! [`Cache::mark_stale_before`]: crate::Cache::mark_stale_before
//! [`Cache::peek`]: crate::Cache::peek

use std::time::Duration;

use crate::clock::duration_nanos;

/// How long entries stay fresh, and how long past that they may still be
/// served.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cache_core::Policy;
///
/// let policy = Policy::new(Duration::from_secs(900))
///     .stale_while_revalidate(Duration::from_secs(3600))
///     .stale_if_error(Duration::from_secs(86_400));
/// assert_eq!(policy.retention(), Duration::from_secs(900 + 86_400));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    ttl: Duration,
    stale_while_revalidate: Duration,
    stale_if_error: Duration,
}

impl Policy {
    /// A policy whose entries are fresh for `ttl` and never served stale.
    pub const fn new(ttl: Duration) -> Self {
        Self { ttl, stale_while_revalidate: Duration::ZERO, stale_if_error: Duration::ZERO }
    }

    /// A policy under which entries never go stale: the cache is a plain LRU.
    pub const fn never_stale() -> Self {
        Self::new(Duration::MAX)
    }

    /// Sets how long past the TTL [`Cache::get`](crate::Cache::get) still
    /// returns an entry, marked stale.
    #[must_use]
    pub const fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.stale_while_revalidate = window;
        self
    }

    /// Sets how long past the TTL
    /// [`Cache::get_fail_safe`](crate::Cache::get_fail_safe) still returns an
    /// entry, for use when a fresh load has failed. It bounds that read alone:
    /// with a window shorter than
    /// [`stale_while_revalidate`](Self::stale_while_revalidate), zero
    /// included, `get_fail_safe` returns nothing older than `ttl` plus this
    /// window even while `get` would still serve it stale.
    #[must_use]
    pub const fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = window;
        self
    }

    /// The fresh window.
    pub const fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The stale-while-revalidate window, counted from the end of the TTL.
    pub const fn stale_while_revalidate_window(&self) -> Duration {
        self.stale_while_revalidate
    }

    /// The stale-if-error window, counted from the end of the TTL.
    pub const fn stale_if_error_window(&self) -> Duration {
        self.stale_if_error
    }

    /// How long an entry is worth keeping at all: the TTL plus the longer of
    /// the two stale windows. A shared tier should expire entries after this.
    pub fn retention(&self) -> Duration {
        self.ttl.saturating_add(self.stale_while_revalidate.max(self.stale_if_error))
    }

    /// Classifies an entry of the given age.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_core::{Freshness, Policy};
    ///
    /// let policy = Policy::new(Duration::from_secs(10))
    ///     .stale_while_revalidate(Duration::from_secs(5));
    /// assert_eq!(policy.freshness(Duration::from_secs(10)), Freshness::Fresh);
    /// assert_eq!(policy.freshness(Duration::from_secs(11)), Freshness::Stale);
    /// assert_eq!(policy.freshness(Duration::from_secs(16)), Freshness::Expired);
    /// ```
    pub fn freshness(&self, age: Duration) -> Freshness {
        Windows::from(self).classify(duration_nanos(age))
    }
}

/// What an entry's age makes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Freshness {
    /// Within the TTL, and not marked stale.
    Fresh,
    /// Past the TTL (or marked stale by
    /// [`Cache::mark_stale_before`](crate::Cache::mark_stale_before)),
    /// within a stale window: servable, but due for a refresh.
    Stale,
    /// Past every window that [`Cache::get`](crate::Cache::get) honours. An
    /// entry can only be seen in this state through
    /// [`Policy::freshness`]; reads never return it.
    Expired,
}

impl Freshness {
    /// Whether the entry is past its TTL (or was marked stale): anything but
    /// [`Fresh`](Self::Fresh).
    pub const fn is_stale(self) -> bool {
        !matches!(self, Self::Fresh)
    }
}

/// The policy in nanoseconds, precomputed so that a lookup is three integer
/// comparisons.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Windows {
    /// End of the fresh window: `ttl`.
    pub(crate) fresh: u64,
    /// End of the window in which `get` serves stale data:
    /// `ttl + stale_while_revalidate`.
    pub(crate) serve_stale: u64,
    /// End of the window in which `get_fail_safe` serves stale data:
    /// `ttl + stale_if_error`.
    pub(crate) fail_safe: u64,
    /// End of every window: past it an entry is dead and may be dropped.
    pub(crate) retain: u64,
}

impl Windows {
    #[inline]
    pub(crate) fn classify(&self, age: u64) -> Freshness {
        if age <= self.fresh {
            Freshness::Fresh
        } else if age <= self.serve_stale {
            Freshness::Stale
        } else {
            Freshness::Expired
        }
    }
}

impl From<&Policy> for Windows {
    fn from(p: &Policy) -> Self {
        let fresh = duration_nanos(p.ttl);
        let serve_stale = fresh.saturating_add(duration_nanos(p.stale_while_revalidate));
        let fail_safe = fresh.saturating_add(duration_nanos(p.stale_if_error));
        Self { fresh, serve_stale, fail_safe, retain: serve_stale.max(fail_safe) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_edges_belong_to_the_earlier_window() {
        let p = Policy::new(Duration::from_secs(10))
            .stale_while_revalidate(Duration::from_secs(5))
            .stale_if_error(Duration::from_secs(20));
        let w = Windows::from(&p);
        let s = 1_000_000_000;
        assert_eq!(w.classify(0), Freshness::Fresh);
        assert_eq!(w.classify(10 * s), Freshness::Fresh);
        assert_eq!(w.classify(10 * s + 1), Freshness::Stale);
        assert_eq!(w.classify(15 * s), Freshness::Stale);
        assert_eq!(w.classify(15 * s + 1), Freshness::Expired);
        assert_eq!(w.fail_safe, 30 * s);
        assert_eq!(w.retain, 30 * s);
        assert_eq!(p.retention(), Duration::from_secs(30));
    }

    #[test]
    fn the_fail_safe_window_is_the_ttl_plus_stale_if_error_alone() {
        // Stale-while-revalidate longer than stale-if-error: the fail-safe
        // read must not borrow the longer window.
        let s = 1_000_000_000;
        let p = Policy::new(Duration::from_secs(10)).stale_while_revalidate(Duration::from_secs(60));
        let w = Windows::from(&p);
        assert_eq!((w.fresh, w.serve_stale, w.fail_safe, w.retain), (10 * s, 70 * s, 10 * s, 70 * s));
        assert_eq!(p.retention(), Duration::from_secs(70));

        let p = p.stale_if_error(Duration::from_secs(5));
        let w = Windows::from(&p);
        assert_eq!((w.serve_stale, w.fail_safe, w.retain), (70 * s, 15 * s, 70 * s));
    }

    #[test]
    fn huge_windows_saturate_instead_of_wrapping() {
        let p = Policy::never_stale().stale_while_revalidate(Duration::MAX);
        let w = Windows::from(&p);
        assert_eq!(w.retain, u64::MAX);
        assert_eq!(w.fail_safe, u64::MAX);
        assert_eq!(w.classify(u64::MAX), Freshness::Fresh);
        assert_eq!(p.retention(), Duration::MAX);
    }
}
