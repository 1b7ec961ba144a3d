//! Telling HTTP/1 from HTTP/2 (prior knowledge) by a connection's first
//! bytes, read here rather than by hyper-util's auto builder so that the
//! read can have a deadline: the auto builder waits for them for ever.
//!
//! The bytes read are handed back to hyper through [`Prefixed`], a stream
//! that replays them before reading on from the socket.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::net::TcpStream;

/// What an HTTP/2 client with prior knowledge sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Version {
    Http1,
    Http2,
}

/// Reads until the first bytes tell the protocol: a byte that departs from
/// the HTTP/2 preface means HTTP/1, the whole preface means HTTP/2. At most
/// the preface's 24 bytes are read. `None` if the client closed first.
///
/// The caller bounds it in time.
pub(super) async fn detect(mut stream: TcpStream) -> io::Result<Option<(Version, Prefixed)>> {
    let mut read = [0_u8; H2_PREFACE.len()];
    let mut filled = 0;
    loop {
        let n = stream.read(&mut read[filled..]).await?;
        if n == 0 {
            return Ok(None);
        }
        filled += n;
        let version = if read[..filled] != H2_PREFACE[..filled] {
            Version::Http1
        } else if filled == H2_PREFACE.len() {
            Version::Http2
        } else {
            continue;
        };
        return Ok(Some((version, Prefixed { read, start: 0, end: filled, stream })));
    }
}

/// A TCP stream that first replays the bytes [`detect`] read from it.
#[derive(Debug)]
pub(super) struct Prefixed {
    read: [u8; H2_PREFACE.len()],
    start: usize,
    end: usize,
    stream: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.start < self.end {
            let n = (self.end - self.start).min(buf.remaining());
            buf.put_slice(&self.read[self.start..self.start + n]);
            self.start += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

forward_async_write!(Prefixed);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// Sends `chunks` one write at a time, detects, and returns the
    /// version and everything the server side then reads.
    async fn detect_from(chunks: &[&[u8]]) -> Option<(Version, Vec<u8>)> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        for chunk in chunks {
            client.write_all(chunk).await.expect("write");
            client.flush().await.expect("flush");
        }
        client.shutdown().await.expect("half-close");
        let (version, mut stream) = detect(server).await.expect("readable")?;
        let mut all = Vec::new();
        stream.read_to_end(&mut all).await.expect("read on");
        Some((version, all))
    }

    #[tokio::test]
    async fn http1_and_http2_are_told_apart_and_no_byte_is_lost() {
        let get = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".as_slice();
        assert_eq!(detect_from(&[get]).await, Some((Version::Http1, get.to_vec())));

        // A request that starts like the preface ("P" of POST/PUT/PRI).
        let put = b"PUT /x HTTP/1.1\r\n\r\n".as_slice();
        assert_eq!(detect_from(&[b"P", &put[1..]]).await, Some((Version::Http1, put.to_vec())));

        let mut h2 = H2_PREFACE.to_vec();
        h2.extend_from_slice(b"\0\0\0\x04\0\0\0\0\0");
        assert_eq!(detect_from(&[&h2[..5], &h2[5..]]).await, Some((Version::Http2, h2.clone())));

        assert_eq!(detect_from(&[]).await, None, "closed before a byte");
    }
}
