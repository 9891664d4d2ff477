//! Graph routes under `/beta` and `/v1.0`: path matching, the per-request pipeline (bearer check,
//! early-retry and fault rules, routing) and helpers shared by the handlers.

mod audit;
mod directory;
mod schema;
mod sync;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde_json::Value;

use super::auth::{self, TokenInfo};
use super::calls::Event;
use super::envelope::{self, GraphError};
use super::faults::{Deferred, FaultKind};
use super::ids::percent_decode;
use super::server::{CallMeta, Inner, Shared, base_url};
use super::state::Tenant;

const BODY_LIMIT: usize = 8 * 1024 * 1024;

const GET: u8 = 1;
const POST: u8 = 2;
const PUT: u8 = 4;
const PATCH: u8 = 8;
const DELETE: u8 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Organization,
    OrganizationItem,
    Instantiate,
    ServicePrincipals,
    ServicePrincipal,
    SpTemplates,
    Jobs,
    JobsValidateCredentials,
    Job,
    JobStart,
    JobPause,
    JobRestart,
    JobValidateCredentials,
    JobProvisionOnDemand,
    JobSchema,
    SchemaParseExpression,
    SchemaFilterOperators,
    SchemaFunctions,
    TemplateSchema,
    Secrets,
    Applications,
    Application,
    AppTemplates,
    ProvisioningLogs,
}

/// Path patterns relative to the version segment; `{}` binds one segment. Earlier entries win,
/// so literal segments are listed before the parameter that would also match them.
const ROUTES: &[(&str, Route, u8)] = &[
    ("organization", Route::Organization, GET),
    ("organization/{}", Route::OrganizationItem, GET | PATCH),
    ("applicationTemplates/{}/instantiate", Route::Instantiate, POST),
    ("servicePrincipals", Route::ServicePrincipals, GET),
    ("servicePrincipals/{}", Route::ServicePrincipal, GET | PATCH | DELETE),
    ("servicePrincipals/{}/synchronization/templates", Route::SpTemplates, GET),
    ("servicePrincipals/{}/synchronization/jobs", Route::Jobs, GET | POST),
    ("servicePrincipals/{}/synchronization/jobs/validateCredentials", Route::JobsValidateCredentials, POST),
    ("servicePrincipals/{}/synchronization/jobs/{}", Route::Job, GET | DELETE),
    ("servicePrincipals/{}/synchronization/jobs/{}/start", Route::JobStart, POST),
    ("servicePrincipals/{}/synchronization/jobs/{}/pause", Route::JobPause, POST),
    ("servicePrincipals/{}/synchronization/jobs/{}/restart", Route::JobRestart, POST),
    ("servicePrincipals/{}/synchronization/jobs/{}/validateCredentials", Route::JobValidateCredentials, POST),
    ("servicePrincipals/{}/synchronization/jobs/{}/provisionOnDemand", Route::JobProvisionOnDemand, POST),
    // PATCH is routed so that it can fail the way the service does (404), not with a 405.
    ("servicePrincipals/{}/synchronization/jobs/{}/schema", Route::JobSchema, GET | PUT | PATCH | DELETE),
    ("servicePrincipals/{}/synchronization/{}/{}/schema/parseExpression", Route::SchemaParseExpression, POST),
    ("servicePrincipals/{}/synchronization/{}/{}/schema/filterOperators", Route::SchemaFilterOperators, GET),
    ("servicePrincipals/{}/synchronization/{}/{}/schema/functions", Route::SchemaFunctions, GET),
    ("servicePrincipals/{}/synchronization/templates/{}/schema", Route::TemplateSchema, GET),
    ("servicePrincipals/{}/synchronization/secrets", Route::Secrets, GET | PUT),
    ("applications", Route::Applications, GET),
    ("applications/{}", Route::Application, GET | DELETE),
    ("applications/{}/synchronization/templates", Route::AppTemplates, GET),
    ("auditLogs/provisioning", Route::ProvisioningLogs, GET),
];

fn method_bit(method: &Method) -> u8 {
    match *method {
        Method::GET => GET,
        Method::POST => POST,
        Method::PUT => PUT,
        Method::PATCH => PATCH,
        Method::DELETE => DELETE,
        _ => 0,
    }
}

fn allowed_methods(mask: u8) -> Vec<Method> {
    [(GET, Method::GET), (POST, Method::POST), (PUT, Method::PUT), (PATCH, Method::PATCH), (DELETE, Method::DELETE)]
        .into_iter()
        .filter(|(bit, _)| mask & bit != 0)
        .map(|(_, m)| m)
        .collect()
}

/// Splits `servicePrincipals(appId='x')` into `servicePrincipals` + `appId='x'` so the alternate
/// key routes like an id.
fn expand_alternate_keys(segments: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(segments.len() + 1);
    for seg in segments {
        if let Some(open) = seg.find('(')
            && seg.ends_with(')')
        {
            let name = &seg[..open];
            if name.eq_ignore_ascii_case("servicePrincipals") || name.eq_ignore_ascii_case("applications") {
                out.push(name.to_owned());
                out.push(seg[open + 1..seg.len() - 1].to_owned());
                continue;
            }
        }
        out.push(seg);
    }
    out
}

/// Matches decoded segments (after the version) against [`ROUTES`]; literals are case-insensitive
/// like Graph's. On failure, names the first segment no route knows.
fn match_route(segments: &[String]) -> Result<(Route, u8, Vec<String>), String> {
    let mut deepest = 0;
    for (pattern, route, mask) in ROUTES {
        let parts: Vec<&str> = pattern.split('/').collect();
        let mut params = Vec::new();
        let mut matched = 0;
        for (p, s) in parts.iter().zip(segments) {
            if *p == "{}" {
                params.push(s.clone());
            } else if !p.eq_ignore_ascii_case(s) {
                break;
            }
            matched += 1;
        }
        if matched == parts.len() && parts.len() == segments.len() {
            return Ok((*route, *mask, params));
        }
        deepest = deepest.max(matched);
    }
    Err(segments.get(deepest).or(segments.last()).cloned().unwrap_or_default())
}

/// What a handler returns on success.
pub enum Reply {
    Json(StatusCode, Value),
    Empty(StatusCode),
}

/// The request as handlers see it.
pub struct Ctx {
    pub now: Timestamp,
    pub principal: TokenInfo,
    pub version: &'static str,
    pub base: String,
    pub method: Method,
    pub path: String,
    pub query: HashMap<String, String>,
    pub body: Bytes,
    /// Set when a deferred fault shaped the answer, for the call log.
    pub fault: Option<&'static str>,
}

impl Ctx {
    pub fn tenant_id(&self) -> &str {
        &self.principal.tenant
    }

    pub fn context(&self, fragment: &str) -> String {
        format!("{}/{}/$metadata#{fragment}", self.base, self.version)
    }

    /// A query option by name, with or without the `$` prefix.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.query.get(&format!("${name}")).or_else(|| self.query.get(name)).map(String::as_str)
    }

    pub fn require(&self, permissions: &[&str]) -> Result<(), GraphError> {
        if self.principal.has_any(permissions) { Ok(()) } else { Err(GraphError::forbidden()) }
    }

    /// The synchronization service answers a missing permission with 401, not 403.
    pub fn require_sync(&self, permissions: &[&str]) -> Result<(), GraphError> {
        if self.principal.has_any(permissions) { Ok(()) } else { Err(GraphError::sync_unauthorized()) }
    }

    /// The body as a JSON object; an empty body is `None`.
    pub fn json_body(
        &self,
        bad: impl Fn(String) -> GraphError,
    ) -> Result<Option<serde_json::Map<String, Value>>, GraphError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(Value::Object(map)) => Ok(Some(map)),
            Ok(_) => Err(bad("The request body must be a JSON object.".into())),
            Err(e) => Err(bad(format!("Invalid JSON in the request body: {e}."))),
        }
    }
}

/// The caller's tenant. A token outlives nothing it refers to, but be safe.
pub fn tenant<'a>(inner: &'a mut Inner, ctx: &Ctx) -> Result<&'a mut Tenant, GraphError> {
    inner
        .dir
        .tenant_mut(ctx.tenant_id())
        .ok_or_else(|| GraphError::invalid_token("Access token validation failure. Invalid audience."))
}

/// The object id in the token's tenant; an id that belongs to another tenant is a token problem
/// (the simulator is louder than Graph here, so that mixed-up credentials are caught).
fn not_here(inner: &Inner, ctx: &Ctx, key: &str) -> GraphError {
    if inner.dir.other_owner(ctx.tenant_id(), key).is_some() {
        GraphError::invalid_token("Access token validation failure. Invalid audience.")
    } else {
        GraphError::not_found(key)
    }
}

/// Applies the after-create windows to an object created at `created`.
fn creation_windows(inner: &mut Inner, ctx: &mut Ctx, id: &str, created: Timestamp) -> Result<(), GraphError> {
    let now = ctx.now;
    let within = |k: &FaultKind| super::clock::plus_secs_f64(created, k.seconds()) > now;
    let tenant = Some(ctx.principal.tenant.as_str());
    let method = ctx.method.as_str();
    if inner.faults.deferred(Deferred::NotFoundWindow, tenant, method, &ctx.path, within).is_some() {
        ctx.fault = Some("not-found-after-create");
        return Err(GraphError::not_found(id));
    }
    if inner.faults.deferred(Deferred::ForbiddenWindow, tenant, method, &ctx.path, within).is_some() {
        ctx.fault = Some("forbidden-after-create");
        return Err(GraphError::forbidden());
    }
    Ok(())
}

/// Resolves a service principal path key (id or `appId='...'`) to its id.
pub fn lookup_sp(inner: &mut Inner, ctx: &mut Ctx, key: &str) -> Result<String, GraphError> {
    let t = tenant(inner, ctx)?;
    let found = t.resolve_sp_key(key).and_then(|id| t.sp(&id).map(|sp| (id, sp.created)));
    let Some((id, created)) = found else { return Err(not_here(inner, ctx, key)) };
    creation_windows(inner, ctx, &id, created)?;
    Ok(id)
}

pub fn lookup_app(inner: &mut Inner, ctx: &mut Ctx, key: &str) -> Result<String, GraphError> {
    let t = tenant(inner, ctx)?;
    let found = t.resolve_app_key(key).and_then(|id| t.app(&id).map(|a| (id, a.created)));
    let Some((id, created)) = found else { return Err(not_here(inner, ctx, key)) };
    creation_windows(inner, ctx, &id, created)?;
    Ok(id)
}

/// Keeps the high-water marks of duplicates current after a create.
pub fn observe_duplicates(inner: &mut Inner, tenant_id: &str) {
    let Some(t) = inner.dir.tenant(tenant_id) else { return };
    let (sps, jobs) = (t.duplicate_service_principals(), t.duplicate_jobs());
    inner.log.observe_duplicates(tenant_id, sps, jobs);
}

fn dispatch(inner: &mut Inner, ctx: &mut Ctx, route: Route, p: &[String]) -> Result<Reply, GraphError> {
    let m = ctx.method.clone();
    let arg = |i: usize| p.get(i).map(String::as_str).unwrap_or("");
    match (route, m) {
        (Route::Organization, _) => directory::organization_list(inner, ctx),
        (Route::OrganizationItem, Method::GET) => directory::organization_get(inner, ctx, arg(0)),
        (Route::OrganizationItem, _) => directory::organization_patch(inner, ctx, arg(0)),
        (Route::Instantiate, _) => directory::instantiate(inner, ctx, arg(0)),
        (Route::ServicePrincipals, _) => directory::sp_list(inner, ctx),
        (Route::ServicePrincipal, Method::GET) => directory::sp_get(inner, ctx, arg(0)),
        (Route::ServicePrincipal, Method::PATCH) => directory::sp_patch(inner, ctx, arg(0)),
        (Route::ServicePrincipal, _) => directory::sp_delete(inner, ctx, arg(0)),
        (Route::Applications, _) => directory::app_list(inner, ctx),
        (Route::Application, Method::GET) => directory::app_get(inner, ctx, arg(0)),
        (Route::Application, _) => directory::app_delete(inner, ctx, arg(0)),
        (Route::AppTemplates, _) => sync::app_templates(inner, ctx, arg(0)),
        (Route::SpTemplates, _) => sync::templates(inner, ctx, arg(0)),
        (Route::Jobs, Method::GET) => sync::job_list(inner, ctx, arg(0)),
        (Route::Jobs, _) => sync::job_create(inner, ctx, arg(0)),
        (Route::JobsValidateCredentials, _) => sync::validate_credentials(inner, ctx, arg(0), None),
        (Route::Job, Method::GET) => sync::job_get(inner, ctx, arg(0), arg(1)),
        (Route::Job, _) => sync::job_delete(inner, ctx, arg(0), arg(1)),
        (Route::JobStart, _) => sync::job_start(inner, ctx, arg(0), arg(1)),
        (Route::JobPause, _) => sync::job_pause(inner, ctx, arg(0), arg(1)),
        (Route::JobRestart, _) => sync::job_restart(inner, ctx, arg(0), arg(1)),
        (Route::JobValidateCredentials, _) => sync::validate_credentials(inner, ctx, arg(0), Some(arg(1))),
        (Route::JobProvisionOnDemand, _) => sync::provision_on_demand(inner, ctx, arg(0), arg(1)),
        (Route::JobSchema, Method::PATCH) => schema::schema_patch(inner, ctx, arg(0), arg(1)),
        (Route::JobSchema, _) => sync::job_schema(inner, ctx, arg(0), arg(1)),
        (Route::SchemaParseExpression, _) => schema::parse_expression(inner, ctx, arg(0), arg(1), arg(2)),
        (Route::SchemaFilterOperators, _) => schema::filter_operators(inner, ctx, arg(0), arg(1), arg(2)),
        (Route::SchemaFunctions, _) => schema::functions(inner, ctx, arg(0), arg(1), arg(2)),
        (Route::TemplateSchema, _) => schema::template_schema(inner, ctx, arg(0), arg(1)),
        (Route::Secrets, Method::GET) => sync::secrets_get(inner, ctx, arg(0)),
        (Route::Secrets, _) => sync::secrets_put(inner, ctx, arg(0)),
        (Route::ProvisioningLogs, _) => audit::list(inner, ctx),
    }
}

/// The fallback handler: every request that is not the token endpoint or `/_sim`.
pub async fn graph(State(sim): State<Arc<Shared>>, req: Request) -> Response {
    let mut meta = CallMeta::graph();
    let mut response = handle(&sim, req, &mut meta).await;
    response.extensions_mut().insert(meta);
    response
}

async fn handle(sim: &Shared, req: Request, meta: &mut CallMeta) -> Response {
    let (parts, body) = req.into_parts();
    let raw_path = parts.uri.path().to_owned();
    let mut raw: Vec<&str> = raw_path.trim_start_matches('/').split('/').collect();
    // Graph tolerates one trailing slash (the seed's `GET .../jobs/`).
    if raw.len() > 1 && raw.last() == Some(&"") {
        raw.pop();
    }
    let version = match raw.first() {
        Some(v) if v.eq_ignore_ascii_case("beta") => "beta",
        Some(v) if v.eq_ignore_ascii_case("v1.0") => "v1.0",
        other => return GraphError::unknown_segment(other.copied().unwrap_or("")).into_response(),
    };
    let Some(segments) = raw[1..].iter().map(|s| percent_decode(s)).collect::<Option<Vec<String>>>() else {
        return GraphError::bad_request("The request URI contains an invalid percent-encoded segment.").into_response();
    };
    let segments = expand_alternate_keys(segments);

    let principal = match auth::authenticate(&sim.lock().tokens, &parts.headers, Instant::now()) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    meta.tenant = Some(principal.tenant.clone());
    meta.client_id = Some(principal.client_id.clone());
    let tenant = principal.tenant.clone();
    let method = parts.method.as_str().to_owned();
    let throttle_scope = format!("Tenant_Application/ReadWrite/{}/{tenant}", principal.client_id);

    let (status_rule, latency_ms, delay_response_ms, performed_504) = {
        let mut inner = sim.lock();
        let key =
            (tenant.to_ascii_lowercase(), principal.client_id.to_ascii_lowercase(), method.clone(), raw_path.clone());
        let client_request_id =
            parts.headers.get("client-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        if let Some(secs) = inner.retries.check(&key, Instant::now(), &client_request_id) {
            inner.log.event(Some(&tenant), Event::EarlyRetry);
            inner.log.event(Some(&tenant), Event::Throttled);
            meta.early_retry = true;
            meta.fault = Some("early-retry".into());
            return GraphError::throttled(None, Some(secs), &throttle_scope).into_response();
        }
        let before = inner.faults.before_routing(Some(&tenant), &method, &raw_path);
        let (status_rule, latency, delay_response) = (before.answer, before.latency_ms, before.delay_response_ms);
        if let Some(rule) = &status_rule {
            inner.log.event(Some(&tenant), Event::FaultInjected);
            if let FaultKind::Status { status, retry_after } = rule.kind {
                if status == 429 {
                    inner.log.event(Some(&tenant), Event::Throttled);
                }
                if let Some(secs) = retry_after {
                    inner.retries.issue(key, Instant::now(), secs, &client_request_id);
                }
            }
        }
        if latency > 0 || delay_response > 0 || before.performed_504 {
            inner.log.event(Some(&tenant), Event::FaultInjected);
        }
        (status_rule, latency, delay_response, before.performed_504)
    };
    if latency_ms > 0 {
        meta.fault = Some("latency".into());
        tokio::time::sleep(Duration::from_millis(latency_ms)).await;
    }
    if let Some(rule) = status_rule {
        if let FaultKind::Body { status, body } = rule.kind {
            meta.fault = Some("body".into());
            return super::bodies::response(status, body);
        }
        meta.fault = Some("status".into());
        let FaultKind::Status { status, retry_after } = rule.kind else {
            return GraphError::for_status(StatusCode::INTERNAL_SERVER_ERROR).into_response();
        };
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut err = if status == 429 {
            GraphError::throttled(rule.code.as_deref(), retry_after, &throttle_scope)
        } else {
            let mut e = GraphError::for_status(code);
            if let Some(secs) = retry_after {
                e = e.with_header(header::RETRY_AFTER, secs.to_string());
            }
            e
        };
        if let Some(c) = rule.code {
            err.code = c;
        }
        if let Some(m) = rule.message {
            err.message = m;
        }
        return err.into_response();
    }

    let body = match to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return GraphError::for_status(StatusCode::PAYLOAD_TOO_LARGE).into_response(),
    };
    let (route, mask, params) = match match_route(&segments) {
        Ok(m) => m,
        Err(segment) => return GraphError::unknown_segment(&segment).into_response(),
    };
    if mask & method_bit(&parts.method) == 0 {
        return GraphError::method_not_allowed(&allowed_methods(mask)).into_response();
    }
    let query =
        parts.uri.query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let mut ctx = Ctx {
        now: sim.clock.now(),
        principal,
        version,
        base: base_url(sim, &parts.headers),
        method: parts.method.clone(),
        path: raw_path,
        query,
        body,
        fault: None,
    };
    let result = {
        let mut inner = sim.lock();
        dispatch(&mut inner, &mut ctx, route, &params)
    };
    if let Some(f) = ctx.fault {
        meta.fault = Some(f.to_owned());
        sim.lock().log.event(Some(&tenant), Event::FaultInjected);
    }
    if delay_response_ms > 0 {
        // The state change above has happened; only the answer waits.
        meta.fault = Some("delay-response".into());
        tokio::time::sleep(Duration::from_millis(delay_response_ms)).await;
    }
    if performed_504 {
        // Carried out above, whatever its outcome; the client only hears the gateway give up.
        meta.fault = Some("performed-504".into());
        return GraphError::for_status(StatusCode::GATEWAY_TIMEOUT).into_response();
    }
    match result {
        Ok(Reply::Json(status, body)) => envelope::json_response(status, &body),
        Ok(Reply::Empty(status)) => status.into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<String> {
        expand_alternate_keys(p.split('/').map(str::to_owned).collect())
    }

    #[test]
    fn routing() {
        let (r, _, p) = match_route(&segs("servicePrincipals/sp1/synchronization/jobs/J.1.2/start")).unwrap();
        assert_eq!((r, p), (Route::JobStart, vec!["sp1".to_owned(), "J.1.2".to_owned()]));
        let (r, _, _) = match_route(&segs("ServicePrincipals/sp1/Synchronization/Jobs")).unwrap();
        assert_eq!(r, Route::Jobs);
        let (r, _, _) = match_route(&segs("servicePrincipals/sp1/synchronization/jobs/validateCredentials")).unwrap();
        assert_eq!(r, Route::JobsValidateCredentials);
        let (r, _, p) = match_route(&segs("servicePrincipals(appId='abc')/synchronization/secrets")).unwrap();
        assert_eq!((r, p), (Route::Secrets, vec!["appId='abc'".to_owned()]));
        assert_eq!(match_route(&segs("servicePrincipals/sp1/bogus")), Err("bogus".to_owned()));
        assert_eq!(match_route(&segs("users")), Err("users".to_owned()));
    }

    #[test]
    fn methods() {
        assert_eq!(allowed_methods(GET | PATCH), vec![Method::GET, Method::PATCH]);
        assert_eq!(method_bit(&Method::OPTIONS), 0);
    }
}
