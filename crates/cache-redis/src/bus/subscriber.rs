//! The subscriber: a task that keeps one dedicated pub/sub connection
//! subscribed to the channel, hands other instances' messages to the
//! caller, and says when the subscription was down.
//!
//! A worker with explicit state ([`Subscriber::run`] moves between
//! "subscribing" and "listening"), a shutdown signal and a drop guard: the
//! [`Guard`] lives in the [`Bus`](super::Bus), and dropping it stops the
//! task at its next await. The task also stops when the caller drops the
//! event receiver.
//!
//! The connection is not one of the tier's: a subscribed connection can
//! send nothing but (un)subscribe and `PING`, and its messages arrive
//! whenever the publisher sends them. A connection that closes (Redis
//! restarted, `CLIENT KILL TYPE pubsub`, a proxy) ends the message stream
//! at once; one that goes silent (a hung host) is found out by a `PING`
//! every health interval, answered within the op timeout or given up.
//! Either way the subscriber reports [`Event::Lost`], reconnects with a
//! bounded backoff, and reports [`Event::Resubscribed`] once subscribed
//! again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use deadpool_redis::redis::{self, aio::PubSubSink, aio::PubSubStream};
use futures_core::Stream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{Event, FIRST_RESUBSCRIBE_PAUSE, InstanceId, MAX_RESUBSCRIBE_PAUSE, message};
use crate::observer::Observer;
use crate::redact::Secrets;

/// Stops the subscriber when dropped.
#[derive(Debug)]
pub(crate) struct Guard {
    shutdown: watch::Sender<bool>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

/// What the subscriber needs, put together by [`Bus`](super::Bus).
pub(crate) struct Subscriber {
    /// The server, or in cluster mode one client per seed node, tried in
    /// turn: each attempt after a failure or a loss takes the next one.
    pub(crate) clients: Vec<redis::Client>,
    pub(crate) channel: String,
    pub(crate) instance: InstanceId,
    pub(crate) events: mpsc::Sender<Event>,
    pub(crate) subscribed: Arc<AtomicBool>,
    pub(crate) observer: Arc<dyn Observer>,
    pub(crate) op_timeout: Duration,
    pub(crate) keepalive: Duration,
    pub(crate) redacted_url: String,
    pub(crate) secrets: Secrets,
}

/// Why listening ended.
enum Ended {
    /// Shut down, or no one listens for events any more.
    Stopped,
    /// The subscription broke; it was last known to work at this time.
    Lost(SystemTime),
}

/// Pauses between attempts: doubling from [`FIRST_RESUBSCRIBE_PAUSE`] up to
/// [`MAX_RESUBSCRIBE_PAUSE`], back to the first after a success.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Self { next: FIRST_RESUBSCRIBE_PAUSE }
    }

    /// The pause before the next attempt.
    pub(crate) fn next_pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(MAX_RESUBSCRIBE_PAUSE);
        pause
    }

    pub(crate) fn reset(&mut self) {
        self.next = FIRST_RESUBSCRIBE_PAUSE;
    }
}

impl Subscriber {
    /// Spawns the subscriber on the current tokio runtime.
    pub(crate) fn start(self, runtime: &tokio::runtime::Handle) -> Guard {
        let (shutdown, stop) = watch::channel(false);
        runtime.spawn(self.run(stop));
        Guard { shutdown }
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        let started = SystemTime::now();
        // `None` while no gap is open: before the first attempt, and while
        // subscribed. A first attempt that fails opens a gap from the
        // start: the caller may have cached entries meanwhile.
        let mut down_since: Option<SystemTime> = None;
        let mut backoff = Backoff::new();
        let mut node = 0_usize;
        loop {
            let client = &self.clients[node % self.clients.len()];
            // The next attempt, if there is one, goes to the next seed: a
            // node that failed once is tried again after the others.
            node = node.wrapping_add(1);
            let attempt = tokio::select! {
                () = self.stopped(&mut stop) => break,
                attempt = tokio::time::timeout(self.op_timeout, subscribe(client, &self.channel)) => attempt,
            };
            let failure = match attempt {
                Ok(Ok((sink, stream))) => {
                    backoff.reset();
                    self.set_subscribed(true);
                    let until = SystemTime::now();
                    if let Some(since) = down_since.take() {
                        tracing::info!(channel = %self.channel, "resubscribed to the fleet channel; messages sent meanwhile are lost");
                        if !self.emit(Event::Resubscribed { since, until }, &mut stop).await {
                            break;
                        }
                    }
                    // A working node is kept as long as it works.
                    node = node.wrapping_sub(1);
                    match self.listen(sink, stream, until, &mut stop).await {
                        Ended::Stopped => break,
                        Ended::Lost(since) => {
                            node = node.wrapping_add(1);
                            self.set_subscribed(false);
                            tracing::warn!(redis = %self.redacted_url, channel = %self.channel, "lost the fleet channel subscription; resubscribing");
                            down_since = Some(since);
                            if !self.emit(Event::Lost { since }, &mut stop).await {
                                break;
                            }
                            continue;
                        }
                    }
                }
                Ok(Err(error)) => self.secrets.scrub(error),
                Err(_elapsed) => format!("no subscription within {:?}", self.op_timeout),
            };
            tracing::debug!(redis = %self.redacted_url, channel = %self.channel, error = %failure, "cannot subscribe to the fleet channel");
            if down_since.is_none() {
                down_since = Some(started);
                if !self.emit(Event::Lost { since: started }, &mut stop).await {
                    break;
                }
            }
            tokio::select! {
                () = self.stopped(&mut stop) => break,
                () = tokio::time::sleep(backoff.next_pause()) => {}
            }
        }
        self.set_subscribed(false);
    }

    /// Hands messages to the caller until the subscription breaks or the
    /// subscriber is stopped. `since`: when the subscription was confirmed.
    async fn listen(
        &self,
        mut sink: PubSubSink,
        mut stream: PubSubStream,
        mut known_good: SystemTime,
        stop: &mut watch::Receiver<bool>,
    ) -> Ended {
        let mut next_ping = Instant::now() + self.keepalive;
        loop {
            tokio::select! {
                () = self.stopped(stop) => return Ended::Stopped,
                message = next(&mut stream) => {
                    let Some(message) = message else {
                        return Ended::Lost(known_good);
                    };
                    known_good = SystemTime::now();
                    if !self.deliver(message.get_payload_bytes(), stop).await {
                        return Ended::Stopped;
                    }
                }
                () = tokio::time::sleep_until(next_ping) => {
                    // Messages published before Redis ran this PING arrive
                    // before its answer, so an answer proves the
                    // subscription worked until the PING was sent.
                    let sent = SystemTime::now();
                    match tokio::time::timeout(self.op_timeout, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => known_good = sent,
                        _ => return Ended::Lost(known_good),
                    }
                    next_ping = Instant::now() + self.keepalive;
                }
            }
        }
    }

    /// Decodes one payload and hands it on unless it is this instance's
    /// own or not a message; `false` if no one listens any more.
    async fn deliver(&self, payload: &[u8], stop: &mut watch::Receiver<bool>) -> bool {
        match message::decode(payload) {
            Ok(message) if message.sender == self.instance => true,
            Ok(message) => {
                self.observer.bus_received(message.kind);
                self.emit(Event::Message(message), stop).await
            }
            Err(error) => {
                // Counted, and logged at debug only: whoever publishes
                // garbage on the channel could otherwise flood the log.
                tracing::debug!(channel = %self.channel, len = payload.len(), %error, "ignoring an undecodable message on the fleet channel");
                self.observer.bus_undecodable();
                true
            }
        }
    }

    /// Hands `event` to the caller, waiting while its queue is full;
    /// `false` if no one listens any more or the subscriber was stopped.
    async fn emit(&self, event: Event, stop: &mut watch::Receiver<bool>) -> bool {
        tokio::select! {
            () = self.stopped(stop) => false,
            sent = self.events.send(event) => sent.is_ok(),
        }
    }

    /// Returns when the subscriber should stop: the guard was dropped
    /// (or told it to), or the caller dropped the event receiver.
    async fn stopped(&self, stop: &mut watch::Receiver<bool>) {
        tokio::select! {
            // An error means the guard is gone, which is a stop too.
            _ = stop.wait_for(|&stop| stop) => {}
            () = self.events.closed() => {}
        }
    }

    fn set_subscribed(&self, subscribed: bool) {
        if self.subscribed.swap(subscribed, Ordering::Relaxed) != subscribed {
            self.observer.bus_subscribed_changed(subscribed);
        }
    }
}

/// Opens a pub/sub connection with `client` and subscribes it to
/// `channel`.
async fn subscribe(client: &redis::Client, channel: &str) -> redis::RedisResult<(PubSubSink, PubSubStream)> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub.split())
}

async fn next(stream: &mut PubSubStream) -> Option<redis::Msg> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *stream).poll_next(cx)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_bound_and_resets() {
        let mut backoff = Backoff::new();
        let pauses: Vec<u64> = (0..8).map(|_| u64::try_from(backoff.next_pause().as_millis()).unwrap()).collect();
        assert_eq!(pauses, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
        backoff.reset();
        assert_eq!(backoff.next_pause(), FIRST_RESUBSCRIBE_PAUSE);
    }
}
