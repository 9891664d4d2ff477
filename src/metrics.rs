//! Prometheus metrics (prometheus-client, OpenMetrics text on `/metrics`). Every label has a
//! bounded set of values: operation names are static, reasons come from fixed enums, and no
//! profile name, id or message ever becomes a label.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::graph::Observer;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `success`, or the error class (`Throttled`, `Transient`, `KubernetesApi`, ...).
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub operation: String,
    /// HTTP status, or `none` when no answer came.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadyLabels {
    /// `true`, `false` or `unknown`.
    pub ready: String,
}

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<OutcomeLabels, Counter>,
    reconcile_duration: Histogram,
    graph_requests: Family<RequestLabels, Counter>,
    graph_duration: Family<OperationLabels, Histogram>,
    graph_throttled: Family<OperationLabels, Counter>,
    retry_after_wait: Counter<f64>,
    profiles: Family<ReadyLabels, Gauge>,
    step_task_failures: Family<OperationLabels, Counter>,
    ready_by_profile: Mutex<HashMap<String, &'static str>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cloudsync");
        let reconciles = Family::<OutcomeLabels, Counter>::default();
        registry.register("reconciles", "Reconciles of CloudSyncProfiles by outcome", reconciles.clone());
        let reconcile_duration = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        registry.register("reconcile_duration_seconds", "Duration of one reconcile", reconcile_duration.clone());
        let graph_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "graph_requests",
            "Microsoft Graph and token requests by operation and HTTP status",
            graph_requests.clone(),
        );
        let graph_duration = Family::<OperationLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        registry.register(
            "graph_request_duration_seconds",
            "Latency of Microsoft Graph requests",
            graph_duration.clone(),
        );
        let graph_throttled = Family::<OperationLabels, Counter>::default();
        registry.register(
            "graph_throttled",
            "Throttled answers (429, or 503 with Retry-After)",
            graph_throttled.clone(),
        );
        let retry_after_wait = Counter::<f64>::default();
        registry.register(
            "graph_retry_after_wait_seconds",
            "Time spent waiting out Retry-After",
            retry_after_wait.clone(),
        );
        let profiles = Family::<ReadyLabels, Gauge>::default();
        registry.register("profiles", "CloudSyncProfiles by their Ready condition", profiles.clone());
        let step_task_failures = Family::<OperationLabels, Counter>::default();
        registry.register(
            "step_task_failures",
            "Spawned Graph calls whose task panicked or was cancelled (their outcome is unknown)",
            step_task_failures.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_duration,
            graph_requests,
            graph_duration,
            graph_throttled,
            retry_after_wait,
            profiles,
            step_task_failures,
            ready_by_profile: Mutex::default(),
        }
    }

    pub fn reconciled(&self, outcome: &str, elapsed: Duration) {
        self.reconciles.get_or_create(&OutcomeLabels { outcome: outcome.to_string() }).inc();
        self.reconcile_duration.observe(elapsed.as_secs_f64());
    }

    /// A spawned Graph call ended without an outcome (panic or cancellation).
    pub fn step_task_failed(&self, step: &'static str) {
        self.step_task_failures.get_or_create(&OperationLabels { operation: step.to_string() }).inc();
    }

    /// Records a profile's Ready state (`None`: the profile is gone).
    pub fn profile_ready(&self, key: &str, ready: Option<&'static str>) {
        let mut map = self.ready_by_profile.lock().unwrap_or_else(|p| p.into_inner());
        match ready {
            Some(r) => {
                map.insert(key.to_string(), r);
            }
            None => {
                map.remove(key);
            }
        }
        for state in ["true", "false", "unknown"] {
            let n = map.values().filter(|v| **v == state).count();
            self.profiles.get_or_create(&ReadyLabels { ready: state.to_string() }).set(n as i64);
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an error here would be a bug in a metric's encoder.
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Observer for Metrics {
    fn response(&self, operation: &'static str, status: Option<u16>, elapsed: Duration) {
        let status = status.map_or_else(|| "none".to_string(), |s| s.to_string());
        self.graph_requests.get_or_create(&RequestLabels { operation: operation.to_string(), status }).inc();
        self.graph_duration
            .get_or_create(&OperationLabels { operation: operation.to_string() })
            .observe(elapsed.as_secs_f64());
    }

    fn throttled(&self, operation: &'static str) {
        self.graph_throttled.get_or_create(&OperationLabels { operation: operation.to_string() }).inc();
    }

    fn retry_after_wait(&self, _operation: &'static str, wait: Duration) {
        self.retry_after_wait.inc_by(wait.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_every_family_with_bounded_labels() {
        let m = Metrics::new();
        m.reconciled("success", Duration::from_millis(20));
        m.reconciled("Throttled", Duration::from_millis(5));
        m.response("jobs.list", Some(200), Duration::from_millis(3));
        m.response("jobs.start", None, Duration::from_millis(3));
        m.throttled("jobs.list");
        m.retry_after_wait("jobs.list", Duration::from_secs(2));
        m.profile_ready("ns/a", Some("true"));
        m.profile_ready("ns/b", Some("false"));
        m.profile_ready("ns/b", Some("true"));
        m.profile_ready("ns/c", Some("unknown"));
        m.profile_ready("ns/c", None);
        m.step_task_failed("StartJob");
        let text = m.render();
        for line in [
            r#"cloudsync_reconciles_total{outcome="success"} 1"#,
            r#"cloudsync_reconciles_total{outcome="Throttled"} 1"#,
            "cloudsync_reconcile_duration_seconds_count 2",
            r#"cloudsync_graph_requests_total{operation="jobs.list",status="200"} 1"#,
            r#"cloudsync_graph_requests_total{operation="jobs.start",status="none"} 1"#,
            r#"cloudsync_graph_request_duration_seconds_count{operation="jobs.list"} 1"#,
            r#"cloudsync_graph_throttled_total{operation="jobs.list"} 1"#,
            "cloudsync_graph_retry_after_wait_seconds_total 2.0",
            r#"cloudsync_profiles{ready="true"} 2"#,
            r#"cloudsync_profiles{ready="false"} 0"#,
            r#"cloudsync_profiles{ready="unknown"} 0"#,
            r#"cloudsync_step_task_failures_total{operation="StartJob"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
