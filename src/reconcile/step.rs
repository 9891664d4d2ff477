//! Steps: the writes a plan asks for, as data, and the status bookkeeping around each one. Both
//! halves of the bookkeeping are pure: what a step records *before* it is sent (the intents that
//! make non-idempotent writes at-most-once) and what it records *after*, from its outcome (ids,
//! clearing an intent, or rolling it back when the write certainly did not happen).

use jiff::Timestamp;
use kube::runtime::events::EventType;

use super::observe::{Jobs, Observed};
use super::reason::Reason;
use crate::api::{
    CloudSyncProfileStatus, JobStatus, PendingInstantiate, PendingJobCreate, PendingRestart, ScopeRestart,
    ServicePrincipalRef,
};
use crate::graph::GraphError;
use crate::graph::model::{Instantiated, KeyValue, ServicePrincipal, SynchronizationJob};

/// One Graph write (or a status-only decision) of a plan's wave.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// PATCH the organization's onPremisesSyncEnabled, then read it back.
    EnableTenantFlag {
        organization: String,
    },
    Instantiate {
        display_name: String,
    },
    /// Record a configuration found by the lookup; `ours` when an earlier instantiate made it.
    Adopt {
        service_principal: ServicePrincipal,
        application_id: Option<String>,
        ours: bool,
    },
    /// The service principal is gone from Graph (confirmed by a direct read): forget it.
    ForgetServicePrincipal {
        id: String,
    },
    /// `restart_done`: a pending restart request, done for a job that starts fresh.
    CreateJob {
        template: &'static str,
        restart_done: Option<String>,
    },
    DeleteJob {
        id: String,
        template: String,
    },
    PutSecrets {
        secrets: Vec<KeyValue>,
        hash: String,
    },
    /// `series`: the quarantine series this start answers, if the job is quarantined.
    Start {
        template: &'static str,
        job: String,
        series: Option<String>,
    },
    Pause {
        template: &'static str,
        job: String,
    },
    Restart {
        template: &'static str,
        job: String,
        scope: String,
        request_id: String,
        purpose: RestartPurpose,
    },
    /// The job ran after an unconfirmed restart was sent: it happened.
    ConfirmRestart {
        template: &'static str,
        request_id: String,
        purpose: RestartPurpose,
    },
    /// Replace the provisioning job's schema. `drift`: what differed, when the profile did not
    /// change (someone edited the schema outside the operator). `scope_restart`: the restart the
    /// job is owed afterwards, when its scope changed.
    PutSchema {
        job: String,
        /// Shared: the wave's call task holds a clone of its step.
        schema: std::sync::Arc<serde_json::Value>,
        hash: String,
        inputs: String,
        from_template: bool,
        drift: Option<Vec<String>>,
        scope_restart: Option<ScopeRestart>,
    },
    /// Write the service principal's tags with this profile as the owner (`previous`: the owner a
    /// take-ownership annotation took it from).
    ClaimOwnership {
        service_principal: String,
        tags: Vec<String>,
        owner: String,
        previous: Option<String>,
    },
    /// The owner tag already names this profile: remember that.
    RecordOwner {
        owner: String,
    },
    /// Graph holds the desired schema already: remember that.
    RecordSchema {
        hash: String,
        inputs: String,
        from_template: bool,
    },
    DeleteApplication {
        id: String,
    },
    DeleteServicePrincipal {
        id: String,
    },
}

/// Why a job is restarted: the user's `spec.restart`, or a change of scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPurpose {
    Request,
    Scope,
}

/// What a successful call returned.
#[derive(Clone, Debug, PartialEq)]
pub enum Done {
    Nothing,
    /// A delete found the object gone already.
    Gone,
    FlagSet {
        confirmed: bool,
    },
    Instantiated(Box<Instantiated>),
    Job(Box<SynchronizationJob>),
}

pub type Outcome = Result<Done, GraphError>;

/// An Event to publish about a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub type_: EventType,
    pub reason: Reason,
    pub action: String,
    pub note: String,
}

fn normal(reason: Reason, action: impl Into<String>, note: String) -> Option<Notice> {
    Some(Notice { type_: EventType::Normal, reason, action: action.into(), note })
}

fn warning(reason: Reason, action: impl Into<String>, note: String) -> Option<Notice> {
    Some(Notice { type_: EventType::Warning, reason, action: action.into(), note })
}

/// Whether the pass may go on after a step.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    Continue,
    /// The step failed: the pass ends with this error (retried, or shown to the user).
    Stop(GraphError),
}

/// What recording an outcome produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    pub notice: Option<Notice>,
    /// A Graph write was made (or may have been).
    pub wrote: bool,
    pub next: Next,
}

/// The write certainly did not happen: it never left, was refused before processing (429, 503),
/// or was refused outright. Timeouts and other 5xx leave it uncertain; so does a 404 from
/// instantiate, which can create the objects and still answer 404.
pub fn never_applied(e: &GraphError) -> bool {
    e.not_processed() || (!e.is_transient() && !e.is_not_found())
}

pub fn describe_sp(sp: &ServicePrincipalRef) -> String {
    format!("service principal {} ({})", sp.id, sp.display_name.as_deref().unwrap_or("unnamed"))
}

fn sp_ref(sp: &ServicePrincipal, application_id: Option<String>, adopted: bool, now: Timestamp) -> ServicePrincipalRef {
    ServicePrincipalRef {
        id: sp.id.clone(),
        app_id: sp.app_id.clone(),
        application_id,
        display_name: sp.display_name.clone(),
        recorded_at: Some(now.to_string()),
        adopted: adopted.then_some(true),
        owner: None,
    }
}

fn job_entry<'a>(status: &'a mut CloudSyncProfileStatus, template: &str) -> Option<&'a mut JobStatus> {
    status.jobs.iter_mut().find(|j| j.template_id == template)
}

/// The job carried out the restart request: done, and no longer pending.
fn restart_done(status: &mut CloudSyncProfileStatus, template: &str, request_id: &str) {
    if let Some(j) = job_entry(status, template) {
        j.last_restart_request_id = Some(request_id.to_string());
        j.pending_restart = None;
    }
}

fn upsert_job(status: &mut CloudSyncProfileStatus, next: JobStatus) {
    match job_entry(status, &next.template_id) {
        Some(j) => *j = next,
        None => status.jobs.push(next),
    }
}

impl Step {
    /// A stable name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Step::EnableTenantFlag { .. } => "EnableTenantFlag",
            Step::Instantiate { .. } => "Instantiate",
            Step::Adopt { .. } => "Adopt",
            Step::ForgetServicePrincipal { .. } => "ForgetServicePrincipal",
            Step::CreateJob { .. } => "CreateJob",
            Step::DeleteJob { .. } => "DeleteJob",
            Step::PutSecrets { .. } => "PutSecrets",
            Step::Start { .. } => "StartJob",
            Step::Pause { .. } => "PauseJob",
            Step::Restart { .. } => "RestartJob",
            Step::ConfirmRestart { .. } => "ConfirmRestart",
            Step::PutSchema { .. } => "PutSchema",
            Step::RecordSchema { .. } => "RecordSchema",
            Step::ClaimOwnership { .. } => "ClaimOwnership",
            Step::RecordOwner { .. } => "RecordOwner",
            Step::DeleteApplication { .. } => "DeleteApplication",
            Step::DeleteServicePrincipal { .. } => "DeleteServicePrincipal",
        }
    }

    /// The condition a failure of this step is shown in.
    pub fn slot(&self) -> super::plan::Slot {
        use super::plan::Slot;
        match self {
            Step::EnableTenantFlag { .. }
            | Step::Instantiate { .. }
            | Step::Adopt { .. }
            | Step::ForgetServicePrincipal { .. }
            | Step::ClaimOwnership { .. }
            | Step::RecordOwner { .. }
            | Step::DeleteApplication { .. }
            | Step::DeleteServicePrincipal { .. } => Slot::ServicePrincipal,
            Step::PutSchema { .. } | Step::RecordSchema { .. } => Slot::Schema,
            _ => Slot::Jobs,
        }
    }

    /// Not idempotent: it carries an intent, recorded before it is sent, so it happens at most
    /// once (instantiate, job creation, start) or is never lost (restart, and the restart a
    /// change of scope owes: once the new scope is in Graph, nothing else would show it changed).
    pub fn needs_intent(&self) -> bool {
        matches!(
            self,
            Step::Instantiate { .. }
                | Step::CreateJob { .. }
                | Step::Start { .. }
                | Step::Restart { .. }
                | Step::PutSchema { scope_restart: Some(_), .. }
        )
    }

    /// Its outcome is written to status before the pass does anything but plan: the
    /// configuration's id (a lookup may not see a new service principal for minutes), or its
    /// intent cleared. The pass holds it (`Pass::hold`) for its next patch: the intents of the
    /// next wave when that wave has intents and its gate is open (they are written right before
    /// the calls, so nothing but planning lies in between), otherwise a patch of its own before
    /// any read, Retry-After wait, wave without intents, end of the pass or error.
    pub fn persist_at_once(&self) -> bool {
        matches!(self, Step::Instantiate { .. } | Step::Adopt { .. } | Step::ForgetServicePrincipal { .. })
    }

    /// Decided from what was observed; nothing is sent to Graph.
    pub fn status_only(&self) -> bool {
        matches!(
            self,
            Step::Adopt { .. }
                | Step::ForgetServicePrincipal { .. }
                | Step::ConfirmRestart { .. }
                | Step::RecordSchema { .. }
                | Step::RecordOwner { .. }
        )
    }

    /// Changes a job's state in a way only a new list shows (a created or deleted job is
    /// recorded from the answer itself), so the jobs are read again before anything else.
    fn changes_jobs(&self) -> bool {
        matches!(self, Step::Start { .. } | Step::Pause { .. } | Step::Restart { .. })
    }

    /// The intent, written to status right before the call.
    pub fn before(&self, status: &mut CloudSyncProfileStatus, now: Timestamp) {
        match self {
            Step::Instantiate { display_name } => {
                status.pending_instantiate =
                    Some(PendingInstantiate { display_name: display_name.clone(), since: now.to_string() });
            }
            Step::CreateJob { template, .. } => {
                status.pending_job_creates.retain(|p| p.template_id != *template);
                status
                    .pending_job_creates
                    .push(PendingJobCreate { template_id: template.to_string(), since: now.to_string() });
            }
            Step::Start { template, series, .. } => {
                if let Some(j) = job_entry(status, template) {
                    j.last_start_time = Some(now.to_string());
                    if series.is_some() {
                        j.quarantine_series_started.clone_from(series);
                    }
                }
            }
            Step::Restart { template, request_id, purpose: RestartPurpose::Request, .. } => {
                if let Some(j) = job_entry(status, template) {
                    j.pending_restart = Some(PendingRestart { request_id: request_id.clone(), since: now.to_string() });
                }
            }
            Step::Restart { purpose: RestartPurpose::Scope, .. } => {
                if let Some(r) = status.scope_restart.as_mut() {
                    r.sent = Some(now.to_string());
                }
            }
            Step::PutSchema { scope_restart: Some(r), .. } => status.scope_restart = Some(r.clone()),
            Step::Pause { template, .. } => {
                if let Some(j) = job_entry(status, template) {
                    j.last_start_time = None;
                }
            }
            _ => {}
        }
    }

    /// Takes the intent back: the call certainly did not happen, so the next pass may send it.
    fn roll_back(&self, prior: &CloudSyncProfileStatus, status: &mut CloudSyncProfileStatus) {
        match self {
            Step::Instantiate { .. } => status.pending_instantiate.clone_from(&prior.pending_instantiate),
            Step::CreateJob { template, .. } => status.pending_job_creates.retain(|p| p.template_id != *template),
            Step::Restart { purpose: RestartPurpose::Scope, .. } | Step::PutSchema { .. } => {
                status.scope_restart.clone_from(&prior.scope_restart)
            }
            Step::Start { template, .. } | Step::Restart { template, .. } => {
                let before = prior.jobs.iter().find(|j| j.template_id == *template);
                if let (Some(j), Some(b)) = (job_entry(status, template), before) {
                    j.last_start_time.clone_from(&b.last_start_time);
                    j.quarantine_series_started.clone_from(&b.quarantine_series_started);
                    j.pending_restart.clone_from(&b.pending_restart);
                }
            }
            _ => {}
        }
    }

    /// Records the outcome in status and in what this pass knows of Graph. `prior` is the status
    /// before the wave's intents were written.
    pub fn after(
        &self,
        outcome: &Outcome,
        prior: &CloudSyncProfileStatus,
        status: &mut CloudSyncProfileStatus,
        seen: &mut Observed,
        now: Timestamp,
    ) -> Recorded {
        match outcome {
            Ok(done) => {
                if self.changes_jobs() {
                    seen.jobs_stale = true;
                }
                Recorded {
                    notice: self.record(done, status, seen, now),
                    wrote: !self.status_only(),
                    next: Next::Continue,
                }
            }
            Err(e) if matches!(self, Step::Instantiate { .. }) && e.is_not_found() => {
                // Graph can answer 404 and still create both objects: look, never repeat blindly.
                seen.lookup = None;
                let note = format!(
                    "{}; the configuration may exist anyway, looking it up before any new attempt",
                    e.summary()
                );
                Recorded {
                    notice: warning(Reason::InstantiateUncertain, "Instantiate", note),
                    wrote: true,
                    next: Next::Continue,
                }
            }
            Err(e) => {
                if never_applied(e) {
                    self.roll_back(prior, status);
                }
                Recorded { notice: None, wrote: false, next: Next::Stop(e.clone()) }
            }
        }
    }

    fn record(
        &self,
        done: &Done,
        status: &mut CloudSyncProfileStatus,
        seen: &mut Observed,
        now: Timestamp,
    ) -> Option<Notice> {
        match self {
            Step::EnableTenantFlag { .. }
            | Step::Instantiate { .. }
            | Step::Adopt { .. }
            | Step::ForgetServicePrincipal { .. }
            | Step::ClaimOwnership { .. }
            | Step::RecordOwner { .. } => self.record_configuration(done, status, seen, now),
            Step::CreateJob { .. } | Step::DeleteJob { .. } | Step::PutSecrets { .. } => {
                self.record_job(done, status, seen, now)
            }
            Step::Start { .. } | Step::Pause { .. } | Step::Restart { .. } | Step::ConfirmRestart { .. } => {
                self.record_run(status)
            }
            Step::DeleteApplication { .. } | Step::DeleteServicePrincipal { .. } => self.record_cleanup(done, status),
            Step::PutSchema { .. } | Step::RecordSchema { .. } => self.record_schema(status, seen),
        }
    }

    /// The schema written (or found as wanted); a change of scope leaves a restart owed.
    fn record_schema(&self, status: &mut CloudSyncProfileStatus, seen: &mut Observed) -> Option<Notice> {
        match self {
            Step::PutSchema { job, schema, hash, inputs, from_template, drift, scope_restart } => {
                status.schema_hash = Some(hash.clone());
                status.schema_inputs_hash = Some(inputs.clone());
                if *from_template {
                    status.schema_from_template = Some(true);
                }
                if scope_restart.is_some() {
                    status.scope_restart.clone_from(scope_restart);
                }
                seen.schema = Some(super::observe::HeldSchema { value: schema.clone(), hash: hash.clone() });
                let restart = scope_restart
                    .as_ref()
                    .map(|r| format!("; the job is restarted with reset scope {}: {}", r.reset_scope, r.reason))
                    .unwrap_or_default();
                match drift {
                    Some(d) => warning(
                        Reason::SchemaDriftCorrected,
                        "PutSchema",
                        format!(
                            "the schema of job {job} was changed outside the operator ({}); put back the profile's{restart}",
                            d.join("; ")
                        ),
                    ),
                    None => {
                        normal(Reason::SchemaUpdated, "PutSchema", format!("wrote the schema of job {job}{restart}"))
                    }
                }
            }
            Step::RecordSchema { hash, inputs, from_template } => {
                status.schema_hash = Some(hash.clone());
                status.schema_inputs_hash = Some(inputs.clone());
                if *from_template {
                    status.schema_from_template = Some(true);
                }
                None
            }
            _ => None,
        }
    }

    /// The tenant flag and the service principal.
    fn record_configuration(
        &self,
        done: &Done,
        status: &mut CloudSyncProfileStatus,
        seen: &mut Observed,
        now: Timestamp,
    ) -> Option<Notice> {
        match (self, done) {
            (Step::EnableTenantFlag { organization }, Done::FlagSet { confirmed }) => {
                status.tenant_sync_enabled = Some(*confirmed);
                if *confirmed {
                    normal(
                        Reason::TenantSyncEnabled,
                        "EnableDirectorySync",
                        format!("turned on onPremisesSyncEnabled for tenant {organization}"),
                    )
                } else {
                    warning(
                        Reason::TenantSyncFlagUnconfirmed,
                        "EnableDirectorySync",
                        format!(
                            "Graph accepted the update of onPremisesSyncEnabled for tenant {organization} but does not show it on yet; the operator checks again on each pass and does not repeat the update"
                        ),
                    )
                }
            }
            (Step::Instantiate { .. }, Done::Instantiated(created)) => {
                let r = sp_ref(&created.service_principal, Some(created.application.id.clone()), false, now);
                let note = format!("created {} from the cloud sync template", describe_sp(&r));
                status.service_principal = Some(r);
                seen.service_principal = Some(created.service_principal.clone());
                seen.instantiated = Some(created.service_principal.id.clone());
                status.pending_instantiate = None;
                // A new service principal has no jobs yet: nothing to list.
                seen.jobs = Some(Jobs::Listed(Vec::new()));
                normal(Reason::ServicePrincipalCreated, "Instantiate", note)
            }
            (Step::Adopt { service_principal, application_id, ours }, _) => {
                let r = sp_ref(service_principal, application_id.clone(), !ours, now);
                let (reason, note) = if *ours {
                    (
                        Reason::ServicePrincipalFound,
                        format!("found {} created by an earlier instantiate", describe_sp(&r)),
                    )
                } else {
                    (
                        Reason::ServicePrincipalAdopted,
                        format!(
                            "adopted the existing {}; the operator will not delete it or prune its jobs",
                            describe_sp(&r)
                        ),
                    )
                };
                status.service_principal = Some(r);
                status.pending_instantiate = None;
                seen.service_principal = Some(service_principal.clone());
                normal(reason, "Adopt", note)
            }
            (Step::ClaimOwnership { service_principal, tags, owner, previous }, _) => {
                if let Some(sp) = status.service_principal.as_mut() {
                    sp.owner = Some(owner.clone());
                }
                if let Some(held) = seen.service_principal.as_mut().filter(|s| s.id == *service_principal) {
                    held.tags.clone_from(tags);
                }
                let note = match previous {
                    Some(p) => format!(
                        "took service principal {service_principal} over from {p} (annotation {}): its owner tag now names {owner}",
                        super::ownership::TAKE_OWNERSHIP_ANNOTATION
                    ),
                    None => format!(
                        "recorded {owner} as the owner of service principal {service_principal} (tag cloudsync.io/owner)"
                    ),
                };
                normal(Reason::OwnershipClaimed, "ClaimOwnership", note)
            }
            (Step::RecordOwner { owner }, _) => {
                if let Some(sp) = status.service_principal.as_mut() {
                    sp.owner = Some(owner.clone());
                }
                None
            }
            (Step::ForgetServicePrincipal { id }, _) => {
                let name = status
                    .service_principal
                    .as_ref()
                    .map(describe_sp)
                    .unwrap_or_else(|| format!("service principal {id}"));
                status.service_principal = None;
                status.jobs.clear();
                status.pending_job_creates.clear();
                status.secrets_hash = None;
                status.last_restart_request_id = None;
                seen.jobs = None;
                seen.lookup = None;
                seen.service_principal = None;
                seen.instantiated = None;
                warning(
                    Reason::ServicePrincipalGone,
                    "Observe",
                    format!(
                        "{name} no longer exists in Microsoft Graph (deleted outside the operator); creating the configuration again"
                    ),
                )
            }
            // A call answered with a shape its step does not expect: nothing to record.
            _ => None,
        }
    }

    /// Jobs created or deleted, and the secret set.
    fn record_job(
        &self,
        done: &Done,
        status: &mut CloudSyncProfileStatus,
        seen: &mut Observed,
        now: Timestamp,
    ) -> Option<Notice> {
        match (self, done) {
            (Step::CreateJob { template, restart_done }, Done::Job(job)) => {
                let mut js = super::status::job_status(job, None);
                js.recorded_at = Some(now.to_string());
                js.last_restart_request_id.clone_from(restart_done);
                upsert_job(status, js);
                status.pending_job_creates.retain(|p| p.template_id != *template);
                if let Some(Jobs::Listed(list)) = &mut seen.jobs {
                    list.push((**job).clone());
                }
                normal(Reason::JobCreated, format!("Create{template}"), format!("created job {} ({template})", job.id))
            }
            (Step::DeleteJob { id, template }, d) => {
                status.jobs.retain(|j| j.id != *id);
                if let Some(Jobs::Listed(list)) = &mut seen.jobs {
                    list.retain(|j| j.id != *id);
                }
                (*d != Done::Gone).then(|| Notice {
                    type_: EventType::Normal,
                    reason: Reason::JobDeleted,
                    action: format!("Delete{template}"),
                    note: format!("deleted job {id}"),
                })
            }
            (Step::PutSecrets { secrets, hash }, _) => {
                status.secrets_hash = Some(hash.clone());
                let keys: Vec<&str> = secrets.iter().map(|s| s.key.as_str()).collect();
                normal(
                    Reason::SecretsUpdated,
                    "PutSecrets",
                    format!("set the synchronization secrets {}", keys.join(", ")),
                )
            }
            // A call answered with a shape its step does not expect: nothing to record.
            _ => None,
        }
    }

    /// Starts, pauses and restarts: their intents were written before; the answer completes them.
    fn record_run(&self, status: &mut CloudSyncProfileStatus) -> Option<Notice> {
        match self {
            // The action names the job's template: events of one reason and action are merged
            // into one series, which would hide the second job's note.
            Step::Start { template, job, .. } => {
                normal(Reason::JobStarted, format!("Start{template}"), format!("started job {job}"))
            }
            Step::Pause { template, job } => {
                normal(Reason::JobPaused, format!("Pause{template}"), format!("paused job {job}: spec.suspend is true"))
            }
            Step::Restart { template, job, scope, request_id, purpose: RestartPurpose::Request } => {
                restart_done(status, template, request_id);
                normal(
                    Reason::JobRestarted,
                    format!("Restart{template}"),
                    format!("restarted job {job} with reset scope {scope:?} for request {request_id}"),
                )
            }
            Step::Restart { template, job, scope, purpose: RestartPurpose::Scope, .. } => {
                let why = status.scope_restart.take().map(|r| r.reason).unwrap_or_default();
                normal(
                    Reason::ScopeRestarted,
                    format!("ScopeRestart{template}"),
                    format!("restarted job {job} with reset scope {scope:?}: {why}"),
                )
            }
            Step::ConfirmRestart { template, request_id, purpose: RestartPurpose::Scope } => {
                status.scope_restart = None;
                normal(
                    Reason::RestartConfirmed,
                    format!("ScopeRestart{template}"),
                    format!("the {template} job ran after the scope restart {request_id} was sent: it was carried out"),
                )
            }
            Step::ConfirmRestart { template, request_id, purpose: RestartPurpose::Request } => {
                restart_done(status, template, request_id);
                normal(
                    Reason::RestartConfirmed,
                    format!("Restart{template}"),
                    format!("the {template} job ran after restart request {request_id} was sent: it was carried out"),
                )
            }
            _ => None,
        }
    }

    /// The application and the service principal, deleted with the profile.
    fn record_cleanup(&self, done: &Done, status: &mut CloudSyncProfileStatus) -> Option<Notice> {
        match (self, done) {
            (Step::DeleteApplication { id }, d) => {
                if let Some(sp) = status.service_principal.as_mut() {
                    sp.application_id = None;
                }
                (*d != Done::Gone).then(|| Notice {
                    type_: EventType::Normal,
                    reason: Reason::ApplicationDeleted,
                    action: "Delete".into(),
                    note: format!("deleted application {id}"),
                })
            }
            (Step::DeleteServicePrincipal { id }, d) => {
                status.service_principal = None;
                (*d != Done::Gone).then(|| Notice {
                    type_: EventType::Normal,
                    reason: Reason::ServicePrincipalDeleted,
                    action: "Delete".into(),
                    note: format!("deleted service principal {id}"),
                })
            }
            // A call answered with a shape its step does not expect: nothing to record.
            _ => None,
        }
    }
}
