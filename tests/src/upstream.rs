//! A scripted upstream analytics service over real HTTP, for testing the
//! `http` source: it answers `GET /positions/{wallet}` with whatever the
//! test set, after an optional delay, and counts requests. It can also
//! speak HTTPS, with a certificate for `127.0.0.1` from a certificate
//! authority generated for it ([`Upstream::start_tls`]).

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// What the upstream answers.
#[derive(Debug, Clone)]
struct Script {
    status: StatusCode,
    body: Bytes,
    delay: Duration,
}

/// A running upstream.
#[derive(Debug)]
pub struct Upstream {
    /// `http://127.0.0.1:PORT`, or `https://` for a TLS upstream.
    pub base: String,
    /// `127.0.0.1:PORT`.
    pub addr: std::net::SocketAddr,
    script: Arc<Mutex<Script>>,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Upstream {
    /// Starts an upstream that answers `200` with `body`.
    ///
    /// # Panics
    ///
    /// If it cannot bind a port on 127.0.0.1.
    pub async fn start(body: &str) -> Self {
        Self::serve(body, None).await
    }

    /// Starts an upstream that answers `200` with `body` over HTTPS, and
    /// returns it with the PEM certificate of the authority that issued its
    /// certificate (for `127.0.0.1`, HTTP/2 and HTTP/1.1).
    ///
    /// # Panics
    ///
    /// If it cannot bind a port or generate the certificates.
    pub async fn start_tls(body: &str) -> (Self, String) {
        let (config, ca_pem) = tls_config();
        (Self::serve(body, Some(TlsAcceptor::from(Arc::new(config)))).await, ca_pem)
    }

    async fn serve(body: &str, tls: Option<TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind an ephemeral port");
        let addr = listener.local_addr().expect("bound address");
        let base = format!("{}://{addr}", if tls.is_some() { "https" } else { "http" });
        let script = Arc::new(Mutex::new(Script {
            status: StatusCode::OK,
            body: Bytes::from(body.to_owned()),
            delay: Duration::ZERO,
        }));
        let requests = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (script, requests) = (Arc::clone(&script), Arc::clone(&requests));
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    let (script, requests, tls) = (Arc::clone(&script), Arc::clone(&requests), tls.clone());
                    tokio::spawn(async move {
                        match tls {
                            // A failed handshake is the client's to report.
                            Some(tls) => {
                                if let Ok(stream) = tls.accept(stream).await {
                                    answer(stream, script, requests).await;
                                }
                            }
                            None => answer(stream, script, requests).await,
                        }
                    });
                }
            }
        });
        Self { base, addr, script, requests, task }
    }

    /// From now on, answer `status` with `body`.
    ///
    /// # Panics
    ///
    /// If the script lock is poisoned.
    pub fn answer(&self, status: u16, body: &str) {
        let mut script = self.script.lock().expect("script lock");
        script.status = StatusCode::from_u16(status).expect("valid status");
        script.body = Bytes::from(body.to_owned());
    }

    /// From now on, wait `delay` before answering.
    ///
    /// # Panics
    ///
    /// If the script lock is poisoned.
    pub fn delay(&self, delay: Duration) {
        self.script.lock().expect("script lock").delay = delay;
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Serves one connection by the script.
async fn answer<S>(stream: S, script: Arc<Mutex<Script>>, requests: Arc<AtomicUsize>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |_request| {
        let script = script.lock().expect("script lock").clone();
        requests.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(script.delay).await;
            let mut response = Response::new(Full::new(script.body));
            *response.status_mut() = script.status;
            Ok::<_, Infallible>(response)
        }
    });
    let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
}

/// A certificate authority, generated now.
fn certificate_authority() -> (rcgen::Issuer<'static, rcgen::KeyPair>, String) {
    let key = rcgen::KeyPair::generate().expect("a key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, "system tests CA");
    let pem = params.self_signed(&key).expect("a self-signed CA").pem();
    (rcgen::Issuer::new(params, key), pem)
}

/// A PEM certificate authority that issued nothing any upstream here
/// serves: trusting it alone, every upstream is refused.
///
/// # Panics
///
/// If the certificate cannot be generated.
pub fn unrelated_ca_pem() -> String {
    certificate_authority().1
}

/// A server configuration for `127.0.0.1`, and its CA's PEM certificate.
fn tls_config() -> (rustls::ServerConfig, String) {
    let (ca, ca_pem) = certificate_authority();
    let key = rcgen::KeyPair::generate().expect("a key");
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("leaf parameters");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let certificate = params.signed_by(&key, &ca).expect("a certificate signed by the CA");
    let private_key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![certificate.der().clone()], private_key)
        .expect("a usable certificate");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (config, ca_pem)
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
