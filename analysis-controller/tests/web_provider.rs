//! The web provider against local HTTP servers started by each test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod support;

use std::time::{Duration, Instant};

use analysis_controller::provider::{self, ProviderContext, ProviderEnv, Reading, web};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use serde_json::json;
use shared_types::analysis::{
    AnalysisRun, Authentication, Metric, MetricProvider, OAuth2Config, WebMetric, WebMetricHeader,
};
use support::http::{form_pairs, serve, unused_port};

fn value(reading: Reading) -> (serde_json::Value, String) {
    match reading {
        Reading::Value { result, text, .. } => (result, text),
        other => panic!("not a value: {other:?}"),
    }
}

fn header(key: &str, value: &str) -> WebMetricHeader {
    WebMetricHeader {
        key: key.into(),
        value: value.into(),
    }
}

#[tokio::test]
async fn get_with_headers_and_json_path() {
    let router = axum::Router::new().route(
        "/status",
        get(|headers: HeaderMap| async move {
            if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some("secret-key") {
                return (StatusCode::UNAUTHORIZED, "missing key".to_string());
            }
            let body = json!({"data": {"ok": true, "successPercent": 0.97, "version": {"major": "1"}}});
            (StatusCode::OK, body.to_string())
        }),
    );
    let addr = serve(router).await;
    let mut metric = WebMetric {
        url: format!("http://{addr}/status"),
        headers: Some(vec![header("X-Api-Key", "secret-key")]),
        json_path: Some("{$.data.successPercent}".into()),
        ..Default::default()
    };
    assert_eq!(
        value(web::measure(&metric).await.unwrap()),
        (json!(0.97), "0.97".to_string())
    );
    metric.json_path = Some("{$.data.version}".into());
    let (result, text) = value(web::measure(&metric).await.unwrap());
    assert_eq!(result["major"], json!("1"));
    assert_eq!(text, r#"{"major":"1"}"#);
    // Default path: the whole body.
    metric.json_path = None;
    let (result, _) = value(web::measure(&metric).await.unwrap());
    assert_eq!(result["data"]["ok"], json!(true));
    // Without the header the server answers 401.
    metric.headers = None;
    assert_eq!(
        web::measure(&metric).await.unwrap_err().0,
        "received non 2xx response code: 401"
    );
}

#[tokio::test]
async fn post_json_body_and_put_text_body() {
    // The server echoes what it received.
    let echo = |method: &'static str| {
        move |headers: HeaderMap, body: Bytes| async move {
            let content_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            json!({
                "method": method,
                "contentType": content_type,
                "body": String::from_utf8_lossy(&body),
                "custom": headers.get("x-custom").and_then(|v| v.to_str().ok()),
            })
            .to_string()
        }
    };
    let router = axum::Router::new()
        .route("/echo", post(echo("POST")))
        .route("/echo", put(echo("PUT")));
    let addr = serve(router).await;

    let post_metric = WebMetric {
        method: Some("POST".into()),
        url: format!("http://{addr}/echo"),
        headers: Some(vec![header("X-Custom", "yes")]),
        json_body: Some(json!({"query": "select 1", "limit": 5})),
        json_path: Some("{$}".into()),
        ..Default::default()
    };
    let (result, _) = value(web::measure(&post_metric).await.unwrap());
    assert_eq!(result["method"], json!("POST"));
    assert_eq!(result["contentType"], json!("application/json"));
    assert_eq!(result["custom"], json!("yes"));
    let sent: serde_json::Value = serde_json::from_str(result["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent, json!({"query": "select 1", "limit": 5}));

    let put_metric = WebMetric {
        method: Some("PUT".into()),
        url: format!("http://{addr}/echo"),
        body: Some("plain text".into()),
        json_path: Some("{$.body}".into()),
        ..Default::default()
    };
    assert_eq!(
        value(web::measure(&put_metric).await.unwrap()),
        (json!("plain text"), "\"plain text\"".to_string())
    );
}

#[tokio::test]
async fn non_2xx_is_an_error_and_text_bodies_are_strings() {
    let router = axum::Router::new()
        .route("/down", get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "{}") }))
        .route("/text", get(|| async { "It worked!" }));
    let addr = serve(router).await;
    let down = WebMetric {
        url: format!("http://{addr}/down"),
        ..Default::default()
    };
    assert_eq!(
        web::measure(&down).await.unwrap_err().0,
        "received non 2xx response code: 503"
    );
    let text = WebMetric {
        url: format!("http://{addr}/text"),
        ..Default::default()
    };
    assert_eq!(
        value(web::measure(&text).await.unwrap()),
        (json!("It worked!"), "It worked!".to_string())
    );
}

#[tokio::test]
async fn slow_server_times_out() {
    let router = axum::Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "{}"
        }),
    );
    let addr = serve(router).await;
    let metric = WebMetric {
        url: format!("http://{addr}/slow"),
        timeout_seconds: Some(1),
        ..Default::default()
    };
    let started = Instant::now();
    let err = web::measure(&metric).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(err.0, format!("Get \"http://{addr}/slow\": timeout after 1s"));
}

#[tokio::test]
async fn unreachable_server_names_the_url() {
    let port = unused_port();
    let metric = WebMetric {
        url: format!("http://127.0.0.1:{port}/status"),
        ..Default::default()
    };
    let err = web::measure(&metric).await.unwrap_err();
    assert!(
        err.0
            .starts_with(&format!("Get \"http://127.0.0.1:{port}/status\": cannot connect")),
        "{err}"
    );
}

#[tokio::test]
async fn oauth2_client_credentials_token_is_sent() {
    let router = axum::Router::new()
        .route(
            "/token",
            post(|headers: HeaderMap, body: String| async move {
                let form = form_pairs(&body);
                let grant = form
                    .iter()
                    .any(|(k, v)| k == "grant_type" && v == "client_credentials");
                let scope = form.iter().any(|(k, v)| k == "scope" && v == "read write");
                // Go's client sends the credentials as basic auth first.
                let basic = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("Basic "));
                if grant && scope && basic {
                    (
                        StatusCode::OK,
                        json!({"access_token": "tok-123", "token_type": "bearer"}).to_string(),
                    )
                } else {
                    (
                        StatusCode::BAD_REQUEST,
                        json!({"error": "invalid_request"}).to_string(),
                    )
                }
            }),
        )
        .route(
            "/data",
            get(|headers: HeaderMap| async move {
                match headers.get("authorization").and_then(|v| v.to_str().ok()) {
                    Some("Bearer tok-123") => (StatusCode::OK, r#"{"ok": true}"#),
                    _ => (StatusCode::UNAUTHORIZED, "{}"),
                }
            }),
        );
    let addr = serve(router).await;
    let metric = WebMetric {
        url: format!("http://{addr}/data"),
        json_path: Some("{$.ok}".into()),
        authentication: Some(Authentication {
            oauth2: Some(OAuth2Config {
                token_url: Some(format!("http://{addr}/token")),
                client_id: Some("id".into()),
                client_secret: Some("s3cret".into()),
                scopes: Some(vec!["read".into(), "write".into()]),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        value(web::measure(&metric).await.unwrap()),
        (json!(true), "true".to_string())
    );
}

#[tokio::test]
async fn dispatch_runs_web_metrics() {
    let router = axum::Router::new().route("/v", get(|| async { r#"{"v": 3}"# }));
    let addr = serve(router).await;
    let metric = Metric {
        name: "web".into(),
        provider: MetricProvider {
            web: Some(WebMetric {
                url: format!("http://{addr}/v"),
                json_path: Some("{$.v}".into()),
                ..Default::default()
            }),
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
        value(provider::measure(ctx, &metric).await.unwrap()),
        (json!(3.0), "3".to_string())
    );
    assert_eq!(provider::metric_type(&metric), "Web");
}
