//! The stampede: 1,000 concurrent requests for one cold wallet, each on its
//! own connection, released together (benchkit's `load stampede`). The
//! service must call its upstream once for all of them (single flight);
//! the figure besides that count is the time until every request was
//! answered, next to the upstream's fixed delay.

use std::fmt::Write as _;

use anyhow::Result;

use super::Mode;
use super::figures::{latency, median, thousands};
use super::load::Load;
use super::report::{table, verdict};
use super::{probe, servers};

const REQUESTS: usize = 1_000;
/// A fixed delay, so that the time until all are answered reads as this
/// plus the service's own cost.
const UPSTREAM_DELAY_MS: u32 = 300;

/// One stampede.
#[derive(Debug)]
struct Stampede {
    wallet: String,
    load: Load,
    upstream_calls: f64,
}

pub(crate) fn run_section(mode: Mode) -> Result<String> {
    servers::build_release()?;
    let rounds = match mode {
        Mode::Full => 3,
        Mode::Quick => 1,
    };
    let dir = servers::scratch("stampede")?;
    let mut upstream = servers::slow_upstream(&dir, &UPSTREAM_DELAY_MS.to_string(), 10)?;
    let source = format!("http://{}", upstream.addr);
    let mut service = servers::service(&dir, "positions-api", &[("POSITIONS_SOURCE", source.as_str())], None)?;
    let mut stampedes = Vec::new();
    for round in 0..rounds {
        // A wallet nobody has asked for: cold in the service.
        let wallet = format!("0x{:040x}", 0x5747_a3ed_u64 + round);
        let calls_before = upstream_calls(&upstream)?;
        let load = Load::run(&[
            "stampede".into(),
            "--url".into(),
            service.url(&format!("/v4/positions/{wallet}")),
            "--requests".into(),
            REQUESTS.to_string(),
        ])?;
        let upstream_calls = upstream_calls(&upstream)? - calls_before;
        stampedes.push(Stampede { wallet, load, upstream_calls });
    }
    service.process.check_running()?;
    upstream.process.check_running()?;
    let commands = [upstream.process.shown().to_owned(), service.process.shown().to_owned()];
    render(&stampedes, &commands)
}

fn upstream_calls(upstream: &servers::Server) -> Result<f64> {
    Ok(probe::json(upstream.addr, "/stats")?["position_requests"].as_f64().unwrap_or(0.0))
}

fn render(stampedes: &[Stampede], commands: &[String]) -> Result<String> {
    let mut s = format!(
        "## Stampede on a cold wallet\n\n\
         {} concurrent requests for one wallet the service has not cached, each on its own connection, \
         opened beforehand and released together (benchkit's `load stampede`). The upstream \
         (`slow-upstream`) answers after a fixed {UPSTREAM_DELAY_MS} ms. *All answered* counts from the \
         release to the last answer.\n\n",
        thousands(REQUESTS as f64)
    );
    let mut rows = Vec::new();
    let mut times = Vec::new();
    for (i, st) in stampedes.iter().enumerate() {
        let all = st.load.number("/all_answered_ms")?;
        times.push(all);
        rows.push(vec![
            (i + 1).to_string(),
            format!("`{}`", st.wallet),
            thousands(st.load.requests() as f64),
            thousands(st.load.status(200) as f64),
            format!("{}", st.upstream_calls),
            latency(st.load.number("/latency_ms/all/p50_ms")?),
            latency(all),
        ]);
    }
    s.push_str(&table(&["run", "wallet", "requests", "answered 200", "upstream calls", "p50", "all answered"], &rows));
    let failures: Vec<String> =
        stampedes.iter().filter(|st| st.load.failed() > 0).map(|st| st.load.failures()).collect();
    if !failures.is_empty() {
        let _ = writeln!(s, "\nNot answered 200: {}.", failures.join("; "));
    }
    let one_call = stampedes.iter().all(|st| (st.upstream_calls - 1.0).abs() < f64::EPSILON);
    let all_ok = stampedes.iter().all(|st| st.load.failed() == 0);
    let _ = writeln!(
        s,
        "\n- One upstream call per stampede: {}.\n- Every request answered 200: {}.\n- Time until all \
         were answered (median of {} run(s)): {}, of which the upstream's delay is {UPSTREAM_DELAY_MS} ms.\n",
        verdict(one_call),
        verdict(all_ok),
        stampedes.len(),
        latency(median(&times)),
    );
    s.push_str("Commands (the stampede's, once per run, with that run's wallet):\n\n```sh\n");
    for command in commands {
        let _ = writeln!(s, "{command}");
    }
    for st in stampedes {
        let _ = writeln!(s, "{}", st.load.shown);
    }
    s.push_str("```\n\n");
    Ok(s)
}
