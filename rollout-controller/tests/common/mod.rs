//! The scenario harness: a small simulated cluster the pure planner is played against.
//! ReplicaSets get exactly the pods they ask for and those pods are ready at once (unless the
//! release is marked broken); AnalysisRuns and Experiments are stored as created, and tests play
//! their controllers by setting their status.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point
#![allow(dead_code)] // each test crate uses a different part of the harness

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{ReplicaSet, ReplicaSetStatus},
        core::v1::{Pod, Service},
    },
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::{SignedDuration, Timestamp},
};
use rollout_controller::plan::{Action, Observed, plan};
use shared_types::{
    analysis::{AnalysisPhase, AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate},
    constants::keys,
    experiment::Experiment,
    replicaset as rsutil,
    rollout::Rollout,
};

pub struct World {
    pub rollout: Rollout,
    pub replica_sets: Vec<ReplicaSet>,
    pub services: BTreeMap<String, Service>,
    pub pods: Vec<Pod>,
    pub now: Timestamp,
    pub events: Vec<String>,
    /// Pods of ReplicaSets with these hashes never become available (a broken release).
    pub broken: Vec<String>,
    pub serial: u32,
    pub virtual_services: BTreeMap<String, serde_json::Value>,
    pub destination_rule: Option<serde_json::Value>,
    pub ingresses: BTreeMap<String, k8s_openapi::api::networking::v1::Ingress>,
    /// AnalysisRuns the Rollout created (a test plays the analysis controller on them).
    pub analysis_runs: Vec<AnalysisRun>,
    /// Experiments the Rollout created (a test plays the experiment controller on them).
    pub experiments: Vec<Experiment>,
    pub analysis_templates: BTreeMap<String, AnalysisTemplate>,
    pub cluster_analysis_templates: BTreeMap<String, ClusterAnalysisTemplate>,
}

pub fn service(name: &str) -> Service {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": "mock-server"}, "ports": [{"port": 8080, "targetPort": 8080}]}
    }))
    .expect("service parses")
}

impl World {
    /// A world holding the Rollout and Services of a seed manifest.
    pub fn new(manifest: &str) -> Self {
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(manifest).expect("manifest parses");
        let rollout_doc = docs
            .iter()
            .find(|d| d["kind"] == "Rollout")
            .expect("a Rollout")
            .clone();
        let mut rollout: Rollout = serde_json::from_value(rollout_doc).expect("rollout parses");
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
            services: docs
                .iter()
                .filter(|d| d["kind"] == "Service")
                .filter_map(|d| d["metadata"]["name"].as_str())
                .map(|name| (name.to_string(), service(name)))
                .collect(),
            pods: Vec::new(),
            now,
            events: Vec::new(),
            broken: Vec::new(),
            serial: 0,
            virtual_services: docs
                .iter()
                .filter(|d| d["kind"] == "VirtualService")
                .map(|d| {
                    (
                        d["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                        d.clone(),
                    )
                })
                .collect(),
            destination_rule: docs.iter().find(|d| d["kind"] == "DestinationRule").cloned(),
            ingresses: docs
                .iter()
                .filter(|d| d["kind"] == "Ingress")
                .map(|d| {
                    let name = d["metadata"]["name"].as_str().unwrap_or_default().to_string();
                    (name, serde_json::from_value(d.clone()).expect("ingress parses"))
                })
                .collect(),
            analysis_runs: Vec::new(),
            experiments: Vec::new(),
            analysis_templates: docs
                .iter()
                .filter(|d| d["kind"] == "AnalysisTemplate")
                .map(|d| {
                    let name = d["metadata"]["name"].as_str().unwrap_or_default().to_string();
                    (name, serde_json::from_value(d.clone()).expect("template parses"))
                })
                .collect(),
            cluster_analysis_templates: docs
                .iter()
                .filter(|d| d["kind"] == "ClusterAnalysisTemplate")
                .map(|d| {
                    let name = d["metadata"]["name"].as_str().unwrap_or_default().to_string();
                    (name, serde_json::from_value(d.clone()).expect("template parses"))
                })
                .collect(),
        }
    }

    pub fn observed(&self) -> Observed {
        Observed {
            rollout: self.rollout.clone(),
            replica_sets: self.replica_sets.clone(),
            services: self.services.clone(),
            pods: self.pods.clone(),
            virtual_services: self.virtual_services.clone(),
            destination_rule: self.destination_rule.clone(),
            ingresses: self.ingresses.clone(),
            workload: None,
            analysis_runs: self.analysis_runs.clone(),
            experiments: self.experiments.clone(),
            analysis_templates: self.analysis_templates.clone(),
            cluster_analysis_templates: self.cluster_analysis_templates.clone(),
            now: self.now,
            ..Observed::empty(self.rollout.clone())
        }
    }

    /// When the plan of the next reconcile asks to look again (None: only on a change).
    pub fn requeue_after(&self) -> Option<std::time::Duration> {
        plan(&self.observed()).requeue_after
    }

    /// One reconcile, with the resulting writes applied and the ReplicaSet controller's work
    /// (pods created and ready) done at once.
    pub fn reconcile(&mut self) -> bool {
        let plan = plan(&self.observed());
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
                Action::CreateReplicaSet(rs) => {
                    let mut rs = *rs;
                    rs.metadata.creation_timestamp = Some(Time(self.now));
                    self.replica_sets.push(rs);
                }
                Action::UpdateReplicaSet(u) => {
                    let rs = self
                        .replica_sets
                        .iter_mut()
                        .find(|rs| rs.metadata.name.as_deref() == Some(u.name.as_str()))
                        .expect("updated ReplicaSet exists");
                    if let Some(r) = u.replicas {
                        rs.spec.replicas = Some(r);
                    }
                    if let Some(change) = &u.template_metadata {
                        let meta = rs
                            .spec
                            .template
                            .get_or_insert_with(Default::default)
                            .metadata
                            .get_or_insert_with(Default::default);
                        rollout_controller::plan::MetadataChange::apply(
                            &change.labels,
                            meta.labels.get_or_insert_with(Default::default),
                        );
                    }
                    let ann = rs.metadata.annotations.get_or_insert_with(Default::default);
                    for (k, v) in u.annotations {
                        match v {
                            Some(v) => ann.insert(k, v),
                            None => ann.remove(&k),
                        };
                    }
                }
                Action::UpdateVirtualService(name, vs) => {
                    self.virtual_services.insert(name, *vs);
                }
                Action::UpdateDestinationRule(dr) => self.destination_rule = Some(*dr),
                Action::ApplyIngress(ing) => {
                    self.ingresses
                        .insert(ing.metadata.name.clone().unwrap_or_default(), *ing);
                }
                Action::DeleteIngress(name) => {
                    self.ingresses.remove(&name);
                }
                Action::AnnotateRollout { key, value } => {
                    self.rollout
                        .metadata
                        .annotations
                        .get_or_insert_with(Default::default)
                        .insert(key, value);
                }
                Action::ScaleWorkload { .. } => {}
                Action::PatchPodMetadata { pod, change } => {
                    if let Some(p) = self
                        .pods
                        .iter_mut()
                        .find(|p| p.metadata.name.as_deref() == Some(pod.as_str()))
                    {
                        rollout_controller::plan::MetadataChange::apply(
                            &change.labels,
                            p.metadata.labels.get_or_insert_with(Default::default),
                        );
                    }
                }
                Action::EvictPod(name) => self
                    .pods
                    .retain(|p| p.metadata.name.as_deref() != Some(name.as_str())),
                Action::DeleteReplicaSet(name) => self
                    .replica_sets
                    .retain(|rs| rs.metadata.name.as_deref() != Some(&name)),
                // The World holds no orphan ReplicaSets.
                Action::AdoptReplicaSet { .. } => {}
                Action::AddFinalizer => self
                    .rollout
                    .metadata
                    .finalizers
                    .get_or_insert_with(Vec::new)
                    .push(keys::TRAFFIC_FINALIZER.into()),
                Action::RemoveFinalizer => {
                    if let Some(f) = self.rollout.metadata.finalizers.as_mut() {
                        f.retain(|f| f != keys::TRAFFIC_FINALIZER);
                    }
                }
                Action::CreateAnalysisRun(run) => {
                    let mut run = *run;
                    run.metadata.creation_timestamp = Some(Time(self.now));
                    self.analysis_runs.push(run);
                }
                Action::TerminateAnalysisRun(name) => {
                    let run = self
                        .analysis_runs
                        .iter_mut()
                        .find(|r| r.metadata.name.as_deref() == Some(name.as_str()))
                        .expect("terminated run exists");
                    run.spec.terminate = Some(true);
                }
                Action::DeleteAnalysisRun(name) => self
                    .analysis_runs
                    .retain(|r| r.metadata.name.as_deref() != Some(name.as_str())),
                Action::CreateExperiment(experiment) => {
                    let mut experiment = *experiment;
                    experiment.metadata.creation_timestamp = Some(Time(self.now));
                    self.experiments.push(experiment);
                }
                Action::TerminateExperiment(name) => {
                    let experiment = self
                        .experiments
                        .iter_mut()
                        .find(|e| e.metadata.name.as_deref() == Some(name.as_str()))
                        .expect("terminated experiment exists");
                    experiment.spec.terminate = Some(true);
                }
                Action::DeleteExperiment(name) => self
                    .experiments
                    .retain(|e| e.metadata.name.as_deref() != Some(name.as_str())),
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
                let last = self.pods.iter().rposition(&owned).expect("an owned pod");
                self.pods.remove(last);
                changed = true;
            }
            while self.pods.iter().filter(|p| owned(p)).count() < want {
                self.serial += 1;
                let labels = rs
                    .spec
                    .template
                    .as_ref()
                    .and_then(|t| t.metadata.as_ref())
                    .and_then(|m| m.labels.clone())
                    .unwrap_or_default();
                let pod: Pod = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("{prefix}{}", self.serial), "creationTimestamp": Time(self.now), "labels": labels}
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

    pub fn settle(&mut self) {
        for _ in 0..100 {
            if !self.reconcile() {
                return;
            }
        }
        panic!("rollout did not settle: {:#?}", self.rollout.status);
    }

    pub fn edit_spec(&mut self, edit: impl FnOnce(&mut Rollout)) {
        edit(&mut self.rollout);
        let g = self.rollout.metadata.generation.unwrap_or(1);
        self.rollout.metadata.generation = Some(g + 1);
    }

    pub fn set_image(&mut self, image: &str) {
        self.edit_spec(|r| {
            if let Some(s) = r.spec.template.as_mut().and_then(|t| t.spec.as_mut()) {
                s.containers[0].image = Some(image.into());
            }
        });
    }

    /// What `kubectl argo rollouts promote` does to a paused rollout.
    pub fn promote(&mut self) {
        if let Some(s) = self.rollout.status.as_mut() {
            s.pause_conditions = None;
        }
    }

    /// What `kubectl argo rollouts promote --full` does.
    pub fn promote_full_now(&mut self) {
        if let Some(s) = self.rollout.status.as_mut() {
            s.promote_full = Some(true);
        }
    }

    /// What `kubectl argo rollouts abort` does.
    pub fn abort(&mut self) {
        if let Some(s) = self.rollout.status.as_mut() {
            s.abort = Some(true);
        }
    }

    /// What `kubectl argo rollouts retry rollout` does: clear the abort.
    pub fn retry(&mut self) {
        if let Some(s) = self.rollout.status.as_mut() {
            s.abort = Some(false);
        }
    }

    /// Plays the analysis controller: the run called `name` reaches `phase`.
    pub fn set_run_phase(&mut self, name: &str, phase: AnalysisPhase, message: Option<&str>) {
        let run = self
            .analysis_runs
            .iter_mut()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no AnalysisRun {name}"));
        let status = run.status.get_or_insert_with(Default::default);
        status.phase = Some(phase);
        status.message = message.map(Into::into);
    }

    /// Plays the experiment controller: the Experiment called `name` reaches `phase`.
    pub fn set_experiment_phase(&mut self, name: &str, phase: AnalysisPhase, message: Option<&str>) {
        let experiment = self
            .experiments
            .iter_mut()
            .find(|e| e.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no Experiment {name}"));
        let status = experiment.status.get_or_insert_with(Default::default);
        status.phase = Some(phase);
        status.message = message.map(Into::into);
    }

    /// The AnalysisRun called `name`.
    pub fn run(&self, name: &str) -> &AnalysisRun {
        self.analysis_runs
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no AnalysisRun {name}: {:?}", self.run_names()))
    }

    /// `name -> (phase, terminate)` of every AnalysisRun.
    pub fn runs(&self) -> BTreeMap<String, (AnalysisPhase, bool)> {
        self.analysis_runs
            .iter()
            .map(|r| {
                (
                    r.metadata.name.clone().unwrap_or_default(),
                    (
                        r.status
                            .as_ref()
                            .map(|s| s.phase_or_pending())
                            .unwrap_or_default(),
                        r.spec.is_terminating(),
                    ),
                )
            })
            .collect()
    }

    pub fn run_names(&self) -> Vec<String> {
        self.runs().into_keys().collect()
    }

    /// `name -> (phase, terminate)` of every Experiment.
    pub fn experiment_states(&self) -> BTreeMap<String, (AnalysisPhase, bool)> {
        self.experiments
            .iter()
            .map(|e| {
                (
                    e.metadata.name.clone().unwrap_or_default(),
                    (
                        e.status
                            .as_ref()
                            .map(|s| s.phase_or_pending())
                            .unwrap_or_default(),
                        e.spec.is_terminating(),
                    ),
                )
            })
            .collect()
    }

    /// What `kubectl argo rollouts undo` does: the template of the previous revision.
    pub fn undo(&mut self) {
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

    pub fn advance(&mut self, secs: i64) {
        self.now += SignedDuration::from_secs(secs);
    }

    pub fn phase(&self) -> (String, String) {
        let s = self.rollout.status.clone().unwrap_or_default();
        (s.phase.unwrap_or_default(), s.message.unwrap_or_default())
    }

    pub fn step(&self) -> Option<i32> {
        self.rollout.status.as_ref().and_then(|s| s.current_step_index)
    }

    /// `name -> (spec replicas, revision)`.
    pub fn replica_sets(&self) -> BTreeMap<String, (i32, i64)> {
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

    pub fn selector(&self, service: &str) -> String {
        self.services[service]
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .and_then(|s| s.get(keys::POD_TEMPLATE_HASH))
            .cloned()
            .unwrap_or_default()
    }

    pub fn counts(&self) -> (i32, i32, i32, i32) {
        let s = self.rollout.status.clone().unwrap_or_default();
        (
            s.replicas.unwrap_or(0),
            s.updated_replicas.unwrap_or(0),
            s.ready_replicas.unwrap_or(0),
            s.available_replicas.unwrap_or(0),
        )
    }
}

pub const V1: &str = "6579c6cc98";
pub const V2: &str = "7c6fcfb847";
pub const V3: &str = "6fcb56df9b";

pub fn rs(hash: &str) -> String {
    format!("mock-server-{hash}")
}
