//! Provisioning logs (`/auditLogs/provisioning`, reference part 2 §6): the entries simulated runs
//! leave, and the `$filter` / `$orderby` / `$top` subset a client may query them with.
//!
//! Entries are stored compactly per job (a bounded ring) and rendered on request. Their source
//! and target identities are made up but look like personal data (names, DNs, UPNs), so a client
//! that copies them anywhere is caught by tests.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::clock::fmt7;
use super::ids;

/// Entries kept per job; older ones are dropped first (Graph keeps 30 days, which a simulated
/// job with errors every two minutes would fill without bound).
pub const KEPT_PER_JOB: usize = 1000;
/// Failure entries written per run at most (a run with more escrows logs this many).
pub const FAILURES_PER_RUN: u64 = 200;
/// Success entries a full (initial) cycle logs: a sample, not one per object.
pub const SUCCESS_SAMPLE: u64 = 5;
/// `stagedDelete` entries a held delete run logs at most.
pub const STAGED_PER_RUN: u64 = 200;
/// Runs of one fold that get entries; earlier runs of a long idle stretch are summarised away.
pub const RUNS_LOGGED_PER_FOLD: u64 = 3;
/// Graph's default and maximum page size for provisioning logs ([UNCONFIRMED]: the docs give
/// `$top` without bounds; directory lists cap at 999, the portal pages by 50, the beta docs
/// mention 1000).
pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    StagedDelete,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::StagedDelete => "stagedDelete",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    Failure,
    Skipped,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Skipped => "skipped",
        }
    }
}

/// One stored entry; the job and service principal are added when it is rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Unique within the job, increasing.
    pub seq: u64,
    pub time: Timestamp,
    /// The run (its activityIdentifier) this entry belongs to.
    pub cycle_id: String,
    pub action: Action,
    pub status: Status,
    pub error_code: Option<String>,
    /// Which made-up object it is about.
    pub object: u64,
}

/// What the entries of one run say about which error.
fn reason_for(code: &str) -> &'static str {
    match code {
        "AttributeValueMustBeUnique" | "AzureActiveDirectoryConflictObject" => {
            "Another object in the directory already has the same value for a unique attribute."
        }
        "DuplicateSourceAnchor" => "The source anchor is already used by another object.",
        "ExportNonRetryableFailure" => "The export failed and will not be retried until the object changes.",
        "AzureDirectoryServiceRequestThrottled" => "The request to Microsoft Entra ID was throttled.",
        _ => "The object could not be provisioned.",
    }
}

/// Renders an entry as Graph's `provisioningObjectSummary`.
pub fn render(entry: &Entry, job_id: &str, sp_id: &str, sp_name: &str, domain: &str) -> Value {
    let n = entry.object;
    let name = format!("Sim User {n:04}");
    let sam = format!("simuser{n:04}");
    let dn = format!("CN={name},OU=Sim Users,DC={}", domain.split('.').collect::<Vec<_>>().join(",DC="));
    let upn = format!("{sam}@{domain}");
    let source_id = ids::stable_guid(&["source", job_id, &n.to_string()]);
    let target_id = ids::stable_guid(&["target", job_id, &n.to_string()]);
    let seq = entry.seq.to_string();
    let failed = entry.status == Status::Failure;
    let error_information = entry.error_code.as_ref().map(|code| {
        json!({
            "errorCode": code,
            "reason": format!("{} Object: {upn}.", reason_for(code)),
            "errorCategory": if failed { "NonServiceFailure" } else { "" },
            "recommendedAction": "Resolve the conflict in the on-premises directory; the object is retried in the next cycle.",
            "additionalDetails": format!("DistinguishedName: {dn}"),
        })
    });
    let step = |name: &str, kind: &str, status: &str, description: String| json!({"name": name, "provisioningStepType": kind, "status": status, "description": description, "details": {}});
    let status = entry.status.as_str();
    json!({
        "id": ids::stable_guid(&["provisioning", job_id, &seq]),
        "activityDateTime": fmt7(entry.time),
        "tenantId": null,
        "jobId": job_id,
        "cycleId": entry.cycle_id,
        "changeId": ids::stable_guid(&["change", job_id, &seq]),
        "provisioningAction": entry.action.as_str(),
        "durationInMilliseconds": 120 + (n % 300),
        "provisioningStatusInfo": {"status": status, "errorInformation": error_information},
        "provisioningSteps": [
            step("EntryImport", "import", "success", format!("Retrieved {dn} from Active Directory")),
            step("EntryExportAdd", "export", status, format!("Export of {upn} to Microsoft Entra ID: {status}")),
        ],
        "modifiedProperties": [
            {"displayName": "userPrincipalName", "oldValue": null, "newValue": upn},
            {"displayName": "onPremisesDistinguishedName", "oldValue": null, "newValue": dn},
        ],
        "servicePrincipal": {"id": sp_id, "displayName": sp_name},
        "sourceIdentity": {"id": source_id, "displayName": name, "identityType": "User", "details": {}},
        "targetIdentity": {"id": target_id, "displayName": name, "identityType": "User", "details": {}},
        "sourceSystem": {"id": ids::stable_guid(&["ad", domain]), "displayName": "Active Directory", "details": {}},
        "targetSystem": {"id": ids::stable_guid(&["entra"]), "displayName": "Entra ID", "details": {}},
        "initiatedBy": {"id": "", "displayName": "Microsoft.Azure.SyncFabric", "initiatorType": "system"},
    })
}

/// The `$filter` subset: clauses joined with `and`, each one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clause {
    ServicePrincipal(String),
    After(Timestamp),
    Status(String),
}

/// Why a filter is refused: Graph answers 400 with a message of this kind.
fn unsupported(clause: &str) -> String {
    format!(
        "Invalid filter clause: '{clause}'. The simulator supports servicePrincipal/id eq '<id>', activityDateTime gt <ISO 8601 time> and provisioningStatusInfo/status eq '<status>', joined with 'and'."
    )
}

fn quoted(value: &str) -> Option<String> {
    let inner = value.strip_prefix('\'')?.strip_suffix('\'')?;
    (!inner.replace("''", "").contains('\'')).then(|| inner.replace("''", "'"))
}

pub fn parse_filter(input: &str) -> Result<Vec<Clause>, String> {
    let mut clauses = Vec::new();
    for part in input.split(" and ") {
        let part = part.trim();
        let mut words = part.splitn(3, ' ');
        let (Some(prop), Some(op), Some(value)) = (words.next(), words.next(), words.next()) else {
            return Err(unsupported(part));
        };
        let value = value.trim();
        let clause = match (prop, op) {
            ("servicePrincipal/id", "eq") => Clause::ServicePrincipal(quoted(value).ok_or_else(|| unsupported(part))?),
            ("provisioningStatusInfo/status", "eq") => {
                let s = quoted(value).ok_or_else(|| unsupported(part))?;
                if !["success", "failure", "skipped", "warning"].contains(&s.as_str()) {
                    return Err(format!(
                        "The value '{s}' is not a valid provisioningResult: success, failure, skipped, warning."
                    ));
                }
                Clause::Status(s)
            }
            ("activityDateTime", "gt") => {
                let t = value.trim_matches('\'');
                Clause::After(t.parse::<Timestamp>().map_err(|_| format!("'{t}' is not a valid DateTimeOffset."))?)
            }
            _ => return Err(unsupported(part)),
        };
        clauses.push(clause);
    }
    Ok(clauses)
}

/// One entry as a query sees it.
pub struct Candidate<'a> {
    pub entry: &'a Entry,
    pub sp_id: &'a str,
    pub job_id: &'a str,
}

pub fn matches(clauses: &[Clause], c: &Candidate) -> bool {
    clauses.iter().all(|clause| match clause {
        // Ids compare case-insensitively, status values case-sensitively (reference: "case-sensitive").
        Clause::ServicePrincipal(id) => c.sp_id.eq_ignore_ascii_case(id),
        Clause::After(t) => c.entry.time > *t,
        Clause::Status(s) => c.entry.status.as_str() == s,
    })
}

/// `$orderby`: only `activityDateTime` (asc or desc); the default is newest first.
pub fn parse_orderby(input: Option<&str>) -> Result<bool, String> {
    match input.map(str::trim) {
        None | Some("activityDateTime desc") => Ok(true),
        Some("activityDateTime") | Some("activityDateTime asc") => Ok(false),
        Some(other) => Err(format!("Unsupported $orderby: '{other}'. Only activityDateTime [asc|desc] is supported.")),
    }
}

pub fn parse_top(input: Option<&str>) -> Result<usize, String> {
    match input {
        None => Ok(DEFAULT_PAGE),
        Some(s) => match s.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(format!("Invalid page size specified: '{s}'. Must be between 1 and {MAX_PAGE} inclusive.")),
        },
    }
}

/// The stable sort key of an entry: time, then job and sequence, so pages never overlap.
pub fn sort_key(c: &Candidate) -> (Timestamp, String, u64) {
    (c.entry.time, c.job_id.to_owned(), c.entry.seq)
}

/// Entries a run with `escrowed` entry-level errors of `code` logs, starting at `seq`.
pub fn run_failures(seq: u64, began: Timestamp, cycle_id: &str, code: &str, escrowed: u64) -> Vec<Entry> {
    (0..escrowed.min(FAILURES_PER_RUN))
        .map(|i| Entry {
            seq: seq + i,
            time: super::clock::plus_secs(began, 1 + i64::try_from(i % 18).unwrap_or(0)),
            cycle_id: cycle_id.to_owned(),
            action: Action::Create,
            status: Status::Failure,
            error_code: Some(code.to_owned()),
            object: i,
        })
        .collect()
}

pub fn run_successes(seq: u64, began: Timestamp, cycle_id: &str, count: u64) -> Vec<Entry> {
    (0..count.min(SUCCESS_SAMPLE))
        .map(|i| Entry {
            seq: seq + i,
            time: super::clock::plus_secs(began, 1 + i64::try_from(i).unwrap_or(0)),
            cycle_id: cycle_id.to_owned(),
            action: Action::Create,
            status: Status::Success,
            error_code: None,
            object: 1000 + i,
        })
        .collect()
}

pub fn staged_deletes(seq: u64, began: Timestamp, cycle_id: &str, count: u64) -> Vec<Entry> {
    (0..count.min(STAGED_PER_RUN))
        .map(|i| Entry {
            seq: seq + i,
            time: super::clock::plus_secs(began, 1 + i64::try_from(i % 18).unwrap_or(0)),
            cycle_id: cycle_id.to_owned(),
            action: Action::StagedDelete,
            // Held, not failed ([UNCONFIRMED] which status the service shows on held deletes).
            status: Status::Skipped,
            error_code: Some("TooManyDeletes".to_owned()),
            object: 5000 + i,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_subset() {
        let f = parse_filter(
            "servicePrincipal/id eq 'abc' and activityDateTime gt 2026-11-26T12:00:00Z and provisioningStatusInfo/status eq 'failure'",
        )
        .unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f[0], Clause::ServicePrincipal("abc".into()));
        assert!(parse_filter("jobId eq 'x'").is_err(), "jobId is not known to be filterable");
        assert!(parse_filter("activityDateTime ge 2026-11-26T12:00:00Z").is_err(), "ge is not documented");
        assert!(parse_filter("provisioningStatusInfo/status eq 'Failure'").is_err(), "case-sensitive");
        assert!(parse_filter("servicePrincipal/id eq abc").is_err());
        assert!(parse_filter("activityDateTime gt yesterday").is_err());
        assert!(parse_filter("servicePrincipal/id eq 'a' or servicePrincipal/id eq 'b'").is_err());
    }

    #[test]
    fn paging_options() {
        assert_eq!(parse_top(None), Ok(DEFAULT_PAGE));
        assert_eq!(parse_top(Some("50")), Ok(50));
        assert!(parse_top(Some("0")).is_err() && parse_top(Some("1001")).is_err());
        assert_eq!(parse_orderby(Some("activityDateTime desc")), Ok(true));
        assert_eq!(parse_orderby(Some("activityDateTime asc")), Ok(false));
        assert!(parse_orderby(Some("jobId desc")).is_err());
    }

    #[test]
    fn rendered_entries_carry_made_up_personal_data() {
        let t: Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
        let e = &run_failures(0, t, "cycle", "AttributeValueMustBeUnique", 3)[2];
        let v = render(e, "job", "sp", "contoso.com", "contoso.com");
        assert_eq!(v["provisioningStatusInfo"]["errorInformation"]["errorCode"], "AttributeValueMustBeUnique");
        assert_eq!(v["provisioningStatusInfo"]["status"], "failure");
        assert_eq!(v["sourceIdentity"]["displayName"], "Sim User 0002");
        let text = v.to_string();
        assert!(
            text.contains("CN=Sim User 0002,OU=Sim Users,DC=contoso,DC=com")
                && text.contains("simuser0002@contoso.com")
        );
        assert_eq!(v["activityDateTime"], fmt7(super::super::clock::plus_secs(t, 3)));
    }
}
