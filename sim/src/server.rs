//! The shared simulator state, the axum application and the response middleware that stamps
//! Graph headers, renders error envelopes and records calls.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use jiff::Timestamp;

use super::auth::{self, TokenStore};
use super::calls::{CallLog, CallRecord};
use super::clock::Clock;
use super::envelope::{self, GraphError, RequestIds};
use super::faults::{FaultSet, RetryWindows};
use super::state::Directory;
use super::{control, routes};

/// Everything behind the one lock. Handlers never await while holding it.
#[derive(Debug, Default)]
pub struct Inner {
    pub dir: Directory,
    pub tokens: TokenStore,
    pub faults: FaultSet,
    pub retries: RetryWindows,
    pub log: CallLog,
    /// provisionOnDemand calls per job, for its 5-per-10-seconds limit.
    pub on_demand: std::collections::HashMap<String, std::collections::VecDeque<Instant>>,
    /// Objects provisioned on demand, by `tenant/job/dn` (lowercase): a second time is Skipped.
    pub on_demand_done: std::collections::HashSet<String>,
    /// Outcomes set through the control API, by `tenant/job/dn` (lowercase).
    pub on_demand_script: std::collections::HashMap<String, crate::ondemand::Scripted>,
}

pub struct Shared {
    pub clock: Clock,
    pub token_lifetime: Duration,
    pub addr: OnceLock<SocketAddr>,
    inner: Mutex<Inner>,
}

/// Deliberately shallow: the state holds client secrets, which must not reach logs via `{:?}`.
impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("speed", &self.clock.speed())
            .field("addr", &self.addr.get())
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub fn new(speed: f64, token_lifetime: Duration) -> Self {
        Self { clock: Clock::new(speed), token_lifetime, addr: OnceLock::new(), inner: Mutex::new(Inner::default()) }
    }

    /// A handler that panicked mid-update must not take the simulator down with it.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Who made a call and how it was answered, attached to the response for the call log.
#[derive(Debug, Clone, Default)]
pub struct CallMeta {
    pub api: &'static str,
    pub tenant: Option<String>,
    pub client_id: Option<String>,
    pub early_retry: bool,
    pub fault: Option<String>,
}

impl CallMeta {
    pub fn graph() -> Self {
        Self { api: "graph", ..Self::default() }
    }

    pub fn token() -> Self {
        Self { api: "token", ..Self::default() }
    }
}

/// The simulator's own base URL as the client reached it, for `@odata.nextLink` and friends.
pub fn base_url(sim: &Shared, headers: &HeaderMap) -> String {
    let proto = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).unwrap_or("http");
    match headers.get(header::HOST).and_then(|v| v.to_str().ok()) {
        Some(host) if !host.is_empty() => format!("{proto}://{host}"),
        _ => match sim.addr.get() {
            Some(addr) => format!("http://{addr}"),
            None => "http://localhost".to_owned(),
        },
    }
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Stamps Graph headers on every response, renders error envelopes, and records the call.
async fn finish(State(sim): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let ids = RequestIds::from_headers(req.headers());
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let mut response = next.run(req).await;
    let now = Timestamp::now();
    let meta = response.extensions_mut().remove::<CallMeta>();
    if let Some(err) = response.extensions_mut().remove::<GraphError>() {
        response = envelope::render(&err, &ids, now);
    } else if response.status().as_u16() >= 400
        && !is_json(&response)
        && response.extensions().get::<super::bodies::Raw>().is_none()
    {
        // axum's own rejections (wrong method on a control route, bad path parameters).
        let allow = response.headers().get(header::ALLOW).cloned();
        response = envelope::render(&GraphError::for_status(response.status()), &ids, now);
        if let Some(allow) = allow {
            response.headers_mut().insert(header::ALLOW, allow);
        }
    }
    envelope::stamp(response.headers_mut(), &ids, now);
    if let Some(meta) = meta {
        let status = response.status().as_u16();
        tracing::debug!(api = meta.api, %method, %path, status, tenant = meta.tenant.as_deref(), "call");
        let record = CallRecord {
            method,
            path,
            // Token requests carry credentials in the body only, but keep their query out too.
            query: if meta.api == "token" { None } else { query },
            status,
            tenant: meta.tenant,
            client_id: meta.client_id,
            time: now.to_string(),
            client_request_id: ids.client_request_id,
            request_id: ids.request_id,
            early_retry: meta.early_retry,
            fault: meta.fault,
            api: meta.api.to_owned(),
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        sim.lock().log.record(record);
    }
    response
}

pub fn app(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(auth::token))
        .route("/{tenant}/v2.0/.well-known/openid-configuration", get(auth::openid_configuration))
        .route("/common/discovery/instance", get(auth::instance_discovery))
        .nest("/_sim", control::router())
        .fallback(routes::graph)
        .layer(middleware::from_fn_with_state(shared.clone(), finish))
        .with_state(shared)
}
