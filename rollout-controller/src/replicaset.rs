//! The ReplicaSet a Rollout creates for a new revision. What a ReplicaSet is and how one is
//! built from a pod template is shared with the other controllers
//! ([`shared_types::replicaset`]); what is the Rollout's own is here: the annotations it copies
//! onto its ReplicaSets and its selector, size and owner reference.

use std::collections::BTreeMap;

use k8s_openapi::api::{apps::v1::ReplicaSet, core::v1::PodTemplateSpec};
use shared_types::{
    constants::keys,
    object_meta::controller_reference,
    replicaset::{self as rsutil, ReplicaSetParts},
    rollout::Rollout,
};

/// Annotations of the Rollout that its ReplicaSets carry, plus revision and desired replicas.
pub fn replica_set_annotations(rollout: &Rollout, revision: i64, replicas: i32) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = rollout
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| !keys::NOT_COPIED_TO_REPLICA_SETS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.insert(keys::REVISION.into(), revision.to_string());
    out.insert(keys::DESIRED_REPLICAS.into(), replicas.to_string());
    out
}

/// The ReplicaSet of a new revision: named `<rollout>-<hash>`, created with zero replicas, the
/// hash added to its labels (the template's), selector and pod labels.
pub fn new_replica_set(
    rollout: &Rollout,
    template: &PodTemplateSpec,
    hash: &str,
    revision: i64,
) -> ReplicaSet {
    let rollout_name = rollout.metadata.name.clone().unwrap_or_default();
    rsutil::new_replica_set(ReplicaSetParts {
        name: rsutil::name(&rollout_name, hash),
        namespace: rollout.metadata.namespace.clone(),
        owner: controller_reference(rollout),
        labels: template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default(),
        annotations: replica_set_annotations(rollout, revision, rollout.spec.replicas()),
        selector: rollout.spec.selector.clone().unwrap_or_default(),
        template,
        hash,
        replicas: 0,
        min_ready_seconds: rollout.spec.min_ready_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
    use shared_types::{
        object_meta::is_owned_by,
        replicaset::{hash, revision, spec_replicas},
        rollout::RolloutSpec,
    };

    fn rollout() -> Rollout {
        let mut ro = Rollout::new(
            "mock-server",
            RolloutSpec {
                replicas: Some(5),
                selector: Some(LabelSelector {
                    match_labels: Some([("app".to_string(), "mock-server".to_string())].into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        ro.metadata.namespace = Some("default".into());
        ro.metadata.uid = Some("uid-1".into());
        ro.metadata.annotations = Some(
            [
                ("team".to_string(), "a".to_string()),
                (keys::REVISION.to_string(), "3".to_string()),
                (keys::LAST_APPLIED_CONFIGURATION.to_string(), "{}".to_string()),
            ]
            .into(),
        );
        ro
    }

    #[test]
    fn new_replica_set_carries_hash_revision_and_owner() {
        let template = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "mock-server".to_string())].into()),
                ..Default::default()
            }),
            spec: None,
        };
        let rs = new_replica_set(&rollout(), &template, "6579c6cc98", 4);
        assert_eq!(rs.metadata.name.as_deref(), Some("mock-server-6579c6cc98"));
        assert_eq!(rs.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(hash(&rs), Some("6579c6cc98"));
        assert_eq!(
            rs.metadata
                .labels
                .clone()
                .unwrap_or_default()
                .get("app")
                .map(String::as_str),
            Some("mock-server"),
            "the template's labels"
        );
        assert_eq!(revision(&rs), 4);
        assert_eq!(spec_replicas(&rs), 0);
        let ann = rs.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(ann.get("team").map(String::as_str), Some("a"));
        assert_eq!(ann.get(keys::DESIRED_REPLICAS).map(String::as_str), Some("5"));
        assert!(!ann.contains_key(keys::LAST_APPLIED_CONFIGURATION));
        let spec = rs.spec.clone();
        let sel = spec.selector.match_labels.unwrap_or_default();
        assert_eq!(
            sel.get(keys::POD_TEMPLATE_HASH).map(String::as_str),
            Some("6579c6cc98")
        );
        assert_eq!(sel.get("app").map(String::as_str), Some("mock-server"));
        let pod_labels = spec
            .template
            .and_then(|t| t.metadata)
            .and_then(|m| m.labels)
            .unwrap_or_default();
        assert_eq!(
            pod_labels.get(keys::POD_TEMPLATE_HASH).map(String::as_str),
            Some("6579c6cc98")
        );
        assert!(is_owned_by(&rs.metadata, "uid-1"));
        assert!(!is_owned_by(&rs.metadata, "uid-2"));
        let owner = &rs.metadata.owner_references.clone().unwrap_or_default()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("Rollout", "mock-server")
        );
    }
}
