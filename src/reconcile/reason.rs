//! Every reason the operator writes into a condition or an Event, and the messages of the problems
//! a user must fix. Conditions, Events, the README's troubleshooting table and the Argo CD health
//! check all take their reasons from here, so a new reason cannot be forgotten by one of them.

use super::credentials::{CLIENT_ID_KEY, CLIENT_SECRET_KEY};
use crate::graph::{ErrorKind, GraphError, Source};

/// How a reason is meant: Argo CD's health check and the Warning Events follow this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Ready=False (or Degraded=True) that only a person can fix: a Warning Event, Argo CD Degraded.
    NeedsUser,
    /// Work in progress, or a wait that ends by itself: no Warning Event, Argo CD Progressing.
    Progress,
    /// The reason of a condition that is fine (Ready=True, Degraded=False, ...).
    Fine,
    /// Only ever an Event's reason: something the operator did or saw.
    Activity,
}

macro_rules! reasons {
    ($($kind:ident: $($name:ident),+ ;)+) => {
        /// A condition or Event reason (CamelCase, as Kubernetes conventions ask).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason { $($($name,)+)+ }

        impl Reason {
            pub const ALL: &'static [Reason] = &[$($(Reason::$name,)+)+];

            pub const fn as_str(self) -> &'static str {
                match self { $($(Reason::$name => stringify!($name),)+)+ }
            }

            pub fn from_name(name: &str) -> Option<Reason> {
                match name { $($(stringify!($name) => Some(Reason::$name),)+)+ _ => None }
            }

            pub fn kind(self) -> Kind {
                match self { $($(Reason::$name => Kind::$kind,)+)+ }
            }
        }
    };
}

reasons! {
    NeedsUser: SecretNotFound, SecretInvalid, NoCredentials, WorkloadIdentityNotAllowed,
        WorkloadIdentityUnavailable, CredentialsRejected, GraphUnauthorized, GraphForbidden,
        GraphRequestRejected, AmbiguousServicePrincipal, ConfigurationClaimed, CleanupBlocked, UnreadableSpec,
        Quarantined, ExecutionFailed, DuplicateJobs, InvalidExpression, DeletesHeld, OwnedElsewhere,
        AgentUnavailable;
    Progress: Creating, WaitingForCredentials, InstantiatePending, JobsMissing, NotRunning,
        NoServicePrincipal, Suspended, Retrying, SchemaPending;
    Fine: Ready, Authenticated, Running, Healthy, SuspendRequested, NotSuspended, Applied, NotManaged;
    Activity: TenantSyncEnabled, TenantSyncFlagUnconfirmed, ServicePrincipalCreated,
        InstantiateUncertain, ServicePrincipalFound, ServicePrincipalAdopted, ServicePrincipalGone,
        JobCreated, JobDeleted, SecretsUpdated, JobStarted, JobPaused, JobRestarted, RestartConfirmed,
        Orphaned, AdoptedLeftInPlace, ApplicationDeleted, ServicePrincipalDeleted, Deleted,
        SchemaUpdated, SchemaDriftCorrected, ScopeRestarted, OwnershipClaimed, OwnershipReleased,
        RecentFailuresUnavailable;
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A check that failed: its reason and a message that tells the user what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub reason: Reason,
    pub message: String,
}

impl Problem {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self { reason, message: message.into() }
    }

    /// What the user must do about a Graph refusal that retrying will not fix. The message leaves
    /// out the request id, which changes with every call, so a repeated refusal rewrites nothing.
    pub fn graph(e: &GraphError) -> Self {
        let what = e.summary();
        match (e.source, e.kind) {
            (Source::Login, _) => Self::new(
                Reason::CredentialsRejected,
                format!(
                    "the identity platform refused the credentials: {what}. Check the clientId and clientSecret, the tenantId, and that the app registration exists in that tenant"
                ),
            ),
            (_, ErrorKind::Unauthorized) => Self::new(
                Reason::GraphUnauthorized,
                format!(
                    "{what}. Grant the app registration the Graph application permissions Application.ReadWrite.OwnedBy and Synchronization.ReadWrite.All, with admin consent (sync APIs answer 401 when they are missing)"
                ),
            ),
            (_, ErrorKind::Forbidden) => Self::new(
                Reason::GraphForbidden,
                format!(
                    "{what}. Grant the missing Graph application permission with admin consent (Application.ReadWrite.OwnedBy or Application.ReadWrite.All to create the configuration, Organization.ReadWrite.All for tenantSyncFlag)"
                ),
            ),
            _ => Self::new(Reason::GraphRequestRejected, what),
        }
    }

    pub fn secret_not_found(namespace: &str, name: &str) -> Self {
        Self::new(
            Reason::SecretNotFound,
            format!(
                "Secret {namespace}/{name} not found: create it with the keys {CLIENT_ID_KEY} and {CLIENT_SECRET_KEY} of an app registration that has the Graph permissions Application.ReadWrite.OwnedBy and Synchronization.ReadWrite.All"
            ),
        )
    }

    pub fn secret_not_text(namespace: &str, name: &str, key: &str) -> Self {
        Self::new(Reason::SecretInvalid, format!("Secret {namespace}/{name}: key {key} is not UTF-8 text"))
    }

    /// Says how long the limit is, never how long the value is.
    pub fn secret_too_long(namespace: &str, name: &str, key: &str, limit: usize) -> Self {
        Self::new(
            Reason::SecretInvalid,
            format!(
                "Secret {namespace}/{name}: key {key} is longer than {limit} bytes, which no client id or secret is"
            ),
        )
    }

    pub fn secret_not_one_line(namespace: &str, name: &str, key: &str) -> Self {
        Self::new(
            Reason::SecretInvalid,
            format!(
                "Secret {namespace}/{name}: key {key} contains a line break or another control character; \
                 it must hold the value alone, on one line"
            ),
        )
    }

    pub fn secret_lacks(namespace: &str, name: &str, key: &str) -> Self {
        Self::new(
            Reason::SecretInvalid,
            format!(
                "Secret {namespace}/{name} has no {key}: it needs the keys {CLIENT_ID_KEY} and {CLIENT_SECRET_KEY}"
            ),
        )
    }

    pub fn no_credentials() -> Self {
        Self::new(Reason::NoCredentials, "set spec.credentials.secretRef or spec.credentials.workloadIdentity")
    }

    pub fn workload_identity_not_allowed() -> Self {
        Self::new(
            Reason::WorkloadIdentityNotAllowed,
            "this operator does not let profiles use its workload identity (it runs without --allow-workload-identity): use credentials.secretRef, or ask the operator's administrator",
        )
    }

    pub fn no_federated_token() -> Self {
        Self::new(
            Reason::WorkloadIdentityUnavailable,
            "the operator pod has no federated token (AZURE_FEDERATED_TOKEN_FILE is not set): label the pod azure.workload.identity/use=true and annotate its ServiceAccount with azure.workload.identity/client-id",
        )
    }

    pub fn no_workload_client_id() -> Self {
        Self::new(
            Reason::WorkloadIdentityUnavailable,
            "no client id: set spec.credentials.workloadIdentity.clientId or the operator's AZURE_CLIENT_ID",
        )
    }

    pub fn waiting_for(what: &str) -> Self {
        Self::new(Reason::WaitingForCredentials, format!("waiting for {what}"))
    }

    pub fn creating() -> Self {
        Self::new(Reason::Creating, "creating the cloud sync configuration")
    }

    pub fn claimed_by(owner: &str, name: &str) -> Self {
        Self::new(
            Reason::ConfigurationClaimed,
            format!(
                "profile {owner} already manages the cloud sync configuration {name:?} in this tenant: two profiles must not share one. Give this profile another spec.displayName, or delete one of them"
            ),
        )
    }

    /// The service principal's owner tag names another install or profile.
    pub fn owned_elsewhere(other: &str, service_principal: &str, annotation: &str) -> Self {
        Self::new(
            Reason::OwnedElsewhere,
            format!(
                "{service_principal} is owned by {other} (its cloudsync.io/owner tag): two operator installs must not drive one configuration, so this profile changes nothing. To hand it over, delete that profile with deletionPolicy: Orphan (which removes the tag); if that install is gone, annotate this profile with {annotation}: {other:?}. Or give this profile another spec.displayName"
            ),
        )
    }

    pub fn ambiguous(name: &str, ids: &[String]) -> Self {
        Self::new(
            Reason::AmbiguousServicePrincipal,
            format!(
                "{} cloud sync configurations are named {name:?} ({}): the operator will not guess. Set spec.displayName to a unique name, or delete the extra service principals",
                ids.len(),
                ids.join(", ")
            ),
        )
    }

    pub fn instantiate_pending(name: &str, since: &str, grace_minutes: u64) -> Self {
        Self::new(
            Reason::InstantiatePending,
            format!(
                "an instantiate of {name:?} at {since} may have created the configuration; waiting for it to appear (up to {grace_minutes} minutes) before creating another"
            ),
        )
    }

    pub fn jobs_unlisted(service_principal: &str) -> Self {
        Self::new(
            Reason::GraphRequestRejected,
            format!(
                "Graph answers 404 for the synchronization jobs of {service_principal} although the service principal exists; check that the app registration may manage it (Synchronization.ReadWrite.All)"
            ),
        )
    }

    pub fn cleanup_blocked(cause: &str) -> Self {
        Self::new(
            Reason::CleanupBlocked,
            format!(
                "cannot delete the configuration in Microsoft Graph: {cause}. Fix it, or set spec.deletionPolicy to Orphan to release the profile and leave Graph as it is"
            ),
        )
    }

    pub fn ambiguous_cleanup(name: &str, ids: &[String]) -> Self {
        Self::new(
            Reason::AmbiguousServicePrincipal,
            format!(
                "{} configurations are named {name:?} ({}); the operator does not know which one an unfinished instantiate created: delete it yourself",
                ids.len(),
                ids.join(", ")
            ),
        )
    }

    pub fn retrying(error: &str) -> Self {
        Self::new(Reason::Retrying, format!("retrying after a temporary failure: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Cause;

    #[test]
    fn reasons_are_unique_camel_case_words() {
        let mut seen = std::collections::BTreeSet::new();
        for r in Reason::ALL {
            let s = r.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(s.chars().next().is_some_and(|c| c.is_ascii_uppercase()), "{s}");
            assert!(s.chars().all(|c| c.is_ascii_alphanumeric()), "{s}");
        }
        assert_eq!(Reason::SecretNotFound.kind(), Kind::NeedsUser);
        assert_eq!(Reason::Retrying.kind(), Kind::Progress);
        assert_eq!(Reason::JobStarted.kind(), Kind::Activity);
    }

    #[test]
    fn graph_refusals_name_the_permission_to_grant() {
        let e = |kind, source| GraphError {
            kind,
            source,
            cause: Cause::ErrorStatus,
            operation: "jobs.list",
            status: Some(403),
            code: Some("Authorization_RequestDenied".into()),
            message: "Insufficient privileges".into(),
            request_id: Some("req-1".into()),
            retry_after: None,
        };
        let p = Problem::graph(&e(ErrorKind::Forbidden, Source::Graph));
        assert_eq!(p.reason, Reason::GraphForbidden);
        assert!(p.message.contains("Organization.ReadWrite.All") && !p.message.contains("req-1"), "{}", p.message);
        assert_eq!(Problem::graph(&e(ErrorKind::Unauthorized, Source::Login)).reason, Reason::CredentialsRejected);
        assert_eq!(Problem::graph(&e(ErrorKind::Unauthorized, Source::Graph)).reason, Reason::GraphUnauthorized);
        assert_eq!(Problem::graph(&e(ErrorKind::NeedsUserAction, Source::Graph)).reason, Reason::GraphRequestRejected);
    }
}
