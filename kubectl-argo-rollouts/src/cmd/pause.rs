//! `pause NAME...`: sets `spec.paused`, the user-level halt (no pause condition).

use std::io::Write;

use kube::Api;
use serde_json::json;
use shared_types::rollout::Rollout;

use super::patch;
use crate::{error::Error, kube::Session};

/// Pauses each rollout and prints `rollout '<name>' paused`.
pub async fn run(session: &Session, names: &[String], out: &mut dyn Write) -> Result<(), Error> {
    let api: Api<Rollout> = Api::namespaced(session.client.clone(), &session.namespace);
    for name in names {
        let ro = patch::merge(&api, name, &json!({"spec": {"paused": true}})).await?;
        writeln!(
            out,
            "rollout '{}' paused",
            ro.metadata.name.as_deref().unwrap_or(name)
        )?;
    }
    Ok(())
}
