//! Two operator processes with leader election: only the leader writes to Graph and to status; a
//! leader stopped with SIGTERM releases its Lease so the other takes over in about a second; a
//! killed leader is replaced once its Lease expires.

use std::time::{Duration, Instant};

use crate::support::kube_env::{client, namespace};
use crate::support::operator::*;
use cloudsync_operator::api::CloudSyncProfile;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use serde_json::json;

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("cloudsync-operator")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec?.holder_identity)
        .filter(|h| !h.is_empty())
}

async fn wait_holder(leases: &Api<Lease>, who: &str, timeout: Duration) -> Duration {
    let started = Instant::now();
    while holder(leases).await.as_deref() != Some(who) {
        assert!(
            started.elapsed() < timeout,
            "{who} did not get the lease within {timeout:?} (holder {:?})",
            holder(leases).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

fn elected(ns: &str, sim: &cloudsync_sim::SimHandle, name: &str, lease_seconds: &str) -> Operator {
    Operator::start_with_env(
        ns,
        sim,
        &["--leader-election", "--lease-namespace", ns, "--lease-duration-seconds", lease_seconds],
        &[("POD_NAME", name)],
    )
}

#[tokio::test]
async fn only_the_leader_acts_and_sigterm_hands_over_at_once() {
    let client = client().await;
    let ns = namespace(&client, "leader").await;
    let sim = simulator().await;
    create_secret(&client, &ns).await;
    let api: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &ns);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);

    let mut a = elected(&ns, &sim, "op-a", "15");
    wait_holder(&leases, "op-a", Duration::from_secs(30)).await;
    let b = elected(&ns, &sim, "op-b", "15");
    let b_metrics = b.metrics_url().await;

    apply(&api, &profile("contoso", json!({}))).await;
    wait_for(&api, "contoso", Duration::from_secs(60), "Ready", is_ready).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sim.counters().writes, 8, "one operator did the work, once");
    let events = Api::<Event>::namespaced(client.clone(), &ns).list(&Default::default()).await.unwrap().items;
    assert!(!events.is_empty());
    for e in &events {
        assert_eq!(e.reporting_instance.as_deref(), Some("op-a"), "only the leader reports: {e:?}");
    }
    let standby = reqwest::get(format!("{b_metrics}/metrics")).await.unwrap().text().await.unwrap();
    assert!(!standby.contains("cloudsync_graph_requests_total"), "the standby made no Graph call:\n{standby}");
    assert_eq!(reqwest::get(format!("{b_metrics}/readyz")).await.unwrap().status(), 200, "a standby is ready");

    // SIGTERM: the leader finishes, releases the lease, and the standby takes it at once rather
    // than after the 15 s lease duration.
    let stopped = Instant::now();
    let status = a.terminate();
    assert!(status.success(), "{status:?}");
    wait_holder(&leases, "op-b", Duration::from_secs(10)).await;
    let handover = stopped.elapsed();
    eprintln!("SIGTERM hand-over: {handover:?}");
    assert!(handover < Duration::from_secs(3), "hand-over took {handover:?}");

    // The new leader acts: a spec change is carried out.
    patch_spec(&api, "contoso", json!({"suspend": true})).await;
    wait_for(&api, "contoso", Duration::from_secs(30), "Suspended by the new leader", |p| {
        condition(p, "Suspended").is_some_and(|c| c.status == "True")
    })
    .await;
    let events = Api::<Event>::namespaced(client.clone(), &ns).list(&Default::default()).await.unwrap().items;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("JobPaused") && e.reporting_instance.as_deref() == Some("op-b"))
    );
    let c = sim.counters();
    assert_eq!((c.duplicate_service_principals, c.duplicate_jobs, c.redundant_starts), (0, 0, 0));
}

#[tokio::test]
async fn a_killed_leader_is_replaced_within_the_lease_time() {
    let client = client().await;
    let ns = namespace(&client, "leaderkill").await;
    let sim = simulator().await;
    create_secret(&client, &ns).await;
    let api: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &ns);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);

    let mut a = elected(&ns, &sim, "op-a", "4");
    wait_holder(&leases, "op-a", Duration::from_secs(30)).await;
    let _b = elected(&ns, &sim, "op-b", "4");
    apply(&api, &profile("contoso", json!({}))).await;
    wait_for(&api, "contoso", Duration::from_secs(60), "Ready", is_ready).await;

    let killed = Instant::now();
    a.kill();
    wait_holder(&leases, "op-b", Duration::from_secs(15)).await;
    let took = killed.elapsed();
    // The lease lasts 4 s from its last renewal; renewals come every few seconds.
    eprintln!("takeover after SIGKILL with a 4 s lease: {took:?}");
    assert!(took <= Duration::from_secs(8), "takeover after {took:?}");
    patch_spec(&api, "contoso", json!({"suspend": true})).await;
    wait_for(&api, "contoso", Duration::from_secs(30), "Suspended by the new leader", |p| {
        condition(p, "Suspended").is_some_and(|c| c.status == "True")
    })
    .await;
    assert_eq!(sim.counters().instantiates, 1);
}
