//! The `cache-core` section: speed against other Rust caches, memory per
//! entry, and the hit ratio against Che's approximation.

use std::fmt::Write as _;

use anyhow::{Context, Result};

use super::Mode;
use super::report::{criterion_median_ns, table, verdict};
use crate::cmd::{cargo, root, run};

const OURS: &str = "cache-core";
const PEERS: [&str; 4] = ["quick_cache", "moka", "lru+Mutex", "hashlink+Mutex"];

/// One contender's medians.
struct Speed {
    get_ns: f64,
    insert_ns: f64,
    mix_mops: [f64; 2],
}

impl Speed {
    fn read(name: &str) -> Result<Self> {
        let mix = |threads: u32| -> Result<f64> {
            let ns = criterion_median_ns(&format!("zipf_mix/{name}/{threads}_threads"))?;
            // One iteration is one operation on each thread.
            Ok(f64::from(threads) * 1e3 / ns)
        };
        Ok(Self {
            get_ns: criterion_median_ns(&format!("get_hit/{name}"))?,
            insert_ns: criterion_median_ns(&format!("insert_evict/{name}"))?,
            mix_mops: [mix(1)?, mix(2)?],
        })
    }
}

pub(crate) fn run_section(mode: Mode) -> Result<String> {
    let timing: &[&str] = match mode {
        Mode::Full => &[],
        Mode::Quick => &["--warm-up-time", "0.5", "--measurement-time", "1", "--sample-size", "20"],
    };
    run(cargo().args(["bench", "--locked", "-p", "cache-core", "--bench", "cache", "--"]).args(timing))?;

    let memory_file = root().join("target/bench-results/cache-core-memory.tsv");
    std::fs::create_dir_all(memory_file.parent().context("results directory")?)?;
    run(cargo().args(["bench", "--locked", "-p", "cache-core", "--bench", "memory"]).env("BENCH_OUT", &memory_file))?;
    let memory = std::fs::read_to_string(&memory_file)?;

    let hit_ratio_cmd =
        ["test", "--locked", "--release", "-p", "cache-core", "--test", "hit_ratio", "--", "--nocapture"];
    eprintln!("==> cargo {}", hit_ratio_cmd.join(" "));
    let out = cargo().args(hit_ratio_cmd).output()?;
    anyhow::ensure!(out.status.success(), "the hit-ratio check failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let hit_ratio: Vec<String> =
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with("alpha")).map(str::to_owned).collect();

    let ours = Speed::read(OURS)?;
    let peers: Vec<(&str, Speed)> = PEERS.iter().map(|p| Ok((*p, Speed::read(p)?))).collect::<Result<_>>()?;
    Ok(render(&ours, &peers, &memory, &hit_ratio))
}

fn render(ours: &Speed, peers: &[(&str, Speed)], memory: &str, hit_ratio: &[String]) -> String {
    let mut s = String::from(
        "## cache-core against other Rust caches\n\n\
         `cargo bench -p cache-core --bench cache`: criterion medians, `u64` keys and values. \
         *get hit*: a get that hits, over 10,000 present keys in shuffled order; \
         *insert+evict*: an insert of a new key into a full cache of 10,000; \
         *Zipf mix*: Zipf(0.99) over 100,000 keys into a cache of 10,000, 90% gets and 10% inserts, \
         total operations per second across the threads. `cache-core` runs with a real TTL policy, \
         so every get also reads the clock and classifies freshness.\n\n",
    );
    let fmt_row = |name: &str, sp: &Speed| {
        vec![
            format!("`{name}`"),
            format!("{:.1}", sp.get_ns),
            format!("{:.1}", sp.insert_ns),
            format!("{:.1}", sp.mix_mops[0]),
            format!("{:.1}", sp.mix_mops[1]),
        ]
    };
    let mut rows = vec![fmt_row(OURS, ours)];
    rows.extend(peers.iter().map(|(n, sp)| fmt_row(n, sp)));
    s.push_str(&table(
        &["cache", "get hit (ns)", "insert+evict (ns)", "Zipf mix, 1 thread (Mops/s)", "Zipf mix, 2 threads (Mops/s)"],
        &rows,
    ));

    s.push_str(
        "\nRatios, ours/peer. For times, below 1 means `cache-core` is faster; \
         for throughput, above 1 means `cache-core` is faster.\n\n",
    );
    let ratio_rows: Vec<Vec<String>> = peers
        .iter()
        .map(|(n, p)| {
            vec![
                format!("`{n}`"),
                format!("{:.2}", ours.get_ns / p.get_ns),
                format!("{:.2}", ours.insert_ns / p.insert_ns),
                format!("{:.2}", ours.mix_mops[0] / p.mix_mops[0]),
                format!("{:.2}", ours.mix_mops[1] / p.mix_mops[1]),
            ]
        })
        .collect();
    s.push_str(&table(
        &["peer", "get hit time", "insert+evict time", "Zipf 1 thread throughput", "Zipf 2 threads throughput"],
        &ratio_rows,
    ));

    if let Some((_, quick)) = peers.iter().find(|(n, _)| *n == "quick_cache") {
        let get = ours.get_ns / quick.get_ns;
        let mix = ours.mix_mops[1] / quick.mix_mops[1];
        let _ = write!(
            s,
            "\nTargets against `quick_cache` in this run:\n\n\
             - get on a hit within 1.1x of its time: {get:.2}x, {};\n\
             - 2-thread Zipf mix at least its throughput: {mix:.2}x, {}.\n",
            verdict(get <= 1.1),
            verdict(mix >= 1.0)
        );
    }

    s.push_str(
        "\n### Memory per entry\n\n\
         `cargo bench -p cache-core --bench memory`: each cache in a fresh process, filled with \
         1,000,000 `u64 -> u64` entries; growth of the resident set per entry held, and that less the \
         16 bytes of key and value. Resident memory includes the allocator's headers and rounding and \
         the hash tables' spare capacity, so it is higher than a count of the structures' own bytes \
         (quick_cache documents 21 bytes; Caffeine 64 to 80).\n\n",
    );
    let rows: Vec<Vec<String>> = memory
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() == 4).then(|| vec![format!("`{}`", f[0]), f[1].to_owned(), f[2].to_owned(), f[3].to_owned()])
        })
        .collect();
    s.push_str(&table(&["cache", "entries held", "bytes per entry", "beyond key and value"], &rows));

    s.push_str(
        "\n### Hit ratio against theory\n\n\
         `cargo test --release -p cache-core --test hit_ratio -- --nocapture`: a seeded \
         independent-reference Zipf workload over 100,000 keys (500,000 requests of warm-up, then \
         1,000,000 measured) against Che's approximation for an LRU of the same capacity. The test \
         fails if one shard strays more than 1.5 points from theory or the default sharding more \
         than 2 points from one shard.\n\n",
    );
    for line in hit_ratio {
        let _ = writeln!(s, "- {line}");
    }
    s.push('\n');
    s
}
