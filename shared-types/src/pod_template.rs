//! Pod-template normalisation: comparing a template with the one the API server stored (with its
//! defaults applied) when the hash differs only because one side carries those defaults.
//! `kubectl argo rollouts undo` copies a ReplicaSet's (defaulted) template back into the Rollout;
//! Argo then finds that ReplicaSet by semantic equality after defaulting and reuses it as a new
//! revision, so we must too. Experiments compare their templates with their ReplicaSets' the
//! same way.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::{Map, Value, json};

use crate::constants::keys;

/// The template as JSON with core/v1 defaults applied, the hash label removed and empty
/// objects dropped, so two templates that mean the same pods compare equal.
pub fn normalized(template: &PodTemplateSpec) -> Value {
    let mut v = serde_json::to_value(template).unwrap_or(Value::Null);
    if let Some(labels) = v.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        labels.remove(keys::POD_TEMPLATE_HASH);
    }
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("creationTimestamp");
    }
    if let Some(spec) = v.get_mut("spec") {
        default_pod_spec(spec);
    }
    prune_empty(&mut v);
    v
}

fn set_default(obj: &mut Map<String, Value>, key: &str, value: Value) {
    if obj.get(key).is_none_or(Value::is_null) {
        obj.insert(key.into(), value);
    }
}

/// The defaults Kubernetes' `SetObjectDefaults_PodTemplate` applies that appear in practice.
fn default_pod_spec(spec: &mut Value) {
    let Some(obj) = spec.as_object_mut() else { return };
    set_default(obj, "dnsPolicy", json!("ClusterFirst"));
    set_default(obj, "restartPolicy", json!("Always"));
    set_default(obj, "terminationGracePeriodSeconds", json!(30));
    set_default(obj, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        for c in obj
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            default_container(c);
        }
    }
    for vol in obj
        .get_mut("volumes")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        for (source, mode_key) in [
            ("configMap", "defaultMode"),
            ("secret", "defaultMode"),
            ("downwardAPI", "defaultMode"),
            ("projected", "defaultMode"),
        ] {
            if let Some(src) = vol.get_mut(source).and_then(Value::as_object_mut) {
                set_default(src, mode_key, json!(420));
            }
        }
    }
}

fn default_container(c: &mut Value) {
    let Some(obj) = c.as_object_mut() else { return };
    set_default(obj, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(obj, "terminationMessagePolicy", json!("File"));
    let image = obj
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    set_default(obj, "imagePullPolicy", json!(default_pull_policy(&image)));
    for p in obj
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(p) = p.as_object_mut() {
            set_default(p, "protocol", json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = obj.get_mut(probe).and_then(Value::as_object_mut) {
            set_default(p, "timeoutSeconds", json!(1));
            set_default(p, "periodSeconds", json!(10));
            set_default(p, "successThreshold", json!(1));
            set_default(p, "failureThreshold", json!(3));
            if let Some(h) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
                set_default(h, "scheme", json!("HTTP"));
                set_default(h, "path", json!("/"));
            }
        }
    }
    for env in obj
        .get_mut("env")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(f) = env
            .pointer_mut("/valueFrom/fieldRef")
            .and_then(Value::as_object_mut)
        {
            set_default(f, "apiVersion", json!("v1"));
        }
    }
    // Requests default to limits when only limits are given.
    if let Some(res) = obj.get_mut("resources").and_then(Value::as_object_mut)
        && let Some(limits) = res.get("limits").and_then(Value::as_object).cloned()
    {
        let requests = res.entry("requests").or_insert_with(|| json!({}));
        if let Some(requests) = requests.as_object_mut() {
            for (k, v) in limits {
                requests.entry(k).or_insert(v);
            }
        }
    }
}

/// `Always` for `:latest` or untagged images, `IfNotPresent` otherwise.
fn default_pull_policy(image: &str) -> &'static str {
    let name = image.split('@').next().unwrap_or(image);
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':') {
        Some((_, tag)) if tag != "latest" => "IfNotPresent",
        _ if image.contains('@') => "IfNotPresent",
        _ => "Always",
    }
}

/// Removes empty objects (and keys left empty by that), so `resources: {}` equals no resources.
fn prune_empty(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for child in map.values_mut() {
                prune_empty(child);
            }
            map.retain(|_, child| !matches!(child, Value::Object(m) if m.is_empty()) && !child.is_null());
        }
        Value::Array(items) => items.iter_mut().for_each(prune_empty),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(v: Value) -> PodTemplateSpec {
        serde_json::from_value(v).expect("template parses")
    }

    #[test]
    fn defaulted_replica_set_template_matches_the_plain_one() {
        let plain = template(json!({
            "metadata": {"labels": {"app": "mock-server"}},
            "spec": {"containers": [{"name": "mock-server", "image": "ghcr.io/ssup2/mock-go-server:2.0.0", "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]}
        }));
        let from_rs = template(json!({
            "metadata": {"labels": {"app": "mock-server", "rollouts-pod-template-hash": "7c6fcfb847"}},
            "spec": {
                "containers": [{"image": "ghcr.io/ssup2/mock-go-server:2.0.0", "imagePullPolicy": "IfNotPresent", "name": "mock-server",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}], "resources": {},
                    "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}],
                "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                "securityContext": {}, "terminationGracePeriodSeconds": 30
            }
        }));
        assert_eq!(normalized(&plain), normalized(&from_rs));
        let other_image = template(json!({
            "metadata": {"labels": {"app": "mock-server"}},
            "spec": {"containers": [{"name": "mock-server", "image": "ghcr.io/ssup2/mock-go-server:3.0.0", "ports": [{"containerPort": 8080}]}]}
        }));
        assert_ne!(normalized(&other_image), normalized(&from_rs));
    }

    #[test]
    fn a_removed_field_does_not_match() {
        let with_env = template(
            json!({"spec": {"containers": [{"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]}]}}),
        );
        let without = template(json!({"spec": {"containers": [{"name": "a", "image": "a:1"}]}}));
        assert_ne!(normalized(&with_env), normalized(&without));
    }

    #[test]
    fn pull_policy_defaults_follow_the_tag() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("nginx:1.25"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/nginx"), "Always");
        assert_eq!(default_pull_policy("repo/app@sha256:abc"), "IfNotPresent");
    }
}
