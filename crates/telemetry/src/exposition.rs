//! A small, strict checker of the `OpenMetrics` text format, so that tests
//! (this crate's and the service's) fail on output a scraper would reject or
//! misread rather than only on missing substrings.
//!
//! It covers what this crate emits (counters, gauges, classic histograms,
//! no exemplars or timestamps) and rejects anything else, which is stricter
//! than the format but keeps the checker short. It is not a general parser.

use std::collections::HashSet;

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name, suffix included (`_total`, `_bucket`, ...).
    pub name: String,
    /// Its labels, in order.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, if the sample has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// A metric family: its descriptor lines and the samples that follow them.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The family's name, without sample suffixes.
    pub name: String,
    /// `counter`, `gauge` or `histogram`.
    pub kind: String,
    /// The HELP text, if given.
    pub help: Option<String>,
    /// The UNIT, if given.
    pub unit: Option<String>,
    /// The samples that follow its descriptor lines.
    pub samples: Vec<Sample>,
}

/// Checks `text` line by line, as [`parse`] does.
///
/// # Errors
///
/// The first problem found, naming the line.
///
/// # Examples
///
/// ```
/// let metrics = telemetry::Metrics::new();
/// assert!(telemetry::exposition::check(&metrics.encode()).is_ok());
/// assert!(telemetry::exposition::check("position_cache_hits_total one\n# EOF\n").is_err());
/// ```
pub fn check(text: &str) -> Result<(), String> {
    parse(text).map(drop)
}

/// Parses `text`, checking every line; families may have no samples.
///
/// # Errors
///
/// The first problem found, naming the line.
pub fn parse(text: &str) -> Result<Vec<Family>, String> {
    let body = text.strip_suffix("# EOF\n").ok_or("the exposition does not end with `# EOF` and a newline")?;
    if !(body.is_empty() || body.ends_with('\n')) {
        return Err("`# EOF` is not on a line of its own".into());
    }
    let mut families: Vec<Family> = Vec::new();
    let mut names = HashSet::new();
    let mut series = HashSet::new();
    for (number, line) in body.lines().enumerate() {
        let at = |message: String| format!("line {}: {message}: {line:?}", number + 1);
        if let Some(comment) = line.strip_prefix("# ") {
            descriptor(comment, &mut families, &mut names).map_err(at)?;
        } else {
            let family = families.last_mut().ok_or_else(|| at("a sample before any `# TYPE`".into()))?;
            let sample = parse_sample(line).map_err(at)?;
            check_belongs(family, &sample).map_err(at)?;
            if !series.insert(format!("{}{:?}", sample.name, sample.labels)) {
                return Err(at("the same series appears twice".into()));
            }
            family.samples.push(sample);
        }
    }
    for family in &families {
        if family.kind == "histogram" {
            check_histogram(family)?;
        }
    }
    Ok(families)
}

/// Parses `text` and also requires every family to have a HELP line and at
/// least one sample: what a fully exercised registry must look like.
///
/// # Errors
///
/// The first problem found.
pub fn parse_strict(text: &str) -> Result<Vec<Family>, String> {
    let families = parse(text)?;
    for family in &families {
        if family.help.as_deref().is_none_or(str::is_empty) {
            return Err(format!("family {} has no HELP text", family.name));
        }
        if family.samples.is_empty() {
            return Err(format!("`# TYPE {}` is followed by no sample of that family", family.name));
        }
    }
    Ok(families)
}

fn descriptor(comment: &str, families: &mut Vec<Family>, names: &mut HashSet<String>) -> Result<(), String> {
    let (keyword, rest) = comment
        .split_once(' ')
        .filter(|(keyword, _)| ["HELP", "TYPE", "UNIT"].contains(keyword))
        .ok_or("a comment that is not HELP, TYPE, UNIT or EOF")?;
    let (name, value) = rest.split_once(' ').ok_or("a descriptor without a value")?;
    check_metric_name(name)?;
    // A descriptor for a new name starts a family; descriptors for the
    // current one must come before its first sample.
    let current = families.last_mut().filter(|f| f.name == name && f.samples.is_empty());
    let family = if let Some(family) = current {
        family
    } else {
        if !names.insert(name.to_owned()) {
            return Err(format!("family {name} is described twice"));
        }
        families.push(Family { name: name.to_owned(), kind: String::new(), help: None, unit: None, samples: vec![] });
        families.last_mut().unwrap()
    };
    match keyword {
        "HELP" => {
            check_escaped(value, "HELP text")?;
            set_once(&mut family.help, value, "HELP")
        }
        "TYPE" => {
            const KINDS: [&str; 8] =
                ["counter", "gauge", "histogram", "gaugehistogram", "summary", "info", "stateset", "unknown"];
            if !KINDS.contains(&value) {
                return Err(format!("unknown metric type {value:?}"));
            }
            if !family.kind.is_empty() {
                return Err("a second TYPE line".into());
            }
            value.clone_into(&mut family.kind);
            Ok(())
        }
        "UNIT" => {
            if !name.ends_with(&format!("_{value}")) {
                return Err(format!("family {name} has unit {value:?} but its name does not end with it"));
            }
            set_once(&mut family.unit, value, "UNIT")
        }
        _ => unreachable!("keywords are filtered above"),
    }
}

fn set_once(slot: &mut Option<String>, value: &str, what: &str) -> Result<(), String> {
    if slot.replace(value.to_owned()).is_some() {
        return Err(format!("a second {what} line"));
    }
    Ok(())
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("a sample without a value")?;
    let name = &line[..name_end];
    check_metric_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = parse_labels(after_brace, &mut labels)?;
    }
    let value = rest.strip_prefix(' ').ok_or("no single space before the value")?;
    if value.contains(' ') {
        return Err("something after the value (timestamps and exemplars are not expected)".into());
    }
    Ok(Sample { name: name.to_owned(), labels, value: parse_value(value)? })
}

/// Parses `key="value",...}` and returns what follows the closing brace.
fn parse_labels<'a>(mut rest: &'a str, labels: &mut Vec<(String, String)>) -> Result<&'a str, String> {
    if let Some(after) = rest.strip_prefix('}') {
        return Ok(after);
    }
    loop {
        let (key, after_key) = rest.split_once("=\"").ok_or("a label without `=\"`")?;
        if !is_name(key, false) {
            return Err(format!("invalid label name {key:?}"));
        }
        if labels.iter().any(|(k, _)| k == key) {
            return Err(format!("label {key:?} appears twice"));
        }
        let (value, after_value) = take_quoted(after_key)?;
        labels.push((key.to_owned(), value));
        if let Some(after) = after_value.strip_prefix(',') {
            rest = after;
        } else {
            return after_value.strip_prefix('}').ok_or_else(|| "labels not closed by `}`".to_owned());
        }
    }
}

/// Reads an escaped label value up to its closing quote.
fn take_quoted(text: &str) -> Result<(String, &str), String> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &text[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => value.push('\\'),
                Some((_, '"')) => value.push('"'),
                Some((_, 'n')) => value.push('\n'),
                other => return Err(format!("invalid escape in a label value: {other:?}")),
            },
            '\n' => return Err("a raw newline in a label value".into()),
            c => value.push(c),
        }
    }
    Err("an unterminated label value".into())
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => return Ok(f64::INFINITY),
        "-Inf" => return Ok(f64::NEG_INFINITY),
        "NaN" => return Ok(f64::NAN),
        _ => {}
    }
    // Rust also accepts `inf`, `infinity` and `nan` in any case; the format
    // does not, so only digits, signs, a point and an exponent pass.
    let plain = text.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | 'e' | 'E'));
    match text.parse::<f64>() {
        Ok(value) if plain => Ok(value),
        _ => Err(format!("value {text:?} is not a valid float")),
    }
}

/// The sample suffixes each metric type allows after the family name.
fn suffixes(kind: &str) -> &'static [&'static str] {
    match kind {
        "counter" => &["_total", "_created"],
        "gauge" | "unknown" => &[""],
        "histogram" => &["_bucket", "_sum", "_count", "_created"],
        "info" => &["_info"],
        _ => &[],
    }
}

fn check_belongs(family: &Family, sample: &Sample) -> Result<(), String> {
    if family.kind.is_empty() {
        return Err(format!("a sample of family {} before its TYPE line", family.name));
    }
    let suffix = sample
        .name
        .strip_prefix(family.name.as_str())
        .filter(|suffix| suffixes(&family.kind).contains(suffix))
        .ok_or_else(|| format!("sample {} does not belong to {} family {}", sample.name, family.kind, family.name))?;
    if family.kind == "counter" && (sample.value.is_nan() || sample.value < 0.0) {
        return Err(format!("counter sample {} is negative or NaN", sample.name));
    }
    if family.kind == "histogram" && (suffix == "_bucket") != sample.label("le").is_some() {
        return Err(format!("`le` belongs on `_bucket` samples only, in {}", sample.name));
    }
    Ok(())
}

/// Each histogram series: buckets in increasing `le` order, cumulative,
/// ending at `+Inf`, whose count equals `_count`; and a `_sum`.
#[expect(clippy::float_cmp, reason = "bucket counts are integers, exactly representable, so equality is exact")]
fn check_histogram(family: &Family) -> Result<(), String> {
    let without_le = |sample: &Sample| -> Vec<(String, String)> {
        sample.labels.iter().filter(|(k, _)| k != "le").cloned().collect()
    };
    let mut label_sets: Vec<Vec<(String, String)>> = Vec::new();
    for sample in &family.samples {
        let labels = without_le(sample);
        if !label_sets.contains(&labels) {
            label_sets.push(labels);
        }
    }
    for labels in &label_sets {
        let of = |suffix: &str| {
            let name = format!("{}{suffix}", family.name);
            family.samples.iter().filter(move |s| s.name == name && without_le(s) == *labels)
        };
        let mut previous: Option<(f64, f64)> = None;
        for bucket in of("_bucket") {
            let le = parse_value(bucket.label("le").unwrap())?;
            if let Some((previous_le, previous_count)) = previous
                && (le <= previous_le || bucket.value < previous_count)
            {
                return Err(format!("{} buckets {labels:?} are not increasing and cumulative", family.name));
            }
            previous = Some((le, bucket.value));
        }
        let (last_le, inf_count) = previous.ok_or_else(|| format!("{} {labels:?} has no buckets", family.name))?;
        if !(last_le.is_infinite() && last_le.is_sign_positive()) {
            return Err(format!("{} {labels:?} does not end with an le=\"+Inf\" bucket", family.name));
        }
        match of("_count").map(|s| s.value).collect::<Vec<_>>()[..] {
            [count] if count == inf_count => {}
            _ => return Err(format!("{} {labels:?} lacks a `_count` equal to its +Inf bucket", family.name)),
        }
        if of("_sum").count() != 1 {
            return Err(format!("{} {labels:?} lacks a `_sum`", family.name));
        }
    }
    Ok(())
}

fn check_metric_name(name: &str) -> Result<(), String> {
    if is_name(name, true) { Ok(()) } else { Err(format!("invalid metric name {name:?}")) }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*` for metric names; no `:` in label names.
fn is_name(name: &str, colon: bool) -> bool {
    let ok = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
    let mut chars = name.chars();
    chars.next().is_some_and(ok) && chars.all(|c| ok(c) || c.is_ascii_digit())
}

/// HELP text may hold `\\`, `\n` and `\"` escapes, but no raw `"` or lone
/// backslash.
fn check_escaped(text: &str, what: &str) -> Result<(), String> {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Err(format!("a raw double quote in {what}")),
            '\\' if !matches!(chars.next(), Some('\\' | 'n' | '"')) => {
                return Err(format!("an invalid escape in {what}"));
            }
            _ => {}
        }
    }
    Ok(())
}
