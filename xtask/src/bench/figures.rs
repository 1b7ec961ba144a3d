//! How the HTTP sections write their figures: requests per second with
//! thousands separators, latencies in µs or ms by size, ratios to two
//! places, and the median of a run's repeats.

/// `228,431`.
pub(crate) fn rate(per_sec: f64) -> String {
    thousands(per_sec.round())
}

/// `85 µs`, `1.23 ms`, `312.5 ms`, `1.52 s`.
pub(crate) fn latency(ms: f64) -> String {
    if ms < 1.0 {
        format!("{:.0} µs", ms * 1_000.0)
    } else if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 1_000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", ms / 1_000.0)
    }
}

/// `0.93`.
pub(crate) fn ratio(x: f64) -> String {
    format!("{x:.2}")
}

/// `12.3%`.
pub(crate) fn percent(part: f64, whole: f64) -> String {
    if whole > 0.0 { format!("{:.1}%", 100.0 * part / whole) } else { "–".to_owned() }
}

/// `1,234,567` for a whole number.
pub(crate) fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0.0 { format!("-{out}") } else { out }
}

/// The median (the mean of the middle two for an even count); 0 for none.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_well() {
        assert_eq!(rate(228_431.4), "228,431");
        assert_eq!(rate(999.6), "1,000");
        assert_eq!(thousands(100_000.0), "100,000");
        assert_eq!(thousands(-1_500.0), "-1,500");
        assert_eq!(latency(0.085), "85 µs");
        assert_eq!(latency(1.234), "1.23 ms");
        assert_eq!(latency(312.54), "312.5 ms");
        assert_eq!(latency(1_520.0), "1.52 s");
        assert_eq!(ratio(0.926), "0.93");
        assert_eq!(percent(1.0, 8.0), "12.5%");
        assert_eq!(percent(1.0, 0.0), "–");
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert!((median(&[3.0, 1.0, 2.0]) - 2.0).abs() < f64::EPSILON);
        assert!((median(&[4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < f64::EPSILON);
        assert!(median(&[]).abs() < f64::EPSILON);
    }
}
