//! How long a [`RedisTier::get`] of a ~2 KB value takes, next to a bare
//! redis-rs `GET` of the same key on one multiplexed connection (the floor
//! the tier is measured against) and a bare `GETRANGE key 0 1048576` (what
//! the tier sends, so that a value over its size limit is never read
//! whole).
//!
//! ```text
//! cargo run --release -p cache-redis --example get_latency --features testing
//! cargo run --release -p cache-redis --example get_latency --features testing -- --gets 20000 --concurrency 32
//! ```
//!
//! It starts a throwaway `redis-server` (see `cache_redis::testing`),
//! stores one value, and then:
//!
//! 1. runs `--gets` sequential gets through each client (20,000 by
//!    default), in alternating blocks so that noise from other processes
//!    on the machine falls on both alike, and prints p50, p99 and mean;
//! 2. with `--concurrency C` (C > 0), runs C tasks doing gets for
//!    `--seconds` (2 by default) through each client and prints the rate.
//!
//! Both clients run on the same multi-threaded tokio runtime as the
//! service does. The machine is shared: run it a few times and compare
//! within one run, not across runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use cache_redis::testing::RedisServer;
use cache_redis::{Config, RedisTier};
use deadpool_redis::redis::{self, aio::MultiplexedConnection};

/// The id (and so the key) every get reads.
const ID: &str = "0x52908400098527886e0f7030069857d2e4169ee7";

/// Sequential gets per block; the blocks of the two clients alternate.
const BLOCK: usize = 2_000;

struct Args {
    gets: usize,
    concurrency: usize,
    seconds: u64,
}

fn parse_args() -> Args {
    let mut args = Args { gets: 20_000, concurrency: 0, seconds: 2 };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let value = given.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        let number = || value.parse::<usize>().unwrap_or_else(|e| panic!("{flag} {value}: {e}"));
        match flag.as_str() {
            "--gets" => args.gets = number(),
            "--concurrency" => args.concurrency = number(),
            "--seconds" => args.seconds = u64::try_from(number()).expect("a usize fits a u64"),
            other => panic!("unknown flag {other}; expected --gets N, --concurrency C, --seconds S"),
        }
    }
    args
}

fn main() {
    let args = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    runtime.block_on(run(&args));
}

async fn run(args: &Args) {
    let server = RedisServer::start();
    let tier = RedisTier::new(Config::new(server.url())).expect("a valid configuration");
    // Token addresses, as a wallet's positions would list them: ~2 KB once
    // encoded.
    let value: Vec<String> = (0..46_u64).map(|i| format!("0x{:040x}", i * 0x9e37_79b9_7f4a_7c15)).collect();
    tier.set(ID, &value, SystemTime::now(), Duration::from_secs(3600)).await.expect("store the value");
    let key = format!("poscache:positions:v2:{{{ID}}}");
    let size = server.get_raw(&key).await.expect("stored").len();
    let mut plain = server.connection().await;

    // Warm both up: connections made, caches and branch predictors settled.
    for _ in 0..1_000 {
        tier_get(&tier).await;
        plain_get(&mut plain, &key).await;
    }

    let (mut tier_samples, mut plain_samples) = (Vec::with_capacity(args.gets), Vec::with_capacity(args.gets));
    let mut range_samples = Vec::with_capacity(args.gets);
    while tier_samples.len() < args.gets {
        let block = BLOCK.min(args.gets - tier_samples.len());
        for _ in 0..block {
            let started = Instant::now();
            plain_get(&mut plain, &key).await;
            plain_samples.push(started.elapsed());
        }
        for _ in 0..block {
            let started = Instant::now();
            plain_getrange(&mut plain, &key).await;
            range_samples.push(started.elapsed());
        }
        for _ in 0..block {
            let started = Instant::now();
            tier_get(&tier).await;
            tier_samples.push(started.elapsed());
        }
    }
    let plain_stats = Stats::of(&mut plain_samples);
    let range_stats = Stats::of(&mut range_samples);
    let tier_stats = Stats::of(&mut tier_samples);
    println!("value: {size} bytes; {} sequential gets per client, in blocks of {BLOCK}", args.gets);
    println!("{:<34} {:>10} {:>10} {:>10}", "client", "p50", "p99", "mean");
    plain_stats.print("redis-rs GET, one connection");
    range_stats.print("redis-rs GETRANGE 0 1MiB");
    tier_stats.print("RedisTier::get");
    println!(
        "GETRANGE / GET: p50 {:.2}, p99 {:.2}",
        range_stats.p50.as_secs_f64() / plain_stats.p50.as_secs_f64(),
        range_stats.p99.as_secs_f64() / plain_stats.p99.as_secs_f64()
    );
    println!(
        "tier / plain: p50 {:.2}, p99 {:.2}",
        tier_stats.p50.as_secs_f64() / plain_stats.p50.as_secs_f64(),
        tier_stats.p99.as_secs_f64() / plain_stats.p99.as_secs_f64()
    );

    if args.concurrency > 0 {
        let duration = Duration::from_secs(args.seconds);
        let (connection, key) = (plain.clone(), Arc::new(key));
        let plain_rate = rate(args.concurrency, duration, move || {
            let (mut connection, key) = (connection.clone(), Arc::clone(&key));
            async move { plain_get(&mut connection, &key).await }
        })
        .await;
        let tier = tier.clone();
        let tier_rate = rate(args.concurrency, duration, move || {
            let tier = tier.clone();
            async move { tier_get(&tier).await }
        })
        .await;
        println!("{} concurrent tasks for {duration:?}:", args.concurrency);
        println!("{:<34} {:>10.0} gets/s", "redis-rs GET, one connection", plain_rate);
        println!("{:<34} {:>10.0} gets/s", "RedisTier::get", tier_rate);
        println!("(every task reads the same key, so the tier's concurrent gets share round trips)");
    }
}

async fn tier_get(tier: &RedisTier) {
    let stored = tier.get::<Vec<String>>(ID).await.expect("the tier answers");
    assert!(stored.is_some(), "the value is there");
}

async fn plain_get(connection: &mut MultiplexedConnection, key: &str) {
    let bytes: Option<Vec<u8>> = redis::cmd("GET").arg(key).query_async(connection).await.expect("GET");
    assert!(bytes.is_some(), "the value is there");
}

async fn plain_getrange(connection: &mut MultiplexedConnection, key: &str) {
    let bytes: Vec<u8> =
        redis::cmd("GETRANGE").arg(key).arg(0).arg(1 << 20).query_async(connection).await.expect("GETRANGE");
    assert!(!bytes.is_empty(), "the value is there");
}

/// Runs `tasks` tasks, each doing `get` in a loop for `duration`; returns
/// gets per second.
async fn rate<F, Fut>(tasks: usize, duration: Duration, get: F) -> f64
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (stop, done) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let get = Arc::new(get);
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (stop, done, get) = (Arc::clone(&stop), Arc::clone(&done), Arc::clone(&get));
            tokio::spawn(async move {
                let mut count = 0;
                while !stop.load(Ordering::Relaxed) {
                    get().await;
                    count += 1;
                }
                done.fetch_add(count, Ordering::Relaxed);
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        handle.await.expect("a get task");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

struct Stats {
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

impl Stats {
    fn of(samples: &mut [Duration]) -> Self {
        samples.sort_unstable();
        let at = |per_mille: usize| samples[(samples.len() - 1) * per_mille / 1000];
        let total: Duration = samples.iter().sum();
        Self { p50: at(500), p99: at(990), mean: total / u32::try_from(samples.len()).expect("few samples") }
    }

    fn print(&self, name: &str) {
        println!("{name:<34} {:>10.1?} {:>10.1?} {:>10.1?}", self.p50, self.p99, self.mean);
    }
}
