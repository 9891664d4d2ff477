//! The Apply side of a reconcile: credentials and a token, then observe → plan → execute until
//! the plan settles, then the conditions. The loop decides nothing itself: `plan` says what to
//! read or write next, `observe` reads, `execute` writes.

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::controller::Action;
use tracing::{debug, info};

use super::observe::{self, Observed};
use super::pass::Pass;
use super::plan::{self, CONVERGING_REQUEUE, Plan, Slot};
use super::reason::Problem;
use super::{Context, Error, execute, status};
use crate::api::CloudSyncProfile;
use crate::api::conditions::{self, types};

/// A profile whose tenant is busy with other profiles waits this long (jittered) for its turn,
/// without holding a controller worker.
const BUSY_TENANT_REQUEUE: Duration = Duration::from_secs(2);

/// Reads and waves one pass may take; a new profile needs about eight.
pub const MAX_ROUNDS: usize = 16;

pub async fn apply(profile: Arc<CloudSyncProfile>, ctx: Arc<Context>) -> Result<Action, Error> {
    let mut pass = Pass::new(profile, ctx);
    let result = converge(&mut pass).await;
    if let Err(e) = &result {
        // Outcomes still in the working copy, a held record among them (a pass that ends in an
        // error writes no conditions).
        let _ = pass.save().await;
        // A working profile stays Ready through a blip; one that is not Ready, or whose spec
        // changed since, says why it waits.
        let ready = conditions::is_true(&pass.status().conditions, types::READY);
        let current = pass.status().observed_generation == pass.profile.metadata.generation;
        if (!ready || !current) && matches!(e, Error::Graph(_) | Error::Waiting(_)) {
            let text = match e {
                Error::Graph(g) => g.summary(),
                other => other.to_string(),
            };
            let _ = pass.commit_conditions(&[status::retrying(&text)]).await;
        }
    }
    let ready = match conditions::find(&pass.status().conditions, types::READY).map(|c| c.status.as_str()) {
        Some("True") => "true",
        Some("False") => "false",
        _ => "unknown",
    };
    // Only the leader reports profiles: a replica that lost the lease meanwhile dropped its
    // series, and must not bring back values it no longer keeps current.
    if pass.ctx.leading() {
        pass.ctx.metrics.profile_ready(&pass.key(), Some(ready));
        pass.ctx.metrics.profile_observed(&pass.namespace(), &pass.profile.name_any(), pass.status());
    }
    debug!(
        writes = pass.writes,
        patches = pass.patches(),
        elapsed_ms = pass.started.elapsed().as_millis() as u64,
        "reconciled"
    );
    result
}

async fn converge(pass: &mut Pass) -> Result<Action, Error> {
    let spec = pass.profile.spec.clone();
    let mut seen = Observed {
        schema_check_due: pass.ctx.schemas.check_due(&pass.key(), pass.ctx.settings.schema_drift_interval),
        owner: Some(super::ownership::Owner {
            checked: pass.ctx.coordination.owner_known(&pass.key()),
            ..super::ownership::Owner::of(&pass.profile, &pass.ctx.settings.cluster_id)
        }),
        ..Default::default()
    };
    let graph = match observe::connect(pass).await? {
        Ok(g) => g,
        Err(problem) => return finish(pass, &seen, Plan::Blocked { slot: Slot::Credentials, problem }).await,
    };
    let Some(_permit) = pass.ctx.coordination.try_tenant_permit(&spec.tenant_id) else {
        return Ok(Action::requeue(BUSY_TENANT_REQUEUE.mul_f64(1.0 + rand::random::<f64>())));
    };
    match graph.check_credentials().await {
        Ok(()) => {}
        Err(e) if e.is_transient() => return Err(e.into()),
        Err(e) => {
            let end = Plan::Blocked { slot: Slot::Credentials, problem: Problem::graph(&e) };
            return finish(pass, &seen, end).await;
        }
    }
    for _ in 0..MAX_ROUNDS {
        let now = pass.now();
        status::absorb(&spec, pass.status_mut(), &seen, now);
        let keys = plan::claim_keys(&spec, pass.status(), &seen);
        seen.claimed_by = pass.ctx.coordination.claim(&pass.key(), keys).err();
        match plan::plan(&spec, pass.status(), &seen, now) {
            Plan::Read(what) => {
                let slot = what.slot();
                if let Err(e) = observe::read(pass, &graph, what, &mut seen).await {
                    return failed(pass, &seen, slot, e).await;
                }
            }
            Plan::Wave(steps) => {
                if let Some((slot, e)) = execute::wave(pass, &graph, &steps, &mut seen).await? {
                    return failed(pass, &seen, slot, e.into()).await;
                }
            }
            end => {
                // Converging means the owner check let this pass through.
                if matches!(end, Plan::Converged { .. }) {
                    pass.ctx.coordination.owner_checked(&pass.key());
                }
                return finish(pass, &seen, end).await;
            }
        }
    }
    Err(Error::Waiting(format!("the plan did not settle within {MAX_ROUNDS} rounds; looking again")))
}

/// A read or a step failed: replication lag right after a creation is waited out, a transient
/// failure is retried with backoff, anything else needs the user.
async fn failed(pass: &mut Pass, seen: &Observed, slot: Slot, e: Error) -> Result<Action, Error> {
    match e {
        Error::Graph(g) if plan::eventual(pass.status(), pass.now()) && plan::lagging(&g) => {
            let sp = pass.status().service_principal.as_ref().map(|s| s.id.clone()).unwrap_or_default();
            Err(Error::Waiting(format!("{sp} is not usable in Graph yet (replication): {}", g.summary())))
        }
        Error::Graph(g) if !g.is_transient() => {
            finish(pass, seen, Plan::Blocked { slot, problem: Problem::graph(&g) }).await
        }
        other => Err(other),
    }
}

/// Writes the conditions for how the pass ended and says when to look again.
async fn finish(pass: &mut Pass, seen: &Observed, end: Plan) -> Result<Action, Error> {
    // A held record is never merged into the conditions: it goes out alone, first.
    pass.flush().await?;
    if let Plan::Retry(why) = end {
        return Err(Error::Waiting(why));
    }
    let spec = &pass.profile.spec;
    let facts = status::facts(spec, pass.status(), seen, &end, pass.now());
    let desired = status::conditions(spec, &facts, &pass.status().jobs);
    pass.commit_conditions(&desired).await?;
    let settings = &pass.ctx.settings;
    Ok(match end {
        Plan::Blocked { .. } => Action::requeue(settings.user_action_retry),
        Plan::Wait { recheck, .. } => Action::requeue(recheck),
        Plan::Converged { jobs_pending } => {
            let c = &pass.status().conditions;
            let settled = !jobs_pending
                && [types::READY, types::DEGRADED, types::SUSPENDED].iter().any(|t| conditions::is_true(c, t));
            if pass.writes > 0 {
                info!(writes = pass.writes, "converged");
            }
            Action::requeue(if settled { jittered(settings.resync) } else { CONVERGING_REQUEUE })
        }
        Plan::Read(_) | Plan::Wave(_) | Plan::Retry(_) => Action::requeue(CONVERGING_REQUEUE),
    })
}

/// Spreads resyncs of many profiles so they do not hit Graph together.
fn jittered(d: Duration) -> Duration {
    d.mul_f64(0.9 + rand::random::<f64>() * 0.2)
}
