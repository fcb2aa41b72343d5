//! The Prometheus provider: one instant query (`/api/v1/query`) or, with `rangeQuery`, one
//! range query (`/api/v1/query_range`), sent as Prometheus' Go client sends it (a form `POST`,
//! retried as `GET` when the server answers 405 or 501), and its result mapped as Argo maps it:
//!
//! | result type | `result` for the conditions | measurement `value` |
//! |---|---|---|
//! | `scalar` | the number | `0.98` |
//! | `vector` | array of the sample values | `[0.98,1]` |
//! | `matrix` | array of every sample of every series, in order | `[0.5,0.6,0.7]` |
//! | `string` | error `Prometheus metric type not supported` | |
//!
//! Numbers are written as Go's `strconv.FormatFloat(v, 'f', -1, 64)` writes them, with `NaN`,
//! `+Inf` and `-Inf` for the non-finite ones. JSON has no such numbers: in `result` they are
//! the strings `"NaN"`, `"+Inf"`, `"-Inf"`, which the conditions read back as floats
//! ([`crate::evaluate`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use shared_types::analysis::{
    DEFAULT_PROMETHEUS_TIMEOUT_SECONDS, PROMETHEUS_WARNINGS_METADATA_KEY, PrometheusMetric,
    PrometheusRangeQueryArgs,
};
use shared_types::duration::parse_go_duration_nanos;

use super::{ProviderError, Reading, describe_request_error, go_method, http_client, oauth2_token};

/// The query timeout: `timeout` seconds, 30 when unset or 0 (a negative value is an error).
pub fn query_timeout(metric: &PrometheusMetric) -> Result<Duration, ProviderError> {
    match metric.timeout {
        Some(t) if t < 0 => Err(ProviderError::new("prometheus timeout should not be negative")),
        Some(t) if t > 0 => Ok(Duration::from_secs(t.unsigned_abs())),
        _ => Ok(Duration::from_secs(
            DEFAULT_PROMETHEUS_TIMEOUT_SECONDS.unsigned_abs(),
        )),
    }
}

/// The server address: the metric's `address`, else `ARGO_ROLLOUTS_PROMETHEUS_ADDRESS`
/// (`env_address`). It must be a URL with a scheme and a host.
pub fn resolve_address(address: Option<&str>, env_address: Option<&str>) -> Result<String, ProviderError> {
    let address = match (
        address.map(str::trim).filter(|a| !a.is_empty()),
        env_address.map(str::trim).filter(|a| !a.is_empty()),
    ) {
        (Some(a), _) => a,
        (None, Some(a)) => a,
        (None, None) => {
            return Err(ProviderError::new(
                "prometheus address is not configured (set provider.prometheus.address or \
                 ARGO_ROLLOUTS_PROMETHEUS_ADDRESS)",
            ));
        }
    };
    match reqwest::Url::parse(address) {
        Ok(url) if url.has_host() && !url.scheme().is_empty() => Ok(address.to_string()),
        _ => Err(ProviderError(format!(
            "prometheus address {address:?} is not a URL"
        ))),
    }
}

/// `<address>/api/v1/<endpoint>`, keeping a path prefix of the address.
pub fn endpoint_url(address: &str, endpoint: &str) -> String {
    format!("{}/api/v1/{endpoint}", address.trim_end_matches('/'))
}

/// Request parameters: name → value, in the order sent.
pub type Params = Vec<(&'static str, String)>;

/// The endpoint (`query` or `query_range`) and form parameters of the request: `query` and
/// `time` (instant) or `query`, `start`, `end`, `step` (range). Times are Unix seconds with a
/// fraction, as Prometheus' Go client writes them.
pub fn query_params(
    query: &str,
    range: Option<&PrometheusRangeQueryArgs>,
    now: jiff::Timestamp,
) -> Result<(&'static str, Params), ProviderError> {
    let Some(range) = range else {
        return Ok((
            "query",
            vec![("query", query.to_string()), ("time", format_time(now))],
        ));
    };
    let start = eval_time(range.start.as_deref().unwrap_or_default(), now)
        .map_err(|e| ProviderError(format!("rangeQuery.start: {e}")))?;
    let end = eval_time(range.end.as_deref().unwrap_or_default(), now)
        .map_err(|e| ProviderError(format!("rangeQuery.end: {e}")))?;
    let step_text = range.step.as_deref().unwrap_or_default().trim();
    let step = parse_go_duration_nanos(step_text)
        .map_err(|e| ProviderError(format!("rangeQuery.step {step_text:?}: {e}")))?;
    if step <= 0 {
        return Err(ProviderError(format!(
            "rangeQuery.step {step_text:?} must be positive"
        )));
    }
    // Go: strconv.FormatFloat(step.Seconds(), 'f', -1, 64).
    let step_seconds = step as f64 / 1e9;
    Ok((
        "query_range",
        vec![
            ("query", query.to_string()),
            ("start", format_time(start)),
            ("end", format_time(end)),
            ("step", format_float(step_seconds)),
        ],
    ))
}

fn format_time(t: jiff::Timestamp) -> String {
    let seconds = t.as_second() as f64 + f64::from(t.subsec_nanosecond()) / 1e9;
    format_float(seconds)
}

/// Evaluates a range-query time expression as Argo allows them: `now()` plus or minus any
/// number of `duration("<Go duration>")` terms, e.g. `now() - duration("5m")`.
pub fn eval_time(expression: &str, now: jiff::Timestamp) -> Result<jiff::Timestamp, String> {
    let mut rest = expression.trim();
    let invalid = || format!("cannot evaluate {expression:?}: expected now() [+|- duration(\"5m\")]...");
    rest = rest.strip_prefix("now()").ok_or_else(invalid)?.trim_start();
    let mut t = now;
    while !rest.is_empty() {
        let sign: i64 = match rest.as_bytes().first() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Err(invalid()),
        };
        rest = rest[1..].trim_start();
        rest = rest.strip_prefix("duration(").ok_or_else(invalid)?.trim_start();
        let quote = rest
            .chars()
            .next()
            .filter(|c| *c == '"' || *c == '\'' || *c == '`');
        let quote = quote.ok_or_else(invalid)?;
        rest = &rest[1..];
        let close = rest.find(quote).ok_or_else(invalid)?;
        let text = &rest[..close];
        rest = rest[close + 1..].trim_start();
        rest = rest.strip_prefix(')').ok_or_else(invalid)?.trim_start();
        let nanos = parse_go_duration_nanos(text).map_err(|e| format!("{expression:?}: {e}"))?;
        let span = jiff::SignedDuration::from_nanos(nanos.saturating_mul(sign));
        t = t.checked_add(span).map_err(|e| format!("{expression:?}: {e}"))?;
    }
    Ok(t)
}

/// Runs the metric's query and maps the result. `env_address` is
/// `ARGO_ROLLOUTS_PROMETHEUS_ADDRESS`; `now` is the query time (and `now()` of range queries).
pub async fn measure(
    metric: &PrometheusMetric,
    env_address: Option<&str>,
    now: jiff::Timestamp,
) -> Result<Reading, ProviderError> {
    let address = resolve_address(metric.address.as_deref(), env_address)?;
    let timeout = query_timeout(metric)?;
    if address.contains("aps-workspaces") {
        return Err(ProviderError(format!(
            "prometheus at {address}: SigV4 authentication (Amazon Managed Prometheus) is not \
             supported"
        )));
    }
    let query = metric.query.as_deref().unwrap_or_default();
    let (endpoint, params) = query_params(query, metric.range_query.as_ref(), now)?;
    let url = endpoint_url(&address, endpoint);
    let client = http_client(metric.insecure.unwrap_or(false))?;

    let call = async {
        let mut headers = reqwest::header::HeaderMap::new();
        for h in metric.headers.as_deref().unwrap_or_default() {
            let name = reqwest::header::HeaderName::from_bytes(h.key.as_bytes())
                .map_err(|e| ProviderError(format!("header {:?}: {e}", h.key)))?;
            let value = reqwest::header::HeaderValue::from_str(&h.value)
                .map_err(|e| ProviderError(format!("header {:?}: {e}", h.key)))?;
            headers.insert(name, value);
        }
        let auth = metric.authentication.as_ref();
        let basic = auth
            .and_then(|a| a.basic_auth.as_ref())
            .filter(|b| b.username.as_deref().is_some_and(|u| !u.is_empty()) || b.password.is_some());
        let oauth2 = auth
            .and_then(|a| a.oauth2.as_ref())
            .filter(|o| o.token_url.as_deref().is_some_and(|u| !u.is_empty()));
        let bearer = match oauth2 {
            Some(config) => Some(oauth2_token(&client, config, timeout).await?),
            None => None,
        };
        let build = |method: reqwest::Method| {
            let mut request = if method == reqwest::Method::POST {
                client.post(&url).form(&params)
            } else {
                client.get(&url).query(&params)
            };
            request = request.timeout(timeout).headers(headers.clone());
            if let Some(b) = basic {
                request = request.basic_auth(b.username.clone().unwrap_or_default(), b.password.clone());
            }
            if let Some(token) = &bearer {
                request = request.bearer_auth(token);
            }
            request
        };
        let transport = |method: &reqwest::Method, e: reqwest::Error| {
            ProviderError(format!(
                "{} \"{url}\": {}",
                go_method(method),
                describe_request_error(&e, timeout)
            ))
        };
        let mut method = reqwest::Method::POST;
        let mut response = build(method.clone())
            .send()
            .await
            .map_err(|e| transport(&method, e))?;
        if matches!(response.status().as_u16(), 405 | 501) {
            method = reqwest::Method::GET;
            response = build(method.clone())
                .send()
                .await
                .map_err(|e| transport(&method, e))?;
        }
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|e| transport(&method, e))?;
        Ok::<_, ProviderError>((status, body))
    };
    let (status, body) = match tokio::time::timeout(timeout, call).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(ProviderError(format!(
                "Post \"{url}\": timeout after {}",
                super::format_duration(timeout)
            )));
        }
    };
    let data = parse_response(status, &body)
        .map_err(|cause| ProviderError(format!("query to Prometheus at {address} failed: {cause}")))?;
    map_result(&data)
}

/// The successful part of a Prometheus API response.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryData {
    /// `vector`, `scalar`, `matrix` or `string`.
    pub result_type: String,
    /// `data.result` as sent.
    pub result: serde_json::Value,
    /// API warnings.
    pub warnings: Vec<String>,
}

#[derive(Deserialize)]
struct ApiResponse {
    #[serde(default)]
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct ApiData {
    #[serde(default, rename = "resultType")]
    result_type: String,
    #[serde(default)]
    result: serde_json::Value,
}

/// Reads an API response as Prometheus' Go client does: HTTP codes other than 2xx, 400, 422
/// and 503 are `client_error` / `server_error`; a body with `status: error` is
/// `<errorType>: <error>`; a body that is not the API's JSON is `bad_response`.
pub fn parse_response(status: u16, body: &str) -> Result<QueryData, String> {
    let success = (200..300).contains(&status);
    if !success && !matches!(status, 400 | 422 | 503) {
        return Err(if (400..500).contains(&status) {
            format!("client_error: client error: {status}")
        } else {
            format!("server_error: server error: {status}")
        });
    }
    let parsed: ApiResponse = serde_json::from_str(body).map_err(|e| {
        if success {
            format!("bad_response: {e}")
        } else {
            format!("server_error: server error: {status}")
        }
    })?;
    if parsed.status == "error" || !success {
        let kind = parsed.error_type.unwrap_or_else(|| "server_error".into());
        let message = parsed.error.unwrap_or_else(|| format!("server error: {status}"));
        return Err(format!("{kind}: {message}"));
    }
    let data = parsed
        .data
        .ok_or_else(|| "bad_response: response has no data".to_string())?;
    Ok(QueryData {
        result_type: data.result_type,
        result: data.result,
        warnings: parsed.warnings.unwrap_or_default(),
    })
}

/// Maps query data to the measurement reading (see the module docs).
pub fn map_result(data: &QueryData) -> Result<Reading, ProviderError> {
    let bad = |what: &str| ProviderError(format!("bad_response: malformed {what} result"));
    let values: Vec<f64>;
    let scalar: Option<f64>;
    match data.result_type.as_str() {
        "scalar" => {
            scalar = Some(sample_value(&data.result).ok_or_else(|| bad("scalar"))?);
            values = Vec::new();
        }
        "vector" => {
            scalar = None;
            let series = data.result.as_array().ok_or_else(|| bad("vector"))?;
            let mut out = Vec::with_capacity(series.len());
            for s in series {
                // Native histogram samples carry `histogram` instead of `value`: no float.
                if let Some(v) = s.get("value") {
                    out.push(sample_value(v).ok_or_else(|| bad("vector"))?);
                }
            }
            values = out;
        }
        "matrix" => {
            scalar = None;
            let series = data.result.as_array().ok_or_else(|| bad("matrix"))?;
            let mut out = Vec::new();
            for s in series {
                let samples = s.get("values").and_then(|v| v.as_array());
                for v in samples.map(Vec::as_slice).unwrap_or_default() {
                    out.push(sample_value(v).ok_or_else(|| bad("matrix"))?);
                }
            }
            values = out;
        }
        other => {
            return Err(ProviderError(format!(
                "Prometheus metric type not supported (result type {other:?})"
            )));
        }
    }

    let mut metadata = BTreeMap::new();
    if !data.warnings.is_empty() {
        // Argo: each warning quoted, joined with ", ".
        let joined: Vec<String> = data.warnings.iter().map(|w| format!("\"{w}\"")).collect();
        metadata.insert(PROMETHEUS_WARNINGS_METADATA_KEY.to_string(), joined.join(", "));
    }
    Ok(match scalar {
        Some(v) => Reading::Value {
            result: json_float(v),
            text: format_float(v),
            metadata,
        },
        None => {
            let text = format!(
                "[{}]",
                values
                    .iter()
                    .map(|v| format_float(*v))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            Reading::Value {
                result: serde_json::Value::Array(values.iter().map(|v| json_float(*v)).collect()),
                text,
                metadata,
            }
        }
    })
}

/// A sample value in `result`: a JSON number, or `"NaN"`, `"+Inf"`, `"-Inf"`.
pub fn json_float(v: f64) -> serde_json::Value {
    if v.is_finite() {
        serde_json::Value::from(v)
    } else {
        serde_json::Value::String(format_float(v))
    }
}

/// `[<unix time>, "<value>"]` → the value.
fn sample_value(pair: &serde_json::Value) -> Option<f64> {
    parse_sample(pair.as_array()?.get(1)?.as_str()?)
}

/// A sample value as Prometheus writes it (Go's `ParseFloat`: `NaN`, `+Inf`, `-Inf`, decimal
/// and exponent forms).
pub fn parse_sample(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => text.parse::<f64>().ok(),
    }
}

/// A float as Go's `strconv.FormatFloat(v, 'f', -1, 64)` (Prometheus' `SampleValue.String`):
/// shortest exact decimal, never an exponent; `NaN`, `+Inf`, `-Inf`.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(body: serde_json::Value) -> QueryData {
        parse_response(200, &body.to_string()).unwrap()
    }

    fn value(reading: &Reading) -> (&serde_json::Value, &str) {
        match reading {
            Reading::Value { result, text, .. } => (result, text),
            other => panic!("not a value: {other:?}"),
        }
    }

    #[test]
    fn vector_maps_to_array_of_values() {
        let d = data(
            json!({"status": "success", "data": {"resultType": "vector", "result": [
                {"metric": {"a": "1"}, "value": [1700000000.5, "0.98"]},
                {"metric": {"a": "2"}, "value": [1700000000.5, "1"]},
            ]}}),
        );
        let r = map_result(&d).unwrap();
        let (result, text) = value(&r);
        assert_eq!(result, &json!([0.98, 1.0]));
        assert_eq!(text, "[0.98,1]");
    }

    #[test]
    fn empty_vector_is_empty_array() {
        let d = data(json!({"status": "success", "data": {"resultType": "vector", "result": []}}));
        let r = map_result(&d).unwrap();
        let (result, text) = value(&r);
        assert_eq!(result, &json!([]));
        assert_eq!(text, "[]");
    }

    #[test]
    fn scalar_maps_to_number() {
        let d = data(json!({"status": "success", "data": {"resultType": "scalar",
            "result": [1700000000, "0.5"]}}));
        let r = map_result(&d).unwrap();
        let (result, text) = value(&r);
        assert_eq!(result, &json!(0.5));
        assert_eq!(text, "0.5");
    }

    #[test]
    fn matrix_flattens_every_sample() {
        let d = data(
            json!({"status": "success", "data": {"resultType": "matrix", "result": [
                {"metric": {}, "values": [[1, "1"], [2, "2.5"]]},
                {"metric": {}, "values": [[1, "3"]]},
            ]}}),
        );
        let r = map_result(&d).unwrap();
        let (result, text) = value(&r);
        assert_eq!(result, &json!([1.0, 2.5, 3.0]));
        assert_eq!(text, "[1,2.5,3]");
    }

    #[test]
    fn string_result_is_not_supported() {
        let d = data(json!({"status": "success", "data": {"resultType": "string",
            "result": [1, "hello"]}}));
        let err = map_result(&d).unwrap_err();
        assert!(err.0.starts_with("Prometheus metric type not supported"), "{err}");
    }

    #[test]
    fn nan_and_inf_become_their_go_names() {
        let d = data(
            json!({"status": "success", "data": {"resultType": "vector", "result": [
                {"metric": {}, "value": [1, "NaN"]},
                {"metric": {}, "value": [1, "+Inf"]},
                {"metric": {}, "value": [1, "-Inf"]},
                {"metric": {}, "value": [1, "0.25"]},
            ]}}),
        );
        let r = map_result(&d).unwrap();
        let (result, text) = value(&r);
        assert_eq!(text, "[NaN,+Inf,-Inf,0.25]");
        assert_eq!(result, &json!(["NaN", "+Inf", "-Inf", 0.25]));

        let scalar = data(json!({"status": "success", "data": {"resultType": "scalar",
            "result": [1, "NaN"]}}));
        let r = map_result(&scalar).unwrap();
        assert_eq!(value(&r), (&json!("NaN"), "NaN"));
    }

    #[test]
    fn floats_are_written_like_go() {
        assert_eq!(format_float(0.98), "0.98");
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(-0.0), "-0");
        assert_eq!(format_float(1e21), "1000000000000000000000");
        assert_eq!(format_float(1e-7), "0.0000001");
        assert_eq!(format_float(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(parse_sample("1e+21"), Some(1e21));
        assert_eq!(parse_sample("abc"), None);
    }

    #[test]
    fn warnings_go_to_metadata() {
        let d = data(json!({"status": "success", "warnings": ["w1", "w2"],
            "data": {"resultType": "scalar", "result": [1, "1"]}}));
        let Reading::Value { metadata, .. } = map_result(&d).unwrap() else {
            panic!("not a value");
        };
        assert_eq!(
            metadata.get("warnings").map(String::as_str),
            Some("\"w1\", \"w2\"")
        );
    }

    #[test]
    fn error_bodies_and_codes() {
        let body = json!({"status": "error", "errorType": "bad_data",
            "error": "invalid parameter \"query\": parse error"})
        .to_string();
        assert_eq!(
            parse_response(400, &body).unwrap_err(),
            "bad_data: invalid parameter \"query\": parse error"
        );
        let timeout =
            json!({"status": "error", "errorType": "timeout", "error": "query timed out"}).to_string();
        assert_eq!(
            parse_response(503, &timeout).unwrap_err(),
            "timeout: query timed out"
        );
        assert_eq!(
            parse_response(404, "404 page not found").unwrap_err(),
            "client_error: client error: 404"
        );
        assert_eq!(
            parse_response(502, "bad gateway").unwrap_err(),
            "server_error: server error: 502"
        );
        assert!(
            parse_response(200, "<html>")
                .unwrap_err()
                .starts_with("bad_response: ")
        );
        // A 2xx body saying error is still an error.
        assert_eq!(
            parse_response(200, &body).unwrap_err(),
            "bad_data: invalid parameter \"query\": parse error"
        );
    }

    #[test]
    fn address_falls_back_to_env_and_must_be_a_url() {
        assert_eq!(
            resolve_address(Some("http://p:9090"), Some("http://env:9090")).unwrap(),
            "http://p:9090"
        );
        assert_eq!(
            resolve_address(Some(""), Some("http://env:9090")).unwrap(),
            "http://env:9090"
        );
        assert_eq!(
            resolve_address(None, Some("http://env:9090")).unwrap(),
            "http://env:9090"
        );
        assert!(
            resolve_address(None, None)
                .unwrap_err()
                .0
                .starts_with("prometheus address is not configured")
        );
        assert!(resolve_address(Some("prometheus:9090/x"), None).is_err());
        assert!(resolve_address(Some("not a url"), None).is_err());
        assert_eq!(
            endpoint_url("http://p:9090/prom/", "query"),
            "http://p:9090/prom/api/v1/query"
        );
    }

    #[test]
    fn timeout_defaults_to_30s() {
        let mut m = PrometheusMetric::default();
        assert_eq!(query_timeout(&m).unwrap(), Duration::from_secs(30));
        m.timeout = Some(5);
        assert_eq!(query_timeout(&m).unwrap(), Duration::from_secs(5));
        m.timeout = Some(-1);
        assert!(query_timeout(&m).is_err());
    }

    #[test]
    fn instant_and_range_params() {
        let now: jiff::Timestamp = "2024-01-01T00:00:00.5Z".parse().unwrap();
        let (endpoint, params) = query_params("up", None, now).unwrap();
        assert_eq!(endpoint, "query");
        assert_eq!(
            params,
            vec![("query", "up".to_string()), ("time", "1704067200.5".to_string())]
        );

        let range = PrometheusRangeQueryArgs {
            start: Some("now() - duration(\"5m\")".into()),
            end: Some("now()".into()),
            step: Some("1m30s".into()),
        };
        let (endpoint, params) = query_params("up", Some(&range), now).unwrap();
        assert_eq!(endpoint, "query_range");
        assert_eq!(
            params,
            vec![
                ("query", "up".to_string()),
                ("start", "1704066900.5".to_string()),
                ("end", "1704067200.5".to_string()),
                ("step", "90".to_string()),
            ]
        );
        let bad = PrometheusRangeQueryArgs {
            start: Some("yesterday".into()),
            end: Some("now()".into()),
            step: Some("1m".into()),
        };
        assert!(query_params("up", Some(&bad), now).is_err());
    }

    #[test]
    fn time_expressions() {
        let now: jiff::Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let at = |s: &str| eval_time(s, now).map(|t| t.as_second() - now.as_second());
        assert_eq!(at("now()"), Ok(0));
        assert_eq!(at(" now() - duration('1h') "), Ok(-3600));
        assert_eq!(at("now()-duration(\"1m\")+duration(\"30s\")"), Ok(-30));
        assert!(at("now() * 2").is_err());
        assert!(at("duration(\"1m\")").is_err());
        assert!(at("now() - duration(\"1x\")").is_err());
    }
}
