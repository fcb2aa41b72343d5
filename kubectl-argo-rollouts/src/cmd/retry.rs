//! `retry rollout NAME...` (clears `status.abort`) and `retry experiment NAME...` (clears the
//! experiment's status so it starts over).

use std::io::Write;

use kube::Api;
use serde_json::json;
use shared_types::{experiment::Experiment, rollout::Rollout};

use super::patch;
use crate::{error::Error, kube::Session};

/// Retries each aborted rollout and prints `rollout '<name>' retried`.
pub async fn rollouts(session: &Session, names: &[String], out: &mut dyn Write) -> Result<(), Error> {
    let api: Api<Rollout> = Api::namespaced(session.client.clone(), &session.namespace);
    let p = json!({"status": {"abort": false}});
    for name in names {
        let ro = patch::rollout_status(&api, name, &p, &p).await?;
        writeln!(
            out,
            "rollout '{}' retried",
            ro.metadata.name.as_deref().unwrap_or(name)
        )?;
    }
    Ok(())
}

/// Retries each experiment (Experiments have no status subresource) and prints
/// `experiment '<name>' retried`.
pub async fn experiments(session: &Session, names: &[String], out: &mut dyn Write) -> Result<(), Error> {
    let api: Api<Experiment> = Api::namespaced(session.client.clone(), &session.namespace);
    patch::merge_each(
        &api,
        names,
        &json!({"status": null}),
        "experiment",
        "retried",
        out,
    )
    .await
}
