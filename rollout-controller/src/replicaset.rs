//! ReplicaSet facts the controller reads and the ReplicaSet it creates for a new revision.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{apps::v1::ReplicaSet, apps::v1::ReplicaSetSpec, core::v1::PodTemplateSpec},
    apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
    jiff::Timestamp,
};
use kube::Resource;
use shared_types::{constants::keys, rollout::Rollout};

/// The pod-template hash label of a ReplicaSet.
pub fn hash(rs: &ReplicaSet) -> Option<&str> {
    rs.metadata
        .labels
        .as_ref()?
        .get(keys::POD_TEMPLATE_HASH)
        .map(String::as_str)
}

/// The revision annotation as a number (0 when missing or malformed).
pub fn revision(rs: &ReplicaSet) -> i64 {
    annotation(rs, keys::REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// An annotation value.
pub fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata.annotations.as_ref()?.get(key).map(String::as_str)
}

/// `spec.replicas` (Kubernetes defaults it to 1).
pub fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.replicas.unwrap_or(1)
}

/// `status.replicas`.
pub fn status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

/// `status.readyReplicas`.
pub fn ready_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0)
}

/// `status.availableReplicas`.
pub fn available_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0)
}

/// The `scale-down-deadline` annotation, when present and well-formed.
pub fn scale_down_deadline(rs: &ReplicaSet) -> Option<Timestamp> {
    annotation(rs, keys::SCALE_DOWN_DEADLINE)?.parse().ok()
}

/// Fully scaled to the Rollout's size, recorded as such, and all pods available.
pub fn is_saturated(rs: &ReplicaSet, replicas: i32) -> bool {
    spec_replicas(rs) == replicas
        && annotation(rs, keys::DESIRED_REPLICAS).and_then(|v| v.parse::<i32>().ok()) == Some(replicas)
        && available_replicas(rs) == replicas
}

/// All pods of the ReplicaSet are available.
pub fn is_fully_available(rs: &ReplicaSet) -> bool {
    spec_replicas(rs) > 0 && available_replicas(rs) >= spec_replicas(rs)
}

/// `<rollout>-<hash>`, untruncated, as Argo names ReplicaSets.
pub fn name(rollout: &str, hash: &str) -> String {
    format!("{rollout}-{hash}")
}

/// Whether the ReplicaSet is controlled by the Rollout with this uid.
pub fn is_owned_by(rs: &ReplicaSet, uid: &str) -> bool {
    rs.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// Whether the ReplicaSet has a controller owner at all.
pub fn has_controller(rs: &ReplicaSet) -> bool {
    rs.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true))
}

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

/// The controller owner reference a Rollout puts on what it creates.
pub fn owner_reference(rollout: &Rollout) -> OwnerReference {
    OwnerReference {
        api_version: Rollout::api_version(&()).into_owned(),
        kind: Rollout::kind(&()).into_owned(),
        name: rollout.metadata.name.clone().unwrap_or_default(),
        uid: rollout.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The ReplicaSet of a new revision: named `<rollout>-<hash>`, created with zero replicas, the
/// hash added to its labels, selector and pod labels.
pub fn new_replica_set(
    rollout: &Rollout,
    template: &PodTemplateSpec,
    hash: &str,
    revision: i64,
) -> ReplicaSet {
    let rollout_name = rollout.metadata.name.clone().unwrap_or_default();
    let mut template = template.clone();
    let meta = template.metadata.get_or_insert_with(Default::default);
    meta.labels
        .get_or_insert_with(Default::default)
        .insert(keys::POD_TEMPLATE_HASH.into(), hash.into());
    let labels = meta.labels.clone();
    let mut selector: LabelSelector = rollout.spec.selector.clone().unwrap_or_default();
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(keys::POD_TEMPLATE_HASH.into(), hash.into());
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name(&rollout_name, hash)),
            namespace: rollout.metadata.namespace.clone(),
            labels,
            annotations: Some(replica_set_annotations(
                rollout,
                revision,
                rollout.spec.replicas(),
            )),
            owner_references: Some(vec![owner_reference(rollout)]),
            ..Default::default()
        },
        spec: ReplicaSetSpec {
            replicas: Some(0),
            min_ready_seconds: rollout.spec.min_ready_seconds,
            selector,
            template: Some(template),
        },
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetStatus;
    use shared_types::rollout::RolloutSpec;

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
        assert_eq!(hash(&rs), Some("6579c6cc98"));
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
        assert!(is_owned_by(&rs, "uid-1"));
        assert!(!is_owned_by(&rs, "uid-2"));
    }

    #[test]
    fn saturation_needs_spec_annotation_and_availability() {
        let mut rs = new_replica_set(&rollout(), &PodTemplateSpec::default(), "h", 1);
        rs.spec.replicas = Some(5);
        rs.status = Some(ReplicaSetStatus {
            replicas: 5,
            available_replicas: Some(4),
            ..Default::default()
        });
        assert!(!is_saturated(&rs, 5));
        rs.status = Some(ReplicaSetStatus {
            replicas: 5,
            available_replicas: Some(5),
            ..Default::default()
        });
        assert!(is_saturated(&rs, 5));
        assert!(!is_saturated(&rs, 6));
    }
}
