//! Crash safety: the operator is SIGKILLed right after each of the Graph writes of a new
//! profile — after Graph carried the write out, before the operator heard back — and a new
//! process must converge to exactly one service principal and one job per template.
//!
//! The simulator's `delay-response` fault applies the write and holds its answer; the test waits
//! until the write shows in the simulator's counters and kills the operator inside that window.

use std::time::Duration;

use crate::support::kube_env::{client, namespace};
use crate::support::operator::*;
use cloudsync_operator::api::{CloudSyncProfile, CloudSyncProfileStatus};
use cloudsync_sim::{Counters, FaultSpec};
use kube::Api;
use serde_json::json;

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    /// How many matching calls to hold (concurrent calls of one kind are held together).
    hold: u64,
    /// The write has happened when this holds.
    done: fn(&Counters) -> bool,
    /// The status the killed operator left does not show the write (proves the kill landed
    /// between Graph's change and the operator's record of it).
    unrecorded: fn(&CloudSyncProfileStatus) -> bool,
}

async fn crash_after(case: Case) {
    let client = client().await;
    let ns = namespace(&client, &format!("crash-{}", case.name)).await;
    let sim = simulator().await;
    create_secret(&client, &ns).await;
    let api: Api<CloudSyncProfile> = Api::namespaced(client.clone(), &ns);
    sim.add_fault(
        FaultSpec::parse_cli(&format!(
            "kind=delay-response,ms=20000,method={},path={},times={}",
            case.method, case.path, case.hold
        ))
        .unwrap(),
    )
    .unwrap();
    let mut op = Operator::start(&ns, &sim, &[]);
    apply(&api, &profile("contoso", json!({}))).await;

    eventually(Duration::from_secs(60), &format!("the {} write to reach Graph", case.name), || {
        (case.done)(&sim.counters())
    })
    .await;
    op.kill();
    sim.clear_faults();
    let before_restart = api.get("contoso").await.unwrap();
    assert!(!is_ready(&before_restart), "{}: killed before convergence", case.name);
    let left = before_restart.status.clone().unwrap_or_default();
    assert!((case.unrecorded)(&left), "{}: the held write was recorded after all: {left:?}", case.name);

    op.restart(&ns, &sim, &[]);
    let p = wait_for(&api, "contoso", Duration::from_secs(90), "Ready after the crash", is_ready).await;
    let c = sim.counters();
    assert_eq!(c.instantiates, 1, "{}: one instantiate", case.name);
    assert_eq!(c.jobs_created, 2, "{}: one job per template", case.name);
    assert_eq!(
        (c.duplicate_service_principals, c.peak_duplicate_service_principals, c.duplicate_jobs, c.peak_duplicate_jobs),
        (0, 0, 0, 0),
        "{}: no duplicate at any time",
        case.name
    );
    assert_eq!(c.redundant_starts, 0, "{}: no start of a running job", case.name);
    assert!(c.schema_puts >= 1, "{}: the schema got its CredentialData", case.name);
    let state = sim.state(TENANT).unwrap();
    let sps: Vec<_> = state["servicePrincipals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["applicationTemplateId"] == json!("1a4721b3-e57f-4451-ae87-ef078703ec94"))
        .collect();
    assert_eq!(sps.len(), 1);
    let mut templates: Vec<&str> =
        sps[0]["jobs"].as_array().unwrap().iter().filter_map(|j| j["templateId"].as_str()).collect();
    templates.sort();
    assert_eq!(templates, ["AD2AADPasswordHash", "AD2AADProvisioning"]);
    assert_eq!(p.status.unwrap().service_principal.unwrap().id, sps[0]["id"].as_str().unwrap());
}

const JOBS: &str = "/beta/servicePrincipals/*/synchronization/jobs";
const START: &str = "/beta/servicePrincipals/*/synchronization/jobs/*/start";

#[tokio::test]
async fn killed_after_instantiate() {
    crash_after(Case {
        name: "instantiate",
        method: "POST",
        path: "/beta/applicationTemplates/*/instantiate",
        hold: 1,
        done: |c| c.instantiates == 1,
        unrecorded: |s| s.service_principal.is_none() && s.pending_instantiate.is_some(),
    })
    .await;
}

/// The owner tag written, not recorded: the next process finds its own tag and only records it.
/// The tag goes out in one wave with the job creations and the secrets, whose patch of intents
/// carried the new service principal's id: the id and both creation intents are in status.
#[tokio::test]
async fn killed_after_the_owner_tag() {
    crash_after(Case {
        name: "owner",
        method: "PATCH",
        path: "/beta/servicePrincipals/*",
        hold: 1,
        done: |c| c.service_principal_patches == 1,
        unrecorded: |s| {
            s.service_principal.as_ref().is_some_and(|sp| sp.owner.is_none())
                && s.jobs.is_empty()
                && s.pending_job_creates.len() == 2
        },
    })
    .await;
}

#[tokio::test]
async fn killed_after_the_first_job_creation() {
    crash_after(Case {
        name: "create1",
        method: "POST",
        path: JOBS,
        hold: 1,
        done: |c| c.jobs_created >= 1,
        unrecorded: |s| s.service_principal.is_some() && s.jobs.len() < 2,
    })
    .await;
}

#[tokio::test]
async fn killed_after_the_second_job_creation() {
    crash_after(Case {
        name: "create2",
        method: "POST",
        path: JOBS,
        hold: 2,
        done: |c| c.jobs_created == 2,
        unrecorded: |s| s.service_principal.is_some() && s.jobs.is_empty(),
    })
    .await;
}

#[tokio::test]
async fn killed_after_the_secrets_put() {
    crash_after(Case {
        name: "secrets",
        method: "PUT",
        path: "/beta/servicePrincipals/*/synchronization/secrets",
        hold: 1,
        done: |c| c.secrets_puts == 1,
        unrecorded: |s| s.service_principal.is_some() && s.secrets_hash.is_none(),
    })
    .await;
}

#[tokio::test]
async fn killed_after_the_schema_put() {
    crash_after(Case {
        name: "schema",
        method: "PUT",
        path: "/beta/servicePrincipals/*/synchronization/jobs/*/schema",
        hold: 1,
        done: |c| c.schema_puts == 1,
        unrecorded: |s| s.service_principal.is_some() && s.schema_hash.is_none(),
    })
    .await;
}

#[tokio::test]
async fn killed_after_the_first_start() {
    crash_after(Case {
        name: "start1",
        method: "POST",
        path: START,
        hold: 1,
        done: |c| c.job_starts >= 1,
        unrecorded: |s| s.jobs.len() == 2 && s.jobs.iter().any(|j| j.code.as_deref() != Some("Active")),
    })
    .await;
}

#[tokio::test]
async fn killed_after_the_second_start() {
    crash_after(Case {
        name: "start2",
        method: "POST",
        path: START,
        hold: 2,
        done: |c| c.job_starts == 2,
        unrecorded: |s| s.jobs.len() == 2 && s.jobs.iter().all(|j| j.code.as_deref() != Some("Active")),
    })
    .await;
}
