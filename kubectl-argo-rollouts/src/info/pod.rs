//! Pod summaries: the kubectl-style status reason (`Running`, `ContainerCreating`,
//! `Init:1/2`, `CrashLoopBackOff`, `ExitCode:1`, `Terminating`...), readiness and restarts.

use k8s_openapi::api::core::v1::{ContainerState, Pod};

use super::{Metadata, icon};

/// Reason kubelet gives pods on a lost node; such pods being deleted show as `Unknown`.
const NODE_UNREACHABLE_POD_REASON: &str = "NodeLost";

/// One pod of a ReplicaSet.
#[derive(Clone, Debug, PartialEq)]
pub struct PodInfo {
    /// Identity and creation time.
    pub meta: Metadata,
    /// kubectl-style status reason.
    pub status: String,
    /// Status icon.
    pub icon: &'static str,
    /// `<ready containers>/<containers>`.
    pub ready: String,
    /// Container restarts (init containers while initialising, else regular containers).
    pub restarts: i32,
}

impl PodInfo {
    /// Summarises `pod` the way `kubectl get pods` derives its STATUS column.
    pub fn new(pod: &Pod) -> Self {
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let init_specs = spec
            .and_then(|s| s.init_containers.as_deref())
            .unwrap_or_default();
        let total_containers = spec.map(|s| s.containers.len()).unwrap_or(0);

        let mut reason = status.and_then(|s| s.phase.clone()).unwrap_or_default();
        if let Some(r) = status.and_then(|s| s.reason.as_deref()).filter(|r| !r.is_empty()) {
            reason = r.to_string();
        }

        let mut restarts = 0;
        let mut ready_containers = 0;
        let mut initializing = false;
        let init_statuses = status
            .and_then(|s| s.init_container_statuses.as_deref())
            .unwrap_or_default();
        for (i, container) in init_statuses.iter().enumerate() {
            restarts += container.restart_count;
            let state = container.state.as_ref();
            let terminated = state.and_then(|s| s.terminated.as_ref());
            let waiting_reason = state
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref())
                .filter(|r| !r.is_empty());
            // Sidecars are init containers with restartPolicy Always; once started they behave
            // like regular containers and only block initialisation while not ready.
            let is_sidecar = init_specs
                .iter()
                .any(|c| c.name == container.name && c.restart_policy.as_deref() == Some("Always"));
            if let Some(t) = terminated {
                if t.exit_code == 0 {
                    continue;
                }
                reason = match t.reason.as_deref().filter(|r| !r.is_empty()) {
                    Some(r) => format!("Init:{r}"),
                    None => match t.signal.filter(|s| *s != 0) {
                        Some(signal) => format!("Init:Signal:{signal}"),
                        None => format!("Init:ExitCode:{}", t.exit_code),
                    },
                };
                initializing = true;
            } else if is_sidecar && container.started == Some(true) {
                if container.ready {
                    continue;
                }
            } else if let Some(w) = waiting_reason.filter(|r| *r != "PodInitializing") {
                reason = format!("Init:{w}");
                initializing = true;
            } else {
                reason = format!("Init:{i}/{}", init_specs.len());
                initializing = true;
            }
            break;
        }

        if !initializing {
            restarts = 0;
            let mut has_running = false;
            let statuses = status
                .and_then(|s| s.container_statuses.as_deref())
                .unwrap_or_default();
            for container in statuses.iter().rev() {
                restarts += container.restart_count;
                match container_reason(container.state.as_ref()) {
                    Some(r) => reason = r,
                    None => {
                        let running = container.state.as_ref().is_some_and(|s| s.running.is_some());
                        if container.ready && running {
                            has_running = true;
                            ready_containers += 1;
                        }
                    }
                }
            }
            // A pod whose main containers finished but one still runs is Running, not Completed.
            if reason == "Completed" && has_running {
                reason = "Running".to_string();
            }
        }

        if pod.metadata.deletion_timestamp.is_some() {
            reason = if status.and_then(|s| s.reason.as_deref()) == Some(NODE_UNREACHABLE_POD_REASON) {
                "Unknown".to_string()
            } else {
                "Terminating".to_string()
            };
        }

        PodInfo {
            meta: Metadata::from_meta(&pod.metadata),
            icon: pod_icon(&reason),
            status: reason,
            ready: format!("{ready_containers}/{total_containers}"),
            restarts,
        }
    }
}

/// Waiting or terminated reason of a container, if it has one.
fn container_reason(state: Option<&ContainerState>) -> Option<String> {
    let state = state?;
    if let Some(r) = state
        .waiting
        .as_ref()
        .and_then(|w| w.reason.as_deref())
        .filter(|r| !r.is_empty())
    {
        return Some(r.to_string());
    }
    let t = state.terminated.as_ref()?;
    if let Some(r) = t.reason.as_deref().filter(|r| !r.is_empty()) {
        return Some(r.to_string());
    }
    Some(match t.signal.filter(|s| *s != 0) {
        Some(signal) => format!("Signal:{signal}"),
        None => format!("ExitCode:{}", t.exit_code),
    })
}

/// Icon for a pod status reason.
pub fn pod_icon(status: &str) -> &'static str {
    if status.starts_with("Init:") {
        return icon::PROGRESSING;
    }
    if status.starts_with("Signal:") || status.starts_with("ExitCode:") {
        return icon::BAD;
    }
    // Image pull and runtime failures are reported as `ErrImagePull`, `CreateContainerError`...
    if status.ends_with("Error") || status.starts_with("Err") {
        return icon::WARNING;
    }
    match status {
        "Pending" | "Terminating" | "ContainerCreating" => icon::PROGRESSING,
        "Running" | "Completed" => icon::OK,
        "Failed" | "InvalidImageName" | "CrashLoopBackOff" => icon::BAD,
        "ImagePullBackOff" | "RegistryUnavailable" => icon::WARNING,
        "Unknown" => icon::UNKNOWN,
        _ => " ",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn running_ready_pod() {
        let p = PodInfo::new(&pod(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "image": "i", "imageID": "",
                 "state": {"running": {}}}]}
        })));
        assert_eq!(
            (p.status.as_str(), p.icon, p.ready.as_str(), p.restarts),
            ("Running", "✔", "1/1", 2)
        );
    }

    #[test]
    fn waiting_reasons_and_exit_codes() {
        let p = PodInfo::new(&pod(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Pending", "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                 "state": {"waiting": {"reason": "ImagePullBackOff"}}},
                {"name": "b", "ready": false, "restartCount": 3, "image": "i", "imageID": "",
                 "state": {"terminated": {"exitCode": 1}}}]}
        })));
        // Containers are inspected last to first, so the first container's reason wins.
        assert_eq!(
            (p.status.as_str(), p.icon, p.ready.as_str(), p.restarts),
            ("ImagePullBackOff", "⚠", "0/2", 3)
        );
        assert_eq!(pod_icon("ExitCode:1"), "✖");
        assert_eq!(pod_icon("CrashLoopBackOff"), "✖");
        assert_eq!(pod_icon("ErrImagePull"), "⚠");
        assert_eq!(pod_icon("ContainerCreating"), "◌");
    }

    #[test]
    fn init_containers_and_termination() {
        let p = PodInfo::new(&pod(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                 "state": {"terminated": {"exitCode": 0}}},
                {"name": "i2", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                 "state": {"running": {}}}]}
        })));
        assert_eq!((p.status.as_str(), p.icon), ("Init:1/2", "◌"));

        let p = PodInfo::new(&pod(serde_json::json!({
            "metadata": {"name": "p", "deletionTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running"}
        })));
        assert_eq!((p.status.as_str(), p.icon), ("Terminating", "◌"));
    }
}
