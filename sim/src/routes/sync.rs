//! `/servicePrincipals/{id}/synchronization/*`: templates, jobs and secrets (reference §2, §3).

use std::time::{Duration, Instant};

use axum::http::{StatusCode, header};
use serde_json::{Map, Value, json};

use super::{Ctx, Reply, lookup_app, lookup_sp, observe_duplicates, tenant};
use crate::calls::Event;
use crate::envelope::GraphError;
use crate::ids;
use crate::jobs::{Job, ResetScope, StartOutcome, cloud_sync_settings};
use crate::server::Inner;
use crate::state::{ServicePrincipal, perms};
use crate::templates;

/// The `synchronizationSecret` enum (reference §3.3).
pub const SECRET_KEYS: &[&str] = &[
    "None",
    "UserName",
    "Password",
    "SecretToken",
    "AppKey",
    "BaseAddress",
    "ClientIdentifier",
    "ClientSecret",
    "SingleSignOnType",
    "Sandbox",
    "Url",
    "Domain",
    "ConsumerKey",
    "ConsumerSecret",
    "TokenKey",
    "TokenExpiration",
    "Oauth2AccessToken",
    "Oauth2AccessTokenCreationTime",
    "Oauth2RefreshToken",
    "SyncAll",
    "InstanceName",
    "Oauth2ClientId",
    "Oauth2ClientSecret",
    "CompanyId",
    "UpdateKeyOnSoftDelete",
    "SynchronizationSchedule",
    "SystemOfRecord",
    "SandboxName",
    "EnforceDomain",
    "SyncNotificationSettings",
    "SkipOutOfScopeDeletions",
    "Oauth2AuthorizationCode",
    "Oauth2RedirectUri",
    "ApplicationTemplateIdentifier",
    "Oauth2TokenExchangeUri",
    "Oauth2AuthorizationUri",
    "AuthenticationType",
    "Server",
    "PerformInboundEntitlementGrants",
    "HardDeletesEnabled",
    "SyncAgentCompatibilityKey",
    "SyncAgentADContainer",
    "ValidateDomain",
    "TestReferences",
    "ConnectionString",
];

/// Secrets whose value is serialized JSON (double-encoded on the wire), with the code the
/// service wraps when the value is not a JSON object. Only `InvalidNotificationSettings` is
/// documented (reference §3.1); the other two codes are the simulator's.
const JSON_SECRETS: &[(&str, &str)] = &[
    ("Domain", "InvalidDomainSettings"),
    ("AppKey", "InvalidAppKey"),
    ("SyncNotificationSettings", "InvalidNotificationSettings"),
];

const ON_DEMAND_LIMIT: usize = 5;
const ON_DEMAND_WINDOW: Duration = Duration::from_secs(10);

pub(super) fn sp<'a>(inner: &'a mut Inner, ctx: &Ctx, id: &str) -> Result<&'a mut ServicePrincipal, GraphError> {
    tenant(inner, ctx)?.sp_mut(id).ok_or_else(|| GraphError::not_found(id))
}

/// Permission first (a missing one is 401 here), then the service principal.
pub(super) fn sync_sp(inner: &mut Inner, ctx: &mut Ctx, key: &str, write: bool) -> Result<String, GraphError> {
    ctx.require_sync(if write { perms::SYNC_WRITE } else { perms::SYNC_READ })?;
    lookup_sp(inner, ctx, key)
}

pub(super) fn job_index(sp: &ServicePrincipal, job_id: &str) -> Result<usize, GraphError> {
    sp.job_index(job_id).ok_or_else(|| GraphError::not_found(job_id))
}

fn templates_json(ctx: &Ctx, sp: &ServicePrincipal, fragment: String) -> Value {
    let value = if sp.has_sync_templates() { templates::cloud_sync_templates() } else { Vec::new() };
    json!({"@odata.context": ctx.context(&fragment), "value": value})
}

pub fn templates(inner: &mut Inner, ctx: &mut Ctx, key: &str) -> Result<Reply, GraphError> {
    let id = sync_sp(inner, ctx, key, false)?;
    let s = sp(inner, ctx, &id)?;
    let body = templates_json(ctx, s, format!("servicePrincipals('{id}')/synchronization/templates"));
    Ok(Reply::Json(StatusCode::OK, body))
}

pub fn app_templates(inner: &mut Inner, ctx: &mut Ctx, key: &str) -> Result<Reply, GraphError> {
    ctx.require_sync(perms::SYNC_READ)?;
    let app_id = lookup_app(inner, ctx, key)?;
    let t = tenant(inner, ctx)?;
    let fragment = format!("applications('{app_id}')/synchronization/templates");
    let body = match t.service_principals.values().find(|s| s.application_id.as_deref() == Some(app_id.as_str())) {
        Some(s) => templates_json(ctx, s, fragment),
        None => json!({"@odata.context": ctx.context(&fragment), "value": []}),
    };
    Ok(Reply::Json(StatusCode::OK, body))
}

fn job_json(ctx: &Ctx, s: &mut ServicePrincipal, index: usize) -> Value {
    let settings = cloud_sync_settings(s.domain().as_deref());
    s.jobs.get_mut(index).map(|j| j.snapshot(ctx.now, settings)).unwrap_or(Value::Null)
}

pub fn job_list(inner: &mut Inner, ctx: &mut Ctx, key: &str) -> Result<Reply, GraphError> {
    let id = sync_sp(inner, ctx, key, false)?;
    let s = sp(inner, ctx, &id)?;
    let value: Vec<Value> = (0..s.jobs.len()).map(|i| job_json(ctx, s, i)).collect();
    let body = json!({"@odata.context": ctx.context(&format!("servicePrincipals('{id}')/synchronization/jobs")), "value": value});
    Ok(Reply::Json(StatusCode::OK, body))
}

/// A real-looking job id: `<template>.<32 hex>.<tenant guid>`.
fn new_job_id(template: &str, tenant_id: &str) -> String {
    let tail = if uuid::Uuid::parse_str(tenant_id).is_ok() { tenant_id.to_ascii_lowercase() } else { ids::guid() };
    format!("{template}.{}.{tail}", ids::hex32())
}

pub fn job_create(inner: &mut Inner, ctx: &mut Ctx, key: &str) -> Result<Reply, GraphError> {
    let id = sync_sp(inner, ctx, key, true)?;
    let body = ctx.json_body(GraphError::sync_bad_request)?.unwrap_or_default();
    let template = match body.get("templateId") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        _ => return Err(GraphError::sync_bad_request("The templateId property is required.")),
    };
    let tenant_id = ctx.principal.tenant.clone();
    let s = sp(inner, ctx, &id)?;
    if !(s.has_sync_templates() && templates::is_cloud_sync_template(&template)) {
        return Err(GraphError::sync_bad_request(format!(
            "The template '{template}' is not a synchronization template of service principal '{id}'."
        )));
    }
    let job_id = new_job_id(&template, &tenant_id);
    let mut job = Job::new(job_id, template, ctx.now);
    job.set_delete_threshold(ctx.now, crate::deletes::threshold_of(&s.secrets));
    s.jobs.push(job);
    let index = s.jobs.len() - 1;
    let mut job = job_json(ctx, s, index);
    job["@odata.context"] = json!(ctx.context(&format!("servicePrincipals('{id}')/synchronization/jobs/$entity")));
    inner.log.event(Some(&tenant_id), Event::JobCreated);
    observe_duplicates(inner, &tenant_id);
    Ok(Reply::Json(StatusCode::CREATED, job))
}

pub fn job_get(inner: &mut Inner, ctx: &mut Ctx, key: &str, job_id: &str) -> Result<Reply, GraphError> {
    let id = sync_sp(inner, ctx, key, false)?;
    let s = sp(inner, ctx, &id)?;
    let index = job_index(s, job_id)?;
    let mut job = job_json(ctx, s, index);
    job["@odata.context"] = json!(ctx.context(&format!("servicePrincipals('{id}')/synchronization/jobs/$entity")));
    Ok(Reply::Json(StatusCode::OK, job))
}

pub fn job_delete(inner: &mut Inner, ctx: &mut Ctx, key: &str, job_id: &str) -> Result<Reply, GraphError> {
    let id = sync_sp(inner, ctx, key, true)?;
    let s = sp(inner, ctx, &id)?;
    let index = job_index(s, job_id)?;
    s.jobs.remove(index);
    s.schemas.remove(job_id);
    inner.log.event(Some(ctx.tenant_id()), Event::Delete);
    Ok(Reply::Empty(StatusCode::NO_CONTENT))
}

fn with_job<T>(
    inner: &mut Inner,
    ctx: &mut Ctx,
    key: &str,
    job_id: &str,
    f: impl FnOnce(&mut Job, jiff::Timestamp) -> T,
) -> Result<T, GraphError> {
    let id = sync_sp(inner, ctx, key, true)?;
    let now = ctx.now;
    let s = sp(inner, ctx, &id)?;
    let index = job_index(s, job_id)?;
    let job = s.jobs.get_mut(index).ok_or_else(|| GraphError::not_found(job_id))?;
    Ok(f(job, now))
}

pub fn job_start(inner: &mut Inner, ctx: &mut Ctx, key: &str, job_id: &str) -> Result<Reply, GraphError> {
    let outcome = with_job(inner, ctx, key, job_id, |j, now| j.start(now))?;
    let tenant_id = ctx.principal.tenant.clone();
    inner.log.event(Some(&tenant_id), Event::JobStart);
    if outcome == StartOutcome::Redundant {
        inner.log.event(Some(&tenant_id), Event::RedundantStart);
    }
    Ok(Reply::Empty(StatusCode::NO_CONTENT))
}

pub fn job_pause(inner: &mut Inner, ctx: &mut Ctx, key: &str, job_id: &str) -> Result<Reply, GraphError> {
    with_job(inner, ctx, key, job_id, |j, now| j.pause(now))?;
    inner.log.event(Some(ctx.tenant_id()), Event::JobPause);
    Ok(Reply::Empty(StatusCode::NO_CONTENT))
}

/// `{"criteria":{"resetScope":"Watermark, Escrows, QuarantineState"}}`; empty means the portal default.
fn reset_scope(body: Option<Map<String, Value>>) -> Result<ResetScope, GraphError> {
    let criteria = match body.as_ref().and_then(|b| b.get("criteria")) {
        None | Some(Value::Null) => return Ok(ResetScope::portal_default()),
        Some(Value::Object(c)) => c,
        Some(_) => return Err(GraphError::sync_bad_request("The criteria property must be an object.")),
    };
    match criteria.get("resetScope") {
        None | Some(Value::Null) => Ok(ResetScope::portal_default()),
        Some(Value::String(s)) => ResetScope::parse(s).map_err(GraphError::sync_bad_request),
        Some(_) => Err(GraphError::sync_bad_request("The resetScope property must be a string.")),
    }
}

pub fn job_restart(inner: &mut Inner, ctx: &mut Ctx, key: &str, job_id: &str) -> Result<Reply, GraphError> {
    let scope = ctx.json_body(GraphError::sync_bad_request).and_then(reset_scope);
    // The job is resolved first so that a bad body on a missing job still answers 404.
    with_job(inner, ctx, key, job_id, |j, now| scope.map(|s| j.restart(now, s)))??;
    inner.log.event(Some(ctx.tenant_id()), Event::JobRestart);
    Ok(Reply::Empty(StatusCode::NO_CONTENT))
}

pub fn validate_credentials(
    inner: &mut Inner,
    ctx: &mut Ctx,
    key: &str,
    job_id: Option<&str>,
) -> Result<Reply, GraphError> {
    match job_id {
        Some(j) => with_job(inner, ctx, key, j, |_, _| ())?,
        None => {
            sync_sp(inner, ctx, key, true)?;
        }
    }
    if let Some(body) = ctx.json_body(GraphError::sync_bad_request)?
        && let Some(creds) = body.get("credentials")
        && !creds.is_array()
        && !creds.is_null()
    {
        return Err(GraphError::sync_bad_request("The credentials property must be an array."));
    }
    Ok(Reply::Empty(StatusCode::NO_CONTENT))
}

pub fn provision_on_demand(inner: &mut Inner, ctx: &mut Ctx, key: &str, job_id: &str) -> Result<Reply, GraphError> {
    let template = with_job(inner, ctx, key, job_id, |j, _| j.template_id.clone())?;
    let id = sync_sp(inner, ctx, key, true)?;
    let body = ctx.json_body(GraphError::sync_bad_request)?.unwrap_or_default();
    let parameter = body.get("parameters").and_then(Value::as_array).and_then(|p| p.first()).ok_or_else(|| {
        GraphError::sync_bad_request("parameters must contain one synchronizationJobApplicationParameters.")
    })?;
    let rule_id = parameter.get("ruleId").and_then(Value::as_str).unwrap_or_default().to_string();
    let subject = parameter
        .get("subjects")
        .and_then(Value::as_array)
        .and_then(|s| s.first())
        .cloned()
        .filter(|s| {
            s.get("objectId").and_then(Value::as_str).is_some_and(|o| !o.is_empty())
                && s.get("objectTypeName").and_then(Value::as_str).is_some()
        })
        .ok_or_else(|| {
            GraphError::sync_bad_request(
                "parameters[0].subjects must contain a subject with objectId and objectTypeName.",
            )
        })?;
    // The rule id comes from this job's schema; clients must read it, not invent it.
    let schema = {
        let s = sp(inner, ctx, &id)?;
        s.schemas.get(job_id).cloned().unwrap_or_else(|| templates::schema(&template))
    };
    let rules: Vec<&str> = schema["synchronizationRules"]
        .as_array()
        .map(|r| r.iter().filter_map(|r| r.get("id").and_then(Value::as_str)).collect())
        .unwrap_or_default();
    if !rules.contains(&rule_id.as_str()) {
        return Err(GraphError::sync_bad_request(format!(
            "The ruleId '{rule_id}' does not identify a synchronization rule of this job's schema."
        )));
    }
    let object_id = subject["objectId"].as_str().unwrap_or_default().to_string();
    let object_type = subject["objectTypeName"].as_str().unwrap_or_default().to_string();
    if !crate::ondemand::OBJECT_TYPES.contains(&object_type.as_str()) {
        return Err(GraphError::sync_bad_request(format!(
            "objectTypeName '{object_type}' is not one of {}.",
            crate::ondemand::OBJECT_TYPES.join(", ")
        )));
    }
    // The service allows 5 requests per 10 seconds; this is a protocol limit, so real time.
    let now = Instant::now();
    let calls = inner.on_demand.entry(format!("{}/{job_id}", ctx.tenant_id())).or_default();
    while calls.front().is_some_and(|t| now.duration_since(*t) >= ON_DEMAND_WINDOW) {
        calls.pop_front();
    }
    if calls.len() >= ON_DEMAND_LIMIT {
        let wait =
            calls.front().map(|t| ON_DEMAND_WINDOW.saturating_sub(now.duration_since(*t)).as_secs() + 1).unwrap_or(10);
        return Err(GraphError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many provisionOnDemand requests.",
        )
        .with_header(header::RETRY_AFTER, wait.to_string()));
    }
    calls.push_back(now);
    let object_key = format!("{}/{job_id}/{}", ctx.tenant_id(), object_id.to_lowercase());
    let script = inner.on_demand_script.get(&object_key).cloned();
    let seen = !inner.on_demand_done.insert(object_key);
    let (key_json, value_json) = crate::ondemand::answer(&object_id, &object_type, seen, script.as_ref());
    let tenant_id = ctx.principal.tenant.clone();
    inner.log.event(Some(&tenant_id), Event::ProvisionOnDemand);
    let body = json!({"@odata.context": crate::ondemand::CONTEXT, "key": key_json, "value": value_json});
    Ok(Reply::Json(StatusCode::OK, body))
}

pub fn job_schema(inner: &mut Inner, ctx: &mut Ctx, key: &str, job_id: &str) -> Result<Reply, GraphError> {
    let write = ctx.method != axum::http::Method::GET;
    let id = sync_sp(inner, ctx, key, write)?;
    let body = if write { ctx.json_body(GraphError::sync_bad_request)? } else { None };
    let s = sp(inner, ctx, &id)?;
    let index = job_index(s, job_id)?;
    let template = s.jobs.get(index).map(|j| j.template_id.clone()).unwrap_or_default();
    match ctx.method {
        axum::http::Method::GET => {
            let mut schema = s.schemas.get(job_id).cloned().unwrap_or_else(|| templates::schema(&template));
            schema["@odata.context"] = json!(
                ctx.context(&format!("servicePrincipals('{id}')/synchronization/jobs('{job_id}')/schema/$entity"))
            );
            Ok(Reply::Json(StatusCode::OK, schema))
        }
        axum::http::Method::PUT => {
            let mut body =
                body.ok_or_else(|| GraphError::sync_bad_request("A synchronizationSchema body is required."))?;
            crate::schema::validate(&body).map_err(GraphError::sync_bad_request)?;
            body.remove("@odata.context");
            s.schemas.insert(job_id.to_owned(), Value::Object(body));
            inner.log.event(Some(ctx.tenant_id()), Event::SchemaPut);
            Ok(Reply::Empty(StatusCode::NO_CONTENT))
        }
        _ => {
            s.schemas.remove(job_id);
            Ok(Reply::Empty(StatusCode::NO_CONTENT))
        }
    }
}

pub fn secrets_get(inner: &mut Inner, ctx: &mut Ctx, key: &str) -> Result<Reply, GraphError> {
    let id = sync_sp(inner, ctx, key, false)?;
    let s = sp(inner, ctx, &id)?;
    // Values are write-only: the service masks every one as "*".
    let value: Vec<Value> = s.secrets.iter().map(|(k, _)| json!({"key": k, "value": "*"})).collect();
    let body = json!({
        "@odata.context": ctx.context(&format!("servicePrincipals('{id}')/synchronization/secrets")),
        "value": value,
    });
    Ok(Reply::Json(StatusCode::OK, body))
}

/// Validates a PUT body into the new, complete secret set.
pub fn parse_secrets(body: Option<Map<String, Value>>) -> Result<Vec<(String, String)>, GraphError> {
    let items = match body.as_ref().and_then(|b| b.get("value")) {
        Some(Value::Array(items)) => items,
        _ => return Err(GraphError::sync_bad_request("The request body must contain a 'value' array of secrets.")),
    };
    let mut out: Vec<(String, String)> = Vec::with_capacity(items.len());
    for item in items {
        let key = item.get("key").and_then(Value::as_str).unwrap_or("");
        if !SECRET_KEYS.contains(&key) {
            return Err(GraphError::sync_bad_request(format!(
                "The value '{key}' is not a valid synchronizationSecret key."
            )));
        }
        let value = match item.get("value") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(_) => {
                return Err(GraphError::sync_bad_request(format!(
                    "The value of secret '{key}' must be a string (JSON-typed secrets are serialized JSON)."
                )));
            }
        };
        if let Some((_, code)) = JSON_SECRETS.iter().find(|(k, _)| *k == key)
            && !matches!(serde_json::from_str::<Value>(&value), Ok(Value::Object(_)))
        {
            // The sync service reports this as UnknownError with a JSON document in `message`.
            let inner = json!({"error": {"code": code, "message": format!("The value of the {key} secret is not a valid JSON object.")}});
            return Err(GraphError::new(StatusCode::BAD_REQUEST, "UnknownError", inner.to_string()));
        }
        if key == "SyncNotificationSettings"
            && let Err(why) = crate::deletes::parse_notification_settings(&value)
        {
            let inner = json!({"error": {"code": "InvalidNotificationSettings", "message": format!("The SyncNotificationSettings secret is invalid: {why}")}});
            return Err(GraphError::new(StatusCode::BAD_REQUEST, "UnknownError", inner.to_string()));
        }
        out.retain(|(k, _)| k != key);
        out.push((key.to_owned(), value));
    }
    Ok(out)
}

pub fn secrets_put(inner: &mut Inner, ctx: &mut Ctx, key: &str) -> Result<Reply, GraphError> {
    let id = sync_sp(inner, ctx, key, true)?;
    let secrets = parse_secrets(ctx.json_body(GraphError::sync_bad_request)?)?;
    let now = ctx.now;
    let s = sp(inner, ctx, &id)?;
    // Fold executions so far under the old settings before the domain may change.
    let threshold = crate::deletes::threshold_of(&secrets);
    for j in &mut s.jobs {
        j.set_delete_threshold(now, threshold);
    }
    s.secrets = secrets;
    inner.log.event(Some(ctx.tenant_id()), Event::SecretsPut);
    Ok(Reply::Empty(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Option<Map<String, Value>> {
        match v {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    #[test]
    fn secrets_validation() {
        let ok = parse_secrets(body(json!({"value": [
            {"key": "Domain", "value": "{\"domain\":\"contoso.com\"}"},
            {"key": "AppKey", "value": "{\"appKeyScenario\":\"AD2AADPasswordHash\"}"},
            {"key": "SkipOutOfScopeDeletions", "value": "true"},
        ]})))
        .unwrap();
        assert_eq!(ok.len(), 3);
        let err = parse_secrets(body(json!({"value": [
            {"key": "SyncNotificationSettings", "value": "{\"DeleteThresholdValue\":\"fifty\"}"},
        ]})))
        .unwrap_err();
        assert!(
            serde_json::from_str::<Value>(&err.message).unwrap()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("DeleteThresholdValue")
        );
        let err =
            parse_secrets(body(json!({"value": [{"key": "SyncNotificationSettings", "value": ""}]}))).unwrap_err();
        assert_eq!(err.code, "UnknownError");
        let wrapped: Value = serde_json::from_str(&err.message).unwrap();
        assert_eq!(wrapped["error"]["code"], "InvalidNotificationSettings");
        // The seed's single-encoded object is not a string.
        let err = parse_secrets(body(json!({"value": [{"key": "Domain", "value": {"domain": "x"}}]}))).unwrap_err();
        assert_eq!(err.code, "BadRequest");
        assert!(parse_secrets(body(json!({"value": [{"key": "Bogus", "value": "x"}]}))).is_err());
        assert!(parse_secrets(body(json!({"credentials": []}))).is_err());
        assert!(parse_secrets(None).is_err());
        assert_eq!(parse_secrets(body(json!({"value": []}))).unwrap(), vec![]);
    }

    #[test]
    fn restart_bodies() {
        assert_eq!(reset_scope(None).unwrap(), ResetScope::portal_default());
        assert_eq!(reset_scope(body(json!({}))).unwrap(), ResetScope::portal_default());
        assert_eq!(reset_scope(body(json!({"criteria": {}}))).unwrap(), ResetScope::portal_default());
        assert!(reset_scope(body(json!({"criteria": {"resetScope": "Full"}}))).unwrap().clears_quarantine());
        assert!(reset_scope(body(json!({"criteria": {"resetScope": "Nope"}}))).is_err());
        assert!(reset_scope(body(json!({"criteria": "Full"}))).is_err());
    }

    #[test]
    fn job_ids() {
        let id = new_job_id("AD2AADProvisioning", "11111111-2222-3333-4444-555555555555");
        let parts: Vec<&str> = id.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1].len(), 32);
        assert_eq!(parts[2], "11111111-2222-3333-4444-555555555555");
        assert_eq!(new_job_id("X", "not-a-guid").split('.').count(), 3);
    }
}
