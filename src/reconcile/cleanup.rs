//! The Cleanup side: what deleting a profile does in Graph, through the same observe → plan →
//! execute loop as Apply. `Orphan` touches nothing, and neither does deleting a profile that
//! adopted a configuration it did not create. `Delete` removes the jobs, the application and the
//! service principal (`plan::cleanup`), each step tolerating "already gone". A profile that never
//! created anything is released at once. A cleanup that cannot proceed keeps the finalizer and
//! says why in status and an Event — never silently.

use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::apply::MAX_ROUNDS;
use super::observe::{self, Observed};
use super::ownership::{self, Owner};
use super::pass::Pass;
use super::plan::{self, Keep, Plan};
use super::reason::{Problem, Reason};
use super::{Context, Error, execute};
use crate::api::CloudSyncProfile;
use crate::api::conditions::{Desired, types};
use crate::graph::Tenant;

pub async fn cleanup(profile: Arc<CloudSyncProfile>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = super::key(&profile);
    let mut pass = Pass::new(profile, ctx.clone());
    let result = cleanup_inner(&mut pass).await;
    // However it ended, a record the pass holds (an adopted configuration's id) is written; the
    // finalizer stays if it could not be.
    let flushed = pass.flush().await;
    let result = result.and_then(|a| flushed.map(|()| a));
    if result.is_ok() {
        ctx.metrics.profile_ready(&key, None);
        ctx.coordination.release_claims(&key);
        ctx.coordination.forget_owner(&key);
    }
    result
}

/// `true` when Graph is to be left as it is (and says so).
async fn left_in_place(pass: &Pass) -> bool {
    let (reason, note) = match plan::keep_in_graph(&pass.profile.spec, pass.status()) {
        None => return false,
        Some(Keep::NothingCreated | Keep::Orphan(None)) => return true,
        Some(Keep::Orphan(Some(id))) => (
            Reason::Orphaned,
            format!("left service principal {id} and its jobs in Microsoft Graph (deletionPolicy: Orphan)"),
        ),
        Some(Keep::Adopted(id)) => (
            Reason::AdoptedLeftInPlace,
            format!("left service principal {id} in Microsoft Graph: the profile adopted it, it did not create it"),
        ),
    };
    pass.event(EventType::Normal, reason, "Delete", note).await;
    true
}

async fn cleanup_inner(pass: &mut Pass) -> Result<Action, Error> {
    if left_in_place(pass).await {
        release_owner(pass).await?;
        return Ok(Action::await_change());
    }
    pass.ensure_leader()?;
    let graph = match observe::connect(pass).await? {
        Ok(g) => g,
        Err(p) => return blocked(pass, p).await,
    };
    let _permit = pass.ctx.coordination.tenant_permit(&pass.profile.spec.tenant_id).await;
    if let Some(other) = owned_elsewhere(pass, &graph).await? {
        let note = format!(
            "left the configuration in Microsoft Graph: its owner tag names {other}, which took it over, so this profile deletes nothing"
        );
        pass.event(EventType::Warning, Reason::OwnedElsewhere, "Delete", note).await;
        return Ok(Action::await_change());
    }
    let mut seen = Observed::default();
    let mut removed: Option<String> = None;
    for _ in 0..MAX_ROUNDS {
        if let Some(sp) = &pass.status().service_principal {
            removed = Some(sp.display_name.clone().unwrap_or_else(|| sp.id.clone()));
        }
        match plan::cleanup(pass.status(), &seen, pass.now()) {
            Plan::Read(what) => match observe::read(pass, &graph, what, &mut seen).await {
                Ok(()) => {}
                Err(Error::Graph(e)) if !e.is_transient() => return blocked(pass, Problem::graph(&e)).await,
                Err(e) => return Err(e),
            },
            Plan::Wave(steps) => match execute::wave(pass, &graph, &steps, &mut seen).await? {
                None => {}
                Some((_, e)) if e.is_transient() => return Err(e.into()),
                Some((_, e)) => return blocked(pass, Problem::graph(&e)).await,
            },
            Plan::Retry(why) => return Err(Error::Waiting(why)),
            Plan::Blocked { problem, .. } => return blocked(pass, problem).await,
            Plan::Converged { .. } | Plan::Wait { .. } => {
                if let Some(name) = removed {
                    let note = format!("removed the cloud sync configuration {name} from Microsoft Graph");
                    pass.event(EventType::Normal, Reason::Deleted, "Delete", note).await;
                }
                return Ok(Action::await_change());
            }
        }
    }
    Err(Error::Waiting(format!("the cleanup did not settle within {MAX_ROUNDS} rounds; looking again")))
}

/// The owner the recorded service principal's tag names, when it is not this profile: a
/// configuration taken over by another install is never deleted by the one that made it.
async fn owned_elsewhere(pass: &Pass, graph: &Tenant) -> Result<Option<String>, Error> {
    let Some(sp) = &pass.status().service_principal else { return Ok(None) };
    let me = Owner::of(&pass.profile, &pass.ctx.settings.cluster_id).me;
    match graph.service_principal(&sp.id, false).await {
        Ok(held) => Ok(ownership::owner_of(&held.tags).filter(|o| *o != me).map(str::to_string)),
        Err(e) if e.is_transient() => Err(e.into()),
        // Gone already, or refused: the cleanup's own calls meet the same and say so.
        Err(_) => Ok(None),
    }
}

/// A configuration left in Graph keeps no owner tag of this profile, so that a profile of another
/// install or cluster may take it over (the hand-over). Only a tag this profile recorded is
/// removed. A temporary failure keeps the finalizer; a refusal, or credentials that are gone, let
/// the profile go with a Warning that says how to remove the tag by hand.
async fn release_owner(pass: &Pass) -> Result<(), Error> {
    let Some(sp) = pass.status().service_principal.clone() else { return Ok(()) };
    let me = Owner::of(&pass.profile, &pass.ctx.settings.cluster_id).me;
    if sp.owner.as_deref() != Some(me.as_str()) {
        return Ok(());
    }
    pass.ensure_leader()?;
    let result = match observe::connect(pass).await? {
        Ok(graph) => match remove_owner_tag(&graph, &sp.id, &me).await {
            Err(e) if e.is_transient() => return Err(e.into()),
            other => other.map_err(|e| e.summary()),
        },
        Err(problem) => Err(problem.message),
    };
    match result {
        Ok(true) => {
            let note = format!(
                "removed the owner tag {me} from service principal {}: another profile may now take the configuration over",
                sp.id
            );
            pass.event(EventType::Normal, Reason::OwnershipReleased, "Delete", note).await;
        }
        Ok(false) => {}
        Err(why) => {
            let note = format!(
                "could not remove the owner tag from service principal {} ({why}); until it is removed (PATCH /servicePrincipals/{} with its tags minus {}{me}), other installs refuse the configuration",
                sp.id,
                sp.id,
                ownership::OWNER_TAG_PREFIX
            );
            pass.event(EventType::Warning, Reason::OwnershipReleased, "Delete", note).await;
        }
    }
    Ok(())
}

/// `Ok(true)` when the tag was removed, `Ok(false)` when it was not there (or not ours).
async fn remove_owner_tag(graph: &Tenant, id: &str, me: &str) -> Result<bool, crate::graph::GraphError> {
    let held = match graph.service_principal(id, false).await {
        Ok(h) => h,
        Err(e) if e.is_not_found() => return Ok(false),
        Err(e) => return Err(e),
    };
    let Some(tags) = ownership::release(&held.tags, me) else { return Ok(false) };
    graph.set_service_principal_tags(id, &tags).await.map(|()| true)
}

/// Keeps the finalizer (an error retries with backoff) and says why in the Ready condition.
async fn blocked(pass: &mut Pass, p: Problem) -> Result<Action, Error> {
    let p = Problem::cleanup_blocked(&p.message);
    pass.commit_conditions(&[Desired::new(types::READY, false, p.reason.as_str(), p.message.clone())]).await?;
    Err(Error::Waiting(p.message))
}
