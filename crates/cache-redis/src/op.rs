//! The names of the things the tier asks Redis to do, for error messages and
//! metric labels.
//!
//! This is a label, not a command builder: the commands themselves are
//! written where they are sent, in the tier.

use std::fmt;

/// A Redis operation, as named in [`Error`](crate::Error) messages and
/// reported to an [`Observer`](crate::Observer).
///
/// # Examples
///
/// ```
/// use cache_redis::Op;
///
/// assert_eq!(Op::Scan.as_str(), "scan");
/// assert_eq!(Op::Connect.to_string(), "connect");
/// assert_eq!(Op::ALL.len(), 6);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Reading one entry (`GET`).
    Get,
    /// Writing one entry with its expiry (`SET … PX`), also conditionally
    /// (the `set_if_newer` script), and taking a load lock (`SET … NX`).
    Set,
    /// Dropping entries (`UNLINK`): one by id (also with a tombstone, the
    /// `delete_with_tombstone` script), or the last page of a pattern
    /// deletion; and releasing a load lock.
    Delete,
    /// One page of a pattern deletion (`SCAN`, pipelined with the `UNLINK`
    /// of the page before).
    Scan,
    /// Getting a connection from the pool, which may mean opening one.
    Connect,
    /// A round trip that only checks that Redis answers (`PING`).
    Ping,
}

impl Op {
    /// Every operation, in declaration order.
    pub const ALL: [Self; 6] = [Self::Get, Self::Set, Self::Delete, Self::Scan, Self::Connect, Self::Ping];

    /// The operation in lower case, fit for a metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Set => "set",
            Self::Delete => "delete",
            Self::Scan => "scan",
            Self::Connect => "connect",
            Self::Ping => "ping",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_lower_case_words() {
        let mut labels: Vec<&str> = Op::ALL.iter().map(|op| op.as_str()).collect();
        assert!(labels.iter().all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_lowercase())));
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Op::ALL.len());
    }
}
