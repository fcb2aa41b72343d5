//! `undo NAME [--to-revision N]`: puts an earlier ReplicaSet's pod template back into the
//! Rollout. The controller then reuses that ReplicaSet under a new revision number.

use std::io::Write;

use k8s_openapi::api::{apps::v1::ReplicaSet, core::v1::PodTemplateSpec};
use kube::{Api, api::ListParams};
use serde_json::{Value, json};
use shared_types::{
    constants::keys,
    object_meta::{is_owned_by, revision},
    rollout::Rollout,
};

use super::{label_selector, patch};
use crate::{cli::UndoArgs, error::Error, kube::Session};

/// The ReplicaSet to go back to: revision `to_revision`, or (0) the second-newest revision.
pub fn find_revision<'a>(
    ro: &Rollout,
    replica_sets: &'a [ReplicaSet],
    to_revision: i64,
) -> Result<&'a ReplicaSet, Error> {
    let uid = ro.metadata.uid.as_deref().unwrap_or_default();
    let mut owned: Vec<(i64, &ReplicaSet)> = replica_sets
        .iter()
        .filter(|rs| is_owned_by(&rs.metadata, uid))
        // Like Argo: a missing annotation is revision 0, an unparsable one is skipped.
        .filter_map(|rs| {
            match rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(keys::REVISION))
            {
                None => Some((0, rs)),
                Some(v) => v.parse().ok().map(|r| (r, rs)),
            }
        })
        .collect();
    if to_revision > 0 {
        return owned
            .into_iter()
            .find(|(r, _)| *r == to_revision)
            .map(|(_, rs)| rs)
            .ok_or_else(|| {
                Error::msg(format!(
                    "unable to find specified revision {to_revision} in history"
                ))
            });
    }
    owned.sort_by_key(|(revision, _)| std::cmp::Reverse(*revision));
    owned.get(1).map(|(_, rs)| *rs).ok_or_else(|| {
        Error::msg(format!(
            "no revision found for rollout \"{}\"",
            ro.metadata.name.as_deref().unwrap_or_default()
        ))
    })
}

/// `template` without the `rollouts-pod-template-hash` label, as JSON.
pub fn template_without_hash(template: &PodTemplateSpec) -> Result<Value, Error> {
    let mut t = template.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(keys::POD_TEMPLATE_HASH);
    }
    serde_json::to_value(&t).map_err(|e| Error::msg(e.to_string()))
}

/// Whether every field set in `a` has the same value in `b` (Go's `DeepDerivative`): fields
/// the Rollout leaves unset do not count, so server-side defaults in the ReplicaSet's template
/// do not make equal templates differ.
pub fn derivative(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, _) => true,
        (Value::Object(a), Value::Object(b)) => a
            .iter()
            .all(|(k, v)| derivative(v, b.get(k).unwrap_or(&Value::Null))),
        (Value::Object(a), Value::Null) => a.values().all(|v| derivative(v, &Value::Null)),
        (Value::Array(a), Value::Array(b)) => {
            a.is_empty() || (a.len() == b.len() && a.iter().zip(b).all(|(x, y)| derivative(x, y)))
        }
        (Value::Array(a), Value::Null) => a.is_empty(),
        (Value::String(a), Value::Null) => a.is_empty(),
        (Value::Bool(a), Value::Null) => !a,
        (Value::Number(n), Value::Null) => n.as_f64() == Some(0.0),
        (a, b) => a == b,
    }
}

/// Rolls back and prints `rollout '<name>' undo`, or says that nothing had to change.
pub async fn run(session: &Session, args: &UndoArgs, out: &mut dyn Write) -> Result<(), Error> {
    let api: Api<Rollout> = Api::namespaced(session.client.clone(), &session.namespace);
    let ro = api.get(&args.name).await?;
    if ro.spec.workload_ref.is_some() {
        return Err(Error::msg(
            "undo of a rollout with a workloadRef is not supported: roll back the referenced workload",
        ));
    }
    let rs_api: Api<ReplicaSet> = Api::namespaced(session.client.clone(), &session.namespace);
    let mut params = ListParams::default();
    if let Some(selector) = &ro.spec.selector {
        params = params.labels(&label_selector(selector)?);
    }
    let replica_sets = rs_api.list(&params).await?.items;
    let rs = find_revision(&ro, &replica_sets, args.to_revision)?;
    let target = rs
        .spec
        .template
        .as_ref()
        .ok_or_else(|| Error::msg("the ReplicaSet of that revision has no pod template"))?;
    let target = template_without_hash(target)?;
    let current = match &ro.spec.template {
        Some(t) => template_without_hash(t)?,
        None => Value::Null,
    };
    let name = ro.metadata.name.as_deref().unwrap_or(&args.name);
    if current != Value::Null && derivative(&current, &target) {
        let revision = revision(&rs.metadata);
        writeln!(
            out,
            "skipped rollback (current template already matches revision {revision})"
        )?;
        return Ok(());
    }
    patch::json(
        &api,
        &args.name,
        json!([{"op": "replace", "path": "/spec/template", "value": target}]),
    )
    .await?;
    writeln!(out, "rollout '{name}' undo")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(name: &str, revision: Option<&str>, owner: &str, image: &str) -> ReplicaSet {
        let mut annotations = serde_json::Map::new();
        if let Some(r) = revision {
            annotations.insert(keys::REVISION.into(), r.into());
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": annotations,
                "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "r", "uid": owner, "controller": true}]},
            "spec": {"selector": {}, "template": {"metadata": {"labels": {"app": "a", keys::POD_TEMPLATE_HASH: name}},
                "spec": {"containers": [{"name": "c", "image": image, "imagePullPolicy": "IfNotPresent"}]}}}
        }))
        .unwrap()
    }

    fn rollout() -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "r", "uid": "u1"},
            "spec": {"strategy": {"canary": {}}, "template": {"metadata": {"labels": {"app": "a"}},
                "spec": {"containers": [{"name": "c", "image": "img:3"}]}}}
        }))
        .unwrap()
    }

    #[test]
    fn previous_revision_by_default() {
        let sets = vec![
            rs("v1", Some("1"), "u1", "img:1"),
            rs("v3", Some("3"), "u1", "img:3"),
            rs("v2", Some("2"), "u1", "img:2"),
            rs("other", Some("9"), "u2", "x"),
        ];
        assert_eq!(
            find_revision(&rollout(), &sets, 0)
                .unwrap()
                .metadata
                .name
                .as_deref(),
            Some("v2")
        );
        assert_eq!(
            find_revision(&rollout(), &sets, 1)
                .unwrap()
                .metadata
                .name
                .as_deref(),
            Some("v1")
        );
        let err = find_revision(&rollout(), &sets, 7).unwrap_err();
        assert_eq!(err.to_string(), "unable to find specified revision 7 in history");
        let err = find_revision(&rollout(), &sets[..1], 0).unwrap_err();
        assert_eq!(err.to_string(), "no revision found for rollout \"r\"");
    }

    #[test]
    fn target_template_drops_the_hash_label_and_compares_derivatively() {
        let sets = [rs("v3", Some("3"), "u1", "img:3")];
        let target = template_without_hash(sets[0].spec.template.as_ref().unwrap()).unwrap();
        assert_eq!(target["metadata"]["labels"], json!({"app": "a"}));
        let current = template_without_hash(rollout().spec.template.as_ref().unwrap()).unwrap();
        // The ReplicaSet carries a defaulted imagePullPolicy the Rollout does not set.
        assert!(derivative(&current, &target));
        let other = template_without_hash(rs("v1", Some("1"), "u1", "img:1").spec.template.as_ref().unwrap())
            .unwrap();
        assert!(!derivative(&current, &other));
    }
}
