//! Pure logic of the canary traffic routers: how the Istio VirtualService / DestinationRule and
//! the NGINX canary Ingress must look for a desired weight, and how many pods a traffic-routed
//! canary needs. Every function takes objects and returns new objects; fetching and writing
//! them is the caller's job, so all of this is unit-testable without a cluster.
//!
//! Submodules: [`istio`] (VirtualService routes, DestinationRule subsets, header and mirror
//! routes) and [`nginx`] (the `<rollout>-<stableIngress>-canary` Ingress).

pub mod istio;
pub mod nginx;
pub mod plan;

use std::fmt;

use shared_types::rollout::{CanaryStep, SetCanaryScale, TrafficWeights, WeightDestination};

/// Kind of the object a [`TrafficError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    /// An Istio `VirtualService`.
    VirtualService,
    /// An Istio `DestinationRule`.
    DestinationRule,
    /// A `networking.k8s.io/v1` Ingress.
    Ingress,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::VirtualService => "VirtualService",
            ObjectKind::DestinationRule => "DestinationRule",
            ObjectKind::Ingress => "Ingress",
        })
    }
}

/// A router object cannot be brought into the desired state: which object, and why.
///
/// Displayed as ``<Kind> `<name>`: <problem>``; the problem texts are Argo Rollouts' own
/// messages where Argo has one, so users searching for them find the same answers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} `{name}`: {problem}")]
pub struct TrafficError {
    /// Kind of the object.
    pub kind: ObjectKind,
    /// Name of the object (`metadata.name`, or the name the Rollout refers to).
    pub name: String,
    /// What is wrong.
    pub problem: Problem,
}

impl TrafficError {
    /// An error about the object `kind`/`name`.
    pub fn new(kind: ObjectKind, name: impl Into<String>, problem: Problem) -> Self {
        TrafficError {
            kind,
            name: name.into(),
            problem,
        }
    }
    /// The DestinationRule update is postponed (not an error to report).
    pub fn deferred(destination_rule: &str) -> Self {
        Self::new(ObjectKind::DestinationRule, destination_rule, Problem::Deferred)
    }

    /// Whether this only postpones the update.
    pub fn is_deferral(&self) -> bool {
        matches!(self.problem, Problem::Deferred)
    }
}

/// The problems a router object can have.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The DestinationRule update waits until the ReplicaSets behind its subsets are available.
    #[error("subsets wait for their ReplicaSets to be fully available")]
    Deferred,
    /// The VirtualService has no `spec.http` although HTTP routes are needed.
    #[error("spec.http not found")]
    SpecHttpNotFound,
    /// The VirtualService has neither HTTP, TLS nor TCP routes.
    #[error("Unable to get any of the HTTP, TCP or TLS routes for the Istio VirtualService")]
    NoRoutes,
    /// Nothing to update: no HTTP, TLS or TCP route was selected.
    #[error("no HTTP, TLS or TCP route found to set the weights on")]
    NoRouteSelected,
    /// A route listed in `virtualService.routes` does not exist.
    #[error("HTTP Route '{0}' is not found in the defined Virtual Service.")]
    HttpRouteNotFound(String),
    /// No TLS route matches a `tlsRoutes` entry.
    #[error("No matching TLS routes found in the defined Virtual Service.")]
    NoMatchingTlsRoute,
    /// No TCP route matches a `tcpRoutes` entry.
    #[error("No matching TCP routes found in the defined Virtual Service.")]
    NoMatchingTcpRoute,
    /// `routes` is omitted but the VirtualService has several (non-managed) HTTP routes.
    #[error(
        "spec.http[] should be set in VirtualService and it must have exactly one route when omitting \
         spec.strategy.canary.trafficRouting.istio.virtualService.routes"
    )]
    AmbiguousHttpRoute,
    /// `tlsRoutes` is omitted but the VirtualService has several TLS routes.
    #[error(
        "spec.tls[] should be set in VirtualService and it must have exactly one route when omitting \
         spec.strategy.canary.trafficRouting.istio.virtualService.tlsRoutes"
    )]
    AmbiguousTlsRoute,
    /// `tcpRoutes` is omitted but the VirtualService has several TCP routes.
    #[error(
        "spec.tcp[] should be set in VirtualService and it must have exactly one route when omitting \
         spec.strategy.canary.trafficRouting.istio.virtualService.tcpRoutes"
    )]
    AmbiguousTcpRoute,
    /// A selected route has no destination for the canary Service.
    #[error("Canary Service '{0}' not found in route")]
    CanaryServiceNotFound(String),
    /// A selected route has no destination for the stable Service.
    #[error("Stable Service '{0}' not found in route")]
    StableServiceNotFound(String),
    /// A selected route has no destination for the canary subset.
    #[error("Canary DestinationRule subset '{0}' not found in route")]
    CanarySubsetNotFound(String),
    /// A selected route has no destination for the stable subset.
    #[error("Stable DestinationRule subset '{0}' not found in route")]
    StableSubsetNotFound(String),
    /// A field has an unexpected JSON type.
    #[error("Invalid casting: field '{field}' is not of type '{expected}'")]
    InvalidField {
        /// Path of the field, e.g. `spec.http[].route`.
        field: String,
        /// The expected JSON type.
        expected: &'static str,
    },
    /// A `setHeaderRoute` step without a name.
    #[error("setHeaderRoute step has no name")]
    MissingRouteName,
    /// A mirror route needs the weighted route's destinations, and there is no weighted route.
    #[error("no weighted HTTP route to copy the destinations of the mirror route from")]
    NoWeightedRoute,
    /// The stable Ingress has no path whose backend is the stable Service.
    #[error("no rules using service {0} backend")]
    NoRulesForService(String),
    /// The canary Ingress exists but is controlled by another object.
    #[error("canary ingress controlled by different object")]
    ControlledByOther,
}

/// The weights one reconcile wants on the routers, as also recorded in
/// `status.canary.weights`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredWeights {
    /// The canary: weight W, canary Service, new ReplicaSet hash.
    pub canary: WeightDestination,
    /// The stable: weight `Wmax − W − Σadditional`, stable Service, stable ReplicaSet hash.
    pub stable: WeightDestination,
    /// Experiment destinations: weight, experiment Service, template hash.
    pub additional: Vec<WeightDestination>,
}

impl DesiredWeights {
    /// Weights for canary weight `canary.weight`; the stable weight is computed as
    /// `max_weight − canary − Σadditional`, floored at 0 (the weight already in `stable` is ignored).
    pub fn new(
        max_weight: i32,
        canary: WeightDestination,
        stable: WeightDestination,
        additional: Vec<WeightDestination>,
    ) -> Self {
        let mut weights = DesiredWeights {
            canary,
            stable,
            additional,
        };
        weights.stable.weight = max_weight
            .saturating_sub(weights.canary.weight)
            .saturating_sub(weights.additional_weight())
            .max(0);
        weights
    }

    /// Sum of the experiment weights.
    pub fn additional_weight(&self) -> i32 {
        self.additional
            .iter()
            .fold(0i32, |sum, d| sum.saturating_add(d.weight))
    }

    /// The value for `status.canary.weights` (`verified` as given: Istio and NGINX never verify).
    pub fn to_traffic_weights(&self, verified: Option<bool>) -> TrafficWeights {
        TrafficWeights {
            canary: self.canary.clone(),
            stable: self.stable.clone(),
            additional: (!self.additional.is_empty()).then(|| self.additional.clone()),
            verified,
        }
    }
}

/// Pods needed to serve `weight` out of `max_weight` with `replicas` pods in total, rounded up
/// (Argo's `trafficWeightToReplicas`): 5 replicas at 20% → 1, at 50% → 3.
pub fn replicas_for_weight(weight: i32, replicas: i32, max_weight: i32) -> i32 {
    if max_weight <= 0 || weight <= 0 || replicas <= 0 {
        return 0;
    }
    let product = i64::from(weight) * i64::from(replicas);
    let max = i64::from(max_weight);
    i32::try_from((product + max - 1) / max).unwrap_or(i32::MAX)
}

/// Raises a non-zero count to `minPodsPerReplicaSet` (itself capped at `replicas`, so a small
/// Rollout is never scaled above its size); zero stays zero.
pub fn check_min_pods(count: i32, min_pods_per_replica_set: Option<i32>, replicas: i32) -> i32 {
    match min_pods_per_replica_set {
        Some(min) if count > 0 => count.max(min.min(replicas)),
        _ => count,
    }
}

/// The `setCanaryScale` in force at the current step (Argo's `UseSetCanaryScale`): the nearest
/// one at or before `current_step_index`, unless that one says `matchTrafficWeight`. Ignored
/// after the last step and while aborted, except with `abortScaleDownDelaySeconds: 0` (the user
/// asked to keep the canary up). The caller must also ignore it when the Rollout is fully
/// promoted (Argo sizes by the full weight then). Only meaningful with traffic routing.
pub fn set_canary_scale_in_force(
    steps: &[CanaryStep],
    current_step_index: Option<i32>,
    aborted: bool,
    abort_scale_down_delay_seconds: i32,
) -> Option<&SetCanaryScale> {
    if aborted && abort_scale_down_delay_seconds != 0 {
        return None;
    }
    let index = usize::try_from(current_step_index.unwrap_or(0)).ok()?;
    if index >= steps.len() {
        return None;
    }
    let scale = steps[..=index]
        .iter()
        .rev()
        .find_map(|s| s.set_canary_scale.as_ref())?;
    if scale.match_traffic_weight.unwrap_or(false) {
        None
    } else {
        Some(scale)
    }
}

/// Inputs of [`traffic_routed_counts`].
#[derive(Clone, Copy, Debug, Default)]
pub struct TrafficRoutedInput<'a> {
    /// `spec.replicas` of the Rollout (R).
    pub replicas: i32,
    /// `trafficRouting.maxTrafficWeight` with its default 100 (Wmax); must be positive (0, as in
    /// `Default`, makes every count 0).
    pub max_weight: i32,
    /// The canary traffic weight of this reconcile (W): the current `setWeight`, 0 while
    /// aborted, Wmax when fully promoted or past the last step.
    pub weight: i32,
    /// The `setCanaryScale` in force ([`set_canary_scale_in_force`]), if any.
    pub set_canary_scale: Option<&'a SetCanaryScale>,
    /// `minPodsPerReplicaSet`.
    pub min_pods_per_replica_set: Option<i32>,
    /// `dynamicStableScale`.
    pub dynamic_stable_scale: bool,
    /// `status.abort`.
    pub aborted: bool,
    /// `status.canary.weights` as recorded by the previous reconcile.
    pub recorded_weights: Option<&'a TrafficWeights>,
}

/// Target `(canary, stable)` replica counts of a canary with traffic routing (the seed's
/// Formula 2, Argo's `CalculateReplicaCountsForTrafficRoutedCanary`).
///
/// * Canary: `setCanaryScale.replicas` when in force, else `ceil(W'·R/Wmax)` where W' is
///   `setCanaryScale.weight` or W, raised to `minPodsPerReplicaSet`.
/// * Stable: R, because traffic, not pod counts, decides the split: the stable keeps serving
///   everything the canary does not get.
/// * With `dynamicStableScale` the stable is `max(ceil((Wmax−W')·R/Wmax),
///   ceil(recordedStable·R/Wmax))`: it only shrinks once traffic has really left it (the
///   recorded weight lags one reconcile). While aborted the canary likewise stays at least
///   `ceil(recordedCanary·R/Wmax)` until traffic is back on the stable. Both are raised to
///   `minPodsPerReplicaSet`.
///
/// maxSurge / maxUnavailable do not bound these counts.
pub fn traffic_routed_counts(input: &TrafficRoutedInput) -> (i32, i32) {
    let r = input.replicas.max(0);
    let wmax = input.max_weight;
    let min_pods = |count| check_min_pods(count, input.min_pods_per_replica_set, r);

    // The weight used for pod counts: setCanaryScale.weight replaces W, and an explicit replica
    // count stands for weight 0 (Argo's GetCanaryReplicasOrWeight), which matters for the
    // dynamic stable count below.
    let (explicit_replicas, replica_weight) = match input.set_canary_scale {
        Some(SetCanaryScale {
            replicas: Some(n), ..
        }) => (Some((*n).max(0)), 0),
        Some(SetCanaryScale { weight: Some(w), .. }) => (None, *w),
        _ => (None, input.weight),
    };
    let mut canary = match explicit_replicas {
        Some(n) => n,
        None => min_pods(replicas_for_weight(replica_weight, r, wmax)),
    };
    if !input.dynamic_stable_scale {
        return (canary, r);
    }

    let mut stable = replicas_for_weight(wmax.saturating_sub(replica_weight), r, wmax);
    if let Some(recorded) = input.recorded_weights {
        stable = stable.max(replicas_for_weight(recorded.stable.weight, r, wmax));
        if input.aborted {
            canary = canary.max(replicas_for_weight(recorded.canary.weight, r, wmax));
        }
    }
    (min_pods(canary), min_pods(stable))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(weight: i32) -> TrafficRoutedInput<'static> {
        TrafficRoutedInput {
            replicas: 5,
            max_weight: 100,
            weight,
            ..Default::default()
        }
    }

    #[test]
    fn ceil_formula() {
        assert_eq!(replicas_for_weight(20, 5, 100), 1);
        assert_eq!(replicas_for_weight(50, 5, 100), 3);
        assert_eq!(replicas_for_weight(0, 5, 100), 0);
        assert_eq!(replicas_for_weight(100, 5, 100), 5);
        assert_eq!(replicas_for_weight(1, 10, 1000), 1);
        assert_eq!(replicas_for_weight(500, 10, 1000), 5);
        assert_eq!(replicas_for_weight(20, 5, 0), 0);
        assert_eq!(replicas_for_weight(-5, 5, 100), 0);
    }

    /// The seed's Table 2 (Manifest 3, 5 replicas): the canary gets ceil(5·W/100) pods and the
    /// stable stays at 5 (Formula 2). The table's last row shows stable 0 at 100%, which
    /// Formula 2 contradicts; Argo keeps the stable whole until promotion and then scales it
    /// down after the scale-down delay (only dynamicStableScale gives 0 at 100%, tested below).
    #[test]
    fn seed_table_2() {
        for (weight, canary) in [(10, 1), (20, 1), (50, 3), (80, 4), (100, 5)] {
            assert_eq!(
                traffic_routed_counts(&input(weight)),
                (canary, 5),
                "weight {weight}"
            );
        }
    }

    #[test]
    fn seed_manifest_13_steps() {
        for (weight, canary) in [(0, 0), (20, 1), (40, 2), (100, 5)] {
            assert_eq!(
                traffic_routed_counts(&input(weight)),
                (canary, 5),
                "weight {weight}"
            );
        }
    }

    #[test]
    fn max_traffic_weight_scales_the_formula() {
        let i = TrafficRoutedInput {
            replicas: 10,
            max_weight: 1000,
            weight: 250,
            ..Default::default()
        };
        assert_eq!(traffic_routed_counts(&i), (3, 10));
    }

    #[test]
    fn set_canary_scale_replicas_and_weight() {
        let replicas = SetCanaryScale {
            replicas: Some(3),
            ..Default::default()
        };
        let i = TrafficRoutedInput {
            set_canary_scale: Some(&replicas),
            ..input(20)
        };
        assert_eq!(traffic_routed_counts(&i), (3, 5));

        let weight = SetCanaryScale {
            weight: Some(60),
            ..Default::default()
        };
        let i = TrafficRoutedInput {
            set_canary_scale: Some(&weight),
            ..input(0)
        };
        assert_eq!(traffic_routed_counts(&i), (3, 5));
    }

    #[test]
    fn min_pods_per_replica_set() {
        let i = TrafficRoutedInput {
            replicas: 10,
            min_pods_per_replica_set: Some(2),
            ..input(5)
        };
        assert_eq!(traffic_routed_counts(&i), (2, 10));
        // Zero stays zero.
        let i = TrafficRoutedInput {
            replicas: 10,
            min_pods_per_replica_set: Some(2),
            ..input(0)
        };
        assert_eq!(traffic_routed_counts(&i), (0, 10));
        // Capped at spec.replicas.
        assert_eq!(check_min_pods(1, Some(7), 3), 3);
    }

    fn recorded(canary: i32, stable: i32) -> TrafficWeights {
        TrafficWeights {
            canary: WeightDestination {
                weight: canary,
                ..Default::default()
            },
            stable: WeightDestination {
                weight: stable,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn dynamic_stable_scale_lags_the_recorded_weight() {
        // Going up 20 → 40: the stable keeps 4 pods until the router has moved traffic.
        let w = recorded(20, 80);
        let i = TrafficRoutedInput {
            dynamic_stable_scale: true,
            recorded_weights: Some(&w),
            ..input(40)
        };
        assert_eq!(traffic_routed_counts(&i), (2, 4));
        // Once 40 is recorded, the stable drops to ceil(60·5/100) = 3.
        let w = recorded(40, 60);
        let i = TrafficRoutedInput {
            dynamic_stable_scale: true,
            recorded_weights: Some(&w),
            ..input(40)
        };
        assert_eq!(traffic_routed_counts(&i), (2, 3));
        // 100%: the stable goes to zero.
        let w = recorded(100, 0);
        let i = TrafficRoutedInput {
            dynamic_stable_scale: true,
            recorded_weights: Some(&w),
            ..input(100)
        };
        assert_eq!(traffic_routed_counts(&i), (5, 0));
        // No recorded weights yet.
        let i = TrafficRoutedInput {
            dynamic_stable_scale: true,
            ..input(20)
        };
        assert_eq!(traffic_routed_counts(&i), (1, 4));
    }

    #[test]
    fn dynamic_stable_scale_abort_keeps_the_canary_until_traffic_is_back() {
        let w = recorded(60, 40);
        let i = TrafficRoutedInput {
            dynamic_stable_scale: true,
            aborted: true,
            recorded_weights: Some(&w),
            ..input(0)
        };
        assert_eq!(traffic_routed_counts(&i), (3, 5));
        let w = recorded(0, 100);
        let i = TrafficRoutedInput {
            recorded_weights: Some(&w),
            ..i
        };
        assert_eq!(traffic_routed_counts(&i), (0, 5));
    }

    fn step_scale(scale: SetCanaryScale) -> CanaryStep {
        CanaryStep {
            set_canary_scale: Some(scale),
            ..Default::default()
        }
    }

    fn step_weight(w: i32) -> CanaryStep {
        CanaryStep {
            set_weight: Some(w),
            ..Default::default()
        }
    }

    #[test]
    fn set_canary_scale_selection() {
        let two = SetCanaryScale {
            replicas: Some(2),
            ..Default::default()
        };
        let steps = vec![
            step_scale(two.clone()),
            step_weight(20),
            step_scale(SetCanaryScale {
                match_traffic_weight: Some(true),
                ..Default::default()
            }),
            step_weight(50),
        ];
        assert_eq!(set_canary_scale_in_force(&steps, Some(0), false, 30), Some(&two));
        assert_eq!(set_canary_scale_in_force(&steps, Some(1), false, 30), Some(&two));
        assert_eq!(set_canary_scale_in_force(&steps, None, false, 30), Some(&two));
        // matchTrafficWeight cancels the earlier one.
        assert_eq!(set_canary_scale_in_force(&steps, Some(3), false, 30), None);
        // After the last step.
        assert_eq!(set_canary_scale_in_force(&steps, Some(4), false, 30), None);
        // Aborted: ignored unless abortScaleDownDelaySeconds is 0.
        assert_eq!(set_canary_scale_in_force(&steps, Some(1), true, 30), None);
        assert_eq!(set_canary_scale_in_force(&steps, Some(1), true, 0), Some(&two));
        assert_eq!(set_canary_scale_in_force(&[], Some(0), false, 30), None);
    }

    #[test]
    fn desired_weights_stable_is_the_rest() {
        let exp = |svc: &str, w| WeightDestination {
            weight: w,
            service_name: Some(svc.into()),
            pod_template_hash: Some("h".into()),
        };
        let d = DesiredWeights::new(
            100,
            WeightDestination {
                weight: 20,
                service_name: Some("canary".into()),
                pod_template_hash: Some("new".into()),
            },
            WeightDestination {
                weight: 999,
                service_name: Some("stable".into()),
                pod_template_hash: Some("old".into()),
            },
            vec![exp("exp-a", 10), exp("exp-b", 5)],
        );
        assert_eq!(d.stable.weight, 65);
        assert_eq!(d.additional_weight(), 15);
        let tw = d.to_traffic_weights(None);
        assert_eq!(tw.canary.weight, 20);
        assert_eq!(tw.stable.pod_template_hash.as_deref(), Some("old"));
        assert_eq!(tw.additional.map(|a| a.len()), Some(2));

        let d = DesiredWeights::new(
            100,
            WeightDestination {
                weight: 95,
                ..Default::default()
            },
            WeightDestination::default(),
            vec![exp("exp-a", 10)],
        );
        assert_eq!(d.stable.weight, 0);
        assert_eq!(
            d.to_traffic_weights(None).additional,
            Some(vec![exp("exp-a", 10)])
        );
    }

    #[test]
    fn error_display_names_the_object() {
        let e = TrafficError::new(
            ObjectKind::VirtualService,
            "mock-server",
            Problem::CanaryServiceNotFound("mock-server-canary".into()),
        );
        assert_eq!(
            e.to_string(),
            "VirtualService `mock-server`: Canary Service 'mock-server-canary' not found in route"
        );
    }
}
