//! The notification configuration: Argo's ConfigMap `argo-rollouts-notification-configmap`
//! (`trigger.<name>`, `template.<name>`, `service.<type>[.<name>]`, `subscriptions`,
//! `defaultTriggers[.<service>]`) with `$key` references resolved from the Secret
//! `argo-rollouts-notification-secret`, layered over the built-in catalog.
//!
//! Parsing never fails as a whole: a bad key is left out and reported in
//! [`Config::problems`], so one typo does not silence every other notification.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::{catalog, subscription::Selector};

/// Name of Argo's notification ConfigMap.
pub const CONFIG_MAP: &str = "argo-rollouts-notification-configmap";
/// Name of Argo's notification Secret.
pub const SECRET: &str = "argo-rollouts-notification-secret";

/// One condition of a trigger (`trigger.<name>` is a YAML list of them).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// expr-lang condition over the object; empty for the built-in status-driven triggers.
    #[serde(default)]
    pub when: String,
    /// Templates to send when the condition holds.
    #[serde(default)]
    pub send: Vec<String>,
    /// Send once per value of this expression instead of once per false → true transition.
    #[serde(default)]
    pub once_per: String,
    #[serde(default)]
    pub description: String,
}

/// A `template.<name>` entry: the generic message and per-service sections, as written (Go
/// template text, rendered per notification).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub email: Option<EmailTemplate>,
    #[serde(default)]
    pub slack: Option<SlackTemplate>,
    /// Keyed by the webhook service's name (`service.webhook.<name>`).
    #[serde(default)]
    pub webhook: BTreeMap<String, WebhookTemplate>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct EmailTemplate {
    #[serde(default)]
    pub subject: String,
    /// Defaults to the message.
    #[serde(default)]
    pub body: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SlackTemplate {
    /// JSON array of attachments, after rendering.
    #[serde(default)]
    pub attachments: String,
    /// JSON array of blocks, after rendering.
    #[serde(default)]
    pub blocks: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct WebhookTemplate {
    /// Defaults to GET, as Argo's.
    #[serde(default)]
    pub method: String,
    /// Appended to the service URL.
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub body: String,
}

/// `service.slack[.<name>]`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SlackService {
    #[serde(default)]
    pub token: String,
    /// Slack Web API base (default `https://slack.com/api/`); a local stand-in in tests.
    #[serde(default, rename = "apiURL")]
    pub api_url: String,
    /// An incoming-webhook URL: messages are posted there instead of `chat.postMessage`.
    #[serde(default, rename = "webhookURL")]
    pub webhook_url: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub icon: String,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// `service.webhook.<name>`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookService {
    pub url: String,
    #[serde(default)]
    pub headers: Vec<Header>,
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Attempts after the first on a 5xx, a 429 or a transport error (Argo's default 3).
    #[serde(default)]
    pub retry_max: Option<u32>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

/// `service.email[.<name>]`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EmailService {
    pub host: String,
    pub port: u16,
    pub from: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// Send the body as HTML.
    #[serde(default)]
    pub html: bool,
    #[serde(default, rename = "insecure_skip_verify", alias = "insecureSkipVerify")]
    pub insecure_skip_verify: bool,
    /// Skip STARTTLS on a plain port (Argo's notifications always try it when offered).
    #[serde(default)]
    pub plain: bool,
}

/// A configured destination service.
#[derive(Clone, Debug, PartialEq)]
pub enum Service {
    Slack(SlackService),
    Webhook(WebhookService),
    Email(EmailService),
}

impl Service {
    /// The service type, as in `service.<type>`: a bounded metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Service::Slack(_) => "slack",
            Service::Webhook(_) => "webhook",
            Service::Email(_) => "email",
        }
    }
}

/// A global subscription from the `subscriptions` key.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct GlobalSubscription {
    /// `<service>:<recipient>` (or a bare `<service>`).
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Empty: the default triggers.
    #[serde(default)]
    pub triggers: Vec<String>,
    /// Objects whose labels match (all when absent).
    #[serde(default)]
    pub selector: Option<String>,
}

/// The parsed configuration.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub triggers: BTreeMap<String, Vec<Condition>>,
    pub templates: BTreeMap<String, Template>,
    /// By service name: `service.slack` is `slack`, `service.webhook.hooks` is `hooks`.
    pub services: BTreeMap<String, Service>,
    pub subscriptions: Vec<(GlobalSubscription, Selector)>,
    pub default_triggers: Vec<String>,
    pub default_triggers_by_service: BTreeMap<String, Vec<String>>,
    /// Secret values, for the `secrets` template variable.
    pub secrets: BTreeMap<String, String>,
    /// Keys left out, each with the reason.
    pub problems: Vec<String>,
}

impl Config {
    /// The built-in catalog overlaid with the ConfigMap's `data` and the Secret's values.
    pub fn parse(data: &BTreeMap<String, String>, secrets: BTreeMap<String, String>) -> Config {
        let mut config = catalog::config();
        config.secrets = secrets;
        for (key, text) in data {
            if let Err(problem) = config.add(key, text) {
                config
                    .problems
                    .push(format!("{CONFIG_MAP} key {key:?}: {problem}"));
            }
        }
        config
    }

    pub(crate) fn add(&mut self, key: &str, text: &str) -> Result<(), String> {
        if let Some(name) = key.strip_prefix("trigger.") {
            let conditions: Vec<Condition> = yaml(text)?;
            if let Some(bad) = conditions.iter().find(|c| c.send.is_empty()) {
                return Err(format!("a condition ({:?}) sends no template", bad.when));
            }
            self.triggers.insert(name.to_string(), conditions);
        } else if let Some(name) = key.strip_prefix("template.") {
            self.templates.insert(name.to_string(), yaml(text)?);
        } else if let Some(rest) = key.strip_prefix("service.") {
            let (kind, name) = rest.split_once('.').unwrap_or((rest, rest));
            let value = self.resolve_secrets(yaml::<Value>(text)?, key);
            let service = match kind {
                "slack" => Service::Slack(from_value(value)?),
                "webhook" => Service::Webhook(from_value(value)?),
                "email" => Service::Email(from_value(value)?),
                other => {
                    return Err(format!(
                        "service type {other:?} is not supported (slack, webhook, email)"
                    ));
                }
            };
            self.services.insert(name.to_string(), service);
        } else if key == "subscriptions" {
            let subscriptions: Vec<GlobalSubscription> = yaml(text)?;
            self.subscriptions = subscriptions
                .into_iter()
                .map(|s| {
                    let selector = Selector::parse(s.selector.as_deref().unwrap_or(""))?;
                    Ok((s, selector))
                })
                .collect::<Result<_, String>>()?;
        } else if key == "defaultTriggers" {
            self.default_triggers = yaml(text)?;
        } else if let Some(service) = key.strip_prefix("defaultTriggers.") {
            self.default_triggers_by_service
                .insert(service.to_string(), yaml(text)?);
        } else if !key.starts_with("context") {
            return Err(
                "unknown key (expected trigger.*, template.*, service.*, subscriptions, defaultTriggers)"
                    .into(),
            );
        }
        Ok(())
    }

    /// Replaces every `$key` in the service's strings by the Secret's value for `key` (`key` is
    /// letters, digits, `_` and `-`, as Argo's). A key the Secret lacks stays as written and is
    /// reported.
    fn resolve_secrets(&mut self, value: Value, service_key: &str) -> Value {
        match value {
            Value::String(s) => Value::String(self.expand(&s, service_key)),
            Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .map(|v| self.resolve_secrets(v, service_key))
                    .collect(),
            ),
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k, self.resolve_secrets(v, service_key)))
                    .collect(),
            ),
            other => other,
        }
    }

    fn expand(&mut self, text: &str, service_key: &str) -> String {
        let is_key_char = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let end = after.find(|c: char| !is_key_char(c)).unwrap_or(after.len());
            let key = &after[..end];
            match self.secrets.get(key) {
                Some(value) if !key.is_empty() => out.push_str(value),
                _ => {
                    if !key.is_empty() {
                        self.problems.push(format!(
                            "{CONFIG_MAP} key {service_key:?}: ${key} is not a key of the Secret {SECRET}"
                        ));
                    }
                    out.push('$');
                    out.push_str(key);
                }
            }
            rest = &after[end..];
        }
        out.push_str(rest);
        out
    }

    /// The default triggers of a service (its own list, else the global one).
    pub fn default_triggers_for(&self, service: &str) -> &[String] {
        self.default_triggers_by_service
            .get(service)
            .unwrap_or(&self.default_triggers)
    }
}

fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_saphyr::from_str(text).map_err(|e| e.to_string())
}

fn from_value<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn services_resolve_secret_references() {
        let config = Config::parse(
            &data(&[
                (
                    "service.slack",
                    "token: $slack-token\napiURL: http://127.0.0.1:1/api/\nusername: a$b-c\n",
                ),
                (
                    "service.webhook.hooks",
                    "url: http://127.0.0.1:2/\nheaders:\n- name: Authorization\n  value: $hook-auth\n",
                ),
            ]),
            BTreeMap::from([
                ("slack-token".to_string(), "xoxb-1".to_string()),
                ("hook-auth".to_string(), "Bearer s3".to_string()),
            ]),
        );
        let Some(Service::Slack(slack)) = config.services.get("slack") else {
            panic!("no slack service: {:?}", config.services)
        };
        assert_eq!(
            (slack.token.as_str(), slack.api_url.as_str()),
            ("xoxb-1", "http://127.0.0.1:1/api/")
        );
        // A `$` that names no Secret key stays as written, and is reported.
        assert_eq!(slack.username, "a$b-c");
        assert_eq!(
            config.problems,
            [
                "argo-rollouts-notification-configmap key \"service.slack\": $b-c is not a key of the Secret argo-rollouts-notification-secret"
            ]
        );
        let Some(Service::Webhook(hook)) = config.services.get("hooks") else {
            panic!("no webhook service")
        };
        assert_eq!(hook.headers[0].value, "Bearer s3");
    }

    #[test]
    fn bad_keys_are_reported_and_the_rest_kept() {
        let config = Config::parse(
            &data(&[
                ("service.slack", "token: $missing\n"),
                ("service.pagerduty", "token: x\n"),
                ("trigger.on-bad", "- when: rollout.status.phase == 'Degraded'\n"),
                ("template.ok", "message: hi\n"),
                ("template.broken", "message: [unclosed\n"),
            ]),
            BTreeMap::new(),
        );
        let problems = config.problems.join("\n");
        assert!(
            problems.contains(
                "\"service.slack\": $missing is not a key of the Secret argo-rollouts-notification-secret"
            ),
            "{problems}"
        );
        assert!(
            problems.contains("key \"service.pagerduty\": service type \"pagerduty\" is not supported"),
            "{problems}"
        );
        assert!(
            problems.contains("service type \"pagerduty\" is not supported"),
            "{problems}"
        );
        assert!(problems.contains("\"trigger.on-bad\": a condition"), "{problems}");
        assert!(problems.contains("\"template.broken\""), "{problems}");
        assert_eq!(config.templates["ok"].message, "hi");
        // The built-in catalog is still there.
        assert!(config.triggers.contains_key("on-rollout-completed"));
    }

    #[test]
    fn user_entries_override_the_catalog() {
        let config = Config::parse(
            &data(&[
                ("trigger.on-rollout-completed", "- send: [mine]\n"),
                ("template.mine", "message: done {{.rollout.metadata.name}}\n"),
                ("defaultTriggers", "- on-rollout-completed\n"),
                ("defaultTriggers.hooks", "- on-rollout-aborted\n"),
            ]),
            BTreeMap::new(),
        );
        assert_eq!(config.triggers["on-rollout-completed"][0].send, vec!["mine"]);
        assert_eq!(config.default_triggers_for("slack"), ["on-rollout-completed"]);
        assert_eq!(config.default_triggers_for("hooks"), ["on-rollout-aborted"]);
    }
}
