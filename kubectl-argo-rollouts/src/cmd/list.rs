//! `list rollouts` and `list experiments`.

use std::collections::HashMap;

use futures::StreamExt;
use jiff::Timestamp;
use kube::{
    Api,
    api::{ListParams, ObjectList},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::json;
use shared_types::{experiment::Experiment, rollout::Rollout};

use super::{print_object, watch::interrupted};
use crate::{
    Io,
    cli::{ListExperimentsArgs, ListRolloutsArgs},
    error::Error,
    kube::Session,
    render::{
        list::{RolloutRow, render_experiment_table, render_rollout_table},
        tabwriter::align,
    },
};

fn api<K>(session: &Session, all_namespaces: bool) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    if all_namespaces {
        Api::all(session.client.clone())
    } else {
        Api::namespaced(session.client.clone(), &session.namespace)
    }
}

/// `list rollouts`.
pub async fn rollouts(session: &Session, args: &ListRolloutsArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let api: Api<Rollout> = api(session, args.all_namespaces);
    let mut params = ListParams::default();
    if let Some(name) = &args.name {
        params = params.fields(&format!("metadata.name={name}"));
    }
    let list: ObjectList<Rollout> = api.list(&params).await?;
    if let Some(format) = args.output {
        let items = serde_json::to_value(&list.items).map_err(|e| Error::msg(e.to_string()))?;
        return print_object(
            &json!({"apiVersion": "v1", "kind": "List", "items": items}),
            format,
            io.out,
        );
    }
    if list.items.is_empty() && !args.watch {
        writeln!(io.err, "No resources found.")?;
        return Ok(());
    }
    let stamp = |on: bool| on.then(Timestamp::now);
    io.out.write_all(
        render_rollout_table(&list.items, args.all_namespaces, stamp(args.timestamps)).as_bytes(),
    )?;
    io.out.flush()?;
    if !args.watch {
        return Ok(());
    }
    // Print a line whenever a rollout's row changes; rows already shown are remembered.
    let mut previous: HashMap<(String, String), RolloutRow> = list
        .items
        .iter()
        .map(|ro| {
            let row = RolloutRow::new(ro);
            ((row.namespace.clone(), row.name.clone()), row)
        })
        .collect();
    let mut config = watcher::Config::default();
    if let Some(name) = &args.name {
        config = config.fields(&format!("metadata.name={name}"));
    }
    let mut updates = watcher(api, config).default_backoff().applied_objects().boxed();
    let ctrl_c = interrupted();
    tokio::pin!(ctrl_c);
    loop {
        let ro = tokio::select! {
            update = updates.next() => match update {
                Some(Ok(ro)) => ro,
                Some(Err(_)) => continue,
                None => return Ok(()),
            },
            () = &mut ctrl_c => return Ok(()),
        };
        let row = RolloutRow::new(&ro);
        let key = (row.namespace.clone(), row.name.clone());
        if previous.get(&key) != Some(&row) {
            let line = row.line(args.all_namespaces, stamp(args.timestamps));
            io.out.write_all(align(&line, 0, 2).as_bytes())?;
            io.out.flush()?;
            previous.insert(key, row);
        }
    }
}

/// `list experiments`.
pub async fn experiments(
    session: &Session,
    args: &ListExperimentsArgs,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let api: Api<Experiment> = api(session, args.all_namespaces);
    let list = api.list(&ListParams::default()).await?;
    if list.items.is_empty() {
        writeln!(io.err, "No resources found.")?;
        return Ok(());
    }
    io.out
        .write_all(render_experiment_table(&list.items, args.all_namespaces, Timestamp::now()).as_bytes())?;
    Ok(())
}
