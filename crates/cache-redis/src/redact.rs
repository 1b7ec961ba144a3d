//! Keeping the Redis password out of everything the tier prints: URLs shown
//! in logs and `Debug` output, and error messages.
//!
//! Two tools, used together. [`redact_url`] rewrites a URL as text, so it
//! works on URLs that do not even parse; it errs on the side of hiding too
//! much. [`Secrets`] holds the password itself and scrubs it from any
//! message that came from somewhere else (the Redis client, the pool),
//! which is the only way to be sure about text this crate did not write.
//!
//! What it is not: a URL parser. The Redis client parses the URL; this only
//! decides what may be shown of it.

use std::fmt;

/// What a hidden part of a URL or message is replaced with.
const MASK: &str = "***";

/// Query parameters that carry a password in `redis+unix://` URLs.
const SECRET_PARAMS: [&str; 2] = ["pass", "password"];

/// `url` with its password replaced by `***`.
///
/// - `redis://user:pw@host:6379/0` becomes `redis://user:***@host:6379/0`;
/// - `redis://:pw@host` becomes `redis://:***@host`;
/// - user information without a `:` (`redis://secret@host`) is hidden
///   whole, because people write a bare password there as often as a user
///   name;
/// - `pass=` and `password=` query parameters are hidden;
/// - everything up to the **last** `@` counts as user information, so a
///   password containing `@` or `/` is hidden whole even where a URL parser
///   would split it elsewhere.
pub(crate) fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let (userinfo, after) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let mut out = String::with_capacity(url.len());
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    if let Some(userinfo) = userinfo {
        match userinfo.split_once(':') {
            Some((user, _password)) => {
                out.push_str(user);
                out.push(':');
                out.push_str(MASK);
            }
            None => out.push_str(MASK),
        }
        out.push('@');
    }
    match after.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            out.push_str(&redact_query(query));
        }
        None => out.push_str(after),
    }
    out
}

fn redact_query(query: &str) -> String {
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _value)) if SECRET_PARAMS.contains(&name.to_ascii_lowercase().as_str()) => {
                format!("{name}={MASK}")
            }
            _ => pair.to_owned(),
        })
        .collect();
    pairs.join("&")
}

/// The password of a Redis URL, in every spelling in which it might turn up
/// in a message, kept only to be scrubbed out of messages.
///
/// Its `Debug` output shows how many spellings it holds, never them.
#[derive(Clone, Default)]
pub(crate) struct Secrets {
    spellings: Vec<String>,
}

impl Secrets {
    /// Collects the secrets of `url`: the password as written (possibly
    /// percent-encoded) and as decoded by the client (`decoded`).
    pub(crate) fn new(url: &str, decoded: Option<&str>) -> Self {
        let mut spellings: Vec<String> = Vec::new();
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        if let Some(at) = rest.rfind('@') {
            let userinfo = &rest[..at];
            // As in `redact_url`: without a `:`, the whole user information
            // may be a password.
            let raw = userinfo.split_once(':').map_or(userinfo, |(_, password)| password);
            spellings.push(raw.to_owned());
        }
        if let Some((_, query)) = rest.split_once('?') {
            for pair in query.split('&') {
                if let Some((name, value)) = pair.split_once('=')
                    && SECRET_PARAMS.contains(&name.to_ascii_lowercase().as_str())
                {
                    spellings.push(value.to_owned());
                }
            }
        }
        spellings.extend(decoded.map(str::to_owned));
        spellings.retain(|s| !s.is_empty());
        // Longest first, so that a spelling that contains another is
        // replaced whole rather than leaving its remainder behind.
        spellings.sort_by_key(|s| std::cmp::Reverse(s.len()));
        spellings.dedup();
        Self { spellings }
    }

    /// Adds `other`'s spellings (a cluster has one URL per seed).
    pub(crate) fn extend(&mut self, other: Self) {
        self.spellings.extend(other.spellings);
        self.spellings.sort_by_key(|s| std::cmp::Reverse(s.len()));
        self.spellings.dedup();
    }

    /// `message` with every spelling of the password replaced by `***`.
    pub(crate) fn scrub(&self, message: impl fmt::Display) -> String {
        let mut text = message.to_string();
        for secret in &self.spellings {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), MASK);
            }
        }
        text
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} hidden)", self.spellings.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_and_the_rest_is_kept() {
        let cases = [
            ("redis://user:hunter2@host:6379/0", "redis://user:***@host:6379/0"),
            ("redis://:hunter2@127.0.0.1:6379", "redis://:***@127.0.0.1:6379"),
            ("redis://127.0.0.1:6379/2", "redis://127.0.0.1:6379/2"),
            ("redis://host", "redis://host"),
            ("rediss://u:p%40ss@host:6380/?protocol=resp3", "rediss://u:***@host:6380/?protocol=resp3"),
            ("redis://hunter2@host", "redis://***@host"),
            ("redis://:pa@ss/w:rd@host:1/0", "redis://:***@host:1/0"),
            ("redis+unix:///run/redis.sock?db=1&pass=hunter2", "redis+unix:///run/redis.sock?db=1&pass=***"),
            ("unix:///run/redis.sock?PASSWORD=hunter2&user=me", "unix:///run/redis.sock?PASSWORD=***&user=me"),
            ("user:hunter2@host:6379", "user:***@host:6379"),
            ("localhost:6379", "localhost:6379"),
            ("", ""),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_url(url), expected, "{url}");
        }
    }

    #[test]
    fn secrets_are_scrubbed_in_every_spelling() {
        let secrets = Secrets::new("redis://me:p%40ss@host:6379", Some("p@ss"));
        assert_eq!(secrets.scrub("auth p@ss failed, url had p%40ss"), "auth *** failed, url had ***");
        assert_eq!(format!("{secrets:?}"), "Secrets(2 hidden)");

        let query = Secrets::new("redis+unix:///sock?pass=hunter2", Some("hunter2"));
        assert_eq!(query.scrub("no hunter2 here"), "no *** here");

        let none = Secrets::new("redis://host:6379", None);
        assert_eq!(none.scrub("connection refused"), "connection refused");
    }

    #[test]
    fn a_longer_spelling_is_replaced_whole() {
        let secrets = Secrets::new("redis://:abc%2Fdef@host", Some("abc/def"));
        assert_eq!(secrets.scrub("x abc%2Fdef y abc/def"), "x *** y ***");
    }
}
