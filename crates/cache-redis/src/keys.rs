//! Where an entry lives in Redis: `{namespace}:positions:v1:{id}`, and the
//! `MATCH` pattern that selects entries by id.
//!
//! The namespace keeps several deployments (or a test) apart in one Redis;
//! `v1` is the version of this key layout, independent of the value
//! envelope's version, and changes only if the layout does. The id is the
//! caller's (the service passes canonical wallet strings) and is used
//! verbatim.
//!
//! The namespace is configuration, not a pattern, so it is escaped before
//! it goes into a `MATCH` pattern; the id pattern is the caller's
//! deliberate glob and is checked with the same rules Redis applies
//! ([`cache_core::glob`]), so that what the memory tier and Redis select
//! agree.

use cache_core::glob::{self, Pattern, PatternError};

/// What follows the namespace in every key.
const LAYOUT: &str = "positions:v1";

/// The key layout of one namespace.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// `{namespace}:positions:v1:`
    prefix: String,
    /// The prefix with every glob character escaped.
    match_prefix: String,
}

impl Keys {
    pub(crate) fn new(namespace: &str) -> Self {
        let prefix = format!("{namespace}:{LAYOUT}:");
        let match_prefix = glob::escape(&prefix);
        Self { prefix, match_prefix }
    }

    /// The key of the entry for `id`.
    pub(crate) fn key(&self, id: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + id.len());
        key.push_str(&self.prefix);
        key.push_str(id);
        key
    }

    /// The `MATCH` pattern for the keys of every id that `id_pattern`
    /// matches.
    pub(crate) fn pattern(&self, id_pattern: &str) -> Result<String, PatternError> {
        Pattern::new(id_pattern)?;
        Ok(format!("{}{id_pattern}", self.match_prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_layout() {
        let keys = Keys::new("poscache");
        assert_eq!(keys.key("0xabc"), "poscache:positions:v1:0xabc");
        assert_eq!(keys.key(""), "poscache:positions:v1:");
        assert_eq!(Keys::new("a:b").key("x*y"), "a:b:positions:v1:x*y", "ids are verbatim");
    }

    #[test]
    fn patterns_escape_the_namespace_and_keep_the_id_glob() {
        let keys = Keys::new("we[ir]d*ns");
        let pattern = keys.pattern("0xab*").unwrap();
        assert_eq!(pattern, r"we\[ir\]d\*ns:positions:v1:0xab*");

        let p = Pattern::new(&pattern).unwrap();
        assert!(p.matches("we[ir]d*ns:positions:v1:0xab12"));
        assert!(!p.matches("we[ir]d*ns:positions:v1:0xcd12"));
        for neighbour in ["weird-ns", "weirdXns", "weid-ns", "werdXns", "weidns"] {
            assert!(!p.matches(&Keys::new(neighbour).key("0xab12")), "{neighbour}");
        }
    }

    #[test]
    fn malformed_id_patterns_are_refused() {
        let keys = Keys::new("poscache");
        let error = keys.pattern("0x[ab").unwrap_err();
        assert_eq!(error.to_string(), "invalid pattern \"0x[ab\": a [ is never closed");
        assert!(keys.pattern("trailing\\").is_err());
    }
}
