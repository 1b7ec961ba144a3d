//! The two text formats `GET /metrics` answers in, and the choice between
//! them from a scraper's `Accept` header.
//!
//! Prometheus asks for [`OpenMetrics`][OpenMetrics] first (`Accept:
//! application/openmetrics-text;version=1.0.0,...;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1`)
//! and gets it; anything else (`curl`, `promtool check metrics` fed by
//! `curl`, an older scraper, no `Accept` at all) gets the classic Prometheus
//! text format 0.0.4, the one every tool reads. `OpenMetrics` is given only to
//! a client that names it, never for a wildcard: a client that accepts
//! anything is best served by the format everything parses.
//!
//! [OpenMetrics]: https://prometheus.io/docs/specs/om/open_metrics_spec/

/// The content type of the classic Prometheus text format, version 0.0.4.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The content type of `OpenMetrics` text 1.0.0.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A text exposition format.
///
/// # Examples
///
/// ```
/// use telemetry::Format;
///
/// // What Prometheus sends.
/// let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
///                   text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
/// // curl, a browser, promtool's users.
/// assert_eq!(Format::negotiate(None), Format::Text);
/// assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
/// assert_eq!(Format::Text.content_type(), "text/plain; version=0.0.4; charset=utf-8");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `OpenMetrics` text 1.0.0: counters described under their family name
    /// (without `_total`), `# EOF` at the end.
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4: counters described under
    /// their `_total` sample name, no `# EOF`.
    Text,
}

impl Format {
    /// The format to answer a request whose `Accept` header is `accept`:
    /// [`Format::OpenMetrics`] when the header names
    /// `application/openmetrics-text` with a quality above zero and at least
    /// that of any range `text/plain` matches (`text/plain`, `text/*`,
    /// `*/*`); [`Format::Text`] otherwise, including when there is no header
    /// or it cannot be read.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else { return Self::Text };
        let mut openmetrics: f32 = 0.0;
        let mut text: f32 = 0.0;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media_type = parts.next().unwrap_or_default().to_ascii_lowercase();
            let quality = parts
                .filter_map(|p| p.split_once('='))
                .find(|(key, _)| key.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, q)| q.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q)))
                // A range with an unreadable quality is ignored, as if absent.
                .unwrap_or(0.0);
            match media_type.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(quality),
                "text/plain" | "text/*" | "*/*" => text = text.max(quality),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text { Self::OpenMetrics } else { Self::Text }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => CONTENT_TYPE,
            Self::Text => TEXT_CONTENT_TYPE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMETHEUS_2: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    #[test]
    fn prometheus_gets_openmetrics() {
        assert_eq!(Format::negotiate(Some(PROMETHEUS_2)), Format::OpenMetrics);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; version=1.0.0; charset=utf-8")),
            Format::OpenMetrics
        );
        assert_eq!(Format::negotiate(Some("Application/OpenMetrics-Text")), Format::OpenMetrics);
    }

    #[test]
    fn everything_else_gets_the_classic_text_format() {
        for accept in [
            None,
            Some(""),
            Some("*/*"),
            Some("text/plain"),
            Some("text/plain;version=0.0.4"),
            Some("application/json"),
            Some("application/openmetrics-text;q=0"),
            Some("application/openmetrics-text;q=0.5,text/plain"),
            Some("application/openmetrics-text;q=abc"),
            Some("text/html,application/xhtml+xml,*/*;q=0.8"),
        ] {
            assert_eq!(Format::negotiate(accept), Format::Text, "{accept:?}");
        }
    }

    #[test]
    fn a_tie_goes_to_openmetrics() {
        assert_eq!(Format::negotiate(Some("text/plain, application/openmetrics-text")), Format::OpenMetrics);
    }

    #[test]
    fn content_types() {
        assert_eq!(Format::OpenMetrics.content_type(), "application/openmetrics-text; version=1.0.0; charset=utf-8");
        assert_eq!(Format::Text.content_type(), "text/plain; version=0.0.4; charset=utf-8");
    }
}
