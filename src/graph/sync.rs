//! Synchronization calls on a service principal: templates, jobs and secrets (reference §2, §3).
//! Every path is `/servicePrincipals/{id}/synchronization/...`.

use reqwest::Method;
use serde_json::{Value, json};

use super::error::GraphError;
use super::http::{Call, Tenant};
use super::model::{Collection, KeyValue, SynchronizationJob, SynchronizationTemplate};

fn sync_path<'a>(sp: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["servicePrincipals", sp, "synchronization"];
    v.extend_from_slice(rest);
    v
}

/// A secret whose value is serialized JSON, as `Domain`, `AppKey` and `SyncNotificationSettings`
/// are: the JSON object travels as a string inside the JSON body (double-encoded).
pub fn json_secret(key: &str, value: &Value) -> KeyValue {
    KeyValue { key: key.to_string(), value: value.to_string() }
}

impl Tenant {
    pub async fn list_sync_templates(
        &self,
        sp: &str,
        eventual: bool,
    ) -> Result<Vec<SynchronizationTemplate>, GraphError> {
        let call = Call::new("templates.list", Method::GET, &sync_path(sp, &["templates"])).eventual(eventual);
        let page: Collection<SynchronizationTemplate> = self.json(call).await?;
        Ok(page.value)
    }

    /// All jobs of the service principal. The operator's one steady-state read.
    pub async fn list_jobs(&self, sp: &str, eventual: bool) -> Result<Vec<SynchronizationJob>, GraphError> {
        let call = Call::new("jobs.list", Method::GET, &sync_path(sp, &["jobs"])).eventual(eventual);
        let page: Collection<SynchronizationJob> = self.json(call).await?;
        Ok(page.value)
    }

    pub async fn get_job(&self, sp: &str, job: &str) -> Result<SynchronizationJob, GraphError> {
        self.json(Call::new("jobs.get", Method::GET, &sync_path(sp, &["jobs", job]))).await
    }

    /// `POST jobs` (201). Not idempotent: callers list jobs before creating one.
    pub async fn create_job(
        &self,
        sp: &str,
        template_id: &str,
        eventual: bool,
    ) -> Result<SynchronizationJob, GraphError> {
        let call = Call::new("jobs.create", Method::POST, &sync_path(sp, &["jobs"]))
            .body(json!({"templateId": template_id}))
            .eventual(eventual);
        self.json(call).await
    }

    pub async fn delete_job(&self, sp: &str, job: &str) -> Result<(), GraphError> {
        self.empty(Call::new("jobs.delete", Method::DELETE, &sync_path(sp, &["jobs", job]))).await
    }

    /// Starts a paused or quarantined job. The service warns against calling it on a running job,
    /// so it is not retried blindly after a timeout.
    pub async fn start_job(&self, sp: &str, job: &str) -> Result<(), GraphError> {
        self.empty(Call::new("jobs.start", Method::POST, &sync_path(sp, &["jobs", job, "start"]))).await
    }

    /// Pausing twice is harmless, so it is retried like an idempotent call.
    pub async fn pause_job(&self, sp: &str, job: &str) -> Result<(), GraphError> {
        let call = Call::new("jobs.pause", Method::POST, &sync_path(sp, &["jobs", job, "pause"])).idempotent(true);
        self.empty(call).await
    }

    /// `POST jobs/{id}/restart` with `{"criteria":{"resetScope": ...}}`.
    pub async fn restart_job(&self, sp: &str, job: &str, reset_scope: &str) -> Result<(), GraphError> {
        let call = Call::new("jobs.restart", Method::POST, &sync_path(sp, &["jobs", job, "restart"]))
            .body(json!({"criteria": {"resetScope": reset_scope}}));
        self.empty(call).await
    }

    /// `POST jobs/{id}/provisionOnDemand` for one object (`object_id`: the AD distinguished name).
    /// Not idempotent and never retried after an uncertain failure: the caller records the call
    /// before making it. Graph answers a `stringKeyStringValuePair` whose key and value are JSON
    /// documents inside strings.
    pub async fn provision_on_demand(
        &self,
        sp: &str,
        job: &str,
        rule_id: &str,
        object_id: &str,
        object_type: &str,
    ) -> Result<KeyValue, GraphError> {
        let call =
            Call::new("jobs.provisionOnDemand", Method::POST, &sync_path(sp, &["jobs", job, "provisionOnDemand"]))
                .body(json!({"parameters": [{
                    "ruleId": rule_id,
                    "subjects": [{"objectId": object_id, "objectTypeName": object_type}],
                }]}));
        self.json(call).await
    }

    /// `POST jobs/{id}/validateCredentials` with the saved credentials (204 when they work).
    pub async fn validate_job_credentials(&self, sp: &str, job: &str, template_id: &str) -> Result<(), GraphError> {
        let call =
            Call::new("jobs.validateCredentials", Method::POST, &sync_path(sp, &["jobs", job, "validateCredentials"]))
                .body(json!({"useSavedCredentials": true, "templateId": template_id}))
                .idempotent(true);
        self.empty(call).await
    }

    /// `PUT secrets` (204): replaces the whole set, so callers always send every key they want.
    pub async fn put_secrets(&self, sp: &str, secrets: &[KeyValue], eventual: bool) -> Result<(), GraphError> {
        let call = Call::new("secrets.put", Method::PUT, &sync_path(sp, &["secrets"]))
            .body(json!({"value": secrets}))
            .eventual(eventual);
        self.empty(call).await
    }

    /// `GET secrets`: keys with masked values (`*`); useful for key presence only.
    pub async fn get_secret_keys(&self, sp: &str) -> Result<Vec<String>, GraphError> {
        let page: Collection<KeyValue> =
            self.json(Call::new("secrets.get", Method::GET, &sync_path(sp, &["secrets"]))).await?;
        Ok(page.value.into_iter().map(|kv| kv.key).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_secrets_are_double_encoded_on_the_wire() {
        let s = json_secret("Domain", &json!({"domain": "contoso.com"}));
        let body = json!({"value": [s]}).to_string();
        assert_eq!(body, r#"{"value":[{"key":"Domain","value":"{\"domain\":\"contoso.com\"}"}]}"#);
    }
}
