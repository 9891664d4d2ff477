//! Organization, applications, service principals and template instantiation.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{Ctx, Reply, lookup_app, lookup_sp, not_here, observe_duplicates, tenant};
use crate::calls::Event;
use crate::envelope::GraphError;
use crate::faults::Deferred;
use crate::odata::{self, Filter};
use crate::server::Inner;
use crate::state::{CLOUD_SYNC_TEMPLATE_ID, NON_GALLERY_TEMPLATE_IDS, perms};

const FILTER_EQ: &[&str] = &["applicationTemplateId", "displayName", "appId"];
const FILTER_STARTS_WITH: &[&str] = &["displayName", "appId"];
const ORG_UPDATABLE: &[&str] = &[
    "marketingNotificationEmails",
    "privacyProfile",
    "securityComplianceNotificationMails",
    "securityComplianceNotificationPhones",
    "technicalNotificationMails",
];

fn selected(ctx: &Ctx) -> Option<Vec<String>> {
    ctx.option("select").map(odata::parse_select).filter(|s| !s.is_empty())
}

fn with_select(ctx: &Ctx, value: Value) -> Value {
    match selected(ctx) {
        Some(sel) => odata::apply_select(&value, &sel),
        None => value,
    }
}

fn entity(ctx: &Ctx, set: &str, value: Value) -> Value {
    let mut v = with_select(ctx, value);
    let fragment = match selected(ctx) {
        Some(sel) => format!("{set}({})/$entity", sel.join(",")),
        None => format!("{set}/$entity"),
    };
    if let Value::Object(map) = &mut v {
        map.insert("@odata.context".into(), json!(ctx.context(&fragment)));
    }
    v
}

pub fn organization_list(inner: &mut Inner, ctx: &mut Ctx) -> Result<Reply, GraphError> {
    ctx.require(perms::ORG_READ)?;
    let org = tenant(inner, ctx)?.organization_json(ctx.now);
    let fragment = match selected(ctx) {
        Some(sel) => format!("organization({})", sel.join(",")),
        None => "organization".to_owned(),
    };
    let body = json!({"@odata.context": ctx.context(&fragment), "value": [with_select(ctx, org)]});
    Ok(Reply::Json(StatusCode::OK, body))
}

fn check_org_id(inner: &mut Inner, ctx: &Ctx, id: &str) -> Result<(), GraphError> {
    if id.eq_ignore_ascii_case(ctx.tenant_id()) { Ok(()) } else { Err(not_here(inner, ctx, id)) }
}

pub fn organization_get(inner: &mut Inner, ctx: &mut Ctx, id: &str) -> Result<Reply, GraphError> {
    ctx.require(perms::ORG_READ)?;
    check_org_id(inner, ctx, id)?;
    let org = tenant(inner, ctx)?.organization_json(ctx.now);
    Ok(Reply::Json(StatusCode::OK, entity(ctx, "organization", org)))
}

pub fn organization_patch(inner: &mut Inner, ctx: &mut Ctx, id: &str) -> Result<Reply, GraphError> {
    ctx.require(perms::ORG_WRITE)?;
    check_org_id(inner, ctx, id)?;
    let body = ctx
        .json_body(GraphError::bad_request)?
        .ok_or_else(|| GraphError::bad_request("Empty Payload. JSON content expected."))?;
    let mut sync = None;
    let mut extra = Vec::new();
    for (k, v) in &body {
        if k.starts_with("@odata.") {
            continue;
        }
        if k == "onPremisesSyncEnabled" {
            match v {
                Value::Bool(b) => sync = Some(*b),
                _ => {
                    return Err(GraphError::bad_request(
                        "Invalid value specified for property 'onPremisesSyncEnabled' of resource 'Organization'.",
                    ));
                }
            }
        } else if ORG_UPDATABLE.contains(&k.as_str()) {
            extra.push((k.clone(), v.clone()));
        } else {
            return Err(GraphError::bad_request(format!(
                "Property '{k}' is read-only or does not exist on type 'microsoft.graph.organization'."
            )));
        }
    }
    let t = tenant(inner, ctx)?;
    if let Some(b) = sync {
        t.sync_enabled = Some(b);
    }
    for (k, v) in extra {
        t.org_extra.insert(k, v);
    }
    inner.log.event(Some(ctx.tenant_id()), Event::OrganizationPatch);
    Ok(Reply::Empty(StatusCode::NO_CONTENT))
}

pub fn instantiate(inner: &mut Inner, ctx: &mut Ctx, template_id: &str) -> Result<Reply, GraphError> {
    ctx.require(perms::APP_WRITE)?;
    let known = template_id.eq_ignore_ascii_case(CLOUD_SYNC_TEMPLATE_ID)
        || NON_GALLERY_TEMPLATE_IDS.iter().any(|t| t.eq_ignore_ascii_case(template_id));
    if !known {
        return Err(GraphError::not_found(template_id));
    }
    let body = ctx.json_body(GraphError::bad_request)?.unwrap_or_default();
    let display_name = match body.get("displayName") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => {
            return Err(GraphError::bad_request(
                "Invalid value specified for property 'displayName' of resource 'Application'.",
            ));
        }
    };
    let smr = body.get("serviceManagementReference").and_then(Value::as_str).map(str::to_owned);
    let now = ctx.now;
    let t = tenant(inner, ctx)?;
    let (app_id, sp_id) = t.instantiate(template_id, &display_name, smr, now);
    let app = t.app(&app_id).map(|a| a.to_json(t)).unwrap_or(Value::Null);
    let sp = t.sp(&sp_id).map(|s| s.to_json()).unwrap_or(Value::Null);
    inner.log.event(Some(ctx.tenant_id()), Event::Instantiate);
    observe_duplicates(inner, &ctx.principal.tenant);
    let tenant_id = ctx.principal.tenant.clone();
    if inner
        .faults
        .deferred(Deferred::Instantiate404, Some(&tenant_id), ctx.method.as_str(), &ctx.path, |_| true)
        .is_some()
    {
        ctx.fault = Some("instantiate-404-after-create");
        // Observed text (manicminer/hamilton#283): the objects exist, the answer says otherwise.
        return Err(GraphError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "Graph call failed with httpCode=NotFound, errorCode=, errorMessage=, reason=Not Found.",
        ));
    }
    let body = json!({
        "@odata.context": ctx.context("microsoft.graph.applicationServicePrincipal"),
        "application": app,
        "servicePrincipal": sp,
    });
    Ok(Reply::Json(StatusCode::CREATED, body))
}

/// Parses `$filter`, `$top` and `$skiptoken`; other system query options are refused rather than
/// silently ignored, so a client never mistakes an unfiltered page for a filtered one.
fn list_options(ctx: &Ctx, resource: &str) -> Result<(Option<Filter>, usize, usize), GraphError> {
    for key in ctx.query.keys() {
        let name = key.trim_start_matches('$').to_ascii_lowercase();
        if !["filter", "select", "top", "skiptoken"].contains(&name.as_str()) && key.starts_with('$') {
            return Err(GraphError::unsupported_query(format!("The query option '{key}' is not supported.")));
        }
    }
    let filter = match ctx.option("filter") {
        Some(f) => Some(
            odata::parse_filter(f, resource, FILTER_EQ, FILTER_STARTS_WITH)
                .map_err(|e| GraphError::unsupported_query(e.0))?,
        ),
        None => None,
    };
    let top = match ctx.option("top") {
        Some(t) => odata::parse_top(t).map_err(GraphError::bad_request)?,
        None => 100,
    };
    let skip = match ctx.option("skiptoken") {
        Some(s) => s.parse::<usize>().map_err(|_| GraphError::bad_request("Invalid $skiptoken."))?,
        None => 0,
    };
    Ok((filter, top, skip))
}

/// Filters, pages and wraps a collection; `created` lets list-lag hide fresh objects.
fn list_reply(
    inner: &mut Inner,
    ctx: &mut Ctx,
    set: &str,
    resource: &str,
    items: Vec<(Value, jiff::Timestamp)>,
) -> Result<Reply, GraphError> {
    let (filter, top, skip) = list_options(ctx, resource)?;
    let lag = inner.faults.longest_window(Deferred::ListLag, Some(ctx.tenant_id()), ctx.method.as_str(), &ctx.path);
    let now = ctx.now;
    let mut hidden = false;
    let visible: Vec<Value> = items
        .into_iter()
        .filter(|(_, created)| match lag {
            Some((_, secs)) if crate::clock::plus_secs_f64(*created, secs) > now => {
                hidden = true;
                false
            }
            _ => true,
        })
        .map(|(v, _)| v)
        .filter(|v| filter.as_ref().is_none_or(|f| odata::matches(f, v)))
        .collect();
    if hidden && let Some((id, _)) = lag {
        inner.faults.consume_id(id);
        ctx.fault = Some("list-lag");
    }
    let total = visible.len();
    let page: Vec<Value> = visible.into_iter().skip(skip).take(top).map(|v| with_select(ctx, v)).collect();
    let fragment = match selected(ctx) {
        Some(sel) => format!("{set}({})", sel.join(",")),
        None => set.to_owned(),
    };
    let mut body = json!({"@odata.context": ctx.context(&fragment), "value": page});
    if skip + top < total {
        let mut query: Vec<(String, String)> = ctx
            .query
            .iter()
            .filter(|(k, _)| k.trim_start_matches('$') != "skiptoken")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        query.sort();
        query.push(("$skiptoken".into(), (skip + top).to_string()));
        let qs = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish();
        body["@odata.nextLink"] = json!(format!("{}{}?{qs}", ctx.base, ctx.path));
    }
    Ok(Reply::Json(StatusCode::OK, body))
}

pub fn sp_list(inner: &mut Inner, ctx: &mut Ctx) -> Result<Reply, GraphError> {
    ctx.require(perms::APP_READ)?;
    let items = tenant(inner, ctx)?.sps_in_order().into_iter().map(|sp| (sp.to_json(), sp.created)).collect();
    list_reply(inner, ctx, "servicePrincipals", "ServicePrincipal", items)
}

pub fn app_list(inner: &mut Inner, ctx: &mut Ctx) -> Result<Reply, GraphError> {
    ctx.require(perms::APP_READ)?;
    let t = tenant(inner, ctx)?;
    let items = t.apps_in_order().into_iter().map(|a| (a.to_json(t), a.created)).collect();
    list_reply(inner, ctx, "applications", "Application", items)
}

pub fn sp_get(inner: &mut Inner, ctx: &mut Ctx, key: &str) -> Result<Reply, GraphError> {
    ctx.require(perms::APP_READ)?;
    let id = lookup_sp(inner, ctx, key)?;
    let sp = tenant(inner, ctx)?.sp(&id).map(|s| s.to_json()).ok_or_else(|| GraphError::not_found(key))?;
    Ok(Reply::Json(StatusCode::OK, entity(ctx, "servicePrincipals", sp)))
}

pub fn app_get(inner: &mut Inner, ctx: &mut Ctx, key: &str) -> Result<Reply, GraphError> {
    ctx.require(perms::APP_READ)?;
    let id = lookup_app(inner, ctx, key)?;
    let t = tenant(inner, ctx)?;
    let app = t.app(&id).map(|a| a.to_json(t)).ok_or_else(|| GraphError::not_found(key))?;
    Ok(Reply::Json(StatusCode::OK, entity(ctx, "applications", app)))
}

/// `PATCH /servicePrincipals/{id}` (204). Only `tags` is modelled: a string collection that the
/// PATCH replaces whole, as Graph does for collections. Other properties are refused, so a client
/// never believes the simulator stored something it ignored.
pub fn sp_patch(inner: &mut Inner, ctx: &mut Ctx, key: &str) -> Result<Reply, GraphError> {
    ctx.require(perms::APP_WRITE)?;
    let id = lookup_sp(inner, ctx, key)?;
    let body = ctx
        .json_body(GraphError::bad_request)?
        .ok_or_else(|| GraphError::bad_request("Empty Payload. JSON content expected."))?;
    let mut tags = None;
    for (k, v) in &body {
        if k.starts_with("@odata.") {
            continue;
        }
        if k != "tags" {
            return Err(GraphError::bad_request(format!(
                "Property '{k}' is read-only or not supported by the simulator on type 'microsoft.graph.servicePrincipal'."
            )));
        }
        let invalid =
            || GraphError::bad_request("Invalid value specified for property 'tags' of resource 'ServicePrincipal'.");
        let list = v.as_array().ok_or_else(invalid)?;
        let strings: Option<Vec<String>> = list.iter().map(|t| t.as_str().map(str::to_owned)).collect();
        tags = Some(strings.ok_or_else(invalid)?);
    }
    let sp = tenant(inner, ctx)?.sp_mut(&id).ok_or_else(|| GraphError::not_found(key))?;
    if let Some(t) = tags {
        sp.tags = t;
    }
    inner.log.event(Some(ctx.tenant_id()), Event::ServicePrincipalPatch);
    Ok(Reply::Empty(StatusCode::NO_CONTENT))
}

/// Deleting a service principal deletes its jobs and secrets with it.
pub fn sp_delete(inner: &mut Inner, ctx: &mut Ctx, key: &str) -> Result<Reply, GraphError> {
    ctx.require(perms::APP_WRITE)?;
    let id = lookup_sp(inner, ctx, key)?;
    tenant(inner, ctx)?.delete_sp(&id);
    inner.log.event(Some(ctx.tenant_id()), Event::Delete);
    Ok(Reply::Empty(StatusCode::NO_CONTENT))
}

pub fn app_delete(inner: &mut Inner, ctx: &mut Ctx, key: &str) -> Result<Reply, GraphError> {
    ctx.require(perms::APP_WRITE)?;
    let id = lookup_app(inner, ctx, key)?;
    tenant(inner, ctx)?.delete_application(&id);
    inner.log.event(Some(ctx.tenant_id()), Event::Delete);
    Ok(Reply::Empty(StatusCode::NO_CONTENT))
}
