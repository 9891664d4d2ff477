//! The configuration as code, end to end on the real apiserver, the simulator over HTTP and the
//! operator process: scope, attribute mappings, password hash sync's CredentialData, drift put
//! back, and deletion protection with its e-mail, held deletes and their approval.

use std::time::Duration;

use cloudsync_operator::api::CloudSyncProfile;
use cloudsync_operator::graph::Tenant;
use cloudsync_sim::SimHandle;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;
use serde_json::{Value, json};

use crate::support::kube_env::{client, namespace};
use crate::support::operator::*;

const CONVERGE: Duration = Duration::from_secs(90);
const OU_SALES: &str = "OU=Sales,DC=contoso,DC=com";
const OU_HR: &str = "OU=HR,DC=contoso,DC=com";

fn graph(sim: &SimHandle) -> Tenant {
    graph_client(sim)
}

fn ids(p: &CloudSyncProfile) -> (String, String) {
    let s = p.status.as_ref().expect("status");
    let sp = s.service_principal.as_ref().expect("service principal").id.clone();
    let job = s.jobs.iter().find(|j| j.template_id == "AD2AADProvisioning").expect("provisioning job").id.clone();
    (sp, job)
}

fn schema_puts(sim: &SimHandle) -> usize {
    sim.calls().iter().filter(|c| c.method == "PUT" && c.path.ends_with("/schema")).count()
}

fn schema_reads(sim: &SimHandle) -> usize {
    sim.calls().iter().filter(|c| c.method == "GET" && c.path.contains("/jobs/") && c.path.ends_with("/schema")).count()
}

fn rule(schema: &Value) -> &Value {
    &schema["synchronizationRules"][0]
}

fn mapping<'a>(schema: &'a Value, object: &str, target: &str) -> Option<&'a Value> {
    rule(schema)["objectMappings"].as_array()?.iter().find(|m| m["sourceObjectName"] == object)?["attributeMappings"]
        .as_array()?
        .iter()
        .find(|a| a["targetAttributeName"] == target)
}

fn condition_of<'a>(p: &'a CloudSyncProfile, type_: &str) -> (&'a str, &'a str, &'a str) {
    condition(p, type_).map_or(("", "", ""), |c| (c.status.as_str(), c.reason.as_str(), c.message.as_str()))
}

async fn events(client: &kube::Client, ns: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), ns).list(&ListParams::default()).await.expect("events").items
}

async fn event_note(client: &kube::Client, ns: &str, reason: &str) -> Option<String> {
    events(client, ns).await.into_iter().find(|e| e.reason.as_deref() == Some(reason)).and_then(|e| e.note)
}

/// A namespace with the credentials Secret, a simulator, and the operator (with `flags`) on both.
async fn setup(prefix: &str, flags: &[&str]) -> (kube::Client, String, Api<CloudSyncProfile>, SimHandle, Operator) {
    let client = client().await;
    let ns = namespace(&client, prefix).await;
    create_secret(&client, &ns).await;
    let api: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &ns);
    let sim = simulator().await;
    let op = Operator::start(&ns, &sim, flags);
    (client, ns, api, sim, op)
}

fn schema_applied(p: &CloudSyncProfile) -> bool {
    is_ready(p) && condition_of(p, "SchemaApplied").1 == "Applied"
}

#[tokio::test]
async fn a_scoped_profile_converges_and_a_scope_change_writes_once_and_restarts_once() {
    let (client, ns, api, sim, _op) = setup("schema-scope", &[]).await;
    let spec = json!({"scope": {"organizationalUnits": [OU_SALES]}});
    apply(&api, &profile("contoso", spec)).await;
    let p = wait_for(&api, "contoso", CONVERGE, "Ready with the schema applied", schema_applied).await;
    let (sp, job) = ids(&p);
    let g = graph(&sim);
    let held = g.job_schema(&sp, &job, false).await.unwrap();
    assert_eq!(rule(&held)["containerFilter"]["includedContainers"], json!([OU_SALES]));
    for object in ["user", "inetOrgPerson"] {
        let c = mapping(&held, object, "CredentialData").unwrap_or_else(|| panic!("CredentialData on {object}"));
        assert_eq!(
            (c["source"]["type"].as_str(), c["source"]["name"].as_str()),
            (Some("Attribute"), Some("PasswordHash"))
        );
    }
    assert_eq!(schema_puts(&sim), 1, "one schema write for a new profile");
    let status = p.status.as_ref().unwrap();
    assert!(status.schema_hash.as_deref().is_some_and(|h| h.starts_with("sha256:")));
    assert!(status.scope_restart.is_none(), "a new job is not restarted: its first run imports everything");
    assert_eq!(sim.counters().job_restarts, 0);

    // The scope changes on a job that has run: one write, one restart with Watermark.
    wait_for(&api, "contoso", CONVERGE, "the provisioning job has run", |p| {
        p.status.as_ref().is_some_and(|s| {
            s.jobs.iter().any(|j| {
                j.template_id == "AD2AADProvisioning"
                    && j.last_execution.as_ref().is_some_and(|e| e.time_began.is_some())
            })
        })
    })
    .await;
    let before = p.status.as_ref().and_then(|s| s.schema_hash.clone());
    patch_spec(&api, "contoso", json!({"scope": {"organizationalUnits": [OU_SALES, OU_HR]}})).await;
    let p = wait_for(&api, "contoso", CONVERGE, "the new scope written and its restart done", |p| {
        schema_applied(p)
            && p.status.as_ref().is_some_and(|s| s.schema_hash != before && s.scope_restart.is_none())
            && sim.counters().job_restarts >= 1
    })
    .await;
    let held = g.job_schema(&sp, &job, false).await.unwrap();
    let mut ous: Vec<String> =
        serde_json::from_value(rule(&held)["containerFilter"]["includedContainers"].clone()).unwrap();
    ous.sort();
    assert_eq!(ous, [OU_HR, OU_SALES]);
    // Settle a little longer: nothing more is written or restarted.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(schema_puts(&sim), 2, "exactly one more schema write");
    assert_eq!(sim.counters().job_restarts, 1, "exactly one restart");
    let restarts = sim.calls().iter().filter(|c| c.method == "POST" && c.path.ends_with("/restart")).count();
    assert_eq!(restarts, 1, "one restart call");
    let note = event_note(&client, &ns, "ScopeRestarted").await.expect("a ScopeRestarted Event");
    assert!(note.contains("\"Watermark\"") && note.contains("scope changed"), "{note}");
    assert!(condition_of(&p, "SchemaApplied").2.contains("2 OUs"), "{:?}", condition_of(&p, "SchemaApplied"));

    // Password hash sync off: CredentialData goes; on a steady profile no schema is read.
    patch_spec(&api, "contoso", json!({"passwordHashSync": false})).await;
    wait_for(&api, "contoso", CONVERGE, "password hash sync off", |p| {
        schema_applied(p) && p.status.as_ref().is_some_and(|s| s.jobs.len() == 1)
    })
    .await;
    let held = g.job_schema(&sp, &job, false).await.unwrap();
    assert!(mapping(&held, "user", "CredentialData").is_none(), "CredentialData removed");
    assert!(mapping(&held, "inetOrgPerson", "CredentialData").is_none());
    let reads = schema_reads(&sim);
    tokio::time::sleep(Duration::from_secs(6)).await; // several resyncs (every 2 s)
    assert_eq!(schema_reads(&sim), reads, "a steady profile reads no schema between drift checks");
    assert_eq!(sim.calls().iter().filter(|c| c.path.ends_with("/parseExpression")).count(), 0);
}

#[tokio::test]
async fn an_invalid_expression_blocks_with_a_condition_and_writes_nothing() {
    let (client, ns, api, sim, _op) = setup("schema-expr", &[]).await;
    let bad = json!({"attributeMappings": [
        {"object": "user", "target": "jobTitle", "attribute": "title"},
        {"object": "user", "target": "department", "expression": "Join(\" \", [givenName], [sn]"}
    ]});
    apply(&api, &profile("contoso", bad)).await;
    let p = wait_for(&api, "contoso", CONVERGE, "blocked by the expression", |p| {
        condition_of(p, "SchemaApplied").1 == "InvalidExpression"
    })
    .await;
    let (status, reason, message) = condition_of(&p, "SchemaApplied");
    assert_eq!(status, "False");
    assert!(message.contains("attributeMappings user/department"), "{message}");
    assert_eq!(condition_of(&p, "Ready").1, "InvalidExpression");
    assert_eq!(reason, "InvalidExpression");
    assert_eq!(schema_puts(&sim), 0, "no schema write at all");
    let note = event_note(&client, &ns, "InvalidExpression").await.expect("a Warning Event");
    assert!(note.contains("user/department"), "{note}");
    let parses = sim.calls().iter().filter(|c| c.path.ends_with("/parseExpression")).count();
    assert_eq!(parses, 1, "one parse of the one expression");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let again = sim.calls().iter().filter(|c| c.path.ends_with("/parseExpression")).count();
    assert_eq!(again, 1, "the verdict is cached: no parse on each resync");

    let fixed = json!({"attributeMappings": [
        {"object": "user", "target": "jobTitle", "attribute": "title"},
        {"object": "user", "target": "department", "expression": "Join(\" \", [givenName], [sn])"}
    ]});
    apply(&api, &profile("contoso", fixed)).await;
    let p = wait_for(&api, "contoso", CONVERGE, "the fixed expression applied", schema_applied).await;
    let (sp, job) = ids(&p);
    let held = graph(&sim).job_schema(&sp, &job, false).await.unwrap();
    let dept = mapping(&held, "user", "department").expect("department mapping");
    assert_eq!((dept["source"]["type"].as_str(), dept["source"]["name"].as_str()), (Some("Function"), Some("Join")));
    assert_eq!(mapping(&held, "user", "jobTitle").unwrap()["source"]["name"], "title");
    assert_eq!(schema_puts(&sim), 1);
}

#[tokio::test]
async fn a_portal_edit_is_put_back_within_the_drift_interval() {
    let (client, ns, api, sim, _op) = setup("schema-drift", &["--schema-drift-seconds", "4"]).await;
    let spec = json!({"scope": {"groups": ["CN=Pilot,OU=Groups,DC=contoso,DC=com"]},
                      "attributeMappings": [{"object": "user", "target": "department", "constant": "Sales"}]});
    apply(&api, &profile("contoso", spec)).await;
    let p = wait_for(&api, "contoso", CONVERGE, "Ready with the schema applied", schema_applied).await;
    let (sp, job) = ids(&p);
    let g = graph(&sim);

    // Someone edits the schema in the portal: another group, and the department mapping changed.
    let mut edited = g.job_schema(&sp, &job, false).await.unwrap();
    edited["synchronizationRules"][0]["groupFilter"]["includedGroups"] = json!(["CN=Everyone,DC=contoso,DC=com"]);
    let users = edited["synchronizationRules"][0]["objectMappings"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|m| m["sourceObjectName"] == "user")
        .unwrap();
    let dept = users["attributeMappings"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|a| a["targetAttributeName"] == "department")
        .unwrap();
    dept["source"] = json!({"type": "Attribute", "name": "department", "expression": "[department]", "parameters": []});
    edited.as_object_mut().unwrap().remove("@odata.context");
    g.put_job_schema(&sp, &job, &edited).await.unwrap();
    let puts = schema_puts(&sim);

    let deadline = std::time::Instant::now() + CONVERGE;
    loop {
        let held = g.job_schema(&sp, &job, false).await.unwrap();
        if rule(&held)["groupFilter"]["includedGroups"] == json!(["CN=Pilot,OU=Groups,DC=contoso,DC=com"])
            && mapping(&held, "user", "department").is_some_and(|d| d["source"]["type"] == "Constant")
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the edit was not put back: {}", rule(&held));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(schema_puts(&sim), puts + 1, "one write puts it back");
    let note = event_note(&client, &ns, "SchemaDriftCorrected").await.expect("a SchemaDriftCorrected Event");
    assert!(note.contains("changed outside the operator"), "{note}");
    assert!(note.contains("scope groups") && note.contains("user/department was changed"), "{note}");
}

#[tokio::test]
async fn threshold_and_email_reach_the_secret_and_a_held_delete_is_approved_by_a_restart() {
    let (_client, _ns, api, sim, _op) = setup("schema-deletes", &[]).await;
    let spec = json!({"passwordHashSync": false, "accidentalDeletes": {"threshold": 5},
                      "notifications": {"email": "identity-ops@contoso.com"}});
    apply(&api, &profile("contoso", spec)).await;
    let p = wait_for(&api, "contoso", CONVERGE, "Ready", is_ready).await;
    assert_eq!(condition_of(&p, "SchemaApplied").1, "NotManaged", "no schema settings: the schema is left alone");
    assert_eq!(schema_puts(&sim) + schema_reads(&sim), 0);
    let state = sim.state(TENANT).expect("tenant state").to_string();
    for part in
        [r#"\"DeleteThresholdValue\":5"#, r#"\"Recipients\":\"identity-ops@contoso.com\""#, r#"\"Enabled\":true"#]
    {
        assert!(state.contains(part), "SyncNotificationSettings lacks {part}: {state}");
    }

    // The next run wants to delete 7 objects: at or above 5, the service holds them.
    let (sp, job) = ids(&p);
    sim.want_deletes(TENANT, &sp, &job, 7).unwrap();
    let p =
        wait_for(&api, "contoso", CONVERGE, "deletes held", |p| condition_of(p, "Degraded").1 == "DeletesHeld").await;
    let (_, _, message) = condition_of(&p, "Degraded");
    assert!(message.contains("threshold is 5") && message.contains("resetScope: ForceDeletes"), "{message}");
    assert_eq!(condition_of(&p, "Ready").1, "DeletesHeld");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let restarts = sim.counters().job_restarts;
    assert_eq!(restarts, 0, "never approved by the operator itself");

    patch_spec(&api, "contoso", json!({"restart": {"requestId": "approve-1", "resetScope": "ForceDeletes"}})).await;
    wait_for(&api, "contoso", CONVERGE, "the deletes approved", |p| {
        is_ready(p)
            && condition_of(p, "Degraded").0 == "False"
            && p.status.as_ref().and_then(|s| s.last_restart_request_id.as_deref()) == Some("approve-1")
    })
    .await;
    let forced = sim.calls().iter().filter(|c| c.method == "POST" && c.path.ends_with("/restart")).count();
    assert_eq!(forced, 1, "one restart with ForceDeletes");
}
