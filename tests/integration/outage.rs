//! Outages of the control plane, on a plane of the test's own (`support::plane`) whose
//! kube-apiserver the test stops and starts (etcd and its data stay): an operator started while
//! the apiserver is down waits for it, live and not ready, and then converges; a running
//! operator's watches resume after an apiserver restart and lose no update.

use std::time::Duration;

use cloudsync_operator::api::CloudSyncProfile;
use kube::Api;
use serde_json::json;

use crate::support::kube_env::namespace;
use crate::support::operator::*;
use crate::support::plane::Plane;

const CONVERGE: Duration = Duration::from_secs(90);

async fn status_of(url: &str) -> u16 {
    reqwest::get(url).await.map(|r| r.status().as_u16()).unwrap_or(0)
}

/// The Domain secret the simulator holds for the tenant, as its state shows it.
fn sim_has_domain(sim: &cloudsync_sim::SimHandle, domain: &str) -> bool {
    sim.state(TENANT).is_some_and(|s| s.to_string().contains(&format!(r#"{{\"domain\":\"{domain}\"}}"#)))
}

#[tokio::test]
async fn started_while_the_apiserver_is_down_it_waits_live_not_ready_then_converges() {
    let plane = Plane::up();
    let client = plane.client().await;
    let ns = namespace(&client, "outage-start").await;
    create_secret(&client, &ns).await;
    let api: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &ns);
    apply(&api, &profile("contoso", json!({}))).await;
    plane.ok("stop-apiserver");

    let sim = simulator().await;
    let mut op = Operator::start_on(&plane.kubeconfig(), &ns, &sim, &[], &[]);
    let metrics = op.metrics_url().await;
    // Several attempts, each logged at warn with its number, and the process stays up.
    eventually(Duration::from_secs(30), "a third attempt logged", || op.logs().contains("attempt=3")).await;
    let logs = op.logs();
    assert!(logs.contains("WARN") && logs.contains("cannot reach the Kubernetes API"), "{logs}");
    assert!(op.is_running(), "it must not exit while the apiserver is down:\n{}", op.logs());
    assert_eq!(status_of(&format!("{metrics}/healthz")).await, 200, "live while it waits");
    assert_eq!(status_of(&format!("{metrics}/readyz")).await, 503, "not ready while it waits");
    assert!(sim.calls().iter().all(|c| c.api != "graph"), "no Graph call before Kubernetes answers");

    plane.ok("start-apiserver");
    let p = wait_for(&api, "contoso", CONVERGE, "Ready after the apiserver came back", is_ready).await;
    assert!(op.is_running(), "the same process converged it:\n{}", op.logs());
    assert!(p.status.as_ref().is_some_and(|s| s.service_principal.is_some()), "{:?}", p.status);
    assert!(sim_has_domain(&sim, "contoso.com"), "Graph holds the profile's domain");
    let c = sim.counters();
    assert_eq!((c.instantiates, c.duplicate_service_principals, c.duplicate_jobs), (1, 0, 0));
    let url = format!("{metrics}/readyz");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while status_of(&url).await != 200 {
        assert!(std::time::Instant::now() < deadline, "not ready after the apiserver came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(op.logs().contains("the Kubernetes API answers; starting"), "{}", op.logs());
}

#[tokio::test]
async fn after_an_apiserver_restart_a_spec_change_is_reconciled() {
    let plane = Plane::up();
    let client = plane.client().await;
    let ns = namespace(&client, "outage-restart").await;
    create_secret(&client, &ns).await;
    let api: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &ns);
    let sim = simulator().await;
    let mut op = Operator::start_on(&plane.kubeconfig(), &ns, &sim, &[], &[]);
    apply(&api, &profile("contoso", json!({}))).await;
    wait_for(&api, "contoso", CONVERGE, "Ready", is_ready).await;
    let metrics = op.metrics_url().await;
    assert_eq!(status_of(&format!("{metrics}/readyz")).await, 200);

    plane.ok("stop-apiserver");
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(op.is_running(), "it must not exit during the outage:\n{}", op.logs());
    assert_eq!(status_of(&format!("{metrics}/healthz")).await, 200, "live during the outage");
    plane.ok("start-apiserver");

    // Made right after the apiserver is back, while the operator's watch may still be backing
    // off: it must arrive by the watch's re-list or its resumed stream, and pass the predicate
    // filter (a new generation), or the store keeps the old spec and resyncs reconcile that.
    let changed = patch_spec(&api, "contoso", json!({"domain": "fabrikam.com"})).await;
    let generation = changed.metadata.generation;
    wait_for(&api, "contoso", CONVERGE, "the change reconciled", |p| {
        is_ready(p) && p.status.as_ref().and_then(|s| s.observed_generation) == generation
    })
    .await;
    assert!(sim_has_domain(&sim, "fabrikam.com"), "Graph holds the new domain");
    assert!(op.is_running(), "the same process reconciled it:\n{}", op.logs());
    assert_eq!(status_of(&format!("{metrics}/readyz")).await, 200, "readiness survived the restart");
    let c = sim.counters();
    assert_eq!((c.instantiates, c.duplicate_service_principals, c.duplicate_jobs), (1, 0, 0));
    assert!(!op.logs().contains("controller stopped unexpectedly"), "{}", op.logs());
}

/// Waiting cannot fix these, and the apiserver is up: the operator exits at once and says why.
#[tokio::test]
async fn a_missing_crd_forbidden_list_or_unreadable_kubeconfig_fails_fast() {
    let plane = Plane::bare();
    let sim = simulator().await;
    let fast = Duration::from_secs(20);

    let mut op = Operator::start_on(&plane.kubeconfig(), "default", &sim, &[], &[]);
    let status = op.wait_exit(fast);
    assert_eq!(status.code(), Some(1), "{}", op.logs());
    assert!(op.logs().contains("the CloudSyncProfile CRD is not installed"), "{}", op.logs());
    assert!(!op.logs().contains("attempt="), "no retry of a permanent problem:\n{}", op.logs());

    let mut op = Operator::start_on(&plane.unprivileged_kubeconfig(), "default", &sim, &[], &[]);
    let status = op.wait_exit(fast);
    assert_eq!(status.code(), Some(1), "{}", op.logs());
    assert!(op.logs().contains("not allowed to list CloudSyncProfiles in namespace default"), "{}", op.logs());
    assert!(!op.logs().contains("attempt="), "{}", op.logs());

    let garbage = plane.dir().join("garbage.kubeconfig");
    std::fs::write(&garbage, "clusters: [this is: not: a kubeconfig").unwrap();
    let mut op = Operator::start_on(&garbage, "default", &sim, &[], &[]);
    let status = op.wait_exit(fast);
    assert_eq!(status.code(), Some(1), "{}", op.logs());
    assert!(op.logs().contains("cannot read the Kubernetes client configuration"), "{}", op.logs());
    assert!(!op.logs().contains("attempt="), "{}", op.logs());
}

/// The conflicts the apiserver really answers are the ones the operator retries quickly: a write
/// with a stale resourceVersion (409), and a finalizer patch whose `test` saw an older list.
#[tokio::test]
async fn real_write_conflicts_are_recognised_as_conflicts() {
    use cloudsync_operator::controller::conflict::is_conflict;
    use cloudsync_operator::reconcile::Error;
    use kube::api::{Patch, PatchParams, PostParams};
    use kube::runtime::finalizer;

    let client = crate::support::kube_env::client().await;
    let ns = namespace(&client, "conflict").await;
    let api: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &ns);
    let stale = apply(&api, &profile("contoso", json!({}))).await;
    patch_spec(&api, "contoso", json!({"domain": "fabrikam.com"})).await;

    let mut write = stale.clone();
    write.status = Some(Default::default());
    let e = api.replace_status("contoso", &PostParams::default(), &write).await.unwrap_err();
    assert!(matches!(&e, kube::Error::Api(s) if s.code == 409), "{e:?}");
    assert!(is_conflict(&Error::Kube(e)));

    // What kube-runtime's finalizer helper sends to remove a finalizer it saw at index 0.
    let with_one = json!({"metadata": {"finalizers": ["example.com/other"]}});
    api.patch("contoso", &PatchParams::default(), &Patch::Merge(&with_one)).await.unwrap();
    let test_then_remove = json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": cloudsync_operator::api::FINALIZER},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ]);
    let request =
        http::Request::patch(format!("/apis/cloudsync.io/v1alpha1/namespaces/{ns}/cloudsyncprofiles/contoso"))
            .header("content-type", "application/json-patch+json")
            .body(serde_json::to_vec(&test_then_remove).unwrap())
            .unwrap();
    let e = client.request_text(request).await.unwrap_err();
    let seen = format!("{e:?}");
    assert!(is_conflict(&Error::Finalizer(Box::new(finalizer::Error::RemoveFinalizer(e)))), "{seen}");
    api.patch("contoso", &PatchParams::default(), &Patch::Merge(&json!({"metadata": {"finalizers": null}})))
        .await
        .unwrap();
}
