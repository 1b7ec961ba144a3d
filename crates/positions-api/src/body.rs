//! The response body: at most three chunks of shared bytes.
//!
//! A cached answer is the wallet's positions, rendered once when they were
//! fetched, between a short per-request prefix and suffix (the wallet, the
//! age, the flags). Handing hyper the three as separate chunks lets it write
//! them with one vectored write, so the positions are never copied per
//! request; every other response is one chunk.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};

/// A body of up to three chunks, with its exact length known up front (so
/// hyper sends `Content-Length`, also for `HEAD`).
#[derive(Debug, Clone, Default)]
pub struct Body {
    chunks: [Bytes; 3],
    next: usize,
}

impl Body {
    /// A body of one chunk.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self { chunks: [bytes.into(), Bytes::new(), Bytes::new()], next: 0 }
    }

    /// A body of three chunks, sent in order.
    pub fn parts(first: Bytes, second: Bytes, third: Bytes) -> Self {
        Self { chunks: [first, second, third], next: 0 }
    }

    /// The remaining chunks, in order; for tests and logs.
    pub fn to_bytes(&self) -> Bytes {
        let remaining = &self.chunks[self.next..];
        match remaining {
            [only] => only.clone(),
            _ => Bytes::from(remaining.concat()),
        }
    }

    fn remaining_len(&self) -> u64 {
        self.chunks[self.next..].iter().map(|c| c.len() as u64).sum()
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        while self.next < self.chunks.len() {
            let index = self.next;
            self.next += 1;
            let chunk = std::mem::take(&mut self.chunks[index]);
            if !chunk.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.remaining_len() == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining_len())
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn chunks_arrive_in_order_with_an_exact_length() {
        let body = Body::parts(Bytes::from_static(b"ab"), Bytes::new(), Bytes::from_static(b"cde"));
        assert_eq!(hyper::body::Body::size_hint(&body).exact(), Some(5));
        assert_eq!(body.to_bytes(), "abcde");
        let collected = body.collect().await.expect("infallible").to_bytes();
        assert_eq!(collected, "abcde");
        let empty = Body::default();
        assert!(hyper::body::Body::is_end_stream(&empty));
    }
}
