//! Pure validation of a Rollout spec: the rules Argo Rollouts checks on every reconcile that need
//! no API lookups. Messages follow Argo's (`k8s.io/apimachinery` field-error style:
//! `<path>: Invalid value: <value>: <detail>`), paths name the real field.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString};

use crate::{
    field_error::FieldError,
    rollout::{AntiAffinity, CanaryStep, CanaryStrategy, RolloutSpec, StringMatch},
};

/// `Rollout has missing field '%s'`.
pub fn missing_field_message(field: &str) -> String {
    format!("Rollout has missing field '{field}'")
}
/// Step with no known kind.
pub const INVALID_STEP: &str =
    "Step must have one of the following set: experiment, setWeight, setCanaryScale, plugin or pause";
/// Both strategies set.
pub const INVALID_STRATEGY: &str = "Multiple Strategies can not be listed";
/// Pause with a negative or unparseable duration.
pub const INVALID_DURATION: &str = "Duration needs to be greater than 0";
/// maxSurge and maxUnavailable both zero.
pub const INVALID_MAX_SURGE_MAX_UNAVAILABLE: &str = "MaxSurge and MaxUnavailable both can not be zero";
/// Same Service for active and preview.
pub const DUPLICATED_SERVICES_BLUE_GREEN: &str = "This rollout uses the same service for the active and preview services, but two different services are required.";
/// Same Service for stable and canary.
pub const DUPLICATED_SERVICES_CANARY: &str = "This rollout uses the same service for the stable and canary services, but two different services are required.";
/// Anti-affinity with zero or two rules.
pub const INVALID_ANTI_AFFINITY_STRATEGY: &str = "AntiAffinity must have exactly one strategy listed";
/// Anti-affinity weight out of range.
pub const INVALID_ANTI_AFFINITY_WEIGHT: &str = "AntiAffinity weight must be between 1-100";
/// scaleDownDelayRevisionLimit above revisionHistoryLimit.
pub const SCALE_DOWN_LIMIT_LARGER_THAN_REVISION_LIMIT: &str =
    "This rollout's revision history limit can not be smaller than the rollout's scale down limit";
/// Traffic routing without both services.
pub const INVALID_TRAFFIC_ROUTING: &str =
    "Canary service and Stable service must to be set to use Traffic Routing";
/// setCanaryScale without traffic routing.
pub const INVALID_SET_CANARY_SCALE_TRAFFIC_POLICY: &str = "SetCanaryScale requires TrafficRouting to be set";
/// setHeaderRoute without a router that supports it.
pub const INVALID_SET_HEADER_ROUTE_TRAFFIC_POLICY: &str =
    "SetHeaderRoute requires TrafficRouting, supports Istio and ALB and Apisix";
/// setMirrorRoute without Istio.
pub const INVALID_SET_MIRROR_ROUTE_TRAFFIC_POLICY: &str =
    "SetMirrorRoute requires TrafficRouting, supports Istio only";
/// A string match with several values.
pub const INVALID_STRING_MATCH_MULTIPLE: &str =
    "StringMatch match value must have exactly one of the following: exact, regex, prefix";
/// A string match with no value.
pub const INVALID_STRING_MATCH_MISSING: &str =
    "StringMatch value missed, match value must have one of the following: exact, regex, prefix";
/// Route name missing from managedRoutes.
pub const ROUTE_NOT_IN_MANAGED_ROUTES: &str =
    "Steps define a route that does not exist in spec.strategy.canary.trafficRouting.managedRoutes";
/// Canary scaleDownDelaySeconds without traffic routing.
pub const INVALID_CANARY_SCALE_DOWN_DELAY: &str =
    "Canary scaleDownDelaySeconds can only be used with traffic routing";
/// dynamicStableScale without traffic routing.
pub const INVALID_CANARY_DYNAMIC_STABLE_SCALE: &str =
    "Canary dynamicStableScale can only be used with traffic routing";
/// dynamicStableScale together with scaleDownDelaySeconds.
pub const INVALID_DYNAMIC_STABLE_SCALE_WITH_DELAY: &str =
    "Canary dynamicStableScale cannot be used with scaleDownDelaySeconds";
/// maxTrafficWeight with a router that does not support it.
pub const INVALID_MAX_TRAFFIC_WEIGHT: &str =
    "Canary maxTrafficWeight in traffic routing only support in Nginx and Plugins";
/// Experiment template weight without traffic routing.
pub const INVALID_EXPERIMENT_WEIGHT_NO_TRAFFIC_ROUTING: &str =
    "Experiment template weight cannot be set unless TrafficRouting is enabled";
/// Experiment template weight with a router that does not support it.
pub const INVALID_EXPERIMENT_WEIGHT_ROUTER: &str =
    "Experiment template weight is only available for TrafficRouting with SMI, ALB, and Istio at this time";
/// Ping-pong without both services.
pub const INVALID_PING_PONG: &str = "Ping service and Pong service must to be set to use Ping-Pong feature";
/// Same Service for ping and pong.
pub const DUPLICATED_PING_PONG: &str = "This rollout uses the same service for the ping and pong services, but two different services are required.";

/// Kubernetes' message for a resource quantity it cannot parse.
pub const INVALID_QUANTITY: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// `Invalid value: <value>: <detail>` at `path`.
fn invalid(path: impl Into<String>, value: impl std::fmt::Display, detail: &str) -> FieldError {
    FieldError {
        path: path.into(),
        message: format!("Invalid value: {value}: {detail}"),
    }
}

/// `Required value: <detail>` at `path`.
fn required(path: impl Into<String>, detail: &str) -> FieldError {
    let message = if detail.is_empty() {
        "Required value".to_string()
    } else {
        format!("Required value: {detail}")
    };
    FieldError {
        path: path.into(),
        message,
    }
}

/// Go-style rendering of a string value in a field error.
fn quoted(s: &str) -> String {
    format!("{s:?}")
}

/// Checks a Rollout spec. Returns every problem found, each naming its field.
pub fn validate_rollout_spec(spec: &RolloutSpec) -> Result<(), Vec<FieldError>> {
    let mut errs = Vec::new();
    if spec.replicas() < 0 {
        errs.push(invalid(
            "spec.replicas",
            spec.replicas(),
            "must be greater than or equal to 0",
        ));
    }
    if spec.workload_ref.is_none() {
        validate_selector_and_template(spec, &mut errs);
    } else if spec.template.as_ref().is_some_and(template_has_metadata) {
        errs.push(FieldError {
            path: "spec.template".into(),
            message: "Internal error: template must be empty for workload reference rollout".into(),
        });
    }
    if spec.min_ready_seconds() < 0 {
        errs.push(invalid(
            "spec.minReadySeconds",
            spec.min_ready_seconds(),
            "must be greater than or equal to 0",
        ));
    }
    if spec.revision_history_limit() < 0 {
        errs.push(invalid(
            "spec.revisionHistoryLimit",
            spec.revision_history_limit(),
            "must be greater than or equal to 0",
        ));
    }
    let deadline = spec.progress_deadline_seconds();
    if deadline < 0 {
        errs.push(invalid(
            "spec.progressDeadlineSeconds",
            deadline,
            "must be greater than or equal to 0",
        ));
    }
    if deadline <= spec.min_ready_seconds() {
        errs.push(invalid(
            "spec.progressDeadlineSeconds",
            deadline,
            "must be greater than minReadySeconds",
        ));
    }
    validate_strategy(spec, &mut errs);
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

fn template_has_metadata(t: &k8s_openapi::api::core::v1::PodTemplateSpec) -> bool {
    t.metadata.as_ref().is_some_and(|m| {
        m.labels.as_ref().is_some_and(|l| !l.is_empty())
            || m.annotations.as_ref().is_some_and(|a| !a.is_empty())
    })
}

/// The selector must be non-empty and select the template's labels; the template needs containers.
/// (Argo runs the full Kubernetes ReplicaSet template validation; we check the parts users hit.)
fn validate_selector_and_template(spec: &RolloutSpec, errs: &mut Vec<FieldError>) {
    let Some(selector) = &spec.selector else {
        errs.push(required(
            "spec.selector",
            &missing_field_message(".spec.selector"),
        ));
        return;
    };
    let match_labels = selector.match_labels.clone().unwrap_or_default();
    let expressions = selector.match_expressions.as_deref().unwrap_or_default();
    if match_labels.is_empty() && expressions.is_empty() {
        errs.push(invalid(
            "spec.selector",
            "{}",
            "empty selector is invalid for deployment",
        ));
    }
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    if !selector_matches(selector, &template_labels) {
        errs.push(invalid(
            "spec.template.metadata.labels",
            format_labels(&template_labels),
            "`selector` does not match template `labels`",
        ));
    }
    let containers = spec
        .template
        .as_ref()
        .and_then(|t| t.spec.as_ref())
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    if containers.is_empty() {
        errs.push(required("spec.template.spec.containers", ""));
    }
    for (i, c) in containers.iter().enumerate() {
        if c.name.is_empty() {
            errs.push(required(format!("spec.template.spec.containers[{i}].name"), ""));
        }
        if c.image.as_deref().unwrap_or_default().trim().is_empty() {
            errs.push(required(format!("spec.template.spec.containers[{i}].image"), ""));
        }
    }
    if let Some(template) = &spec.template {
        for (path, text) in crate::hash::invalid_quantities(template) {
            errs.push(invalid(
                format!("spec.template.{path}"),
                quoted(&text),
                INVALID_QUANTITY,
            ));
        }
    }
}

/// Whether `selector` selects `labels` (`metav1.LabelSelectorAsSelector`); a selector with an
/// operator Kubernetes does not define selects nothing.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    use kube::core::SelectorExt;
    kube::core::Selector::try_from(selector.clone()).is_ok_and(|s| s.matches(labels))
}

/// Renders labels the way Go prints a `map[string]string`.
fn format_labels(labels: &BTreeMap<String, String>) -> String {
    let body: Vec<String> = labels.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
    format!("map[string]string{{{}}}", body.join(", "))
}

fn validate_strategy(spec: &RolloutSpec, errs: &mut Vec<FieldError>) {
    let strategy = &spec.strategy;
    match (&strategy.blue_green, &strategy.canary) {
        (None, None) => errs.push(required(
            "spec.strategy",
            &missing_field_message(".spec.strategy.canary or .spec.strategy.blueGreen"),
        )),
        (Some(_), Some(_)) => errs.push(invalid(
            "spec.strategy",
            quoted("blueGreen: true canary: true"),
            INVALID_STRATEGY,
        )),
        (Some(bg), None) => {
            let path = "spec.strategy.blueGreen";
            if bg.active_service.is_empty() {
                errs.push(required(format!("{path}.activeService"), ""));
            }
            if Some(bg.active_service.as_str()) == bg.preview_service.as_deref()
                || bg.active_service.is_empty() && bg.preview_service.is_none()
            {
                errs.push(invalid(
                    format!("{path}.activeService"),
                    quoted(&bg.active_service),
                    DUPLICATED_SERVICES_BLUE_GREEN,
                ));
            }
            if let Some(limit) = bg.scale_down_delay_revision_limit
                && spec.revision_history_limit() < limit
            {
                errs.push(invalid(
                    format!("{path}.scaleDownDelayRevisionLimit"),
                    limit,
                    SCALE_DOWN_LIMIT_LARGER_THAN_REVISION_LIMIT,
                ));
            }
            validate_anti_affinity(bg.anti_affinity.as_ref(), &format!("{path}.antiAffinity"), errs);
        }
        (None, Some(canary)) => validate_canary(canary, errs),
    }
}

/// Resolves an int-or-percent the way Argo's validation does: `"N%"` is N, an int is itself,
/// anything else is 0.
fn int_or_percent(v: &IntOrString) -> i64 {
    match v {
        IntOrString::Int(i) => i64::from(*i),
        IntOrString::String(s) => s.strip_suffix('%').unwrap_or(s).parse::<i64>().unwrap_or(0),
    }
}

/// Whether traffic routing with this configuration needs both canaryService and stableService.
fn requires_canary_and_stable_services(canary: &CanaryStrategy) -> bool {
    let Some(tr) = &canary.traffic_routing else {
        return false;
    };
    (tr.alb.is_some() && canary.ping_pong.is_none())
        || (tr.istio.as_ref().is_some_and(|i| i.destination_rule.is_none()) && canary.ping_pong.is_none())
        || tr.smi.is_some()
        || tr.apisix.is_some()
        || tr.ambassador.is_some()
        || tr.nginx.is_some()
        || tr.app_mesh.is_some()
        || tr.traefik.is_some()
}

fn validate_canary(canary: &CanaryStrategy, errs: &mut Vec<FieldError>) {
    let path = "spec.strategy.canary";
    let surge = canary.max_surge.as_ref().map(int_or_percent).unwrap_or(25);
    let unavailable = canary.max_unavailable.as_ref().map(int_or_percent).unwrap_or(25);
    if surge == 0 && unavailable == 0 {
        let shown = match &canary.max_surge {
            Some(IntOrString::String(s)) => quoted(s),
            Some(IntOrString::Int(i)) => i.to_string(),
            None => quoted("25%"),
        };
        errs.push(invalid(
            format!("{path}.maxSurge"),
            shown,
            INVALID_MAX_SURGE_MAX_UNAVAILABLE,
        ));
    }
    if let (Some(c), Some(s)) = (&canary.canary_service, &canary.stable_service)
        && !c.is_empty()
        && c == s
    {
        errs.push(invalid(
            format!("{path}.stableService"),
            quoted(s),
            DUPLICATED_SERVICES_CANARY,
        ));
    }
    if let Some(pp) = &canary.ping_pong {
        if pp.ping_service.is_empty() {
            errs.push(invalid(
                format!("{path}.pingPong.pingService"),
                quoted(""),
                INVALID_PING_PONG,
            ));
        }
        if pp.pong_service.is_empty() {
            errs.push(invalid(
                format!("{path}.pingPong.pongService"),
                quoted(""),
                INVALID_PING_PONG,
            ));
        }
        if pp.ping_service == pp.pong_service {
            errs.push(invalid(
                format!("{path}.pingPong.pingService"),
                quoted(&pp.ping_service),
                DUPLICATED_PING_PONG,
            ));
        }
    }
    if requires_canary_and_stable_services(canary) {
        if canary.stable_service.as_deref().unwrap_or_default().is_empty() {
            errs.push(invalid(
                format!("{path}.stableService"),
                quoted(""),
                INVALID_TRAFFIC_ROUTING,
            ));
        }
        if canary.canary_service.as_deref().unwrap_or_default().is_empty() {
            errs.push(invalid(
                format!("{path}.canaryService"),
                quoted(""),
                INVALID_TRAFFIC_ROUTING,
            ));
        }
    }
    let tr = canary.traffic_routing.as_ref();
    match tr {
        None => {
            if let Some(d) = canary.scale_down_delay_seconds {
                errs.push(invalid(
                    format!("{path}.scaleDownDelaySeconds"),
                    d,
                    INVALID_CANARY_SCALE_DOWN_DELAY,
                ));
            }
            if canary.dynamic_stable_scale() {
                errs.push(invalid(
                    format!("{path}.dynamicStableScale"),
                    true,
                    INVALID_CANARY_DYNAMIC_STABLE_SCALE,
                ));
            }
        }
        Some(tr) => {
            if canary.scale_down_delay_seconds.is_some() && canary.dynamic_stable_scale() {
                errs.push(invalid(
                    format!("{path}.dynamicStableScale"),
                    true,
                    INVALID_DYNAMIC_STABLE_SCALE_WITH_DELAY,
                ));
            }
            let has_plugins = tr.plugins.as_ref().is_some_and(|p| !p.is_empty());
            if let Some(w) = tr.max_traffic_weight
                && tr.nginx.is_none()
                && !has_plugins
            {
                errs.push(invalid(
                    format!("{path}.trafficRouting.maxTrafficWeight"),
                    w,
                    INVALID_MAX_TRAFFIC_WEIGHT,
                ));
            }
        }
    }
    let max_weight = canary.max_traffic_weight();
    for (i, step) in canary.steps().iter().enumerate() {
        validate_step(canary, step, &format!("{path}.steps[{i}]"), max_weight, errs);
    }
    validate_anti_affinity(
        canary.anti_affinity.as_ref(),
        &format!("{path}.antiAffinity"),
        errs,
    );
}

/// The names of the kinds set on a step, in declaration order.
fn step_kinds(step: &CanaryStep) -> Vec<&'static str> {
    [
        (step.set_weight.is_some(), "setWeight"),
        (step.pause.is_some(), "pause"),
        (step.experiment.is_some(), "experiment"),
        (step.analysis.is_some(), "analysis"),
        (step.set_canary_scale.is_some(), "setCanaryScale"),
        (step.set_header_route.is_some(), "setHeaderRoute"),
        (step.set_mirror_route.is_some(), "setMirrorRoute"),
        (step.plugin.is_some(), "plugin"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect()
}

fn validate_step(
    canary: &CanaryStrategy,
    step: &CanaryStep,
    path: &str,
    max_weight: i32,
    errs: &mut Vec<FieldError>,
) {
    let kinds = step_kinds(step);
    if kinds.len() != 1 {
        let shown = if kinds.is_empty() {
            "{}".to_string()
        } else {
            quoted(&kinds.join(", "))
        };
        errs.push(invalid(path, shown, INVALID_STEP));
    }
    if let Some(w) = step.set_weight
        && !(0..=max_weight).contains(&w)
    {
        errs.push(invalid(
            format!("{path}.setWeight"),
            w,
            &format!("SetWeight needs to be between 0 and {max_weight}"),
        ));
    }
    if let Some(pause) = &step.pause {
        match pause.duration_seconds() {
            Ok(Some(s)) if s < 0 => errs.push(invalid(format!("{path}.pause.duration"), s, INVALID_DURATION)),
            Err(_) => {
                let shown = match &pause.duration {
                    Some(IntOrString::String(s)) => quoted(s),
                    Some(IntOrString::Int(i)) => i.to_string(),
                    None => String::new(),
                };
                errs.push(invalid(format!("{path}.pause.duration"), shown, INVALID_DURATION));
            }
            _ => {}
        }
    }
    let tr = canary.traffic_routing.as_ref();
    if step.set_canary_scale.is_some() && tr.is_none() {
        errs.push(required(
            "spec.strategy.canary.trafficRouting",
            INVALID_SET_CANARY_SCALE_TRAFFIC_POLICY,
        ));
    }
    if let Some(hr) = &step.set_header_route {
        let supported = tr.is_some_and(|tr| {
            tr.istio.is_some()
                || tr.alb.is_some()
                || tr.apisix.is_some()
                || tr.plugins.as_ref().is_some_and(|p| !p.is_empty())
        });
        if !supported {
            errs.push(invalid(
                format!("{path}.setHeaderRoute"),
                quoted(hr.name.as_deref().unwrap_or_default()),
                INVALID_SET_HEADER_ROUTE_TRAFFIC_POLICY,
            ));
        } else {
            for (j, m) in hr.r#match.iter().flatten().enumerate() {
                validate_string_match(
                    m.header_value.as_ref(),
                    &format!("{path}.setHeaderRoute.match[{j}]"),
                    errs,
                );
            }
        }
    }
    if let Some(mr) = &step.set_mirror_route {
        if tr.is_none_or(|tr| tr.istio.is_none()) {
            errs.push(invalid(
                format!("{path}.setMirrorRoute"),
                quoted(&mr.name),
                INVALID_SET_MIRROR_ROUTE_TRAFFIC_POLICY,
            ));
        }
        for (j, m) in mr.r#match.iter().flatten().enumerate() {
            let mpath = format!("{path}.setMirrorRoute.match[{j}]");
            if let Some(method) = &m.method {
                validate_string_match(Some(method), &format!("{mpath}.method"), errs);
            }
            if let Some(p) = &m.path {
                validate_string_match(Some(p), &format!("{mpath}.path"), errs);
            }
        }
    }
    if let Some(tr) = tr {
        let route_names: Vec<(&str, String)> = step
            .set_header_route
            .iter()
            .map(|r| ("setHeaderRoute", r.name.clone().unwrap_or_default()))
            .chain(
                step.set_mirror_route
                    .iter()
                    .map(|r| ("setMirrorRoute", r.name.clone())),
            )
            .collect();
        match &tr.managed_routes {
            None if !route_names.is_empty() => errs.push(required(
                "spec.strategy.canary.trafficRouting.managedRoutes",
                &missing_field_message("spec.strategy.canary.trafficRouting.managedRoutes"),
            )),
            Some(managed) => {
                for (kind, name) in route_names {
                    if !managed.iter().any(|m| m.name == name) {
                        errs.push(invalid(
                            format!("{path}.{kind}"),
                            quoted(&name),
                            ROUTE_NOT_IN_MANAGED_ROUTES,
                        ));
                    }
                }
            }
            None => {}
        }
    }
    if let Some(exp) = &step.experiment {
        for (t, template) in exp.templates.iter().enumerate() {
            let Some(weight) = template.weight else { continue };
            let wpath = format!("{path}.experiment.templates[{t}].weight");
            match tr {
                None => errs.push(invalid(
                    wpath,
                    weight,
                    INVALID_EXPERIMENT_WEIGHT_NO_TRAFFIC_ROUTING,
                )),
                Some(tr) if tr.alb.is_none() && tr.smi.is_none() && tr.istio.is_none() => {
                    errs.push(invalid(wpath, weight, INVALID_EXPERIMENT_WEIGHT_ROUTER))
                }
                Some(_) => {}
            }
        }
    }
}

fn validate_string_match(m: Option<&StringMatch>, path: &str, errs: &mut Vec<FieldError>) {
    let Some(m) = m else {
        errs.push(invalid(path, "nil", INVALID_STRING_MATCH_MISSING));
        return;
    };
    let set = [&m.exact, &m.regex, &m.prefix]
        .iter()
        .filter(|v| v.as_deref().is_some_and(|s| !s.is_empty()))
        .count();
    match set {
        0 => errs.push(invalid(path, "{}", INVALID_STRING_MATCH_MISSING)),
        1 => {}
        _ => errs.push(invalid(path, "{...}", INVALID_STRING_MATCH_MULTIPLE)),
    }
}

fn validate_anti_affinity(aa: Option<&AntiAffinity>, path: &str, errs: &mut Vec<FieldError>) {
    let Some(aa) = aa else { return };
    let preferred = aa.preferred_during_scheduling_ignored_during_execution.as_ref();
    let required_rule = aa.required_during_scheduling_ignored_during_execution.as_ref();
    if preferred.is_some() == required_rule.is_some() {
        let shown = format!(
            "antiAffinity.PreferredDuringSchedulingIgnoredDuringExecution: {} antiAffinity.RequiredDuringSchedulingIgnoredDuringExecution: {}",
            preferred.is_some(),
            required_rule.is_some()
        );
        errs.push(invalid(path, quoted(&shown), INVALID_ANTI_AFFINITY_STRATEGY));
    }
    if let Some(p) = preferred
        && !(1..=100).contains(&p.weight)
    {
        errs.push(invalid(
            format!("{path}.weight"),
            p.weight,
            INVALID_ANTI_AFFINITY_WEIGHT,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::Rollout;

    fn rollout(yaml: &str) -> RolloutSpec {
        let ro: Rollout = serde_saphyr::from_str(yaml).expect("test manifest parses");
        ro.spec
    }

    const BASE: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: demo}
spec:
  replicas: 3
  selector: {matchLabels: {app: demo}}
  template:
    metadata: {labels: {app: demo}}
    spec:
      containers: [{name: demo, image: "demo:1"}]
"#;

    fn with_strategy(strategy: &str) -> RolloutSpec {
        rollout(&format!("{BASE}  strategy:\n{strategy}"))
    }

    fn paths(spec: &RolloutSpec) -> Vec<String> {
        validate_rollout_spec(spec)
            .err()
            .unwrap_or_default()
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn valid_canary_and_blue_green_pass() {
        let canary = with_strategy(
            "    canary:\n      steps: [{setWeight: 20}, {pause: {duration: 10s}}, {pause: {}}]\n",
        );
        assert_eq!(paths(&canary), Vec::<String>::new());
        let bg = with_strategy("    blueGreen: {activeService: a, previewService: p}\n");
        assert_eq!(paths(&bg), Vec::<String>::new());
    }

    #[test]
    fn set_weight_out_of_range_names_the_step() {
        let spec = with_strategy("    canary:\n      steps: [{setWeight: 150}]\n");
        assert_eq!(
            paths(&spec),
            vec![
                "spec.strategy.canary.steps[0].setWeight: Invalid value: 150: SetWeight needs to be between 0 and 100"
            ]
        );
    }

    #[test]
    fn negative_and_unparseable_pause_durations_are_rejected() {
        let spec =
            with_strategy("    canary:\n      steps: [{pause: {duration: -1}}, {pause: {duration: soon}}]\n");
        assert_eq!(
            paths(&spec),
            vec![
                "spec.strategy.canary.steps[0].pause.duration: Invalid value: -1: Duration needs to be greater than 0",
                "spec.strategy.canary.steps[1].pause.duration: Invalid value: \"soon\": Duration needs to be greater than 0",
            ]
        );
    }

    #[test]
    fn unknown_or_multiple_step_kinds_are_rejected() {
        let spec = with_strategy("    canary:\n      steps: [{setWieght: 10}, {setWeight: 10, pause: {}}]\n");
        let errs = paths(&spec);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].starts_with("spec.strategy.canary.steps[0]: Invalid value: {}: Step must have one of")
        );
        assert!(errs[1].starts_with("spec.strategy.canary.steps[1]: Invalid value: \"setWeight, pause\""));
    }

    #[test]
    fn both_or_no_strategies_are_rejected() {
        let both = with_strategy("    canary: {}\n    blueGreen: {activeService: a}\n");
        assert_eq!(
            paths(&both),
            vec![
                "spec.strategy: Invalid value: \"blueGreen: true canary: true\": Multiple Strategies can not be listed"
            ]
        );
        let none = with_strategy("    {}\n");
        assert_eq!(
            paths(&none),
            vec![
                "spec.strategy: Required value: Rollout has missing field '.spec.strategy.canary or .spec.strategy.blueGreen'"
            ]
        );
    }

    #[test]
    fn numeric_quantities_pass_and_malformed_ones_are_named() {
        let numeric = BASE.replace(
            "image: \"demo:1\"}",
            "image: \"demo:1\", resources: {requests: {cpu: 1, memory: 1024}, limits: {cpu: 0.5}}}",
        );
        let spec = rollout(&format!("{numeric}  strategy:\n    canary: {{}}\n"));
        assert_eq!(paths(&spec), Vec::<String>::new());
        let bad = BASE.replace(
            "image: \"demo:1\"}",
            "image: \"demo:1\", resources: {limits: {memory: invalid}}}",
        );
        let spec = rollout(&format!("{bad}  strategy:\n    canary: {{}}\n"));
        assert_eq!(
            paths(&spec),
            vec![format!(
                "spec.template.spec.containers[0].resources.limits.memory: Invalid value: \"invalid\": {INVALID_QUANTITY}"
            )]
        );
    }

    #[test]
    fn selector_must_match_template_labels() {
        let mut spec = with_strategy("    canary: {}\n");
        spec.selector = Some(LabelSelector {
            match_labels: Some([("app".to_string(), "other".to_string())].into()),
            ..Default::default()
        });
        assert_eq!(
            paths(&spec),
            vec![
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"demo\"}: `selector` does not match template `labels`"
            ]
        );
    }

    #[test]
    fn same_services_and_zero_surge_are_rejected() {
        let bg = with_strategy("    blueGreen: {activeService: a, previewService: a}\n");
        assert_eq!(paths(&bg).len(), 1);
        assert!(paths(&bg)[0].contains(DUPLICATED_SERVICES_BLUE_GREEN));
        let canary = with_strategy(
            "    canary: {maxSurge: 0, maxUnavailable: \"0%\", canaryService: s, stableService: s}\n",
        );
        let errs = paths(&canary);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0]
                .starts_with("spec.strategy.canary.maxSurge: Invalid value: 0: MaxSurge and MaxUnavailable")
        );
        assert!(errs[1].contains(DUPLICATED_SERVICES_CANARY));
    }

    #[test]
    fn traffic_routing_rules() {
        let spec = with_strategy(
            "    canary:\n      scaleDownDelaySeconds: 10\n      steps: [{setCanaryScale: {replicas: 1}}]\n",
        );
        let errs = paths(&spec);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].starts_with("spec.strategy.canary.scaleDownDelaySeconds: Invalid value: 10"));
        assert_eq!(
            errs[1],
            "spec.strategy.canary.trafficRouting: Required value: SetCanaryScale requires TrafficRouting to be set"
        );

        let istio = with_strategy(
            "    canary:\n      trafficRouting:\n        istio: {virtualService: {name: vs}}\n        managedRoutes: [{name: a}]\n      steps: [{setHeaderRoute: {name: b, match: [{headerName: x, headerValue: {exact: y, prefix: z}}]}}]\n",
        );
        let errs = paths(&istio);
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(errs[0].starts_with(
            "spec.strategy.canary.stableService: Invalid value: \"\": Canary service and Stable"
        ));
        assert!(errs[1].starts_with("spec.strategy.canary.canaryService"));
        assert!(errs[2].starts_with("spec.strategy.canary.steps[0].setHeaderRoute.match[0]: Invalid value"));
        assert!(errs[3].ends_with(ROUTE_NOT_IN_MANAGED_ROUTES));
    }

    #[test]
    fn progress_deadline_must_exceed_min_ready_seconds() {
        let mut spec = with_strategy("    canary: {}\n");
        spec.min_ready_seconds = Some(600);
        assert_eq!(
            paths(&spec),
            vec!["spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds"]
        );
    }

    #[test]
    fn anti_affinity_needs_exactly_one_rule_with_valid_weight() {
        let spec = with_strategy(
            "    canary:\n      antiAffinity: {preferredDuringSchedulingIgnoredDuringExecution: {weight: 0}}\n",
        );
        assert_eq!(
            paths(&spec),
            vec![
                "spec.strategy.canary.antiAffinity.weight: Invalid value: 0: AntiAffinity weight must be between 1-100"
            ]
        );
    }
}
