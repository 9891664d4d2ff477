//! The controller process: flags, watches (profiles and the Secrets they reference), the shared
//! Context, supervision of the leader election, and graceful shutdown.

mod concurrency;
pub mod conflict;
pub mod startup;
pub mod unreadable;
pub mod watch_backoff;

use std::collections::hash_map::DefaultHasher;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};
use url::Url;

use crate::api::CloudSyncProfile;
use crate::graph::{ClientConfig, GraphClient, Overrides, RetryPolicy};
use crate::leader::{self, LeaderError, LeaderSettings, Leadership};
use crate::metrics::Metrics;
use crate::reconcile::{self, Context, Settings, WorkloadIdentityConfig};
use crate::server::{self, Health};
use crate::telemetry::{self, LogFormat};

/// Flags of `cloudsync-operator run`; each also reads an environment variable (the Helm chart
/// sets those).
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Graph root for every cloud instead of the national cloud's (e.g. the simulator's URL).
    #[arg(long, env = "CLOUDSYNC_GRAPH_URL")]
    pub graph_url: Option<Url>,
    /// Identity platform authority instead of the national cloud's (e.g. the simulator's URL).
    #[arg(long, env = "CLOUDSYNC_LOGIN_URL")]
    pub login_url: Option<Url>,
    /// Seconds between steady-state resyncs of a profile (jittered ±10 %).
    #[arg(long, env = "CLOUDSYNC_RESYNC_SECONDS", default_value_t = 300)]
    pub resync_seconds: u64,
    /// Seconds between retries of a profile that waits for its user (spec and Secret changes
    /// retry at once).
    #[arg(long, env = "CLOUDSYNC_USER_ACTION_RETRY_SECONDS", default_value_t = 600)]
    pub user_action_retry_seconds: u64,
    /// Seconds between reads of a managed synchronization schema that find and undo changes made
    /// outside the operator (the portal). Between them a steady profile makes no schema call.
    #[arg(long, env = "CLOUDSYNC_SCHEMA_DRIFT_SECONDS", default_value_t = 1800)]
    pub schema_drift_seconds: u64,
    /// Profiles reconciled at once, over all watched namespaces (0: no limit). A reconcile mostly
    /// waits on Graph, so this is sized for waiting, not for cores: 1,000 new profiles at 100 ms
    /// took 142 s with 8 and 46 s with 64 on 2 cores, where 256 was slower again (CPU-bound,
    /// BENCHMARKS.md); the per-tenant limit keeps each tenant inside its throttling budget.
    #[arg(long, env = "CLOUDSYNC_CONCURRENCY", default_value_t = 64)]
    pub concurrency: u16,
    /// Profiles of one tenant reconciled at once.
    #[arg(long, env = "CLOUDSYNC_TENANT_CONCURRENCY", default_value_t = 2)]
    pub tenant_concurrency: usize,
    /// Timeout of one Graph HTTP request, in seconds.
    #[arg(long, env = "CLOUDSYNC_GRAPH_TIMEOUT_SECONDS", default_value_t = 30)]
    pub graph_timeout_seconds: u64,
    /// Namespaces to watch (repeatable or comma-separated); all namespaces when empty.
    #[arg(long = "namespace", env = "CLOUDSYNC_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Only profiles matching this label selector (lets several installs shard a cluster).
    #[arg(long, env = "CLOUDSYNC_LABEL_SELECTOR")]
    pub label_selector: Option<String>,
    /// Let profiles use the operator pod's workload identity (credentials.workloadIdentity).
    #[arg(long, env = "CLOUDSYNC_ALLOW_WORKLOAD_IDENTITY", value_parser = BoolishValueParser::new(),
          num_args = 0..=1, default_value = "false", default_missing_value = "true")]
    pub allow_workload_identity: bool,
    #[arg(long, env = "CLOUDSYNC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter, e.g. info or cloudsync_operator=debug (RUST_LOG wins when set).
    #[arg(long, env = "CLOUDSYNC_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "CLOUDSYNC_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Elect a leader with a Lease so that only one replica acts (on with several replicas).
    #[arg(long, env = "CLOUDSYNC_LEADER_ELECTION", value_parser = BoolishValueParser::new(),
          num_args = 0..=1, default_value = "false", default_missing_value = "true")]
    pub leader_election: bool,
    #[arg(long, env = "CLOUDSYNC_LEASE_NAME", default_value = "cloudsync-operator")]
    pub lease_name: String,
    /// Namespace of the Lease; defaults to the pod's namespace (POD_NAMESPACE).
    #[arg(long, env = "CLOUDSYNC_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Names this cluster in the owner tag recorded on each service principal
    /// (`cloudsync-operator:<cluster-id>/<namespace>/<name>`); the kube-system namespace's uid when
    /// unset, or `default` when that cannot be read.
    #[arg(long, env = "CLOUDSYNC_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    /// Seconds a leader holds the lease without renewing it.
    #[arg(long, env = "CLOUDSYNC_LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot reach Kubernetes: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot read the Kubernetes client configuration (KUBECONFIG, ~/.kube/config or in-cluster): {0}")]
    Config(#[source] kube::Error),
    #[error("cannot serve metrics on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("leader election needs the Lease's namespace: set --lease-namespace or POD_NAMESPACE")]
    LeaseNamespace,
    #[error(
        "the CloudSyncProfile CRD is not installed ({0}); install it with: cloudsync-operator crd | kubectl apply --server-side -f -"
    )]
    CrdMissing(kube::Error),
    #[error(
        "not allowed to list CloudSyncProfiles {scope} ({source}); check the operator's RBAC (the Helm chart grants it)"
    )]
    Forbidden { scope: String, source: kube::Error },
    #[error("{0}")]
    Graph(#[from] crate::graph::GraphError),
    #[error("{0}; exiting so that the pod is restarted")]
    Leader(#[from] LeaderError),
}

/// A profile as watched: one that this operator version cannot read (a newer CRD) is an
/// `InvalidObject` for itself alone, instead of a failure of the whole watch.
pub type WatchedProfile = DeserializeGuard<CloudSyncProfile>;

/// Hash of what should trigger a reconcile: spec changes (generation), deletion, finalizers and a
/// manual trigger annotation. Not status: the operator's own status writes must not loop.
pub fn trigger_hash<K: Resource>(p: &K) -> Option<u64> {
    let mut h = DefaultHasher::new();
    p.meta().uid.hash(&mut h);
    p.meta().generation.hash(&mut h);
    p.meta().deletion_timestamp.is_some().hash(&mut h);
    p.finalizers().hash(&mut h);
    p.annotations().get(RECONCILE_ANNOTATION).hash(&mut h);
    Some(h.finish())
}

/// Set this annotation to any new value to make the operator look at a profile now.
pub const RECONCILE_ANNOTATION: &str = "cloudsync.io/reconcile-requested-at";

/// Readable profiles in the Secret's namespace whose credentials name it (an unreadable one has
/// no credentials to use).
fn profiles_using(
    store: &Store<WatchedProfile>,
    namespace: Option<&str>,
    name: &str,
) -> Vec<ObjectRef<WatchedProfile>> {
    store
        .state()
        .into_iter()
        .filter(|p| {
            p.0.as_ref().is_ok_and(|p| {
                p.namespace().as_deref() == namespace
                    && p.spec.credentials.secret_ref.as_ref().is_some_and(|r| r.name == name)
            })
        })
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// One watched profile: a readable one is reconciled, an unreadable one reported.
async fn dispatch(object: Arc<WatchedProfile>, ctx: Arc<Context>) -> Result<Action, reconcile::Error> {
    match &object.0 {
        Ok(profile) => reconcile::reconcile(Arc::new(profile.clone()), ctx).await,
        Err(invalid) => unreadable::report(&object, &invalid.error, &ctx).await,
    }
}

/// Retry of an unreadable profile whose report failed (the apiserver refused the Event or the
/// status write); a profile that reads backs off as every other.
const UNREADABLE_REPORT_RETRY: Duration = Duration::from_secs(30);

fn error_policy(object: Arc<WatchedProfile>, error: &reconcile::Error, ctx: Arc<Context>) -> Action {
    if conflict::is_conflict(error) {
        // Not a failure: the profile changed since it was read. Not counted in its backoff.
        debug!(profile = %ObjectRef::from_obj(object.as_ref()), error = %error, "write conflict; looking again");
        return Action::requeue(conflict::retry_delay(rand::random::<f64>()));
    }
    match &object.0 {
        Ok(profile) => reconcile::error_policy(Arc::new(profile.clone()), error, ctx),
        Err(_) => {
            warn!(profile = %ObjectRef::from_obj(object.as_ref()), error = %error, "cannot report an unreadable profile; will retry");
            Action::requeue(UNREADABLE_REPORT_RETRY)
        }
    }
}

/// What every per-scope controller of the process shares.
#[derive(Clone)]
pub struct Shared {
    pub ctx: Arc<Context>,
    pub leadership: tokio::sync::watch::Receiver<bool>,
    pub health: Arc<Health>,
    pub shutdown: CancellationToken,
    pub label_selector: Option<String>,
    /// Each Controller's own bound.
    pub concurrency: u16,
    /// The process-wide bound, shared by every Controller (the same number).
    pub limit: Arc<Semaphore>,
}

/// Removes the per-profile series of a profile that is gone from the watch: deleted (also when
/// its finalizer was removed by hand, so no cleanup ran), or no longer matching the label
/// selector. After a re-list (the store is already replaced when InitDone passes), the series of
/// every profile of the scope that is no longer there.
fn forget_deleted(
    metrics: Arc<Metrics>,
    store: Store<WatchedProfile>,
    namespace: Option<String>,
) -> impl FnMut(&Result<watcher::Event<WatchedProfile>, watcher::Error>) {
    move |event| match event {
        Ok(watcher::Event::Delete(p)) => {
            metrics.profile_ready(&format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()), None)
        }
        Ok(watcher::Event::InitDone) => {
            let keep = store
                .state()
                .iter()
                .map(|p| format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()))
                .collect();
            metrics.retain_profiles(namespace.as_deref(), &keep);
        }
        _ => {}
    }
}

/// Runs one controller over one scope (a namespace, or all of them) until `shared.shutdown`.
pub async fn controller(client: Client, namespace: Option<String>, shared: Shared) {
    let Shared { ctx, leadership, health, shutdown, label_selector, concurrency, limit } = shared;
    let (profiles, secrets): (Api<WatchedProfile>, Api<PartialObjectMeta<Secret>>) = match &namespace {
        Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client.clone(), ns)),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let mut wc = watcher::Config::default();
    if let Some(s) = &label_selector {
        wc = wc.labels(s);
    }
    let (reader, writer) = reflector::store();
    // Readiness comes from the stream itself, not from `Store::wait_until_ready`: the store's
    // readiness is a oneshot that keeps only its last waiter's waker, and the controller waits on
    // it too, so a second waiter could miss the signal or take it from the controller.
    let mut first_sync = Some(health);
    let profile_stream = watcher(profiles, wc)
        .backoff(watch_backoff::watch_backoff())
        .inspect(move |event| {
            if matches!(event, Ok(watcher::Event::InitDone))
                && let Some(h) = first_sync.take()
            {
                h.scope_synced();
            }
        })
        // managedFields are not read by the operator and were most of each stored profile (a
        // status written by server-side apply lists every field it owns): without them the store of
        // 1,000 profiles is a fraction of the size.
        .modify(|p| p.meta_mut().managed_fields = None)
        .reflect(writer)
        .inspect(forget_deleted(ctx.metrics.clone(), reader.clone(), namespace.clone()))
        .applied_objects()
        .predicate_filter(trigger_hash, Default::default());
    // Metadata only: the operator reads a Secret's data when it reconciles, and keeps no copy.
    let secret_stream =
        watcher(secrets, watcher::Config::default()).backoff(watch_backoff::watch_backoff()).touched_objects();
    let store = reader.clone();
    let stopping = shutdown.clone();
    Controller::for_stream(profile_stream, reader)
        .watches_stream(secret_stream, move |s| profiles_using(&store, s.metadata.namespace.as_deref(), &s.name_any()))
        // A new leader looks at every profile at once (standbys skip them while they wait).
        .reconcile_all_on(leader::became_leader(leadership))
        // The Controller pauses all its triggers after an error from any of these watches, with
        // kube-runtime's long default unless told otherwise.
        .trigger_backoff(watch_backoff::watch_backoff())
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .graceful_shutdown_on(async move { stopping.cancelled().await })
        .run(concurrency::bounded(limit, dispatch), error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                match e {
                    kube::runtime::controller::Error::ReconcilerFailed(err, obj) if conflict::is_conflict(&err) => {
                        debug!(profile = %obj, error = %err, "reconcile met a write conflict")
                    }
                    kube::runtime::controller::Error::ReconcilerFailed(err, obj) => {
                        warn!(profile = %obj, error = %err, "reconcile failed")
                    }
                    other => warn!(error = %other, "controller"),
                }
            }
        })
        .await;
}

pub fn context(
    client: Client,
    args: &RunArgs,
    metrics: Arc<Metrics>,
    is_leader: reconcile::IsLeader,
    cluster_id: String,
) -> Result<Context, RunError> {
    let graph = GraphClient::with_observer(
        ClientConfig {
            overrides: Overrides { graph: args.graph_url.clone(), login: args.login_url.clone() },
            timeout: Duration::from_secs(args.graph_timeout_seconds.max(1)),
            retry: RetryPolicy::default(),
        },
        metrics.clone(),
    )?;
    let reporter = Reporter {
        controller: "cloudsync-operator".into(),
        instance: std::env::var("POD_NAME").ok().filter(|s| !s.is_empty()),
    };
    let recorder = reconcile::recorder::Recorder::new(client.clone(), reporter);
    let settings = Settings {
        resync: Duration::from_secs(args.resync_seconds.max(1)),
        user_action_retry: Duration::from_secs(args.user_action_retry_seconds.max(1)),
        per_tenant_concurrency: args.tenant_concurrency.max(1),
        workload_identity: WorkloadIdentityConfig::from_env(args.allow_workload_identity),
        schema_drift_interval: Duration::from_secs(args.schema_drift_seconds.max(1)),
        cluster_id,
    };
    Ok(Context::new(client, graph, recorder, settings, metrics, is_leader))
}

/// Only the leader reports per-profile gauges: standbys reconcile nothing, so a replica that loses
/// the lease drops its series rather than keep stale ones beside the new leader's.
async fn forget_profiles_when_not_leading(mut rx: tokio::sync::watch::Receiver<bool>, metrics: Arc<Metrics>) {
    while rx.changed().await.is_ok() {
        if !*rx.borrow_and_update() {
            metrics.forget_all_profiles();
        }
    }
    // The election task is gone: the replica no longer acts as leader (and exits).
    metrics.forget_all_profiles();
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c().map(|_| ());
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                futures::future::select(Box::pin(ctrl_c), Box::pin(async move { term.recv().await.map(|_| ()) })).await;
            }
            Err(_) => ctrl_c.await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}

fn pod_name() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| format!("cloudsync-operator-{}", uuid::Uuid::new_v4().simple()))
}

pub async fn run(args: RunArgs) -> Result<(), RunError> {
    telemetry::init(args.log_format, &args.log_level);
    // A kubeconfig that cannot be read fails here, before anything else: waiting cannot fix it.
    let client = Client::try_default().await.map_err(RunError::Config)?;

    // Served before the first apiserver call: while the apiserver is waited for, the pod is live
    // (not restarted) and not ready.
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let listener = server::bind(args.metrics_addr).await.map_err(|e| RunError::Bind(args.metrics_addr, e))?;
    let bound = listener.local_addr().map_err(|e| RunError::Bind(args.metrics_addr, e))?;
    // Stops the watches first; the lease is given up only once no reconcile is running.
    let stop = CancellationToken::new();
    let release = CancellationToken::new();
    let server = tokio::spawn(server::serve(listener, metrics.clone(), health.clone(), release.clone()));
    info!("serving metrics and health on http://{bound} while checking access to the Kubernetes API");
    tokio::select! {
        access = startup::wait_for_access(&client, &args.namespaces) => access?,
        _ = shutdown_signal() => {
            info!("stopped before the Kubernetes API answered");
            release.cancel();
            let _ = server.await;
            return Ok(());
        }
    }

    let mut leadership = if args.leader_election {
        let namespace = args
            .lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|s| !s.is_empty()))
            .ok_or(RunError::LeaseNamespace)?;
        let settings = LeaderSettings {
            lease_name: args.lease_name.clone(),
            namespace,
            identity: pod_name(),
            duration: Duration::from_secs(args.lease_duration_seconds),
        };
        Leadership::start(client.clone(), settings, release.clone())
    } else {
        Leadership::always()
    };
    let leading = leadership.receiver();
    tokio::spawn(forget_profiles_when_not_leading(leadership.receiver(), metrics.clone()));
    let cluster_id = startup::cluster_id(&client, args.cluster_id.as_deref()).await;
    info!(cluster_id = %cluster_id, "owner tags name this cluster");
    let ctx =
        Arc::new(context(client.clone(), &args, metrics, Arc::new(move || leader::is_leading(&leading)), cluster_id)?);
    info!(
        graph = args.graph_url.as_ref().map(|u| u.as_str()).unwrap_or("national cloud"),
        namespaces = ?args.namespaces,
        leader_election = args.leader_election,
        "cloudsync-operator starting; serving metrics and health on http://{bound}"
    );

    let scopes: Vec<Option<String>> =
        if args.namespaces.is_empty() { vec![None] } else { args.namespaces.iter().cloned().map(Some).collect() };
    health.expect_scopes(scopes.len());
    let shared = Shared {
        ctx,
        leadership: leadership.receiver(),
        health: health.clone(),
        shutdown: stop.clone(),
        label_selector: args.label_selector.clone(),
        concurrency: args.concurrency,
        limit: concurrency::limit(args.concurrency),
    };
    let ondemand = futures::future::join_all(scopes.iter().cloned().map(|ns| {
        crate::ondemand::controller::controller(
            client.clone(),
            ns,
            shared.ctx.clone(),
            shared.leadership.clone(),
            stop.clone(),
            shared.label_selector.clone(),
        )
    }));
    let profiles =
        futures::future::join_all(scopes.into_iter().map(|ns| controller(client.clone(), ns, shared.clone())));
    let controllers = futures::future::join(profiles, ondemand);
    let signal = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        info!("shutting down");
        signal.cancel();
    });
    if let Err(e) = supervise(controllers, &mut leadership).await {
        // No graceful drain: reconciles still running were started as leader, and stopping
        // them now is no worse than a crash, which every step is built to survive.
        health.stopping();
        return Err(e);
    }
    if !stop.is_cancelled() {
        error!("controller stopped unexpectedly");
    }
    health.stopping();
    release.cancel();
    leadership.finished().await;
    let _ = server.await;
    info!("stopped");
    Ok(())
}

/// Runs `controllers` until they stop (after a shutdown signal), unless the leader election task
/// dies first: then this replica no longer knows whether it holds the lease, already reads as not
/// leading (see `leader::is_leading`), and fails so that Kubernetes restarts it.
pub async fn supervise(controllers: impl Future, leadership: &mut Leadership) -> Result<(), RunError> {
    let mut controllers = std::pin::pin!(controllers);
    tokio::select! {
        _ = &mut controllers => Ok(()),
        outcome = leadership.supervise() => match outcome {
            // Released while the controllers still run: nothing left to supervise.
            Ok(()) => {
                let _ = controllers.await;
                Ok(())
            }
            Err(e) => {
                error!(error = %e, "leader election stopped; this replica stops acting as leader and exits");
                Err(RunError::Leader(e))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::watch;

    use super::*;

    /// A Leadership whose campaign leads, then panics when `panic` fires.
    fn doomed_leadership() -> (Leadership, tokio::sync::oneshot::Sender<()>) {
        let (tx, rx) = watch::channel(true);
        let (panic, wait) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _tx = tx;
            let _ = wait.await;
            panic!("injected: the lease manager blew up");
        });
        (Leadership::supervising(rx, task, CancellationToken::new()), panic)
    }

    #[tokio::test]
    async fn a_dead_leader_election_fails_the_run_while_controllers_still_run() {
        let (mut leadership, panic) = doomed_leadership();
        let leading = leadership.receiver();
        assert!(leader::is_leading(&leading));
        let controllers_stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = controllers_stopped.clone();
        // Controllers that would run forever; they are dropped (and their reconciles with them).
        let controllers = async move {
            let _guard = scopeguard(stopped);
            futures::future::pending::<()>().await
        };
        let _ = panic.send(());
        let outcome = tokio::time::timeout(Duration::from_secs(5), supervise(controllers, &mut leadership))
            .await
            .expect("the supervisor resolves without waiting for the controllers");
        match outcome {
            Err(e @ RunError::Leader(LeaderError::Panicked(_))) => {
                assert!(e.to_string().contains("exiting so that the pod is restarted"), "{e}");
            }
            other => panic!("expected a leader failure, got {other:?}"),
        }
        assert!(!leader::is_leading(&leading), "the replica no longer acts as leader");
        assert!(controllers_stopped.load(std::sync::atomic::Ordering::SeqCst), "the controllers were stopped");
    }

    #[tokio::test]
    async fn controllers_that_stop_end_the_run_cleanly() {
        let mut leadership = Leadership::always();
        let outcome = tokio::time::timeout(Duration::from_secs(5), supervise(async {}, &mut leadership)).await;
        assert!(matches!(outcome, Ok(Ok(()))), "{outcome:?}");
    }

    /// Sets the flag when dropped.
    fn scopeguard(flag: Arc<std::sync::atomic::AtomicBool>) -> impl Drop {
        struct Guard(Arc<std::sync::atomic::AtomicBool>);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        Guard(flag)
    }

    #[test]
    fn the_trigger_ignores_status_and_sees_unreadable_profiles() {
        let readable: CloudSyncProfile = serde_json::from_value(serde_json::json!({
            "apiVersion": "cloudsync.io/v1alpha1", "kind": "CloudSyncProfile",
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "generation": 1},
            "spec": {"tenantId": "11111111-2222-3333-4444-555555555555",
                     "credentials": {"secretRef": {"name": "s"}}, "domain": "contoso.com"},
        }))
        .expect("profile");
        let mut with_status = readable.clone();
        with_status.status = Some(Default::default());
        assert_eq!(trigger_hash(&readable), trigger_hash(&with_status));

        let guarded = |policy: &str, generation: i64| -> WatchedProfile {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "cloudsync.io/v1alpha1", "kind": "CloudSyncProfile",
                "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "generation": generation},
                "spec": {"tenantId": "11111111-2222-3333-4444-555555555555",
                         "credentials": {"secretRef": {"name": "s"}}, "domain": "contoso.com",
                         "deletionPolicy": policy},
            }))
            .expect("a guard always deserializes")
        };
        let archive = guarded("Archive", 2);
        assert!(archive.0.is_err(), "unknown enum value");
        assert!(guarded("Orphan", 3).0.is_ok());
        assert_ne!(trigger_hash(&archive), trigger_hash(&guarded("Archive", 3)), "a fix bumps the generation");
    }
}
