//! Sending Graph requests: bearer tokens, `client-request-id`, per-call timeouts, the error
//! envelope, the tenant's Retry-After gate, and the retries that [`retry::decide`] asks for
//! (reference §1.3, §4).
//!
//! [`retry::decide`]: super::retry::decide

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use super::answer::{Body, MAX_GRAPH_BODY, Success, judge, read_capped};
use super::auth::{Credential, TokenCache};
use super::cloud::{Endpoints, NationalCloud, Overrides};
use super::error::{Cause, ErrorKind, GraphError, Source};
use super::gate::{GateKey, Gates};
use super::observer::{NoObserver, Observer};
use super::retry::{Decision, RetryPolicy, decide};

/// The Graph version the operator calls; cloud sync's procedure is documented against beta.
pub const API_VERSION: &str = "beta";

/// Graph's code for a token it does not accept (expired early, revoked): worth one fresh token.
const INVALID_TOKEN: &str = "InvalidAuthenticationToken";

/// The operation name reported to the observer for [`Tenant::until_open`]'s waits.
const UNTIL_OPEN: &str = "gate.wait";

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
    gates: Gates,
}

impl GraphClient {
    pub fn new(config: ClientConfig) -> Result<Self, GraphError> {
        Self::with_observer(config, Arc::new(NoObserver))
    }

    pub fn with_observer(config: ClientConfig, observer: Arc<dyn Observer>) -> Result<Self, GraphError> {
        if let Some(url) = config.overrides.unusable() {
            return Err(GraphError::setup("client", format!("endpoint URL {url} cannot take a request path")));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("cloudsync-operator/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| GraphError::setup("client", format!("cannot build the HTTP client: {e}")))?;
        let tokens = TokenCache::new(http.clone(), config.timeout, observer.clone());
        Ok(Self { inner: Arc::new(Inner { http, tokens, config, observer, gates: Gates::default() }) })
    }

    /// A handle for one tenant with one credential. `cloud` is a [`NationalCloud`] or anything
    /// that converts into one (the profile's `spec.cloud()`).
    pub fn tenant(&self, cloud: impl Into<NationalCloud>, tenant_id: &str, credential: Credential) -> Tenant {
        Tenant {
            client: self.clone(),
            endpoints: self.inner.config.overrides.endpoints(cloud.into()),
            tenant_id: tenant_id.to_string(),
            credential: Arc::new(credential),
            fail_fast: false,
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
    /// Never sleep inside a call (see [`Tenant::fail_fast`]).
    fail_fast: bool,
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

    /// A clone whose calls never sleep, for a non-idempotent write whose intent the caller
    /// records right before it: while the Retry-After gate is closed a call fails at once
    /// (`not_processed()`, `retry_after` = what is left), and a failed attempt is returned rather
    /// than retried after a backoff or a Retry-After. So between the record and the request there
    /// is no wait in which a kill would leave the record of a call never sent. Wait with
    /// [`Tenant::until_open`] before recording. (A token Graph rejects is still replaced and the
    /// call resent at once: Graph refused the first try, so at most one is processed.)
    pub fn fail_fast(&self) -> Tenant {
        Tenant { fail_fast: true, ..self.clone() }
    }

    /// Returns once no Retry-After wait is pending for this tenant and application. Another
    /// call's Retry-After may extend the gate during a sleep, so it looks again after each. A
    /// wait longer than the policy's `max_inline_wait` is not slept: the error (not processed,
    /// with the remaining `retry_after`) lets the controller requeue and free the worker.
    pub async fn until_open(&self) -> Result<(), GraphError> {
        while let Some(wait) = self.retry_after_pending() {
            if wait > self.client.inner.config.retry.max_inline_wait {
                return Err(GraphError::retry_after_pending(UNTIL_OPEN, wait));
            }
            self.client.inner.observer.retry_after_wait(UNTIL_OPEN, wait);
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// How long calls for this tenant and application must still wait because of an earlier
    /// Retry-After; None when they may go out now. Lets a caller requeue instead of calling
    /// [`Tenant::until_open`] when the wait is long.
    pub fn retry_after_pending(&self) -> Option<Duration> {
        self.client.inner.gates.wait(&self.gate_key(), Instant::now())
    }

    pub(crate) async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T, GraphError> {
        let op = call.op;
        self.send(call).await?.decode(op)
    }

    pub(crate) async fn empty(&self, call: Call) -> Result<(), GraphError> {
        self.send(call).await.map(|_| ())
    }

    fn gate_key(&self) -> GateKey {
        GateKey::new(&self.tenant_id, self.credential.client_id())
    }

    fn close_gate(&self, wait: Duration) {
        self.client.inner.gates.close(self.gate_key(), Instant::now() + wait);
    }

    fn url(&self, call: &Call) -> Result<url::Url, GraphError> {
        request_url(&self.endpoints.graph, &call.segments, &call.query).map_err(|m| GraphError::setup(call.op, m))
    }

    /// Sends with retries; returns status, request-id and body of the successful answer.
    async fn send(&self, call: Call) -> Result<Success, GraphError> {
        let inner = &self.client.inner;
        let url = self.url(&call)?;
        let client_request_id = uuid::Uuid::new_v4().to_string();
        let mut refreshed_token = false;
        let mut attempt = 0u32;
        loop {
            // Wait until the tenant's gate is open; another call's Retry-After may extend it
            // while we sleep, so look again after each wait.
            while let Some(wait) = self.retry_after_pending() {
                if self.fail_fast || wait > inner.config.retry.max_inline_wait {
                    return Err(GraphError::retry_after_pending(call.op, wait));
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
                && err.code.as_deref() == Some(INVALID_TOKEN)
                && !refreshed_token
            {
                refreshed_token = true;
                inner.tokens.invalidate(&self.endpoints, &self.tenant_id, &self.credential).await;
                continue;
            }
            if err.kind == ErrorKind::Throttled && err.cause == Cause::ErrorStatus {
                inner.observer.throttled(call.op);
            }
            if let (ErrorKind::Throttled, Some(wait)) = (err.kind, err.retry_after) {
                self.close_gate(wait);
            }
            match decide(&inner.config.retry, attempt, &err, call.idempotent, call.eventual, rand::random::<f64>()) {
                // The caller retries itself, after recording its intent again.
                Decision::Retry(_) if self.fail_fast => return Err(err),
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
    ) -> Result<Success, GraphError> {
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
                let err = GraphError::wire(call.op, e, inner.config.timeout);
                warn!(op = call.op, client_request_id, error = %err, "Graph call got no answer");
                return Err(err);
            }
        };
        let mut response = response;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = read_capped(&mut response, MAX_GRAPH_BODY).await;
        inner.observer.response(call.op, Some(status), started.elapsed());
        let success = (200..300).contains(&status);
        let body = match body {
            Ok(body) => body,
            Err(e) if success => {
                // Graph answered (and may have done the work), but the answer did not arrive whole.
                let err = GraphError::wire(call.op, e, inner.config.timeout);
                let request_id = headers.get("request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
                warn!(op = call.op, client_request_id, status, error = %err, "Graph answer broke off");
                return Err(GraphError { status: Some(status), request_id, ..err });
            }
            // A refusal is classified by its status; the body would only add code and message.
            Err(_) => Body::Whole(bytes::Bytes::new()),
        };
        let judged = judge(call.op, status, &headers, body, jiff::Timestamp::now());
        debug!(
            op = call.op,
            status,
            request_id = headers.get("request-id").and_then(|v| v.to_str().ok()).unwrap_or(""),
            client_request_id,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Graph call"
        );
        judged
    }
}

/// The URL of a call: `base`, the API version, then each segment percent-encoded, so an id
/// with `/`, `?`, `#` or `%` stays one segment. Ids come from Graph's answers and from status,
/// so an empty, `.` or `..` segment (which would name the collection or a parent instead) is
/// refused rather than sent, and so is one with a control character (URL parsing drops tabs and
/// line breaks, which turns `"\t"` into an empty segment and `".\n."` into `..`).
pub fn request_url(base: &url::Url, segments: &[String], query: &[(&str, String)]) -> Result<url::Url, String> {
    let unusable = |s: &str| s.is_empty() || s == "." || s == ".." || s.chars().any(char::is_control);
    if let Some(bad) = segments.iter().find(|s| unusable(s)) {
        return Err(format!("cannot put the id {bad:?} in a Graph URL"));
    }
    let mut url = base.clone();
    {
        let mut segs = url.path_segments_mut().map_err(|_| format!("Graph URL {base} cannot take a path"))?;
        segs.pop_if_empty().push(API_VERSION);
        for s in segments {
            segs.push(s);
        }
    }
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use secrecy::SecretString;

    use super::*;

    /// Counts exchanges that got no answer.
    #[derive(Default)]
    struct Unanswered(AtomicU32);

    impl Observer for Unanswered {
        fn response(&self, _: &'static str, status: Option<u16>, _: Duration) {
            if status.is_none() {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        fn throttled(&self, _: &'static str) {}
        fn retry_after_wait(&self, _: &'static str, _: Duration) {}
    }

    /// A tenant whose endpoints are a loopback port nobody listens on: every exchange fails to
    /// connect, so only the gate and the retry loop decide what happens.
    fn unreachable_tenant() -> (Tenant, Arc<Unanswered>) {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = url::Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let config = ClientConfig {
            overrides: Overrides { graph: Some(url.clone()), login: Some(url) },
            timeout: Duration::from_secs(2),
            retry: RetryPolicy { max_attempts: 3, base_backoff: Duration::from_millis(1), ..RetryPolicy::default() },
        };
        let observer = Arc::new(Unanswered::default());
        let credential = Credential::ClientSecret { client_id: "Client-1".into(), secret: SecretString::from("s") };
        let client = GraphClient::with_observer(config, observer.clone()).unwrap();
        (client.tenant(NationalCloud::Global, "Tenant-1", credential), observer)
    }

    #[tokio::test]
    async fn fail_fast_calls_are_refused_at_once_while_the_gate_is_closed() {
        let (t, observer) = unreachable_tenant();
        t.close_gate(Duration::from_secs(3));
        let started = Instant::now();
        let e = t.fail_fast().restart_job("sp", "job", "Full").await.unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(500), "not slept: {:?}", started.elapsed());
        assert_eq!((e.cause, e.kind, e.code.as_deref()), (Cause::RetryAfterPending, ErrorKind::Throttled, None));
        assert!(e.not_processed());
        let left = e.retry_after.unwrap();
        assert!(left > Duration::from_secs(2) && left <= Duration::from_secs(3), "{left:?}");
        assert_eq!(observer.0.load(Ordering::SeqCst), 0, "nothing was sent");
        // The gate is the tenant's and application's, whichever handle closed it.
        let other = t.client.tenant(NationalCloud::Global, "tenant-1", (*t.credential).clone());
        assert!(other.fail_fast().get_job("sp", "job").await.unwrap_err().cause == Cause::RetryAfterPending);
    }

    #[tokio::test]
    async fn until_open_waits_out_the_gate_even_when_it_is_extended_meanwhile() {
        let (t, _) = unreachable_tenant();
        assert_eq!(t.retry_after_pending(), None);
        let started = Instant::now();
        t.until_open().await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(50), "an open gate does not wait");

        t.close_gate(Duration::from_millis(200));
        let extender = t.clone();
        let extend = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            extender.close_gate(Duration::from_millis(400));
        });
        let started = Instant::now();
        t.until_open().await.unwrap();
        let waited = started.elapsed();
        extend.await.unwrap();
        assert!(waited >= Duration::from_millis(500), "re-checked after the first sleep: {waited:?}");
        assert!(waited < Duration::from_millis(900), "{waited:?}");
        assert_eq!(t.retry_after_pending(), None);
    }

    #[tokio::test]
    async fn fail_fast_makes_one_attempt_where_a_normal_call_retries() {
        let (t, observer) = unreachable_tenant();
        // A POST that cannot connect was never sent, so a normal call repeats it.
        let e = t.restart_job("sp", "job", "Full").await.unwrap_err();
        assert!(e.is_connect_failure() && e.not_processed() && e.code.is_none(), "{e:?}");
        assert!(e.message.starts_with("cannot connect: "), "{e}");
        assert_eq!(observer.0.swap(0, Ordering::SeqCst), 3, "max_attempts");
        let e = t.fail_fast().restart_job("sp", "job", "Full").await.unwrap_err();
        assert!(e.is_connect_failure() && e.not_processed(), "{e:?}");
        assert_eq!(observer.0.load(Ordering::SeqCst), 1, "returned instead of retried");
    }

    #[tokio::test]
    async fn a_normal_call_sleeps_through_a_short_gate_and_hands_back_a_long_one() {
        let (t, observer) = unreachable_tenant();
        t.close_gate(Duration::from_millis(300));
        let started = Instant::now();
        let e = t.get_job("sp", "job").await.unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
        assert!(e.is_connect_failure(), "sent after the wait: {e:?}");
        assert!(observer.0.load(Ordering::SeqCst) > 0);

        t.close_gate(t.client.inner.config.retry.max_inline_wait + Duration::from_secs(5));
        let started = Instant::now();
        let e = t.get_job("sp", "job").await.unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(500));
        assert_eq!(e.cause, Cause::RetryAfterPending);
    }

    #[test]
    fn a_client_refuses_override_urls_that_cannot_take_a_path() {
        let config = ClientConfig {
            overrides: Overrides { graph: Some(url::Url::parse("mailto:ops@example.com").unwrap()), login: None },
            ..ClientConfig::default()
        };
        let e = GraphClient::new(config).err().unwrap();
        assert_eq!((e.cause, e.kind), (Cause::Setup, ErrorKind::NeedsUserAction));
        assert!(e.message.contains("mailto:ops@example.com"), "{e}");
    }
}
