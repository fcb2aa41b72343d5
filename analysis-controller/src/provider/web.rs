//! The web provider: one HTTP request (`GET`, `POST` or `PUT`) whose response gives the value.
//!
//! As in Argo: `body` or `jsonBody` only with `POST`/`PUT` (`jsonBody` also sets
//! `Content-Type: application/json`); the timeout is `timeoutSeconds` (10); a status outside
//! 2xx is an error `received non 2xx response code: N`. A JSON response is narrowed with
//! `jsonPath` (Kubernetes JSONPath such as `{$.data.ok}`, default `{$}`), whose first match is
//! the `result` (numbers as floats, as Go decodes them) and whose JSON encoding is the
//! measurement's `value` (strings keep their quotes). A response that is not JSON is given as
//! is, as a string.

use std::collections::BTreeMap;
use std::time::Duration;

use jsonpath_rust::JsonPath;
use shared_types::analysis::WebMetric;

use super::{ProviderError, Reading, describe_request_error, go_method, http_client, oauth2_token};

/// Methods Argo's web provider accepts.
const METHODS: [&str; 3] = ["GET", "POST", "PUT"];

/// The request timeout: `timeoutSeconds`, 10 when unset or not positive.
pub fn request_timeout(metric: &WebMetric) -> Duration {
    Duration::from_secs(metric.timeout_seconds().unsigned_abs())
}

/// Sends the metric's request and reads the value from the response.
pub async fn measure(metric: &WebMetric) -> Result<Reading, ProviderError> {
    let method_text = metric.method().to_ascii_uppercase();
    if !METHODS.contains(&method_text.as_str()) {
        return Err(ProviderError(format!(
            "web metric method {:?} is not supported (GET, POST or PUT)",
            metric.method()
        )));
    }
    let string_body = metric.body.as_deref().filter(|b| !b.is_empty());
    let json_body = metric.json_body.as_ref();
    if string_body.is_some() && json_body.is_some() {
        return Err(ProviderError::new(
            "use either Body or JSONBody; both cannot exists for WebMetric payload",
        ));
    }
    if (string_body.is_some() || json_body.is_some()) && method_text == "GET" {
        return Err(ProviderError::new(
            "Body/JSONBody can only be used with POST or PUT WebMetric Method types",
        ));
    }
    let json_path = to_jsonpath(metric.json_path())?;
    let url = reqwest::Url::parse(&metric.url)
        .map_err(|e| ProviderError(format!("invalid web metric url {:?}: {e}", metric.url)))?;
    let method = reqwest::Method::from_bytes(method_text.as_bytes())
        .map_err(|e| ProviderError(format!("web metric method {method_text:?}: {e}")))?;
    let timeout = request_timeout(metric);
    let client = http_client(metric.insecure.unwrap_or(false))?;
    let shown_url = metric.url.clone();

    let call = async {
        let mut request = client.request(method.clone(), url).timeout(timeout);
        for h in metric.headers.as_deref().unwrap_or_default() {
            let name = reqwest::header::HeaderName::from_bytes(h.key.as_bytes())
                .map_err(|e| ProviderError(format!("header {:?}: {e}", h.key)))?;
            let value = reqwest::header::HeaderValue::from_str(&h.value)
                .map_err(|e| ProviderError(format!("header {:?}: {e}", h.key)))?;
            request = request.header(name, value);
        }
        if let Some(body) = string_body {
            request = request.body(body.to_string());
        } else if let Some(body) = json_body {
            let bytes = serde_json::to_vec(body).map_err(|e| ProviderError(format!("jsonBody: {e}")))?;
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes);
        }
        if let Some(config) = metric
            .authentication
            .as_ref()
            .and_then(|a| a.oauth2.as_ref())
            .filter(|o| o.token_url.as_deref().is_some_and(|u| !u.is_empty()))
        {
            let token = oauth2_token(&client, config, timeout).await?;
            request = request.bearer_auth(token);
        }
        let transport = |e: reqwest::Error| {
            ProviderError(format!(
                "{} \"{shown_url}\": {}",
                go_method(&method),
                describe_request_error(&e, timeout)
            ))
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(ProviderError(format!(
                "received non 2xx response code: {}",
                status.as_u16()
            )));
        }
        let body = response.bytes().await.map_err(transport)?;
        Ok(body)
    };
    let body = match tokio::time::timeout(timeout, call).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(ProviderError(format!(
                "{} \"{shown_url}\": timeout after {}",
                go_method(&method),
                super::format_duration(timeout)
            )));
        }
    };
    read_body(&body, &json_path, metric.json_path())
}

/// Turns a Kubernetes JSONPath template (`{$.data.ok}`, `{.data.ok}`, `{$}`) into the
/// JSONPath expression `jsonpath-rust` evaluates (`$.data.ok`). Only one `{...}` expression
/// is supported (Argo takes the first value of the first expression anyway).
pub fn to_jsonpath(template: &str) -> Result<String, ProviderError> {
    let unsupported = |why: &str| ProviderError(format!("jsonPath {template:?} is not supported: {why}"));
    let trimmed = template.trim();
    let inner = match (trimmed.strip_prefix('{'), trimmed.ends_with('}')) {
        (Some(rest), true) => &rest[..rest.len() - 1],
        (None, false) if !trimmed.contains(['{', '}']) => trimmed,
        _ => return Err(unsupported("expected one {...} expression")),
    };
    if inner.contains(['{', '}']) {
        return Err(unsupported("expected one {...} expression"));
    }
    let inner = inner.trim();
    if inner.starts_with("range") || inner.starts_with("end") {
        return Err(unsupported("range is not supported"));
    }
    let path = if inner.is_empty() || inner == "$" {
        "$".to_string()
    } else if inner.starts_with('$') {
        inner.to_string()
    } else if inner.starts_with('.') || inner.starts_with('[') {
        format!("${inner}")
    } else {
        format!("$.{inner}")
    };
    // Reject a path jsonpath-rust cannot parse now, not at the first response.
    serde_json::Value::Null
        .query(&path)
        .map_err(|e| unsupported(&e.to_string()))?;
    Ok(path)
}

/// Reads the value from a response body: JSON narrowed by `path` (the first match), else the
/// body as a string. `template` is the metric's `jsonPath` as written (for messages).
pub fn read_body(body: &[u8], path: &str, template: &str) -> Result<Reading, ProviderError> {
    let Ok(data) = serde_json::from_slice::<serde_json::Value>(body) else {
        let text = String::from_utf8_lossy(body).into_owned();
        return Ok(Reading::Value {
            result: serde_json::Value::String(text.clone()),
            text,
            metadata: BTreeMap::new(),
        });
    };
    let found = data
        .query(path)
        .map_err(|e| ProviderError(format!("Could not find JSONPath in body: {e}")))?;
    let Some(first) = found.first() else {
        return Err(ProviderError(format!(
            "result of web metric produced no value (jsonPath {template} matched nothing)"
        )));
    };
    let result = numbers_as_floats(first);
    let text = go_json(&result);
    Ok(Reading::Value {
        result,
        text,
        metadata: BTreeMap::new(),
    })
}

/// Go decodes every JSON number into a float64: do the same, so `result` behaves alike.
fn numbers_as_floats(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Number(n) => n.as_f64().map_or_else(|| value.clone(), serde_json::Value::from),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(numbers_as_floats).collect())
        }
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), numbers_as_floats(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A value encoded as Go's `json.Marshal` encodes the decoded `interface{}`: object keys
/// sorted, numbers as float64 (`1`, `0.5`, `1e+21`), `<`, `>`, `&`, U+2028 and U+2029
/// escaped.
pub fn go_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_go_json(value, &mut out);
    out
}

fn write_go_json(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Null => out.push_str("null"),
        serde_json::Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) => out.push_str(&go_json_float(f)),
            None => out.push_str(&n.to_string()),
        },
        serde_json::Value::String(s) => write_go_string(s, out),
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(item, out);
            }
            out.push(']');
        }
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(k, out);
                out.push(':');
                write_go_json(v, out);
            }
            out.push('}');
        }
    }
}

/// Go's float64 JSON encoding: plain decimal, or exponent form (`1e+21`, `1e-7`) below 1e-6
/// and from 1e21 on.
fn go_json_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let text = format!("{f:e}");
        match text.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => text,
        }
    } else {
        format!("{f}")
    }
}

fn write_go_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(body: &str, template: &str) -> Result<(serde_json::Value, String), ProviderError> {
        let path = to_jsonpath(template)?;
        match read_body(body.as_bytes(), &path, template)? {
            Reading::Value { result, text, .. } => Ok((result, text)),
            other => panic!("not a value: {other:?}"),
        }
    }

    #[test]
    fn jsonpath_templates_translate() {
        assert_eq!(to_jsonpath("{$}").unwrap(), "$");
        assert_eq!(to_jsonpath("{$.data.ok}").unwrap(), "$.data.ok");
        assert_eq!(to_jsonpath(" {.data.ok} ").unwrap(), "$.data.ok");
        assert_eq!(to_jsonpath("{.items[0]}").unwrap(), "$.items[0]");
        assert_eq!(to_jsonpath("{data}").unwrap(), "$.data");
        assert_eq!(to_jsonpath("$.data").unwrap(), "$.data");
        assert!(to_jsonpath("{.a}{.b}").is_err());
        assert!(to_jsonpath("{range .items[*]}{.name}{end}").is_err());
    }

    #[test]
    fn selects_first_match_with_go_encoding() {
        let body = r#"{"data": {"ok": true, "successPercent": 0.95, "count": 3, "name": "It worked!"},
                       "items": [{"v": 1}, {"v": 2}]}"#;
        assert_eq!(read(body, "{$.data.ok}").unwrap(), (json!(true), "true".into()));
        assert_eq!(
            read(body, "{$.data.successPercent}").unwrap(),
            (json!(0.95), "0.95".into())
        );
        assert_eq!(read(body, "{$.data.count}").unwrap(), (json!(3.0), "3".into()));
        assert_eq!(
            read(body, "{$.data.name}").unwrap(),
            (json!("It worked!"), "\"It worked!\"".into())
        );
        assert_eq!(read(body, "{$.items[*].v}").unwrap(), (json!(1.0), "1".into()));
        let (whole, text) = read(body, "{$.data}").unwrap();
        assert_eq!(whole["ok"], json!(true));
        assert_eq!(
            text,
            r#"{"count":3,"name":"It worked!","ok":true,"successPercent":0.95}"#
        );
    }

    #[test]
    fn default_path_is_the_whole_body() {
        assert_eq!(
            read("[1, 2]", "{$}").unwrap(),
            (json!([1.0, 2.0]), "[1,2]".into())
        );
        assert_eq!(read("42", "{$}").unwrap(), (json!(42.0), "42".into()));
    }

    #[test]
    fn missing_path_is_an_error() {
        let err = read(r#"{"data": {}}"#, "{$.data.missing}").unwrap_err();
        assert!(
            err.0.starts_with("result of web metric produced no value"),
            "{err}"
        );
    }

    #[test]
    fn non_json_body_is_a_string() {
        assert_eq!(
            read("It worked!", "{$.data}").unwrap(),
            (json!("It worked!"), "It worked!".into())
        );
    }

    #[test]
    fn go_json_encoding() {
        assert_eq!(go_json(&json!(1e21)), "1e+21");
        assert_eq!(go_json(&json!(1.5e-7)), "1.5e-7");
        assert_eq!(go_json(&json!(0.000001)), "0.000001");
        assert_eq!(go_json(&json!("<a&b>")), r#""\u003ca\u0026b\u003e""#);
        assert_eq!(go_json(&json!("line\nbreak\u{1}")), r#""line\nbreak\u0001""#);
        assert_eq!(
            go_json(&json!({"b": 1, "a": [null, false]})),
            r#"{"a":[null,false],"b":1}"#
        );
    }

    #[tokio::test]
    async fn body_rules_are_checked_before_sending() {
        let get_with_body = WebMetric {
            url: "http://127.0.0.1:1/".into(),
            body: Some("x".into()),
            ..Default::default()
        };
        assert_eq!(
            measure(&get_with_body).await.unwrap_err().0,
            "Body/JSONBody can only be used with POST or PUT WebMetric Method types"
        );
        let both = WebMetric {
            method: Some("POST".into()),
            url: "http://127.0.0.1:1/".into(),
            body: Some("x".into()),
            json_body: Some(json!({"a": 1})),
            ..Default::default()
        };
        assert!(
            measure(&both)
                .await
                .unwrap_err()
                .0
                .starts_with("use either Body or JSONBody")
        );
        let delete = WebMetric {
            method: Some("DELETE".into()),
            url: "http://127.0.0.1:1/".into(),
            ..Default::default()
        };
        assert!(measure(&delete).await.unwrap_err().0.contains("not supported"));
    }
}
