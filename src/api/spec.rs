//! `CloudSyncProfile` spec: what the user asks for. Validation lives in the schema (CEL rules and
//! OpenAPI limits) so the apiserver rejects bad manifests at admission, before the operator sees them.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::status::CloudSyncProfileStatus;
use crate::graph::NationalCloud;

/// GUID as Entra prints tenant and client ids. CEL regexes are RE2: no look-arounds.
pub(crate) const GUID_RE: &str = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// An FQDN of at least two labels: the on-premises Active Directory DNS domain.
pub(crate) const DOMAIN_RE: &str =
    "^[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?([.][a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)+$";

/// The reset scopes a user may ask for. `None` and `ConnectorDataStore` are excluded on purpose:
/// Microsoft labels both "DO NOT USE" (use start instead; clears the cache for all users).
pub const ALLOWED_RESET_SCOPES: [&str; 5] = ["Escrows", "Watermark", "QuarantineState", "Full", "ForceDeletes"];

/// What the portal's "Restart provisioning" does; used when `restart.resetScope` is omitted.
pub const DEFAULT_RESET_SCOPE: &str = "Watermark, Escrows, QuarantineState";

/// Desired state of one Microsoft Entra cloud sync configuration (AD to Entra ID) in one tenant.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "cloudsync.io",
    version = "v1alpha1",
    kind = "CloudSyncProfile",
    plural = "cloudsyncprofiles",
    singular = "cloudsyncprofile",
    shortname = "csp",
    category = "cloudsync",
    namespaced,
    status = "CloudSyncProfileStatus",
    doc = "A Microsoft Entra cloud sync configuration (AD to Entra ID) that the operator creates and runs through Microsoft Graph.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status","description":"Whether the configuration is converged and its jobs run"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason","description":"Why Ready has its status"}"#,
    printcolumn = r#"{"name":"Domain","type":"string","jsonPath":".spec.domain","description":"On-premises AD domain"}"#,
    printcolumn = r#"{"name":"Provisioning","type":"string","jsonPath":".status.jobs[?(@.templateId==\"AD2AADProvisioning\")].code","description":"Status code of the AD2AADProvisioning job"}"#,
    printcolumn = r#"{"name":"PasswordHash","type":"string","jsonPath":".status.jobs[?(@.templateId==\"AD2AADPasswordHash\")].code","description":"Status code of the AD2AADPasswordHash job"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Message","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message","description":"What to do next, if anything"}"#
)]
// Unknown fields are not refused here: under this version's CRD the apiserver prunes them, and a
// newer CRD's additions must be ignored, not make the profile unreadable.
#[serde(rename_all = "camelCase")]
// A transition rule on the field would not fire when cloud goes from absent (Global) to set.
#[x_kube(validation = Rule::new("(has(self.cloud) ? self.cloud : 'Global') == (has(oldSelf.cloud) ? oldSelf.cloud : 'Global')").message("cloud is immutable; create a new profile for another cloud"))]
pub struct CloudSyncProfileSpec {
    /// Directory (tenant) id of the Microsoft Entra tenant, a GUID. Immutable: a profile manages one
    /// tenant for its whole life.
    #[x_kube(
        validation = Rule::new(format!("self.matches('{GUID_RE}')")).message("tenantId must be a GUID such as 11111111-2222-3333-4444-555555555555"),
        validation = Rule::new("self == oldSelf").message("tenantId is immutable; create a new profile for another tenant")
    )]
    #[schemars(length(max = 36))]
    pub tenant_id: String,

    /// National cloud of the tenant: Global (default, includes M365 GCC), USGov (GCC High),
    /// USGovDoD (DoD) or China (21Vianet). Selects the login and Graph endpoints. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<Cloud>,

    /// How the operator authenticates to Microsoft Graph for this tenant. Set exactly one of
    /// secretRef or workloadIdentity.
    pub credentials: Credentials,

    /// DNS name of the on-premises Active Directory domain to synchronize, e.g. contoso.com (no
    /// scheme, no spaces, at most 253 characters). Becomes the configuration's Domain secret and
    /// must match the domain the provisioning agent registered.
    #[x_kube(validation = Rule::new(format!("self.matches('{DOMAIN_RE}')")).message("domain must be a DNS domain name such as contoso.com: letters, digits, hyphens and dots only, at least two labels, no scheme, no spaces"))]
    #[schemars(length(min = 1, max = 253))]
    pub domain: String,

    /// Display name of the application and service principal created from the cloud sync
    /// application template. Defaults to the domain. Used to find an existing configuration to
    /// adopt, so it must be unique among cloud sync configurations of the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.trim() == self").message("displayName must not start or end with spaces"))]
    #[schemars(length(min = 1, max = 256))]
    pub display_name: Option<String>,

    /// Turn on the tenant's directory synchronization flag (organization.onPremisesSyncEnabled)
    /// before creating the configuration. Needs Organization.ReadWrite.All. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_sync_flag: Option<bool>,

    /// Also create and run the password hash synchronization job (AD2AADPasswordHash) and set the
    /// AppKey secret for it. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash_sync: Option<bool>,

    /// Pause the synchronization jobs while true; they are started again when set back to false.
    /// Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,

    /// Ask for one restart of the jobs. Each new requestId triggers exactly one restart; the last
    /// one carried out is shown in status.lastRestartRequestId.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartRequest>,

    /// What happens in Microsoft Graph when the profile is deleted: Delete (default) removes the
    /// jobs, the service principal and the application; Orphan leaves them as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
}

/// National clouds, each with its own login authority and Graph root.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum Cloud {
    #[default]
    Global,
    #[serde(rename = "USGov")]
    UsGov,
    #[serde(rename = "USGovDoD")]
    UsGovDoD,
    China,
}

/// The Graph client has its own cloud type, so `graph/` does not depend on the CRD types.
impl From<Cloud> for NationalCloud {
    fn from(cloud: Cloud) -> Self {
        match cloud {
            Cloud::Global => Self::Global,
            Cloud::UsGov => Self::UsGov,
            Cloud::UsGovDoD => Self::UsGovDoD,
            Cloud::China => Self::China,
        }
    }
}

/// Credentials for Microsoft Graph. Exactly one source is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.secretRef) != has(self.workloadIdentity)").message("credentials: set exactly one of secretRef or workloadIdentity"))]
pub struct Credentials {
    /// A Secret in the profile's namespace holding the keys clientId and clientSecret of an
    /// application registration with the needed Graph application permissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,

    /// Use the operator pod's federated service account token (Azure Workload Identity). Only
    /// honoured when the operator runs with --allow-workload-identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity: Option<WorkloadIdentity>,
}

/// Reference to a Secret in the same namespace as the profile.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret; it must hold the keys clientId and clientSecret.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("secretRef.name must be a Secret name: lowercase letters, digits, '-' and '.'"))]
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Federated credentials of the operator's own pod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadIdentity {
    /// Client (application) id that trusts the operator's service account. Defaults to the
    /// operator's AZURE_CLIENT_ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(format!("self.matches('{GUID_RE}')")).message("workloadIdentity.clientId must be a GUID"))]
    #[schemars(length(max = 36))]
    pub client_id: Option<String>,
}

/// A one-shot restart of the synchronization jobs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestartRequest {
    /// Any string; a value different from status.lastRestartRequestId triggers one restart.
    #[schemars(length(min = 1, max = 128))]
    pub request_id: String,

    /// Comma-separated reset scope: Escrows, Watermark, QuarantineState, Full or ForceDeletes.
    /// Defaults to "Watermark, Escrows, QuarantineState". None and ConnectorDataStore are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(
        validation = Rule::new("!self.split(',').exists(s, s.trim() == 'None' || s.trim() == 'ConnectorDataStore')").message("restart.resetScope must not contain None (use a plain start) or ConnectorDataStore (it clears the cache for all users)"),
        validation = Rule::new("self.split(',').all(s, s.trim() in ['Escrows', 'Watermark', 'QuarantineState', 'Full', 'ForceDeletes', 'None', 'ConnectorDataStore'])").message("restart.resetScope must be a comma-separated list of Escrows, Watermark, QuarantineState, Full, ForceDeletes")
    )]
    #[schemars(length(min = 1, max = 128))]
    pub reset_scope: Option<String>,
}

/// What to do in Microsoft Graph when the profile is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub enum DeletionPolicy {
    #[default]
    Delete,
    Orphan,
}

impl CloudSyncProfileSpec {
    pub fn cloud(&self) -> Cloud {
        self.cloud.unwrap_or_default()
    }

    /// The service principal's display name: explicit, or the domain.
    pub fn effective_display_name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.domain)
    }

    pub fn tenant_sync_flag(&self) -> bool {
        self.tenant_sync_flag.unwrap_or(false)
    }

    pub fn password_hash_sync(&self) -> bool {
        self.password_hash_sync.unwrap_or(false)
    }

    pub fn suspended(&self) -> bool {
        self.suspend.unwrap_or(false)
    }

    pub fn deletion_policy(&self) -> DeletionPolicy {
        self.deletion_policy.unwrap_or_default()
    }
}

impl RestartRequest {
    pub fn effective_reset_scope(&self) -> &str {
        self.reset_scope.as_deref().unwrap_or(DEFAULT_RESET_SCOPE)
    }
}
