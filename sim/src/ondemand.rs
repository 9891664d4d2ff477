//! provisionOnDemand's answer (reference §3; cloud sync configuration §3): a
//! `stringKeyStringValuePair` whose `key` holds `{"result", "details"}` and whose `value` holds the
//! provisioning steps, modified properties, action and identities — both as JSON inside strings.
//! On-demand provisioning ignores scoping filters, so the scoping step always passes.

use serde::Deserialize;
use serde_json::json;

use crate::ids;

/// An outcome set through the control API for one object.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scripted {
    /// Success, Skipped or Failure.
    pub result: String,
    /// e.g. AzureActiveDirectoryConflictingObject, EntryNotFound, RedundantExport.
    #[serde(default)]
    pub error_code: Option<String>,
}

impl Scripted {
    pub fn validate(&self) -> Result<(), String> {
        match self.result.as_str() {
            "Success" | "Skipped" | "Failure" => Ok(()),
            other => Err(format!("result '{other}' is not one of Success, Skipped, Failure")),
        }
    }
}

fn common_name(dn: &str) -> String {
    dn.split(',').next().and_then(|rdn| rdn.split_once('=')).map(|(_, v)| v.trim().to_string()).unwrap_or_default()
}

/// Key and value documents (as strings) for one object. `seen`: provisioned before, so with no
/// script it is up to date and skipped.
pub fn answer(dn: &str, object_type: &str, seen: bool, script: Option<&Scripted>) -> (String, String) {
    let (result, code) = match script {
        Some(s) => (s.result.clone(), s.error_code.clone()),
        None if seen => ("Skipped".to_string(), Some("RedundantExport".to_string())),
        None => ("Success".to_string(), None),
    };
    let name = common_name(dn);
    let action = match (result.as_str(), seen) {
        ("Success", false) => "Create",
        ("Success", true) => "Update",
        _ => "Other",
    };
    let export_status = match result.as_str() {
        "Success" => "success",
        "Skipped" => "skipped",
        _ => "failure",
    };
    let mut export_details = json!({});
    if let Some(c) = &code {
        export_details["ErrorCode"] = json!(c);
    }
    let status = match result.as_str() {
        "Success" => "success",
        "Skipped" => "skipped",
        _ => "failure",
    };
    let key = json!({
        "result": result,
        "details": {
            "errorCode": code.clone().unwrap_or_default(),
            "errorMessage": match code.as_deref() { Some(c) => format!("{c} for {name}"), None => String::new() },
        },
    });
    let target_id = ids::guid();
    let value = json!({
        "provisioningSteps": [
            {"name": "EntryImport", "provisioningStepType": "Import", "status": "success",
             "description": format!("Retrieved {dn} from Active Directory"), "details": {"objectClass": object_type}},
            {"name": "EntrySynchronizationScoping", "provisioningStepType": "Scoping", "status": "success",
             "description": "Provisioning on demand does not evaluate scoping filters", "details": {}},
            {"name": "EntryMatching", "provisioningStepType": "Matching", "status": "success",
             "description": format!("Matched {name} by onPremisesDistinguishedName"), "details": {"targetId": target_id}},
            {"name": if seen { "EntryExportUpdate" } else { "EntryExportAdd" }, "provisioningStepType": "Export",
             "status": export_status, "description": format!("Export of {name}"), "details": export_details},
        ],
        "modifiedProperties": [
            {"displayName": "displayName", "oldValue": null, "newValue": name},
            {"displayName": "mail", "oldValue": null, "newValue": format!("{}@example.com", name.to_lowercase().replace(' ', "."))},
            {"displayName": "onPremisesDistinguishedName", "oldValue": null, "newValue": dn},
        ],
        "action": action,
        "statusInfo": {"status": status, "errorInformation": code.as_ref().map(|c| json!({"errorCode": c}))},
        "sourceIdentity": {"id": dn, "displayName": name, "identityType": object_type},
        "targetIdentity": {"id": target_id, "displayName": name, "identityType": "User"},
    });
    (key.to_string(), value.to_string())
}

/// The `@odata.context` real answers carry: the sync fabric's, not Graph's.
pub const CONTEXT: &str =
    "https://syncfabric.windowsazure.com/api/$metadata#microsoft.synchronization.stringKeyStringValuePair";

/// The object types provisionOnDemand takes on an AD to Entra job.
pub const OBJECT_TYPES: [&str; 4] = ["user", "group", "inetOrgPerson", "computer"];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn first_success_then_skipped_as_redundant_and_scripts_win() {
        let dn = "CN=Adele Vance,OU=Sales,DC=contoso,DC=com";
        let (k, v) = answer(dn, "user", false, None);
        let k: Value = serde_json::from_str(&k).unwrap();
        let v: Value = serde_json::from_str(&v).unwrap();
        assert_eq!(k["result"], "Success");
        assert_eq!(v["action"], "Create");
        assert_eq!(v["provisioningSteps"].as_array().unwrap().len(), 4);
        let (k, _) = answer(dn, "user", true, None);
        assert!(k.contains("RedundantExport") && k.contains("Skipped"));
        let s = Scripted { result: "Failure".into(), error_code: Some("AzureActiveDirectoryConflictingObject".into()) };
        let (k, v) = answer(dn, "user", false, Some(&s));
        assert!(k.contains("\"Failure\"") && v.contains("\"failure\"") && v.contains("ConflictingObject"));
        assert!(Scripted { result: "Maybe".into(), error_code: None }.validate().is_err());
    }
}
