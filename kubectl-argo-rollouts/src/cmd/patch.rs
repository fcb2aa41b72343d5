//! How the plugin writes: JSON merge patches (and JSON patches for `undo`/`set image`) with the
//! field manager `kubectl-argo-rollouts`, status changes going to the `status` subresource.

use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::Value;
use shared_types::{constants::field_manager, rollout::Rollout};

use crate::error::{Error, api_code};

/// Patch parameters carrying the plugin's field manager.
pub fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(field_manager::KUBECTL_PLUGIN.to_string()),
        ..Default::default()
    }
}

/// Merge-patches a Rollout's status subresource. Like Argo, when the server answers 404 (a CRD
/// without the status subresource, as in Argo v0.9) the `fallback` patch is sent to the main
/// resource instead; for a rollout that does not exist that second request yields the usual
/// `not found` error.
pub async fn rollout_status(
    api: &Api<Rollout>,
    name: &str,
    status: &Value,
    fallback: &Value,
) -> Result<Rollout, Error> {
    match api.patch_status(name, &params(), &Patch::Merge(status)).await {
        Ok(ro) => Ok(ro),
        Err(e) if api_code(&e) == Some(404) => {
            Ok(api.patch(name, &params(), &Patch::Merge(fallback)).await?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Merge-patches the main resource.
pub async fn merge<K>(api: &Api<K>, name: &str, patch: &Value) -> Result<K, Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    Ok(api.patch(name, &params(), &Patch::Merge(patch)).await?)
}

/// Merge-patches each named object and prints `<label> '<name>' <verb>` for it, as Argo's
/// `retry experiment` and `terminate` commands do.
pub async fn merge_each<K>(
    api: &Api<K>,
    names: &[String],
    patch: &Value,
    label: &str,
    verb: &str,
    out: &mut dyn std::io::Write,
) -> Result<(), Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug + kube::Resource,
{
    for name in names {
        let object = merge(api, name, patch).await?;
        let shown = object.meta().name.clone().unwrap_or_else(|| name.clone());
        writeln!(out, "{label} '{shown}' {verb}")?;
    }
    Ok(())
}

/// Sends a JSON patch (RFC 6902) given as a JSON array of operations.
pub async fn json<K>(api: &Api<K>, name: &str, ops: Value) -> Result<K, Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = serde_json::from_value(ops).map_err(|e| Error::msg(format!("invalid JSON patch: {e}")))?;
    Ok(api.patch(name, &params(), &Patch::<()>::Json(patch)).await?)
}
