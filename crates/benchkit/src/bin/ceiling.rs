//! `ceiling`: the fastest a server built like `positions-api` could answer
//! a cached request, for the benchmarks to measure the service against.
//!
//! It answers every `GET` (any path) with the same pre-serialized body,
//! read once from a file, and the service's `Content-Type`; anything else
//! gets 405. There is no routing, cache, metrics or JSON: what the service
//! does beyond this is its overhead. Not a server for anything else.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Parser;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;

/// Answers every GET with one body from a file.
#[derive(Debug, Parser)]
#[command(name = "ceiling", version)]
struct Args {
    /// The file whose bytes are every answer's body.
    #[arg(long)]
    body: PathBuf,
    /// The answers' Content-Type.
    #[arg(long, default_value = "application/json")]
    content_type: String,
    /// Where to listen; port 0 picks a free one (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: String,
    /// Worker threads (default: tokio's, which honours `TOKIO_WORKER_THREADS`).
    #[arg(long)]
    threads: Option<usize>,
    /// Arm hyper's HTTP/1 header-read timeout, as the service does, to
    /// measure what it costs.
    #[arg(long)]
    header_timeout_ms: Option<u64>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let body = Bytes::from(std::fs::read(&args.body).with_context(|| format!("cannot read {}", args.body.display()))?);
    let content_type = HeaderValue::from_str(&args.content_type)
        .with_context(|| format!("invalid --content-type {:?}", args.content_type))?;
    let header_timeout = args.header_timeout_ms.map(Duration::from_millis);
    benchkit::serve::runtime(args.threads)?.block_on(async move {
        let listener =
            benchkit::serve::bind(&args.bind).await.with_context(|| format!("cannot listen on {}", args.bind))?;
        benchkit::serve::serve(listener, header_timeout, move |request| {
            let mut response = if request.method() == Method::GET {
                Response::new(Full::new(body.clone()))
            } else {
                let mut refused = Response::new(Full::new(Bytes::new()));
                *refused.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                refused
            };
            response.headers_mut().insert(header::CONTENT_TYPE, content_type.clone());
            std::future::ready(response)
        })
        .await;
        Ok(())
    })
}
