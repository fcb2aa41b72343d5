//! The traffic-routing step of a canary reconcile (Argo's `reconcileTrafficRouting`): decide the
//! weight for this reconcile, rewrite the router objects (Istio VirtualServices and
//! DestinationRule, NGINX canary Ingresses) and record the weights in the status.

use k8s_openapi::api::networking::v1::Ingress;
use serde_json::Value;
use shared_types::{
    analysis::AnalysisPhase,
    constants::event_reason,
    experiment::Experiment,
    field_error::FieldError,
    replicaset as rsutil,
    rollout::{
        CanaryStrategy, IstioTrafficRouting, IstioVirtualService, Rollout, RolloutTrafficRouting,
        TrafficWeights, WeightDestination,
    },
};

use super::{
    DesiredWeights, TrafficError,
    istio::{self, Split},
    nginx,
};
use crate::plan::{Action, Ctx};

/// The VirtualServices a Rollout routes through: `virtualService` and `virtualServices[]`.
pub fn virtual_services(istio: &IstioTrafficRouting) -> Vec<&IstioVirtualService> {
    istio
        .virtual_service
        .iter()
        .chain(istio.virtual_services.iter().flatten())
        .collect()
}

/// The stable Ingresses an NGINX canary is cloned from.
pub fn stable_ingresses(tr: &RolloutTrafficRouting) -> Vec<String> {
    tr.nginx
        .as_ref()
        .map(|n| {
            n.stable_ingress
                .iter()
                .chain(n.stable_ingresses.iter().flatten())
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn routing(rollout: &Rollout) -> Option<&RolloutTrafficRouting> {
    rollout.spec.strategy.canary.as_ref()?.traffic_routing.as_ref()
}

/// `(namespace, name)` of each VirtualService the Rollout routes through (a reference may name
/// another namespace as `name.namespace`).
pub fn virtual_service_keys(rollout: &Rollout) -> Vec<(String, String)> {
    let namespace = rollout.metadata.namespace.clone().unwrap_or_default();
    routing(rollout)
        .and_then(|tr| tr.istio.as_ref())
        .map(|istio| {
            virtual_services(istio)
                .into_iter()
                .map(|vs| {
                    let (name, ns) = crate::traffic::istio::parse_virtual_service_ref(&vs.name, &namespace);
                    (ns, name)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The NGINX Ingresses a Rollout reads or writes: its stable Ingresses and their canaries.
pub fn ingress_names(rollout: &Rollout) -> Vec<String> {
    let Some(tr) = routing(rollout).filter(|tr| tr.nginx.is_some()) else {
        return Vec::new();
    };
    let name = rollout.metadata.name.as_deref().unwrap_or_default();
    stable_ingresses(tr)
        .into_iter()
        .flat_map(|stable| [crate::traffic::nginx::canary_ingress_name(name, &stable), stable])
        .collect()
}

/// How the Rollout splits traffic: by DestinationRule subsets, or by Service hosts (ping-pong
/// Services take turns, see [`CanaryStrategy::routed_services`]).
pub fn split<'a>(
    istio: &'a IstioTrafficRouting,
    canary: &'a CanaryStrategy,
    rollout: &'a Rollout,
) -> Split<'a> {
    match &istio.destination_rule {
        Some(dr) => Split::Subset(dr),
        None => {
            let (stable_service, canary_service) = canary.routed_services(stable_ping_pong(rollout));
            Split::Host {
                canary_service,
                stable_service,
            }
        }
    }
}

/// `status.canary.stablePingPong` as persisted.
pub fn stable_ping_pong(rollout: &Rollout) -> Option<&str> {
    rollout
        .status
        .as_ref()
        .and_then(|s| s.canary.as_ref())
        .and_then(|c| c.stable_ping_pong.as_deref())
}

fn managed_routes(tr: &RolloutTrafficRouting) -> Vec<shared_types::rollout::ManagedRoute> {
    tr.managed_routes.clone().unwrap_or_default()
}

/// Checks that the routing objects exist and can be routed (what Argo's reference validation
/// reports as InvalidSpec): every VirtualService exists and its routes contain the canary and
/// stable destinations; the DestinationRule and stable Ingresses exist.
pub fn validate(
    rollout: &Rollout,
    virtual_services_found: &std::collections::BTreeMap<String, Value>,
    destination_rule: Option<&Value>,
    ingresses: &std::collections::BTreeMap<String, Ingress>,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let Some(canary) = &rollout.spec.strategy.canary else {
        return errors;
    };
    let Some(tr) = &canary.traffic_routing else {
        return errors;
    };
    if let Some(istio) = &tr.istio {
        let path = "spec.strategy.canary.trafficRouting.istio";
        for (i, vs_ref) in virtual_services(istio).into_iter().enumerate() {
            let field = if istio.virtual_service.is_some() && i == 0 {
                format!("{path}.virtualService.name")
            } else {
                format!(
                    "{path}.virtualServices[{}].name",
                    i - usize::from(istio.virtual_service.is_some())
                )
            };
            match virtual_services_found.get(&vs_ref.name) {
                None => errors.push(FieldError::new(
                    field,
                    format!(
                        "Invalid value: {:?}: virtualservices.networking.istio.io {:?} not found",
                        vs_ref.name, vs_ref.name
                    ),
                )),
                Some(vs) => {
                    let desired = DesiredWeights::new(
                        100,
                        WeightDestination::default(),
                        WeightDestination::default(),
                        Vec::new(),
                    );
                    if let Err(e) = istio::set_weights(
                        vs,
                        vs_ref,
                        &managed_routes(tr),
                        &split(istio, canary, rollout),
                        &desired,
                    ) {
                        errors.push(FieldError::new(
                            field,
                            format!("Invalid value: {:?}: {e}", vs_ref.name),
                        ));
                    }
                }
            }
        }
        if let Some(dr) = &istio.destination_rule
            && destination_rule.is_none()
        {
            errors.push(FieldError::new(
                format!("{path}.destinationRule.name"),
                format!(
                    "Invalid value: {:?}: destinationrules.networking.istio.io {:?} not found",
                    dr.name, dr.name
                ),
            ));
        }
    }
    for name in stable_ingresses(tr) {
        if !ingresses.contains_key(&name) {
            errors.push(FieldError::new(
                "spec.strategy.canary.trafficRouting.nginx.stableIngress",
                format!("Invalid value: {name:?}: ingresses.networking.k8s.io {name:?} not found"),
            ));
        }
    }
    errors
}

/// The extra weight destinations of a running experiment step (Argo's
/// `calculateWeightDestinationsFromExperiment`): while `experiment` (the step's current
/// Experiment) is Running, each of its template statuses whose template has a `weight` in the
/// experiment step at or before the current step gives `{serviceName, podTemplateHash, weight}`.
pub fn experiment_destinations(rollout: &Rollout, experiment: Option<&Experiment>) -> Vec<WeightDestination> {
    let Some(experiment) = experiment else {
        return Vec::new();
    };
    let running = experiment
        .status
        .as_ref()
        .is_some_and(|s| s.phase_or_pending() == AnalysisPhase::Running);
    if !running {
        return Vec::new();
    }
    let steps = rollout
        .spec
        .strategy
        .canary
        .as_ref()
        .map(CanaryStrategy::steps)
        .unwrap_or_default();
    let index = rollout
        .status
        .as_ref()
        .and_then(|s| s.current_step_index)
        .and_then(|i| usize::try_from(i).ok())
        .unwrap_or(0);
    if index >= steps.len() {
        return Vec::new();
    }
    let Some(step) = steps[..=index].iter().rev().find_map(|s| s.experiment.as_ref()) else {
        return Vec::new();
    };
    experiment
        .status
        .as_ref()
        .and_then(|s| s.template_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|ts| {
            let weight = step.templates.iter().find(|t| t.name == ts.name)?.weight?;
            Some(WeightDestination {
                weight,
                service_name: ts.service_name.clone(),
                pod_template_hash: ts.pod_template_hash.clone(),
            })
        })
        .collect()
}

/// Names of the DestinationRule subsets experiment steps may have added: the Services of the
/// Rollout's Experiments' weighted templates and the Service names the steps give explicitly.
pub fn experiment_subset_names(rollout: &Rollout, experiments: &[Experiment]) -> Vec<String> {
    let steps = rollout
        .spec
        .strategy
        .canary
        .as_ref()
        .map(CanaryStrategy::steps)
        .unwrap_or_default();
    let weighted: Vec<&shared_types::rollout::RolloutExperimentTemplate> = steps
        .iter()
        .filter_map(|s| s.experiment.as_ref())
        .flat_map(|e| e.templates.iter())
        .filter(|t| t.weight.is_some())
        .collect();
    let mut names: Vec<String> = weighted
        .iter()
        .filter_map(|t| t.service.as_ref()?.name.clone())
        .chain(experiments.iter().flat_map(|e| {
            e.status
                .as_ref()
                .and_then(|s| s.template_statuses.as_ref())
                .into_iter()
                .flatten()
                .filter(|ts| weighted.iter().any(|t| t.name == ts.name))
                .filter_map(|ts| ts.service_name.clone())
        }))
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Runs the traffic-routing step and returns the weights to record in the status.
pub fn reconcile(ctx: &mut Ctx, canary: &CanaryStrategy, at_desired_counts: bool) -> Option<TrafficWeights> {
    let tr = canary.traffic_routing.as_ref()?;
    let max = canary.max_traffic_weight();
    let recorded = ctx.old.canary.as_ref().and_then(|c| c.weights.clone());
    let stable_hash = ctx.old.stable_rs.clone().unwrap_or_default();
    let new_hash = ctx
        .new_rs()
        .and_then(rsutil::hash)
        .map(str::to_string)
        .unwrap_or_default();
    let fully_promoted = !stable_hash.is_empty() && stable_hash == new_hash;
    let new_available = ctx.new_rs().map_or(0, rsutil::available_replicas);
    let steps = canary.steps();
    let index = usize::try_from(ctx.old.current_step_index.unwrap_or(0)).unwrap_or(0);

    let (weight, remove_managed) =
        if fully_promoted || ctx.is_aborted() || ctx.new_rs.is_none() || new_available == 0 {
            (0, true)
        } else if ctx.old.promote_full.unwrap_or(false) {
            (recorded.as_ref().map_or(0, |w| w.canary.weight), true)
        } else if index >= steps.len() {
            (max, false)
        } else {
            // Until the canary has the pods for the current weight, keep the previous one.
            let upto = if at_desired_counts { index + 1 } else { index };
            let w = steps[..upto].iter().rev().find_map(|s| s.set_weight).unwrap_or(0);
            (w, false)
        };
    // Never move traffic onto stable pods that are not there to take it (dynamicStableScale).
    let weight = match (ctx.distinct_stable(), &recorded) {
        (Some(s), Some(prev)) if !ctx.is_aborted() => {
            let needed = (max - weight) * ctx.replicas / max.max(1);
            if rsutil::available_replicas(&ctx.rss[s]) < needed {
                prev.canary.weight
            } else {
                weight
            }
        }
        _ => weight,
    };
    let canary_hash = if fully_promoted || new_hash.is_empty() {
        stable_hash.clone()
    } else {
        new_hash.clone()
    };
    // A running experiment step's templates take their share from the stable (Argo adds them
    // in every case but a fully promoted or aborted update).
    let additional = if fully_promoted || ctx.is_aborted() {
        Vec::new()
    } else {
        experiment_destinations(ctx.rollout, crate::experiment::tracked(ctx))
    };
    let desired = DesiredWeights::new(
        max,
        WeightDestination {
            weight,
            service_name: canary.canary_service.clone(),
            pod_template_hash: Some(canary_hash.clone()),
        },
        WeightDestination {
            weight: 0,
            service_name: canary.stable_service.clone(),
            pod_template_hash: Some(stable_hash.clone()),
        },
        additional,
    );
    let previous = recorded.as_ref().map(|w| w.canary.weight);
    let mut failed = None;
    if let Some(istio) = &tr.istio
        && let Err(e) = reconcile_istio(ctx, canary, tr, istio, &desired, remove_managed)
    {
        failed = Some(e);
    }
    if tr.nginx.is_some()
        && let Err(e) = reconcile_nginx(ctx, canary, tr, weight, fully_promoted || ctx.is_aborted())
    {
        failed = Some(e);
    }
    if let Some(e) = failed {
        // Nothing may progress while the router does not route as the status says (Argo stops
        // the reconcile here too): keep the recorded weights and halt steps and scaling.
        if !e.is_deferral() {
            ctx.warning("TrafficRoutingError", e.to_string());
        }
        ctx.traffic_halted = true;
        return recorded;
    }
    if previous != Some(weight) {
        let message = match previous {
            Some(p) => format!("Traffic weight updated from {p} to {weight}"),
            None => format!("Traffic weight updated to {weight}"),
        };
        ctx.event(event_reason::TRAFFIC_WEIGHT_UPDATED, message);
    }
    Some(desired.to_traffic_weights(None))
}

fn reconcile_istio(
    ctx: &mut Ctx,
    canary: &CanaryStrategy,
    tr: &RolloutTrafficRouting,
    istio: &IstioTrafficRouting,
    desired: &DesiredWeights,
    remove_managed: bool,
) -> Result<(), TrafficError> {
    let canary_hash = desired.canary.pod_template_hash.as_deref().unwrap_or_default();
    let stable_hash = desired.stable.pod_template_hash.as_deref().unwrap_or_default();
    let routes = managed_routes(tr);
    if let Some(dr_spec) = &istio.destination_rule
        && let Some(dr) = ctx.destination_rule.clone()
    {
        // Subsets only move to ReplicaSets that can take all the traffic they may get.
        let ready = |i: Option<usize>| {
            i.is_none_or(|i| {
                rsutil::spec_replicas(&ctx.rss[i]) == 0 || rsutil::is_fully_available(&ctx.rss[i])
            })
        };
        let canary_ready = ctx.is_aborted() || ready(ctx.new_rs);
        if canary_ready && ready(ctx.stable_rs) {
            let name = ctx.name().to_string();
            let extra: Vec<(&str, &str)> = desired
                .additional
                .iter()
                .filter_map(|d| {
                    Some((
                        d.service_name.as_deref().filter(|n| !n.is_empty())?,
                        d.pod_template_hash.as_deref().unwrap_or_default(),
                    ))
                })
                .collect();
            // Subsets of experiments that no longer route traffic go away.
            let stale: Vec<String> = experiment_subset_names(ctx.rollout, ctx.experiments)
                .into_iter()
                .filter(|n| {
                    n != &dr_spec.canary_subset_name
                        && n != &dr_spec.stable_subset_name
                        && !extra.iter().any(|(e, _)| e == n)
                })
                .collect();
            let updated =
                istio::update_destination_rule(&dr, dr_spec, &name, canary_hash, stable_hash, &extra)?;
            let updated = istio::remove_subsets(&updated, &stale);
            if updated != dr {
                ctx.plan
                    .actions
                    .push(Action::UpdateDestinationRule(Box::new(updated.clone())));
                ctx.destination_rule = Some(updated);
            }
        } else {
            // Weights must not move onto subsets that still select the old pods; wait. The
            // ReplicaSets' own status changes bring us back; the requeue is a safety net.
            ctx.requeue(std::time::Duration::from_secs(10));
            return Err(TrafficError::deferred(&dr_spec.name));
        }
    }
    let step = usize::try_from(ctx.old.current_step_index.unwrap_or(0))
        .ok()
        .and_then(|i| canary.steps().get(i));
    let revision: i64 = ctx.rollout_revision().parse().unwrap_or(0);
    let managed_names: Vec<String> = routes.iter().map(|r| r.name.clone()).collect();
    let split = split(istio, canary, ctx.rollout);
    for vs_ref in virtual_services(istio) {
        let Some(vs) = ctx.virtual_services.get(&vs_ref.name).cloned() else {
            continue;
        };
        let mut updated = istio::set_weights(&vs, vs_ref, &routes, &split, desired)?;
        if remove_managed && !managed_names.is_empty() {
            updated = istio::remove_managed_routes(&updated, &managed_names)?;
        } else if revision > 1
            && let Some(step) = step
        {
            let (host, subset) = match &istio.destination_rule {
                Some(dr) => (
                    istio::destination_rule_host(ctx.destination_rule.as_ref().unwrap_or(&Value::Null))
                        .unwrap_or_default()
                        .to_string(),
                    Some(dr.canary_subset_name.as_str()),
                ),
                None => (
                    canary
                        .routed_services(stable_ping_pong(ctx.rollout))
                        .1
                        .to_string(),
                    None,
                ),
            };
            if let Some(h) = &step.set_header_route {
                updated = istio::set_header_route(&updated, vs_ref, &routes, h, &host, subset)?;
            }
            if let Some(m) = &step.set_mirror_route {
                updated = istio::set_mirror_route(&updated, vs_ref, &routes, m, &host, subset)?;
            }
        }
        if updated != vs {
            ctx.plan.actions.push(Action::UpdateVirtualService(
                vs_ref.name.clone(),
                Box::new(updated.clone()),
            ));
            ctx.event(
                "Updated VirtualService",
                format!(
                    "VirtualService `{}` set to desiredWeight '{}'",
                    vs_ref.name, desired.canary.weight
                ),
            );
            ctx.virtual_services.insert(vs_ref.name.clone(), updated);
        }
    }
    Ok(())
}

fn reconcile_nginx(
    ctx: &mut Ctx,
    canary: &CanaryStrategy,
    tr: &RolloutTrafficRouting,
    weight: i32,
    done: bool,
) -> Result<(), TrafficError> {
    let Some(spec) = &tr.nginx else { return Ok(()) };
    let name = ctx.name().to_string();
    let uid = ctx.rollout.metadata.uid.clone().unwrap_or_default();
    for stable_name in stable_ingresses(tr) {
        let canary_name = nginx::canary_ingress_name(&name, &stable_name);
        let existing = ctx.ingresses.get(&canary_name).cloned();
        if done && weight == 0 {
            // The update is over (promoted or aborted): the canary Ingress goes away.
            if existing.is_some() {
                ctx.plan.actions.push(Action::DeleteIngress(canary_name));
            }
            continue;
        }
        let Some(stable) = ctx.ingresses.get(&stable_name).cloned() else {
            continue;
        };
        let params = nginx::CanaryIngressParams {
            rollout_name: &name,
            rollout_uid: &uid,
            nginx: spec,
            max_traffic_weight: tr.max_traffic_weight,
            canary_service: canary.routed_services(stable_ping_pong(ctx.rollout)).1,
            stable_service: canary.routed_services(stable_ping_pong(ctx.rollout)).0,
            weight,
        };
        let desired = nginx::canary_ingress(&stable, &params)?;
        let write = match &existing {
            None => Some(desired),
            Some(current) => nginx::update_canary_ingress(current, &desired, &uid, spec.annotation_prefix())?,
        };
        if let Some(ingress) = write {
            ctx.plan
                .actions
                .push(Action::ApplyIngress(Box::new(ingress.clone())));
            ctx.ingresses.insert(canary_name, ingress);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use serde_json::json;
    use shared_types::{analysis::AnalysisPhase, experiment::Experiment, rollout::Rollout};

    use super::{experiment_destinations, experiment_subset_names};

    fn rollout(step_index: i32) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": { "name": "r" },
            "spec": {
                "selector": { "matchLabels": { "app": "r" } },
                "strategy": { "canary": { "steps": [
                    { "setWeight": 10 },
                    { "experiment": { "templates": [
                        { "name": "a", "specRef": "stable", "weight": 5 },
                        { "name": "b", "specRef": "canary" },
                        { "name": "c", "specRef": "canary", "weight": 7, "service": { "name": "svc-c" } }
                    ] } },
                    { "pause": {} }
                ] } }
            },
            "status": { "currentStepIndex": step_index }
        }))
        .unwrap()
    }

    fn experiment(phase: AnalysisPhase) -> Experiment {
        let templates: Vec<serde_json::Value> = [
            json!({ "name": "a", "serviceName": "r-abc-2-1-a", "podTemplateHash": "ha" }),
            json!({ "name": "b", "serviceName": "r-abc-2-1-b", "podTemplateHash": "hb" }),
            json!({ "name": "c", "serviceName": "svc-c", "podTemplateHash": "hc" }),
            json!({ "name": "gone" }),
        ]
        .into_iter()
        .map(|mut t| {
            for k in [
                "replicas",
                "updatedReplicas",
                "readyReplicas",
                "availableReplicas",
            ] {
                t[k] = json!(1);
            }
            t
        })
        .collect();
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Experiment",
            "metadata": { "name": "r-abc-2-1" },
            "spec": { "templates": [] },
            "status": { "phase": phase, "templateStatuses": templates }
        }))
        .unwrap()
    }

    fn summary(r: &Rollout, e: Option<&Experiment>) -> Vec<(String, String, i32)> {
        experiment_destinations(r, e)
            .into_iter()
            .map(|d| {
                (
                    d.service_name.unwrap_or_default(),
                    d.pod_template_hash.unwrap_or_default(),
                    d.weight,
                )
            })
            .collect()
    }

    #[test]
    fn running_experiment_templates_with_weight_are_destinations() {
        let e = experiment(AnalysisPhase::Running);
        assert_eq!(
            summary(&rollout(1), Some(&e)),
            [
                ("r-abc-2-1-a".to_string(), "ha".to_string(), 5),
                ("svc-c".to_string(), "hc".to_string(), 7)
            ]
        );
        // Argo looks back from the current step to the last experiment step.
        assert_eq!(summary(&rollout(2), Some(&e)).len(), 2);
    }

    #[test]
    fn no_destinations_unless_running_on_an_experiment_step() {
        for phase in [
            AnalysisPhase::Pending,
            AnalysisPhase::Successful,
            AnalysisPhase::Failed,
            AnalysisPhase::Inconclusive,
        ] {
            assert!(
                summary(&rollout(1), Some(&experiment(phase))).is_empty(),
                "{phase:?}"
            );
        }
        let e = experiment(AnalysisPhase::Running);
        assert!(
            summary(&rollout(0), Some(&e)).is_empty(),
            "before the experiment step"
        );
        assert!(summary(&rollout(3), Some(&e)).is_empty(), "steps done");
        assert!(summary(&rollout(1), None).is_empty());
    }

    #[test]
    fn experiment_subset_names_cover_weighted_templates() {
        let e = experiment(AnalysisPhase::Successful);
        assert_eq!(
            experiment_subset_names(&rollout(0), std::slice::from_ref(&e)),
            ["r-abc-2-1-a", "svc-c"]
        );
        assert_eq!(experiment_subset_names(&rollout(0), &[]), ["svc-c"]);
    }
}
