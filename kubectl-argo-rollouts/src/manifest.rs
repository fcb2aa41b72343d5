//! Reading manifest files (YAML, possibly several `---` documents, or JSON) and checking the
//! Argo Rollouts objects in them offline: for `lint` and before `create`.
//!
//! Every problem names its field: type errors through `serde_path_to_error` over the parsed
//! document (`spec.replicas: invalid type: string "abc", expected i32`), unknown fields by
//! comparing the document with what the typed object keeps, and spec rules through the
//! shared-types validators.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;
use shared_types::{
    analysis::{
        AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate, validate_analysis_run_spec,
        validate_analysis_template_spec,
    },
    experiment::{Experiment, validate_experiment_spec},
    field_error::FieldError,
    rollout::Rollout,
    validation::validate_rollout_spec,
};

use crate::error::Error;

/// API group of the Argo Rollouts kinds.
pub const GROUP: &str = "argoproj.io";

/// The Argo Rollouts kinds the plugin understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Rollout.
    Rollout,
    /// Experiment.
    Experiment,
    /// AnalysisTemplate.
    AnalysisTemplate,
    /// ClusterAnalysisTemplate.
    ClusterAnalysisTemplate,
    /// AnalysisRun.
    AnalysisRun,
}

impl Kind {
    /// The kind of a document when it is an `argoproj.io` kind we know.
    pub fn of(doc: &Value) -> Option<Kind> {
        let group = doc["apiVersion"]
            .as_str()
            .and_then(|v| v.split_once('/'))
            .map(|(g, _)| g);
        if group != Some(GROUP) {
            return None;
        }
        match doc["kind"].as_str()? {
            "Rollout" => Some(Kind::Rollout),
            "Experiment" => Some(Kind::Experiment),
            "AnalysisTemplate" => Some(Kind::AnalysisTemplate),
            "ClusterAnalysisTemplate" => Some(Kind::ClusterAnalysisTemplate),
            "AnalysisRun" => Some(Kind::AnalysisRun),
            _ => None,
        }
    }

    /// Lower-case singular name (`rollout`, `clusteranalysistemplate`...).
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Rollout => "rollout",
            Kind::Experiment => "experiment",
            Kind::AnalysisTemplate => "analysistemplate",
            Kind::ClusterAnalysisTemplate => "clusteranalysistemplate",
            Kind::AnalysisRun => "analysisrun",
        }
    }

    /// Plural resource name.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Rollout => "rollouts",
            Kind::Experiment => "experiments",
            Kind::AnalysisTemplate => "analysistemplates",
            Kind::ClusterAnalysisTemplate => "clusteranalysistemplates",
            Kind::AnalysisRun => "analysisruns",
        }
    }

    /// The kind as written in manifests.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Rollout => "Rollout",
            Kind::Experiment => "Experiment",
            Kind::AnalysisTemplate => "AnalysisTemplate",
            Kind::ClusterAnalysisTemplate => "ClusterAnalysisTemplate",
            Kind::AnalysisRun => "AnalysisRun",
        }
    }
}

/// Reads `path` and returns its documents (empty documents skipped).
pub fn read_documents(path: &Path) -> Result<Vec<Value>, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::msg(format!("unable to read {}: {e}", path.display())))?;
    parse_documents(&text).map_err(|e| Error::msg(format!("error parsing {}: {e}", path.display())))
}

/// Parses JSON (when the text starts with `{`) or multi-document YAML.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, String> {
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text)
            .map(|v| vec![v])
            .map_err(|e| e.to_string());
    }
    // The YAML error renders a source snippet over several lines; its first line says it all.
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| {
        let message = e.to_string();
        let first = message.lines().next().unwrap_or_default();
        first.strip_prefix("error: ").unwrap_or(first).to_string()
    })?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Decodes `doc` as `T`; a failure names the offending field.
pub fn decode<T: DeserializeOwned>(doc: &Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        FieldError::new(
            if path == "." { "<root>".to_string() } else { path },
            e.into_inner().to_string(),
        )
    })
}

/// Fields of `input` that `kept` (the same document after a round trip through its type) does
/// not have: fields the type does not know, i.e. typos or fields of another version.
fn unknown_fields(input: &Value, kept: &Value, path: &str, out: &mut Vec<FieldError>) {
    match (input, kept) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(kv) => unknown_fields(v, kv, &child, out),
                    // Explicit nulls and empty values are dropped by the round trip without being
                    // unknown.
                    None if v.is_null() || v == &Value::Object(Default::default()) => {}
                    None if v.as_array().is_some_and(Vec::is_empty) => {}
                    None => out.push(FieldError::new(child, format!("unknown field \"{k}\""))),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                unknown_fields(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Decodes `doc` as `T` and reports unknown fields too.
pub fn decode_strict<T: DeserializeOwned + serde::Serialize>(doc: &Value) -> Result<T, Vec<FieldError>> {
    let typed: T = decode(doc).map_err(|e| vec![e])?;
    let kept = serde_json::to_value(&typed).map_err(|e| vec![FieldError::new("<root>", e.to_string())])?;
    let mut unknown = Vec::new();
    unknown_fields(doc, &kept, "", &mut unknown);
    // Status is written by controllers; only the user-written parts are checked.
    unknown.retain(|e| !e.path.starts_with("status"));
    if unknown.is_empty() {
        Ok(typed)
    } else {
        Err(unknown)
    }
}

/// Checks one document. Documents of other kinds (Services, Ingresses...) are not checked.
/// Unknown fields and spec rule violations are all reported; a type error stops at itself.
pub fn lint_document(doc: &Value) -> Vec<FieldError> {
    match Kind::of(doc) {
        None => Vec::new(),
        Some(Kind::Rollout) => lint_as::<Rollout>(doc, |r| validate_rollout_spec(&r.spec)),
        Some(Kind::AnalysisTemplate) => {
            lint_as::<AnalysisTemplate>(doc, |t| validate_analysis_template_spec(&t.spec))
        }
        Some(Kind::ClusterAnalysisTemplate) => {
            lint_as::<ClusterAnalysisTemplate>(doc, |t| validate_analysis_template_spec(&t.spec))
        }
        Some(Kind::Experiment) => lint_as::<Experiment>(doc, |e| {
            validate_experiment_spec(e.metadata.name.as_deref().unwrap_or_default(), &e.spec)
        }),
        Some(Kind::AnalysisRun) => lint_as::<AnalysisRun>(doc, |r| validate_analysis_run_spec(&r.spec)),
    }
}

fn lint_as<T: DeserializeOwned + serde::Serialize>(
    doc: &Value,
    validate: impl FnOnce(&T) -> Result<(), Vec<FieldError>>,
) -> Vec<FieldError> {
    let typed: T = match decode(doc) {
        Ok(t) => t,
        Err(e) => return vec![e],
    };
    let mut errors = match serde_json::to_value(&typed) {
        Ok(kept) => {
            let mut unknown = Vec::new();
            unknown_fields(doc, &kept, "", &mut unknown);
            unknown.retain(|e| !e.path.starts_with("status"));
            unknown
        }
        Err(e) => vec![FieldError::new("<root>", e.to_string())],
    };
    if let Err(rules) = validate(&typed) {
        errors.extend(rules);
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLLOUT: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: demo
spec:
  replicas: 3
  selector:
    matchLabels: {app: demo}
  template:
    metadata:
      labels: {app: demo}
    spec:
      containers:
      - name: demo
        image: nginx
        ports:
        - containerPort: 8080
  strategy:
    canary:
      steps:
      - setWeight: 20
      - pause: {}
---
apiVersion: v1
kind: Service
metadata:
  name: demo
spec:
  ports:
  - port: 80
"#;

    #[test]
    fn valid_multi_document_file() {
        let docs = parse_documents(ROLLOUT).unwrap();
        assert_eq!(docs.len(), 2);
        assert!(
            docs.iter().all(|d| lint_document(d).is_empty()),
            "{:?}",
            docs.iter().map(lint_document).collect::<Vec<_>>()
        );
    }

    #[test]
    fn wrong_type_names_the_field() {
        let text = ROLLOUT.replace("replicas: 3", "replicas: \"abc\"");
        let docs = parse_documents(&text).unwrap();
        let errs = lint_document(&docs[0]);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path, "spec.replicas");
        assert!(errs[0].message.contains("invalid type"), "{}", errs[0].message);
    }

    #[test]
    fn unknown_field_is_reported() {
        let text = ROLLOUT.replace("      - setWeight: 20", "      - setWeigth: 20");
        let errs = lint_document(&parse_documents(&text).unwrap()[0]);
        assert_eq!(
            errs[0].to_string(),
            "spec.strategy.canary.steps[0].setWeigth: unknown field \"setWeigth\""
        );
    }

    #[test]
    fn spec_rules_name_the_field() {
        let text = ROLLOUT.replace("      - setWeight: 20", "      - setWeight: 120");
        let errs = lint_document(&parse_documents(&text).unwrap()[0]);
        assert!(
            errs[0].path.starts_with("spec.strategy.canary.steps[0]"),
            "{errs:?}"
        );
    }

    #[test]
    fn json_documents() {
        let docs =
            parse_documents(r#"{"apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment"}"#).unwrap();
        assert_eq!(Kind::of(&docs[0]), Some(Kind::Experiment));
    }
}
