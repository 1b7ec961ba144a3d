//! The `http` source: positions from an upstream analytics service.
//!
//! `GET {base}/positions/{wallet}` answers a JSON object with `positions`
//! (objects with the API's field names) and optionally `computed_at`;
//! [`parse_body`] reads it tolerantly (`body.rs` says how), `404` means a
//! wallet with no positions.
//!
//! - `connect.rs`: the client, which tells a failure to connect from a
//!   failed TLS handshake;
//! - `tls.rs`: `https://` upstreams, rustls with the webpki roots or a
//!   private [`CaBundle`];
//! - `redact.rs`: keeping the upstream's address and credentials out of
//!   every message.
//!
//! Each request carries `X-Request-Id`, and `traceparent` and `tracestate`
//! when the client sent valid ones, of the request that started the load.
//!
//! A base URL may carry credentials (`http://user:password@host`): they are
//! sent as HTTP Basic authorization and kept nowhere else. Any other
//! status, a timeout, a connection or TLS failure, or a body that is not
//! positions is a [`SourceError`] naming the failure class and its cause,
//! never the URL or the host: error bodies go to anonymous clients. Nothing
//! here can panic on what the upstream sends.

mod body;
mod connect;
mod redact;
mod tls;

use std::time::Duration;

use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};

pub use self::body::parse_body;
use self::redact::Scrub;
pub(crate) use self::redact::without_userinfo;
pub use self::tls::{CaBundle, InvalidCaFile};
use super::{BoxFuture, Source, SourceError};
use crate::model::Positions;
use crate::request_context::RequestContext;
use crate::wallet::Wallet;

/// An upstream body larger than this is refused rather than buffered.
const MAX_BODY_BYTES: usize = 16 << 20;

/// Positions from an upstream service over HTTP or HTTPS.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use positions_api::source::http::HttpSource;
///
/// let source = HttpSource::new("https://app:hunter2@analytics.internal/api", Duration::from_secs(5))?;
/// // What logs may show: no credentials.
/// assert_eq!(source.base(), "https://analytics.internal/api");
/// assert!(!format!("{source:?}").contains("hunter2"));
/// # Ok::<(), positions_api::source::http::InvalidBaseUrl>(())
/// ```
#[derive(Clone)]
pub struct HttpSource {
    /// The base URL without credentials: safe for logs, not for clients.
    base: String,
    /// `Basic` credentials from the base URL, marked sensitive.
    authorization: Option<HeaderValue>,
    client: connect::UpstreamClient,
    timeout: Duration,
    scrub: Scrub,
}

/// Why an upstream base URL was refused. It shows the URL without
/// credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid upstream URL {url:?}: {reason}")]
pub struct InvalidBaseUrl {
    url: String,
    reason: String,
}

impl HttpSource {
    /// A source for the upstream at `base` (such as
    /// `http://analytics.internal:9000/api`), giving up on a request after
    /// `timeout`. An `https://` upstream's certificate must chain to one of
    /// the webpki (Mozilla) roots.
    ///
    /// # Errors
    ///
    /// [`InvalidBaseUrl`] if `base` is not an absolute `http://` or
    /// `https://` URL without a query.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, InvalidBaseUrl> {
        Self::build(base, timeout, None)
    }

    /// Like [`HttpSource::new`], for an `https://` upstream whose
    /// certificate chains to one of `ca`'s authorities, and to no other.
    ///
    /// # Errors
    ///
    /// [`InvalidBaseUrl`] as for [`HttpSource::new`], and if `base` is not
    /// `https://`.
    pub fn with_ca(base: &str, timeout: Duration, ca: &CaBundle) -> Result<Self, InvalidBaseUrl> {
        Self::build(base, timeout, Some(ca))
    }

    fn build(base: &str, timeout: Duration, ca: Option<&CaBundle>) -> Result<Self, InvalidBaseUrl> {
        let (shown, userinfo) = without_userinfo(base);
        let error = |reason: &str| InvalidBaseUrl { url: shown.clone(), reason: reason.to_owned() };
        let uri: Uri = shown.parse().map_err(|_| error("not a URL"))?;
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if ca.is_none() => {}
            Some("http") => return Err(error("a CA file (POSITIONS_SOURCE_CA_FILE) needs an https:// source")),
            _ => return Err(error("expected http(s)://host[:port][/path]")),
        }
        let Some(host) = uri.host().filter(|h| !h.is_empty()) else { return Err(error("no host")) };
        if uri.query().is_some() {
            return Err(error("a query string is not allowed"));
        }
        let authorization = userinfo.map(basic_authorization);
        let scrub = Scrub::new(host, uri.port_u16(), userinfo);
        let client = connect::client(timeout, ca).map_err(|e| error(&format!("TLS set-up failed: {e}")))?;
        Ok(Self { base: shown.trim_end_matches('/').to_owned(), authorization, client, timeout, scrub })
    }

    /// The base URL without credentials, for logs. Not for clients: it
    /// names an internal host.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url_for(&self, wallet: &Wallet) -> String {
        format!("{}/positions/{wallet}", self.base)
    }

    async fn fetch_url(&self, url: String) -> Result<Positions, SourceError> {
        let mut request = Request::get(url).body(Empty::new()).map_err(|e| self.transport(&e))?;
        if let Some(authorization) = &self.authorization {
            request.headers_mut().insert(AUTHORIZATION, authorization.clone());
        }
        // The request id and trace context of the request that started
        // this load (`crate::request_context` says how they get here).
        RequestContext::apply_current(request.headers_mut());
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| self.failed_request(&e))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_BODY_BYTES).collect().await.map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    SourceError::BadBody(format!("larger than {MAX_BODY_BYTES} bytes"))
                } else {
                    self.transport(&*e)
                }
            })?;
            Ok::<_, SourceError>((status, body.to_bytes()))
        };
        let (status, body) =
            tokio::time::timeout(self.timeout, exchange).await.map_err(|_| SourceError::Timeout(self.timeout))??;
        match status {
            StatusCode::NOT_FOUND => Ok(Positions::default()),
            s if s.is_success() => parse_body(&body).map_err(SourceError::BadBody),
            s => Err(SourceError::Status(s.as_u16())),
        }
    }

    /// A request that got no response: unreachable, a failed TLS
    /// handshake, or an exchange that broke off.
    fn failed_request(&self, error: &hyper_util::client::legacy::Error) -> SourceError {
        if let Some(tls) = tls::tls_failure(error) {
            SourceError::Tls(self.scrub.clean(&tls))
        } else if connect::is_tcp_failure(error) {
            SourceError::Unreachable(self.scrub.clean(&causes(error)))
        } else if error.is_connect() {
            // Connected, then the handshake broke off (the peer closed, or
            // answered something that is not TLS).
            SourceError::Tls(self.scrub.clean(&causes(error)))
        } else {
            self.transport(error)
        }
    }

    fn transport(&self, error: &(dyn std::error::Error + 'static)) -> SourceError {
        SourceError::Transport(self.scrub.clean(&causes(error)))
    }
}

impl Source for HttpSource {
    fn name(&self) -> &'static str {
        "http"
    }

    fn fetch<'a>(&'a self, wallet: &'a Wallet) -> BoxFuture<'a, Result<Positions, SourceError>> {
        Box::pin(self.fetch_url(self.url_for(wallet)))
    }
}

impl std::fmt::Debug for HttpSource {
    /// The base URL without credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSource")
            .field("base", &self.base)
            .field("authorization", &self.authorization.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// An error's causes on one line, the error itself left out where it only
/// names its kind (hyper-util's `client error (Connect)`).
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut next = if error.is::<hyper_util::client::legacy::Error>() { error.source() } else { Some(error) };
    while let Some(cause) = next {
        parts.push(cause.to_string());
        next = cause.source();
    }
    if parts.is_empty() { error.to_string() } else { parts.join(": ") }
}

/// The `Authorization` value for `userinfo` (`user:password`, sent as
/// written), marked sensitive so that it is never logged or indexed.
fn basic_authorization(userinfo: &str) -> HeaderValue {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut encoded = String::from("Basic ");
    for chunk in userinfo.as_bytes().chunks(3) {
        let bytes = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let triple = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]);
        for i in 0..4 {
            if i <= chunk.len() {
                encoded.push(char::from(ALPHABET[(triple >> (18 - 6 * i) & 0x3f) as usize]));
            } else {
                encoded.push('=');
            }
        }
    }
    let mut value = HeaderValue::from_str(&encoded).expect("base64 is a valid header value");
    value.set_sensitive(true);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked() {
        let t = Duration::from_secs(1);
        assert!(HttpSource::new("http://localhost:9000/api/", t).is_ok());
        assert!(HttpSource::new("https://example.com", t).is_ok(), "https is supported");
        for bad in ["localhost:9000", "ftp://x", "http://", "http://h/?q=1", "not a url"] {
            assert!(HttpSource::new(bad, t).is_err(), "{bad}");
        }
        let source = HttpSource::new("http://localhost:9000/api/", t).expect("valid");
        let wallet = Wallet::parse("0x52908400098527886e0f7030069857d2e4169ee7").expect("valid");
        assert_eq!(
            source.url_for(&wallet),
            "http://localhost:9000/api/positions/0x52908400098527886e0f7030069857d2e4169ee7"
        );
    }

    #[test]
    fn credentials_stay_out_of_errors_and_debug_output() {
        let t = Duration::from_secs(1);
        let err = HttpSource::new("ftp://app:hunter2@host", t).expect_err("not http");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let source = HttpSource::new("http://app:hunter2@analytics:9000/api", t).expect("valid");
        assert_eq!(source.base(), "http://analytics:9000/api");
        let debug = format!("{source:?}");
        assert!(!debug.contains("hunter2") && debug.contains("***"), "{debug}");
        let authorization = source.authorization.as_ref().expect("credentials sent");
        assert_eq!(authorization, "Basic YXBwOmh1bnRlcjI=");
        assert!(authorization.is_sensitive());
    }

    #[test]
    fn basic_authorization_is_base64() {
        for (userinfo, expected) in
            [("a", "YQ=="), ("ab", "YWI="), ("abc", "YWJj"), ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ==")]
        {
            assert_eq!(basic_authorization(userinfo), format!("Basic {expected}"), "{userinfo}");
        }
    }
}
