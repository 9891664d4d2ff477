//! The control API under `/_sim` (tests and benchmarks only; it is unauthenticated, so never
//! expose a simulator beyond the test network) and the operations it shares with the Rust API.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::calls::Counters;
use super::envelope::{GraphError, json_response};
use super::faults::FaultSpec;
use super::ids;
use super::jobs::{Job, QUARANTINE_REASONS, SyncError, cloud_sync_settings};
use super::server::Shared;
use super::state::{ClientApp, FederatedCredential, perms};

/// A tenant/app registration (`POST /_sim/tenants`, `--tenant`, the builder).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Registration {
    /// Tenant id; a random GUID when absent. An existing tenant gets one more app.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Client (app) id; a random GUID when absent.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Client secret; generated when absent and no federated credential is given.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Organization display name of a new tenant.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Application permissions (roles); the full cloud-sync set when absent.
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
    /// `false` withholds the synchronization permission (sync calls then answer 401).
    #[serde(default)]
    pub sync: Option<bool>,
    #[serde(default)]
    pub federated_credentials: Vec<FederatedCredentialSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FederatedCredentialSpec {
    pub issuer: String,
    pub subject: String,
    /// Defaults to `["api://AzureADTokenExchange"]`.
    #[serde(default)]
    pub audiences: Vec<String>,
}

impl Registration {
    /// An app with a client secret and the full cloud-sync permissions.
    pub fn new(tenant_id: impl Into<String>, client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            tenant_id: Some(tenant_id.into()),
            client_id: Some(client_id.into()),
            client_secret: Some(client_secret.into()),
            ..Self::default()
        }
    }

    /// Withholds `Synchronization.ReadWrite.All`.
    pub fn without_sync(mut self) -> Self {
        self.sync = Some(false);
        self
    }

    pub fn with_permissions<I, S>(mut self, permissions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.permissions = Some(permissions.into_iter().map(Into::into).collect());
        self
    }

    /// Adds a federated credential with the token-exchange audience.
    pub fn with_federated(mut self, issuer: impl Into<String>, subject: impl Into<String>) -> Self {
        self.federated_credentials.push(FederatedCredentialSpec {
            issuer: issuer.into(),
            subject: subject.into(),
            audiences: Vec::new(),
        });
        self
    }

    /// Parses `TENANT:CLIENT:SECRET` (the secret may itself contain `:`).
    pub fn parse_cli(input: &str) -> Result<Self, String> {
        let mut parts = input.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(t), Some(c), Some(s)) if !t.is_empty() && !c.is_empty() && !s.is_empty() => Ok(Self::new(t, c, s)),
            _ => Err(format!("'{input}' is not TENANT:CLIENT:SECRET")),
        }
    }
}

/// What a registration created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Option<String>,
}

fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

pub fn register(sim: &Shared, reg: Registration) -> Result<Registered, String> {
    let tenant_id = reg.tenant_id.clone().unwrap_or_else(ids::guid);
    let client_id = reg.client_id.clone().unwrap_or_else(ids::guid);
    if !valid_id(&tenant_id) || !valid_id(&client_id) {
        return Err("tenant and client ids may contain only letters, digits, '-', '.' and '_'".into());
    }
    let client_secret = match (&reg.client_secret, reg.federated_credentials.is_empty()) {
        (Some(s), _) => Some(s.clone()),
        (None, true) => Some(format!("sim~{}", ids::hex32())),
        (None, false) => None,
    };
    let mut permissions: BTreeSet<String> = match &reg.permissions {
        Some(p) => p.iter().cloned().collect(),
        None => perms::FULL.iter().map(|s| (*s).to_owned()).collect(),
    };
    match reg.sync {
        Some(false) => {
            for p in ["Synchronization.ReadWrite.All", "Synchronization.Read.All", "Application.ReadWrite.OwnedBy"] {
                permissions.remove(p);
            }
        }
        Some(true) => {
            permissions.insert(perms::SYNC.to_owned());
        }
        None => {}
    }
    let federated = reg
        .federated_credentials
        .iter()
        .map(|f| FederatedCredential {
            issuer: f.issuer.clone(),
            subject: f.subject.clone(),
            audiences: if f.audiences.is_empty() {
                vec![super::auth::TOKEN_EXCHANGE_AUDIENCE.into()]
            } else {
                f.audiences.clone()
            },
        })
        .collect();
    let now = sim.clock.now();
    let mut inner = sim.lock();
    let tenant = inner.dir.ensure_tenant(&tenant_id, now);
    if let Some(name) = &reg.display_name {
        tenant.display_name = name.clone();
    }
    tenant.add_client(ClientApp {
        client_id: client_id.clone(),
        secret: client_secret.clone(),
        federated,
        permissions,
        object_id: ids::guid(),
    });
    Ok(Registered { tenant_id, client_id, client_secret })
}

/// Everything the simulator knows about a tenant, with computed job status and unmasked secrets.
pub fn state_dump(sim: &Shared, tenant_id: &str) -> Option<Value> {
    let now = sim.clock.now();
    let mut inner = sim.lock();
    let t = inner.dir.tenant_mut(tenant_id)?;
    let organization = t.organization_json(now);
    let clients: Vec<Value> = t
        .clients
        .values()
        .map(|c| {
            json!({
                "clientId": c.client_id,
                "permissions": c.permissions,
                "hasSecret": c.secret.is_some(),
                "federatedCredentials": c.federated.iter().map(|f| json!({"issuer": f.issuer, "subject": f.subject, "audiences": f.audiences})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let applications: Vec<Value> = t.apps_in_order().into_iter().map(|a| a.to_json(t)).collect();
    let mut order: Vec<(u64, String)> = t.service_principals.values().map(|s| (s.seq, s.id.clone())).collect();
    order.sort();
    let mut sps = Vec::new();
    for (_, id) in order {
        let Some(sp) = t.sp_mut(&id) else { continue };
        let settings = cloud_sync_settings(sp.domain().as_deref());
        let mut v = sp.to_json();
        let jobs: Vec<Value> = sp
            .jobs
            .iter_mut()
            .map(|j| {
                let mut jv = j.snapshot(now, settings.clone());
                jv["executions"] = json!(j.executions());
                jv["deletedObjects"] = json!(j.deleted());
                jv["pendingDeletes"] =
                    json!(j.pending_deletes().map(|p| json!({"count": p.count, "released": p.released})));
                jv
            })
            .collect();
        v["jobs"] = json!(jobs);
        v["secrets"] = json!(sp.secrets.iter().map(|(k, val)| json!({"key": k, "value": val})).collect::<Vec<_>>());
        sps.push(v);
    }
    Some(json!({
        "tenantId": t.id,
        "displayName": t.display_name,
        "serviceTime": super::clock::fmt7(now),
        "organization": organization,
        "clients": clients,
        "applications": applications,
        "servicePrincipals": sps,
        "duplicateServicePrincipals": t.duplicate_service_principals(),
        "duplicateJobs": t.duplicate_jobs(),
    }))
}

/// An action on one job through the control API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobAction {
    Quarantine {
        reason: String,
        error: SyncError,
    },
    Fail {
        error: SyncError,
        count: Option<u64>,
    },
    Recover,
    Seed {
        template_id: String,
    },
    /// The next execution wants to delete this many objects (0 withdraws them).
    Deletes {
        count: u64,
    },
    /// The next `runs` runs (all, if `None`) end with `count` entry-level errors of `code`.
    EntryErrors {
        code: String,
        count: u64,
        runs: Option<u64>,
    },
}

/// Applies `action` and returns the job as Graph would show it.
pub fn job_action(
    sim: &Shared,
    tenant_id: &str,
    sp_id: &str,
    job_id: &str,
    action: JobAction,
) -> Result<Value, GraphError> {
    let now = sim.clock.now();
    let mut inner = sim.lock();
    let t = inner.dir.tenant_mut(tenant_id).ok_or_else(|| GraphError::not_found(tenant_id))?;
    let sp_key = t.resolve_sp_key(sp_id).ok_or_else(|| GraphError::not_found(sp_id))?;
    let sp = t.sp_mut(&sp_key).ok_or_else(|| GraphError::not_found(sp_id))?;
    let settings = cloud_sync_settings(sp.domain().as_deref());
    if let JobAction::Seed { template_id } = &action {
        if job_id.is_empty() || sp.job_index(job_id).is_some() {
            return Err(GraphError::new(
                StatusCode::CONFLICT,
                "Conflict",
                format!("Job '{job_id}' exists or is empty."),
            ));
        }
        let mut job = Job::new(job_id.to_owned(), template_id.clone(), now);
        job.set_delete_threshold(now, super::deletes::threshold_of(&sp.secrets));
        sp.jobs.push(job);
    }
    let index = sp.job_index(job_id).ok_or_else(|| GraphError::not_found(job_id))?;
    let job = sp.jobs.get_mut(index).ok_or_else(|| GraphError::not_found(job_id))?;
    match action {
        JobAction::Quarantine { reason, error } => job.quarantine(now, reason, error),
        JobAction::Fail { error, count } => job.fail(now, error, count),
        JobAction::Recover => job.clear_failure(now),
        JobAction::Deletes { count } => job.want_deletes(now, count),
        JobAction::EntryErrors { code, count, runs } => job.set_entry_errors(now, code, count, runs),
        JobAction::Seed { .. } => {}
    }
    Ok(job.snapshot(now, settings))
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, GraphError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    serde_json::from_slice(body).map_err(|e| GraphError::new(StatusCode::BAD_REQUEST, "BadRequest", e.to_string()))
}

fn ok(status: StatusCode, body: &Value) -> Response {
    json_response(status, body)
}

#[derive(Deserialize)]
struct CallsQuery {
    format: Option<String>,
}

/// JSON by default; `?format=text` gives one aligned line per call for people (the demo).
async fn calls_get(State(sim): State<Arc<Shared>>, Query(q): Query<CallsQuery>) -> Response {
    let calls = sim.lock().log.calls();
    if q.format.as_deref() == Some("text") {
        let mut out = String::new();
        for c in &calls {
            let fault = c.fault.as_deref().map(|f| format!("  [{f}]")).unwrap_or_default();
            out.push_str(&format!(
                "{}  {:<6} {:<3} {}{fault}\n",
                c.time.get(11..23).unwrap_or(&c.time),
                c.method,
                c.status,
                c.path
            ));
        }
        return ([(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")], out).into_response();
    }
    ok(StatusCode::OK, &json!(calls))
}

async fn reset(State(sim): State<Arc<Shared>>) -> StatusCode {
    let mut inner = sim.lock();
    inner.log.reset();
    inner.retries.clear();
    inner.on_demand.clear();
    StatusCode::NO_CONTENT
}

/// Counters in total or for `?tenant=`, with the duplicate counts computed now.
pub fn counters(sim: &Shared, tenant: Option<&str>) -> Counters {
    let inner = sim.lock();
    let mut c = inner.log.counters(tenant);
    let tenants: Vec<_> = match tenant {
        Some(t) => inner.dir.tenant(t).into_iter().collect(),
        None => inner.dir.tenants.values().collect(),
    };
    c.duplicate_service_principals = tenants.iter().map(|t| t.duplicate_service_principals()).sum();
    c.duplicate_applications = tenants.iter().map(|t| t.duplicate_applications()).sum();
    c.duplicate_jobs = tenants.iter().map(|t| t.duplicate_jobs()).sum();
    c.peak_duplicate_service_principals = c.peak_duplicate_service_principals.max(c.duplicate_service_principals);
    c.peak_duplicate_jobs = c.peak_duplicate_jobs.max(c.duplicate_jobs);
    c
}

#[derive(Deserialize)]
struct TenantQuery {
    tenant: Option<String>,
}

async fn counters_get(State(sim): State<Arc<Shared>>, Query(q): Query<TenantQuery>) -> Response {
    ok(StatusCode::OK, &json!(counters(&sim, q.tenant.as_deref())))
}

async fn faults_list(State(sim): State<Arc<Shared>>) -> Response {
    let list = sim.lock().faults.list();
    ok(StatusCode::OK, &json!(list))
}

async fn faults_add(State(sim): State<Arc<Shared>>, body: Bytes) -> Result<Response, GraphError> {
    let spec: FaultSpec = parse(&body)?;
    let id = sim.lock().faults.add(spec).map_err(|e| GraphError::new(StatusCode::BAD_REQUEST, "BadRequest", e))?;
    Ok(ok(StatusCode::CREATED, &json!({"id": id})))
}

async fn faults_clear(State(sim): State<Arc<Shared>>) -> StatusCode {
    sim.lock().faults.clear();
    StatusCode::NO_CONTENT
}

async fn fault_remove(State(sim): State<Arc<Shared>>, Path(id): Path<u64>) -> Result<StatusCode, GraphError> {
    if sim.lock().faults.remove(id) { Ok(StatusCode::NO_CONTENT) } else { Err(GraphError::not_found(&id.to_string())) }
}

async fn tenants_list(State(sim): State<Arc<Shared>>) -> Response {
    let inner = sim.lock();
    let list: Vec<Value> = inner
        .dir
        .tenants
        .values()
        .map(|t| json!({"tenantId": t.id, "displayName": t.display_name, "clientIds": t.clients.values().map(|c| c.client_id.clone()).collect::<Vec<_>>()}))
        .collect();
    ok(StatusCode::OK, &json!(list))
}

async fn tenants_add(State(sim): State<Arc<Shared>>, body: Bytes) -> Result<Response, GraphError> {
    let reg: Registration = parse(&body)?;
    let done = register(&sim, reg).map_err(|e| GraphError::new(StatusCode::BAD_REQUEST, "BadRequest", e))?;
    Ok(ok(StatusCode::CREATED, &json!(done)))
}

async fn tenant_state(State(sim): State<Arc<Shared>>, Path(tid): Path<String>) -> Result<Response, GraphError> {
    let state = state_dump(&sim, &tid).ok_or_else(|| GraphError::not_found(&tid))?;
    Ok(ok(StatusCode::OK, &state))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeedBody {
    id: String,
    template_id: Option<String>,
}

async fn seed_job(
    State(sim): State<Arc<Shared>>,
    Path((tid, sp)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, GraphError> {
    let b: SeedBody = parse(&body)?;
    let template_id = b.template_id.unwrap_or_else(|| b.id.split('.').next().unwrap_or("").to_owned());
    let job = job_action(&sim, &tid, &sp, &b.id, JobAction::Seed { template_id })?;
    Ok(ok(StatusCode::CREATED, &job))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FaultBody {
    reason: Option<String>,
    error_code: Option<String>,
    message: Option<String>,
    count: Option<u64>,
}

/// Builds a quarantine action, checking `reason` against the enum (the troubleshooting doc's
/// "QuarantineOnDemand" spelling is refused on purpose).
pub fn quarantine_action(
    reason: Option<String>,
    code: Option<String>,
    message: Option<String>,
) -> Result<JobAction, String> {
    let reason = reason.unwrap_or_else(|| "EncounteredQuarantineException".into());
    if !QUARANTINE_REASONS.contains(&reason.as_str()) {
        return Err(format!("'{reason}' is not a synchronizationQuarantineReason: {}", QUARANTINE_REASONS.join(", ")));
    }
    let code = code.unwrap_or_else(|| "HybridIdentityServiceNoActiveAgents".into());
    Ok(JobAction::Quarantine { reason, error: SyncError::from_code(&code, message) })
}

async fn job_quarantine(
    State(sim): State<Arc<Shared>>,
    Path((tid, sp, job)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, GraphError> {
    let b: FaultBody = parse(&body)?;
    let action = quarantine_action(b.reason, b.error_code, b.message)
        .map_err(|e| GraphError::new(StatusCode::BAD_REQUEST, "BadRequest", e))?;
    Ok(ok(StatusCode::OK, &job_action(&sim, &tid, &sp, &job, action)?))
}

async fn job_fail(
    State(sim): State<Arc<Shared>>,
    Path((tid, sp, job)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, GraphError> {
    let b: FaultBody = parse(&body)?;
    let code = b.error_code.unwrap_or_else(|| "HybridIdentityServiceNoActiveAgents".into());
    let action = JobAction::Fail { error: SyncError::from_code(&code, b.message), count: b.count };
    Ok(ok(StatusCode::OK, &job_action(&sim, &tid, &sp, &job, action)?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EntryErrorsBody {
    /// Defaults to `AttributeValueMustBeUnique`, the commonest cloud-sync export error.
    error_code: Option<String>,
    count: u64,
    runs: Option<u64>,
}

/// Error codes are made of letters and digits; anything else is a mistake in the test.
fn valid_code(code: &str) -> bool {
    !code.is_empty() && code.len() <= 100 && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

async fn job_entry_errors(
    State(sim): State<Arc<Shared>>,
    Path((tid, sp, job)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, GraphError> {
    let b: EntryErrorsBody = parse(&body)?;
    let code = b.error_code.unwrap_or_else(|| "AttributeValueMustBeUnique".into());
    if !valid_code(&code) {
        return Err(GraphError::new(StatusCode::BAD_REQUEST, "BadRequest", "errorCode must be letters and digits"));
    }
    let action = JobAction::EntryErrors { code, count: b.count, runs: b.runs };
    Ok(ok(StatusCode::OK, &job_action(&sim, &tid, &sp, &job, action)?))
}

async fn job_entry_errors_clear(
    State(sim): State<Arc<Shared>>,
    Path((tid, sp, job)): Path<(String, String, String)>,
) -> Result<Response, GraphError> {
    let action = JobAction::EntryErrors { code: String::new(), count: 0, runs: None };
    Ok(ok(StatusCode::OK, &job_action(&sim, &tid, &sp, &job, action)?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeletesBody {
    count: u64,
}

async fn job_deletes(
    State(sim): State<Arc<Shared>>,
    Path((tid, sp, job)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, GraphError> {
    let b: DeletesBody = parse(&body)?;
    Ok(ok(StatusCode::OK, &job_action(&sim, &tid, &sp, &job, JobAction::Deletes { count: b.count })?))
}

async fn job_deletes_withdraw(
    State(sim): State<Arc<Shared>>,
    Path((tid, sp, job)): Path<(String, String, String)>,
) -> Result<Response, GraphError> {
    Ok(ok(StatusCode::OK, &job_action(&sim, &tid, &sp, &job, JobAction::Deletes { count: 0 })?))
}

async fn job_recover(
    State(sim): State<Arc<Shared>>,
    Path((tid, sp, job)): Path<(String, String, String)>,
) -> Result<Response, GraphError> {
    Ok(ok(StatusCode::OK, &job_action(&sim, &tid, &sp, &job, JobAction::Recover)?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OnDemandBody {
    dn: String,
    #[serde(flatten)]
    outcome: crate::ondemand::Scripted,
}

/// Sets what provisionOnDemand answers for one object of a job (until set again).
pub fn script_on_demand(
    sim: &Shared,
    tenant_id: &str,
    job_id: &str,
    dn: &str,
    outcome: crate::ondemand::Scripted,
) -> Result<(), String> {
    outcome.validate()?;
    let key = format!("{tenant_id}/{job_id}/{}", dn.to_lowercase());
    sim.lock().on_demand_script.insert(key, outcome);
    Ok(())
}

async fn job_on_demand(
    State(sim): State<Arc<Shared>>,
    Path((tid, _sp, job)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<StatusCode, GraphError> {
    let b: OnDemandBody = parse(&body)?;
    script_on_demand(&sim, &tid, &job, &b.dn, b.outcome)
        .map_err(|e| GraphError::new(StatusCode::BAD_REQUEST, "BadRequest", e))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn health(State(sim): State<Arc<Shared>>) -> impl IntoResponse {
    ok(
        StatusCode::OK,
        &json!({"status": "ok", "speed": sim.clock.speed(), "serviceTime": super::clock::fmt7(sim.clock.now())}),
    )
}

pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/calls", get(calls_get).delete(reset))
        .route("/reset", post(reset))
        .route("/counters", get(counters_get))
        .route("/faults", get(faults_list).post(faults_add).delete(faults_clear))
        .route("/faults/{id}", delete(fault_remove))
        .route("/tenants", get(tenants_list).post(tenants_add))
        .route("/tenants/{tid}/state", get(tenant_state))
        .route("/tenants/{tid}/servicePrincipals/{sp}/jobs", post(seed_job))
        .route("/tenants/{tid}/servicePrincipals/{sp}/jobs/{job}/quarantine", post(job_quarantine))
        .route("/tenants/{tid}/servicePrincipals/{sp}/jobs/{job}/onDemand", post(job_on_demand))
        .route("/tenants/{tid}/servicePrincipals/{sp}/jobs/{job}/fail", post(job_fail).delete(job_recover))
        .route(
            "/tenants/{tid}/servicePrincipals/{sp}/jobs/{job}/deletes",
            post(job_deletes).delete(job_deletes_withdraw),
        )
        .route(
            "/tenants/{tid}/servicePrincipals/{sp}/jobs/{job}/entryErrors",
            post(job_entry_errors).delete(job_entry_errors_clear),
        )
        .route("/health", get(health))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_cli() {
        let r = Registration::parse_cli("t:c:se:cret").unwrap();
        assert_eq!(r.client_secret.as_deref(), Some("se:cret"));
        assert!(Registration::parse_cli("t:c").is_err());
        assert!(Registration::parse_cli("t::s").is_err());
    }

    #[test]
    fn quarantine_reasons() {
        assert!(quarantine_action(Some("QuarantineOnDemand".into()), None, None).is_err());
        assert!(quarantine_action(Some("QuarantinedOnDemand".into()), None, None).is_ok());
        assert!(quarantine_action(None, None, None).is_ok());
    }
}
