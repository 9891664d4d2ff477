//! Introspection: the call log and counters behind `/_sim/calls` and `/_sim/counters`.
//!
//! Records carry method, path, query and outcome only: never headers or bodies, so no token,
//! client secret or secret value can leak through them.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// Oldest records are dropped beyond this many, so a long benchmark cannot exhaust memory.
const MAX_CALLS: usize = 200_000;

/// One call as `/_sim/calls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    pub tenant: Option<String>,
    pub client_id: Option<String>,
    /// Real (wall-clock) time of the call, RFC 3339.
    pub time: String,
    pub client_request_id: String,
    pub request_id: String,
    /// The call came back before its `Retry-After` elapsed.
    pub early_retry: bool,
    /// The fault kind that shaped the answer, if any.
    pub fault: Option<String>,
    /// `graph` or `token`.
    pub api: String,
    pub duration_ms: u64,
}

/// Event counters. `duplicate*` are computed from the directory when read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    /// Graph GET calls.
    pub reads: u64,
    /// Graph calls with any other method, successful or not.
    pub writes: u64,
    pub token_requests: u64,
    pub tokens_issued: u64,
    /// Graph answers with status >= 400 (injected or not).
    pub errors: u64,
    pub throttled: u64,
    pub early_retries: u64,
    pub faults_injected: u64,
    /// Instantiate calls that created objects (including those answered 404 by a fault).
    pub instantiates: u64,
    pub jobs_created: u64,
    pub job_starts: u64,
    /// Starts of a job that was already running (the service warns against these).
    pub redundant_starts: u64,
    pub job_restarts: u64,
    pub job_pauses: u64,
    pub secrets_puts: u64,
    /// Job schemas replaced (`PUT .../schema`).
    pub schema_puts: u64,
    pub organization_patches: u64,
    /// PATCHes of a service principal (its tags).
    #[serde(default)]
    pub service_principal_patches: u64,
    /// provisionOnDemand calls the service carried out (not those refused or throttled).
    #[serde(default)]
    pub provisions_on_demand: u64,
    pub deletes: u64,
    /// Service principals beyond the first per (applicationTemplateId, displayName), now.
    pub duplicate_service_principals: u64,
    pub duplicate_applications: u64,
    /// Jobs beyond the first per (service principal, templateId), now.
    pub duplicate_jobs: u64,
    /// The highest `duplicateServicePrincipals` seen since the last reset.
    pub peak_duplicate_service_principals: u64,
    pub peak_duplicate_jobs: u64,
    pub calls_dropped: u64,
}

/// Something that happened, counted per tenant and in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    TokenIssued,
    Throttled,
    EarlyRetry,
    FaultInjected,
    Instantiate,
    JobCreated,
    JobStart,
    RedundantStart,
    JobRestart,
    JobPause,
    SecretsPut,
    SchemaPut,
    OrganizationPatch,
    ServicePrincipalPatch,
    ProvisionOnDemand,
    Delete,
}

impl Counters {
    fn bump(&mut self, event: Event) {
        let c = match event {
            Event::TokenIssued => &mut self.tokens_issued,
            Event::Throttled => &mut self.throttled,
            Event::EarlyRetry => &mut self.early_retries,
            Event::FaultInjected => &mut self.faults_injected,
            Event::Instantiate => &mut self.instantiates,
            Event::JobCreated => &mut self.jobs_created,
            Event::JobStart => &mut self.job_starts,
            Event::RedundantStart => &mut self.redundant_starts,
            Event::JobRestart => &mut self.job_restarts,
            Event::JobPause => &mut self.job_pauses,
            Event::SecretsPut => &mut self.secrets_puts,
            Event::SchemaPut => &mut self.schema_puts,
            Event::OrganizationPatch => &mut self.organization_patches,
            Event::ServicePrincipalPatch => &mut self.service_principal_patches,
            Event::ProvisionOnDemand => &mut self.provisions_on_demand,
            Event::Delete => &mut self.deletes,
        };
        *c += 1;
    }
}

#[derive(Debug, Default)]
pub struct CallLog {
    calls: VecDeque<CallRecord>,
    total: Counters,
    by_tenant: BTreeMap<String, Counters>,
    /// Duplicates each tenant holds now (service principals, jobs), and their sum: a write changes
    /// only its own tenant's, so the total is kept without looking at every tenant on every write
    /// (which made the simulator quadratic in tenants: a core of the 10,000-profile benchmark).
    duplicates_now: BTreeMap<String, (u64, u64)>,
    duplicates_sum: (u64, u64),
}

impl CallLog {
    pub fn record(&mut self, call: CallRecord) {
        let graph = call.api == "graph";
        let read = call.method == "GET" || call.method == "HEAD";
        let error = call.status >= 400;
        let tenant = call.tenant.clone();
        for c in self.counters_for(tenant.as_deref()) {
            if graph {
                if read {
                    c.reads += 1;
                } else {
                    c.writes += 1;
                }
                if error {
                    c.errors += 1;
                }
            } else {
                c.token_requests += 1;
            }
        }
        if self.calls.len() >= MAX_CALLS {
            self.calls.pop_front();
            self.total.calls_dropped += 1;
        }
        self.calls.push_back(call);
    }

    fn counters_for(&mut self, tenant: Option<&str>) -> Vec<&mut Counters> {
        match tenant {
            Some(t) => {
                let per = self.by_tenant.entry(t.to_ascii_lowercase()).or_default();
                vec![&mut self.total, per]
            }
            None => vec![&mut self.total],
        }
    }

    pub fn event(&mut self, tenant: Option<&str>, event: Event) {
        for c in self.counters_for(tenant) {
            c.bump(event);
        }
    }

    /// Tracks the high-water mark of duplicates after a create.
    /// The duplicates `tenant` holds after a write to it.
    pub fn observe_duplicates(&mut self, tenant: &str, sps: u64, jobs: u64) {
        let key = tenant.to_ascii_lowercase();
        let (old_sps, old_jobs) = self.duplicates_now.insert(key.clone(), (sps, jobs)).unwrap_or_default();
        let (sum_sps, sum_jobs) = self.duplicates_sum;
        self.duplicates_sum = (sum_sps - old_sps + sps, sum_jobs - old_jobs + jobs);
        let per = self.by_tenant.entry(key).or_default();
        per.peak_duplicate_service_principals = per.peak_duplicate_service_principals.max(sps);
        per.peak_duplicate_jobs = per.peak_duplicate_jobs.max(jobs);
        let (total_sps, total_jobs) = self.duplicates_sum;
        self.total.peak_duplicate_service_principals = self.total.peak_duplicate_service_principals.max(total_sps);
        self.total.peak_duplicate_jobs = self.total.peak_duplicate_jobs.max(total_jobs);
    }

    pub fn calls(&self) -> Vec<CallRecord> {
        self.calls.iter().cloned().collect()
    }

    pub fn counters(&self, tenant: Option<&str>) -> Counters {
        match tenant {
            Some(t) => self.by_tenant.get(&t.to_ascii_lowercase()).cloned().unwrap_or_default(),
            None => self.total.clone(),
        }
    }

    /// Forgets calls and counters; the duplicates the tenants hold stay known (they are state, not
    /// history), so the next peak still counts every tenant's.
    pub fn reset(&mut self) {
        let (now, sum) = (std::mem::take(&mut self.duplicates_now), self.duplicates_sum);
        *self = Self::default();
        (self.duplicates_now, self.duplicates_sum) = (now, sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(method: &str, status: u16, tenant: Option<&str>) -> CallRecord {
        CallRecord {
            method: method.into(),
            path: "/beta/x".into(),
            query: None,
            status,
            tenant: tenant.map(str::to_owned),
            client_id: None,
            time: String::new(),
            client_request_id: String::new(),
            request_id: String::new(),
            early_retry: false,
            fault: None,
            api: "graph".into(),
            duration_ms: 0,
        }
    }

    #[test]
    fn counts_reads_writes_per_tenant() {
        let mut log = CallLog::default();
        log.record(call("GET", 200, Some("T1")));
        log.record(call("POST", 500, Some("t1")));
        log.record(call("GET", 401, None));
        log.event(Some("t1"), Event::RedundantStart);
        let total = log.counters(None);
        assert_eq!((total.reads, total.writes, total.errors, total.redundant_starts), (2, 1, 2, 1));
        let t1 = log.counters(Some("t1"));
        assert_eq!((t1.reads, t1.writes, t1.errors), (1, 1, 1));
        assert_eq!(log.calls().len(), 3);
        log.reset();
        assert_eq!(log.counters(None), Counters::default());
        assert!(log.calls().is_empty());
    }
}
