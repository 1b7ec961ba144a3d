//! Looking at a server between measurements: one plain HTTP GET, and
//! reading a counter from `/metrics`.
//!
//! The checks before and after a measurement (is the body the same, did
//! nginx answer from its cache, how many calls reached the upstream) need
//! a request or two, not a client library: this speaks HTTP/1.0 over a
//! `TcpStream`, so the answer is never chunked and ends when the server
//! closes the connection. Not for load; that is wrk's and benchkit's job.
//!
//! [`fetch`] is the exception: it asks as wrk does (HTTP/1.1, the
//! connection kept open, request headers of its own) and reads exactly one
//! answer, framed by its `Content-Length` or its chunks, so that the bytes
//! it counts are those one answer takes on a keep-alive connection.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

/// How long a probe waits for its answer (a cold wallet behind the slow
/// upstream takes half a second).
const TIMEOUT: Duration = Duration::from_secs(10);

/// One HTTP answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    headers: Vec<(String, String)>,
    /// The body as sent (still compressed; chunks joined).
    pub(crate) body: Vec<u8>,
    /// Bytes of the status line and headers, with the blank line after.
    pub(crate) head_bytes: usize,
    /// Bytes of the whole answer on the wire: head, body, chunk framing.
    pub(crate) wire_bytes: usize,
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

/// `GET path` from `addr` as a keep-alive HTTP/1.1 client sends it, with
/// `headers` (`Name: value`) after `Host`; exactly one answer is read.
pub(crate) fn fetch(addr: SocketAddr, path: &str, headers: &[String]) -> Result<Reply> {
    let exchange = || -> Result<Reply> {
        let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
        for header in headers {
            request.push_str(header);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes())?;
        let mut raw = Vec::new();
        let mut chunk = [0_u8; 16 * 1024];
        loop {
            if let Some(reply) = one_answer(&raw)? {
                return Ok(reply);
            }
            let n = stream.read(&mut chunk)?;
            ensure!(n > 0, "the connection closed before the answer ended");
            raw.extend_from_slice(&chunk[..n]);
        }
    };
    exchange().with_context(|| format!("GET http://{addr}{path} with {headers:?}"))
}

/// The answer at the start of `raw` if all of it is there. A 304 has no
/// body; otherwise `Content-Length` or chunked framing says where it ends.
fn one_answer(raw: &[u8]) -> Result<Option<Reply>> {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else { return Ok(None) };
    let mut reply = parse(&raw[..split + 4])?;
    let rest = &raw[split + 4..];
    let chunked = reply.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let length: Option<usize> = reply.header("content-length").and_then(|v| v.parse().ok());
    let body_bytes = if reply.status == 304 || reply.status == 204 {
        Some(0)
    } else if chunked {
        dechunked(rest, &mut reply.body)?
    } else {
        let length = length.context("neither Content-Length nor chunks")?;
        (rest.len() >= length).then(|| {
            reply.body = rest[..length].to_vec();
            length
        })
    };
    Ok(body_bytes.map(|body_bytes| {
        reply.wire_bytes = reply.head_bytes + body_bytes;
        reply
    }))
}

/// Joins the chunks of a chunked body into `body`; the bytes the body took
/// with its framing, or `None` if its last chunk has not arrived.
fn dechunked(raw: &[u8], body: &mut Vec<u8>) -> Result<Option<usize>> {
    body.clear();
    let mut at = 0;
    loop {
        let Some(line_end) = raw[at..].windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
        let line = std::str::from_utf8(&raw[at..at + line_end]).context("a chunk size that is not text")?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).with_context(|| format!("bad chunk size {line:?}"))?;
        at += line_end + 2;
        if size == 0 {
            // No trailers are expected: the last chunk ends with a blank line.
            return Ok((raw.len() >= at + 2).then_some(at + 2));
        }
        if raw.len() < at + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&raw[at..at + size]);
        at += size + 2;
    }
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
    let head_bytes = split + 4;
    Ok(Reply { status, headers, wire_bytes: head_bytes + body.len(), head_bytes, body })
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
    fn one_answer_is_framed_by_its_length_its_chunks_or_its_status() {
        let sized = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}HTTP/1.1";
        let reply = one_answer(sized).expect("parses").expect("complete");
        assert_eq!((reply.body.as_slice(), reply.head_bytes, reply.wire_bytes), (&b"{}"[..], 38, 40));
        assert!(one_answer(&sized[..39]).expect("parses").is_none(), "one byte of the body missing");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let reply = one_answer(chunked).expect("parses").expect("complete");
        assert_eq!(reply.body, b"abcde");
        assert_eq!(reply.wire_bytes, chunked.len());
        assert!(one_answer(&chunked[..chunked.len() - 1]).expect("parses").is_none(), "the last chunk unfinished");
        let not_modified = b"HTTP/1.1 304 Not Modified\r\netag: W/\"1\"\r\n\r\n";
        let reply = one_answer(not_modified).expect("parses").expect("complete");
        assert_eq!((reply.status, reply.wire_bytes), (304, not_modified.len()));
        assert!(one_answer(b"HTTP/1.1 200 OK\r\n\r\n").is_err(), "no framing at all");
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
