//! What a request carries to the logs and to the upstream: its request id
//! and its W3C trace context.
//!
//! - `X-Request-Id`: a client's id is kept if it is 1 to 128 characters of
//!   a safe set (letters, digits and `-_.:+/=@`), so it can be written into
//!   a log line or a header without escaping; anything else is replaced by
//!   a generated one, as is a missing id. A generated id is a random
//!   per-process prefix and a counter (`3f9a61c2d4e0-1b`): unique across
//!   replicas without a random draw per request. The response echoes the id.
//! - `traceparent` (and `tracestate` with it) is kept if it is valid by the
//!   W3C Trace Context rules and forwarded unchanged to the upstream: this
//!   service records no spans of its own, so the upstream's work joins the
//!   caller's trace directly.
//!
//! Handling a request runs inside [`RequestContext::scope`], a task-local.
//! A load from the source runs in a task of its own (a flight shared by
//! every request for the wallet), where the task-local is not visible: the
//! composed cache therefore captures the context of the request that starts
//! a flight ([`cache_swr::Builder::build_with`]), and the flight runs the
//! source call in that context's scope ([`in_scope`]). The upstream thus sees the id of
//! the request that caused the load; requests that joined it are not named.

use std::cell::Cell;
use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, HeaderName, HeaderValue};

/// `X-Request-Id`.
pub(crate) static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The longest request id kept from a client.
const MAX_ID_LEN: usize = 128;
/// The longest `tracestate` forwarded (the W3C limit for what a vendor
/// must propagate).
const MAX_TRACESTATE_LEN: usize = 512;

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// One request's id and trace context.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext {
    id: RequestId,
    traceparent: Option<HeaderValue>,
    tracestate: Option<HeaderValue>,
}

/// A request id: the client's header value (a view of hyper's read buffer,
/// so cloning it counts a reference), or one made here, kept inline so
/// that cloning it copies a few bytes and allocates nothing.
#[derive(Debug, Clone)]
enum RequestId {
    Client(HeaderValue),
    Generated { bytes: [u8; GENERATED_LEN], len: u8 },
}

/// The longest generated id: a 12-digit prefix, a dash, 16 hex digits.
const GENERATED_LEN: usize = 12 + 1 + 16;

impl RequestContext {
    /// The context of a request with `headers`.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        let [id, parent, state] = first_values(headers, [&REQUEST_ID, &TRACEPARENT, &TRACESTATE]);
        let id = match id.filter(|id| is_safe_id(id.as_bytes())) {
            Some(id) => RequestId::Client(id.clone()),
            None => generate_id(),
        };
        let traceparent = parent.and_then(|value| traceparent(value.as_bytes()));
        let tracestate = traceparent
            .as_ref()
            .and(state)
            .filter(|state| state.len() <= MAX_TRACESTATE_LEN && state.to_str().is_ok())
            .cloned();
        Self { id, traceparent, tracestate }
    }

    /// The request id as a header value (for a generated id, a copy).
    pub(crate) fn id_header(&self) -> HeaderValue {
        match &self.id {
            RequestId::Client(value) => value.clone(),
            RequestId::Generated { .. } => {
                HeaderValue::from_str(self.id()).expect("a generated id is a valid header value")
            }
        }
    }

    /// The request id.
    pub(crate) fn id(&self) -> &str {
        // Only safe ASCII is kept or generated.
        match &self.id {
            RequestId::Client(value) => value.to_str().unwrap_or_default(),
            RequestId::Generated { bytes, len } => std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default(),
        }
    }

    /// The trace id of a valid `traceparent`.
    pub(crate) fn trace_id(&self) -> Option<&str> {
        self.traceparent.as_ref().and_then(|t| t.to_str().ok()).and_then(|t| t.get(3..35))
    }

    /// The context of the request being handled on this task, if any.
    pub(crate) fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// The id of the request being handled on this task, or an empty
    /// string outside one: for the few log lines a request writes, so that
    /// they carry its id even when no request span is made (the span costs
    /// something on every request; these lines are rare).
    pub(crate) fn current_id() -> String {
        CURRENT.try_with(|context| context.id().to_owned()).unwrap_or_default()
    }

    /// Runs `future` with this context as the current one.
    pub(crate) fn scope<F: Future>(self, future: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, future)
    }

    /// Runs `f` with a copy of this context as the current one.
    pub(crate) fn sync_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self.clone(), f)
    }

    /// Sets the id and trace context on a request to the upstream.
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(REQUEST_ID.clone(), self.id_header());
        if let Some(traceparent) = &self.traceparent {
            headers.insert(TRACEPARENT.clone(), traceparent.clone());
            if let Some(tracestate) = &self.tracestate {
                headers.insert(TRACESTATE.clone(), tracestate.clone());
            }
        }
    }

    /// Sets the current context's id and trace context on a request to the
    /// upstream; nothing outside a request's or a flight's scope.
    pub(crate) fn apply_current(headers: &mut HeaderMap) {
        // `with` on a borrowed context: no clone on the way to the upstream.
        let _ = CURRENT.try_with(|context| context.apply(headers));
    }
}

/// Runs `future` in `context`'s scope, if there is a context.
pub(crate) async fn in_scope<F: Future>(context: Option<RequestContext>, future: F) -> F::Output {
    match context {
        Some(context) => context.scope(future).await,
        None => future.await,
    }
}

/// The first value of each of `names` in `headers`, as `HeaderMap::get`
/// gives it, found in one pass over the request's headers: a request
/// carries a handful, and comparing each name (a tag for the standard
/// ones, a length and bytes for the others) costs less than hashing the
/// three names for three lookups, on every request.
fn first_values<'h, const N: usize>(headers: &'h HeaderMap, names: [&HeaderName; N]) -> [Option<&'h HeaderValue>; N] {
    let mut found = [None; N];
    for (name, value) in headers {
        if let Some(i) = names.iter().position(|wanted| *wanted == name)
            && found[i].is_none()
        {
            found[i] = Some(value);
        }
    }
    found
}

/// Whether a client's request id can be kept as it is.
fn is_safe_id(id: &[u8]) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len()) && id.iter().all(|&b| b.is_ascii_alphanumeric() || b"-_.:+/=@".contains(&b))
}

/// A new request id: the process's prefix and the next number. Numbers
/// are taken by each thread in blocks, so threads do not contend for one
/// counter on every request.
fn generate_id() -> RequestId {
    const BLOCK: u64 = 1024;
    static NEXT_BLOCK: AtomicU64 = AtomicU64::new(0);
    static PREFIX: OnceLock<[u8; 12]> = OnceLock::new();
    thread_local! {
        static RANGE: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    }
    let number = RANGE.with(|range| {
        let (mut next, mut end) = range.get();
        if next == end {
            next = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed);
            end = next + BLOCK;
        }
        range.set((next + 1, end));
        next
    });
    let prefix = PREFIX.get_or_init(|| {
        let random: u64 = rand::random();
        let mut hex = [0; 12];
        for (i, digit) in hex.iter_mut().enumerate() {
            *digit = HEX[((random >> (4 * i)) & 0xf) as usize];
        }
        hex
    });
    let mut bytes = [0_u8; GENERATED_LEN];
    bytes[..12].copy_from_slice(prefix);
    bytes[12] = b'-';
    let mut len = 13;
    let digits = (64 - number.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        bytes[len] = HEX[((number >> (4 * i)) & 0xf) as usize];
        len += 1;
    }
    RequestId::Generated { bytes, len: u8::try_from(len).unwrap_or(u8::MAX) }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A valid `traceparent` to forward, or `None`. Version 00 is taken as it
/// is; a later version (other than the invalid `ff`) is read by its first
/// four fields, as the W3C rules ask, and forwarded as version 00.
fn traceparent(value: &[u8]) -> Option<HeaderValue> {
    let lower_hex = |field: &[u8]| field.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
    let all_zero = |field: &[u8]| field.iter().all(|&b| b == b'0');
    if value.len() < 55 || (value.len() > 55 && (&value[..2] == b"00" || value[55] != b'-')) {
        return None;
    }
    let (version, trace_id, parent_id, flags) = (&value[..2], &value[3..35], &value[36..52], &value[53..55]);
    let dashes = value[2] == b'-' && value[35] == b'-' && value[52] == b'-';
    let valid = dashes
        && [version, trace_id, parent_id, flags].iter().all(|field| lower_hex(field))
        && version != b"ff"
        && !all_zero(trace_id)
        && !all_zero(parent_id);
    if !valid {
        return None;
    }
    if version == b"00" {
        return HeaderValue::from_bytes(value).ok();
    }
    let mut normalized = value[..55].to_vec();
    normalized[..2].copy_from_slice(b"00");
    HeaderValue::from_bytes(&normalized).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn context(headers: &[(&str, &str)]) -> RequestContext {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        RequestContext::from_headers(&map)
    }

    #[test]
    fn a_safe_client_id_is_kept_and_anything_else_replaced() {
        assert_eq!(context(&[("x-request-id", "abc-123_x.y:z")]).id(), "abc-123_x.y:z");
        let long = "a".repeat(MAX_ID_LEN);
        assert_eq!(context(&[("x-request-id", &long)]).id(), long);
        for bad in ["", "has space", "quote\"", "back\\slash", "<script>", &"a".repeat(MAX_ID_LEN + 1), "é"] {
            let id = context(&[("x-request-id", bad)]).id().to_owned();
            assert_ne!(id, bad);
            assert!(is_safe_id(id.as_bytes()), "{id}");
        }
    }

    #[test]
    fn the_first_of_repeated_headers_counts_as_a_lookup_would_find_it() {
        let mut map = HeaderMap::new();
        map.append("user-agent", HeaderValue::from_static("test"));
        map.append("x-request-id", HeaderValue::from_static("first"));
        map.append("tracestate", HeaderValue::from_static("a=1"));
        map.append("x-request-id", HeaderValue::from_static("second"));
        map.append("traceparent", HeaderValue::from_static(VALID));
        map.append("tracestate", HeaderValue::from_static("b=2"));
        let [id, parent, state] = first_values(&map, [&REQUEST_ID, &TRACEPARENT, &TRACESTATE]);
        assert_eq!((id, parent, state), (map.get(&REQUEST_ID), map.get(&TRACEPARENT), map.get(&TRACESTATE)));
        assert_eq!(id.map(HeaderValue::as_bytes), Some(b"first".as_slice()));
        let context = RequestContext::from_headers(&map);
        assert_eq!((context.id(), context.trace_id()), ("first", Some("4bf92f3577b34da6a3ce929d0e0e4736")));
        assert_eq!(context.tracestate.as_ref().map(HeaderValue::as_bytes), Some(b"a=1".as_slice()));
        let empty = HeaderMap::new();
        assert_eq!(first_values(&empty, [&REQUEST_ID, &TRACEPARENT, &TRACESTATE]), [None; 3]);
    }

    #[test]
    fn generated_ids_are_unique_and_safe() {
        let ids: std::collections::HashSet<String> = (0..3000).map(|_| context(&[]).id().to_owned()).collect();
        assert_eq!(ids.len(), 3000);
        let on_another_thread = std::thread::spawn(|| context(&[]).id().to_owned()).join().unwrap();
        assert!(!ids.contains(&on_another_thread));
        for id in &ids {
            assert!(is_safe_id(id.as_bytes()) && id.len() > 13 && id.as_bytes()[12] == b'-', "{id}");
        }
    }

    #[test]
    fn traceparent_is_validated_by_the_w3c_rules() {
        let kept = |value: &str| context(&[("traceparent", value)]).traceparent.map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(kept(VALID).as_deref(), Some(VALID));
        assert_eq!(context(&[("traceparent", VALID)]).trace_id(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        assert_eq!(kept(later).as_deref(), Some(VALID), "a later version is read by its first fields");
        for bad in [
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "garbage",
        ] {
            assert_eq!(kept(bad), None, "{bad}");
        }
    }

    #[test]
    fn tracestate_travels_only_with_a_valid_traceparent() {
        let with = context(&[("traceparent", VALID), ("tracestate", "vendor=abc")]);
        let mut headers = HeaderMap::new();
        with.apply(&mut headers);
        assert_eq!(headers["traceparent"], VALID);
        assert_eq!(headers["tracestate"], "vendor=abc");
        assert_eq!(headers["x-request-id"], with.id());
        let without = context(&[("traceparent", "garbage"), ("tracestate", "vendor=abc")]);
        let mut headers = HeaderMap::new();
        without.apply(&mut headers);
        assert!(!headers.contains_key("traceparent") && !headers.contains_key("tracestate"));
    }

    #[tokio::test]
    async fn a_captured_context_is_carried_into_another_task() {
        let context = context(&[("x-request-id", "first")]);
        let captured = context.clone().scope(async { RequestContext::current() }).await;
        let seen = tokio::spawn(in_scope(captured, async { RequestContext::current().map(|c| c.id().to_owned()) }))
            .await
            .unwrap();
        assert_eq!(seen.as_deref(), Some("first"));
        assert!(RequestContext::current().is_none());
    }
}
