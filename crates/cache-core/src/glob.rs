//! Glob-style key patterns with Redis's `MATCH` semantics.
//!
//! The same pattern string must select the same keys in the memory tier and
//! in Redis, so this follows Redis's `stringmatch` rules, byte by byte:
//!
//! - `*` matches any run of bytes, including none;
//! - `?` matches exactly one byte;
//! - `[abc]`, `[a-z]` and `[^a-z]` match one byte in (or not in) a set;
//! - `\x` matches `x` literally, inside or outside a set.
//!
//! Unlike Redis, a pattern with an unclosed `[` or a trailing `\` is refused
//! instead of being read in some lenient way, because a pattern that deletes
//! is better rejected than guessed at. Use [`escape`] on any caller-supplied
//! part of a pattern.

use std::fmt;

/// A parsed glob pattern.
///
/// # Examples
///
/// ```
/// use cache_core::glob::Pattern;
///
/// let p = Pattern::new("wallet:0xab*").unwrap();
/// assert!(p.matches("wallet:0xab12"));
/// assert!(!p.matches("wallet:0xcd12"));
///
/// let p = Pattern::new("user:[0-9]?").unwrap();
/// assert!(p.matches("user:7a"));
/// assert!(!p.matches("user:x1"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Byte(u8),
    AnyByte,
    AnyRun,
    Class { negated: bool, ranges: Vec<(u8, u8)> },
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pattern: String,
    reason: &'static str,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid pattern {:?}: {}", self.pattern, self.reason)
    }
}

impl std::error::Error for PatternError {}

impl Pattern {
    /// Parses `pattern`.
    ///
    /// # Errors
    ///
    /// A [`PatternError`] if a `[` is never closed or the pattern ends in an
    /// unescaped `\`.
    pub fn new(pattern: &str) -> Result<Self, PatternError> {
        let error = |reason| PatternError { pattern: pattern.to_owned(), reason };
        let bytes = pattern.as_bytes();
        let mut tokens = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let token = match bytes[i] {
                b'*' => {
                    // Consecutive stars mean the same as one.
                    if tokens.last() == Some(&Token::AnyRun) {
                        i += 1;
                        continue;
                    }
                    Token::AnyRun
                }
                b'?' => Token::AnyByte,
                b'\\' => {
                    i += 1;
                    Token::Byte(*bytes.get(i).ok_or_else(|| error("ends in an unescaped \\"))?)
                }
                b'[' => {
                    let (token, end) = parse_class(bytes, i + 1).ok_or_else(|| error("a [ is never closed"))?;
                    i = end;
                    token
                }
                b => Token::Byte(b),
            };
            tokens.push(token);
            i += 1;
        }
        Ok(Self { source: pattern.to_owned(), tokens })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern has no wildcard, so that it matches exactly one
    /// string.
    pub fn is_literal(&self) -> bool {
        self.tokens.iter().all(|t| matches!(t, Token::Byte(_)))
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        self.matches_bytes(text.as_bytes())
    }

    /// Whether `text` matches the whole pattern, byte by byte.
    pub fn matches_bytes(&self, text: &[u8]) -> bool {
        // Iterative matching with one backtrack point: on a mismatch, let the
        // most recent `*` swallow one more byte. Linear in practice and never
        // exponential, however many stars the pattern has.
        let (mut p, mut t) = (0, 0);
        let mut backtrack: Option<(usize, usize)> = None;
        while t < text.len() {
            match self.tokens.get(p) {
                Some(Token::AnyRun) => {
                    backtrack = Some((p, t));
                    p += 1;
                }
                Some(token) if token.matches_one(text[t]) => {
                    p += 1;
                    t += 1;
                }
                _ => match backtrack {
                    Some((star, from)) => {
                        p = star + 1;
                        t = from + 1;
                        backtrack = Some((star, from + 1));
                    }
                    None => return false,
                },
            }
        }
        self.tokens[p..].iter().all(|t| *t == Token::AnyRun)
    }
}

impl Token {
    #[inline]
    fn matches_one(&self, b: u8) -> bool {
        match self {
            Token::Byte(x) => *x == b,
            Token::AnyByte => true,
            Token::AnyRun => false,
            Token::Class { negated, ranges } => ranges.iter().any(|&(lo, hi)| lo <= b && b <= hi) != *negated,
        }
    }
}

/// Parses a set starting just after its `[`; returns the token and the index
/// of the closing `]`.
fn parse_class(bytes: &[u8], mut i: usize) -> Option<(Token, usize)> {
    let negated = bytes.get(i) == Some(&b'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        let lo = match *bytes.get(i)? {
            b']' => return Some((Token::Class { negated, ranges }, i)),
            b'\\' => {
                i += 1;
                *bytes.get(i)?
            }
            b => b,
        };
        // `a-z` is a range unless the `-` is the last thing before `]`.
        if bytes.get(i + 1) == Some(&b'-') && bytes.get(i + 2).is_some_and(|&b| b != b']') {
            i += 2;
            let hi = match bytes[i] {
                b'\\' => {
                    i += 1;
                    *bytes.get(i)?
                }
                b => b,
            };
            // Redis accepts a reversed range such as `z-a`; so do we.
            ranges.push((lo.min(hi), lo.max(hi)));
        } else {
            ranges.push((lo, lo));
        }
        i += 1;
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.source).finish()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Escapes every byte of `text` that means something in a pattern, so that
/// the result matches `text` and nothing else.
///
/// # Examples
///
/// ```
/// use cache_core::glob::{Pattern, escape};
///
/// let wallet = "we*rd[1]";
/// let pattern = Pattern::new(&format!("wallet:{}*", escape(wallet))).unwrap();
/// assert!(pattern.matches("wallet:we*rd[1]:positions"));
/// assert!(!pattern.matches("wallet:weird1:positions"));
/// ```
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Pattern::new(pattern).expect("valid pattern").matches(text)
    }

    #[test]
    fn stars_and_question_marks() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("a*", "a"));
        assert!(m("a*c", "abbbc"));
        assert!(!m("a*c", "abbbd"));
        assert!(m("*a*b*", "xxaxxbxx"));
        assert!(!m("*a*b*", "xxbxxaxx"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("a**b", "ab"));
        assert!(!m("abc", "abcd"));
        assert!(!m("", "a"));
        assert!(m("", ""));
    }

    #[test]
    fn classes_ranges_and_negation() {
        assert!(m("[abc]", "b"));
        assert!(!m("[abc]", "d"));
        assert!(m("[a-c]x", "bx"));
        assert!(m("[^a-c]x", "dx"));
        assert!(!m("[^a-c]x", "ax"));
        assert!(m("[z-a]", "m"), "reversed ranges work as in Redis");
        assert!(m("[a-]", "-"), "a trailing - is literal");
        assert!(m("[\\]]", "]"));
        assert!(!m("[]", "a"), "an empty set matches nothing, as in Redis");
        assert!(!m("[]", ""));
    }

    #[test]
    fn escapes_are_literal() {
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("\\?", "?"));
        assert!(!m("\\?", "x"));
    }

    #[test]
    fn malformed_patterns_are_refused_with_the_pattern_named() {
        let err = Pattern::new("wallet:[abc").unwrap_err();
        assert_eq!(err.to_string(), "invalid pattern \"wallet:[abc\": a [ is never closed");
        let err = Pattern::new("tail\\").unwrap_err();
        assert!(err.to_string().contains("unescaped"), "{err}");
    }

    #[test]
    fn escape_round_trips_every_special_character() {
        let nasty = "a*b?c[d]e\\f^g-h";
        let p = Pattern::new(&escape(nasty)).expect("escaped text is a valid pattern");
        assert!(p.is_literal());
        assert!(p.matches(nasty));
        assert!(!p.matches("a*b?c[d]e\\f^g-"));
        assert!(!p.matches("aXb?c[d]e\\f^g-h"));
    }

    #[test]
    fn many_stars_do_not_explode() {
        let p = Pattern::new(&"*a".repeat(30)).expect("valid");
        let text = "a".repeat(29) + "b";
        assert!(!p.matches(&text));
    }
}
