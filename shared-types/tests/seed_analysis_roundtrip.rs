//! The AnalysisTemplate and Experiment manifests of the seed document (copies in
//! `tests/data/seed/`) read into the typed structs and written back without loss, plus checks on
//! the generated CRDs of the analysis and experiment kinds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::PathBuf;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResourceExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use shared_types::analysis::{
    AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate, validate_analysis_template_spec,
};
use shared_types::experiment::{Experiment, validate_experiment_spec};

fn seed(name: &str) -> String {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "data", "seed", name]
        .iter()
        .collect();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Parses `yaml` as `T` and checks that writing it back gives the same JSON as the YAML itself.
fn round_trip<T: DeserializeOwned + Serialize>(name: &str) -> T {
    let yaml = seed(name);
    let typed: T = serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{name}: typed parse: {e}"));
    let expected: Value =
        serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{name}: untyped parse: {e}"));
    let actual = serde_json::to_value(&typed).unwrap();
    assert_eq!(actual, expected, "{name} did not round-trip");
    typed
}

const TEMPLATES: [&str; 3] = [
    "manifest04-analysistemplate-success-rate.yaml",
    "manifest15-analysistemplate-stable-canary-comparison.yaml",
    "manifest17-analysistemplate-success-rate-destinationrule.yaml",
];

#[test]
fn seed_analysis_templates_round_trip_and_validate() {
    for name in TEMPLATES {
        let template: AnalysisTemplate = round_trip(name);
        assert_eq!(validate_analysis_template_spec(&template.spec), Ok(()), "{name}");
        for metric in template.spec.metrics() {
            assert_eq!(metric.interval.as_deref(), Some("30s"), "{name}");
            assert_eq!(metric.count, Some(IntOrString::Int(3)), "{name}");
            assert_eq!(metric.failure_limit(), Ok(2), "{name}");
            assert_eq!(metric.consecutive_error_limit(), Ok(4), "{name}");
            assert_eq!(metric.effective_count(), Ok(Some(3)), "{name}");
            assert_eq!(
                metric.success_condition.as_deref(),
                Some("result >= 0.95"),
                "{name}"
            );
            let prometheus = metric.provider.prometheus.as_ref().expect("prometheus provider");
            assert_eq!(
                prometheus.address.as_deref(),
                Some("http://prometheus.istio-system.svc.cluster.local:9090")
            );
            assert_eq!(prometheus.timeout_seconds(), 30);
            assert!(prometheus.query.as_deref().unwrap().starts_with("scalar(\n"));
        }
    }
}

#[test]
fn seed_comparison_template_has_args_and_fixed_query() {
    let template: AnalysisTemplate = round_trip(TEMPLATES[1]);
    assert_eq!(
        template.metadata.name.as_deref(),
        Some("stable-canary-comparison")
    );
    let args: Vec<_> = template.spec.args().iter().map(|a| a.name.as_str()).collect();
    assert_eq!(args, ["stable-replicaset", "canary-replicaset"]);
    assert!(template.spec.args().iter().all(|a| a.value.is_none()));
    let names: Vec<_> = template.spec.metrics().iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["stable-success-rate", "canary-success-rate"]);
    let query = template.spec.metrics()[0]
        .provider
        .prometheus
        .as_ref()
        .unwrap()
        .query
        .as_deref()
        .unwrap();
    // The copy fixes the seed's unclosed label quote; both label matchers are now well formed.
    assert_eq!(
        query
            .matches(r#"destination_service_name="mock-server-experiment-stable","#)
            .count(),
        2
    );
    assert!(query.contains(r#"destination_workload="{{args.stable-replicaset}}""#));
}

#[test]
fn seed_template_also_reads_as_cluster_template() {
    // Same spec, other kind: the spec types are shared.
    let yaml = seed(TEMPLATES[0]).replace("kind: AnalysisTemplate", "kind: ClusterAnalysisTemplate");
    let cluster: ClusterAnalysisTemplate = serde_saphyr::from_str(&yaml).unwrap();
    let expected: Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(serde_json::to_value(&cluster).unwrap(), expected);
    assert_eq!(validate_analysis_template_spec(&cluster.spec), Ok(()));
}

#[test]
fn seed_experiment_round_trips_and_misses_selectors() {
    let experiment: Experiment = round_trip("manifest06-experiment.yaml");
    let spec = &experiment.spec;
    assert_eq!(spec.duration(), Ok(Some(std::time::Duration::from_secs(300))));
    assert_eq!(spec.progress_deadline_seconds(), 600);
    let names: Vec<_> = spec.templates.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["baseline", "canary", "experimental"]);
    assert!(spec.templates.iter().all(|t| t.replicas() == 1));
    let image = spec.templates[2].template.spec.as_ref().unwrap().containers[0]
        .image
        .as_deref();
    assert_eq!(image, Some("ghcr.io/ssup2/mock-go-server:3.0.0"));

    // The seed leaves out the selectors Argo requires; validation names each missing field.
    let errors = validate_experiment_spec("mock-server-experiment", spec).unwrap_err();
    let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        rendered,
        [0, 1, 2]
            .iter()
            .map(|i| format!(
                "spec.templates[{i}].selector: Rollout has missing field '.Spec.Templates[{i}].Selector'"
            ))
            .collect::<Vec<_>>()
    );
}

#[test]
fn seed_experiment_with_selectors_is_valid() {
    let yaml = seed("manifest06-experiment.yaml").replace(
        "    template:\n      metadata:\n        labels:\n          app: mock-server\n          experiment: ",
        "    selector:\n      matchLabels:\n        app: mock-server\n    template:\n      metadata:\n        labels:\n          app: mock-server\n          experiment: ",
    );
    let experiment: Experiment = serde_saphyr::from_str(&yaml).unwrap();
    assert!(experiment.spec.templates.iter().all(|t| t.selector.is_some()));
    assert_eq!(
        validate_experiment_spec("mock-server-experiment", &experiment.spec),
        Ok(())
    );
}

// ---------------------------------------------------------------------------------------------
// Generated CRDs
// ---------------------------------------------------------------------------------------------

fn crds() -> Vec<(&'static str, Value)> {
    vec![
        (
            "AnalysisTemplate",
            serde_json::to_value(AnalysisTemplate::crd()).unwrap(),
        ),
        (
            "ClusterAnalysisTemplate",
            serde_json::to_value(ClusterAnalysisTemplate::crd()).unwrap(),
        ),
        ("AnalysisRun", serde_json::to_value(AnalysisRun::crd()).unwrap()),
        ("Experiment", serde_json::to_value(Experiment::crd()).unwrap()),
    ]
}

fn find_ref(value: &Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    found.push(path.to_string());
                }
                find_ref(v, &format!("{path}/{k}"), found);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                find_ref(v, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// Walks the schema nodes (root, properties, items, additionalProperties) and records those a
/// structural schema forbids: no `type` without a preserve-unknown-fields or int-or-string marker,
/// or an `anyOf`/`oneOf`/`allOf`/`not` left over from enum or option encoding.
fn check_structural(schema: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(node) = schema.as_object() else {
        problems.push(format!("{path}: not an object"));
        return;
    };
    let marked = node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        || node.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if !node.contains_key("type") && !marked {
        problems.push(format!("{path}: no type"));
    }
    for key in ["anyOf", "oneOf", "allOf", "not"] {
        if node.contains_key(key) {
            problems.push(format!("{path}: {key}"));
        }
    }
    if let Some(Value::Object(props)) = node.get("properties") {
        for (name, prop) in props {
            check_structural(prop, &format!("{path}.{name}"), problems);
        }
    }
    if let Some(items) = node.get("items") {
        check_structural(items, &format!("{path}[]"), problems);
    }
    if let Some(extra @ Value::Object(_)) = node.get("additionalProperties") {
        check_structural(extra, &format!("{path}{{}}"), problems);
    }
}

#[test]
fn crds_are_structural_without_refs() {
    for (kind, crd) in crds() {
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        assert!(schema.is_object(), "{kind}: no openAPIV3Schema");
        assert_eq!(schema["type"], "object", "{kind}");

        let mut refs = Vec::new();
        find_ref(&crd, kind, &mut refs);
        assert!(refs.is_empty(), "{kind}: $ref at {refs:?}");

        let mut problems = Vec::new();
        check_structural(schema, kind, &mut problems);
        assert!(problems.is_empty(), "{kind}: {problems:#?}");
    }
}

#[test]
fn crd_fields_are_described() {
    // Every field of our own types carries a description (what `kubectl explain` prints). The
    // embedded Kubernetes types (pod template, Job spec) come with their upstream descriptions.
    fn walk(schema: &Value, path: &str, missing: &mut Vec<String>) {
        if let Some(Value::Object(props)) = schema.get("properties") {
            for (name, prop) in props {
                let here = format!("{path}.{name}");
                if prop
                    .get("description")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    missing.push(here.clone());
                }
                walk(prop, &here, missing);
            }
        }
        if let Some(items) = schema.get("items") {
            walk(items, &format!("{path}[]"), missing);
        }
    }
    for (kind, crd) in crds() {
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let mut missing = Vec::new();
        for part in ["spec", "status"] {
            if let Some(sub) = schema["properties"].get(part) {
                walk(sub, part, &mut missing);
            }
        }
        assert!(
            missing.is_empty(),
            "{kind}: fields without description: {missing:#?}"
        );
    }
}

#[test]
fn crd_names_scopes_columns_and_subresources() {
    let expected = [
        (
            "AnalysisTemplate",
            "analysistemplates",
            "at",
            "Namespaced",
            false,
            vec!["Age"],
        ),
        (
            "ClusterAnalysisTemplate",
            "clusteranalysistemplates",
            "cat",
            "Cluster",
            false,
            vec!["Age"],
        ),
        (
            "AnalysisRun",
            "analysisruns",
            "ar",
            "Namespaced",
            true,
            vec!["Status", "Age"],
        ),
        (
            "Experiment",
            "experiments",
            "exp",
            "Namespaced",
            true,
            vec!["Status", "Age"],
        ),
    ];
    for ((kind, crd), (want_kind, plural, short, scope, status, columns)) in crds().into_iter().zip(expected)
    {
        assert_eq!(kind, want_kind);
        assert_eq!(crd["metadata"]["name"], format!("{plural}.argoproj.io"));
        assert_eq!(crd["spec"]["group"], "argoproj.io");
        assert_eq!(crd["spec"]["names"]["plural"], plural);
        assert_eq!(crd["spec"]["names"]["shortNames"], serde_json::json!([short]));
        assert_eq!(
            crd["spec"]["names"]["categories"],
            serde_json::json!(["argo-rollouts"])
        );
        assert_eq!(crd["spec"]["scope"], scope);
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["name"], "v1alpha1");
        assert_eq!(version["served"], true);
        assert_eq!(version["storage"], true);
        assert_eq!(
            version
                .get("subresources")
                .and_then(|s| s.get("status"))
                .is_some(),
            status,
            "{kind} status subresource"
        );
        let names: Vec<&str> = version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, columns, "{kind}");
        if status {
            assert_eq!(
                version["additionalPrinterColumns"][0]["jsonPath"],
                ".status.phase"
            );
        }
        let age = version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .last()
            .unwrap();
        assert_eq!(age["jsonPath"], ".metadata.creationTimestamp");
        assert_eq!(age["type"], "date");
    }
}
