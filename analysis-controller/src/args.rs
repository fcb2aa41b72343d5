//! Arguments of an AnalysisRun: their values (literal, from a Secret, from a field of the
//! referencing object), `{{args.<name>}}` substitution into metrics, and redaction of secret
//! values from anything shown to users.
//!
//! Lookups go through [`ArgSource`], which the controller implements with its Kubernetes
//! client, so this module stays pure. Substitution follows Argo's `ResolveMetricArgs`: the whole
//! metric is serialized to JSON, every `{{ tag }}` is replaced by the value of `args.<name>`
//! escaped as JSON string content, and the result is decoded again, so any field can hold
//! arguments (the query, a header, the conditions, even `count: "{{args.n}}"`).

use std::fmt;

use shared_types::analysis::{Argument, FieldRef, Metric, SecretKeyRef};

/// What secret values are replaced with wherever they could be seen.
pub const REDACTED: &str = "*****";

/// Why a value could not be looked up; the message ends up in the run's Error message, so it
/// must not contain the secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LookupError(pub String);

impl LookupError {
    /// Argo's text for a Secret without the requested key.
    pub fn missing_key(secret: &SecretKeyRef) -> Self {
        Self(format!(
            "key '{}' does not exist in secret '{}'",
            secret.key, secret.name
        ))
    }
}

/// Where `valueFrom` values come from. The controller reads Secrets from the run's namespace
/// and fields from the object the run belongs to.
pub trait ArgSource {
    /// The value of `key` in the Secret `name`, decoded as text.
    fn secret(&self, secret: &SecretKeyRef) -> Result<String, LookupError>;
    /// The value at `fieldPath` (e.g. `metadata.labels['app']`).
    fn field(&self, field: &FieldRef) -> Result<String, LookupError>;
}

/// Arguments could not be resolved or substituted. The run ends in Error with `Unable to
/// resolve metric arguments: <this>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// An argument has no value (Argo's text; raised even when no metric uses it).
    #[error("argument \"{0}\" was not supplied")]
    NotSupplied(String),
    /// A `{{ ... }}` tag that is not a known argument (e.g. a Helm template leftover). Holds
    /// the tag as written, between the braces.
    #[error("failed to resolve {{{{{0}}}}}")]
    Unresolved(String),
    /// A `{{` without its `}}`.
    #[error("cannot find end tag \"}}}}\" after {0:?}")]
    Unterminated(String),
    /// A `valueFrom` lookup failed.
    #[error("argument \"{name}\": {source}")]
    Lookup {
        /// The argument.
        name: String,
        /// Why the lookup failed.
        source: LookupError,
    },
    /// The metric does not decode after substitution (e.g. an argument made an integer field
    /// hold text).
    #[error("metric \"{metric}\": {reason}")]
    Decode {
        /// Name of the metric (before substitution).
        metric: String,
        /// The decoding error.
        reason: String,
    },
}

/// Argument values ready for substitution, and the secret values to redact.
#[derive(Clone, PartialEq, Eq)]
pub struct ResolvedArgs {
    /// Name → value, in declaration order; `None` when the argument has no value.
    values: Vec<(String, Option<String>)>,
    /// Values read from Secrets.
    secrets: Vec<String>,
}

/// Secret values never show in debug output either.
impl fmt::Debug for ResolvedArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values: Vec<(&str, Option<String>)> = self
            .values
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_deref().map(|v| self.redact(v))))
            .collect();
        f.debug_struct("ResolvedArgs")
            .field("values", &values)
            .finish_non_exhaustive()
    }
}

impl ResolvedArgs {
    /// Resolves `args` for measuring: a `valueFrom.secretKeyRef` reads the Secret, a
    /// `valueFrom.fieldRef` reads the field (both take precedence over `value`, as in Argo),
    /// otherwise `value`.
    pub fn resolve(args: &[Argument], source: &dyn ArgSource) -> Result<Self, ArgsError> {
        Self::build(args, source, true)
    }

    /// Resolves `args` without reading Secrets: secret arguments get [`REDACTED`]. Argo uses
    /// this to validate metrics and decide schedules before any Secret is read; the metrics it
    /// yields can be shown (in messages, conditions quoted in causes) without leaking.
    pub fn resolve_without_secrets(args: &[Argument], source: &dyn ArgSource) -> Result<Self, ArgsError> {
        Self::build(args, source, false)
    }

    fn build(args: &[Argument], source: &dyn ArgSource, read_secrets: bool) -> Result<Self, ArgsError> {
        let mut values = Vec::with_capacity(args.len());
        let mut secrets = Vec::new();
        for arg in args {
            let lookup = |source: LookupError| ArgsError::Lookup {
                name: arg.name.clone(),
                source,
            };
            let value_from = arg.value_from.as_ref();
            let value = if let Some(secret) = value_from.and_then(|v| v.secret_key_ref.as_ref()) {
                if read_secrets {
                    let value = source.secret(secret).map_err(lookup)?;
                    secrets.push(value.clone());
                    Some(value)
                } else {
                    Some(REDACTED.to_string())
                }
            } else if let Some(field) = value_from.and_then(|v| v.field_ref.as_ref()) {
                Some(source.field(field).map_err(lookup)?)
            } else {
                arg.value.clone()
            };
            values.push((arg.name.clone(), value));
        }
        Ok(Self { values, secrets })
    }

    /// The values read from Secrets (for redacting logs, Events and messages).
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// Replaces every `{{ args.<name> }}` in `text` (spaces inside the braces ignored) with the
    /// argument's value, escaped as JSON string content (`text` is JSON). Every argument must
    /// have a value and every tag must name one, as in Argo.
    fn substitute_json(&self, text: &str) -> Result<String, ArgsError> {
        if let Some((name, _)) = self.values.iter().find(|(_, v)| v.is_none()) {
            return Err(ArgsError::NotSupplied(name.clone()));
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        let mut unresolved = None;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                let snippet: String = rest[start..].chars().take(40).collect();
                return Err(ArgsError::Unterminated(snippet));
            };
            let tag = &after[..end];
            let value = tag
                .trim()
                .strip_prefix("args.")
                .and_then(|name| self.values.iter().find(|(n, _)| n == name))
                .and_then(|(_, v)| v.as_deref());
            match value {
                Some(value) => out.push_str(&json_string_content(value)),
                // Argo keeps going and reports the last unknown tag.
                None => unresolved = Some(tag.to_string()),
            }
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        match unresolved {
            Some(tag) => Err(ArgsError::Unresolved(tag)),
            None => Ok(out),
        }
    }

    /// `metric` with its arguments substituted (Argo's `ResolveMetricArgs`).
    pub fn resolve_metric(&self, metric: &Metric) -> Result<Metric, ArgsError> {
        let decode = |e: serde_json::Error| ArgsError::Decode {
            metric: metric.name.clone(),
            reason: e.to_string(),
        };
        let json = serde_json::to_string(metric).map_err(decode)?;
        let resolved = self.substitute_json(&json)?;
        serde_json::from_str(&resolved).map_err(decode)
    }

    /// `text` with every secret value replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        redact(text, &self.secrets)
    }
}

/// `value` as it appears inside a JSON string literal.
fn json_string_content(value: &str) -> String {
    let quoted = serde_json::Value::String(value.to_string()).to_string();
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or_default()
        .to_string()
}

/// Replaces every occurrence of each secret in `text` with [`REDACTED`], so errors, logs,
/// Events and status never show one. Longer secrets are replaced first (a secret containing
/// another is hidden whole), and a secret is also hidden in its JSON-escaped form (as it
/// appears in a request body or a serialized object). Empty secrets are ignored.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut forms: Vec<String> = secrets
        .iter()
        .filter(|s| !s.is_empty())
        .flat_map(|s| [s.clone(), json_string_content(s)])
        .collect();
    forms.sort_by_key(|s| std::cmp::Reverse(s.len()));
    forms.dedup();
    let mut out = text.to_string();
    for form in &forms {
        if out.contains(form.as_str()) {
            out = out.replace(form.as_str(), REDACTED);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared_types::analysis::{MetricProvider, PrometheusMetric, ValueFrom, WebMetric, WebMetricHeader};

    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    /// A source with one Secret `creds` (`token`) and the Rollout's `metadata.name`.
    struct Source;

    impl ArgSource for Source {
        fn secret(&self, secret: &SecretKeyRef) -> Result<String, LookupError> {
            match (secret.name.as_str(), secret.key.as_str()) {
                ("creds", "token") => Ok("s3cr\"t-token".to_string()),
                ("creds", _) => Err(LookupError::missing_key(secret)),
                (name, _) => Err(LookupError(format!("secrets \"{name}\" not found"))),
            }
        }

        fn field(&self, field: &FieldRef) -> Result<String, LookupError> {
            match field.field_path.as_str() {
                "metadata.name" => Ok("my-rollout".to_string()),
                path => Err(LookupError(format!("unsupported field path {path:?}"))),
            }
        }
    }

    fn value(name: &str, value: &str) -> Argument {
        Argument {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        }
    }

    fn secret(name: &str, secret: &str, key: &str) -> Argument {
        Argument {
            name: name.into(),
            value: None,
            value_from: Some(ValueFrom {
                secret_key_ref: Some(SecretKeyRef {
                    name: secret.into(),
                    key: key.into(),
                }),
                field_ref: None,
            }),
        }
    }

    fn field(name: &str, path: &str) -> Argument {
        Argument {
            name: name.into(),
            value: None,
            value_from: Some(ValueFrom {
                secret_key_ref: None,
                field_ref: Some(FieldRef {
                    field_path: path.into(),
                }),
            }),
        }
    }

    fn web_metric() -> Metric {
        Metric {
            name: "web".into(),
            count: Some(IntOrString::String("{{ args.count }}".into())),
            interval: Some("{{args.interval}}".into()),
            success_condition: Some("result.rate >= {{args.threshold}}".into()),
            provider: MetricProvider {
                web: Some(WebMetric {
                    url: "http://{{args.service}}/metrics?app={{args.app}}".into(),
                    headers: Some(vec![WebMetricHeader {
                        key: "Authorization".into(),
                        value: "Bearer {{args.token}}".into(),
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn web_args() -> Vec<Argument> {
        vec![
            value("count", "3"),
            value("interval", "30s"),
            value("threshold", "0.95"),
            value("service", "canary.ns.svc"),
            field("app", "metadata.name"),
            secret("token", "creds", "token"),
        ]
    }

    #[test]
    fn values_are_substituted_into_every_field() {
        let args = ResolvedArgs::resolve(&web_args(), &Source).unwrap();
        let m = args.resolve_metric(&web_metric()).unwrap();
        assert_eq!(m.count, Some(IntOrString::String("3".into())));
        assert_eq!(m.count_value(), Ok(Some(3)));
        assert_eq!(m.interval.as_deref(), Some("30s"));
        assert_eq!(m.success_condition.as_deref(), Some("result.rate >= 0.95"));
        let web = m.provider.web.unwrap();
        assert_eq!(web.url, "http://canary.ns.svc/metrics?app=my-rollout");
        // The secret, with its quote, survives the JSON round trip.
        assert_eq!(web.headers.unwrap()[0].value, "Bearer s3cr\"t-token");
        assert_eq!(args.secrets(), ["s3cr\"t-token".to_string()]);
    }

    #[test]
    fn values_with_json_specials_round_trip() {
        let args = ResolvedArgs::resolve(&[value("q", "a\"b\\c\nd{}")], &Source).unwrap();
        let m = Metric {
            name: "m".into(),
            provider: MetricProvider {
                prometheus: Some(PrometheusMetric {
                    query: Some("{{args.q}}".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let m = args.resolve_metric(&m).unwrap();
        assert_eq!(
            m.provider.prometheus.unwrap().query.as_deref(),
            Some("a\"b\\c\nd{}")
        );
    }

    #[test]
    fn without_secrets_uses_a_placeholder() {
        let args = ResolvedArgs::resolve_without_secrets(&web_args(), &Source).unwrap();
        assert!(args.secrets().is_empty());
        let m = args.resolve_metric(&web_metric()).unwrap();
        assert_eq!(m.provider.web.unwrap().headers.unwrap()[0].value, "Bearer *****");
        // No Secret is read: a missing one is not an error yet.
        assert!(ResolvedArgs::resolve_without_secrets(&[secret("x", "gone", "k")], &Source).is_ok());
    }

    #[test]
    fn missing_and_unknown_arguments() {
        let no_value = Argument {
            name: "service".into(),
            value: None,
            value_from: None,
        };
        let args = ResolvedArgs::resolve(&[value("count", "1"), no_value], &Source).unwrap();
        let err = args.resolve_metric(&web_metric()).unwrap_err();
        assert_eq!(err, ArgsError::NotSupplied("service".into()));
        assert_eq!(err.to_string(), r#"argument "service" was not supplied"#);

        // Tags naming no argument: Argo reports the last one, as written.
        let args = ResolvedArgs::resolve(&[value("count", "1")], &Source).unwrap();
        let err = args.resolve_metric(&web_metric()).unwrap_err();
        assert_eq!(err.to_string(), "failed to resolve {{args.token}}");
        let m = Metric {
            name: "m".into(),
            success_condition: Some("result > {{ .Values.threshold }}".into()),
            ..Default::default()
        };
        assert_eq!(
            args.resolve_metric(&m).unwrap_err().to_string(),
            "failed to resolve {{ .Values.threshold }}"
        );
        // An unclosed tag runs to the next `}}` of the JSON, as in Argo's template engine...
        let m = Metric {
            name: "m".into(),
            success_condition: Some("result > {{args.count".into()),
            ..Default::default()
        };
        assert_eq!(
            args.resolve_metric(&m).unwrap_err().to_string(),
            r#"failed to resolve {{args.count","provider":{}}"#
        );
        // ...or is reported when there is none.
        let m = Metric {
            name: "m".into(),
            consecutive_success_limit: Some(IntOrString::String("{{args.count".into())),
            ..Default::default()
        };
        assert!(
            args.resolve_metric(&m)
                .unwrap_err()
                .to_string()
                .starts_with(r#"cannot find end tag "}}" after "{{args.count"#)
        );
        // A metric without tags and no arguments is returned as is.
        let plain = Metric {
            name: "plain".into(),
            ..Default::default()
        };
        let none = ResolvedArgs::resolve(&[], &Source).unwrap();
        assert_eq!(none.resolve_metric(&plain), Ok(plain));
    }

    #[test]
    fn lookup_errors_name_the_argument() {
        let err = ResolvedArgs::resolve(&[secret("token", "creds", "password")], &Source).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"argument "token": key 'password' does not exist in secret 'creds'"#
        );
        let err = ResolvedArgs::resolve(&[secret("token", "other", "k")], &Source).unwrap_err();
        assert_eq!(err.to_string(), r#"argument "token": secrets "other" not found"#);
        let err = ResolvedArgs::resolve(&[field("app", "spec.x")], &Source).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"argument "app": unsupported field path "spec.x""#
        );
    }

    #[test]
    fn value_from_takes_precedence_over_value() {
        let mut arg = secret("token", "creds", "token");
        arg.value = Some("literal".into());
        let args = ResolvedArgs::resolve(&[arg], &Source).unwrap();
        let m = Metric {
            name: "m".into(),
            success_condition: Some("'{{args.token}}' != ''".into()),
            ..Default::default()
        };
        assert_eq!(
            args.resolve_metric(&m).unwrap().success_condition.as_deref(),
            Some("'s3cr\"t-token' != ''")
        );
    }

    #[test]
    fn redaction() {
        let secrets = vec!["hunter2".to_string(), "hunter2-long".to_string(), String::new()];
        assert_eq!(
            redact("auth hunter2-long then hunter2, twice: hunter2", &secrets),
            "auth ***** then *****, twice: *****"
        );
        assert_eq!(redact("nothing here", &secrets), "nothing here");
        assert_eq!(redact("", &secrets), "");
        // JSON-escaped occurrences are hidden too.
        let quoted = vec!["pa\"ss".to_string()];
        assert_eq!(
            redact(r#"{"password":"pa\"ss"} or pa"ss"#, &quoted),
            r#"{"password":"*****"} or *****"#
        );
        // Through the resolved arguments, and never in debug output.
        let args = ResolvedArgs::resolve(&web_args(), &Source).unwrap();
        let message = r#"Get "http://x": header Bearer s3cr"t-token rejected"#;
        assert_eq!(
            args.redact(message),
            r#"Get "http://x": header Bearer ***** rejected"#
        );
        let debug = format!("{args:?}");
        assert!(!debug.contains("s3cr"), "{debug}");
        assert!(debug.contains("my-rollout"), "{debug}");
    }
}
