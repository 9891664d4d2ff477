//! What the operator exposes about itself: /metrics, /healthz, /readyz, and JSON logs with the
//! profile, tenant and Graph request-id fields.

use std::time::Duration;

use crate::support::kube_env::{client, namespace};
use crate::support::operator::*;
use cloudsync_operator::api::CloudSyncProfile;
use kube::Api;
use serde_json::json;

#[tokio::test]
async fn metrics_health_and_readiness_are_served() {
    let client = client().await;
    let ns = namespace(&client, "metrics").await;
    let sim = simulator().await;
    create_secret(&client, &ns).await;
    let api: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &ns);
    sim.add_fault(
        cloudsync_sim::FaultSpec::parse_cli("kind=status,status=429,retryAfter=1,path=/beta/servicePrincipals,times=1")
            .unwrap(),
    )
    .unwrap();
    let op = Operator::start(&ns, &sim, &[]);
    let base = op.metrics_url().await;
    let http = reqwest::Client::new();
    let r = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "/healthz answers as soon as the server is up");
    // /readyz follows once the watches have synced (the server starts before the first apiserver call).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = http.get(format!("{base}/readyz")).send().await.unwrap().status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "/readyz is 503 until ready");
        assert!(std::time::Instant::now() < deadline, "/readyz never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    apply(&api, &profile("contoso", json!({}))).await;
    wait_for(&api, "contoso", Duration::from_secs(60), "Ready", is_ready).await;
    let r = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = r.text().await.unwrap();
    for expected in [
        r#"cloudsync_reconciles_total{outcome="success"}"#,
        "cloudsync_reconcile_duration_seconds_count",
        r#"cloudsync_graph_requests_total{operation="applicationTemplates.instantiate",status="201"} 1"#,
        r#"cloudsync_graph_requests_total{operation="servicePrincipals.find",status="429"} 1"#,
        r#"cloudsync_graph_requests_total{operation="token",status="200"} 1"#,
        r#"cloudsync_graph_request_duration_seconds_count{operation="jobs.create"} 2"#,
        r#"cloudsync_graph_throttled_total{operation="servicePrincipals.find"} 1"#,
        r#"cloudsync_profiles{ready="true"} 1"#,
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    let wait: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("cloudsync_graph_retry_after_wait_seconds_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!((0.9..2.0).contains(&wait), "one Retry-After of 1 s waited out: {wait}");
    // Profile names appear only as the `profile` label of the per-profile gauges.
    for line in text.lines().filter(|l| l.contains("contoso")) {
        assert!(line.contains(r#"profile="contoso""#) && !line.starts_with("cloudsync_graph"), "{line}");
    }
}

#[tokio::test]
async fn json_logs_carry_profile_tenant_and_request_ids() {
    let client = client().await;
    let ns = namespace(&client, "jsonlogs").await;
    let sim = simulator().await;
    create_secret(&client, &ns).await;
    let api: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &ns);
    let op = Operator::start(&ns, &sim, &["--log-format", "json"]);
    apply(&api, &profile("contoso", json!({}))).await;
    wait_for(&api, "contoso", Duration::from_secs(60), "Ready", is_ready).await;
    let logs = op.logs();
    let lines: Vec<serde_json::Value> = logs.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(!lines.is_empty() && lines.len() == logs.lines().count(), "every line is JSON");
    let graph_call = lines
        .iter()
        .find(|l| l["message"] == "Graph call" && l["op"] == "applicationTemplates.instantiate")
        .expect("a Graph call line");
    assert_eq!(graph_call["status"], 201);
    assert!(graph_call["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(graph_call["span"]["profile"], format!("{ns}/contoso"));
    assert_eq!(graph_call["span"]["tenant"], TENANT);
}
