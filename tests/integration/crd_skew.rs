//! The operator under a CRD one release newer than itself (an upgrade that applied the CRD first,
//! or a rollback): a new optional field is ignored, a profile using a new enum value is reported
//! as unreadable on its own, and every other profile is reconciled as usual.
//!
//! The newer CRD is a superset of the current one, so tests running in parallel on the same
//! control plane are not affected while it is installed; the current CRD is put back at the end,
//! also when the test fails.

use std::time::{Duration, Instant};

use crate::support::kube_env::{client, namespace, repo_root};
use crate::support::operator::*;
use cloudsync_operator::api::CloudSyncProfile;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client};
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(60);
const CRD_NAME: &str = "cloudsyncprofiles.cloudsync.io";

/// The committed CRD, as JSON.
fn current_crd() -> Value {
    let text = std::fs::read_to_string(repo_root().join("crds/cloudsyncprofiles.cloudsync.io.yaml")).expect("read CRD");
    serde_yaml::from_str(&text).expect("parse CRD")
}

/// The committed CRD plus what the next release adds: an optional `spec.futureField` and an
/// `Archive` deletion policy.
fn newer_crd() -> Value {
    let mut crd = current_crd();
    let spec = &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    spec["futureField"] = json!({"type": "string", "description": "Added by the next release."});
    let policies = spec["deletionPolicy"]["enum"].as_array_mut().expect("deletionPolicy is an enum");
    policies.push(json!("Archive"));
    crd
}

/// Applies a CRD under the field manager the test support installs it with, so that putting the
/// current one back removes what the newer one added.
async fn install(client: &Client, crd: &Value) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(CRD_NAME, &PatchParams::apply("cloudsync-tests").force(), &Patch::Apply(crd)).await.expect("apply CRD");
    let established = await_condition(crds, CRD_NAME, conditions::is_crd_established());
    tokio::time::timeout(Duration::from_secs(30), established).await.expect("CRD established in 30s").expect("watch");
}

fn dynamic(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<CloudSyncProfile>(&()))
}

/// Applies `manifest` until the apiserver serves the newer schema (a CRD update reaches the
/// handlers shortly after the CRD is Established): it must accept the manifest and keep `keep`.
async fn apply_under_newer_crd(api: &Api<DynamicObject>, manifest: &Value, keep: &str) {
    let name = manifest["metadata"]["name"].as_str().expect("name");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match api.patch(name, &PatchParams::apply("cloudsync-tests").force(), &Patch::Apply(manifest)).await {
            Ok(obj) if obj.data["spec"].pointer(keep) == manifest["spec"].pointer(keep) => return,
            Ok(_) => eprintln!("{name}: {keep} pruned, the newer schema is not served yet"),
            Err(e) => eprintln!("{name}: refused ({e}), the newer schema is not served yet"),
        }
        assert!(Instant::now() < deadline, "the apiserver never served the newer CRD for {name}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn ready_condition(obj: &DynamicObject) -> Option<&Value> {
    obj.data["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready")
}

async fn unreadable_events(client: &Client, ns: &str, name: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("UnreadableSpec"))
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect()
}

#[tokio::test]
async fn a_newer_crd_stops_only_the_profile_this_version_cannot_read() {
    let client = client().await;
    install(&client, &newer_crd()).await;
    let outcome = tokio::spawn(skewed(client.clone())).await;
    install(&client, &current_crd()).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn skewed(client: Client) {
    let ns = namespace(&client, "crdskew").await;
    let sim = simulator().await;
    create_secret(&client, &ns).await;
    let raw = dynamic(&client, &ns);
    let api: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &ns);

    // All three exist before the operator starts: its first list holds the unreadable one.
    apply_under_newer_crd(&raw, &profile("current", json!({})), "/domain").await;
    apply_under_newer_crd(
        &raw,
        &profile("future", json!({"domain": "fabrikam.com", "futureField": "from the next release"})),
        "/futureField",
    )
    .await;
    apply_under_newer_crd(
        &raw,
        &profile("archive", json!({"domain": "northwind.com", "deletionPolicy": "Archive"})),
        "/deletionPolicy",
    )
    .await;
    let op = Operator::start(&ns, &sim, &[]);

    wait_for(&api, "current", CONVERGE, "current Ready", is_ready).await;
    let future = wait_for(&api, "future", CONVERGE, "future Ready", is_ready).await;
    assert_eq!(future.spec.domain, "fabrikam.com");

    // The unreadable one: a condition and an Event naming the field and what to do.
    let deadline = Instant::now() + CONVERGE;
    let archive = loop {
        let obj = raw.get("archive").await.expect("get archive");
        if ready_condition(&obj).is_some_and(|c| c["reason"] == "UnreadableSpec") {
            break obj;
        }
        assert!(
            Instant::now() < deadline,
            "no UnreadableSpec condition; status: {}\nlogs:\n{}",
            obj.data["status"],
            op.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ready = ready_condition(&archive).expect("Ready");
    assert_eq!(ready["status"], "False");
    let message = ready["message"].as_str().expect("message");
    for part in ["spec.deletionPolicy", "Archive", "upgrade the operator", "change the manifest"] {
        assert!(message.contains(part), "{part:?} not in {message:?}");
    }
    let generation = archive.metadata.generation.expect("generation");
    assert_eq!(archive.data["status"]["observedGeneration"], json!(generation));
    assert_eq!(ready["observedGeneration"], json!(generation));
    let events = unreadable_events(&client, &ns, "archive").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].type_.as_deref(), Some("Warning"));
    assert!(events[0].note.as_deref().is_some_and(|n| n.contains("spec.deletionPolicy")), "{:?}", events[0].note);

    // It keeps running, and leaves the unreadable profile alone: no retry loop (the others are
    // resynced every 2 s meanwhile).
    let metrics = op.metrics_url().await;
    let version = archive.metadata.resource_version.clone();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(reqwest::get(format!("{metrics}/healthz")).await.expect("healthz").status(), 200);
    assert_eq!(raw.get("archive").await.expect("get archive").metadata.resource_version, version, "no further writes");
    let events = unreadable_events(&client, &ns, "archive").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].series, None, "published once, not repeated: {:?}", events[0].series);
    assert!(is_ready(&api.get("current").await.expect("current")), "the others stay Ready");

    // Fixed by its owner: reconciled like any other profile.
    raw.patch("archive", &PatchParams::default(), &Patch::Merge(json!({"spec": {"deletionPolicy": "Delete"}})))
        .await
        .expect("fix the profile");
    let fixed = wait_for(&api, "archive", CONVERGE, "archive Ready once fixed", is_ready).await;
    assert_eq!(condition(&fixed, "Ready").map(|c| c.reason.as_str()), Some("Ready"));
    let c = sim.counters();
    assert_eq!((c.duplicate_service_principals, c.duplicate_jobs), (0, 0));
    assert!(!op.logs().contains("error:"), "{}", op.logs());
}
