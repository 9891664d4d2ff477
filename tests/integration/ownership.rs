//! Ownership across installs and clusters: two operator processes with different `--cluster-id`
//! (two clusters, or two shards of one) and a profile each for the same configuration. The first
//! records itself in the service principal's `cloudsync.io/owner` tag; the second refuses the
//! configuration (`OwnedElsewhere`) without a write, and takes it over only when it is handed over:
//! the first profile deleted with `deletionPolicy: Orphan`, or the take-ownership annotation.

use std::time::Duration;

use crate::support::kube_env::{client, namespace};
use crate::support::operator::*;
use cloudsync_operator::api::CloudSyncProfile;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(60);

/// The one cloud sync service principal of the test tenant, as the simulator holds it.
fn the_service_principal(sim: &cloudsync_sim::SimHandle) -> Value {
    let state = sim.state(TENANT).expect("tenant");
    let ours: Vec<Value> = state["servicePrincipals"]
        .as_array()
        .expect("servicePrincipals")
        .iter()
        .filter(|sp| sp["displayName"] == "contoso.com")
        .cloned()
        .collect();
    assert_eq!(ours.len(), 1, "exactly one configuration: {ours:?}");
    ours[0].clone()
}

fn owner_tags(sp: &Value) -> Vec<String> {
    sp["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(Value::as_str)
        .filter(|t| t.starts_with("cloudsync.io/owner="))
        .map(str::to_string)
        .collect()
}

async fn reasons(client: &kube::Client, ns: &str) -> Vec<String> {
    let events = Api::<Event>::namespaced(client.clone(), ns).list(&Default::default()).await.expect("events");
    events.items.into_iter().filter_map(|e| e.reason).collect()
}

fn owned_elsewhere(p: &CloudSyncProfile) -> bool {
    condition(p, "Ready").is_some_and(|c| c.status == "False" && c.reason == "OwnedElsewhere")
}

/// Two installs, one configuration: refused without a write, then handed over by an Orphan delete.
#[tokio::test]
async fn a_configuration_owned_by_another_install_is_refused_until_handed_over() {
    let client = client().await;
    let a = namespace(&client, "own-east").await;
    let b = namespace(&client, "own-west").await;
    let sim = simulator().await;
    create_secret(&client, &a).await;
    create_secret(&client, &b).await;
    let _east = Operator::start(&a, &sim, &["--cluster-id", "east"]);
    let west = Operator::start(&b, &sim, &["--cluster-id", "west", "--user-action-retry-seconds", "2"]);
    let api_a: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &a);
    let api_b: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &b);

    apply(&api_a, &profile("first", json!({"deletionPolicy": "Orphan"}))).await;
    let first = wait_for(&api_a, "first", CONVERGE, "Ready", is_ready).await;
    let east_owner = format!("cloudsync-operator:east/{a}/first");
    let sp = the_service_principal(&sim);
    assert_eq!(owner_tags(&sp), [format!("cloudsync.io/owner={east_owner}")]);
    assert!(
        sp["tags"].as_array().unwrap().contains(&json!("WindowsAzureActiveDirectoryIntegratedApp")),
        "the other tags are kept: {sp}"
    );
    let recorded = first.status.unwrap().service_principal.unwrap();
    assert_eq!(recorded.owner.as_deref(), Some(east_owner.as_str()));

    // The other install: same tenant, same display name.
    sim.reset();
    apply(&api_b, &profile("second", json!({}))).await;
    let second = wait_for(&api_b, "second", CONVERGE, "OwnedElsewhere", owned_elsewhere).await;
    let msg = &condition(&second, "Ready").unwrap().message;
    assert!(
        msg.contains(&east_owner)
            && msg.contains("deletionPolicy: Orphan")
            && msg.contains("cloudsync.io/take-ownership"),
        "{msg}"
    );
    // A few of its retries (every 2 s) later: it wrote nothing to Graph.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let c = sim.counters();
    assert_eq!(
        (c.writes, c.instantiates, c.jobs_created, c.secrets_puts, c.job_starts, c.service_principal_patches),
        (0, 0, 0, 0, 0, 0),
        "{c:?}"
    );
    assert!(is_ready(&api_a.get("first").await.unwrap()), "the owner is undisturbed");
    assert!(reasons(&client, &b).await.contains(&"OwnedElsewhere".to_string()));

    // Hand-over: the first profile is deleted with deletionPolicy Orphan, which removes its tag.
    api_a.delete("first", &DeleteParams::default()).await.unwrap();
    wait_gone(&api_a, "first", CONVERGE).await;
    assert!(reasons(&client, &a).await.contains(&"OwnershipReleased".to_string()));
    let second = wait_for(&api_b, "second", CONVERGE, "Ready after the hand-over", is_ready).await;
    let west_owner = format!("cloudsync-operator:west/{b}/second");
    assert_eq!(owner_tags(&the_service_principal(&sim)), [format!("cloudsync.io/owner={west_owner}")]);
    let st = second.status.unwrap();
    let sp = st.service_principal.unwrap();
    assert_eq!((sp.id.as_str(), sp.owner.as_deref()), (recorded.id.as_str(), Some(west_owner.as_str())));
    assert_eq!(sp.adopted, Some(true), "it adopted what the first created");
    let c = sim.counters();
    assert_eq!(
        (c.instantiates, c.jobs_created, c.duplicate_service_principals, c.duplicate_jobs),
        (0, 0, 0, 0),
        "{c:?}"
    );
    assert_eq!(c.service_principal_patches, 2, "the release and the claim: {c:?}");
    assert!(reasons(&client, &b).await.contains(&"OwnershipClaimed".to_string()));
    drop(west);
}

/// An install that is gone cannot hand over: the annotation takes the configuration from the
/// owner it names, and the old profile, deleted later with `deletionPolicy: Delete`, leaves it.
#[tokio::test]
async fn the_take_ownership_annotation_takes_over_and_the_old_owner_deletes_nothing() {
    let client = client().await;
    let a = namespace(&client, "take-east").await;
    let b = namespace(&client, "take-west").await;
    let sim = simulator().await;
    create_secret(&client, &a).await;
    create_secret(&client, &b).await;
    let east_args = ["--cluster-id", "east"];
    let mut east = Operator::start(&a, &sim, &east_args);
    let _west = Operator::start(&b, &sim, &["--cluster-id", "west", "--user-action-retry-seconds", "2"]);
    let api_a: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &a);
    let api_b: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &b);

    apply(&api_a, &profile("first", json!({}))).await;
    wait_for(&api_a, "first", CONVERGE, "Ready", is_ready).await;
    let east_owner = format!("cloudsync-operator:east/{a}/first");
    // The first install goes away (its cluster is lost) without handing over.
    east.kill();

    apply(&api_b, &profile("second", json!({}))).await;
    wait_for(&api_b, "second", CONVERGE, "OwnedElsewhere", owned_elsewhere).await;
    sim.reset();
    // An annotation naming some other owner changes nothing.
    let annotate =
        |owner: &str| Patch::Merge(json!({"metadata": {"annotations": {"cloudsync.io/take-ownership": owner}}}));
    api_b.patch("second", &PatchParams::default(), &annotate("cloudsync-operator:elsewhere/x/y")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(owned_elsewhere(&api_b.get("second").await.unwrap()));
    assert_eq!(sim.counters().writes, 0, "{:?}", sim.counters());

    api_b.patch("second", &PatchParams::default(), &annotate(&east_owner)).await.unwrap();
    wait_for(&api_b, "second", CONVERGE, "Ready after taking over", is_ready).await;
    let west_owner = format!("cloudsync-operator:west/{b}/second");
    assert_eq!(owner_tags(&the_service_principal(&sim)), [format!("cloudsync.io/owner={west_owner}")]);

    // The old install comes back and its profile is deleted (deletionPolicy Delete): the
    // configuration is someone else's now, so it is left in Graph.
    east.restart(&a, &sim, &east_args);
    sim.reset();
    api_a.delete("first", &DeleteParams::default()).await.unwrap();
    wait_gone(&api_a, "first", CONVERGE).await;
    assert_eq!(sim.counters().deletes, 0, "{:?}", sim.counters());
    assert_eq!(owner_tags(&the_service_principal(&sim)), [format!("cloudsync.io/owner={west_owner}")]);
    assert!(reasons(&client, &a).await.contains(&"OwnedElsewhere".to_string()));
    assert!(is_ready(&api_b.get("second").await.unwrap()));
}
