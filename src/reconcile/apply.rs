//! The Apply side of a reconcile: credentials → token → tenant flag → service principal → jobs and
//! secrets (in parallel) → starts → status. Every Graph write is followed by a status write that
//! records its result before anything else happens.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tracing::{debug, info};

use super::plan::{self, RunAction, ServicePrincipalDecision};
use super::status::{self as st, Facts, Problem};
use super::writer::StatusWriter;
use super::{Context, Error, credentials};
use crate::api::conditions::{self, types};
use crate::api::{CloudSyncProfile, JobStatus, PendingInstantiate, ServicePrincipalRef};
use crate::graph::model::{ServicePrincipal, SynchronizationJob};
use crate::graph::{ErrorKind, GraphError, Source, Tenant};

/// A profile still converging is looked at again soon; a settled one at the resync interval.
const CONVERGING_REQUEUE: Duration = Duration::from_secs(10);

pub struct Run {
    pub profile: Arc<CloudSyncProfile>,
    pub ctx: Arc<Context>,
    pub writer: StatusWriter,
    pub started: Instant,
    /// Graph writes made in this pass.
    pub writes: u32,
}

impl Run {
    pub fn new(profile: Arc<CloudSyncProfile>, ctx: Arc<Context>) -> Self {
        let ns = profile.namespace().unwrap_or_default();
        let api = Api::namespaced(ctx.kube.clone(), &ns);
        let writer = StatusWriter::new(api, profile.name_any(), profile.status.as_ref());
        Self { profile, ctx, writer, started: Instant::now(), writes: 0 }
    }

    pub async fn event(&self, type_: EventType, reason: &str, action: &str, note: String) {
        self.ctx.publish(&self.profile, type_, reason, action, note).await;
    }

    async fn wrote(&mut self, reason: &str, action: &str, note: String) -> Result<(), Error> {
        self.writes += 1;
        self.writer.save().await?;
        self.event(EventType::Normal, reason, action, note).await;
        Ok(())
    }

    /// Merges conditions computed from `facts` and the recorded jobs, sets observedGeneration,
    /// writes status if anything changed, and tells the user about a new problem.
    pub async fn finish(&mut self, facts: &Facts) -> Result<(), Error> {
        let desired = st::conditions(&self.profile.spec, facts, &self.writer.status.jobs);
        self.commit_conditions(&desired).await
    }

    pub async fn commit_conditions(&mut self, desired: &[conditions::Desired]) -> Result<(), Error> {
        let generation = self.profile.metadata.generation;
        let before = conditions::find(&self.writer.status.conditions, types::READY).cloned();
        self.writer.status.conditions =
            conditions::merge(&self.writer.status.conditions, desired, generation, Timestamp::now());
        self.writer.status.observed_generation = generation;
        let after = conditions::find(&self.writer.status.conditions, types::READY).cloned();
        self.writer.save().await?;
        if let Some(a) = after
            && a.status != "True"
            && before.as_ref().is_none_or(|b| b.reason != a.reason || b.message != a.message)
            && !matches!(a.reason.as_str(), "JobsMissing" | "NotRunning" | "InstantiatePending" | "Suspended")
        {
            self.event(EventType::Warning, &a.reason, "Reconcile", a.message.clone()).await;
        }
        Ok(())
    }

    /// A problem only the user can fix: conditions, an Event, and a slow retry (a spec or Secret
    /// change retries at once).
    async fn blocked(&mut self, facts: Facts) -> Result<Action, Error> {
        self.finish(&facts).await?;
        Ok(Action::requeue(self.ctx.settings.user_action_retry))
    }
}

fn waiting_for(what: &str) -> Problem {
    Problem::new("WaitingForCredentials", format!("waiting for {what}"))
}

/// What the user must do about a Graph refusal that retrying will not fix.
pub fn graph_problem(e: &GraphError) -> Problem {
    match (e.source, e.kind) {
        (Source::Login, _) => Problem::new(
            "CredentialsRejected",
            format!(
                "the identity platform refused the credentials: {e}. Check the clientId and clientSecret, the tenantId, and that the app registration exists in that tenant"
            ),
        ),
        (_, ErrorKind::Unauthorized) => Problem::new(
            "GraphUnauthorized",
            format!(
                "{e}. Grant the app registration the Graph application permissions Application.ReadWrite.OwnedBy and Synchronization.ReadWrite.All, with admin consent (sync APIs answer 401 when they are missing)"
            ),
        ),
        (_, ErrorKind::Forbidden) => Problem::new(
            "GraphForbidden",
            format!(
                "{e}. Grant the missing Graph application permission with admin consent (Application.ReadWrite.OwnedBy or Application.ReadWrite.All to create the configuration, Organization.ReadWrite.All for tenantSyncFlag)"
            ),
        ),
        _ => Problem::new("GraphRequestRejected", format!("{e}")),
    }
}

fn now_string() -> String {
    Timestamp::now().to_string()
}

fn sp_ref(sp: &ServicePrincipal, application_id: Option<String>) -> ServicePrincipalRef {
    ServicePrincipalRef {
        id: sp.id.clone(),
        app_id: sp.app_id.clone(),
        application_id,
        display_name: sp.display_name.clone(),
        recorded_at: Some(now_string()),
    }
}

fn describe_sp(sp: &ServicePrincipalRef) -> String {
    format!("service principal {} ({})", sp.id, sp.display_name.as_deref().unwrap_or("unnamed"))
}

pub async fn apply(profile: Arc<CloudSyncProfile>, ctx: Arc<Context>) -> Result<Action, Error> {
    let mut run = Run::new(profile, ctx);
    let result = converge(&mut run).await;
    if let Err(e) = &result {
        // A working profile stays Ready through a blip; one that is not says why it waits.
        let ready = conditions::is_true(&run.writer.status.conditions, types::READY);
        if !ready && matches!(e, Error::Graph(_) | Error::Waiting(_)) {
            let _ = run.commit_conditions(&[st::retrying(&e.to_string())]).await;
        }
    }
    let ready = match conditions::find(&run.writer.status.conditions, types::READY).map(|c| c.status.as_str()) {
        Some("True") => "true",
        Some("False") => "false",
        _ => "unknown",
    };
    run.ctx.metrics.profile_ready(&super::key(&run.profile), Some(ready));
    debug!(
        writes = run.writes,
        patches = run.writer.patches,
        elapsed_ms = run.started.elapsed().as_millis() as u64,
        "reconciled"
    );
    result
}

async fn converge(run: &mut Run) -> Result<Action, Error> {
    let spec = run.profile.spec.clone();
    let ns = run.profile.namespace().unwrap_or_default();
    let desired = plan::desired_templates(&spec);
    let mut facts = Facts {
        credentials: Ok(()),
        service_principal: Err(waiting_for("credentials")),
        jobs: Ok(()),
        desired: desired.clone(),
        duplicates: vec![],
    };

    // 1. Credentials and a token.
    let secrets: Api<Secret> = Api::namespaced(run.ctx.kube.clone(), &ns);
    let credential =
        match credentials::resolve(&secrets, &ns, &spec.credentials, &run.ctx.settings.workload_identity).await? {
            Ok(c) => c,
            Err(problem) => {
                facts.credentials = Err(problem);
                return run.blocked(facts).await;
            }
        };
    let graph = run.ctx.graph.tenant(spec.cloud(), &spec.tenant_id, credential);
    let _permit = run.ctx.tenant_permit(&spec.tenant_id).await;
    match graph.check_credentials().await {
        Ok(()) => {}
        Err(e) if e.is_transient() => return Err(e.into()),
        Err(e) => {
            facts.credentials = Err(graph_problem(&e));
            return run.blocked(facts).await;
        }
    }
    facts.service_principal = Err(Problem::new("Creating", "creating the cloud sync configuration"));

    // 2. The tenant's directory-sync flag, once.
    if spec.tenant_sync_flag() && run.writer.status.tenant_sync_enabled != Some(true) {
        match tenant_flag(run, &graph).await {
            Ok(()) => {}
            Err(Error::Graph(e)) if !e.is_transient() => {
                facts.service_principal = Err(graph_problem(&e));
                return run.blocked(facts).await;
            }
            Err(e) => return Err(e),
        }
    }

    // 3. The service principal: recorded, adopted or created; never twice.
    let (sp, fresh) = match service_principal(run, &graph).await {
        Ok(SpOutcome::Ready { sp, fresh }) => (sp, fresh),
        Ok(SpOutcome::Blocked(problem)) => {
            facts.service_principal = Err(problem);
            return run.blocked(facts).await;
        }
        Ok(SpOutcome::Wait(problem, wait)) => {
            facts.service_principal = Err(problem);
            run.finish(&facts).await?;
            return Ok(Action::requeue(wait));
        }
        Err(Error::Graph(e)) if !e.is_transient() => {
            facts.service_principal = Err(graph_problem(&e));
            return run.blocked(facts).await;
        }
        Err(e) => return Err(e),
    };
    facts.service_principal = Ok(describe_sp(&sp));
    let eventual = fresh || plan::within_replication_grace(sp.recorded_at.as_deref(), Timestamp::now());

    // 4. Jobs and secrets.
    let jobs = if fresh {
        Vec::new()
    } else {
        match graph.list_jobs(&sp.id, eventual).await {
            Ok(j) => j,
            Err(e) if e.is_not_found() && !eventual => return service_principal_gone(run, &sp).await,
            Err(e) if e.is_not_found() => {
                return Err(Error::Waiting(format!("{} is not visible in Graph yet (replication)", sp.id)));
            }
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => {
                facts.service_principal = Err(graph_problem(&e));
                return run.blocked(facts).await;
            }
        }
    };
    match jobs_and_runs(run, &graph, &sp.id, jobs, eventual, &mut facts).await {
        Ok(()) => {}
        Err(Error::Graph(e)) if !e.is_transient() => {
            facts.jobs = Err(graph_problem(&e));
            return run.blocked(facts).await;
        }
        Err(e) => return Err(e),
    }

    // 5. Conditions.
    run.finish(&facts).await?;
    let status = &run.writer.status;
    let settled = conditions::is_true(&status.conditions, types::READY)
        || conditions::is_true(&status.conditions, types::DEGRADED)
        || conditions::is_true(&status.conditions, types::SUSPENDED);
    if run.writes > 0 {
        info!(profile = %run.profile.name_any(), writes = run.writes, "converged");
    }
    Ok(Action::requeue(if settled { jittered(run.ctx.settings.resync) } else { CONVERGING_REQUEUE }))
}

/// Spreads resyncs of many profiles so they do not hit Graph together.
fn jittered(d: Duration) -> Duration {
    d.mul_f64(0.9 + rand::random::<f64>() * 0.2)
}

async fn tenant_flag(run: &mut Run, graph: &Tenant) -> Result<(), Error> {
    let org = graph.organization().await?;
    if org.on_premises_sync_enabled != Some(true) {
        graph.enable_on_premises_sync(&org.id).await?;
        run.writes += 1;
        // The resource page does not list the property as updatable: believe it when we see it.
        let confirmed = graph.organization().await?.on_premises_sync_enabled == Some(true);
        if !confirmed {
            return Err(Error::Graph(GraphError {
                kind: ErrorKind::Transient,
                source: Source::Graph,
                operation: "organization.enableSync",
                status: None,
                code: None,
                message: "onPremisesSyncEnabled is not true yet after the update".into(),
                request_id: None,
                retry_after: None,
            }));
        }
        run.event(
            EventType::Normal,
            "TenantSyncEnabled",
            "EnableDirectorySync",
            format!("turned on onPremisesSyncEnabled for tenant {}", org.id),
        )
        .await;
    }
    run.writer.status.tenant_sync_enabled = Some(true);
    run.writer.save().await?;
    Ok(())
}

enum SpOutcome {
    /// `fresh`: created or found moments ago; Graph may lag behind for a while.
    Ready {
        sp: ServicePrincipalRef,
        fresh: bool,
    },
    Blocked(Problem),
    Wait(Problem, Duration),
}

async fn adopt(run: &mut Run, graph: &Tenant, sp: &ServicePrincipal, ours: bool) -> Result<SpOutcome, Error> {
    let application_id = match sp.app_id.as_deref() {
        Some(app_id) => graph.find_application_by_app_id(app_id).await?.map(|a| a.id),
        None => None,
    };
    let r = sp_ref(sp, application_id);
    run.writer.status.service_principal = Some(r.clone());
    run.writer.status.pending_instantiate = None;
    run.writer.save().await?;
    let (reason, note) = if ours {
        ("ServicePrincipalFound", format!("found {} created by an earlier instantiate", describe_sp(&r)))
    } else {
        ("ServicePrincipalAdopted", format!("adopted the existing {}", describe_sp(&r)))
    };
    run.event(EventType::Normal, reason, "Adopt", note).await;
    Ok(SpOutcome::Ready { sp: r, fresh: ours })
}

async fn service_principal(run: &mut Run, graph: &Tenant) -> Result<SpOutcome, Error> {
    if let Some(sp) = run.writer.status.service_principal.clone() {
        return Ok(SpOutcome::Ready { sp, fresh: false });
    }
    let name = run.profile.spec.effective_display_name().to_string();
    let found = graph.find_cloud_sync_service_principals(&name).await?;
    let pending = run.writer.status.pending_instantiate.clone();
    match plan::decide_service_principal(&found, pending.as_ref(), Timestamp::now()) {
        ServicePrincipalDecision::Adopt(sp) => adopt(run, graph, &sp, pending.is_some()).await,
        ServicePrincipalDecision::Ambiguous(ids) => Ok(SpOutcome::Blocked(Problem::new(
            "AmbiguousServicePrincipal",
            format!(
                "{} cloud sync configurations are named {name:?} ({}): the operator will not guess. Set spec.displayName to a unique name, or delete the extra service principals",
                ids.len(),
                ids.join(", ")
            ),
        ))),
        ServicePrincipalDecision::AwaitPending { remaining } => Ok(SpOutcome::Wait(
            Problem::new(
                "InstantiatePending",
                format!(
                    "an earlier instantiate of {name:?} may have created the configuration; waiting up to {}s for it to appear before creating another",
                    remaining.as_secs()
                ),
            ),
            remaining.min(CONVERGING_REQUEUE),
        )),
        ServicePrincipalDecision::Instantiate => {
            // Recorded before the call: if we crash mid-call, the next run looks before it creates.
            run.writer.status.pending_instantiate =
                Some(PendingInstantiate { display_name: name.clone(), since: now_string() });
            run.writer.save().await?;
            match graph.instantiate_cloud_sync(&name).await {
                Ok(created) => {
                    let r = sp_ref(&created.service_principal, Some(created.application.id.clone()));
                    run.writer.status.service_principal = Some(r.clone());
                    run.writer.status.pending_instantiate = None;
                    run.wrote(
                        "ServicePrincipalCreated",
                        "Instantiate",
                        format!("created {} from the cloud sync template", describe_sp(&r)),
                    )
                    .await?;
                    Ok(SpOutcome::Ready { sp: r, fresh: true })
                }
                Err(e) if e.is_not_found() => {
                    // Graph can answer 404 and still create both objects: look, never repeat blindly.
                    run.writes += 1;
                    run.event(
                        EventType::Warning,
                        "InstantiateUncertain",
                        "Instantiate",
                        format!("{e}; the configuration may exist anyway, looking it up before any new attempt"),
                    )
                    .await;
                    let found = graph.find_cloud_sync_service_principals(&name).await?;
                    match found.as_slice() {
                        [one] => adopt(run, graph, one, true).await,
                        _ => Ok(SpOutcome::Wait(
                            Problem::new(
                                "InstantiatePending",
                                format!(
                                    "instantiate of {name:?} answered 404; waiting for the configuration to appear"
                                ),
                            ),
                            CONVERGING_REQUEUE,
                        )),
                    }
                }
                Err(e) if !e.is_transient() => {
                    // Refused outright: nothing was created, so nothing is pending.
                    run.writer.status.pending_instantiate = None;
                    run.writer.save().await?;
                    Err(e.into())
                }
                // Timeout or 5xx: it may have been created; the pending mark makes the next run look first.
                Err(e) => Err(e.into()),
            }
        }
    }
}

async fn service_principal_gone(run: &mut Run, sp: &ServicePrincipalRef) -> Result<Action, Error> {
    run.event(
        EventType::Warning,
        "ServicePrincipalGone",
        "Observe",
        format!(
            "{} no longer exists in Microsoft Graph (deleted outside the operator); creating the configuration again",
            describe_sp(sp)
        ),
    )
    .await;
    let status = &mut run.writer.status;
    status.service_principal = None;
    status.jobs.clear();
    status.secrets_hash = None;
    status.last_restart_request_id = None;
    run.writer.save().await?;
    Ok(Action::requeue(Duration::from_secs(1)))
}

enum Write {
    Created(&'static str, Box<SynchronizationJob>),
    Deleted(String),
    Secrets(String),
}

fn upsert_job(jobs: &mut Vec<JobStatus>, next: JobStatus) {
    match jobs.iter_mut().find(|j| j.template_id == next.template_id) {
        Some(j) => *j = next,
        None => jobs.push(next),
    }
}

async fn jobs_and_runs(
    run: &mut Run,
    graph: &Tenant,
    sp: &str,
    jobs: Vec<SynchronizationJob>,
    eventual: bool,
    facts: &mut Facts,
) -> Result<(), Error> {
    let spec = run.profile.spec.clone();
    let mut job_plan = plan::plan_jobs(&spec, &jobs);
    facts.duplicates = job_plan.duplicates.clone();
    let (secrets, hash) = plan::desired_secrets(&spec);
    let put_secrets = run.writer.status.secrets_hash.as_deref() != Some(hash.as_str());

    // Wave 1, in parallel: missing jobs, the secret set, unwanted jobs. Each result is recorded as
    // it arrives.
    let mut wave = FuturesUnordered::new();
    for t in job_plan.create.iter().copied() {
        wave.push(Box::pin(
            async move { graph.create_job(sp, t, eventual).await.map(|j| Write::Created(t, Box::new(j))) },
        )
            as std::pin::Pin<Box<dyn std::future::Future<Output = Result<Write, GraphError>> + Send + '_>>);
    }
    for id in job_plan.delete.clone() {
        wave.push(Box::pin(async move {
            match graph.delete_job(sp, &id).await {
                Ok(()) => Ok(Write::Deleted(id)),
                Err(e) if e.is_not_found() => Ok(Write::Deleted(id)),
                Err(e) => Err(e),
            }
        }));
    }
    if put_secrets {
        let hash = hash.clone();
        let secrets = &secrets;
        wave.push(Box::pin(
            async move { graph.put_secrets(sp, secrets, eventual).await.map(|()| Write::Secrets(hash)) },
        ));
    }
    let mut created: Vec<&'static str> = Vec::new();
    let mut first_error: Option<GraphError> = None;
    while let Some(result) = wave.next().await {
        match result {
            Ok(Write::Created(t, job)) => {
                let mut js = st::job_status(&job, None);
                // A fresh job has nothing to reset: a pending restart request is done for it.
                js.last_restart_request_id = spec.restart.as_ref().map(|r| r.request_id.clone());
                upsert_job(&mut run.writer.status.jobs, js);
                created.push(t);
                job_plan.current.insert(t, *job.clone());
                run.wrote("JobCreated", &format!("Create{t}"), format!("created job {} ({t})", job.id)).await?;
            }
            Ok(Write::Deleted(id)) => {
                run.writer.status.jobs.retain(|j| j.id != id);
                run.wrote(
                    "JobDeleted",
                    "DeleteAD2AADPasswordHash",
                    format!("deleted job {id}: spec.passwordHashSync is off"),
                )
                .await?;
            }
            Ok(Write::Secrets(h)) => {
                run.writer.status.secrets_hash = Some(h);
                let keys: Vec<&str> = secrets.iter().map(|s| s.key.as_str()).collect();
                run.wrote(
                    "SecretsUpdated",
                    "PutSecrets",
                    format!("set the synchronization secrets {}", keys.join(", ")),
                )
                .await?;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    drop(wave);
    if let Some(e) = first_error {
        return Err(e.into());
    }

    // Wave 2, in parallel: start, pause or restart the jobs that need it.
    let actions = plan::plan_runs(&spec, &job_plan.current, &run.writer.status, &created);
    let mut wave = FuturesUnordered::new();
    for (template, action) in actions {
        let Some(job) = job_plan.current.get(template) else { continue };
        let id = job.id.clone();
        let series = plan::quarantine_series(job);
        wave.push(async move {
            let r = match &action {
                RunAction::Start => graph.start_job(sp, &id).await,
                RunAction::Pause => graph.pause_job(sp, &id).await,
                RunAction::Restart { scope, .. } => graph.restart_job(sp, &id, scope).await,
            };
            (template, id, action, series, r)
        });
    }
    while let Some((template, id, action, series, result)) = wave.next().await {
        if let Err(e) = result {
            first_error.get_or_insert(e);
            continue;
        }
        let entry = run.writer.status.jobs.iter_mut().find(|j| j.template_id == template);
        // The action names the job's template: events of one reason and action are merged into
        // one series, which would hide the second job's note.
        let (reason, verb, note) = match &action {
            RunAction::Start => ("JobStarted", "Start", format!("started job {id}")),
            RunAction::Pause => ("JobPaused", "Pause", format!("paused job {id}: spec.suspend is true")),
            RunAction::Restart { scope, request_id } => (
                "JobRestarted",
                "Restart",
                format!("restarted job {id} with reset scope {scope:?} for request {request_id}"),
            ),
        };
        let verb = format!("{verb}{template}");
        if let Some(j) = entry {
            match &action {
                RunAction::Start if series.is_some() => j.quarantine_series_started = series,
                RunAction::Restart { request_id, .. } => j.last_restart_request_id = Some(request_id.clone()),
                _ => {}
            }
        }
        run.wrote(reason, &verb, note).await?;
    }
    drop(wave);
    if let Some(e) = first_error {
        return Err(e.into());
    }

    // Status of the jobs as Graph reports them now: a fresh read only if we changed anything.
    let now_jobs = if run.writes > 0 { graph.list_jobs(sp, eventual).await? } else { jobs };
    let now_plan = plan::plan_jobs(&spec, &now_jobs);
    let mut next: Vec<JobStatus> = Vec::new();
    for (template, job) in &now_plan.current {
        let previous = run.writer.status.jobs.iter().find(|j| j.template_id == *template);
        next.push(st::job_status(job, previous));
    }
    run.writer.status.jobs = next;
    if let Some(r) = &spec.restart {
        let done = facts.desired.iter().all(|t| {
            run.writer
                .status
                .jobs
                .iter()
                .any(|j| j.template_id == *t && j.last_restart_request_id.as_deref() == Some(r.request_id.as_str()))
        });
        if done {
            run.writer.status.last_restart_request_id = Some(r.request_id.clone());
        }
    }
    facts.duplicates = now_plan.duplicates;
    Ok(())
}
