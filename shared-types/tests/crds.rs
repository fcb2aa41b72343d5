//! The CRD YAML committed in the charts is what `crdgen` generates now, and every schema is
//! structural (what the API server requires) and documented (what `kubectl explain` shows).

use serde_json::Value;
use shared_types::crds;

#[test]
fn committed_crds_are_up_to_date() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(crds::CRD_DIR);
    for crd in crds::all() {
        let file = dir.join(crds::file_name(&crd));
        let committed = std::fs::read_to_string(&file).unwrap_or_default();
        let generated = crds::to_yaml(&crd).expect("CRD serializes");
        assert!(
            committed == generated,
            "{} is stale: run `cargo run -p shared-types --bin crdgen`",
            file.display()
        );
    }
}

/// Walks a schema and reports nodes that break the structural-schema rules we rely on.
fn check_structural(node: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(obj) = node.as_object() else { return };
    for banned in ["$ref", "anyOf", "oneOf", "allOf", "not"] {
        if obj.contains_key(banned) {
            problems.push(format!("{path}: uses {banned}"));
        }
    }
    let typed = obj.contains_key("type")
        || obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        || obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if !typed {
        problems.push(format!("{path}: no type"));
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            if child.get("description").is_none()
                && !path.contains(".template")
                && !path.contains(".selector")
            {
                problems.push(format!("{path}.{name}: no description"));
            }
            check_structural(child, &format!("{path}.{name}"), problems);
        }
    }
    if let Some(items) = obj.get("items") {
        check_structural(items, &format!("{path}[]"), problems);
    }
    if let Some(extra) = obj.get("additionalProperties").filter(|v| v.is_object()) {
        check_structural(extra, &format!("{path}{{}}"), problems);
    }
}

#[test]
fn schemas_are_structural_and_documented() {
    for crd in crds::all() {
        let value = serde_json::to_value(&crd).expect("CRD serializes");
        let name = value["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let schema = &value["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let mut problems = Vec::new();
        check_structural(&schema["properties"]["spec"], "spec", &mut problems);
        check_structural(&schema["properties"]["status"], "status", &mut problems);
        assert!(problems.is_empty(), "{name}: {problems:#?}");
    }
}

#[test]
fn rollout_crd_has_scale_status_category_and_defaults() {
    let value = serde_json::to_value(crds::all().remove(0)).expect("CRD serializes");
    assert_eq!(value["metadata"]["name"], "rollouts.argoproj.io");
    assert_eq!(value["spec"]["names"]["shortNames"], serde_json::json!(["ro"]));
    assert_eq!(
        value["spec"]["names"]["categories"],
        serde_json::json!(["argo-rollouts"])
    );
    let version = &value["spec"]["versions"][0];
    assert_eq!(
        version["subresources"]["scale"],
        serde_json::json!({"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.HPAReplicas", "labelSelectorPath": ".status.selector"})
    );
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(columns, ["Desired", "Current", "Up-to-date", "Available", "Age"]);
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(
        spec["properties"]["selector"]["x-kubernetes-validations"][0]["rule"],
        "self == oldSelf"
    );
    let port = &spec["properties"]["template"]["properties"]["spec"]["properties"]["containers"]["items"]["properties"]
        ["ports"]["items"];
    assert_eq!(
        port["properties"]["protocol"]["default"], "TCP",
        "container port protocol defaults to TCP: {port}"
    );
    let status = &version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"];
    assert_eq!(status["HPAReplicas"]["type"], "integer");
    assert_eq!(status["observedGeneration"]["type"], "string");
}

/// Removes every description (a string under the key `description`).
fn remove_descriptions(node: &mut Value) {
    match node {
        Value::Object(map) => {
            if map.get("description").is_some_and(Value::is_string) {
                map.remove("description");
            }
            map.values_mut().for_each(remove_descriptions);
        }
        Value::Array(items) => items.iter_mut().for_each(remove_descriptions),
        _ => {}
    }
}

#[test]
fn installed_pod_templates_carry_no_descriptions_and_fit_a_helm_release() {
    let mut total = 0;
    for crd in crds::all() {
        let yaml = crds::to_yaml(&crd).expect("CRD serializes");
        total += yaml.len();
        let value = serde_json::to_value(&crd).expect("CRD serializes");
        let schema = &value["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let mut has = false;
        fn any_description(node: &Value, has: &mut bool) {
            match node {
                Value::Object(map) => {
                    *has |= map.get("description").is_some_and(Value::is_string);
                    map.values().for_each(|v| any_description(v, has));
                }
                Value::Array(items) => items.iter().for_each(|v| any_description(v, has)),
                _ => {}
            }
        }
        // Below the template (it keeps its own description).
        any_description(
            &schema["properties"]["spec"]["properties"]["template"]["properties"],
            &mut has,
        );
        assert!(!has, "{}: descriptions in the pod template", crd.spec.names.kind);
    }
    // Helm stores a release (chart files included, gzipped) in a Secret of at most 1 MiB.
    assert!(total < 1_500_000, "the CRDs total {total} bytes");
}

/// Every `resource.Quantity` in the Rollout's pod template (requests, limits, overhead,
/// `sizeLimit`, ...) accepts a number as well as a string (`cpu: 1`, `memory: 1024`), as
/// Argo's CRD does.
#[test]
fn rollout_quantities_accept_numbers_and_strings() {
    fn walk(node: &Value, path: &str, found: &mut Vec<String>, wrong: &mut Vec<String>) {
        match node {
            Value::Object(obj) => {
                // A Quantity keeps its type's description, except where a field documents itself
                // (emptyDir.sizeLimit).
                let is_quantity = obj
                    .get("description")
                    .and_then(Value::as_str)
                    .is_some_and(|d| d.starts_with("Quantity is a fixed-point"))
                    || path.ends_with("/emptyDir/properties/sizeLimit");
                if is_quantity {
                    found.push(path.to_string());
                    if obj.get("x-kubernetes-int-or-string") != Some(&Value::Bool(true))
                        || obj.contains_key("type")
                    {
                        wrong.push(path.to_string());
                    }
                }
                for (k, v) in obj {
                    walk(v, &format!("{path}/{k}"), found, wrong);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, &format!("{path}[{i}]"), found, wrong);
                }
            }
            _ => {}
        }
    }
    // Quantities are found by their description, which the installed CRD leaves out of the
    // template; the installed schema is the documented one without descriptions.
    let rollout = crds::documented()
        .into_iter()
        .find(|c| c.spec.names.kind == "Rollout")
        .expect("the Rollout CRD");
    let installed = crds::all()
        .into_iter()
        .find(|c| c.spec.names.kind == "Rollout")
        .expect("the Rollout CRD");
    let mut stripped = serde_json::to_value(&rollout).expect("CRD serializes");
    remove_descriptions(&mut stripped);
    let mut installed = serde_json::to_value(&installed).expect("CRD serializes");
    remove_descriptions(&mut installed);
    assert_eq!(
        stripped, installed,
        "the installed CRD differs from the documented one beyond descriptions"
    );
    let schema = serde_json::to_value(&rollout).expect("CRD serializes");
    let (mut found, mut wrong) = (Vec::new(), Vec::new());
    walk(&schema, "", &mut found, &mut wrong);
    let template = found.iter().filter(|p| p.contains("/template/")).count();
    assert!(
        template >= 10,
        "too few quantities found in the template: {found:#?}"
    );
    for site in [
        "/containers/",
        "/initContainers/",
        "/ephemeralContainers/",
        "/overhead/",
        "/sizeLimit",
    ] {
        assert!(
            found.iter().any(|p| p.contains(site)),
            "no quantity under {site}: {found:#?}"
        );
    }
    assert!(wrong.is_empty(), "quantities that reject numbers: {wrong:#?}");
}
