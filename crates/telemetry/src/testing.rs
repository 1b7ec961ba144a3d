//! Helpers for this crate's unit tests: reading a value out of the encoded
//! text, the way a scraper would.

/// The value of the sample whose series (name and labels, exactly as
/// rendered) is `series`, or `None` if there is no such line.
///
/// # Panics
///
/// If the series appears twice or its value is not a float: either would
/// make the exposition invalid.
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    let mut values = text.lines().filter_map(|line| line.strip_prefix(series)?.strip_prefix(' '));
    let value = values.next()?;
    assert!(values.next().is_none(), "series {series} appears more than once");
    Some(value.parse().unwrap_or_else(|_| panic!("series {series} has a non-float value {value:?}")))
}
