//! The Cleanup side: what deleting a profile does in Graph. `Orphan` touches nothing, and neither
//! does deleting a profile that adopted a configuration it did not create. `Delete` removes the
//! jobs, the application and the service principal, each step tolerating "already gone". A
//! profile that never created anything is released at once. A cleanup that cannot proceed keeps
//! the finalizer and says why in status and an Event — never silently.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

use super::apply::{Run, graph_problem};
use super::plan;
use super::status::Problem;
use super::{Context, Error, credentials};
use crate::api::conditions::{Desired, types};
use crate::api::{CloudSyncProfile, DeletionPolicy, ServicePrincipalRef};
use crate::graph::{GraphError, Tenant};

pub async fn cleanup(profile: Arc<CloudSyncProfile>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = super::key(&profile);
    let result = cleanup_inner(profile, ctx.clone()).await;
    if result.is_ok() {
        ctx.metrics.profile_ready(&key, None);
        ctx.release_claims(&key);
    }
    result
}

async fn cleanup_inner(profile: Arc<CloudSyncProfile>, ctx: Arc<Context>) -> Result<Action, Error> {
    let mut run = Run::new(profile, ctx);
    let status = run.writer.status.clone();
    let spec = run.profile.spec.clone();
    let sp = status.service_principal.clone();

    if spec.deletion_policy() == DeletionPolicy::Orphan {
        if let Some(sp) = &sp {
            run.event(
                EventType::Normal,
                "Orphaned",
                "Delete",
                format!("left service principal {} and its jobs in Microsoft Graph (deletionPolicy: Orphan)", sp.id),
            )
            .await;
        }
        return Ok(Action::await_change());
    }
    if let Some(sp) = sp.as_ref().filter(|s| s.adopted == Some(true)) {
        run.event(
            EventType::Normal,
            "AdoptedLeftInPlace",
            "Delete",
            format!(
                "left service principal {} in Microsoft Graph: the profile adopted it, it did not create it",
                sp.id
            ),
        )
        .await;
        return Ok(Action::await_change());
    }
    if sp.is_none() && status.pending_instantiate.is_none() {
        // Nothing was ever created (or it is gone already): release at once.
        return Ok(Action::await_change());
    }
    run.ensure_leader()?;

    let ns = run.profile.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(run.ctx.kube.clone(), &ns);
    let credential =
        match credentials::resolve(&secrets, &ns, &spec.credentials, &run.ctx.settings.workload_identity).await? {
            Ok(c) => c,
            Err(p) => return blocked(&mut run, p).await,
        };
    let graph = run.ctx.graph.tenant(spec.cloud(), &spec.tenant_id, credential);
    let _permit = run.ctx.tenant_permit(&spec.tenant_id).await;

    match delete_in_graph(&mut run, &graph).await {
        Ok(Outcome::Done) => Ok(Action::await_change()),
        Ok(Outcome::Blocked(p)) => blocked(&mut run, p).await,
        Ok(Outcome::Wait(why)) => Err(Error::Waiting(why)),
        Err(e) if e.is_transient() => Err(e.into()),
        Err(e) => blocked(&mut run, graph_problem(&e)).await,
    }
}

async fn blocked(run: &mut Run, p: Problem) -> Result<Action, Error> {
    let message = format!(
        "cannot delete the configuration in Microsoft Graph: {}. Fix it, or set spec.deletionPolicy to Orphan to release the profile and leave Graph as it is",
        p.message
    );
    run.commit_conditions(&[Desired::new(types::READY, false, "CleanupBlocked", message.clone())]).await?;
    // Returning an error keeps the finalizer and retries with backoff.
    Err(Error::Waiting(message))
}

fn gone_ok(r: Result<(), GraphError>) -> Result<bool, GraphError> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

enum Outcome {
    Done,
    Blocked(Problem),
    Wait(String),
}

/// The configuration an instantiate whose answer was lost may have created: if the lookup finds
/// it, it is ours (before that instantiate the lookup found none under that name).
async fn pending_configuration(
    run: &Run,
    graph: &Tenant,
) -> Result<Result<Option<ServicePrincipalRef>, Outcome>, GraphError> {
    let Some(p) = run.writer.status.pending_instantiate.clone() else { return Ok(Ok(None)) };
    let found = graph.find_cloud_sync_service_principals(&p.display_name).await?;
    match found.as_slice() {
        [one] => {
            let application_id = graph.application_id_of(one).await?;
            Ok(Ok(Some(ServicePrincipalRef {
                id: one.id.clone(),
                app_id: one.app_id.clone(),
                application_id,
                display_name: one.display_name.clone(),
                recorded_at: None,
                adopted: None,
            })))
        }
        [] if plan::within(Some(&p.since), Timestamp::now(), plan::INSTANTIATE_GRACE) => {
            Ok(Err(Outcome::Wait(format!(
                "an instantiate of {:?} may have created the configuration; waiting for Graph to list it before deleting",
                p.display_name
            ))))
        }
        [] => Ok(Ok(None)),
        many => Ok(Err(Outcome::Blocked(Problem::new(
            "AmbiguousServicePrincipal",
            format!(
                "{} configurations are named {:?} ({}); the operator does not know which one an unfinished instantiate created: delete it yourself",
                many.len(),
                p.display_name,
                many.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", ")
            ),
        )))),
    }
}

async fn delete_in_graph(run: &mut Run, graph: &Tenant) -> Result<Outcome, GraphError> {
    let sp = match run.writer.status.service_principal.clone() {
        Some(sp) => sp,
        None => match pending_configuration(run, graph).await? {
            Ok(Some(sp)) => sp,
            Ok(None) => return Ok(Outcome::Done),
            Err(outcome) => return Ok(outcome),
        },
    };

    // Jobs first: deleting a job stops it, so nothing runs while the rest goes away.
    let jobs = match graph.list_jobs(&sp.id, false).await {
        Ok(j) => j,
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => return Err(e),
    };
    for job in &jobs {
        if gone_ok(graph.delete_job(&sp.id, &job.id).await)? {
            run.event(
                EventType::Normal,
                "JobDeleted",
                &format!("Delete{}", job.template()),
                format!("deleted job {}", job.id),
            )
            .await;
        }
    }
    // Deleting the application removes its service principal; delete the service principal too in
    // case the application is unknown or already gone.
    if let Some(app) = &sp.application_id
        && gone_ok(graph.delete_application(app).await)?
    {
        run.event(EventType::Normal, "ApplicationDeleted", "Delete", format!("deleted application {app}")).await;
    }
    if gone_ok(graph.delete_service_principal(&sp.id).await)? {
        run.event(
            EventType::Normal,
            "ServicePrincipalDeleted",
            "Delete",
            format!("deleted service principal {}", sp.id),
        )
        .await;
    }
    run.event(
        EventType::Normal,
        "Deleted",
        "Delete",
        format!(
            "removed the cloud sync configuration {} from Microsoft Graph",
            sp.display_name.as_deref().unwrap_or(&sp.id)
        ),
    )
    .await;
    Ok(Outcome::Done)
}
