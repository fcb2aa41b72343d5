//! A Rollout being deleted: traffic it routes through Istio goes back to stable before it is
//! gone. The Rollout carries [`keys::TRAFFIC_FINALIZER`] while it routes through Istio, so its
//! deletion waits for this controller (also one that was down when the deletion happened), and
//! its ReplicaSets, removed by the garbage collector only after the Rollout, keep serving until
//! the VirtualServices no longer send traffic to them. Services and DestinationRules are
//! released by their own level-triggered controllers ([`crate::services`],
//! [`crate::destination_rules`]).

use shared_types::{constants::keys, rollout::Rollout};

use crate::{
    plan::{Action, Observed, Plan},
    traffic::plan as traffic,
};

/// Whether the Rollout needs the finalizer: it routes through Istio.
pub fn needs_finalizer(rollout: &Rollout) -> bool {
    rollout
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.traffic_routing.as_ref())
        .is_some_and(|tr| tr.istio.is_some())
}

fn has_finalizer(rollout: &Rollout) -> bool {
    rollout
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == keys::TRAFFIC_FINALIZER)
}

/// The finalizer change a live Rollout needs, if any.
pub fn sync_finalizer(rollout: &Rollout) -> Option<Action> {
    match (needs_finalizer(rollout), has_finalizer(rollout)) {
        (true, false) => Some(Action::AddFinalizer),
        (false, true) => Some(Action::RemoveFinalizer),
        _ => None,
    }
}

/// The plan for a Rollout being deleted: its VirtualServices routed 100% to stable (managed
/// routes removed), then the finalizer removed. Nothing when it carries no finalizer of ours.
pub fn plan(observed: &Observed) -> Plan {
    let mut plan = Plan::default();
    let rollout = &observed.rollout;
    if !has_finalizer(rollout) {
        return plan;
    }
    if let Some((canary, istio)) = rollout
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| Some((c, c.traffic_routing.as_ref()?.istio.as_ref()?)))
    {
        let managed = canary
            .traffic_routing
            .as_ref()
            .and_then(|tr| tr.managed_routes.clone())
            .unwrap_or_default();
        let split = traffic::split(istio, canary, rollout);
        for vs_ref in traffic::virtual_services(istio) {
            let Some(vs) = observed.virtual_services.get(&vs_ref.name) else {
                continue;
            };
            match crate::traffic::istio::restore_stable(vs, vs_ref, &managed, &split) {
                Ok(restored) if restored != *vs => plan.actions.push(Action::UpdateVirtualService(
                    vs_ref.name.clone(),
                    Box::new(restored),
                )),
                Ok(_) => {}
                // A VirtualService we cannot read must not keep the Rollout from going away.
                Err(e) => plan.events.push(crate::plan::Event {
                    warning: true,
                    reason: "TrafficNotRestored".into(),
                    message: format!("VirtualService {:?} not routed back to stable: {e}", vs_ref.name),
                }),
            }
        }
    }
    plan.actions.push(Action::RemoveFinalizer);
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rollout(finalizers: &[&str], istio: bool) -> Rollout {
        let routing = if istio {
            json!({"istio": {"virtualService": {"name": "vs", "routes": ["primary"]}}})
        } else {
            json!(null)
        };
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "ns", "finalizers": finalizers,
                "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
                "strategy": {"canary": {"stableService": "stable", "canaryService": "canary", "trafficRouting": routing,
                    "steps": [{"setWeight": 20}]}}}
        }))
        .expect("rollout parses")
    }

    fn observed(rollout: Rollout, weights: (i64, i64)) -> Observed {
        let vs = json!({
            "apiVersion": "networking.istio.io/v1alpha3", "kind": "VirtualService",
            "metadata": {"name": "vs", "namespace": "ns", "resourceVersion": "7"},
            "spec": {"hosts": ["web"], "http": [{"name": "primary", "route": [
                {"destination": {"host": "stable"}, "weight": weights.0},
                {"destination": {"host": "canary"}, "weight": weights.1}]}]}
        });
        Observed {
            virtual_services: [("vs".to_string(), vs)].into(),
            ..crate::plan::Observed::empty(rollout)
        }
    }

    #[test]
    fn the_finalizer_follows_istio_routing() {
        let mut r = rollout(&[], true);
        assert_eq!(sync_finalizer(&r), Some(Action::AddFinalizer));
        r.metadata.finalizers = Some(vec![keys::TRAFFIC_FINALIZER.into()]);
        assert_eq!(sync_finalizer(&r), None);
        let plain = rollout(&[keys::TRAFFIC_FINALIZER], false);
        assert_eq!(sync_finalizer(&plain), Some(Action::RemoveFinalizer));
        assert_eq!(sync_finalizer(&rollout(&[], false)), None);
    }

    #[test]
    fn deletion_routes_everything_to_stable_then_lets_go() {
        let plan = plan(&observed(rollout(&[keys::TRAFFIC_FINALIZER], true), (80, 20)));
        let [Action::UpdateVirtualService(name, vs), Action::RemoveFinalizer] = plan.actions.as_slice()
        else {
            panic!("unexpected actions {:?}", plan.actions);
        };
        assert_eq!(name, "vs");
        assert_eq!(vs["spec"]["http"][0]["route"][0]["weight"], 100);
        assert_eq!(vs["spec"]["http"][0]["route"][1]["weight"], 0);
        // The write is conditional on the version read.
        assert_eq!(vs["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn already_restored_or_not_ours_needs_only_the_finalizer_or_nothing() {
        let plan_restored = plan(&observed(rollout(&[keys::TRAFFIC_FINALIZER], true), (100, 0)));
        assert_eq!(plan_restored.actions, vec![Action::RemoveFinalizer]);
        let foreign = plan(&observed(rollout(&["other/finalizer"], true), (80, 20)));
        assert!(foreign.actions.is_empty());
    }
}
