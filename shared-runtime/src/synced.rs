//! Whether a watch has delivered its initial list, for any number of waiters.
//!
//! Not `Store::wait_until_ready`: in kube-runtime 5 the store's readiness is a oneshot channel
//! that remembers only the last waker, so of several tasks waiting at once (a controller's
//! runner, a readiness probe, reconciles) only one is woken and the others hang until something
//! else polls them. A `tokio::sync::watch` channel wakes them all.

use futures::{Stream, StreamExt};
use kube::{
    Api, Resource,
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        watcher,
    },
};
use tokio::sync::watch;

/// Set once the watch it tracks has listed its objects (and the cache it fills holds them).
#[derive(Clone, Debug)]
pub struct Synced(watch::Receiver<bool>);

impl Synced {
    /// Whether the initial list has been delivered.
    pub fn is_synced(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits for the initial list; false if the watch ended before it.
    pub async fn wait(&self) -> bool {
        let mut rx = self.0.clone();
        rx.wait_for(|synced| *synced).await.is_ok()
    }

    /// Waits for all of them; false if any watch ended first.
    pub async fn all(synced: impl IntoIterator<Item = Synced>) -> bool {
        futures::future::join_all(synced.into_iter().map(|s| async move { s.wait().await }))
            .await
            .into_iter()
            .all(|ok| ok)
    }
}

/// A watch of `api` (with back-off) filling a cache: the cache, the watch's events (to drive,
/// or to trigger reconciles from) and whether it has listed its objects.
#[allow(clippy::type_complexity)] // the three parts every watch of a controller needs
pub fn cached<K>(
    api: Api<K>,
    config: watcher::Config,
) -> (
    Store<K>,
    impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    Synced,
)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + std::hash::Hash + Default,
{
    let (store, writer) = reflector::store::<K>();
    let (events, synced) = track(watcher(api, config).default_backoff().reflect(writer));
    (store, events, synced)
}

/// A [`Synced`] its owner sets by hand, for state derived from several watches (a configuration
/// built from a ConfigMap and a Secret): waiters wake when the sender sends `true`.
pub fn manual() -> (watch::Sender<bool>, Synced) {
    let (tx, rx) = watch::channel(false);
    (tx, Synced(rx))
}

/// Passes a watch event stream through, marking the returned [`Synced`] at its first
/// `InitDone`. Put it after `reflect`, so the cache holds the list when waiters wake.
pub fn track<K, S>(events: S) -> (impl Stream<Item = S::Item> + Send + 'static, Synced)
where
    K: Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    let (tx, rx) = watch::channel(false);
    let events = events.inspect(move |event| {
        if matches!(event, Ok(watcher::Event::InitDone)) {
            tx.send_replace(true);
        }
    });
    (events, Synced(rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_waiter_wakes_at_the_first_init_done() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<watcher::Event<String>, watcher::Error>>();
        let (events, synced) = track(rx);
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let s = synced.clone();
                tokio::spawn(async move { s.wait().await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(!synced.is_synced());
        let drain = tokio::spawn(events.collect::<Vec<_>>());
        tx.unbounded_send(Ok(watcher::Event::Init)).expect("send");
        tx.unbounded_send(Ok(watcher::Event::InitApply("a".into())))
            .expect("send");
        tx.unbounded_send(Ok(watcher::Event::InitDone)).expect("send");
        for w in waiters {
            assert!(w.await.expect("joins"));
        }
        assert!(synced.is_synced());
        drop(tx);
        assert_eq!(drain.await.expect("joins").len(), 3);
    }

    #[tokio::test]
    async fn a_watch_that_ends_first_is_not_synced() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<watcher::Event<String>, watcher::Error>>();
        let (events, synced) = track(rx);
        drop(tx);
        let _ = events.collect::<Vec<_>>().await;
        assert!(!synced.wait().await);
    }
}
