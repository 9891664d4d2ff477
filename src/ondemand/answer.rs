//! Reads provisionOnDemand's answer: a `stringKeyStringValuePair` whose `key` and `value` are JSON
//! documents inside strings (reference §3). Keeps the result, codes, the action and the steps'
//! names and statuses; drops everything else, because the rest (modified properties, identities,
//! step details and descriptions) carries attribute values, which are personal data.

use serde_json::Value;

use crate::api::{ProvisionResult, ProvisioningStep};
use crate::graph::model::KeyValue;

/// What one subject's call returned, reduced to what may be stored.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    pub result: Option<ProvisionResult>,
    pub error_code: Option<String>,
    pub action: Option<String>,
    pub steps: Vec<ProvisioningStep>,
}

/// Parses the answer. A part that is missing or not JSON is left out: the service's documented
/// examples differ in which document holds `result`, so both are looked at.
pub fn parse(answer: &KeyValue) -> Outcome {
    let key = json_in_string(&answer.key);
    let value = json_in_string(&answer.value);
    let docs: Vec<&Value> = [key.as_ref(), value.as_ref()].into_iter().flatten().collect();
    let result = docs.iter().find_map(|d| text(d, &["result"])).and_then(result_of);
    let error_code = docs
        .iter()
        .find_map(|d| {
            text(d, &["details", "errorCode"]).or_else(|| text(d, &["statusInfo", "errorInformation", "errorCode"]))
        })
        .or_else(|| docs.iter().find_map(|d| text(d, &["errorCode"])))
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    let action = docs.iter().find_map(|d| text(d, &["action"])).map(str::to_string);
    let steps = docs
        .iter()
        .find_map(|d| d.get("provisioningSteps").or_else(|| d.get("details").and_then(|x| x.get("provisioningSteps"))))
        .and_then(Value::as_array)
        .map(|steps| steps.iter().filter_map(step).collect::<Vec<_>>())
        .unwrap_or_default();
    let result = result.or_else(|| infer(&steps));
    Outcome { result, error_code, action, steps }
}

fn json_in_string(s: &str) -> Option<Value> {
    serde_json::from_str::<Value>(s).ok().filter(Value::is_object)
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(*k)).and_then(Value::as_str)
}

fn result_of(s: &str) -> Option<ProvisionResult> {
    match s.to_ascii_lowercase().as_str() {
        "success" => Some(ProvisionResult::Success),
        "skipped" => Some(ProvisionResult::Skipped),
        "failure" | "failed" => Some(ProvisionResult::Failure),
        _ => None,
    }
}

fn step(v: &Value) -> Option<ProvisioningStep> {
    let name = text(v, &["name"])?.to_string();
    let error_code = ["errorCode", "ErrorCode"]
        .iter()
        .find_map(|k| v.get("details").and_then(|d| d.get(*k)).and_then(Value::as_str))
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    Some(ProvisioningStep {
        name,
        step_type: text(v, &["provisioningStepType"]).map(str::to_string),
        status: text(v, &["status"]).map(str::to_string),
        error_code,
    })
}

/// When no document states the result, a failed step means Failure and all steps succeeding
/// means Success; anything else stays unknown (the caller reports it as such).
fn infer(steps: &[ProvisioningStep]) -> Option<ProvisionResult> {
    let status = |s: &ProvisioningStep| s.status.as_deref().unwrap_or_default().to_ascii_lowercase();
    if steps.iter().any(|s| status(s) == "failure") {
        Some(ProvisionResult::Failure)
    } else if !steps.is_empty() && steps.iter().all(|s| status(s) == "success") {
        Some(ProvisionResult::Success)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kv(key: Value, value: Value) -> KeyValue {
        KeyValue { key: key.to_string(), value: value.to_string() }
    }

    #[test]
    fn the_documented_shape_keeps_codes_and_steps_and_drops_personal_data() {
        let answer = kv(
            json!({"result": "Skipped", "details": {"errorCode": "RedundantExport", "errorMessage": "Adele is up to date"}}),
            json!({
                "provisioningSteps": [
                    {"name": "EntryImport", "provisioningStepType": "Import", "status": "Success",
                     "description": "Retrieved CN=Adele Vance,OU=Sales,DC=contoso,DC=com", "details": {"displayName": "Adele"}},
                    {"name": "EntrySynchronizationScoping", "provisioningStepType": "Scoping", "status": "Success", "details": {}},
                    {"name": "EntryExportUpdate", "provisioningStepType": "Export", "status": "Skipped",
                     "details": {"ErrorCode": "RedundantExport"}},
                ],
                "modifiedProperties": [{"displayName": "mail", "newValue": "adele@contoso.com"}],
                "action": "Update",
                "sourceIdentity": {"id": "CN=Adele Vance", "displayName": "Adele Vance"},
            }),
        );
        let o = parse(&answer);
        assert_eq!(o.result, Some(ProvisionResult::Skipped));
        assert_eq!(o.error_code.as_deref(), Some("RedundantExport"));
        assert_eq!(o.action.as_deref(), Some("Update"));
        assert_eq!(o.steps.len(), 3);
        assert_eq!(o.steps[2].error_code.as_deref(), Some("RedundantExport"));
        assert_eq!(o.steps[0].step_type.as_deref(), Some("Import"));
        let stored = serde_json::to_string(&o.steps).unwrap();
        for personal in ["Adele", "contoso", "adele@"] {
            assert!(!stored.contains(personal), "{stored}");
        }
    }

    #[test]
    fn a_result_in_the_value_document_or_only_in_the_steps_is_found() {
        let o = parse(&kv(json!({"objectId": "x"}), json!({"result": "Failure", "errorCode": "AccessDenied"})));
        assert_eq!((o.result, o.error_code.as_deref()), (Some(ProvisionResult::Failure), Some("AccessDenied")));
        let o = parse(&kv(json!({}), json!({"provisioningSteps": [{"name": "EntryImport", "status": "Failure"}]})));
        assert_eq!(o.result, Some(ProvisionResult::Failure));
    }

    #[test]
    fn strings_that_are_not_json_leave_the_result_unknown() {
        let o = parse(&KeyValue { key: "not json".into(), value: "{".into() });
        assert_eq!(o, Outcome::default());
    }
}
