//! The Prometheus provider against a real Prometheus server (the `prometheus` binary, started
//! by the test and scraping a small exporter), and against local fakes for the request format,
//! authentication, timeouts and unreachable servers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use analysis_controller::provider::{self, ProviderContext, ProviderEnv, Reading, prometheus};
use axum::extract::RawQuery;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::json;
use shared_types::analysis::{
    AnalysisRun, Authentication, BasicAuth, Metric, MetricProvider, OAuth2Config, PrometheusMetric,
    PrometheusRangeQueryArgs, WebMetricHeader,
};
use support::http::{form_pairs, serve, unused_port};
use support::prometheus::{Exporter, Prometheus};

fn value(reading: Reading) -> (serde_json::Value, String) {
    match reading {
        Reading::Value { result, text, .. } => (result, text),
        other => panic!("not a value: {other:?}"),
    }
}

fn metric(address: &str, query: &str) -> PrometheusMetric {
    PrometheusMetric {
        address: Some(address.into()),
        query: Some(query.into()),
        timeout: Some(10),
        ..Default::default()
    }
}

async fn query(address: &str, q: &str) -> Result<(serde_json::Value, String), provider::ProviderError> {
    prometheus::measure(&metric(address, q), None, jiff::Timestamp::now())
        .await
        .map(value)
}

const SUCCESS_RATE: &str = r#"sum(istio_requests_total{destination_service_name="mock-server-canary",response_code!~"5.*"}) / sum(istio_requests_total{destination_service_name="mock-server-canary"})"#;

/// One Prometheus server for all the real-server checks (starting it takes a few seconds).
#[tokio::test]
async fn real_prometheus_queries() {
    let exporter = Exporter::start().await;
    exporter.set_istio_requests("mock-server-canary", "mock-server-canary", 98.0, 2.0);
    let mut server = Prometheus::start(&[exporter.addr()]).await.unwrap();
    server.wait_until_scraped(Duration::from_secs(30)).await.unwrap();
    server
        .wait_for_value(
            r#"sum(istio_requests_total{destination_service_name="mock-server-canary"})"#,
            100.0,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let url = server.url();

    // Vector: the success ratio of the seed's templates.
    assert_eq!(
        query(&url, SUCCESS_RATE).await.unwrap(),
        (json!([0.98]), "[0.98]".to_string())
    );
    // Scalar.
    assert_eq!(
        query(&url, &format!("scalar({SUCCESS_RATE})")).await.unwrap(),
        (json!(0.98), "0.98".to_string())
    );
    // A plain selector: one sample per series.
    assert_eq!(
        query(&url, r#"istio_requests_total{response_code="500"}"#)
            .await
            .unwrap(),
        (json!([2.0]), "[2]".to_string())
    );
    // No series: an empty vector.
    assert_eq!(
        query(&url, r#"istio_requests_total{response_code="404"}"#)
            .await
            .unwrap(),
        (json!([]), "[]".to_string())
    );
    // NaN and infinities.
    assert_eq!(
        query(&url, "vector(0) / 0").await.unwrap(),
        (json!(["NaN"]), "[NaN]".to_string())
    );
    assert_eq!(
        query(&url, "scalar(vector(-1) / 0)").await.unwrap(),
        (json!("-Inf"), "-Inf".to_string())
    );
    // A string result is not supported (as in Argo).
    let err = query(&url, "\"hello\"").await.unwrap_err();
    assert!(err.0.starts_with("Prometheus metric type not supported"), "{err}");
    // A query Prometheus rejects: its error type and message, and the address.
    let err = query(&url, "sum(").await.unwrap_err();
    assert!(
        err.0
            .starts_with(&format!("query to Prometheus at {url} failed: bad_data: ")),
        "{err}"
    );
    // The address from ARGO_ROLLOUTS_PROMETHEUS_ADDRESS when the metric has none.
    let no_address = PrometheusMetric {
        query: Some(SUCCESS_RATE.into()),
        ..Default::default()
    };
    assert_eq!(
        value(
            prometheus::measure(&no_address, Some(&url), jiff::Timestamp::now())
                .await
                .unwrap()
        ),
        (json!([0.98]), "[0.98]".to_string())
    );
    // A range query: every sample of the last seconds, flattened.
    let range = PrometheusMetric {
        range_query: Some(PrometheusRangeQueryArgs {
            start: Some("now() - duration(\"5s\")".into()),
            end: Some("now()".into()),
            step: Some("1s".into()),
        }),
        ..metric(
            &url,
            r#"sum(istio_requests_total{destination_service_name="mock-server-canary"})"#,
        )
    };
    let (result, text) = value(
        prometheus::measure(&range, None, jiff::Timestamp::now())
            .await
            .unwrap(),
    );
    let samples = result.as_array().unwrap();
    assert!(!samples.is_empty(), "{text}");
    assert!(samples.iter().all(|s| s == &json!(100.0)), "{text}");
    assert!(text.starts_with("[100"), "{text}");

    // Through the dispatcher, with the resolved query kept for the metric result.
    let m = Metric {
        name: "success-rate".into(),
        provider: MetricProvider {
            prometheus: Some(metric(&url, SUCCESS_RATE)),
            ..Default::default()
        },
        ..Default::default()
    };
    let run = AnalysisRun::new("run", Default::default());
    let env = ProviderEnv::default();
    let ctx = ProviderContext {
        run: &run,
        kube: None,
        env: &env,
    };
    assert_eq!(
        value(provider::measure(ctx, &m).await.unwrap()),
        (json!([0.98]), "[0.98]".to_string())
    );
    assert_eq!(provider::metric_type(&m), "Prometheus");
    assert_eq!(
        provider::metric_metadata(&m)
            .get("ResolvedPrometheusQuery")
            .map(String::as_str),
        Some(SUCCESS_RATE)
    );

    // The ratio follows the exporter.
    exporter.set_istio_requests("mock-server-canary", "mock-server-canary", 160.0, 40.0);
    server
        .wait_for_value(SUCCESS_RATE, 0.8, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        query(&url, SUCCESS_RATE).await.unwrap(),
        (json!([0.8]), "[0.8]".to_string())
    );

    // Prometheus gone: an error naming the address, quickly.
    server.stop().await;
    let started = Instant::now();
    let err = query(&url, SUCCESS_RATE).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        err.0
            .starts_with(&format!("Post \"{url}/api/v1/query\": cannot connect")),
        "{err}"
    );
}

/// What the fake Prometheus saw.
#[derive(Clone, Debug, Default)]
struct Seen {
    method: String,
    params: Vec<(String, String)>,
    content_type: Option<String>,
    authorization: Option<String>,
    custom: Option<String>,
}

fn vector_body(v: &str) -> String {
    json!({"status": "success", "data": {"resultType": "vector",
        "result": [{"metric": {}, "value": [1700000000.0, v]}]}})
    .to_string()
}

#[tokio::test]
async fn request_format_headers_and_basic_auth() {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let record = seen.clone();
    let router = axum::Router::new().route(
        "/prom/api/v1/query",
        post(move |headers: HeaderMap, body: String| {
            let record = record.clone();
            async move {
                let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).map(String::from);
                record.lock().unwrap().push(Seen {
                    method: "POST".into(),
                    params: form_pairs(&body),
                    content_type: h("content-type"),
                    authorization: h("authorization"),
                    custom: h("x-scope-orgid"),
                });
                vector_body("0.5")
            }
        }),
    );
    let addr = serve(router).await;
    let m = PrometheusMetric {
        headers: Some(vec![WebMetricHeader {
            key: "X-Scope-OrgID".into(),
            value: "tenant-1".into(),
        }]),
        authentication: Some(Authentication {
            basic_auth: Some(BasicAuth {
                username: Some("user".into()),
                password: Some("pass".into()),
            }),
            ..Default::default()
        }),
        ..metric(&format!("http://{addr}/prom/"), "up")
    };
    let now: jiff::Timestamp = "2024-01-01T00:00:00.25Z".parse().unwrap();
    assert_eq!(
        value(prometheus::measure(&m, None, now).await.unwrap()),
        (json!([0.5]), "[0.5]".to_string())
    );
    let seen = seen.lock().unwrap()[0].clone();
    assert_eq!(seen.method, "POST");
    assert_eq!(
        seen.params,
        vec![
            ("query".to_string(), "up".to_string()),
            ("time".to_string(), "1704067200.25".to_string())
        ]
    );
    assert_eq!(
        seen.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    // base64("user:pass")
    assert_eq!(seen.authorization.as_deref(), Some("Basic dXNlcjpwYXNz"));
    assert_eq!(seen.custom.as_deref(), Some("tenant-1"));
}

#[tokio::test]
async fn post_not_allowed_falls_back_to_get_and_oauth2_token_is_used() {
    let router = axum::Router::new()
        .route(
            "/api/v1/query",
            post(|| async { (StatusCode::METHOD_NOT_ALLOWED, "") }).get(
                |headers: HeaderMap, RawQuery(q): RawQuery| async move {
                    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
                    let params = form_pairs(&q.unwrap_or_default());
                    if auth != Some("Bearer prom-token")
                        || !params.iter().any(|(k, v)| k == "query" && v == "up")
                    {
                        return (StatusCode::UNAUTHORIZED, String::new());
                    }
                    (StatusCode::OK, vector_body("1"))
                },
            ),
        )
        .route(
            "/oauth/token",
            post(|| async { json!({"access_token": "prom-token", "token_type": "Bearer"}).to_string() }),
        );
    let addr = serve(router).await;
    let m = PrometheusMetric {
        authentication: Some(Authentication {
            oauth2: Some(OAuth2Config {
                token_url: Some(format!("http://{addr}/oauth/token")),
                client_id: Some("c".into()),
                client_secret: Some("s".into()),
                scopes: None,
            }),
            ..Default::default()
        }),
        ..metric(&format!("http://{addr}"), "up")
    };
    assert_eq!(
        value(
            prometheus::measure(&m, None, jiff::Timestamp::now())
                .await
                .unwrap()
        ),
        (json!([1.0]), "[1]".to_string())
    );
}

#[tokio::test]
async fn error_responses_name_the_address() {
    let router = axum::Router::new()
        .route(
            "/bad/api/v1/query",
            post(|| async {
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"status": "error", "errorType": "execution", "error": "too many samples"})
                        .to_string(),
                )
            }),
        )
        .route(
            "/missing/api/v1/query",
            post(|| async { (StatusCode::NOT_FOUND, "404 page not found") }),
        )
        .route(
            "/html/api/v1/query",
            get(|| async { "<html>" }).post(|| async { "<html>" }),
        );
    let addr = serve(router).await;
    let bad = format!("http://{addr}/bad");
    assert_eq!(
        query(&bad, "up").await.unwrap_err().0,
        format!("query to Prometheus at {bad} failed: execution: too many samples")
    );
    let missing = format!("http://{addr}/missing");
    assert_eq!(
        query(&missing, "up").await.unwrap_err().0,
        format!("query to Prometheus at {missing} failed: client_error: client error: 404")
    );
    let html = format!("http://{addr}/html");
    let err = query(&html, "up").await.unwrap_err();
    assert!(
        err.0
            .starts_with(&format!("query to Prometheus at {html} failed: bad_response: ")),
        "{err}"
    );
}

#[tokio::test]
async fn slow_prometheus_times_out() {
    let router = axum::Router::new().route(
        "/api/v1/query",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            vector_body("1")
        }),
    );
    let addr = serve(router).await;
    let m = PrometheusMetric {
        timeout: Some(1),
        ..metric(&format!("http://{addr}"), "up")
    };
    let started = Instant::now();
    let err = prometheus::measure(&m, None, jiff::Timestamp::now())
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        err.0,
        format!("Post \"http://{addr}/api/v1/query\": timeout after 1s")
    );
}

#[tokio::test]
async fn unreachable_and_unconfigured_addresses() {
    let port = unused_port();
    let address = format!("http://127.0.0.1:{port}");
    let err = query(&address, "up").await.unwrap_err();
    assert!(
        err.0
            .starts_with(&format!("Post \"{address}/api/v1/query\": cannot connect")),
        "{err}"
    );
    let no_address = PrometheusMetric {
        query: Some("up".into()),
        ..Default::default()
    };
    let err = prometheus::measure(&no_address, None, jiff::Timestamp::now())
        .await
        .unwrap_err();
    assert!(err.0.starts_with("prometheus address is not configured"), "{err}");
}
