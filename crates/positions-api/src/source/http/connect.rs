//! The HTTP client: TCP, then TLS for `https://` (rustls, `tls.rs`), then
//! HTTP/1.1 or HTTP/2.
//!
//! The TCP step's errors are wrapped in a type of this module, so that a
//! failure tells which step failed: nothing answered (unreachable), or
//! something answered and the handshake failed (TLS). The HTTP client's
//! own errors say only "connect" for both.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::Empty;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower_service::Service;

use super::tls::{self, CaBundle};

/// The client every request of one source goes through.
pub(super) type UpstreamClient = Client<HttpsConnector<TcpConnector>, Empty<Bytes>>;

/// A client that connects within `timeout` and trusts `ca`, or the webpki
/// roots without one.
pub(super) fn client(timeout: Duration, ca: Option<&CaBundle>) -> Result<UpstreamClient, rustls::Error> {
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_connect_timeout(Some(timeout));
    tcp.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls::client_config(ca)?)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(TcpConnector(tcp));
    Ok(Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector))
}

/// Whether `error` failed in the TCP step: the name did not resolve,
/// nothing listened, or connecting took too long.
pub(super) fn is_tcp_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(current) = next {
        if current.is::<TcpError>() {
            return true;
        }
        next = current.source();
    }
    false
}

/// hyper-util's connector, its errors marked as the TCP step's.
#[derive(Debug, Clone)]
pub(super) struct TcpConnector(HttpConnector);

/// A failure to open the TCP connection (or resolve the name).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub(super) struct TcpError(Box<dyn std::error::Error + Send + Sync>);

impl Service<Uri> for TcpConnector {
    type Response = <HttpConnector as Service<Uri>>::Response;
    type Error = TcpError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, TcpError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TcpError>> {
        self.0.poll_ready(cx).map_err(|e| TcpError(e.into()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move { connecting.await.map_err(|e| TcpError(e.into())) })
    }
}
