//! Metadata facts of any Kubernetes object: annotations, the revision annotation and controller
//! owner references. Pure functions; used by every controller and the plugin.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use crate::constants::keys;

/// An annotation value.
pub fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// The `rollout.argoproj.io/revision` annotation as a number (0 when missing or malformed).
pub fn revision(meta: &ObjectMeta) -> i64 {
    annotation(meta, keys::REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// Whether the object's controller (the owner reference with `controller: true`) is the object
/// with this uid.
pub fn is_owned_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// Whether the object has a controller owner at all.
pub fn has_controller(meta: &ObjectMeta) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true))
}

/// The controller owner reference `owner` puts on what it creates (`controller` and
/// `blockOwnerDeletion` set; a missing name or uid becomes empty).
pub fn controller_reference<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::{Rollout, RolloutSpec};

    fn owned(refs: Vec<(&str, Option<bool>)>) -> ObjectMeta {
        ObjectMeta {
            owner_references: Some(
                refs.into_iter()
                    .map(|(uid, controller)| OwnerReference {
                        uid: uid.into(),
                        controller,
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn only_the_controller_reference_counts_as_owner() {
        let meta = owned(vec![("a", None), ("b", Some(true))]);
        assert!(is_owned_by(&meta, "b"));
        assert!(!is_owned_by(&meta, "a"), "an owner that is not the controller");
        assert!(has_controller(&meta));
        let meta = owned(vec![("a", Some(false))]);
        assert!(!has_controller(&meta));
        assert!(!has_controller(&ObjectMeta::default()));
    }

    #[test]
    fn revision_is_zero_when_missing_or_malformed() {
        let with = |v: &str| ObjectMeta {
            annotations: Some([(keys::REVISION.to_string(), v.to_string())].into()),
            ..Default::default()
        };
        assert_eq!(revision(&with("7")), 7);
        assert_eq!(revision(&with("x")), 0);
        assert_eq!(revision(&ObjectMeta::default()), 0);
    }

    #[test]
    fn controller_reference_names_the_owner() {
        let mut ro = Rollout::new("mock-server", RolloutSpec::default());
        ro.metadata.uid = Some("uid-1".into());
        let r = controller_reference(&ro);
        assert_eq!(
            (
                r.api_version.as_str(),
                r.kind.as_str(),
                r.name.as_str(),
                r.uid.as_str()
            ),
            ("argoproj.io/v1alpha1", "Rollout", "mock-server", "uid-1")
        );
        assert_eq!((r.controller, r.block_owner_deletion), (Some(true), Some(true)));
        assert!(is_owned_by(
            &ObjectMeta {
                owner_references: Some(vec![r]),
                ..Default::default()
            },
            "uid-1"
        ));
    }
}
