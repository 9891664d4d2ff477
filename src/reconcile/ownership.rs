//! Ownership across installs and clusters. The in-process claim (`coordination.rs`) only keeps two
//! profiles of one process apart; two installs (label-sharded, or in two clusters) would both
//! drive a configuration they can both find by name. So the owner is recorded where every install
//! looks: a `cloudsync.io/owner=<owner>` tag on the service principal in Graph, where `<owner>` is
//! `cloudsync-operator:<cluster-id>/<namespace>/<name>` of the profile.
//!
//! The tag is checked when a profile first records (creates or adopts) a configuration (for one it
//! creates, from the instantiate's answer, the claim riding with its first job writes), and the
//! answer remembered in `status.servicePrincipal.owner`, so the steady state costs no extra read.
//! Graph has no conditional update of a service principal: two installs that claim one untagged
//! configuration in the same moment both write, and the later tag wins in Graph.

use jiff::Timestamp;

use super::observe::{Observed, Read};
use super::plan::{Plan, Slot, eventual};
use super::reason::Problem;
use super::step::{Step, describe_sp};
use crate::api::{CloudSyncProfile, CloudSyncProfileStatus};

/// The tag's prefix; the owner follows it.
pub const OWNER_TAG_PREFIX: &str = "cloudsync.io/owner=";

/// Set on a profile to take a configuration over from the owner it names (an install that is gone
/// and cannot hand it over by deleting its profile with `deletionPolicy: Orphan`).
pub const TAKE_OWNERSHIP_ANNOTATION: &str = "cloudsync.io/take-ownership";

/// Who a pass acts as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// `cloudsync-operator:<cluster-id>/<namespace>/<name>`.
    pub me: String,
    /// The owner the profile's take-ownership annotation names, if any.
    pub take_over: Option<String>,
    /// This process already read the tag and found it names `me`: status alone may be trusted.
    pub checked: bool,
}

impl Owner {
    pub fn of(profile: &CloudSyncProfile, cluster_id: &str) -> Self {
        let meta = &profile.metadata;
        let me = identity(
            cluster_id,
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default(),
        );
        let take_over = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(TAKE_OWNERSHIP_ANNOTATION))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        Self { me, take_over, checked: false }
    }
}

pub fn identity(cluster_id: &str, namespace: &str, name: &str) -> String {
    format!("cloudsync-operator:{cluster_id}/{namespace}/{name}")
}

/// The owner a service principal's tags name (the first owner tag, if several).
pub fn owner_of(tags: &[String]) -> Option<&str> {
    tags.iter().find_map(|t| t.strip_prefix(OWNER_TAG_PREFIX)).filter(|o| !o.is_empty())
}

/// The tags with `owner` as the only owner, every other tag kept in its place.
pub fn tags_owned_by(tags: &[String], owner: &str) -> Vec<String> {
    let mut out = tags_without_owner(tags);
    out.push(format!("{OWNER_TAG_PREFIX}{owner}"));
    out
}

pub fn tags_without_owner(tags: &[String]) -> Vec<String> {
    tags.iter().filter(|t| !t.starts_with(OWNER_TAG_PREFIX)).cloned().collect()
}

/// Before anything is written on a recorded configuration: `None` when this profile is its
/// recorded owner and this process has checked the tag once (or the pass enforces no owner);
/// otherwise read the tags, then record the owner, claim it, or refuse it. A configuration with
/// no owner tag, created or adopted, is claimed. The planner sends the claim of a configuration
/// the pass itself just instantiated together with its first jobs and secrets (`plan::next`):
/// the instantiate's answer holds its tags and no other install can have recorded it yet.
pub fn plan_ownership(status: &CloudSyncProfileStatus, seen: &Observed, now: Timestamp) -> Option<Plan> {
    let owner = seen.owner.as_ref()?;
    let sp = status.service_principal.as_ref()?;
    let recorded = sp.owner.as_deref() == Some(owner.me.as_str());
    if recorded && owner.checked {
        return None;
    }
    let Some(held) = seen.service_principal.as_ref().filter(|s| s.id == sp.id) else {
        return Some(Plan::Read(Read::ServicePrincipal { id: sp.id.clone(), eventual: eventual(status, now) }));
    };
    let step = match owner_of(&held.tags) {
        Some(o) if o == owner.me && recorded => return None,
        Some(o) if o == owner.me => Step::RecordOwner { owner: owner.me.clone() },
        Some(o) if owner.take_over.as_deref() != Some(o) => {
            return Some(Plan::Blocked {
                slot: Slot::ServicePrincipal,
                problem: Problem::owned_elsewhere(o, &describe_sp(sp), TAKE_OWNERSHIP_ANNOTATION),
            });
        }
        previous => Step::ClaimOwnership {
            service_principal: sp.id.clone(),
            tags: tags_owned_by(&held.tags, &owner.me),
            owner: owner.me.clone(),
            previous: previous.map(str::to_string),
        },
    };
    Some(Plan::Wave(vec![step]))
}

/// Deleting a profile that leaves its configuration in Graph: the tags without our owner tag, to
/// write back, or `None` when the tag is not ours (someone else's, or none) and stays as it is.
pub fn release(tags: &[String], me: &str) -> Option<Vec<String>> {
    (owner_of(tags) == Some(me)).then(|| tags_without_owner(tags))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ServicePrincipalRef;
    use crate::graph::model::ServicePrincipal;
    use crate::reconcile::reason::Reason;

    const ME: &str = "cloudsync-operator:c1/ns/p";
    const OTHER: &str = "cloudsync-operator:c2/other/q";

    fn now() -> Timestamp {
        "2026-11-26T12:00:00Z".parse().unwrap()
    }

    fn status(owner: Option<&str>) -> CloudSyncProfileStatus {
        CloudSyncProfileStatus {
            service_principal: Some(ServicePrincipalRef {
                id: "sp".into(),
                display_name: Some("contoso.com".into()),
                owner: owner.map(Into::into),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn seen(tags: Option<&[&str]>, take_over: Option<&str>) -> Observed {
        Observed {
            owner: Some(Owner { me: ME.into(), take_over: take_over.map(Into::into), checked: true }),
            service_principal: tags.map(|t| ServicePrincipal {
                id: "sp".into(),
                tags: t.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_identity_and_the_tag() {
        assert_eq!(identity("c1", "ns", "p"), ME);
        let tags = vec!["WindowsAzureActiveDirectoryIntegratedApp".to_string(), format!("{OWNER_TAG_PREFIX}{OTHER}")];
        assert_eq!(owner_of(&tags), Some(OTHER));
        assert_eq!(owner_of(&["cloudsync.io/owner=".to_string()]), None, "an empty owner is none");
        assert_eq!(
            tags_owned_by(&tags, ME),
            ["WindowsAzureActiveDirectoryIntegratedApp".to_string(), format!("{OWNER_TAG_PREFIX}{ME}")],
            "the other owner is replaced, other tags kept"
        );
        assert_eq!(release(&tags, ME), None, "someone else's tag stays");
        assert_eq!(
            release(&tags_owned_by(&tags, ME), ME),
            Some(vec!["WindowsAzureActiveDirectoryIntegratedApp".into()])
        );
    }

    #[test]
    fn a_recorded_owner_costs_no_read_once_the_process_checked_it() {
        assert_eq!(plan_ownership(&status(Some(ME)), &seen(None, None), now()), None);
        // A new process reads the tag once more: another install may have taken it over meanwhile.
        let mut fresh = seen(None, None);
        fresh.owner.as_mut().unwrap().checked = false;
        assert!(matches!(plan_ownership(&status(Some(ME)), &fresh, now()), Some(Plan::Read(_))));
        let tag = format!("{OWNER_TAG_PREFIX}{ME}");
        let mut ours = seen(Some(&[tag.as_str()]), None);
        ours.owner.as_mut().unwrap().checked = false;
        assert_eq!(plan_ownership(&status(Some(ME)), &ours, now()), None, "still ours: nothing to write");
        let other = format!("{OWNER_TAG_PREFIX}{OTHER}");
        let mut taken = seen(Some(&[other.as_str()]), None);
        taken.owner.as_mut().unwrap().checked = false;
        assert!(matches!(plan_ownership(&status(Some(ME)), &taken, now()), Some(Plan::Blocked { .. })));
        // Without an identity (planner tests of other rules) nothing is enforced.
        assert_eq!(plan_ownership(&status(None), &Observed::default(), now()), None);
        assert_eq!(plan_ownership(&CloudSyncProfileStatus::default(), &seen(None, None), now()), None);
    }

    #[test]
    fn an_unrecorded_owner_is_read_first() {
        assert_eq!(
            plan_ownership(&status(None), &seen(None, None), now()),
            Some(Plan::Read(Read::ServicePrincipal { id: "sp".into(), eventual: false }))
        );
        // A recorded owner that is not this identity (the cluster id changed) is read again too.
        assert!(matches!(
            plan_ownership(&status(Some(OTHER)), &seen(None, None), now()),
            Some(Plan::Read(Read::ServicePrincipal { .. }))
        ));
    }

    #[test]
    fn no_owner_tag_is_claimed_keeping_the_other_tags() {
        let plan =
            plan_ownership(&status(None), &seen(Some(&["WindowsAzureActiveDirectoryIntegratedApp"]), None), now());
        assert_eq!(
            plan,
            Some(Plan::Wave(vec![Step::ClaimOwnership {
                service_principal: "sp".into(),
                tags: vec!["WindowsAzureActiveDirectoryIntegratedApp".into(), format!("{OWNER_TAG_PREFIX}{ME}")],
                owner: ME.into(),
                previous: None,
            }]))
        );
    }

    #[test]
    fn our_own_tag_is_only_recorded() {
        let tag = format!("{OWNER_TAG_PREFIX}{ME}");
        assert_eq!(
            plan_ownership(&status(None), &seen(Some(&[tag.as_str()]), None), now()),
            Some(Plan::Wave(vec![Step::RecordOwner { owner: ME.into() }]))
        );
    }

    #[test]
    fn another_owner_blocks_and_says_how_to_hand_over() {
        let tag = format!("{OWNER_TAG_PREFIX}{OTHER}");
        let Some(Plan::Blocked { slot, problem }) =
            plan_ownership(&status(None), &seen(Some(&[tag.as_str()]), None), now())
        else {
            panic!("not blocked")
        };
        assert_eq!((slot, problem.reason), (Slot::ServicePrincipal, Reason::OwnedElsewhere));
        for part in [OTHER, "deletionPolicy: Orphan", TAKE_OWNERSHIP_ANNOTATION, "service principal sp"] {
            assert!(problem.message.contains(part), "{part}: {}", problem.message);
        }
        // Also when status remembers an owner this identity is not (the tag is what counts).
        assert!(matches!(
            plan_ownership(&status(Some(OTHER)), &seen(Some(&[tag.as_str()]), None), now()),
            Some(Plan::Blocked { .. })
        ));
    }

    #[test]
    fn the_annotation_takes_over_only_from_the_owner_it_names() {
        let tag = format!("{OWNER_TAG_PREFIX}{OTHER}");
        let plan = plan_ownership(&status(None), &seen(Some(&["x", tag.as_str()]), Some(OTHER)), now());
        assert_eq!(
            plan,
            Some(Plan::Wave(vec![Step::ClaimOwnership {
                service_principal: "sp".into(),
                tags: vec!["x".into(), format!("{OWNER_TAG_PREFIX}{ME}")],
                owner: ME.into(),
                previous: Some(OTHER.into()),
            }]))
        );
        let named_someone_else = seen(Some(&[tag.as_str()]), Some("cloudsync-operator:c3/x/y"));
        assert!(matches!(plan_ownership(&status(None), &named_someone_else, now()), Some(Plan::Blocked { .. })));
    }
}
