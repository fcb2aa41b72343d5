//! `service.slack`: `chat.postMessage` on the Slack Web API (`apiURL` overrides the base, a
//! local stand-in in tests), a form post as Argo's Slack client sends it (`token`, `channel` =
//! the recipient, `text`, `attachments`, `blocks`, `username`, `icon_emoji`/`icon_url`); or,
//! with `webhookURL` (ours: Argo needs a webhook service for that), a JSON post to an incoming
//! webhook.

use serde_json::{Map, Value, json};

use super::{Attempt, REQUEST_TIMEOUT, http_client, http_status, transport};
use crate::{config::SlackService, template::Rendered};

const DEFAULT_API_URL: &str = "https://slack.com/api/";

/// The message fields Slack receives (as form fields, or as the JSON body of a webhook post).
pub(crate) fn payload(
    service: &SlackService,
    channel: &str,
    rendered: &Rendered,
) -> Result<Map<String, Value>, Attempt> {
    let mut body = Map::new();
    if service.webhook_url.is_empty() {
        body.insert("channel".into(), json!(channel));
    }
    body.insert("text".into(), json!(rendered.message));
    for (field, text) in [
        ("attachments", &rendered.slack_attachments),
        ("blocks", &rendered.slack_blocks),
    ] {
        if text.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(text).map_err(|e| {
            Attempt::Fail(format!(
                "slack.{field} of the template is not JSON after rendering: {e}"
            ))
        })?;
        body.insert(field.into(), value);
    }
    if !service.username.is_empty() {
        body.insert("username".into(), json!(service.username));
    }
    if !service.icon.is_empty() {
        let key = if service.icon.starts_with(':') {
            "icon_emoji"
        } else {
            "icon_url"
        };
        body.insert(key.into(), json!(service.icon));
    }
    Ok(body)
}

/// Form fields: strings as they are, attachments and blocks as compact JSON.
fn form(token: &str, body: Map<String, Value>) -> Vec<(String, String)> {
    let mut fields = vec![("token".to_string(), token.to_string())];
    fields.extend(body.into_iter().map(|(k, v)| match v {
        Value::String(s) => (k, s),
        other => (k, other.to_string()),
    }));
    fields
}

pub(crate) async fn send(service: &SlackService, channel: &str, rendered: &Rendered) -> Result<(), Attempt> {
    let body = payload(service, channel, rendered)?;
    let client = http_client(service.insecure_skip_verify)?;
    let request = if service.webhook_url.is_empty() {
        let base = if service.api_url.is_empty() {
            DEFAULT_API_URL
        } else {
            service.api_url.as_str()
        };
        let url = format!("{}/chat.postMessage", base.trim_end_matches('/'));
        client.post(url).form(&form(&service.token, body))
    } else {
        client.post(&service.webhook_url).json(&body)
    };
    let response = request
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(|e| transport(&e))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    http_status(status, &text)?;
    if !service.webhook_url.is_empty() {
        return Ok(());
    }
    // The Web API answers 200 with `{"ok": false, "error": "..."}` when it refuses a message.
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    match answer.get("ok").and_then(Value::as_bool) {
        Some(true) => Ok(()),
        _ => {
            let error = answer
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("unexpected answer");
            if error == "ratelimited" {
                Err(Attempt::Retry(format!("Slack API: {error}")))
            } else {
                Err(Attempt::Fail(format!("Slack API: {error}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_carries_channel_text_attachments_and_identity() {
        let service = SlackService {
            username: "argo".into(),
            icon: ":rocket:".into(),
            ..Default::default()
        };
        let rendered = Rendered {
            message: "Rollout web has been completed.".into(),
            slack_attachments: r#"[{"title": "web"}]"#.into(),
            ..Default::default()
        };
        let Ok(body) = payload(&service, "deployments", &rendered) else {
            panic!("payload")
        };
        assert_eq!(
            Value::Object(body.clone()),
            json!({"channel": "deployments", "text": "Rollout web has been completed.",
                   "attachments": [{"title": "web"}], "username": "argo", "icon_emoji": ":rocket:"})
        );
        let fields = form("xoxb-1", body);
        assert!(fields.contains(&("token".into(), "xoxb-1".into())));
        assert!(fields.contains(&("attachments".into(), r#"[{"title":"web"}]"#.into())));
        assert!(fields.contains(&("text".into(), "Rollout web has been completed.".into())));
        let broken = Rendered {
            slack_attachments: "[{".into(),
            ..Default::default()
        };
        let Err(Attempt::Fail(reason)) = payload(&service, "c", &broken) else {
            panic!("accepted broken JSON")
        };
        assert!(
            reason.starts_with("slack.attachments of the template is not JSON"),
            "{reason}"
        );
    }
}
