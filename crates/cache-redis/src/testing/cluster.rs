//! A real Redis Cluster for tests: six `redis-server --cluster-enabled yes`
//! processes on loopback (three primaries, one replica each), joined by
//! `redis-cli --cluster create --cluster-replicas 1`, killed on drop.
//!
//! Cluster nodes speak TCP to each other (the cluster bus listens on the
//! node's port plus 10000), so unlike [`RedisServer`](super::RedisServer)
//! these listen on ports, not sockets. A port is picked by binding it (and
//! its bus port) and releasing both just before the server starts; another
//! process could take one in between, so every node is checked to be the
//! process this harness started (`INFO server`'s `process_id`) before it is
//! used, and a start that loses that race is retried on fresh ports.
//!
//! `cluster-node-timeout` is short ([`NODE_TIMEOUT`]), so that a killed
//! primary is replaced within a second or two, and replicas may always take
//! over (`cluster-replica-validity-factor 0`). What it is not: a model of a
//! production cluster's timings.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use deadpool_redis::redis;

use crate::topology;

/// The nodes' `cluster-node-timeout`: how long a primary may be silent
/// before the others count it as failing.
pub const NODE_TIMEOUT: Duration = Duration::from_millis(500);

/// How long the cluster may take to form, or to settle after a change.
const SETTLE_DEADLINE: Duration = Duration::from_secs(30);

/// How many times a start is tried on fresh ports.
const ATTEMPTS: usize = 3;

/// One node of a [`RedisCluster`].
#[derive(Debug)]
struct Node {
    port: u16,
    child: Option<Child>,
}

/// Three primaries and three replicas on loopback, killed (and their
/// directory removed) on drop.
///
/// # Panics
///
/// Its methods panic when the cluster cannot be started, controlled or
/// read: it is for tests, where that is the right failure.
///
/// # Examples
///
/// ```no_run
/// use cache_redis::testing::RedisCluster;
///
/// let cluster = RedisCluster::start();
/// assert_eq!(cluster.primaries().len(), 3);
/// assert!(cluster.seeds().starts_with("redis://127.0.0.1:"));
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    dir: PathBuf,
    nodes: Vec<Node>,
}

/// A primary as the cluster describes it: its address and the slots it
/// serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Primary {
    /// The node's id (`CLUSTER MYID`).
    pub id: String,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// How many of the 16,384 slots it serves.
    pub slots: usize,
}

impl RedisCluster {
    /// Starts six nodes, creates the cluster and waits until every node
    /// reports `cluster_state:ok` and agrees on the slots.
    ///
    /// # Panics
    ///
    /// If `redis-server` or `redis-cli` is missing, or the cluster does not
    /// form within 30 s (three tries on fresh ports).
    pub fn start() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            let dir = std::env::temp_dir().join(format!(
                "cache-redis-cluster-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
            let mut cluster = Self { dir, nodes: Vec::new() };
            match cluster.form() {
                Ok(()) => return cluster,
                Err(why) => last = why,
            }
        }
        panic!("the test cluster did not form: {last}");
    }

    /// A cluster shared by the tests of one test binary that leave it as
    /// they found it (each in a key namespace of its own): started by the
    /// first that asks, stopped when the last one holding it drops it. A
    /// test that kills or reshards nodes starts its own.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn shared() -> Arc<Self> {
        static SHARED: Mutex<Weak<RedisCluster>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cluster) = shared.upgrade() {
            return cluster;
        }
        let cluster = Arc::new(Self::start());
        *shared = Arc::downgrade(&cluster);
        cluster
    }

    fn form(&mut self) -> Result<(), String> {
        for port in free_ports(6)? {
            let child = self.spawn(port)?;
            self.nodes.push(Node { port, child: Some(child) });
        }
        for node in &self.nodes {
            let pid = node.child.as_ref().map(Child::id);
            wait_for(&format!("node {} to answer", node.port), || {
                server_pid(node.port).is_some_and(|answered| Some(answered) == pid)
            })?;
        }
        let addresses: Vec<String> = self.nodes.iter().map(|node| format!("127.0.0.1:{}", node.port)).collect();
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run redis-cli (on Debian or Ubuntu: `apt-get install redis-tools`): {e}"))?;
        if !output.status.success() {
            return Err(format!("redis-cli --cluster create failed: {}", String::from_utf8_lossy(&output.stdout)));
        }
        self.wait_settled()
    }

    fn spawn(&self, port: u16) -> Result<Child, String> {
        let dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let timeout = NODE_TIMEOUT.as_millis().to_string();
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout", &timeout])
            .args(["--cluster-replica-validity-factor", "0", "--cluster-config-file", "nodes.conf"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => "redis-server is not installed".to_owned(),
                _ => format!("cannot start redis-server: {e}"),
            })
    }

    /// The seed list the service's `REDIS_URL` takes in cluster mode:
    /// every node, `redis://127.0.0.1:P` joined by commas.
    pub fn seeds(&self) -> String {
        self.urls().join(",")
    }

    /// One `redis://127.0.0.1:P` per node, killed ones included.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|node| format!("redis://127.0.0.1:{}", node.port)).collect()
    }

    /// The primaries as a live node sees them now, by port.
    ///
    /// # Panics
    ///
    /// If no node answers.
    pub fn primaries(&self) -> Vec<Primary> {
        let mut primaries: Vec<Primary> = self
            .shards()
            .into_iter()
            .filter_map(|(port, id, slots)| (slots > 0).then_some(Primary { id, port, slots }))
            .collect();
        primaries.sort_by_key(|primary| primary.port);
        primaries
    }

    /// The port of the primary that serves `key` now.
    ///
    /// # Panics
    ///
    /// If no node answers.
    pub fn port_of_key(&self, key: &str) -> u16 {
        let slot: u16 = self.query(&["CLUSTER", "KEYSLOT", key]);
        let nodes: String = self.query(&["CLUSTER", "NODES"]);
        topology::primaries(&nodes)
            .into_iter()
            .find(|node| node.ranges.iter().any(|&(from, to)| (from..=to).contains(&slot)))
            .map_or_else(|| panic!("no primary serves slot {slot}"), |node| node.port)
    }

    /// Kills the node on `port` with `SIGKILL` and waits until it has
    /// exited.
    ///
    /// # Panics
    ///
    /// If no node of this cluster listens on `port`.
    pub fn kill(&mut self, port: u16) {
        let node = self.nodes.iter_mut().find(|node| node.port == port).expect("a node of this cluster");
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until every live node reports `cluster_state:ok`, all 16,384
    /// slots are served by live primaries, and the live nodes agree on who
    /// serves them: after a failover, the replica has been promoted and
    /// everyone knows.
    ///
    /// # Panics
    ///
    /// If that does not happen within 30 s.
    pub fn wait_until_healthy(&self) {
        if let Err(why) = self.wait_settled() {
            panic!("{why}");
        }
    }

    /// Moves `slots` slots from the primary `from` to the primary `to`
    /// (node ids) with `redis-cli --cluster reshard`, keys included, and
    /// returns when it is done.
    ///
    /// # Panics
    ///
    /// If `redis-cli` fails.
    pub fn reshard(&self, from: &str, to: &str, slots: usize) {
        let seed = format!("127.0.0.1:{}", self.live_port());
        let output = Command::new("redis-cli")
            .args(["--cluster", "reshard", &seed, "--cluster-from", from, "--cluster-to", to])
            .args(["--cluster-slots", &slots.to_string(), "--cluster-yes", "--cluster-pipeline", "100"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster reshard");
        assert!(
            output.status.success(),
            "redis-cli --cluster reshard failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Runs one command on the node on `port` and returns its reply.
    ///
    /// # Panics
    ///
    /// If the node does not answer, or answers with an error.
    pub fn command_on<T: redis::FromRedisValue>(&self, port: u16, args: &[&str]) -> T {
        let mut connection = connect(port).unwrap_or_else(|e| panic!("connect to node {port}: {e}"));
        command(args).query(&mut connection).unwrap_or_else(|e| panic!("{args:?} on node {port}: {e}"))
    }

    /// The bytes stored under `key`, read from the primary that serves it.
    ///
    /// # Panics
    ///
    /// If that primary does not answer.
    pub fn get_raw(&self, key: &str) -> Option<Vec<u8>> {
        self.command_on(self.port_of_key(key), &["GET", key])
    }

    /// How many keys the primaries hold in all (`DBSIZE` on each).
    ///
    /// # Panics
    ///
    /// If a primary does not answer.
    pub fn key_count(&self) -> u64 {
        self.primaries().iter().map(|primary| self.command_on::<u64>(primary.port, &["DBSIZE"])).sum()
    }

    /// Waits until every live replica holds as many keys as its primary:
    /// what was written before is on both, and survives a failover.
    ///
    /// # Panics
    ///
    /// If that does not happen within 30 s.
    pub fn wait_replicated(&self) {
        let result = wait_for("the replicas to catch up", || {
            let Ok(nodes) = connect(self.live_port())
                .and_then(|mut connection| command(&["CLUSTER", "NODES"]).query::<String>(&mut connection))
            else {
                return false;
            };
            let nodes = topology::parse(&nodes);
            let size = |port: u16| connect(port).and_then(|mut c| command(&["DBSIZE"]).query::<u64>(&mut c)).ok();
            nodes.iter().filter(|node| node.primary && !node.failing).all(|primary| {
                let replicas = nodes.iter().filter(|node| node.replica_of.as_deref() == Some(primary.id.as_str()));
                let expected = size(primary.port);
                replicas
                    .filter(|replica| !replica.failing)
                    .all(|replica| expected.is_some() && size(replica.port) == expected)
            })
        });
        if let Err(why) = result {
            panic!("{why}");
        }
    }

    fn query<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        self.command_on(self.live_port(), args)
    }

    fn live_port(&self) -> u16 {
        self.nodes.iter().find(|node| node.child.is_some()).expect("a live node").port
    }

    /// `(port, id, slot count)` for every node that a live node knows and
    /// does not count as failed.
    fn shards(&self) -> Vec<(u16, String, usize)> {
        let nodes: String = self.query(&["CLUSTER", "NODES"]);
        topology::parse(&nodes)
            .into_iter()
            .filter(|node| !node.failing)
            .map(|node| (node.port, node.slot_count(), node.id))
            .map(|(port, slots, id)| (port, id, slots))
            .collect()
    }

    fn wait_settled(&self) -> Result<(), String> {
        let live: Vec<u16> = self.nodes.iter().filter(|node| node.child.is_some()).map(|node| node.port).collect();
        wait_for("the cluster to settle", || {
            let mut views = Vec::new();
            for &port in &live {
                let Ok(mut connection) = connect(port) else { return false };
                let Ok(info) = command(&["CLUSTER", "INFO"]).query::<String>(&mut connection) else { return false };
                if !info.contains("cluster_state:ok") {
                    return false;
                }
                let Ok(nodes) = command(&["CLUSTER", "NODES"]).query::<String>(&mut connection) else { return false };
                let mut owners: HashMap<u16, Vec<(u16, u16)>> = HashMap::new();
                for node in topology::primaries(&nodes) {
                    if node.failing || !live.contains(&node.port) {
                        return false;
                    }
                    owners.insert(node.port, node.ranges);
                }
                let served: usize = owners.values().flatten().map(|&(from, to)| usize::from(to - from) + 1).sum();
                if served != 16_384 {
                    return false;
                }
                let mut view: Vec<_> = owners.into_iter().collect();
                view.sort_unstable();
                views.push(view);
            }
            views.windows(2).all(|pair| pair[0] == pair[1])
        })
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn connect(port: u16) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    client.get_connection_with_timeout(Duration::from_secs(1)).and_then(|connection| {
        connection.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(connection)
    })
}

fn command(args: &[&str]) -> redis::Cmd {
    let (name, rest) = args.split_first().expect("a command");
    let mut command = redis::cmd(name);
    for arg in rest {
        command.arg(*arg);
    }
    command
}

/// The pid of the Redis answering on `port`, if one does.
fn server_pid(port: u16) -> Option<u32> {
    let mut connection = connect(port).ok()?;
    let info: String = redis::cmd("INFO").arg("server").query(&mut connection).ok()?;
    info.lines().find_map(|line| line.trim_end().strip_prefix("process_id:")?.parse().ok())
}

/// `count` ports whose cluster bus port (plus 10000) was free too, when
/// looked at.
fn free_ports(count: usize) -> Result<Vec<u16>, String> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < count {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot bind a port: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let Some(bus) = port.checked_add(10_000) else { continue };
        let Ok(bus_listener) = TcpListener::bind(("127.0.0.1", bus)) else { continue };
        held.push((listener, bus_listener));
        ports.push(port);
    }
    Ok(ports)
}

/// Polls `condition` until it holds, or fails after [`SETTLE_DEADLINE`].
fn wait_for(what: &str, mut condition: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + SETTLE_DEADLINE;
    while !condition() {
        if Instant::now() >= deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        // A pause between polls of a condition, not a wait for it.
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
