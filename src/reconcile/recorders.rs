//! Event recorders, one per shard of the objects. kube's Recorder keeps the events it published
//! in the last few minutes (to count repeats into a series) and walks that whole cache on every
//! publish to drop old ones: one recorder for 1,000 new profiles (about seven events each) made
//! that walk quadratic. Events of one object always go to the same shard, so its repeats still
//! become a series.

use std::hash::{DefaultHasher, Hash, Hasher};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, Recorder, Reporter};

/// Enough that a shard's cache stays small at 10,000 profiles; each shard costs a map.
const SHARDS: usize = 64;

pub struct Recorders {
    shards: Vec<Recorder>,
}

impl Recorders {
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        Self { shards: (0..SHARDS).map(|_| Recorder::new(client.clone(), reporter.clone())).collect() }
    }

    pub async fn publish(&self, event: &Event, reference: &ObjectReference) -> Result<(), kube::Error> {
        self.shards[shard(reference)].publish(event, reference).await
    }
}

fn shard(reference: &ObjectReference) -> usize {
    let mut h = DefaultHasher::new();
    (&reference.namespace, &reference.name, &reference.uid).hash(&mut h);
    (h.finish() % SHARDS as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(name: &str) -> ObjectReference {
        ObjectReference {
            namespace: Some("ns".into()),
            name: Some(name.into()),
            uid: Some("u".into()),
            ..Default::default()
        }
    }

    #[test]
    fn one_object_keeps_its_shard_and_objects_spread() {
        assert_eq!(shard(&object("a")), shard(&object("a")));
        let used: std::collections::HashSet<usize> = (0..1000).map(|i| shard(&object(&format!("p{i}")))).collect();
        assert!(used.len() > SHARDS / 2, "{}", used.len());
    }
}
