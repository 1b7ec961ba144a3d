//! A scripted upstream analytics service over real HTTP, for testing the
//! `http` source: it answers `GET /positions/{wallet}` with whatever the
//! test set, after an optional delay, and counts requests.

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
    /// `http://127.0.0.1:PORT`.
    pub base: String,
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
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind an ephemeral port");
        let base = format!("http://{}", listener.local_addr().expect("bound address"));
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
                    let (script, requests) = (Arc::clone(&script), Arc::clone(&requests));
                    tokio::spawn(async move {
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
                        let _ = auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
        Self { base, script, requests, task }
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

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
