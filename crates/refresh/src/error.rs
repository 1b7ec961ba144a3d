//! Why a load gave no value: the crate's one error type.
//!
//! Every caller waiting on one flight gets a clone of the same error, so the
//! source's error is held in an [`Arc`] and cloning never needs `E: Clone`
//! (moka's `try_get_with` shares errors the same way). Mapping these to
//! HTTP statuses belongs to the service, not here.

use std::sync::Arc;
use std::time::Duration;

/// Why a [`Loader::load`](crate::Loader::load) gave no value.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use refresh::LoadError;
///
/// let error: LoadError<std::io::Error> = LoadError::Timeout(Duration::from_millis(5_000));
/// assert_eq!(error.to_string(), "source timed out after 5s");
///
/// // Clones share the source's error rather than copying it.
/// let failed = LoadError::Source(Arc::new("upstream answered 500"));
/// let (LoadError::Source(a), LoadError::Source(b)) = (failed.clone(), failed) else { unreachable!() };
/// assert!(Arc::ptr_eq(&a, &b));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum LoadError<E> {
    /// The source returned an error. The value it would have replaced, if
    /// any, is untouched.
    #[error("source failed: {0}")]
    Source(Arc<E>),
    /// The source took longer than the configured timeout (carried here);
    /// its call was cancelled.
    #[error("source timed out after {0:?}")]
    Timeout(Duration),
    /// Too many loads were already waiting for a permit, so this one was not
    /// started; trying again later may succeed.
    #[error("too many loads waiting for the source")]
    Overloaded,
    /// The load waited the configured queue timeout (carried here) for a
    /// permit and gave up, so the load function was never called; trying
    /// again later may succeed.
    #[error("no turn to call the source within {0:?}")]
    QueueTimeout(Duration),
    /// The load function panicked; this is its panic message.
    #[error("load function panicked: {0}")]
    Panicked(String),
    /// The loader is shutting down: it refused a new call, or gave up a load
    /// that had not finished by the drain deadline.
    #[error("loader is shutting down")]
    ShuttingDown,
}

// Written by hand: a derive would demand `E: Clone`, which the `Arc` makes
// unnecessary.
impl<E> Clone for LoadError<E> {
    fn clone(&self) -> Self {
        match self {
            Self::Source(error) => Self::Source(Arc::clone(error)),
            Self::Timeout(after) => Self::Timeout(*after),
            Self::Overloaded => Self::Overloaded,
            Self::QueueTimeout(waited) => Self::QueueTimeout(*waited),
            Self::Panicked(message) => Self::Panicked(message.clone()),
            Self::ShuttingDown => Self::ShuttingDown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that is neither `Clone` nor `Debug`-friendly on purpose.
    struct Opaque;

    impl std::fmt::Display for Opaque {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("ledger file \"trades.csv\" is unreadable")
        }
    }

    #[test]
    fn messages_are_lower_case_without_a_trailing_period() {
        let errors: [LoadError<Opaque>; 6] = [
            LoadError::Source(Arc::new(Opaque)),
            LoadError::Timeout(Duration::from_millis(1_500)),
            LoadError::Overloaded,
            LoadError::QueueTimeout(Duration::from_secs(1)),
            LoadError::Panicked("index out of bounds".to_owned()),
            LoadError::ShuttingDown,
        ];
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "source failed: ledger file \"trades.csv\" is unreadable",
                "source timed out after 1.5s",
                "too many loads waiting for the source",
                "no turn to call the source within 1s",
                "load function panicked: index out of bounds",
                "loader is shutting down",
            ]
        );
        for message in &messages {
            assert!(message.starts_with(|c: char| c.is_lowercase()) && !message.ends_with('.'), "{message}");
        }
    }

    #[test]
    fn clones_share_the_source_error() {
        let error = LoadError::Source(Arc::new(Opaque));
        let LoadError::Source(clone) = error.clone() else { panic!("a clone changed variant") };
        let LoadError::Source(original) = &error else { unreachable!() };
        assert!(Arc::ptr_eq(original, &clone));
        assert_eq!(Arc::strong_count(&clone), 2);
    }
}
