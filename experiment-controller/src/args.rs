//! Argument templating of an experiment's analyses: `{{templates.<t>.podTemplateHash}}`,
//! `{{templates.<t>.replicaset.name}}`, `{{experiment.availableAt}}` and
//! `{{experiment.finishedAt}}` in argument values are replaced before the AnalysisRun is built.
//! Other `{{...}}` tags are an error, as in Argo (the run would not be measurable anyway).

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use shared_types::analysis::Argument;

/// What a template contributes to the arguments.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateFacts {
    /// The ReplicaSet's name.
    pub replica_set: String,
    /// The ReplicaSet's pod-template hash.
    pub pod_template_hash: String,
}

/// The values the tags resolve to.
#[derive(Clone, Debug, Default)]
pub struct ArgContext {
    /// Facts per template name.
    pub templates: BTreeMap<String, TemplateFacts>,
    /// `status.availableAt`.
    pub available_at: Option<Timestamp>,
    /// `availableAt + duration`, when both are known.
    pub finished_at: Option<Timestamp>,
}

fn rfc3339(t: Option<Timestamp>) -> String {
    t.map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

impl ArgContext {
    fn tag(&self, tag: &str) -> Result<String, String> {
        match tag {
            "experiment.availableAt" => return Ok(rfc3339(self.available_at)),
            "experiment.finishedAt" => return Ok(rfc3339(self.finished_at)),
            _ => {}
        }
        let unresolved = || format!("failed to resolve {{{{{tag}}}}}");
        let rest = tag.strip_prefix("templates.").ok_or_else(unresolved)?;
        let (template, field) = if let Some(t) = rest.strip_suffix(".podTemplateHash") {
            (t, "hash")
        } else if let Some(t) = rest.strip_suffix(".replicaset.name") {
            (t, "rs")
        } else {
            return Err(unresolved());
        };
        let facts = self.templates.get(template).ok_or_else(unresolved)?;
        Ok(if field == "hash" {
            facts.pod_template_hash.clone()
        } else {
            facts.replica_set.clone()
        })
    }

    /// One value with its tags replaced.
    pub fn resolve_value(&self, value: &str) -> Result<String, String> {
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                out.push_str(&rest[start..]);
                return Ok(out);
            };
            out.push_str(&self.tag(after[..end].trim())?);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The arguments with their values resolved (`valueFrom` arguments are left to the run).
    pub fn resolve(&self, args: &[Argument]) -> Result<Vec<Argument>, String> {
        args.iter()
            .map(|a| {
                let mut a = a.clone();
                if let Some(v) = &a.value {
                    a.value = Some(self.resolve_value(v)?);
                }
                Ok(a)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ArgContext {
        ArgContext {
            templates: BTreeMap::from([(
                "canary".to_string(),
                TemplateFacts {
                    replica_set: "exp-canary".into(),
                    pod_template_hash: "abc123".into(),
                },
            )]),
            available_at: Some("2024-05-01T10:00:00Z".parse().unwrap()),
            finished_at: Some("2024-05-01T10:05:00Z".parse().unwrap()),
        }
    }

    #[test]
    fn template_tags_resolve() {
        let c = ctx();
        assert_eq!(
            c.resolve_value("hash={{templates.canary.podTemplateHash}}")
                .unwrap(),
            "hash=abc123"
        );
        assert_eq!(
            c.resolve_value("{{ templates.canary.replicaset.name }}/x")
                .unwrap(),
            "exp-canary/x"
        );
        assert_eq!(
            c.resolve_value("{{experiment.availableAt}}..{{experiment.finishedAt}}")
                .unwrap(),
            "2024-05-01T10:00:00Z..2024-05-01T10:05:00Z"
        );
        assert_eq!(c.resolve_value("plain").unwrap(), "plain");
        assert_eq!(c.resolve_value("open {{ end").unwrap(), "open {{ end");
    }

    #[test]
    fn unknown_tags_are_errors() {
        let c = ctx();
        assert_eq!(
            c.resolve_value("{{templates.stable.podTemplateHash}}"),
            Err("failed to resolve {{templates.stable.podTemplateHash}}".into())
        );
        assert!(c.resolve_value("{{args.x}}").is_err());
        let args = vec![
            Argument {
                name: "h".into(),
                value: Some("{{templates.canary.podTemplateHash}}".into()),
                value_from: None,
            },
            Argument {
                name: "s".into(),
                value: None,
                value_from: Some(Default::default()),
            },
        ];
        let resolved = c.resolve(&args).unwrap();
        assert_eq!(resolved[0].value.as_deref(), Some("abc123"));
        assert_eq!(resolved[1], args[1]);
        assert_eq!(
            ArgContext::default()
                .resolve_value("{{experiment.availableAt}}")
                .unwrap(),
            ""
        );
    }
}
