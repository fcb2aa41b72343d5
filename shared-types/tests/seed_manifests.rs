//! Every manifest of the seed document (corrected copies in `examples/seed/`) deserializes into
//! our typed structs and serializes back to exactly the same JSON: no field is lost, renamed or
//! defaulted into the object. Rollouts also pass spec validation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::PathBuf;

use serde_json::Value;
use shared_types::{
    analysis::{AnalysisTemplate, ClusterAnalysisTemplate},
    experiment::Experiment,
    rollout::Rollout,
    validation::validate_rollout_spec,
};

fn seed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/seed")
}

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value, file: &str) -> T {
    let typed: T =
        serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{file}: does not deserialize: {e}"));
    let back = serde_json::to_value(&typed).unwrap_or_else(|e| panic!("{file}: does not serialize: {e}"));
    assert_eq!(&back, doc, "{file}: round trip changed the object");
    typed
}

#[test]
fn seed_manifests_round_trip_and_validate() {
    let mut files: Vec<_> = std::fs::read_dir(seed_dir())
        .expect("examples/seed exists")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut covered = Vec::new();
    for path in &files {
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default()
            .to_string();
        let text = std::fs::read_to_string(path).expect("readable");
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{file}: YAML: {e}"));
        for doc in docs.into_iter().filter(|d| !d.is_null()) {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            match kind.as_str() {
                "Rollout" => {
                    let ro: Rollout = round_trip(&doc, &file);
                    if let Err(errors) = validate_rollout_spec(&ro.spec) {
                        panic!("{file}: seed Rollout fails validation: {errors:?}");
                    }
                }
                "AnalysisTemplate" => {
                    round_trip::<AnalysisTemplate>(&doc, &file);
                }
                "ClusterAnalysisTemplate" => {
                    round_trip::<ClusterAnalysisTemplate>(&doc, &file);
                }
                "Experiment" => {
                    round_trip::<Experiment>(&doc, &file);
                }
                _ => continue,
            }
            covered.push(format!(
                "{file}: {kind} {}",
                doc["metadata"]["name"].as_str().unwrap_or_default()
            ));
        }
    }
    // The manifests this test covers (shown with --nocapture).
    for c in &covered {
        println!("covered {c}");
    }
    let rollouts = covered.iter().filter(|c| c.contains(": Rollout ")).count();
    assert_eq!(
        rollouts, 15,
        "every seed Rollout manifest is covered: {covered:#?}"
    );
    assert!(covered.iter().any(|c| c.contains(": Experiment ")));
    assert!(
        covered
            .iter()
            .filter(|c| c.contains(": AnalysisTemplate "))
            .count()
            >= 6
    );
}

#[test]
fn seed_typo_is_reported_as_bad_input() {
    // The seed's Manifest 3 as written names a Service "mock-server-stabl시"; the controller
    // reports it as a missing Service. Here: the spec itself is valid, the name is just wrong.
    let yaml = std::fs::read_to_string(
        seed_dir().join("manifest03-rollout-canary-with-traffic-routing-istio-virtual-service-example.yaml"),
    )
    .expect("readable")
    .replace(
        "stableService: mock-server-stable",
        "stableService: mock-server-stabl시",
    );
    let ro: Rollout = serde_saphyr::from_str(&yaml).expect("parses");
    assert_eq!(
        ro.spec.strategy.canary.and_then(|c| c.stable_service).as_deref(),
        Some("mock-server-stabl시")
    );
}
