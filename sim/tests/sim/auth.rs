//! Token endpoint and bearer-check behaviour of the Graph simulator, over real HTTP.

use std::time::Duration;

use crate::support::*;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use cloudsync_sim::Registration;
use reqwest::Method;
use serde_json::{Value, json};

fn assert_aad_error(r: &Resp, status: u16, error: &str, code: u64) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.body["error"], error, "{}", r.text);
    assert_eq!(r.body["error_codes"], json!([code]), "{}", r.text);
    let desc = r.body["error_description"].as_str().unwrap_or("");
    assert!(desc.starts_with(&format!("AADSTS{code}: ")), "{desc}");
    for field in ["timestamp", "trace_id", "correlation_id"] {
        assert!(r.body[field].is_string(), "{field} missing: {}", r.text);
    }
}

#[tokio::test]
async fn token_success_shape_and_clouds() {
    let env = start().await;
    for scope in [
        "https://graph.microsoft.com/.default",
        "https://graph.microsoft.us/.default",
        "https://dod-graph.microsoft.us/.default",
        "https://microsoftgraph.chinacloudapi.cn/.default",
    ] {
        let r = env
            .token_response(
                TENANT,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", CLIENT),
                    ("client_secret", SECRET),
                    ("scope", scope),
                ],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let keys: Vec<&String> = r.body.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["access_token", "expires_in", "ext_expires_in", "token_type"]);
        assert_eq!(r.body["token_type"], "Bearer");
        assert_eq!(r.body["expires_in"], 3599);
        assert_eq!(r.body["ext_expires_in"], 3599);
        let token = r.body["access_token"].as_str().unwrap();
        assert!(token.starts_with("eyJ") && token.split('.').count() == 3);
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
        assert_eq!(claims["tid"], TENANT);
        assert_eq!(claims["appid"], CLIENT);
    }
}

#[tokio::test]
async fn token_basic_auth() {
    let env = start().await;
    let r = env
        .http
        .post(env.sim.token_url(TENANT))
        .header(
            "authorization",
            format!("Basic {}", STANDARD.encode(format!("{CLIENT}:{}", SECRET.replace(':', "%3A")))),
        )
        .form(&[("grant_type", "client_credentials"), ("scope", SCOPE)])
        .send()
        .await
        .unwrap();
    let r = into_resp(r).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn token_errors() {
    let env = start().await;
    let form = |client: &'static str, secret: &'static str, scope: &'static str| {
        vec![("grant_type", "client_credentials"), ("client_id", client), ("client_secret", secret), ("scope", scope)]
    };
    let r = env.token_response("99999999-0000-0000-0000-000000000000", &form(CLIENT, SECRET, SCOPE)).await;
    assert_aad_error(&r, 400, "invalid_request", 90002);
    let r = env.token_response(TENANT, &form("bbbbbbbb-0000-0000-0000-000000000000", SECRET, SCOPE)).await;
    assert_aad_error(&r, 400, "unauthorized_client", 700016);
    let r = env.token_response(TENANT, &form(CLIENT, "wrong", SCOPE)).await;
    assert_aad_error(&r, 401, "invalid_client", 7000215);
    let r = env.token_response(TENANT, &form(CLIENT, SECRET, "https://graph.microsoft.com/User.Read")).await;
    assert_aad_error(&r, 400, "invalid_scope", 70011);
    let r = env.token_response(TENANT, &form(CLIENT, SECRET, "https://management.azure.com/.default")).await;
    assert_aad_error(&r, 400, "invalid_scope", 70011);
    let r = env
        .token_response(
            TENANT,
            &[("grant_type", "client_credentials"), ("client_id", CLIENT), ("client_secret", SECRET)],
        )
        .await;
    assert_aad_error(&r, 400, "invalid_request", 900144);
    let r = env
        .token_response(TENANT, &[("grant_type", "client_credentials"), ("client_id", CLIENT), ("scope", SCOPE)])
        .await;
    assert_aad_error(&r, 401, "invalid_client", 7000218);
    // Neither the secret nor the token leaks into the call log.
    let calls = env.control(Method::GET, "/calls", None).await.text;
    assert!(!calls.contains(SECRET) && !calls.contains("wrong"), "{calls}");
    assert!(calls.contains("\"api\":\"token\""));
}

fn assertion(iss: &str, sub: &str, aud: &str) -> String {
    let now = jiff::Timestamp::now().as_second();
    let claims = json!({"iss": iss, "sub": sub, "aud": aud, "exp": now + 600, "nbf": now, "iat": now});
    format!("eyJhbGciOiJSUzI1NiJ9.{}.c2ln", URL_SAFE_NO_PAD.encode(claims.to_string()))
}

#[tokio::test]
async fn federated_credentials() {
    let issuer = "https://oidc.prod-aks.azure.com/abc/";
    let subject = "system:serviceaccount:cloudsync:operator";
    let env = start_with(
        builder().register(
            Registration { tenant_id: Some(TENANT.into()), client_id: Some("fed-client".into()), ..Default::default() }
                .with_federated(issuer, subject),
        ),
    )
    .await;
    let form = |a: &str| {
        vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", "fed-client".to_owned()),
            ("scope", SCOPE.to_owned()),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned()),
            ("client_assertion", a.to_owned()),
        ]
    };
    let send = |f: Vec<(&'static str, String)>| {
        let http = env.http.clone();
        let url = env.sim.token_url(TENANT);
        async move { into_resp(http.post(url).form(&f).send().await.unwrap()).await }
    };
    let r = send(form(&assertion(issuer, subject, "api://AzureADTokenExchange"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(env.get(&token, "/beta/organization").await.status, 200);

    let r = send(form(&assertion(issuer, "system:serviceaccount:other:sa", "api://AzureADTokenExchange"))).await;
    assert_aad_error(&r, 400, "invalid_request", 70021);
    let d = r.body["error_description"].as_str().unwrap();
    assert!(d.contains("No matching federated identity record found for presented assertion"), "{d}");
    assert!(
        d.contains(issuer) && d.contains("system:serviceaccount:other:sa") && d.contains("api://AzureADTokenExchange")
    );
    let r = send(form(&assertion(issuer, subject, "api://other"))).await;
    assert_aad_error(&r, 400, "invalid_request", 70021);
    let r = send(form("not-a-jwt")).await;
    assert_aad_error(&r, 400, "invalid_client", 50027);
    // A secret for an app that only has a federated credential is a wrong secret.
    let r = env
        .token_response(
            TENANT,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "fed-client"),
                ("client_secret", "x"),
                ("scope", SCOPE),
            ],
        )
        .await;
    assert_aad_error(&r, 401, "invalid_client", 7000215);
}

#[tokio::test]
async fn bearer_failures_are_401_with_www_authenticate() {
    let env = start().await;
    let cases: [(Option<&str>, &str); 3] = [
        (None, "Access token is empty."),
        (Some("garbage"), "CompactToken parsing failed with error code: 80049217"),
        (Some("eyJ0.eyJ0.c2ln"), "Access token validation failure. Invalid audience."),
    ];
    for (token, message) in cases {
        let r = env.call(Method::GET, token, "/beta/organization", None).await;
        assert_envelope(&r, 401, "InvalidAuthenticationToken");
        assert_eq!(r.body["error"]["message"], message);
        let www = r.header("www-authenticate").unwrap();
        assert!(
            www.starts_with("Bearer realm=\"\"") && www.contains("client_id=\"00000003-0000-0000-c000-000000000000\""),
            "{www}"
        );
    }
}

#[tokio::test]
async fn expired_token() {
    let env = start_with(builder().token_lifetime(Duration::ZERO)).await;
    let r = env
        .token_response(
            TENANT,
            &[("grant_type", "client_credentials"), ("client_id", CLIENT), ("client_secret", SECRET), ("scope", SCOPE)],
        )
        .await;
    assert_eq!(r.body["expires_in"], 0);
    let token = r.body["access_token"].as_str().unwrap();
    let r = env.get(token, "/v1.0/organization").await;
    assert_envelope(&r, 401, "InvalidAuthenticationToken");
    assert_eq!(r.body["error"]["message"], "Access token has expired or is not yet valid.");
}

#[tokio::test]
async fn token_of_another_tenant() {
    let other = "22222222-0000-0000-0000-000000000000";
    let env = start_with(builder().tenant(other, "other-client", "other-secret")).await;
    let mine = env.token().await;
    let theirs = env.token_for(other, "other-client", "other-secret").await;
    let sp = env.sp(&mine, "contoso.com").await;
    for path in [
        format!("/beta/organization/{TENANT}"),
        format!("/beta/servicePrincipals/{sp}"),
        format!("/beta/servicePrincipals/{sp}/synchronization/jobs"),
    ] {
        let r = env.get(&theirs, &path).await;
        assert_envelope(&r, 401, "InvalidAuthenticationToken");
    }
    // Its own tenant's view has no such object at all.
    let r = env.get(&theirs, "/beta/servicePrincipals?$filter=displayName eq 'contoso.com'").await;
    assert_eq!(r.body["value"], json!([]));
}

#[tokio::test]
async fn missing_permissions() {
    let env = start_with(
        builder().register(Registration::new(TENANT, "nosync", "pw").without_sync()).register(
            Registration::new(TENANT, "readonly", "pw")
                .with_permissions(["Application.Read.All", "Synchronization.Read.All"]),
        ),
    )
    .await;
    let full = env.token().await;
    let nosync = env.token_for(TENANT, "nosync", "pw").await;
    let readonly = env.token_for(TENANT, "readonly", "pw").await;
    let sp = env.sp(&full, "contoso.com").await;
    // Sync APIs answer 401 (not 403) when the permission is missing.
    for (method, path) in [
        (Method::GET, format!("/beta/servicePrincipals/{sp}/synchronization/jobs")),
        (Method::GET, format!("/beta/servicePrincipals/{sp}/synchronization/templates")),
        (Method::PUT, format!("/beta/servicePrincipals/{sp}/synchronization/secrets")),
    ] {
        let r = env.call(method, Some(&nosync), &path, Some(json!({"value": []}))).await;
        assert_envelope(&r, 401, "UnknownError");
        assert_eq!(r.body["error"]["message"], "");
    }
    // Directory reads still work for it.
    assert_eq!(env.get(&nosync, &format!("/beta/servicePrincipals/{sp}")).await.status, 200);
    // Read-only sync permission: reads yes, writes 401.
    assert_eq!(env.get(&readonly, &format!("/beta/servicePrincipals/{sp}/synchronization/jobs")).await.status, 200);
    let r = env
        .post(
            &readonly,
            &format!("/beta/servicePrincipals/{sp}/synchronization/jobs"),
            Some(json!({"templateId": "AD2AADProvisioning"})),
        )
        .await;
    assert_envelope(&r, 401, "UnknownError");
    // Other permissions are 403.
    let r = env
        .call(
            Method::PATCH,
            Some(&readonly),
            &format!("/beta/organization/{TENANT}"),
            Some(json!({"onPremisesSyncEnabled": true})),
        )
        .await;
    assert_envelope(&r, 403, "Authorization_RequestDenied");
    assert_eq!(r.body["error"]["message"], "Insufficient privileges to complete the operation.");
    let r = env
        .post(
            &readonly,
            &format!("/beta/applicationTemplates/{TEMPLATE}/instantiate"),
            Some(json!({"displayName": "x"})),
        )
        .await;
    assert_envelope(&r, 403, "Authorization_RequestDenied");
}

#[tokio::test]
async fn openid_configuration() {
    let env = start().await;
    let r = env.call(Method::GET, None, &format!("/{TENANT}/v2.0/.well-known/openid-configuration"), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["token_endpoint"], env.sim.token_url(TENANT));
    let r = env.call(Method::GET, None, "/nope/v2.0/.well-known/openid-configuration", None).await;
    assert_eq!(r.body["error_codes"], json!([90002]));
}

#[tokio::test]
async fn tenants_registered_through_control_api() {
    let env = start().await;
    let r = env.control(Method::POST, "/tenants", Some(json!({"sync": false}))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let (t, c, s) = (
        r.body["tenantId"].as_str().unwrap(),
        r.body["clientId"].as_str().unwrap(),
        r.body["clientSecret"].as_str().unwrap(),
    );
    let token = env.token_for(t, c, s).await;
    let r = env.get(&token, "/beta/organization").await;
    assert_eq!(r.body["value"][0]["id"], t);
    let r = env.control(Method::POST, "/tenants", Some(json!({"bogus": 1}))).await;
    assert_envelope(&r, 400, "BadRequest");
}
