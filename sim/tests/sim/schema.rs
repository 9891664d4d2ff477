//! Job schemas, parseExpression, filterOperators/functions, the SyncNotificationSettings secret
//! and the accidental-delete threshold, over HTTP (reference part 2 §1–§2).

use std::time::Duration;

use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};

async fn job(env: &Env, t: &str) -> (String, String) {
    let sp = env.sp(t, "contoso.com").await;
    let id = env.create_job(t, &sp, "AD2AADProvisioning").await["id"].as_str().unwrap().to_owned();
    (sp, id)
}

fn schema_path(sp: &str, job: &str) -> String {
    format!("/beta/servicePrincipals/{sp}/synchronization/jobs/{}/schema", encode_id(job))
}

fn object_names(schema: &Value) -> Vec<String> {
    schema["synchronizationRules"][0]["objectMappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["sourceObjectName"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn schema_get_put_delete_and_patch() {
    let env = start().await;
    let t = env.token().await;
    let (sp, id) = job(&env, &t).await;
    let path = schema_path(&sp, &id);
    let r = env.get(&t, &path).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let default = r.body.clone();
    assert_eq!(object_names(&default), ["user", "inetOrgPerson", "group", "contact"]);
    let rule = &default["synchronizationRules"][0];
    assert!(rule["id"].as_str().is_some_and(|s| s.len() == 36), "{rule}");
    assert_eq!(rule["containerFilter"]["includedContainers"], json!([]));
    let mapping = &rule["objectMappings"][0]["attributeMappings"][0];
    for field in ["targetAttributeName", "source", "flowType", "flowBehavior", "matchingPriority"] {
        assert!(mapping.get(field).is_some(), "attributeMapping.{field}: {mapping}");
    }
    assert_eq!(default["directories"].as_array().unwrap().len(), 2);

    // PUT replaces the whole schema.
    let mut changed = default.clone();
    changed["synchronizationRules"][0]["containerFilter"]["includedContainers"] = json!(["OU=Sales,DC=contoso,DC=com"]);
    changed["synchronizationRules"][0]["objectMappings"].as_array_mut().unwrap().truncate(1);
    let r = env.call(Method::PUT, Some(&t), &path, Some(changed)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = env.get(&t, &path).await;
    assert_eq!(
        r.body["synchronizationRules"][0]["containerFilter"]["includedContainers"][0],
        "OU=Sales,DC=contoso,DC=com"
    );
    assert_eq!(object_names(&r.body), ["user"]);

    // Not a schema: the Graph envelope, naming the field; the stored schema is unchanged.
    let r = env.call(Method::PUT, Some(&t), &path, Some(json!({"directories": []}))).await;
    assert_envelope(&r, 400, "BadRequest");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("synchronizationRules"), "{}", r.text);
    let mut bad = default.clone();
    bad["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"][0]["flowType"] = json!("Never");
    let r = env.call(Method::PUT, Some(&t), &path, Some(bad)).await;
    assert_envelope(&r, 400, "BadRequest");
    let r = env.call(Method::PUT, Some(&t), &path, Some(json!([1, 2]))).await;
    assert_envelope(&r, 400, "BadRequest");
    assert_eq!(object_names(&env.get(&t, &path).await.body), ["user"]);

    // What generated SDKs send.
    let r = env.call(Method::PATCH, Some(&t), &path, Some(default.clone())).await;
    assert_envelope(&r, 404, "UnknownError");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("No HTTP resource was found"), "{}", r.text);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("syncfabric.windowsazure.com"), "{}", r.text);

    // DELETE resets to the template default.
    let r = env.call(Method::DELETE, Some(&t), &path, None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = env.get(&t, &path).await;
    assert_eq!(object_names(&r.body), ["user", "inetOrgPerson", "group", "contact"]);
    assert_eq!(r.body["synchronizationRules"][0]["id"], default["synchronizationRules"][0]["id"]);

    // Templates carry their schema, also on their own path.
    let r = env.get(&t, &format!("/beta/servicePrincipals/{sp}/synchronization/templates")).await;
    assert_eq!(object_names(&r.body["value"][0]["schema"]), ["user", "inetOrgPerson", "group", "contact"]);
    let r = env
        .get(&t, &format!("/beta/servicePrincipals/{sp}/synchronization/templates/AAD2ADGroupProvisioning/schema"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let hidden =
        r.body["synchronizationRules"][0]["objectMappings"][0]["attributeMappings"].as_array().unwrap().clone();
    let ext = hidden.iter().find(|m| m["targetAttributeName"] == "msDS-ExternalDirectoryObjectId").unwrap();
    assert_eq!(ext["source"]["expression"], "Append(\"Group_\", [objectId])");
    let r = env.get(&t, &format!("/beta/servicePrincipals/{sp}/synchronization/templates/Nope/schema")).await;
    assert_envelope(&r, 404, "Request_ResourceNotFound");
    let r = env.get(&t, &schema_path(&sp, "AD2AADProvisioning.missing")).await;
    assert_envelope(&r, 404, "Request_ResourceNotFound");
}

#[tokio::test]
async fn parse_expression() {
    let env = start().await;
    let t = env.token().await;
    let (sp, id) = job(&env, &t).await;
    let path = format!("{}/parseExpression", schema_path(&sp, &id));
    let body = json!({
        "expression": "Replace([mail], \"@contoso.com\", , , \"\", , )",
        "testInputObject": {"definition": null, "properties": [{"key": "mail", "value": "john@contoso.com"}]},
        "targetAttributeDefinition": null,
    });
    let r = env.post(&t, &path, Some(body)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["parsingSucceeded"], true);
    assert!(r.body["error"].is_null());
    assert_eq!(r.body["evaluationSucceeded"], true);
    assert_eq!(r.body["evaluationResult"], json!(["john"]));
    let p = &r.body["parsedExpression"];
    assert_eq!((p["type"].as_str(), p["name"].as_str()), (Some("Function"), Some("Replace")));
    assert_eq!(
        p["parameters"][0],
        json!({"key": "source", "value": {"type": "Attribute", "name": "mail", "expression": "[mail]", "parameters": []}})
    );

    let r = env.post(&t, &path, Some(json!({"expression": "Join(\" \", [givenName] [sn])"}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["parsingSucceeded"], false);
    assert!(r.body["parsedExpression"].is_null());
    let msg = r.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("position 23"), "{msg}");
    let r = env.post(&t, &path, Some(json!({"expression": "Append([a])"}))).await;
    assert!(r.body["error"]["message"].as_str().unwrap().contains("Append needs at least 2 arguments"), "{}", r.text);

    let r = env.post(&t, &path, Some(json!({"testInputObject": null}))).await;
    assert_envelope(&r, 400, "BadRequest");
    // Also on the template, and a missing job is 404.
    let tpath =
        format!("/beta/servicePrincipals/{sp}/synchronization/templates/AD2AADProvisioning/schema/parseExpression");
    let r = env.post(&t, &tpath, Some(json!({"expression": "ToLower([userPrincipalName])"}))).await;
    assert_eq!(r.body["parsedExpression"]["name"], "ToLower", "{}", r.text);
    let r = env
        .post(&t, &format!("{}/parseExpression", schema_path(&sp, "X.y.z")), Some(json!({"expression": "[a]"})))
        .await;
    assert_envelope(&r, 404, "Request_ResourceNotFound");
}

#[tokio::test]
async fn filter_operators_and_functions() {
    let env = start().await;
    let t = env.token().await;
    let (sp, id) = job(&env, &t).await;
    let r = env.get(&t, &format!("{}/filterOperators", schema_path(&sp, &id))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ops = r.body["value"].as_array().unwrap();
    let equals = ops.iter().find(|o| o["name"] == "EQUALS").unwrap();
    assert_eq!(equals["arity"], "Binary");
    assert!(ops.iter().any(|o| o["name"] == "IS_TRUE" && o["arity"] == "Unary"));
    let r = env
        .get(&t, &format!("/beta/servicePrincipals/{sp}/synchronization/templates/AD2AADProvisioning/schema/functions"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let join = r.body["value"].as_array().unwrap().iter().find(|f| f["id"] == "Join").unwrap().clone();
    assert_eq!(
        join["parameters"][0],
        json!({"name": "separator", "required": true, "allowMultipleOccurrences": false, "type": "String"})
    );
    assert_eq!(join["parameters"][1]["allowMultipleOccurrences"], true);
    let r = env.call(Method::POST, Some(&t), &format!("{}/functions", schema_path(&sp, &id)), None).await;
    assert_eq!(r.status, 405, "{}", r.text);
}

fn notification(threshold: Value) -> Value {
    json!({"key": "SyncNotificationSettings", "value": json!({"Enabled": true, "Recipients": "ops@contoso.com", "DeleteThresholdEnabled": true, "DeleteThresholdValue": threshold}).to_string()})
}

const DOMAIN: &str = "{\"domain\":\"contoso.com\"}";

#[tokio::test]
async fn notification_settings_secret() {
    let env = start().await;
    let t = env.token().await;
    let (sp, _) = job(&env, &t).await;
    let path = format!("/beta/servicePrincipals/{sp}/synchronization/secrets");
    let put = |v: Value| env.call(Method::PUT, Some(&t), &path, Some(json!({"value": v})));
    for bad in [json!(""), json!("{\"DeleteThresholdValue\":\"50\"}"), json!("{\"DeleteThresholdValue\":0}")] {
        let r =
            put(json!([{"key": "Domain", "value": DOMAIN}, {"key": "SyncNotificationSettings", "value": bad}])).await;
        assert_envelope(&r, 400, "UnknownError");
        let wrapped: Value = serde_json::from_str(r.body["error"]["message"].as_str().unwrap()).unwrap();
        assert_eq!(wrapped["error"]["code"], "InvalidNotificationSettings", "{bad}");
    }
    let r = put(json!([{"key": "Domain", "value": DOMAIN}, notification(json!(50))])).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let keys = |b: &Value| {
        b["value"].as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(keys(&env.get(&t, &path).await.body), ["Domain", "SyncNotificationSettings"]);
    // A PUT is the whole set: Domain alone drops the notification settings.
    let r = put(json!([{"key": "Domain", "value": DOMAIN}])).await;
    assert_eq!(r.status, 204);
    assert_eq!(keys(&env.get(&t, &path).await.body), ["Domain"]);
}

async fn job_state(env: &Env, sp: &str, id: &str) -> Value {
    let state = env.control(Method::GET, &format!("/tenants/{TENANT}/state"), None).await.body;
    let sps = state["servicePrincipals"].as_array().unwrap().clone();
    let s = sps.iter().find(|s| s["id"] == sp).unwrap();
    s["jobs"].as_array().unwrap().iter().find(|j| j["id"] == id).unwrap().clone()
}

async fn wait_for(env: &Env, sp: &str, id: &str, f: impl Fn(&Value) -> bool) -> Value {
    eventually(Duration::from_secs(10), || async {
        let j = job_state(env, sp, id).await;
        f(&j).then_some(j)
    })
    .await
}

async fn restart(env: &Env, t: &str, sp: &str, id: &str, scope: &str) {
    let path = format!("/beta/servicePrincipals/{sp}/synchronization/jobs/{}/restart", encode_id(id));
    let r = env.post(t, &path, Some(json!({"criteria": {"resetScope": scope}}))).await;
    assert_eq!(r.status, 204, "{}", r.text);
}

#[tokio::test]
async fn accidental_delete_threshold() {
    let env = start_with(builder().speed(1000.0)).await;
    let t = env.token().await;
    let (sp, id) = job(&env, &t).await;
    let r = env
        .call(
            Method::PUT,
            Some(&t),
            &format!("/beta/servicePrincipals/{sp}/synchronization/secrets"),
            Some(json!({"value": [{"key": "Domain", "value": DOMAIN}, notification(json!(50))]})),
        )
        .await;
    assert_eq!(r.status, 204);
    let r = env
        .post(&t, &format!("/beta/servicePrincipals/{sp}/synchronization/jobs/{}/start", encode_id(&id)), None)
        .await;
    assert_eq!(r.status, 204);
    let deletes = format!("/tenants/{TENANT}/servicePrincipals/{sp}/jobs/{id}/deletes");

    // Below the threshold (49 < 50): the deletes happen.
    let r = env.control(Method::POST, &deletes, Some(json!({"count": 49}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let j = wait_for(&env, &sp, &id, |j| j["deletedObjects"] == 49).await;
    assert_eq!(j["status"]["code"], "Active");

    // At the threshold: held, quarantined with TooManyDeletes.
    env.control(Method::POST, &deletes, Some(json!({"count": 50}))).await;
    let j = wait_for(&env, &sp, &id, |j| j["status"]["code"] == "Quarantine").await;
    assert_eq!(j["status"]["quarantine"]["reason"], "TooManyDeletes");
    assert_eq!(j["status"]["quarantine"]["error"]["code"], "TooManyDeletes");
    assert_eq!(j["deletedObjects"], 49);

    // A normal restart clears the quarantine, but the next run holds the deletes again.
    let executions = j["executions"].as_u64().unwrap();
    restart(&env, &t, &sp, &id, "Watermark, Escrows, QuarantineState").await;
    let j = wait_for(&env, &sp, &id, |j| {
        j["executions"].as_u64().unwrap() > executions && j["status"]["code"] == "Quarantine"
    })
    .await;
    assert_eq!((j["deletedObjects"].as_u64(), j["pendingDeletes"]["released"].as_bool()), (Some(49), Some(false)));

    // ForceDeletes approves: the deletes happen and the quarantine clears.
    restart(&env, &t, &sp, &id, "ForceDeletes").await;
    let j = wait_for(&env, &sp, &id, |j| j["deletedObjects"] == 99).await;
    assert_eq!(j["status"]["code"], "Active");
    assert!(j["status"]["quarantine"].is_null());
    assert!(j["pendingDeletes"].is_null());

    // Withdrawing (the scope was fixed) and a bad body; the Rust API sets the same thing.
    env.sim.want_deletes(TENANT, &sp, &id, 500).unwrap();
    assert_eq!(job_state(&env, &sp, &id).await["pendingDeletes"]["count"], 500);
    let r = env.control(Method::DELETE, &deletes, None).await;
    assert!(r.body["status"]["quarantine"].is_null(), "{}", r.text);
    assert!(job_state(&env, &sp, &id).await["pendingDeletes"].is_null());
    let r = env.control(Method::POST, &deletes, Some(json!({"count": -1}))).await;
    assert_eq!(r.status, 400, "{}", r.text);
}
