//! `abort NAME...`: sets `status.abort` so the controller returns traffic and pods to stable.

use std::io::Write;

use kube::Api;
use serde_json::json;
use shared_types::rollout::Rollout;

use super::patch;
use crate::{error::Error, kube::Session};

/// Aborts each rollout and prints `rollout '<name>' aborted`.
pub async fn run(session: &Session, names: &[String], out: &mut dyn Write) -> Result<(), Error> {
    let api: Api<Rollout> = Api::namespaced(session.client.clone(), &session.namespace);
    let p = json!({"status": {"abort": true}});
    for name in names {
        let ro = patch::rollout_status(&api, name, &p, &p).await?;
        writeln!(
            out,
            "rollout '{}' aborted",
            ro.metadata.name.as_deref().unwrap_or(name)
        )?;
    }
    Ok(())
}
