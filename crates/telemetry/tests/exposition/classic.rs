//! The classic text format (0.0.4) as Prometheus's own tools read it:
//! `promtool check metrics` on a fully exercised registry, and the same
//! samples as the `OpenMetrics` form.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use telemetry::Metrics;

use super::exercise_everything;

/// Runs `promtool check metrics` on `text`, or returns `None` when promtool
/// is not installed and this is not CI (where `cargo xtask ci` installs it,
/// so its absence fails the test).
fn promtool_check_metrics(text: &str) -> Option<Output> {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && std::env::var_os("CI").is_none() => {
            eprintln!("note: promtool is not installed; skipping (`cargo xtask deploy-check` installs it)");
            return None;
        }
        Err(e) => panic!("cannot run promtool (CI installs it with `cargo xtask ci`): {e}"),
    };
    child.stdin.take().expect("piped stdin").write_all(text.as_bytes()).expect("promtool reads its input");
    Some(child.wait_with_output().expect("promtool runs"))
}

#[test]
fn promtool_accepts_the_classic_text_format() {
    let metrics = Arc::new(Metrics::new());
    exercise_everything(&metrics);
    let text = metrics.encode_text();
    let Some(out) = promtool_check_metrics(&text) else { return };
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool check metrics: {}: {report}\n{text}", out.status);
    assert!(report.trim().is_empty(), "promtool has remarks: {report}");

    // The check has teeth: the OpenMetrics form, read as 0.0.4, is what it
    // rejected before `/metrics` negotiated.
    let Some(out) = promtool_check_metrics(&metrics.encode()) else { return };
    assert!(!out.status.success(), "promtool accepted OpenMetrics as 0.0.4");
}

#[test]
fn the_classic_form_has_every_openmetrics_sample_and_no_openmetrics_only_line() {
    let metrics = Arc::new(Metrics::new());
    exercise_everything(&metrics);
    let openmetrics = metrics.encode();
    let classic = metrics.encode_text();

    // The process's own figures (CPU time, memory) move between the two
    // encodings, so those are compared by name only.
    let samples =
        |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| {
                    if l.starts_with("process_") {
                        l[..l.find(' ').unwrap_or(l.len())].to_owned()
                    } else {
                        l.to_owned()
                    }
                })
                .collect()
        };
    assert_eq!(samples(&classic), samples(&openmetrics));
    assert!(!classic.contains("# EOF") && !classic.contains("# UNIT"), "{classic}");

    // Every sample sits below a TYPE line naming it, or its histogram.
    let mut described = "";
    let mut kind = "";
    for line in classic.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            (described, kind) = rest.split_once(' ').expect("a type");
        } else if !line.starts_with('#') {
            let name = &line[..line.find(['{', ' ']).expect("a value")];
            let ok = match kind {
                "histogram" => ["_bucket", "_sum", "_count"].iter().any(|s| name.strip_suffix(s) == Some(described)),
                _ => name == described,
            };
            assert!(ok, "{name} is not described by `# TYPE {described} {kind}`:\n{classic}");
        }
    }
    assert!(classic.contains("# HELP position_cache_hits_total "), "{classic}");
    assert!(classic.contains("# TYPE http_requests_total counter\n"), "{classic}");
}
