//! Recent failures and agent trouble, end to end on the real apiserver, the simulator over HTTP
//! and the operator process: a run with entry-level errors shows its error codes, counts and
//! latest time per job (and no name, DN or UPN of the log entries anywhere); a healthy profile
//! never reads the provisioning logs; an app without the audit permissions gets a note and stays
//! Ready; an agent error code becomes AgentUnavailable naming the domain.

use std::time::Duration;

use cloudsync_operator::api::{CloudSyncProfile, JobStatus};
use cloudsync_operator::graph::Tenant;
use cloudsync_sim::{FaultSpec, Registration, SimHandle, Simulator};
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;

use crate::support::kube_env::{client, namespace};
use crate::support::operator::*;

const CONVERGE: Duration = Duration::from_secs(90);
const PROVISIONING: &str = "AD2AADProvisioning";
/// What the simulator's log entries carry that looks like personal data.
const PERSONAL: &[&str] = &["Sim User", "simuser", "CN=", "OU=Sim", "DC=contoso"];

fn audit_calls(sim: &SimHandle) -> usize {
    sim.calls().iter().filter(|c| c.path.contains("/auditLogs/provisioning")).count()
}

/// Job lists: one per pass, so a count of passes (resyncs).
fn job_lists(sim: &SimHandle) -> usize {
    sim.calls().iter().filter(|c| c.method == "GET" && c.path.ends_with("/synchronization/jobs")).count()
}

fn job<'a>(p: &'a CloudSyncProfile, template: &str) -> Option<&'a JobStatus> {
    p.status.as_ref()?.jobs.iter().find(|j| j.template_id == template)
}

fn ids(p: &CloudSyncProfile) -> (String, String) {
    let sp = p.status.as_ref().and_then(|s| s.service_principal.as_ref()).expect("service principal").id.clone();
    (sp, job(p, PROVISIONING).expect("provisioning job").id.clone())
}

async fn events(client: &kube::Client, ns: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), ns).list(&ListParams::default()).await.expect("events").items
}

/// Waits until the operator has listed the jobs `passes` more times.
async fn passes(sim: &SimHandle, passes: usize) {
    let start = job_lists(sim);
    eventually(CONVERGE, "more passes of the operator", || job_lists(sim) >= start + passes).await;
}

async fn setup(
    prefix: &str,
    sim: SimHandle,
) -> (kube::Client, String, Api<CloudSyncProfile>, SimHandle, Operator, CloudSyncProfile) {
    let client = client().await;
    let ns = namespace(&client, prefix).await;
    create_secret(&client, &ns).await;
    let api: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &ns);
    let op = Operator::start(&ns, &sim, &[]);
    apply(&api, &profile("contoso", json!({}))).await;
    let p = wait_for(&api, "contoso", CONVERGE, "Ready", |p| {
        is_ready(p) && job(p, PROVISIONING).and_then(|j| j.last_execution.as_ref()).is_some()
    })
    .await;
    (client, ns, api, sim, op, p)
}

fn assert_no_personal_data(what: &str, text: &str) {
    for word in PERSONAL {
        assert!(!text.contains(word), "{what} contains {word:?} from the provisioning logs:\n{text}");
    }
}

#[tokio::test]
async fn entry_level_errors_show_codes_and_counts_and_a_healthy_profile_reads_no_logs() {
    let (client, ns, api, sim, op, p) = setup("failures-codes", simulator().await).await;
    // Steady and healthy: several passes, no provisioning-log read.
    passes(&sim, 4).await;
    assert_eq!(audit_calls(&sim), 0, "a healthy profile reads no provisioning logs");

    let (sp, job_id) = ids(&p);
    sim.entry_errors(TENANT, &sp, &job_id, "AttributeValueMustBeUnique", 3, None).unwrap();
    let p = wait_for(&api, "contoso", CONVERGE, "recent failures of the failing run", |p| {
        job(p, PROVISIONING).is_some_and(|j| {
            let run = j.last_execution.as_ref().and_then(|e| e.time_began.clone());
            j.recent_failures.as_ref().is_some_and(|r| Some(&r.run) == run.as_ref() && !r.errors.is_empty())
        })
    })
    .await;
    let j = job(&p, PROVISIONING).unwrap();
    let e = j.last_execution.as_ref().unwrap();
    assert_eq!((e.state.as_deref(), e.count_escrowed), (Some("EntryLevelErrors"), Some(3)));
    let r = j.recent_failures.as_ref().unwrap();
    assert_eq!(r.errors.len(), 1, "{r:?}");
    let f = &r.errors[0];
    assert_eq!(f.code, "AttributeValueMustBeUnique");
    // The run's 3, and those of any run that ended before the read.
    assert!(f.count >= 3 && f.count % 3 == 0, "{r:?}");
    let latest: jiff::Timestamp = f.latest.parse().expect("latest is a time");
    let began: jiff::Timestamp = e.time_began.as_deref().unwrap_or_default().parse().expect("timeBegan");
    assert!(latest > began && r.checked_at.is_some() && r.note.is_none(), "{r:?}");
    assert!(job(&p, "AD2AADPasswordHash").is_some_and(|j| j.recent_failures.is_none()), "a healthy job has none");
    assert!(is_ready(&p), "entry-level errors leave the profile Ready");

    // Codes, counts and times only: nothing of the entries' identities anywhere.
    assert_no_personal_data("the profile", &serde_json::to_string(&p).unwrap());
    assert_no_personal_data("the Events", &serde_json::to_string(&events(&client, &ns).await).unwrap());
    assert_no_personal_data("the operator's logs", &op.logs());

    // Once per run: never more reads than the job had runs.
    passes(&sim, 3).await;
    let executions = sim.state(TENANT).unwrap()["servicePrincipals"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["jobs"].as_array().cloned().unwrap_or_default())
        .find(|j| j["id"] == job_id.as_str())
        .and_then(|j| j["executions"].as_u64())
        .unwrap();
    let reads = audit_calls(&sim);
    assert!(reads >= 1 && reads as u64 <= executions, "{reads} log reads for {executions} runs");
    let logged = sim.calls();
    let read = logged.iter().find(|c| c.path.contains("/auditLogs/provisioning")).unwrap();
    let query = read.query.clone().unwrap_or_default();
    let decoded: String = url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| format!("{k}={v}&")).collect();
    assert!(
        decoded.contains(&format!("$filter=servicePrincipal/id eq '{sp}' and activityDateTime gt "))
            && decoded.contains(" and provisioningStatusInfo/status eq 'failure'&")
            && decoded.contains("$orderby=activityDateTime desc&")
            && decoded.contains("$top=50&"),
        "{decoded}"
    );

    // Healthy again: the failures go, and so do the reads.
    sim.entry_errors(TENANT, &sp, &job_id, "AttributeValueMustBeUnique", 0, None).unwrap();
    wait_for(&api, "contoso", CONVERGE, "no recent failures", |p| {
        is_ready(p)
            && p.status.as_ref().is_some_and(|s| {
                s.jobs.iter().all(|j| {
                    j.recent_failures.is_none()
                        && j.last_execution.as_ref().is_some_and(|e| e.state.as_deref() == Some("Succeeded"))
                })
            })
    })
    .await;
    let before = audit_calls(&sim);
    passes(&sim, 4).await;
    assert_eq!(audit_calls(&sim), before, "a healthy profile reads no provisioning logs");
}

#[tokio::test]
async fn without_the_audit_permissions_a_note_and_the_profile_stays_ready() {
    let registration = Registration::new(TENANT, CLIENT, CLIENT_SECRET).with_permissions([
        "Application.ReadWrite.All",
        "Organization.ReadWrite.All",
        "Synchronization.ReadWrite.All",
    ]);
    let sim = Simulator::builder().register(registration).speed(60.0).start().await.expect("simulator");
    let (client, ns, api, sim, _op, p) = setup("failures-denied", sim).await;
    let (sp, job_id) = ids(&p);
    sim.entry_errors(TENANT, &sp, &job_id, "DuplicateSourceAnchor", 2, None).unwrap();
    let p = wait_for(&api, "contoso", CONVERGE, "a note instead of failures", |p| {
        job(p, PROVISIONING).and_then(|j| j.recent_failures.as_ref()).is_some_and(|r| r.note.is_some())
    })
    .await;
    let r = job(&p, PROVISIONING).unwrap().recent_failures.clone().unwrap();
    let note = r.note.unwrap_or_default();
    assert!(note.contains("AuditLog.Read.All") && note.contains("Directory.Read.All"), "{note}");
    assert!(r.errors.is_empty() && r.checked_at.is_none(), "{:?}", r.errors);
    assert!(sim.calls().iter().any(|c| c.path.contains("/auditLogs/provisioning") && c.status == 403));
    passes(&sim, 2).await;
    let p = api.get("contoso").await.unwrap();
    assert!(is_ready(&p), "a missing audit permission is no failure of the profile");
    assert_eq!(condition(&p, "Degraded").map(|c| c.status.as_str()), Some("False"));
    let events = events(&client, &ns).await;
    let notes: Vec<&Event> =
        events.iter().filter(|e| e.reason.as_deref() == Some("RecentFailuresUnavailable")).collect();
    assert!(!notes.is_empty(), "the note is told once as an Event");
    assert!(notes.iter().all(|e| e.type_.as_deref() == Some("Normal")), "no Warning for an optional permission");
    assert!(
        !events.iter().any(|e| e.type_.as_deref() == Some("Warning")
            && e.note.as_deref().is_some_and(|n| n.contains("AuditLog"))),
        "no Warning storm"
    );
}

#[tokio::test]
async fn an_agent_error_code_becomes_agent_unavailable_naming_the_domain() {
    let (_client, _ns, api, sim, _op, p) = setup("failures-agents", simulator().await).await;
    let (sp, job_id) = ids(&p);
    sim.fail_job(TENANT, &sp, &job_id, "HybridIdentityServiceNoActiveAgents", None).unwrap();
    let p = wait_for(&api, "contoso", CONVERGE, "Degraded AgentUnavailable", |p| {
        condition(p, "Degraded").is_some_and(|c| c.status == "True" && c.reason == "AgentUnavailable")
    })
    .await;
    let d = condition(&p, "Degraded").unwrap();
    assert!(d.message.contains("HybridIdentityServiceNoActiveAgents"), "{}", d.message);
    assert!(d.message.contains("for contoso.com") && d.message.contains("three active agents"), "{}", d.message);
    assert!(d.message.contains("install") && d.message.contains("restart"), "{}", d.message);
    assert!(condition(&p, "Ready").is_some_and(|c| c.status == "True"), "a failed run leaves Ready alone");

    sim.clear_job_failure(TENANT, &sp, &job_id).unwrap();
    wait_for(&api, "contoso", CONVERGE, "healthy again", |p| {
        is_ready(p) && condition(p, "Degraded").is_some_and(|c| c.status == "False")
    })
    .await;
}

fn graph(sim: &SimHandle) -> Tenant {
    graph_client(sim)
}

#[tokio::test]
async fn the_client_reads_two_pages_at_most_and_says_when_there_were_more() {
    let sim = simulator().await;
    let g = graph(&sim);
    let sp = g.instantiate_cloud_sync("contoso.com").await.unwrap().service_principal.id;
    let job = g.create_job(&sp, PROVISIONING, false).await.unwrap().id;
    let since: jiff::Timestamp = "2000-01-01T00:00:00Z".parse().unwrap();
    sim.entry_errors(TENANT, &sp, &job, "ExportNonRetryableFailure", 60, Some(3)).unwrap();
    g.start_job(&sp, &job).await.unwrap();
    // Three runs of 60 failures: more than the two pages of 50 the client reads.
    let mut read = g.provisioning_failures(&sp, since).await.unwrap();
    let deadline = std::time::Instant::now() + CONVERGE;
    while !read.truncated {
        assert!(std::time::Instant::now() < deadline, "never more than two pages: {}", read.entries.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
        read = g.provisioning_failures(&sp, since).await.unwrap();
    }
    assert_eq!(read.entries.len(), 100);
    assert!(
        read.entries.iter().all(|f| f.job_id.as_deref() == Some(job.as_str())
            && f.error_code.as_deref() == Some("ExportNonRetryableFailure"))
    );
    let times: Vec<_> = read.entries.iter().map(|f| f.time.unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let pages: Vec<String> = sim
        .calls()
        .into_iter()
        .filter(|c| c.path.contains("/auditLogs/provisioning"))
        .map(|c| c.query.unwrap_or_default())
        .collect();
    assert!(pages.iter().any(|q| q.contains("skiptoken")), "the second page follows the nextLink: {pages:?}");
    // Nothing after a time in the future, and that is no truncation.
    let later = g.provisioning_failures(&sp, "2100-01-01T00:00:00Z".parse().unwrap()).await.unwrap();
    assert_eq!((later.entries.len(), later.truncated), (0, false));
}

#[tokio::test]
async fn a_throttled_log_read_holds_nothing_up_and_is_made_later() {
    let (_client, _ns, api, sim, _op, p) = setup("failures-throttled", simulator().await).await;
    let (sp, job_id) = ids(&p);
    sim.add_fault(
        FaultSpec::parse_cli("kind=status,status=429,retryAfter=1,method=GET,path=/**/auditLogs/provisioning,times=2")
            .unwrap(),
    )
    .unwrap();
    sim.entry_errors(TENANT, &sp, &job_id, "AttributeValueMustBeUnique", 1, None).unwrap();
    eventually(CONVERGE, "two throttled log reads", || {
        sim.calls().iter().filter(|c| c.path.contains("/auditLogs/provisioning") && c.status == 429).count() >= 2
    })
    .await;
    let p = api.get("contoso").await.unwrap();
    assert!(is_ready(&p), "a throttled log read is no failure of the profile");
    assert!(!sim.calls().iter().any(|c| c.early_retry), "its Retry-After is honoured");
    let p = wait_for(&api, "contoso", CONVERGE, "the failures, read after the throttling", |p| {
        job(p, PROVISIONING).and_then(|j| j.recent_failures.as_ref()).is_some_and(|r| !r.errors.is_empty())
    })
    .await;
    assert!(is_ready(&p));
}
