//! Converging Graph to a CloudSyncProfile: observe → plan (pure) → apply (one write at a time,
//! each recorded in status right after it succeeds) → status (pure conditions, one patch when
//! something changed).

mod agents;
mod apply;
mod cleanup;
pub mod clock;
mod context;
mod coordination;
pub mod credentials;
mod execute;
mod failures;
pub mod observe;
pub mod ownership;
mod pass;
pub mod plan;
#[cfg(test)]
mod props;
pub mod reason;
pub mod recorder;
#[cfg(test)]
mod rules;
pub mod schema;
mod schema_cache;
pub mod status;
pub mod step;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, finalizer};
use kube::{Api, ResourceExt};
use tracing::info;

use crate::api::{CloudSyncProfile, FINALIZER};
use crate::graph::GraphError;
pub use context::{Context, IsLeader, Settings};
pub use coordination::Coordination;
pub use credentials::WorkloadIdentityConfig;
pub use reason::{Kind, Problem, Reason};

/// The field manager of every status write.
pub const FIELD_MANAGER: &str = "cloudsync-operator";

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

    pub(crate) fn retry_after(&self) -> Option<Duration> {
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
    if !ctx.leading() {
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
        ctx.coordination.succeeded(&key(&profile));
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
    let n = ctx.coordination.failed(&key(&profile));
    let wait = backoff(error, n, rand::random::<f64>());
    info!(profile = %key(&profile), error = %error, attempt = n, retry_in_ms = wait.as_millis() as u64, "reconcile failed; will retry");
    Action::requeue(wait)
}

/// The wait before retry `attempt` (1-based); `jitter` in [0, 1) spreads it by ±25 %. A
/// Retry-After is honoured exactly, without jitter.
pub fn backoff(error: &Error, attempt: u32, jitter: f64) -> Duration {
    error.retry_after().unwrap_or_else(|| {
        let base = Duration::from_secs(5).saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(6)));
        base.min(Duration::from_secs(300)).mul_f64(0.75 + jitter * 0.5)
    })
}
