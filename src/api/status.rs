//! `CloudSyncProfile` status: what the operator observed and did. Everything here is derived from
//! Graph reads or from writes the operator made; nothing secret is ever stored here.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a cloud sync configuration.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CloudSyncProfileStatus {
    /// The metadata.generation the status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready summarizes the others: CredentialsValid, ServicePrincipalReady, JobsRunning, Degraded
    /// and Suspended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The service principal (and its application) created from the cloud sync template, or
    /// adopted. Recorded right after the Graph call that created or found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_principal: Option<ServicePrincipalRef>,

    /// One entry per synchronization job, as last read from Graph.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["templateId".into()]))]
    pub jobs: Vec<JobStatus>,

    /// sha256 of the synchronization secrets last written. Graph masks secret values on read, so
    /// this is how the operator knows whether a write is needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_hash: Option<String>,

    /// The restart.requestId whose restart has been carried out on every job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restart_request_id: Option<String>,

    /// True once the tenant's onPremisesSyncEnabled flag was confirmed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_sync_enabled: Option<bool>,

    /// Set while an instantiate call may have created objects that are not yet visible (Graph can
    /// answer 404 and still create them). The operator looks them up instead of instantiating again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_instantiate: Option<PendingInstantiate>,

    /// Job creations whose outcome is not known yet (written before the call). A job that does
    /// not show in Graph's list yet is waited for, not created a second time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["templateId".into()]))]
    pub pending_job_creates: Vec<PendingJobCreate>,
    /// sha256 of the parts of the provisioning job's schema the operator manages (scope and
    /// attribute mappings), as last written or found equal. Absent while the profile leaves the
    /// schema alone (no scope, no mappings, no password hash sync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_hash: Option<String>,
    /// sha256 of the profile settings schemaHash was computed from: while they stay the same, the
    /// schema is only read again for the drift check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_inputs_hash: Option<String>,
    /// True once the profile set a scope or attribute mappings: from then on the provisioning
    /// rule is the template's default plus the profile, and removing a setting returns that part
    /// to the default. Before, the operator only adds CredentialData (password hash sync) to the
    /// schema as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_from_template: Option<bool>,
    /// A restart the operator owes the provisioning job after a change of scope, so that objects
    /// now in scope are imported. Cleared once carried out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_restart: Option<ScopeRestart>,
}

/// A restart after a change of scope.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScopeRestart {
    /// Identifies this restart (derived from the new scope).
    pub request_id: String,
    /// The reset scope it uses.
    pub reset_scope: String,
    /// Why it is needed.
    pub reason: String,
    /// When the restart was sent (RFC 3339); absent until then. A pass that finds it sent but not
    /// confirmed checks whether the job ran since, and sends it again if not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<String>,
}

/// A job creation whose outcome is not known yet.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PendingJobCreate {
    /// The template of the job being created.
    pub template_id: String,
    /// When the call was made (RFC 3339).
    pub since: String,
}

/// Ids of the objects the application template created.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipalRef {
    /// Object id of the service principal; every synchronization call is made on it.
    pub id: String,
    /// Application (client) id shared by the application and the service principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// Object id of the application; deleted together with the service principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
    /// Display name of the service principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// When the operator recorded it (RFC 3339). Shortly after, Graph may still answer 404 for it
    /// (replication lag), which must not be mistaken for a deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<String>,
    /// True when the configuration existed before this profile and was adopted. The operator never
    /// deletes an adopted configuration or prunes its jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted: Option<bool>,
    /// The owner this profile recorded on the service principal (its `cloudsync.io/owner` tag,
    /// `cloudsync-operator:<cluster-id>/<namespace>/<name>`), once claimed or found to be its own.
    /// While it is absent, the tag is read before the configuration is changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// An instantiate call whose outcome is not known yet.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PendingInstantiate {
    /// Display name the configuration was instantiated with.
    pub display_name: String,
    /// When the call was made (RFC 3339).
    pub since: String,
}

/// One synchronization job as Graph reports it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// The job's template, e.g. AD2AADProvisioning or AD2AADPasswordHash.
    pub template_id: String,
    /// Opaque job id assigned by Graph.
    pub id: String,
    /// job.schedule.state: Active, Disabled or Paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_state: Option<String>,
    /// job.schedule.interval in seconds: how often the service runs the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_interval_seconds: Option<i64>,
    /// job.status.code: NotConfigured, NotRun, Active, Paused or Quarantine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The last execution of the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_execution: Option<JobExecution>,
    /// Present only while the job is quarantined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<JobQuarantine>,
    /// When the job's last successful run ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_run: Option<String>,
    /// When the job last reached steady state (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steady_state_last_achieved_time: Option<String>,
    /// The restart.requestId last carried out on this job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restart_request_id: Option<String>,
    /// A restart sent (or about to be sent) whose outcome is not confirmed yet. Written right
    /// before the call and cleared from its answer; a pass that finds it checks whether the job ran
    /// since, and sends the restart again if not: a repeated restart is harmless, a lost one is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_restart: Option<PendingRestart>,
    /// The quarantine series (its start time) the operator already started this job for: a
    /// quarantined job gets one start per series, never a start loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine_series_started: Option<String>,
    /// When the operator recorded the job (RFC 3339). Shortly after, Graph may not list it yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<String>,
    /// When the operator last started the job (RFC 3339); a job that reads as stopped right after
    /// a start is not started again until Graph has had time to show it running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_start_time: Option<String>,
    /// The failures of the last run from the provisioning logs: error codes, counts and times
    /// only (never names, DNs or UPNs). Read once per run, and only while the last run has
    /// errors or escrows; absent while the job is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_failures: Option<RecentFailures>,
}

/// What the provisioning logs say about a job's failing run.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecentFailures {
    /// lastExecution.timeBegan of the run these are for: the logs are read once per run.
    pub run: String,
    /// When the provisioning logs were read (RFC 3339); absent when they were not (see note).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<String>,
    /// Failed entries of this job since the run began, by error code, most frequent first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FailureCount>,
    /// True when the logs held more failures than the operator reads (the counts are a lower bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
    /// Why the logs could not be read (a missing permission, a cloud without provisioning logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Failed provisioning log entries with one error code.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailureCount {
    /// provisioningStatusInfo.errorInformation.errorCode, e.g. AttributeValueMustBeUnique.
    pub code: String,
    /// How many failed entries had it.
    pub count: i64,
    /// activityDateTime of the newest of them (RFC 3339).
    pub latest: String,
}

/// A restart whose outcome is not known yet.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PendingRestart {
    /// The restart.requestId being carried out.
    pub request_id: String,
    /// When the call was made (RFC 3339).
    pub since: String,
}

/// A synchronization task execution.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobExecution {
    /// Succeeded, Failed or EntryLevelErrors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// When the execution began (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_began: Option<String>,
    /// When the execution ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_ended: Option<String>,
    /// The error of a failed execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    /// Objects the run could not process; the service retries them (escrows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_escrowed: Option<i64>,
}

/// A synchronization error as Graph reports it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobError {
    /// Error code, e.g. HybridIdentityServiceNoActiveAgents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Quarantine details of a job.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobQuarantine {
    /// Why the job is quarantined, e.g. EncounteredQuarantineException or TooManyDeletes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the current quarantine began (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_began: Option<String>,
    /// When the service tries again (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt: Option<String>,
    /// Number of quarantines in the current series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_count: Option<i64>,
    /// The error that caused the quarantine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
}
