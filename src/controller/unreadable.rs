//! Profiles this operator version cannot read: a newer CRD gave an enum a new value, or changed a
//! field's type (an upgrade that applied the CRD first, or a rollback). The watch hands each of
//! them over as an `InvalidObject` instead of failing as a whole; each gets a Warning Event and a
//! `Ready=False UnreadableSpec` condition, written as JSON since there is no typed profile to
//! write. Then nothing happens until the object changes: retrying cannot help, a fixed manifest or
//! a newer operator can.

use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Map, Value, json};
use tracing::warn;

use crate::api::conditions::{self, Desired, types};
use crate::api::{CloudSyncProfile, CloudSyncProfileSpec, CloudSyncProfileStatus, FINALIZER};
use crate::reconcile::{Context, Error, Reason};

/// Reason of the Ready condition and of the Event.
pub const REASON: &str = Reason::UnreadableSpec.as_str();

/// Field manager of the condition write. Not the status writer's: its server-side apply owns the
/// whole status, and applying a single condition under its name would delete everything else.
pub const FIELD_MANAGER: &str = "cloudsync-operator-unreadable";

/// Keeps the message within an Event note (1 kB) and free of long echoed values.
const MAX_PROBLEM_CHARS: usize = 400;

/// After the watched version failed to read but a fresh read succeeds, the watch is about to
/// deliver the newer version; look again shortly in case it only changed the status.
const RECHECK: Duration = Duration::from_secs(2);

/// Where and why `raw` does not read as a `CloudSyncProfile`, e.g.
/// ``spec.deletionPolicy: unknown variant `Archive`, expected `Delete` or `Orphan` ``.
/// `None` when it reads.
pub fn diagnose(raw: &Value) -> Option<String> {
    if let Some(spec) = raw.get("spec")
        && let Err(e) = serde_path_to_error::deserialize::<_, CloudSyncProfileSpec>(spec)
    {
        return Some(at("spec", &e));
    }
    if let Some(status) = raw.get("status").filter(|s| !s.is_null())
        && let Err(e) = serde_path_to_error::deserialize::<_, CloudSyncProfileStatus>(status)
    {
        return Some(at("status", &e));
    }
    serde_json::from_value::<CloudSyncProfile>(raw.clone()).err().map(|e| shorten(&e.to_string()))
}

fn at(root: &str, e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    let field = if path == "." { root.to_string() } else { format!("{root}.{path}") };
    shorten(&format!("{field}: {}", e.inner()))
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_PROBLEM_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// The condition message and Event note: what is wrong and what to do.
pub fn message(problem: &str, deletion_waits: bool) -> String {
    let mut m = format!(
        "This operator version cannot read the profile: {problem}. The CloudSyncProfile CRD is \
         probably newer than the operator (applied before an upgrade, or left after a rollback): \
         upgrade the operator, or change the manifest to fields and values this version supports."
    );
    if deletion_waits {
        m.push_str(&format!(
            " Deletion waits: Microsoft Graph is cleaned up only once the operator can read the \
             profile (removing the finalizer {FINALIZER} lets it go and leaves Graph as it is)."
        ));
    }
    m
}

/// A server-side apply body for the status subresource with just `Ready=False UnreadableSpec`
/// and `observedGeneration` (the operator did look at this generation, so Argo CD and `kubectl
/// wait` see a verdict rather than a pending one). `None` when the status already says so.
pub fn status_patch(raw: &Value, message: &str, now: Timestamp) -> Option<Value> {
    let generation = raw.pointer("/metadata/generation").and_then(Value::as_i64);
    let observed = raw.pointer("/status/observedGeneration").and_then(Value::as_i64);
    let current: Vec<Condition> =
        raw.pointer("/status/conditions").and_then(|c| serde_json::from_value(c.clone()).ok()).unwrap_or_default();
    let merged = conditions::merge(&current, &[Desired::new(types::READY, false, REASON, message)], generation, now);
    let ready = conditions::find(&merged, types::READY)?;
    if observed == generation && conditions::find(&current, types::READY) == Some(ready) {
        return None;
    }
    let mut status = Map::new();
    if let Some(g) = generation {
        status.insert("observedGeneration".into(), json!(g));
    }
    status.insert("conditions".into(), json!([ready]));
    Some(json!({
        "apiVersion": CloudSyncProfile::api_version(&()),
        "kind": CloudSyncProfile::kind(&()),
        "status": status,
    }))
}

/// Tells the owner of an unreadable profile what is wrong; `error` is the watch's deserialization
/// error, used when a fresh read of the same version cannot say more.
pub async fn report(object: &DeserializeGuard<CloudSyncProfile>, error: &str, ctx: &Context) -> Result<Action, Error> {
    if !ctx.leading() {
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    let ns = object.namespace().unwrap_or_default();
    let name = object.name_any();
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.kube.clone(), &ns, &ApiResource::erase::<CloudSyncProfile>(&()));
    // The watch kept only the metadata; the raw object names the field and holds the conditions.
    let Some(current) = api.get_opt(&name).await? else {
        return Ok(Action::await_change());
    };
    let raw = serde_json::to_value(&current).map_err(|e| Error::Kube(kube::Error::SerdeError(e)))?;
    let problem = match diagnose(&raw) {
        Some(p) => p,
        None if current.resource_version() != object.resource_version() => return Ok(Action::requeue(RECHECK)),
        None => shorten(error),
    };
    let deletion_waits =
        current.metadata.deletion_timestamp.is_some() && current.finalizers().iter().any(|f| f == FINALIZER);
    let message = message(&problem, deletion_waits);
    warn!(profile = %format!("{ns}/{name}"), problem = %problem, "cannot read the profile; waiting until it changes");

    let event = Event {
        type_: EventType::Warning,
        reason: REASON.into(),
        note: Some(message.clone()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &object.object_ref(&())).await {
        warn!(profile = %format!("{ns}/{name}"), error = %e, "cannot publish event");
    }
    if let Some(patch) = status_patch(&raw, &message, Timestamp::now()) {
        api.patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    }
    ctx.metrics.reconciled(REASON, started.elapsed());
    ctx.metrics.profile_ready(&format!("{ns}/{name}"), Some("false"));
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn manifest(spec: Value) -> Value {
        json!({
            "apiVersion": "cloudsync.io/v1alpha1",
            "kind": "CloudSyncProfile",
            "metadata": {"name": "p", "namespace": "ns", "generation": 4},
            "spec": spec,
        })
    }

    fn spec() -> Value {
        json!({
            "tenantId": "11111111-2222-3333-4444-555555555555",
            "credentials": {"secretRef": {"name": "graph-credentials"}},
            "domain": "contoso.com",
        })
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("timestamp")
    }

    #[test]
    fn fields_a_newer_crd_adds_are_ignored() {
        let mut s = spec();
        s["futureField"] = json!("from the next release");
        s["credentials"]["secretRef"]["futureKey"] = json!("x");
        s["restart"] = json!({"requestId": "a", "futureMode": true});
        let raw = manifest(s);
        assert_eq!(diagnose(&raw), None);
        let p: CloudSyncProfile = serde_json::from_value(raw).expect("reads");
        assert_eq!(p.spec.domain, "contoso.com");
    }

    #[test]
    fn a_new_enum_value_is_named_with_its_field() {
        let mut s = spec();
        s["deletionPolicy"] = json!("Archive");
        let problem = diagnose(&manifest(s)).expect("unreadable");
        assert!(problem.starts_with("spec.deletionPolicy: unknown variant `Archive`"), "{problem}");
        assert!(problem.contains("Delete") && problem.contains("Orphan"), "{problem}");
    }

    #[test]
    fn a_changed_type_is_named_with_its_nested_field() {
        let mut s = spec();
        s["credentials"]["secretRef"]["name"] = json!({"from": "elsewhere"});
        let problem = diagnose(&manifest(s)).expect("unreadable");
        assert!(problem.starts_with("spec.credentials.secretRef.name: invalid type: map"), "{problem}");
    }

    #[test]
    fn an_unreadable_status_is_named_too() {
        let mut raw = manifest(spec());
        raw["status"] = json!({"observedGeneration": "four"});
        let problem = diagnose(&raw).expect("unreadable");
        assert!(problem.starts_with("status.observedGeneration: invalid type"), "{problem}");
    }

    #[test]
    fn the_message_says_what_to_do_and_fits_an_event() {
        let long = "x".repeat(5000);
        let m = message(&shorten(&long), true);
        assert!(m.contains("upgrade the operator") && m.contains("change the manifest"), "{m}");
        assert!(m.contains("remov") && m.contains(FINALIZER), "{m}");
        assert!(m.len() < 1024, "{} bytes", m.len());
        assert!(!message("p", false).contains(FINALIZER));
    }

    #[test]
    fn the_patch_sets_ready_false_once() {
        let raw = manifest(spec());
        let patch = status_patch(&raw, "m", t(100)).expect("a first write");
        assert_eq!(patch["kind"], "CloudSyncProfile");
        assert_eq!(patch["status"]["observedGeneration"], 4);
        let written: Vec<Condition> =
            serde_json::from_value(patch["status"]["conditions"].clone()).expect("conditions");
        assert_eq!(written.len(), 1, "only Ready: the other conditions stay as they are");
        assert_eq!((written[0].type_.as_str(), written[0].status.as_str()), ("Ready", "False"));
        assert_eq!((written[0].reason.as_str(), written[0].message.as_str()), (REASON, "m"));
        assert_eq!(written[0].observed_generation, Some(4));

        // Applied: the same verdict later is no write at all.
        let mut after = raw.clone();
        after["status"] = patch["status"].clone();
        assert_eq!(status_patch(&after, "m", t(200)), None);
        // A new message is written, keeping the transition time.
        let again = status_patch(&after, "other", t(300)).expect("changed message");
        let c: Vec<Condition> = serde_json::from_value(again["status"]["conditions"].clone()).expect("conditions");
        assert_eq!(c[0].last_transition_time, Time(t(100)));
        // A new generation is written.
        after["metadata"]["generation"] = json!(5);
        assert!(status_patch(&after, "m", t(400)).is_some());
    }

    #[test]
    fn a_ready_profile_flips_to_false() {
        let mut raw = manifest(spec());
        raw["status"] = json!({
            "observedGeneration": 4,
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Ready", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 4},
            ],
        });
        let patch = status_patch(&raw, "m", t(100)).expect("flips");
        let c: Vec<Condition> = serde_json::from_value(patch["status"]["conditions"].clone()).expect("conditions");
        assert_eq!((c[0].status.as_str(), c[0].last_transition_time.clone()), ("False", Time(t(100))));
    }
}
