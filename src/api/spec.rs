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

    /// Which part of the domain is synchronized. Absent: the whole domain. Written into the
    /// provisioning job's schema; after a change the job is restarted once so that objects now in
    /// scope are imported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,

    /// Attribute mappings to add or override in the provisioning job's schema, keyed by (object,
    /// target). A mapping removed from this list returns to the template's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // A list-map: the apiserver itself refuses two entries with one (object, target).
    #[x_kube(merge_strategy = ListMerge::Map(vec!["object".into(), "target".into()]))]
    #[schemars(length(max = 100))]
    pub attribute_mappings: Option<Vec<AttributeMapping>>,

    /// Deletion protection: a run that would delete this many objects or more is held until a
    /// person approves it. Default: enabled, threshold 500 (the service's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accidental_deletes: Option<AccidentalDeletes>,

    /// Where the service sends e-mails about quarantines and held deletes. Absent: no e-mails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Notifications>,
}

/// One OU or group distinguished name such as OU=Sales,DC=contoso,DC=com: attribute=value pairs
/// separated by commas; a comma inside a value is escaped as \,.
pub(crate) const DN_RE: &str = r"^[A-Za-z][A-Za-z0-9-]*=([^,=\\]|\\.)+(, ?[A-Za-z][A-Za-z0-9-]*=([^,=\\]|\\.)+)+$";

/// The configuration's scope: organizational units or groups, never both.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.organizationalUnits) != has(self.groups)").message("scope: set exactly one of organizationalUnits or groups"))]
pub struct Scope {
    /// Distinguished names of the OUs to synchronize (1 to 59); OUs below them are included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(format!("self.all(dn, dn.matches(r'{DN_RE}'))")).message("scope.organizationalUnits: each entry must be a distinguished name such as OU=Sales,DC=contoso,DC=com"))]
    #[schemars(length(min = 1, max = 59))]
    pub organizational_units: Option<Vec<DistinguishedName>>,

    /// Distinguished names of the security groups whose direct members are synchronized (1 to
    /// 59); members of nested groups are not. Microsoft recommends group scope for pilots only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(format!("self.all(dn, dn.matches(r'{DN_RE}'))")).message("scope.groups: each entry must be a distinguished name such as CN=Pilot,OU=Groups,DC=contoso,DC=com"))]
    #[schemars(length(min = 1, max = 59))]
    pub groups: Option<Vec<DistinguishedName>>,
}

/// A distinguished name in the on-premises directory, such as OU=Sales,DC=contoso,DC=com.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, schemars::JsonSchema)]
#[serde(transparent)]
pub struct DistinguishedName(#[schemars(length(min = 3, max = 1024))] pub String);

impl DistinguishedName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The AD object types of the schema's object mappings.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ObjectType {
    User,
    InetOrgPerson,
    Group,
    Contact,
}

impl ObjectType {
    /// The `sourceObjectName` of its object mapping.
    pub fn source_object_name(self) -> &'static str {
        match self {
            ObjectType::User => "user",
            ObjectType::InetOrgPerson => "inetOrgPerson",
            ObjectType::Group => "group",
            ObjectType::Contact => "contact",
        }
    }
}

/// When a mapping flows.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub enum Flow {
    /// On every change of the source.
    #[default]
    Always,
    /// Only when the object is created in Entra ID.
    ObjectAddOnly,
}

impl Flow {
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::Always => "Always",
            Flow::ObjectAddOnly => "ObjectAddOnly",
        }
    }
}

/// One attribute mapping: the Entra ID attribute `target` of `object`s, from exactly one source.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.attribute), has(self.constant), has(self.expression)].filter(x, x).size() == 1").message("attributeMappings: set exactly one of attribute, constant or expression"))]
pub struct AttributeMapping {
    /// The AD object type: user, inetOrgPerson, group or contact.
    pub object: ObjectType,

    /// The Entra ID attribute it sets, e.g. department.
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z][A-Za-z0-9_-]*$')").message("attributeMappings: target must be an attribute name (letters, digits, '_' and '-')"))]
    #[schemars(length(min = 1, max = 256))]
    pub target: String,

    /// An AD attribute copied as it is, e.g. physicalDeliveryOfficeName.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z][A-Za-z0-9_-]*$')").message("attributeMappings: attribute must be an AD attribute name (letters, digits, '_' and '-')"))]
    #[schemars(length(min = 1, max = 256))]
    pub attribute: Option<String>,

    /// A fixed value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub constant: Option<String>,

    /// An expression in the provisioning expression language, e.g. Join(" ", [givenName], [sn]).
    /// Checked with Graph's parseExpression before anything is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub expression: Option<String>,

    /// Always (default) or ObjectAddOnly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<Flow>,
}

/// The service's accidental-delete protection.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AccidentalDeletes {
    /// Hold runs that would delete `threshold` objects or more. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,

    /// The number of deletes in one run at which it is held (at 500, up to 499 go through).
    /// Default 500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("accidentalDeletes.threshold must be at least 1"))]
    #[schemars(range(max = 1_000_000))]
    pub threshold: Option<i64>,
}

/// Quarantine and held-delete e-mails.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Notifications {
    /// One e-mail address.
    #[x_kube(validation = Rule::new("self.matches('^[^@ ,;<>]+@[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?([.][A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)+$')").message("notifications.email must be one e-mail address such as identity-ops@contoso.com"))]
    #[schemars(length(min = 3, max = 254))]
    pub email: String,
}

/// The service's defaults for deletion protection.
pub const DEFAULT_DELETE_THRESHOLD: i64 = 500;

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

    pub fn deletes_protected(&self) -> bool {
        self.accidental_deletes.as_ref().and_then(|a| a.enabled).unwrap_or(true)
    }

    pub fn delete_threshold(&self) -> i64 {
        self.accidental_deletes.as_ref().and_then(|a| a.threshold).unwrap_or(DEFAULT_DELETE_THRESHOLD)
    }

    pub fn attribute_mappings(&self) -> &[AttributeMapping] {
        self.attribute_mappings.as_deref().unwrap_or(&[])
    }
}

impl RestartRequest {
    pub fn effective_reset_scope(&self) -> &str {
        self.reset_scope.as_deref().unwrap_or(DEFAULT_RESET_SCOPE)
    }
}
