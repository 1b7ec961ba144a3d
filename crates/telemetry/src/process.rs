//! The process's own figures under the names every Prometheus client
//! library uses: `process_resident_memory_bytes`,
//! `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`,
//! `process_cpu_seconds_total` and `process_start_time_seconds`.
//!
//! They are read from `/proc/self` at each scrape (nothing is sampled in
//! between, so they cost nothing until scraped). On other systems, or if
//! `/proc` cannot be read, the families are left out rather than shown as
//! zeros: a 0 start time would look like a restart.
//!
//! CPU and start times in `/proc/self/stat` are in clock ticks of
//! `USER_HZ`, which Linux fixes at 100 for user space on every
//! architecture (the Prometheus Go client's procfs reads them the same way).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// The collector registered in [`Metrics::new`](crate::Metrics::new).
#[derive(Debug, Default)]
pub(crate) struct ProcessCollector;

/// One reading of the process's figures.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Reading {
    resident_bytes: u64,
    virtual_bytes: u64,
    open_fds: u64,
    /// The soft limit; `None` when unlimited.
    max_fds: Option<u64>,
    cpu_seconds: f64,
    start_time_seconds: f64,
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(reading) = read() else { return Ok(()) };
        let cpu = ConstCounter::new(reading.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu",
            "Total user and system CPU time spent by the process, in seconds.",
            Some(&Unit::Seconds),
            cpu.metric_type(),
        )?)?;
        let gauges = [
            (
                "process_resident_memory",
                "Resident memory size of the process, in bytes.",
                Some(Unit::Bytes),
                reading.resident_bytes as f64,
            ),
            (
                "process_virtual_memory",
                "Virtual memory size of the process, in bytes.",
                Some(Unit::Bytes),
                reading.virtual_bytes as f64,
            ),
            (
                "process_start_time",
                "Start time of the process since the Unix epoch, in seconds.",
                Some(Unit::Seconds),
                reading.start_time_seconds,
            ),
            ("process_open_fds", "Open file descriptors of the process.", None, reading.open_fds as f64),
        ];
        for (name, help, unit, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, unit.as_ref(), gauge.metric_type())?)?;
        }
        if let Some(max) = reading.max_fds {
            let gauge = ConstGauge::new(max as f64);
            gauge.encode(encoder.encode_descriptor(
                "process_max_fds",
                "Most file descriptors the process may open (its soft limit).",
                None,
                gauge.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

#[cfg(target_os = "linux")]
fn read() -> Option<Reading> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let boot_time = std::fs::read_to_string("/proc/stat").ok().as_deref().and_then(boot_time)?;
    let limits = std::fs::read_to_string("/proc/self/limits").ok();
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    parse(&stat, &status, boot_time, limits.as_deref(), open_fds)
}

#[cfg(not(target_os = "linux"))]
fn read() -> Option<Reading> {
    None
}

/// Clock ticks per second in `/proc/self/stat` (`USER_HZ`).
const USER_HZ: f64 = 100.0;

/// A reading from the texts of `/proc/self/stat` and `/proc/self/status`,
/// the boot time from `/proc/stat`, `/proc/self/limits`, and the count of
/// `/proc/self/fd`.
fn parse(stat: &str, status: &str, boot_time: u64, limits: Option<&str>, open_fds: u64) -> Option<Reading> {
    // The command name, in parentheses, may contain spaces and
    // parentheses: the fields that follow start after the last `)`.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
    // Field numbers as in proc(5), from 3 (`state`) at index 0.
    let field = |number: usize| fields.get(number - 3)?.parse::<u64>().ok();
    let ticks = field(14)? + field(15)?;
    let start_ticks = field(22)?;
    let virtual_bytes = field(23)?;
    let resident_bytes = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024);
    let max_fds = limits.and_then(|limits| {
        let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
        line.trim_start_matches("Max open files").split_whitespace().next()?.parse().ok()
    });
    Some(Reading {
        resident_bytes,
        virtual_bytes,
        open_fds,
        max_fds,
        cpu_seconds: ticks as f64 / USER_HZ,
        start_time_seconds: boot_time as f64 + start_ticks as f64 / USER_HZ,
    })
}

/// `btime` of `/proc/stat`: the boot time, in seconds since the epoch.
fn boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat.lines().find_map(|line| line.strip_prefix("btime "))?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (positions (api)) S 1 4242 4242 0 -1 4194560 2400 0 0 0 \
        150 50 0 0 20 0 9 0 123456 734003200 5000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn stat_status_and_limits_are_read_by_field() {
        let status = "Name:\tpositions-api\nVmSize:\t  716800 kB\nVmRSS:\t   20000 kB\n";
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
            Max cpu time              unlimited            unlimited            seconds   \n\
            Max open files            1024                 524288               files     \n";
        let reading = parse(STAT, status, 1_700_000_000, Some(limits), 12).unwrap();
        assert_eq!(
            reading,
            Reading {
                resident_bytes: 20_000 * 1024,
                virtual_bytes: 734_003_200,
                open_fds: 12,
                max_fds: Some(1024),
                cpu_seconds: 2.0,
                start_time_seconds: 1_700_000_000.0 + 1234.56,
            }
        );
        let unlimited = "Max open files            unlimited            unlimited            files     \n";
        assert_eq!(parse(STAT, status, 0, Some(unlimited), 3).unwrap().max_fds, None);
        assert_eq!(boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n"), Some(1_700_000_000));
        assert_eq!(parse("garbage", status, 0, None, 0), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reads_as_alive_since_a_past_instant() {
        let reading = read().expect("/proc is readable on Linux");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        assert!(reading.start_time_seconds > 1e9 && reading.start_time_seconds <= now + 1.0, "{reading:?}");
        assert!(reading.resident_bytes > 0 && reading.virtual_bytes >= reading.resident_bytes, "{reading:?}");
        assert!(reading.open_fds >= 3, "{reading:?}");
        let text = crate::Metrics::new().encode();
        crate::exposition::parse_strict(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_virtual_memory_bytes ",
            "process_start_time_seconds ",
            "process_open_fds ",
        ] {
            assert!(text.lines().any(|line| line.starts_with(name)), "no {name}in\n{text}");
        }
    }
}
