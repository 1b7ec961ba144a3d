//! Keeping the upstream's address and credentials out of what clients and
//! logs see.
//!
//! Two tools. [`without_userinfo`] splits a base URL's credentials from
//! the rest, so that what the source keeps and shows (in logs, `Debug`
//! output and start-up errors) never holds them. [`Scrub`] knows the
//! upstream's host, port and credentials, and removes them from error text
//! that came from somewhere else (the HTTP client, the TLS library): a
//! certificate error names the host it expected, a DNS error may too. An
//! error body names the failure class, never where the upstream is.
//!
//! What it is not: a URL parser. `http::Uri` parses the URL; this only
//! decides what may be shown of it.

/// What a hidden part of a message is replaced with.
const MASK: &str = "upstream";

/// `url` without its user information (`user:password@`), and that user
/// information if there was any. Everything up to the **last** `@` of the
/// authority counts, so a password holding `@` is removed whole.
///
/// ```text
/// http://app:hunter2@analytics:9000/api  ->  (http://analytics:9000/api, Some("app:hunter2"))
/// ```
pub(crate) fn without_userinfo(url: &str) -> (String, Option<&str>) {
    let Some((scheme, rest)) = url.split_once("://") else { return (url.to_owned(), None) };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => (format!("{scheme}://{}{tail}", &authority[at + 1..]), Some(&authority[..at])),
        None => (url.to_owned(), None),
    }
}

/// The parts of an upstream's address no client may see, and the means to
/// remove them from any text.
#[derive(Clone)]
pub(crate) struct Scrub {
    /// Longest first, so that `host:port` goes before `host` alone.
    hidden: Vec<String>,
}

impl Scrub {
    /// Hides `host` (and `host:port`), `userinfo` and the password in it.
    /// (The credentials never reach the HTTP client, which is given the
    /// URL without them; hiding them too costs nothing.)
    pub(crate) fn new(host: &str, port: Option<u16>, userinfo: Option<&str>) -> Self {
        let mut hidden = vec![host.to_owned(), host.trim_start_matches('[').trim_end_matches(']').to_owned()];
        if let Some(port) = port {
            hidden.push(format!("{host}:{port}"));
        }
        if let Some(userinfo) = userinfo {
            hidden.push(userinfo.to_owned());
            hidden.extend(userinfo.split_once(':').map(|(_, password)| password.to_owned()));
        }
        hidden.retain(|h| !h.is_empty());
        hidden.sort_by_key(|h| std::cmp::Reverse(h.len()));
        hidden.dedup();
        Self { hidden }
    }

    /// `text` with every hidden part replaced by `upstream`, where it
    /// stands as a whole word: a host `api` is hidden in `connect to api:80`
    /// but leaves `rapid` alone.
    pub(crate) fn clean(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for hidden in &self.hidden {
            text = replace_words(&text, hidden, MASK);
        }
        text
    }
}

/// `text` with each occurrence of `word` that no name character (letter,
/// digit, `.`, `-`, `_`) touches replaced by `by`.
fn replace_words(text: &str, word: &str, by: &str) -> String {
    let is_name = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'));
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(word) {
        let before = if at > 0 { rest[..at].chars().next_back() } else { out.chars().next_back() };
        let after = rest[at + word.len()..].chars().next();
        out.push_str(&rest[..at]);
        if is_name(before) || is_name(after) {
            out.push_str(word);
        } else {
            out.push_str(by);
        }
        rest = &rest[at + word.len()..];
    }
    out.push_str(rest);
    out
}

impl std::fmt::Debug for Scrub {
    /// Says how much it hides, never what.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrub").field("hidden", &self.hidden.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_split_off() {
        assert_eq!(
            without_userinfo("http://app:hunter2@analytics:9000/api"),
            ("http://analytics:9000/api".to_owned(), Some("app:hunter2"))
        );
        assert_eq!(without_userinfo("https://p@ss:w@rd@h/x@y"), ("https://h/x@y".to_owned(), Some("p@ss:w@rd")));
        assert_eq!(
            without_userinfo("http://h:1/a@b"),
            ("http://h:1/a@b".to_owned(), None),
            "an @ in the path is not userinfo"
        );
        assert_eq!(without_userinfo("http://token@h"), ("http://h".to_owned(), Some("token")));
        assert_eq!(without_userinfo("not a url"), ("not a url".to_owned(), None));
    }

    #[test]
    fn scrub_hides_the_address_and_the_credentials() {
        let scrub = Scrub::new("analytics.internal", Some(9000), Some("app:hunter2"));
        assert_eq!(
            scrub
                .clean("invalid certificate for analytics.internal; connect to analytics.internal:9000 as app:hunter2"),
            "invalid certificate for upstream; connect to upstream as upstream"
        );
        assert_eq!(scrub.clean("Connection refused (os error 111)"), "Connection refused (os error 111)");
        let short = Scrub::new("api", Some(80), Some("a:pw"));
        assert_eq!(
            short.clean("rapid api: api:80 said pw, not pwned (a.api-x)"),
            "rapid upstream: upstream said upstream, not pwned (a.api-x)"
        );
        assert!(!format!("{scrub:?}").contains("hunter2"));
    }
}
