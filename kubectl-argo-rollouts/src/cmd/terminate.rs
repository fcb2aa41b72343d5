//! `terminate analysisrun NAME...` and `terminate experiment NAME...`: set `spec.terminate`.

use std::io::Write;

use kube::Api;
use serde_json::json;
use shared_types::{analysis::AnalysisRun, experiment::Experiment};

use super::patch;
use crate::{error::Error, kube::Session};

/// Terminates each AnalysisRun and prints `analysisRun '<name>' terminated`.
pub async fn analysis_runs(session: &Session, names: &[String], out: &mut dyn Write) -> Result<(), Error> {
    let api: Api<AnalysisRun> = Api::namespaced(session.client.clone(), &session.namespace);
    patch::merge_each(
        &api,
        names,
        &json!({"spec": {"terminate": true}}),
        "analysisRun",
        "terminated",
        out,
    )
    .await
}

/// Terminates each Experiment. Argo's plugin prints `experiment '<name>' retried` here (sic);
/// the same text is kept for scripts that match on it.
pub async fn experiments(session: &Session, names: &[String], out: &mut dyn Write) -> Result<(), Error> {
    let api: Api<Experiment> = Api::namespaced(session.client.clone(), &session.namespace);
    patch::merge_each(
        &api,
        names,
        &json!({"spec": {"terminate": true}}),
        "experiment",
        "retried",
        out,
    )
    .await
}
