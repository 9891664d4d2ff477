//! Status writes: a working copy of the status, patched (server-side apply on the status
//! subresource) only when it differs from what was last written.

use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::FIELD_MANAGER;
use crate::api::{CloudSyncProfile, CloudSyncProfileStatus};

pub struct StatusWriter {
    api: Api<CloudSyncProfile>,
    name: String,
    /// The working copy; change it, then `save`.
    pub status: CloudSyncProfileStatus,
    written: CloudSyncProfileStatus,
    pub patches: u32,
}

impl StatusWriter {
    pub fn new(api: Api<CloudSyncProfile>, name: String, current: Option<&CloudSyncProfileStatus>) -> Self {
        let status = current.cloned().unwrap_or_default();
        Self { api, name, written: status.clone(), status, patches: 0 }
    }

    /// Reads the status from the apiserver, replacing the working copy (which must hold no
    /// unsaved change).
    pub async fn refresh(&mut self) -> Result<(), kube::Error> {
        if let Some(fresh) = self.api.get_opt(&self.name).await? {
            self.status = fresh.status.unwrap_or_default();
            self.written = self.status.clone();
        }
        Ok(())
    }

    /// Writes the working copy if it changed since the last write. A record that must not be lost
    /// (a new service principal's id) is written before anything but planning follows its answer
    /// (`Pass::hold`), so a crash never loses an id.
    pub async fn save(&mut self) -> Result<(), kube::Error> {
        if self.status == self.written {
            return Ok(());
        }
        if self.status == CloudSyncProfileStatus::default() {
            // Server-side apply turns an empty status into null, which the schema refuses; a
            // rolled-back first intent empties it, so its fields are removed with a merge patch.
            let cleared: serde_json::Map<String, serde_json::Value> = match serde_json::to_value(&self.written) {
                Ok(serde_json::Value::Object(fields)) => {
                    fields.into_iter().map(|(k, _)| (k, serde_json::Value::Null)).collect()
                }
                _ => serde_json::Map::new(),
            };
            let patch = json!({ "status": cleared });
            self.api.patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        } else {
            let patch = json!({
                "apiVersion": "cloudsync.io/v1alpha1",
                "kind": "CloudSyncProfile",
                "status": self.status,
            });
            self.api
                .patch_status(&self.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
                .await?;
        }
        self.written = self.status.clone();
        self.patches += 1;
        Ok(())
    }
}
