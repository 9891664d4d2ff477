//! Not touching what is not ours, and not doing things twice: two profiles never share one
//! configuration; an adopted configuration is neither pruned nor deleted; a job creation whose
//! answer is lost is waited for, not repeated.

use std::time::Duration;

use crate::support::kube_env::{client, namespace};
use crate::support::operator::*;
use cloudsync_operator::api::CloudSyncProfile;
use cloudsync_operator::graph::model::{PASSWORD_HASH_TEMPLATE, PROVISIONING_TEMPLATE};
use cloudsync_operator::graph::{ClientConfig, Credential, GraphClient, Overrides};
use cloudsync_sim::FaultSpec;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::DeleteParams;
use secrecy::SecretString;
use serde_json::json;

const CONVERGE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn two_profiles_never_share_one_configuration() {
    let client = client().await;
    let a = namespace(&client, "claim-a").await;
    let b = namespace(&client, "claim-b").await;
    let sim = simulator().await;
    create_secret(&client, &a).await;
    create_secret(&client, &b).await;
    let _op = Operator::start(&a, &sim, &["--namespace", &b]);
    let api_a: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &a);
    let api_b: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &b);

    apply(&api_a, &profile("first", json!({}))).await;
    wait_for(&api_a, "first", CONVERGE, "Ready", is_ready).await;
    // Same tenant, same display name (the domain), another namespace.
    apply(&api_b, &profile("second", json!({}))).await;
    let p = wait_for(&api_b, "second", CONVERGE, "ConfigurationClaimed", |p| {
        condition(p, "Ready").is_some_and(|c| c.reason == "ConfigurationClaimed")
    })
    .await;
    let msg = &condition(&p, "Ready").unwrap().message;
    assert!(msg.contains(&format!("{a}/first")) && msg.contains("spec.displayName"), "{msg}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let c = sim.counters();
    assert_eq!((c.instantiates, c.duplicate_service_principals), (1, 0));

    // Deleting the second touches nothing of the first's configuration.
    api_b.delete("second", &DeleteParams::default()).await.unwrap();
    wait_gone(&api_b, "second", CONVERGE).await;
    assert!(is_ready(&api_a.get("first").await.unwrap()));
    assert_eq!(sim.counters().deletes, 0);
}

#[tokio::test]
async fn an_adopted_configuration_is_neither_pruned_nor_deleted() {
    let client = client().await;
    let ns = namespace(&client, "adopt").await;
    let sim = simulator().await;
    create_secret(&client, &ns).await;
    // Someone set up cloud sync for contoso.com before the operator, with password hash sync.
    let url = url::Url::parse(&sim.url()).unwrap();
    let graph = GraphClient::new(ClientConfig {
        overrides: Overrides { graph: Some(url.clone()), login: Some(url) },
        ..ClientConfig::default()
    })
    .unwrap()
    .tenant(
        cloudsync_operator::api::Cloud::Global,
        TENANT,
        Credential::ClientSecret { client_id: CLIENT.into(), secret: SecretString::from(CLIENT_SECRET) },
    );
    let existing = graph.instantiate_cloud_sync("contoso.com").await.unwrap();
    let sp = existing.service_principal.id.clone();
    graph.create_job(&sp, PROVISIONING_TEMPLATE, true).await.unwrap();
    let phs = graph.create_job(&sp, PASSWORD_HASH_TEMPLATE, true).await.unwrap();
    sim.reset();

    let api: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &ns);
    let _op = Operator::start(&ns, &sim, &[]);
    // The profile does not ask for password hash sync, and its deletion policy is Delete.
    apply(&api, &profile("contoso", json!({"passwordHashSync": false}))).await;
    let p = wait_for(&api, "contoso", CONVERGE, "Ready", is_ready).await;
    let recorded = p.status.unwrap().service_principal.unwrap();
    assert_eq!((recorded.id.as_str(), recorded.adopted), (sp.as_str(), Some(true)));
    assert!(graph.get_job(&sp, &phs.id).await.is_ok(), "the adopted password hash job was left alone");
    assert_eq!(sim.counters().instantiates, 0);

    api.delete("contoso", &DeleteParams::default()).await.unwrap();
    wait_gone(&api, "contoso", CONVERGE).await;
    assert!(graph.service_principal(&sp, false).await.is_ok(), "an adopted configuration is not deleted");
    assert_eq!(sim.counters().deletes, 0);
    let events = Api::<Event>::namespaced(client.clone(), &ns).list(&Default::default()).await.unwrap().items;
    let reasons: Vec<_> = events.iter().filter_map(|e| e.reason.clone()).collect();
    assert!(
        reasons.contains(&"ServicePrincipalAdopted".into()) && reasons.contains(&"AdoptedLeftInPlace".into()),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn a_job_creation_whose_answer_is_lost_is_not_repeated() {
    let client = client().await;
    let ns = namespace(&client, "lostanswer").await;
    let sim = simulator().await;
    create_secret(&client, &ns).await;
    let api: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &ns);
    // The first job creation is carried out, but its answer comes after the operator gave up.
    sim.add_fault(
        FaultSpec::parse_cli(
            "kind=delay-response,ms=4000,method=POST,path=/beta/servicePrincipals/*/synchronization/jobs,times=1",
        )
        .unwrap(),
    )
    .unwrap();
    let _op = Operator::start(&ns, &sim, &["--graph-timeout-seconds", "1"]);
    apply(&api, &profile("contoso", json!({}))).await;
    let p = wait_for(&api, "contoso", CONVERGE, "Ready", is_ready).await;
    let c = sim.counters();
    assert_eq!((c.jobs_created, c.duplicate_jobs, c.peak_duplicate_jobs), (2, 0, 0), "{c:?}");
    let st = p.status.unwrap();
    assert_eq!(st.jobs.len(), 2);
    assert!(st.pending_job_creates.is_empty());
}

#[tokio::test]
async fn a_restart_whose_answer_is_lost_is_confirmed_or_sent_again_never_lost() {
    let client = client().await;
    let ns = namespace(&client, "lostrestart").await;
    let sim = simulator().await;
    create_secret(&client, &ns).await;
    let api: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &ns);
    let _op = Operator::start(&ns, &sim, &["--graph-timeout-seconds", "1"]);
    apply(&api, &profile("contoso", json!({}))).await;
    wait_for(&api, "contoso", CONVERGE, "Ready", is_ready).await;
    // Both restarts are carried out, but their answers come after the operator gave up: status
    // must not say "done" from the attempt alone, and must not lose the request either.
    sim.add_fault(
        FaultSpec::parse_cli(
            "kind=delay-response,ms=4000,method=POST,path=/beta/servicePrincipals/*/synchronization/jobs/*/restart,times=2",
        )
        .unwrap(),
    )
    .unwrap();
    patch_spec(&api, "contoso", json!({"restart": {"requestId": "r1", "resetScope": "Full"}})).await;
    let p = wait_for(&api, "contoso", CONVERGE, "restart r1 carried out", |p| {
        p.status.as_ref().and_then(|s| s.last_restart_request_id.as_deref()) == Some("r1")
    })
    .await;
    let st = p.status.unwrap();
    for j in &st.jobs {
        assert_eq!(j.last_restart_request_id.as_deref(), Some("r1"), "{j:?}");
        assert!(j.pending_restart.is_none(), "{j:?}");
    }
    // Counted where the simulator carries them out (an answer the client gave up on is not logged).
    let restarts = sim.counters().job_restarts;
    assert!(restarts >= 2, "each job got its restart: {restarts}");
    let events: Vec<String> = Api::<Event>::namespaced(client.clone(), &ns)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert!(events.iter().any(|r| r == "RestartConfirmed" || r == "JobRestarted"), "the outcome is told: {events:?}");
}
