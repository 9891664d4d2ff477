//! State shared by the reconciles of one process: which profile holds which configuration, the
//! per-tenant turns, and the failure counts behind the backoff.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct Coordination {
    per_tenant: usize,
    tenant_gates: Mutex<HashMap<String, Arc<Semaphore>>>,
    failures: Mutex<HashMap<String, u32>>,
    claims: Mutex<Claims>,
    /// Profiles whose owner tag this process has read and found its own.
    owners_checked: Mutex<HashSet<String>>,
}

impl Coordination {
    /// `per_tenant`: reconciles of one tenant that may talk to Graph at once.
    pub fn new(per_tenant: usize) -> Self {
        Self {
            per_tenant: per_tenant.max(1),
            tenant_gates: Mutex::default(),
            failures: Mutex::default(),
            claims: Mutex::default(),
            owners_checked: Mutex::default(),
        }
    }

    fn tenant_gate(&self, tenant: &str) -> Arc<Semaphore> {
        let mut gates = self.tenant_gates.lock().unwrap_or_else(|p| p.into_inner());
        gates.entry(tenant.to_ascii_lowercase()).or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant))).clone()
    }

    /// Bounds concurrent Graph work per tenant so a burst of profiles in one tenant does not
    /// stampede its throttling budget. Never waits: a profile that finds its tenant busy is
    /// requeued, so one busy tenant cannot hold every controller worker.
    pub fn try_tenant_permit(&self, tenant: &str) -> Option<OwnedSemaphorePermit> {
        self.tenant_gate(tenant).try_acquire_owned().ok()
    }

    /// Waits for a turn in the tenant (cleanup, which runs rarely and must not starve).
    pub async fn tenant_permit(&self, tenant: &str) -> Option<OwnedSemaphorePermit> {
        self.tenant_gate(tenant).acquire_owned().await.ok()
    }

    /// Claims `keys` (a tenant's configuration names and service principal ids) for `owner`,
    /// replacing what it claimed before. `Err(other)` when another profile holds one of them:
    /// two profiles must never drive (or delete) one configuration.
    pub fn claim(&self, owner: &str, keys: Vec<String>) -> Result<(), String> {
        self.claims.lock().unwrap_or_else(|p| p.into_inner()).claim(owner, keys)
    }

    pub fn release_claims(&self, owner: &str) {
        self.claims.lock().unwrap_or_else(|p| p.into_inner()).release(owner);
    }

    /// The profile got past the owner check in this process (its tag names it).
    pub fn owner_checked(&self, key: &str) {
        self.owners_checked.lock().unwrap_or_else(|p| p.into_inner()).insert(key.to_string());
    }

    /// Whether this process has read the profile's owner tag since it started: a process reads
    /// it once more than status asks for, so an install that comes back after a take-over sees it.
    pub fn owner_known(&self, key: &str) -> bool {
        self.owners_checked.lock().unwrap_or_else(|p| p.into_inner()).contains(key)
    }

    pub fn forget_owner(&self, key: &str) {
        self.owners_checked.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    /// Counts one more failure of `key` and returns the count.
    pub fn failed(&self, key: &str) -> u32 {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = f.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    pub fn succeeded(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// Which profile holds which configuration, in this process.
#[derive(Default)]
struct Claims {
    by_key: HashMap<String, String>,
    by_owner: HashMap<String, Vec<String>>,
}

impl Claims {
    fn claim(&mut self, owner: &str, keys: Vec<String>) -> Result<(), String> {
        if let Some(other) = keys.iter().filter_map(|k| self.by_key.get(k)).find(|o| o.as_str() != owner) {
            return Err(other.clone());
        }
        self.release(owner);
        for k in &keys {
            self.by_key.insert(k.clone(), owner.to_string());
        }
        self.by_owner.insert(owner.to_string(), keys);
        Ok(())
    }

    fn release(&mut self, owner: &str) {
        for k in self.by_owner.remove(owner).unwrap_or_default() {
            if self.by_key.get(&k).is_some_and(|o| o == owner) {
                self.by_key.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_has_one_profile_at_a_time() {
        let mut c = Claims::default();
        assert_eq!(c.claim("ns/a", vec!["t/name/contoso.com".into()]), Ok(()));
        assert_eq!(c.claim("ns/a", vec!["t/name/contoso.com".into(), "t/sp/1".into()]), Ok(()), "re-claiming is fine");
        assert_eq!(c.claim("other/b", vec!["t/name/contoso.com".into()]), Err("ns/a".into()));
        assert_eq!(c.claim("other/b", vec!["t/sp/1".into()]), Err("ns/a".into()));
        assert_eq!(c.claim("other/b", vec!["t/name/fabrikam.com".into()]), Ok(()));
        // A profile that moves to another name frees the old one.
        assert_eq!(c.claim("ns/a", vec!["t/name/new.contoso.com".into()]), Ok(()));
        assert_eq!(c.claim("other/c", vec!["t/name/contoso.com".into()]), Ok(()));
        c.release("other/c");
        assert_eq!(c.claim("x/d", vec!["t/name/contoso.com".into()]), Ok(()));
    }

    #[test]
    fn tenant_turns_and_failure_counts() {
        let c = Coordination::new(1);
        let held = c.try_tenant_permit("T");
        assert!(held.is_some());
        assert!(c.try_tenant_permit("t").is_none(), "tenant ids are case-insensitive");
        assert!(c.try_tenant_permit("other").is_some());
        drop(held);
        assert!(c.try_tenant_permit("t").is_some());
        assert_eq!((c.failed("k"), c.failed("k")), (1, 2));
        c.succeeded("k");
        assert_eq!(c.failed("k"), 1);
    }
}
