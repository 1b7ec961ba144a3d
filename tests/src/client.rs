//! A small HTTP/1.1 client for tests: one method per verb, and a [`Reply`]
//! that holds the status, headers and body as received.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as Hyper;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A client bound to one server's base URL.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: Hyper<HttpConnector, Full<Bytes>>,
}

/// What the server answered.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON.
    ///
    /// # Panics
    ///
    /// If it is not JSON; the message shows the body.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// A header as text, or `""` if absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Client {
    /// A client for the server at `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: impl Into<String>) -> Self {
        let http = Hyper::builder(TokioExecutor::new()).build_http();
        Self { base: base.into(), http }
    }

    /// `GET path`.
    ///
    /// # Panics
    ///
    /// If the exchange fails at the transport level.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[]).await
    }

    /// `DELETE path`, with a bearer token if given.
    ///
    /// # Panics
    ///
    /// If the exchange fails at the transport level.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
        self.send(Method::DELETE, path, &headers).await
    }

    /// Any method, with extra headers.
    ///
    /// # Panics
    ///
    /// If the exchange fails at the transport level.
    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.try_send(method, path, headers).await.unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Any method; a transport failure is an `Err` with its text.
    ///
    /// # Errors
    ///
    /// The transport error, as text.
    pub async fn try_send(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Result<Reply, String> {
        let mut request = Request::builder().method(method).uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::new())).map_err(|e| e.to_string())?;
        let response = self.http.request(request).await.map_err(|e| format!("{e:?}"))?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Reply { status: parts.status, headers: parts.headers, body })
    }
}
