//! Synchronization job life cycle (reference §2), computed lazily from timestamps.
//!
//! A job stores only what changed at its last mutation (start, pause, restart, quarantine, an
//! induced failure) plus the materialised outcome of executions up to then. Executions of an
//! active job are implied by the schedule: the n-th one begins at `anchor + n * interval` and ends
//! [`EXECUTION_SECS`] later. [`Job::advance`] folds the executions that completed since the last
//! look into the status in O(1), so an idle simulator with thousands of jobs does no work.

use std::collections::VecDeque;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::clock::{SENTINEL, fmt7, plus_secs};
use super::deletes::DeleteThreshold;
use super::ids;
use super::provisioning::{self, Entry};

/// The interval of a running cloud-sync job.
pub const ACTIVE_INTERVAL_SECS: i64 = 120;
/// How long one execution takes, in service time.
pub const EXECUTION_SECS: i64 = 20;
/// .NET `TimeSpan.MaxValue`, shown on new and disabled jobs.
pub const MAX_INTERVAL: &str = "P10675199DT2H48M5.4775807S";
/// Quarantined jobs are disabled after four weeks (provisioning quarantine doc).
const QUARANTINE_DISABLE_SECS: i64 = 28 * 24 * 3600;

pub const QUARANTINE_REASONS: &[&str] = &[
    "EncounteredBaseEscrowThreshold",
    "EncounteredTotalEscrowThreshold",
    "EncounteredEscrowProportionThreshold",
    "EncounteredQuarantineException",
    "Unknown",
    "QuarantinedOnDemand",
    "TooManyDeletes",
    "IngestionInterrupted",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleState {
    Active,
    Disabled,
    Paused,
}

impl ScheduleState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "Active",
            Self::Disabled => "Disabled",
            Self::Paused => "Paused",
        }
    }
}

/// A `synchronizationError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncError {
    pub code: String,
    pub message: String,
    pub tenant_actionable: bool,
}

impl SyncError {
    /// An error with the message cloud sync shows for well-known codes.
    pub fn from_code(code: &str, message: Option<String>) -> Self {
        let (default_message, tenant_actionable) = match code {
            "HybridIdentityServiceNoActiveAgents" => (
                "There are no active provisioning agents for the domain. Make sure an agent is installed and running.",
                true,
            ),
            "HybridIdentityServiceNoAgentsAssigned" => ("No provisioning agents are assigned to the domain.", true),
            "HybridIdentityServiceInvalidResource" => ("The domain configured for the job is not valid.", true),
            "HybridIdentityServiceAgentSignalingError" => ("The provisioning agent could not be signaled.", true),
            "AzureActiveDirectoryInvalidCredential" | "AzureActiveDirectoryExpiredCredentials" => {
                ("The credentials used for synchronization are invalid or expired.", true)
            }
            "AzureActiveDirectoryAuthenticationFailed" => ("Authentication to Microsoft Entra ID failed.", true),
            "TimeOut" => ("The operation timed out.", false),
            "AzureDirectoryServiceServerBusy" => ("The directory service is busy.", false),
            "HybridSynchronizationActiveDirectoryInternalServerError" => {
                ("The on-premises Active Directory returned an internal error.", false)
            }
            _ => ("The synchronization engine encountered an error.", true),
        };
        Self {
            code: code.to_owned(),
            message: message.unwrap_or_else(|| default_message.to_owned()),
            tenant_actionable,
        }
    }

    fn to_json(&self) -> Value {
        json!({"code": self.code, "message": self.message, "tenantActionable": self.tenant_actionable})
    }
}

/// One `synchronizationTaskExecution`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    pub seq: u64,
    pub began: Timestamp,
    pub ended: Timestamp,
    pub error: Option<SyncError>,
    /// An initial (or reset-watermark) cycle imports and exports every object in scope.
    pub full: bool,
    /// Objects this execution deleted in the target.
    pub deletes: u64,
    /// Objects the run could not process (entry-level errors; `countEscrowed`).
    pub escrowed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantine {
    pub series_began: Timestamp,
    pub reason: String,
    pub error: SyncError,
}

/// The `resetScope` flags of `restart` (reference §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResetScope(u8);

impl ResetScope {
    pub const NONE: u8 = 1;
    pub const CONNECTOR_DATA_STORE: u8 = 2;
    pub const ESCROWS: u8 = 4;
    pub const WATERMARK: u8 = 8;
    pub const QUARANTINE_STATE: u8 = 16;
    pub const FULL: u8 = 32;
    pub const FORCE_DELETES: u8 = 64;

    const NAMES: [(&'static str, u8); 7] = [
        ("None", Self::NONE),
        ("ConnectorDataStore", Self::CONNECTOR_DATA_STORE),
        ("Escrows", Self::ESCROWS),
        ("Watermark", Self::WATERMARK),
        ("QuarantineState", Self::QUARANTINE_STATE),
        ("Full", Self::FULL),
        ("ForceDeletes", Self::FORCE_DELETES),
    ];

    /// Parses `"Watermark, Escrows, QuarantineState"`; names are case-sensitive, as in OData enums.
    pub fn parse(input: &str) -> Result<Self, String> {
        let mut bits = 0;
        for part in input.split(',') {
            let part = part.trim();
            let (_, bit) = Self::NAMES.iter().find(|(name, _)| *name == part).ok_or_else(|| {
                format!(
                    "The value '{part}' is not a valid synchronizationJobRestartScope. Valid values: None, ConnectorDataStore, Escrows, Watermark, QuarantineState, Full, ForceDeletes."
                )
            })?;
            bits |= bit;
        }
        Ok(Self(bits))
    }

    /// What an empty or omitted criteria body means: the portal's "Restart provisioning".
    pub fn portal_default() -> Self {
        Self(Self::QUARANTINE_STATE | Self::WATERMARK | Self::ESCROWS)
    }

    pub fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }

    pub fn clears_quarantine(self) -> bool {
        self.has(Self::QUARANTINE_STATE) || self.has(Self::FULL)
    }

    pub fn resets_watermark(self) -> bool {
        self.has(Self::WATERMARK) || self.has(Self::FULL)
    }
}

/// What a `start` did; a start on a running job is what the service warns against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    Started,
    Resumed,
    QuarantineCleared,
    Redundant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    /// Service time at which execution 0 of this run began.
    anchor: Timestamp,
    /// Index (within the run) of the first execution not yet folded into the status.
    next: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    error: SyncError,
    /// How many further executions fail; `None` means until cleared.
    remaining: Option<u64>,
}

/// Entry-level errors the next runs have: `count` objects fail with `code` in each run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryErrors {
    pub code: String,
    pub count: u64,
    /// How many further runs have them; `None` means until cleared.
    pub remaining: Option<u64>,
}

/// Deletes the next execution wants to make (control API); `released` after `ForceDeletes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingDeletes {
    pub count: u64,
    pub released: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: String,
    pub template_id: String,
    pub created: Timestamp,
    schedule: ScheduleState,
    run: Option<Run>,
    executions: u64,
    last: Option<Execution>,
    last_success: Option<Execution>,
    last_with_exports: Option<Execution>,
    successive_failures: i64,
    steady_first: Option<Timestamp>,
    steady_last: Option<Timestamp>,
    quarantine: Option<Quarantine>,
    failure: Option<Failure>,
    full_pending: bool,
    pending_deletes: Option<PendingDeletes>,
    threshold: DeleteThreshold,
    deleted: u64,
    entry_errors: Option<EntryErrors>,
    /// Provisioning log entries of this job's runs, oldest first, bounded.
    log: VecDeque<Entry>,
    log_seq: u64,
}

impl Job {
    pub fn new(id: String, template_id: String, now: Timestamp) -> Self {
        Self {
            id,
            template_id,
            created: now,
            schedule: ScheduleState::Disabled,
            run: None,
            executions: 0,
            last: None,
            last_success: None,
            last_with_exports: None,
            successive_failures: 0,
            steady_first: None,
            steady_last: None,
            quarantine: None,
            failure: None,
            full_pending: true,
            pending_deletes: None,
            threshold: DeleteThreshold::default(),
            deleted: 0,
            entry_errors: None,
            log: VecDeque::new(),
            log_seq: 0,
        }
    }

    /// The provisioning log entries of runs folded so far, oldest first.
    pub fn log(&self) -> &VecDeque<Entry> {
        &self.log
    }

    /// Makes the next `runs` runs (all, if `None`) end with `count` entry-level errors of `code`
    /// (state `EntryLevelErrors`); `count` 0 withdraws them.
    pub fn set_entry_errors(&mut self, now: Timestamp, code: String, count: u64, runs: Option<u64>) {
        self.advance(now);
        self.entry_errors = (count > 0).then_some(EntryErrors { code, count, remaining: runs.filter(|r| *r > 0) });
    }

    fn activity(&self, seq: u64) -> String {
        ids::stable_guid(&[&self.id, &seq.to_string()])
    }

    fn append_log(&mut self, entries: Vec<Entry>) {
        self.log_seq = self.log_seq.saturating_add(entries.len() as u64);
        self.log.extend(entries);
        while self.log.len() > provisioning::KEPT_PER_JOB {
            self.log.pop_front();
        }
    }

    pub fn executions(&self) -> u64 {
        self.executions
    }

    /// Objects deleted by executions so far.
    pub fn deleted(&self) -> u64 {
        self.deleted
    }

    pub fn pending_deletes(&self) -> Option<PendingDeletes> {
        self.pending_deletes
    }

    /// The threshold from the service principal's `SyncNotificationSettings`, as of `now`.
    pub fn set_delete_threshold(&mut self, now: Timestamp, threshold: DeleteThreshold) {
        self.advance(now);
        self.threshold = threshold;
    }

    /// Makes the next execution want to delete `count` objects (0 withdraws them, which is
    /// what fixing the scope or AD amounts to).
    pub fn want_deletes(&mut self, now: Timestamp, count: u64) {
        self.advance(now);
        self.pending_deletes = (count > 0).then_some(PendingDeletes { count, released: false });
    }

    /// The first execution after deletes were requested: held at the threshold (quarantine
    /// `TooManyDeletes`, reference part 2 §2) or carried out. `false` when nothing was pending.
    fn run_deletes(&mut self, run: Run, now: Timestamp) -> bool {
        let Some(p) = self.pending_deletes else { return false };
        let began = Self::exec_began(run.anchor, run.next);
        let ended = plus_secs(began, EXECUTION_SECS);
        if !p.released && self.threshold.holds(p.count) {
            let error = SyncError {
                code: "TooManyDeletes".into(),
                message: format!(
                    "Delete threshold exceeded: this run would delete {} objects and the accidental-delete threshold is {}. Approve with a restart whose resetScope contains ForceDeletes.",
                    p.count, self.threshold.value
                ),
                tenant_actionable: true,
            };
            self.last = Some(Execution {
                seq: self.executions,
                began,
                ended,
                error: Some(error.clone()),
                full: false,
                deletes: 0,
                escrowed: 0,
            });
            let staged = provisioning::staged_deletes(self.log_seq, began, &self.activity(self.executions), p.count);
            self.append_log(staged);
            self.executions += 1;
            self.successive_failures = self.successive_failures.saturating_add(1);
            self.quarantine = Some(Quarantine { series_began: ended, reason: "TooManyDeletes".into(), error });
            self.run = None;
            return true;
        }
        let e = Execution {
            seq: self.executions,
            began,
            ended,
            error: None,
            full: self.full_pending,
            deletes: p.count,
            escrowed: 0,
        };
        self.full_pending = false;
        self.last = Some(e.clone());
        self.last_success = Some(e.clone());
        self.last_with_exports = Some(e);
        self.steady_first.get_or_insert(ended);
        self.steady_last = Some(ended);
        self.successive_failures = 0;
        self.executions += 1;
        self.deleted = self.deleted.saturating_add(p.count);
        self.pending_deletes = None;
        self.run = Some(Run { anchor: run.anchor, next: run.next + 1 });
        self.advance(now);
        true
    }

    #[cfg(test)]
    pub fn is_quarantined(&self) -> bool {
        self.quarantine.is_some()
    }

    pub fn last_success_end(&self) -> Option<Timestamp> {
        self.last_success.as_ref().map(|e| e.ended)
    }

    /// `status.code`, as of the last [`Job::advance`].
    pub fn code(&self) -> &'static str {
        match (self.schedule, &self.quarantine) {
            (ScheduleState::Paused, _) => "Paused",
            (_, Some(_)) => "Quarantine",
            (ScheduleState::Active, None) => "Active",
            (ScheduleState::Disabled, None) if self.executions == 0 => "NotRun",
            (ScheduleState::Disabled, None) => "Paused",
        }
    }

    fn exec_began(anchor: Timestamp, index: u64) -> Timestamp {
        let offset = i64::try_from(index).unwrap_or(i64::MAX / 2).saturating_mul(ACTIVE_INTERVAL_SECS);
        plus_secs(anchor, offset)
    }

    /// Folds executions completed by `now` into the status.
    pub fn advance(&mut self, now: Timestamp) {
        let Some(run) = self.run else { return };
        let elapsed = now.duration_since(run.anchor);
        let exec = SignedDuration::from_secs(EXECUTION_SECS);
        if elapsed < exec {
            return;
        }
        let interval_ns = i128::from(ACTIVE_INTERVAL_SECS) * 1_000_000_000;
        let done = u64::try_from((elapsed - exec).as_nanos() / interval_ns + 1).unwrap_or(u64::MAX);
        if done <= run.next || self.run_deletes(run, now) {
            return;
        }
        let n = done - run.next;
        let fails = match &self.failure {
            Some(Failure { remaining: Some(r), .. }) => n.min(*r),
            Some(Failure { remaining: None, .. }) => n,
            None => 0,
        };
        let make = |index: u64, seq: u64, error: Option<SyncError>, full: bool| {
            let began = Self::exec_began(run.anchor, index);
            Execution { seq, began, ended: plus_secs(began, EXECUTION_SECS), error, full, deletes: 0, escrowed: 0 }
        };
        let base_seq = self.executions;
        if fails > 0 {
            let error = self.failure.as_ref().map(|f| f.error.clone());
            self.last = Some(make(run.next + fails - 1, base_seq + fails - 1, error, false));
            self.successive_failures =
                self.successive_failures.saturating_add(i64::try_from(fails).unwrap_or(i64::MAX));
            if let Some(Failure { remaining: Some(r), .. }) = &mut self.failure {
                *r -= fails;
                if *r == 0 {
                    self.failure = None;
                }
            }
        }
        if n > fails {
            let ok = n - fails;
            let first = run.next + fails;
            let last = done - 1;
            let first_seq = base_seq + fails;
            let last_seq = base_seq + n - 1;
            // Runs with entry-level errors come first: they were asked for before these runs.
            let with_errors = match &self.entry_errors {
                Some(EntryErrors { remaining: Some(r), .. }) => ok.min(*r),
                Some(EntryErrors { remaining: None, .. }) => ok,
                None => 0,
            };
            let escrowed = self.entry_errors.as_ref().map_or(0, |e| e.count);
            let with_escrows = |mut e: Execution, k: u64| {
                if k < with_errors {
                    e.escrowed = escrowed;
                }
                e
            };
            let mut full_run = None;
            if self.full_pending {
                let full = with_escrows(make(first, first_seq, None, true), 0);
                let sample = provisioning::run_successes(
                    self.log_seq,
                    full.began,
                    &self.activity(full.seq),
                    u64::try_from(population(&self.id)).unwrap_or(0),
                );
                self.append_log(sample);
                self.last_with_exports = Some(full.clone());
                self.full_pending = false;
                full_run = Some(full);
            }
            if let Some(code) = self.entry_errors.as_ref().map(|e| e.code.clone()) {
                for k in with_errors.saturating_sub(provisioning::RUNS_LOGGED_PER_FOLD)..with_errors {
                    let began = Self::exec_began(run.anchor, first + k);
                    let entries =
                        provisioning::run_failures(self.log_seq, began, &self.activity(first_seq + k), &code, escrowed);
                    self.append_log(entries);
                }
                if let Some(EntryErrors { remaining: Some(r), .. }) = &mut self.entry_errors {
                    *r -= with_errors;
                    if *r == 0 {
                        self.entry_errors = None;
                    }
                }
            }
            let last_run = match &full_run {
                Some(full) if first == last => full.clone(),
                _ => with_escrows(make(last, last_seq, None, false), ok - 1),
            };
            // A run with entry-level errors is no successful execution.
            if last_run.escrowed == 0 {
                self.last_success = Some(last_run.clone());
            }
            if self.steady_first.is_none() {
                self.steady_first = Some(plus_secs(Self::exec_began(run.anchor, first), EXECUTION_SECS));
            }
            self.steady_last = Some(last_run.ended);
            self.last = Some(last_run);
            self.successive_failures = 0;
        }
        self.executions = self.executions.saturating_add(n);
        self.run = Some(Run { anchor: run.anchor, next: done });
    }

    pub fn start(&mut self, now: Timestamp) -> StartOutcome {
        self.advance(now);
        let outcome = if self.quarantine.take().is_some() {
            StartOutcome::QuarantineCleared
        } else {
            match self.schedule {
                ScheduleState::Active => return StartOutcome::Redundant,
                ScheduleState::Paused => StartOutcome::Resumed,
                ScheduleState::Disabled => StartOutcome::Started,
            }
        };
        self.schedule = ScheduleState::Active;
        self.run = Some(Run { anchor: now, next: 0 });
        outcome
    }

    /// Stops scheduling; an execution in progress is abandoned, progress so far is kept.
    pub fn pause(&mut self, now: Timestamp) {
        self.advance(now);
        self.schedule = ScheduleState::Paused;
        self.run = None;
    }

    /// Restarts with `scope`; a new execution begins at once unless the job stays quarantined.
    pub fn restart(&mut self, now: Timestamp, scope: ResetScope) {
        self.advance(now);
        if scope.clears_quarantine() {
            self.quarantine = None;
            self.successive_failures = 0;
        }
        if scope.resets_watermark() {
            self.full_pending = true;
        }
        // Only an explicit ForceDeletes approves held deletes ([UNCONFIRMED] whether `Full`
        // implies it; the simulator says no, so nothing approves deletes by accident).
        if scope.has(ResetScope::FORCE_DELETES) {
            if let Some(p) = &mut self.pending_deletes {
                p.released = true;
            }
            if self.quarantine.as_ref().is_some_and(|q| q.reason == "TooManyDeletes") {
                self.quarantine = None;
                self.successive_failures = 0;
            }
        }
        self.schedule = ScheduleState::Active;
        self.run = if self.quarantine.is_some() { None } else { Some(Run { anchor: now, next: 0 }) };
    }

    /// Puts the job into quarantine now; the execution in flight (if any) is the one that failed.
    pub fn quarantine(&mut self, now: Timestamp, reason: String, error: SyncError) {
        self.advance(now);
        let began = match self.run {
            Some(run) => {
                let b = Self::exec_began(run.anchor, run.next);
                if b <= now { b } else { now }
            }
            None => now,
        };
        self.last = Some(Execution {
            seq: self.executions,
            began,
            ended: now,
            error: Some(error.clone()),
            full: false,
            deletes: 0,
            escrowed: 0,
        });
        self.executions += 1;
        self.successive_failures = self.successive_failures.saturating_add(1);
        self.quarantine = Some(Quarantine { series_began: now, reason, error });
        self.run = None;
    }

    /// Makes the next `count` executions (all, when `None`) fail with `error`.
    pub fn fail(&mut self, now: Timestamp, error: SyncError, count: Option<u64>) {
        self.advance(now);
        self.failure = Some(Failure { error, remaining: count.filter(|c| *c > 0) });
    }

    /// Clears induced failures and entry-level errors.
    pub fn clear_failure(&mut self, now: Timestamp) {
        self.advance(now);
        self.failure = None;
        self.entry_errors = None;
    }

    /// The quarantine view at `now`: retries at 6 h, 12 h and 24 h intervals, then daily.
    fn quarantine_view(q: &Quarantine, now: Timestamp) -> (Timestamp, Timestamp, i64, bool) {
        const H: i64 = 3600;
        let offset = |k: i64| match k {
            0 => 0,
            1 => 6 * H,
            2 => 18 * H,
            k => 42 * H + (k - 3) * 24 * H,
        };
        let e = now.duration_since(q.series_began).as_secs().max(0);
        let attempts = if e < 6 * H {
            0
        } else if e < 18 * H {
            1
        } else if e < 42 * H {
            2
        } else {
            3 + (e - 42 * H) / (24 * H)
        };
        let current = plus_secs(q.series_began, offset(attempts));
        let next = plus_secs(q.series_began, offset(attempts + 1));
        (current, next, attempts + 1, e >= QUARANTINE_DISABLE_SECS)
    }

    fn execution_json(&self, e: &Execution) -> Value {
        let activity = self.activity(e.seq);
        let population = population(&self.id);
        let (imported, exported) = match (&e.error, e.full) {
            (Some(_), _) => (0, 0),
            (None, true) => (population, population),
            (None, false) => (0, 0),
        };
        let deletes = i64::try_from(e.deletes).unwrap_or(i64::MAX);
        let exported = exported.saturating_add(deletes);
        let entitled = if e.error.is_some() { 0 } else { population };
        json!({
            "activityIdentifier": activity,
            "countEntitled": entitled,
            "countEntitledForProvisioning": entitled,
            "countEscrowed": e.escrowed,
            "countEscrowedRaw": e.escrowed,
            "countExported": exported,
            "countExports": exported,
            "countImported": imported,
            "countImportedDeltas": 0,
            "countImportedReferenceDeltas": 0,
            "error": e.error.as_ref().map(SyncError::to_json),
            "state": match (&e.error, e.escrowed) {
                (Some(_), _) => "Failed",
                (None, 0) => "Succeeded",
                (None, _) => "EntryLevelErrors",
            },
            "timeBegan": fmt7(e.began),
            "timeEnded": fmt7(e.ended),
        })
    }

    /// The job as Graph returns it, after folding executions up to `now`.
    pub fn snapshot(&mut self, now: Timestamp, settings: Value) -> Value {
        self.advance(now);
        let mut schedule_state = self.schedule;
        let quarantine = self.quarantine.as_ref().map(|q| {
            let (current, next, count, disabled) = Self::quarantine_view(q, now);
            if disabled {
                schedule_state = ScheduleState::Disabled;
            }
            json!({
                "currentBegan": fmt7(current),
                "nextAttempt": fmt7(next),
                "reason": q.reason,
                "seriesBegan": fmt7(q.series_began),
                "seriesCount": count,
                "error": q.error.to_json(),
            })
        });
        let interval = match schedule_state {
            ScheduleState::Disabled => MAX_INTERVAL.to_owned(),
            _ => format!("PT{}M", ACTIVE_INTERVAL_SECS / 60),
        };
        let by_type = if self.last_success.is_some() && self.template_id == "AD2AADProvisioning" {
            let population = population(&self.id);
            let groups = 2 + population % 17;
            json!([{"key": "user to User", "value": population - groups}, {"key": "group to Group", "value": groups}])
        } else {
            json!([])
        };
        let steady = |t: Option<Timestamp>| t.map(fmt7).unwrap_or_else(|| SENTINEL.to_owned());
        json!({
            "id": self.id,
            "templateId": self.template_id,
            "schedule": {"expiration": null, "interval": interval, "state": schedule_state.as_str()},
            "status": {
                "code": self.code(),
                "countSuccessiveCompleteFailures": self.successive_failures,
                "escrowsPruned": false,
                "lastExecution": self.last.as_ref().map(|e| self.execution_json(e)),
                "lastSuccessfulExecution": self.last_success.as_ref().map(|e| self.execution_json(e)),
                "lastSuccessfulExecutionWithExports": self.last_with_exports.as_ref().map(|e| self.execution_json(e)),
                "quarantine": quarantine,
                "steadyStateFirstAchievedTime": steady(self.steady_first),
                "steadyStateLastAchievedTime": steady(self.steady_last),
                // The service prints both null and ""; a never-run job has null.
                "troubleshootingUrl": if self.executions == 0 { Value::Null } else { json!("") },
                "progress": [],
                "synchronizedEntryCountByType": by_type,
            },
            "synchronizationJobSettings": settings,
        })
    }
}

/// Objects in scope for a job: a stable pseudo-random size so fixtures differ between jobs.
fn population(job_id: &str) -> i64 {
    20 + i64::try_from(ids::stable_u64(job_id) % 480).unwrap_or(0)
}

/// `synchronizationJobSettings` for a cloud-sync job given the on-premises domain (if known).
pub fn cloud_sync_settings(domain: Option<&str>) -> Value {
    let fqdn = domain.unwrap_or("");
    let netbios = fqdn.split('.').next().unwrap_or("").to_uppercase();
    let domain_json =
        json!({"DomainFQDN": fqdn, "DomainNetBios": netbios, "ForestFQDN": fqdn, "ForestNetBios": netbios});
    json!([
        {"name": "Domain", "value": domain_json.to_string()},
        {"name": "DomainFQDN", "value": fqdn},
        {"name": "DomainNetBios", "value": netbios},
        {"name": "ForestFQDN", "value": fqdn},
        {"name": "ForestNetBios", "value": netbios},
        {"name": "QuarantineTooManyDeletesThreshold", "value": "500"},
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Timestamp {
        "2026-11-26T12:00:00Z".parse().unwrap()
    }

    fn at(secs: i64) -> Timestamp {
        plus_secs(t0(), secs)
    }

    fn job() -> Job {
        Job::new("AD2AADProvisioning.0123456789abcdef0123456789abcdef.x".into(), "AD2AADProvisioning".into(), t0())
    }

    #[test]
    fn new_job_shape() {
        let mut j = job();
        let v = j.snapshot(at(5), cloud_sync_settings(None));
        assert_eq!(v["schedule"]["state"], "Disabled");
        assert_eq!(v["schedule"]["interval"], MAX_INTERVAL);
        assert_eq!(v["status"]["code"], "NotRun");
        assert!(v["status"]["lastExecution"].is_null());
        assert_eq!(v["status"]["steadyStateFirstAchievedTime"], SENTINEL);
        assert!(v["status"]["troubleshootingUrl"].is_null());
        assert!(v["synchronizationJobSettings"].is_array());
    }

    #[test]
    fn start_runs_executions_every_interval() {
        let mut j = job();
        assert_eq!(j.start(at(0)), StartOutcome::Started);
        j.advance(at(EXECUTION_SECS - 1));
        assert_eq!(j.executions(), 0);
        assert_eq!(j.code(), "Active");
        j.advance(at(EXECUTION_SECS));
        assert_eq!(j.executions(), 1);
        let v = j.snapshot(at(EXECUTION_SECS), Value::Null);
        assert_eq!(v["schedule"]["interval"], "PT2M");
        assert_eq!(v["status"]["lastExecution"]["state"], "Succeeded");
        assert_eq!(v["status"]["lastExecution"]["timeEnded"], fmt7(at(EXECUTION_SECS)));
        assert_eq!(v["status"]["steadyStateFirstAchievedTime"], fmt7(at(EXECUTION_SECS)));
        assert!(v["status"]["lastSuccessfulExecutionWithExports"]["countExported"].as_i64().unwrap() > 0);
        // Ten intervals later: 11 executions, lazily, in one step.
        j.advance(at(10 * ACTIVE_INTERVAL_SECS + EXECUTION_SECS));
        assert_eq!(j.executions(), 11);
        let v = j.snapshot(at(10 * ACTIVE_INTERVAL_SECS + EXECUTION_SECS), Value::Null);
        assert_eq!(v["status"]["lastExecution"]["timeBegan"], fmt7(at(10 * ACTIVE_INTERVAL_SECS)));
        assert_eq!(v["status"]["lastExecution"]["countExported"], 0);
        assert_eq!(v["status"]["steadyStateFirstAchievedTime"], fmt7(at(EXECUTION_SECS)));
        assert_eq!(v["status"]["steadyStateLastAchievedTime"], fmt7(at(10 * ACTIVE_INTERVAL_SECS + EXECUTION_SECS)));
    }

    #[test]
    fn redundant_start_and_pause() {
        let mut j = job();
        j.start(at(0));
        assert_eq!(j.start(at(30)), StartOutcome::Redundant);
        j.pause(at(130));
        assert_eq!(j.code(), "Paused");
        assert_eq!(j.executions(), 1);
        j.advance(at(10_000));
        assert_eq!(j.executions(), 1, "a paused job does not run");
        assert_eq!(j.start(at(10_000)), StartOutcome::Resumed);
        j.advance(at(10_000 + EXECUTION_SECS));
        assert_eq!(j.executions(), 2);
    }

    #[test]
    fn quarantine_and_restart() {
        let mut j = job();
        j.start(at(0));
        j.quarantine(
            at(130),
            "EncounteredQuarantineException".into(),
            SyncError::from_code("HybridIdentityServiceNoActiveAgents", None),
        );
        let v = j.snapshot(at(130 + 7 * 3600), Value::Null);
        assert_eq!(v["status"]["code"], "Quarantine");
        assert_eq!(v["status"]["quarantine"]["seriesCount"], 2);
        assert_eq!(v["status"]["quarantine"]["currentBegan"], fmt7(at(130 + 6 * 3600)));
        assert_eq!(v["status"]["quarantine"]["nextAttempt"], fmt7(at(130 + 18 * 3600)));
        assert_eq!(v["status"]["lastExecution"]["state"], "Failed");
        assert_eq!(v["status"]["lastExecution"]["timeBegan"], fmt7(at(120)));
        assert_eq!(v["status"]["countSuccessiveCompleteFailures"], 1);
        // A restart without QuarantineState leaves it quarantined.
        j.restart(at(30_000), ResetScope::parse("Watermark").unwrap());
        assert!(j.is_quarantined());
        j.restart(at(30_000), ResetScope::parse("Watermark, Escrows, QuarantineState").unwrap());
        assert!(!j.is_quarantined());
        j.advance(at(30_000 + EXECUTION_SECS));
        let v = j.snapshot(at(30_000 + EXECUTION_SECS), Value::Null);
        assert_eq!(v["status"]["code"], "Active");
        assert!(v["status"]["quarantine"].is_null());
        assert_eq!(v["status"]["countSuccessiveCompleteFailures"], 0);
        assert!(v["status"]["lastExecution"]["countExported"].as_i64().unwrap() > 0, "watermark reset: full cycle");
    }

    #[test]
    fn quarantine_disables_after_four_weeks() {
        let mut j = job();
        j.start(at(0));
        j.quarantine(at(10), "TooManyDeletes".into(), SyncError::from_code("TooManyDeletes", None));
        let v = j.snapshot(at(10 + QUARANTINE_DISABLE_SECS), Value::Null);
        assert_eq!(v["schedule"]["state"], "Disabled");
        assert_eq!(j.start(at(10 + QUARANTINE_DISABLE_SECS)), StartOutcome::QuarantineCleared);
    }

    #[test]
    fn induced_failures() {
        let mut j = job();
        j.start(at(0));
        j.fail(at(0), SyncError::from_code("HybridIdentityServiceNoActiveAgents", None), Some(2));
        j.advance(at(ACTIVE_INTERVAL_SECS + EXECUTION_SECS));
        let v = j.snapshot(at(ACTIVE_INTERVAL_SECS + EXECUTION_SECS), Value::Null);
        assert_eq!(v["status"]["lastExecution"]["state"], "Failed");
        assert_eq!(v["status"]["lastExecution"]["error"]["code"], "HybridIdentityServiceNoActiveAgents");
        assert_eq!(v["status"]["countSuccessiveCompleteFailures"], 2);
        assert!(v["status"]["lastSuccessfulExecution"].is_null());
        let v = j.snapshot(at(2 * ACTIVE_INTERVAL_SECS + EXECUTION_SECS), Value::Null);
        assert_eq!(v["status"]["lastExecution"]["state"], "Succeeded");
        assert_eq!(v["status"]["countSuccessiveCompleteFailures"], 0);
        // Failures in the same fold as later successes leave the success last.
        j.fail(at(2 * ACTIVE_INTERVAL_SECS + EXECUTION_SECS), SyncError::from_code("TimeOut", None), Some(1));
        let v = j.snapshot(at(5 * ACTIVE_INTERVAL_SECS + EXECUTION_SECS), Value::Null);
        assert_eq!(v["status"]["lastExecution"]["state"], "Succeeded");
        assert_eq!(j.executions(), 6);
        // Persistent failure until cleared.
        j.fail(at(5 * ACTIVE_INTERVAL_SECS + EXECUTION_SECS), SyncError::from_code("TimeOut", None), None);
        j.advance(at(8 * ACTIVE_INTERVAL_SECS + EXECUTION_SECS));
        assert_eq!(
            j.snapshot(at(8 * ACTIVE_INTERVAL_SECS + EXECUTION_SECS), Value::Null)["status"]["countSuccessiveCompleteFailures"],
            3
        );
        j.clear_failure(at(8 * ACTIVE_INTERVAL_SECS + EXECUTION_SECS));
        let v = j.snapshot(at(9 * ACTIVE_INTERVAL_SECS + EXECUTION_SECS), Value::Null);
        assert_eq!(v["status"]["lastExecution"]["state"], "Succeeded");
    }

    #[test]
    fn entry_level_errors_escrow_and_log_without_becoming_a_success() {
        let mut j = job();
        j.set_entry_errors(at(0), "AttributeValueMustBeUnique".into(), 4, Some(2));
        j.start(at(0));
        let v = j.snapshot(at(EXECUTION_SECS), Value::Null);
        let e = &v["status"]["lastExecution"];
        assert_eq!((e["state"].as_str(), e["countEscrowed"].as_u64()), (Some("EntryLevelErrors"), Some(4)));
        assert!(e["error"].is_null());
        assert!(v["status"]["lastSuccessfulExecution"].is_null());
        let failures = j.log().iter().filter(|l| l.status == provisioning::Status::Failure).count();
        assert_eq!(failures, 4);
        assert_eq!(
            j.log().iter().filter(|l| l.status == provisioning::Status::Success).count(),
            5,
            "full-cycle sample"
        );
        // The second run has them too, then they stop; a long fold logs only its last runs.
        let v = j.snapshot(at(4 * ACTIVE_INTERVAL_SECS + EXECUTION_SECS), Value::Null);
        assert_eq!(v["status"]["lastExecution"]["state"], "Succeeded");
        assert_eq!(v["status"]["lastExecution"]["countEscrowed"], 0);
        assert_eq!(j.log().iter().filter(|l| l.status == provisioning::Status::Failure).count(), 8);
        j.set_entry_errors(at(10_000), "X".into(), 1, None);
        j.advance(at(10_000 + 100 * ACTIVE_INTERVAL_SECS));
        let xs = j.log().iter().filter(|l| l.error_code.as_deref() == Some("X")).count() as u64;
        assert_eq!(xs, provisioning::RUNS_LOGGED_PER_FOLD);
        let seqs: Vec<u64> = j.log().iter().map(|l| l.seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "unique, increasing");
    }

    #[test]
    fn reset_scope_parsing() {
        let s = ResetScope::parse("Watermark, Escrows, QuarantineState").unwrap();
        assert!(s.has(ResetScope::WATERMARK) && s.has(ResetScope::ESCROWS) && s.clears_quarantine());
        assert!(ResetScope::parse("Full").unwrap().clears_quarantine());
        assert!(ResetScope::parse("ForceDeletes").unwrap().has(ResetScope::FORCE_DELETES));
        assert!(!ResetScope::parse("Watermark,Escrows").unwrap().clears_quarantine());
        assert!(ResetScope::parse("Bogus").is_err());
        assert!(ResetScope::parse("Watermark,,Escrows").is_err());
        assert!(ResetScope::parse("").is_err());
        assert!(ResetScope::parse("full").is_err());
        assert!(ResetScope::portal_default().clears_quarantine());
    }

    #[test]
    fn settings_from_domain() {
        let s = cloud_sync_settings(Some("corp.contoso.com"));
        assert_eq!(s[2]["value"], "CORP");
        let d: Value = serde_json::from_str(s[0]["value"].as_str().unwrap()).unwrap();
        assert_eq!(d["DomainFQDN"], "corp.contoso.com");
        assert_eq!(s[5]["value"], "500");
    }

    #[test]
    fn deletes_below_the_threshold_happen() {
        let mut j = job();
        j.set_delete_threshold(at(0), DeleteThreshold { enabled: true, value: 50 });
        j.start(at(0));
        j.advance(at(EXECUTION_SECS));
        j.want_deletes(at(30), 49);
        j.advance(at(ACTIVE_INTERVAL_SECS + EXECUTION_SECS - 1));
        assert_eq!(j.deleted(), 0, "not before the next execution ends");
        j.advance(at(3 * ACTIVE_INTERVAL_SECS + EXECUTION_SECS));
        assert_eq!(j.deleted(), 49);
        assert_eq!(j.executions(), 4, "the delete run plus the ones after it");
        assert_eq!(j.code(), "Active");
        assert_eq!(j.pending_deletes(), None);
    }

    #[test]
    fn deletes_at_the_threshold_are_held_until_force_deletes() {
        let mut j = job();
        j.start(at(0));
        j.want_deletes(at(1), DEFAULT_DELETES);
        let v = j.snapshot(at(EXECUTION_SECS), Value::Null);
        assert_eq!(v["status"]["code"], "Quarantine");
        assert_eq!(v["status"]["quarantine"]["reason"], "TooManyDeletes");
        assert_eq!(v["status"]["lastExecution"]["error"]["code"], "TooManyDeletes");
        assert_eq!(j.deleted(), 0);
        // start and a normal restart clear the quarantine, but the next run holds them again.
        j.start(at(100));
        assert_eq!(j.code(), "Active");
        j.advance(at(100 + EXECUTION_SECS));
        assert_eq!(j.code(), "Quarantine");
        j.restart(at(200), ResetScope::parse("Watermark, Escrows, QuarantineState").unwrap());
        j.advance(at(200 + EXECUTION_SECS));
        assert_eq!(j.code(), "Quarantine");
        assert_eq!(j.deleted(), 0);
        // A scope without QuarantineState and without ForceDeletes leaves it quarantined.
        j.restart(at(300), ResetScope::parse("Escrows").unwrap());
        assert_eq!(j.code(), "Quarantine");
        j.restart(at(400), ResetScope::parse("ForceDeletes").unwrap());
        assert_eq!(j.code(), "Active", "ForceDeletes releases the quarantine");
        j.advance(at(400 + EXECUTION_SECS));
        assert_eq!(j.deleted(), DEFAULT_DELETES);
        assert_eq!(j.code(), "Active");
        let v = j.snapshot(at(400 + EXECUTION_SECS), Value::Null);
        assert!(v["status"]["quarantine"].is_null());
        assert!(v["status"]["lastExecution"]["countExports"].as_i64().unwrap() >= 500);
    }

    #[test]
    fn a_disabled_threshold_never_holds() {
        let mut j = job();
        j.set_delete_threshold(at(0), DeleteThreshold { enabled: false, value: 1 });
        j.start(at(0));
        j.want_deletes(at(1), 100_000);
        j.advance(at(EXECUTION_SECS));
        assert_eq!((j.code(), j.deleted()), ("Active", 100_000));
    }

    const DEFAULT_DELETES: u64 = crate::deletes::DEFAULT_THRESHOLD;
}
