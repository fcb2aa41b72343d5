//! Ephemeral metadata (`canaryMetadata`/`stableMetadata`, `previewMetadata`/`activeMetadata`):
//! labels and annotations a ReplicaSet's pods carry only while they play a role. They are
//! written into the ReplicaSet's pod template (for new pods), recorded in its
//! `rollout.argoproj.io/ephemeral-metadata` annotation (so only keys we injected are ever
//! removed) and patched onto its existing pods.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use shared_types::{
    common::PodTemplateMetadata,
    constants::keys,
    replicaset as rsutil,
    rollout::{Rollout, RolloutStrategy},
};

use crate::plan::{Action, Ctx, MetadataChange, ReplicaSetUpdate};

/// The metadata of the role a ReplicaSet plays: the new (canary/preview) one or the stable
/// (stable/active) one.
fn role_metadata(strategy: &RolloutStrategy, canary_role: bool) -> Option<PodTemplateMetadata> {
    match (&strategy.canary, &strategy.blue_green) {
        (Some(c), _) => {
            if canary_role {
                c.canary_metadata.clone()
            } else {
                c.stable_metadata.clone()
            }
        }
        (None, Some(b)) => {
            if canary_role {
                b.preview_metadata.clone()
            } else {
                b.active_metadata.clone()
            }
        }
        _ => None,
    }
}

/// Whether the Rollout uses ephemeral metadata at all (then its pods are gathered).
pub fn in_use(rollout: &Rollout) -> bool {
    let s = &rollout.spec.strategy;
    role_metadata(s, true).is_some() || role_metadata(s, false).is_some()
}

/// The change turning `current` (what we injected before) into `desired`.
fn change(current: &PodTemplateMetadata, desired: &PodTemplateMetadata) -> MetadataChange {
    fn diff(
        cur: Option<&BTreeMap<String, String>>,
        want: Option<&BTreeMap<String, String>>,
    ) -> BTreeMap<String, Option<String>> {
        let (cur, want) = (
            cur.cloned().unwrap_or_default(),
            want.cloned().unwrap_or_default(),
        );
        let mut out: BTreeMap<String, Option<String>> = cur
            .keys()
            .filter(|k| !want.contains_key(*k))
            .map(|k| (k.clone(), None))
            .collect();
        out.extend(
            want.into_iter()
                .filter(|(k, v)| cur.get(k) != Some(v))
                .map(|(k, v)| (k, Some(v))),
        );
        out
    }
    MetadataChange {
        labels: diff(current.labels.as_ref(), desired.labels.as_ref()),
        annotations: diff(current.annotations.as_ref(), desired.annotations.as_ref()),
    }
}

/// The metadata recorded on a ReplicaSet as injected.
fn recorded(rs: &k8s_openapi::api::apps::v1::ReplicaSet) -> PodTemplateMetadata {
    rsutil::annotation(rs, keys::EPHEMERAL_METADATA)
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default()
}

/// Brings the new and stable ReplicaSets (and their pods) to the metadata of their roles:
/// fully promoted, the new one is the stable one; during an update the new one is the canary.
pub fn reconcile(ctx: &mut Ctx) {
    let strategy = &ctx.rollout.spec.strategy;
    let promoted = ctx.stable_rs.is_some() && ctx.stable_rs == ctx.new_rs;
    let mut targets = Vec::new();
    if let Some(new) = ctx.new_rs {
        let canary_role = !promoted && ctx.stable_rs.is_some();
        targets.push((new, role_metadata(strategy, canary_role).unwrap_or_default()));
    }
    if let Some(stable) = ctx.distinct_stable() {
        targets.push((stable, role_metadata(strategy, false).unwrap_or_default()));
    }
    for (i, desired) in targets {
        let current = recorded(&ctx.rss[i]);
        let diff = change(&current, &desired);
        if diff.labels.is_empty() && diff.annotations.is_empty() {
            continue;
        }
        let rs = &ctx.rss[i];
        let hash = rsutil::hash(rs).unwrap_or_default().to_string();
        let mut update = ReplicaSetUpdate {
            name: rs.metadata.name.clone().unwrap_or_default(),
            resource_version: rs.metadata.resource_version.clone(),
            template_metadata: Some(diff.clone()),
            ..Default::default()
        };
        let record = if desired == PodTemplateMetadata::default() {
            None
        } else {
            serde_json::to_string(&desired).ok()
        };
        update.annotations.insert(keys::EPHEMERAL_METADATA.into(), record);
        ctx.apply_update(i, update);
        let pods: Vec<String> = ctx
            .pods
            .iter()
            .filter(|p| pod_hash(p) == Some(hash.as_str()) && p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        for pod in pods {
            ctx.plan.actions.push(Action::PatchPodMetadata {
                pod,
                change: diff.clone(),
            });
        }
    }
}

fn pod_hash(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(keys::POD_TEMPLATE_HASH)
        .map(String::as_str)
}

/// The metadata a new ReplicaSet starts with: its canary/preview role when a stable one
/// exists, else the stable/active role.
pub fn for_new_replica_set(rollout: &Rollout, has_stable: bool) -> Option<PodTemplateMetadata> {
    role_metadata(&rollout.spec.strategy, has_stable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(labels: &[(&str, &str)]) -> PodTemplateMetadata {
        PodTemplateMetadata {
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            annotations: None,
        }
    }

    #[test]
    fn change_removes_only_what_we_injected() {
        let diff = change(
            &meta(&[("role", "canary"), ("old", "x")]),
            &meta(&[("role", "stable")]),
        );
        assert_eq!(
            diff.labels,
            BTreeMap::from([
                ("old".to_string(), None),
                ("role".to_string(), Some("stable".to_string()))
            ])
        );
        assert!(diff.annotations.is_empty());
        let same = change(&meta(&[("role", "stable")]), &meta(&[("role", "stable")]));
        assert!(same.labels.is_empty());
    }
}
