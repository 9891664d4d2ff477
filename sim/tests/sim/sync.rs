//! Synchronization templates, jobs (life cycle over time) and secrets of the Graph simulator.

use std::time::Duration;

use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};

const MAX_INTERVAL: &str = "P10675199DT2H48M5.4775807S";

fn jobs_path(sp: &str) -> String {
    format!("/beta/servicePrincipals/{sp}/synchronization/jobs")
}

fn is_ts7(v: &Value) -> bool {
    // 2026-11-26T12:00:00.1234567Z
    v.as_str().is_some_and(|s| s.len() == 28 && s.as_bytes()[19] == b'.' && s.ends_with('Z'))
}

#[tokio::test]
async fn templates() {
    let env = start().await;
    let t = env.token().await;
    let sp = env.sp(&t, "contoso.com").await;
    let r = env.get(&t, &format!("/beta/servicePrincipals/{sp}/synchronization/templates")).await;
    assert_eq!(r.status, 200);
    let ids: Vec<&str> = r.body["value"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "AD2AADProvisioning",
            "AD2AADPasswordHash",
            "AAD2ADGroupProvisioning",
            "AAD2ADExchangeHybridWriteback",
            "AD2AADDeviceSync"
        ]
    );
    let first = &r.body["value"][0];
    for field in ["factoryTag", "metadata", "applicationId", "description", "discoverable", "default", "schema"] {
        assert!(first.get(field).is_some(), "template.{field}");
    }
    // The first-party SP (what keying on appId finds) has no sync templates and refuses jobs.
    let fp =
        env.get(&t, &format!("/beta/servicePrincipals?$filter=appId eq '{TEMPLATE}'")).await.body["value"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
    let r = env.get(&t, &format!("/beta/servicePrincipals/{fp}/synchronization/templates")).await;
    assert_eq!(r.body["value"], json!([]));
    let r = env.post(&t, &jobs_path(&fp), Some(json!({"templateId": "AD2AADProvisioning"}))).await;
    assert_envelope(&r, 400, "BadRequest");
}

#[tokio::test]
async fn job_create_shape_and_errors() {
    let env = start().await;
    let t = env.token().await;
    let sp = env.sp(&t, "contoso.com").await;
    let r = env.post(&t, &jobs_path(&sp), Some(json!({"templateId": "AD2AADProvisioning"}))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let job = &r.body;
    let id = job["id"].as_str().unwrap();
    let parts: Vec<&str> = id.split('.').collect();
    assert_eq!(parts.len(), 3, "{id}");
    assert_eq!(parts[0], "AD2AADProvisioning");
    assert!(parts[1].len() == 32 && parts[1].chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(parts[2].len(), 36);
    assert_eq!(job["templateId"], "AD2AADProvisioning");
    assert_eq!(job["schedule"], json!({"expiration": null, "interval": MAX_INTERVAL, "state": "Disabled"}));
    let s = &job["status"];
    assert_eq!(s["code"], "NotRun");
    assert!(s["lastExecution"].is_null() && s["lastSuccessfulExecution"].is_null() && s["quarantine"].is_null());
    assert_eq!(s["steadyStateFirstAchievedTime"], "0001-01-01T00:00:00Z");
    assert_eq!(s["steadyStateLastAchievedTime"], "0001-01-01T00:00:00Z");
    assert!(s["troubleshootingUrl"].is_null() || s["troubleshootingUrl"] == "");
    assert_eq!(s["progress"], json!([]));
    assert_eq!(s["synchronizedEntryCountByType"], json!([]));
    assert_eq!(s["countSuccessiveCompleteFailures"], 0);
    assert_eq!(s["escrowsPruned"], false);
    let settings = job["synchronizationJobSettings"].as_array().expect("settings are an array");
    let names: Vec<&str> = settings.iter().map(|kv| kv["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["Domain", "DomainFQDN", "DomainNetBios", "ForestFQDN", "ForestNetBios", "QuarantineTooManyDeletesThreshold"]
    );
    assert_eq!(settings[5]["value"], "500");
    assert!(
        job["@odata.context"]
            .as_str()
            .unwrap()
            .contains(&format!("servicePrincipals('{sp}')/synchronization/jobs/$entity"))
    );

    for body in [json!({"templateId": "ADDCInPassthrough"}), json!({}), json!({"templateId": 1})] {
        let r = env.post(&t, &jobs_path(&sp), Some(body)).await;
        assert_envelope(&r, 400, "BadRequest");
    }
    let r = env
        .post(&t, &jobs_path("00000000-0000-0000-0000-000000000000"), Some(json!({"templateId": "AD2AADProvisioning"})))
        .await;
    assert_envelope(&r, 404, "Request_ResourceNotFound");

    // A second job for the same template is allowed by the service, and counted.
    env.create_job(&t, &sp, "AD2AADProvisioning").await;
    env.create_job(&t, &sp, "AD2AADPasswordHash").await;
    let r = env.get(&t, &jobs_path(&sp)).await;
    assert_eq!(r.body["value"].as_array().unwrap().len(), 3);
    let c = env.sim.counters();
    assert_eq!((c.jobs_created, c.duplicate_jobs, c.peak_duplicate_jobs), (3, 1, 1));
}

#[tokio::test]
async fn url_encoded_and_two_part_ids() {
    let env = start().await;
    let t = env.token().await;
    let sp = env.sp(&t, "contoso.com").await;
    let job = env.create_job(&t, &sp, "AD2AADProvisioning").await;
    let id = job["id"].as_str().unwrap();
    let encoded = encode_id(id);
    assert!(encoded.contains("%2E"));
    let r = env.get(&t, &format!("{}/{encoded}", jobs_path(&sp))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["id"], id);
    let r = env.post(&t, &format!("{}/{encoded}/start", jobs_path(&sp)), None).await;
    assert_eq!(r.status, 204);
    // An old two-part id seeded through the control API.
    let r = env
        .control(
            Method::POST,
            &format!("/tenants/{TENANT}/servicePrincipals/{sp}/jobs"),
            Some(json!({"id": "AD2AADPasswordHash.fc96887f36da47508c935c28a0c0b6da"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = env.get(&t, &format!("{}/AD2AADPasswordHash.fc96887f36da47508c935c28a0c0b6da", jobs_path(&sp))).await;
    assert_eq!(r.body["templateId"], "AD2AADPasswordHash");
    let r = env.get(&t, &format!("{}/AD2AADProvisioning.nope", jobs_path(&sp))).await;
    assert_envelope(&r, 404, "Request_ResourceNotFound");
}

#[tokio::test]
async fn start_runs_executions_over_time() {
    // 600x: one execution takes ~33 ms, the 2-minute interval ~200 ms.
    let env = start_with(builder().speed(600.0)).await;
    let t = env.token().await;
    let sp = env.sp(&t, "contoso.com").await;
    let job = env.create_job(&t, &sp, "AD2AADProvisioning").await;
    let path = format!("{}/{}", jobs_path(&sp), encode_id(job["id"].as_str().unwrap()));
    assert_eq!(env.post(&t, &format!("{path}/start"), None).await.status, 204);
    let r = env.get(&t, &path).await;
    assert_eq!(r.body["schedule"]["state"], "Active");
    assert_eq!(r.body["schedule"]["interval"], "PT2M");
    assert_eq!(r.body["status"]["code"], "Active");

    let first = eventually(Duration::from_secs(5), || async {
        let r = env.get(&t, &path).await;
        (!r.body["status"]["lastExecution"].is_null()).then_some(r.body)
    })
    .await;
    let s = &first["status"];
    let exec = &s["lastExecution"];
    assert_eq!(exec["state"], "Succeeded");
    assert!(exec["error"].is_null());
    assert!(is_ts7(&exec["timeBegan"]) && is_ts7(&exec["timeEnded"]), "{exec}");
    assert!(exec["activityIdentifier"].as_str().is_some_and(|a| a.len() == 36));
    for counter in ["countEntitled", "countExported", "countImported", "countEscrowed", "countImportedDeltas"] {
        assert!(exec[counter].is_i64(), "{counter}");
    }
    assert!(exec["countExported"].as_i64().unwrap() > 0, "the initial cycle exports");
    assert!(is_ts7(&s["steadyStateFirstAchievedTime"]));
    assert_eq!(s["lastSuccessfulExecution"]["activityIdentifier"], exec["activityIdentifier"]);

    // Executions keep coming, one per interval.
    let later = eventually(Duration::from_secs(5), || async {
        let state = env.sim.state(TENANT).unwrap();
        let j =
            &state["servicePrincipals"].as_array().unwrap().iter().find(|s| s["id"] == sp.as_str()).unwrap()["jobs"][0];
        (j["executions"].as_u64().unwrap_or(0) >= 3).then(|| j.clone())
    })
    .await;
    assert_ne!(later["status"]["lastExecution"]["activityIdentifier"], exec["activityIdentifier"]);
    assert_eq!(later["status"]["steadyStateFirstAchievedTime"], s["steadyStateFirstAchievedTime"]);
    assert_ne!(later["status"]["steadyStateLastAchievedTime"], s["steadyStateLastAchievedTime"]);

    // Pause keeps progress and stops executions.
    assert_eq!(env.post(&t, &format!("{path}/pause"), None).await.status, 204);
    let paused = env.get(&t, &path).await.body;
    assert_eq!(paused["schedule"]["state"], "Paused");
    assert_eq!(paused["status"]["code"], "Paused");
    let activity = paused["status"]["lastExecution"]["activityIdentifier"].clone();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(env.get(&t, &path).await.body["status"]["lastExecution"]["activityIdentifier"], activity);
    // The tenant shows when it last synced.
    env.call(
        Method::PATCH,
        Some(&t),
        &format!("/beta/organization/{TENANT}"),
        Some(json!({"onPremisesSyncEnabled": true})),
    )
    .await;
    assert!(env.get(&t, "/beta/organization").await.body["value"][0]["onPremisesLastSyncDateTime"].is_string());
}

#[tokio::test]
async fn redundant_start_is_counted() {
    let env = start().await;
    let t = env.token().await;
    let sp = env.sp(&t, "contoso.com").await;
    let job = env.create_job(&t, &sp, "AD2AADProvisioning").await;
    let path = format!("{}/{}", jobs_path(&sp), job["id"].as_str().unwrap());
    for _ in 0..3 {
        assert_eq!(env.post(&t, &format!("{path}/start"), None).await.status, 204);
    }
    let c = env.sim.counters();
    assert_eq!((c.job_starts, c.redundant_starts), (3, 2));
    // Starting after a pause is not redundant.
    env.post(&t, &format!("{path}/pause"), None).await;
    env.post(&t, &format!("{path}/start"), None).await;
    assert_eq!(env.sim.counters().redundant_starts, 2);
}

#[tokio::test]
async fn quarantine_and_restart() {
    let env = start_with(builder().speed(600.0)).await;
    let t = env.token().await;
    let sp = env.sp(&t, "contoso.com").await;
    let job = env.create_job(&t, &sp, "AD2AADProvisioning").await;
    let id = job["id"].as_str().unwrap().to_owned();
    let path = format!("{}/{}", jobs_path(&sp), encode_id(&id));
    env.post(&t, &format!("{path}/start"), None).await;

    let r = env
        .control(
            Method::POST,
            &format!("/tenants/{TENANT}/servicePrincipals/{sp}/jobs/{id}/quarantine"),
            Some(
                json!({"reason": "EncounteredQuarantineException", "errorCode": "HybridIdentityServiceNoActiveAgents"}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let j = env.get(&t, &path).await.body;
    assert_eq!(j["status"]["code"], "Quarantine");
    assert_eq!(j["schedule"]["state"], "Active");
    let q = &j["status"]["quarantine"];
    for ts in ["currentBegan", "nextAttempt", "seriesBegan"] {
        assert!(is_ts7(&q[ts]), "{ts}: {q}");
    }
    assert!(q["seriesCount"].as_i64().unwrap() >= 1);
    assert_eq!(q["reason"], "EncounteredQuarantineException");
    assert_eq!(q["error"]["code"], "HybridIdentityServiceNoActiveAgents");
    assert!(q["error"]["message"].is_string() && q["error"]["tenantActionable"].is_boolean());
    assert_eq!(j["status"]["lastExecution"]["state"], "Failed");
    assert!(j["status"]["countSuccessiveCompleteFailures"].as_i64().unwrap() >= 1);

    // A restart that does not reset QuarantineState leaves it quarantined.
    let r =
        env.post(&t, &format!("{path}/restart"), Some(json!({"criteria": {"resetScope": "Watermark,Escrows"}}))).await;
    assert_eq!(r.status, 204);
    assert_eq!(env.get(&t, &path).await.body["status"]["code"], "Quarantine");
    let r = env
        .post(
            &t,
            &format!("{path}/restart"),
            Some(json!({"criteria": {"resetScope": "Watermark, Escrows, QuarantineState"}})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let j = env.get(&t, &path).await.body;
    assert_eq!(j["status"]["code"], "Active");
    assert!(j["status"]["quarantine"].is_null());
    let j = eventually(Duration::from_secs(5), || async {
        let b = env.get(&t, &path).await.body;
        (b["status"]["lastExecution"]["state"] == "Succeeded").then_some(b)
    })
    .await;
    assert_eq!(j["status"]["countSuccessiveCompleteFailures"], 0);

    // Start also clears quarantine; empty restart body is allowed; unknown flags are not.
    env.sim.quarantine_job(TENANT, &sp, &id, "TooManyDeletes", "TooManyDeletes").unwrap();
    assert_eq!(env.post(&t, &format!("{path}/start"), None).await.status, 204);
    assert_eq!(env.get(&t, &path).await.body["status"]["code"], "Active");
    assert_eq!(env.sim.counters().redundant_starts, 0, "a start on a quarantined job is not redundant");
    assert_eq!(env.post(&t, &format!("{path}/restart"), None).await.status, 204);
    assert_eq!(env.post(&t, &format!("{path}/restart"), Some(json!({}))).await.status, 204);
    assert_eq!(
        env.post(&t, &format!("{path}/restart"), Some(json!({"criteria": {"resetScope": "Full"}}))).await.status,
        204
    );
    let r = env
        .post(&t, &format!("{path}/restart"), Some(json!({"criteria": {"resetScope": "Watermark, Everything"}})))
        .await;
    assert_envelope(&r, 400, "BadRequest");
    let r = env
        .control(
            Method::POST,
            &format!("/tenants/{TENANT}/servicePrincipals/{sp}/jobs/{id}/quarantine"),
            Some(json!({"reason": "QuarantineOnDemand"})),
        )
        .await;
    assert_envelope(&r, 400, "BadRequest");
}

#[tokio::test]
async fn induced_execution_failure() {
    let env = start_with(builder().speed(600.0)).await;
    let t = env.token().await;
    let sp = env.sp(&t, "contoso.com").await;
    let id = env.create_job(&t, &sp, "AD2AADProvisioning").await["id"].as_str().unwrap().to_owned();
    let path = format!("{}/{id}", jobs_path(&sp));
    let r = env
        .control(
            Method::POST,
            &format!("/tenants/{TENANT}/servicePrincipals/{sp}/jobs/{id}/fail"),
            Some(json!({"errorCode": "HybridIdentityServiceNoActiveAgents"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    env.post(&t, &format!("{path}/start"), None).await;
    let j = eventually(Duration::from_secs(5), || async {
        let b = env.get(&t, &path).await.body;
        (b["status"]["countSuccessiveCompleteFailures"].as_i64().unwrap_or(0) >= 2).then_some(b)
    })
    .await;
    let e = &j["status"]["lastExecution"];
    assert_eq!(e["state"], "Failed");
    assert_eq!(e["error"]["code"], "HybridIdentityServiceNoActiveAgents");
    assert!(j["status"]["lastSuccessfulExecution"].is_null());
    assert_eq!(j["status"]["code"], "Active");
    let r =
        env.control(Method::DELETE, &format!("/tenants/{TENANT}/servicePrincipals/{sp}/jobs/{id}/fail"), None).await;
    assert_eq!(r.status, 200);
    eventually(Duration::from_secs(5), || async {
        let b = env.get(&t, &path).await.body;
        (b["status"]["lastExecution"]["state"] == "Succeeded").then_some(())
    })
    .await;
}

#[tokio::test]
async fn job_actions_and_delete() {
    let env = start().await;
    let t = env.token().await;
    let sp = env.sp(&t, "contoso.com").await;
    let id = env.create_job(&t, &sp, "AD2AADPasswordHash").await["id"].as_str().unwrap().to_owned();
    let path = format!("{}/{id}", jobs_path(&sp));
    assert_eq!(
        env.post(&t, &format!("{path}/validateCredentials"), Some(json!({"useSavedCredentials": true}))).await.status,
        204
    );
    assert_eq!(
        env.post(
            &t,
            &format!("{}/validateCredentials", jobs_path(&sp)),
            Some(json!({"templateId": "AD2AADProvisioning"}))
        )
        .await
        .status,
        204
    );
    let schema = env.get(&t, &format!("{path}/schema")).await;
    assert!(schema.body["synchronizationRules"].is_array());
    assert_eq!(
        env.call(
            Method::PUT,
            Some(&t),
            &format!("{path}/schema"),
            Some(json!({"directories": [], "synchronizationRules": []}))
        )
        .await
        .status,
        204
    );
    assert_eq!(env.get(&t, &format!("{path}/schema")).await.body["synchronizationRules"], json!([]));
    assert_eq!(env.call(Method::DELETE, Some(&t), &format!("{path}/schema"), None).await.status, 204);
    assert_envelope(&env.call(Method::PATCH, Some(&t), &path, Some(json!({}))).await, 405, "Request_BadRequest");

    assert_eq!(env.call(Method::DELETE, Some(&t), &path, None).await.status, 204);
    assert_envelope(&env.get(&t, &path).await, 404, "Request_ResourceNotFound");
    assert_envelope(&env.call(Method::DELETE, Some(&t), &path, None).await, 404, "Request_ResourceNotFound");
    assert_envelope(&env.post(&t, &format!("{path}/start"), None).await, 404, "Request_ResourceNotFound");
    assert_eq!(env.get(&t, &jobs_path(&sp)).await.body["value"], json!([]));
}

#[tokio::test]
async fn secrets() {
    let env = start().await;
    let t = env.token().await;
    let sp = env.sp(&t, "contoso.com").await;
    let path = format!("/beta/servicePrincipals/{sp}/synchronization/secrets");
    let domain = json!({"domain": "corp.contoso.com"}).to_string();
    let put = |body: Value| {
        let (env, t, path) = (&env, &t, &path);
        async move { env.call(Method::PUT, Some(t), path, Some(body)).await }
    };
    let r = put(json!({"value": [
        {"key": "Domain", "value": domain},
        {"key": "AppKey", "value": "{\"appKeyScenario\":\"AD2AADPasswordHash\"}"},
        {"key": "SyncNotificationSettings", "value": "{\"Enabled\":true,\"Recipients\":\"ops@contoso.com\",\"DeleteThresholdEnabled\":true,\"DeleteThresholdValue\":500}"},
    ]}))
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = env.get(&t, &path).await;
    assert_eq!(r.status, 200);
    assert!(r.body["@odata.context"].as_str().unwrap().contains("/synchronization/secrets"));
    assert_eq!(
        r.body["value"],
        json!([{"key": "Domain", "value": "*"}, {"key": "AppKey", "value": "*"}, {"key": "SyncNotificationSettings", "value": "*"}])
    );
    // The unmasked value is visible to tests only.
    let state = env.sim.state(TENANT).unwrap();
    let s = state["servicePrincipals"].as_array().unwrap().iter().find(|s| s["id"] == sp.as_str()).unwrap().clone();
    assert_eq!(s["secrets"][0], json!({"key": "Domain", "value": domain}));
    // Jobs pick the domain up in their settings.
    let job = env.create_job(&t, &sp, "AD2AADProvisioning").await;
    assert_eq!(job["synchronizationJobSettings"][1], json!({"name": "DomainFQDN", "value": "corp.contoso.com"}));

    // PUT replaces the whole set.
    assert_eq!(put(json!({"value": [{"key": "Domain", "value": domain}]})).await.status, 204);
    assert_eq!(env.get(&t, &path).await.body["value"], json!([{"key": "Domain", "value": "*"}]));

    // A JSON-typed secret that is not a JSON object: UnknownError wrapping a JSON message.
    let r = put(json!({"value": [{"key": "SyncNotificationSettings", "value": ""}]})).await;
    assert_envelope(&r, 400, "UnknownError");
    let wrapped: Value = serde_json::from_str(r.body["error"]["message"].as_str().unwrap()).unwrap();
    assert_eq!(wrapped["error"]["code"], "InvalidNotificationSettings");
    let r = put(json!({"value": [{"key": "Domain", "value": "corp.contoso.com"}]})).await;
    assert_envelope(&r, 400, "UnknownError");
    // The seed's malformed body (an object where a string belongs), unknown keys, no `value`.
    let r = put(json!({"value": [{"key": "Domain", "value": {"domain": "corp.contoso.com"}}]})).await;
    assert_envelope(&r, 400, "BadRequest");
    assert_envelope(&put(json!({"value": [{"key": "Domian", "value": "x"}]})).await, 400, "BadRequest");
    assert_envelope(&put(json!({"credentials": [{"key": "Domain", "value": domain}]})).await, 400, "BadRequest");
    // Failed PUTs changed nothing.
    assert_eq!(env.get(&t, &path).await.body["value"], json!([{"key": "Domain", "value": "*"}]));
    assert_eq!(env.sim.counters().secrets_puts, 2);
    assert_envelope(&env.call(Method::PATCH, Some(&t), &path, Some(json!({}))).await, 405, "Request_BadRequest");
}
