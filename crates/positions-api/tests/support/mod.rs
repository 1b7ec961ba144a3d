//! What the binary's integration tests share: reading its JSON log up to
//! the `listening` line, plain HTTP/1.1 exchanges over std sockets, and
//! child processes and scratch directories cleaned up when dropped.
//! Each test file uses a part of it.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

/// How long a test waits for an answer's bytes.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads the binary's JSON log lines up to the `listening` event, handing
/// each line to `keep`; the event.
///
/// # Panics
///
/// If the log ends first, or a line is not JSON.
pub(crate) fn until_listening(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    mut keep: impl FnMut(String),
) -> serde_json::Value {
    loop {
        let line = lines.next().expect("a log line before exiting").expect("readable log");
        let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        keep(line);
        if event["message"] == "listening" {
            return event;
        }
    }
}

/// The address in the `listening` event.
///
/// # Panics
///
/// If it has none.
pub(crate) fn listening_addr(event: &serde_json::Value) -> String {
    event["addr"].as_str().expect("an address").to_owned()
}

/// One HTTP/1.1 GET over a fresh connection; status and body, or what went
/// wrong (a refused connection, a reset, no status line).
pub(crate) fn try_get(addr: &str, path: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(READ_TIMEOUT)).map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| format!("read: {e}"))?;
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or(format!("no status: {response:?}"))?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

/// One HTTP/1.1 request without a body, with extra headers, over a fresh
/// connection closed after the answer: status, headers (names lower-cased)
/// and body.
///
/// # Panics
///
/// If the exchange fails or the answer has no header block or status.
pub(crate) fn exchange(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream.set_read_timeout(Some(READ_TIMEOUT)).expect("timeout set");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        write!(request, "{name}: {value}\r\n").expect("writing to a String cannot fail");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("request sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("a status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// A child process, killed when dropped (a failed assertion must not leave
/// it running).
pub(crate) struct Running(pub(crate) Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A directory under the system's temporary one, named after `label`,
/// removed when dropped.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    /// Creates it.
    ///
    /// # Panics
    ///
    /// If the directory cannot be created.
    pub(crate) fn new(label: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("positions-{label}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
