//! `create analysisrun`: starts an AnalysisRun from an AnalysisTemplate (`--from`), a
//! ClusterAnalysisTemplate (`--global --from`, or `--from-cluster-template`) or a template in a
//! local file (`--from-file`), with `-a NAME=VALUE` arguments, and prints
//! `analysisrun.argoproj.io/<name> created`.
//!
//! The run is built by the shared builder (`shared_types::analysis_run::Templates::run_spec`),
//! the one the controllers use: templates the chosen one nests are read too (each with a GET,
//! following the references), metrics are flattened, arguments are merged with the templates'
//! defaults and must all end up with a value.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    io::Write,
    path::Path,
};

use kube::{
    Api,
    api::{ObjectMeta, PostParams},
};
use shared_types::{
    analysis::{
        AnalysisRun, AnalysisTemplate, AnalysisTemplateRef, AnalysisTemplateSpec, Argument,
        ClusterAnalysisTemplate, ClusterAnalysisTemplateSpec,
    },
    analysis_run::Templates,
    constants::{field_manager, keys},
};

use crate::{
    cli::CreateAnalysisRunArgs,
    error::Error,
    kube::Session,
    manifest::{GROUP, Kind, decode_strict, read_documents},
};

/// The templates read so far, and the references found missing (left to the builder to report).
#[derive(Default)]
struct Found {
    namespaced: BTreeMap<String, AnalysisTemplate>,
    cluster: BTreeMap<String, ClusterAnalysisTemplate>,
    missing: BTreeSet<(bool, String)>,
}

impl Found {
    fn knows(&self, cluster: bool, name: &str) -> bool {
        self.missing.contains(&(cluster, name.to_string()))
            || if cluster {
                self.cluster.contains_key(name)
            } else {
                self.namespaced.contains_key(name)
            }
    }

    fn insert(&mut self, cluster: bool, name: String, metadata: ObjectMeta, spec: AnalysisTemplateSpec) {
        if cluster {
            let template = ClusterAnalysisTemplate {
                metadata,
                spec: ClusterAnalysisTemplateSpec(spec),
            };
            self.cluster.insert(name, template);
        } else {
            self.namespaced.insert(name, AnalysisTemplate { metadata, spec });
        }
    }

    fn spec(&self, cluster: bool, name: &str) -> Option<&AnalysisTemplateSpec> {
        if cluster {
            self.cluster.get(name).map(|t| &t.spec.0)
        } else {
            self.namespaced.get(name).map(|t| &t.spec)
        }
    }
}

/// The template the run is made from.
struct Root {
    name: String,
    cluster: bool,
}

/// Creates the run and prints `analysisrun.argoproj.io/<name> created`.
pub async fn run(session: &Session, args: &CreateAnalysisRunArgs, out: &mut dyn Write) -> Result<(), Error> {
    let mut found = Found::default();
    let root = match (&args.from, &args.from_cluster_template, &args.from_file) {
        (Some(name), None, None) => fetch_root(session, name, args.global, &mut found).await?,
        (None, Some(name), None) => fetch_root(session, name, true, &mut found).await?,
        (None, None, Some(path)) => read_root(path, args.global, &mut found)?,
        // clap's `source` group guarantees exactly one.
        _ => {
            return Err(Error::Usage(
                "one of --from, --from-cluster-template or --from-file must be specified".into(),
            ));
        }
    };
    fetch_nested(session, &root, &mut found).await?;
    let run = build(args, &root, &found, &session.namespace)?;
    let api: Api<AnalysisRun> = Api::namespaced(session.client.clone(), &session.namespace);
    let params = PostParams {
        field_manager: Some(field_manager::KUBECTL_PLUGIN.into()),
        ..Default::default()
    };
    let created = api.create(&params, &run).await?;
    writeln!(
        out,
        "analysisrun.{GROUP}/{} created",
        created.metadata.name.unwrap_or_default()
    )?;
    Ok(())
}

/// Reads the chosen template from the cluster; a missing one is the API server's `not found`.
async fn fetch_root(session: &Session, name: &str, cluster: bool, found: &mut Found) -> Result<Root, Error> {
    if cluster {
        let api: Api<ClusterAnalysisTemplate> = Api::all(session.client.clone());
        let t = api.get(name).await?;
        found.insert(true, name.to_string(), t.metadata, t.spec.0);
    } else {
        let api: Api<AnalysisTemplate> = Api::namespaced(session.client.clone(), &session.namespace);
        let t = api.get(name).await?;
        found.insert(false, name.to_string(), t.metadata, t.spec);
    }
    Ok(Root {
        name: name.to_string(),
        cluster,
    })
}

/// Reads the template of `--from-file`: one AnalysisTemplate or ClusterAnalysisTemplate document,
/// checked like `create -f` checks it. It counts as cluster-scoped with `--global` or when it is a
/// ClusterAnalysisTemplate.
fn read_root(path: &Path, global: bool, found: &mut Found) -> Result<Root, Error> {
    let docs = read_documents(path)?;
    let [doc] = docs.as_slice() else {
        return Err(Error::msg(format!(
            "{}: expected one AnalysisTemplate or ClusterAnalysisTemplate, found {} documents",
            path.display(),
            docs.len()
        )));
    };
    let first_error = |kind: Kind, errors: Vec<shared_types::field_error::FieldError>| {
        let first = errors.first().map(ToString::to_string).unwrap_or_default();
        Error::msg(format!("invalid {}: {first}", kind.name()))
    };
    let (metadata, spec, cluster_kind) = match Kind::of(doc) {
        Some(kind @ Kind::AnalysisTemplate) => {
            let t: AnalysisTemplate = decode_strict(doc).map_err(|e| first_error(kind, e))?;
            (t.metadata, t.spec, false)
        }
        Some(kind @ Kind::ClusterAnalysisTemplate) => {
            let t: ClusterAnalysisTemplate = decode_strict(doc).map_err(|e| first_error(kind, e))?;
            (t.metadata, t.spec.0, true)
        }
        _ => {
            return Err(Error::msg(format!(
                "{}: expected an AnalysisTemplate or ClusterAnalysisTemplate, found {}/{}",
                path.display(),
                doc["apiVersion"].as_str().unwrap_or_default(),
                doc["kind"].as_str().unwrap_or_default()
            )));
        }
    };
    let name = metadata.name.clone().unwrap_or_default();
    let cluster = global || cluster_kind;
    found.insert(cluster, name.clone(), metadata, spec);
    Ok(Root { name, cluster })
}

/// Reads the templates the root nests, recursively, each once, in reference order. A missing one
/// is remembered and reported by the builder (`AnalysisTemplate "x" not found`), like a cycle.
async fn fetch_nested(session: &Session, root: &Root, found: &mut Found) -> Result<(), Error> {
    let namespaced: Api<AnalysisTemplate> = Api::namespaced(session.client.clone(), &session.namespace);
    let cluster: Api<ClusterAnalysisTemplate> = Api::all(session.client.clone());
    let nested = |found: &Found, is_cluster: bool, name: &str| -> Vec<AnalysisTemplateRef> {
        found
            .spec(is_cluster, name)
            .map(|s| s.templates().to_vec())
            .unwrap_or_default()
    };
    let mut queue: VecDeque<AnalysisTemplateRef> = nested(found, root.cluster, &root.name).into();
    while let Some(r) = queue.pop_front() {
        let is_cluster = r.is_cluster_scope();
        let name = r.template_name;
        if found.knows(is_cluster, &name) {
            continue;
        }
        let fetched = if is_cluster {
            cluster.get_opt(&name).await?.map(|t| (t.metadata, t.spec.0))
        } else {
            namespaced.get_opt(&name).await?.map(|t| (t.metadata, t.spec))
        };
        match fetched {
            Some((metadata, spec)) => {
                found.insert(is_cluster, name.clone(), metadata, spec);
                queue.extend(nested(found, is_cluster, &name));
            }
            None => {
                found.missing.insert((is_cluster, name));
            }
        }
    }
    Ok(())
}

/// The AnalysisRun to create: the builder's spec, `--name` or `--generate-name` (default
/// `<template>-`), and the `--instance-id` label.
fn build(
    args: &CreateAnalysisRunArgs,
    root: &Root,
    found: &Found,
    namespace: &str,
) -> Result<AnalysisRun, Error> {
    let supplied: Vec<Argument> = args
        .arguments
        .iter()
        .map(|a| Argument {
            name: a.name.clone(),
            value: Some(a.value.clone()),
            value_from: None,
        })
        .collect();
    let refs = [AnalysisTemplateRef {
        template_name: root.name.clone(),
        cluster_scope: root.cluster.then_some(true),
    }];
    let templates = Templates {
        namespaced: &found.namespaced,
        cluster: &found.cluster,
    };
    let mut spec = templates
        .run_spec(&refs, &supplied, &[], &[])
        .map_err(|e| Error::msg(e.to_string()))?;
    // Argo passes the arguments through as given when the templates declare none.
    if spec.args.is_none() && !supplied.is_empty() {
        spec.args = Some(supplied);
    }
    let (name, generate_name) = match (&args.name, &args.generate_name) {
        (Some(name), _) => (Some(name.clone()), None),
        (None, Some(prefix)) => (None, Some(prefix.clone())),
        (None, None) if root.name.is_empty() => {
            return Err(Error::Usage(
                "the template has no metadata.name: use --name or --generate-name".into(),
            ));
        }
        (None, None) => (None, Some(format!("{}-", root.name))),
    };
    let labels = args
        .instance_id
        .as_ref()
        .filter(|id| !id.is_empty())
        .map(|id| BTreeMap::from([(keys::CONTROLLER_INSTANCE_ID.to_string(), id.clone())]));
    Ok(AnalysisRun {
        metadata: ObjectMeta {
            name,
            generate_name,
            namespace: Some(namespace.to_string()),
            labels,
            ..Default::default()
        },
        spec,
        status: None,
    })
}
