//! `positions_api_build_info{version, revision}`: which build a replica
//! runs, as a constant 1 whose labels say it, the usual way to join
//! "what changed" onto any other series (`* on (instance) group_left
//! (version) positions_api_build_info`).
//!
//! The service sets it once, at start-up; the labels come from its
//! build, not from requests, so it is one series per process.

use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;

/// The build's version and revision, left out of the exposition until
/// [`set`](Self::set).
#[derive(Debug, Clone, Default)]
pub(crate) struct BuildInfo {
    labels: Arc<OnceLock<BuildLabels>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    revision: String,
}

impl BuildInfo {
    /// Sets the labels; later calls change nothing, as a process has one
    /// build.
    pub(crate) fn set(&self, version: &str, revision: &str) {
        let _ = self.labels.set(BuildLabels { version: version.to_owned(), revision: revision.to_owned() });
    }
}

impl EncodeMetric for BuildInfo {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        match self.labels.get() {
            Some(labels) => encoder.encode_info(labels),
            None => Ok(()),
        }
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Info
    }

    fn is_empty(&self) -> bool {
        self.labels.get().is_none()
    }
}

#[cfg(test)]
mod tests {
    use crate::Metrics;
    use crate::testing::sample;

    #[test]
    fn build_info_is_absent_until_set_then_one_series_at_1() {
        let metrics = Metrics::new();
        assert!(!metrics.encode().contains("positions_api_build"));
        metrics.set_build_info("1.2.3", "abc1234");
        metrics.set_build_info("9.9.9", "ignored");
        let text = metrics.encode();
        crate::exposition::parse_strict(&text).unwrap();
        assert!(text.contains("\n# TYPE positions_api_build info\n"), "{text}");
        assert_eq!(sample(&text, r#"positions_api_build_info{version="1.2.3",revision="abc1234"}"#), Some(1.0));
        let classic = metrics.encode_text();
        assert!(classic.contains("\n# TYPE positions_api_build_info gauge\n"), "{classic}");
    }
}
