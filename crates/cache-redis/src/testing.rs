//! A real `redis-server` for tests: listening on a Unix socket in a
//! temporary directory of its own, killed when dropped. Tests may kill,
//! restart, freeze and thaw it to stage outages.
//!
//! Why a Unix socket rather than a TCP port: a free TCP port can only be
//! picked by binding it, releasing it and letting the server bind it later,
//! and in between another test's server may take it; a test could then
//! talk to (and kill the data of) someone else's Redis without noticing. A
//! socket path inside a directory only this server uses cannot be taken by
//! anyone else, and stays the same across a [`restart`](RedisServer::restart).
//! The server's own pid is checked too (`INFO server`'s `process_id`), so a
//! test can never take another process for its server.
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
//!
//! [`RedisCluster`] is the same for Redis Cluster: six nodes on loopback
//! ports (three primaries, three replicas) that a test may kill and
//! reshard.

mod cluster;

pub use cluster::{NODE_TIMEOUT, Primary, RedisCluster};

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use deadpool_redis::redis::{self, aio::MultiplexedConnection};

/// How long a server may take to answer its first `PING`.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// The socket's file name in the server's directory.
const SOCKET: &str = "redis.sock";

/// A `redis-server` process on a Unix socket of its own (no TCP), with no
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
/// assert!(server.url().starts_with("redis+unix:///"));
/// server.set_raw("greeting", b"hello").await;
/// assert_eq!(server.get_raw("greeting").await.as_deref(), Some(&b"hello"[..]));
///
/// server.restart(); // same socket, empty: nothing is persisted
/// assert_eq!(server.get_raw("greeting").await, None);
/// # }
/// ```
#[derive(Debug)]
pub struct RedisServer {
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
        // A directory left by an earlier process with the same pid is
        // stale: start clean.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let mut server = Self { password, dir, child: None };
        if let Err(log) = server.spawn_and_wait() {
            panic!("redis-server did not start on {}: {log}", server.socket().display());
        }
        server
    }

    /// `redis+unix:///{dir}/redis.sock`, with `?pass=…` for a server with a
    /// password. The service's `REDIS_URL` accepts it as it is.
    pub fn url(&self) -> String {
        let socket = self.socket();
        match &self.password {
            Some(password) => format!("redis+unix://{}?pass={password}", socket.display()),
            None => format!("redis+unix://{}", socket.display()),
        }
    }

    /// The path of the Unix socket it listens on; it stays the same across
    /// restarts.
    pub fn socket(&self) -> PathBuf {
        self.dir.join(SOCKET)
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
    /// socket and waits until it answers `PING`.
    ///
    /// # Panics
    ///
    /// If the new server does not answer within 10 s.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(log) = self.spawn_and_wait() {
            panic!("redis-server did not restart on {}: {log}", self.socket().display());
        }
    }

    /// Stops the server with `SIGSTOP`: it keeps its socket and connections
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

    /// Puts the server over its memory limit with eviction off: 2 MB of
    /// keys `filler:N`, then `maxmemory 1mb` and `maxmemory-policy
    /// noeviction`. From then on it answers every write with `OOM` and
    /// still serves reads. (Filled first and limited after, so the server
    /// stays well over the limit whatever its clients' buffers do, rather
    /// than hovering at it.)
    ///
    /// # Panics
    ///
    /// If the server does not answer, or does not refuse a write after.
    pub async fn fill_to_out_of_memory(&self) {
        let mut connection = self.connection().await;
        let filler = [b'x'; 1024];
        let mut pipeline = redis::pipe();
        for i in 0..2048 {
            pipeline.cmd("SET").arg(format!("filler:{i}")).arg(&filler[..]).ignore();
        }
        let () = pipeline.query_async(&mut connection).await.expect("fill");
        for (name, value) in [("maxmemory-policy", "noeviction"), ("maxmemory", "1mb")] {
            let () = redis::cmd("CONFIG")
                .arg("SET")
                .arg(name)
                .arg(value)
                .query_async(&mut connection)
                .await
                .expect("CONFIG SET");
        }
        let refused: redis::RedisResult<()> = redis::cmd("SET").arg("probe").arg(1).query_async(&mut connection).await;
        let error = refused.expect_err("a write over maxmemory is refused");
        assert_eq!(error.code(), Some("OOM"), "{error}");
    }

    /// Runs one command (`["CLIENT", "KILL", "TYPE", "pubsub"]`) on a
    /// connection of its own and returns its reply.
    ///
    /// # Panics
    ///
    /// If the server does not answer or answers with an error.
    pub async fn command(&self, args: &[&str]) -> redis::Value {
        let mut connection = self.connection().await;
        let (name, rest) = args.split_first().expect("a command");
        let mut command = redis::cmd(name);
        for arg in rest {
            command.arg(*arg);
        }
        command.query_async(&mut connection).await.unwrap_or_else(|e| panic!("{args:?}: {e}"))
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

    /// Spawns the server on its socket and waits until it answers `PING`
    /// and says it is this child; on failure, returns the end of its log.
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log = self.dir.join("redis.log");
        let socket = self.socket();
        let _ = std::fs::remove_file(&log);
        let mut command = Command::new("redis-server");
        // `--port 0`: no TCP listener at all, so nothing of this server can
        // be reached, or taken, through a port.
        command
            .args(["--port", "0", "--unixsocketperm", "700", "--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(&socket)
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
        let pid = child.id();
        self.child = Some(child);
        let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            match server_pid(&socket, self.password.as_deref()) {
                Some(answered) if answered == pid => return Ok(()),
                Some(other) => {
                    self.kill();
                    return Err(format!("process {other} answers on its socket, not the server started ({pid})"));
                }
                None => {}
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

/// The pid of the Redis answering on `socket` (`INFO server`'s
/// `process_id`, after `AUTH` if there is a password); `None` if nothing
/// answers there yet.
fn server_pid(socket: &Path, password: Option<&str>) -> Option<u32> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    if let Some(password) = password {
        write!(stream, "AUTH {password}\r\n").ok()?;
    }
    stream.write_all(b"INFO server\r\n").ok()?;
    // The reply is a bulk string of `field:value` lines; read lines until
    // the pid shows (an `-ERR` or `-LOADING` reply means not ready yet).
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 || line.starts_with('-') {
            return None;
        }
        if let Some(pid) = line.trim_end().strip_prefix("process_id:") {
            return pid.parse().ok();
        }
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a server answers on `socket`.
    fn answers(socket: &Path) -> bool {
        UnixStream::connect(socket).is_ok_and(|mut stream| {
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let mut reply = [0_u8; 1];
            stream.write_all(b"PING\r\n").is_ok() && matches!(std::io::Read::read(&mut stream, &mut reply), Ok(1))
        })
    }

    #[test]
    fn starts_answers_and_stops() {
        let mut server = RedisServer::start();
        let socket = server.socket();
        assert!(answers(&socket));
        assert_eq!(server.url(), format!("redis+unix://{}", socket.display()));
        server.kill();
        assert!(!answers(&socket), "killed and waited for");
        server.restart();
        assert_eq!(server.socket(), socket);
        assert!(answers(&socket));
        let dir = server.dir.clone();
        drop(server);
        assert!(!answers(&socket));
        assert!(!dir.exists(), "its directory is removed");
    }

    #[test]
    fn the_server_answering_is_its_own_child() {
        let (a, b) = (RedisServer::start(), RedisServer::start());
        assert_ne!(a.socket(), b.socket());
        assert_eq!(server_pid(&a.socket(), None), Some(a.pid()));
        assert_eq!(server_pid(&b.socket(), None), Some(b.pid()));
    }

    #[tokio::test]
    async fn a_password_server_is_up_and_its_url_authenticates() {
        let server = RedisServer::start_with_password("hunter2");
        assert_eq!(server.url(), format!("redis+unix://{}?pass=hunter2", server.socket().display()));
        assert_eq!(server_pid(&server.socket(), Some("hunter2")), Some(server.pid()));
        server.set_raw("a", b"1").await;
        assert_eq!(server.get_raw("a").await.as_deref(), Some(&b"1"[..]));
    }
}
