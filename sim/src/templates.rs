//! Synchronization templates of the cloud-sync service principal (reference §2.5).

use serde_json::{Value, json};

use super::state::CLOUD_SYNC_TEMPLATE_ID;

/// The templates an instantiated cloud-sync service principal exposes.
pub const CLOUD_SYNC_TEMPLATES: &[(&str, &str)] = &[
    ("AD2AADProvisioning", "Users, groups and contacts from Active Directory to Microsoft Entra ID"),
    ("AD2AADPasswordHash", "Password hash synchronization from Active Directory to Microsoft Entra ID"),
    ("AAD2ADGroupProvisioning", "Group provisioning from Microsoft Entra ID to Active Directory"),
    ("AAD2ADExchangeHybridWriteback", "Exchange hybrid writeback (preview)"),
    ("AD2AADDeviceSync", "Computer objects from Active Directory to Microsoft Entra ID for hybrid join (preview)"),
];

pub fn is_cloud_sync_template(id: &str) -> bool {
    CLOUD_SYNC_TEMPLATES.iter().any(|(t, _)| *t == id)
}

fn directories(template: &str) -> (&'static str, &'static str) {
    if template.starts_with("AAD2AD") {
        ("Azure Active Directory", "Active Directory")
    } else {
        ("Active Directory", "Azure Active Directory")
    }
}

/// The template's default `synchronizationSchema` (what a job's schema resets to).
pub fn schema(template: &str) -> Value {
    super::schema::default_schema(template)
}

/// `GET .../synchronization/templates` items for a cloud-sync service principal.
pub fn cloud_sync_templates() -> Vec<Value> {
    CLOUD_SYNC_TEMPLATES
        .iter()
        .map(|(id, description)| {
            let (source, target) = directories(id);
            json!({
                "id": id,
                "applicationId": CLOUD_SYNC_TEMPLATE_ID,
                "default": *id == "AD2AADProvisioning",
                "description": description,
                "discoverable": true,
                "factoryTag": id,
                // Illustrative metadata: the reference documents the field, not its entries.
                "metadata": [
                    {"key": "SourceDirectory", "value": source},
                    {"key": "TargetDirectory", "value": target},
                ],
                "schema": schema(id),
            })
        })
        .collect()
}
