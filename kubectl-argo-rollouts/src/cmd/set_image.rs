//! `set image NAME CONTAINER=IMAGE`: changes container images in the Rollout's pod template.
//!
//! Argo reads the Rollout and writes it back whole (retrying on conflicts). We send a JSON patch
//! that only touches the images, guarded by `test` operations on the container names, so a
//! concurrent edit of the container list makes the patch fail instead of changing the wrong
//! container; such failures (and conflicts) are retried from a fresh read, five attempts in all.

use std::io::Write;

use kube::{Api, api::Patch};
use serde_json::{Value, json};
use shared_types::rollout::Rollout;

use super::patch;
use crate::{
    cli::SetImageArgs,
    error::{Error, api_code},
    kube::Session,
};

const MAX_ATTEMPTS: usize = 5;

/// The JSON patch setting `image` on the container named `container` (`*`: every container,
/// init and ephemeral containers included) of `ro`'s pod template.
pub fn set_image_patch(ro: &Rollout, container: &str, image: &str) -> Result<Value, Error> {
    if ro.spec.workload_ref.is_some() && ro.spec.template.is_none() {
        return Err(Error::msg(
            "rollout uses a workloadRef: set the image on the referenced workload instead",
        ));
    }
    let spec = ro.spec.template.as_ref().and_then(|t| t.spec.as_ref());
    let lists: [(&str, Vec<(&str, bool)>); 3] = [
        (
            "initContainers",
            spec.and_then(|s| s.init_containers.as_deref())
                .unwrap_or_default()
                .iter()
                .map(|c| (c.name.as_str(), c.image.is_some()))
                .collect(),
        ),
        (
            "containers",
            spec.map(|s| {
                s.containers
                    .iter()
                    .map(|c| (c.name.as_str(), c.image.is_some()))
                    .collect()
            })
            .unwrap_or_default(),
        ),
        (
            "ephemeralContainers",
            spec.and_then(|s| s.ephemeral_containers.as_deref())
                .unwrap_or_default()
                .iter()
                .map(|c| (c.name.as_str(), c.image.is_some()))
                .collect(),
        ),
    ];
    let mut ops = Vec::new();
    for (field, containers) in &lists {
        for (i, (name, has_image)) in containers.iter().enumerate() {
            if *name != container && container != "*" {
                continue;
            }
            let base = format!("/spec/template/spec/{field}/{i}");
            ops.push(json!({"op": "test", "path": format!("{base}/name"), "value": name}));
            let op = if *has_image { "replace" } else { "add" };
            ops.push(json!({"op": op, "path": format!("{base}/image"), "value": image}));
        }
    }
    if ops.is_empty() {
        return Err(Error::msg(format!(
            "unable to find container named \"{container}\""
        )));
    }
    Ok(Value::Array(ops))
}

/// Updates the image and prints `rollout "<name>" image updated`.
pub async fn run(session: &Session, args: &SetImageArgs, out: &mut dyn Write) -> Result<(), Error> {
    let (container, image) = (
        args.container_image.container.as_str(),
        args.container_image.image.as_str(),
    );
    let api: Api<Rollout> = Api::namespaced(session.client.clone(), &session.namespace);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let ro = api.get(&args.name).await?;
        let ops = set_image_patch(&ro, container, image)?;
        let json_patch =
            serde_json::from_value(ops).map_err(|e| Error::msg(format!("invalid JSON patch: {e}")))?;
        match api
            .patch(&args.name, &patch::params(), &Patch::<()>::Json(json_patch))
            .await
        {
            Ok(_) => break,
            // 409: conflict; 422: a `test` failed because the containers changed meanwhile.
            Err(e) if attempt < MAX_ATTEMPTS && matches!(api_code(&e), Some(409 | 422)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    writeln!(out, "rollout \"{}\" image updated", args.name)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout() -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "r"},
            "spec": {"strategy": {"canary": {}}, "template": {"spec": {
                "initContainers": [{"name": "init", "image": "busybox"}],
                "containers": [{"name": "app", "image": "app:1"}, {"name": "sidecar", "image": "proxy:1"}]
            }}}
        }))
        .unwrap()
    }

    #[test]
    fn patches_the_named_container_only() {
        let ops = set_image_patch(&rollout(), "sidecar", "proxy:2").unwrap();
        assert_eq!(
            ops,
            json!([
                {"op": "test", "path": "/spec/template/spec/containers/1/name", "value": "sidecar"},
                {"op": "replace", "path": "/spec/template/spec/containers/1/image", "value": "proxy:2"}
            ])
        );
    }

    #[test]
    fn star_patches_every_container() {
        let ops = set_image_patch(&rollout(), "*", "x:9").unwrap();
        assert_eq!(ops.as_array().unwrap().len(), 6);
        assert_eq!(ops[1]["path"], "/spec/template/spec/initContainers/0/image");
    }

    #[test]
    fn unknown_container_is_an_error() {
        let err = set_image_patch(&rollout(), "nope", "x:1").unwrap_err();
        assert_eq!(err.to_string(), "unable to find container named \"nope\"");
    }
}
