//! Prometheus metrics (prometheus-client, OpenMetrics text on `/metrics`). Every label has a
//! bounded set of values: operation names are static, reasons come from fixed enums. The
//! per-profile gauges carry the profile's namespace and name and the job's template, bounded by
//! the number of profiles (their series go when the profile goes); no id or message is a label.

pub mod profile;

use std::collections::{BTreeSet, HashMap};
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProfileLabels {
    pub namespace: String,
    pub profile: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub namespace: String,
    pub profile: String,
    pub template: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobCodeLabels {
    pub namespace: String,
    pub profile: String,
    pub template: String,
    /// One of `profile::CODES`.
    pub code: String,
}

/// The per-profile families, and which series each profile has (to remove them all).
#[derive(Default)]
struct PerProfile {
    ready: Family<ProfileLabels, Gauge>,
    job_status: Family<JobCodeLabels, Gauge>,
    quarantined: Family<JobLabels, Gauge>,
    last_success: Family<JobLabels, Gauge>,
    escrowed: Family<JobLabels, Gauge>,
    /// "namespace/name" → the templates it has series for.
    series: Mutex<HashMap<String, BTreeSet<String>>>,
}

impl PerProfile {
    fn remove_job(&self, namespace: &str, name: &str, template: &str) {
        let job =
            JobLabels { namespace: namespace.to_string(), profile: name.to_string(), template: template.to_string() };
        for code in profile::CODES {
            self.job_status.remove(&JobCodeLabels {
                namespace: job.namespace.clone(),
                profile: job.profile.clone(),
                template: job.template.clone(),
                code: code.to_string(),
            });
        }
        self.quarantined.remove(&job);
        self.last_success.remove(&job);
        self.escrowed.remove(&job);
    }
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
    per_profile: PerProfile,
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
        let per_profile = PerProfile::default();
        registry.register(
            "profile_ready",
            "1 while the profile's Ready condition is True, else 0 (reported by the leader)",
            per_profile.ready.clone(),
        );
        registry.register(
            "job_status",
            "1 for the job's current status code (NotConfigured, NotRun, Active, Paused, Quarantine), 0 for the others",
            per_profile.job_status.clone(),
        );
        registry.register("job_quarantined", "1 while the job is quarantined", per_profile.quarantined.clone());
        registry.register(
            "job_last_successful_run_timestamp_seconds",
            "Unix time the job's last successful run ended; 0 if it never succeeded",
            per_profile.last_success.clone(),
        );
        registry.register(
            "job_escrowed",
            "Objects the job's last run could not process (escrows the service retries)",
            per_profile.escrowed.clone(),
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
            per_profile,
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

    /// Records a profile's gauges from its status at the end of a pass: Ready, and each job's
    /// code, quarantine, last successful run and escrows. Series of jobs no longer in the status
    /// are removed.
    pub fn profile_observed(&self, namespace: &str, name: &str, status: &crate::api::CloudSyncProfileStatus) {
        let g = profile::profile_gauges(status);
        let p = &self.per_profile;
        let key = format!("{namespace}/{name}");
        let mut series = p.series.lock().unwrap_or_else(|e| e.into_inner());
        let templates: BTreeSet<String> = g.jobs.iter().map(|j| j.template.clone()).collect();
        if let Some(before) = series.get(&key) {
            for gone in before.difference(&templates) {
                p.remove_job(namespace, name, gone);
            }
        }
        let labels = ProfileLabels { namespace: namespace.to_string(), profile: name.to_string() };
        p.ready.get_or_create(&labels).set(i64::from(g.ready));
        for j in &g.jobs {
            let job =
                JobLabels { namespace: namespace.to_string(), profile: name.to_string(), template: j.template.clone() };
            for code in profile::CODES {
                let l = JobCodeLabels {
                    namespace: namespace.to_string(),
                    profile: name.to_string(),
                    template: j.template.clone(),
                    code: code.to_string(),
                };
                p.job_status.get_or_create(&l).set(i64::from(j.code == Some(code)));
            }
            p.quarantined.get_or_create(&job).set(i64::from(j.quarantined));
            p.last_success.get_or_create(&job).set(j.last_successful_run);
            p.escrowed.get_or_create(&job).set(j.escrowed);
        }
        series.insert(key, templates);
    }

    /// Removes every per-profile series of a profile (deleted, or no longer watched).
    pub fn forget_profile(&self, key: &str) {
        let p = &self.per_profile;
        let mut series = p.series.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((namespace, name)) = key.split_once('/') {
            p.ready.remove(&ProfileLabels { namespace: namespace.to_string(), profile: name.to_string() });
            for t in series.remove(key).unwrap_or_default() {
                p.remove_job(namespace, name, &t);
            }
        }
    }

    /// Keeps the per-profile series only of the profiles in `keep` ("namespace/name"), among those
    /// in `namespace` (all namespaces: `None`). After a watch re-lists, a profile deleted meanwhile
    /// gets no delete event of its own.
    pub fn retain_profiles(&self, namespace: Option<&str>, keep: &BTreeSet<String>) {
        let stale: Vec<String> = {
            let series = self.per_profile.series.lock().unwrap_or_else(|e| e.into_inner());
            let ready = self.ready_by_profile.lock().unwrap_or_else(|e| e.into_inner());
            series
                .keys()
                .chain(ready.keys())
                .filter(|k| namespace.is_none_or(|ns| k.split_once('/').is_some_and(|(n, _)| n == ns)))
                .filter(|k| !keep.contains(*k))
                .cloned()
                .collect()
        };
        for key in stale {
            self.profile_ready(&key, None);
        }
    }

    /// Removes every per-profile series: a replica that stops leading stops reconciling, and its
    /// values would go stale beside the new leader's.
    pub fn forget_all_profiles(&self) {
        let keys: Vec<String> = {
            let series = self.per_profile.series.lock().unwrap_or_else(|e| e.into_inner());
            let ready = self.ready_by_profile.lock().unwrap_or_else(|e| e.into_inner());
            series.keys().chain(ready.keys()).cloned().collect()
        };
        for key in keys {
            self.profile_ready(&key, None);
        }
    }

    /// Records a profile's Ready state (`None`: the profile is gone, and so are its per-profile
    /// series).
    pub fn profile_ready(&self, key: &str, ready: Option<&'static str>) {
        match ready {
            Some(r) => {
                if let Some((namespace, name)) = key.split_once('/') {
                    let labels = ProfileLabels { namespace: namespace.to_string(), profile: name.to_string() };
                    self.per_profile.ready.get_or_create(&labels).set(i64::from(r == "true"));
                }
            }
            None => self.forget_profile(key),
        }
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

    fn status(jobs: &[(&str, &str)], ready: bool) -> crate::api::CloudSyncProfileStatus {
        use crate::api::conditions::{self, Desired, types};
        crate::api::CloudSyncProfileStatus {
            conditions: conditions::merge(
                &[],
                &[Desired::new(types::READY, ready, "R", "m")],
                Some(1),
                jiff::Timestamp::UNIX_EPOCH,
            ),
            jobs: jobs
                .iter()
                .map(|(t, code)| crate::api::JobStatus {
                    template_id: t.to_string(),
                    code: Some(code.to_string()),
                    last_successful_run: Some("2026-11-26T12:00:00Z".into()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn per_profile_series_follow_the_status_and_go_with_the_profile() {
        let m = Metrics::new();
        m.profile_observed(
            "ns",
            "a",
            &status(&[("AD2AADProvisioning", "Quarantine"), ("AD2AADPasswordHash", "Active")], false),
        );
        m.profile_observed("ns", "b", &status(&[("AD2AADProvisioning", "Active")], true));
        let text = m.render();
        for line in [
            r#"cloudsync_profile_ready{namespace="ns",profile="a"} 0"#,
            r#"cloudsync_profile_ready{namespace="ns",profile="b"} 1"#,
            r#"cloudsync_job_status{namespace="ns",profile="a",template="AD2AADProvisioning",code="Quarantine"} 1"#,
            r#"cloudsync_job_status{namespace="ns",profile="a",template="AD2AADProvisioning",code="Active"} 0"#,
            r#"cloudsync_job_quarantined{namespace="ns",profile="a",template="AD2AADProvisioning"} 1"#,
            r#"cloudsync_job_quarantined{namespace="ns",profile="a",template="AD2AADPasswordHash"} 0"#,
            r#"cloudsync_job_last_successful_run_timestamp_seconds{namespace="ns",profile="a",template="AD2AADPasswordHash"} 1795694400"#,
            r#"cloudsync_job_escrowed{namespace="ns",profile="b",template="AD2AADProvisioning"} 0"#,
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        // A job that left the status loses its series; the other stays.
        m.profile_observed("ns", "a", &status(&[("AD2AADProvisioning", "Active")], true));
        let text = m.render();
        assert!(!text.contains("AD2AADPasswordHash"), "{text}");
        assert!(
            text.contains(r#"cloudsync_job_quarantined{namespace="ns",profile="a",template="AD2AADProvisioning"} 0"#)
        );
        // Deleted: nothing of it is left.
        m.profile_ready("ns/a", None);
        let text = m.render();
        assert!(!text.contains(r#"profile="a""#), "{text}");
        assert!(text.contains(r#"profile="b""#));
        // A re-list that no longer has b; another namespace's profiles are not touched.
        m.profile_ready("other/c", Some("true"));
        m.profile_observed("other", "c", &status(&[], true));
        m.retain_profiles(Some("ns"), &BTreeSet::new());
        let text = m.render();
        assert!(!text.contains(r#"profile="b""#), "{text}");
        assert!(text.contains(r#"cloudsync_profile_ready{namespace="other",profile="c"} 1"#), "{text}");
        assert!(text.contains(r#"cloudsync_profiles{ready="true"} 1"#), "{text}");
        m.forget_all_profiles();
        let text = m.render();
        assert!(!text.contains("profile="), "{text}");
        assert!(text.contains(r#"cloudsync_profiles{ready="true"} 0"#), "{text}");
    }
}
