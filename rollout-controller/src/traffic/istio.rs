//! Istio: the weights of a VirtualService's routes, the hash labels of a DestinationRule's
//! subsets, and the header / mirror routes the controller manages (Argo's
//! `rollout/trafficrouting/istio`).
//!
//! Objects are handled as `serde_json::Value` so that every field this code does not know
//! about (retries, timeouts, fault injection, future Istio fields) survives the round trip:
//! Argo writes the whole VirtualService back with an Update, so anything dropped here would be
//! deleted from the cluster.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};
use shared_types::{
    constants::keys,
    rollout::{
        HeaderRoutingMatch, IstioDestinationRule, IstioVirtualService, ManagedRoute, RouteMatch,
        SetHeaderRoute, SetMirrorRoute, StringMatch, TcpRoute, TlsRoute, TrafficWeights, WeightDestination,
    },
};

use super::{DesiredWeights, ObjectKind, Problem, TrafficError};

/// Argo computes the stable weight of an Istio route from a fixed 100 (`maxTrafficWeight` is not
/// supported by the Istio router).
const ISTIO_TOTAL_WEIGHT: i64 = 100;

/// How a VirtualService route tells canary from stable.
#[derive(Clone, Copy, Debug)]
pub enum Split<'a> {
    /// Host-level split (no DestinationRule): destinations are matched by Service host.
    Host {
        /// `canaryService` of the Rollout.
        canary_service: &'a str,
        /// `stableService` of the Rollout.
        stable_service: &'a str,
    },
    /// Subset-level split: destinations are matched by DestinationRule subset name, whatever
    /// their host.
    Subset(&'a IstioDestinationRule),
}

/// Resolves `trafficRouting.istio.virtualService.name` to `(name, namespace)`. A reference may be
/// `name`, `name.namespace` or a cluster-local FQDN such as `name.namespace.svc.cluster.local`:
/// the `.cluster.local` and `.svc` suffixes are stripped first, then the last dot-separated
/// segment is the namespace and the rest the name. Without a namespace the Rollout's is used.
pub fn parse_virtual_service_ref(reference: &str, rollout_namespace: &str) -> (String, String) {
    let trimmed = reference.strip_suffix(".cluster.local").unwrap_or(reference);
    let trimmed = trimmed.strip_suffix(".svc").unwrap_or(trimmed);
    match trimmed.rsplit_once('.') {
        Some((name, namespace)) if !name.is_empty() && !namespace.is_empty() => {
            (name.to_string(), namespace.to_string())
        }
        Some((name, _)) if !name.is_empty() => (name.to_string(), rollout_namespace.to_string()),
        _ => (trimmed.to_string(), rollout_namespace.to_string()),
    }
}

/// The first DNS label of a destination host, which is what Argo compares with Service names
/// (`reviews.ns.svc.cluster.local` → `reviews`). A host starting with a dot has none (`""`).
pub fn short_host(host: &str) -> &str {
    match host.find('.') {
        Some(i) => &host[..i],
        None => host,
    }
}

/// `spec.host` of a DestinationRule: the host of header / mirror routes in subset mode.
pub fn destination_rule_host(dr: &Value) -> Option<&str> {
    dr.pointer("/spec/host").and_then(Value::as_str)
}

// ---------------------------------------------------------------------------------------------
// Weights
// ---------------------------------------------------------------------------------------------

/// Sets the weights of a host-split VirtualService (no DestinationRule) and returns the new
/// object. See [`set_weights`].
pub fn set_weights_host_split(
    vs: &Value,
    routing: &IstioVirtualService,
    managed_routes: &[ManagedRoute],
    canary_service: &str,
    stable_service: &str,
    desired: &DesiredWeights,
) -> Result<Value, TrafficError> {
    let split = Split::Host {
        canary_service,
        stable_service,
    };
    set_weights(vs, routing, managed_routes, &split, desired)
}

/// Sets the weights of a subset-split VirtualService (with a DestinationRule) and returns the
/// new object. See [`set_weights`].
pub fn set_weights_subset_split(
    vs: &Value,
    routing: &IstioVirtualService,
    managed_routes: &[ManagedRoute],
    destination_rule: &IstioDestinationRule,
    desired: &DesiredWeights,
) -> Result<Value, TrafficError> {
    set_weights(
        vs,
        routing,
        managed_routes,
        &Split::Subset(destination_rule),
        desired,
    )
}

/// Sets canary weight `desired.canary.weight` on the selected routes of a VirtualService
/// (Argo's `SetWeight`) and returns the new object; everything else is copied unchanged.
///
/// Selected routes: the HTTP routes named in `routing.routes` (without names, the one HTTP route
/// that is not a managed route), the managed routes that mirror, the TLS routes matching
/// `routing.tlsRoutes` by port and SNI host set and the TCP routes matching `routing.tcpRoutes`
/// by port (without a list, the first TLS / TCP route). Each selected (non-mirror) route must
/// have a canary and a stable destination.
///
/// In each selected route: canary → W; stable → `100 − W − Σexperiments − Σadditional-subset
/// weights` (floored at 0); experiment Services (`desired.additional`, matched by host) → their
/// weight, appended in template order when missing; destinations of an `additionalSubsetNames`
/// subset keep their weight; every other destination is deleted (traffic must add up, and
/// Argo owns these routes). Hosts are compared by their first DNS label. Finally the HTTP
/// routes are reordered so the managed routes come first (see [`order_routes`]).
pub fn set_weights(
    vs: &Value,
    routing: &IstioVirtualService,
    managed_routes: &[ManagedRoute],
    split: &Split,
    desired: &DesiredWeights,
) -> Result<Value, TrafficError> {
    let selection = select_routes(vs, routing, managed_routes)?;
    validate_selection(vs, &selection, split)?;
    let mut out = vs.clone();
    for (key, indexes) in [
        ("http", &selection.http),
        ("tls", &selection.tls),
        ("tcp", &selection.tcp),
    ] {
        let Some(routes) = routes_mut(&mut out, key) else {
            continue;
        };
        for &i in indexes {
            if let Some(route) = routes.get_mut(i) {
                rewrite_route(route, key, split, desired).map_err(|p| vs_err(vs, p))?;
            }
        }
    }
    if let Some(http) = routes_mut(&mut out, "http") {
        order_http(http, managed_routes);
    }
    Ok(out)
}

/// Routes all traffic back to the stable (canary 0, no experiment destinations) and removes
/// the managed routes, e.g. when the Rollout is deleted. Additional subsets keep their weight.
pub fn restore_stable(
    vs: &Value,
    routing: &IstioVirtualService,
    managed_routes: &[ManagedRoute],
    split: &Split,
) -> Result<Value, TrafficError> {
    let names: Vec<&str> = managed_routes.iter().map(|r| r.name.as_str()).collect();
    let without_managed = remove_managed_routes(vs, &names)?;
    set_weights(&without_managed, routing, &[], split, &DesiredWeights::default())
}

/// Reads the canary and stable weights back from the first selected route (HTTP, else TLS,
/// else TCP), for verification and for `status.canary.weights`. Destinations that are neither
/// canary, stable nor an additional subset are returned as `additional` (experiment Services),
/// named by their short host. Pod-template hashes are not known to a VirtualService and are
/// left unset; in host mode the Service names are filled in.
pub fn current_weights(
    vs: &Value,
    routing: &IstioVirtualService,
    managed_routes: &[ManagedRoute],
    split: &Split,
) -> Result<TrafficWeights, TrafficError> {
    let selection = select_routes(vs, routing, managed_routes)?;
    validate_selection(vs, &selection, split)?;
    let mut route = None;
    for (key, first) in [
        ("http", selection.primary_http.first()),
        ("tls", selection.tls.first()),
        ("tcp", selection.tcp.first()),
    ] {
        if let (Some(&i), Some(routes)) = (first, route_list(vs, key)?) {
            route = routes.get(i);
            break;
        }
    }
    let route = route.ok_or_else(|| vs_err(vs, Problem::NoRouteSelected))?;

    let (canary_service, stable_service) = match split {
        Split::Host {
            canary_service,
            stable_service,
        } => (Some(canary_service.to_string()), Some(stable_service.to_string())),
        Split::Subset(_) => (None, None),
    };
    let mut weights = TrafficWeights {
        canary: WeightDestination {
            service_name: canary_service,
            ..Default::default()
        },
        stable: WeightDestination {
            service_name: stable_service,
            ..Default::default()
        },
        ..Default::default()
    };
    let (mut seen_canary, mut seen_stable) = (false, false);
    let mut additional = Vec::new();
    for dest in destinations(route) {
        let weight = clamp_weight(weight_of(dest));
        match classify(dest, split, &[], &[]) {
            Role::Canary if !seen_canary => {
                seen_canary = true;
                weights.canary.weight = weight;
            }
            Role::Stable if !seen_stable => {
                seen_stable = true;
                weights.stable.weight = weight;
            }
            Role::Unknown => additional.push(WeightDestination {
                weight,
                service_name: Some(short_host(host_of(dest)).to_string()),
                pod_template_hash: None,
            }),
            _ => {}
        }
    }
    weights.additional = (!additional.is_empty()).then_some(additional);
    Ok(weights)
}

/// The role of one destination in a weighted route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Canary,
    Stable,
    /// Experiment Service, index into the desired additional destinations.
    Experiment(usize),
    /// Destination of an `additionalSubsetNames` subset: left alone.
    AdditionalSubset,
    /// No host to compare: Argo leaves such entries alone.
    Untouched,
    /// Anything else: deleted when weights are set.
    Unknown,
}

fn classify(dest: &Value, split: &Split, experiments: &[WeightDestination], used: &[bool]) -> Role {
    let host = short_host(host_of(dest));
    if host.is_empty() {
        return Role::Untouched;
    }
    let subset = dest
        .pointer("/destination/subset")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    match split {
        Split::Host {
            canary_service,
            stable_service,
        } => {
            if !canary_service.is_empty() && host == *canary_service {
                return Role::Canary;
            }
            if !stable_service.is_empty() && host == *stable_service {
                return Role::Stable;
            }
        }
        Split::Subset(dr) => {
            if subset.is_some_and(|s| s == dr.canary_subset_name) {
                return Role::Canary;
            }
            if subset.is_some_and(|s| s == dr.stable_subset_name) {
                return Role::Stable;
            }
        }
    }
    let experiment = experiments
        .iter()
        .enumerate()
        .position(|(i, e)| !used.get(i).copied().unwrap_or(false) && e.service_name.as_deref() == Some(host));
    if let Some(i) = experiment {
        return Role::Experiment(i);
    }
    if let (Split::Subset(dr), Some(subset)) = (split, subset)
        && dr
            .additional_subset_names
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|a| a == subset)
    {
        return Role::AdditionalSubset;
    }
    Role::Unknown
}

/// Rewrites the destinations of one selected route (see [`set_weights`]).
fn rewrite_route(
    route: &mut Value,
    key: &str,
    split: &Split,
    desired: &DesiredWeights,
) -> Result<(), Problem> {
    let Some(dests) = route.get_mut("route").and_then(Value::as_array_mut) else {
        return Err(Problem::InvalidField {
            field: format!("spec.{key}[].route"),
            expected: "[]interface",
        });
    };
    let experiments = &desired.additional;
    let mut used = vec![false; experiments.len()];
    let mut roles = Vec::with_capacity(dests.len());
    for dest in dests.iter() {
        let role = classify(dest, split, experiments, &used);
        if let Role::Experiment(i) = role {
            used[i] = true;
        }
        roles.push(role);
    }
    // Additional subsets keep their share, so it cannot go to the stable.
    let kept: i64 = dests
        .iter()
        .zip(&roles)
        .filter(|(_, r)| **r == Role::AdditionalSubset)
        .map(|(d, _)| weight_of(d))
        .sum();
    let extras: i64 = experiments.iter().map(|e| i64::from(e.weight)).sum();
    let stable = (ISTIO_TOTAL_WEIGHT - i64::from(desired.canary.weight) - extras - kept).max(0);

    let old = std::mem::take(dests);
    for (mut dest, role) in old.into_iter().zip(roles) {
        let weight = match role {
            Role::Canary => i64::from(desired.canary.weight),
            Role::Stable => stable,
            Role::Experiment(i) => i64::from(experiments[i].weight),
            Role::AdditionalSubset | Role::Untouched => {
                dests.push(dest);
                continue;
            }
            Role::Unknown => continue,
        };
        if let Some(obj) = dest.as_object_mut() {
            obj.insert("weight".into(), json!(weight));
        }
        dests.push(dest);
    }
    // Missing ones are appended in the order of the Experiment's templates (the seed's 2.2.6
    // transcript: `mock-server-experiment-stable` before `mock-server-experiment-canary`).
    let missing = experiments
        .iter()
        .zip(&used)
        .filter(|(e, used)| !**used && e.service_name.as_deref().is_some_and(|s| !s.is_empty()))
        .map(|(e, _)| e);
    for e in missing {
        dests.push(json!({
            "destination": { "host": e.service_name.as_deref().unwrap_or_default() },
            "weight": e.weight,
        }));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Route selection
// ---------------------------------------------------------------------------------------------

/// Indexes of the routes whose weights are set.
#[derive(Debug, Default)]
struct Selection {
    /// HTTP routes chosen by `routes` (validated to hold canary and stable).
    primary_http: Vec<usize>,
    /// `primary_http` plus the managed mirror routes.
    http: Vec<usize>,
    tls: Vec<usize>,
    tcp: Vec<usize>,
}

fn select_routes(
    vs: &Value,
    routing: &IstioVirtualService,
    managed_routes: &[ManagedRoute],
) -> Result<Selection, TrafficError> {
    let err = |p| vs_err(vs, p);
    let http = route_list(vs, "http")?;
    let tls = route_list(vs, "tls")?;
    let tcp = route_list(vs, "tcp")?;
    let names = routing.routes.as_deref().unwrap_or_default();
    let tls_wanted = routing.tls_routes.as_deref().unwrap_or_default();
    let tcp_wanted = routing.tcp_routes.as_deref().unwrap_or_default();

    // As Argo: a kind of route the VirtualService lacks is skipped, even when the Rollout names
    // routes of that kind (a TLS-only VirtualService with `routes: [primary]` is weighted on its
    // TLS routes); only a VirtualService with no routes at all is an error.
    if http.is_none() && tls.is_none() && tcp.is_none() {
        return Err(err(Problem::NoRoutes));
    }

    let mut selection = Selection::default();
    if let Some(http) = http {
        selection.primary_http = primary_http_routes(http, names, managed_routes).map_err(err)?;
        selection.http = selection.primary_http.clone();
        // Managed mirror routes carry a copy of the weighted destinations, which must follow.
        for (i, route) in http.iter().enumerate() {
            let mirrors = route.get("mirror").is_some_and(|m| !m.is_null());
            if mirrors && is_managed(route, managed_routes) && !selection.http.contains(&i) {
                selection.http.push(i);
            }
        }
    }
    if let Some(tls) = tls {
        selection.tls = select_tls(tls, tls_wanted).map_err(err)?;
    }
    if let Some(tcp) = tcp {
        selection.tcp = select_tcp(tcp, tcp_wanted).map_err(err)?;
    }
    if selection.primary_http.is_empty() && selection.tls.is_empty() && selection.tcp.is_empty() {
        return Err(err(Problem::NoRouteSelected));
    }
    Ok(selection)
}

/// The weighted HTTP routes: those named, or without names the only non-managed route.
fn primary_http_routes(
    http: &[Value],
    names: &[String],
    managed_routes: &[ManagedRoute],
) -> Result<Vec<usize>, Problem> {
    if names.is_empty() {
        let unmanaged: Vec<usize> = http
            .iter()
            .enumerate()
            .filter(|(_, r)| !is_managed(r, managed_routes))
            .map(|(i, _)| i)
            .collect();
        if unmanaged.len() > 1 {
            return Err(Problem::AmbiguousHttpRoute);
        }
        return Ok(unmanaged);
    }
    let mut indexes = Vec::with_capacity(names.len());
    for name in names {
        let i = http
            .iter()
            .position(|r| route_name(r) == Some(name.as_str()))
            .ok_or_else(|| Problem::HttpRouteNotFound(name.clone()))?;
        if !indexes.contains(&i) {
            indexes.push(i);
        }
    }
    Ok(indexes)
}

/// The port a TLS / TCP route matches when all its match blocks agree on one (a block without
/// a port counts as port 0, like Argo's zero value); `None` when they name several ports.
fn single_port(route: &Value) -> Option<i64> {
    let ports: BTreeSet<i64> = route
        .get("match")
        .and_then(Value::as_array)
        .map(|blocks| {
            blocks
                .iter()
                .map(|b| b.get("port").and_then(Value::as_i64).unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    match ports.len() {
        0 => Some(0),
        1 => ports.into_iter().next(),
        _ => None,
    }
}

/// Indexes of the routes the Rollout names (each `wanted` entry must match at least one), or
/// the only route when none is named. Shared by TLS and TCP routes, which differ only in how a
/// route is matched and which problems are reported.
fn select_named<W>(
    routes: &[Value],
    wanted: &[W],
    matches: impl Fn(&Value, &W) -> bool,
    ambiguous: Problem,
    not_found: impl Fn() -> Problem,
) -> Result<Vec<usize>, Problem> {
    if wanted.is_empty() {
        return match routes.len() {
            0 => Ok(Vec::new()),
            1 => Ok(vec![0]),
            _ => Err(ambiguous),
        };
    }
    let mut indexes = Vec::new();
    for w in wanted {
        let matching: Vec<usize> = routes
            .iter()
            .enumerate()
            .filter(|(_, route)| matches(route, w))
            .map(|(i, _)| i)
            .collect();
        if matching.is_empty() {
            return Err(not_found());
        }
        for i in matching {
            if !indexes.contains(&i) {
                indexes.push(i);
            }
        }
    }
    Ok(indexes)
}

fn select_tls(tls: &[Value], wanted: &[TlsRoute]) -> Result<Vec<usize>, Problem> {
    let matches = |route: &Value, w: &TlsRoute| {
        let want_hosts: BTreeSet<&str> = w
            .sni_hosts
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(String::as_str)
            .collect();
        let hosts: BTreeSet<&str> = route
            .get("match")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|b| b.get("sniHosts").and_then(Value::as_array))
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        single_port(route) == Some(w.port.unwrap_or(0)) && hosts == want_hosts
    };
    select_named(tls, wanted, matches, Problem::AmbiguousTlsRoute, || {
        Problem::NoMatchingTlsRoute
    })
}

fn select_tcp(tcp: &[Value], wanted: &[TcpRoute]) -> Result<Vec<usize>, Problem> {
    let matches = |route: &Value, w: &TcpRoute| single_port(route) == Some(w.port.unwrap_or(0));
    select_named(tcp, wanted, matches, Problem::AmbiguousTcpRoute, || {
        Problem::NoMatchingTcpRoute
    })
}

/// Every weighted (non-mirror) route must reach both versions, otherwise setting a weight
/// would silently send traffic nowhere.
fn validate_selection(vs: &Value, selection: &Selection, split: &Split) -> Result<(), TrafficError> {
    for (key, indexes) in [
        ("http", &selection.primary_http),
        ("tls", &selection.tls),
        ("tcp", &selection.tcp),
    ] {
        let Some(routes) = route_list(vs, key)? else {
            continue;
        };
        for &i in indexes {
            let Some(route) = routes.get(i) else { continue };
            let roles: Vec<Role> = destinations(route)
                .map(|d| classify(d, split, &[], &[]))
                .collect();
            let has_canary = roles.contains(&Role::Canary);
            let has_stable = roles.contains(&Role::Stable);
            let problem = match split {
                Split::Host {
                    canary_service,
                    stable_service,
                } => {
                    if !has_canary {
                        Some(Problem::CanaryServiceNotFound(canary_service.to_string()))
                    } else if !has_stable {
                        Some(Problem::StableServiceNotFound(stable_service.to_string()))
                    } else {
                        None
                    }
                }
                Split::Subset(dr) => {
                    if !has_canary {
                        Some(Problem::CanarySubsetNotFound(dr.canary_subset_name.clone()))
                    } else if !has_stable {
                        Some(Problem::StableSubsetNotFound(dr.stable_subset_name.clone()))
                    } else {
                        None
                    }
                }
            };
            if let Some(problem) = problem {
                return Err(vs_err(vs, problem));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Managed routes (header and mirror)
// ---------------------------------------------------------------------------------------------

/// Applies a `setHeaderRoute` step (Argo's `SetHeaderRoute`): removes any HTTP route with the
/// step's name, then, unless `match` is empty, appends
/// `{name, match:[{headers:{<header>:{exact|regex|prefix}}}], route:[{destination:{host, subset?,
/// port?}, weight:100}]}`. The port is that of the first destination of the weighted route.
/// `canary_host` is the canary Service (host split) or the DestinationRule's `spec.host`
/// ([`destination_rule_host`], subset split, with `canary_subset`). Routes are then reordered.
pub fn set_header_route(
    vs: &Value,
    routing: &IstioVirtualService,
    managed_routes: &[ManagedRoute],
    step: &SetHeaderRoute,
    canary_host: &str,
    canary_subset: Option<&str>,
) -> Result<Value, TrafficError> {
    let name = step
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| vs_err(vs, Problem::MissingRouteName))?;
    let mut out = vs.clone();
    let http = http_required(&mut out).map_err(|p| vs_err(vs, p))?;
    http.retain(|r| route_name(r) != Some(name));
    let matches = step.r#match.as_deref().unwrap_or_default();
    if !matches.is_empty() {
        let names = routing.routes.as_deref().unwrap_or_default();
        // Argo ignores a missing weighted route here and just leaves the port out.
        let port = primary_http_routes(http, names, managed_routes)
            .ok()
            .and_then(|indexes| indexes.first().copied())
            .and_then(|i| http.get(i))
            .and_then(first_destination_port);
        let mut destination = Map::new();
        destination.insert("host".into(), json!(canary_host));
        if let Some(port) = port {
            destination.insert("port".into(), json!({ "number": port }));
        }
        if let Some(subset) = canary_subset.filter(|s| !s.is_empty()) {
            destination.insert("subset".into(), json!(subset));
        }
        http.push(json!({
            "name": name,
            "match": matches.iter().map(header_match).collect::<Vec<_>>(),
            "route": [{ "destination": destination, "weight": 100 }],
        }));
    }
    order_http(http, managed_routes);
    Ok(out)
}

/// Applies a `setMirrorRoute` step (Argo's `SetMirrorRoute`): removes any HTTP route with the
/// step's name, then, unless `match` is empty, prepends `{name, match:[{method?, uri?,
/// headers?}], route:<copy of the weighted route's destinations>, mirror:{host, subset?, port?},
/// mirrorPercentage:{value: percentage (default 100)}}`, and reorders the routes.
pub fn set_mirror_route(
    vs: &Value,
    routing: &IstioVirtualService,
    managed_routes: &[ManagedRoute],
    step: &SetMirrorRoute,
    canary_host: &str,
    canary_subset: Option<&str>,
) -> Result<Value, TrafficError> {
    let mut out = vs.clone();
    let http = http_required(&mut out).map_err(|p| vs_err(vs, p))?;
    http.retain(|r| route_name(r) != Some(step.name.as_str()));
    let matches = step.r#match.as_deref().unwrap_or_default();
    if !matches.is_empty() {
        let names = routing.routes.as_deref().unwrap_or_default();
        let weighted = primary_http_routes(http, names, managed_routes)
            .map_err(|p| vs_err(vs, p))?
            .first()
            .and_then(|&i| http.get(i))
            .ok_or_else(|| vs_err(vs, Problem::NoWeightedRoute))?;
        let port = first_destination_port(weighted);
        let route = match weighted.get("route") {
            Some(route @ Value::Array(_)) => route.clone(),
            _ => {
                return Err(vs_err(
                    vs,
                    Problem::InvalidField {
                        field: "spec.http[].route".into(),
                        expected: "[]interface",
                    },
                ));
            }
        };
        let mut mirror = Map::new();
        mirror.insert("host".into(), json!(canary_host));
        if let Some(subset) = canary_subset.filter(|s| !s.is_empty()) {
            mirror.insert("subset".into(), json!(subset));
        }
        if let Some(port) = port {
            mirror.insert("port".into(), json!({ "number": port }));
        }
        http.insert(
            0,
            json!({
                "name": step.name,
                "match": matches.iter().map(mirror_match).collect::<Vec<_>>(),
                "route": route,
                "mirror": mirror,
                "mirrorPercentage": { "value": step.percentage.unwrap_or(100) },
            }),
        );
    }
    order_http(http, managed_routes);
    Ok(out)
}

/// Deletes every HTTP route named in `names` (Argo's `RemoveManagedRoutes`, called on
/// promotion, abort, unavailable canary and promote-full with the `managedRoutes` names). A
/// VirtualService without `spec.http` is returned unchanged: TLS / TCP routes have no managed
/// routes.
pub fn remove_managed_routes<S: AsRef<str>>(vs: &Value, names: &[S]) -> Result<Value, TrafficError> {
    route_list(vs, "http")?;
    let mut out = vs.clone();
    if let Some(http) = routes_mut(&mut out, "http") {
        http.retain(|r| route_name(r).is_none_or(|n| !names.iter().any(|m| m.as_ref() == n)));
    }
    Ok(out)
}

/// Reorders the HTTP routes: routes named in `managed_routes` first, in that order, then all
/// others in their original order (Istio uses the first matching route, so managed header and
/// mirror routes must precede the catch-all weighted route). No-op without managed routes.
pub fn order_routes(vs: &Value, managed_routes: &[ManagedRoute]) -> Result<Value, TrafficError> {
    route_list(vs, "http")?;
    let mut out = vs.clone();
    if let Some(http) = routes_mut(&mut out, "http") {
        order_http(http, managed_routes);
    }
    Ok(out)
}

fn order_http(http: &mut Vec<Value>, managed_routes: &[ManagedRoute]) {
    if managed_routes.is_empty() {
        return;
    }
    let (mut managed, others): (Vec<Value>, Vec<Value>) = std::mem::take(http)
        .into_iter()
        .partition(|r| is_managed(r, managed_routes));
    for m in managed_routes {
        let mut i = 0;
        while i < managed.len() {
            if route_name(&managed[i]) == Some(m.name.as_str()) {
                http.push(managed.remove(i));
            } else {
                i += 1;
            }
        }
    }
    http.extend(others);
}

fn string_match(m: &StringMatch) -> Value {
    let mut obj = Map::new();
    for (key, value) in [("exact", &m.exact), ("regex", &m.regex), ("prefix", &m.prefix)] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            obj.insert(key.into(), json!(v));
        }
    }
    Value::Object(obj)
}

fn header_match(m: &HeaderRoutingMatch) -> Value {
    let value = m
        .header_value
        .as_ref()
        .map_or_else(|| Value::Object(Map::new()), string_match);
    let mut headers = Map::new();
    headers.insert(m.header_name.clone(), value);
    json!({ "headers": headers })
}

fn mirror_match(m: &RouteMatch) -> Value {
    let mut obj = Map::new();
    if let Some(method) = &m.method {
        obj.insert("method".into(), string_match(method));
    }
    if let Some(path) = &m.path {
        obj.insert("uri".into(), string_match(path));
    }
    if let Some(headers) = &m.headers {
        let headers: Map<String, Value> = headers
            .iter()
            .map(|(k, v)| (k.clone(), string_match(v)))
            .collect();
        obj.insert("headers".into(), Value::Object(headers));
    }
    Value::Object(obj)
}

fn first_destination_port(route: &Value) -> Option<i64> {
    route
        .pointer("/route/0/destination/port/number")
        .and_then(Value::as_i64)
        .filter(|p| *p > 0)
}

// ---------------------------------------------------------------------------------------------
// DestinationRule
// ---------------------------------------------------------------------------------------------

/// Points the DestinationRule's subsets at the ReplicaSets (Argo's `UpdateHash`) and returns the
/// new object: annotation `argo-rollouts.argoproj.io/managed-by-rollouts: <rollout>`, label
/// `rollouts-pod-template-hash` of subset `canarySubsetName` = `canary_hash`, of
/// `stableSubsetName` = `stable_hash`, of each experiment subset (`extra_subsets`: subset name =
/// experiment Service, hash; appended when missing) = its hash. An empty hash removes the
/// label. Everything else — other subsets, `host`, `trafficPolicy`, per-subset policies,
/// unknown keys — is kept. (Argo appears to drop subsets it does not manage; keeping them is
/// deliberate. Like Argo, missing canary / stable subsets are not created.)
pub fn update_destination_rule(
    dr: &Value,
    spec: &IstioDestinationRule,
    rollout_name: &str,
    canary_hash: &str,
    stable_hash: &str,
    extra_subsets: &[(&str, &str)],
) -> Result<Value, TrafficError> {
    let name = object_name(dr).unwrap_or(&spec.name).to_string();
    let err = |p| TrafficError::new(ObjectKind::DestinationRule, name.clone(), p);
    let mut out = dr.clone();
    let root = out
        .as_object_mut()
        .ok_or_else(|| err(invalid("(root)", "object")))?;
    object_entry(root, "metadata")
        .and_then(|m| object_entry(m, "annotations"))
        .ok_or_else(|| err(invalid("metadata.annotations", "map[string]string")))?
        .insert(keys::MANAGED_BY_ROLLOUTS.into(), json!(rollout_name));

    let spec_obj = object_entry(root, "spec").ok_or_else(|| err(invalid("spec", "object")))?;
    let needs_new = extra_subsets.iter().any(|(_, hash)| !hash.is_empty());
    if spec_obj.get("subsets").is_none_or(Value::is_null) {
        if !needs_new {
            return Ok(out);
        }
        spec_obj.insert("subsets".into(), Value::Array(Vec::new()));
    }
    let subsets = spec_obj
        .get_mut("subsets")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| err(invalid("spec.subsets", "[]interface")))?;
    let mut seen = vec![false; extra_subsets.len()];
    for subset in subsets.iter_mut() {
        let Some(subset_name) = subset.get("name").and_then(Value::as_str) else {
            continue;
        };
        let hash = if subset_name == spec.canary_subset_name {
            Some(canary_hash)
        } else if subset_name == spec.stable_subset_name {
            Some(stable_hash)
        } else if let Some(i) = extra_subsets.iter().position(|(n, _)| *n == subset_name) {
            seen[i] = true;
            Some(extra_subsets[i].1)
        } else {
            // Not ours: left exactly as it is.
            None
        };
        if let Some(hash) = hash {
            set_hash_label(subset, hash);
        }
    }
    for ((subset_name, hash), seen) in extra_subsets.iter().zip(seen) {
        if !seen && !hash.is_empty() {
            subsets.push(json!({
                "name": subset_name,
                "labels": { keys::POD_TEMPLATE_HASH: hash },
            }));
        }
    }
    Ok(out)
}

/// Drops the subsets named in `names` from the DestinationRule (experiment subsets whose
/// Experiment no longer routes traffic); everything else is kept as it is.
pub fn remove_subsets<S: AsRef<str>>(dr: &Value, names: &[S]) -> Value {
    let mut out = dr.clone();
    if let Some(subsets) = out.pointer_mut("/spec/subsets").and_then(Value::as_array_mut) {
        subsets.retain(|s| {
            s.get("name")
                .and_then(Value::as_str)
                .is_none_or(|n| !names.iter().any(|r| r.as_ref() == n))
        });
    }
    out
}

/// Hands a DestinationRule back to its owner when the Rollout is deleted or stops using it:
/// removes the managed-by annotation and the `rollouts-pod-template-hash` label of every subset.
pub fn release_destination_rule(dr: &Value) -> Value {
    let mut out = dr.clone();
    if let Some(annotations) = out
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(keys::MANAGED_BY_ROLLOUTS);
    }
    if let Some(subsets) = out.pointer_mut("/spec/subsets").and_then(Value::as_array_mut) {
        for subset in subsets {
            set_hash_label(subset, "");
        }
    }
    out
}

fn set_hash_label(subset: &mut Value, hash: &str) {
    let Some(subset) = subset.as_object_mut() else {
        return;
    };
    if hash.is_empty() {
        if let Some(labels) = subset.get_mut("labels").and_then(Value::as_object_mut) {
            labels.remove(keys::POD_TEMPLATE_HASH);
        }
    } else if let Some(labels) = object_entry(subset, "labels") {
        labels.insert(keys::POD_TEMPLATE_HASH.into(), json!(hash));
    }
}

// ---------------------------------------------------------------------------------------------
// JSON helpers
// ---------------------------------------------------------------------------------------------

fn object_name(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/name").and_then(Value::as_str)
}

fn vs_err(vs: &Value, problem: Problem) -> TrafficError {
    TrafficError::new(
        ObjectKind::VirtualService,
        object_name(vs).unwrap_or_default(),
        problem,
    )
}

fn invalid(field: &str, expected: &'static str) -> Problem {
    Problem::InvalidField {
        field: field.into(),
        expected,
    }
}

/// `spec.<key>` of a VirtualService: `None` when absent or null, an error when not a list.
fn route_list<'v>(vs: &'v Value, key: &str) -> Result<Option<&'v [Value]>, TrafficError> {
    match vs.get("spec").and_then(|s| s.get(key)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(routes)) => Ok(Some(routes)),
        Some(_) => Err(vs_err(vs, invalid(&format!("spec.{key}"), "[]interface"))),
    }
}

fn routes_mut<'v>(vs: &'v mut Value, key: &str) -> Option<&'v mut Vec<Value>> {
    vs.get_mut("spec")?.get_mut(key)?.as_array_mut()
}

fn http_required(vs: &mut Value) -> Result<&mut Vec<Value>, Problem> {
    match vs.get_mut("spec").and_then(|s| s.get_mut("http")) {
        None | Some(Value::Null) => Err(Problem::SpecHttpNotFound),
        Some(Value::Array(routes)) => Ok(routes),
        Some(_) => Err(invalid("spec.http", "[]interface")),
    }
}

/// `obj[key]` as an object, created (or replaced when not an object) as needed.
fn object_entry<'m>(obj: &'m mut Map<String, Value>, key: &str) -> Option<&'m mut Map<String, Value>> {
    let entry = obj.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut()
}

fn route_name(route: &Value) -> Option<&str> {
    route
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
}

fn is_managed(route: &Value, managed_routes: &[ManagedRoute]) -> bool {
    route_name(route).is_some_and(|n| managed_routes.iter().any(|m| m.name == n))
}

fn destinations(route: &Value) -> impl Iterator<Item = &Value> {
    route.get("route").and_then(Value::as_array).into_iter().flatten()
}

fn host_of(dest: &Value) -> &str {
    dest.pointer("/destination/host")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// A destination's weight; Istio omits it for a single destination, which Argo reads as 0.
fn weight_of(dest: &Value) -> i64 {
    dest.get("weight")
        .and_then(|w| w.as_i64().or_else(|| w.as_f64().map(|f| f.round() as i64)))
        .unwrap_or(0)
}

fn clamp_weight(weight: i64) -> i32 {
    i32::try_from(weight.clamp(0, i64::from(i32::MAX))).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use shared_types::rollout::{IstioTrafficRouting, Rollout};

    use super::*;

    const MANIFEST_13: &str =
        include_str!("../../../examples/seed/manifest13-canary-with-istio-virtual-service-test-case.yaml");
    const MANIFEST_16: &str =
        include_str!("../../../examples/seed/manifest16-canary-with-istio-destination-rule-test-case.yaml");

    fn doc(yaml: &str, kind: &str) -> Value {
        let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).unwrap();
        docs.into_iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in manifest"))
    }

    fn istio_of(yaml: &str) -> IstioTrafficRouting {
        let ro: Rollout = serde_json::from_value(doc(yaml, "Rollout")).unwrap();
        ro.spec
            .strategy
            .canary
            .unwrap()
            .traffic_routing
            .unwrap()
            .istio
            .unwrap()
    }

    fn dest(service: &str, weight: i32, hash: &str) -> WeightDestination {
        WeightDestination {
            weight,
            service_name: Some(service.into()),
            pod_template_hash: Some(hash.into()),
        }
    }

    fn desired(canary: i32, additional: Vec<WeightDestination>) -> DesiredWeights {
        DesiredWeights::new(
            100,
            dest("mock-server-canary", canary, "new"),
            dest("mock-server-stable", 0, "old"),
            additional,
        )
    }

    fn host_split<'a>() -> Split<'a> {
        Split::Host {
            canary_service: "mock-server-canary",
            stable_service: "mock-server-stable",
        }
    }

    fn routing(routes: &[&str]) -> IstioVirtualService {
        IstioVirtualService {
            name: "vs".into(),
            routes: (!routes.is_empty()).then(|| routes.iter().map(|r| r.to_string()).collect()),
            ..Default::default()
        }
    }

    fn managed(names: &[&str]) -> Vec<ManagedRoute> {
        names
            .iter()
            .map(|n| ManagedRoute { name: n.to_string() })
            .collect()
    }

    /// `(host, subset, weight)` of every destination of `spec.<key>[index]`.
    fn dests(vs: &Value, key: &str, index: usize) -> Vec<(String, Option<String>, i64)> {
        vs["spec"][key][index]["route"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["destination"]["host"].as_str().unwrap().to_string(),
                    d["destination"]["subset"].as_str().map(String::from),
                    d["weight"].as_i64().unwrap(),
                )
            })
            .collect()
    }

    fn hw(host: &str, weight: i64) -> (String, Option<String>, i64) {
        (host.to_string(), None, weight)
    }

    fn names(vs: &Value) -> Vec<Option<String>> {
        vs["spec"]["http"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().map(String::from))
            .collect()
    }

    fn vs_two_services() -> Value {
        json!({
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "VirtualService",
            "metadata": { "name": "vs", "namespace": "default" },
            "spec": {
                "hosts": ["mock-server"],
                "http": [{
                    "name": "primary",
                    "route": [
                        { "destination": { "host": "mock-server-stable", "port": { "number": 8080 } }, "weight": 100 },
                        { "destination": { "host": "mock-server-canary", "port": { "number": 8080 } }, "weight": 0 },
                    ],
                }],
            },
        })
    }

    // ---- weights: host split -----------------------------------------------------------------

    /// Seed [Manifest 13]: the weights follow the steps 20 → 40 → 100 and go back to 100/0
    /// after promotion; nothing else in the object changes.
    #[test]
    fn seed_manifest_13_host_split_sequence() {
        let original = doc(MANIFEST_13, "VirtualService");
        let istio = istio_of(MANIFEST_13);
        let routing = istio.virtual_service.as_ref().unwrap();
        let mut vs = original.clone();
        for (canary, stable) in [(0, 100), (20, 80), (40, 60), (100, 0), (0, 100)] {
            vs = set_weights_host_split(
                &vs,
                routing,
                &[],
                "mock-server-canary",
                "mock-server-stable",
                &desired(canary, vec![]),
            )
            .unwrap();
            let mut expected = original.clone();
            expected["spec"]["http"][0]["route"][0]["weight"] = json!(stable);
            expected["spec"]["http"][0]["route"][1]["weight"] = json!(canary);
            assert_eq!(vs, expected, "canary weight {canary}");

            let read = current_weights(&vs, routing, &[], &host_split()).unwrap();
            assert_eq!((read.canary.weight, read.stable.weight), (canary, stable));
            assert_eq!(read.canary.service_name.as_deref(), Some("mock-server-canary"));
            assert_eq!(read.additional, None);
        }
        assert_eq!(vs, original);
    }

    #[test]
    fn fqdn_hosts_are_matched_by_their_first_label() {
        let mut vs = vs_two_services();
        vs["spec"]["http"][0]["route"][0]["destination"]["host"] =
            json!("mock-server-stable.default.svc.cluster.local");
        vs["spec"]["http"][0]["route"][1]["destination"]["host"] = json!("mock-server-canary.default");
        let out = set_weights(
            &vs,
            &routing(&["primary"]),
            &[],
            &host_split(),
            &desired(30, vec![]),
        )
        .unwrap();
        assert_eq!(
            dests(&out, "http", 0),
            vec![
                hw("mock-server-stable.default.svc.cluster.local", 70),
                hw("mock-server-canary.default", 30),
            ]
        );
        assert_eq!(short_host("reviews.ns.svc.cluster.local"), "reviews");
        assert_eq!(short_host("reviews"), "reviews");
        assert_eq!(short_host(".weird"), "");
    }

    #[test]
    fn unknown_fields_survive() {
        let vs = json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {
                "name": "vs", "namespace": "default", "resourceVersion": "42",
                "labels": { "team": "a" }, "annotations": { "note": "x" },
            },
            "spec": {
                "hosts": ["mock-server"],
                "gateways": ["mesh", "edge"],
                "exportTo": ["."],
                "x-future-field": { "nested": [1, 2, 3] },
                "http": [{
                    "name": "primary",
                    "match": [{ "uri": { "prefix": "/api" } }],
                    "retries": { "attempts": 3, "perTryTimeout": "2s" },
                    "timeout": "10s",
                    "fault": { "delay": { "fixedDelay": "1s", "percentage": { "value": 0.5 } } },
                    "headers": { "request": { "set": { "x-env": "prod" } } },
                    "route": [
                        {
                            "destination": { "host": "mock-server-stable", "port": { "number": 80 } },
                            "weight": 100,
                            "headers": { "response": { "add": { "x-version": "stable" } } },
                        },
                        { "destination": { "host": "mock-server-canary", "port": { "number": 80 } } },
                    ],
                }],
            },
            "status": { "observedGeneration": 3 },
        });
        let out = set_weights(&vs, &routing(&[]), &[], &host_split(), &desired(25, vec![])).unwrap();
        let mut expected = vs.clone();
        expected["spec"]["http"][0]["route"][0]["weight"] = json!(75);
        expected["spec"]["http"][0]["route"][1]["weight"] = json!(25);
        assert_eq!(out, expected);
    }

    #[test]
    fn several_named_routes() {
        let route = |name: &str| {
            json!({
                "name": name,
                "route": [
                    { "destination": { "host": "mock-server-stable" }, "weight": 100 },
                    { "destination": { "host": "mock-server-canary" }, "weight": 0 },
                ],
            })
        };
        let other =
            json!({ "name": "other", "route": [{ "destination": { "host": "legacy" }, "weight": 100 }] });
        let vs = json!({
            "metadata": { "name": "vs" },
            "spec": { "http": [route("primary"), other.clone(), route("secondary")] },
        });
        let out = set_weights(
            &vs,
            &routing(&["primary", "secondary"]),
            &[],
            &host_split(),
            &desired(10, vec![]),
        )
        .unwrap();
        let expected = vec![hw("mock-server-stable", 90), hw("mock-server-canary", 10)];
        assert_eq!(dests(&out, "http", 0), expected);
        assert_eq!(dests(&out, "http", 2), expected);
        assert_eq!(out["spec"]["http"][1], other);
    }

    #[test]
    fn omitted_routes_use_the_only_non_managed_route() {
        // Unnamed single route.
        let mut vs = vs_two_services();
        vs["spec"]["http"][0].as_object_mut().unwrap().remove("name");
        let out = set_weights(&vs, &routing(&[]), &[], &host_split(), &desired(50, vec![])).unwrap();
        assert_eq!(
            dests(&out, "http", 0),
            vec![hw("mock-server-stable", 50), hw("mock-server-canary", 50)]
        );

        // A named single route too.
        let out = set_weights(
            &vs_two_services(),
            &routing(&[]),
            &[],
            &host_split(),
            &desired(50, vec![]),
        );
        assert!(out.is_ok());

        // Two non-managed routes: ambiguous.
        let mut two = vs.clone();
        let copy = two["spec"]["http"][0].clone();
        two["spec"]["http"].as_array_mut().unwrap().push(copy);
        let err = set_weights(&two, &routing(&[]), &[], &host_split(), &desired(50, vec![])).unwrap_err();
        assert_eq!(err.problem, Problem::AmbiguousHttpRoute);

        // A managed header route next to it does not count.
        let with_header = set_header_route(
            &vs,
            &routing(&[]),
            &managed(&["header"]),
            &SetHeaderRoute {
                name: Some("header".into()),
                r#match: Some(vec![HeaderRoutingMatch {
                    header_name: "x-canary".into(),
                    header_value: Some(StringMatch {
                        exact: Some("yes".into()),
                        ..Default::default()
                    }),
                }]),
            },
            "mock-server-canary",
            None,
        )
        .unwrap();
        let out = set_weights(
            &with_header,
            &routing(&[]),
            &managed(&["header"]),
            &host_split(),
            &desired(20, vec![]),
        )
        .unwrap();
        assert_eq!(names(&out), vec![Some("header".into()), None]);
        assert_eq!(
            dests(&out, "http", 1),
            vec![hw("mock-server-stable", 80), hw("mock-server-canary", 20)]
        );
        // The header route keeps sending everything to the canary.
        assert_eq!(dests(&out, "http", 0), vec![hw("mock-server-canary", 100)]);
    }

    #[test]
    fn errors_name_the_virtual_service() {
        let vs = vs_two_services();
        let err =
            set_weights(&vs, &routing(&["nope"]), &[], &host_split(), &desired(10, vec![])).unwrap_err();
        assert_eq!(err.problem, Problem::HttpRouteNotFound("nope".into()));
        assert_eq!(
            err.to_string(),
            "VirtualService `vs`: HTTP Route 'nope' is not found in the defined Virtual Service."
        );

        let split = Split::Host {
            canary_service: "other-canary",
            stable_service: "mock-server-stable",
        };
        let err = set_weights(&vs, &routing(&["primary"]), &[], &split, &desired(10, vec![])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "VirtualService `vs`: Canary Service 'other-canary' not found in route"
        );

        let split = Split::Host {
            canary_service: "mock-server-canary",
            stable_service: "other-stable",
        };
        let err = set_weights(&vs, &routing(&["primary"]), &[], &split, &desired(10, vec![])).unwrap_err();
        assert_eq!(err.problem, Problem::StableServiceNotFound("other-stable".into()));

        let no_http = json!({ "metadata": { "name": "vs" }, "spec": { "hosts": ["x"] } });
        let err = set_weights(&no_http, &routing(&[]), &[], &host_split(), &desired(10, vec![])).unwrap_err();
        assert_eq!(err.problem, Problem::NoRoutes);

        let bad = json!({ "metadata": { "name": "vs" }, "spec": { "http": { "not": "a list" } } });
        let err = set_weights(&bad, &routing(&[]), &[], &host_split(), &desired(10, vec![])).unwrap_err();
        assert!(matches!(err.problem, Problem::InvalidField { .. }));

        let empty = json!({ "metadata": { "name": "vs" }, "spec": { "http": [] } });
        let err = set_weights(&empty, &routing(&[]), &[], &host_split(), &desired(10, vec![])).unwrap_err();
        assert_eq!(err.problem, Problem::NoRouteSelected);
    }

    #[test]
    fn remove_subsets_drops_only_the_named_ones() {
        let dr = json!({ "spec": { "host": "h", "subsets": [
            { "name": "stable" }, { "name": "exp-a", "labels": { "x": "y" } }, { "labels": {} }, { "name": "other" }
        ] } });
        let out = remove_subsets(&dr, &["exp-a", "missing"]);
        assert_eq!(
            out["spec"]["subsets"],
            json!([{ "name": "stable" }, { "labels": {} }, { "name": "other" }])
        );
        assert_eq!(
            remove_subsets(&json!({ "spec": {} }), &["x"]),
            json!({ "spec": {} })
        );
    }

    #[test]
    fn experiment_destinations() {
        let mut vs = vs_two_services();
        vs["spec"]["http"][0]["route"].as_array_mut().unwrap().extend([
            json!({ "destination": { "host": "exp-b" }, "weight": 0 }),
            json!({ "destination": { "host": "someone-else" }, "weight": 0 }),
        ]);
        let d = desired(
            20,
            vec![
                dest("exp-c", 5, "h3"),
                dest("exp-b", 10, "h2"),
                dest("exp-a", 5, "h1"),
            ],
        );
        assert_eq!(d.stable.weight, 60);
        let out = set_weights(&vs, &routing(&["primary"]), &[], &host_split(), &d).unwrap();
        // Existing experiment updated in place, unknown destination deleted, missing ones
        // appended in template order; the stable gets the rest.
        assert_eq!(
            dests(&out, "http", 0),
            vec![
                hw("mock-server-stable", 60),
                hw("mock-server-canary", 20),
                hw("exp-b", 10),
                hw("exp-c", 5),
                hw("exp-a", 5),
            ]
        );
        assert_eq!(
            out["spec"]["http"][0]["route"][4],
            json!({ "destination": { "host": "exp-a" }, "weight": 5 })
        );
        let read = current_weights(&out, &routing(&["primary"]), &[], &host_split()).unwrap();
        assert_eq!(
            read.additional.unwrap().iter().map(|a| a.weight).sum::<i32>(),
            20,
            "experiments are read back as additional"
        );

        // The experiment is over: its destinations go away.
        let out = set_weights(
            &out,
            &routing(&["primary"]),
            &[],
            &host_split(),
            &desired(20, vec![]),
        )
        .unwrap();
        assert_eq!(
            dests(&out, "http", 0),
            vec![hw("mock-server-stable", 80), hw("mock-server-canary", 20)]
        );

        // Over-subscribed: the stable is floored at 0.
        let out = set_weights(
            &vs,
            &routing(&["primary"]),
            &[],
            &host_split(),
            &desired(90, vec![dest("exp-b", 30, "h")]),
        )
        .unwrap();
        assert_eq!(dests(&out, "http", 0)[0], hw("mock-server-stable", 0));
    }

    // ---- weights: TLS and TCP ------------------------------------------------------------------

    fn l4_route(port: Option<i64>, sni: &[&str], stable: i64) -> Value {
        let mut block = Map::new();
        if let Some(port) = port {
            block.insert("port".into(), json!(port));
        }
        if !sni.is_empty() {
            block.insert("sniHosts".into(), json!(sni));
        }
        json!({
            "match": [block],
            "route": [
                { "destination": { "host": "mock-server-stable", "port": { "number": 443 } }, "weight": stable },
                { "destination": { "host": "mock-server-canary", "port": { "number": 443 } }, "weight": 100 - stable },
            ],
        })
    }

    #[test]
    fn tls_routes_by_port_and_sni_hosts() {
        let vs = json!({
            "metadata": { "name": "vs" },
            "spec": { "tls": [
                l4_route(Some(443), &["a.example.com", "b.example.com"], 100),
                l4_route(Some(443), &["c.example.com"], 100),
                l4_route(Some(8443), &["a.example.com", "b.example.com"], 100),
            ] },
        });
        let r = IstioVirtualService {
            name: "vs".into(),
            tls_routes: Some(vec![TlsRoute {
                port: Some(443),
                sni_hosts: Some(vec!["b.example.com".into(), "a.example.com".into()]),
            }]),
            ..Default::default()
        };
        let out = set_weights(&vs, &r, &[], &host_split(), &desired(30, vec![])).unwrap();
        assert_eq!(
            dests(&out, "tls", 0),
            vec![hw("mock-server-stable", 70), hw("mock-server-canary", 30)]
        );
        assert_eq!(out["spec"]["tls"][1], vs["spec"]["tls"][1]);
        assert_eq!(out["spec"]["tls"][2], vs["spec"]["tls"][2]);
        let read = current_weights(&out, &r, &[], &host_split()).unwrap();
        assert_eq!((read.canary.weight, read.stable.weight), (30, 70));

        let missing = IstioVirtualService {
            tls_routes: Some(vec![TlsRoute {
                port: Some(443),
                sni_hosts: Some(vec!["z.example.com".into()]),
            }]),
            ..r.clone()
        };
        let err = set_weights(&vs, &missing, &[], &host_split(), &desired(30, vec![])).unwrap_err();
        assert_eq!(err.problem, Problem::NoMatchingTlsRoute);

        // Without tlsRoutes there must be exactly one TLS route.
        let err = set_weights(&vs, &routing(&[]), &[], &host_split(), &desired(30, vec![])).unwrap_err();
        assert_eq!(err.problem, Problem::AmbiguousTlsRoute);

        // tlsRoutes listed but no spec.tls: skipped, the HTTP route is weighted.
        let http_only = vs_two_services();
        let out = set_weights(&http_only, &r, &[], &host_split(), &desired(30, vec![])).unwrap();
        assert_eq!(
            dests(&out, "http", 0),
            vec![hw("mock-server-stable", 70), hw("mock-server-canary", 30)]
        );
    }

    /// Argo's `istio-host-only-tls-split` case: the Rollout names an HTTP route, the
    /// VirtualService has only TLS routes; the TLS route is weighted and nothing fails.
    #[test]
    fn tls_only_virtual_service_ignores_named_http_routes() {
        let vs = json!({
            "metadata": { "name": "vs" },
            "spec": { "tls": [l4_route(Some(443), &["a.example.com"], 100)] },
        });
        let r = IstioVirtualService {
            name: "vs".into(),
            routes: Some(vec!["primary".into()]),
            tls_routes: Some(vec![TlsRoute {
                port: Some(443),
                sni_hosts: Some(vec!["a.example.com".into()]),
            }]),
            ..Default::default()
        };
        let out = set_weights(&vs, &r, &[], &host_split(), &desired(20, vec![])).unwrap();
        assert_eq!(
            dests(&out, "tls", 0),
            vec![hw("mock-server-stable", 80), hw("mock-server-canary", 20)]
        );
        let restored = restore_stable(&out, &r, &[], &host_split()).unwrap();
        assert_eq!(
            dests(&restored, "tls", 0),
            vec![hw("mock-server-stable", 100), hw("mock-server-canary", 0)]
        );
        let none = json!({ "metadata": { "name": "vs" }, "spec": { "hosts": ["x"] } });
        let err = set_weights(&none, &r, &[], &host_split(), &desired(20, vec![])).unwrap_err();
        assert_eq!(err.problem, Problem::NoRoutes);
        assert_eq!(
            err.to_string(),
            "VirtualService `vs`: Unable to get any of the HTTP, TCP or TLS routes for the Istio VirtualService"
        );
    }

    #[test]
    fn tcp_routes_by_port() {
        let mut multi_port = l4_route(Some(3000), &[], 100);
        multi_port["match"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "port": 3001 }));
        let vs = json!({
            "metadata": { "name": "vs" },
            "spec": { "tcp": [l4_route(Some(3000), &[], 100), multi_port.clone(), l4_route(Some(4000), &[], 100)] },
        });
        let r = IstioVirtualService {
            name: "vs".into(),
            tcp_routes: Some(vec![TcpRoute { port: Some(3000) }]),
            ..Default::default()
        };
        let out = set_weights(&vs, &r, &[], &host_split(), &desired(40, vec![])).unwrap();
        assert_eq!(
            dests(&out, "tcp", 0),
            vec![hw("mock-server-stable", 60), hw("mock-server-canary", 40)]
        );
        // A route matching several ports never matches.
        assert_eq!(out["spec"]["tcp"][1], multi_port);
        assert_eq!(out["spec"]["tcp"][2], vs["spec"]["tcp"][2]);

        let err = set_weights(
            &vs,
            &IstioVirtualService {
                tcp_routes: Some(vec![TcpRoute { port: Some(5000) }]),
                ..r.clone()
            },
            &[],
            &host_split(),
            &desired(40, vec![]),
        )
        .unwrap_err();
        assert_eq!(err.problem, Problem::NoMatchingTcpRoute);

        // Single TCP route, none listed: it is used. HTTP and TCP together: both set.
        let mut both = vs_two_services();
        both["spec"]["tcp"] = json!([l4_route(None, &[], 100)]);
        let out = set_weights(
            &both,
            &routing(&["primary"]),
            &[],
            &host_split(),
            &desired(40, vec![]),
        )
        .unwrap();
        assert_eq!(dests(&out, "tcp", 0)[1], hw("mock-server-canary", 40));
        assert_eq!(dests(&out, "http", 0)[1], hw("mock-server-canary", 40));

        let err = set_weights(&vs, &routing(&[]), &[], &host_split(), &desired(40, vec![])).unwrap_err();
        assert_eq!(err.problem, Problem::AmbiguousTcpRoute);
    }

    // ---- weights: subset split -----------------------------------------------------------------

    /// Seed [Manifest 16]: the DestinationRule subsets get the hashes, the VirtualService
    /// weights move by subset, and after promotion both subsets carry the same hash.
    #[test]
    fn seed_manifest_16_subset_split() {
        let vs = doc(MANIFEST_16, "VirtualService");
        let dr = doc(MANIFEST_16, "DestinationRule");
        let istio = istio_of(MANIFEST_16);
        let routing = istio.virtual_service.as_ref().unwrap();
        let dr_spec = istio.destination_rule.as_ref().unwrap();

        let updated = update_destination_rule(&dr, dr_spec, "mock-server", "new", "old", &[]).unwrap();
        assert_eq!(
            updated,
            json!({
                "apiVersion": "networking.istio.io/v1beta1",
                "kind": "DestinationRule",
                "metadata": {
                    "name": "mock-server",
                    "annotations": { "argo-rollouts.argoproj.io/managed-by-rollouts": "mock-server" },
                },
                "spec": {
                    "host": "mock-server",
                    "subsets": [
                        { "name": "stable", "labels": { "app": "mock-server", "rollouts-pod-template-hash": "old" } },
                        { "name": "canary", "labels": { "app": "mock-server", "rollouts-pod-template-hash": "new" } },
                    ],
                },
            })
        );

        let mut current = vs.clone();
        for (canary, stable) in [(20, 80), (40, 60), (100, 0), (0, 100)] {
            current =
                set_weights_subset_split(&current, routing, &[], dr_spec, &desired(canary, vec![])).unwrap();
            let mut expected = vs.clone();
            expected["spec"]["http"][0]["route"][0]["weight"] = json!(stable);
            expected["spec"]["http"][0]["route"][1]["weight"] = json!(canary);
            assert_eq!(current, expected);
            let read = current_weights(&current, routing, &[], &Split::Subset(dr_spec)).unwrap();
            assert_eq!((read.canary.weight, read.stable.weight), (canary, stable));
        }

        let promoted = update_destination_rule(&updated, dr_spec, "mock-server", "new", "new", &[]).unwrap();
        for subset in promoted["spec"]["subsets"].as_array().unwrap() {
            assert_eq!(subset["labels"]["rollouts-pod-template-hash"], "new");
        }

        // Subset missing from the route.
        let dr_other = IstioDestinationRule {
            canary_subset_name: "preview".into(),
            ..dr_spec.clone()
        };
        let err = set_weights_subset_split(&vs, routing, &[], &dr_other, &desired(20, vec![])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "VirtualService `mock-server`: Canary DestinationRule subset 'preview' not found in route"
        );
        let dr_other = IstioDestinationRule {
            stable_subset_name: "prod".into(),
            ..dr_spec.clone()
        };
        let err = set_weights_subset_split(&vs, routing, &[], &dr_other, &desired(20, vec![])).unwrap_err();
        assert_eq!(err.problem, Problem::StableSubsetNotFound("prod".into()));
    }

    #[test]
    fn additional_subsets_keep_their_weight() {
        let vs = json!({
            "metadata": { "name": "vs" },
            "spec": { "http": [{ "name": "primary", "route": [
                { "destination": { "host": "svc", "subset": "stable" }, "weight": 70 },
                { "destination": { "host": "svc", "subset": "canary" }, "weight": 0 },
                { "destination": { "host": "svc", "subset": "preview" }, "weight": 30 },
                { "destination": { "host": "svc", "subset": "stray" }, "weight": 0 },
            ] }] },
        });
        let dr = IstioDestinationRule {
            name: "dr".into(),
            canary_subset_name: "canary".into(),
            stable_subset_name: "stable".into(),
            additional_subset_names: Some(vec!["preview".into()]),
        };
        let out =
            set_weights_subset_split(&vs, &routing(&["primary"]), &[], &dr, &desired(20, vec![])).unwrap();
        let sub = |s: &str, w| ("svc".to_string(), Some(s.to_string()), w);
        assert_eq!(
            dests(&out, "http", 0),
            vec![sub("stable", 50), sub("canary", 20), sub("preview", 30)]
        );
    }

    // ---- header and mirror routes ----------------------------------------------------------------

    fn header_step(name: &str, value: Option<StringMatch>) -> SetHeaderRoute {
        SetHeaderRoute {
            name: Some(name.into()),
            r#match: Some(vec![HeaderRoutingMatch {
                header_name: "version".into(),
                header_value: value,
            }]),
        }
    }

    #[test]
    fn header_route_is_appended_then_ordered() {
        let vs = vs_two_services();
        let managed = managed(&["set-header-1"]);
        let step = header_step(
            "set-header-1",
            Some(StringMatch {
                exact: Some("v2".into()),
                ..Default::default()
            }),
        );
        let out = set_header_route(
            &vs,
            &routing(&["primary"]),
            &managed,
            &step,
            "mock-server-canary",
            None,
        )
        .unwrap();
        assert_eq!(
            names(&out),
            vec![Some("set-header-1".into()), Some("primary".into())]
        );
        assert_eq!(
            out["spec"]["http"][0],
            json!({
                "name": "set-header-1",
                "match": [{ "headers": { "version": { "exact": "v2" } } }],
                "route": [{
                    "destination": { "host": "mock-server-canary", "port": { "number": 8080 } },
                    "weight": 100,
                }],
            })
        );
        assert_eq!(out["spec"]["http"][1], vs["spec"]["http"][0]);

        // Applying again replaces rather than duplicates; a regex value.
        let step2 = header_step(
            "set-header-1",
            Some(StringMatch {
                regex: Some("v[23]".into()),
                ..Default::default()
            }),
        );
        let again = set_header_route(
            &out,
            &routing(&["primary"]),
            &managed,
            &step2,
            "mock-server-canary",
            None,
        )
        .unwrap();
        assert_eq!(again["spec"]["http"].as_array().unwrap().len(), 2);
        assert_eq!(
            again["spec"]["http"][0]["match"],
            json!([{ "headers": { "version": { "regex": "v[23]" } } }])
        );

        // Empty match removes the route.
        let remove = SetHeaderRoute {
            name: Some("set-header-1".into()),
            r#match: Some(vec![]),
        };
        let removed = set_header_route(
            &again,
            &routing(&["primary"]),
            &managed,
            &remove,
            "mock-server-canary",
            None,
        )
        .unwrap();
        assert_eq!(removed, vs);

        // No name.
        let err = set_header_route(
            &vs,
            &routing(&["primary"]),
            &managed,
            &SetHeaderRoute::default(),
            "mock-server-canary",
            None,
        )
        .unwrap_err();
        assert_eq!(err.problem, Problem::MissingRouteName);

        // No spec.http.
        let err = set_header_route(
            &json!({ "metadata": { "name": "vs" }, "spec": {} }),
            &routing(&[]),
            &managed,
            &step,
            "c",
            None,
        )
        .unwrap_err();
        assert_eq!(err.problem, Problem::SpecHttpNotFound);
    }

    #[test]
    fn header_route_in_subset_mode_uses_the_destination_rule_host() {
        let vs = doc(MANIFEST_16, "VirtualService");
        let dr = doc(MANIFEST_16, "DestinationRule");
        let host = destination_rule_host(&dr).unwrap();
        let out = set_header_route(
            &vs,
            &routing(&["primary"]),
            &managed(&["hdr"]),
            &header_step(
                "hdr",
                Some(StringMatch {
                    prefix: Some("v".into()),
                    ..Default::default()
                }),
            ),
            host,
            Some("canary"),
        )
        .unwrap();
        assert_eq!(
            out["spec"]["http"][0]["route"],
            json!([{ "destination": { "host": "mock-server", "subset": "canary" }, "weight": 100 }])
        );
        assert_eq!(
            out["spec"]["http"][0]["match"],
            json!([{ "headers": { "version": { "prefix": "v" } } }])
        );
    }

    #[test]
    fn mirror_route_is_prepended_ordered_and_weighted() {
        let vs = set_weights(
            &vs_two_services(),
            &routing(&["primary"]),
            &[],
            &host_split(),
            &desired(20, vec![]),
        )
        .unwrap();
        let managed = managed(&["header", "mirror"]);
        let r = routing(&["primary"]);
        let with_header = set_header_route(
            &vs,
            &r,
            &managed,
            &header_step(
                "header",
                Some(StringMatch {
                    exact: Some("v2".into()),
                    ..Default::default()
                }),
            ),
            "mock-server-canary",
            None,
        )
        .unwrap();
        let step = SetMirrorRoute {
            name: "mirror".into(),
            r#match: Some(vec![RouteMatch {
                method: Some(StringMatch {
                    exact: Some("GET".into()),
                    ..Default::default()
                }),
                path: Some(StringMatch {
                    prefix: Some("/api".into()),
                    ..Default::default()
                }),
                headers: Some(
                    [(
                        "x-debug".to_string(),
                        StringMatch {
                            exact: Some("1".into()),
                            ..Default::default()
                        },
                    )]
                    .into(),
                ),
            }]),
            percentage: None,
        };
        let out = set_mirror_route(&with_header, &r, &managed, &step, "mock-server-canary", None).unwrap();
        // Prepended, then ordered by managedRoutes: header, mirror, then the rest.
        assert_eq!(
            names(&out),
            vec![
                Some("header".into()),
                Some("mirror".into()),
                Some("primary".into())
            ]
        );
        assert_eq!(
            out["spec"]["http"][1],
            json!({
                "name": "mirror",
                "match": [{
                    "method": { "exact": "GET" },
                    "uri": { "prefix": "/api" },
                    "headers": { "x-debug": { "exact": "1" } },
                }],
                "route": vs["spec"]["http"][0]["route"].clone(),
                "mirror": { "host": "mock-server-canary", "port": { "number": 8080 } },
                "mirrorPercentage": { "value": 100 },
            })
        );

        // setWeight also moves the managed mirror route's copy of the weights.
        let moved = set_weights(&out, &r, &managed, &host_split(), &desired(40, vec![])).unwrap();
        let expected = vec![hw("mock-server-stable", 60), hw("mock-server-canary", 40)];
        assert_eq!(dests(&moved, "http", 1), expected);
        assert_eq!(dests(&moved, "http", 2), expected);
        assert_eq!(dests(&moved, "http", 0), vec![hw("mock-server-canary", 100)]);
        assert_eq!(
            names(&moved),
            vec![
                Some("header".into()),
                Some("mirror".into()),
                Some("primary".into())
            ]
        );

        // A percentage and a subset.
        let step = SetMirrorRoute {
            percentage: Some(35),
            ..step
        };
        let out = set_mirror_route(&vs, &r, &managed, &step, "svc", Some("canary")).unwrap();
        assert_eq!(out["spec"]["http"][0]["mirrorPercentage"], json!({ "value": 35 }));
        assert_eq!(
            out["spec"]["http"][0]["mirror"],
            json!({ "host": "svc", "subset": "canary", "port": { "number": 8080 } })
        );

        // Empty match removes it again.
        let remove = SetMirrorRoute {
            name: "mirror".into(),
            r#match: None,
            percentage: None,
        };
        let removed = set_mirror_route(&out, &r, &managed, &remove, "svc", None).unwrap();
        assert_eq!(removed, vs);

        // No weighted route to copy.
        let err = set_mirror_route(&vs, &routing(&["nope"]), &managed, &step, "svc", None).unwrap_err();
        assert_eq!(err.problem, Problem::HttpRouteNotFound("nope".into()));
    }

    #[test]
    fn ordering_and_removal_of_managed_routes() {
        let route = |name: Option<&str>| match name {
            Some(n) => json!({ "name": n, "route": [] }),
            None => json!({ "route": [] }),
        };
        let vs = json!({
            "metadata": { "name": "vs" },
            "spec": { "http": [
                route(Some("a")), route(None), route(Some("m2")), route(Some("b")), route(Some("m1")),
            ] },
        });
        let managed = managed(&["m1", "m2", "absent"]);
        let ordered = order_routes(&vs, &managed).unwrap();
        assert_eq!(
            names(&ordered),
            vec![
                Some("m1".into()),
                Some("m2".into()),
                Some("a".into()),
                None,
                Some("b".into())
            ]
        );
        assert_eq!(order_routes(&vs, &[]).unwrap(), vs);

        let removed = remove_managed_routes(&ordered, &["m1", "m2", "absent"]).unwrap();
        assert_eq!(names(&removed), vec![Some("a".into()), None, Some("b".into())]);

        let tls_only = json!({ "metadata": { "name": "vs" }, "spec": { "tls": [] } });
        assert_eq!(remove_managed_routes(&tls_only, &["m1"]).unwrap(), tls_only);
    }

    #[test]
    fn restore_routes_everything_to_stable() {
        let r = routing(&["primary"]);
        let managed = managed(&["header"]);
        let vs = set_weights(
            &vs_two_services(),
            &r,
            &[],
            &host_split(),
            &desired(40, vec![dest("exp", 10, "h")]),
        )
        .unwrap();
        let vs = set_header_route(
            &vs,
            &r,
            &managed,
            &header_step("header", None),
            "mock-server-canary",
            None,
        )
        .unwrap();
        assert_eq!(
            vs["spec"]["http"][0]["match"],
            json!([{ "headers": { "version": {} } }])
        );
        let restored = restore_stable(&vs, &r, &managed, &host_split()).unwrap();
        assert_eq!(restored, vs_two_services());
    }

    // ---- DestinationRule -------------------------------------------------------------------------

    #[test]
    fn destination_rule_keeps_what_it_does_not_own() {
        let dr = json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": { "name": "dr", "annotations": { "owner": "team-a" }, "resourceVersion": "9" },
            "spec": {
                "host": "svc.ns.svc.cluster.local",
                "trafficPolicy": { "tls": { "mode": "ISTIO_MUTUAL" } },
                "exportTo": ["."],
                "subsets": [
                    { "name": "canary", "labels": { "app": "svc", "rollouts-pod-template-hash": "old-canary" },
                      "trafficPolicy": { "loadBalancer": { "simple": "ROUND_ROBIN" } } },
                    { "name": "stable" },
                    { "name": "legacy", "labels": { "version": "v0" } },
                    { "name": "exp-b", "labels": { "rollouts-pod-template-hash": "stale" } },
                ],
            },
        });
        let spec = IstioDestinationRule {
            name: "dr".into(),
            canary_subset_name: "canary".into(),
            stable_subset_name: "stable".into(),
            additional_subset_names: None,
        };
        let out = update_destination_rule(&dr, &spec, "ro", "", "abc", &[("exp-a", "h1"), ("exp-b", "h2")])
            .unwrap();
        assert_eq!(
            out,
            json!({
                "apiVersion": "networking.istio.io/v1",
                "kind": "DestinationRule",
                "metadata": {
                    "name": "dr",
                    "annotations": { "owner": "team-a", "argo-rollouts.argoproj.io/managed-by-rollouts": "ro" },
                    "resourceVersion": "9",
                },
                "spec": {
                    "host": "svc.ns.svc.cluster.local",
                    "trafficPolicy": { "tls": { "mode": "ISTIO_MUTUAL" } },
                    "exportTo": ["."],
                    "subsets": [
                        // Empty canary hash: label removed, the rest of the subset kept.
                        { "name": "canary", "labels": { "app": "svc" },
                          "trafficPolicy": { "loadBalancer": { "simple": "ROUND_ROBIN" } } },
                        { "name": "stable", "labels": { "rollouts-pod-template-hash": "abc" } },
                        { "name": "legacy", "labels": { "version": "v0" } },
                        { "name": "exp-b", "labels": { "rollouts-pod-template-hash": "h2" } },
                        { "name": "exp-a", "labels": { "rollouts-pod-template-hash": "h1" } },
                    ],
                },
            })
        );
        // Idempotent.
        assert_eq!(
            update_destination_rule(&out, &spec, "ro", "", "abc", &[("exp-a", "h1"), ("exp-b", "h2")])
                .unwrap(),
            out
        );

        let released = release_destination_rule(&out);
        assert_eq!(released["metadata"]["annotations"], json!({ "owner": "team-a" }));
        for subset in released["spec"]["subsets"].as_array().unwrap() {
            assert!(
                subset["labels"].get("rollouts-pod-template-hash").is_none(),
                "{subset}"
            );
        }
        assert_eq!(released["spec"]["trafficPolicy"], dr["spec"]["trafficPolicy"]);
        assert_eq!(released["spec"]["subsets"][2], dr["spec"]["subsets"][2]);

        // No metadata and no subsets at all.
        let bare = json!({ "spec": { "host": "svc" } });
        let out = update_destination_rule(&bare, &spec, "ro", "a", "b", &[]).unwrap();
        assert_eq!(
            out,
            json!({
                "metadata": { "annotations": { "argo-rollouts.argoproj.io/managed-by-rollouts": "ro" } },
                "spec": { "host": "svc" },
            })
        );
        let err = update_destination_rule(&json!({ "spec": { "subsets": 3 } }), &spec, "ro", "a", "b", &[])
            .unwrap_err();
        assert_eq!(err.kind, ObjectKind::DestinationRule);
        assert_eq!(err.name, "dr");
    }

    // ---- references ------------------------------------------------------------------------------

    #[test]
    fn virtual_service_references() {
        let p = |r: &str| parse_virtual_service_ref(r, "rollout-ns");
        assert_eq!(p("vs"), ("vs".into(), "rollout-ns".into()));
        assert_eq!(p("vs.other"), ("vs".into(), "other".into()));
        assert_eq!(p("vs.other.svc.cluster.local"), ("vs".into(), "other".into()));
        assert_eq!(p("vs.other.cluster.local"), ("vs".into(), "other".into()));
        assert_eq!(p("vs."), ("vs".into(), "rollout-ns".into()));
    }
}
