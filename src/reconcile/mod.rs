//! Converging Graph to a CloudSyncProfile: observe → plan (pure) → apply (one write at a time,
//! each recorded in status right after it succeeds) → status (pure conditions, one patch when
//! something changed).

mod apply;
mod cleanup;
pub mod credentials;
pub mod plan;
pub mod status;
mod writer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{self, finalizer};
use kube::{Api, Resource, ResourceExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{info, warn};

use crate::api::{CloudSyncProfile, FINALIZER};
use crate::graph::{GraphClient, GraphError};
use crate::metrics::Metrics;
pub use credentials::WorkloadIdentityConfig;

/// The field manager of every status write.
pub const FIELD_MANAGER: &str = "cloudsync-operator";

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
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(300),
            user_action_retry: Duration::from_secs(600),
            per_tenant_concurrency: 2,
            workload_identity: WorkloadIdentityConfig::default(),
        }
    }
}

/// Everything a reconcile needs: the one seam between the controller and the world.
pub struct Context {
    pub kube: kube::Client,
    pub graph: GraphClient,
    pub recorder: Recorder,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    tenant_gates: Mutex<HashMap<String, Arc<Semaphore>>>,
    failures: Mutex<HashMap<String, u32>>,
    /// When false (a replica that is not the leader), reconciles do nothing.
    pub is_leader: Arc<dyn Fn() -> bool + Send + Sync>,
}

impl Context {
    pub fn new(
        kube: kube::Client,
        graph: GraphClient,
        recorder: Recorder,
        settings: Settings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            kube,
            graph,
            recorder,
            settings,
            metrics,
            tenant_gates: Mutex::default(),
            failures: Mutex::default(),
            is_leader: Arc::new(|| true),
        }
    }

    /// Bounds concurrent Graph work per tenant so a burst of profiles in one tenant does not
    /// stampede its throttling budget.
    async fn tenant_permit(&self, tenant: &str) -> Option<OwnedSemaphorePermit> {
        let gate = {
            let mut gates = self.tenant_gates.lock().unwrap_or_else(|p| p.into_inner());
            gates
                .entry(tenant.to_ascii_lowercase())
                .or_insert_with(|| Arc::new(Semaphore::new(self.settings.per_tenant_concurrency.max(1))))
                .clone()
        };
        gate.acquire_owned().await.ok()
    }

    fn failure_count(&self, key: &str, reset: bool) -> u32 {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if reset {
            f.remove(key);
            return 0;
        }
        let n = f.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    pub(crate) async fn publish(
        &self,
        profile: &CloudSyncProfile,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: None };
        if let Err(e) = self.recorder.publish(&event, &profile.object_ref(&())).await {
            warn!(profile = %profile.name_any(), error = %e, "cannot publish event");
        }
    }
}

/// Failures the controller retries with backoff. Problems that need the user are not errors:
/// they become conditions and Events, and the reconcile succeeds with a slow requeue.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
    #[error("{0}")]
    Waiting(String),
}

impl Error {
    /// A bounded label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Graph(g) => g.kind_label(),
            Error::Kube(_) => "KubernetesApi",
            Error::Finalizer(_) => "Finalizer",
            Error::Waiting(_) => "Waiting",
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Graph(g) => g.retry_after,
            Error::Finalizer(b) => match b.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e.retry_after(),
                _ => None,
            },
            _ => None,
        }
    }
}

pub(crate) fn key(profile: &CloudSyncProfile) -> String {
    format!("{}/{}", profile.namespace().unwrap_or_default(), profile.name_any())
}

/// Entry point for one profile.
#[tracing::instrument(skip_all, fields(profile = %key(&profile), tenant = %profile.spec.tenant_id))]
pub async fn reconcile(profile: Arc<CloudSyncProfile>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !(ctx.is_leader)() {
        // Another replica holds the lease: it alone writes to Graph and to status. Becoming the
        // leader reconciles every profile (see controller.rs), so nothing needs a requeue here.
        return Ok(Action::await_change());
    }
    let started = std::time::Instant::now();
    let ns = profile.namespace().unwrap_or_default();
    let api: Api<CloudSyncProfile> = Api::namespaced(ctx.kube.clone(), &ns);
    let result = finalizer(&api, FINALIZER, profile.clone(), |event| async {
        match event {
            finalizer::Event::Apply(p) => apply::apply(p, ctx.clone()).await,
            finalizer::Event::Cleanup(p) => cleanup::cleanup(p, ctx.clone()).await,
        }
    })
    .await
    .map_err(|e| match e {
        finalizer::Error::ApplyFailed(inner) | finalizer::Error::CleanupFailed(inner) => inner,
        other => Error::Finalizer(Box::new(other)),
    });
    if result.is_ok() {
        ctx.failure_count(&key(&profile), true);
    }
    let outcome = match &result {
        Ok(_) => "success",
        Err(e) => e.label(),
    };
    ctx.metrics.reconciled(outcome, started.elapsed());
    result
}

/// Backoff for failures: exactly the Retry-After Graph asked for, else exponential with jitter
/// per profile (5 s doubling to 5 min).
pub fn error_policy(profile: Arc<CloudSyncProfile>, error: &Error, ctx: Arc<Context>) -> Action {
    let n = ctx.failure_count(&key(&profile), false);
    let wait = error.retry_after().unwrap_or_else(|| {
        let base = Duration::from_secs(5).saturating_mul(2u32.saturating_pow(n.saturating_sub(1).min(6)));
        let capped = base.min(Duration::from_secs(300));
        capped.mul_f64(0.75 + rand::random::<f64>() * 0.5)
    });
    info!(profile = %key(&profile), error = %error, attempt = n, retry_in_ms = wait.as_millis() as u64, "reconcile failed; will retry");
    Action::requeue(wait)
}
