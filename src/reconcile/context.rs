//! `Context`: everything a reconcile reaches the world through. The one seam between the reconcile
//! code and Kubernetes, Graph, time and leadership, so that each can be replaced in a test.

use std::sync::Arc;
use std::time::Duration;

use kube::Resource;
use kube::runtime::events::{Event, EventType, Reporter};
use tracing::warn;

use super::clock::{Clock, SystemClock};
use super::coordination::Coordination;
use super::credentials::WorkloadIdentityConfig;
use super::reason::Reason;
use super::recorder::Recorder;
use super::schema_cache::SchemaCache;
use crate::api::CloudSyncProfile;
use crate::graph::GraphClient;
use crate::metrics::Metrics;

/// Operator settings the reconciler uses.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Steady-state resync interval (jittered ±10 %).
    pub resync: Duration,
    /// Retry interval while a profile waits for its user (a Secret or spec change also triggers).
    pub user_action_retry: Duration,
    /// Reconciles of one tenant that may talk to Graph at once.
    pub per_tenant_concurrency: usize,
    pub workload_identity: WorkloadIdentityConfig,
    /// How often a managed schema is read to find changes made outside the operator.
    pub schema_drift_interval: Duration,
    /// Names this cluster in the owner tag a profile records on its service principal
    /// (`cloudsync-operator:<cluster-id>/<namespace>/<name>`).
    pub cluster_id: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(300),
            user_action_retry: Duration::from_secs(600),
            per_tenant_concurrency: 2,
            workload_identity: WorkloadIdentityConfig::default(),
            schema_drift_interval: Duration::from_secs(1800),
            cluster_id: "default".into(),
        }
    }
}

/// Whether this replica may write (to Graph and to status) right now.
pub type IsLeader = Arc<dyn Fn() -> bool + Send + Sync>;

pub struct Context {
    pub kube: kube::Client,
    pub graph: GraphClient,
    pub recorder: Recorder,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    /// False on a replica that is not the leader: it reconciles nothing.
    pub is_leader: IsLeader,
    pub coordination: Coordination,
    pub schemas: SchemaCache,
    /// ProvisionRequests: the per-service-principal rate limit and answers not yet recorded.
    pub ondemand: crate::ondemand::OnDemandState,
}

impl Context {
    pub fn new(
        kube: kube::Client,
        graph: GraphClient,
        recorder: Recorder,
        settings: Settings,
        metrics: Arc<Metrics>,
        is_leader: IsLeader,
    ) -> Self {
        let coordination = Coordination::new(settings.per_tenant_concurrency);
        Self {
            kube,
            graph,
            recorder,
            settings,
            metrics,
            clock: Arc::new(SystemClock),
            is_leader,
            coordination,
            schemas: SchemaCache::default(),
            ondemand: Default::default(),
        }
    }

    /// A context for tests: default settings, always the leader, the given clock.
    pub fn for_tests(kube: kube::Client, graph: GraphClient, clock: Arc<dyn Clock>) -> Self {
        let recorder =
            Recorder::new(kube.clone(), Reporter { controller: "cloudsync-operator-test".into(), instance: None });
        let mut ctx =
            Self::new(kube, graph, recorder, Settings::default(), Arc::new(Metrics::new()), Arc::new(|| true));
        ctx.clock = clock;
        ctx
    }

    pub fn leading(&self) -> bool {
        (self.is_leader)()
    }

    pub(crate) async fn publish(
        &self,
        profile: &CloudSyncProfile,
        type_: EventType,
        reason: Reason,
        action: &str,
        note: String,
    ) {
        let event =
            Event { type_, reason: reason.as_str().into(), note: Some(note), action: action.into(), secondary: None };
        if let Err(e) = self.recorder.publish(&event, &profile.object_ref(&())).await {
            warn!(error = %e, "cannot publish event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::clock::ManualClock;
    use crate::reconcile::pass::Pass;

    #[tokio::test]
    async fn a_test_context_has_the_tests_clock_and_leads() {
        // No request is made: building a client only parses its configuration.
        let kube = kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
        let graph = GraphClient::new(crate::graph::ClientConfig::default()).unwrap();
        let start: jiff::Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let ctx = Arc::new(Context::for_tests(kube, graph, clock.clone()));
        let profile: CloudSyncProfile = serde_json::from_value(serde_json::json!({
            "apiVersion": "cloudsync.io/v1alpha1", "kind": "CloudSyncProfile",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"tenantId": "11111111-2222-3333-4444-555555555555", "credentials": {"secretRef": {"name": "c"}}, "domain": "contoso.com"}
        }))
        .unwrap();
        let pass = Pass::new(Arc::new(profile), ctx);
        assert_eq!(pass.now(), start);
        clock.advance(Duration::from_secs(60));
        assert_eq!(pass.now().to_string(), "2026-11-26T12:01:00Z");
        assert!(pass.ensure_leader().is_ok());
        assert_eq!(pass.key(), "ns/p");
    }
}
