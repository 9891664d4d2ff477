//! The operator end to end: a real kube-apiserver, the Graph simulator over HTTP, and the
//! `cloudsync-operator run` binary. Graph calls are counted by the simulator.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::kube_env::{client, namespace};
use crate::support::operator::*;
use cloudsync_operator::api::CloudSyncProfile;
use cloudsync_sim::{FaultSpec, SimHandle};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use serde_json::json;

const CONVERGE: Duration = Duration::from_secs(60);

/// Non-GET Graph calls as "METHOD /path-with-ids-replaced".
fn writes(sim: &SimHandle) -> Vec<String> {
    sim.calls()
        .into_iter()
        .filter(|c| c.api == "graph" && c.method != "GET")
        .map(|c| {
            let path: Vec<&str> = c.path.split('/').map(|s| if s.len() > 30 { "{id}" } else { s }).collect();
            format!("{} {}", c.method, path.join("/"))
        })
        .collect()
}

/// GET Graph calls as "/path-with-ids-replaced", in order.
fn reads(sim: &SimHandle) -> Vec<String> {
    sim.calls()
        .into_iter()
        .filter(|c| c.api == "graph" && c.method == "GET")
        .map(|c| c.path.split('/').map(|s| if s.len() > 30 { "{id}" } else { s }).collect::<Vec<_>>().join("/"))
        .collect()
}

/// Status writes of one profile as a watch sees them: an event whose status differs from the one
/// before (as benches/scale.rs counts them), up to the first event that reads Ready.
struct StatusWrites {
    writes: u32,
    at_ready: Option<u32>,
}

/// Starts the watch and returns once it is established, so that no write of the profile (which
/// must not exist yet) is missed.
async fn watch_status_writes(api: &Api<CloudSyncProfile>, name: &str) -> Arc<Mutex<StatusWrites>> {
    use futures::StreamExt;
    use kube::runtime::watcher;
    let counted = Arc::new(Mutex::new(StatusWrites { writes: 0, at_ready: None }));
    let (established, ready) = tokio::sync::oneshot::channel();
    let (api, config, out) =
        (api.clone(), watcher::Config::default().fields(&format!("metadata.name={name}")), counted.clone());
    tokio::spawn(async move {
        let mut established = Some(established);
        let mut last: Option<serde_json::Value> = None;
        let mut events = watcher(api, config).boxed();
        while let Some(ev) = events.next().await {
            let p = match ev {
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = established.take() {
                        let _ = tx.send(());
                    }
                    continue;
                }
                Ok(_) => continue,
                Err(e) => panic!("the watch failed, status writes would be missed: {e}"),
            };
            let status = serde_json::to_value(&p.status).expect("status as JSON");
            let mut c = counted.lock().expect("status writes");
            if last.as_ref().is_some_and(|l| *l != status) {
                c.writes += 1;
            }
            last = Some(status);
            if c.at_ready.is_none() && is_ready(&p) {
                c.at_ready = Some(c.writes);
            }
        }
    });
    ready.await.expect("watch established");
    out
}

async fn events(client: &kube::Client, ns: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), ns).list(&ListParams::default()).await.expect("events").items
}

fn reasons(events: &[Event]) -> Vec<String> {
    events.iter().filter_map(|e| e.reason.clone()).collect()
}

struct Setup {
    client: kube::Client,
    ns: String,
    api: Api<CloudSyncProfile>,
    sim: SimHandle,
    op: Operator,
}

async fn setup(prefix: &str, with_secret: bool) -> Setup {
    let client = client().await;
    let ns = namespace(&client, prefix).await;
    let sim = simulator().await;
    if with_secret {
        create_secret(&client, &ns).await;
    }
    let api = Api::namespaced(client.clone(), &ns);
    let op = Operator::start(&ns, &sim, &[]);
    Setup { client, ns, api, sim, op }
}

#[tokio::test]
/// The test profile has password hash sync, so its schema gets CredentialData: the seventh write.
/// The eighth is the owner tag on the service principal. Status is patched four times: the
/// instantiate intent; the new id with the job-create intents (the owner tag, job creations and
/// secrets go out in one wave right after the instantiate, with no read between); the start
/// intents; the conditions.
async fn a_new_profile_is_ready_after_eight_graph_writes_and_four_status_writes_then_costs_one_jobs_read_per_resync() {
    let s = setup("converge", true).await;
    let status_writes = watch_status_writes(&s.api, "contoso").await;
    apply(&s.api, &profile("contoso", json!({}))).await;
    let p = wait_for(&s.api, "contoso", CONVERGE, "Ready", is_ready).await;
    let at_ready = status_writes.lock().expect("status writes").at_ready;
    assert_eq!(at_ready, Some(4), "status writes until Ready, counted by a watch");

    // Reads: the lookup by name, the job's schema, and one jobs list (after the starts); none
    // between the instantiate and the job creations. Not the template's default: password hash
    // sync alone adds CredentialData to the job's own schema. A resync (every 2 s here) may have
    // added its jobs list since Ready.
    let r = reads(&s.sim);
    assert_eq!(
        r[..3.min(r.len())],
        [
            "/beta/servicePrincipals",
            "/beta/servicePrincipals/{id}/synchronization/jobs/{id}/schema",
            "/beta/servicePrincipals/{id}/synchronization/jobs",
        ],
        "{r:?}"
    );
    assert!(r[3..].iter().all(|p| p.ends_with("/synchronization/jobs")), "then only resyncs: {r:?}");
    let order: Vec<String> = s.sim.calls().into_iter().filter(|c| c.api == "graph").map(|c| c.method).collect();
    // Lookup, instantiate, then the first wave at once (in any order): owner tag, two jobs, secrets.
    assert_eq!(order[..2], ["GET", "POST"], "{order:?}");
    assert!(order[2..6].iter().all(|m| m != "GET"), "no read between instantiate and the first wave: {order:?}");

    let mut w = writes(&s.sim);
    w.sort();
    assert_eq!(
        w,
        [
            "PATCH /beta/servicePrincipals/{id}",
            "POST /beta/applicationTemplates/{id}/instantiate",
            "POST /beta/servicePrincipals/{id}/synchronization/jobs",
            "POST /beta/servicePrincipals/{id}/synchronization/jobs",
            "POST /beta/servicePrincipals/{id}/synchronization/jobs/{id}/start",
            "POST /beta/servicePrincipals/{id}/synchronization/jobs/{id}/start",
            "PUT /beta/servicePrincipals/{id}/synchronization/jobs/{id}/schema",
            "PUT /beta/servicePrincipals/{id}/synchronization/secrets",
        ],
        "exactly eight writes"
    );
    let c = s.sim.counters();
    assert_eq!((c.instantiates, c.jobs_created, c.secrets_puts, c.job_starts), (1, 2, 1, 2));
    assert_eq!((c.redundant_starts, c.duplicate_service_principals, c.duplicate_jobs), (0, 0, 0));

    // Status reports what Graph has.
    let st = p.status.clone().unwrap();
    let sp = st.service_principal.clone().unwrap();
    let state = s.sim.state(TENANT).unwrap();
    let state_text = state.to_string();
    assert!(state_text.contains(&sp.id) && state_text.contains(sp.application_id.as_deref().unwrap()));
    assert!(state_text.contains(r#"{\"domain\":\"contoso.com\"}"#), "Domain secret set");
    assert_eq!(st.jobs.len(), 2);
    for j in &st.jobs {
        assert_eq!((j.schedule_state.as_deref(), j.code.as_deref()), (Some("Active"), Some("Active")), "{j:?}");
    }
    assert!(st.secrets_hash.as_deref().is_some_and(|h| h.starts_with("sha256:")));
    for t in ["CredentialsValid", "ServicePrincipalReady", "JobsRunning"] {
        assert_eq!(condition(&p, t).unwrap().status, "True", "{t}");
    }
    for t in ["Degraded", "Suspended"] {
        assert_eq!(condition(&p, t).unwrap().status, "False", "{t}");
    }
    // Graph calls made in a wave's parallel tasks log inside the pass's span, with its profile
    // and tenant, like every other line of the reconcile.
    let logs = s.op.logs();
    let calls: Vec<&str> = logs.lines().filter(|l| l.contains("Graph call") && l.contains("op=\"jobs.")).collect();
    assert!(calls.len() >= 4, "job creates and starts are logged: {calls:?}");
    for line in calls {
        assert!(
            line.contains(&format!("profile={}/contoso", s.ns)) && line.contains(&format!("tenant={TENANT}")),
            "{line}"
        );
    }
    assert!(p.metadata.finalizers.as_ref().is_some_and(|f| f.contains(&"cloudsync.io/cleanup".to_string())));
    let r = reasons(&events(&s.client, &s.ns).await);
    for reason in ["ServicePrincipalCreated", "JobCreated", "SecretsUpdated", "JobStarted"] {
        assert!(r.contains(&reason.to_string()), "event {reason} in {r:?}");
    }

    // Steady state: nothing but a jobs list per resync (every 2 s here), no token request, and no
    // reconcile set off by the operator's own status writes.
    s.sim.reset();
    tokio::time::sleep(Duration::from_secs(9)).await;
    let c = s.sim.counters();
    assert_eq!(c.writes, 0);
    assert_eq!(c.token_requests, 0, "the token is cached");
    let reads: Vec<String> = s.sim.calls().into_iter().filter(|c| c.api == "graph").map(|c| c.path).collect();
    assert!(reads.iter().all(|p| p.ends_with("/synchronization/jobs")), "only job lists: {reads:?}");
    assert!((3..=6).contains(&reads.len()), "about one read per 2 s resync over 9 s, got {}", reads.len());
}

#[tokio::test]
async fn the_tenant_flag_adds_one_write() {
    let s = setup("tenantflag", true).await;
    apply(&s.api, &profile("contoso", json!({"tenantSyncFlag": true}))).await;
    let p = wait_for(&s.api, "contoso", CONVERGE, "Ready", is_ready).await;
    let w = writes(&s.sim);
    assert_eq!(w.len(), 9, "eight and the flag: {w:?}");
    assert_eq!(w[0], "PATCH /beta/organization/{id}", "the flag comes first");
    assert_eq!(p.status.unwrap().tenant_sync_enabled, Some(true));
    assert_eq!(s.sim.state(TENANT).unwrap()["organization"]["onPremisesSyncEnabled"], json!(true));
}

#[tokio::test]
async fn restarting_the_operator_in_steady_state_writes_nothing() {
    let mut s = setup("restart-op", true).await;
    apply(&s.api, &profile("contoso", json!({}))).await;
    let before = wait_for(&s.api, "contoso", CONVERGE, "Ready", is_ready).await;
    let status = s.op.terminate();
    assert!(status.success(), "graceful exit on SIGTERM: {status:?}");
    s.sim.reset();
    s.op.restart(&s.ns, &s.sim, &[]);
    crate::support::operator::eventually(
        Duration::from_secs(30),
        "the restarted operator to look at the profile",
        || s.sim.calls().iter().any(|c| c.path.ends_with("/synchronization/jobs")),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(s.sim.counters().writes, 0, "{:?}", writes(&s.sim));
    let after = s.api.get("contoso").await.unwrap();
    assert!(is_ready(&after));
    assert_eq!(
        condition(&after, "Ready").unwrap().last_transition_time,
        condition(&before, "Ready").unwrap().last_transition_time
    );
}

#[tokio::test]
async fn suspend_pauses_and_resume_starts_again() {
    let s = setup("suspend", true).await;
    apply(&s.api, &profile("contoso", json!({}))).await;
    wait_for(&s.api, "contoso", CONVERGE, "Ready", is_ready).await;
    s.sim.reset();

    patch_spec(&s.api, "contoso", json!({"suspend": true})).await;
    let p = wait_for(&s.api, "contoso", CONVERGE, "Suspended", |p| {
        condition(p, "Suspended").is_some_and(|c| c.status == "True")
            && p.status.as_ref().is_some_and(|s| s.jobs.iter().all(|j| j.code.as_deref() == Some("Paused")))
    })
    .await;
    assert_eq!(condition(&p, "Ready").unwrap().reason, "Suspended");
    assert_eq!(s.sim.counters().job_pauses, 2);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(s.sim.counters().writes, 2, "paused once, then left alone");

    patch_spec(&s.api, "contoso", json!({"suspend": false})).await;
    wait_for(&s.api, "contoso", CONVERGE, "Ready again", is_ready).await;
    let c = s.sim.counters();
    assert_eq!((c.job_starts, c.redundant_starts, c.writes), (2, 0, 4));
}

#[tokio::test]
async fn a_restart_request_runs_exactly_once() {
    let s = setup("restartreq", true).await;
    apply(&s.api, &profile("contoso", json!({}))).await;
    wait_for(&s.api, "contoso", CONVERGE, "Ready", is_ready).await;
    s.sim.reset();

    patch_spec(&s.api, "contoso", json!({"restart": {"requestId": "r1", "resetScope": "Full"}})).await;
    wait_for(&s.api, "contoso", CONVERGE, "restart r1 recorded", |p| {
        p.status.as_ref().and_then(|s| s.last_restart_request_id.as_deref()) == Some("r1")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let c = s.sim.counters();
    assert_eq!((c.job_restarts, c.writes), (2, 2), "one restart per job, not per resync");
    let restarts: Vec<_> = s.sim.calls().into_iter().filter(|c| c.path.ends_with("/restart")).collect();
    assert_eq!(restarts.len(), 2);

    patch_spec(&s.api, "contoso", json!({"restart": {"requestId": "r2"}})).await;
    wait_for(&s.api, "contoso", CONVERGE, "restart r2 recorded", |p| {
        p.status.as_ref().and_then(|s| s.last_restart_request_id.as_deref()) == Some("r2")
    })
    .await;
    assert_eq!(s.sim.counters().job_restarts, 4);
}

#[tokio::test]
async fn a_changed_domain_is_exactly_one_secrets_put() {
    let s = setup("domain", true).await;
    apply(&s.api, &profile("contoso", json!({}))).await;
    let before = wait_for(&s.api, "contoso", CONVERGE, "Ready", is_ready).await;
    let old_hash = before.status.unwrap().secrets_hash;
    s.sim.reset();

    patch_spec(&s.api, "contoso", json!({"domain": "fabrikam.com"})).await;
    let p = wait_for(&s.api, "contoso", CONVERGE, "new secrets hash", |p| {
        is_ready(p) && p.status.as_ref().map(|s| &s.secrets_hash) != Some(&old_hash)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(writes(&s.sim), ["PUT /beta/servicePrincipals/{id}/synchronization/secrets"]);
    assert!(s.sim.state(TENANT).unwrap().to_string().contains(r#"{\"domain\":\"fabrikam.com\"}"#));
    // The configuration keeps its service principal: the domain is a setting, not an identity.
    assert_eq!(p.status.unwrap().service_principal.unwrap().display_name.as_deref(), Some("contoso.com"));
}

#[tokio::test]
async fn a_missing_secret_is_a_clear_condition_until_the_secret_appears() {
    let s = setup("nosecret", false).await;
    apply(&s.api, &profile("contoso", json!({}))).await;
    let p = wait_for(&s.api, "contoso", CONVERGE, "CredentialsValid=False", |p| {
        condition(p, "CredentialsValid").is_some_and(|c| c.status == "False")
    })
    .await;
    let cv = condition(&p, "CredentialsValid").unwrap();
    assert_eq!(cv.reason, "SecretNotFound");
    assert!(
        cv.message.contains(&format!("Secret {}/graph-credentials not found", s.ns))
            && cv.message.contains("clientSecret")
    );
    let ready = condition(&p, "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "SecretNotFound"));
    // The Event is published right after the status write that the wait above saw.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !events(&s.client, &s.ns)
        .await
        .iter()
        .any(|e| e.reason.as_deref() == Some("SecretNotFound") && e.type_.as_deref() == Some("Warning"))
    {
        assert!(std::time::Instant::now() < deadline, "no SecretNotFound Warning Event");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(s.sim.calls().is_empty(), "no Graph call without credentials");

    // The Secret watch reconciles at once, long before the 10-minute retry.
    create_secret(&s.client, &s.ns).await;
    wait_for(&s.api, "contoso", Duration::from_secs(30), "Ready after the Secret appears", is_ready).await;
}

#[tokio::test]
async fn wrong_credentials_are_reported_and_fixed_by_updating_the_secret() {
    let s = setup("badsecret", false).await;
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), &s.ns);
    crate::support::secrets::register("wrong-secret-value-123");
    let bad = serde_json::from_value(json!({
        "metadata": {"name": "graph-credentials"},
        "stringData": {"clientId": CLIENT, "clientSecret": "wrong-secret-value-123"}
    }))
    .unwrap();
    secrets.create(&Default::default(), &bad).await.unwrap();
    apply(&s.api, &profile("contoso", json!({}))).await;
    let p = wait_for(&s.api, "contoso", CONVERGE, "CredentialsRejected", |p| {
        condition(p, "CredentialsValid").is_some_and(|c| c.reason == "CredentialsRejected")
    })
    .await;
    let msg = &condition(&p, "CredentialsValid").unwrap().message;
    assert!(msg.contains("AADSTS7000215") && !msg.contains("wrong-secret-value-123"), "{msg}");

    secrets
        .patch(
            "graph-credentials",
            &Default::default(),
            &kube::api::Patch::Merge(json!({"stringData": {"clientSecret": CLIENT_SECRET}})),
        )
        .await
        .unwrap();
    wait_for(&s.api, "contoso", Duration::from_secs(30), "Ready after the Secret is fixed", is_ready).await;
}

/// Hostile Secrets past admission (binary garbage, a 1 MiB value, a second line inside the
/// secret): each is SecretInvalid on CredentialsValid naming the key, never the value, and no
/// Graph or token call is made with it; the fixed Secret is picked up by the watch.
#[tokio::test]
async fn hostile_secret_values_are_clear_conditions_and_never_shown() {
    use base64::Engine;
    let s = setup("hostilesecret", false).await;
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), &s.ns);
    let b64 = |v: &[u8]| base64::engine::general_purpose::STANDARD.encode(v);
    let first_line = "Qx8~first-line-of-the-secret-0123456789";
    let garbage: Vec<u8> = (0..=255u8).rev().cycle().take(3000).collect();
    let cases: [(Vec<u8>, &str); 3] = [
        (garbage, "key clientSecret is not UTF-8 text"),
        // The apiserver refuses a Secret over 1 MiB in all, so this is as large as one can be.
        ("Z".repeat((1 << 20) - 4096).into_bytes(), "key clientSecret is longer than 4096 bytes"),
        (format!("{first_line}\nsecond-line-0123456789\n").into_bytes(), "key clientSecret contains a line break"),
    ];
    apply(&s.api, &profile("contoso", json!({}))).await;
    for (i, (value, want)) in cases.into_iter().enumerate() {
        let secret = serde_json::from_value(json!({
            "metadata": {"name": "graph-credentials"},
            "data": {"clientId": b64(CLIENT.as_bytes()), "clientSecret": b64(&value)}
        }))
        .unwrap();
        if i == 0 {
            secrets.create(&Default::default(), &secret).await.unwrap();
        } else {
            secrets.replace("graph-credentials", &Default::default(), &secret).await.unwrap();
        }
        let p = wait_for(&s.api, "contoso", CONVERGE, want, |p| {
            condition(p, "CredentialsValid").is_some_and(|c| c.message.contains(want))
        })
        .await;
        let cv = condition(&p, "CredentialsValid").unwrap();
        assert_eq!((cv.status.as_str(), cv.reason.as_str()), ("False", "SecretInvalid"));
        assert!(cv.message.len() < 300, "{}", cv.message.len());
        let shown = serde_json::to_string(&p.status).unwrap() + &format!("{:?}", events(&s.client, &s.ns).await);
        for leak in [first_line, "second-line", "ZZZZZZZZ"] {
            assert!(!shown.contains(leak), "{leak} shown in status or events");
        }
    }
    assert!(s.sim.calls().is_empty(), "no Graph or token call with an unusable Secret");

    secrets
        .patch(
            "graph-credentials",
            &Default::default(),
            &kube::api::Patch::Merge(json!({"stringData": {"clientSecret": format!("{CLIENT_SECRET}\n")}})),
        )
        .await
        .unwrap();
    wait_for(&s.api, "contoso", Duration::from_secs(30), "Ready with a trailing newline", is_ready).await;
}

#[tokio::test]
async fn delete_removes_everything_and_orphan_leaves_graph_alone() {
    let s = setup("delete", true).await;
    apply(&s.api, &profile("deleted", json!({"displayName": "one.contoso.com"}))).await;
    apply(&s.api, &profile("orphaned", json!({"displayName": "two.contoso.com", "deletionPolicy": "Orphan"}))).await;
    let deleted = wait_for(&s.api, "deleted", CONVERGE, "Ready", is_ready).await;
    let orphaned = wait_for(&s.api, "orphaned", CONVERGE, "Ready", is_ready).await;
    let gone_sp = deleted.status.unwrap().service_principal.unwrap();
    let kept_sp = orphaned.status.unwrap().service_principal.unwrap();

    s.api.delete("deleted", &DeleteParams::default()).await.unwrap();
    wait_gone(&s.api, "deleted", CONVERGE).await;
    let state = s.sim.state(TENANT).unwrap().to_string();
    assert!(!state.contains(&gone_sp.id), "service principal deleted");
    assert!(!state.contains(gone_sp.application_id.as_deref().unwrap()), "application deleted");
    let r = reasons(&events(&s.client, &s.ns).await);
    assert!(r.contains(&"Deleted".to_string()), "{r:?}");

    s.sim.reset();
    s.api.delete("orphaned", &DeleteParams::default()).await.unwrap();
    wait_gone(&s.api, "orphaned", CONVERGE).await;
    // Orphan leaves the configuration as it is, except for the owner tag, so that another
    // profile may take it over.
    assert_eq!(writes(&s.sim), ["PATCH /beta/servicePrincipals/{id}"], "only the owner tag is removed");
    let kept = s.sim.state(TENANT).unwrap()["servicePrincipals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|sp| sp["id"] == json!(kept_sp.id))
        .cloned()
        .unwrap();
    assert!(!kept["tags"].to_string().contains("cloudsync.io/owner="), "{kept}");
    assert!(kept["tags"].to_string().contains("WindowsAzureActiveDirectoryIntegratedApp"), "{kept}");
    let state = s.sim.state(TENANT).unwrap().to_string();
    assert!(state.contains(&kept_sp.id));
}

#[tokio::test]
async fn a_profile_that_never_created_anything_is_released_at_once() {
    let s = setup("release", false).await;
    apply(&s.api, &profile("contoso", json!({}))).await;
    wait_for(&s.api, "contoso", CONVERGE, "finalizer and a condition", |p| {
        p.metadata.finalizers.as_ref().is_some_and(|f| !f.is_empty()) && condition(p, "CredentialsValid").is_some()
    })
    .await;
    s.api.delete("contoso", &DeleteParams::default()).await.unwrap();
    wait_gone(&s.api, "contoso", Duration::from_secs(10)).await;
    assert!(s.sim.calls().is_empty());
}

#[tokio::test]
async fn a_failing_cleanup_shows_in_status_and_events_and_orphan_releases_it() {
    let s = setup("stuck", true).await;
    apply(&s.api, &profile("contoso", json!({}))).await;
    wait_for(&s.api, "contoso", CONVERGE, "Ready", is_ready).await;
    Api::<Secret>::namespaced(s.client.clone(), &s.ns)
        .delete("graph-credentials", &DeleteParams::default())
        .await
        .unwrap();
    s.api.delete("contoso", &DeleteParams::default()).await.unwrap();
    let p = wait_for(&s.api, "contoso", CONVERGE, "CleanupBlocked", |p| {
        condition(p, "Ready").is_some_and(|c| c.reason == "CleanupBlocked")
    })
    .await;
    let msg = &condition(&p, "Ready").unwrap().message;
    assert!(msg.contains("not found") && msg.contains("deletionPolicy to Orphan"), "{msg}");
    assert!(reasons(&events(&s.client, &s.ns).await).contains(&"CleanupBlocked".to_string()));

    patch_spec(&s.api, "contoso", json!({"deletionPolicy": "Orphan"})).await;
    wait_gone(&s.api, "contoso", CONVERGE).await;
}

#[tokio::test]
async fn instantiate_answering_404_after_creating_is_adopted_without_a_duplicate() {
    let s = setup("inst404", true).await;
    s.sim.add_fault(FaultSpec::parse_cli("kind=instantiate-404-after-create,times=1").unwrap()).unwrap();
    // And lookups lag behind for 2 minutes of service time (2 s here).
    s.sim.add_fault(FaultSpec::parse_cli("kind=list-lag,seconds=120").unwrap()).unwrap();
    apply(&s.api, &profile("contoso", json!({}))).await;
    wait_for(&s.api, "contoso", CONVERGE, "Ready", is_ready).await;
    let c = s.sim.counters();
    assert_eq!((c.instantiates, c.duplicate_service_principals, c.peak_duplicate_service_principals), (1, 0, 0));
    let r = reasons(&events(&s.client, &s.ns).await);
    assert!(
        r.contains(&"InstantiateUncertain".to_string()) && r.contains(&"ServicePrincipalFound".to_string()),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_storm_of_429_and_503_converges_without_an_early_retry() {
    let s = setup("storm", true).await;
    for f in [
        "kind=status,status=429,retryAfter=1,path=/beta/servicePrincipals,times=2",
        "kind=status,status=429,retryAfter=1,path=/beta/applicationTemplates/**,times=1",
        "kind=status,status=503,retryAfter=1,path=/beta/servicePrincipals/*/synchronization/**,times=3",
        "kind=status,status=429,retryAfter=2,method=POST,path=/beta/servicePrincipals/*/synchronization/jobs/*/start,times=2",
        "kind=status,status=503,path=/beta/servicePrincipals/*/synchronization/secrets,times=1",
    ] {
        s.sim.add_fault(FaultSpec::parse_cli(f).unwrap()).unwrap();
    }
    apply(&s.api, &profile("contoso", json!({}))).await;
    wait_for(&s.api, "contoso", Duration::from_secs(90), "Ready", is_ready).await;
    let c = s.sim.counters();
    assert!(c.throttled >= 5, "the storm happened: {c:?}");
    let early: Vec<String> = s
        .sim
        .calls()
        .into_iter()
        .filter(|c| c.early_retry)
        .map(|c| format!("{} {} {} {}", c.time, c.method, c.path, c.client_request_id))
        .collect();
    let all: Vec<String> = s
        .sim
        .calls()
        .into_iter()
        .map(|c| format!("{} {} {} {} {:?}", c.time, c.method, c.path, c.status, c.fault))
        .collect();
    assert_eq!(c.early_retries, 0, "no call came back before its Retry-After: {early:?}\n{}", all.join("\n"));
    assert_eq!((c.instantiates, c.duplicate_service_principals, c.duplicate_jobs, c.redundant_starts), (1, 0, 0, 0));
}

#[tokio::test]
async fn no_credential_or_token_reaches_logs_events_or_status() {
    let s = setup("secrets", true).await;
    apply(&s.api, &profile("contoso", json!({"tenantSyncFlag": true}))).await;
    let p = wait_for(&s.api, "contoso", CONVERGE, "Ready", is_ready).await;
    // A failure path too: wrong credentials for a second profile.
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), &s.ns);
    crate::support::secrets::register("another-secret-that-must-not-leak");
    let bad = serde_json::from_value(json!({
        "metadata": {"name": "wrong"},
        "stringData": {"clientId": CLIENT, "clientSecret": "another-secret-that-must-not-leak"}
    }))
    .unwrap();
    secrets.create(&Default::default(), &bad).await.unwrap();
    apply(
        &s.api,
        &profile("wrong", json!({"credentials": {"secretRef": {"name": "wrong"}}, "displayName": "x.contoso.com"})),
    )
    .await;
    wait_for(&s.api, "wrong", CONVERGE, "rejected", |p| {
        condition(p, "CredentialsValid").is_some_and(|c| c.status == "False")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let logs = s.op.logs();
    assert!(logs.contains("Graph call"), "debug logs were captured");
    let status = serde_json::to_string(&p.status).unwrap()
        + &serde_json::to_string(&s.api.get("wrong").await.unwrap().status).unwrap();
    let ev = serde_json::to_string(&events(&s.client, &s.ns).await).unwrap();
    let metrics = reqwest::get(format!("{}/metrics", s.op.metrics_url().await)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("cloudsync_graph_requests_total"), "metrics were scraped");
    for (name, text) in [("logs", &logs), ("status", &status), ("events", &ev), ("metrics", &metrics)] {
        crate::support::secrets::assert_clean(name, text);
    }
}
