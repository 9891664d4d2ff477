//! Events (events.k8s.io/v1), with repeats counted into a series the way kube-runtime's Recorder
//! counts them: the same type, action and reason about the same object within six minutes
//! patches the first Event's `series` instead of creating another.
//!
//! Written here rather than taken from kube-runtime because of memory: its Recorder keeps every
//! Event it published, whole, for six minutes (to patch a repeat), and walks that cache on every
//! publish. A new profile publishes about eight Events, so converging 1,000 new profiles kept
//! 8,000 Events resident — 23 MB of the operator's 70 MB heap at its peak in the scale benchmark
//! (heaptrack), and ten times that at 10,000 profiles. What a repeat needs is the first Event's
//! name and its count, so that is all that is kept (about 100 bytes per Event), and old entries
//! are dropped at most every half minute rather than on every publish.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use serde_json::json;
use sha2::{Digest, Sha256};

/// How long a published Event can still become a series (kube-runtime's and client-go's figure).
const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

/// How often entries older than the window are dropped.
const PRUNE_EVERY: SignedDuration = SignedDuration::from_secs(30);

/// A published Event a repeat would patch.
struct Published {
    namespace: String,
    name: String,
    count: i32,
    last: Timestamp,
}

#[derive(Default)]
struct Recent {
    /// By a 128-bit digest of what makes two Events the same (see `key`).
    by_key: HashMap<u128, Published>,
    pruned: Option<Timestamp>,
}

pub struct Recorder {
    client: kube::Client,
    reporter: Reporter,
    recent: Mutex<Recent>,
}

/// What happens to one publish, decided from what was published recently.
#[derive(Debug, PartialEq, Eq)]
enum Publish {
    Create,
    /// Patch the earlier Event into a series of `count`.
    Repeat {
        namespace: String,
        name: String,
        count: i32,
    },
}

impl Recorder {
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        Self { client, reporter, recent: Mutex::new(Recent::default()) }
    }

    pub async fn publish(&self, event: &Event, reference: &ObjectReference) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = key(&self.reporter, event, reference);
        let decision = self.recent.lock().map(|mut r| r.decide(key, now)).unwrap_or(Publish::Create);
        if let Publish::Repeat { namespace, name, count } = decision {
            let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
            let patch = json!({"series": EventSeries { count, last_observed_time: MicroTime(now) }});
            match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => return Ok(()),
                // Deleted meanwhile (Events expire): start again with a new one.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let created = self.event(event, reference, now);
        let namespace = created.metadata.namespace.clone().unwrap_or_default();
        let name = created.metadata.name.clone().unwrap_or_default();
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
        api.create(&PostParams::default(), &created).await?;
        if let Ok(mut r) = self.recent.lock() {
            r.by_key.insert(key, Published { namespace, name, count: 1, last: now });
        }
        Ok(())
    }

    fn event(&self, ev: &Event, reference: &ObjectReference, now: Timestamp) -> K8sEvent {
        let controller = &self.reporter.controller;
        K8sEvent {
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            note: ev.note.clone(),
            event_time: Some(MicroTime(now)),
            regarding: Some(reference.clone()),
            related: ev.secondary.clone(),
            metadata: ObjectMeta {
                // Cluster-scoped objects' Events go to "default", as kube-runtime does it.
                namespace: Some(reference.namespace.clone().unwrap_or_else(|| "default".into())),
                name: Some(format!("{}.{:x}", reference.name.as_ref().unwrap_or(controller), now.as_nanosecond())),
                ..Default::default()
            },
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(self.reporter.instance.clone().unwrap_or_else(|| controller.clone())),
            type_: Some(type_name(ev.type_).into()),
            ..Default::default()
        }
    }
}

impl Recent {
    fn decide(&mut self, key: u128, now: Timestamp) -> Publish {
        if self.pruned.is_none_or(|at| at + PRUNE_EVERY <= now) {
            self.by_key.retain(|_, p| p.last + SERIES_WINDOW > now);
            self.pruned = Some(now);
        }
        match self.by_key.get_mut(&key) {
            Some(p) if p.last + SERIES_WINDOW > now => {
                p.count += 1;
                p.last = now;
                Publish::Repeat { namespace: p.namespace.clone(), name: p.name.clone(), count: p.count }
            }
            _ => Publish::Create,
        }
    }
}

fn type_name(t: EventType) -> &'static str {
    match t {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

/// The same Event again: type, action, reason, reporter, the object it is about and the related
/// one (not the note, as in kube-runtime). A digest, so an entry costs 16 bytes of key.
fn key(reporter: &Reporter, ev: &Event, regarding: &ObjectReference) -> u128 {
    let mut h = Sha256::new();
    let mut field = |s: Option<&str>| {
        let s = s.unwrap_or("\u{0}");
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    field(Some(type_name(ev.type_)));
    field(Some(&ev.action));
    field(Some(&ev.reason));
    field(Some(&reporter.controller));
    field(reporter.instance.as_deref());
    for r in [Some(regarding), ev.secondary.as_ref()] {
        let r = r.cloned().unwrap_or_default();
        for f in [&r.api_version, &r.kind, &r.namespace, &r.name, &r.uid, &r.field_path] {
            field(f.as_deref());
        }
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(name: &str) -> ObjectReference {
        ObjectReference {
            namespace: Some("ns".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        }
    }

    fn event(reason: &str, note: &str) -> Event {
        Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note.into()),
            action: "Reconcile".into(),
            secondary: None,
        }
    }

    fn reporter() -> Reporter {
        Reporter { controller: "c".into(), instance: None }
    }

    #[test]
    fn the_same_event_about_the_same_object_is_the_same_key_whatever_its_note() {
        let r = reporter();
        let k = key(&r, &event("A", "one"), &object("p"));
        assert_eq!(k, key(&r, &event("A", "two"), &object("p")));
        assert_ne!(k, key(&r, &event("B", "one"), &object("p")));
        assert_ne!(k, key(&r, &event("A", "one"), &object("q")));
        let normal = Event { type_: EventType::Normal, ..event("A", "one") };
        assert_ne!(k, key(&r, &normal, &object("p")));
    }

    #[test]
    fn repeats_within_the_window_count_into_one_series_and_old_entries_go() {
        let t0: Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
        let mut recent = Recent::default();
        assert_eq!(recent.decide(1, t0), Publish::Create);
        recent.by_key.insert(1, Published { namespace: "ns".into(), name: "p.1".into(), count: 1, last: t0 });
        let at = |s: i64| t0 + SignedDuration::from_secs(s);
        assert_eq!(recent.decide(1, at(10)), Publish::Repeat { namespace: "ns".into(), name: "p.1".into(), count: 2 });
        assert_eq!(recent.decide(1, at(20)), Publish::Repeat { namespace: "ns".into(), name: "p.1".into(), count: 3 });
        assert_eq!(recent.decide(2, at(20)), Publish::Create, "another key");
        // Six minutes after the last repeat: a new Event, and the old entry is dropped.
        assert_eq!(recent.decide(1, at(20 + 360)), Publish::Create);
        assert!(recent.by_key.is_empty(), "pruned");
    }
}
