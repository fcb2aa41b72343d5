//! Watch plumbing shared by `get --watch`, `list --watch`, `status` and `wait`: reflector stores
//! fed by watchers (which re-list and back off on errors by themselves), Ctrl-C and timeouts.

use std::{fmt::Debug, hash::Hash, time::Duration};

use futures::{StreamExt, stream::BoxStream};
use kube::{
    Api, Resource,
    runtime::{
        WatchStreamExt,
        reflector::{self, Store, reflector},
        watcher::{self, Event, watcher},
    },
};
use serde::de::DeserializeOwned;
use shared_types::rollout::Rollout;

/// What a watched stream reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// The store of stream `n` changed (or its watch hit an error and will retry).
    Changed(usize),
    /// The store of stream `n` finished its initial list.
    Ready(usize),
}

/// A store kept up to date by a watcher on `api`, and the stream that drives it (it must be
/// polled for the store to fill). `index` tags the stream's [`Signal`]s.
pub fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    index: usize,
) -> (Store<K>, BoxStream<'static, Signal>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(api, config).default_backoff())
        .map(move |event| match event {
            Ok(Event::InitDone) => Signal::Ready(index),
            _ => Signal::Changed(index),
        })
        .boxed();
    (reader, stream)
}

/// Updates of one rollout: `Some` on every change, `None` when it is deleted. Watch errors are
/// retried with back-off by the watcher and not reported.
pub fn rollout_updates(api: Api<Rollout>, name: &str) -> BoxStream<'static, Option<Rollout>> {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    watcher(api, config)
        .default_backoff()
        .filter_map(|event| async move {
            match event {
                Ok(Event::Apply(ro) | Event::InitApply(ro)) => Some(Some(ro)),
                Ok(Event::Delete(_)) => Some(None),
                _ => None,
            }
        })
        .boxed()
}

/// Completes after `timeout`, or never when there is none.
pub async fn deadline(timeout: Option<Duration>) {
    match timeout {
        Some(t) => tokio::time::sleep(t).await,
        None => futures::future::pending::<()>().await,
    }
}

/// Completes on Ctrl-C (never, if the signal handler cannot be installed).
pub async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        futures::future::pending::<()>().await;
    }
}
