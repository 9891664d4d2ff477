//! Directory calls: the tenant's sync flag, the cloud sync application template, and the
//! application and service principal it creates (reference §0.1, §1).

use reqwest::Method;
use serde_json::json;

use super::error::{ErrorKind, GraphError, Source};
use super::http::{Call, Tenant};
use super::model::{
    Application, CLOUD_SYNC_TEMPLATE_ID, Collection, Instantiated, Organization, ServicePrincipal, odata_quote,
};

const SP_FIELDS: &str = "id,appId,displayName,applicationTemplateId,tags";

impl Tenant {
    /// `GET /organization`: the tenant's organization object.
    pub async fn organization(&self) -> Result<Organization, GraphError> {
        let call = Call::new("organization.get", Method::GET, &["organization"])
            .query("$select", "id,displayName,onPremisesSyncEnabled");
        let page: Collection<Organization> = self.json(call).await?;
        page.value.into_iter().next().ok_or_else(|| GraphError {
            kind: ErrorKind::NotFound,
            ..GraphError::unusable_answer(
                "organization.get",
                Source::Graph,
                200,
                None,
                "the tenant returned no organization".into(),
            )
        })
    }

    /// `PATCH /organization/{id}` `{"onPremisesSyncEnabled": true}` (204). Not listed as updatable on
    /// the resource page, so callers confirm it with [`Tenant::organization`].
    pub async fn enable_on_premises_sync(&self, organization_id: &str) -> Result<(), GraphError> {
        let call = Call::new("organization.enableSync", Method::PATCH, &["organization", organization_id])
            .body(json!({"onPremisesSyncEnabled": true}))
            // Setting a flag to true twice changes nothing, so a retry is safe.
            .idempotent(true);
        self.empty(call).await
    }

    /// `POST /applicationTemplates/{cloud sync}/instantiate` (201). Not idempotent, and it can
    /// answer 404 after creating both objects: callers look up by display name before calling
    /// again, so this call is never retried here.
    pub async fn instantiate_cloud_sync(&self, display_name: &str) -> Result<Instantiated, GraphError> {
        let call = Call::new(
            "applicationTemplates.instantiate",
            Method::POST,
            &["applicationTemplates", CLOUD_SYNC_TEMPLATE_ID, "instantiate"],
        )
        .body(json!({"displayName": display_name}));
        self.json(call).await
    }

    /// Service principals instantiated from the cloud sync template with this exact display name.
    /// Keyed on applicationTemplateId, never on appId: a first-party service principal with the
    /// template's id as appId exists in many tenants. Plain `eq` filters read the primary store,
    /// not the lagging index that advanced queries use.
    pub async fn find_cloud_sync_service_principals(
        &self,
        display_name: &str,
    ) -> Result<Vec<ServicePrincipal>, GraphError> {
        let filter = format!(
            "applicationTemplateId eq {} and displayName eq {}",
            odata_quote(CLOUD_SYNC_TEMPLATE_ID),
            odata_quote(display_name)
        );
        let call = Call::new("servicePrincipals.find", Method::GET, &["servicePrincipals"])
            .query("$filter", filter)
            .query("$select", SP_FIELDS);
        let page: Collection<ServicePrincipal> = self.json(call).await?;
        Ok(page.value)
    }

    /// `GET /servicePrincipals/{id}`. `eventual`: the object may be seconds old.
    pub async fn service_principal(&self, id: &str, eventual: bool) -> Result<ServicePrincipal, GraphError> {
        let call = Call::new("servicePrincipals.get", Method::GET, &["servicePrincipals", id])
            .query("$select", SP_FIELDS)
            .eventual(eventual);
        self.json(call).await
    }

    /// `PATCH /servicePrincipals/{id}` `{"tags": [...]}` (204). The collection is replaced whole,
    /// so callers send every tag to keep. Sending the same set twice changes nothing.
    pub async fn set_service_principal_tags(&self, id: &str, tags: &[String]) -> Result<(), GraphError> {
        let call = Call::new("servicePrincipals.setTags", Method::PATCH, &["servicePrincipals", id])
            .body(json!({"tags": tags}))
            .idempotent(true);
        self.empty(call).await
    }

    pub async fn delete_service_principal(&self, id: &str) -> Result<(), GraphError> {
        self.empty(Call::new("servicePrincipals.delete", Method::DELETE, &["servicePrincipals", id])).await
    }

    /// The application behind a service principal (for adopted configurations, whose instantiate
    /// answer with the application id was never seen).
    pub async fn find_application_by_app_id(&self, app_id: &str) -> Result<Option<Application>, GraphError> {
        let call = Call::new("applications.find", Method::GET, &["applications"])
            .query("$filter", format!("appId eq {}", odata_quote(app_id)))
            .query("$select", "id,appId,displayName,applicationTemplateId");
        let page: Collection<Application> = self.json(call).await?;
        Ok(page.value.into_iter().next())
    }

    /// Object id of the application behind a service principal found by lookup (adopted, or
    /// created by an instantiate whose answer was lost), if Graph knows one.
    pub async fn application_id_of(&self, sp: &ServicePrincipal) -> Result<Option<String>, GraphError> {
        match sp.app_id.as_deref() {
            Some(app_id) => Ok(self.find_application_by_app_id(app_id).await?.map(|a| a.id)),
            None => Ok(None),
        }
    }

    pub async fn application(&self, id: &str) -> Result<Application, GraphError> {
        let call = Call::new("applications.get", Method::GET, &["applications", id])
            .query("$select", "id,appId,displayName,applicationTemplateId");
        self.json(call).await
    }

    /// Deleting the application also removes its service principal.
    pub async fn delete_application(&self, id: &str) -> Result<(), GraphError> {
        self.empty(Call::new("applications.delete", Method::DELETE, &["applications", id])).await
    }
}
