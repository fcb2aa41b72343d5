//! Rendering `template.<name>` entries: Go `text/template` syntax (the `gotmpl` crate), with the
//! sprig helpers Argo's templates use, over the variables Argo provides (`rollout`,
//! `analysisRuns`, `secrets`, `recipient`, `serviceType`; plus `analysisRun` and `experiment`
//! for AnalysisRun triggers). Every field is rendered before anything is sent: a template that
//! fails is an error naming the template and field, never a half-rendered message.

use std::{collections::BTreeMap, sync::Arc};

use gotmpl::{TemplateError, Value as TValue};
use serde_json::Value;

use crate::config::{Template, WebhookTemplate};

/// A template with every field rendered.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rendered {
    pub message: String,
    pub email_subject: String,
    pub email_body: String,
    pub slack_attachments: String,
    pub slack_blocks: String,
    /// By webhook service name.
    pub webhook: BTreeMap<String, WebhookTemplate>,
}

/// Why a template could not be rendered.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("template {template:?} field {field}: {reason}")]
pub struct RenderError {
    pub template: String,
    pub field: String,
    pub reason: String,
}

/// Renders every field of `template` with `vars` (a JSON object of the template variables).
pub fn render(name: &str, template: &Template, vars: &Value) -> Result<Rendered, RenderError> {
    let data = gotmpl::to_value(vars).map_err(|e| RenderError {
        template: name.into(),
        field: "(variables)".into(),
        reason: e.to_string(),
    })?;
    let field = |field: &str, text: &str| -> Result<String, RenderError> {
        render_text(text, &data).map_err(|reason| RenderError {
            template: name.into(),
            field: field.into(),
            reason,
        })
    };
    let message = field("message", &template.message)?;
    let (email_subject, email_body) = match &template.email {
        Some(email) => (
            field("email.subject", &email.subject)?,
            if email.body.is_empty() {
                message.clone()
            } else {
                field("email.body", &email.body)?
            },
        ),
        None => (String::new(), message.clone()),
    };
    let (slack_attachments, slack_blocks) = match &template.slack {
        Some(slack) => (
            field("slack.attachments", &slack.attachments)?,
            field("slack.blocks", &slack.blocks)?,
        ),
        None => Default::default(),
    };
    let mut webhook = BTreeMap::new();
    for (service, hook) in &template.webhook {
        webhook.insert(
            service.clone(),
            WebhookTemplate {
                method: hook.method.clone(),
                path: field(&format!("webhook.{service}.path"), &hook.path)?,
                body: field(&format!("webhook.{service}.body"), &hook.body)?,
            },
        );
    }
    Ok(Rendered {
        message,
        email_subject,
        email_body,
        slack_attachments,
        slack_blocks,
        webhook,
    })
}

fn render_text(text: &str, data: &TValue) -> Result<String, String> {
    if !text.contains("{{") {
        return Ok(text.to_string());
    }
    let template = with_functions(gotmpl::Template::new("template"))
        .parse(text)
        .map_err(|e| e.to_string())?;
    template.execute_to_string(data).map_err(|e| e.to_string())
}

type Result1 = Result<TValue, TemplateError>;

fn string(s: impl Into<Arc<str>>) -> TValue {
    TValue::String(s.into())
}

fn text_arg(args: &[TValue], i: usize) -> String {
    args.get(i).map(ToString::to_string).unwrap_or_default()
}

fn json_of(value: &TValue) -> serde_json::Value {
    match value {
        TValue::Nil => Value::Null,
        TValue::Bool(b) => Value::Bool(*b),
        TValue::Int(i) => Value::from(*i),
        TValue::Uint(u) => Value::from(*u),
        TValue::Float(f) => Value::from(*f),
        TValue::String(s) => Value::String(s.to_string()),
        TValue::List(items) => Value::Array(items.iter().map(json_of).collect()),
        TValue::Map(map) => Value::Object(map.iter().map(|(k, v)| (k.to_string(), json_of(v))).collect()),
        other => Value::String(other.to_string()),
    }
}

/// Folds numbers as sprig does: integers stay integers, a float anywhere makes a float.
fn arithmetic(args: &[TValue], int: fn(i64, i64) -> Option<i64>, float: fn(f64, f64) -> f64) -> Result1 {
    let number = |v: &TValue| match v {
        TValue::Int(i) => Ok((Some(*i), *i as f64)),
        TValue::Uint(u) => Ok((i64::try_from(*u).ok(), *u as f64)),
        TValue::Float(f) => Ok((None, *f)),
        TValue::String(s) => s
            .parse::<i64>()
            .map(|i| (Some(i), i as f64))
            .map_err(|_| TemplateError::Exec(format!("not a number: {s:?}"))),
        other => Err(TemplateError::Exec(format!("not a number: {other}"))),
    };
    let mut values = args.iter().map(number);
    let Some(first) = values.next() else {
        return Ok(TValue::Int(0));
    };
    let (mut exact, mut approx) = first?;
    for value in values {
        let (i, f) = value?;
        exact = exact.zip(i).and_then(|(a, b)| int(a, b));
        approx = float(approx, f);
    }
    Ok(exact.map_or(TValue::Float(approx), TValue::Int))
}

/// The sprig helpers Argo's and users' notification templates commonly call. Arguments follow
/// sprig's order (the piped value last).
fn with_functions(t: gotmpl::Template) -> gotmpl::Template {
    t.func("toJson", |a: &[TValue]| -> Result1 {
        Ok(string(
            serde_json::to_string(&json_of(a.first().unwrap_or(&TValue::Nil))).unwrap_or_default(),
        ))
    })
    .func("toPrettyJson", |a: &[TValue]| -> Result1 {
        Ok(string(
            serde_json::to_string_pretty(&json_of(a.first().unwrap_or(&TValue::Nil))).unwrap_or_default(),
        ))
    })
    .func("upper", |a: &[TValue]| -> Result1 {
        Ok(string(text_arg(a, 0).to_uppercase()))
    })
    .func("lower", |a: &[TValue]| -> Result1 {
        Ok(string(text_arg(a, 0).to_lowercase()))
    })
    .func("trim", |a: &[TValue]| -> Result1 {
        Ok(string(text_arg(a, 0).trim()))
    })
    .func("quote", |a: &[TValue]| -> Result1 {
        Ok(string(format!("{:?}", text_arg(a, 0))))
    })
    .func("contains", |a: &[TValue]| -> Result1 {
        Ok(TValue::Bool(text_arg(a, 1).contains(&text_arg(a, 0))))
    })
    .func("hasPrefix", |a: &[TValue]| -> Result1 {
        Ok(TValue::Bool(text_arg(a, 1).starts_with(&text_arg(a, 0))))
    })
    .func("hasSuffix", |a: &[TValue]| -> Result1 {
        Ok(TValue::Bool(text_arg(a, 1).ends_with(&text_arg(a, 0))))
    })
    .func("replace", |a: &[TValue]| -> Result1 {
        Ok(string(text_arg(a, 2).replace(&text_arg(a, 0), &text_arg(a, 1))))
    })
    .func("trunc", |a: &[TValue]| -> Result1 {
        let n = usize::try_from(a.first().and_then(TValue::as_int).unwrap_or(0)).unwrap_or(0);
        Ok(string(text_arg(a, 1).chars().take(n).collect::<String>()))
    })
    .func("default", |a: &[TValue]| -> Result1 {
        let given = a.get(1).cloned().unwrap_or(TValue::Nil);
        Ok(if gotmpl::is_true(&given) {
            given
        } else {
            a.first().cloned().unwrap_or(TValue::Nil)
        })
    })
    .func("add", |a: &[TValue]| -> Result1 {
        arithmetic(a, i64::checked_add, |x, y| x + y)
    })
    .func("sub", |a: &[TValue]| -> Result1 {
        arithmetic(a, i64::checked_sub, |x, y| x - y)
    })
    .func("mul", |a: &[TValue]| -> Result1 {
        arithmetic(a, i64::checked_mul, |x, y| x * y)
    })
    .func("join", |a: &[TValue]| -> Result1 {
        let sep = text_arg(a, 0);
        Ok(string(match a.get(1) {
            Some(TValue::List(items)) => items
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(&sep),
            other => other.map(ToString::to_string).unwrap_or_default(),
        }))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::{EmailTemplate, SlackTemplate};

    fn vars() -> Value {
        json!({
            "rollout": {"metadata": {"name": "mock-server", "namespace": "default"},
                        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "mock:2"}]}}},
                        "status": {"phase": "Healthy"}},
            "recipient": "deployments",
        })
    }

    #[test]
    fn fields_render_with_go_template_syntax() {
        let template = Template {
            message: "Rollout {{.rollout.metadata.name}} is {{.rollout.status.phase | lower}}.".into(),
            email: Some(EmailTemplate {
                subject: "[{{.rollout.metadata.namespace}}] {{.rollout.metadata.name}}".into(),
                body: String::new(),
            }),
            slack: Some(SlackTemplate {
                attachments: r#"[{{range $i, $c := .rollout.spec.template.spec.containers}}{{if $i}},{{end}}{"title":"{{$c.name}}","value":"{{$c.image}}"}{{end}}]"#.into(),
                blocks: String::new(),
            }),
            webhook: BTreeMap::from([(
                "hooks".to_string(),
                WebhookTemplate {
                    method: "POST".into(),
                    path: "/rollouts/{{.rollout.metadata.name}}".into(),
                    body: r#"{"rollout": {{toJson .rollout.metadata.name}}, "to": "{{.recipient}}"}"#.into(),
                },
            )]),
        };
        let rendered = render("t", &template, &vars()).unwrap();
        assert_eq!(rendered.message, "Rollout mock-server is healthy.");
        assert_eq!(rendered.email_subject, "[default] mock-server");
        assert_eq!(rendered.email_body, rendered.message);
        assert_eq!(
            rendered.slack_attachments,
            r#"[{"title":"app","value":"mock:2"}]"#
        );
        assert_eq!(rendered.webhook["hooks"].path, "/rollouts/mock-server");
        assert_eq!(
            rendered.webhook["hooks"].body,
            r#"{"rollout": "mock-server", "to": "deployments"}"#
        );
    }

    #[test]
    fn a_broken_template_names_template_and_field() {
        let template = Template {
            message: "ok".into(),
            email: Some(EmailTemplate {
                subject: "{{.rollout.metadata.name".into(),
                body: String::new(),
            }),
            ..Default::default()
        };
        let err = render("my-template", &template, &vars()).unwrap_err();
        assert_eq!(
            (err.template.as_str(), err.field.as_str()),
            ("my-template", "email.subject")
        );
        assert!(
            err.to_string()
                .starts_with("template \"my-template\" field email.subject: "),
            "{err}"
        );
        let calls_unknown = Template {
            message: "{{nosuchfunc .rollout}}".into(),
            ..Default::default()
        };
        assert!(
            render("t", &calls_unknown, &vars())
                .unwrap_err()
                .reason
                .contains("nosuchfunc")
        );
    }

    #[test]
    fn arithmetic_follows_sprig() {
        let template = Template {
            message: r#"{{add .n 1}} {{sub 5 .n}} {{mul .n 2 3}} {{add .n 0.5}}"#.into(),
            ..Default::default()
        };
        assert_eq!(
            render("t", &template, &json!({"n": 2})).unwrap().message,
            "3 3 12 2.5"
        );
        let bad = Template {
            message: r#"{{add .s 1}}"#.into(),
            ..Default::default()
        };
        assert!(
            render("t", &bad, &json!({"s": "x"}))
                .unwrap_err()
                .reason
                .contains("not a number")
        );
    }

    #[test]
    fn missing_fields_render_as_go_does() {
        let template = Template {
            message: "{{.rollout.status.abort}}|{{default \"none\" .rollout.status.message}}".into(),
            ..Default::default()
        };
        assert_eq!(
            render("t", &template, &vars()).unwrap().message,
            "<no value>|none"
        );
    }
}
