//! Argo Rollouts' built-in notification catalog: nine triggers, each `- send: [<template>]` with
//! no `when` (fired here from status, see [`crate::trigger`]), and their templates with the
//! texts Argo ships, so a subscription works with nothing configured but a service. The
//! ConfigMap overrides any of them by name.
//!
//! Two additions to the analysis templates: the failure and error messages end with the run's
//! `status.message` (the cause the analysis controller records, which Argo's leave out), and a
//! run no Rollout owns (a standalone run or Experiment) is named by itself instead of as
//! "Rollout <no value>'s analysis run". For a Rollout's run the text is Argo's.

use std::collections::BTreeMap;

use crate::config::{Condition, Config, EmailTemplate, SlackTemplate, Template};

const GREEN: &str = "#18be52";
const RED: &str = "#E01E5A";
const YELLOW: &str = "#ECB22E";

/// The analysis run's cause, appended to failure messages.
const CAUSE: &str = "{{with .analysisRun.status.message}} {{.}}{{end}}";

/// How Argo's analysis messages start, and how ours start for a run no Rollout owns.
const ROLLOUT_RUN: &str = "Rollout {{.rollout.metadata.name}}'s analysis run";
const OWN_RUN: &str = "AnalysisRun {{.analysisRun.metadata.name}}";

/// One built-in trigger and its template.
struct Entry {
    trigger: &'static str,
    template: &'static str,
    message: &'static str,
    color: &'static str,
    /// Slack fields after "Strategy": (title, value).
    fields: &'static [(&'static str, &'static str)],
}

const ENTRIES: &[Entry] = &[
    Entry {
        trigger: "on-rollout-completed",
        template: "rollout-completed",
        message: "Rollout {{.rollout.metadata.name}} has been completed.",
        color: GREEN,
        fields: &[],
    },
    Entry {
        trigger: "on-rollout-step-completed",
        template: "rollout-step-completed",
        message: "Rollout {{.rollout.metadata.name}} step number {{ add .rollout.status.currentStepIndex 1}}/{{len .rollout.spec.strategy.canary.steps}} has been completed.",
        color: GREEN,
        fields: &[(
            "Step completed",
            "{{add .rollout.status.currentStepIndex 1}}/{{len .rollout.spec.strategy.canary.steps}}",
        )],
    },
    Entry {
        trigger: "on-rollout-updated",
        template: "rollout-updated",
        message: "Rollout {{.rollout.metadata.name}} has been updated.",
        color: GREEN,
        fields: &[],
    },
    Entry {
        trigger: "on-rollout-aborted",
        template: "rollout-aborted",
        message: "Rollout {{.rollout.metadata.name}} has been aborted.",
        color: RED,
        fields: &[],
    },
    Entry {
        trigger: "on-rollout-paused",
        template: "rollout-paused",
        message: "Rollout {{.rollout.metadata.name}} has been paused.",
        color: GREEN,
        fields: &[],
    },
    Entry {
        trigger: "on-scaling-replica-set",
        template: "scaling-replicaset",
        message: "Scaling Rollout {{.rollout.metadata.name}}'s replicaset to {{.rollout.spec.replicas}}.",
        color: GREEN,
        fields: &[
            ("Desired replica", "{{.rollout.spec.replicas}}"),
            ("Updated replicas", "{{.rollout.status.updatedReplicas}}"),
        ],
    },
    Entry {
        trigger: "on-analysis-run-running",
        template: "analysis-run-running",
        message: "Rollout {{.rollout.metadata.name}}'s analysis run is running.",
        color: GREEN,
        fields: &[],
    },
    Entry {
        trigger: "on-analysis-run-error",
        template: "analysis-run-error",
        message: "Rollout {{.rollout.metadata.name}}'s analysis run is in error state.",
        color: YELLOW,
        fields: &[],
    },
    Entry {
        trigger: "on-analysis-run-failed",
        template: "analysis-run-failed",
        message: "Rollout {{.rollout.metadata.name}}'s analysis run failed.",
        color: RED,
        fields: &[],
    },
];

/// Argo's Slack attachment: the rollout's name, the strategy, `extra` fields, one field per
/// container (with the template's whitespace, so the rendered text is Argo's).
fn attachments(color: &str, extra: &[(&str, &str)]) -> String {
    let extra: String = extra
        .iter()
        .map(|(title, value)| {
            format!(
                ",\n  {{\n    \"title\": \"{title}\",\n    \"value\": \"{value}\",\n    \"short\": true\n  }}"
            )
        })
        .collect();
    format!(
        r#"[{{
  "title": "{{{{ .rollout.metadata.name}}}}",
  "color": "{color}",
  "fields": [
  {{
    "title": "Strategy",
    "value": "{{{{if .rollout.spec.strategy.blueGreen}}}}BlueGreen{{{{end}}}}{{{{if .rollout.spec.strategy.canary}}}}Canary{{{{end}}}}",
    "short": true
  }}{extra}
  {{{{range $index, $c := .rollout.spec.template.spec.containers}}}}
    {{{{if not $index}}}},{{{{end}}}}
    {{{{if $index}}}},{{{{end}}}}
    {{
      "title": "{{{{$c.name}}}}",
      "value": "{{{{$c.image}}}}",
      "short": true
    }}
  {{{{end}}}}
  ]
}}]
"#
    )
}

/// The catalog as a configuration.
pub fn config() -> Config {
    let mut triggers = BTreeMap::new();
    let mut templates = BTreeMap::new();
    for Entry {
        trigger,
        template,
        message,
        color,
        fields,
    } in ENTRIES
    {
        triggers.insert(
            trigger.to_string(),
            vec![Condition {
                send: vec![template.to_string()],
                ..Default::default()
            }],
        );
        // Argo's email subject is its message.
        let subject = match message.strip_prefix(ROLLOUT_RUN) {
            Some(rest) => format!("{{{{if .rollout}}}}{message}{{{{else}}}}{OWN_RUN}{rest}{{{{end}}}}"),
            None => message.to_string(),
        };
        let message = match *template {
            "analysis-run-failed" | "analysis-run-error" => format!("{subject}{CAUSE}"),
            _ => subject.clone(),
        };
        templates.insert(
            template.to_string(),
            Template {
                email: Some(EmailTemplate {
                    subject,
                    body: String::new(),
                }),
                slack: Some(SlackTemplate {
                    attachments: attachments(color, fields),
                    blocks: String::new(),
                }),
                message,
                webhook: BTreeMap::new(),
            },
        );
    }
    Config {
        triggers,
        templates,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::template::render;

    /// The sample the catalog texts below were produced from with Argo's Go templates: a canary
    /// Rollout `demo` with two containers, at step index 1 of 3, 5 replicas, 2 updated.
    fn sample() -> Value {
        json!({"rollout": {
            "metadata": {"name": "demo", "namespace": "default"},
            "spec": {
                "replicas": 5,
                "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}]}},
                "template": {"spec": {"containers": [
                    {"name": "app", "image": "argoproj/rollouts-demo:blue"},
                    {"name": "sidecar", "image": "nginx:1.25"}
                ]}}
            },
            "status": {"currentStepIndex": 1, "updatedReplicas": 2}
        }})
    }

    fn rendered(template: &str, vars: &Value) -> crate::template::Rendered {
        let config = config();
        render(template, &config.templates[template], vars).unwrap()
    }

    /// Argo's rendering of the container part of every attachment (note the comma placement).
    const CONTAINERS: &str = "\n  \n    ,\n    \n    {\n      \"title\": \"app\",\n      \"value\": \"argoproj/rollouts-demo:blue\",\n      \"short\": true\n    }\n  \n    \n    ,\n    {\n      \"title\": \"sidecar\",\n      \"value\": \"nginx:1.25\",\n      \"short\": true\n    }\n  \n  ]\n}]\n";

    fn argo_attachments(color: &str, fields: &str) -> String {
        format!(
            "[{{\n  \"title\": \"demo\",\n  \"color\": \"{color}\",\n  \"fields\": [\n  {{\n    \"title\": \"Strategy\",\n    \"value\": \"Canary\",\n    \"short\": true\n  }}{fields}{CONTAINERS}"
        )
    }

    #[test]
    fn every_builtin_trigger_sends_its_template() {
        let config = config();
        assert_eq!(config.triggers.len(), 9);
        for (trigger, conditions) in &config.triggers {
            assert_eq!(conditions.len(), 1, "{trigger}");
            assert!(conditions[0].when.is_empty(), "{trigger}");
            assert!(config.templates.contains_key(&conditions[0].send[0]), "{trigger}");
        }
        assert_eq!(
            config.triggers["on-scaling-replica-set"][0].send,
            ["scaling-replicaset"]
        );
    }

    #[test]
    fn rollout_templates_render_argos_text() {
        let vars = sample();
        let cases = [
            ("rollout-completed", "Rollout demo has been completed.", GREEN, String::new()),
            ("rollout-updated", "Rollout demo has been updated.", GREEN, String::new()),
            ("rollout-aborted", "Rollout demo has been aborted.", RED, String::new()),
            ("rollout-paused", "Rollout demo has been paused.", GREEN, String::new()),
            (
                "rollout-step-completed",
                "Rollout demo step number 2/3 has been completed.",
                GREEN,
                ",\n  {\n    \"title\": \"Step completed\",\n    \"value\": \"2/3\",\n    \"short\": true\n  }".to_string(),
            ),
            (
                "scaling-replicaset",
                "Scaling Rollout demo's replicaset to 5.",
                GREEN,
                ",\n  {\n    \"title\": \"Desired replica\",\n    \"value\": \"5\",\n    \"short\": true\n  },\n  {\n    \"title\": \"Updated replicas\",\n    \"value\": \"2\",\n    \"short\": true\n  }".to_string(),
            ),
        ];
        for (template, message, color, fields) in cases {
            let out = rendered(template, &vars);
            assert_eq!(out.message, message, "{template}");
            assert_eq!(out.email_subject, message, "{template}");
            assert_eq!(out.email_body, message, "{template}");
            assert_eq!(
                out.slack_attachments,
                argo_attachments(color, &fields),
                "{template}"
            );
            let parsed: Value = serde_json::from_str(&out.slack_attachments).unwrap();
            assert_eq!(parsed[0]["fields"][0]["value"], "Canary", "{template}");
        }
    }

    #[test]
    fn analysis_templates_render_argos_text_plus_the_cause() {
        let mut vars = sample();
        let cases = [
            (
                "analysis-run-running",
                "Rollout demo's analysis run is running.",
                GREEN,
            ),
            (
                "analysis-run-error",
                "Rollout demo's analysis run is in error state.",
                YELLOW,
            ),
            ("analysis-run-failed", "Rollout demo's analysis run failed.", RED),
        ];
        for (template, message, color) in cases {
            let out = rendered(template, &vars);
            assert_eq!(
                (out.message.as_str(), out.email_subject.as_str()),
                (message, message)
            );
            assert_eq!(out.slack_attachments, argo_attachments(color, ""), "{template}");
        }
        vars["analysisRun"] = json!({"status": {"phase": "Failed", "message": "Metric \"success-rate\" assessed Failed due to failed (1) > failureLimit (0)"}});
        assert_eq!(
            rendered("analysis-run-failed", &vars).message,
            "Rollout demo's analysis run failed. Metric \"success-rate\" assessed Failed due to failed (1) > failureLimit (0)"
        );
        assert_eq!(
            rendered("analysis-run-running", &vars).message,
            "Rollout demo's analysis run is running."
        );
        // A run of a standalone Experiment: named by itself.
        let standalone = json!({"analysisRun": {"metadata": {"name": "judged-health"},
                                                "status": {"phase": "Error", "message": "cannot connect"}}});
        let out = rendered("analysis-run-error", &standalone);
        assert_eq!(
            out.message,
            "AnalysisRun judged-health is in error state. cannot connect"
        );
        assert_eq!(out.email_subject, "AnalysisRun judged-health is in error state.");
    }
}
