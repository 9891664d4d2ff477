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
    claims: Mutex<Claims>,
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
            claims: Mutex::default(),
            is_leader: Arc::new(|| true),
        }
    }

    fn tenant_gate(&self, tenant: &str) -> Arc<Semaphore> {
        let mut gates = self.tenant_gates.lock().unwrap_or_else(|p| p.into_inner());
        gates
            .entry(tenant.to_ascii_lowercase())
            .or_insert_with(|| Arc::new(Semaphore::new(self.settings.per_tenant_concurrency.max(1))))
            .clone()
    }

    /// Bounds concurrent Graph work per tenant so a burst of profiles in one tenant does not
    /// stampede its throttling budget. Never waits: a profile that finds its tenant busy is
    /// requeued, so one busy tenant cannot hold every controller worker.
    fn try_tenant_permit(&self, tenant: &str) -> Option<OwnedSemaphorePermit> {
        self.tenant_gate(tenant).try_acquire_owned().ok()
    }

    /// Waits for a turn in the tenant (cleanup, which runs rarely and must not starve).
    async fn tenant_permit(&self, tenant: &str) -> Option<OwnedSemaphorePermit> {
        self.tenant_gate(tenant).acquire_owned().await.ok()
    }

    /// Claims `keys` (a tenant's configuration names and service principal ids) for `owner`,
    /// replacing what it claimed before. `Err(other)` when another profile holds one of them:
    /// two profiles must never drive (or delete) one configuration.
    pub fn claim(&self, owner: &str, keys: Vec<String>) -> Result<(), String> {
        self.claims.lock().unwrap_or_else(|p| p.into_inner()).claim(owner, keys)
    }

    pub fn release_claims(&self, owner: &str) {
        self.claims.lock().unwrap_or_else(|p| p.into_inner()).release(owner);
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

/// Which profile holds which configuration, in this process.
#[derive(Default)]
struct Claims {
    by_key: HashMap<String, String>,
    by_owner: HashMap<String, Vec<String>>,
}

impl Claims {
    fn claim(&mut self, owner: &str, keys: Vec<String>) -> Result<(), String> {
        if let Some(other) = keys.iter().filter_map(|k| self.by_key.get(k)).find(|o| o.as_str() != owner) {
            return Err(other.clone());
        }
        self.release(owner);
        for k in &keys {
            self.by_key.insert(k.clone(), owner.to_string());
        }
        self.by_owner.insert(owner.to_string(), keys);
        Ok(())
    }

    fn release(&mut self, owner: &str) {
        for k in self.by_owner.remove(owner).unwrap_or_default() {
            if self.by_key.get(&k).is_some_and(|o| o == owner) {
                self.by_key.remove(&k);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_has_one_profile_at_a_time() {
        let mut c = Claims::default();
        assert_eq!(c.claim("ns/a", vec!["t/name/contoso.com".into()]), Ok(()));
        assert_eq!(c.claim("ns/a", vec!["t/name/contoso.com".into(), "t/sp/1".into()]), Ok(()), "re-claiming is fine");
        assert_eq!(c.claim("other/b", vec!["t/name/contoso.com".into()]), Err("ns/a".into()));
        assert_eq!(c.claim("other/b", vec!["t/sp/1".into()]), Err("ns/a".into()));
        assert_eq!(c.claim("other/b", vec!["t/name/fabrikam.com".into()]), Ok(()));
        // A profile that moves to another name frees the old one.
        assert_eq!(c.claim("ns/a", vec!["t/name/new.contoso.com".into()]), Ok(()));
        assert_eq!(c.claim("other/c", vec!["t/name/contoso.com".into()]), Ok(()));
        c.release("other/c");
        assert_eq!(c.claim("x/d", vec!["t/name/contoso.com".into()]), Ok(()));
    }
}
