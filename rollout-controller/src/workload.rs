//! `spec.workloadRef`: a Rollout that takes its pod template (and selector) from a Deployment,
//! ReplicaSet or PodTemplate, so an existing Deployment can be migrated without copying its
//! template. The referenced object is read as JSON and resolved into the Rollout in memory.

use std::{collections::HashMap, sync::Mutex};

use futures::StreamExt;
use k8s_openapi::{api::core::v1::PodTemplateSpec, apimachinery::pkg::apis::meta::v1::LabelSelector};
use kube::{
    Api,
    api::{ApiResource, DynamicObject},
    core::DeserializeGuard,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde_json::Value;
use shared_runtime::synced::Synced;
use shared_types::{field_error::FieldError, rollout::Rollout};
use tokio::sync::mpsc;

/// The API group, version and plural for a workloadRef `kind`.
pub fn resource(kind: &str) -> Option<(&'static str, &'static str, &'static str)> {
    match kind {
        "Deployment" => Some(("apps", "v1", "deployments")),
        "ReplicaSet" => Some(("apps", "v1", "replicasets")),
        "PodTemplate" => Some(("", "v1", "podtemplates")),
        _ => None,
    }
}

/// The Rollout with template and selector taken from the referenced object. Errors name
/// `spec.workloadRef` and what is wrong with the reference.
pub fn resolve(rollout: &Rollout, workload: Option<&Value>) -> Result<Rollout, FieldError> {
    let Some(reference) = &rollout.spec.workload_ref else {
        return Ok(rollout.clone());
    };
    let kind = reference.kind.clone().unwrap_or_default();
    let name = reference.name.clone().unwrap_or_default();
    let Some((group, _, plural)) = resource(&kind) else {
        return Err(FieldError::new(
            "spec.workloadRef.kind",
            format!(
                "Invalid value: {kind:?}: workload reference kind must be Deployment, ReplicaSet or PodTemplate"
            ),
        ));
    };
    let Some(object) = workload else {
        let gr = if group.is_empty() {
            plural.to_string()
        } else {
            format!("{plural}.{group}")
        };
        return Err(FieldError::new(
            "spec.workloadRef.name",
            format!("Invalid value: {name:?}: {gr} {name:?} not found"),
        ));
    };
    let (template, selector) = match kind.as_str() {
        "PodTemplate" => (object.get("template").cloned(), None),
        _ => (
            object.pointer("/spec/template").cloned(),
            object.pointer("/spec/selector").cloned(),
        ),
    };
    let template: PodTemplateSpec =
        template
            .and_then(|t| serde_json::from_value(t).ok())
            .ok_or_else(|| {
                FieldError::new(
                    "spec.workloadRef.name",
                    format!("Invalid value: {name:?}: {kind} has no pod template"),
                )
            })?;
    let mut resolved = rollout.clone();
    resolved.spec.template = Some(template);
    if let Some(selector) = selector.and_then(|s| serde_json::from_value::<LabelSelector>(s).ok()) {
        resolved.spec.selector = Some(selector);
    }
    Ok(resolved)
}

/// `metadata.generation` of the referenced object, as Argo records it.
pub fn generation(workload: Option<&Value>) -> Option<String> {
    workload?
        .pointer("/metadata/generation")?
        .as_i64()
        .map(|g| g.to_string())
}

/// Replicas the referenced Deployment should run (`scaleDown`), or None to leave it alone:
/// `onsuccess` scales it to 0 once the Rollout is healthy on its first revision,
/// `progressively` hands pods over as the Rollout's become ready.
pub fn deployment_replicas(
    rollout: &Rollout,
    workload: Option<&Value>,
    healthy: bool,
    ready: i32,
) -> Option<i32> {
    let reference = rollout.spec.workload_ref.as_ref()?;
    if reference.kind.as_deref() != Some("Deployment") {
        return None;
    }
    let current = workload?
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .map(|r| i32::try_from(r).unwrap_or(0));
    let want = match reference.scale_down.as_deref() {
        Some("onsuccess") if healthy => 0,
        Some("progressively") if healthy => 0,
        Some("progressively") => (rollout.spec.replicas() - ready).max(0),
        _ => return None,
    };
    (current != Some(want)).then_some(want)
}

/// Watches of the kinds `spec.workloadRef` names, each started the first time a Rollout refers
/// to that kind (most clusters use none, and a watch of every Deployment would cost memory for
/// nothing). A change of a watched object triggers the Rollouts that refer to it.
pub struct WorkloadWatches {
    client: kube::Client,
    namespace: Option<String>,
    rollouts: Store<DeserializeGuard<Rollout>>,
    stores: Mutex<HashMap<&'static str, (Store<DynamicObject>, Synced)>>,
    trigger: mpsc::UnboundedSender<ObjectRef<DeserializeGuard<Rollout>>>,
    triggers: Mutex<Option<mpsc::UnboundedReceiver<ObjectRef<DeserializeGuard<Rollout>>>>>,
}

impl WorkloadWatches {
    /// No watch runs until [`WorkloadWatches::get`] asks for a kind.
    pub fn new(
        client: kube::Client,
        namespace: Option<String>,
        rollouts: Store<DeserializeGuard<Rollout>>,
    ) -> Self {
        let (trigger, triggers) = mpsc::unbounded_channel();
        Self {
            client,
            namespace,
            rollouts,
            stores: Mutex::default(),
            trigger,
            triggers: Mutex::new(Some(triggers)),
        }
    }

    /// The Rollouts to reconcile because an object they refer to changed (for the controller's
    /// `reconcile_on`; a second call gets an empty stream).
    pub fn triggers(
        &self,
    ) -> impl futures::Stream<Item = ObjectRef<DeserializeGuard<Rollout>>> + Send + 'static {
        let receiver = self
            .triggers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        futures::stream::unfold(receiver, |receiver| async move {
            let mut receiver = receiver?;
            let next = receiver.recv().await?;
            Some((next, Some(receiver)))
        })
    }

    /// The object the Rollout's `spec.workloadRef` names, as JSON, from the watch of its kind
    /// (started now if needed). None without a workloadRef, for an unsupported kind (reported
    /// by [`resolve`]) or when the object does not exist.
    pub async fn get(&self, rollout: &Rollout) -> Result<Option<Value>, crate::Error> {
        let Some(reference) = &rollout.spec.workload_ref else {
            return Ok(None);
        };
        let kind = reference.kind.as_deref().unwrap_or_default();
        let Some((kind, resource)) = api_resource(kind) else {
            return Ok(None);
        };
        let (store, synced) = self.store(kind, &resource);
        if !tokio::time::timeout(std::time::Duration::from_secs(30), synced.wait())
            .await
            .map_err(|_| crate::Error::Startup("the workloadRef watch has not listed its objects yet"))?
        {
            return Err(crate::Error::Startup("the workloadRef watch stopped"));
        }
        let key = ObjectRef::new_with(reference.name.as_deref().unwrap_or_default(), resource)
            .within(rollout.metadata.namespace.as_deref().unwrap_or_default());
        store
            .get(&key)
            .map(|obj| serde_json::to_value(&*obj).map_err(crate::Error::Serialize))
            .transpose()
    }

    fn store(&self, kind: &'static str, resource: &ApiResource) -> (Store<DynamicObject>, Synced) {
        let mut stores = self
            .stores
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(cached) = stores.get(kind) {
            return cached.clone();
        }
        let api: Api<DynamicObject> = match &self.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, resource),
            None => Api::all_with(self.client.clone(), resource),
        };
        let writer = reflector::store::Writer::new(resource.clone());
        let store = writer.as_reader();
        let (rollouts, trigger) = (self.rollouts.clone(), self.trigger.clone());
        let (events, synced) = shared_runtime::synced::track(
            watcher(api, watcher::Config::default())
                .default_backoff()
                .reflect(writer),
        );
        let events = events.touched_objects();
        tokio::spawn(events.for_each(move |event| {
            match event {
                Ok(obj) => {
                    for guard in rollouts.state() {
                        let Ok(r) = &guard.0 else { continue };
                        let refers = r.spec.workload_ref.as_ref().is_some_and(|w| {
                            w.kind.as_deref() == Some(kind)
                                && w.name.as_deref() == obj.metadata.name.as_deref()
                        }) && r.metadata.namespace == obj.metadata.namespace;
                        if refers {
                            // The receiver lives as long as the controller; a failed send means shutdown.
                            let _ = trigger.send(ObjectRef::from_obj(&*guard));
                        }
                    }
                }
                Err(e) => tracing::warn!(kind, error = %e, "workloadRef watch error"),
            }
            futures::future::ready(())
        }));
        tracing::info!(kind, "watching the kind a Rollout's workloadRef names");
        stores.insert(kind, (store.clone(), synced.clone()));
        (store, synced)
    }
}

/// The kind (as a static name) and its API resource.
fn api_resource(kind: &str) -> Option<(&'static str, ApiResource)> {
    let (group, version, plural) = resource(kind)?;
    let kind = match kind {
        "Deployment" => "Deployment",
        "ReplicaSet" => "ReplicaSet",
        _ => "PodTemplate",
    };
    let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
    Some((kind, ApiResource::from_gvk_with_plural(&gvk, plural)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rollout(scale_down: &str) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
            "spec": {"replicas": 3, "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "scaleDown": scale_down},
                "strategy": {"canary": {}}}
        }))
        .expect("rollout parses")
    }

    fn deployment(replicas: i64) -> Value {
        json!({"metadata": {"name": "web", "generation": 4}, "spec": {"replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}})
    }

    #[test]
    fn template_and_selector_come_from_the_deployment() {
        let resolved = resolve(&rollout("never"), Some(&deployment(3))).expect("resolves");
        let image = resolved
            .spec
            .template
            .and_then(|t| t.spec)
            .map(|s| s.containers[0].image.clone());
        assert_eq!(image, Some(Some("web:1".into())));
        assert_eq!(
            resolved
                .spec
                .selector
                .and_then(|s| s.match_labels)
                .and_then(|l| l.get("app").cloned())
                .as_deref(),
            Some("web")
        );
        assert_eq!(generation(Some(&deployment(3))).as_deref(), Some("4"));
    }

    #[test]
    fn missing_or_unknown_references_name_the_field() {
        let err = resolve(&rollout("never"), None).expect_err("missing");
        assert_eq!(
            err.to_string(),
            "spec.workloadRef.name: Invalid value: \"web\": deployments.apps \"web\" not found"
        );
        let mut odd = rollout("never");
        if let Some(r) = odd.spec.workload_ref.as_mut() {
            r.kind = Some("StatefulSet".into());
        }
        assert!(
            resolve(&odd, None)
                .expect_err("kind")
                .to_string()
                .starts_with("spec.workloadRef.kind")
        );
    }

    #[test]
    fn scale_down_modes() {
        let d = deployment(3);
        assert_eq!(deployment_replicas(&rollout("never"), Some(&d), true, 3), None);
        assert_eq!(
            deployment_replicas(&rollout("onsuccess"), Some(&d), false, 1),
            None
        );
        assert_eq!(
            deployment_replicas(&rollout("onsuccess"), Some(&d), true, 3),
            Some(0)
        );
        assert_eq!(
            deployment_replicas(&rollout("progressively"), Some(&d), false, 1),
            Some(2)
        );
        assert_eq!(
            deployment_replicas(&rollout("progressively"), Some(&d), false, 0),
            None,
            "already at 3"
        );
        assert_eq!(
            deployment_replicas(&rollout("onsuccess"), Some(&deployment(0)), true, 3),
            None
        );
    }
}
