//! Splitting objects over all live replicas of a controller, with membership kept in Leases.
//!
//! Each replica holds its own Lease `<group>-member-<id>` (labelled with the group), renews it
//! every `renew_period`, and watches the group's Leases: the live members are those renewed
//! within their `leaseDurationSeconds`. An object belongs to one member, chosen by rendezvous
//! hashing of its UID over the live members, so a join or a death moves only the objects that
//! must move. Two rules keep an object from being worked on by two replicas at once while views
//! of the membership differ for a moment:
//!
//! - a replica gives up an object as soon as its own view says so, and gives up everything when
//!   it could not renew its Lease for two thirds of the lease duration (others take over only
//!   once the Lease has expired);
//! - a replica takes up an object it did not own under its previous view only after a handoff
//!   delay, by which time the previous owner has seen the same change.
//!
//! Leaving (shutdown) deletes the Lease, so the others take over without waiting for expiry.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt, reflector, watcher},
};
use prometheus_client::{metrics::gauge::Gauge, registry::Registry};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::Error;

/// Label naming a Lease's membership group.
pub const GROUP_LABEL: &str = "argo-rollouts.argoproj.io/shard-group";

/// Sharding flags.
#[derive(clap::Args, Clone, Debug)]
pub struct ShardArgs {
    /// Split the objects over every replica running with this flag (membership in Leases),
    /// instead of electing one leader that does all the work.
    #[arg(long, env = "ARGO_ROLLOUTS_SHARDING", default_value_t = false)]
    pub sharding: bool,
    /// How long a member's Lease stays valid without a renewal (how fast a dead replica's
    /// objects move).
    #[arg(long, env = "ARGO_ROLLOUTS_SHARD_LEASE_DURATION", default_value = "10s", value_parser = shared_types::duration::parse_duration)]
    pub shard_lease_duration: Duration,
    /// How often a member renews its Lease (and re-reads the membership).
    #[arg(long, env = "ARGO_ROLLOUTS_SHARD_RENEW_PERIOD", default_value = "2s", value_parser = shared_types::duration::parse_duration)]
    pub shard_renew_period: Duration,
    /// How long a replica waits before working on an object that was another member's.
    #[arg(long, env = "ARGO_ROLLOUTS_SHARD_HANDOFF", default_value = "3s", value_parser = shared_types::duration::parse_duration)]
    pub shard_handoff: Duration,
}

impl ShardArgs {
    /// Rejects timings under which the guarantees above do not hold.
    pub fn validate(&self) -> Result<(), Error> {
        if self.shard_renew_period.is_zero() || self.shard_renew_period * 2 > self.shard_lease_duration {
            return Err(Error::ShardFlags(format!(
                "--shard-renew-period ({:?}) must be positive and at most half of --shard-lease-duration ({:?})",
                self.shard_renew_period, self.shard_lease_duration
            )));
        }
        Ok(())
    }
}

/// Whether this replica works on an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Another member's (or no member's, while this replica is not a live member).
    NotMine,
    /// Ours.
    Mine,
    /// Ours from this instant on (it was another member's until the last membership change).
    MineFrom(Instant),
}

/// The membership as this replica sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct View {
    members: BTreeSet<String>,
    previous: BTreeSet<String>,
    changed_at: Option<Instant>,
}

/// A replica's handle on its group: who owns what, and a signal on every membership change.
#[derive(Clone)]
pub struct Shard {
    me: String,
    handoff: Duration,
    view: Arc<Mutex<View>>,
    changes: watch::Receiver<u64>,
    members_gauge: Gauge,
}

impl Shard {
    /// This replica's member name.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// The live members, sorted.
    pub fn members(&self) -> Vec<String> {
        self.lock().members.iter().cloned().collect()
    }

    /// Who works on the object with this UID.
    pub fn ownership(&self, uid: &str) -> Ownership {
        let view = self.lock();
        if owner(&view.members, uid) != Some(self.me.as_str()) {
            return Ownership::NotMine;
        }
        if owner(&view.previous, uid) == Some(self.me.as_str()) {
            return Ownership::Mine;
        }
        match view.changed_at {
            Some(at) if at.elapsed() < self.handoff => Ownership::MineFrom(at + self.handoff),
            _ => Ownership::Mine,
        }
    }

    /// A stream that yields on every membership change (reconcile everything again).
    pub fn on_change(&self) -> impl futures::Stream<Item = ()> + Send + 'static {
        futures::stream::unfold(self.changes.clone(), |mut rx| async move {
            rx.changed().await.ok().map(|()| ((), rx))
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, View> {
        self.view
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers `<prefix>_shard_members` (live members this replica sees).
    pub fn register_metrics(&self, registry: &mut Registry, prefix: &str) {
        registry.register(
            format!("{prefix}_shard_members"),
            "Live members of the shard group, as this replica sees them.",
            self.members_gauge.clone(),
        );
    }
}

/// The member with the highest rendezvous weight for `uid`.
fn owner<'a>(members: &'a BTreeSet<String>, uid: &str) -> Option<&'a str> {
    members.iter().max_by_key(|m| weight(m, uid)).map(String::as_str)
}

/// FNV-1a over member and UID, then a splitmix64 finaliser: stable across processes, builds and
/// Rust versions (std's hasher promises none of that), and evenly spread.
fn weight(member: &str, uid: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in member.bytes().chain([0]).chain(uid.bytes()) {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Joins the group `group` (Leases in `namespace`) and keeps the membership current until
/// `shutdown`, then leaves (deletes its Lease).
pub async fn join(
    client: Client,
    namespace: &str,
    group: &str,
    args: &ShardArgs,
    shutdown: CancellationToken,
) -> Result<Shard, Error> {
    args.validate()?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let me = format!("{group}-member-{}", &id[..12]);
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let lease_seconds = i32::try_from(args.shard_lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
    let now = MicroTime(Timestamp::now());
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(me.clone()),
            labels: Some([(GROUP_LABEL.to_string(), group.to_string())].into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(me.clone()),
            lease_duration_seconds: Some(lease_seconds),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            ..Default::default()
        }),
    };
    api.create(&PostParams::default(), &lease)
        .await
        .map_err(|e| Error::Failed(format!("cannot create shard Lease {namespace}/{me}: {e}")))?;
    info!(member = %me, group, "joined shard group");

    let (store, writer) = reflector::store::<Lease>();
    let leases = watcher(
        api.clone(),
        watcher::Config::default().labels(&format!("{GROUP_LABEL}={group}")),
    )
    .default_backoff()
    .reflect(writer)
    .applied_objects();
    let (changes_tx, changes) = watch::channel(0u64);
    let shard = Shard {
        me: me.clone(),
        handoff: args.shard_handoff,
        view: Arc::default(),
        changes,
        members_gauge: Gauge::default(),
    };
    let task = shard.clone();
    let (renew_period, renew_deadline) = (args.shard_renew_period, args.shard_lease_duration * 2 / 3);
    tokio::spawn(async move {
        let mut leases = Box::pin(leases);
        let mut tick = tokio::time::interval(renew_period);
        let mut last_renewed = Instant::now();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    let patch = serde_json::json!({"spec": {"renewTime": MicroTime(Timestamp::now())}});
                    match api.patch(&task.me, &PatchParams::default(), &Patch::Merge(patch)).await {
                        Ok(_) => last_renewed = Instant::now(),
                        Err(e) => warn!(member = %task.me, error = %e, "cannot renew shard Lease"),
                    }
                }
                event = leases.next() => if event.is_none() { break },
            }
            // Not renewed for long: others will soon take our objects; stop working on them now.
            let alive = last_renewed.elapsed() < renew_deadline;
            let members = live_members(&store.state(), Timestamp::now(), &task.me, alive);
            update(&task, members, &changes_tx);
        }
        match api.delete(&task.me, &DeleteParams::default()).await {
            Ok(_) => info!(member = %task.me, "left shard group"),
            Err(e) => warn!(member = %task.me, error = %e, "cannot delete shard Lease; it expires"),
        }
    });
    Ok(shard)
}

/// Members whose Lease is current at `now`. Our own membership is `alive` (whether our renewals
/// succeed), not what the cache says.
fn live_members(leases: &[Arc<Lease>], now: Timestamp, me: &str, alive: bool) -> BTreeSet<String> {
    let mut members: BTreeSet<String> = leases
        .iter()
        .filter_map(|lease| {
            let spec = lease.spec.as_ref()?;
            let holder = spec.holder_identity.clone()?;
            let renewed = spec.renew_time.as_ref()?.0;
            let valid = Duration::from_secs(u64::try_from(spec.lease_duration_seconds?).ok()?);
            let expires = renewed.checked_add(valid).ok()?;
            (expires > now && holder != me).then_some(holder)
        })
        .collect();
    if alive {
        members.insert(me.to_string());
    }
    members
}

fn update(shard: &Shard, members: BTreeSet<String>, changes: &watch::Sender<u64>) {
    let mut view = shard.lock();
    if view.members == members {
        return;
    }
    info!(member = %shard.me, members = ?members, "shard membership changed");
    view.previous = std::mem::replace(&mut view.members, members);
    view.changed_at = Some(Instant::now());
    shard
        .members_gauge
        .set(i64::try_from(view.members.len()).unwrap_or(i64::MAX));
    drop(view);
    changes.send_modify(|n| *n += 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn shard(me: &str, handoff: Duration) -> (Shard, watch::Sender<u64>) {
        let (tx, rx) = watch::channel(0);
        (
            Shard {
                me: me.into(),
                handoff,
                view: Arc::default(),
                changes: rx,
                members_gauge: Gauge::default(),
            },
            tx,
        )
    }

    fn uids(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("0b9f{i:04}-6c1e-4d5a-9a7e-{i:012}"))
            .collect()
    }

    #[test]
    fn every_object_has_one_owner_and_load_is_spread() {
        let members = set(&["a", "b", "c"]);
        let mut counts = std::collections::BTreeMap::new();
        for uid in uids(3000) {
            *counts
                .entry(owner(&members, &uid).unwrap().to_string())
                .or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 3);
        assert!(counts.values().all(|&n| (800..1200).contains(&n)), "{counts:?}");
        assert_eq!(owner(&BTreeSet::new(), "x"), None);
    }

    #[test]
    fn a_departure_moves_only_the_departed_members_objects() {
        let before = set(&["a", "b", "c"]);
        let after = set(&["a", "b"]);
        for uid in uids(1000) {
            let was = owner(&before, &uid).unwrap();
            let now = owner(&after, &uid).unwrap();
            if was != "c" {
                assert_eq!(was, now, "{uid} moved without need");
            }
        }
    }

    #[test]
    fn objects_taken_over_wait_for_the_handoff_and_given_up_ones_stop_at_once() {
        let (a, tx) = shard("a", Duration::from_secs(60));
        update(&a, set(&["a", "b"]), &tx);
        let objects = uids(200);
        // At the first view everything of ours waits (we may have just replaced someone).
        assert!(
            objects
                .iter()
                .all(|u| matches!(a.ownership(u), Ownership::NotMine | Ownership::MineFrom(_)))
        );
        let mine_before: Vec<&String> = objects
            .iter()
            .filter(|u| a.ownership(u) != Ownership::NotMine)
            .collect();
        // b dies: its objects come to us after the handoff; ours stay ours without waiting.
        update(&a, set(&["a"]), &tx);
        for u in &objects {
            match a.ownership(u) {
                Ownership::Mine => assert!(mine_before.contains(&u)),
                Ownership::MineFrom(_) => assert!(!mine_before.contains(&u)),
                Ownership::NotMine => panic!("{u}: the only member owns everything"),
            }
        }
        // c joins: what is c's now is not ours at once.
        update(&a, set(&["a", "c"]), &tx);
        let moved = objects
            .iter()
            .filter(|u| a.ownership(u) == Ownership::NotMine)
            .count();
        assert!((50..150).contains(&moved), "{moved}");
        assert_eq!(*tx.borrow(), 3, "one signal per change");
        update(&a, set(&["a", "c"]), &tx);
        assert_eq!(*tx.borrow(), 3, "no signal without a change");
    }

    #[test]
    fn a_replica_that_cannot_renew_owns_nothing() {
        let (a, tx) = shard("a", Duration::ZERO);
        update(&a, set(&["b"]), &tx);
        assert!(uids(50).iter().all(|u| a.ownership(u) == Ownership::NotMine));
    }

    #[test]
    fn expired_leases_are_not_members() {
        let now = Timestamp::now();
        let lease = |holder: &str, renewed_ago: i64| {
            Arc::new(Lease {
                metadata: ObjectMeta::default(),
                spec: Some(LeaseSpec {
                    holder_identity: Some(holder.into()),
                    lease_duration_seconds: Some(10),
                    renew_time: Some(MicroTime(
                        now - k8s_openapi::jiff::SignedDuration::from_secs(renewed_ago),
                    )),
                    ..Default::default()
                }),
            })
        };
        let leases = [lease("a", 1), lease("b", 9), lease("c", 11)];
        assert_eq!(live_members(&leases, now, "a", true), set(&["a", "b"]));
        // Our own Lease counts only while we can renew it.
        assert_eq!(live_members(&leases, now, "a", false), set(&["b"]));
    }

    #[test]
    fn renew_period_must_fit_the_lease() {
        let args = |renew: u64, lease: u64| ShardArgs {
            sharding: true,
            shard_lease_duration: Duration::from_secs(lease),
            shard_renew_period: Duration::from_secs(renew),
            shard_handoff: Duration::from_secs(3),
        };
        assert!(args(2, 10).validate().is_ok());
        assert!(
            args(6, 10)
                .validate()
                .unwrap_err()
                .to_string()
                .contains("--shard-renew-period")
        );
    }
}
