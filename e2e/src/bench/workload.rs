//! The benchmark's Rollouts: their manifests, the API calls that create, update and promote
//! them, and the watches that record when each one first reaches a state.
//!
//! Times are taken on the local monotonic clock: when a request returns, and when a watch event
//! showing the new state arrives (creationTimestamp has only one-second precision).

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Result, anyhow};
use futures::{StreamExt, stream};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::{
    Api, Client,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    core::{ApiResource, GroupVersionKind},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::{Value, json};

/// Label on every benchmark Rollout and its pods.
pub const PART_OF: (&str, &str) = ("app.kubernetes.io/part-of", "argo-rs-scale-bench");
/// The pod-template-hash label our ReplicaSets carry.
pub const POD_TEMPLATE_HASH: &str = "rollouts-pod-template-hash";
/// Attempts per API call.
const ATTEMPTS: u32 = 5;
/// Time allowed for one API call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The Rollout API resource.
pub fn rollout_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout");
    ApiResource::from_gvk_with_plural(&gvk, "rollouts")
}

/// Rollouts in the namespace.
pub fn rollouts(client: &Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &rollout_resource())
}

/// `bench-0000`, `bench-0001`, ...
pub fn rollout_name(i: usize) -> String {
    format!("bench-{i:04}")
}

/// The one container of the pod template.
pub fn container(image: &str) -> Value {
    json!({
        "name": "app",
        "image": image,
        "resources": {"requests": {"cpu": "1m", "memory": "1Mi"}},
    })
}

/// A basic canary Rollout (no traffic routing): `setWeight: 20`, then an indefinite pause.
pub fn rollout_manifest(name: &str, replicas: u32, image: &str) -> Value {
    let (part_of_key, part_of) = PART_OF;
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "labels": {part_of_key: part_of}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, part_of_key: part_of}},
                "spec": {"containers": [container(image)]},
            },
            "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}},
        },
    })
}

/// JSON merge patch changing the image (a merge patch replaces the whole container list, so it
/// carries the full container).
pub fn image_patch(image: &str) -> Value {
    json!({"spec": {"template": {"spec": {"containers": [container(image)]}}}})
}

/// What the benchmark reads of a Rollout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// `metadata.generation`.
    pub generation: i64,
    /// `status.observedGeneration` (a string in Argo's API; numbers accepted too).
    pub observed_generation: Option<i64>,
    /// `status.phase`.
    pub phase: String,
    /// `status.currentStepIndex`.
    pub step: Option<i64>,
    /// `status.pauseConditions[].reason`.
    pub pause_reasons: Vec<String>,
    /// `status.stableRS`.
    pub stable_rs: Option<String>,
    /// `status.currentPodHash`.
    pub current_pod_hash: Option<String>,
    /// `spec.paused`.
    pub spec_paused: bool,
}

impl Snapshot {
    /// Reads a Rollout.
    pub fn of(obj: &DynamicObject) -> Self {
        let status = &obj.data["status"];
        let string = |v: &Value| v.as_str().map(str::to_string);
        Self {
            generation: obj.metadata.generation.unwrap_or_default(),
            observed_generation: status["observedGeneration"]
                .as_i64()
                .or_else(|| status["observedGeneration"].as_str()?.parse().ok()),
            phase: status["phase"].as_str().unwrap_or_default().to_string(),
            step: status["currentStepIndex"].as_i64(),
            pause_reasons: status["pauseConditions"]
                .as_array()
                .map(|a| a.iter().filter_map(|c| string(&c["reason"])).collect())
                .unwrap_or_default(),
            stable_rs: string(&status["stableRS"]),
            current_pod_hash: string(&status["currentPodHash"]),
            spec_paused: obj.data["spec"]["paused"].as_bool().unwrap_or(false),
        }
    }

    fn observed(&self) -> bool {
        self.observed_generation == Some(self.generation)
    }

    /// Healthy, for the current generation.
    pub fn healthy(&self) -> bool {
        self.phase == "Healthy" && self.observed()
    }

    /// Paused by the canary pause step at `step`, for the current generation.
    pub fn at_pause_step(&self, step: i64) -> bool {
        self.phase == "Paused"
            && self.observed()
            && self.step == Some(step)
            && self.pause_reasons.iter().any(|r| r == "CanaryPauseStep")
    }

    /// Healthy on a new stable ReplicaSet (not `old_stable`).
    pub fn healthy_on_new_stable(&self, old_stable: Option<&str>) -> bool {
        self.healthy()
            && self.stable_rs.is_some()
            && self.stable_rs == self.current_pod_hash
            && self.stable_rs.as_deref() != old_stable
    }

    /// One line for reports of Rollouts that did not converge.
    pub fn describe(&self) -> String {
        let observed = self
            .observed_generation
            .map_or_else(|| "-".to_string(), |g| g.to_string());
        format!(
            "phase={} step={} generation={}/{} pause={:?} stable={} current={}",
            if self.phase.is_empty() { "-" } else { &self.phase },
            self.step.map_or_else(|| "-".to_string(), |s| s.to_string()),
            observed,
            self.generation,
            self.pause_reasons,
            self.stable_rs.as_deref().unwrap_or("-"),
            self.current_pod_hash.as_deref().unwrap_or("-"),
        )
    }
}

/// When things happened to one Rollout (local monotonic clock).
#[derive(Clone, Debug, Default)]
pub struct Marks {
    /// Create request sent.
    pub create_sent: Option<Instant>,
    /// Create request returned.
    pub created: Option<Instant>,
    /// First seen Healthy after creation.
    pub healthy: Option<Instant>,
    /// `status.stableRS` before the image change.
    pub old_stable: Option<String>,
    /// Image patch sent.
    pub image_sent: Option<Instant>,
    /// Image patch returned.
    pub image_patched: Option<Instant>,
    /// Image patch sent and returned, on the wall clock (for the audit log).
    pub image_wall: Option<(Timestamp, Timestamp)>,
    /// The new ReplicaSet (owned by the Rollout, with the new image) first seen.
    pub new_rs: Option<Instant>,
    /// First seen paused at the pause step.
    pub paused: Option<Instant>,
    /// First promote patch sent.
    pub promote_sent: Option<Instant>,
    /// Last promote patch returned.
    pub promoted: Option<Instant>,
    /// First promote patch sent and last returned, on the wall clock (for the audit log).
    pub promote_wall: Option<(Timestamp, Timestamp)>,
    /// First seen Healthy on the new ReplicaSet after the promotion.
    pub promoted_healthy: Option<Instant>,
    /// The last error of a request for this Rollout.
    pub error: Option<String>,
}

/// One Rollout of the benchmark.
#[derive(Clone, Debug, Default)]
pub struct Entry {
    /// Its name.
    pub name: String,
    /// What the Rollout watch last showed.
    pub snapshot: Option<Snapshot>,
    /// What happened when.
    pub marks: Marks,
}

/// All Rollouts of the benchmark, updated by the watches and the requests.
#[derive(Debug)]
pub struct Tracker {
    /// The Rollouts, in creation order.
    pub entries: Vec<Entry>,
    index: HashMap<String, usize>,
    new_image: String,
}

/// The tracker, shared between the watch tasks and the benchmark.
pub type SharedTracker = Arc<Mutex<Tracker>>;

/// Locks the tracker (a poisoned lock only means another task panicked while holding it; the
/// marks are still meaningful).
pub fn lock(tracker: &SharedTracker) -> std::sync::MutexGuard<'_, Tracker> {
    tracker.lock().unwrap_or_else(|e| e.into_inner())
}

impl Tracker {
    /// A tracker for these Rollouts; `new_image` identifies the new ReplicaSets.
    pub fn new(names: Vec<String>, new_image: &str) -> Self {
        let index = names.iter().enumerate().map(|(i, n)| (n.clone(), i)).collect();
        Self {
            entries: names
                .into_iter()
                .map(|name| Entry {
                    name,
                    ..Default::default()
                })
                .collect(),
            index,
            new_image: new_image.to_string(),
        }
    }

    /// A Rollout watch event arrived at `now`.
    pub fn on_rollout(&mut self, obj: &DynamicObject, now: Instant) {
        let Some(&i) = obj.metadata.name.as_ref().and_then(|n| self.index.get(n)) else {
            return;
        };
        let snap = Snapshot::of(obj);
        let marks = &mut self.entries[i].marks;
        if marks.create_sent.is_some() && marks.healthy.is_none() && snap.healthy() {
            marks.healthy = Some(now);
        }
        if marks.image_sent.is_some() && marks.paused.is_none() && snap.at_pause_step(1) {
            marks.paused = Some(now);
        }
        if marks.promote_sent.is_some()
            && marks.promoted_healthy.is_none()
            && snap.healthy_on_new_stable(marks.old_stable.as_deref())
        {
            marks.promoted_healthy = Some(now);
        }
        self.entries[i].snapshot = Some(snap);
    }

    /// A ReplicaSet watch event arrived at `now`.
    pub fn on_replica_set(&mut self, rs: &ReplicaSet, now: Instant) {
        let owner = rs
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.kind == "Rollout" && o.controller == Some(true));
        let Some(&i) = owner.and_then(|o| self.index.get(&o.name)) else {
            return;
        };
        let new_image = rs
            .spec
            .template
            .as_ref()
            .and_then(|t| t.spec.as_ref())
            .is_some_and(|s| {
                s.containers
                    .iter()
                    .any(|c| c.image.as_deref() == Some(&self.new_image))
            });
        let marks = &mut self.entries[i].marks;
        if new_image && marks.new_rs.is_none() {
            marks.new_rs = Some(now);
        }
    }

    /// The Rollout an object belongs to by its name: the Rollout itself, `<rollout>-<hash>`
    /// (its ReplicaSets) or `<rollout>.<suffix>` (its Events).
    pub fn rollout_of(&self, object: &str) -> Option<usize> {
        let end = object.find(['.', '-']).map_or(object.len(), |dash| {
            // `bench-0001-abc`: the first separator after the number.
            object[dash + 1..]
                .find(['.', '-'])
                .map_or(object.len(), |next| dash + 1 + next)
        });
        self.index.get(&object[..end]).copied()
    }

    /// How many Rollouts satisfy `f`.
    pub fn count(&self, f: impl Fn(&Entry) -> bool) -> usize {
        self.entries.iter().filter(|e| f(e)).count()
    }
}

/// The Rollout and ReplicaSet watches feeding a tracker; stopped when dropped.
pub struct Watches {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    synced: Vec<Arc<AtomicBool>>,
    /// Watch errors so far (each is retried with back-off).
    pub errors: Arc<AtomicU64>,
}

impl Watches {
    /// Starts watching Rollouts and ReplicaSets in `namespace`.
    pub fn start(client: &Client, namespace: &str, tracker: SharedTracker) -> Self {
        let errors = Arc::new(AtomicU64::new(0));
        let mut watches = Self {
            tasks: Vec::new(),
            synced: Vec::new(),
            errors: errors.clone(),
        };
        let rollouts = rollouts(client, namespace);
        let t = tracker.clone();
        watches.spawn(rollouts, move |obj: &DynamicObject, now| {
            lock(&t).on_rollout(obj, now)
        });
        let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
        watches.spawn(replica_sets, move |rs: &ReplicaSet, now| {
            lock(&tracker).on_replica_set(rs, now)
        });
        watches
    }

    fn spawn<K>(&mut self, api: Api<K>, mut on_apply: impl FnMut(&K, Instant) + Send + 'static)
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
        K::DynamicType: Eq + std::hash::Hash + Clone,
    {
        let synced = Arc::new(AtomicBool::new(false));
        self.synced.push(synced.clone());
        let errors = self.errors.clone();
        let config = watcher::Config::default();
        self.tasks.push(tokio::spawn(async move {
            let mut events = std::pin::pin!(watcher(api, config).default_backoff());
            while let Some(event) = events.next().await {
                let now = Instant::now();
                match event {
                    Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => on_apply(&obj, now),
                    Ok(watcher::Event::InitDone) => synced.store(true, Ordering::SeqCst),
                    Ok(_) => {}
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    /// Both watches have listed once.
    pub fn synced(&self) -> bool {
        self.synced.iter().all(|s| s.load(Ordering::SeqCst))
    }
}

impl Drop for Watches {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Whether a failed call may succeed when repeated: transport errors, timeouts, 429 and 5xx.
fn retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        _ => true,
    }
}

/// Runs `call` with a time limit, repeating it with back-off while it fails in a retryable way.
pub async fn with_retries<T, F, Fut>(mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=ATTEMPTS {
        match tokio::time::timeout(CALL_TIMEOUT, call()).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) if attempt == ATTEMPTS || !retryable(&e) => return Err(e.into()),
            Ok(Err(_)) => {}
            Err(_) if attempt == ATTEMPTS => return Err(anyhow!("no answer in {CALL_TIMEOUT:?}")),
            Err(_) => {}
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
    unreachable!("the last attempt returns")
}

/// Runs `op(i)` for `i` in `0..n`, at most `concurrency` at a time; returns the failures.
pub async fn for_each_bounded<F, Fut>(n: usize, concurrency: usize, op: F) -> Vec<(usize, anyhow::Error)>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    stream::iter(0..n)
        .map(|i| {
            let fut = op(i);
            async move { fut.await.map_err(|e| (i, e)) }
        })
        .buffer_unordered(concurrency.max(1))
        .filter_map(|r| async move { r.err() })
        .collect::<Vec<_>>()
        .await
}

/// Creates Rollout `i` and records when.
pub async fn create(
    api: &Api<DynamicObject>,
    tracker: &SharedTracker,
    i: usize,
    replicas: u32,
    image: &str,
) -> Result<()> {
    let name = lock(tracker).entries[i].name.clone();
    let obj: DynamicObject = serde_json::from_value(rollout_manifest(&name, replicas, image))?;
    lock(tracker).entries[i].marks.create_sent = Some(Instant::now());
    let result = with_retries(|| async {
        match api.create(&PostParams::default(), &obj).await {
            // An earlier attempt got through after all.
            Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => Ok(()),
            other => other.map(|_| ()),
        }
    })
    .await;
    record(tracker, i, result, |m, now| m.created = Some(now))
}

/// Changes the image of Rollout `i` and records when.
pub async fn change_image(
    api: &Api<DynamicObject>,
    tracker: &SharedTracker,
    i: usize,
    image: &str,
) -> Result<()> {
    let name = {
        let mut t = lock(tracker);
        let entry = &mut t.entries[i];
        entry.marks.old_stable = entry.snapshot.as_ref().and_then(|s| s.stable_rs.clone());
        entry.marks.image_sent = Some(Instant::now());
        entry.name.clone()
    };
    let sent = Timestamp::now();
    let (params, patch) = (PatchParams::default(), image_patch(image));
    let patch = Patch::Merge(&patch);
    let result = with_retries(|| api.patch(&name, &params, &patch)).await;
    record(tracker, i, result.map(|_| ()), |m, now| {
        m.image_patched = Some(now);
        m.image_wall = Some((sent, Timestamp::now()));
    })
}

/// Promotes Rollout `i` as `kubectl argo rollouts promote` does for a paused canary: a merge
/// patch of the status subresource clearing `pauseConditions` (the main resource with
/// `spec.paused: false` too when the subresource is missing), and a spec patch clearing
/// `spec.paused` when it is set. The plugin's preceding GET is left out: the watch has the state.
pub async fn promote(api: &Api<DynamicObject>, tracker: &SharedTracker, i: usize) -> Result<()> {
    let (name, spec_paused) = {
        let mut t = lock(tracker);
        let entry = &mut t.entries[i];
        entry.marks.promote_sent = Some(Instant::now());
        let paused = entry.snapshot.as_ref().is_some_and(|s| s.spec_paused);
        (entry.name.clone(), paused)
    };
    let sent = Timestamp::now();
    let params = PatchParams::default();
    let status = json!({"status": {"pauseConditions": null}});
    let result = with_retries(|| async {
        match api.patch_status(&name, &params, &Patch::Merge(&status)).await {
            Err(kube::Error::Api(s)) if s.code == 404 => {
                let unified = json!({"spec": {"paused": false}, "status": {"pauseConditions": null}});
                api.patch(&name, &params, &Patch::Merge(&unified)).await
            }
            other => other,
        }
    })
    .await;
    let result = match result {
        Ok(_) if spec_paused => {
            let spec = json!({"spec": {"paused": false}});
            let spec = Patch::Merge(&spec);
            with_retries(|| api.patch(&name, &params, &spec))
                .await
                .map(|_| ())
        }
        other => other.map(|_| ()),
    };
    record(tracker, i, result, |m, now| {
        m.promoted = Some(now);
        m.promote_wall = Some((sent, Timestamp::now()));
    })
}

fn record(
    tracker: &SharedTracker,
    i: usize,
    result: Result<()>,
    done: impl FnOnce(&mut Marks, Instant),
) -> Result<()> {
    let now = Instant::now();
    let mut t = lock(tracker);
    let marks = &mut t.entries[i].marks;
    match result {
        Ok(()) => {
            done(marks, now);
            Ok(())
        }
        Err(e) => {
            marks.error = Some(format!("{e:#}"));
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(generation: i64, status: Value) -> DynamicObject {
        let mut obj: DynamicObject =
            serde_json::from_value(rollout_manifest("bench-0000", 2, "example.com/app:1")).unwrap();
        obj.metadata.generation = Some(generation);
        obj.data["status"] = status;
        obj
    }

    #[test]
    fn snapshots_read_argo_status() {
        let s = Snapshot::of(&rollout(
            2,
            json!({"observedGeneration": "2", "phase": "Paused", "currentStepIndex": 1,
                   "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "x"}],
                   "stableRS": "aaa", "currentPodHash": "bbb"}),
        ));
        assert!(s.at_pause_step(1) && !s.healthy());
        assert_eq!(s.stable_rs.as_deref(), Some("aaa"));
        let s = Snapshot::of(&rollout(
            3,
            json!({"observedGeneration": 2, "phase": "Paused", "currentStepIndex": 1}),
        ));
        assert!(!s.at_pause_step(1), "old generation, no pause condition");
        let s = Snapshot::of(&rollout(
            2,
            json!({"observedGeneration": "2", "phase": "Healthy", "stableRS": "bbb", "currentPodHash": "bbb"}),
        ));
        assert!(s.healthy_on_new_stable(Some("aaa")) && !s.healthy_on_new_stable(Some("bbb")));
    }

    #[test]
    fn objects_map_to_their_rollout() {
        let t = Tracker::new(vec!["bench-0000".into(), "bench-0001".into()], "x");
        assert_eq!(t.rollout_of("bench-0001"), Some(1));
        assert_eq!(t.rollout_of("bench-0001-6d4f9c7b8"), Some(1));
        assert_eq!(t.rollout_of("bench-0000.18eeafa49acb55e2"), Some(0));
        assert_eq!(t.rollout_of("bench-0002-abc"), None);
        assert_eq!(t.rollout_of("other"), None);
    }

    #[test]
    fn tracker_marks_states_only_after_the_request() {
        let mut t = Tracker::new(vec!["bench-0000".into()], "example.com/app:2");
        let now = Instant::now();
        let paused = rollout(
            2,
            json!({"observedGeneration": "2", "phase": "Paused", "currentStepIndex": 1,
                   "pauseConditions": [{"reason": "CanaryPauseStep"}]}),
        );
        t.on_rollout(&paused, now);
        assert!(t.entries[0].marks.paused.is_none());
        t.entries[0].marks.image_sent = Some(now);
        t.on_rollout(&paused, now);
        assert_eq!(t.entries[0].marks.paused, Some(now));

        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "bench-0000-abc", "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1",
                "kind": "Rollout", "name": "bench-0000", "uid": "u", "controller": true}]},
            "spec": {"selector": {}, "template": {"spec": {"containers": [container("example.com/app:1")]}}}
        }))
        .unwrap();
        t.on_replica_set(&rs, now);
        assert!(t.entries[0].marks.new_rs.is_none(), "old image");
        let mut rs2 = rs.clone();
        rs2.spec
            .template
            .as_mut()
            .unwrap()
            .spec
            .as_mut()
            .unwrap()
            .containers = vec![serde_json::from_value(container("example.com/app:2")).unwrap()];
        t.on_replica_set(&rs2, now);
        assert_eq!(t.entries[0].marks.new_rs, Some(now));
    }
}
