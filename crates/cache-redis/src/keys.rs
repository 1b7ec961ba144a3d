//! Where things live in Redis, and the `MATCH` pattern that selects entries
//! by id. For a namespace `ns` and an id `w` (the service passes canonical
//! wallet strings; used verbatim):
//!
//! ```text
//! ns:positions:v2:{w}   the entry (an envelope)
//! ns:tombstone:v2:{w}   when `w` was last deleted (see `conditional`)
//! ns:loadlock:v2:{w}    who is loading `w` now (see `load_lock`)
//! ```
//!
//! The namespace keeps several deployments (or a test) apart in one Redis;
//! `v2` is the version of this key layout, independent of the value
//! envelope's version, and changes only if the layout does. `v1` had no
//! braces (`ns:positions:v1:w`); a `v2` replica never reads those keys, so
//! after an upgrade they are misses, and they expire on their own.
//!
//! **One hash slot per id.** The id sits in a hash tag (`{…}`), so that the
//! three keys of one id hash to the same slot: the scripts that touch an
//! entry and its tombstone together then stay valid on a Redis Cluster,
//! which runs a script only if all its keys share a slot. This holds as long
//! as the namespace has no `{` (Redis takes the first `{` of a key as the
//! start of its tag) and the id is not empty (an empty tag means "hash the
//! whole key"); neither happens with the service's namespaces and wallets.
//! Glob characters are not special in a key, and `{` and `}` are not glob
//! characters, so patterns need no more escaping than before.
//!
//! The namespace is configuration, not a pattern, so it is escaped before
//! it goes into a `MATCH` pattern; the id pattern is the caller's
//! deliberate glob and is checked with the same rules Redis applies
//! ([`cache_core::glob`]), so that what the memory tier and Redis select
//! agree.

use cache_core::glob::{self, Pattern, PatternError};

/// The version of the key layout, in every key.
const VERSION: &str = "v2";

/// The key layout of one namespace.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// `{namespace}:positions:v2:{`
    entry: String,
    /// `{namespace}:tombstone:v2:{`
    tombstone: String,
    /// `{namespace}:loadlock:v2:{`
    load_lock: String,
    /// The entry prefix with every glob character escaped.
    match_prefix: String,
    /// The load-lock prefix with every glob character escaped.
    lock_match_prefix: String,
    /// `{namespace}:warm:v2`: the list of the wallets most in demand, for a
    /// replica that starts to fill its memory from.
    pub(crate) warm_list: String,
}

impl Keys {
    pub(crate) fn new(namespace: &str) -> Self {
        let prefix = |kind: &str| format!("{namespace}:{kind}:{VERSION}:{{");
        let entry = prefix("positions");
        let load_lock = prefix("loadlock");
        let (match_prefix, lock_match_prefix) = (glob::escape(&entry), glob::escape(&load_lock));
        let warm_list = format!("{namespace}:warm:{VERSION}");
        Self { tombstone: prefix("tombstone"), load_lock, entry, match_prefix, lock_match_prefix, warm_list }
    }

    /// The key of the entry for `id`.
    pub(crate) fn key(&self, id: &str) -> String {
        tagged(&self.entry, id)
    }

    /// The key of the tombstone of `id`.
    pub(crate) fn tombstone(&self, id: &str) -> String {
        tagged(&self.tombstone, id)
    }

    /// The key of the load lock of `id`.
    pub(crate) fn load_lock(&self, id: &str) -> String {
        tagged(&self.load_lock, id)
    }

    /// The `MATCH` pattern for the entry keys of every id that `id_pattern`
    /// matches: the escaped prefix, the id pattern, the closing brace. Every
    /// entry key ends with the one `}` after its id, so the pattern matches
    /// a key exactly when `id_pattern` matches its id. Tombstones and load
    /// locks are never selected.
    pub(crate) fn pattern(&self, id_pattern: &str) -> Result<String, PatternError> {
        Pattern::new(id_pattern)?;
        Ok(format!("{}{id_pattern}}}", self.match_prefix))
    }

    /// As [`pattern`](Self::pattern), for the load-lock keys.
    pub(crate) fn load_lock_pattern(&self, id_pattern: &str) -> Result<String, PatternError> {
        Pattern::new(id_pattern)?;
        Ok(format!("{}{id_pattern}}}", self.lock_match_prefix))
    }

    /// The id in an entry or load-lock key of this namespace (what lies
    /// between the prefix and the final `}`), or `None` for any other key.
    pub(crate) fn id_of<'k>(&self, key: &'k [u8]) -> Option<&'k str> {
        let inner = [&self.entry, &self.load_lock]
            .into_iter()
            .find_map(|prefix| key.strip_prefix(prefix.as_bytes()))?
            .strip_suffix(b"}")?;
        std::str::from_utf8(inner).ok()
    }
}

/// `prefix`, `id`, `}`.
fn tagged(prefix: &str, id: &str) -> String {
    let mut key = String::with_capacity(prefix.len() + id.len() + 1);
    key.push_str(prefix);
    key.push_str(id);
    key.push('}');
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_layout() {
        let keys = Keys::new("poscache");
        assert_eq!(keys.key("0xabc"), "poscache:positions:v2:{0xabc}");
        assert_eq!(keys.tombstone("0xabc"), "poscache:tombstone:v2:{0xabc}");
        assert_eq!(keys.load_lock("0xabc"), "poscache:loadlock:v2:{0xabc}");
        assert_eq!(keys.key(""), "poscache:positions:v2:{}");
        assert_eq!(Keys::new("a:b").key("x*y"), "a:b:positions:v2:{x*y}", "ids are verbatim");
    }

    /// The hash tag as Redis Cluster computes it: what lies between the
    /// first `{` and the first `}` after it, if that is not empty.
    fn hash_tag(key: &str) -> &str {
        key.find('{')
            .and_then(|open| {
                let close = open + 1 + key[open + 1..].find('}')?;
                (close > open + 1).then(|| &key[open + 1..close])
            })
            .unwrap_or(key)
    }

    #[test]
    fn the_keys_of_one_id_share_a_hash_slot() {
        for namespace in ["poscache", "we[ir]d*ns", "a:b"] {
            let keys = Keys::new(namespace);
            for id in ["0x52908400098527886e0f7030069857d2e4169ee7", "x", "a}b"] {
                let key = keys.key(id);
                let tag = hash_tag(&key);
                assert_eq!(tag, hash_tag(&keys.tombstone(id)), "{namespace} {id}");
                assert_eq!(tag, hash_tag(&keys.load_lock(id)), "{namespace} {id}");
                assert_ne!(tag, key, "{namespace} {id}: a tag, not the whole key");
            }
        }
        assert_eq!(hash_tag(&Keys::new("poscache").key("0xabc")), "0xabc");
    }

    #[test]
    fn patterns_escape_the_namespace_and_keep_the_id_glob() {
        let keys = Keys::new("we[ir]d*ns");
        let pattern = keys.pattern("0xab*").unwrap();
        assert_eq!(pattern, r"we\[ir\]d\*ns:positions:v2:{0xab*}");

        let p = Pattern::new(&pattern).unwrap();
        assert!(p.matches("we[ir]d*ns:positions:v2:{0xab12}"));
        assert!(!p.matches("we[ir]d*ns:positions:v2:{0xcd12}"));
        assert!(!p.matches(&keys.tombstone("0xab12")));
        assert!(!p.matches(&keys.load_lock("0xab12")));
        for neighbour in ["weird-ns", "weirdXns", "weid-ns", "werdXns", "weidns"] {
            assert!(!p.matches(&Keys::new(neighbour).key("0xab12")), "{neighbour}");
        }
    }

    #[test]
    fn a_pattern_selects_the_same_ids_as_it_does_on_its_own() {
        let keys = Keys::new("poscache");
        let ids = ["", "a", "ab", "abc", "a}", "a}b", "b", "x*y", "a{b", "}"];
        for id_pattern in ["*", "a*", "a?", "a", "?", "a[}b]*", r"x\*y", "*}", "a}*", "[ab]"] {
            let alone = Pattern::new(id_pattern).unwrap();
            let in_key = Pattern::new(&keys.pattern(id_pattern).unwrap()).unwrap();
            for id in ids {
                assert_eq!(in_key.matches(&keys.key(id)), alone.matches(id), "{id_pattern} on {id}");
            }
        }
    }

    #[test]
    fn ids_are_read_back_from_entry_and_lock_keys_only() {
        let keys = Keys::new("a:b");
        for id in ["0xabc", "a}b", ""] {
            assert_eq!(keys.id_of(keys.key(id).as_bytes()), Some(id));
            assert_eq!(keys.id_of(keys.load_lock(id).as_bytes()), Some(id));
            assert_eq!(keys.id_of(keys.tombstone(id).as_bytes()), None);
            assert_eq!(Keys::new("a").id_of(keys.key(id).as_bytes()), None, "another namespace");
        }
        assert_eq!(keys.id_of(b"a:b:positions:v2:{0xabc"), None, "no closing brace");
        let lock = Pattern::new(&keys.load_lock_pattern("0xab*").unwrap()).unwrap();
        assert!(lock.matches(&keys.load_lock("0xab12")) && !lock.matches(&keys.key("0xab12")));
    }

    #[test]
    fn malformed_id_patterns_are_refused() {
        let keys = Keys::new("poscache");
        let error = keys.pattern("0x[ab").unwrap_err();
        assert_eq!(error.to_string(), "invalid pattern \"0x[ab\": a [ is never closed");
        assert!(keys.pattern("trailing\\").is_err());
    }
}
