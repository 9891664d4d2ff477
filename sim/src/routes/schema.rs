//! Schema helpers under `.../jobs/{id}/schema/` and `.../templates/{id}/schema/`:
//! `parseExpression`, `filterOperators`, `functions`, and the 404 that PATCH gets
//! (reference part 2 §1.1–§1.3).

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::sync::{job_index, sp, sync_sp};
use super::{Ctx, Reply};
use crate::envelope::GraphError;
use crate::expression::{self, FUNCTIONS};
use crate::schema;
use crate::server::Inner;
use crate::templates;

/// Resolves `jobs/{id}` or `templates/{id}` on the service principal; the second segment of
/// the route is the collection name.
fn owner(
    inner: &mut Inner,
    ctx: &mut Ctx,
    key: &str,
    collection: &str,
    id: &str,
    write: bool,
) -> Result<String, GraphError> {
    let sp_id = sync_sp(inner, ctx, key, write)?;
    let s = sp(inner, ctx, &sp_id)?;
    if collection.eq_ignore_ascii_case("jobs") {
        job_index(s, id)?;
    } else if !(collection.eq_ignore_ascii_case("templates")
        && s.has_sync_templates()
        && templates::is_cloud_sync_template(id))
    {
        return Err(GraphError::not_found(id));
    }
    Ok(sp_id)
}

/// Generated SDKs send PATCH because the OpenAPI describes it; the sync service has no such
/// route and answers 404 `UnknownError` naming its own host (the reference's issue list).
pub fn schema_patch(inner: &mut Inner, ctx: &mut Ctx, key: &str, job_id: &str) -> Result<Reply, GraphError> {
    let sp_id = owner(inner, ctx, key, "jobs", job_id, true)?;
    Err(GraphError::new(
        StatusCode::NOT_FOUND,
        "UnknownError",
        format!(
            "No HTTP resource was found that matches the request URI 'https://syncfabric.windowsazure.com/api/servicePrincipals/{sp_id}/synchronization/jobs/{job_id}/schema?api-version=2.0'."
        ),
    ))
}

pub fn template_schema(inner: &mut Inner, ctx: &mut Ctx, key: &str, template: &str) -> Result<Reply, GraphError> {
    let sp_id = owner(inner, ctx, key, "templates", template, false)?;
    let mut body = templates::schema(template);
    body["@odata.context"] = json!(
        ctx.context(&format!("servicePrincipals('{sp_id}')/synchronization/templates('{template}')/schema/$entity"))
    );
    Ok(Reply::Json(StatusCode::OK, body))
}

/// `{"expression": "...", "testInputObject": ..., "targetAttributeDefinition": ...}` →
/// `parseExpressionResponse`. A syntax error is a 200 with `parsingSucceeded: false`, not a 400:
/// the call succeeded, the expression did not.
pub fn parse_expression(
    inner: &mut Inner,
    ctx: &mut Ctx,
    key: &str,
    collection: &str,
    id: &str,
) -> Result<Reply, GraphError> {
    owner(inner, ctx, key, collection, id, true)?;
    let body = ctx.json_body(GraphError::sync_bad_request)?.unwrap_or_default();
    let text = match body.get("expression") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(GraphError::sync_bad_request("The expression property is required and must be a string.")),
    };
    let response = match expression::parse(&text) {
        Ok(e) => {
            let evaluation = body
                .get("testInputObject")
                .filter(|t| !t.is_null())
                .map(|t| expression::evaluate(&e, &test_properties(t)));
            let (succeeded, result) = match evaluation {
                Some(Some(values)) => (true, json!(values)),
                _ => (false, Value::Null),
            };
            json!({
                "parsingSucceeded": true,
                "evaluationSucceeded": succeeded,
                "evaluationResult": result,
                "parsedExpression": e.to_source(),
                "error": null,
            })
        }
        Err(err) => json!({
            "parsingSucceeded": false,
            "evaluationSucceeded": false,
            "evaluationResult": null,
            "parsedExpression": null,
            "error": {"code": "InvalidExpression", "message": err.to_string(), "target": "expression", "details": []},
        }),
    };
    let mut response = response;
    response["@odata.context"] = json!(ctx.context("microsoft.graph.parseExpressionResponse"));
    Ok(Reply::Json(StatusCode::OK, response))
}

/// `testInputObject.properties` (`[{key, value}]`) as name/value pairs.
fn test_properties(t: &Value) -> Vec<(String, String)> {
    t["properties"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let k = p["key"].as_str()?;
            let v = match &p["value"] {
                Value::String(s) => s.clone(),
                Value::Null => return None,
                other => other.to_string(),
            };
            Some((k.to_owned(), v))
        })
        .collect()
}

fn listing(ctx: &Ctx, sp_id: &str, collection: &str, id: &str, what: &str, value: Vec<Value>) -> Reply {
    let context =
        ctx.context(&format!("servicePrincipals('{sp_id}')/synchronization/{collection}('{id}')/schema/{what}"));
    Reply::Json(StatusCode::OK, json!({"@odata.context": context, "value": value}))
}

pub fn filter_operators(
    inner: &mut Inner,
    ctx: &mut Ctx,
    key: &str,
    collection: &str,
    id: &str,
) -> Result<Reply, GraphError> {
    let sp_id = owner(inner, ctx, key, collection, id, false)?;
    Ok(listing(ctx, &sp_id, collection, id, "filterOperators", schema::filter_operators()))
}

pub fn functions(inner: &mut Inner, ctx: &mut Ctx, key: &str, collection: &str, id: &str) -> Result<Reply, GraphError> {
    let sp_id = owner(inner, ctx, key, collection, id, false)?;
    let value = FUNCTIONS.iter().map(expression::Function::schema_json).collect();
    Ok(listing(ctx, &sp_id, collection, id, "functions", value))
}
