//! Looking at a server between measurements: one plain HTTP GET, and
//! reading a counter from `/metrics`.
//!
//! The checks before and after a measurement (is the body the same, did
//! nginx answer from its cache, how many calls reached the upstream) need
//! a request or two, not a client library: this speaks HTTP/1.0 over a
//! `TcpStream`, so the answer is never chunked and ends when the server
//! closes the connection. Not for load; that is wrk's and benchkit's job.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// How long a probe waits for its answer (a cold wallet behind the slow
/// upstream takes half a second).
const TIMEOUT: Duration = Duration::from_secs(10);

/// One HTTP answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    /// The first header called `name` (any letter case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET path` from the server at `addr`.
pub(crate) fn get(addr: SocketAddr, path: &str) -> Result<Reply> {
    request("GET", addr, path)
}

/// `POST path` with an empty body to the server at `addr`, which must
/// answer 200.
pub(crate) fn post(addr: SocketAddr, path: &str) -> Result<Reply> {
    let reply = request("POST", addr, path)?;
    if reply.status != 200 {
        bail!("POST http://{addr}{path} answered {}: {}", reply.status, reply.text());
    }
    Ok(reply)
}

fn request(method: &str, addr: SocketAddr, path: &str) -> Result<Reply> {
    let exchange = || -> Result<Vec<u8>> {
        let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: cargo-xtask-bench\r\nContent-Length: 0\r\n\r\n"
        )?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        Ok(raw)
    };
    let raw = exchange().with_context(|| format!("{method} http://{addr}{path}"))?;
    parse(&raw).with_context(|| format!("{method} http://{addr}{path}: not an HTTP answer"))
}

/// `GET path` from `addr`, which must answer 200 with JSON.
pub(crate) fn json(addr: SocketAddr, path: &str) -> Result<serde_json::Value> {
    let reply = get(addr, path)?;
    if reply.status != 200 {
        bail!("GET http://{addr}{path} answered {}: {}", reply.status, reply.text());
    }
    serde_json::from_slice(&reply.body).with_context(|| format!("GET http://{addr}{path}: the body is not JSON"))
}

/// The value of the unlabelled series `name` in the text of a `/metrics`
/// answer, such as `position_cache_misses_total`.
pub(crate) fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The service's `/metrics`, read as the values of `names`, in order.
pub(crate) fn metrics(addr: SocketAddr, names: &[&str]) -> Result<Vec<f64>> {
    let reply = get(addr, "/metrics")?;
    let text = reply.text();
    names
        .iter()
        .map(|name| metric(&text, name).with_context(|| format!("no {name} in http://{addr}/metrics")))
        .collect()
}

fn parse(raw: &[u8]) -> Result<Reply> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").context("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).context("headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("no status code")?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    let mut body = raw[split + 4..].to_vec();
    let length =
        headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-length")).and_then(|(_, v)| v.parse().ok());
    if let Some(length) = length {
        body.truncate(length);
    }
    Ok(Reply { status, headers, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_split_into_status_headers_and_body() {
        let raw =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nX-Cache-Status: HIT\r\ncontent-length: 2\r\n\r\n{}";
        let reply = parse(raw).expect("parses");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-cache-status"), Some("HIT"));
        assert_eq!(reply.body, b"{}");
        assert!(parse(b"garbage").is_err());
    }

    #[test]
    fn counters_are_read_by_exact_name() {
        let text = "# TYPE position_cache_misses counter\nposition_cache_misses_total 3\n\
                    position_cache_misses_total_extra 9\nhttp_requests_total{route=\"x\"} 5\n# EOF\n";
        assert_eq!(metric(text, "position_cache_misses_total"), Some(3.0));
        assert_eq!(metric(text, "http_requests_total"), None, "labelled series are not read");
        assert_eq!(metric(text, "position_cache_hits_total"), None);
    }
}
