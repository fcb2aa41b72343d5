//! Writes this process made that its caches have not shown yet.
//!
//! A reconcile plans from the reflector caches. Right after a write, the watch event that
//! carries it may not have arrived, and a reconcile started in between (triggered by another
//! object's event) would plan from the old state: it re-creates a ReplicaSet that exists, or
//! sends a status patch with a stale resourceVersion that fails with 409 and is retried. Both
//! cost API writes and delay the Rollouts queued behind it. So each write is remembered until
//! the cache has moved past it, and a reconcile that would read older state waits for the
//! watch event instead (which triggers the reconcile again).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// How long a write is waited for before the cache is trusted anyway (a lost watch event
/// must not stop a Rollout).
const PATIENCE: Duration = Duration::from_secs(10);

/// A ReplicaSet write: `before` is the resourceVersion it was made from (None: created).
#[derive(Clone, Debug, PartialEq, Eq)]
struct ReplicaSetWrite {
    name: String,
    before: Option<String>,
}

#[derive(Debug, Default)]
struct Pending {
    /// resourceVersions of the Rollout our writes were made from: older than our last write,
    /// so a cache showing one of them has not caught up.
    rollout_before: Vec<String>,
    replica_sets: Vec<ReplicaSetWrite>,
    at: Option<Instant>,
}

/// What the caches show of a Rollout and its ReplicaSets, for [`Expectations::satisfied`].
pub trait CacheView {
    /// The cached Rollout's resourceVersion.
    fn rollout_version(&self) -> Option<String>;
    /// The cached ReplicaSet's resourceVersion (None when the cache does not have it).
    fn replica_set_version(&self, name: &str) -> Option<String>;
}

/// Unseen writes per Rollout (by uid).
#[derive(Debug, Default)]
pub struct Expectations {
    pending: Mutex<HashMap<String, Pending>>,
}

impl Expectations {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Pending>) -> R) -> R {
        let mut map = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut map)
    }

    /// The Rollout was written from version `before` and the server moved it to a new one.
    pub fn rollout_written(&self, uid: &str, before: &str) {
        self.with(|m| {
            let p = m.entry(uid.to_string()).or_default();
            if !p.rollout_before.iter().any(|v| v == before) {
                p.rollout_before.push(before.to_string());
            }
            p.at = Some(Instant::now());
        });
    }

    /// A ReplicaSet was created (`before` None) or changed from `before`.
    pub fn replica_set_written(&self, uid: &str, name: &str, before: Option<&str>) {
        self.with(|m| {
            let p = m.entry(uid.to_string()).or_default();
            if !p.replica_sets.iter().any(|w| w.name == name) {
                p.replica_sets.push(ReplicaSetWrite {
                    name: name.to_string(),
                    before: before.map(str::to_string),
                });
            }
            p.at = Some(Instant::now());
        });
    }

    /// Whether the caches show every write made for this Rollout (forgetting them once they
    /// do, or once they are too old to wait for).
    pub fn satisfied(&self, uid: &str, view: &dyn CacheView) -> bool {
        self.with(|m| {
            let Some(p) = m.get(uid) else {
                return true;
            };
            let expired = p.at.is_none_or(|at| at.elapsed() > PATIENCE);
            let cached = view.rollout_version();
            let rollout_seen = !p.rollout_before.iter().any(|v| Some(v) == cached.as_ref());
            let replica_sets_seen =
                p.replica_sets
                    .iter()
                    .all(|w| match (view.replica_set_version(&w.name), &w.before) {
                        (None, None) => false,
                        (Some(now), Some(before)) => now != *before,
                        _ => true,
                    });
            let done = expired || (rollout_seen && replica_sets_seen);
            if done {
                m.remove(uid);
            }
            done
        })
    }

    /// Forget a Rollout (deleted).
    pub fn forget(&self, uid: &str) {
        self.with(|m| {
            m.remove(uid);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct View {
        rollout: &'static str,
        rss: Vec<(&'static str, &'static str)>,
    }

    impl CacheView for View {
        fn rollout_version(&self) -> Option<String> {
            Some(self.rollout.into())
        }
        fn replica_set_version(&self, name: &str) -> Option<String> {
            self.rss
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_string())
        }
    }

    #[test]
    fn nothing_written_is_satisfied() {
        let e = Expectations::default();
        assert!(e.satisfied(
            "u",
            &View {
                rollout: "1",
                rss: vec![]
            }
        ));
    }

    #[test]
    fn a_rollout_write_waits_until_the_cache_moves_past_its_version() {
        let e = Expectations::default();
        e.rollout_written("u", "10");
        e.rollout_written("u", "11");
        assert!(!e.satisfied(
            "u",
            &View {
                rollout: "10",
                rss: vec![]
            }
        ));
        assert!(e.satisfied(
            "u",
            &View {
                rollout: "12",
                rss: vec![]
            }
        ));
        // Forgotten once seen.
        assert!(e.satisfied(
            "u",
            &View {
                rollout: "10",
                rss: vec![]
            }
        ));
    }

    #[test]
    fn created_and_updated_replica_sets_must_show_up() {
        let e = Expectations::default();
        e.replica_set_written("u", "demo-new", None);
        e.replica_set_written("u", "demo-old", Some("5"));
        let stale = View {
            rollout: "1",
            rss: vec![("demo-old", "6")],
        };
        assert!(!e.satisfied("u", &stale), "created ReplicaSet not cached yet");
        let half = View {
            rollout: "1",
            rss: vec![("demo-new", "7"), ("demo-old", "5")],
        };
        assert!(
            !e.satisfied("u", &half),
            "updated ReplicaSet still at the old version"
        );
        let fresh = View {
            rollout: "1",
            rss: vec![("demo-new", "7"), ("demo-old", "6")],
        };
        assert!(e.satisfied("u", &fresh));
    }

    #[test]
    fn other_rollouts_are_not_affected() {
        let e = Expectations::default();
        e.rollout_written("a", "3");
        assert!(e.satisfied(
            "b",
            &View {
                rollout: "3",
                rss: vec![]
            }
        ));
        assert!(!e.satisfied(
            "a",
            &View {
                rollout: "3",
                rss: vec![]
            }
        ));
        e.forget("a");
        assert!(e.satisfied(
            "a",
            &View {
                rollout: "3",
                rss: vec![]
            }
        ));
    }
}
