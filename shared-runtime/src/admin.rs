//! The admin HTTP server: `/metrics` in Prometheus text format, `/healthz` for liveness and
//! `/readyz`, which answers 200 only after the controller reported its caches synced and
//! turns 503 again once shutdown begins.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use prometheus_client::{encoding::text::encode, registry::Registry};

use crate::Error;

/// Shared state of the admin endpoints.
#[derive(Clone)]
pub struct AdminState {
    registry: Arc<Registry>,
    ready: Arc<AtomicBool>,
    leader: Option<crate::leader::LeaderGate>,
}

impl AdminState {
    /// State serving the given metrics registry; not ready until [`AdminState::set_ready`].
    pub fn new(registry: Registry) -> Self {
        Self {
            registry: Arc::new(registry),
            ready: Arc::new(AtomicBool::new(false)),
            leader: None,
        }
    }

    /// With leader election, `/readyz` says whether this process leads or stands by (both are
    /// ready: a standby's caches are warm).
    pub fn with_leader(mut self, leader: crate::leader::LeaderGate) -> Self {
        self.leader = Some(leader);
        self
    }
    /// Marks the controller ready (caches synced) or not (shutting down).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
    /// Whether `/readyz` currently answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

/// The router with all admin endpoints.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    let mut body = String::new();
    match encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/plain; charset=utf-8")],
            format!("encoding metrics failed: {e}"),
        ),
    }
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    match (state.is_ready(), &state.leader) {
        (true, Some(leader)) => (StatusCode::OK, format!("ok: {}", leader.role())),
        (true, None) => (StatusCode::OK, "ok".to_string()),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "not ready".to_string()),
    }
}

/// Binds every address (metrics and health may share one) and serves the admin router on each
/// until the returned tasks are aborted. Binding happens before returning so a taken port is
/// reported at start-up.
pub async fn serve(
    state: AdminState,
    addrs: &[SocketAddr],
) -> Result<Vec<tokio::task::JoinHandle<()>>, Error> {
    let mut unique: Vec<SocketAddr> = addrs.to_vec();
    unique.sort();
    unique.dedup();
    let mut tasks = Vec::new();
    for addr in unique {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind {
                addr: addr.to_string(),
                source,
            })?;
        let app = router(state.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(%addr, error = %e, "admin server stopped");
            }
        }));
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use prometheus_client::metrics::counter::Counter;
    use tower::ServiceExt;

    async fn get_path(app: Router, path: &str) -> (StatusCode, String) {
        let req = axum::http::Request::get(path)
            .body(Body::empty())
            .expect("request builds");
        let resp = app.oneshot(req).await.expect("router answers");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body reads");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn readyz_follows_ready_flag_and_metrics_are_encoded() {
        let mut registry = Registry::default();
        let counter = Counter::<u64>::default();
        registry.register("demo_events", "Demo events", counter.clone());
        counter.inc();
        let state = AdminState::new(registry);
        let app = router(state.clone());

        assert_eq!(
            get_path(app.clone(), "/healthz").await,
            (StatusCode::OK, "ok".into())
        );
        assert_eq!(
            get_path(app.clone(), "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        state.set_ready(true);
        assert_eq!(get_path(app.clone(), "/readyz").await.0, StatusCode::OK);
        let led = router(state.clone().with_leader(crate::leader::LeaderGate::always()));
        assert_eq!(
            get_path(led, "/readyz").await,
            (StatusCode::OK, "ok: leader".into())
        );
        let (status, body) = get_path(app, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("demo_events_total 1"), "{body}");
    }
}
