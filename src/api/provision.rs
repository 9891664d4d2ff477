//! `ProvisionRequest`: provision a few directory objects on demand through a profile's
//! provisioning job, once. Like a Job, it runs to completion and records the outcome; unlike a
//! profile, it never converges again.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::spec::{DN_RE, DistinguishedName};

/// The service's limit of objects per request object: on-demand provisioning is for testing a
/// handful of objects, and 5 calls per 10 s is the service's own rate limit.
pub const MAX_SUBJECTS: usize = 5;

/// Provision up to five directory objects now, through the provisioning job of a CloudSyncProfile,
/// and record the provisioning steps. Runs once.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "cloudsync.io",
    version = "v1alpha1",
    kind = "ProvisionRequest",
    plural = "provisionrequests",
    singular = "provisionrequest",
    shortname = "cspr",
    category = "cloudsync",
    namespaced,
    status = "ProvisionRequestStatus",
    doc = "Provision up to five on-premises directory objects on demand through a CloudSyncProfile's provisioning job, once, and record the outcome.",
    printcolumn = r#"{"name":"Profile","type":"string","jsonPath":".spec.profile","description":"The CloudSyncProfile whose provisioning job runs the request"}"#,
    printcolumn = r#"{"name":"Complete","type":"string","jsonPath":".status.conditions[?(@.type==\"Complete\")].status","description":"Whether every subject has been tried"}"#,
    printcolumn = r#"{"name":"Result","type":"string","jsonPath":".status.result","description":"Success, Skipped or Failure"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Message","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Complete\")].message","description":"What happened, or what it waits for"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ProvisionRequestSpec {
    /// Name of the CloudSyncProfile (in the same namespace) whose provisioning job provisions the
    /// subjects. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("profile is immutable; create a new ProvisionRequest"))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("profile must be the name of a CloudSyncProfile: lowercase letters, digits, '-' and '.'"))]
    #[schemars(length(min = 1, max = 253))]
    pub profile: String,

    /// The on-premises objects to provision, 1 to 5, each tried once in this order. On-demand
    /// provisioning ignores the profile's scope: an object outside it is provisioned anyway (the
    /// request warns). Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("subjects are immutable; create a new ProvisionRequest for other objects"))]
    #[schemars(length(min = 1, max = 5))]
    pub subjects: Vec<Subject>,

    /// Delete the request this many seconds after it completes, like a Job's
    /// ttlSecondsAfterFinished. Absent: kept until deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 31_536_000))]
    pub ttl_seconds_after_finished: Option<i64>,
}

/// One on-premises directory object.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// Distinguished name of the object in Active Directory, such as
    /// CN=Adele Vance,OU=Sales,DC=contoso,DC=com.
    #[x_kube(validation = Rule::new(format!("self.matches(r'{DN_RE}')")).message("subjects[].dn must be a distinguished name such as CN=Adele Vance,OU=Sales,DC=contoso,DC=com"))]
    pub dn: DistinguishedName,

    /// The object's type: user, group or inetOrgPerson.
    #[serde(rename = "type")]
    pub kind: SubjectType,
}

/// The AD object classes on-demand provisioning takes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SubjectType {
    User,
    Group,
    InetOrgPerson,
}

impl SubjectType {
    /// The `objectTypeName` Graph takes for it (the AD object class).
    pub fn object_type_name(self) -> &'static str {
        match self {
            SubjectType::User => "user",
            SubjectType::Group => "group",
            SubjectType::InetOrgPerson => "inetOrgPerson",
        }
    }
}

/// The outcome of a request, or of one subject: Graph's own three values.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum ProvisionResult {
    Success,
    Skipped,
    Failure,
}

impl ProvisionResult {
    pub fn as_str(self) -> &'static str {
        match self {
            ProvisionResult::Success => "Success",
            ProvisionResult::Skipped => "Skipped",
            ProvisionResult::Failure => "Failure",
        }
    }
}

/// What the operator did with a ProvisionRequest. Holds step names, statuses and error codes
/// only: the attribute values Graph returns are personal data and are never stored.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProvisionRequestStatus {
    /// Complete (True once every subject has been tried; its reason is the result, or while False
    /// what the request waits for) and OutOfScope (True when a subject lies outside the profile's
    /// scope).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// Success when every subject succeeded (or some were skipped), Skipped when all were
    /// skipped, Failure when any failed. Set once complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ProvisionResult>,

    /// When the first subject was sent (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,

    /// When the request completed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,

    /// The service principal and job the request ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,

    /// One entry per subject, in the order of spec.subjects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<SubjectStatus>,
}

/// One subject's outcome.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SubjectStatus {
    /// Position in spec.subjects, from 0.
    pub index: u32,
    /// When the call was sent (RFC 3339), written before it is made: a call that was sent is never
    /// sent again, even after a crash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<String>,
    /// The outcome, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ProvisionResult>,
    /// Graph's error code (e.g. RedundantExport for a skipped object), or OutcomeUnknown when the
    /// answer was lost, or the HTTP error of a refused call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// What the error means, when the operator knows (never an attribute value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The action the service took or would take: Create, Update, Delete, Other, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// True when the subject lies outside the profile's scope (it was provisioned anyway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_scope: Option<bool>,
    /// The provisioning steps as Graph reported them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<ProvisioningStep>,
}

/// One step of on-demand provisioning (import, scoping, matching, export).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProvisioningStep {
    /// The step's name, e.g. EntryImport, EntrySynchronizationScoping, EntryExportUpdate.
    pub name: String,
    /// The step's type, e.g. Import, Scoping, Matching, Export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_type: Option<String>,
    /// success, warning, failure, skipped, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The step's error code, if it reported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
}

impl ProvisionRequest {
    /// Complete and when; `None` while running or waiting.
    pub fn completed_at(&self) -> Option<&str> {
        self.status.as_ref().and_then(|s| s.completion_time.as_deref())
    }
}
