//! Sending Graph requests: bearer tokens, `client-request-id`, per-call timeouts, the error
//! envelope, and retries — `Retry-After` honoured exactly, exponential backoff with jitter for
//! transient failures of idempotent calls, and the short 401/403/404 window after creation when
//! the caller asks for it (reference §1.3, §4).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use super::auth::{Credential, TokenCache};
use super::cloud::{Endpoints, Overrides};
use super::error::{ErrorKind, GraphError, Source, classify_graph, parse_retry_after};
use crate::api::Cloud;

/// The Graph version the operator calls; cloud sync's procedure is documented against beta.
pub const API_VERSION: &str = "beta";

/// Retry limits. Waits longer than `max_inline_wait` are not slept inside a call: the error goes
/// back with its `retry_after` so the controller requeues the profile at that time and the worker
/// is free meanwhile.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    pub max_inline_wait: Duration,
    /// Attempts for 401/403/404 on calls flagged as racing a fresh creation.
    pub eventual_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            max_inline_wait: Duration::from_secs(30),
            eventual_attempts: 5,
        }
    }
}

/// Receives one sample per HTTP exchange (metrics live outside this module).
pub trait Observer: Send + Sync {
    /// `status` is None when no answer came (timeout, connection error).
    fn response(&self, operation: &'static str, status: Option<u16>, elapsed: Duration);
    /// An answer that asked us to slow down (429, or 503 with Retry-After).
    fn throttled(&self, operation: &'static str);
    /// Time slept because the service sent Retry-After.
    fn retry_after_wait(&self, operation: &'static str, wait: Duration);
}

struct NoObserver;
impl Observer for NoObserver {
    fn response(&self, _: &'static str, _: Option<u16>, _: Duration) {}
    fn throttled(&self, _: &'static str) {}
    fn retry_after_wait(&self, _: &'static str, _: Duration) {}
}

/// Settings of a [`GraphClient`].
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub overrides: Overrides,
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self { overrides: Overrides::default(), timeout: Duration::from_secs(30), retry: RetryPolicy::default() }
    }
}

/// The process-wide Graph client: one connection pool and one token cache for every tenant.
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    tokens: TokenCache,
    config: ClientConfig,
    observer: Arc<dyn Observer>,
    /// Graph throttles per tenant and application: after a Retry-After, no call for that pair
    /// goes out before it elapses, whichever call was throttled.
    gates: std::sync::Mutex<HashMap<(String, String), Instant>>,
}

impl GraphClient {
    pub fn new(config: ClientConfig) -> Result<Self, GraphError> {
        Self::with_observer(config, Arc::new(NoObserver))
    }

    pub fn with_observer(config: ClientConfig, observer: Arc<dyn Observer>) -> Result<Self, GraphError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("cloudsync-operator/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| GraphError::transport("client", format!("cannot build the HTTP client: {e}")))?;
        let tokens = TokenCache::new(http.clone(), config.timeout, observer.clone());
        Ok(Self { inner: Arc::new(Inner { http, tokens, config, observer, gates: Default::default() }) })
    }

    /// A handle for one tenant with one credential.
    pub fn tenant(&self, cloud: Cloud, tenant_id: &str, credential: Credential) -> Tenant {
        Tenant {
            client: self.clone(),
            endpoints: self.inner.config.overrides.endpoints(cloud),
            tenant_id: tenant_id.to_string(),
            credential: Arc::new(credential),
        }
    }
}

/// Graph calls in one tenant. Cheap to clone.
#[derive(Clone)]
pub struct Tenant {
    client: GraphClient,
    endpoints: Endpoints,
    tenant_id: String,
    credential: Arc<Credential>,
}

/// One typed call, described as data so the retry loop can rebuild it.
pub(crate) struct Call {
    pub op: &'static str,
    pub method: Method,
    /// Path segments below the version root; each is percent-encoded (job ids are opaque).
    pub segments: Vec<String>,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<serde_json::Value>,
    /// Safe to repeat after a timeout or 5xx (GET, PUT, DELETE and the job actions).
    pub idempotent: bool,
    /// The target may have been created moments ago: 401/403/404 are replication lag, retried.
    pub eventual: bool,
}

impl Call {
    pub fn new(op: &'static str, method: Method, segments: &[&str]) -> Self {
        let idempotent = method != Method::POST && method != Method::PATCH;
        Self {
            op,
            method,
            segments: segments.iter().map(|s| s.to_string()).collect(),
            query: Vec::new(),
            body: None,
            idempotent,
            eventual: false,
        }
    }

    pub fn query(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }

    pub fn body(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }

    pub fn idempotent(mut self, yes: bool) -> Self {
        self.idempotent = yes;
        self
    }

    pub fn eventual(mut self, yes: bool) -> Self {
        self.eventual = yes;
        self
    }
}

#[derive(Deserialize, Default)]
struct Envelope {
    #[serde(default)]
    error: EnvelopeError,
}

#[derive(Deserialize, Default)]
struct EnvelopeError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "innerError")]
    inner_error: Option<InnerError>,
}

#[derive(Deserialize, Default)]
struct InnerError {
    #[serde(default, rename = "request-id")]
    request_id: Option<String>,
}

/// What to do after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Retry(Duration),
    Fail,
}

/// Pure retry decision for attempt number `attempt` (0-based) that failed with `err`. `jitter`
/// in [0, 1) spreads backoffs so that many profiles do not retry in lockstep.
pub fn decide(
    policy: &RetryPolicy,
    attempt: u32,
    err: &GraphError,
    idempotent: bool,
    eventual: bool,
    jitter: f64,
) -> Decision {
    if attempt + 1 >= policy.max_attempts {
        return Decision::Fail;
    }
    let backoff = || {
        let exp = policy.base_backoff.saturating_mul(2u32.saturating_pow(attempt)).min(policy.max_backoff);
        // Equal jitter: at least half the backoff, so a retry is never immediate.
        exp / 2 + exp.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
    };
    match err.kind {
        // 429 and 503 say the request was not processed (HTTP semantics; Microsoft's SDKs retry
        // both for every method), so even a POST is repeated after Retry-After.
        ErrorKind::Throttled => match err.retry_after {
            // Exactly what the service asked for: earlier is an early retry, later wastes time.
            Some(wait) if wait <= policy.max_inline_wait => Decision::Retry(wait),
            Some(_) => Decision::Fail,
            None => Decision::Retry(backoff()),
        },
        // A request that never reached the service is safe to repeat even if it is a POST.
        ErrorKind::Transient if idempotent || err.is_connect_failure() => Decision::Retry(backoff()),
        ErrorKind::NotFound | ErrorKind::Forbidden | ErrorKind::Unauthorized
            if eventual && err.source == Source::Graph && attempt + 1 < policy.eventual_attempts =>
        {
            Decision::Retry(backoff())
        }
        _ => Decision::Fail,
    }
}

impl Tenant {
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Gets a token: proves the credentials work, without calling Graph.
    pub async fn check_credentials(&self) -> Result<(), GraphError> {
        self.client.inner.tokens.token(&self.endpoints, &self.tenant_id, &self.credential).await.map(|_| ())
    }

    pub(crate) async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T, GraphError> {
        let op = call.op;
        let (status, request_id, body) = self.send(call).await?;
        serde_json::from_slice(&body).map_err(|e| GraphError {
            kind: ErrorKind::Transient,
            source: Source::Graph,
            operation: op,
            status: Some(status),
            code: Some("UnreadableResponse".into()),
            message: format!("cannot read the response: {e}"),
            request_id,
            retry_after: None,
        })
    }

    pub(crate) async fn empty(&self, call: Call) -> Result<(), GraphError> {
        self.send(call).await.map(|_| ())
    }

    fn gate_key(&self) -> (String, String) {
        (self.tenant_id.to_ascii_lowercase(), self.credential.client_id().to_ascii_lowercase())
    }

    /// How long this tenant must still wait because of an earlier Retry-After.
    fn gate_wait(&self) -> Option<Duration> {
        let gates = self.client.inner.gates.lock().unwrap_or_else(|p| p.into_inner());
        gates
            .get(&self.gate_key())
            .and_then(|until| until.checked_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
    }

    fn close_gate(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut gates = self.client.inner.gates.lock().unwrap_or_else(|p| p.into_inner());
        let entry = gates.entry(self.gate_key()).or_insert(until);
        if *entry < until {
            *entry = until;
        }
    }

    fn url(&self, call: &Call) -> Result<url::Url, GraphError> {
        let mut url = self.endpoints.graph.clone();
        {
            let mut segs = url.path_segments_mut().map_err(|_| {
                GraphError::transport(call.op, format!("Graph URL {} cannot take a path", self.endpoints.graph))
            })?;
            segs.pop_if_empty().push(API_VERSION);
            for s in &call.segments {
                segs.push(s);
            }
        }
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(call.query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        Ok(url)
    }

    /// Sends with retries; returns status, request-id and body of the successful answer.
    async fn send(&self, call: Call) -> Result<(u16, Option<String>, bytes::Bytes), GraphError> {
        let inner = &self.client.inner;
        let url = self.url(&call)?;
        let client_request_id = uuid::Uuid::new_v4().to_string();
        let mut refreshed_token = false;
        let mut attempt = 0u32;
        loop {
            // Wait until the tenant's gate is open; another call's Retry-After may extend it
            // while we sleep, so look again after each wait.
            while let Some(wait) = self.gate_wait() {
                if wait > inner.config.retry.max_inline_wait {
                    return Err(GraphError {
                        kind: ErrorKind::Throttled,
                        source: Source::Graph,
                        operation: call.op,
                        status: None,
                        code: Some("RetryAfterPending".into()),
                        message: "an earlier call for this tenant was throttled; waiting out its Retry-After".into(),
                        request_id: None,
                        retry_after: Some(wait),
                    });
                }
                inner.observer.retry_after_wait(call.op, wait);
                tokio::time::sleep(wait).await;
            }
            let result = self.attempt(&call, &url, &client_request_id, attempt).await;
            let err = match result {
                Ok(ok) => return Ok(ok),
                Err(e) => e,
            };
            // A rejected token (expired early, revoked) gets one fresh token before anything else.
            if err.kind == ErrorKind::Unauthorized
                && err.source == Source::Graph
                && err.code.as_deref() == Some("InvalidAuthenticationToken")
                && !refreshed_token
            {
                refreshed_token = true;
                inner.tokens.invalidate(&self.endpoints, &self.tenant_id, &self.credential).await;
                continue;
            }
            if err.kind == ErrorKind::Throttled && err.status.is_some() {
                inner.observer.throttled(call.op);
            }
            if let (ErrorKind::Throttled, Some(wait)) = (err.kind, err.retry_after) {
                self.close_gate(wait);
            }
            match decide(&inner.config.retry, attempt, &err, call.idempotent, call.eventual, rand::random::<f64>()) {
                Decision::Retry(wait) if err.kind == ErrorKind::Throttled && err.retry_after.is_some() => {
                    // The gate holds this call (and every other for the tenant) until Retry-After.
                    debug!(op = call.op, attempt, wait_ms = wait.as_millis() as u64, error = %err, "throttled; waiting out Retry-After");
                    attempt += 1;
                }
                Decision::Retry(wait) => {
                    debug!(op = call.op, attempt, wait_ms = wait.as_millis() as u64, error = %err, "retrying Graph call");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Decision::Fail => return Err(err),
            }
        }
    }

    async fn attempt(
        &self,
        call: &Call,
        url: &url::Url,
        client_request_id: &str,
        attempt: u32,
    ) -> Result<(u16, Option<String>, bytes::Bytes), GraphError> {
        let inner = &self.client.inner;
        let token = inner.tokens.token(&self.endpoints, &self.tenant_id, &self.credential).await?;
        let mut req = inner
            .http
            .request(call.method.clone(), url.clone())
            .timeout(inner.config.timeout)
            .bearer_auth(token.secret())
            .header("client-request-id", client_request_id)
            .header(reqwest::header::ACCEPT, "application/json");
        if attempt > 0 {
            req = req.header("Retry-Attempt", attempt.to_string());
        }
        if let Some(body) = &call.body {
            req = req.json(body);
        }
        let started = Instant::now();
        let response = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                inner.observer.response(call.op, None, started.elapsed());
                let code = if e.is_connect() {
                    Some("Connect")
                } else if e.is_timeout() {
                    Some("Timeout")
                } else {
                    None
                };
                let mut err = GraphError::transport(call.op, e.without_url().to_string());
                err.code = code.map(str::to_string);
                warn!(op = call.op, client_request_id, error = %err, "Graph call got no answer");
                return Err(err);
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await;
        inner.observer.response(call.op, Some(status), started.elapsed());
        let body = body.map_err(|e| GraphError::transport(call.op, e.without_url().to_string()))?;
        let request_id = headers.get("request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        debug!(
            op = call.op,
            status,
            request_id = request_id.as_deref().unwrap_or(""),
            client_request_id,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Graph call"
        );
        if (200..300).contains(&status) {
            return Ok((status, request_id, body));
        }
        let retry_after = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()));
        let envelope: Envelope = serde_json::from_slice(&body).unwrap_or_default();
        let mut message = envelope.error.message.unwrap_or_default();
        if message.len() > 1024 {
            let cut = (0..=1024).rev().find(|i| message.is_char_boundary(*i)).unwrap_or(0);
            message.truncate(cut);
        }
        Err(GraphError {
            kind: classify_graph(status, retry_after),
            source: Source::Graph,
            operation: call.op,
            status: Some(status),
            code: envelope.error.code,
            message,
            request_id: request_id.or(envelope.error.inner_error.and_then(|i| i.request_id)),
            retry_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: ErrorKind, retry_after: Option<u64>) -> GraphError {
        GraphError {
            kind,
            source: Source::Graph,
            operation: "t",
            status: Some(if kind == ErrorKind::Throttled { 429 } else { 500 }),
            code: None,
            message: String::new(),
            request_id: None,
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn retry_after_is_honoured_exactly_without_jitter() {
        let p = RetryPolicy::default();
        for jitter in [0.0, 0.5, 0.99] {
            assert_eq!(
                decide(&p, 0, &err(ErrorKind::Throttled, Some(7)), false, false, jitter),
                Decision::Retry(Duration::from_secs(7))
            );
        }
    }

    #[test]
    fn a_post_is_repeated_after_429_or_503_but_not_after_other_5xx() {
        let p = RetryPolicy::default();
        let mut e = err(ErrorKind::Throttled, Some(1));
        for status in [429, 503] {
            e.status = Some(status);
            assert_eq!(decide(&p, 0, &e, false, false, 0.0), Decision::Retry(Duration::from_secs(1)), "{status}");
        }
        let mut e = err(ErrorKind::Transient, None);
        for status in [500, 502, 504] {
            e.status = Some(status);
            assert_eq!(decide(&p, 0, &e, false, false, 0.0), Decision::Fail, "{status}");
        }
    }

    #[test]
    fn long_retry_after_goes_back_to_the_controller() {
        let p = RetryPolicy::default();
        assert_eq!(decide(&p, 0, &err(ErrorKind::Throttled, Some(120)), true, false, 0.3), Decision::Fail);
    }

    #[test]
    fn transient_errors_retry_only_idempotent_calls_with_growing_jittered_backoff() {
        let p = RetryPolicy::default();
        let e = err(ErrorKind::Transient, None);
        assert_eq!(decide(&p, 0, &e, false, false, 0.5), Decision::Fail, "a POST may have been applied");
        let Decision::Retry(first) = decide(&p, 0, &e, true, false, 0.0) else { panic!() };
        let Decision::Retry(third) = decide(&p, 2, &e, true, false, 0.0) else { panic!() };
        assert_eq!(first, Duration::from_millis(250));
        assert_eq!(third, Duration::from_millis(1000));
        let Decision::Retry(jittered) = decide(&p, 2, &e, true, false, 0.99) else { panic!() };
        assert!(jittered > third && jittered < Duration::from_millis(2000));
        assert_eq!(decide(&p, p.max_attempts - 1, &e, true, false, 0.0), Decision::Fail);
    }

    #[test]
    fn backoff_is_capped() {
        let p = RetryPolicy { max_attempts: 50, ..RetryPolicy::default() };
        let Decision::Retry(w) = decide(&p, 40, &err(ErrorKind::Transient, None), true, false, 0.99) else { panic!() };
        assert!(w <= p.max_backoff);
    }

    #[test]
    fn connection_failures_retry_even_posts() {
        let p = RetryPolicy::default();
        let mut e = GraphError::transport("t", "refused".into());
        e.code = Some("Connect".into());
        assert!(matches!(decide(&p, 0, &e, false, false, 0.0), Decision::Retry(_)));
        e.code = Some("Timeout".into());
        assert_eq!(decide(&p, 0, &e, false, false, 0.0), Decision::Fail, "a timed-out POST may have been applied");
    }

    #[test]
    fn replication_lag_is_retried_only_when_asked() {
        let p = RetryPolicy::default();
        for kind in [ErrorKind::NotFound, ErrorKind::Forbidden, ErrorKind::Unauthorized] {
            assert_eq!(decide(&p, 0, &err(kind, None), true, false, 0.0), Decision::Fail);
            assert!(matches!(decide(&p, 0, &err(kind, None), true, true, 0.0), Decision::Retry(_)));
        }
        assert_eq!(decide(&p, 0, &err(ErrorKind::NeedsUserAction, None), true, true, 0.0), Decision::Fail);
    }
}
