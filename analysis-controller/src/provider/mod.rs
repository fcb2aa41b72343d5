//! Metric providers: where a measurement's value comes from. A provider only reads; whether the
//! value passes is decided by the metric's conditions ([`crate::evaluate`]), except for providers
//! that give a verdict themselves (a Job succeeds or fails).
//!
//! Every call has a timeout and runs off the reconcile path (the controller spawns it and
//! reconciles the run again when it completes), so a slow metric server never holds a worker.
//!
//! Entry points: [`measure`] starts a measurement, [`resume`] checks an unfinished one again,
//! [`terminate`] stops an unfinished one, [`garbage_collect`] removes what old measurements left
//! behind (Jobs), [`metric_type`] names the provider for `/metrics`, [`metric_metadata`] gives
//! the metric result's `metadata`.

pub mod job;
pub mod prometheus;
pub mod web;

use std::collections::BTreeMap;
use std::time::Duration;

use shared_types::analysis::{
    ANALYSIS_JOB_NAMESPACE_ENV, AnalysisPhase, AnalysisRun, Metric, OAuth2Config, PROMETHEUS_ADDRESS_ENV,
    RESOLVED_PROMETHEUS_QUERY_METADATA_KEY,
};

/// What one provider call produced.
#[derive(Clone, Debug, PartialEq)]
pub enum Reading {
    /// A value for the metric's conditions: `result` is what `successCondition` and
    /// `failureCondition` see; `text` is stored as the measurement's `value`.
    Value {
        /// The result as the condition language sees it (number, array, object, string...).
        /// JSON has no NaN or ±Inf: a Prometheus sample that is not finite is the string
        /// `"NaN"`, `"+Inf"` or `"-Inf"`, which the conditions read back as the float.
        result: serde_json::Value,
        /// The measurement's `value` field as Argo renders it (e.g. `[0.98]`, `0.98`).
        text: String,
        /// Provider details kept in the measurement's `metadata`.
        metadata: BTreeMap<String, String>,
    },
    /// The provider decided the phase itself (Job: Successful or Failed).
    Verdict {
        /// Successful, Failed or Inconclusive.
        phase: AnalysisPhase,
        /// Why (stored as the measurement's message when not empty).
        message: String,
        /// Provider details kept in the measurement's `metadata` (e.g. the Job name).
        metadata: BTreeMap<String, String>,
    },
    /// Still running (Job not finished): call [`resume`] again later with this metadata.
    Running {
        /// Provider details needed to resume (e.g. the Job name).
        metadata: BTreeMap<String, String>,
    },
}

/// Why a provider call failed: an Error measurement with this message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProviderError(pub String);

impl ProviderError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        ProviderError(message.into())
    }
}

// ---------------------------------------------------------------------------------------------
// Settings and context
// ---------------------------------------------------------------------------------------------

/// Process-wide provider settings Argo reads from the controller's environment. Read once at
/// start ([`ProviderEnv::from_env`]) and passed down, so tests never touch the environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderEnv {
    /// `ARGO_ROLLOUTS_PROMETHEUS_ADDRESS`: used when a Prometheus metric has no `address`.
    pub prometheus_address: Option<String>,
    /// `ARGO_ROLLOUTS_ANALYSIS_JOB_NAMESPACE`: where Job metrics run (default: the run's
    /// namespace).
    pub job_namespace: Option<String>,
}

impl ProviderEnv {
    /// Reads the variables; unset and empty are the same.
    pub fn from_env() -> Self {
        let read = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        ProviderEnv {
            prometheus_address: read(PROMETHEUS_ADDRESS_ENV),
            job_namespace: read(ANALYSIS_JOB_NAMESPACE_ENV),
        }
    }
}

/// What a provider call may need besides the metric.
#[derive(Clone, Copy)]
pub struct ProviderContext<'a> {
    /// The run being measured (Job names, labels, owner, namespace; the measurement counter).
    pub run: &'a AnalysisRun,
    /// Client for Job metrics; `None` makes Job metrics fail with a clear error.
    pub kube: Option<&'a kube::Client>,
    /// Environment settings.
    pub env: &'a ProviderEnv,
}

// ---------------------------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------------------------

/// The provider a metric uses.
#[derive(Clone, Copy, Debug)]
enum Kind<'m> {
    Prometheus(&'m shared_types::analysis::PrometheusMetric),
    Web(&'m shared_types::analysis::WebMetric),
    Job(&'m shared_types::analysis::JobMetric),
    /// A provider Argo has that this controller does not implement (its CRD key).
    Unsupported(&'m str),
}

fn kind(metric: &Metric) -> Result<Kind<'_>, ProviderError> {
    let p = &metric.provider;
    let configured = p.configured();
    match configured.len() {
        0 => {
            return Err(ProviderError(format!(
                "metric \"{}\" has no provider (no provider specified)",
                metric.name
            )));
        }
        1 => {}
        _ => {
            return Err(ProviderError(format!(
                "metric \"{}\" has several providers ({}): multiple providers specified",
                metric.name,
                configured.join(", ")
            )));
        }
    }
    if let Some(m) = &p.prometheus {
        return Ok(Kind::Prometheus(m));
    }
    if let Some(m) = &p.web {
        return Ok(Kind::Web(m));
    }
    if let Some(m) = &p.job {
        return Ok(Kind::Job(m));
    }
    if p.plugin.is_some() {
        return Ok(Kind::Unsupported("plugin"));
    }
    Ok(Kind::Unsupported(
        configured.first().copied().unwrap_or("unknown"),
    ))
}

fn unsupported(name: &str, metric: &Metric) -> ProviderError {
    match (&metric.provider.plugin, name) {
        (Some(plugins), "plugin") => {
            let names: Vec<&str> = plugins.keys().map(String::as_str).collect();
            ProviderError(format!(
                "provider plugin is not supported (plugin {})",
                names.join(", ")
            ))
        }
        _ => ProviderError(format!("provider {name} is not supported")),
    }
}

/// Starts a measurement of `metric` (arguments already substituted). Prometheus and web
/// metrics finish in this call; a Job metric creates its Job and returns
/// [`Reading::Running`]. Providers Argo has and this controller does not give an error at
/// once.
pub async fn measure(ctx: ProviderContext<'_>, metric: &Metric) -> Result<Reading, ProviderError> {
    match kind(metric)? {
        Kind::Prometheus(m) => {
            prometheus::measure(m, ctx.env.prometheus_address.as_deref(), jiff::Timestamp::now()).await
        }
        Kind::Web(m) => web::measure(m).await,
        Kind::Job(m) => {
            let client = kube_client(ctx)?;
            let namespace = job::job_namespace(ctx.run, ctx.env);
            job::start(client, ctx.run, metric, m, &namespace).await
        }
        Kind::Unsupported(name) => Err(unsupported(name, metric)),
    }
}

/// Checks an unfinished measurement again, given the metadata of its last reading. Only Job
/// metrics leave measurements unfinished; for the others this is an error.
pub async fn resume(
    ctx: ProviderContext<'_>,
    metric: &Metric,
    metadata: &BTreeMap<String, String>,
) -> Result<Reading, ProviderError> {
    match kind(metric)? {
        Kind::Job(_) => {
            let client = kube_client(ctx)?;
            job::resume(client, ctx.run, metadata).await
        }
        Kind::Unsupported(name) => Err(unsupported(name, metric)),
        Kind::Prometheus(_) | Kind::Web(_) => Err(ProviderError(format!(
            "metric \"{}\": {} measurements finish at once and cannot be resumed",
            metric.name,
            metric_type(metric)
        ))),
    }
}

/// Stops an unfinished measurement (the run is terminating). A Job is deleted and the
/// measurement ends Inconclusive with `Metric Terminated`; other providers have nothing to
/// stop and give the same verdict.
pub async fn terminate(
    ctx: ProviderContext<'_>,
    metric: &Metric,
    metadata: &BTreeMap<String, String>,
) -> Result<Reading, ProviderError> {
    match kind(metric)? {
        Kind::Job(_) => {
            let client = kube_client(ctx)?;
            job::terminate(client, ctx.run, metadata).await
        }
        _ => Ok(Reading::Verdict {
            phase: AnalysisPhase::Inconclusive,
            message: job::TERMINATED_MESSAGE.to_string(),
            metadata: metadata.clone(),
        }),
    }
}

/// Removes what the metric's older measurements left behind, keeping the newest `limit`
/// (the metric's measurement retention): Jobs for Job metrics, nothing for the others.
pub async fn garbage_collect(
    ctx: ProviderContext<'_>,
    metric: &Metric,
    limit: usize,
) -> Result<(), ProviderError> {
    match kind(metric) {
        Ok(Kind::Job(_)) => {
            let client = kube_client(ctx)?;
            let namespace = job::job_namespace(ctx.run, ctx.env);
            job::garbage_collect(client, ctx.run, &metric.name, &namespace, limit).await
        }
        _ => Ok(()),
    }
}

fn kube_client<'a>(ctx: ProviderContext<'a>) -> Result<&'a kube::Client, ProviderError> {
    ctx.kube
        .ok_or_else(|| ProviderError::new("job metrics need a Kubernetes client"))
}

/// Argo's provider type name for a metric (`Type(metric)` in Argo), the `type` label of
/// `analysis_run_metric_type`: `Prometheus`, `Job`, `Kayenta`, `Web`, `Datadog`, `Wavefront`,
/// `NewRelic`, `CloudWatch`, `Graphite`, `Influxdb`, `skywalking`, `RPCPlugin`, or
/// `Unknown Provider`. Checked in Argo's order when several are set.
pub fn metric_type(metric: &Metric) -> &'static str {
    let p = &metric.provider;
    let order: [(bool, &'static str); 12] = [
        (p.prometheus.is_some(), "Prometheus"),
        (p.job.is_some(), "Job"),
        (p.kayenta.is_some(), "Kayenta"),
        (p.web.is_some(), "Web"),
        (p.datadog.is_some(), "Datadog"),
        (p.wavefront.is_some(), "Wavefront"),
        (p.new_relic.is_some(), "NewRelic"),
        (p.cloud_watch.is_some(), "CloudWatch"),
        (p.graphite.is_some(), "Graphite"),
        (p.influxdb.is_some(), "Influxdb"),
        (p.skywalking.is_some(), "skywalking"),
        (p.plugin.is_some(), "RPCPlugin"),
    ];
    order
        .iter()
        .find(|(set, _)| *set)
        .map_or("Unknown Provider", |(_, name)| name)
}

/// The metric result's `metadata` as Argo's providers give it (`GetMetadata`): Prometheus
/// keeps the query after argument substitution as `ResolvedPrometheusQuery`; others nothing.
pub fn metric_metadata(metric: &Metric) -> BTreeMap<String, String> {
    let mut metadata = BTreeMap::new();
    if let Some(query) = metric
        .provider
        .prometheus
        .as_ref()
        .and_then(|p| p.query.as_deref())
        .filter(|q| !q.is_empty())
    {
        metadata.insert(
            RESOLVED_PROMETHEUS_QUERY_METADATA_KEY.to_string(),
            query.to_string(),
        );
    }
    metadata
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

pub use shared_runtime::http::install_crypto_provider;
pub(crate) use shared_runtime::http::{describe_error as describe_request_error, format_duration};

/// The shared HTTP client for provider calls (see [`shared_runtime::http::client`]).
pub fn http_client(insecure: bool) -> Result<reqwest::Client, ProviderError> {
    shared_runtime::http::client(insecure).map_err(ProviderError)
}

/// Go's `http.Request` method text in error messages (`Get "url": ...`).
pub(crate) fn go_method(method: &reqwest::Method) -> String {
    let m = method.as_str();
    let mut chars = m.chars();
    match chars.next() {
        Some(first) => first.to_string() + &chars.as_str().to_ascii_lowercase(),
        None => String::new(),
    }
}

/// Fetches an OAuth2 access token with the client-credentials grant (as Go's
/// `clientcredentials` does: credentials first as HTTP basic auth, and if the token endpoint
/// rejects that, again in the form body).
pub(crate) async fn oauth2_token(
    client: &reqwest::Client,
    config: &OAuth2Config,
    timeout: Duration,
) -> Result<String, ProviderError> {
    let token_url = config.token_url.as_deref().unwrap_or_default();
    let client_id = config.client_id.as_deref().unwrap_or_default();
    let client_secret = config.client_secret.as_deref().unwrap_or_default();
    let mut form: Vec<(&str, String)> = vec![("grant_type", "client_credentials".to_string())];
    let scopes = config.scopes.as_deref().unwrap_or_default();
    if !scopes.is_empty() {
        form.push(("scope", scopes.join(" ")));
    }
    let fail = |cause: String| ProviderError(format!("oauth2: cannot fetch token from {token_url}: {cause}"));

    let send = |in_header: bool| {
        let mut form = form.clone();
        let mut request = client
            .post(token_url)
            .timeout(timeout)
            .header(reqwest::header::ACCEPT, "application/json");
        if in_header {
            request = request.basic_auth(form_encode(client_id), Some(form_encode(client_secret)));
        } else {
            form.push(("client_id", client_id.to_string()));
            form.push(("client_secret", client_secret.to_string()));
        }
        request.form(&form).send()
    };

    let mut response = send(true)
        .await
        .map_err(|e| fail(describe_request_error(&e, timeout)))?;
    if response.status().is_client_error() {
        response = send(false)
            .await
            .map_err(|e| fail(describe_request_error(&e, timeout)))?;
    }
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| fail(describe_request_error(&e, timeout)))?;
    if !status.is_success() {
        return Err(fail(format!(
            "response {}: {}",
            status.as_u16(),
            truncate(body.trim(), 200)
        )));
    }
    let parsed: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| fail(format!("response is not JSON: {e}")))?;
    match parsed.get("access_token").and_then(|t| t.as_str()) {
        Some(token) if !token.is_empty() => Ok(token.to_string()),
        _ => Err(fail("server response missing access_token".to_string())),
    }
}

/// `application/x-www-form-urlencoded` encoding of one value (what Go's oauth2 does to the
/// client id and secret before putting them in the basic auth header).
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// At most `max` characters of `text`, with `...` when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared_types::analysis::{JobMetric, MetricProvider, PrometheusMetric, WebMetric};

    fn metric(provider: MetricProvider) -> Metric {
        Metric {
            name: "m".into(),
            provider,
            ..Default::default()
        }
    }

    #[test]
    fn metric_type_names_match_argo() {
        let cases: Vec<(MetricProvider, &str)> = vec![
            (
                MetricProvider {
                    prometheus: Some(PrometheusMetric::default()),
                    ..Default::default()
                },
                "Prometheus",
            ),
            (
                MetricProvider {
                    web: Some(WebMetric::default()),
                    ..Default::default()
                },
                "Web",
            ),
            (
                MetricProvider {
                    job: Some(JobMetric::default()),
                    ..Default::default()
                },
                "Job",
            ),
            (
                MetricProvider {
                    datadog: Some(serde_json::json!({})),
                    ..Default::default()
                },
                "Datadog",
            ),
            (
                MetricProvider {
                    new_relic: Some(serde_json::json!({})),
                    ..Default::default()
                },
                "NewRelic",
            ),
            (
                MetricProvider {
                    skywalking: Some(serde_json::json!({})),
                    ..Default::default()
                },
                "skywalking",
            ),
            (
                MetricProvider {
                    plugin: Some(BTreeMap::from([("a/b".to_string(), serde_json::json!({}))])),
                    ..Default::default()
                },
                "RPCPlugin",
            ),
            (MetricProvider::default(), "Unknown Provider"),
        ];
        for (provider, expected) in cases {
            assert_eq!(metric_type(&metric(provider)), expected);
        }
    }

    fn ctx_parts() -> (AnalysisRun, ProviderEnv) {
        (
            AnalysisRun::new("run", Default::default()),
            ProviderEnv::default(),
        )
    }

    #[tokio::test]
    async fn unsupported_providers_fail_at_once() {
        let (run, env) = ctx_parts();
        let ctx = ProviderContext {
            run: &run,
            kube: None,
            env: &env,
        };
        let cases: Vec<(MetricProvider, &str)> = vec![
            (
                MetricProvider {
                    datadog: Some(serde_json::json!({"query": "x"})),
                    ..Default::default()
                },
                "provider datadog is not supported",
            ),
            (
                MetricProvider {
                    new_relic: Some(serde_json::json!({})),
                    ..Default::default()
                },
                "provider newRelic is not supported",
            ),
            (
                MetricProvider {
                    cloud_watch: Some(serde_json::json!({})),
                    ..Default::default()
                },
                "provider cloudWatch is not supported",
            ),
            (
                MetricProvider {
                    kayenta: Some(serde_json::json!({})),
                    ..Default::default()
                },
                "provider kayenta is not supported",
            ),
            (
                MetricProvider {
                    plugin: Some(BTreeMap::from([(
                        "argoproj-labs/sample".to_string(),
                        serde_json::json!({}),
                    )])),
                    ..Default::default()
                },
                "provider plugin is not supported (plugin argoproj-labs/sample)",
            ),
        ];
        for (provider, expected) in cases {
            let err = measure(ctx, &metric(provider)).await.unwrap_err();
            assert_eq!(err.0, expected);
        }
    }

    #[tokio::test]
    async fn no_provider_and_several_providers_are_errors() {
        let (run, env) = ctx_parts();
        let ctx = ProviderContext {
            run: &run,
            kube: None,
            env: &env,
        };
        let err = measure(ctx, &metric(MetricProvider::default()))
            .await
            .unwrap_err();
        assert_eq!(err.0, "metric \"m\" has no provider (no provider specified)");
        let both = MetricProvider {
            prometheus: Some(PrometheusMetric::default()),
            web: Some(WebMetric::default()),
            ..Default::default()
        };
        let err = measure(ctx, &metric(both)).await.unwrap_err();
        assert!(err.0.contains("multiple providers specified"), "{err}");
    }

    #[tokio::test]
    async fn job_metric_without_client_is_an_error() {
        let (run, env) = ctx_parts();
        let ctx = ProviderContext {
            run: &run,
            kube: None,
            env: &env,
        };
        let job = MetricProvider {
            job: Some(JobMetric::default()),
            ..Default::default()
        };
        let err = measure(ctx, &metric(job)).await.unwrap_err();
        assert_eq!(err.0, "job metrics need a Kubernetes client");
    }

    #[test]
    fn metric_metadata_keeps_the_resolved_query() {
        let m = metric(MetricProvider {
            prometheus: Some(PrometheusMetric {
                query: Some("up".into()),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(
            metric_metadata(&m),
            BTreeMap::from([("ResolvedPrometheusQuery".to_string(), "up".to_string())])
        );
        assert!(metric_metadata(&metric(MetricProvider::default())).is_empty());
    }

    #[test]
    fn form_encoding_matches_go() {
        assert_eq!(form_encode("a b+c/d"), "a+b%2Bc%2Fd");
        assert_eq!(form_encode("id-1._~"), "id-1._~");
    }
}
