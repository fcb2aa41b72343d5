//! ReplicaSet facts (hash, revision, replica counts, availability) and the construction of a
//! ReplicaSet from a pod template, shared by the controllers that own ReplicaSets (Rollouts and
//! Experiments). Pure functions: the owner-specific parts (name, labels, annotations, owner
//! reference) come from the caller.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{ReplicaSet, ReplicaSetSpec},
        core::v1::PodTemplateSpec,
    },
    apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
    jiff::Timestamp,
};

use crate::{constants::keys, object_meta};

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
    object_meta::revision(&rs.metadata)
}

/// An annotation value.
pub fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    object_meta::annotation(&rs.metadata, key)
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

/// Fully scaled to `replicas`, recorded as such in the `desired-replicas` annotation, and all
/// pods available (Argo's `IsSaturated`).
pub fn is_saturated(rs: &ReplicaSet, replicas: i32) -> bool {
    spec_replicas(rs) == replicas
        && annotation(rs, keys::DESIRED_REPLICAS).and_then(|v| v.parse::<i32>().ok()) == Some(replicas)
        && available_replicas(rs) == replicas
}

/// All pods of the ReplicaSet are available (and it has some).
pub fn is_fully_available(rs: &ReplicaSet) -> bool {
    spec_replicas(rs) > 0 && available_replicas(rs) >= spec_replicas(rs)
}

/// `<owner>-<suffix>`, untruncated, as Argo names ReplicaSets (a Rollout's suffix is the
/// pod-template hash).
pub fn name(owner: &str, suffix: &str) -> String {
    format!("{owner}-{suffix}")
}

/// What a new ReplicaSet is made of; see [`new_replica_set`].
#[derive(Clone, Debug)]
pub struct ReplicaSetParts<'a> {
    /// `metadata.name` (for a Rollout, [`name`] of the Rollout and the hash).
    pub name: String,
    pub namespace: Option<String>,
    /// The controller owner reference (see [`object_meta::controller_reference`]).
    pub owner: OwnerReference,
    /// `metadata.labels`; the hash label is added.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`, as given.
    pub annotations: BTreeMap<String, String>,
    /// The owner's selector; the hash label is added to its `matchLabels`.
    pub selector: LabelSelector,
    /// The pod template; the hash label is added to the pod labels.
    pub template: &'a PodTemplateSpec,
    /// The pod-template hash.
    pub hash: &'a str,
    /// `spec.replicas`.
    pub replicas: i32,
    pub min_ready_seconds: Option<i32>,
}

/// A ReplicaSet for a pod template: the hash added to its labels, its selector and its pods'
/// labels, controlled by `parts.owner`.
pub fn new_replica_set(parts: ReplicaSetParts<'_>) -> ReplicaSet {
    let ReplicaSetParts {
        name,
        namespace,
        owner,
        mut labels,
        annotations,
        mut selector,
        template,
        hash,
        replicas,
        min_ready_seconds,
    } = parts;
    let mut template = template.clone();
    template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(Default::default)
        .insert(keys::POD_TEMPLATE_HASH.into(), hash.into());
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(keys::POD_TEMPLATE_HASH.into(), hash.into());
    labels.insert(keys::POD_TEMPLATE_HASH.into(), hash.into());
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name),
            namespace,
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds,
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

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parts(template: &PodTemplateSpec) -> ReplicaSetParts<'_> {
        ReplicaSetParts {
            name: name("exp-1", "baseline"),
            namespace: Some("default".into()),
            owner: OwnerReference {
                api_version: "argoproj.io/v1alpha1".into(),
                kind: "Experiment".into(),
                name: "exp-1".into(),
                uid: "uid-1".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
            labels: labels(&[("app", "a")]),
            annotations: labels(&[(keys::DESIRED_REPLICAS, "5"), (keys::REVISION, "4")]),
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", "a")])),
                ..Default::default()
            },
            template,
            hash: "6579c6cc98",
            replicas: 0,
            min_ready_seconds: Some(3),
        }
    }

    #[test]
    fn new_replica_set_carries_hash_annotations_and_owner() {
        let template = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(labels(&[("app", "a")])),
                ..Default::default()
            }),
            spec: None,
        };
        let rs = new_replica_set(parts(&template));
        assert_eq!(rs.metadata.name.as_deref(), Some("exp-1-baseline"));
        assert_eq!(rs.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(hash(&rs), Some("6579c6cc98"));
        assert_eq!(
            rs.metadata.labels,
            Some(labels(&[("app", "a"), (keys::POD_TEMPLATE_HASH, "6579c6cc98")]))
        );
        assert_eq!(revision(&rs), 4);
        assert_eq!(annotation(&rs, keys::DESIRED_REPLICAS), Some("5"));
        assert_eq!(spec_replicas(&rs), 0);
        assert_eq!(rs.spec.min_ready_seconds, Some(3));
        assert_eq!(
            rs.spec.selector.match_labels,
            Some(labels(&[("app", "a"), (keys::POD_TEMPLATE_HASH, "6579c6cc98")]))
        );
        assert_eq!(
            rs.spec
                .template
                .as_ref()
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.labels.clone()),
            Some(labels(&[("app", "a"), (keys::POD_TEMPLATE_HASH, "6579c6cc98")]))
        );
        assert!(object_meta::is_owned_by(&rs.metadata, "uid-1"));
        assert!(!object_meta::is_owned_by(&rs.metadata, "uid-2"));
        // A template without metadata gets the hash label all the same.
        let bare = new_replica_set(parts(&PodTemplateSpec::default()));
        assert_eq!(
            bare.spec.template.and_then(|t| t.metadata).and_then(|m| m.labels),
            Some(labels(&[(keys::POD_TEMPLATE_HASH, "6579c6cc98")]))
        );
    }

    #[test]
    fn saturation_needs_spec_annotation_and_availability() {
        let template = PodTemplateSpec::default();
        let mut rs = new_replica_set(parts(&template));
        rs.spec.replicas = Some(5);
        rs.status = Some(ReplicaSetStatus {
            replicas: 5,
            available_replicas: Some(4),
            ..Default::default()
        });
        assert!(!is_saturated(&rs, 5));
        assert!(!is_fully_available(&rs));
        rs.status = Some(ReplicaSetStatus {
            replicas: 5,
            available_replicas: Some(5),
            ..Default::default()
        });
        assert!(is_saturated(&rs, 5));
        assert!(!is_saturated(&rs, 6));
        assert!(is_fully_available(&rs));
    }

    #[test]
    fn zero_replicas_is_not_fully_available_and_spec_defaults_to_one() {
        let template = PodTemplateSpec::default();
        let mut rs = new_replica_set(parts(&template));
        assert!(!is_fully_available(&rs), "scaled to zero");
        rs.spec.replicas = None;
        assert_eq!(spec_replicas(&rs), 1);
        assert_eq!(
            (status_replicas(&rs), ready_replicas(&rs), available_replicas(&rs)),
            (0, 0, 0)
        );
    }
}
