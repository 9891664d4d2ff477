//! Graph throttles per tenant and application: after a Retry-After, no call for that pair may go
//! out before it elapses, whichever call was throttled. One gate per pair, shared by every
//! handle of a client.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tenant and application (client) id, compared case-insensitively as Entra does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct GateKey {
    tenant: String,
    client: String,
}

impl GateKey {
    pub fn new(tenant: &str, client: &str) -> Self {
        Self { tenant: tenant.to_ascii_lowercase(), client: client.to_ascii_lowercase() }
    }
}

#[derive(Default)]
pub(crate) struct Gates {
    closed_until: Mutex<HashMap<GateKey, Instant>>,
}

impl Gates {
    /// How long calls for `key` must still wait at `now`; None when the gate is open.
    pub fn wait(&self, key: &GateKey, now: Instant) -> Option<Duration> {
        let mut gates = self.closed_until.lock().unwrap_or_else(|p| p.into_inner());
        let wait = gates.get(key).and_then(|until| until.checked_duration_since(now)).filter(|d| !d.is_zero());
        if wait.is_none() {
            // An elapsed gate is forgotten, so the map holds only pairs being throttled.
            gates.remove(key);
        }
        wait
    }

    /// Keeps `key` closed until at least `until`; a later deadline already set stays.
    pub fn close(&self, key: GateKey, until: Instant) {
        let mut gates = self.closed_until.lock().unwrap_or_else(|p| p.into_inner());
        let entry = gates.entry(key).or_insert(until);
        if *entry < until {
            *entry = until;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_closes_per_tenant_and_application_and_only_extends() {
        let gates = Gates::default();
        let now = Instant::now();
        let key = GateKey::new("Tenant-A", "Client-1");
        assert_eq!(gates.wait(&key, now), None);
        gates.close(GateKey::new("tenant-a", "client-1"), now + Duration::from_secs(5));
        assert_eq!(gates.wait(&key, now), Some(Duration::from_secs(5)), "ids compare case-insensitively");
        assert_eq!(gates.wait(&GateKey::new("tenant-a", "client-2"), now), None, "another application");
        assert_eq!(gates.wait(&GateKey::new("tenant-b", "client-1"), now), None, "another tenant");

        gates.close(key.clone(), now + Duration::from_secs(2));
        assert_eq!(gates.wait(&key, now), Some(Duration::from_secs(5)), "a shorter Retry-After does not shorten it");
        gates.close(key.clone(), now + Duration::from_secs(9));
        assert_eq!(gates.wait(&key, now), Some(Duration::from_secs(9)));
        assert_eq!(gates.wait(&key, now + Duration::from_secs(9)), None, "open once the deadline passed");
        assert!(gates.closed_until.lock().unwrap().is_empty(), "an open gate is forgotten");
    }
}
