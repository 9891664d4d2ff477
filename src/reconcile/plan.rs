//! Pure planning: from the spec, what this pass observed, what status remembers and the time,
//! decide what happens next: a read, a wave of steps, a wait, a problem for a person, or nothing.
//! No I/O here, so every rule of design.md §4 is unit-tested below and in `rules.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::observe::{Jobs, Observed, Read};
use super::reason::Problem;
use super::schema;
use super::step::{RestartPurpose, Step, describe_sp};
use crate::api::{CloudSyncProfileSpec, CloudSyncProfileStatus, JobStatus, PendingInstantiate, ScopeRestart};
use crate::graph::model::{
    KeyValue, PASSWORD_HASH_TEMPLATE, PROVISIONING_TEMPLATE, ServicePrincipal, StatusCode, SynchronizationJob,
};
use crate::graph::{ErrorKind, GraphError, Source, json_secret};

/// A profile still converging is looked at again this soon.
pub const CONVERGING_REQUEUE: Duration = Duration::from_secs(10);

/// Which condition a problem belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Credentials,
    ServicePrincipal,
    Jobs,
    Schema,
}

/// What happens next in a pass.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    Read(Read),
    /// Writes to send together; each is independent of the others.
    Wave(Vec<Step>),
    /// Progress that ends by itself: look again after `recheck`.
    Wait {
        slot: Slot,
        problem: Problem,
        recheck: Duration,
    },
    /// A temporary state to retry with the controller's backoff.
    Retry(String),
    /// Only a person can fix it.
    Blocked {
        slot: Slot,
        problem: Problem,
    },
    /// Nothing left to do; `jobs_pending` while recorded or created jobs are not listed yet.
    Converged {
        jobs_pending: bool,
    },
}

impl Plan {
    fn blocked(slot: Slot, problem: Problem) -> Self {
        Plan::Blocked { slot, problem }
    }
}

/// Replication lag right after a creation looks like 404, 403 or 401.
pub fn lagging(e: &GraphError) -> bool {
    e.source == Source::Graph && matches!(e.kind, ErrorKind::NotFound | ErrorKind::Forbidden | ErrorKind::Unauthorized)
}

/// Graph may still lag behind the recorded service principal (created or found moments ago).
pub fn eventual(status: &CloudSyncProfileStatus, now: Timestamp) -> bool {
    status.service_principal.as_ref().is_some_and(|sp| within_replication_grace(sp.recorded_at.as_deref(), now))
}

/// The next thing to do for a profile whose credentials gave a token. Before the first
/// non-idempotent write of a pass, status is re-read from the apiserver: a watch cache behind the
/// operator's own last status write must not make it create or start something again.
pub fn plan(spec: &CloudSyncProfileSpec, status: &CloudSyncProfileStatus, seen: &Observed, now: Timestamp) -> Plan {
    match next(spec, status, seen, now) {
        Plan::Wave(steps) if !seen.refreshed && steps.iter().any(Step::needs_intent) => Plan::Read(Read::Status),
        // Only once everything else is done, so the log read can hold nothing up.
        p @ Plan::Converged { .. } => super::failures::read(spec, status, seen).map_or(p, Plan::Read),
        p => p,
    }
}

fn next(spec: &CloudSyncProfileSpec, status: &CloudSyncProfileStatus, seen: &Observed, now: Timestamp) -> Plan {
    if let Some(owner) = &seen.claimed_by {
        return Plan::blocked(Slot::ServicePrincipal, Problem::claimed_by(owner, spec.effective_display_name()));
    }
    if let Some(p) = tenant_flag(spec, status, seen) {
        return p;
    }
    let Some(sp) = &status.service_principal else { return service_principal(spec, status, seen, now) };
    let eventual = eventual(status, now);
    match &seen.jobs {
        None => Plan::Read(Read::Jobs { service_principal: sp.id.clone(), eventual, confirm: true }),
        Some(Jobs::Failed(e)) if eventual && lagging(e) => {
            Plan::Retry(format!("{} is not usable in Graph yet (replication): {}", sp.id, e.summary()))
        }
        Some(Jobs::Failed(e)) => Plan::blocked(Slot::ServicePrincipal, Problem::graph(e)),
        Some(Jobs::Unlisted) => Plan::blocked(Slot::Jobs, Problem::jobs_unlisted(&describe_sp(sp))),
        Some(Jobs::Gone) => Plan::Wave(vec![Step::ForgetServicePrincipal { id: sp.id.clone() }]),
        Some(Jobs::Listed(listed)) => match super::ownership::plan_ownership(status, seen, now) {
            None => jobs(spec, status, listed, seen, now),
            Some(Plan::Wave(claim)) if claims_what_this_pass_instantiated(&claim, seen) => {
                match jobs(spec, status, listed, seen, now) {
                    Plan::Wave(first_writes) => Plan::Wave(claim.into_iter().chain(first_writes).collect()),
                    _ => Plan::Wave(claim),
                }
            }
            Some(p) => p,
        },
    }
}

/// The ownership rule checks the owner tag before anything is written on a recorded configuration.
/// A service principal this pass instantiated moments ago carries no owner tag (the answer holds
/// its tags) and no other install recorded it, so its claim goes out with the jobs and secrets
/// (the instantiate answer also says it has no jobs). Adopted and recorded configurations claim first.
fn claims_what_this_pass_instantiated(claim: &[Step], seen: &Observed) -> bool {
    match (claim, seen.instantiated.as_deref()) {
        ([Step::ClaimOwnership { service_principal, previous: None, .. }], Some(created)) => {
            service_principal == created
        }
        _ => false,
    }
}

/// Turns the flag on once; if Graph never shows it on (the property is not documented as
/// writable), the configuration goes ahead and later passes only read it.
fn tenant_flag(spec: &CloudSyncProfileSpec, status: &CloudSyncProfileStatus, seen: &Observed) -> Option<Plan> {
    if !spec.tenant_sync_flag() || status.tenant_sync_enabled == Some(true) {
        return None;
    }
    let Some(org) = &seen.organization else { return Some(Plan::Read(Read::Organization)) };
    let unset = org.on_premises_sync_enabled != Some(true) && status.tenant_sync_enabled.is_none();
    unset.then(|| Plan::Wave(vec![Step::EnableTenantFlag { organization: org.id.clone() }]))
}

/// Status records no service principal: look it up (under the name an unfinished instantiate
/// used, whatever the spec says now), then adopt, refuse, wait or instantiate.
fn service_principal(
    spec: &CloudSyncProfileSpec,
    status: &CloudSyncProfileStatus,
    seen: &Observed,
    now: Timestamp,
) -> Plan {
    let pending = status.pending_instantiate.as_ref();
    let name = pending.map_or_else(|| spec.effective_display_name().to_string(), |p| p.display_name.clone());
    if !seen.refreshed {
        return Plan::Read(Read::Status);
    }
    let Some(lookup) = seen.lookup.as_ref().filter(|l| l.name == name) else {
        return Plan::Read(Read::Lookup { name });
    };
    match decide_service_principal(&lookup.found, pending, now) {
        ServicePrincipalDecision::Adopt(sp) => Plan::Wave(vec![Step::Adopt {
            service_principal: sp,
            application_id: lookup.application_id.clone(),
            ours: pending.is_some(),
        }]),
        ServicePrincipalDecision::Ambiguous(ids) => {
            Plan::blocked(Slot::ServicePrincipal, Problem::ambiguous(&name, &ids))
        }
        ServicePrincipalDecision::AwaitPending { remaining } => Plan::Wait {
            slot: Slot::ServicePrincipal,
            problem: Problem::instantiate_pending(
                &name,
                pending.map_or("an earlier pass", |p| p.since.as_str()),
                INSTANTIATE_GRACE.as_secs() / 60,
            ),
            recheck: remaining.min(CONVERGING_REQUEUE),
        },
        ServicePrincipalDecision::Instantiate => Plan::Wave(vec![Step::Instantiate { display_name: name }]),
    }
}

/// Jobs and secrets first (one wave), then runs (another); after runs, a fresh list.
fn jobs(
    spec: &CloudSyncProfileSpec,
    status: &CloudSyncProfileStatus,
    listed: &[SynchronizationJob],
    seen: &Observed,
    now: Timestamp,
) -> Plan {
    if let (true, Some(sp)) = (seen.jobs_stale, &status.service_principal) {
        return Plan::Read(Read::Jobs {
            service_principal: sp.id.clone(),
            eventual: eventual(status, now),
            confirm: false,
        });
    }
    let job_plan = plan_jobs(spec, listed, status, now);
    let restart_done = spec.restart.as_ref().map(|r| r.request_id.clone());
    let mut wave: Vec<Step> =
        job_plan.create.iter().map(|t| Step::CreateJob { template: t, restart_done: restart_done.clone() }).collect();
    wave.extend(
        job_plan.delete.iter().map(|id| Step::DeleteJob { id: id.clone(), template: PASSWORD_HASH_TEMPLATE.into() }),
    );
    let (secrets, hash) = desired_secrets(spec);
    if status.secrets_hash.as_deref() != Some(hash.as_str()) {
        wave.push(Step::PutSecrets { secrets, hash });
    }
    if wave.is_empty()
        && let Some(p) = plan_schema(spec, status, seen, &job_plan.current, now)
    {
        return p;
    }
    if wave.is_empty() {
        wave = plan_runs(spec, &job_plan.current, status, now);
    }
    if wave.is_empty() { Plan::Converged { jobs_pending: !job_plan.waiting.is_empty() } } else { Plan::Wave(wave) }
}

/// The provisioning job's schema, once its job exists and before any start: read what Graph
/// holds (only when the profile changed or the drift check is due), then the template default and
/// the expressions' parses, and write it only when it differs. `None`: nothing to do.
fn plan_schema(
    spec: &CloudSyncProfileSpec,
    status: &CloudSyncProfileStatus,
    seen: &Observed,
    current: &BTreeMap<&'static str, SynchronizationJob>,
    now: Timestamp,
) -> Option<Plan> {
    if !schema::managed(spec, status) {
        return None;
    }
    let (sp, job) = (status.service_principal.as_ref()?, current.get(PROVISIONING_TEMPLATE)?);
    let inputs = schema::inputs_hash(spec);
    let steady = status.schema_hash.is_some() && status.schema_inputs_hash.as_deref() == Some(inputs.as_str());
    if steady && !seen.schema_check_due {
        return None;
    }
    let (service_principal, job_id, eventual) = (sp.id.clone(), job.id.clone(), eventual(status, now));
    let Some(held) = &seen.schema else {
        return Some(Plan::Read(Read::Schema { service_principal, job: job_id, eventual }));
    };
    let (held_hash, held) = (&held.hash, held.value.as_ref());
    if steady && status.schema_hash.as_deref() == Some(held_hash.as_str()) {
        return None;
    }
    let from_template = schema::from_template(spec, status);
    let default = match &seen.template_schema {
        Some(d) => d.as_ref(),
        None if schema::needs_default(held, from_template) => {
            return Some(Plan::Read(Read::TemplateSchema {
                service_principal,
                template: PROVISIONING_TEMPLATE.into(),
                eventual,
            }));
        }
        None => &serde_json::Value::Null,
    };
    let unparsed: Vec<String> =
        schema::expressions(spec).into_iter().filter(|e| !seen.parsed.contains_key(e)).collect();
    if !unparsed.is_empty() {
        return Some(Plan::Read(Read::Parse { service_principal, job: job_id, expressions: unparsed }));
    }
    let desired = match schema::desired(default, held, spec, &seen.parsed, from_template) {
        Ok(d) => d,
        Err(problem) => return Some(Plan::blocked(Slot::Schema, problem)),
    };
    let hash = schema::hash(&desired);
    if hash == *held_hash {
        let recorded = status.schema_hash.as_deref() == Some(hash.as_str())
            && status.schema_inputs_hash.as_deref() == Some(inputs.as_str());
        return (!recorded).then(|| Plan::Wave(vec![Step::RecordSchema { hash, inputs, from_template }]));
    }
    // The profile did not change, so Graph's copy did: someone edited it outside the operator.
    let drift = steady.then(|| schema::differences(held, &desired));
    let scope_changed = schema::scope_of(held) != schema::scope_of(&desired);
    let scope_restart = (scope_changed && job.last_run_began().is_some()).then(|| ScopeRestart {
        request_id: format!("scope-{}", hash.trim_start_matches("sha256:").get(..12).unwrap_or_default()),
        reset_scope: schema::SCOPE_RESET.into(),
        reason: "the scope changed; a cleared watermark makes the next cycle a full import, so objects now in scope are picked up".into(),
        sent: None,
    });
    Some(Plan::Wave(vec![Step::PutSchema {
        job: job_id,
        schema: std::sync::Arc::new(desired),
        hash,
        inputs,
        from_template,
        drift,
        scope_restart,
    }]))
}

/// Why deleting a profile leaves Graph as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Keep {
    /// `deletionPolicy: Orphan`; the service principal, if one was recorded.
    Orphan(Option<String>),
    /// The profile adopted a configuration it did not create.
    Adopted(String),
    /// Nothing was ever created (or it is gone already).
    NothingCreated,
}

pub fn keep_in_graph(spec: &CloudSyncProfileSpec, status: &CloudSyncProfileStatus) -> Option<Keep> {
    let sp = status.service_principal.as_ref();
    if spec.deletion_policy() == crate::api::DeletionPolicy::Orphan {
        return Some(Keep::Orphan(sp.map(|s| s.id.clone())));
    }
    if let Some(sp) = sp.filter(|s| s.adopted == Some(true)) {
        return Some(Keep::Adopted(sp.id.clone()));
    }
    (sp.is_none() && status.pending_instantiate.is_none()).then_some(Keep::NothingCreated)
}

/// Deleting a profile with `deletionPolicy: Delete`: the jobs first (deleting a job stops it),
/// then the application (which takes its service principal along), then the service principal
/// in case the application is unknown or already gone. Everything tolerates "already gone".
pub fn cleanup(status: &CloudSyncProfileStatus, seen: &Observed, now: Timestamp) -> Plan {
    let Some(sp) = &status.service_principal else { return pending_configuration(status, seen, now) };
    match &seen.jobs {
        None => Plan::Read(Read::Jobs { service_principal: sp.id.clone(), eventual: false, confirm: false }),
        Some(Jobs::Listed(jobs)) if !jobs.is_empty() => Plan::Wave(
            jobs.iter().map(|j| Step::DeleteJob { id: j.id.clone(), template: j.template().to_string() }).collect(),
        ),
        Some(Jobs::Failed(e)) => Plan::blocked(Slot::ServicePrincipal, Problem::graph(e)),
        _ => match &sp.application_id {
            Some(app) => Plan::Wave(vec![Step::DeleteApplication { id: app.clone() }]),
            None => Plan::Wave(vec![Step::DeleteServicePrincipal { id: sp.id.clone() }]),
        },
    }
}

/// The configuration an instantiate whose answer was lost may have created: if the lookup finds
/// it, it is ours (before that instantiate the lookup found none under that name).
fn pending_configuration(status: &CloudSyncProfileStatus, seen: &Observed, now: Timestamp) -> Plan {
    let Some(p) = &status.pending_instantiate else { return Plan::Converged { jobs_pending: false } };
    let Some(lookup) = seen.lookup.as_ref().filter(|l| l.name == p.display_name) else {
        return Plan::Read(Read::Lookup { name: p.display_name.clone() });
    };
    match lookup.found.as_slice() {
        [one] => Plan::Wave(vec![Step::Adopt {
            service_principal: one.clone(),
            application_id: lookup.application_id.clone(),
            ours: true,
        }]),
        [] if within(Some(&p.since), now, INSTANTIATE_GRACE) => Plan::Retry(format!(
            "an instantiate of {:?} may have created the configuration; waiting for Graph to list it before deleting",
            p.display_name
        )),
        [] => Plan::Converged { jobs_pending: false },
        many => {
            let ids: Vec<String> = many.iter().map(|s| s.id.clone()).collect();
            Plan::blocked(Slot::ServicePrincipal, Problem::ambiguous_cleanup(&p.display_name, &ids))
        }
    }
}

/// Names under which a profile holds a configuration: its display name, the recorded service
/// principal's id and name, an unfinished instantiate's name, and a configuration about to be adopted.
pub fn claim_keys(spec: &CloudSyncProfileSpec, status: &CloudSyncProfileStatus, seen: &Observed) -> Vec<String> {
    let tenant = spec.tenant_id.to_ascii_lowercase();
    let name = |n: &str| format!("{tenant}/name/{}", n.to_lowercase());
    let id = |i: &str| format!("{tenant}/sp/{}", i.to_ascii_lowercase());
    let mut keys = vec![name(spec.effective_display_name())];
    if let Some(sp) = &status.service_principal {
        keys.push(id(&sp.id));
        keys.extend(sp.display_name.as_deref().map(name));
    }
    keys.extend(status.pending_instantiate.as_ref().map(|p| name(&p.display_name)));
    if let Some([one]) = seen.lookup.as_ref().map(|l| l.found.as_slice()) {
        keys.push(id(&one.id));
    }
    keys
}

/// How long an instantiate whose outcome is unknown (404-but-created, or a crash before its
/// answer was recorded) blocks a second instantiate while lookups cannot see its objects yet.
pub const INSTANTIATE_GRACE: Duration = Duration::from_secs(10 * 60);

/// How long after the operator recorded a service principal a 404 on it counts as replication
/// lag rather than "deleted by someone"; also how long a recorded or pending job that Graph does
/// not list yet is waited for instead of created again.
pub const REPLICATION_GRACE: Duration = Duration::from_secs(10 * 60);

/// How long a job creation with an unknown outcome (a timeout or a 5xx) is waited for in the job
/// list before the job is created (again). The jobs list shows a created job within seconds, so
/// looking settles it; a longer blind wait only kept profiles in JobsMissing after a fault.
pub const JOB_CREATE_GRACE: Duration = Duration::from_secs(20);

/// After a start, a job that still reads as stopped is given this long to show it runs before it
/// is started again (the service warns against starting a running job). A started job reads as
/// scheduled in the next GET.
pub const START_GRACE: Duration = Duration::from_secs(20);

/// True when `time` (RFC 3339) is less than `grace` before `now`.
pub fn within(time: Option<&str>, now: Timestamp, grace: Duration) -> bool {
    time.and_then(|t| t.parse::<Timestamp>().ok())
        .is_some_and(|t| Duration::try_from(now.duration_since(t)).unwrap_or(Duration::ZERO) < grace)
}

/// The job templates the spec asks for, in creation order.
pub fn desired_templates(spec: &CloudSyncProfileSpec) -> Vec<&'static str> {
    let mut t = vec![PROVISIONING_TEMPLATE];
    if spec.password_hash_sync() {
        t.push(PASSWORD_HASH_TEMPLATE);
    }
    t
}

/// What to do when status records no service principal.
#[derive(Debug, PartialEq)]
pub enum ServicePrincipalDecision {
    /// Exactly one configuration with our display name exists: take it over.
    Adopt(ServicePrincipal),
    /// Several exist; choosing one would be a guess.
    Ambiguous(Vec<String>),
    /// None exists and no earlier instantiate may still appear: create one.
    Instantiate,
    /// An earlier instantiate may have created objects that lookups do not show yet.
    AwaitPending { remaining: Duration },
}

pub fn decide_service_principal(
    found: &[ServicePrincipal],
    pending: Option<&PendingInstantiate>,
    now: Timestamp,
) -> ServicePrincipalDecision {
    match found {
        [one] => ServicePrincipalDecision::Adopt(one.clone()),
        [] => match pending.and_then(|p| p.since.parse::<Timestamp>().ok()) {
            Some(since) => {
                let age = Duration::try_from(now.duration_since(since)).unwrap_or(Duration::ZERO);
                match INSTANTIATE_GRACE.checked_sub(age) {
                    Some(remaining) if !remaining.is_zero() => ServicePrincipalDecision::AwaitPending { remaining },
                    _ => ServicePrincipalDecision::Instantiate,
                }
            }
            None => ServicePrincipalDecision::Instantiate,
        },
        many => {
            let mut ids: Vec<String> = many.iter().map(|s| s.id.clone()).collect();
            ids.sort();
            ServicePrincipalDecision::Ambiguous(ids)
        }
    }
}

/// True when a 404 on the recorded service principal may be replication lag.
pub fn within_replication_grace(recorded_at: Option<&str>, now: Timestamp) -> bool {
    recorded_at
        .and_then(|t| t.parse::<Timestamp>().ok())
        .is_some_and(|t| Duration::try_from(now.duration_since(t)).unwrap_or(Duration::ZERO) < REPLICATION_GRACE)
}

/// Jobs to create and delete, and the job that serves each desired template.
#[derive(Debug, Default, PartialEq)]
pub struct JobPlan {
    pub create: Vec<&'static str>,
    /// Templates whose job was recorded or is being created but is not listed yet: wait for
    /// them, never create them again.
    pub waiting: Vec<&'static str>,
    /// Jobs of templates the spec no longer wants (only templates the operator manages).
    pub delete: Vec<String>,
    /// Templates with more than one job: the first id (sorted) is used, the others reported.
    pub duplicates: Vec<(String, Vec<String>)>,
    /// The job per desired template, when one exists.
    pub current: BTreeMap<&'static str, SynchronizationJob>,
}

pub fn plan_jobs(
    spec: &CloudSyncProfileSpec,
    jobs: &[SynchronizationJob],
    status: &CloudSyncProfileStatus,
    now: Timestamp,
) -> JobPlan {
    let mut by_template: BTreeMap<&str, Vec<&SynchronizationJob>> = BTreeMap::new();
    for j in jobs {
        by_template.entry(j.template()).or_default().push(j);
    }
    for list in by_template.values_mut() {
        list.sort_by(|a, b| a.id.cmp(&b.id));
    }
    let desired = desired_templates(spec);
    let mut plan = JobPlan::default();
    for t in &desired {
        match by_template.get(t) {
            Some(list) => {
                if list.len() > 1 {
                    plan.duplicates.push((t.to_string(), list.iter().map(|j| j.id.clone()).collect()));
                }
                plan.current.insert(t, list[0].clone());
            }
            None => {
                let pending = status
                    .pending_job_creates
                    .iter()
                    .any(|p| p.template_id == *t && within(Some(&p.since), now, JOB_CREATE_GRACE));
                let recorded = status
                    .jobs
                    .iter()
                    .any(|j| j.template_id == *t && within(j.recorded_at.as_deref(), now, REPLICATION_GRACE));
                if pending || recorded {
                    plan.waiting.push(t);
                } else {
                    plan.create.push(t);
                }
            }
        }
    }
    // Only the password hash job is ever removed, and only from a configuration the operator
    // created: other templates (group writeback, device sync) and adopted configurations may be
    // someone else's.
    let adopted = status.service_principal.as_ref().and_then(|s| s.adopted).unwrap_or(false);
    if !adopted
        && !desired.contains(&PASSWORD_HASH_TEMPLATE)
        && let Some(list) = by_template.get(PASSWORD_HASH_TEMPLATE)
    {
        plan.delete.extend(list.iter().map(|j| j.id.clone()));
    }
    plan
}

/// The full secret set for one PUT, and its hash for `status.secretsHash`.
pub fn desired_secrets(spec: &CloudSyncProfileSpec) -> (Vec<KeyValue>, String) {
    let mut secrets = vec![json_secret("Domain", &json!({"domain": spec.domain}))];
    if spec.password_hash_sync() {
        secrets.push(json_secret("AppKey", &json!({"appKeyScenario": PASSWORD_HASH_TEMPLATE})));
    }
    // Always sent: the PUT replaces the whole set, so leaving it out would silently remove
    // deletion protection and e-mails. An empty value is refused (InvalidNotificationSettings).
    let email = spec.notifications.as_ref().map(|n| n.email.as_str());
    secrets.push(json_secret(
        "SyncNotificationSettings",
        &json!({
            "Enabled": email.is_some(),
            "Recipients": email.unwrap_or_default(),
            "DeleteThresholdEnabled": spec.deletes_protected(),
            "DeleteThresholdValue": spec.delete_threshold(),
        }),
    ));
    let mut h = Sha256::new();
    for s in &secrets {
        // Length-prefixed so that no two different sets hash alike.
        for part in [&s.key, &s.value] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
    }
    (secrets, format!("sha256:{}", hex::encode(h.finalize())))
}

/// Quarantine reasons the operator never clears by itself: too many deletes waits for a person
/// (a restart with ForceDeletes, after checking the deletes are intended).
const HOLD_QUARANTINE: &[&str] = &["TooManyDeletes"];

/// The quarantine series a job is in, if quarantined (its key for "started once per series").
/// A quarantine without times is one series of its own.
pub fn quarantine_series(job: &SynchronizationJob) -> Option<String> {
    let status = job.status.as_ref()?;
    if !job.is_quarantined() && status.quarantine.is_none() {
        return None;
    }
    let began = status.quarantine.as_ref().and_then(|q| q.series_began.or(q.current_began));
    Some(began.map_or_else(|| "unknown".to_string(), |t| t.to_string()))
}

/// Start, pause or restart per job.
pub fn plan_runs(
    spec: &CloudSyncProfileSpec,
    current: &BTreeMap<&'static str, SynchronizationJob>,
    status: &CloudSyncProfileStatus,
    now: Timestamp,
) -> Vec<Step> {
    let mut steps = Vec::new();
    for (template, job) in current {
        let (template, id) = (*template, job.id.clone());
        let recorded = status.jobs.iter().find(|j| j.template_id == template);
        if spec.suspended() {
            if job.is_scheduled() || job.code() == Some(&StatusCode::Active) {
                steps.push(Step::Pause { template, job: id });
            }
            continue;
        }
        // The restart a change of scope left owed comes first; the user's follows on a later pass.
        if let Some(r) = status.scope_restart.as_ref().filter(|_| template == PROVISIONING_TEMPLATE) {
            let owed = Owed { request_id: &r.request_id, scope: &r.reset_scope, sent: r.sent.as_deref() };
            steps.push(restart(template, job, owed, RestartPurpose::Scope));
            continue;
        }
        if let Some(r) = &spec.restart
            && recorded.and_then(|j| j.last_restart_request_id.as_deref()) != Some(r.request_id.as_str())
        {
            let sent = recorded
                .and_then(|j| j.pending_restart.as_ref())
                .filter(|p| p.request_id == r.request_id)
                .map(|p| p.since.as_str());
            let owed = Owed { request_id: &r.request_id, scope: r.effective_reset_scope(), sent };
            // Restart also starts the job, so it replaces a start.
            steps.push(restart(template, job, owed, RestartPurpose::Request));
            continue;
        }
        if should_start(job, recorded, now) {
            steps.push(Step::Start { template, job: id, series: quarantine_series(job) });
        }
    }
    steps
}

/// How much later than an unconfirmed restart's intent a run must have begun to prove the restart
/// was carried out. Graph's clock and ours may differ by seconds; without a margin, a scheduled
/// run that began just before the request could be taken for its effect, and the restart be lost.
pub const RESTART_EVIDENCE_MARGIN: Duration = Duration::from_secs(60);

/// A restart the job is owed; `sent`: when it was sent, if it was and is not confirmed.
struct Owed<'a> {
    request_id: &'a str,
    scope: &'a str,
    sent: Option<&'a str>,
}

/// A restart for the request, or, when one was sent but not confirmed and the job has run well
/// after it, its confirmation. Without that evidence it is sent again: a repeated restart is
/// harmless, a lost one is not.
fn restart(template: &'static str, job: &SynchronizationJob, owed: Owed, purpose: RestartPurpose) -> Step {
    let since = owed.sent.and_then(|s| s.parse::<Timestamp>().ok());
    let margin = jiff::SignedDuration::try_from(RESTART_EVIDENCE_MARGIN).unwrap_or_default();
    let request_id = owed.request_id.to_string();
    if let (Some(since), Some(began)) = (since, job.last_run_began())
        && began >= since.saturating_add(margin).unwrap_or(since)
    {
        return Step::ConfirmRestart { template, request_id, purpose };
    }
    Step::Restart { template, job: job.id.clone(), scope: owed.scope.to_string(), request_id, purpose }
}

fn should_start(job: &SynchronizationJob, recorded: Option<&JobStatus>, now: Timestamp) -> bool {
    if job.is_quarantined() {
        let reason = job.status.as_ref().and_then(|s| s.quarantine.as_ref()).and_then(|q| q.reason.as_deref());
        let held = reason.is_some_and(|r| HOLD_QUARANTINE.contains(&r));
        let series = quarantine_series(job);
        let already =
            series.is_some() && recorded.and_then(|j| j.quarantine_series_started.as_ref()) == series.as_ref();
        return !held && !already;
    }
    let just_started = within(recorded.and_then(|j| j.last_start_time.as_deref()), now, START_GRACE);
    (!job.is_scheduled() || job.code() == Some(&StatusCode::Paused)) && !just_started
}

/// Status bookkeeping carried from one job status to the next.
pub fn carry_bookkeeping(previous: Option<&JobStatus>, next: &mut JobStatus) {
    if let Some(p) = previous {
        next.last_restart_request_id.clone_from(&p.last_restart_request_id);
        next.pending_restart.clone_from(&p.pending_restart);
        next.quarantine_series_started.clone_from(&p.quarantine_series_started);
        next.recorded_at.clone_from(&p.recorded_at);
        next.recent_failures.clone_from(&p.recent_failures);
        // The start time only guards the moments between a start and Graph showing the job
        // running; once it runs, a later stop (a pause, the service's own) may be started again.
        if next.schedule_state.as_deref() != Some("Active") {
            next.last_start_time.clone_from(&p.last_start_time);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Credentials, RestartRequest, SecretRef};
    use crate::graph::model::{Quarantine, Schedule, SynchronizationStatus};

    fn spec() -> CloudSyncProfileSpec {
        CloudSyncProfileSpec {
            tenant_id: "11111111-2222-3333-4444-555555555555".into(),
            cloud: None,
            credentials: Credentials { secret_ref: Some(SecretRef { name: "creds".into() }), workload_identity: None },
            domain: "contoso.com".into(),
            display_name: None,
            tenant_sync_flag: None,
            password_hash_sync: Some(true),
            suspend: None,
            restart: None,
            deletion_policy: None,
            scope: None,
            attribute_mappings: None,
            accidental_deletes: None,
            notifications: None,
        }
    }

    fn job(template: &str, id: &str, state: &str, code: &str) -> SynchronizationJob {
        SynchronizationJob {
            id: id.into(),
            template_id: Some(template.into()),
            schedule: Some(Schedule { state: Some(state.into()), ..Default::default() }),
            status: Some(SynchronizationStatus { code: Some(code.into()), ..Default::default() }),
            synchronization_job_settings: vec![],
        }
    }

    fn quarantined(template: &str, reason: &str, series: &str) -> SynchronizationJob {
        let mut j = job(template, &format!("{template}.q"), "Active", "Quarantine");
        j.status.as_mut().unwrap().quarantine =
            Some(Quarantine { reason: Some(reason.into()), series_began: series.parse().ok(), ..Default::default() });
        j
    }

    fn sp(id: &str) -> ServicePrincipal {
        ServicePrincipal { id: id.into(), ..Default::default() }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn now() -> Timestamp {
        ts("2026-11-26T12:00:00Z")
    }

    #[test]
    fn a_single_match_is_adopted_several_are_refused() {
        let now = ts("2026-11-26T12:00:00Z");
        assert_eq!(decide_service_principal(&[sp("a")], None, now), ServicePrincipalDecision::Adopt(sp("a")));
        assert_eq!(
            decide_service_principal(&[sp("b"), sp("a")], None, now),
            ServicePrincipalDecision::Ambiguous(vec!["a".into(), "b".into()])
        );
        assert_eq!(decide_service_principal(&[], None, now), ServicePrincipalDecision::Instantiate);
    }

    #[test]
    fn a_pending_instantiate_blocks_a_second_one_until_the_grace_ends() {
        let pending = PendingInstantiate { display_name: "contoso.com".into(), since: "2026-11-26T12:00:00Z".into() };
        match decide_service_principal(&[], Some(&pending), ts("2026-11-26T12:01:00Z")) {
            ServicePrincipalDecision::AwaitPending { remaining } => assert_eq!(remaining, Duration::from_secs(9 * 60)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decide_service_principal(&[], Some(&pending), ts("2026-11-26T12:10:00Z")),
            ServicePrincipalDecision::Instantiate
        );
        // Found meanwhile: adopt, whatever the grace.
        assert_eq!(
            decide_service_principal(&[sp("x")], Some(&pending), ts("2026-11-26T12:00:01Z")),
            ServicePrincipalDecision::Adopt(sp("x"))
        );
    }

    #[test]
    fn replication_grace() {
        let now = ts("2026-11-26T12:05:00Z");
        assert!(within_replication_grace(Some("2026-11-26T12:00:00Z"), now));
        assert!(!within_replication_grace(Some("2026-11-26T11:00:00Z"), now));
        assert!(!within_replication_grace(None, now));
        assert!(!within_replication_grace(Some("garbage"), now));
    }

    #[test]
    fn only_missing_templates_are_created() {
        let p = plan_jobs(&spec(), &[], &CloudSyncProfileStatus::default(), now());
        assert_eq!(p.create, [PROVISIONING_TEMPLATE, PASSWORD_HASH_TEMPLATE]);
        let existing = [job(PROVISIONING_TEMPLATE, "AD2AADProvisioning.1.x", "Active", "Active")];
        let p = plan_jobs(&spec(), &existing, &CloudSyncProfileStatus::default(), now());
        assert_eq!(p.create, [PASSWORD_HASH_TEMPLATE]);
        assert_eq!(p.current[PROVISIONING_TEMPLATE].id, "AD2AADProvisioning.1.x");
        let mut no_phs = spec();
        no_phs.password_hash_sync = Some(false);
        assert!(plan_jobs(&no_phs, &existing, &CloudSyncProfileStatus::default(), now()).create.is_empty());
    }

    #[test]
    fn duplicates_use_the_first_job_and_are_reported() {
        let jobs = [
            job(PROVISIONING_TEMPLATE, "AD2AADProvisioning.b", "Active", "Active"),
            job(PROVISIONING_TEMPLATE, "AD2AADProvisioning.a", "Active", "Active"),
        ];
        let p = plan_jobs(&spec(), &jobs, &CloudSyncProfileStatus::default(), now());
        assert_eq!(p.current[PROVISIONING_TEMPLATE].id, "AD2AADProvisioning.a");
        assert_eq!(
            p.duplicates,
            [(PROVISIONING_TEMPLATE.to_string(), vec!["AD2AADProvisioning.a".into(), "AD2AADProvisioning.b".into()])]
        );
        assert!(p.create.contains(&PASSWORD_HASH_TEMPLATE));
    }

    #[test]
    fn turning_password_hash_sync_off_deletes_only_that_job() {
        let mut s = spec();
        s.password_hash_sync = Some(false);
        let jobs = [
            job(PROVISIONING_TEMPLATE, "AD2AADProvisioning.a", "Active", "Active"),
            job(PASSWORD_HASH_TEMPLATE, "AD2AADPasswordHash.a", "Active", "Active"),
            job("AAD2ADGroupProvisioning", "AAD2ADGroupProvisioning.a", "Active", "Active"),
        ];
        let p = plan_jobs(&s, &jobs, &CloudSyncProfileStatus::default(), now());
        assert_eq!(p.delete, ["AD2AADPasswordHash.a"]);
        assert!(p.create.is_empty());
    }

    #[test]
    fn secrets_are_the_full_double_encoded_set_with_a_stable_hash() {
        let (secrets, hash) = desired_secrets(&spec());
        assert_eq!(secrets[0].key, "Domain");
        assert_eq!(secrets[0].value, r#"{"domain":"contoso.com"}"#);
        assert_eq!(secrets[1].value, r#"{"appKeyScenario":"AD2AADPasswordHash"}"#);
        assert_eq!(desired_secrets(&spec()).1, hash);
        assert!(hash.starts_with("sha256:"));
        let mut other = spec();
        other.domain = "fabrikam.com".into();
        assert_ne!(desired_secrets(&other).1, hash);
        other.domain = "contoso.com".into();
        other.password_hash_sync = Some(false);
        let (no_app_key, h2) = desired_secrets(&other);
        let keys: Vec<&str> = no_app_key.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["Domain", "SyncNotificationSettings"]);
        assert_ne!(h2, hash);
        // Always the full notification settings, with the service's defaults.
        assert_eq!(
            secrets[2].value,
            r#"{"DeleteThresholdEnabled":true,"DeleteThresholdValue":500,"Enabled":false,"Recipients":""}"#
        );
        other.accidental_deletes = Some(crate::api::AccidentalDeletes { enabled: None, threshold: Some(50) });
        other.notifications = Some(crate::api::Notifications { email: "ops@contoso.com".into() });
        let (s3, h3) = desired_secrets(&other);
        assert_eq!(
            s3[1].value,
            r#"{"DeleteThresholdEnabled":true,"DeleteThresholdValue":50,"Enabled":true,"Recipients":"ops@contoso.com"}"#
        );
        assert_ne!(h3, h2);
    }

    /// (template, step name) of each run step.
    fn runs(steps: Vec<Step>) -> Vec<(&'static str, &'static str)> {
        steps
            .into_iter()
            .map(|s| {
                let t = match &s {
                    Step::Start { template, .. } | Step::Pause { template, .. } | Step::Restart { template, .. } => {
                        *template
                    }
                    Step::ConfirmRestart { template, .. } => *template,
                    other => panic!("not a run step: {other:?}"),
                };
                (t, s.name())
            })
            .collect()
    }

    fn current(jobs: Vec<SynchronizationJob>) -> BTreeMap<&'static str, SynchronizationJob> {
        jobs.into_iter()
            .map(|j| {
                (if j.template() == PROVISIONING_TEMPLATE { PROVISIONING_TEMPLATE } else { PASSWORD_HASH_TEMPLATE }, j)
            })
            .collect()
    }

    #[test]
    fn jobs_are_started_only_when_not_running() {
        let s = spec();
        let st = CloudSyncProfileStatus::default();
        let new = current(vec![
            job(PROVISIONING_TEMPLATE, "p", "Disabled", "NotRun"),
            job(PASSWORD_HASH_TEMPLATE, "h", "Paused", "Paused"),
        ]);
        assert_eq!(
            runs(plan_runs(&s, &new, &st, now())),
            [(PASSWORD_HASH_TEMPLATE, "StartJob"), (PROVISIONING_TEMPLATE, "StartJob")]
        );
        let running = current(vec![
            job(PROVISIONING_TEMPLATE, "p", "Active", "Active"),
            job(PASSWORD_HASH_TEMPLATE, "h", "Active", "NotRun"),
        ]);
        assert!(plan_runs(&s, &running, &st, now()).is_empty(), "never start a running job");
    }

    #[test]
    fn quarantine_is_started_once_per_series_and_too_many_deletes_waits_for_a_person() {
        let s = spec();
        let q =
            current(vec![quarantined(PROVISIONING_TEMPLATE, "EncounteredQuarantineException", "2026-11-26T10:00:00Z")]);
        let mut st = CloudSyncProfileStatus::default();
        let steps = plan_runs(&s, &q, &st, now());
        assert_eq!(
            steps,
            [Step::Start {
                template: PROVISIONING_TEMPLATE,
                job: "AD2AADProvisioning.q".into(),
                series: Some("2026-11-26T10:00:00Z".into())
            }],
            "the start names the series it answers"
        );
        st.jobs.push(JobStatus {
            template_id: PROVISIONING_TEMPLATE.into(),
            id: "p".into(),
            quarantine_series_started: Some("2026-11-26T10:00:00Z".into()),
            ..Default::default()
        });
        assert!(plan_runs(&s, &q, &st, now()).is_empty(), "same series: already started once");
        let next =
            current(vec![quarantined(PROVISIONING_TEMPLATE, "EncounteredQuarantineException", "2026-11-27T10:00:00Z")]);
        assert_eq!(plan_runs(&s, &next, &st, now()).len(), 1, "a new series gets one start");
        let deletes = current(vec![quarantined(PROVISIONING_TEMPLATE, "TooManyDeletes", "2026-11-28T10:00:00Z")]);
        assert!(plan_runs(&s, &deletes, &st, now()).is_empty());
    }

    #[test]
    fn suspend_pauses_running_jobs_only() {
        let mut s = spec();
        s.suspend = Some(true);
        let jobs = current(vec![
            job(PROVISIONING_TEMPLATE, "p", "Active", "Active"),
            job(PASSWORD_HASH_TEMPLATE, "h", "Paused", "Paused"),
        ]);
        assert_eq!(
            runs(plan_runs(&s, &jobs, &CloudSyncProfileStatus::default(), now())),
            [(PROVISIONING_TEMPLATE, "PauseJob")]
        );
    }

    #[test]
    fn a_new_restart_request_restarts_each_job_once() {
        let mut s = spec();
        s.restart = Some(RestartRequest { request_id: "r1".into(), reset_scope: Some("Full".into()) });
        let jobs = current(vec![
            job(PROVISIONING_TEMPLATE, "p", "Active", "Active"),
            job(PASSWORD_HASH_TEMPLATE, "h", "Paused", "Paused"),
        ]);
        let mut st = CloudSyncProfileStatus::default();
        assert_eq!(
            plan_runs(&s, &jobs, &st, now()),
            [
                Step::Restart {
                    template: PASSWORD_HASH_TEMPLATE,
                    job: "h".into(),
                    scope: "Full".into(),
                    request_id: "r1".into(),
                    purpose: RestartPurpose::Request
                },
                Step::Restart {
                    template: PROVISIONING_TEMPLATE,
                    job: "p".into(),
                    scope: "Full".into(),
                    request_id: "r1".into(),
                    purpose: RestartPurpose::Request
                }
            ]
        );
        // The provisioning job's restart was recorded before a crash: only the other remains.
        st.jobs.push(JobStatus {
            template_id: PROVISIONING_TEMPLATE.into(),
            id: "p".into(),
            last_restart_request_id: Some("r1".into()),
            ..Default::default()
        });
        assert_eq!(runs(plan_runs(&s, &jobs, &st, now())), [(PASSWORD_HASH_TEMPLATE, "RestartJob")]);
    }

    #[test]
    fn a_restart_request_is_not_run_while_suspended() {
        let mut s = spec();
        s.restart = Some(RestartRequest { request_id: "r1".into(), reset_scope: None });
        s.suspend = Some(true);
        let running = current(vec![job(PROVISIONING_TEMPLATE, "p", "Active", "Active")]);
        assert_eq!(
            runs(plan_runs(&s, &running, &CloudSyncProfileStatus::default(), now())),
            [(PROVISIONING_TEMPLATE, "PauseJob")]
        );
    }

    #[test]
    fn the_default_reset_scope_is_the_portals() {
        let mut s = spec();
        s.restart = Some(RestartRequest { request_id: "r1".into(), reset_scope: None });
        let jobs = current(vec![job(PROVISIONING_TEMPLATE, "p", "Active", "Active")]);
        let plan = plan_runs(&s, &jobs, &CloudSyncProfileStatus::default(), now());
        assert!(
            matches!(&plan[0], Step::Restart { scope, .. } if scope == "Watermark, Escrows, QuarantineState"),
            "{plan:?}"
        );
    }

    #[test]
    fn recorded_or_pending_jobs_that_graph_does_not_list_yet_are_waited_for() {
        let mut st = CloudSyncProfileStatus::default();
        st.jobs.push(JobStatus {
            template_id: PROVISIONING_TEMPLATE.into(),
            id: "p".into(),
            recorded_at: Some("2026-11-26T11:59:00Z".into()),
            ..Default::default()
        });
        st.pending_job_creates.push(crate::api::PendingJobCreate {
            template_id: PASSWORD_HASH_TEMPLATE.into(),
            since: "2026-11-26T11:59:50Z".into(),
        });
        let p = plan_jobs(&spec(), &[], &st, now());
        assert!(p.create.is_empty(), "{p:?}");
        assert_eq!(p.waiting, [PROVISIONING_TEMPLATE, PASSWORD_HASH_TEMPLATE]);
        // Long after, the record is stale: the job really is gone, create it.
        let later = ts("2026-11-26T13:00:00Z");
        assert_eq!(plan_jobs(&spec(), &[], &st, later).create, [PROVISIONING_TEMPLATE, PASSWORD_HASH_TEMPLATE]);
    }

    #[test]
    fn an_adopted_configuration_is_never_pruned() {
        let mut s = spec();
        s.password_hash_sync = Some(false);
        let jobs = [
            job(PROVISIONING_TEMPLATE, "AD2AADProvisioning.a", "Active", "Active"),
            job(PASSWORD_HASH_TEMPLATE, "AD2AADPasswordHash.a", "Active", "Active"),
        ];
        let st = CloudSyncProfileStatus {
            service_principal: Some(crate::api::ServicePrincipalRef {
                id: "sp".into(),
                adopted: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(plan_jobs(&s, &jobs, &st, now()).delete.is_empty());
    }

    #[test]
    fn a_job_started_moments_ago_is_not_started_again() {
        let s = spec();
        let stopped = current(vec![job(PROVISIONING_TEMPLATE, "p", "Disabled", "NotRun")]);
        let mut st = CloudSyncProfileStatus::default();
        st.jobs.push(JobStatus {
            template_id: PROVISIONING_TEMPLATE.into(),
            id: "p".into(),
            last_start_time: Some("2026-11-26T11:59:50Z".into()),
            ..Default::default()
        });
        assert!(plan_runs(&s, &stopped, &st, now()).is_empty(), "Graph may not show it running yet");
        assert_eq!(plan_runs(&s, &stopped, &st, ts("2026-11-26T12:10:00Z")).len(), 1, "still stopped much later");
    }

    #[test]
    fn a_quarantine_without_times_is_one_series() {
        let s = spec();
        let mut q = job(PROVISIONING_TEMPLATE, "p", "Active", "Quarantine");
        q.status.as_mut().unwrap().quarantine =
            Some(Quarantine { reason: Some("Unknown".into()), ..Default::default() });
        assert_eq!(quarantine_series(&q).as_deref(), Some("unknown"));
        let jobs = current(vec![q]);
        let mut st = CloudSyncProfileStatus::default();
        assert_eq!(plan_runs(&s, &jobs, &st, now()).len(), 1);
        st.jobs.push(JobStatus {
            template_id: PROVISIONING_TEMPLATE.into(),
            id: "p".into(),
            quarantine_series_started: Some("unknown".into()),
            ..Default::default()
        });
        assert!(plan_runs(&s, &jobs, &st, now()).is_empty());
    }
}
