//! Provisioning logs (`GET /auditLogs/provisioning`, reference part 2 §6): a service principal's
//! recent failed entries, as error codes, job ids and times only. The entries' identities (names,
//! DNs, UPNs) are never deserialized, so they cannot travel further than the HTTP body.

use jiff::Timestamp;
use reqwest::Method;
use serde::Deserialize;

use super::error::GraphError;
use super::http::{Call, Tenant};
use super::model::{Collection, odata_quote};

/// Entries per page; the community's scripts and the portal use 50.
pub const PAGE_SIZE: usize = 50;
/// Pages read at most: a run with more failures than this is reported as truncated.
pub const MAX_PAGES: usize = 2;

/// One failed entry, stripped to what the operator may keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvisioningFailure {
    pub job_id: Option<String>,
    pub error_code: Option<String>,
    pub time: Option<Timestamp>,
}

/// The failures read, newest first; `truncated` when the logs had more.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Failures {
    pub entries: Vec<ProvisioningFailure>,
    pub truncated: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    #[serde(default)]
    job_id: Option<String>,
    #[serde(default)]
    activity_date_time: Option<Timestamp>,
    #[serde(default)]
    provisioning_status_info: Option<StatusInfo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusInfo {
    #[serde(default)]
    error_information: Option<ErrorInformation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorInformation {
    #[serde(default)]
    error_code: Option<String>,
}

/// The documented filter: `ge` is not in the operator list, so `gt`; `jobId` may not be
/// filterable, so the caller checks it.
pub fn failures_filter(service_principal: &str, since: Timestamp) -> String {
    format!(
        "servicePrincipal/id eq {} and activityDateTime gt {} and provisioningStatusInfo/status eq 'failure'",
        odata_quote(service_principal),
        // Whole seconds, rounded down: nothing at or after `since` is left out.
        Timestamp::from_second(since.as_second()).unwrap_or(since)
    )
}

/// The `$skiptoken` of a nextLink, which the next request repeats with the same options.
pub fn skiptoken(next_link: &str) -> Option<String> {
    let url = url::Url::parse(next_link).ok()?;
    url.query_pairs().find(|(k, _)| k == "$skiptoken").map(|(_, v)| v.into_owned())
}

impl Tenant {
    /// Failed provisioning log entries of `service_principal` after `since`, newest first, at
    /// most [`MAX_PAGES`] pages of [`PAGE_SIZE`].
    pub async fn provisioning_failures(
        &self,
        service_principal: &str,
        since: Timestamp,
    ) -> Result<Failures, GraphError> {
        let filter = failures_filter(service_principal, since);
        let mut out = Failures::default();
        let mut token: Option<String> = None;
        for page_no in 0..MAX_PAGES {
            let mut call = Call::new("auditLogs.provisioning", Method::GET, &["auditLogs", "provisioning"])
                .query("$filter", filter.clone())
                .query("$orderby", "activityDateTime desc")
                .query("$top", PAGE_SIZE.to_string());
            if let Some(t) = &token {
                call = call.query("$skiptoken", t.clone());
            }
            let page: Collection<Entry> = self.json(call).await?;
            out.entries.extend(page.value.into_iter().map(|e| ProvisioningFailure {
                job_id: e.job_id,
                error_code: e.provisioning_status_info.and_then(|s| s.error_information).and_then(|i| i.error_code),
                time: e.activity_date_time,
            }));
            token = page.next_link.as_deref().and_then(skiptoken);
            if token.is_none() {
                return Ok(out);
            }
            if page_no + 1 == MAX_PAGES {
                out.truncated = true;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_is_the_documented_one() {
        let since: Timestamp = "2026-11-26T12:00:00.9Z".parse().unwrap();
        assert_eq!(
            failures_filter("sp-1", since),
            "servicePrincipal/id eq 'sp-1' and activityDateTime gt 2026-11-26T12:00:00Z and provisioningStatusInfo/status eq 'failure'"
        );
    }

    #[test]
    fn skiptoken_from_next_link() {
        let link = "https://graph.microsoft.com/v1.0/auditLogs/provisioning?$filter=x&$top=50&$skiptoken=abc%3D%3D";
        assert_eq!(skiptoken(link).as_deref(), Some("abc=="));
        assert_eq!(skiptoken("https://graph.microsoft.com/v1.0/auditLogs/provisioning?$top=50"), None);
        assert_eq!(skiptoken("not a url"), None);
    }

    #[test]
    fn identities_are_not_kept() {
        let body = r#"{"value":[{"jobId":"J","activityDateTime":"2026-11-26T12:00:01Z",
            "provisioningStatusInfo":{"status":"failure","errorInformation":{"errorCode":"X","reason":"simuser@contoso.com"}},
            "sourceIdentity":{"displayName":"Sim User"}}]}"#;
        let page: Collection<Entry> = serde_json::from_str(body).unwrap();
        let e = &page.value[0];
        assert_eq!(e.job_id.as_deref(), Some("J"));
        assert!(e.activity_date_time.is_some());
    }
}
