//! The operator's own HTTP endpoints: `/metrics` (OpenMetrics), `/healthz` (liveness: the process
//! serves) and `/readyz` (readiness: every watch has listed its profiles once).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Readiness: every watched scope has synced, and the process is not shutting down.
pub struct Health {
    unsynced: AtomicUsize,
    stopping: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        // Not ready until told how many scopes to wait for.
        Self { unsynced: AtomicUsize::new(usize::MAX), stopping: AtomicBool::new(false) }
    }
}

impl Health {
    pub fn expect_scopes(&self, n: usize) {
        self.unsynced.store(n, Ordering::Release);
    }

    pub fn scope_synced(&self) {
        let _ = self.unsynced.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.unsynced.load(Ordering::Acquire) == 0 && !self.stopping.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.render())
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(s): State<AppState>) -> (StatusCode, &'static str) {
    if s.health.is_ready() { (StatusCode::OK, "ready") } else { (StatusCode::SERVICE_UNAVAILABLE, "not ready") }
}

pub fn router(metrics: Arc<Metrics>, health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(self::metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, health })
}

/// Binds now (so a taken port fails the start) and serves until `stop`.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, health: Arc<Health>, stop: CancellationToken) {
    let app = router(metrics, health);
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await {
        tracing::error!(error = %e, "metrics and health server stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_every_scope_synced_and_until_stopping() {
        let h = Health::default();
        assert!(!h.is_ready());
        h.expect_scopes(2);
        h.scope_synced();
        assert!(!h.is_ready());
        h.scope_synced();
        assert!(h.is_ready());
        h.scope_synced();
        assert!(h.is_ready(), "never below zero");
        h.stopping();
        assert!(!h.is_ready());
    }
}
