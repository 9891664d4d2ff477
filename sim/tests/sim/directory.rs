//! Organization, instantiate, service principal and application routes of the Graph simulator.

use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn organization_get_select_and_patch() {
    let env = start().await;
    let t = env.token().await;
    let r = env.get(&t, "/beta/organization").await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("application/json"));
    let org = &r.body["value"][0];
    assert_eq!(org["id"], TENANT);
    assert!(org["displayName"].is_string());
    assert!(org["onPremisesSyncEnabled"].is_null());
    assert!(org["onPremisesLastSyncDateTime"].is_null());
    assert!(r.body["@odata.context"].as_str().unwrap().ends_with("/beta/$metadata#organization"));

    let r = env
        .call(
            Method::PATCH,
            Some(&t),
            &format!("/beta/organization/{TENANT}"),
            Some(json!({"onPremisesSyncEnabled": true})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());

    let r = env.get(&t, "/v1.0/organization?$select=onPremisesSyncEnabled,onPremisesLastSyncDateTime").await;
    assert_eq!(r.body["value"][0], json!({"onPremisesSyncEnabled": true, "onPremisesLastSyncDateTime": null}));
    let r = env.get(&t, &format!("/beta/organization/{TENANT}?$select=id,onPremisesSyncEnabled")).await;
    assert_eq!(r.body["id"], TENANT);
    assert_eq!(r.body["onPremisesSyncEnabled"], true);
    assert!(r.body.get("displayName").is_none());

    let r = env
        .call(
            Method::PATCH,
            Some(&t),
            &format!("/beta/organization/{TENANT}"),
            Some(json!({"onPremisesSyncEnabled": "yes"})),
        )
        .await;
    assert_envelope(&r, 400, "Request_BadRequest");
    let r = env
        .call(Method::PATCH, Some(&t), &format!("/beta/organization/{TENANT}"), Some(json!({"displayName": "x"})))
        .await;
    assert_envelope(&r, 400, "Request_BadRequest");
    let r = env
        .call(Method::PATCH, Some(&t), "/beta/organization/99999999-0000-0000-0000-000000000000", Some(json!({})))
        .await;
    assert_envelope(&r, 404, "Request_ResourceNotFound");
    let r = env.call(Method::DELETE, Some(&t), &format!("/beta/organization/{TENANT}"), None).await;
    assert_envelope(&r, 405, "Request_BadRequest");
    assert_eq!(r.header("allow"), Some("GET, PATCH"));
}

#[tokio::test]
async fn instantiate_shape_and_duplicates() {
    let env = start().await;
    let t = env.token().await;
    let r = env
        .post(
            &t,
            &format!("/beta/applicationTemplates/{TEMPLATE}/instantiate"),
            Some(json!({"displayName": "contoso.com"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(
        r.body["@odata.context"].as_str().unwrap().ends_with("$metadata#microsoft.graph.applicationServicePrincipal")
    );
    let app = &r.body["application"];
    let sp = &r.body["servicePrincipal"];
    for field in ["id", "appId"] {
        assert!(app[field].as_str().is_some_and(|s| s.len() == 36), "application.{field}");
        assert!(sp[field].as_str().is_some_and(|s| s.len() == 36), "servicePrincipal.{field}");
    }
    assert_eq!(app["appId"], sp["appId"]);
    assert_ne!(app["appId"], TEMPLATE, "each instantiation gets a new appId");
    assert_eq!(app["applicationTemplateId"], TEMPLATE);
    assert_eq!(app["displayName"], "contoso.com");
    assert_eq!(app["signInAudience"], "AzureADMyOrg");
    assert!(app["tags"].is_array());
    assert_eq!(sp["applicationTemplateId"], TEMPLATE);
    assert_eq!(sp["displayName"], "contoso.com");
    assert_eq!(sp["appDisplayName"], "contoso.com");
    assert_eq!(sp["accountEnabled"], true);
    assert_eq!(sp["appRoleAssignmentRequired"], true);
    assert_eq!(sp["servicePrincipalNames"], json!([sp["appId"]]));
    assert_eq!(sp["tags"][0], "WindowsAzureActiveDirectoryIntegratedApp");
    assert_eq!(sp["servicePrincipalType"], "Application");

    let counters = env.control(Method::GET, "/counters", None).await.body;
    assert_eq!(counters["duplicateServicePrincipals"], 0);
    let second = env.instantiate(&t, "contoso.com").await;
    assert_ne!(second["servicePrincipal"]["appId"], sp["appId"], "not idempotent");
    let counters = env.sim.counters();
    assert_eq!(counters.instantiates, 2);
    assert_eq!(counters.duplicate_service_principals, 1);
    assert_eq!(counters.duplicate_applications, 1);
    assert_eq!(counters.peak_duplicate_service_principals, 1);
    // v1.0 works the same.
    let r = env
        .post(
            &t,
            &format!("/v1.0/applicationTemplates/{TEMPLATE}/instantiate"),
            Some(json!({"displayName": "fabrikam.com"})),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(env.sim.counters().duplicate_service_principals, 1);
}

#[tokio::test]
async fn instantiate_errors() {
    let env = start().await;
    let t = env.token().await;
    let r = env
        .post(
            &t,
            "/beta/applicationTemplates/00000000-0000-0000-0000-00000000abcd/instantiate",
            Some(json!({"displayName": "x"})),
        )
        .await;
    assert_envelope(&r, 404, "Request_ResourceNotFound");
    for body in [json!({}), json!({"displayName": ""}), json!({"displayName": 5})] {
        let r = env.post(&t, &format!("/beta/applicationTemplates/{TEMPLATE}/instantiate"), Some(body)).await;
        assert_envelope(&r, 400, "Request_BadRequest");
    }
    let r = env.call(Method::POST, Some(&t), &format!("/beta/applicationTemplates/{TEMPLATE}/instantiate"), None).await;
    assert_envelope(&r, 400, "Request_BadRequest");
    let r = env
        .http
        .post(format!("{}/beta/applicationTemplates/{TEMPLATE}/instantiate", env.sim.url()))
        .bearer_auth(&t)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_envelope(&into_resp(r).await, 400, "Request_BadRequest");
    assert_eq!(env.sim.counters().instantiates, 0);
}

fn names(r: &Resp) -> Vec<String> {
    r.body["value"].as_array().unwrap().iter().map(|v| v["displayName"].as_str().unwrap_or("").to_owned()).collect()
}

#[tokio::test]
async fn filters() {
    let env = start().await;
    let t = env.token().await;
    for name in ["contoso.com", "O'Brien.com", "corp.contoso.com"] {
        env.instantiate(&t, name).await;
    }
    let q = |f: &str| format!("/beta/servicePrincipals?$filter={f}");
    let r = env.get(&t, &q(&format!("applicationTemplateId eq '{TEMPLATE}' and displayName eq 'contoso.com'"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(names(&r), ["contoso.com"]);
    assert!(r.body["@odata.context"].as_str().unwrap().ends_with("$metadata#servicePrincipals"));
    // Case-insensitive, parentheses optional.
    let r =
        env.get(&t, &q(&format!("(applicationTemplateId eq '{TEMPLATE}') and (displayName eq 'CONTOSO.COM')"))).await;
    assert_eq!(names(&r), ["contoso.com"]);
    let r = env.get(&t, &q("displayName eq 'O''Brien.com'")).await;
    assert_eq!(names(&r), ["O'Brien.com"]);
    let r = env.get(&t, &q("startsWith(displayName,'corp.')")).await;
    assert_eq!(names(&r), ["corp.contoso.com"]);
    // The first-party SP is what keying on appId finds.
    let r = env.get(&t, &q(&format!("appId eq '{TEMPLATE}'"))).await;
    assert_eq!(names(&r), ["Active Directory to Azure Active Directory Provisioning"]);
    assert!(r.body["value"][0]["applicationTemplateId"].is_null());
    let r = env.get(&t, &q("applicationTemplateId eq null")).await;
    assert_eq!(r.body["value"].as_array().unwrap().len(), 1);
    // Applications too (no first-party app object in the tenant).
    let r = env
        .get(
            &t,
            &format!(
                "/beta/applications?$filter=applicationTemplateId eq '{TEMPLATE}' and displayName eq 'contoso.com'"
            ),
        )
        .await;
    assert_eq!(names(&r), ["contoso.com"]);
    let app_id = r.body["value"][0]["appId"].as_str().unwrap().to_owned();
    let r = env.get(&t, &q(&format!("appId eq '{app_id}'"))).await;
    assert_eq!(names(&r), ["contoso.com"]);
    // Unsupported.
    for bad in [
        "displayName ne 'x'",
        "displayName eq 'a' or displayName eq 'b'",
        "tags/any(t:t eq 'x')",
        "endsWith(displayName,'com')",
        "accountEnabled eq true",
        "displayName eq 'unterminated",
    ] {
        let r = env.get(&t, &q(bad)).await;
        assert_envelope(&r, 400, "Request_UnsupportedQuery");
    }
    let r = env.get(&t, "/beta/servicePrincipals?$orderby=displayName").await;
    assert_envelope(&r, 400, "Request_UnsupportedQuery");
}

#[tokio::test]
async fn select_top_and_paging() {
    let env = start().await;
    let t = env.token().await;
    for i in 0..3 {
        env.instantiate(&t, &format!("d{i}.example")).await;
    }
    let r = env.get(&t, "/beta/servicePrincipals?$select=id,displayName&$top=2").await;
    assert_eq!(r.status, 200);
    let page = r.body["value"].as_array().unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0].as_object().unwrap().len(), 2);
    assert!(r.body["@odata.context"].as_str().unwrap().ends_with("servicePrincipals(id,displayName)"));
    let next = r.body["@odata.nextLink"].as_str().unwrap().to_owned();
    assert!(next.starts_with(&env.sim.url()));
    let r2 = into_resp(env.http.get(&next).bearer_auth(&t).send().await.unwrap()).await;
    assert_eq!(r2.body["value"].as_array().unwrap().len(), 2, "4 SPs: the seeded one + 3");
    assert!(r2.body.get("@odata.nextLink").is_none());
    let r = env.get(&t, "/beta/servicePrincipals?$top=0").await;
    assert_envelope(&r, 400, "Request_BadRequest");
}

#[tokio::test]
async fn get_and_delete_objects() {
    let env = start().await;
    let t = env.token().await;
    let created = env.instantiate(&t, "contoso.com").await;
    let sp = created["servicePrincipal"]["id"].as_str().unwrap().to_owned();
    let app = created["application"]["id"].as_str().unwrap().to_owned();
    let app_id = created["application"]["appId"].as_str().unwrap().to_owned();

    let r = env.get(&t, &format!("/beta/servicePrincipals/{sp}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["id"], sp.as_str());
    assert!(r.body["@odata.context"].as_str().unwrap().ends_with("servicePrincipals/$entity"));
    let r = env.get(&t, &format!("/beta/servicePrincipals/{sp}?$select=appId")).await;
    assert_eq!(r.body["appId"], app_id.as_str());
    assert!(r.body.get("id").is_none());
    // Alternate key.
    let r = env.get(&t, &format!("/beta/servicePrincipals(appId='{app_id}')")).await;
    assert_eq!(r.body["id"], sp.as_str());
    let r = env.get(&t, &format!("/beta/applications/{app}")).await;
    assert_eq!(r.body["appId"], app_id.as_str());

    // Deleting the SP removes its jobs; the application stays.
    env.create_job(&t, &sp, "AD2AADProvisioning").await;
    let r = env.call(Method::DELETE, Some(&t), &format!("/beta/servicePrincipals/{sp}"), None).await;
    assert_eq!(r.status, 204);
    let r = env.get(&t, &format!("/beta/servicePrincipals/{sp}")).await;
    assert_envelope(&r, 404, "Request_ResourceNotFound");
    assert_eq!(
        r.body["error"]["message"],
        format!("Resource '{sp}' does not exist or one of its queried reference-property objects are not present.")
    );
    let r = env.get(&t, &format!("/beta/servicePrincipals/{sp}/synchronization/jobs")).await;
    assert_envelope(&r, 404, "Request_ResourceNotFound");
    assert_eq!(env.get(&t, &format!("/beta/applications/{app}")).await.status, 200);

    // Deleting an application deletes its service principal.
    let other = env.instantiate(&t, "fabrikam.com").await;
    let (app2, sp2) = (other["application"]["id"].as_str().unwrap(), other["servicePrincipal"]["id"].as_str().unwrap());
    assert_eq!(env.call(Method::DELETE, Some(&t), &format!("/v1.0/applications/{app2}"), None).await.status, 204);
    assert_envelope(&env.get(&t, &format!("/beta/servicePrincipals/{sp2}")).await, 404, "Request_ResourceNotFound");
    assert_envelope(
        &env.call(Method::DELETE, Some(&t), &format!("/beta/applications/{app2}"), None).await,
        404,
        "Request_ResourceNotFound",
    );
    assert_eq!(env.sim.counters().deletes, 2);
}

#[tokio::test]
async fn headers_and_unknown_routes() {
    let env = start().await;
    let t = env.token().await;
    let r = into_resp(
        env.http
            .get(format!("{}/beta/organization", env.sim.url()))
            .bearer_auth(&t)
            .header("client-request-id", "my-id-1")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.header("client-request-id"), Some("my-id-1"));
    let rid = r.header("request-id").unwrap();
    assert_eq!(rid.len(), 36);
    assert!(r.header("date").unwrap().ends_with(" GMT"));
    let diag: Value = serde_json::from_str(r.header("x-ms-ags-diagnostic").unwrap()).unwrap();
    assert!(diag["ServerInfo"]["DataCenter"].is_string());
    let r = env.get(&t, "/beta/organization").await;
    assert_eq!(r.header("request-id"), r.header("client-request-id"), "generated when not sent");

    let r = env.get(&t, "/beta/users").await;
    assert_envelope(&r, 404, "NotFound");
    let r = env.get(&t, "/beta/servicePrincipals/x/nothing").await;
    assert_envelope(&r, 404, "NotFound");
    let r = env.call(Method::GET, None, "/v2.0/organization", None).await;
    assert_envelope(&r, 404, "NotFound");
    let r = env.call(Method::GET, None, "/", None).await;
    assert_envelope(&r, 404, "NotFound");
    let r = env.call(Method::PUT, Some(&t), "/beta/servicePrincipals", Some(json!({}))).await;
    assert_envelope(&r, 405, "Request_BadRequest");
    let r = env.control(Method::PUT, "/counters", None).await;
    assert_envelope(&r, 405, "Request_BadRequest");
    // Trailing slash, as in the seed's GET .../jobs/.
    assert_eq!(env.get(&t, "/beta/organization/").await.status, 200);
    let calls = env.sim.calls();
    assert!(
        calls.iter().any(|c| c.client_request_id == "my-id-1" && c.path == "/beta/organization" && c.status == 200)
    );
    assert!(!serde_json::to_string(&calls).unwrap().contains(&t), "tokens never logged");
}

#[tokio::test]
async fn service_principal_tags_are_read_and_replaced_by_patch() {
    let env = start().await;
    let t = env.token().await;
    let created = env.instantiate(&t, "contoso.com").await;
    let id = created["servicePrincipal"]["id"].as_str().unwrap().to_owned();
    let path = format!("/beta/servicePrincipals/{id}");
    let r = env.get(&t, &format!("{path}?$select=id,tags")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let original = r.body["tags"].as_array().unwrap().clone();
    assert!(original.contains(&json!("WindowsAzureActiveDirectoryIntegratedApp")), "{original:?}");

    let mut tags = original.clone();
    tags.push(json!("cloudsync.io/owner=cloudsync-operator:c1/ns/p"));
    let r = env.call(Method::PATCH, Some(&t), &path, Some(json!({"tags": tags}))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    assert_eq!(env.get(&t, &format!("{path}?$select=tags")).await.body["tags"], json!(tags));
    // The find-by-name list carries them too.
    let filter = format!(
        "/beta/servicePrincipals?$filter=applicationTemplateId eq '{TEMPLATE}' and displayName eq 'contoso.com'&$select=id,tags"
    );
    assert_eq!(env.get(&t, &filter).await.body["value"][0]["tags"], json!(tags));
    // The PATCH replaces the collection whole.
    let r = env.call(Method::PATCH, Some(&t), &path, Some(json!({"tags": original}))).await;
    assert_eq!(r.status, 204);
    assert_eq!(env.get(&t, &format!("{path}?$select=tags")).await.body["tags"], json!(original));
    assert_eq!(env.sim.counters().service_principal_patches, 2);

    let bad = env.call(Method::PATCH, Some(&t), &path, Some(json!({"tags": "x"}))).await;
    assert_envelope(&bad, 400, "Request_BadRequest");
    let bad = env.call(Method::PATCH, Some(&t), &path, Some(json!({"tags": [1]}))).await;
    assert_envelope(&bad, 400, "Request_BadRequest");
    let bad = env.call(Method::PATCH, Some(&t), &path, Some(json!({"appId": "x"}))).await;
    assert_envelope(&bad, 400, "Request_BadRequest");
    let missing = env
        .call(
            Method::PATCH,
            Some(&t),
            "/beta/servicePrincipals/99999999-0000-0000-0000-000000000000",
            Some(json!({"tags": []})),
        )
        .await;
    assert_envelope(&missing, 404, "Request_ResourceNotFound");
    assert_eq!(env.sim.counters().service_principal_patches, 2, "refused PATCHes change nothing");
}
