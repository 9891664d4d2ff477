//! `GET /auditLogs/provisioning` (reference part 2 §6): the provisioning log entries the tenant's
//! simulated runs left, with the `$filter` / `$orderby` / `$top` / `$skiptoken` subset.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{Ctx, Reply, tenant};
use crate::envelope::GraphError;
use crate::provisioning::{self, Candidate};
use crate::server::Inner;
use crate::state::perms;

const SKIPTOKEN_PREFIX: &str = "simoffset-";

/// Both roles are needed; either alone is refused like Graph does (403, not the sync service's 401).
fn require(ctx: &Ctx) -> Result<(), GraphError> {
    if perms::PROVISIONING_LOGS.iter().all(|p| ctx.principal.has_any(&[p])) {
        Ok(())
    } else {
        Err(GraphError::forbidden())
    }
}

fn offset(token: Option<&str>) -> Result<usize, GraphError> {
    match token {
        None => Ok(0),
        Some(t) => t
            .strip_prefix(SKIPTOKEN_PREFIX)
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| GraphError::bad_request("The $skiptoken is not valid.")),
    }
}

pub fn list(inner: &mut Inner, ctx: &mut Ctx) -> Result<Reply, GraphError> {
    require(ctx)?;
    let bad = |m: String| GraphError::bad_request(m);
    let clauses = match ctx.option("filter") {
        Some(f) => provisioning::parse_filter(f).map_err(bad)?,
        None => Vec::new(),
    };
    let newest_first = provisioning::parse_orderby(ctx.option("orderby")).map_err(bad)?;
    let top = provisioning::parse_top(ctx.option("top")).map_err(bad)?;
    let skip = offset(ctx.option("skiptoken"))?;
    let now = ctx.now;
    let t = tenant(inner, ctx)?;
    // Runs complete lazily: fold them in so their entries exist.
    for sp in t.service_principals.values_mut() {
        for job in &mut sp.jobs {
            job.advance(now);
        }
    }
    let mut found: Vec<(Candidate, &str, String)> = Vec::new();
    for sp in t.service_principals.values() {
        let domain = sp.domain().unwrap_or_else(|| "contoso.com".to_owned());
        for job in &sp.jobs {
            for entry in job.log() {
                let c = Candidate { entry, sp_id: &sp.id, job_id: &job.id };
                if provisioning::matches(&clauses, &c) {
                    found.push((c, &sp.display_name, domain.clone()));
                }
            }
        }
    }
    found.sort_by_key(|(c, _, _)| provisioning::sort_key(c));
    if newest_first {
        found.reverse();
    }
    let value: Vec<Value> = found
        .iter()
        .skip(skip)
        .take(top)
        .map(|(c, name, domain)| provisioning::render(c.entry, c.job_id, c.sp_id, name, domain))
        .collect();
    let mut body = json!({"@odata.context": ctx.context("auditLogs/provisioning"), "value": value});
    if skip + top < found.len() {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &ctx.query {
            if k != "$skiptoken" && k != "skiptoken" {
                q.append_pair(k, v);
            }
        }
        q.append_pair("$skiptoken", &format!("{SKIPTOKEN_PREFIX}{}", skip + top));
        body["@odata.nextLink"] = json!(format!("{}/{}/auditLogs/provisioning?{}", ctx.base, ctx.version, q.finish()));
    }
    Ok(Reply::Json(StatusCode::OK, body))
}
