//! The provisioning job's synchronization schema (configuration reference §1): read, replace,
//! the template's default, and `parseExpression`. The schema travels as plain JSON: the operator
//! changes a few parts of it and must send every other part back exactly as Graph gave it.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::GraphError;
use super::http::{Call, Tenant};

fn schema_path<'a>(sp: &'a str, collection: &'a str, id: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["servicePrincipals", sp, "synchronization", collection, id, "schema"];
    v.extend_from_slice(rest);
    v
}

/// What `parseExpression` answered. A syntax error is a 200 with `parsingSucceeded: false`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ParsedExpression {
    #[serde(default)]
    pub parsing_succeeded: bool,
    /// The `attributeMappingSource` to put into the mapping.
    #[serde(default)]
    pub parsed_expression: Option<Value>,
    #[serde(default)]
    pub error: Option<ParseError>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct ParseError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

impl Tenant {
    /// `eventual`: moments after the job was created, a 404 may be replication lag.
    pub async fn job_schema(&self, sp: &str, job: &str, eventual: bool) -> Result<Value, GraphError> {
        self.json(Call::new("schema.get", Method::GET, &schema_path(sp, "jobs", job, &[])).eventual(eventual)).await
    }

    /// The schema a new job of `template` starts with.
    pub async fn template_schema(&self, sp: &str, template: &str, eventual: bool) -> Result<Value, GraphError> {
        let call = Call::new("templateSchema.get", Method::GET, &schema_path(sp, "templates", template, &[]))
            .eventual(eventual);
        self.json(call).await
    }

    /// `PUT .../schema` (204) replaces the whole schema. Never PATCH: the service answers it 404
    /// although Graph's OpenAPI describes it. Replacing with the same body twice is harmless.
    pub async fn put_job_schema(&self, sp: &str, job: &str, schema: &Value) -> Result<(), GraphError> {
        let call = Call::new("schema.put", Method::PUT, &schema_path(sp, "jobs", job, &[]))
            .body(schema.clone())
            .idempotent(true);
        self.empty(call).await
    }

    /// Parses one expression with the job's schema (its functions and attributes). Reads nothing
    /// and changes nothing, so it is retried like a read.
    pub async fn parse_expression(
        &self,
        sp: &str,
        job: &str,
        expression: &str,
    ) -> Result<ParsedExpression, GraphError> {
        let call =
            Call::new("schema.parseExpression", Method::POST, &schema_path(sp, "jobs", job, &["parseExpression"]))
                .body(json!({"expression": expression, "testInputObject": null, "targetAttributeDefinition": null}))
                .idempotent(true);
        self.json(call).await
    }
}
