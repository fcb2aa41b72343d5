//! Local HTTP servers for tests (web metrics, fake Prometheus endpoints, exporters) and a plain
//! HTTP client for talking to them.

use std::net::SocketAddr;
use std::sync::OnceLock;

/// Serves `router` on a free loopback port until the test's runtime ends; returns its address.
#[allow(clippy::expect_used)] // binding 127.0.0.1:0 only fails on a broken host: fail loudly
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a loopback port");
    let addr = listener.local_addr().expect("the bound address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// A loopback port nothing listens on (bound, then released).
#[allow(clippy::expect_used)] // binding 127.0.0.1:0 only fails on a broken host: fail loudly
pub fn unused_port() -> u16 {
    crate::free_port().expect("binding a loopback port")
}

/// Decodes an `application/x-www-form-urlencoded` body (or query string) into pairs.
pub fn form_pairs(body: &str) -> Vec<(String, String)> {
    match reqwest::Url::parse(&format!("http://form.invalid/?{body}")) {
        Ok(url) => url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// A shared HTTP client (plain HTTP to loopback servers; TLS through rustls with ring, as the
/// controllers use it).
pub fn client() -> anyhow::Result<reqwest::Client> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            // Err means a provider is already installed: fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(2))
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {e}"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// A local endpoint `/health` answering `{"ok": <value>}` (a web metric for `jsonPath: {$.ok}`),
/// the value settable by the test (initially 1). Returns its URL and the value.
pub async fn health_endpoint() -> (String, std::sync::Arc<std::sync::atomic::AtomicI64>) {
    use std::sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    };
    let value = Arc::new(AtomicI64::new(1));
    let shared = value.clone();
    let router = axum::Router::new().route(
        "/health",
        axum::routing::get(move || {
            let v = shared.load(Ordering::SeqCst);
            async move { axum::Json(serde_json::json!({ "ok": v })) }
        }),
    );
    let addr = serve(router).await;
    (format!("http://{addr}/health"), value)
}
