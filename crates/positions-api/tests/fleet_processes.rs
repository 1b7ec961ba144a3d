//! Replicas of the real binary sharing one real Redis, as a fleet runs in
//! production: what the others do when the replica loading a wallet dies
//! in the middle of its load.

mod support;

use support::try_get;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache_redis::testing::RedisServer;

const BINARY: &str = env!("CARGO_BIN_EXE_positions-api");

/// The wallet every replica is asked for.
const WALLET: &str = "0x00000000000000000000000000000000000000aa";

/// How long the upstream takes to answer each positions request.
const LOAD: Duration = Duration::from_secs(2);

/// `REFRESH_TIMEOUT_MS`: longer than [`LOAD`], so no load times out.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(3);

/// `FLEET_LEASE_MS`: it must exceed [`REFRESH_TIMEOUT`].
const LEASE: Duration = Duration::from_secs(4);

/// How long a condition the test waits for may take to come true.
const CONDITION_DEADLINE: Duration = Duration::from_secs(10);

/// The one position the upstream answers for every wallet.
const POSITIONS: &str = r#"{"positions": [{"token": "0x00000000000000000000000000000000000000ff", "symbol": "SLOW",
    "quantity": "1.5", "avg_cost": "2", "cost_basis": "3", "price": null, "market_value": null,
    "unrealized_pnl": null, "realized_pnl": "0", "confidence": "low", "price_updated_at": null}],
    "computed_at": null}"#;

/// Waits until `condition` holds, polling it; panics naming `what` if it
/// does not within [`CONDITION_DEADLINE`].
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + CONDITION_DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "not within {CONDITION_DEADLINE:?}: {what}");
        // A short pause between polls of a condition, not a wait for it.
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An HTTP/1.1 upstream on its own threads that answers every positions
/// request with [`POSITIONS`] after [`LOAD`], and counts them.
struct SlowUpstream {
    addr: String,
    asked: Arc<AtomicUsize>,
}

impl SlowUpstream {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address").to_string();
        let asked = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&asked);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                    }
                    if !request_line.contains("/positions/") {
                        let _ =
                            write!(stream, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                        return;
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    // The slow source under test: the delay is the point,
                    // not a wait for something.
                    std::thread::sleep(LOAD);
                    // The asking replica may be dead by now; that is fine.
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n{POSITIONS}",
                        POSITIONS.len()
                    );
                });
            }
        });
        Self { addr, asked }
    }

    fn asked(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }
}

/// A running replica, killed (and its log shown, if the test is failing)
/// when dropped.
struct Replica {
    name: &'static str,
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Replica {
    /// Starts the binary on an ephemeral port with the fleet's settings and
    /// waits until it is ready and hears the fleet's channel.
    fn start(name: &'static str, redis: &RedisServer, upstream: &SlowUpstream) -> Self {
        let mut child = Command::new(BINARY)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("POSITIONS_BIND", "127.0.0.1:0")
            .env("POSITIONS_SOURCE", format!("http://{}/", upstream.addr))
            .env("REDIS_URL", redis.url())
            .env("REFRESH_TIMEOUT_MS", REFRESH_TIMEOUT.as_millis().to_string())
            .env("FLEET_LEASE_MS", LEASE.as_millis().to_string())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info,positions_api=debug,cache_redis=debug")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("the binary starts");
        let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let addr = support::listening_addr(&support::until_listening(&mut lines, |line| {
            log.lock().expect("lock").push(line);
        }));
        // Keep draining the log so the child never blocks on a full pipe.
        let kept = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().expect("lock").push(line);
            }
        });
        let replica = Self { name, child, addr, log };
        wait_until(&format!("replica {name} is ready and subscribed"), || {
            matches!(try_get(&replica.addr, "/readyz"), Ok((200, _)))
                && replica.metric("position_cache_fleet_subscribed") == Some(1)
        });
        replica
    }

    /// The value of one series on `/metrics` (`name{labels}`), if shown.
    /// Every series read here is a count, shown as an integer.
    fn metric(&self, series: &str) -> Option<u64> {
        let (_, text) = try_get(&self.addr, "/metrics").ok()?;
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// `position_cache_fleet_leases_total{event}`, zero if not shown.
    fn leases(&self, event: &str) -> u64 {
        self.metric(&format!("position_cache_fleet_leases_total{{event=\"{event}\"}}")).unwrap_or(0)
    }

    /// `SIGKILL`: no shutdown, no lease released.
    fn kill(&mut self) {
        self.child.kill().expect("killed");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- replica {} ({}) log ---", self.name, self.addr);
            for line in self.log.lock().map(|log| log.clone()).unwrap_or_default() {
                eprintln!("{line}");
            }
        }
    }
}

/// A request on its thread: the thread returns the answer and when it came.
type Asking = std::thread::JoinHandle<(Result<(u16, String), String>, Instant)>;

/// Asks `addr` for [`WALLET`] on a thread of its own.
fn ask(addr: &str) -> Asking {
    let addr = addr.to_owned();
    std::thread::spawn(move || {
        let answer = try_get(&addr, &format!("/v4/positions/{WALLET}"));
        (answer, Instant::now())
    })
}

#[test]
fn when_the_lease_holder_is_killed_mid_load_the_others_take_over_and_answer_every_request() {
    let redis = RedisServer::start();
    let upstream = SlowUpstream::start();
    let mut a = Replica::start("A", &redis, &upstream);
    let b = Replica::start("B", &redis, &upstream);
    let c = Replica::start("C", &redis, &upstream);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let lease_key = format!("poscache:loadlock:v2:{{{WALLET}}}");

    // A takes the wallet's lease and starts the slow load.
    let lost = ask(&a.addr);
    wait_until("the upstream is asked once, under A's lease", || {
        upstream.asked() == 1 && runtime.block_on(redis.get_raw(&lease_key)).is_some()
    });

    // B and C find the lease held and wait for A's result.
    let waiting: Vec<_> = [&b, &c].iter().flat_map(|replica| (0..3).map(|_| ask(&replica.addr))).collect();
    wait_until("B and C each wait for A's lease", || b.leases("contended") >= 1 && c.leases("contended") >= 1);

    a.kill();
    let killed = Instant::now();
    assert!(lost.join().expect("A's client ran").0.is_err(), "a killed replica cannot answer");

    // A correctness bound, not a speed target: from the kill, A's lease may
    // live for up to LEASE more; then the replica that takes it over loads
    // once (LOAD). A second LOAD is the margin the fleet gives a waiter
    // (its load limit allows a wait for a lease and then a call of its
    // own); whether such a call happened is checked by the upstream's
    // count below, not by the clock. The slack covers the waiters' polls of
    // the lease (at most 200 ms apart), a few Redis round trips and two
    // busy cores.
    let bound = LEASE + LOAD * 2 + Duration::from_secs(1);
    for (i, request) in waiting.into_iter().enumerate() {
        let (answer, at) = request.join().expect("a client ran");
        let replica = if i < 3 { "B" } else { "C" };
        let (status, body) = answer.unwrap_or_else(|e| panic!("request {i} to {replica} failed: {e}"));
        assert_eq!(status, 200, "request {i} to {replica}: {body}");
        let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON positions");
        assert_eq!(answer["positions"][0]["symbol"], "SLOW", "request {i} to {replica}: {body}");
        let took = at.saturating_duration_since(killed);
        assert!(took <= bound, "request {i} to {replica} answered {took:?} after the kill, more than {bound:?}");
    }

    // A's lost load, and one by whichever of B and C took the lease over;
    // the other adopted its result from tier 2.
    let (b_taken, c_taken) = (b.leases("taken_over"), c.leases("taken_over"));
    assert_eq!(
        upstream.asked(),
        2,
        "upstream loads (B took over {b_taken}, C took over {c_taken}; contended B {}, C {})",
        b.leases("contended"),
        c.leases("contended")
    );
    assert_eq!(b_taken + c_taken, 1, "takeovers: B {b_taken}, C {c_taken}");
}
