//! `create -f FILE...`: creates Rollouts, Experiments, AnalysisTemplates,
//! ClusterAnalysisTemplates and AnalysisRuns, checking each document's types first.

use kube::{
    Api,
    api::{ApiResource, DynamicObject, PostParams},
};
use serde_json::Value;
use shared_types::{
    analysis::{AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate},
    constants::field_manager,
    experiment::Experiment,
    rollout::Rollout,
};

use super::{
    get::{fetch_experiment, fetch_rollout, watch_rollout},
    use_color,
};
use crate::{
    Io,
    cli::{CreateArgs, GetExperimentArgs},
    error::Error,
    kube::Session,
    manifest::{GROUP, Kind, decode_strict, read_documents},
};

fn api_resource(kind: Kind) -> ApiResource {
    ApiResource {
        group: GROUP.into(),
        version: "v1alpha1".into(),
        api_version: format!("{GROUP}/v1alpha1"),
        kind: kind.name().into(),
        plural: kind.plural().into(),
    }
}

/// Checks that `doc` decodes as its kind, without unknown fields (Argo refuses such documents
/// rather than letting the API server drop the fields silently).
fn check_types(kind: Kind, doc: &Value) -> Result<(), Error> {
    let result = match kind {
        Kind::Rollout => decode_strict::<Rollout>(doc).map(drop),
        Kind::Experiment => decode_strict::<Experiment>(doc).map(drop),
        Kind::AnalysisTemplate => decode_strict::<AnalysisTemplate>(doc).map(drop),
        Kind::ClusterAnalysisTemplate => decode_strict::<ClusterAnalysisTemplate>(doc).map(drop),
        Kind::AnalysisRun => decode_strict::<AnalysisRun>(doc).map(drop),
    };
    result.map_err(|errors| {
        let first = errors.first().map(ToString::to_string).unwrap_or_default();
        Error::msg(format!("invalid {}: {first}", kind.name()))
    })
}

/// The namespace to create in: the document's, unless `-n` names another one (an error, as in
/// kubectl), else the session's.
fn target_namespace(session: &Session, doc: &Value) -> Result<String, Error> {
    match doc["metadata"]["namespace"].as_str() {
        Some(ns) if session.namespace_explicit && ns != session.namespace => Err(Error::msg(format!(
            "the namespace from the provided object \"{ns}\" does not match the namespace \"{}\". You must pass '--namespace={ns}' to perform this operation.",
            session.namespace
        ))),
        Some(ns) if !ns.is_empty() => Ok(ns.to_string()),
        _ => Ok(session.namespace.clone()),
    }
}

/// Creates every object of every file and prints `<kind>.argoproj.io/<name> created`.
pub async fn run(session: &Session, args: &CreateArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let mut documents = Vec::new();
    for file in &args.files {
        for doc in read_documents(file)? {
            let Some(kind) = Kind::of(&doc) else {
                return Err(Error::msg(format!(
                    "creates of {}/{} unsupported",
                    doc["apiVersion"].as_str().unwrap_or_default(),
                    doc["kind"].as_str().unwrap_or_default()
                )));
            };
            check_types(kind, &doc)?;
            documents.push((kind, doc));
        }
    }
    if args.watch && documents.len() > 1 {
        return Err(Error::Usage("Cannot watch multiple resources".into()));
    }
    let params = PostParams {
        field_manager: Some(field_manager::KUBECTL_PLUGIN.into()),
        ..Default::default()
    };
    let mut created = Vec::new();
    for (kind, doc) in documents {
        let object: DynamicObject = serde_json::from_value(doc.clone())
            .map_err(|e| Error::msg(format!("invalid {}: {e}", kind.name())))?;
        let resource = api_resource(kind);
        let (api, namespace) = if kind == Kind::ClusterAnalysisTemplate {
            (
                Api::<DynamicObject>::all_with(session.client.clone(), &resource),
                None,
            )
        } else {
            let ns = target_namespace(session, &doc)?;
            (
                Api::namespaced_with(session.client.clone(), &ns, &resource),
                Some(ns),
            )
        };
        let result = api.create(&params, &object).await?;
        let name = result.metadata.name.clone().unwrap_or_default();
        writeln!(io.out, "{}.{GROUP}/{name} created", kind.singular())?;
        created.push((kind, name, namespace));
    }
    if !args.watch {
        return Ok(());
    }
    let Some((kind, name, namespace)) = created.pop() else {
        return Ok(());
    };
    let mut session = session.clone();
    if let Some(ns) = namespace {
        session.namespace = ns;
    }
    match kind {
        Kind::Rollout => {
            let color = use_color(args.no_color, io);
            let objects = fetch_rollout(&session, &name).await?;
            watch_rollout(&session, objects, color, None, io).await
        }
        Kind::Experiment => {
            // Make sure it is readable before handing over to `get experiment --watch`.
            fetch_experiment(&session, &name).await?;
            let get = GetExperimentArgs {
                name,
                watch: true,
                no_color: args.no_color,
                output: None,
            };
            super::get::experiment(&session, &get, io).await
        }
        _ => Err(Error::Usage(
            "Can only watch resources of type Rollout or Experiment".into(),
        )),
    }
}
