//! The identity platform's token endpoint (client credentials) and Graph's bearer check
//! (reference §5).
//!
//! Issued tokens are JWT-shaped (so clients that peek at `exp` work) but are validated by lookup:
//! the store keeps only a SHA-256 of each token, never the token itself.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD, URL_SAFE_NO_PAD_INDIFFERENT};
use jiff::Timestamp;
use serde_json::{Value, json};

use super::clock::aad_timestamp;
use super::envelope::GraphError;
use super::ids;
use super::server::{CallMeta, Shared, base_url};
use super::state::{ClientApp, Tenant};

/// The `.default` scopes of the four clouds (reference §6).
pub const SCOPES: &[&str] = &[
    "https://graph.microsoft.com/.default",
    "https://graph.microsoft.us/.default",
    "https://dod-graph.microsoft.us/.default",
    "https://microsoftgraph.chinacloudapi.cn/.default",
];

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// What a valid bearer token stands for.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub tenant: String,
    pub client_id: String,
    pub roles: BTreeSet<String>,
    pub expires: Instant,
}

impl TokenInfo {
    pub fn has_any(&self, permissions: &[&str]) -> bool {
        permissions.iter().any(|p| self.roles.contains(*p))
    }
}

#[derive(Debug, Default)]
pub struct TokenStore {
    by_hash: HashMap<String, TokenInfo>,
}

impl TokenStore {
    fn insert(&mut self, token: &str, info: TokenInfo) {
        if self.by_hash.len() > 50_000 {
            let now = Instant::now();
            self.by_hash.retain(|_, t| t.expires > now);
        }
        self.by_hash.insert(ids::sha256_hex(token), info);
    }

    fn get(&self, token: &str) -> Option<&TokenInfo> {
        self.by_hash.get(&ids::sha256_hex(token))
    }
}

/// Validates `Authorization: Bearer ...` for a Graph call.
pub fn authenticate(store: &TokenStore, headers: &HeaderMap, now: Instant) -> Result<TokenInfo, GraphError> {
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("").trim();
    let token = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => "",
    };
    if token.is_empty() {
        return Err(GraphError::invalid_token("Access token is empty."));
    }
    if token.split('.').count() != 3 {
        return Err(GraphError::invalid_token("CompactToken parsing failed with error code: 80049217"));
    }
    let Some(info) = store.get(token) else {
        return Err(GraphError::invalid_token("Access token validation failure. Invalid audience."));
    };
    if info.expires <= now {
        return Err(GraphError::invalid_token("Access token has expired or is not yet valid."));
    }
    Ok(info.clone())
}

/// An identity-platform error (`{"error","error_description","error_codes",...}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AadError {
    pub status: StatusCode,
    pub error: &'static str,
    pub code: u32,
    pub description: String,
}

impl AadError {
    fn new(status: StatusCode, error: &'static str, code: u32, description: impl Into<String>) -> Self {
        Self { status, error, code, description: description.into() }
    }

    fn missing(param: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{param}'."),
        )
    }

    /// An injected token-endpoint failure (`api=token` rule): `temporarily_unavailable`, the
    /// OAuth error for a server that cannot answer now, with the rule's status.
    fn outage(rule: &super::faults::FaultRule) -> Self {
        let status = match rule.kind {
            super::faults::FaultKind::Status { status, .. } => {
                StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
            }
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        let description = rule.message.clone().unwrap_or_else(|| "The service is temporarily unavailable.".into());
        Self::new(status, "temporarily_unavailable", 90033, description)
    }

    pub fn unknown_tenant(tenant: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
            ),
        )
    }

    pub fn to_response(&self, now: Timestamp) -> Response {
        let trace_id = ids::guid();
        let correlation_id = ids::guid();
        let timestamp = aad_timestamp(now);
        let body = json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{}: {} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}",
                self.code, self.description
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        });
        let mut r = (self.status, body.to_string()).into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json; charset=utf-8"));
        r
    }
}

/// The claims of a client assertion that federation matching uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    pub issuer: String,
    pub subject: String,
    pub audiences: Vec<String>,
    pub expires: Option<i64>,
}

/// Reads the payload of a client assertion JWT. The signature is NOT verified: the simulator
/// has no way to fetch the issuer's keys, and what it tests is the federation record matching.
pub fn decode_assertion(jwt: &str) -> Option<Assertion> {
    let mut parts = jwt.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = URL_SAFE_NO_PAD_INDIFFERENT.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let audiences = match claims.get("aud")? {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => return None,
    };
    Some(Assertion {
        issuer: claims.get("iss")?.as_str()?.to_owned(),
        subject: claims.get("sub")?.as_str()?.to_owned(),
        audiences,
        expires: claims.get("exp").and_then(Value::as_i64),
    })
}

/// The client credentials of a token request: body parameters, or HTTP Basic for the secret.
struct Credentials {
    client_id: Option<String>,
    secret: Option<String>,
    assertion_type: Option<String>,
    assertion: Option<String>,
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
    let unescape =
        |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((unescape(id)?, unescape(secret)?))
}

/// Validates a client-credentials token request against the tenant's registered apps.
/// Returns the client that authenticated and the resource of the requested scope.
pub fn grant<'t>(
    tenant: &'t Tenant,
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
) -> Result<(&'t ClientApp, String), (AadError, Option<String>)> {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let basic = basic_credentials(headers);
    let creds = Credentials {
        client_id: form.get("client_id").cloned().or_else(|| basic.as_ref().map(|b| b.0.clone())),
        secret: form.get("client_secret").cloned().or_else(|| basic.as_ref().map(|b| b.1.clone())),
        assertion_type: form.get("client_assertion_type").cloned(),
        assertion: form.get("client_assertion").cloned(),
    };
    let client_id = creds.client_id.clone();
    let fail = |e: AadError| (e, client_id.clone());
    match form.get("grant_type").map(String::as_str) {
        None | Some("") => return Err(fail(AadError::missing("grant_type"))),
        Some("client_credentials") => {}
        Some(other) => {
            return Err(fail(AadError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                format!("The app requested an unsupported grant type '{other}'."),
            )));
        }
    }
    let Some(id) = creds.client_id.as_deref().filter(|s| !s.is_empty()) else {
        return Err(fail(AadError::missing("client_id")));
    };
    let scope = form.get("scope").map(|s| s.trim()).unwrap_or("");
    if scope.is_empty() {
        return Err(fail(AadError::missing("scope")));
    }
    if !SCOPES.contains(&scope) {
        return Err(fail(AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            format!("The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."),
        )));
    }
    let resource = scope.trim_end_matches("/.default").to_owned();
    let Some(app) = tenant.client(id) else {
        return Err(fail(AadError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
                tenant.display_name
            ),
        )));
    };
    if let Some(assertion) = creds.assertion.as_deref() {
        if creds.assertion_type.as_deref() != Some(JWT_BEARER) {
            return Err(fail(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                90014,
                "The required field 'client_assertion_type' is missing or is not 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'.",
            )));
        }
        let Some(claims) = decode_assertion(assertion) else {
            return Err(fail(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_client",
                50027,
                "JWT token is invalid or malformed.",
            )));
        };
        if let Some(exp) = claims.expires
            && exp <= now.as_second()
        {
            return Err(fail(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_client",
                700024,
                format!(
                    "Client assertion is not within its valid time range. Current time: {now}, expiry time of assertion: {exp}."
                ),
            )));
        }
        let matched = app.federated.iter().any(|f| {
            f.issuer == claims.issuer
                && f.subject == claims.subject
                && claims.audiences.iter().any(|a| f.audiences.contains(a))
        });
        if !matched {
            return Err(fail(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                70021,
                format!(
                    "No matching federated identity record found for presented assertion. Assertion Issuer: '{}'. Assertion Subject: '{}'. Assertion Audience: '{}'. https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
                    claims.issuer,
                    claims.subject,
                    claims.audiences.join(",")
                ),
            )));
        }
        return Ok((app, resource));
    }
    match creds.secret.as_deref() {
        Some(secret) if app.secret.as_deref() == Some(secret) => Ok((app, resource)),
        Some(_) => Err(fail(AadError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{id}'."
            ),
        ))),
        None => Err(fail(AadError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ))),
    }
}

fn mint(tenant: &str, app: &ClientApp, scope_resource: &str, lifetime: Duration, now: Timestamp) -> String {
    let iat = now.as_second();
    let exp = iat.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2));
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": "graph-simulator"});
    let claims = json!({
        "aud": scope_resource,
        "iss": format!("https://sts.windows.net/{tenant}/"),
        "iat": iat,
        "nbf": iat,
        "exp": exp,
        "appid": app.client_id,
        "appidacr": if app.secret.is_some() { "1" } else { "2" },
        "idp": format!("https://sts.windows.net/{tenant}/"),
        "idtyp": "app",
        "oid": app.object_id,
        "roles": app.permissions.iter().collect::<Vec<_>>(),
        "sub": app.object_id,
        "tid": tenant,
        "uti": ids::hex32(),
        "ver": "1.0",
    });
    let signature = format!("{}{}", ids::hex32(), ids::hex32());
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub async fn token(
    State(sim): State<Arc<Shared>>,
    Path(tenant_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut meta = CallMeta::token();
    let path = format!("/{tenant_id}/oauth2/v2.0/token");
    let (outage, latency_ms) = sim.lock().faults.token_endpoint(&tenant_id, &path);
    if latency_ms > 0 || outage.is_some() {
        sim.lock().log.event(Some(&tenant_id), super::calls::Event::FaultInjected);
    }
    if latency_ms > 0 {
        meta.fault = Some("latency".into());
        tokio::time::sleep(Duration::from_millis(latency_ms)).await;
    }
    let now = Timestamp::now();
    if let Some(rule) = outage {
        meta.fault = Some("status".into());
        if sim.lock().dir.tenant(&tenant_id).is_some() {
            meta.tenant = Some(tenant_id.clone());
        }
        let mut response = AadError::outage(&rule).to_response(now);
        if let super::faults::FaultKind::Status { retry_after: Some(secs), .. } = rule.kind
            && let Ok(v) = header::HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response.extensions_mut().insert(meta);
        return response;
    }
    let mut inner = sim.lock();
    let outcome = match inner.dir.tenant(&tenant_id) {
        None => Err((AadError::unknown_tenant(&tenant_id), None)),
        Some(tenant) => {
            grant(tenant, &headers, &body, now).map(|(app, resource)| (tenant.id.clone(), app.clone(), resource))
        }
    };
    let mut response = match outcome {
        Ok((tid, app, resource)) => {
            meta.tenant = Some(tid.clone());
            meta.client_id = Some(app.client_id.clone());
            let access_token = mint(&tid, &app, &resource, sim.token_lifetime, now);
            inner.tokens.insert(
                &access_token,
                TokenInfo {
                    tenant: tid.clone(),
                    client_id: app.client_id.clone(),
                    roles: app.permissions.clone(),
                    expires: Instant::now() + sim.token_lifetime,
                },
            );
            inner.log.event(Some(&tid), super::calls::Event::TokenIssued);
            let secs = sim.token_lifetime.as_secs();
            let body = json!({"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": access_token});
            let mut r = (StatusCode::OK, body.to_string()).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json; charset=utf-8"));
            r
        }
        Err((err, client)) => {
            if inner.dir.tenant(&tenant_id).is_some() {
                meta.tenant = Some(tenant_id.clone());
            }
            meta.client_id = client;
            err.to_response(now)
        }
    };
    drop(inner);
    response.extensions_mut().insert(meta);
    response
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`, which MSAL-based SDKs read first.
pub async fn openid_configuration(
    State(sim): State<Arc<Shared>>,
    Path(tenant_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let now = Timestamp::now();
    if sim.lock().dir.tenant(&tenant_id).is_none() {
        return AadError::unknown_tenant(&tenant_id).to_response(now);
    }
    let base = base_url(&sim, &headers);
    let body = json!({
        "token_endpoint": format!("{base}/{tenant_id}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{tenant_id}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base}/{tenant_id}/v2.0"),
        "authorization_endpoint": format!("{base}/{tenant_id}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/{tenant_id}/oauth2/v2.0/devicecode"),
        "end_session_endpoint": format!("{base}/{tenant_id}/oauth2/v2.0/logout"),
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com",
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// `GET /common/discovery/instance` (MSAL instance discovery).
pub async fn instance_discovery(
    State(sim): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(_q): Query<HashMap<String, String>>,
) -> Response {
    let base = base_url(&sim, &headers);
    let host = base.split("://").nth(1).unwrap_or("localhost").to_owned();
    let body = json!({
        "tenant_discovery_endpoint": format!("{base}/common/v2.0/.well-known/openid-configuration"),
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;
    use crate::state::FederatedCredential;

    fn tenant() -> Tenant {
        let now: Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
        let mut t = Tenant::new("t1", now);
        t.add_client(ClientApp {
            client_id: "c1".into(),
            secret: Some("s3cret".into()),
            federated: vec![FederatedCredential {
                issuer: "https://oidc.example".into(),
                subject: "system:serviceaccount:ns:sa".into(),
                audiences: vec![TOKEN_EXCHANGE_AUDIENCE.into()],
            }],
            permissions: BTreeSet::new(),
            object_id: "o".into(),
        });
        t
    }

    fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish().into_bytes()
    }

    fn assertion(claims: Value) -> String {
        format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(claims.to_string()))
    }

    #[test]
    fn secret_and_errors() {
        let t = tenant();
        let now = Timestamp::now();
        let h = HeaderMap::new();
        let base = [("grant_type", "client_credentials"), ("client_id", "c1"), ("scope", SCOPES[0])];
        let ok = form(&[base[0], base[1], base[2], ("client_secret", "s3cret")]);
        assert!(grant(&t, &h, &ok, now).is_ok());
        let code = |body: &[u8]| grant(&t, &h, body, now).err().map(|(e, _)| (e.status.as_u16(), e.error, e.code));
        assert_eq!(
            code(&form(&[base[0], base[1], base[2], ("client_secret", "x")])),
            Some((401, "invalid_client", 7000215))
        );
        assert_eq!(
            code(&form(&[base[0], ("client_id", "nope"), base[2], ("client_secret", "x")])),
            Some((400, "unauthorized_client", 700016))
        );
        assert_eq!(
            code(&form(&[base[0], base[1], ("scope", "User.Read"), ("client_secret", "s3cret")])),
            Some((400, "invalid_scope", 70011))
        );
        assert_eq!(code(&form(&[base[1], base[2]])), Some((400, "invalid_request", 900144)));
        assert_eq!(
            code(&form(&[("grant_type", "password"), base[1], base[2]])),
            Some((400, "unsupported_grant_type", 70003))
        );
        assert_eq!(code(&form(&[base[0], base[1], base[2]])), Some((401, "invalid_client", 7000218)));
        // China cloud scope is accepted.
        assert!(
            grant(&t, &h, &form(&[base[0], base[1], ("scope", SCOPES[3]), ("client_secret", "s3cret")]), now).is_ok()
        );
    }

    #[test]
    fn basic_auth() {
        let t = tenant();
        let mut h = HeaderMap::new();
        let v = format!("Basic {}", STANDARD.encode("c1:s3cret"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&v).unwrap());
        assert!(
            grant(&t, &h, &form(&[("grant_type", "client_credentials"), ("scope", SCOPES[0])]), Timestamp::now())
                .is_ok()
        );
    }

    #[test]
    fn federated() {
        let t = tenant();
        let now = Timestamp::now();
        let h = HeaderMap::new();
        let good = assertion(
            json!({"iss": "https://oidc.example", "sub": "system:serviceaccount:ns:sa", "aud": [TOKEN_EXCHANGE_AUDIENCE], "exp": now.as_second() + 600}),
        );
        let req = |a: &str| {
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "c1"),
                ("scope", SCOPES[0]),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", a),
            ])
        };
        assert!(grant(&t, &h, &req(&good), now).is_ok());
        let other = assertion(
            json!({"iss": "https://oidc.example", "sub": "system:serviceaccount:ns:other", "aud": TOKEN_EXCHANGE_AUDIENCE}),
        );
        let (e, _) = grant(&t, &h, &req(&other), now).err().unwrap();
        assert_eq!((e.error, e.code), ("invalid_request", 70021));
        assert!(
            e.description.contains("system:serviceaccount:ns:other") && e.description.contains(TOKEN_EXCHANGE_AUDIENCE)
        );
        let expired = assertion(
            json!({"iss": "https://oidc.example", "sub": "system:serviceaccount:ns:sa", "aud": TOKEN_EXCHANGE_AUDIENCE, "exp": 1}),
        );
        assert_eq!(grant(&t, &h, &req(&expired), now).err().unwrap().0.code, 700024);
        assert_eq!(grant(&t, &h, &req("garbage"), now).err().unwrap().0.code, 50027);
    }

    #[test]
    fn bearer_checks() {
        let mut store = TokenStore::default();
        let now = Instant::now();
        store.insert(
            "a.b.c",
            TokenInfo {
                tenant: "t".into(),
                client_id: "c".into(),
                roles: BTreeSet::new(),
                expires: now + Duration::from_secs(60),
            },
        );
        store.insert(
            "x.y.z",
            TokenInfo { tenant: "t".into(), client_id: "c".into(), roles: BTreeSet::new(), expires: now },
        );
        let check = |v: Option<&str>| {
            let mut h = HeaderMap::new();
            if let Some(v) = v {
                h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            }
            authenticate(&store, &h, now).map(|_| ()).map_err(|e| e.message)
        };
        assert_eq!(check(Some("Bearer a.b.c")), Ok(()));
        assert_eq!(check(Some("bearer a.b.c")), Ok(()));
        assert_eq!(check(None), Err("Access token is empty.".into()));
        assert_eq!(check(Some("Bearer nodots")), Err("CompactToken parsing failed with error code: 80049217".into()));
        assert_eq!(check(Some("Bearer q.r.s")), Err("Access token validation failure. Invalid audience.".into()));
        assert_eq!(check(Some("Bearer x.y.z")), Err("Access token has expired or is not yet valid.".into()));
    }
}
