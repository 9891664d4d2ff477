//! ProvisionRequest end to end: the real apiserver, the simulator over HTTP, the operator process.
//! Each subject is sent exactly once (also across a SIGKILL with the answer in flight), the rate
//! limit is kept without a 429, the result and the steps land in status without personal data, a
//! subject outside the scope warns, `kubectl wait` and the printer columns work, and a finished
//! request with a TTL is deleted.

use std::time::Duration;

use cloudsync_operator::api::{CloudSyncProfile, ProvisionRequest, ProvisionResult};
use cloudsync_sim::{FaultSpec, SimHandle};
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::support::kube_env::{client, kubectl, namespace};
use crate::support::operator::*;

const CONVERGE: Duration = Duration::from_secs(90);
const SALES: &str = "OU=Sales,DC=contoso,DC=com";

fn request(name: &str, subjects: &[(&str, &str)], extra: Value) -> Value {
    let mut spec = json!({
        "profile": "contoso",
        "subjects": subjects.iter().map(|(dn, t)| json!({"dn": dn, "type": t})).collect::<Vec<_>>(),
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    json!({"apiVersion": "cloudsync.io/v1alpha1", "kind": "ProvisionRequest", "metadata": {"name": name}, "spec": spec})
}

async fn create(api: &Api<ProvisionRequest>, manifest: &Value) {
    let name = manifest["metadata"]["name"].as_str().unwrap();
    api.patch(name, &PatchParams::apply("cloudsync-tests").force(), &Patch::Apply(manifest))
        .await
        .expect("apply request");
}

async fn wait_complete(api: &Api<ProvisionRequest>, name: &str, timeout: Duration) -> ProvisionRequest {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let r = api.get(name).await.expect("get request");
        let complete =
            r.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Complete" && c.status == "True"));
        if complete {
            return r;
        }
        assert!(std::time::Instant::now() < deadline, "{name} not complete: {:?}", r.status);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn job_id(p: &CloudSyncProfile) -> String {
    p.status.as_ref().unwrap().jobs.iter().find(|j| j.template_id == "AD2AADProvisioning").unwrap().id.clone()
}

async fn ready_profile(prefix: &str) -> (kube::Client, String, SimHandle, Operator, CloudSyncProfile) {
    let client = client().await;
    let ns = namespace(&client, prefix).await;
    create_secret(&client, &ns).await;
    let sim = simulator().await;
    let op = Operator::start(&ns, &sim, &[]);
    let profiles: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &ns);
    apply(&profiles, &profile("contoso", json!({"scope": {"organizationalUnits": [SALES]}}))).await;
    let p = wait_for(&profiles, "contoso", CONVERGE, "Ready", is_ready).await;
    (client, ns, sim, op, p)
}

fn on_demand_calls(sim: &SimHandle) -> usize {
    sim.calls().iter().filter(|c| c.method == "POST" && c.path.ends_with("/provisionOnDemand")).count()
}

#[tokio::test]
async fn each_subject_is_sent_once_and_the_outcome_lands_in_status_without_personal_data() {
    let (client, ns, sim, _op, p) = ready_profile("ondemand").await;
    let job = job_id(&p);
    let failing = "CN=Bob Conflict,OU=Sales,DC=contoso,DC=com";
    sim.script_on_demand(TENANT, &job, failing, "Failure", Some("AzureActiveDirectoryConflictingObject")).unwrap();
    let api: Api<ProvisionRequest> = Api::namespaced(client.clone(), &ns);
    let subjects = [
        ("CN=Adele Vance,OU=Sales,DC=contoso,DC=com", "user"),
        ("CN=Megan Bowen,OU=Marketing,DC=contoso,DC=com", "user"),
        (failing, "user"),
    ];
    create(&api, &request("three", &subjects, json!({}))).await;

    // `kubectl wait` is how a pipeline waits for it. Off the runtime: the simulator runs on it.
    let wait_ns = ns.clone();
    let waited = tokio::task::spawn_blocking(move || {
        kubectl(&["wait", "-n", &wait_ns, "--for=condition=Complete", "--timeout=60s", "provisionrequest/three"])
    })
    .await
    .unwrap();
    assert!(waited.status.success(), "{}", String::from_utf8_lossy(&waited.stderr));
    let r = wait_complete(&api, "three", Duration::from_secs(5)).await;
    let s = r.status.clone().unwrap();
    assert_eq!(s.result, Some(ProvisionResult::Failure));
    let results: Vec<_> = s.subjects.iter().map(|x| (x.index, x.result, x.error_code.clone())).collect();
    assert_eq!(
        results,
        vec![
            (0, Some(ProvisionResult::Success), None),
            (1, Some(ProvisionResult::Success), None),
            (2, Some(ProvisionResult::Failure), Some("AzureActiveDirectoryConflictingObject".into())),
        ]
    );
    let steps: Vec<&str> = s.subjects[0].steps.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(steps, ["EntryImport", "EntrySynchronizationScoping", "EntryMatching", "EntryExportAdd"]);
    assert_eq!(s.subjects[0].action.as_deref(), Some("Create"));
    assert_eq!(s.subjects[2].steps[3].error_code.as_deref(), Some("AzureActiveDirectoryConflictingObject"));
    assert_eq!(s.subjects[1].out_of_scope, Some(true), "Marketing lies outside OU=Sales");
    assert_eq!(s.subjects[0].out_of_scope, None);

    // Scope warning: a condition and a Warning Event, naming the subject by position only.
    let oos = s.conditions.iter().find(|c| c.type_ == "OutOfScope").expect("OutOfScope");
    assert_eq!((oos.status.as_str(), oos.reason.as_str()), ("True", "OutsideScope"));
    let events = Api::<Event>::namespaced(client.clone(), &ns).list(&Default::default()).await.unwrap().items;
    let warning = events.iter().find(|e| e.reason.as_deref() == Some("OutsideScope")).expect("OutsideScope Event");
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    assert!(events.iter().any(|e| e.reason.as_deref() == Some("Failure")), "a completion Event");

    // No attribute value, name, DN or mail the simulator returned is kept.
    let stored = serde_json::to_string(&s).unwrap()
        + &serde_json::to_string(&events.iter().map(|e| &e.note).collect::<Vec<_>>()).unwrap();
    for personal in ["Adele", "Megan", "Bob", "OU=", "@example.com", "Marketing"] {
        assert!(!stored.contains(personal), "{personal} in {stored}");
    }

    // Printer columns.
    let table = kubectl(&["get", "cspr", "-n", &ns]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("PROFILE") && text.contains("RESULT") && text.contains("Failure"), "{text}");

    // Exactly once: later resyncs and an edit of the TTL send nothing more.
    assert_eq!(on_demand_calls(&sim), 3);
    api.patch("three", &PatchParams::default(), &Patch::Merge(json!({"spec": {"ttlSecondsAfterFinished": 1}})))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while api.get_opt("three").await.unwrap().is_some() {
        assert!(std::time::Instant::now() < deadline, "a finished request with a TTL of 1 s is deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(on_demand_calls(&sim), 3, "one call per subject");

    // The same object again is Skipped (RedundantExport), and so is the request.
    create(&api, &request("again", &subjects[..1], json!({}))).await;
    let r = wait_complete(&api, "again", Duration::from_secs(30)).await;
    let s = r.status.unwrap();
    assert_eq!(s.result, Some(ProvisionResult::Skipped));
    assert_eq!(s.subjects[0].error_code.as_deref(), Some("RedundantExport"));
    assert_eq!(on_demand_calls(&sim), 4);
}

#[tokio::test]
async fn ten_subjects_on_one_service_principal_keep_the_limit_without_a_429() {
    let (client, ns, sim, _op, _p) = ready_profile("ondemand-rate").await;
    let api: Api<ProvisionRequest> = Api::namespaced(client.clone(), &ns);
    for r in ["a", "b"] {
        let dns: Vec<String> = (0..5).map(|i| format!("CN={r}{i},OU=Sales,DC=contoso,DC=com")).collect();
        let subjects: Vec<(&str, &str)> = dns.iter().map(|d| (d.as_str(), "user")).collect();
        create(&api, &request(r, &subjects, json!({}))).await;
    }
    for r in ["a", "b"] {
        let done = wait_complete(&api, r, Duration::from_secs(60)).await;
        assert_eq!(done.status.unwrap().result, Some(ProvisionResult::Success), "{r}");
    }
    assert_eq!(on_demand_calls(&sim), 10);
    let throttled = sim.calls().iter().filter(|c| c.path.ends_with("/provisionOnDemand") && c.status == 429).count();
    assert_eq!(throttled, 0, "the operator's own limiter kept the service's 5 per 10 s");
}

#[tokio::test]
async fn a_request_for_a_missing_profile_waits_and_runs_once_the_profile_is_ready() {
    let client = client().await;
    let ns = namespace(&client, "ondemand-wait").await;
    create_secret(&client, &ns).await;
    let sim = simulator().await;
    let _op = Operator::start(&ns, &sim, &[]);
    let api: Api<ProvisionRequest> = Api::namespaced(client.clone(), &ns);
    create(&api, &request("early", &[("CN=Adele Vance,OU=Sales,DC=contoso,DC=com", "user")], json!({}))).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = api.get("early").await.unwrap();
        let reason = r
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Complete"))
            .map(|c| c.reason.clone());
        if reason.as_deref() == Some("ProfileNotFound") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "ProfileNotFound: {:?}", r.status);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let profiles: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &ns);
    apply(&profiles, &profile("contoso", json!({}))).await;
    let r = wait_complete(&api, "early", CONVERGE).await;
    assert_eq!(r.status.unwrap().result, Some(ProvisionResult::Success));
    assert_eq!(on_demand_calls(&sim), 1);
}

#[tokio::test]
async fn killed_with_the_answer_in_flight_the_subject_is_not_sent_again() {
    let (client, ns, sim, mut op, _p) = ready_profile("ondemand-crash").await;
    sim.add_fault(
        FaultSpec::parse_cli("kind=delay-response,ms=20000,method=POST,path=/beta/servicePrincipals/*/synchronization/jobs/*/provisionOnDemand,times=1")
            .unwrap(),
    )
    .unwrap();
    let api: Api<ProvisionRequest> = Api::namespaced(client.clone(), &ns);
    let subjects =
        [("CN=Adele Vance,OU=Sales,DC=contoso,DC=com", "user"), ("CN=Alex Wilber,OU=Sales,DC=contoso,DC=com", "user")];
    create(&api, &request("crash", &subjects, json!({}))).await;
    eventually(Duration::from_secs(30), "the first call to reach Graph", || sim.counters().provisions_on_demand == 1)
        .await;
    op.kill();
    sim.clear_faults();
    let left = api.get("crash").await.unwrap().status.unwrap();
    assert!(left.subjects[0].sent.is_some() && left.subjects[0].result.is_none(), "the intent was recorded: {left:?}");

    op.restart(&ns, &sim, &[]);
    let r = wait_complete(&api, "crash", Duration::from_secs(60)).await;
    let s = r.status.unwrap();
    assert_eq!(s.subjects[0].error_code.as_deref(), Some("OutcomeUnknown"));
    assert_eq!(s.subjects[1].result, Some(ProvisionResult::Success));
    assert_eq!(s.result, Some(ProvisionResult::Failure));
    assert_eq!(sim.counters().provisions_on_demand, 2, "the subject in flight was not sent a second time");
}

#[tokio::test]
async fn admission_refuses_bad_requests_with_a_message_that_says_what_to_fix() {
    let client = client().await;
    let ns = namespace(&client, "ondemand-admission").await;
    let api: Api<ProvisionRequest> = Api::namespaced(client.clone(), &ns);
    let refuse = |manifest: Value, want: &'static str| {
        let api = api.clone();
        async move {
            let name = manifest["metadata"]["name"].as_str().unwrap().to_string();
            let e = api
                .patch(&name, &PatchParams::apply("cloudsync-tests"), &Patch::Apply(&manifest))
                .await
                .expect_err("refused");
            assert!(e.to_string().contains(want), "{want} not in {e}");
        }
    };
    let six: Vec<(String, &str)> = (0..6).map(|i| (format!("CN=u{i},DC=contoso,DC=com"), "user")).collect();
    let six: Vec<(&str, &str)> = six.iter().map(|(d, t)| (d.as_str(), *t)).collect();
    refuse(request("six", &six, json!({})), "must have at most 5 items").await;
    refuse(request("none", &[], json!({})), "should have at least 1 items").await;
    refuse(request("notdn", &[("adele@contoso.com", "user")], json!({})), "subjects[].dn must be a distinguished name")
        .await;
    refuse(request("printer", &[("CN=p,DC=contoso,DC=com", "printer")], json!({})), "Unsupported value").await;
    create(&api, &request("ok", &[("CN=p,DC=contoso,DC=com", "user")], json!({}))).await;
    refuse(request("ok", &[("CN=q,DC=contoso,DC=com", "user")], json!({})), "subjects are immutable").await;
}
