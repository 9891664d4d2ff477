//! Fault injection and introspection of the Graph simulator.

use std::time::{Duration, Instant};

use crate::support::*;
use cloudsync_sim::FaultSpec;
use reqwest::Method;
use serde_json::json;

fn spec(s: &str) -> FaultSpec {
    FaultSpec::parse_cli(s).expect("fault spec")
}

#[tokio::test]
async fn throttling_with_retry_after_and_early_retries() {
    let env = start().await;
    let t = env.token().await;
    let r = env
        .control(
            Method::POST,
            "/faults",
            Some(json!({"tenant": TENANT, "method": "GET", "path": "/beta/organization", "kind": "status", "status": 429, "retryAfter": 1, "times": 1})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.body["id"].is_u64());

    let r = env.get(&t, "/beta/organization").await;
    assert_envelope(&r, 429, "TooManyRequests");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(r.header("x-ms-throttle-scope").unwrap().starts_with("Tenant_Application/"));
    // Other paths are not throttled.
    assert_eq!(env.get(&t, "/beta/servicePrincipals").await.status, 200);
    // Coming back at once is an early retry: 429 again, window restarted, counted.
    let r = env.get(&t, "/beta/organization").await;
    assert_envelope(&r, 429, "TooManyRequests");
    assert_eq!(r.header("retry-after"), Some("1"));
    let c = env.sim.counters();
    assert_eq!((c.early_retries, c.throttled, c.faults_injected), (1, 2, 1));
    let calls = env.sim.calls();
    let flagged: Vec<bool> = calls.iter().filter(|c| c.path == "/beta/organization").map(|c| c.early_retry).collect();
    assert_eq!(flagged, [false, true]);
    // A client that waits is served and not counted.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(env.get(&t, "/beta/organization").await.status, 200);
    assert_eq!(env.sim.counters().early_retries, 1);
    let calls = env.control(Method::GET, "/calls", None).await.body;
    let last = calls.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["earlyRetry"], false);
    assert_eq!(last["status"], 200);
    for field in ["method", "path", "query", "status", "tenant", "clientId", "time", "clientRequestId", "earlyRetry"] {
        assert!(last.get(field).is_some(), "call record lacks {field}");
    }
}

#[tokio::test]
async fn server_errors_and_code_override() {
    let env = start().await;
    let t = env.token().await;
    env.sim.add_fault(spec("kind=status,status=503,retryAfter=0,times=1,path=/*/servicePrincipals")).unwrap();
    env.sim.add_fault(spec("kind=status,status=500,times=1,method=POST")).unwrap();
    env.sim.add_fault(spec("kind=status,status=504,times=1,path=/v1.0/**")).unwrap();
    env.sim
        .add_fault(spec("kind=status,status=429,times=1,path=/beta/applications,code=activityLimitReached"))
        .unwrap();
    let r = env.get(&t, "/v1.0/servicePrincipals").await;
    assert_envelope(&r, 503, "serviceNotAvailable");
    assert_eq!(r.header("retry-after"), Some("0"));
    let r = env.get(&t, "/v1.0/organization").await;
    assert_envelope(&r, 504, "GatewayTimeout");
    let r = env
        .post(&t, &format!("/beta/applicationTemplates/{TEMPLATE}/instantiate"), Some(json!({"displayName": "x"})))
        .await;
    assert_envelope(&r, 500, "generalException");
    let r = env.get(&t, "/beta/applications").await;
    assert_envelope(&r, 429, "activityLimitReached");
    assert!(r.header("retry-after").is_none());
    // All rules were times=1.
    assert_eq!(env.get(&t, "/v1.0/servicePrincipals").await.status, 200);
    assert_eq!(env.sim.counters().instantiates, 0, "the 500 happened before the handler");
    assert_eq!(env.get(&t, "/beta/applications").await.status, 200);
    let faults = env.control(Method::GET, "/faults", None).await.body;
    assert_eq!(faults.as_array().unwrap().len(), 4);
    assert_eq!(faults[0]["remaining"], 0);
    assert_eq!(env.control(Method::DELETE, "/faults", None).await.status, 204);
    assert_eq!(env.control(Method::GET, "/faults", None).await.body, json!([]));
    let r = env.control(Method::POST, "/faults", Some(json!({"kind": "status", "status": 200}))).await;
    assert_envelope(&r, 400, "BadRequest");
    let r = env.control(Method::POST, "/faults", Some(json!({"kind": "explode"}))).await;
    assert_envelope(&r, 400, "BadRequest");
}

#[tokio::test]
async fn latency() {
    let env = start().await;
    let t = env.token().await;
    let id = env.sim.add_fault(spec("kind=latency,ms=300,path=/beta/organization")).unwrap();
    let started = Instant::now();
    assert_eq!(env.get(&t, "/beta/organization").await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(env.sim.remove_fault(id));
    let started = Instant::now();
    env.get(&t, "/beta/organization").await;
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn instantiate_404_after_create() {
    let env = start().await;
    let t = env.token().await;
    env.sim
        .add_fault(spec("tenant=*,method=POST,path=/beta/applicationTemplates/*/instantiate,kind=instantiate-404-after-create,times=1"))
        .unwrap();
    let r = env
        .post(
            &t,
            &format!("/beta/applicationTemplates/{TEMPLATE}/instantiate"),
            Some(json!({"displayName": "contoso.com"})),
        )
        .await;
    assert_envelope(&r, 404, "NotFound");
    assert_eq!(
        r.body["error"]["message"],
        "Graph call failed with httpCode=NotFound, errorCode=, errorMessage=, reason=Not Found."
    );
    // The objects exist anyway.
    let r = env
        .get(
            &t,
            &format!(
                "/beta/servicePrincipals?$filter=applicationTemplateId eq '{TEMPLATE}' and displayName eq 'contoso.com'"
            ),
        )
        .await;
    assert_eq!(r.body["value"].as_array().unwrap().len(), 1);
    let r = env
        .get(
            &t,
            &format!(
                "/beta/applications?$filter=applicationTemplateId eq '{TEMPLATE}' and displayName eq 'contoso.com'"
            ),
        )
        .await;
    assert_eq!(r.body["value"].as_array().unwrap().len(), 1);
    assert_eq!(env.sim.counters().instantiates, 1);
    assert_eq!(
        env.sim.calls().iter().find(|c| c.status == 404).and_then(|c| c.fault.clone()).as_deref(),
        Some("instantiate-404-after-create")
    );
    // A naive retry makes a duplicate.
    env.instantiate(&t, "contoso.com").await;
    assert_eq!(env.sim.counters().duplicate_service_principals, 1);
}

#[tokio::test]
async fn not_found_and_forbidden_windows_after_create() {
    // 10x: a 5 s service-time window lasts 0.5 s.
    let env = start_with(builder().speed(10.0)).await;
    let t = env.token().await;
    env.sim.add_fault(spec("kind=not-found-after-create,seconds=5")).unwrap();
    let sp = env.sp(&t, "contoso.com").await;
    let r = env.get(&t, &format!("/beta/servicePrincipals/{sp}")).await;
    assert_envelope(&r, 404, "Request_ResourceNotFound");
    let r = env
        .post(
            &t,
            &format!("/beta/servicePrincipals/{sp}/synchronization/jobs"),
            Some(json!({"templateId": "AD2AADProvisioning"})),
        )
        .await;
    assert_envelope(&r, 404, "Request_ResourceNotFound");
    eventually(Duration::from_secs(3), || async {
        (env.get(&t, &format!("/beta/servicePrincipals/{sp}")).await.status == 200).then_some(())
    })
    .await;
    env.create_job(&t, &sp, "AD2AADProvisioning").await;

    env.sim.clear_faults();
    env.sim
        .add_fault(spec("kind=forbidden-after-create,seconds=5,path=/beta/servicePrincipals/*/synchronization/**"))
        .unwrap();
    let sp2 = env.sp(&t, "fabrikam.com").await;
    assert_eq!(env.get(&t, &format!("/beta/servicePrincipals/{sp2}")).await.status, 200, "path glob limits the rule");
    let r = env.get(&t, &format!("/beta/servicePrincipals/{sp2}/synchronization/jobs")).await;
    assert_envelope(&r, 403, "Authorization_RequestDenied");
    eventually(Duration::from_secs(3), || async {
        (env.get(&t, &format!("/beta/servicePrincipals/{sp2}/synchronization/jobs")).await.status == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn list_lag() {
    let env = start_with(builder().speed(10.0)).await;
    let t = env.token().await;
    env.sim.add_fault(spec("kind=list-lag,seconds=5")).unwrap();
    let sp = env.sp(&t, "contoso.com").await;
    let query = format!(
        "/beta/servicePrincipals?$filter=applicationTemplateId eq '{TEMPLATE}' and displayName eq 'contoso.com'"
    );
    assert_eq!(env.get(&t, &query).await.body["value"], json!([]), "fresh object invisible to lists");
    assert_eq!(env.get(&t, &format!("/beta/servicePrincipals/{sp}")).await.status, 200, "but readable by id");
    eventually(Duration::from_secs(3), || async {
        (env.get(&t, &query).await.body["value"].as_array()?.len() == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn reset_clears_calls_and_counters_not_state() {
    let env = start().await;
    let t = env.token().await;
    env.sp(&t, "contoso.com").await;
    assert!(env.sim.counters().writes >= 1);
    assert_eq!(env.control(Method::POST, "/reset", None).await.status, 204);
    let c = env.control(Method::GET, "/counters", None).await.body;
    assert_eq!(c["writes"], 0);
    assert_eq!(c["instantiates"], 0);
    assert_eq!(env.control(Method::GET, "/calls", None).await.body, json!([]));
    let r = env.get(&t, "/beta/servicePrincipals?$filter=displayName eq 'contoso.com'").await;
    assert_eq!(r.body["value"].as_array().unwrap().len(), 1);
    assert_eq!(env.control(Method::DELETE, "/calls", None).await.status, 204);
    let per_tenant = env.control(Method::GET, &format!("/counters?tenant={TENANT}"), None).await.body;
    assert_eq!(per_tenant["reads"], 0);
    for name in [
        "reads",
        "writes",
        "earlyRetries",
        "duplicateServicePrincipals",
        "duplicateJobs",
        "redundantStarts",
        "instantiates",
    ] {
        assert!(per_tenant.get(name).is_some(), "{name}");
    }
    let state = env.control(Method::GET, &format!("/tenants/{TENANT}/state"), None).await;
    assert_eq!(state.status, 200);
    assert_eq!(state.body["servicePrincipals"].as_array().unwrap().len(), 2);
    assert_envelope(&env.control(Method::GET, "/tenants/nope/state", None).await, 404, "Request_ResourceNotFound");
}

#[tokio::test]
async fn delay_response_applies_the_write_before_answering() {
    let env = start().await;
    let t = env.token().await;
    env.sim
        .add_fault(spec(
            "kind=delay-response,ms=1500,method=POST,path=/beta/applicationTemplates/*/instantiate,times=1",
        ))
        .unwrap();
    let http = env.http.clone();
    let url = format!("{}/beta/applicationTemplates/{TEMPLATE}/instantiate", env.sim.url());
    let token = t.clone();
    let started = Instant::now();
    let pending = tokio::spawn(async move {
        http.post(url)
            .bearer_auth(token)
            .json(&json!({"displayName": "held.contoso.com"}))
            .send()
            .await
            .map(|r| r.status())
    });
    // The objects exist while the answer is still held back.
    eventually(Duration::from_secs(1), || async { (env.sim.counters().instantiates == 1).then_some(()) }).await;
    assert!(!pending.is_finished(), "the answer is still held");
    assert_eq!(pending.await.unwrap().unwrap().as_u16(), 201);
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let calls = env.sim.calls();
    assert_eq!(calls.last().unwrap().fault.as_deref(), Some("delay-response"));
}

#[tokio::test]
async fn performed_504_carries_the_write_out_then_answers_gateway_timeout() {
    let env = start().await;
    let t = env.token().await;
    env.sim
        .add_fault(spec("kind=performed-504,method=POST,path=/beta/applicationTemplates/*/instantiate,times=1"))
        .unwrap();
    let path = format!("/beta/applicationTemplates/{TEMPLATE}/instantiate");
    let r = env.post(&t, &path, Some(json!({"displayName": "gateway.contoso.com"}))).await;
    assert_envelope(&r, 504, "GatewayTimeout");
    // The write happened: the service principal and its application exist and are listed.
    assert_eq!(env.sim.counters().instantiates, 1);
    let state = env.sim.state(TENANT).unwrap();
    let sps: Vec<&str> = state["servicePrincipals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["displayName"] == "gateway.contoso.com")
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(sps.len(), 1, "{state}");
    let sp = sps[0].to_owned();
    let listed = env.get(&t, &format!("/beta/servicePrincipals/{sp}")).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    // A job creation under it, answered 504 too, is there in the next list.
    env.sim
        .add_fault(spec("kind=performed-504,method=POST,path=/beta/servicePrincipals/*/synchronization/jobs"))
        .unwrap();
    let r = env
        .post(
            &t,
            &format!("/beta/servicePrincipals/{sp}/synchronization/jobs"),
            Some(json!({"templateId": "AD2AADProvisioning"})),
        )
        .await;
    assert_envelope(&r, 504, "GatewayTimeout");
    let jobs = env.get(&t, &format!("/beta/servicePrincipals/{sp}/synchronization/jobs")).await;
    assert_eq!(jobs.status, 200, "GETs are not hit by a method=POST rule");
    assert_eq!(jobs.body["value"].as_array().map(Vec::len), Some(1), "{}", jobs.text);
    let calls = env.sim.calls();
    let hit: Vec<(u16, Option<&str>)> = calls
        .iter()
        .filter(|c| c.method == "POST" && c.api == "graph")
        .map(|c| (c.status, c.fault.as_deref()))
        .collect();
    assert_eq!(hit, [(504, Some("performed-504")), (504, Some("performed-504"))]);
    assert_eq!(env.sim.counters().faults_injected, 2);
}

#[tokio::test]
async fn probability_hits_about_that_share_of_calls_and_repeats_from_its_seed() {
    let env = start().await;
    let t = env.token().await;
    let mut runs = Vec::new();
    for _ in 0..2 {
        let id = env
            .sim
            .add_fault(spec("kind=status,status=503,retryAfter=0,p=0.3,seed=42,path=/beta/organization"))
            .unwrap();
        let mut statuses = Vec::new();
        for _ in 0..100 {
            statuses.push(env.get(&t, "/beta/organization").await.status);
        }
        assert!(env.sim.remove_fault(id));
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1], "the same seed draws the same calls");
    let hit = runs[0].iter().filter(|s| **s == 503).count();
    assert!((10..55).contains(&hit), "about 30 of 100: {hit}");
    assert!(runs[0].iter().all(|s| *s == 200 || *s == 503));
}

#[tokio::test]
async fn a_token_endpoint_outage_refuses_tokens_and_leaves_graph_alone() {
    let env = start().await;
    let t = env.token().await;
    let id =
        env.sim.add_fault(spec(&format!("api=token,tenant={TENANT},kind=status,status=503,retryAfter=2"))).unwrap();
    let form =
        [("grant_type", "client_credentials"), ("client_id", CLIENT), ("client_secret", SECRET), ("scope", SCOPE)];
    let r = env.token_response(TENANT, &form).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.body["error"], "temporarily_unavailable");
    assert_eq!(r.header("retry-after"), Some("2"));
    assert!(r.body.get("access_token").is_none());
    // Graph still answers a token issued before the outage.
    assert_eq!(env.get(&t, "/beta/organization").await.status, 200);
    assert!(env.sim.remove_fault(id));
    assert_eq!(env.token_response(TENANT, &form).await.status, 200, "the outage ended with its rule");
    let token_calls: Vec<(u16, Option<String>)> =
        env.sim.calls().into_iter().filter(|c| c.api == "token").map(|c| (c.status, c.fault)).collect();
    assert_eq!(token_calls[1..], [(503, Some("status".to_string())), (200, None)]);
}

#[tokio::test]
async fn the_call_log_reads_as_text_for_people() {
    let env = start().await;
    let t = env.token().await;
    env.get(&t, "/beta/organization").await;
    let text =
        env.http.get(format!("{}/_sim/calls?format=text", env.sim.url())).send().await.unwrap().text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("POST") && lines[0].contains("/oauth2/v2.0/token"), "{text}");
    assert!(lines[1].contains("GET") && lines[1].contains("200") && lines[1].ends_with("/beta/organization"), "{text}");
}
