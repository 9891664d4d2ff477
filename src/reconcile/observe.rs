//! Observe: every read a pass makes, and what it learned, as one `Observed` value. Which read comes
//! next is the planner's decision (`Plan::Read`); this module only performs it and records the
//! answer, keeping refusals as data so the planner decides what they mean.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use std::collections::BTreeMap;
use std::sync::Arc;

use super::credentials;
use super::pass::Pass;
use super::reason::Problem;
use super::schema::Parsed;
use crate::graph::audit::Failures;
use crate::graph::model::{Organization, ServicePrincipal, SynchronizationJob};
use crate::graph::schema::ParsedExpression;
use crate::graph::{GraphError, Tenant};

/// What this pass knows of Graph. Starts empty; reads and step outcomes fill it in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// The organization, read when the tenant flag is wanted and not confirmed yet.
    pub organization: Option<Organization>,
    /// The lookup by display name, made when status records no service principal.
    pub lookup: Option<Lookup>,
    /// The jobs of the recorded service principal.
    pub jobs: Option<Jobs>,
    /// A write changed the jobs since they were listed: list them again before the pass ends.
    pub jobs_stale: bool,
    /// Status was re-read from the apiserver in this pass (done once, before the first
    /// non-idempotent write, so a lagging watch cache cannot make the operator repeat one).
    pub refreshed: bool,
    /// Another profile of this process holds this configuration.
    pub claimed_by: Option<String>,
    /// The provisioning job's schema as Graph holds it, read (or written) in this pass.
    pub schema: Option<HeldSchema>,
    /// The provisioning template's default schema (shared with the process's cache).
    pub template_schema: Option<Arc<serde_json::Value>>,
    /// `parseExpression` verdicts by expression text.
    pub parsed: BTreeMap<String, Parsed>,
    /// The drift check is due: the schema is read even though the profile did not change.
    pub schema_check_due: bool,
    /// Who this pass acts as, for the owner tag; `None` enforces no owner (planner tests of
    /// other rules).
    pub owner: Option<super::ownership::Owner>,
    /// The recorded service principal as Graph holds it (its tags), when read or written in this pass.
    pub service_principal: Option<ServicePrincipal>,
    /// The service principal this pass instantiated: created moments ago from the answer, so no
    /// other install can have tagged it and it has no jobs yet.
    pub instantiated: Option<String>,
    /// The provisioning-log read of this pass, if one was made (at most one per pass).
    pub recent_failures: Option<FailuresRead>,
}

/// A job's schema as Graph holds it, hashed once when read: the planner compares the hash on every
/// round of a pass, and hashing it each time was a fifth of the operator's CPU at scale.
#[derive(Clone, Debug, PartialEq)]
pub struct HeldSchema {
    pub value: Arc<serde_json::Value>,
    pub hash: String,
}

impl HeldSchema {
    pub fn new(value: serde_json::Value) -> Self {
        let hash = super::schema::hash(&value);
        Self { value: Arc::new(value), hash }
    }
}

/// A provisioning-log read: the runs it was for, and its answer or refusal (kept as data: a
/// refusal is a note in status, never a failure of the pass).
#[derive(Clone, Debug, PartialEq)]
pub struct FailuresRead {
    /// (job id, the run's timeBegan).
    pub runs: Vec<(String, String)>,
    pub outcome: Result<Failures, GraphError>,
    /// When it was read.
    pub at: jiff::Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Lookup {
    pub name: String,
    pub found: Vec<ServicePrincipal>,
    /// The application object id of the single match, if there is exactly one.
    pub application_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Jobs {
    Listed(Vec<SynchronizationJob>),
    /// The list failed in a way that is no plain "try again" (replication lag, a refusal).
    Failed(GraphError),
    /// The list answered 404 and a direct read confirms the service principal is gone.
    Gone,
    /// The list answered 404 although the service principal exists.
    Unlisted,
}

/// A read the planner asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    /// The profile's status from the apiserver, bypassing the watch cache.
    Status,
    Organization,
    /// Cloud sync service principals with this display name.
    Lookup {
        name: String,
    },
    /// The jobs of this service principal; `eventual` while replication lag is expected;
    /// `confirm`: a 404 is checked with a direct read of the service principal.
    Jobs {
        service_principal: String,
        eventual: bool,
        confirm: bool,
    },
    /// The service principal itself (for its owner tag); `eventual` while replication lag is expected.
    ServicePrincipal {
        id: String,
        eventual: bool,
    },
    /// The schema of this job; `eventual` while replication lag is expected.
    Schema {
        service_principal: String,
        job: String,
        eventual: bool,
    },
    /// The default schema of a template (from the process's cache when it has it).
    TemplateSchema {
        service_principal: String,
        template: String,
        eventual: bool,
    },
    /// `parseExpression` for each expression (from the cache when known), on this job's schema.
    Parse {
        service_principal: String,
        job: String,
        expressions: Vec<String>,
    },
    /// Failed provisioning-log entries of this service principal for these (job id, run) pairs.
    RecentFailures {
        service_principal: String,
        runs: Vec<(String, String)>,
    },
}

impl Read {
    /// The condition a refusal of this read is shown in.
    pub fn slot(&self) -> super::plan::Slot {
        match self {
            Read::Schema { .. } | Read::TemplateSchema { .. } | Read::Parse { .. } => super::plan::Slot::Schema,
            _ => super::plan::Slot::ServicePrincipal,
        }
    }
}

/// Resolves the credentials and gets a token. `Ok(Err(problem))`: the user must fix something.
pub async fn connect(pass: &Pass) -> Result<Result<Tenant, Problem>, super::Error> {
    let spec = &pass.profile.spec;
    let ns = pass.namespace();
    let secrets: Api<Secret> = Api::namespaced(pass.ctx.kube.clone(), &ns);
    let credential =
        match credentials::resolve(&secrets, &ns, &spec.credentials, &pass.ctx.settings.workload_identity).await? {
            Ok(c) => c,
            Err(problem) => return Ok(Err(problem)),
        };
    Ok(Ok(pass.ctx.graph.tenant(spec.cloud(), &spec.tenant_id, credential)))
}

/// Performs one read. A refusal the planner must weigh is recorded in `seen`; one that simply
/// failed comes back as `Err` for the caller to retry or report.
pub async fn read(pass: &mut Pass, graph: &Tenant, what: Read, seen: &mut Observed) -> Result<(), super::Error> {
    // A read may take long or fail: a record the pass holds goes out before it (`Pass::hold`).
    pass.flush().await?;
    match what {
        Read::Status => {
            pass.refresh().await?;
            seen.refreshed = true;
        }
        Read::Organization => seen.organization = Some(graph.organization().await?),
        Read::Lookup { name } => {
            let found = graph.find_cloud_sync_service_principals(&name).await?;
            let application_id = match found.as_slice() {
                [one] => graph.application_id_of(one).await?,
                _ => None,
            };
            seen.lookup = Some(Lookup { name, found, application_id });
        }
        Read::Jobs { service_principal, eventual, confirm } => {
            seen.jobs = Some(jobs(graph, &service_principal, eventual, confirm).await?);
            seen.jobs_stale = false;
        }
        Read::ServicePrincipal { id, eventual } => {
            seen.service_principal = Some(graph.service_principal(&id, eventual).await?);
        }
        Read::Schema { service_principal, job, eventual } => {
            seen.schema = Some(HeldSchema::new(graph.job_schema(&service_principal, &job, eventual).await?));
            pass.ctx.schemas.checked(&pass.key());
        }
        Read::TemplateSchema { service_principal, template, eventual } => {
            let cache = &pass.ctx.schemas;
            let schema = match cache.template(&service_principal, &template) {
                Some(s) => s,
                None => {
                    let s = graph.template_schema(&service_principal, &template, eventual).await?;
                    cache.keep_template(&service_principal, &template, s)
                }
            };
            seen.template_schema = Some(schema);
        }
        Read::Parse { service_principal, job, expressions } => {
            for e in expressions {
                let verdict = match pass.ctx.schemas.parsed(&e) {
                    Some(v) => v,
                    None => {
                        let v = verdict(graph.parse_expression(&service_principal, &job, &e).await?);
                        pass.ctx.schemas.keep_parsed(&e, &v);
                        v
                    }
                };
                seen.parsed.insert(e, verdict);
            }
        }
        Read::RecentFailures { service_principal, runs } => {
            seen.recent_failures = Some(recent_failures(pass, graph, &service_principal, runs).await);
        }
    }
    Ok(())
}

/// Never fails the pass: a refusal is kept for status. The call does not wait for a Retry-After
/// or retry (a fail-fast client), so a throttled log read holds nothing up; it is tried again at
/// the next resync. A refusal the user must fix is told once per run (the run is then recorded).
async fn recent_failures(pass: &Pass, graph: &Tenant, sp: &str, runs: Vec<(String, String)>) -> FailuresRead {
    let at = pass.now();
    let outcome = match super::failures::since(&runs) {
        Some(since) => graph.fail_fast().provisioning_failures(sp, since).await,
        None => Ok(Failures::default()),
    };
    if let Err(e) = &outcome {
        match super::failures::note_for(e) {
            Some(note) => {
                let reason = super::reason::Reason::RecentFailuresUnavailable;
                pass.event(kube::runtime::events::EventType::Normal, reason, "ReadProvisioningLogs", note).await;
            }
            None => tracing::debug!(error = %e, "provisioning logs not read; trying again at the next resync"),
        }
    }
    FailuresRead { runs, outcome, at }
}

/// A parse that succeeded without a tree is no usable source either.
fn verdict(p: ParsedExpression) -> Parsed {
    match (p.parsing_succeeded, p.parsed_expression) {
        (true, Some(tree)) if !tree.is_null() => Parsed::Source(tree),
        _ => Parsed::Invalid(
            p.error
                .and_then(|e| e.message.or(e.code))
                .unwrap_or_else(|| "parseExpression gave no parsed expression".to_string()),
        ),
    }
}

async fn jobs(graph: &Tenant, sp: &str, eventual: bool, confirm: bool) -> Result<Jobs, GraphError> {
    match graph.list_jobs(sp, eventual).await {
        Ok(list) => Ok(Jobs::Listed(list)),
        Err(e) if e.is_transient() => Err(e),
        Err(e) if e.is_not_found() && !eventual && confirm => match graph.service_principal(sp, false).await {
            Ok(_) => Ok(Jobs::Unlisted),
            Err(e) if e.is_not_found() => Ok(Jobs::Gone),
            Err(e) if e.is_transient() => Err(e),
            Err(e) => Ok(Jobs::Failed(e)),
        },
        Err(e) if e.is_not_found() && !confirm => Ok(Jobs::Gone),
        Err(e) => Ok(Jobs::Failed(e)),
    }
}
