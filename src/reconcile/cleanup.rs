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
use super::pass::Pass;
use super::plan::{self, Keep, Plan};
use super::reason::{Problem, Reason};
use super::{Context, Error, execute};
use crate::api::CloudSyncProfile;
use crate::api::conditions::{Desired, types};

pub async fn cleanup(profile: Arc<CloudSyncProfile>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = super::key(&profile);
    let result = cleanup_inner(Pass::new(profile, ctx.clone())).await;
    if result.is_ok() {
        ctx.metrics.profile_ready(&key, None);
        ctx.coordination.release_claims(&key);
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

async fn cleanup_inner(mut pass: Pass) -> Result<Action, Error> {
    if left_in_place(&pass).await {
        return Ok(Action::await_change());
    }
    pass.ensure_leader()?;
    let graph = match observe::connect(&pass).await? {
        Ok(g) => g,
        Err(p) => return blocked(&mut pass, p).await,
    };
    let _permit = pass.ctx.coordination.tenant_permit(&pass.profile.spec.tenant_id).await;
    let mut seen = Observed::default();
    let mut removed: Option<String> = None;
    for _ in 0..MAX_ROUNDS {
        if let Some(sp) = &pass.status().service_principal {
            removed = Some(sp.display_name.clone().unwrap_or_else(|| sp.id.clone()));
        }
        match plan::cleanup(pass.status(), &seen, pass.now()) {
            Plan::Read(what) => match observe::read(&mut pass, &graph, what, &mut seen).await {
                Ok(()) => {}
                Err(Error::Graph(e)) if !e.is_transient() => return blocked(&mut pass, Problem::graph(&e)).await,
                Err(e) => return Err(e),
            },
            Plan::Wave(steps) => match execute::wave(&mut pass, &graph, &steps, &mut seen).await? {
                None => {}
                Some((_, e)) if e.is_transient() => return Err(e.into()),
                Some((_, e)) => return blocked(&mut pass, Problem::graph(&e)).await,
            },
            Plan::Retry(why) => return Err(Error::Waiting(why)),
            Plan::Blocked { problem, .. } => return blocked(&mut pass, problem).await,
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

/// Keeps the finalizer (an error retries with backoff) and says why in the Ready condition.
async fn blocked(pass: &mut Pass, p: Problem) -> Result<Action, Error> {
    let p = Problem::cleanup_blocked(&p.message);
    pass.commit_conditions(&[Desired::new(types::READY, false, p.reason.as_str(), p.message.clone())]).await?;
    Err(Error::Waiting(p.message))
}
