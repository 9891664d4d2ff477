//! Per-tenant directory state: registered callers, the organization, applications, service
//! principals with their synchronization jobs and secrets.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::clock::fmt_secs;
use super::jobs::Job;

/// The cloud-sync application template, which is also the appId of a first-party app.
pub const CLOUD_SYNC_TEMPLATE_ID: &str = "1a4721b3-e57f-4451-ae87-ef078703ec94";
/// Non-gallery templates (global, US Gov, China): instantiate works, no sync templates.
pub const NON_GALLERY_TEMPLATE_IDS: &[&str] = &[
    "8adf8e6e-67b2-4cf2-a259-e3dc5476c621",
    "4602d0b4-76bb-404b-bca9-2652e1a39c6d",
    "5a532e38-1581-4918-9658-008dc27c1d68",
];
const MICROSOFT_SERVICES_TENANT: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";

/// Application permissions the simulator distinguishes (reference §5.3).
pub mod perms {
    pub const APP_READ: &[&str] = &[
        "Application.Read.All",
        "Application.ReadWrite.All",
        "Application.ReadWrite.OwnedBy",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ];
    pub const APP_WRITE: &[&str] =
        &["Application.ReadWrite.All", "Application.ReadWrite.OwnedBy", "Directory.ReadWrite.All"];
    pub const SYNC_READ: &[&str] =
        &["Synchronization.Read.All", "Synchronization.ReadWrite.All", "Application.ReadWrite.OwnedBy"];
    pub const SYNC_WRITE: &[&str] = &["Synchronization.ReadWrite.All", "Application.ReadWrite.OwnedBy"];
    pub const ORG_READ: &[&str] =
        &["Organization.Read.All", "Organization.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"];
    pub const ORG_WRITE: &[&str] = &["Organization.ReadWrite.All"];
    /// Provisioning logs need both (reference part 2 §6).
    pub const PROVISIONING_LOGS: &[&str] = &["AuditLog.Read.All", "Directory.Read.All"];
    /// What `--tenant` and a registration without explicit permissions grant (with the
    /// provisioning-log roles, so the happy path shows recent failures).
    pub const FULL: &[&str] = &[
        "Application.ReadWrite.All",
        "Organization.ReadWrite.All",
        "Synchronization.ReadWrite.All",
        "AuditLog.Read.All",
        "Directory.Read.All",
    ];
    pub const SYNC: &str = "Synchronization.ReadWrite.All";
}

/// A federated identity credential of a registered app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedCredential {
    pub issuer: String,
    pub subject: String,
    pub audiences: Vec<String>,
}

/// An app that may ask the token endpoint for tokens.
#[derive(Clone)]
pub struct ClientApp {
    pub client_id: String,
    pub secret: Option<String>,
    pub federated: Vec<FederatedCredential>,
    pub permissions: BTreeSet<String>,
    /// The object id used as `oid`/`sub` in its tokens.
    pub object_id: String,
}

impl std::fmt::Debug for ClientApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientApp")
            .field("client_id", &self.client_id)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("federated", &self.federated)
            .field("permissions", &self.permissions)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpKind {
    /// Instantiated from the cloud-sync template: has the sync templates.
    CloudSync,
    /// Instantiated from a non-gallery template.
    Custom,
    /// The multi-tenant provisioning app every tenant may have; no template, no sync templates.
    FirstParty,
}

#[derive(Debug, Clone)]
pub struct Application {
    pub id: String,
    pub app_id: String,
    pub template_id: Option<String>,
    pub display_name: String,
    pub created: Timestamp,
    pub service_management_reference: Option<String>,
    pub seq: u64,
}

#[derive(Debug, Clone)]
pub struct ServicePrincipal {
    pub id: String,
    pub app_id: String,
    pub application_id: Option<String>,
    pub template_id: Option<String>,
    pub display_name: String,
    pub app_display_name: String,
    pub owner_tenant: String,
    pub created: Timestamp,
    pub kind: SpKind,
    pub jobs: Vec<Job>,
    pub secrets: Vec<(String, String)>,
    /// Schemas PUT per job id; absent means the template's default.
    pub schemas: BTreeMap<String, Value>,
    /// The `tags` string collection (PATCH replaces it whole).
    pub tags: Vec<String>,
    pub seq: u64,
}

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub display_name: String,
    pub created: Timestamp,
    pub clients: BTreeMap<String, ClientApp>,
    pub sync_enabled: Option<bool>,
    pub org_extra: Map<String, Value>,
    pub applications: BTreeMap<String, Application>,
    pub service_principals: BTreeMap<String, ServicePrincipal>,
    seq: u64,
}

fn key(id: &str) -> String {
    id.to_ascii_lowercase()
}

impl Tenant {
    pub fn new(id: &str, now: Timestamp) -> Self {
        let short: String = id.chars().filter(char::is_ascii_alphanumeric).take(8).collect();
        let mut t = Self {
            id: id.to_owned(),
            display_name: format!("Simulated tenant {short}"),
            created: now,
            clients: BTreeMap::new(),
            sync_enabled: None,
            org_extra: Map::new(),
            applications: BTreeMap::new(),
            service_principals: BTreeMap::new(),
            seq: 0,
        };
        // The first-party provisioning SP the reference warns about: keying on appId finds this.
        let sp_id = super::ids::guid();
        let seq = t.next_seq();
        t.service_principals.insert(
            sp_id.clone(),
            ServicePrincipal {
                id: sp_id,
                app_id: CLOUD_SYNC_TEMPLATE_ID.to_owned(),
                application_id: None,
                template_id: None,
                display_name: "Active Directory to Azure Active Directory Provisioning".to_owned(),
                app_display_name: "Active Directory to Azure Active Directory Provisioning".to_owned(),
                owner_tenant: MICROSOFT_SERVICES_TENANT.to_owned(),
                created: now,
                kind: SpKind::FirstParty,
                jobs: Vec::new(),
                secrets: Vec::new(),
                schemas: BTreeMap::new(),
                tags: Vec::new(),
                seq,
            },
        );
        t
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub fn default_domain(&self) -> String {
        let short: String = self.id.chars().filter(char::is_ascii_alphanumeric).take(8).collect();
        format!("sim{}.onmicrosoft.com", short.to_ascii_lowercase())
    }

    pub fn client(&self, client_id: &str) -> Option<&ClientApp> {
        self.clients.get(&key(client_id))
    }

    pub fn add_client(&mut self, app: ClientApp) {
        self.clients.insert(key(&app.client_id), app);
    }

    pub fn sp(&self, id: &str) -> Option<&ServicePrincipal> {
        self.service_principals.get(&key(id))
    }

    pub fn sp_mut(&mut self, id: &str) -> Option<&mut ServicePrincipal> {
        self.service_principals.get_mut(&key(id))
    }

    /// Resolves a path key: an object id or the `appId='...'` alternate key.
    pub fn resolve_sp_key(&self, path_key: &str) -> Option<String> {
        match alternate_key(path_key) {
            Some(app_id) => self
                .service_principals
                .values()
                .filter(|sp| sp.app_id.eq_ignore_ascii_case(&app_id))
                .min_by_key(|sp| sp.seq)
                .map(|sp| sp.id.clone()),
            None => self.sp(path_key).map(|sp| sp.id.clone()),
        }
    }

    pub fn resolve_app_key(&self, path_key: &str) -> Option<String> {
        match alternate_key(path_key) {
            Some(app_id) => {
                self.applications.values().find(|a| a.app_id.eq_ignore_ascii_case(&app_id)).map(|a| a.id.clone())
            }
            None => self.applications.get(&key(path_key)).map(|a| a.id.clone()),
        }
    }

    pub fn app(&self, id: &str) -> Option<&Application> {
        self.applications.get(&key(id))
    }

    /// Instantiates a template: a new application and service principal with a new appId.
    pub fn instantiate(
        &mut self,
        template_id: &str,
        display_name: &str,
        smr: Option<String>,
        now: Timestamp,
    ) -> (String, String) {
        let app_id = super::ids::guid();
        let app_object = super::ids::guid();
        let sp_object = super::ids::guid();
        let kind =
            if template_id.eq_ignore_ascii_case(CLOUD_SYNC_TEMPLATE_ID) { SpKind::CloudSync } else { SpKind::Custom };
        let seq = self.next_seq();
        self.applications.insert(
            app_object.clone(),
            Application {
                id: app_object.clone(),
                app_id: app_id.clone(),
                template_id: Some(template_id.to_ascii_lowercase()),
                display_name: display_name.to_owned(),
                created: now,
                service_management_reference: smr,
                seq,
            },
        );
        self.service_principals.insert(
            sp_object.clone(),
            ServicePrincipal {
                id: sp_object.clone(),
                app_id,
                application_id: Some(app_object.clone()),
                template_id: Some(template_id.to_ascii_lowercase()),
                display_name: display_name.to_owned(),
                app_display_name: display_name.to_owned(),
                owner_tenant: self.id.clone(),
                created: now,
                kind,
                jobs: Vec::new(),
                secrets: Vec::new(),
                schemas: BTreeMap::new(),
                tags: vec![
                    "WindowsAzureActiveDirectoryIntegratedApp".to_owned(),
                    "WindowsAzureActiveDirectoryCustomSingleSignOnApplication".to_owned(),
                ],
                seq,
            },
        );
        (app_object, sp_object)
    }

    /// Deleting an application deletes its service principal too, as in Entra.
    pub fn delete_application(&mut self, id: &str) -> bool {
        let Some(app) = self.applications.remove(&key(id)) else { return false };
        self.service_principals.retain(|_, sp| sp.application_id.as_deref() != Some(app.id.as_str()));
        true
    }

    pub fn delete_sp(&mut self, id: &str) -> bool {
        self.service_principals.remove(&key(id)).is_some()
    }

    /// Service principals sorted by creation, optionally hiding those created within `lag` secs.
    pub fn sps_in_order(&self) -> Vec<&ServicePrincipal> {
        let mut v: Vec<_> = self.service_principals.values().collect();
        v.sort_by_key(|sp| sp.seq);
        v
    }

    pub fn apps_in_order(&self) -> Vec<&Application> {
        let mut v: Vec<_> = self.applications.values().collect();
        v.sort_by_key(|a| a.seq);
        v
    }

    /// Objects beyond the first per (applicationTemplateId, displayName), case-insensitively,
    /// because that is the lookup key a client must use (reference §1.3).
    pub fn duplicate_service_principals(&self) -> u64 {
        count_duplicates(
            self.service_principals.values().filter_map(|sp| {
                sp.template_id.as_ref().map(|t| (t.to_ascii_lowercase(), sp.display_name.to_lowercase()))
            }),
        )
    }

    pub fn duplicate_applications(&self) -> u64 {
        count_duplicates(
            self.applications.values().filter_map(|a| {
                a.template_id.as_ref().map(|t| (t.to_ascii_lowercase(), a.display_name.to_lowercase()))
            }),
        )
    }

    /// Jobs beyond the first per (service principal, templateId).
    pub fn duplicate_jobs(&self) -> u64 {
        self.service_principals
            .values()
            .map(|sp| count_duplicates(sp.jobs.iter().map(|j| (String::new(), j.template_id.clone()))))
            .sum()
    }

    pub fn organization_json(&mut self, now: Timestamp) -> Value {
        // A tenant that syncs shows when the last successful cycle ended.
        let mut last_sync: Option<Timestamp> = None;
        if self.sync_enabled == Some(true) {
            for sp in self.service_principals.values_mut() {
                for job in &mut sp.jobs {
                    job.advance(now);
                    if let Some(t) = job.last_success_end() {
                        last_sync = Some(last_sync.map_or(t, |l| l.max(t)));
                    }
                }
            }
        }
        let domain = self.default_domain();
        let mut org = json!({
            "id": self.id,
            "deletedDateTime": null,
            "businessPhones": [],
            "city": null,
            "country": null,
            "countryLetterCode": "US",
            "createdDateTime": fmt_secs(self.created),
            "displayName": self.display_name,
            "marketingNotificationEmails": [],
            "onPremisesLastSyncDateTime": last_sync.map(fmt_secs),
            "onPremisesSyncEnabled": self.sync_enabled,
            "privacyProfile": null,
            "securityComplianceNotificationMails": [],
            "securityComplianceNotificationPhones": [],
            "technicalNotificationMails": [],
            "tenantType": "AAD",
            "verifiedDomains": [{
                "capabilities": "Email, OfficeCommunicationsOnlineService",
                "isDefault": true,
                "isInitial": true,
                "name": domain,
                "type": "Managed",
            }],
        });
        if let Value::Object(map) = &mut org {
            for (k, v) in &self.org_extra {
                map.insert(k.clone(), v.clone());
            }
        }
        org
    }
}

fn count_duplicates(keys: impl Iterator<Item = (String, String)>) -> u64 {
    let mut counts: HashMap<(String, String), u64> = HashMap::new();
    for k in keys {
        *counts.entry(k).or_default() += 1;
    }
    counts.values().map(|c| c - 1).sum()
}

/// `appId='...'` (from `servicePrincipals(appId='...')`) → the appId.
fn alternate_key(path_key: &str) -> Option<String> {
    let rest = path_key.strip_prefix("appId=")?;
    let inner = rest.strip_prefix('\'')?.strip_suffix('\'')?;
    Some(inner.replace("''", "'"))
}

impl Application {
    pub fn to_json(&self, tenant: &Tenant) -> Value {
        json!({
            "id": self.id,
            "deletedDateTime": null,
            "appId": self.app_id,
            "applicationTemplateId": self.template_id,
            "createdDateTime": fmt_secs(self.created),
            "description": null,
            "displayName": self.display_name,
            "identifierUris": [],
            "publisherDomain": tenant.default_domain(),
            "serviceManagementReference": self.service_management_reference,
            "signInAudience": "AzureADMyOrg",
            "tags": [],
            "web": {"homePageUrl": null, "logoutUrl": null, "redirectUris": []},
        })
    }
}

impl ServicePrincipal {
    pub fn to_json(&self) -> Value {
        let first_party = self.kind == SpKind::FirstParty;
        json!({
            "id": self.id,
            "deletedDateTime": null,
            "accountEnabled": true,
            "appDisplayName": self.app_display_name,
            "appId": self.app_id,
            "applicationTemplateId": self.template_id,
            "appOwnerOrganizationId": self.owner_tenant,
            "appRoleAssignmentRequired": !first_party,
            "createdDateTime": fmt_secs(self.created),
            "displayName": self.display_name,
            "notificationEmailAddresses": [],
            "preferredSingleSignOnMode": null,
            "replyUrls": [],
            "servicePrincipalNames": [self.app_id],
            "servicePrincipalType": "Application",
            "signInAudience": if first_party { "AzureADMultipleOrgs" } else { "AzureADMyOrg" },
            "tags": self.tags,
        })
    }

    /// The on-premises domain from the `Domain` secret, when it holds `{"domain": "..."}`.
    pub fn domain(&self) -> Option<String> {
        let (_, v) = self.secrets.iter().find(|(k, _)| k == "Domain")?;
        let parsed: Value = serde_json::from_str(v).ok()?;
        parsed.get("domain").and_then(Value::as_str).map(str::to_owned)
    }

    pub fn has_sync_templates(&self) -> bool {
        self.kind == SpKind::CloudSync
    }

    pub fn job_index(&self, job_id: &str) -> Option<usize> {
        self.jobs.iter().position(|j| j.id == job_id)
    }
}

/// All tenants.
#[derive(Debug, Default)]
pub struct Directory {
    pub tenants: BTreeMap<String, Tenant>,
}

impl Directory {
    pub fn tenant(&self, id: &str) -> Option<&Tenant> {
        self.tenants.get(&key(id))
    }

    pub fn tenant_mut(&mut self, id: &str) -> Option<&mut Tenant> {
        self.tenants.get_mut(&key(id))
    }

    pub fn ensure_tenant(&mut self, id: &str, now: Timestamp) -> &mut Tenant {
        self.tenants.entry(key(id)).or_insert_with(|| Tenant::new(id, now))
    }

    /// The tenant (other than `except`) that holds an object with this id, if any.
    pub fn other_owner(&self, except: &str, object_id: &str) -> Option<&str> {
        let k = key(object_id);
        self.tenants
            .values()
            .filter(|t| !t.id.eq_ignore_ascii_case(except))
            .find(|t| {
                key(&t.id) == k
                    || t.service_principals.contains_key(&k)
                    || t.applications.contains_key(&k)
                    || t.resolve_sp_key(object_id).is_some()
            })
            .map(|t| t.id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-11-26T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn duplicates_and_seed() {
        let mut t = Tenant::new("t1", now());
        assert_eq!(t.service_principals.len(), 1, "seeded first-party SP");
        assert_eq!(t.duplicate_service_principals(), 0);
        t.instantiate(CLOUD_SYNC_TEMPLATE_ID, "contoso.com", None, now());
        t.instantiate(CLOUD_SYNC_TEMPLATE_ID, "Contoso.com", None, now());
        t.instantiate(CLOUD_SYNC_TEMPLATE_ID, "fabrikam.com", None, now());
        assert_eq!(t.duplicate_service_principals(), 1);
        assert_eq!(t.duplicate_applications(), 1);
        let apps: Vec<String> = t.applications.keys().cloned().collect();
        assert!(t.delete_application(&apps[0]));
        assert_eq!(t.service_principals.len(), 3);
    }

    #[test]
    fn alternate_keys() {
        let mut t = Tenant::new("t1", now());
        let (_, sp) = t.instantiate(CLOUD_SYNC_TEMPLATE_ID, "x", None, now());
        let app_id = t.sp(&sp).unwrap().app_id.clone();
        assert_eq!(t.resolve_sp_key(&format!("appId='{app_id}'")), Some(sp.clone()));
        assert_eq!(t.resolve_sp_key(&sp.to_uppercase()), Some(sp));
        // The first-party SP answers to the template's appId.
        let fp = t.resolve_sp_key(&format!("appId='{CLOUD_SYNC_TEMPLATE_ID}'")).unwrap();
        assert_eq!(t.sp(&fp).unwrap().kind, SpKind::FirstParty);
        assert_eq!(t.resolve_sp_key("appId='nope'"), None);
    }
}
