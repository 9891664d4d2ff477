//! The ProvisionRequest controller of one scope (a namespace or the cluster). It starts once the
//! ProvisionRequest CRD is served: `helm upgrade` does not install CRDs that are new to a chart, so
//! an upgraded operator may run for a while with only the CloudSyncProfile CRD, and must keep
//! serving profiles meanwhile.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::ListParams;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::run;
use crate::api::{CloudSyncProfile, ProvisionRequest};
use crate::controller::watch_backoff;
use crate::reconcile::Context;

/// How often an operator whose cluster lacks the ProvisionRequest CRD looks for it again.
const CRD_RECHECK: Duration = Duration::from_secs(60);

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Waits until ProvisionRequests can be listed. `false`: stopped first.
async fn crd_served(requests: &Api<ProvisionRequest>, shutdown: &CancellationToken) -> bool {
    let mut warned = false;
    loop {
        match requests.list_metadata(&ListParams::default().limit(1)).await {
            Ok(_) => {
                if warned {
                    info!("the ProvisionRequest CRD is installed now; provisioning on demand is on");
                }
                return true;
            }
            Err(e) => {
                if !warned {
                    warn!(
                        error = %e,
                        "cannot list ProvisionRequests (is the CRD installed? `cloudsync-operator crd | kubectl apply --server-side -f -`); profiles are served, provisioning on demand waits"
                    );
                    warned = true;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(CRD_RECHECK) => {}
            _ = shutdown.cancelled() => return false,
        }
    }
}

/// Runs until `shutdown`.
pub async fn controller(
    client: Client,
    namespace: Option<String>,
    ctx: Arc<Context>,
    leadership: tokio::sync::watch::Receiver<bool>,
    shutdown: CancellationToken,
    label_selector: Option<String>,
) {
    let requests: Api<ProvisionRequest> = api(&client, namespace.as_deref());
    if !crd_served(&requests, &shutdown).await {
        return;
    }
    let profiles: Api<PartialObjectMeta<CloudSyncProfile>> = api(&client, namespace.as_deref());
    let (reader, writer) = reflector::store();
    // Installs that shard profiles by label serve the requests that carry the same labels.
    let mut wc = watcher::Config::default();
    if let Some(s) = &label_selector {
        wc = wc.labels(s);
    }
    let request_stream =
        watcher(requests, wc).backoff(watch_backoff::watch_backoff()).reflect(writer).applied_objects();
    // A profile that gets its provisioning job (or is deleted) wakes the requests waiting on it.
    // Metadata only: every change (status too) still arrives as an event, and the pass reads the
    // profile itself; so no second copy of every profile is kept or deserialized here, and a
    // profile this version cannot read (a newer CRD) cannot break this watch.
    let profile_stream =
        watcher(profiles, watcher::Config::default()).backoff(watch_backoff::watch_backoff()).touched_objects();
    let store = reader.clone();
    let stopping = shutdown.clone();
    Controller::for_stream(request_stream, reader)
        .watches_stream(profile_stream, move |p: PartialObjectMeta<CloudSyncProfile>| {
            let ns = p.namespace();
            let name = p.name_any();
            store
                .state()
                .into_iter()
                .filter(|r| r.namespace() == ns && r.spec.profile == name && r.completed_at().is_none())
                .map(|r| ObjectRef::from_obj(r.as_ref()))
                .collect::<Vec<_>>()
        })
        .reconcile_all_on(crate::leader::became_leader(leadership))
        .trigger_backoff(watch_backoff::watch_backoff())
        .graceful_shutdown_on(async move { stopping.cancelled().await })
        .run(run::reconcile, run::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                match e {
                    kube::runtime::controller::Error::ReconcilerFailed(err, obj) => {
                        warn!(request = %obj, error = %err, "ProvisionRequest pass failed")
                    }
                    other => warn!(error = %other, "ProvisionRequest controller"),
                }
            }
        })
        .await;
}
