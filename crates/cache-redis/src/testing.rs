//! A real `redis-server` for tests: on a free port of its own, in a
//! temporary directory, killed when dropped. Tests may kill, restart,
//! freeze and thaw it to stage outages.
//!
//! Compiled for this crate's tests and, with the `testing` feature, for
//! other crates' tests. What it is not: a way to run Redis in production,
//! or a mock. It needs `redis-server` on the `PATH` (Debian and Ubuntu:
//! `apt-get install redis-server`), and fails with that advice if it is
//! missing.
//!
//! Starting and stopping are synchronous and take milliseconds; they wait
//! for a condition (the server answers `PING`, the process has exited) with
//! a deadline, never for a fixed time.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use deadpool_redis::redis::{self, aio::MultiplexedConnection};

/// How long a server may take to answer its first `PING`.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// How many fresh ports to try when another process takes the one picked.
const PORT_ATTEMPTS: u32 = 5;

/// A `redis-server` process on `127.0.0.1` and a free port, with no
/// persistence, killed (and its directory removed) on drop.
///
/// # Panics
///
/// Its methods panic when the server cannot be started or controlled: it
/// is for tests, where that is the right failure.
///
/// # Examples
///
/// ```
/// use cache_redis::testing::RedisServer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut server = RedisServer::start();
/// server.set_raw("greeting", b"hello").await;
/// assert_eq!(server.get_raw("greeting").await.as_deref(), Some(&b"hello"[..]));
///
/// server.restart(); // same port, empty: nothing is persisted
/// assert_eq!(server.get_raw("greeting").await, None);
/// # }
/// ```
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    password: Option<String>,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server and waits until it answers `PING`.
    ///
    /// # Panics
    ///
    /// If `redis-server` is not installed, or does not answer within 10 s.
    pub fn start() -> Self {
        Self::launch(None)
    }

    /// Starts a server that demands `password` (`--requirepass`); its
    /// [`url`](Self::url) carries the password.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_with_password(password: &str) -> Self {
        Self::launch(Some(password.to_owned()))
    }

    fn launch(password: Option<String>) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "cache-redis-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let mut server = Self { port: 0, password, dir, child: None };
        for attempt in 1..=PORT_ATTEMPTS {
            server.port = free_port();
            match server.spawn_and_wait() {
                Ok(()) => return server,
                // Another process took the port between our probe and the
                // server's bind; rare, so just pick another.
                Err(log) if attempt < PORT_ATTEMPTS && log.contains("Address already in use") => {}
                Err(log) => panic!("redis-server did not start on port {}: {log}", server.port),
            }
        }
        unreachable!("the last attempt panics or returns")
    }

    /// `redis://[:password@]127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server with `SIGKILL` (no shutdown, no goodbye to clients)
    /// and waits until it has exited. Killing a dead server does nothing.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL also ends a stopped (frozen) process.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server if it runs, then starts a new, empty one on the same
    /// port and waits until it answers `PING`.
    ///
    /// # Panics
    ///
    /// If the new server does not answer within 10 s.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                // The old socket may linger for a moment; try again until
                // the deadline.
                Err(log) if Instant::now() < deadline && log.contains("Address already in use") => {}
                Err(log) => panic!("redis-server did not restart on port {}: {log}", self.port),
            }
        }
    }

    /// Stops the server with `SIGSTOP`: it keeps its port and connections
    /// (new connections even complete, in the kernel) but answers nothing,
    /// like a hung host, until [`thaw`](Self::thaw).
    ///
    /// # Panics
    ///
    /// If the server is not running or the `kill` command fails.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes a frozen server with `SIGCONT`.
    ///
    /// # Panics
    ///
    /// As [`freeze`](Self::freeze).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    /// Stores `value` under `key` exactly as given, on a connection of its
    /// own (not the tier's pool): for planting garbage.
    ///
    /// # Panics
    ///
    /// If the server does not take it (it is down, frozen or refuses).
    pub async fn set_raw(&self, key: &str, value: &[u8]) {
        let mut connection = self.connection().await;
        let () = redis::cmd("SET").arg(key).arg(value).query_async(&mut connection).await.expect("SET");
    }

    /// The bytes stored under `key`, read on a connection of its own.
    ///
    /// # Panics
    ///
    /// If the server does not answer.
    pub async fn get_raw(&self, key: &str) -> Option<Vec<u8>> {
        let mut connection = self.connection().await;
        redis::cmd("GET").arg(key).query_async(&mut connection).await.expect("GET")
    }

    /// A plain connection of its own, for any other command a test needs.
    ///
    /// # Panics
    ///
    /// If it cannot connect.
    pub async fn connection(&self) -> MultiplexedConnection {
        let client = redis::Client::open(self.url()).expect("the test server's URL parses");
        client.get_multiplexed_async_connection().await.expect("connect to the test server")
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is not running").id()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("cannot run `kill {signal}`: {e}"));
        assert!(status.success(), "`kill {signal} {}` failed: {status}", self.pid());
    }

    /// Spawns the server on `self.port` and waits until it answers `PING`;
    /// on failure, returns the end of its log.
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log = self.dir.join("redis.log");
        let _ = std::fs::remove_file(&log);
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        let child = match command.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("redis-server is not installed (on Debian or Ubuntu: `apt-get install redis-server`)")
            }
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        self.child = Some(child);
        let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if answers_ping(self.port) {
                return Ok(());
            }
            let child = self.child.as_mut().expect("just spawned");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(format!("it exited ({status}); its log ends: {}", tail(&read_log())));
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(format!("no PING answer within {START_DEADLINE:?}; its log ends: {}", tail(&read_log())));
            }
            // A short pause between polls of a condition, not a wait for
            // it: the loop ends as soon as the server answers.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port that was free a moment ago: bind port 0, note what the kernel
/// chose, release it.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("a bound socket has an address").port()
}

/// Whether something on `port` answers `PING` with a RESP reply (`+PONG`,
/// or `-NOAUTH` from a server with a password: it is up either way).
fn answers_ping(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0_u8; 1];
    matches!(stream.read(&mut reply), Ok(1) if reply[0] == b'+' || reply[0] == b'-')
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_and_stops() {
        let mut server = RedisServer::start();
        let port = server.port();
        assert!(answers_ping(port));
        assert_eq!(server.url(), format!("redis://127.0.0.1:{port}"));
        server.kill();
        assert!(!answers_ping(port), "killed and waited for");
        server.restart();
        assert_eq!(server.port(), port);
        assert!(answers_ping(port));
        let dir = server.dir.clone();
        drop(server);
        assert!(!answers_ping(port));
        assert!(!dir.exists(), "its directory is removed");
    }

    #[test]
    fn two_servers_get_two_ports() {
        let (a, b) = (RedisServer::start(), RedisServer::start());
        assert_ne!(a.port(), b.port());
    }

    #[test]
    fn a_password_server_is_up_and_its_url_authenticates() {
        let server = RedisServer::start_with_password("hunter2");
        assert_eq!(server.url(), format!("redis://:hunter2@127.0.0.1:{}", server.port()));
        assert!(answers_ping(server.port()));
    }
}
