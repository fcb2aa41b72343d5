//! What tests do to and read from a Rollout: the plugin's patches (set image, promote, abort,
//! retry) and the phase once the controller has observed the current generation.

use std::time::Duration;

use anyhow::Result;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use shared_types::rollout::{Rollout, RolloutStatus};

use crate::{TestNamespace, wait_until};

/// How long a Rollout may take to reach a phase.
pub const TIMEOUT: Duration = Duration::from_secs(90);

/// Phase and message once the controller has observed the current generation
/// (`<not observed>` before).
pub async fn phase(ns: &TestNamespace, name: &str) -> Result<(String, String)> {
    let ro = ns.api::<Rollout>().get(name).await?;
    let observed = ro.status.as_ref().and_then(|s| s.observed_generation.clone())
        == ro.metadata.generation.map(|g| g.to_string());
    let st = ro.status.unwrap_or_default();
    Ok(if observed {
        (st.phase.unwrap_or_default(), st.message.unwrap_or_default())
    } else {
        ("<not observed>".into(), String::new())
    })
}

/// Waits until the Rollout is in `want` (with the generation observed).
pub async fn wait_phase(ns: &TestNamespace, name: &str, want: &str) -> Result<()> {
    wait_until(&format!("{name} {want}"), TIMEOUT, || async {
        let (p, m) = phase(ns, name).await?;
        Ok(if p == want {
            Ok(())
        } else {
            Err(format!("{p}: {m}"))
        })
    })
    .await
}

/// The Rollout's status as stored now.
pub async fn status(ns: &TestNamespace, name: &str) -> Result<RolloutStatus> {
    Ok(ns.api::<Rollout>().get(name).await?.status.unwrap_or_default())
}

/// A JSON merge patch of the Rollout.
pub async fn merge(ns: &TestNamespace, name: &str, patch: Value) -> Result<()> {
    ns.api::<Rollout>()
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// A JSON patch (RFC 6902) of the Rollout.
pub async fn json_patch(ns: &TestNamespace, name: &str, ops: Value) -> Result<()> {
    ns.api::<Rollout>()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::<()>::Json(serde_json::from_value(ops)?),
        )
        .await?;
    Ok(())
}

async fn merge_status(ns: &TestNamespace, name: &str, status: Value) -> Result<()> {
    ns.api::<Rollout>()
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await?;
    Ok(())
}

/// `kubectl argo rollouts set image` of the first container.
pub async fn set_image(ns: &TestNamespace, name: &str, image: &str) -> Result<()> {
    json_patch(
        ns,
        name,
        json!([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": image}]),
    )
    .await
}

/// `kubectl argo rollouts promote`: clears the pause conditions and `spec.paused`.
pub async fn promote(ns: &TestNamespace, name: &str) -> Result<()> {
    merge_status(ns, name, json!({"pauseConditions": null})).await?;
    merge(ns, name, json!({"spec": {"paused": false}})).await
}

/// `kubectl argo rollouts promote --full`.
pub async fn promote_full(ns: &TestNamespace, name: &str) -> Result<()> {
    merge_status(ns, name, json!({"promoteFull": true})).await
}

/// `kubectl argo rollouts abort`.
pub async fn abort(ns: &TestNamespace, name: &str) -> Result<()> {
    merge_status(ns, name, json!({"abort": true})).await
}

/// `kubectl argo rollouts retry rollout`.
pub async fn retry(ns: &TestNamespace, name: &str) -> Result<()> {
    merge_status(ns, name, json!({"abort": false})).await
}
