//! The Apply side of a reconcile: credentials → token → tenant flag → service principal → jobs and
//! secrets (in parallel) → starts → status.
//!
//! Every non-idempotent Graph write is preceded by a status write that says it is about to happen
//! (`pendingInstantiate`, `pendingJobCreates`, a job's `lastStartTime` or restart request) and
//! followed by one that records its result, so a crash, a lost answer or a lagging read never
//! leads to doing it twice.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tokio::task::JoinSet;
use tracing::{debug, info};

use super::plan::{self, RunAction, ServicePrincipalDecision};
use super::status::{self as st, Facts, Problem};
use super::writer::StatusWriter;
use super::{Context, Error, credentials};
use crate::api::conditions::{self, types};
use crate::api::{CloudSyncProfile, JobStatus, PendingInstantiate, PendingJobCreate, ServicePrincipalRef};
use crate::graph::model::{ServicePrincipal, SynchronizationJob};
use crate::graph::{ErrorKind, GraphError, Source, Tenant};

/// A profile still converging is looked at again soon; a settled one at the resync interval.
const CONVERGING_REQUEUE: Duration = Duration::from_secs(10);

/// A profile whose tenant is busy with other profiles waits this long (jittered) for its turn,
/// without holding a controller worker.
const BUSY_TENANT_REQUEUE: Duration = Duration::from_secs(2);

pub struct Run {
    pub profile: Arc<CloudSyncProfile>,
    pub ctx: Arc<Context>,
    pub writer: StatusWriter,
    pub started: Instant,
    /// Graph writes made in this pass.
    pub writes: u32,
    refreshed: bool,
}

impl Run {
    pub fn new(profile: Arc<CloudSyncProfile>, ctx: Arc<Context>) -> Self {
        let ns = profile.namespace().unwrap_or_default();
        let api = Api::namespaced(ctx.kube.clone(), &ns);
        let writer = StatusWriter::new(api, profile.name_any(), profile.status.as_ref());
        Self { profile, ctx, writer, started: Instant::now(), writes: 0, refreshed: false }
    }

    pub fn key(&self) -> String {
        super::key(&self.profile)
    }

    pub async fn event(&self, type_: EventType, reason: &str, action: &str, note: String) {
        self.ctx.publish(&self.profile, type_, reason, action, note).await;
    }

    /// Only the leader writes to Graph or to status; checked right before every write, because a
    /// reconcile can outlive the leadership it started with.
    pub fn ensure_leader(&self) -> Result<(), Error> {
        if (self.ctx.is_leader)() { Ok(()) } else { Err(Error::Waiting("this replica is no longer the leader".into())) }
    }

    pub async fn save(&mut self) -> Result<(), Error> {
        self.ensure_leader()?;
        self.writer.save().await.map_err(Error::from)
    }

    /// Replaces the cached status with the apiserver's, once per pass, before a write that must
    /// not be repeated: a watch cache behind our own last status write must not make us create
    /// something again.
    pub async fn refresh(&mut self) -> Result<(), Error> {
        if !self.refreshed {
            self.writer.refresh().await?;
            self.refreshed = true;
        }
        Ok(())
    }

    async fn wrote(&mut self, reason: &str, action: &str, note: String) {
        self.writes += 1;
        self.event(EventType::Normal, reason, action, note).await;
    }

    /// Merges conditions computed from `facts` and the recorded jobs, sets observedGeneration,
    /// writes status if anything changed, and tells the user about a new problem.
    pub async fn finish(&mut self, facts: &Facts) -> Result<(), Error> {
        let desired = st::conditions(&self.profile.spec, facts, &self.writer.status.jobs);
        self.commit_conditions(&desired).await
    }

    pub async fn commit_conditions(&mut self, desired: &[conditions::Desired]) -> Result<(), Error> {
        let generation = self.profile.metadata.generation;
        let before = self.writer.status.conditions.clone();
        self.writer.status.conditions = conditions::merge(&before, desired, generation, Timestamp::now());
        self.writer.status.observed_generation = generation;
        self.save().await?;
        // A Warning for each new problem: Ready turning False for a reason that is not mere
        // progress, or Degraded turning True; repeats of the same problem stay silent.
        for (type_, bad) in [(types::READY, "False"), (types::DEGRADED, "True")] {
            let after = conditions::find(&self.writer.status.conditions, type_).cloned();
            let old = conditions::find(&before, type_);
            if let Some(a) = after
                && a.status == bad
                && old.is_none_or(|b| b.status != a.status || b.reason != a.reason || b.message != a.message)
                && !st::PROGRESS_REASONS.contains(&a.reason.as_str())
            {
                self.event(EventType::Warning, &a.reason, "Reconcile", a.message.clone()).await;
            }
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

/// What the user must do about a Graph refusal that retrying will not fix. The message leaves out
/// the request id, which changes with every call, so a repeated refusal rewrites nothing.
pub fn graph_problem(e: &GraphError) -> Problem {
    let what = e.summary();
    match (e.source, e.kind) {
        (Source::Login, _) => Problem::new(
            "CredentialsRejected",
            format!(
                "the identity platform refused the credentials: {what}. Check the clientId and clientSecret, the tenantId, and that the app registration exists in that tenant"
            ),
        ),
        (_, ErrorKind::Unauthorized) => Problem::new(
            "GraphUnauthorized",
            format!(
                "{what}. Grant the app registration the Graph application permissions Application.ReadWrite.OwnedBy and Synchronization.ReadWrite.All, with admin consent (sync APIs answer 401 when they are missing)"
            ),
        ),
        (_, ErrorKind::Forbidden) => Problem::new(
            "GraphForbidden",
            format!(
                "{what}. Grant the missing Graph application permission with admin consent (Application.ReadWrite.OwnedBy or Application.ReadWrite.All to create the configuration, Organization.ReadWrite.All for tenantSyncFlag)"
            ),
        ),
        _ => Problem::new("GraphRequestRejected", what),
    }
}

/// Replication lag right after a creation looks like 404, 403 or 401.
fn lagging(e: &GraphError) -> bool {
    e.source == Source::Graph && matches!(e.kind, ErrorKind::NotFound | ErrorKind::Forbidden | ErrorKind::Unauthorized)
}

/// The write certainly did not happen: it never left, was refused, or the service said it did
/// not process it (429, 503). Timeouts and other 5xx leave it uncertain.
fn never_applied(e: &GraphError) -> bool {
    e.is_connect_failure()
        || e.not_processed()
        || matches!(e.status, Some(429 | 503))
        || (!e.is_transient() && !e.is_not_found())
}

fn now_string() -> String {
    Timestamp::now().to_string()
}

fn sp_ref(sp: &ServicePrincipal, application_id: Option<String>, adopted: bool) -> ServicePrincipalRef {
    ServicePrincipalRef {
        id: sp.id.clone(),
        app_id: sp.app_id.clone(),
        application_id,
        display_name: sp.display_name.clone(),
        recorded_at: Some(now_string()),
        adopted: adopted.then_some(true),
    }
}

fn describe_sp(sp: &ServicePrincipalRef) -> String {
    format!("service principal {} ({})", sp.id, sp.display_name.as_deref().unwrap_or("unnamed"))
}

/// Names under which this profile holds a configuration: its display name, and the recorded
/// service principal's id and name.
fn claim_keys(run: &Run) -> Vec<String> {
    let tenant = run.profile.spec.tenant_id.to_ascii_lowercase();
    let mut keys = vec![format!("{tenant}/name/{}", run.profile.spec.effective_display_name().to_lowercase())];
    if let Some(sp) = &run.writer.status.service_principal {
        keys.push(format!("{tenant}/sp/{}", sp.id.to_ascii_lowercase()));
        if let Some(n) = &sp.display_name {
            keys.push(format!("{tenant}/name/{}", n.to_lowercase()));
        }
    }
    if let Some(p) = &run.writer.status.pending_instantiate {
        keys.push(format!("{tenant}/name/{}", p.display_name.to_lowercase()));
    }
    keys
}

fn claimed_by(owner: &str, name: &str) -> Problem {
    Problem::new(
        "ConfigurationClaimed",
        format!(
            "profile {owner} already manages the cloud sync configuration {name:?} in this tenant: two profiles must not share one. Give this profile another spec.displayName, or delete one of them"
        ),
    )
}

pub async fn apply(profile: Arc<CloudSyncProfile>, ctx: Arc<Context>) -> Result<Action, Error> {
    let mut run = Run::new(profile, ctx);
    let result = converge(&mut run).await;
    if let Err(e) = &result {
        // A working profile stays Ready through a blip; one that is not Ready, or whose spec
        // changed since, says why it waits.
        let ready = conditions::is_true(&run.writer.status.conditions, types::READY);
        let current = run.writer.status.observed_generation == run.profile.metadata.generation;
        if (!ready || !current) && matches!(e, Error::Graph(_) | Error::Waiting(_)) {
            let text = match e {
                Error::Graph(g) => g.summary(),
                other => other.to_string(),
            };
            let _ = run.commit_conditions(&[st::retrying(&text)]).await;
        }
    }
    let ready = match conditions::find(&run.writer.status.conditions, types::READY).map(|c| c.status.as_str()) {
        Some("True") => "true",
        Some("False") => "false",
        _ => "unknown",
    };
    run.ctx.metrics.profile_ready(&run.key(), Some(ready));
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
    let mut facts = Facts {
        credentials: Ok(()),
        service_principal: Err(waiting_for("credentials")),
        jobs: Ok(()),
        desired: plan::desired_templates(&spec),
        duplicates: vec![],
    };

    // 1. Credentials, a turn in the tenant, and a token.
    let secrets: Api<Secret> = Api::namespaced(run.ctx.kube.clone(), &ns);
    let credential =
        match credentials::resolve(&secrets, &ns, &spec.credentials, &run.ctx.settings.workload_identity).await? {
            Ok(c) => c,
            Err(problem) => {
                facts.credentials = Err(problem);
                return run.blocked(facts).await;
            }
        };
    let Some(_permit) = run.ctx.try_tenant_permit(&spec.tenant_id) else {
        return Ok(Action::requeue(BUSY_TENANT_REQUEUE.mul_f64(1.0 + rand::random::<f64>())));
    };
    let graph = run.ctx.graph.tenant(spec.cloud(), &spec.tenant_id, credential);
    match graph.check_credentials().await {
        Ok(()) => {}
        Err(e) if e.is_transient() => return Err(e.into()),
        Err(e) => {
            facts.credentials = Err(graph_problem(&e));
            return run.blocked(facts).await;
        }
    }
    facts.service_principal = Err(Problem::new("Creating", "creating the cloud sync configuration"));

    // 2. The tenant's directory-sync flag.
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

    // 3. The service principal: recorded, adopted or created; never twice, never shared.
    if let Err(owner) = run.ctx.claim(&run.key(), claim_keys(run)) {
        facts.service_principal = Err(claimed_by(&owner, spec.effective_display_name()));
        return run.blocked(facts).await;
    }
    let (sp, fresh) = match service_principal(run, &graph).await {
        Ok(SpOutcome::Ready { sp, fresh }) => (sp, fresh),
        Ok(SpOutcome::Blocked(problem)) => {
            facts.service_principal = Err(problem);
            return run.blocked(facts).await;
        }
        Ok(SpOutcome::Wait(problem)) => {
            facts.service_principal = Err(problem);
            run.finish(&facts).await?;
            return Ok(Action::requeue(CONVERGING_REQUEUE));
        }
        Err(Error::Graph(e)) if !e.is_transient() => {
            facts.service_principal = Err(graph_problem(&e));
            return run.blocked(facts).await;
        }
        Err(e) => return Err(e),
    };
    facts.service_principal = Ok(describe_sp(&sp));
    let eventual = fresh || plan::within_replication_grace(sp.recorded_at.as_deref(), Timestamp::now());

    // 4. Jobs and secrets. The jobs list is also the proof that the service principal exists.
    let jobs = if fresh {
        Vec::new()
    } else {
        match graph.list_jobs(&sp.id, eventual).await {
            Ok(j) => j,
            Err(e) if eventual && lagging(&e) => {
                return Err(Error::Waiting(format!(
                    "{} is not usable in Graph yet (replication): {}",
                    sp.id,
                    e.summary()
                )));
            }
            Err(e) if e.is_not_found() => return jobs_not_found(run, &graph, &sp, facts).await,
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => {
                facts.service_principal = Err(graph_problem(&e));
                return run.blocked(facts).await;
            }
        }
    };
    let waiting = match jobs_and_runs(run, &graph, &sp.id, jobs, eventual, &mut facts).await {
        Ok(waiting) => waiting,
        Err(Error::Graph(e)) if eventual && lagging(&e) => {
            return Err(Error::Waiting(format!("{} is not usable in Graph yet (replication): {}", sp.id, e.summary())));
        }
        Err(Error::Graph(e)) if !e.is_transient() => {
            facts.jobs = Err(graph_problem(&e));
            return run.blocked(facts).await;
        }
        Err(e) => return Err(e),
    };

    // 5. Conditions.
    run.finish(&facts).await?;
    let status = &run.writer.status;
    let settled = !waiting
        && (conditions::is_true(&status.conditions, types::READY)
            || conditions::is_true(&status.conditions, types::DEGRADED)
            || conditions::is_true(&status.conditions, types::SUSPENDED));
    if run.writes > 0 {
        info!(writes = run.writes, "converged");
    }
    Ok(Action::requeue(if settled { jittered(run.ctx.settings.resync) } else { CONVERGING_REQUEUE }))
}

/// Spreads resyncs of many profiles so they do not hit Graph together.
fn jittered(d: Duration) -> Duration {
    d.mul_f64(0.9 + rand::random::<f64>() * 0.2)
}

/// Turns the flag on once; if Graph never shows it on (the property is not documented as
/// writable), says so and goes on with the configuration, checking (reading) on later passes
/// without repeating the update.
async fn tenant_flag(run: &mut Run, graph: &Tenant) -> Result<(), Error> {
    let org = graph.organization().await?;
    if org.on_premises_sync_enabled == Some(true) {
        run.writer.status.tenant_sync_enabled = Some(true);
        return run.save().await;
    }
    if run.writer.status.tenant_sync_enabled.is_some() {
        return Ok(()); // updated before, not visible yet
    }
    run.ensure_leader()?;
    graph.enable_on_premises_sync(&org.id).await?;
    run.writes += 1;
    let confirmed = graph.organization().await?.on_premises_sync_enabled == Some(true);
    run.writer.status.tenant_sync_enabled = Some(confirmed);
    run.save().await?;
    if confirmed {
        run.event(
            EventType::Normal,
            "TenantSyncEnabled",
            "EnableDirectorySync",
            format!("turned on onPremisesSyncEnabled for tenant {}", org.id),
        )
        .await;
    } else {
        run.event(
            EventType::Warning,
            "TenantSyncFlagUnconfirmed",
            "EnableDirectorySync",
            format!("Graph accepted the update of onPremisesSyncEnabled for tenant {} but does not show it on yet; the operator checks again on each pass and does not repeat the update", org.id),
        )
        .await;
    }
    Ok(())
}

enum SpOutcome {
    /// `fresh`: created or found moments ago; Graph may lag behind for a while.
    Ready {
        sp: ServicePrincipalRef,
        fresh: bool,
    },
    Blocked(Problem),
    Wait(Problem),
}

async fn adopt(run: &mut Run, graph: &Tenant, sp: &ServicePrincipal, ours: bool) -> Result<SpOutcome, Error> {
    let mut keys = claim_keys(run);
    keys.push(format!("{}/sp/{}", run.profile.spec.tenant_id.to_ascii_lowercase(), sp.id.to_ascii_lowercase()));
    if let Err(owner) = run.ctx.claim(&run.key(), keys) {
        return Ok(SpOutcome::Blocked(claimed_by(&owner, sp.display_name.as_deref().unwrap_or(&sp.id))));
    }
    let application_id = graph.application_id_of(sp).await?;
    let r = sp_ref(sp, application_id, !ours);
    run.writer.status.service_principal = Some(r.clone());
    run.writer.status.pending_instantiate = None;
    run.save().await?;
    let (reason, note) = if ours {
        ("ServicePrincipalFound", format!("found {} created by an earlier instantiate", describe_sp(&r)))
    } else {
        (
            "ServicePrincipalAdopted",
            format!("adopted the existing {}; the operator will not delete it or prune its jobs", describe_sp(&r)),
        )
    };
    run.event(EventType::Normal, reason, "Adopt", note).await;
    Ok(SpOutcome::Ready { sp: r, fresh: ours })
}

async fn service_principal(run: &mut Run, graph: &Tenant) -> Result<SpOutcome, Error> {
    if let Some(sp) = run.writer.status.service_principal.clone() {
        return Ok(SpOutcome::Ready { sp, fresh: false });
    }
    run.refresh().await?;
    if let Some(sp) = run.writer.status.service_principal.clone() {
        return Ok(SpOutcome::Ready { sp, fresh: false });
    }
    // An instantiate whose outcome is unknown is looked for under the name it was made with,
    // whatever the spec says now.
    let pending = run.writer.status.pending_instantiate.clone();
    let name = pending
        .as_ref()
        .map_or_else(|| run.profile.spec.effective_display_name().to_string(), |p| p.display_name.clone());
    let found = graph.find_cloud_sync_service_principals(&name).await?;
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
        ServicePrincipalDecision::AwaitPending { .. } => Ok(SpOutcome::Wait(Problem::new(
            "InstantiatePending",
            format!(
                "an instantiate of {name:?} at {} may have created the configuration; waiting for it to appear (up to {} minutes) before creating another",
                pending.as_ref().map(|p| p.since.as_str()).unwrap_or("an earlier pass"),
                plan::INSTANTIATE_GRACE.as_secs() / 60
            ),
        ))),
        ServicePrincipalDecision::Instantiate => {
            run.ensure_leader()?;
            // Recorded before the call: if we crash mid-call, the next pass looks before it creates.
            run.writer.status.pending_instantiate =
                Some(PendingInstantiate { display_name: name.clone(), since: now_string() });
            run.save().await?;
            match graph.instantiate_cloud_sync(&name).await {
                Ok(created) => {
                    let r = sp_ref(&created.service_principal, Some(created.application.id.clone()), false);
                    run.writer.status.service_principal = Some(r.clone());
                    run.writer.status.pending_instantiate = None;
                    run.save().await?;
                    run.wrote(
                        "ServicePrincipalCreated",
                        "Instantiate",
                        format!("created {} from the cloud sync template", describe_sp(&r)),
                    )
                    .await;
                    Ok(SpOutcome::Ready { sp: r, fresh: true })
                }
                Err(e) if e.is_not_found() => {
                    // Graph can answer 404 and still create both objects: look, never repeat blindly.
                    run.writes += 1;
                    run.event(
                        EventType::Warning,
                        "InstantiateUncertain",
                        "Instantiate",
                        format!(
                            "{}; the configuration may exist anyway, looking it up before any new attempt",
                            e.summary()
                        ),
                    )
                    .await;
                    match graph.find_cloud_sync_service_principals(&name).await?.as_slice() {
                        [one] => adopt(run, graph, one, true).await,
                        _ => Ok(SpOutcome::Wait(Problem::new(
                            "InstantiatePending",
                            format!("instantiate of {name:?} answered 404; waiting for the configuration to appear"),
                        ))),
                    }
                }
                Err(e) if never_applied(&e) => {
                    run.writer.status.pending_instantiate = None;
                    run.save().await?;
                    Err(e.into())
                }
                // Timeout or 5xx: it may have been created; the pending mark makes the next pass look first.
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// The jobs list answered 404 outside the replication window: the service principal is gone
/// (deleted outside the operator) only if a direct read says so too.
async fn jobs_not_found(
    run: &mut Run,
    graph: &Tenant,
    sp: &ServicePrincipalRef,
    mut facts: Facts,
) -> Result<Action, Error> {
    match graph.service_principal(&sp.id, false).await {
        Err(e) if e.is_not_found() => {}
        Ok(_) => {
            facts.jobs = Err(Problem::new(
                "GraphRequestRejected",
                format!(
                    "Graph answers 404 for the synchronization jobs of {} although the service principal exists; check that the app registration may manage it (Synchronization.ReadWrite.All)",
                    describe_sp(sp)
                ),
            ));
            return run.blocked(facts).await;
        }
        Err(e) if e.is_transient() => return Err(e.into()),
        Err(e) => {
            facts.service_principal = Err(graph_problem(&e));
            return run.blocked(facts).await;
        }
    }
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
    status.pending_job_creates.clear();
    status.secrets_hash = None;
    status.last_restart_request_id = None;
    run.save().await?;
    Ok(Action::requeue(Duration::from_secs(1)))
}

enum Op {
    Create(&'static str),
    Delete(String),
    Secrets(String),
}

enum Done {
    Job(Box<SynchronizationJob>),
    Nothing,
}

fn upsert_job(jobs: &mut Vec<JobStatus>, next: JobStatus) {
    match jobs.iter_mut().find(|j| j.template_id == next.template_id) {
        Some(j) => *j = next,
        None => jobs.push(next),
    }
}

/// Creates, deletes and the secret PUT (wave 1), then starts, pauses and restarts (wave 2).
/// Returns whether jobs are still awaited (recorded or being created but not listed yet).
async fn jobs_and_runs(
    run: &mut Run,
    graph: &Tenant,
    sp: &str,
    jobs: Vec<SynchronizationJob>,
    eventual: bool,
    facts: &mut Facts,
) -> Result<bool, Error> {
    let spec = run.profile.spec.clone();
    let now = Timestamp::now();
    let mut job_plan = plan::plan_jobs(&spec, &jobs, &run.writer.status, now);
    if !job_plan.create.is_empty() {
        run.refresh().await?;
        job_plan = plan::plan_jobs(&spec, &jobs, &run.writer.status, now);
    }
    facts.duplicates = job_plan.duplicates.clone();
    // Status shows every job Graph lists, with the operator's own bookkeeping kept.
    for job in job_plan.current.values() {
        let previous = run.writer.status.jobs.iter().find(|j| j.template_id == job.template()).cloned();
        upsert_job(&mut run.writer.status.jobs, st::job_status(job, previous.as_ref()));
    }
    run.writer.status.pending_job_creates.retain(|p| !job_plan.current.contains_key(p.template_id.as_str()));

    // Wave 1, in parallel: missing jobs, unwanted jobs, the secret set.
    let (secrets, hash) = plan::desired_secrets(&spec);
    let put_secrets = run.writer.status.secrets_hash.as_deref() != Some(hash.as_str());
    let mut created: Vec<&'static str> = Vec::new();
    let mut first_error: Option<Error> = None;
    if !job_plan.create.is_empty() || !job_plan.delete.is_empty() || put_secrets {
        run.ensure_leader()?;
        for t in &job_plan.create {
            run.writer.status.pending_job_creates.retain(|p| p.template_id != *t);
            run.writer
                .status
                .pending_job_creates
                .push(PendingJobCreate { template_id: t.to_string(), since: now.to_string() });
        }
        run.save().await?;
        let mut wave: JoinSet<(Op, Result<Done, GraphError>)> = JoinSet::new();
        for t in job_plan.create.iter().copied() {
            let (g, sp) = (graph.clone(), sp.to_string());
            wave.spawn(
                async move { (Op::Create(t), g.create_job(&sp, t, eventual).await.map(|j| Done::Job(Box::new(j)))) },
            );
        }
        for id in job_plan.delete.clone() {
            let (g, sp) = (graph.clone(), sp.to_string());
            wave.spawn(async move {
                let r = match g.delete_job(&sp, &id).await {
                    Err(e) if e.is_not_found() => Ok(()),
                    other => other,
                };
                (Op::Delete(id), r.map(|()| Done::Nothing))
            });
        }
        if put_secrets {
            let (g, sp, body, h) = (graph.clone(), sp.to_string(), secrets.clone(), hash.clone());
            wave.spawn(
                async move { (Op::Secrets(h), g.put_secrets(&sp, &body, eventual).await.map(|()| Done::Nothing)) },
            );
        }
        // Every answer is recorded as it arrives; nothing is dropped half-way, even if a status
        // write fails.
        while let Some(joined) = wave.join_next().await {
            let Ok((op, result)) = joined else { continue };
            match (op, result) {
                (Op::Create(t), Ok(Done::Job(job))) => {
                    let mut js = st::job_status(&job, None);
                    js.recorded_at = Some(now_string());
                    // A fresh job has nothing to reset: a pending restart request is done for it.
                    js.last_restart_request_id = spec.restart.as_ref().map(|r| r.request_id.clone());
                    upsert_job(&mut run.writer.status.jobs, js);
                    run.writer.status.pending_job_creates.retain(|p| p.template_id != t);
                    created.push(t);
                    job_plan.current.insert(t, *job.clone());
                    run.wrote("JobCreated", &format!("Create{t}"), format!("created job {} ({t})", job.id)).await;
                }
                (Op::Create(t), Err(e)) => {
                    if never_applied(&e) {
                        run.writer.status.pending_job_creates.retain(|p| p.template_id != t);
                    }
                    first_error.get_or_insert(e.into());
                }
                (Op::Delete(id), Ok(_)) => {
                    run.writer.status.jobs.retain(|j| j.id != id);
                    run.wrote(
                        "JobDeleted",
                        "DeleteAD2AADPasswordHash",
                        format!("deleted job {id}: spec.passwordHashSync is off"),
                    )
                    .await;
                }
                (Op::Secrets(h), Ok(_)) => {
                    run.writer.status.secrets_hash = Some(h);
                    let keys: Vec<&str> = secrets.iter().map(|s| s.key.as_str()).collect();
                    run.wrote(
                        "SecretsUpdated",
                        "PutSecrets",
                        format!("set the synchronization secrets {}", keys.join(", ")),
                    )
                    .await;
                }
                (Op::Create(_), Ok(Done::Nothing)) => {}
                (_, Err(e)) => {
                    first_error.get_or_insert(e.into());
                }
            }
            if let Err(e) = run.save().await {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }

    // Wave 2, in parallel: start, pause or restart the jobs that need it. A start or restart is
    // recorded before it is made, so it happens at most once even if its answer is lost.
    let actions = plan::plan_runs(&spec, &job_plan.current, &run.writer.status, &created, now);
    if !actions.is_empty() {
        run.ensure_leader()?;
        let before: BTreeMap<&'static str, JobStatus> = actions
            .iter()
            .filter_map(|(t, _)| run.writer.status.jobs.iter().find(|j| j.template_id == *t).map(|j| (*t, j.clone())))
            .collect();
        for (t, action) in &actions {
            let series = job_plan.current.get(t).and_then(plan::quarantine_series);
            if let Some(j) = run.writer.status.jobs.iter_mut().find(|j| j.template_id == *t) {
                match action {
                    RunAction::Start => {
                        j.last_start_time = Some(now.to_string());
                        if series.is_some() {
                            j.quarantine_series_started = series;
                        }
                    }
                    RunAction::Restart { request_id, .. } => j.last_restart_request_id = Some(request_id.clone()),
                    RunAction::Pause => j.last_start_time = None,
                }
            }
        }
        run.save().await?;
        let mut wave: JoinSet<(&'static str, String, RunAction, Result<(), GraphError>)> = JoinSet::new();
        for (template, action) in actions {
            let Some(job) = job_plan.current.get(template) else { continue };
            let (g, sp, id) = (graph.clone(), sp.to_string(), job.id.clone());
            wave.spawn(async move {
                let r = match &action {
                    RunAction::Start => g.start_job(&sp, &id).await,
                    RunAction::Pause => g.pause_job(&sp, &id).await,
                    RunAction::Restart { scope, .. } => g.restart_job(&sp, &id, scope).await,
                };
                (template, id, action, r)
            });
        }
        while let Some(joined) = wave.join_next().await {
            let Ok((template, id, action, result)) = joined else { continue };
            match result {
                Err(e) => {
                    if never_applied(&e)
                        && let (Some(j), Some(b)) = (
                            run.writer.status.jobs.iter_mut().find(|j| j.template_id == template),
                            before.get(template),
                        )
                    {
                        // Certainly not made: forget the intent so the next pass tries again.
                        j.last_start_time.clone_from(&b.last_start_time);
                        j.quarantine_series_started.clone_from(&b.quarantine_series_started);
                        j.last_restart_request_id.clone_from(&b.last_restart_request_id);
                    }
                    first_error.get_or_insert(e.into());
                }
                Ok(()) => {
                    // The action names the job's template: events of one reason and action are
                    // merged into one series, which would hide the second job's note.
                    let (reason, verb, note) = match &action {
                        RunAction::Start => ("JobStarted", "Start", format!("started job {id}")),
                        RunAction::Pause => ("JobPaused", "Pause", format!("paused job {id}: spec.suspend is true")),
                        RunAction::Restart { scope, request_id } => (
                            "JobRestarted",
                            "Restart",
                            format!("restarted job {id} with reset scope {scope:?} for request {request_id}"),
                        ),
                    };
                    run.wrote(reason, &format!("{verb}{template}"), note).await;
                }
            }
            if let Err(e) = run.save().await {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }

    // Status of the jobs as Graph reports them now: a fresh read only if we changed anything.
    let now_jobs = if run.writes > 0 { graph.list_jobs(sp, eventual).await? } else { jobs };
    let now_plan = plan::plan_jobs(&spec, &now_jobs, &run.writer.status, Timestamp::now());
    let mut next: Vec<JobStatus> = Vec::new();
    for template in &facts.desired {
        let previous = run.writer.status.jobs.iter().find(|j| j.template_id == *template);
        match now_plan.current.get(template) {
            Some(job) => next.push(st::job_status(job, previous)),
            // Recorded moments ago and not listed yet: keep what we know.
            None => next.extend(
                previous
                    .filter(|p| plan::within_replication_grace(p.recorded_at.as_deref(), Timestamp::now()))
                    .cloned(),
            ),
        }
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
    Ok(!now_plan.waiting.is_empty() || !run.writer.status.pending_job_creates.is_empty())
}
