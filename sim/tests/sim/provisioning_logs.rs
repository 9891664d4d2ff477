//! `/auditLogs/provisioning`: entries from simulated runs (entry-level errors, staged deletes),
//! the `$filter` subset, ordering, paging, and the two roles it needs.

use std::time::Duration;

use crate::support::*;
use cloudsync_sim::Registration;
use reqwest::Method;
use serde_json::{Value, json};

fn logs(filter: &str, extra: &str) -> String {
    format!("/v1.0/auditLogs/provisioning?$filter={}{extra}", urlencode(filter))
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A started provisioning job whose runs have `count` entry-level errors of `code`.
async fn failing_job(env: &Env, t: &str, code: &str, count: u64) -> (String, String) {
    let sp = env.sp(t, "contoso.com").await;
    let id = env.create_job(t, &sp, "AD2AADProvisioning").await["id"].as_str().unwrap().to_owned();
    let r = env
        .control(
            Method::POST,
            &format!("/tenants/{TENANT}/servicePrincipals/{sp}/jobs/{id}/entryErrors"),
            Some(json!({"errorCode": code, "count": count})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let path = format!("/beta/servicePrincipals/{sp}/synchronization/jobs/{id}");
    assert_eq!(env.post(t, &format!("{path}/start"), None).await.status, 204);
    (sp, id)
}

#[tokio::test]
async fn entry_level_errors_show_in_the_job_and_the_logs() {
    let env = start_with(builder().speed(600.0)).await;
    let t = env.token().await;
    let (sp, id) = failing_job(&env, &t, "AttributeValueMustBeUnique", 3).await;
    let path = format!("/beta/servicePrincipals/{sp}/synchronization/jobs/{id}");
    let job = eventually(Duration::from_secs(5), || async {
        let b = env.get(&t, &path).await.body;
        (b["status"]["lastExecution"]["state"] == "EntryLevelErrors").then_some(b)
    })
    .await;
    let e = &job["status"]["lastExecution"];
    assert_eq!(e["countEscrowed"], 3);
    assert!(e["error"].is_null(), "entry-level errors are no job error: {e}");
    assert!(job["status"]["lastSuccessfulExecution"].is_null(), "no clean run yet: {job}");
    let began = e["timeBegan"].as_str().unwrap().to_owned();

    let filter = format!(
        "servicePrincipal/id eq '{sp}' and activityDateTime gt {} and provisioningStatusInfo/status eq 'failure'",
        "2000-01-01T00:00:00Z"
    );
    let r = env.get(&t, &logs(&filter, "&$orderby=activityDateTime desc&$top=50")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let value = r.body["value"].as_array().unwrap();
    assert!(value.len() >= 3, "{}", r.text);
    let first = &value[0];
    assert_eq!(first["jobId"], id.as_str());
    assert_eq!(first["servicePrincipal"]["id"], sp.as_str());
    assert_eq!(first["provisioningStatusInfo"]["status"], "failure");
    assert_eq!(first["provisioningStatusInfo"]["errorInformation"]["errorCode"], "AttributeValueMustBeUnique");
    for field in ["id", "activityDateTime", "cycleId", "changeId", "provisioningAction", "provisioningSteps"] {
        assert!(!first[field].is_null(), "{field}: {first}");
    }
    assert!(first["sourceIdentity"]["displayName"].as_str().unwrap().starts_with("Sim User"));
    let times: Vec<&str> = value.iter().map(|v| v["activityDateTime"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
    assert!(value.iter().all(|v| v["provisioningStatusInfo"]["status"] == "failure"));

    // Only entries after the given time: the last run's 3 (and maybe a later run's).
    let since = format!(
        "servicePrincipal/id eq '{sp}' and activityDateTime gt {began} and provisioningStatusInfo/status eq 'failure'"
    );
    let r = env.get(&t, &logs(&since, "")).await;
    let n = r.body["value"].as_array().unwrap().len();
    assert!(n >= 3 && n % 3 == 0, "{}", r.text);
    // Another service principal's filter finds nothing of this one.
    let other = env.sp(&t, "fabrikam.com").await;
    let r = env.get(&t, &logs(&format!("servicePrincipal/id eq '{other}'"), "")).await;
    assert_eq!(r.body["value"], json!([]));
    // The initial cycle also logged successes, which the failure filter leaves out.
    let r = env
        .get(&t, &logs(&format!("provisioningStatusInfo/status eq 'success' and servicePrincipal/id eq '{sp}'"), ""))
        .await;
    assert!(!r.body["value"].as_array().unwrap().is_empty(), "{}", r.text);

    // Clearing the errors makes the next run succeed.
    let r = env
        .control(Method::DELETE, &format!("/tenants/{TENANT}/servicePrincipals/{sp}/jobs/{id}/entryErrors"), None)
        .await;
    assert_eq!(r.status, 200);
    eventually(Duration::from_secs(5), || async {
        let b = env.get(&t, &path).await.body;
        (b["status"]["lastExecution"]["state"] == "Succeeded" && b["status"]["lastExecution"]["countEscrowed"] == 0)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn paging_with_skiptoken() {
    let env = start_with(builder().speed(600.0)).await;
    let t = env.token().await;
    let (sp, _) = failing_job(&env, &t, "DuplicateSourceAnchor", 7).await;
    let filter = format!("servicePrincipal/id eq '{sp}' and provisioningStatusInfo/status eq 'failure'");
    eventually(Duration::from_secs(5), || async {
        let n = env.get(&t, &logs(&filter, "")).await.body["value"].as_array().map_or(0, Vec::len);
        (n >= 7).then_some(())
    })
    .await;
    // Stop the runs so that the pages are of one snapshot.
    let jobs = env.get(&t, &format!("/beta/servicePrincipals/{sp}/synchronization/jobs")).await.body;
    let id = jobs["value"][0]["id"].as_str().unwrap().to_owned();
    env.post(&t, &format!("/beta/servicePrincipals/{sp}/synchronization/jobs/{id}/pause"), None).await;
    let total = env.get(&t, &logs(&filter, "&$top=1000")).await.body["value"].as_array().unwrap().len();
    let mut seen: Vec<String> = Vec::new();
    let mut next = Some(format!("{}{}", env.sim.url(), logs(&filter, "&$top=4")));
    while let Some(url) = next {
        let r = into_resp(env.http.get(&url).bearer_auth(&t).send().await.unwrap()).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let page = r.body["value"].as_array().unwrap();
        assert!(page.len() <= 4);
        seen.extend(page.iter().map(|v| v["id"].as_str().unwrap().to_owned()));
        next = r.body["@odata.nextLink"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len(), total);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), total, "no entry on two pages");
}

#[tokio::test]
async fn unsupported_queries_are_refused() {
    let env = start().await;
    let t = env.token().await;
    for bad in
        ["jobId eq 'x'", "activityDateTime ge 2026-01-01T00:00:00Z", "provisioningStatusInfo/status eq 'Failure'"]
    {
        let r = env.get(&t, &logs(bad, "")).await;
        assert_envelope(&r, 400, "Request_BadRequest");
    }
    assert_envelope(&env.get(&t, &logs("servicePrincipal/id eq 'a'", "&$top=0")).await, 400, "Request_BadRequest");
    assert_envelope(
        &env.get(&t, &logs("servicePrincipal/id eq 'a'", "&$orderby=jobId")).await,
        400,
        "Request_BadRequest",
    );
    let r = env.get(&t, "/beta/auditLogs/provisioning").await;
    assert_eq!(r.status, 200, "beta has the same path: {}", r.text);
    assert_eq!(r.body["value"], json!([]));
}

#[tokio::test]
async fn both_roles_are_needed() {
    let env = start().await;
    for roles in [vec!["Synchronization.ReadWrite.All", "AuditLog.Read.All"], vec!["Directory.Read.All"]] {
        let reg = env
            .sim
            .register(Registration::new(TENANT, format!("app-{}", roles.len()), "pw").with_permissions(roles))
            .unwrap();
        let t = env.token_for(TENANT, &reg.client_id, "pw").await;
        assert_envelope(&env.get(&t, "/v1.0/auditLogs/provisioning").await, 403, "Authorization_RequestDenied");
    }
    let reg = env
        .sim
        .register(
            Registration::new(TENANT, "app-both", "pw").with_permissions(["AuditLog.Read.All", "Directory.Read.All"]),
        )
        .unwrap();
    let t = env.token_for(TENANT, &reg.client_id, "pw").await;
    assert_eq!(env.get(&t, "/v1.0/auditLogs/provisioning").await.status, 200);
    // The default registration has both.
    let t = env.token().await;
    assert_eq!(env.get(&t, "/v1.0/auditLogs/provisioning").await.status, 200);
}

#[tokio::test]
async fn held_deletes_leave_staged_delete_entries() {
    let env = start_with(builder().speed(600.0)).await;
    let t = env.token().await;
    let sp = env.sp(&t, "contoso.com").await;
    let id = env.create_job(&t, &sp, "AD2AADProvisioning").await["id"].as_str().unwrap().to_owned();
    let path = format!("/beta/servicePrincipals/{sp}/synchronization/jobs/{id}");
    env.post(&t, &format!("{path}/start"), None).await;
    let r = env
        .control(
            Method::POST,
            &format!("/tenants/{TENANT}/servicePrincipals/{sp}/jobs/{id}/deletes"),
            Some(json!({"count": 600})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    eventually(Duration::from_secs(5), || async {
        (env.get(&t, &path).await.body["status"]["quarantine"]["reason"] == "TooManyDeletes").then_some(())
    })
    .await;
    let r = env.get(&t, &logs(&format!("servicePrincipal/id eq '{sp}'"), "&$top=1000")).await;
    let staged: Vec<&Value> =
        r.body["value"].as_array().unwrap().iter().filter(|v| v["provisioningAction"] == "stagedDelete").collect();
    assert!(!staged.is_empty() && staged.len() <= 200, "{}", staged.len());
    assert!(staged.iter().all(|v| v["provisioningStatusInfo"]["status"] == "skipped"));
}
