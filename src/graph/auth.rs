//! OAuth2 client-credentials tokens from the Microsoft identity platform (reference §5).
//!
//! Hand-written rather than `azure_identity` (checked up to 1.1.0-beta.1): that crate refuses any
//! authority host that is not https, so it cannot talk to the plain-HTTP simulator the tests and
//! the demo use, and its workload-identity credential caches the federated token file for ten
//! minutes instead of re-reading it for each request as kubelet rotates it.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::answer::{Body, MAX_LOGIN_BODY, read_capped};
use super::cloud::Endpoints;
use super::error::{Cause, ErrorKind, GraphError, Source, classify_login, parse_retry_after};
use super::observer::Observer;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How to prove the client's identity to the identity platform.
#[derive(Clone)]
pub enum Credential {
    /// An application's client secret (from a Kubernetes Secret).
    ClientSecret { client_id: String, secret: SecretString },
    /// Workload identity federation: the pod's projected service account token is the
    /// `client_assertion`, read from this file at every token request.
    Federated { client_id: String, token_file: PathBuf },
}

impl Credential {
    pub fn client_id(&self) -> &str {
        match self {
            Self::ClientSecret { client_id, .. } | Self::Federated { client_id, .. } => client_id,
        }
    }

    /// Distinguishes a rotated secret in the cache key without keeping the secret in it.
    fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        match self {
            Self::ClientSecret { secret, .. } => h.update(secret.expose_secret().as_bytes()),
            Self::Federated { token_file, .. } => h.update(token_file.to_string_lossy().as_bytes()),
        }
        hex::encode(&h.finalize()[..8])
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientSecret { client_id, .. } => {
                f.debug_struct("ClientSecret").field("client_id", client_id).field("secret", &"[REDACTED]").finish()
            }
            Self::Federated { client_id, token_file } => {
                f.debug_struct("Federated").field("client_id", client_id).field("token_file", token_file).finish()
            }
        }
    }
}

/// A bearer token; its value is only reachable through `secret()`.
#[derive(Clone)]
pub struct AccessToken {
    value: SecretString,
    refresh_at: Instant,
}

impl AccessToken {
    pub fn secret(&self) -> &str {
        self.value.expose_secret()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken").field("value", &"[REDACTED]").finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    authority: String,
    tenant: String,
    client_id: String,
    fingerprint: String,
}

type Slot = Arc<tokio::sync::Mutex<Option<AccessToken>>>;

/// Tokens per (authority, tenant, client, credential). Concurrent callers of one key wait for a
/// single token request.
pub struct TokenCache {
    http: reqwest::Client,
    timeout: Duration,
    slots: Mutex<HashMap<Key, Slot>>,
    observer: Arc<dyn Observer>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct TokenErrorBody {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    trace_id: Option<String>,
}

impl TokenCache {
    pub fn new(http: reqwest::Client, timeout: Duration, observer: Arc<dyn Observer>) -> Self {
        Self { http, timeout, slots: Mutex::new(HashMap::new()), observer }
    }

    fn slot(&self, key: Key) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(key).or_default().clone()
    }

    fn key(endpoints: &Endpoints, tenant: &str, credential: &Credential) -> Key {
        Key {
            authority: endpoints.login.to_string(),
            tenant: tenant.to_string(),
            client_id: credential.client_id().to_string(),
            fingerprint: credential.fingerprint(),
        }
    }

    /// A valid token, from the cache or from one request shared by all concurrent callers.
    pub async fn token(
        &self,
        endpoints: &Endpoints,
        tenant: &str,
        credential: &Credential,
    ) -> Result<AccessToken, GraphError> {
        let slot = self.slot(Self::key(endpoints, tenant, credential));
        let mut guard = slot.lock().await;
        if let Some(t) = guard.as_ref().filter(|t| Instant::now() < t.refresh_at) {
            return Ok(t.clone());
        }
        let token = self.request(endpoints, tenant, credential).await?;
        *guard = Some(token.clone());
        Ok(token)
    }

    /// Drops a cached token that Graph rejected (expired early, revoked).
    pub async fn invalidate(&self, endpoints: &Endpoints, tenant: &str, credential: &Credential) {
        let slot = self.slot(Self::key(endpoints, tenant, credential));
        *slot.lock().await = None;
    }

    async fn request(
        &self,
        endpoints: &Endpoints,
        tenant: &str,
        credential: &Credential,
    ) -> Result<AccessToken, GraphError> {
        const OP: &str = "token";
        let mut url = endpoints.login.clone();
        url.path_segments_mut()
            .map_err(|_| GraphError::setup(OP, format!("login URL {} cannot take a path", endpoints.login)))?
            .pop_if_empty()
            .extend([tenant, "oauth2", "v2.0", "token"]);
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", credential.client_id().into()),
            ("scope", endpoints.scope.clone()),
        ];
        match credential {
            Credential::ClientSecret { secret, .. } => form.push(("client_secret", secret.expose_secret().into())),
            Credential::Federated { token_file, .. } => {
                let assertion = tokio::fs::read_to_string(token_file).await.map_err(|e| GraphError {
                    kind: ErrorKind::Unauthorized,
                    source: Source::Login,
                    cause: Cause::TokenFileUnreadable,
                    operation: OP,
                    status: None,
                    code: None,
                    message: format!("cannot read the federated token file {}: {e}", token_file.display()),
                    request_id: None,
                    retry_after: None,
                })?;
                form.push(("client_assertion_type", JWT_BEARER.into()));
                form.push(("client_assertion", assertion.trim().to_string()));
            }
        }
        let started = Instant::now();
        let mut response = self
            .http
            .post(url)
            .timeout(self.timeout)
            .header("client-request-id", uuid::Uuid::new_v4().to_string())
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                self.observer.response(OP, None, started.elapsed());
                GraphError::wire(OP, e, self.timeout)
            })?;
        let status = response.status().as_u16();
        self.observer.response(OP, Some(status), started.elapsed());
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()));
        let success = (200..300).contains(&status);
        let body = match read_capped(&mut response, MAX_LOGIN_BODY).await {
            Ok(Body::Whole(body)) => body,
            Ok(Body::TooLarge { limit }) if success => {
                let message = format!("the token response is larger than the {} KiB the client reads", limit >> 10);
                return Err(GraphError::unusable_answer(OP, Source::Login, status, None, message));
            }
            Ok(Body::TooLarge { .. }) => bytes::Bytes::new(),
            Err(e) if success => {
                return Err(GraphError { status: Some(status), ..GraphError::wire(OP, e, self.timeout) });
            }
            // A refusal is classified by its status; the body would only add the description.
            Err(_) => bytes::Bytes::new(),
        };
        if success {
            let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
                GraphError::unusable_answer(OP, Source::Login, status, None, format!("unreadable token response: {e}"))
            })?;
            let lifetime = Duration::from_secs(expires_in(parsed.expires_in.as_ref()));
            // Refresh early: by a quarter of the lifetime, at most five minutes.
            let margin = (lifetime / 4).min(Duration::from_secs(300));
            return Ok(AccessToken {
                value: SecretString::from(parsed.access_token),
                refresh_at: started + lifetime.saturating_sub(margin),
            });
        }
        let err: TokenErrorBody = serde_json::from_slice(&body).unwrap_or_default();
        // The description's first line has the AADSTS code and the reason; later lines repeat
        // trace and correlation ids.
        let description = err.error_description.as_deref().and_then(|d| d.lines().next()).unwrap_or("").trim();
        Err(GraphError {
            kind: classify_login(status),
            source: Source::Login,
            cause: Cause::ErrorStatus,
            operation: OP,
            status: Some(status),
            code: err.error,
            message: if description.is_empty() {
                "the identity platform refused the token request".into()
            } else {
                description.into()
            },
            request_id: err.trace_id,
            retry_after,
        })
    }
}

/// `expires_in` is a number from Entra ID, a string from some other issuers.
fn expires_in(v: Option<&serde_json::Value>) -> u64 {
    match v {
        Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(3599),
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(3599),
        _ => 3599,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let c = Credential::ClientSecret { client_id: "client-1".into(), secret: SecretString::from("s3cr3t-value") };
        let shown = format!("{c:?}");
        assert!(shown.contains("client-1") && !shown.contains("s3cr3t-value"), "{shown}");
        let t = AccessToken { value: SecretString::from("eyJ0eXAiOiJKV1Qi.token"), refresh_at: Instant::now() };
        let shown = format!("{t:?}");
        assert!(!shown.contains("eyJ0eXAi"), "{shown}");
    }

    #[test]
    fn rotated_secrets_get_their_own_cache_entry() {
        let a = Credential::ClientSecret { client_id: "c".into(), secret: SecretString::from("one") };
        let b = Credential::ClientSecret { client_id: "c".into(), secret: SecretString::from("two") };
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert!(!a.fingerprint().contains("one"));
    }

    #[test]
    fn expires_in_as_number_or_string() {
        assert_eq!(expires_in(Some(&serde_json::json!(3599))), 3599);
        assert_eq!(expires_in(Some(&serde_json::json!("600"))), 600);
        assert_eq!(expires_in(None), 3599);
    }
}
