//! One pass over a ProvisionRequest: the I/O around `plan`. Every call to provisionOnDemand is
//! recorded in status (`subjects[].sent`) before it is made and its outcome right after, so a
//! crash at any point neither loses a result nor sends a subject twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use super::answer::{self, Outcome};
use super::limiter::OnDemandLimiter;
use super::plan::{self, COMPLETE, OUT_OF_SCOPE, Target};
use crate::api::conditions::{self, Desired};
use crate::api::{CloudSyncProfile, ProvisionRequest, ProvisionRequestStatus, ProvisionResult, SubjectStatus};
use crate::graph::{ErrorKind, GraphError, Tenant};
use crate::reconcile::{Context, Error, FIELD_MANAGER, credentials};

/// State of on-demand provisioning shared by the passes of one process.
#[derive(Default)]
pub struct OnDemandState {
    pub limiter: OnDemandLimiter,
    /// Rule id per job, read once from the job's schema.
    rules: Mutex<HashMap<String, String>>,
    /// Answers received but not yet recorded (the status write failed): the next pass records
    /// them instead of calling them lost.
    answers: Mutex<HashMap<(String, usize), Outcome>>,
}

/// How long a request waits before it looks again at a profile that is not ready (the profile's
/// own changes also wake it).
const PROFILE_WAIT: Duration = Duration::from_secs(30);

struct Writer {
    api: Api<ProvisionRequest>,
    name: String,
    generation: Option<i64>,
    status: ProvisionRequestStatus,
    written: ProvisionRequestStatus,
}

impl Writer {
    fn condition(&mut self, d: Desired, now: jiff::Timestamp) {
        self.status.conditions = conditions::merge(&self.status.conditions, &[d], self.generation, now);
    }

    async fn save(&mut self) -> Result<(), kube::Error> {
        if self.status == self.written {
            return Ok(());
        }
        let patch = json!({
            "apiVersion": "cloudsync.io/v1alpha1",
            "kind": "ProvisionRequest",
            "status": self.status,
        });
        self.api.patch_status(&self.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
        self.written = self.status.clone();
        Ok(())
    }
}

fn apply(s: &mut SubjectStatus, o: &Outcome) {
    s.result = Some(o.result.unwrap_or(ProvisionResult::Failure));
    s.error_code.clone_from(&o.error_code);
    if o.result.is_none() {
        s.message = Some("Graph's answer gave no result".into());
    }
    s.action.clone_from(&o.action);
    s.steps.clone_from(&o.steps);
}

async fn publish(ctx: &Context, req: &ProvisionRequest, type_: EventType, reason: &str, note: String) {
    let event =
        Event { type_, reason: reason.into(), note: Some(note), action: "ProvisionOnDemand".into(), secondary: None };
    if let Err(e) = ctx.recorder.publish(&event, &req.object_ref(&())).await {
        warn!(error = %e, "cannot publish event");
    }
}

/// Reconciles one ProvisionRequest.
pub async fn reconcile(req: Arc<ProvisionRequest>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.leading() || req.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = req.namespace().unwrap_or_default();
    let requests: Api<ProvisionRequest> = Api::namespaced(ctx.kube.clone(), &ns);
    let now = ctx.clock.now();
    let mut req = req;
    let uid = req.uid().unwrap_or_default();
    let held =
        |i: usize| ctx.ondemand.answers.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&(uid.clone(), i));
    if plan::lost(&plan::entries(&req)).into_iter().any(|i| !held(i)) {
        // The watch can still be behind this process's own last outcome write (CI saw a subject
        // answered and recorded, then judged lost from the older copy): read the request itself
        // before concluding that an answer is gone.
        match requests.get_opt(&req.name_any()).await? {
            Some(fresh) => req = Arc::new(fresh),
            None => return Ok(Action::await_change()),
        }
    }
    if req.completed_at().is_some() {
        return match plan::expires_in(&req, now) {
            None => Ok(Action::await_change()),
            Some(left) if left.is_zero() => {
                info!(request = %req.name_any(), "deleting a finished ProvisionRequest after its ttlSecondsAfterFinished");
                match requests.delete(&req.name_any(), &Default::default()).await {
                    Ok(_) => Ok(Action::await_change()),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
                    Err(e) => Err(e.into()),
                }
            }
            Some(left) => Ok(Action::requeue(left + Duration::from_millis(200))),
        };
    }
    let status = req.status.clone().unwrap_or_default();
    let mut w = Writer {
        api: requests,
        name: req.name_any(),
        generation: req.metadata.generation,
        written: status.clone(),
        status,
    };
    w.status.subjects = plan::entries(&req);

    for i in plan::lost(&w.status.subjects) {
        let held = ctx.ondemand.answers.lock().unwrap_or_else(|p| p.into_inner()).remove(&(uid.clone(), i));
        match held {
            Some(o) => apply(&mut w.status.subjects[i], &o),
            None => {
                warn!(request = %req.name_any(), subject = i, "a provisionOnDemand call was sent but its answer is gone; not sending it again");
                plan::mark_unknown(&mut w.status.subjects[i]);
            }
        }
    }

    let profiles: Api<CloudSyncProfile> = Api::namespaced(ctx.kube.clone(), &ns);
    let profile = match profiles.get_opt(&req.spec.profile).await {
        Ok(p) => p,
        Err(kube::Error::SerdeError(e)) => {
            let message = format!(
                "this operator version cannot read CloudSyncProfile {} ({e}); waiting until it can",
                req.spec.profile
            );
            w.condition(Desired::new(COMPLETE, false, "ProfileNotReady", message), now);
            w.save().await?;
            return Ok(Action::requeue(PROFILE_WAIT));
        }
        Err(e) => return Err(e.into()),
    };
    let target = match plan::target(&req.spec.profile, profile.as_ref()) {
        Ok(t) => t,
        Err(b) if b.may_clear && plan::next(&w.status.subjects).is_some() => {
            w.condition(Desired::new(COMPLETE, false, b.reason, b.message), now);
            w.save().await?;
            return Ok(Action::requeue(PROFILE_WAIT));
        }
        Err(b) => {
            for s in w.status.subjects.iter_mut().filter(|s| s.result.is_none()) {
                s.result = Some(ProvisionResult::Failure);
                s.error_code = Some(b.reason.to_string());
                s.message = Some(b.message.clone());
            }
            return finish(&ctx, &req, w).await;
        }
    };
    let Some(profile) = profile else { return Ok(Action::requeue(PROFILE_WAIT)) };

    if conditions::find(&w.status.conditions, OUT_OF_SCOPE).is_none() {
        let (flags, condition) = plan::scope_check(&req, &profile);
        for (s, out) in w.status.subjects.iter_mut().zip(flags) {
            s.out_of_scope = out.then_some(true);
        }
        if condition.status {
            publish(&ctx, &req, EventType::Warning, "OutsideScope", condition.message.clone()).await;
        }
        w.condition(condition, now);
    }

    if plan::next(&w.status.subjects).is_some() {
        let tenant = match connect(&ctx, &profile, &ns).await? {
            Ok(t) => t,
            Err(problem) => {
                w.condition(Desired::new(COMPLETE, false, problem.reason.as_str(), problem.message), now);
                w.save().await?;
                return Ok(Action::requeue(ctx.settings.user_action_retry));
            }
        };
        let rule = match rule_id(&ctx, &tenant, &target).await {
            Ok(r) => r,
            Err(e) => {
                w.condition(Desired::new(COMPLETE, false, "GraphRequestFailed", e.summary()), ctx.clock.now());
                w.save().await?;
                return Err(e.into());
            }
        };
        w.status.job_id = Some(target.job.clone());
        while let Some(i) = plan::next(&w.status.subjects) {
            if let Some(wait) = send(&ctx, &req, &tenant, &target, &rule, &uid, i, &mut w).await? {
                return Ok(Action::requeue(wait));
            }
        }
    }
    finish(&ctx, &req, w).await
}

/// Sends subject `i`. `Some(wait)`: not processed (throttled); look again after `wait`.
#[allow(clippy::too_many_arguments)]
async fn send(
    ctx: &Context,
    req: &ProvisionRequest,
    tenant: &Tenant,
    target: &Target,
    rule: &str,
    uid: &str,
    i: usize,
    w: &mut Writer,
) -> Result<Option<Duration>, Error> {
    let Some(subject) = req.spec.subjects.get(i) else { return Ok(None) };
    ctx.ondemand.limiter.take(&target.service_principal).await;
    let now = ctx.clock.now();
    let n = req.spec.subjects.len();
    w.status.subjects[i].sent = Some(now.to_string());
    w.status.start_time.get_or_insert_with(|| now.to_string());
    w.condition(Desired::new(COMPLETE, false, "Running", format!("provisioning subject {} of {n}", i + 1)), now);
    // The intent is recorded before the call: a call that may have been made is never repeated.
    w.save().await?;
    let answer = tenant
        .provision_on_demand(
            &target.service_principal,
            &target.job,
            rule,
            subject.dn.as_str(),
            subject.kind.object_type_name(),
        )
        .await;
    let s = &mut w.status.subjects[i];
    match answer {
        Ok(kv) => {
            let outcome = answer::parse(&kv);
            debug!(request = %req.name_any(), subject = i, result = ?outcome.result, "provisionOnDemand answered");
            apply(s, &outcome);
            ctx.ondemand.answers.lock().unwrap_or_else(|p| p.into_inner()).insert((uid.to_string(), i), outcome);
        }
        Err(e) if e.not_processed() => {
            s.sent = None;
            let wait = e.retry_after.unwrap_or(Duration::from_secs(5));
            if e.kind == ErrorKind::Throttled {
                ctx.ondemand.limiter.hold(&target.service_principal, wait, Instant::now());
            }
            w.condition(
                Desired::new(
                    COMPLETE,
                    false,
                    "Throttled",
                    format!("Graph asked to wait {}s: {}", wait.as_secs(), e.summary()),
                ),
                ctx.clock.now(),
            );
            w.save().await?;
            return Ok(Some(wait));
        }
        Err(e) => refused(s, &e),
    }
    // Recorded with the outcome; if this write fails the answer stays in memory for the next pass.
    w.save().await?;
    ctx.ondemand.answers.lock().unwrap_or_else(|p| p.into_inner()).remove(&(uid.to_string(), i));
    Ok(None)
}

/// A failed call: a refusal the service certainly answered is a Failure with its code; anything
/// else may have been carried out and is recorded as such.
fn refused(s: &mut SubjectStatus, e: &GraphError) {
    let answered = matches!(
        e.kind,
        ErrorKind::NeedsUserAction | ErrorKind::NotFound | ErrorKind::Forbidden | ErrorKind::Unauthorized
    ) && e.status.is_some();
    if answered {
        s.result = Some(ProvisionResult::Failure);
        s.error_code =
            Some(e.code.clone().filter(|c| !c.is_empty()).unwrap_or_else(|| format!("HTTP{}", e.status.unwrap_or(0))));
        s.message = Some(e.summary());
    } else {
        plan::mark_unknown(s);
        if let Some(m) = s.message.as_mut() {
            m.push_str(&format!(" ({})", e.summary()));
        }
    }
}

async fn finish(ctx: &Context, req: &ProvisionRequest, mut w: Writer) -> Result<Action, Error> {
    let now = ctx.clock.now();
    let done = plan::completed(req, &w.status.subjects);
    let result = plan::overall(&w.status.subjects);
    w.status.result = Some(result);
    w.status.completion_time = Some(now.to_string());
    let type_ = if result == ProvisionResult::Failure { EventType::Warning } else { EventType::Normal };
    let note = done.message.clone();
    w.condition(done, now);
    w.save().await?;
    publish(ctx, req, type_, result.as_str(), note).await;
    Ok(match req.spec.ttl_seconds_after_finished {
        Some(ttl) => Action::requeue(Duration::from_secs(ttl.max(0) as u64) + Duration::from_millis(200)),
        None => Action::await_change(),
    })
}

async fn connect(
    ctx: &Context,
    profile: &CloudSyncProfile,
    ns: &str,
) -> Result<Result<Tenant, crate::reconcile::Problem>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.kube.clone(), ns);
    let spec = &profile.spec;
    Ok(match credentials::resolve(&secrets, ns, &spec.credentials, &ctx.settings.workload_identity).await? {
        Ok(c) => Ok(ctx.graph.tenant(spec.cloud(), &spec.tenant_id, c)),
        Err(p) => Err(p),
    })
}

async fn rule_id(ctx: &Context, tenant: &Tenant, target: &Target) -> Result<String, GraphError> {
    if let Some(r) = ctx.ondemand.rules.lock().unwrap_or_else(|p| p.into_inner()).get(&target.job) {
        return Ok(r.clone());
    }
    let schema = tenant.job_schema(&target.service_principal, &target.job, false).await?;
    let rule = crate::reconcile::schema::provisioning_rule_id(&schema).ok_or_else(|| GraphError {
        kind: ErrorKind::Transient,
        source: crate::graph::Source::Graph,
        cause: crate::graph::Cause::UnusableAnswer,
        operation: "schema.get",
        status: None,
        code: None,
        message: "the job's schema has no synchronization rule to provision on demand with".into(),
        request_id: None,
        retry_after: None,
    })?;
    ctx.ondemand.rules.lock().unwrap_or_else(|p| p.into_inner()).insert(target.job.clone(), rule.clone());
    Ok(rule)
}

/// The retry policy: conflicts look again soon; other failures back off.
pub fn error_policy(_req: Arc<ProvisionRequest>, error: &Error, _ctx: Arc<Context>) -> Action {
    let wait = error.retry_after().unwrap_or(Duration::from_secs(10));
    debug!(error = %error, "ProvisionRequest pass failed; retrying in {}s", wait.as_secs());
    Action::requeue(wait.max(Duration::from_secs(1)))
}
