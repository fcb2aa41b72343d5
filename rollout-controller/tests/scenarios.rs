//! The seed's test cases 2.2.1-2.2.3 run against the pure planner with a small simulated
//! cluster: ReplicaSets get exactly the pods they ask for and those pods are ready at once, so
//! what is left is the controller's own decisions (names, revisions, replica counts, steps,
//! phases, Service selectors). The e2e tests repeat the cases on a real API server.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{ReplicaSet, ReplicaSetStatus},
        core::v1::{Pod, Service},
    },
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::{SignedDuration, Timestamp},
};
use rollout_controller::{
    plan::{Action, Observed, plan},
    replicaset as rsutil,
};
use shared_types::{constants::keys, rollout::Rollout};

struct World {
    rollout: Rollout,
    replica_sets: Vec<ReplicaSet>,
    services: BTreeMap<String, Service>,
    pods: Vec<Pod>,
    now: Timestamp,
    events: Vec<String>,
    /// Pods of ReplicaSets with these hashes never become available (a broken release).
    broken: Vec<String>,
    serial: u32,
}

fn service(name: &str) -> Service {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": "mock-server"}, "ports": [{"port": 8080, "targetPort": 8080}]}
    }))
    .expect("service parses")
}

impl World {
    fn new(manifest: &str, services: &[&str]) -> Self {
        let mut rollout: Rollout = serde_saphyr::from_str(manifest).expect("rollout manifest parses");
        rollout.metadata.namespace = Some("default".into());
        rollout.metadata.uid = Some("rollout-uid".into());
        rollout.metadata.generation = Some(1);
        // The API server's CRD default (protocol: TCP) is part of the stored template and the hash.
        let mut template = serde_json::to_value(&rollout.spec.template).expect("template serializes");
        for c in template["spec"]["containers"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            for p in c["ports"].as_array_mut().into_iter().flatten() {
                p["protocol"] = "TCP".into();
            }
        }
        rollout.spec.template = serde_json::from_value(template).expect("template parses");
        let now = Timestamp::from_second(1_700_000_000).expect("valid time");
        World {
            rollout,
            replica_sets: Vec::new(),
            services: services.iter().map(|s| (s.to_string(), service(s))).collect(),
            pods: Vec::new(),
            now,
            events: Vec::new(),
            broken: Vec::new(),
            serial: 0,
        }
    }

    /// One reconcile, with the resulting writes applied and the ReplicaSet controller's work
    /// (pods created and ready) done at once.
    fn reconcile(&mut self) -> bool {
        let observed = Observed {
            rollout: self.rollout.clone(),
            replica_sets: self.replica_sets.clone(),
            services: self.services.clone(),
            pods: self.pods.clone(),
            now: self.now,
        };
        let plan = plan(&observed);
        let mut changed = false;
        for action in plan.actions {
            changed = true;
            match action {
                Action::DefaultSpecReplicas => self.rollout.spec.replicas = Some(1),
                Action::SetRolloutRevision(r) => {
                    self.rollout
                        .metadata
                        .annotations
                        .get_or_insert_with(Default::default)
                        .insert(keys::REVISION.into(), r);
                }
                Action::CreateReplicaSet(rs) => self.replica_sets.push(*rs),
                Action::UpdateReplicaSet(u) => {
                    let rs = self
                        .replica_sets
                        .iter_mut()
                        .find(|rs| rs.metadata.name.as_deref() == Some(u.name.as_str()))
                        .expect("updated ReplicaSet exists");
                    if let Some(r) = u.replicas {
                        rs.spec.replicas = Some(r);
                    }
                    let ann = rs.metadata.annotations.get_or_insert_with(Default::default);
                    for (k, v) in u.annotations {
                        match v {
                            Some(v) => ann.insert(k, v),
                            None => ann.remove(&k),
                        };
                    }
                }
                Action::EvictPod(name) => self
                    .pods
                    .retain(|p| p.metadata.name.as_deref() != Some(name.as_str())),
                Action::DeleteReplicaSet(name) => self
                    .replica_sets
                    .retain(|rs| rs.metadata.name.as_deref() != Some(&name)),
                Action::SwitchService { service, hash } => {
                    let svc = self.services.get_mut(&service).expect("service exists");
                    svc.spec
                        .get_or_insert_with(Default::default)
                        .selector
                        .get_or_insert_with(Default::default)
                        .insert(keys::POD_TEMPLATE_HASH.into(), hash);
                    svc.metadata
                        .annotations
                        .get_or_insert_with(Default::default)
                        .insert(keys::MANAGED_BY_ROLLOUTS.into(), "mock-server".into());
                }
            }
        }
        self.events.extend(
            plan.events
                .into_iter()
                .map(|e| format!("{}: {}", e.reason, e.message)),
        );
        if let Some(status) = plan.status
            && Some(&status) != self.rollout.status.as_ref()
        {
            self.rollout.status = Some(status);
            changed = true;
        }
        // The ReplicaSet controller and the kubelets: pods to match spec.replicas, ready at once
        // unless the release is broken.
        for rs in &mut self.replica_sets {
            let want = usize::try_from(rsutil::spec_replicas(rs)).unwrap_or(0);
            let hash = rsutil::hash(rs).unwrap_or_default().to_string();
            let prefix = format!("{}-", rs.metadata.name.clone().unwrap_or_default());
            let owned = |p: &Pod| p.metadata.name.as_deref().is_some_and(|n| n.starts_with(&prefix));
            while self.pods.iter().filter(|p| owned(p)).count() > want {
                let last = self.pods.iter().rposition(|p| owned(p)).expect("an owned pod");
                self.pods.remove(last);
                changed = true;
            }
            while self.pods.iter().filter(|p| owned(p)).count() < want {
                self.serial += 1;
                let pod: Pod = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("{prefix}{}", self.serial), "creationTimestamp": Time(self.now),
                        "labels": {"app": "mock-server", keys::POD_TEMPLATE_HASH: hash}}
                }))
                .expect("pod");
                self.pods.push(pod);
                changed = true;
            }
            let want = rsutil::spec_replicas(rs);
            let available = if self.broken.contains(&hash) { 0 } else { want };
            let status = rs.status.get_or_insert_with(ReplicaSetStatus::default);
            if status.replicas != want || status.available_replicas != Some(available) {
                *status = ReplicaSetStatus {
                    replicas: want,
                    ready_replicas: Some(available),
                    available_replicas: Some(available),
                    ..Default::default()
                };
                changed = true;
            }
        }
        changed
    }

    fn settle(&mut self) {
        for _ in 0..100 {
            if !self.reconcile() {
                return;
            }
        }
        panic!("rollout did not settle: {:#?}", self.rollout.status);
    }

    fn edit_spec(&mut self, edit: impl FnOnce(&mut Rollout)) {
        edit(&mut self.rollout);
        let g = self.rollout.metadata.generation.unwrap_or(1);
        self.rollout.metadata.generation = Some(g + 1);
    }

    fn set_image(&mut self, image: &str) {
        self.edit_spec(|r| {
            if let Some(t) = r.spec.template.as_mut() {
                if let Some(s) = t.spec.as_mut() {
                    s.containers[0].image = Some(image.into());
                }
            }
        });
    }

    /// What `kubectl argo rollouts promote` does to a paused rollout.
    fn promote(&mut self) {
        if let Some(s) = self.rollout.status.as_mut() {
            s.pause_conditions = None;
        }
    }

    /// What `kubectl argo rollouts abort` does.
    fn abort(&mut self) {
        if let Some(s) = self.rollout.status.as_mut() {
            s.abort = Some(true);
        }
    }

    /// What `kubectl argo rollouts undo` does: the template of the previous revision.
    fn undo(&mut self) {
        let current = self
            .rollout
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(keys::REVISION))
            .and_then(|r| r.parse::<i64>().ok())
            .unwrap_or(0);
        let target = self
            .replica_sets
            .iter()
            .filter(|rs| rsutil::revision(rs) < current)
            .max_by_key(|rs| rsutil::revision(rs))
            .expect("a previous revision exists")
            .clone();
        let mut template = target.spec.template.clone().expect("template");
        if let Some(l) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            l.remove(keys::POD_TEMPLATE_HASH);
        }
        self.edit_spec(|r| r.spec.template = Some(template));
    }

    fn advance(&mut self, secs: i64) {
        self.now = self.now + SignedDuration::from_secs(secs);
    }

    fn phase(&self) -> (String, String) {
        let s = self.rollout.status.clone().unwrap_or_default();
        (s.phase.unwrap_or_default(), s.message.unwrap_or_default())
    }

    fn step(&self) -> Option<i32> {
        self.rollout.status.as_ref().and_then(|s| s.current_step_index)
    }

    /// `name -> (spec replicas, revision)`.
    fn replica_sets(&self) -> BTreeMap<String, (i32, i64)> {
        self.replica_sets
            .iter()
            .map(|rs| {
                (
                    rs.metadata.name.clone().unwrap_or_default(),
                    (rsutil::spec_replicas(rs), rsutil::revision(rs)),
                )
            })
            .collect()
    }

    fn selector(&self, service: &str) -> String {
        self.services[service]
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .and_then(|s| s.get(keys::POD_TEMPLATE_HASH))
            .cloned()
            .unwrap_or_default()
    }

    fn counts(&self) -> (i32, i32, i32, i32) {
        let s = self.rollout.status.clone().unwrap_or_default();
        (
            s.replicas.unwrap_or(0),
            s.updated_replicas.unwrap_or(0),
            s.ready_replicas.unwrap_or(0),
            s.available_replicas.unwrap_or(0),
        )
    }
}

const V1: &str = "6579c6cc98";
const V2: &str = "7c6fcfb847";
const V3: &str = "6fcb56df9b";

fn rs(hash: &str) -> String {
    format!("mock-server-{hash}")
}

const BLUE_GREEN: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: mock-server
spec:
  replicas: 5
  selector:
    matchLabels:
      app: mock-server
  strategy:
    blueGreen:
      activeService: mock-server-active
      previewService: mock-server-preview
      autoPromotionEnabled: false
  template:
    metadata:
      labels:
        app: mock-server
    spec:
      containers:
      - name: mock-server
        image: ghcr.io/ssup2/mock-go-server:1.0.0
        ports:
        - containerPort: 8080
"#;

fn canary_manifest(second_pause: &str) -> String {
    format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: mock-server
spec:
  replicas: 5
  selector:
    matchLabels:
      app: mock-server
  strategy:
    canary:
      steps:
      - setWeight: 20
      - pause: {{}}
      - setWeight: 40
      - pause: {second_pause}
      - setWeight: 100
      canaryService: mock-server-canary
      stableService: mock-server-stable
  template:
    metadata:
      labels:
        app: mock-server
    spec:
      containers:
      - name: mock-server
        image: ghcr.io/ssup2/mock-go-server:1.0.0
        ports:
        - containerPort: 8080
"#
    )
}

#[test]
fn seed_2_2_1_blue_green() {
    let mut w = World::new(BLUE_GREEN, &["mock-server-active", "mock-server-preview"]);
    w.settle();
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
    assert_eq!(w.replica_sets(), BTreeMap::from([(rs(V1), (5, 1))]));
    assert_eq!(
        (
            w.selector("mock-server-active"),
            w.selector("mock-server-preview")
        ),
        (V1.into(), V1.into())
    );
    assert_eq!(w.counts(), (5, 5, 5, 5));

    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "BlueGreenPause".into()));
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (5, 1)), (rs(V2), (5, 2))])
    );
    assert_eq!(
        (
            w.selector("mock-server-active"),
            w.selector("mock-server-preview")
        ),
        (V1.into(), V2.into())
    );
    // Desired 5, Current 10, Updated 5, Ready 5 and Available 5 (from the active ReplicaSet).
    assert_eq!(w.counts(), (10, 5, 5, 5));

    w.set_image("ghcr.io/ssup2/mock-go-server:3.0.0");
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "BlueGreenPause".into()));
    assert_eq!(
        (
            w.selector("mock-server-active"),
            w.selector("mock-server-preview")
        ),
        (V1.into(), V3.into())
    );
    // Revision 2 waits out its 30 s scale-down delay, then goes.
    assert_eq!(w.replica_sets()[&rs(V2)], (5, 2));
    w.advance(31);
    w.settle();
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (5, 1)), (rs(V2), (0, 2)), (rs(V3), (5, 3))])
    );
    assert_eq!(w.phase(), ("Paused".into(), "BlueGreenPause".into()));

    w.promote();
    w.settle();
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
    assert_eq!(
        (
            w.selector("mock-server-active"),
            w.selector("mock-server-preview")
        ),
        (V3.into(), V3.into())
    );
    assert_eq!(
        w.rollout
            .status
            .as_ref()
            .and_then(|s| s.stable_rs.clone())
            .as_deref(),
        Some(V3)
    );
    w.advance(31);
    w.settle();
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (0, 1)), (rs(V2), (0, 2)), (rs(V3), (5, 3))])
    );
    assert_eq!(w.counts(), (5, 5, 5, 5));
    assert!(
        w.events
            .iter()
            .any(|e| e.starts_with("RolloutCompleted: Rollout completed update to revision 3")),
        "{:?}",
        w.events
    );
}

#[test]
fn seed_2_2_2_canary_success() {
    let mut w = World::new(
        &canary_manifest("{duration: 30s}"),
        &["mock-server-stable", "mock-server-canary", "mock-server"],
    );
    w.settle();
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
    assert_eq!(w.step(), Some(5));
    assert_eq!(w.replica_sets(), BTreeMap::from([(rs(V1), (5, 1))]));
    assert_eq!(
        (w.selector("mock-server-stable"), w.selector("mock-server-canary")),
        (V1.into(), V1.into())
    );
    assert_eq!(w.selector("mock-server"), "", "the plain Service is left alone");

    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "CanaryPauseStep".into()));
    assert_eq!(w.step(), Some(1));
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (4, 1)), (rs(V2), (1, 2))])
    );
    assert_eq!(w.counts(), (5, 1, 5, 5));
    assert_eq!(
        (w.selector("mock-server-stable"), w.selector("mock-server-canary")),
        (V1.into(), V2.into())
    );

    w.set_image("ghcr.io/ssup2/mock-go-server:3.0.0");
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "CanaryPauseStep".into()));
    assert_eq!(w.step(), Some(1));
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (4, 1)), (rs(V2), (0, 2)), (rs(V3), (1, 3))])
    );
    assert_eq!(
        (w.selector("mock-server-stable"), w.selector("mock-server-canary")),
        (V1.into(), V3.into())
    );

    w.promote();
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "CanaryPauseStep".into()));
    assert_eq!(w.step(), Some(3));
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (3, 1)), (rs(V2), (0, 2)), (rs(V3), (2, 3))])
    );

    // The timed pause ends by itself after 30 s.
    w.advance(31);
    w.settle();
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
    assert_eq!(w.step(), Some(5));
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (0, 1)), (rs(V2), (0, 2)), (rs(V3), (5, 3))])
    );
    assert_eq!(
        (w.selector("mock-server-stable"), w.selector("mock-server-canary")),
        (V3.into(), V3.into())
    );
    assert!(
        w.events
            .iter()
            .any(|e| e == "RolloutStepCompleted: Rollout step 1/5 completed (setWeight: 20)"),
        "{:?}",
        w.events
    );
}

#[test]
fn seed_2_2_3_canary_undo_and_abort() {
    let mut w = World::new(
        &canary_manifest("{}"),
        &["mock-server-stable", "mock-server-canary", "mock-server"],
    );
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:3.0.0");
    w.settle();
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (4, 1)), (rs(V2), (0, 2)), (rs(V3), (1, 3))])
    );

    // Undo: revision 2's template comes back as revision 4, reusing its ReplicaSet.
    w.undo();
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "CanaryPauseStep".into()));
    assert_eq!(w.step(), Some(1));
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (4, 1)), (rs(V2), (1, 4)), (rs(V3), (0, 3))])
    );
    assert_eq!(w.selector("mock-server-canary"), V2);

    // Undo again: revision 3's template comes back as revision 5.
    w.undo();
    w.settle();
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (4, 1)), (rs(V2), (0, 4)), (rs(V3), (1, 5))])
    );
    assert_eq!(w.selector("mock-server-canary"), V3);
    let history = w
        .replica_sets
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(rs(V3).as_str()))
        .and_then(|r| rsutil::annotation(r, keys::REVISION_HISTORY).map(str::to_string));
    assert_eq!(history.as_deref(), Some("3"));

    w.abort();
    w.settle();
    assert_eq!(
        w.phase(),
        (
            "Degraded".into(),
            "RolloutAborted: Rollout aborted update to revision 5".into()
        )
    );
    assert_eq!(w.step(), Some(0));
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (5, 1)), (rs(V2), (0, 4)), (rs(V3), (0, 5))])
    );
    assert_eq!(w.counts(), (5, 0, 5, 5));
    assert_eq!(
        (w.selector("mock-server-stable"), w.selector("mock-server-canary")),
        (V1.into(), V1.into())
    );
}

#[test]
fn abort_then_retry_restarts_the_steps() {
    let mut w = World::new(
        &canary_manifest("{}"),
        &["mock-server-stable", "mock-server-canary"],
    );
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    w.abort();
    w.settle();
    assert_eq!(w.phase().0, "Degraded");
    // retry: the plugin sets abort to false.
    if let Some(s) = w.rollout.status.as_mut() {
        s.abort = Some(false);
    }
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "CanaryPauseStep".into()));
    assert_eq!(w.step(), Some(1));
    assert_eq!(w.replica_sets()[&rs(V2)].0, 1);
    let progressing = w
        .rollout
        .status
        .as_ref()
        .and_then(|s| s.condition("Progressing").cloned())
        .expect("Progressing condition");
    assert_ne!(progressing.reason, "RolloutAborted");
}

#[test]
fn promote_full_skips_remaining_steps() {
    let mut w = World::new(
        &canary_manifest("{}"),
        &["mock-server-stable", "mock-server-canary"],
    );
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    if let Some(s) = w.rollout.status.as_mut() {
        s.promote_full = Some(true);
    }
    w.settle();
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
    assert_eq!(w.step(), Some(5));
    assert_eq!(
        w.replica_sets(),
        BTreeMap::from([(rs(V1), (0, 1)), (rs(V2), (5, 2))])
    );
    assert_eq!(w.rollout.status.as_ref().and_then(|s| s.promote_full), None);
}

#[test]
fn manual_pause_halts_steps_and_resume_continues() {
    let mut w = World::new(
        &canary_manifest("{}"),
        &["mock-server-stable", "mock-server-canary"],
    );
    w.settle();
    w.edit_spec(|r| r.spec.paused = Some(true));
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "manually paused".into()));
    w.edit_spec(|r| r.spec.paused = Some(false));
    w.settle();
    assert_eq!(w.phase(), ("Paused".into(), "CanaryPauseStep".into()));
    assert_eq!(w.step(), Some(1));
}

#[test]
fn scaling_the_rollout_rescales_replica_sets() {
    let mut w = World::new(
        &canary_manifest("{}"),
        &["mock-server-stable", "mock-server-canary"],
    );
    w.settle();
    w.edit_spec(|r| r.spec.replicas = Some(8));
    w.settle();
    assert_eq!(w.replica_sets(), BTreeMap::from([(rs(V1), (8, 1))]));
    assert_eq!(w.rollout.status.as_ref().and_then(|s| s.hpa_replicas), Some(8));
    assert_eq!(
        w.rollout
            .status
            .as_ref()
            .and_then(|s| s.selector.clone())
            .as_deref(),
        Some("app=mock-server")
    );
}

#[test]
fn invalid_spec_is_reported_and_recovers() {
    let mut w = World::new(
        &canary_manifest("{}"),
        &["mock-server-stable", "mock-server-canary"],
    );
    w.edit_spec(|r| {
        if let Some(c) = r.spec.strategy.canary.as_mut() {
            c.steps.get_or_insert_with(Vec::new)[0].set_weight = Some(150);
        }
    });
    w.settle();
    let (phase, message) = w.phase();
    assert_eq!(phase, "Degraded");
    assert_eq!(
        message,
        "InvalidSpec: The Rollout \"mock-server\" is invalid: spec.strategy.canary.steps[0].setWeight: Invalid value: 150: SetWeight needs to be between 0 and 100"
    );
    assert!(
        w.replica_sets.is_empty(),
        "nothing is created for an invalid spec"
    );
    w.edit_spec(|r| {
        if let Some(c) = r.spec.strategy.canary.as_mut() {
            c.steps.get_or_insert_with(Vec::new)[0].set_weight = Some(20);
        }
    });
    w.settle();
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
}

#[test]
fn missing_service_is_reported() {
    let mut w = World::new(&canary_manifest("{}"), &["mock-server-stable"]);
    w.settle();
    assert_eq!(
        w.phase().1,
        "InvalidSpec: The Rollout \"mock-server\" is invalid: spec.strategy.canary.canaryService: Invalid value: \"mock-server-canary\": services \"mock-server-canary\" not found"
    );
}

#[test]
fn restart_replaces_every_pod_within_the_unavailability_budget() {
    let mut w = World::new(
        &canary_manifest("{}"),
        &["mock-server-stable", "mock-server-canary"],
    );
    w.settle();
    let before: Vec<String> = w.pods.iter().filter_map(|p| p.metadata.name.clone()).collect();
    w.advance(10);
    let restart_at = Time(w.now);
    w.edit_spec(|r| r.spec.restart_at = Some(restart_at.clone()));
    w.advance(1);
    // One reconcile evicts at most maxUnavailable (1 of 5) pods.
    w.reconcile();
    let evicted = before
        .iter()
        .filter(|p| !w.pods.iter().any(|q| q.metadata.name.as_ref() == Some(p)))
        .count();
    assert_eq!(evicted, 1);
    assert_eq!(w.phase(), ("Progressing".into(), "rollout is restarting".into()));
    for _ in 0..20 {
        w.advance(1);
        w.settle();
    }
    assert!(w.pods.iter().all(|p| {
        p.metadata
            .creation_timestamp
            .as_ref()
            .is_some_and(|c| c.0 > restart_at.0)
    }));
    assert_eq!(
        w.rollout.status.as_ref().and_then(|s| s.restarted_at.clone()),
        Some(restart_at)
    );
    assert_eq!(w.phase(), ("Healthy".into(), String::new()));
}

#[test]
fn blue_green_abort_scales_preview_down_after_the_delay() {
    let mut w = World::new(BLUE_GREEN, &["mock-server-active", "mock-server-preview"]);
    w.settle();
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    w.abort();
    w.settle();
    assert_eq!(w.phase().0, "Degraded");
    assert_eq!(w.selector("mock-server-active"), V1);
    assert_eq!(
        w.replica_sets()[&rs(V2)].0,
        5,
        "preview kept for abortScaleDownDelaySeconds"
    );
    w.advance(31);
    w.settle();
    assert_eq!(w.replica_sets()[&rs(V2)].0, 0);
    assert_eq!(w.replica_sets()[&rs(V1)].0, 5);
}

#[test]
fn progress_deadline_exceeded_degrades_and_can_abort() {
    let manifest = canary_manifest("{}").replace(
        "  replicas: 5\n",
        "  replicas: 5\n  progressDeadlineSeconds: 60\n  progressDeadlineAbort: true\n",
    );
    let mut w = World::new(&manifest, &["mock-server-stable", "mock-server-canary"]);
    w.settle();
    w.broken.push(V2.into());
    w.set_image("ghcr.io/ssup2/mock-go-server:2.0.0");
    w.settle();
    assert_eq!(
        w.phase(),
        ("Progressing".into(), "more replicas need to be updated".into()),
        "{:#?} {:?}",
        w.events,
        w.replica_sets
            .iter()
            .map(|r| (r.metadata.name.clone(), r.status.clone()))
            .collect::<Vec<_>>()
    );
    w.advance(61);
    w.settle();
    let (phase, message) = w.phase();
    assert_eq!(phase, "Degraded");
    assert!(
        message.starts_with("RolloutAborted: Rollout aborted update to revision 2: ProgressDeadlineExceeded"),
        "{message}"
    );
    assert_eq!(
        w.replica_sets()[&rs(V1)].0,
        5,
        "aborted: stable back to full size"
    );
}
