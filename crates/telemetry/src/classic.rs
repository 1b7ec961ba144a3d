//! The classic Prometheus text format (0.0.4), rendered from the
//! `OpenMetrics` text prometheus-client writes.
//!
//! prometheus-client encodes only `OpenMetrics`. For what this crate
//! exposes (counters, gauges and classic histograms, without exemplars or
//! timestamps) the two formats write the same sample lines and differ in
//! the lines around them, so rewriting those is enough and keeps one
//! encoder as the source of truth:
//!
//! - a counter family is described under its sample name: `OpenMetrics`
//!   says `# TYPE position_cache_hits counter` above
//!   `position_cache_hits_total 3`, and a 0.0.4 parser (`promtool check
//!   metrics`, Prometheus's own) would then see a family `position_cache_hits`
//!   with no samples and a sample `position_cache_hits_total` with no HELP or
//!   TYPE;
//! - `# UNIT` lines, `_created` samples and the closing `# EOF` do not exist
//!   in 0.0.4 and are left out;
//! - `OpenMetrics` types that 0.0.4 lacks become the nearest 0.0.4 type: `info`
//!   a gauge named with its `_info` sample, `stateset` a gauge, `unknown`
//!   and `gaugehistogram` `untyped`.
//!
//! What it is not: a general converter. It relies on prometheus-client's
//! layout (`# HELP`, then `# TYPE`, then `# UNIT`, then the samples, one
//! family at a time), which this crate's tests pin with promtool and with
//! [`crate::exposition`].

use std::fmt::Write as _;

/// `openmetrics`, as written by prometheus-client, in the classic text
/// format 0.0.4.
pub(crate) fn from_openmetrics(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // The HELP line waits for its TYPE line, which says whether the name
    // it describes changes.
    let mut help: Option<(&str, &str)> = None;
    // The current family's name and OpenMetrics type.
    let mut family: (&str, &str) = ("", "");
    for line in openmetrics.lines() {
        if let Some(descriptor) = line.strip_prefix("# ") {
            let (keyword, rest) = descriptor.split_once(' ').unwrap_or((descriptor, ""));
            let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
            match keyword {
                "HELP" => {
                    flush_help(&mut out, help.take());
                    help = Some((name, value));
                }
                "TYPE" => {
                    family = (name, value);
                    let (classic_name, classic_type) = classic_family(name, value);
                    if let Some((help_name, text)) = help.take() {
                        if help_name == name {
                            write_line(&mut out, format_args!("# HELP {classic_name} {text}"));
                        } else {
                            flush_help(&mut out, Some((help_name, text)));
                        }
                    }
                    write_line(&mut out, format_args!("# TYPE {classic_name} {classic_type}"));
                }
                // `# UNIT` and `# EOF` have no 0.0.4 counterpart; any other
                // comment is kept, as 0.0.4 allows free comments.
                "UNIT" | "EOF" => {}
                _ => {
                    flush_help(&mut out, help.take());
                    write_line(&mut out, format_args!("{line}"));
                }
            }
        } else {
            flush_help(&mut out, help.take());
            let (name, kind) = family;
            let sample_name = &line[..line.find(['{', ' ']).unwrap_or(line.len())];
            // 0.0.4 has no creation time: `_created` samples are dropped.
            let created = sample_name.strip_suffix("_created") == Some(name)
                && matches!(kind, "counter" | "histogram" | "summary");
            if !(line.is_empty() || created) {
                write_line(&mut out, format_args!("{line}"));
            }
        }
    }
    flush_help(&mut out, help);
    out
}

/// The 0.0.4 name and type of an `OpenMetrics` family.
fn classic_family<'a>(name: &'a str, kind: &'a str) -> (std::borrow::Cow<'a, str>, &'a str) {
    match kind {
        "counter" => (format!("{name}_total").into(), "counter"),
        "info" => (format!("{name}_info").into(), "gauge"),
        "stateset" => (name.into(), "gauge"),
        "gauge" | "histogram" | "summary" => (name.into(), kind),
        _ => (name.into(), "untyped"),
    }
}

/// Writes a HELP line that no TYPE line claimed, as it was.
fn flush_help(out: &mut String, help: Option<(&str, &str)>) {
    if let Some((name, text)) = help {
        write_line(out, format_args!("# HELP {name} {text}"));
    }
}

fn write_line(out: &mut String, line: std::fmt::Arguments<'_>) {
    out.write_fmt(line).expect("writing to a String cannot fail");
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_described_under_their_total_name() {
        let openmetrics =
            "# HELP requests Requests served.\n# TYPE requests counter\nrequests_total{route=\"/a\"} 3\n# EOF\n";
        assert_eq!(
            from_openmetrics(openmetrics),
            "# HELP requests_total Requests served.\n# TYPE requests_total counter\nrequests_total{route=\"/a\"} 3\n"
        );
    }

    #[test]
    fn units_created_samples_and_eof_are_left_out() {
        let openmetrics = "# HELP load_seconds Load time.\n# TYPE load_seconds histogram\n# UNIT load_seconds seconds\n\
                           load_seconds_sum 1.5\nload_seconds_count 2\nload_seconds_bucket{le=\"+Inf\"} 2\n\
                           load_seconds_created 1700000000.0\n\
                           # HELP jobs Jobs.\n# TYPE jobs counter\njobs_total 1\njobs_created 1700000000.0\n# EOF\n";
        assert_eq!(
            from_openmetrics(openmetrics),
            "# HELP load_seconds Load time.\n# TYPE load_seconds histogram\n\
             load_seconds_sum 1.5\nload_seconds_count 2\nload_seconds_bucket{le=\"+Inf\"} 2\n\
             # HELP jobs_total Jobs.\n# TYPE jobs_total counter\njobs_total 1\n"
        );
    }

    #[test]
    fn gauges_pass_through_and_other_types_take_the_nearest_classic_one() {
        let openmetrics = "# HELP up Up.\n# TYPE up gauge\nup 1\n\
                           # HELP build Build.\n# TYPE build info\nbuild_info{version=\"1\"} 1\n\
                           # HELP odd Odd.\n# TYPE odd unknown\nodd 4\n# EOF\n";
        assert_eq!(
            from_openmetrics(openmetrics),
            "# HELP up Up.\n# TYPE up gauge\nup 1\n\
             # HELP build_info Build.\n# TYPE build_info gauge\nbuild_info{version=\"1\"} 1\n\
             # HELP odd Odd.\n# TYPE odd untyped\nodd 4\n"
        );
    }

    #[test]
    fn a_family_without_samples_keeps_its_descriptors() {
        let openmetrics = "# HELP idle Idle.\n# TYPE idle counter\n# EOF\n";
        assert_eq!(from_openmetrics(openmetrics), "# HELP idle_total Idle.\n# TYPE idle_total counter\n");
    }
}
