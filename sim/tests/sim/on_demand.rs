//! `POST .../jobs/{id}/provisionOnDemand` (reference §3): the rule id read from the schema, the
//! answer as JSON inside strings, a second call Skipped as RedundantExport, scripted outcomes,
//! and the 5-per-10-seconds limit answered 429 with Retry-After.

use reqwest::Method;
use serde_json::{Value, json};

use super::support::*;

const DN: &str = "CN=Adele Vance,OU=Sales,DC=contoso,DC=com";

async fn job(env: &Env, t: &str) -> (String, String, String, String) {
    let sp = env.sp(t, "contoso.com").await;
    let id = env.create_job(t, &sp, "AD2AADProvisioning").await["id"].as_str().unwrap().to_owned();
    let path = format!("/beta/servicePrincipals/{sp}/synchronization/jobs/{}", encode_id(&id));
    let schema = env.get(t, &format!("{path}/schema")).await.body;
    let rule = schema["synchronizationRules"][0]["id"].as_str().unwrap().to_owned();
    (sp, id, path, rule)
}

fn body(rule: &str, dn: &str, kind: &str) -> Value {
    json!({"parameters": [{"ruleId": rule, "subjects": [{"objectId": dn, "objectTypeName": kind}]}]})
}

fn inner(r: &Resp, field: &str) -> Value {
    serde_json::from_str(r.body[field].as_str().expect("a string")).expect("JSON inside the string")
}

#[tokio::test]
async fn answers_json_inside_strings_and_skips_an_object_already_provisioned() {
    let env = start().await;
    let t = env.token().await;
    let (_, _, path, rule) = job(&env, &t).await;
    let r = env.post(&t, &format!("{path}/provisionOnDemand"), Some(body(&rule, DN, "user"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["@odata.context"].as_str().unwrap().contains("syncfabric.windowsazure.com"));
    let key = inner(&r, "key");
    let value = inner(&r, "value");
    assert_eq!(key["result"], "Success");
    assert_eq!(value["action"], "Create");
    let steps: Vec<&str> =
        value["provisioningSteps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(steps, ["EntryImport", "EntrySynchronizationScoping", "EntryMatching", "EntryExportAdd"]);
    assert_eq!(value["sourceIdentity"]["id"], DN);
    assert!(value["modifiedProperties"].as_array().is_some_and(|m| !m.is_empty()));

    let again = env.post(&t, &format!("{path}/provisionOnDemand"), Some(body(&rule, DN, "user"))).await;
    let key = inner(&again, "key");
    assert_eq!(
        (key["result"].as_str(), key["details"]["errorCode"].as_str()),
        (Some("Skipped"), Some("RedundantExport"))
    );
    assert_eq!(env.control(Method::GET, "/counters", None).await.body["provisionsOnDemand"], 2);
}

#[tokio::test]
async fn refuses_a_rule_that_is_not_in_the_schema_and_unknown_object_types() {
    let env = start().await;
    let t = env.token().await;
    let (_, _, path, rule) = job(&env, &t).await;
    let url = format!("{path}/provisionOnDemand");
    assert_envelope(
        &env.post(&t, &url, Some(body("6c409270-f78a-4bc6-af23-7cf3ab6482fe", DN, "user"))).await,
        400,
        "BadRequest",
    );
    assert_envelope(&env.post(&t, &url, Some(body(&rule, DN, "printer"))).await, 400, "BadRequest");
    assert_envelope(
        &env.post(&t, &url, Some(json!({"parameters": [{"ruleId": rule, "subjects": []}]}))).await,
        400,
        "BadRequest",
    );
    assert_envelope(&env.post(&t, &url, Some(json!({}))).await, 400, "BadRequest");
    assert_eq!(env.control(Method::GET, "/counters", None).await.body["provisionsOnDemand"], 0);
}

#[tokio::test]
async fn scripted_outcomes_and_the_rate_limit() {
    let env = start().await;
    let t = env.token().await;
    let (sp, id, path, rule) = job(&env, &t).await;
    let r = env
        .control(
            Method::POST,
            &format!("/tenants/{TENANT}/servicePrincipals/{sp}/jobs/{}/onDemand", encode_id(&id)),
            Some(json!({"dn": DN, "result": "Failure", "errorCode": "AzureActiveDirectoryConflictingObject"})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let url = format!("{path}/provisionOnDemand");
    let r = env.post(&t, &url, Some(body(&rule, DN, "user"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(inner(&r, "key")["result"], "Failure");
    let export = &inner(&r, "value")["provisioningSteps"][3];
    assert_eq!(
        (export["status"].as_str(), export["details"]["ErrorCode"].as_str()),
        (Some("failure"), Some("AzureActiveDirectoryConflictingObject"))
    );
    // A subject outside any scope is still provisioned: on demand ignores scoping filters.
    for i in 0..4 {
        let r = env.post(&t, &url, Some(body(&rule, &format!("CN=u{i},OU=Elsewhere,DC=contoso,DC=com"), "user"))).await;
        assert_eq!(r.status, 200, "call {}", i + 2);
    }
    let throttled = env.post(&t, &url, Some(body(&rule, "CN=u9,OU=Sales,DC=contoso,DC=com", "user"))).await;
    assert_envelope(&throttled, 429, "TooManyRequests");
    let wait: u64 = throttled.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=11).contains(&wait), "{wait}");
}
