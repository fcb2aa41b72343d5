//! Replica arithmetic of the canary strategy without traffic routing (the seed's Table 1 and
//! Formula 1): how many pods the canary and stable ReplicaSets get for a weight, within the
//! maxSurge / maxUnavailable budget.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The surge and unavailability budget, in pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FencePosts {
    /// Pods allowed above the desired count.
    pub max_surge: i32,
    /// Pods allowed below the desired count.
    pub max_unavailable: i32,
}

/// Resolves an int-or-percent against `total`. Argo reads a string without `%` as a percentage
/// too (its built-in default is the string "25"); `round_up` picks ceil (surge) or floor.
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> i32 {
    match value {
        IntOrString::Int(i) => *i,
        IntOrString::String(s) => {
            let percent: i64 = s.trim_end_matches('%').trim().parse().unwrap_or(0);
            let scaled = i64::from(total) * percent;
            let v = if round_up {
                (scaled + 99).div_euclid(100)
            } else {
                scaled.div_euclid(100)
            };
            i32::try_from(v).unwrap_or(i32::MAX)
        }
    }
}

/// maxSurge rounded up, maxUnavailable rounded down, both defaulting to 25%; when both end up
/// zero, one pod may be unavailable so the update can make progress. Unavailability never
/// exceeds the desired count.
pub fn fence_posts(
    replicas: i32,
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
) -> FencePosts {
    let default = IntOrString::String("25%".into());
    let surge = scaled_value(max_surge.unwrap_or(&default), replicas, true).max(0);
    let mut unavailable = scaled_value(max_unavailable.unwrap_or(&default), replicas, false).max(0);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    FencePosts {
        max_surge: surge,
        max_unavailable: unavailable.min(replicas.max(0)),
    }
}

/// The canary and stable pod counts that best approximate `weight` out of `max_weight` for
/// `replicas` pods, optionally using one surge pod when that gets closer (Argo's
/// `approximateWeightedCanaryStableReplicaCounts`). Returns `(canary, stable)`.
pub fn weighted_split(replicas: i32, weight: i32, max_weight: i32, max_surge: i32) -> (i32, i32) {
    if replicas <= 0 || max_weight <= 0 {
        return (0, replicas.max(0));
    }
    let zero_allowed = weight == 0 || weight == max_weight || (replicas == 1 && max_surge == 0);
    let mut options: Vec<(i32, i32)> = Vec::with_capacity(4);
    let mut consider = |total: i32, always_ceil: bool| {
        let product = i64::from(total) * i64::from(weight);
        let max = i64::from(max_weight);
        let floor = i32::try_from(product.div_euclid(max)).unwrap_or(i32::MAX);
        let ceil = i32::try_from((product + max - 1).div_euclid(max)).unwrap_or(i32::MAX);
        // "Tied" means exactly half-way between floor and ceil: the larger count wins.
        let tied = 2 * product.rem_euclid(max) == max;
        if always_ceil || ceil < replicas || zero_allowed {
            options.push((ceil, total));
        }
        if !tied && (floor != 0 || zero_allowed) {
            options.push((floor, total));
        }
    };
    consider(replicas, false);
    if max_surge > 0 {
        consider(replicas + 1, true);
    }
    let delta = |(canary, total): (i32, i32)| {
        (f64::from(canary) * f64::from(max_weight) / f64::from(total) - f64::from(weight)).abs()
    };
    let best = options
        .iter()
        .copied()
        .fold(None::<(i32, i32)>, |best, o| match best {
            Some(b) if delta(b) <= delta(o) => Some(b),
            _ => Some(o),
        });
    match best {
        Some((canary, total)) => (canary, total - canary),
        None => (0, replicas),
    }
}

/// Current state of one ReplicaSet as the arithmetic needs it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RsCounts {
    /// `spec.replicas`.
    pub spec: i32,
    /// `status.availableReplicas`.
    pub available: i32,
}

/// Inputs of one basic-canary computation.
#[derive(Clone, Copy, Debug)]
pub struct BasicCanaryInput {
    /// `spec.replicas` of the Rollout.
    pub replicas: i32,
    /// Desired canary weight.
    pub weight: i32,
    /// Weight that means 100%.
    pub max_weight: i32,
    /// Surge and unavailability budget.
    pub fence: FencePosts,
    /// The new (canary) ReplicaSet, if it exists.
    pub new_rs: Option<RsCounts>,
    /// The stable ReplicaSet, if there is one distinct from the new one.
    pub stable_rs: Option<RsCounts>,
    /// Sum of `spec.replicas` of all other ReplicaSets.
    pub other_spec_replicas: i32,
}

/// Pods counted as able to go away: the spec count when it is below availability (extra pods
/// are leaving anyway) or when availability is ignored, else the available count.
fn replicas_for_scale_down(rs: Option<RsCounts>, ignore_availability: bool) -> i32 {
    match rs {
        None => 0,
        Some(rs) if rs.spec < rs.available || ignore_availability => rs.spec,
        Some(rs) => rs.available,
    }
}

/// Target `(canary, stable)` replica counts for this reconcile of a basic canary (Argo's
/// `CalculateReplicaCountsForBasicCanary`): move towards the weighted split without exceeding
/// `replicas + maxSurge` pods in total or dropping below `replicas - maxUnavailable` available.
pub fn basic_canary_counts(input: &BasicCanaryInput) -> (i32, i32) {
    let BasicCanaryInput {
        replicas,
        weight,
        max_weight,
        fence,
        new_rs,
        stable_rs,
        other_spec_replicas,
    } = *input;
    let (desired_canary, desired_stable) = weighted_split(replicas, weight, max_weight, fence.max_surge);
    let Some(stable) = stable_rs else {
        // No distinct stable ReplicaSet: everything runs the new template.
        return (replicas, 0);
    };
    let mut canary_count = new_rs.map_or(0, |rs| rs.spec);
    let mut stable_count = stable.spec;

    let max_total = replicas + fence.max_surge;
    let total_now = canary_count + stable_count + other_spec_replicas;
    let mut scale_up = max_total - total_now;
    if scale_up > 0 && stable_count < desired_stable {
        let add = scale_up.min(desired_stable - stable_count);
        stable_count += add;
        scale_up -= add;
    }
    if scale_up > 0 && canary_count < desired_canary {
        canary_count += scale_up.min(desired_canary - canary_count);
    }
    if other_spec_replicas > 0 {
        // Older ReplicaSets are scaled down first.
        return (canary_count, stable_count);
    }

    let min_available = replicas - fence.max_unavailable;
    let increasing = new_rs.is_none_or(|rs| desired_canary >= rs.spec);
    let to_scale_down =
        replicas_for_scale_down(new_rs, !increasing) + replicas_for_scale_down(stable_rs, increasing);
    if to_scale_down <= min_available {
        return (canary_count, stable_count);
    }
    let scale_down = to_scale_down - min_available;
    if increasing {
        stable_count = drain_count(Some(stable), desired_stable, scale_down, stable_count);
        let adjusted = adjust_within_limits(
            Some(stable),
            new_rs,
            stable_count,
            canary_count,
            max_total,
            min_available,
        );
        (adjusted.1, adjusted.0)
    } else {
        canary_count = drain_count(new_rs, desired_canary, scale_down, canary_count);
        adjust_within_limits(
            new_rs,
            Some(stable),
            canary_count,
            stable_count,
            max_total,
            min_available,
        )
    }
}

/// New count of the ReplicaSet being drained: down towards its target by at most `scale_down`.
fn drain_count(rs: Option<RsCounts>, desired: i32, scale_down: i32, current: i32) -> i32 {
    match rs {
        Some(rs) if rs.spec > desired => desired.max(rs.spec - scale_down),
        _ => current,
    }
}

/// Keeps the other ReplicaSet (`adjust`) within the surge limit given the drained one's new
/// count, and never takes away pods that are needed to stay at or above `min_available`.
/// Returns `(drain_count, adjust_count)`.
fn adjust_within_limits(
    drain: Option<RsCounts>,
    adjust: Option<RsCounts>,
    drain_count: i32,
    adjust_count: i32,
    max_total: i32,
    min_available: i32,
) -> (i32, i32) {
    let mut adjust_count = adjust_count.min((max_total - drain_count).max(0));
    if let Some(adjust_rs) = adjust
        && adjust_count < adjust_rs.spec
    {
        let drain_available = drain.map_or(0, |rs| rs.available.min(drain_count));
        let needed = (min_available - drain_available).max(0);
        let floor = needed.min(adjust_rs.spec);
        if adjust_rs.available.min(adjust_count) < needed {
            adjust_count = adjust_count.max(floor);
        }
    }
    (drain_count, adjust_count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fence(replicas: i32, surge: &str, unavailable: &str) -> FencePosts {
        fence_posts(
            replicas,
            Some(&IntOrString::String(surge.into())),
            Some(&IntOrString::String(unavailable.into())),
        )
    }

    #[test]
    fn seed_table_1_splits_of_five_replicas() {
        // Formula 1: canary = weighted share of 5 pods, stable gets the rest.
        for (weight, expected) in [
            (0, (0, 5)),
            (20, (1, 4)),
            (40, (2, 3)),
            (60, (3, 2)),
            (80, (4, 1)),
            (100, (5, 0)),
        ] {
            assert_eq!(weighted_split(5, weight, 100, 2), expected, "weight {weight}");
        }
    }

    #[test]
    fn splits_from_the_reference_examples() {
        assert_eq!(weighted_split(10, 20, 100, 3), (2, 8));
        // 50% of 3 pods is best reached with a surge pod: 2 of 4.
        assert_eq!(weighted_split(3, 50, 100, 1), (2, 2));
        // Without surge the tie goes to the larger canary count.
        assert_eq!(weighted_split(3, 50, 100, 0), (2, 1));
        // 5% of one pod still gets one canary pod when a surge pod is allowed.
        assert_eq!(weighted_split(1, 5, 100, 1), (1, 1));
        // One replica, no surge: 0 canary pods is allowed.
        assert_eq!(weighted_split(1, 5, 100, 0), (0, 1));
        // An odd weight on 7 pods rounds to the nearest share.
        assert_eq!(weighted_split(7, 33, 100, 0), (2, 5));
        assert_eq!(weighted_split(0, 50, 100, 1), (0, 0));
    }

    #[test]
    fn fence_posts_round_surge_up_and_unavailable_down() {
        assert_eq!(
            fence(5, "25%", "25%"),
            FencePosts {
                max_surge: 2,
                max_unavailable: 1
            }
        );
        // A bare number string is still a percentage (Argo's default is the string "25").
        assert_eq!(
            fence(10, "25", "25"),
            FencePosts {
                max_surge: 3,
                max_unavailable: 2
            }
        );
        // Both zero after rounding: one pod may be unavailable.
        assert_eq!(
            fence(1, "0%", "25%"),
            FencePosts {
                max_surge: 0,
                max_unavailable: 1
            }
        );
        let ints = fence_posts(3, Some(&IntOrString::Int(1)), Some(&IntOrString::Int(5)));
        assert_eq!(
            ints,
            FencePosts {
                max_surge: 1,
                max_unavailable: 3
            },
            "unavailable capped at replicas"
        );
        assert_eq!(
            fence_posts(0, None, None),
            FencePosts {
                max_surge: 0,
                max_unavailable: 0
            }
        );
    }

    fn rs(spec: i32, available: i32) -> Option<RsCounts> {
        Some(RsCounts { spec, available })
    }

    #[test]
    fn reference_worked_example_scales_stable_then_canary() {
        let fence = FencePosts {
            max_surge: 3,
            max_unavailable: 2,
        };
        let mut input = BasicCanaryInput {
            replicas: 10,
            weight: 20,
            max_weight: 100,
            fence,
            new_rs: rs(0, 0),
            stable_rs: rs(10, 10),
            other_spec_replicas: 0,
        };
        // First sync: stable goes 10 -> 8 (the controller applies the stable change first).
        assert_eq!(basic_canary_counts(&input), (2, 8));
        input.stable_rs = rs(8, 8);
        assert_eq!(basic_canary_counts(&input), (2, 8));
    }

    #[test]
    fn seed_canary_steps_on_five_replicas() {
        let fence = fence(5, "25%", "25%");
        let base = BasicCanaryInput {
            replicas: 5,
            weight: 20,
            max_weight: 100,
            fence,
            new_rs: rs(0, 0),
            stable_rs: rs(5, 5),
            other_spec_replicas: 0,
        };
        assert_eq!(basic_canary_counts(&base), (1, 4));
        let at_40 = BasicCanaryInput {
            weight: 40,
            new_rs: rs(1, 1),
            stable_rs: rs(4, 4),
            ..base
        };
        assert_eq!(basic_canary_counts(&at_40), (2, 3));
        let at_100 = BasicCanaryInput {
            weight: 100,
            new_rs: rs(2, 2),
            stable_rs: rs(3, 3),
            ..base
        };
        // Stable can only drop by what the unavailability budget allows while canary surges.
        assert_eq!(basic_canary_counts(&at_100), (4, 2));
        let at_100_later = BasicCanaryInput {
            weight: 100,
            new_rs: rs(4, 4),
            stable_rs: rs(2, 2),
            ..base
        };
        assert_eq!(basic_canary_counts(&at_100_later), (5, 0));
    }

    #[test]
    fn abort_brings_stable_back_before_canary_leaves() {
        let fence = fence(5, "25%", "25%");
        let input = BasicCanaryInput {
            replicas: 5,
            weight: 0,
            max_weight: 100,
            fence,
            new_rs: rs(1, 1),
            stable_rs: rs(4, 4),
            other_spec_replicas: 0,
        };
        let (canary, stable) = basic_canary_counts(&input);
        assert_eq!(stable, 5, "stable is topped up within the surge budget");
        assert_eq!(canary, 0, "canary may go once stable alone keeps 4 available");
    }

    #[test]
    fn older_replica_sets_block_scale_down() {
        let fence = fence(5, "25%", "25%");
        let input = BasicCanaryInput {
            replicas: 5,
            weight: 20,
            max_weight: 100,
            fence,
            new_rs: rs(0, 0),
            stable_rs: rs(4, 4),
            other_spec_replicas: 1,
        };
        assert_eq!(basic_canary_counts(&input), (1, 4));
    }

    #[test]
    fn without_stable_everything_is_canary() {
        let input = BasicCanaryInput {
            replicas: 3,
            weight: 20,
            max_weight: 100,
            fence: fence(3, "25%", "25%"),
            new_rs: rs(0, 0),
            stable_rs: None,
            other_spec_replicas: 0,
        };
        assert_eq!(basic_canary_counts(&input), (3, 0));
    }

    #[test]
    fn single_replica_without_surge_swaps_through_unavailability() {
        let fence = fence(1, "0", "1");
        let input = BasicCanaryInput {
            replicas: 1,
            weight: 100,
            max_weight: 100,
            fence,
            new_rs: rs(0, 0),
            stable_rs: rs(1, 1),
            other_spec_replicas: 0,
        };
        // No surge allowed, one pod may be unavailable: stable goes first.
        assert_eq!(basic_canary_counts(&input), (0, 0));
        let next = BasicCanaryInput {
            stable_rs: rs(0, 0),
            ..input
        };
        assert_eq!(basic_canary_counts(&next), (1, 0));
    }
}
