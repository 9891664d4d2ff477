//! Property tests of the planner: for any status the operator may have written and anything a
//! pass may have observed, the plan keeps the rules that protect a tenant (design.md §4): no
//! second instantiate, no start of a running job, no second restart for a request done, no
//! deletion of an adopted configuration.

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::observe::{Jobs, Lookup, Observed};
use super::plan::{INSTANTIATE_GRACE, Keep, cleanup, desired_secrets, keep_in_graph, plan};
use super::step::Step;
use crate::api::{CloudSyncProfileSpec, CloudSyncProfileStatus, ServicePrincipalRef};
use crate::graph::model::{
    PASSWORD_HASH_TEMPLATE, PROVISIONING_TEMPLATE, ScheduleState, ServicePrincipal, StatusCode, SynchronizationJob,
};
use crate::graph::{Cause, ErrorKind, GraphError, Source};

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

const TEMPLATES: &[&str] = &[PROVISIONING_TEMPLATE, PASSWORD_HASH_TEMPLATE, "AD2AADGroupWriteback"];
const NAMES: &[&str] = &["contoso.com", "fabrikam.com"];
const REQUESTS: &[&str] = &["r1", "r2"];

/// A time around now: within and past every grace (3 and 10 minutes), in the future, or not a time.
fn time() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (-60i64..1500).prop_map(|secs| (now() - SignedDuration::from_secs(secs)).to_string()),
        1 => Just("not a time".to_string()),
    ]
}

fn opt<T: Strategy>(s: T) -> impl Strategy<Value = Option<T::Value>> {
    prop::option::of(s)
}

fn job_status() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(TEMPLATES),
        0u8..3,
        opt(prop::sample::select(&["Active", "Paused", "Disabled"][..])),
        opt(prop::sample::select(REQUESTS)),
        opt((prop::sample::select(REQUESTS), time())),
        opt(time()),
        opt(time()),
        opt(prop::sample::select(&["unknown", "2026-01-01T00:00:00Z"][..])),
    )
        .prop_map(|(t, n, state, done, pending, recorded, started, series)| {
            json!({
                "templateId": t, "id": format!("{t}.{n}"), "scheduleState": state,
                "lastRestartRequestId": done,
                "pendingRestart": pending.map(|(r, since)| json!({"requestId": r, "since": since})),
                "recordedAt": recorded, "lastStartTime": started, "quarantineSeriesStarted": series,
            })
        })
}

fn status() -> impl Strategy<Value = CloudSyncProfileStatus> {
    (
        opt((
            prop::sample::select(&["sp-1", "sp-2"][..]),
            opt(Just("app-1")),
            opt(prop::sample::select(NAMES)),
            opt(time()),
            opt(any::<bool>()),
        )),
        prop::collection::vec(job_status(), 0..4),
        opt(Just("sha256:old")),
        opt(any::<bool>()),
        opt((prop::sample::select(NAMES), time())),
        prop::collection::vec((prop::sample::select(TEMPLATES), time()), 0..3),
    )
        .prop_map(|(sp, mut jobs, hash, flag, pending, mut creates)| {
            // Status lists are maps keyed by template (merge strategy of the CRD).
            let mut seen = std::collections::BTreeSet::new();
            jobs.retain(|j| seen.insert(j["templateId"].as_str().unwrap_or_default().to_string()));
            let mut seen = std::collections::BTreeSet::new();
            creates.retain(|(t, _)| seen.insert(*t));
            let v = json!({
                "servicePrincipal": sp.map(|(id, app, name, at, adopted)| json!({
                    "id": id, "applicationId": app, "displayName": name, "recordedAt": at, "adopted": adopted,
                })),
                "jobs": jobs,
                "secretsHash": hash,
                "tenantSyncEnabled": flag,
                "pendingInstantiate": pending.map(|(n, since)| json!({"displayName": n, "since": since})),
                "pendingJobCreates": creates.into_iter().map(|(t, since)| json!({"templateId": t, "since": since})).collect::<Vec<_>>(),
            });
            serde_json::from_value(strip_nulls(v)).unwrap()
        })
}

fn spec() -> impl Strategy<Value = CloudSyncProfileSpec> {
    (
        prop::sample::select(NAMES),
        opt(any::<bool>()),
        opt(any::<bool>()),
        opt(any::<bool>()),
        opt(prop::sample::select(REQUESTS)),
        opt(prop::sample::select(&["Delete", "Orphan"][..])),
    )
        .prop_map(|(name, flag, phs, suspend, restart, policy)| {
            let v = json!({
                "tenantId": "11111111-2222-3333-4444-555555555555",
                "credentials": {"secretRef": {"name": "creds"}},
                "domain": name, "displayName": name,
                "tenantSyncFlag": flag, "passwordHashSync": phs, "suspend": suspend,
                "restart": restart.map(|r| json!({"requestId": r})),
                "deletionPolicy": policy,
            });
            serde_json::from_value(strip_nulls(v)).unwrap()
        })
}

fn job() -> impl Strategy<Value = SynchronizationJob> {
    (
        prop::sample::select(TEMPLATES),
        0u8..3,
        opt(prop::sample::select(&["Active", "Paused", "Disabled", "Unknown"][..])),
        opt(prop::sample::select(&["Active", "Paused", "Quarantine", "NotRun", "NotConfigured"][..])),
        opt(time()),
        opt(prop::sample::select(&["TooManyDeletes", "EncounteredBaseEscrowThreshold"][..])),
        opt(time()),
    )
        .prop_map(|(t, n, state, code, began, reason, series)| {
            let v = json!({
                "id": format!("{t}.{n}"), "templateId": t,
                "schedule": {"state": state, "interval": "PT40M"},
                "status": {
                    "code": code,
                    "lastExecution": began.map(|b| json!({"timeBegan": b})),
                    "quarantine": reason.map(|r| json!({"reason": r, "seriesBegan": series})),
                },
            });
            serde_json::from_value(strip_nulls(v)).unwrap()
        })
}

fn graph_error() -> impl Strategy<Value = GraphError> {
    (prop::sample::select(&[401u16, 403, 404, 500][..])).prop_map(|status| GraphError {
        kind: match status {
            401 => ErrorKind::Unauthorized,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            _ => ErrorKind::Transient,
        },
        source: Source::Graph,
        cause: Cause::ErrorStatus,
        operation: "jobs.list",
        status: Some(status),
        code: None,
        message: String::new(),
        request_id: None,
        retry_after: None,
    })
}

fn observed() -> impl Strategy<Value = Observed> {
    let sp = (prop::sample::select(&["sp-1", "sp-3"][..]), opt(prop::sample::select(NAMES))).prop_map(|(id, name)| {
        ServicePrincipal {
            id: id.into(),
            app_id: Some("a".into()),
            display_name: name.map(Into::into),
            application_template_id: None,
            tags: Vec::new(),
        }
    });
    let jobs = prop_oneof![
        4 => prop::collection::vec(job(), 0..4).prop_map(Jobs::Listed),
        1 => graph_error().prop_map(Jobs::Failed),
        1 => Just(Jobs::Gone),
        1 => Just(Jobs::Unlisted),
    ];
    (
        opt(opt(any::<bool>())),
        opt((prop::sample::select(NAMES), prop::collection::vec(sp, 0..3), opt(Just("app-1")))),
        opt(jobs),
        any::<bool>(),
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.05),
    )
        .prop_map(|(org, lookup, jobs, stale, refreshed, claimed)| Observed {
            organization: org.map(|on| crate::graph::model::Organization {
                id: "org".into(),
                display_name: None,
                on_premises_sync_enabled: on,
            }),
            lookup: lookup.map(|(name, found, app)| Lookup {
                name: name.into(),
                found,
                application_id: app.map(Into::into),
            }),
            jobs,
            jobs_stale: stale,
            refreshed,
            schema: None,
            template_schema: None,
            parsed: Default::default(),
            schema_check_due: false,
            claimed_by: claimed.then(|| "ns/other".to_string()),
            owner: None,
            service_principal: None,
            instantiated: None,
            recent_failures: None,
        })
}

/// A pass's inputs. Half are passes of a configuration in steady state (recorded, its jobs
/// listed, secrets current), so that plans get past creation to the runs the rules guard.
fn case() -> impl Strategy<Value = (CloudSyncProfileSpec, CloudSyncProfileStatus, Observed)> {
    (spec(), status(), observed(), prop::bool::weighted(0.5), prop::collection::vec(job(), 2)).prop_map(
        |(spec, mut status, mut seen, steady, jobs)| {
            if steady {
                status.secrets_hash = Some(desired_secrets(&spec).1);
                status.tenant_sync_enabled = Some(true);
                status
                    .service_principal
                    .get_or_insert_with(|| ServicePrincipalRef { id: "sp-1".into(), ..Default::default() });
                let listed = jobs
                    .into_iter()
                    .zip([PROVISIONING_TEMPLATE, PASSWORD_HASH_TEMPLATE])
                    .map(|(j, t)| SynchronizationJob { id: format!("{t}.0"), template_id: Some(t.into()), ..j })
                    .collect();
                seen = Observed {
                    jobs: Some(Jobs::Listed(listed)),
                    jobs_stale: false,
                    refreshed: true,
                    claimed_by: None,
                    ..seen
                };
            }
            (spec, status, seen)
        },
    )
}

/// Status as the apiserver returns it: absent fields rather than nulls.
fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, strip_nulls(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        v => v,
    }
}

fn steps(p: &super::plan::Plan) -> &[Step] {
    match p {
        super::plan::Plan::Wave(steps) => steps,
        _ => &[],
    }
}

fn pending_within_grace(status: &CloudSyncProfileStatus) -> bool {
    status.pending_instantiate.as_ref().and_then(|p| p.since.parse::<Timestamp>().ok()).is_some_and(|since| {
        let age = now().duration_since(since);
        age < SignedDuration::try_from(INSTANTIATE_GRACE).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn no_instantiate_while_one_is_known_or_pending((spec, status, seen) in case()) {
        let p = plan(&spec, &status, &seen, now());
        if status.service_principal.is_some() || pending_within_grace(&status) {
            prop_assert!(!steps(&p).iter().any(|s| matches!(s, Step::Instantiate { .. })), "{:?}", p);
        }
    }

    #[test]
    fn a_running_job_is_never_started((spec, status, seen) in case()) {
        let p = plan(&spec, &status, &seen, now());
        let Some(Jobs::Listed(listed)) = &seen.jobs else { return Ok(()) };
        for s in steps(&p) {
            if let Step::Start { job, .. } = s {
                let j = listed.iter().find(|j| &j.id == job).unwrap();
                let running = j.schedule_state() == Some(&ScheduleState::Active) && j.code() == Some(&StatusCode::Active);
                prop_assert!(!running, "started a running job: {:?}", j);
            }
        }
    }

    #[test]
    fn a_restart_recorded_done_is_never_sent_again((spec, status, seen) in case()) {
        let p = plan(&spec, &status, &seen, now());
        let restarts: Vec<(&str, &str)> = steps(&p)
            .iter()
            .filter_map(|s| match s {
                Step::Restart { template, request_id, .. } => Some((*template, request_id.as_str())),
                _ => None,
            })
            .collect();
        for (template, request_id) in &restarts {
            let done = status.jobs.iter().any(|j| {
                j.template_id == *template && j.last_restart_request_id.as_deref() == Some(*request_id)
            });
            prop_assert!(!done, "restart {request_id} of {template} was recorded done");
            prop_assert_eq!(restarts.iter().filter(|r| r.0 == *template && r.1 == *request_id).count(), 1);
        }
    }

    #[test]
    fn an_adopted_configuration_is_never_deleted((spec, status, seen) in case()) {
        let adopted = status.service_principal.as_ref().is_some_and(|sp| sp.adopted == Some(true));
        let p = plan(&spec, &status, &seen, now());
        if adopted {
            prop_assert!(!steps(&p).iter().any(|s| matches!(s, Step::DeleteJob { .. } | Step::DeleteApplication { .. } | Step::DeleteServicePrincipal { .. })), "{:?}", p);
            // Deleting the profile keeps it: cleanup is never reached for it.
            prop_assert!(matches!(keep_in_graph(&spec, &status), Some(Keep::Adopted(_) | Keep::Orphan(_))));
        }
        // What cleanup plans for anything else only deletes, adopts back what an instantiate of
        // ours made, or reads.
        if keep_in_graph(&spec, &status).is_none() {
            for s in steps(&cleanup(&status, &seen, now())) {
                prop_assert!(matches!(s, Step::DeleteJob { .. } | Step::DeleteApplication { .. } | Step::DeleteServicePrincipal { .. } | Step::Adopt { ours: true, .. }), "{:?}", s);
            }
        }
    }
}

/// The properties above hold only if the inputs reach the steps they guard: the same strategies
/// must produce plans with each of them (and guarded inputs next to unguarded ones).
#[test]
fn the_strategies_reach_every_guarded_step() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..3000 {
        let (spec, status, observed) = case().new_tree(&mut runner).unwrap().current();
        for s in steps(&plan(&spec, &status, &observed, now())) {
            seen.insert(s.name());
        }
        if keep_in_graph(&spec, &status).is_none() {
            for s in steps(&cleanup(&status, &observed, now())) {
                seen.insert(s.name());
            }
        }
    }
    for want in [
        Step::Instantiate { display_name: String::new() }.name(),
        Step::Start { template: "", job: String::new(), series: None }.name(),
        Step::Restart {
            template: "",
            job: String::new(),
            scope: String::new(),
            request_id: String::new(),
            purpose: crate::reconcile::step::RestartPurpose::Request,
        }
        .name(),
        Step::DeleteJob { id: String::new(), template: String::new() }.name(),
        Step::DeleteApplication { id: String::new() }.name(),
    ] {
        assert!(seen.contains(want), "{want} never planned: {seen:?}");
    }
}
