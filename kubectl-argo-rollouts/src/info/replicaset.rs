//! ReplicaSet summaries: health, revision, role (stable/canary/active/preview/ping/pong),
//! scale-down deadline and pods.

use jiff::Timestamp;
use k8s_openapi::api::{apps::v1::ReplicaSet, core::v1::Pod};
use shared_types::{constants::keys, replicaset as rsutil, rollout::Rollout};

use super::{Metadata, PodInfo, icon, owned_by};

/// One ReplicaSet of a Rollout or Experiment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplicaSetInfo {
    /// Identity and creation time.
    pub meta: Metadata,
    /// `Healthy`, `Progressing`, `ScaledDown` or `ReplicaFailure`.
    pub status: String,
    /// Status icon.
    pub icon: &'static str,
    /// `status.replicas`.
    pub replicas: i32,
    /// `status.availableReplicas`.
    pub available: i32,
    /// `rollout.argoproj.io/revision`.
    pub revision: i64,
    /// Experiment template name (`experiment.argoproj.io/template-name`), empty for rollout RSs.
    pub template: String,
    /// `scale-down-deadline` annotation, empty when absent.
    pub scale_down_deadline: String,
    /// The stable ReplicaSet.
    pub stable: bool,
    /// The canary ReplicaSet.
    pub canary: bool,
    /// Blue-green: selected by the active Service.
    pub active: bool,
    /// Blue-green: selected by the preview Service.
    pub preview: bool,
    /// Ping-pong: behind the ping Service.
    pub ping: bool,
    /// Ping-pong: behind the pong Service.
    pub pong: bool,
    /// Images of the regular containers.
    pub images: Vec<String>,
    /// Pods owned by this ReplicaSet, oldest first.
    pub pods: Vec<PodInfo>,
}

/// Summaries of the ReplicaSets owned by `owner_uid`, newest revision first, with their pods.
/// `rollout` gives each its role; `None` for experiment ReplicaSets.
pub fn replica_set_infos(
    owner_uid: &str,
    rollout: Option<&Rollout>,
    replica_sets: &[ReplicaSet],
    pods: &[Pod],
) -> Vec<ReplicaSetInfo> {
    let mut infos: Vec<ReplicaSetInfo> = replica_sets
        .iter()
        .filter(|rs| owned_by(rs.metadata.owner_references.as_ref(), owner_uid))
        .map(|rs| replica_set_info(rs, rollout))
        .collect();
    // Argo sorts by revision (descending), then by name: its creation-time comparison is a no-op.
    infos.sort_by(|a, b| {
        b.revision
            .cmp(&a.revision)
            .then_with(|| a.meta.name.cmp(&b.meta.name))
    });
    for info in &mut infos {
        info.pods = pods
            .iter()
            .filter(|p| owned_by(p.metadata.owner_references.as_ref(), &info.meta.uid))
            .map(PodInfo::new)
            .collect();
        info.pods.sort_by(|a, b| {
            a.meta
                .created
                .cmp(&b.meta.created)
                .then_with(|| a.meta.name.cmp(&b.meta.name))
        });
    }
    infos
}

fn replica_set_info(rs: &ReplicaSet, rollout: Option<&Rollout>) -> ReplicaSetInfo {
    let status = replica_set_health(rs);
    let mut info = ReplicaSetInfo {
        meta: Metadata::from_meta(&rs.metadata),
        icon: replica_set_icon(&status),
        status,
        replicas: rs.status.as_ref().map(|s| s.replicas).unwrap_or(0),
        available: rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0),
        revision: rsutil::revision(rs),
        template: annotation(rs, keys::EXPERIMENT_TEMPLATE_NAME),
        scale_down_deadline: annotation(rs, keys::SCALE_DOWN_DEADLINE),
        images: rs
            .spec
            .template
            .as_ref()
            .and_then(|t| t.spec.as_ref())
            .map(|s| {
                s.containers
                    .iter()
                    .map(|c| c.image.clone().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default(),
        ..Default::default()
    };
    if let Some(ro) = rollout {
        assign_role(&mut info, rs, ro);
    }
    info
}

fn annotation(rs: &ReplicaSet, key: &str) -> String {
    rsutil::annotation(rs, key).unwrap_or_default().to_string()
}

/// Sets the stable/canary/active/preview/ping/pong flags from the rollout's status.
fn assign_role(info: &mut ReplicaSetInfo, rs: &ReplicaSet, ro: &Rollout) {
    let hash = rsutil::hash(rs).unwrap_or_default().to_string();
    let status = ro.status.clone().unwrap_or_default();
    let stable_rs = status.stable_rs.clone().unwrap_or_default();
    let current = status.current_pod_hash.clone().unwrap_or_default();
    if let Some(canary) = &ro.spec.strategy.canary {
        let ping_pong = canary.ping_pong.is_some();
        // The ping Service fronts the stable pods only when the status says so (`ping`).
        let stable_is_ping =
            status.canary.as_ref().and_then(|c| c.stable_ping_pong.as_deref()) == Some("ping");
        if stable_rs == hash {
            info.stable = true;
            if ping_pong {
                info.ping = stable_is_ping;
                info.pong = !stable_is_ping;
            }
        } else if current == hash {
            info.canary = true;
            if ping_pong {
                info.ping = !stable_is_ping;
                info.pong = stable_is_ping;
            }
        }
    }
    if ro.spec.strategy.blue_green.is_some() {
        let bg = status.blue_green.clone().unwrap_or_default();
        if stable_rs == hash {
            info.stable = true;
        }
        if bg.active_selector.as_deref() == Some(hash.as_str()) {
            info.active = true;
        } else if bg.preview_selector.as_deref() == Some(hash.as_str()) {
            info.preview = true;
        }
    }
}

/// `Progressing` while the ReplicaSet controller has not caught up or pods are missing,
/// `ReplicaFailure` when it reports one, `ScaledDown` at zero, else `Healthy`.
fn replica_set_health(rs: &ReplicaSet) -> String {
    let generation = rs.metadata.generation.unwrap_or(0);
    let status = rs.status.clone().unwrap_or_default();
    let spec_replicas = rs.spec.replicas;
    if generation > status.observed_generation.unwrap_or(0) {
        return "Progressing".into();
    }
    let failure = status
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_.as_deref() == Some("ReplicaFailure"))
        .is_some_and(|c| c.status.as_deref() == Some("True"));
    if failure {
        return "ReplicaFailure".into();
    }
    if spec_replicas.is_some_and(|r| status.available_replicas.unwrap_or(0) < r) {
        return "Progressing".into();
    }
    if spec_replicas == Some(0) {
        return "ScaledDown".into();
    }
    "Healthy".into()
}

fn replica_set_icon(status: &str) -> &'static str {
    match status {
        "Progressing" => icon::PROGRESSING,
        "Healthy" => icon::OK,
        "ReplicaFailure" => icon::BAD,
        "ScaledDown" => icon::NEUTRAL,
        _ => " ",
    }
}

/// The INFO text of a scale-down deadline: `passed`, or the time left (`23s`), or empty when the
/// annotation is not an RFC 3339 time.
pub fn scale_down_delay(deadline: &str, now: Timestamp) -> String {
    match deadline.parse::<Timestamp>() {
        Ok(deadline) if deadline < now => "passed".into(),
        Ok(deadline) => super::age::human_duration(deadline.duration_since(now)),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_down_delay_texts() {
        let now: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(scale_down_delay("2024-12-31T23:59:59Z", now), "passed");
        assert_eq!(scale_down_delay("2025-01-01T00:00:23Z", now), "23s");
        assert_eq!(scale_down_delay("2025-01-01T00:00:00Z", now), "0s");
        assert_eq!(scale_down_delay("garbage", now), "");
    }
}
