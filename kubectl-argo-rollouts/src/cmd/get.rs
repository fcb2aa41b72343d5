//! `get rollout NAME` and `get experiment NAME`, once or with `--watch` (redrawn in place on
//! every change of the rollout, its ReplicaSets, Pods, AnalysisRuns and Experiments, and every
//! second so that ages move, until Ctrl-C).

use std::time::{Duration, Instant};

use futures::{StreamExt, stream::select_all};
use jiff::Timestamp;
use k8s_openapi::api::{apps::v1::ReplicaSet, core::v1::Pod};
use kube::{
    Api,
    api::ListParams,
    runtime::{reflector::Store, watcher},
};
use shared_types::{
    analysis::AnalysisRun, constants::keys::POD_TEMPLATE_HASH, experiment::Experiment, rollout::Rollout,
};

use super::{
    label_selector, print_object, use_color,
    watch::{Signal, deadline, interrupted, reflect},
};
use crate::{
    Io,
    cli::{GetExperimentArgs, GetRolloutArgs},
    error::Error,
    kube::Session,
    render::{CLEAR_SCREEN, experiment::render_experiment_objects, rollout::render_rollout_objects},
};

/// Redraws are rate-limited like Argo's, to avoid flicker when many events arrive at once.
const MIN_REDRAW_INTERVAL: Duration = Duration::from_millis(200);

/// A rollout and everything that may appear in its tree.
#[derive(Clone, Debug)]
pub struct RolloutObjects {
    /// The rollout.
    pub rollout: Rollout,
    /// ReplicaSets (of the rollout and of its experiments).
    pub replica_sets: Vec<ReplicaSet>,
    /// Pods.
    pub pods: Vec<Pod>,
    /// AnalysisRuns.
    pub analysis_runs: Vec<AnalysisRun>,
    /// Experiments.
    pub experiments: Vec<Experiment>,
}

impl RolloutObjects {
    /// The `get rollout` text at `now`.
    pub fn render(&self, now: Timestamp, color: bool) -> String {
        render_rollout_objects(
            &self.rollout,
            &self.replica_sets,
            &self.pods,
            &self.analysis_runs,
            &self.experiments,
            now,
            color,
        )
    }
}

/// List parameters selecting the rollout's pods (experiment pods carry the rollout's pod labels,
/// so they match too); everything when the rollout has no selector.
fn pod_selector(ro: &Rollout) -> Result<ListParams, Error> {
    Ok(match &ro.spec.selector {
        Some(s) => ListParams::default().labels(&label_selector(s)?),
        None => ListParams::default(),
    })
}

/// Reads the rollout and the objects of its tree.
pub async fn fetch_rollout(session: &Session, name: &str) -> Result<RolloutObjects, Error> {
    let (client, ns) = (session.client.clone(), session.namespace.as_str());
    let rollout = Api::<Rollout>::namespaced(client.clone(), ns).get(name).await?;
    let params = pod_selector(&rollout)?;
    let all = ListParams::default();
    // Experiment ReplicaSets carry only the hash label (as in Argo), not the Rollout's labels.
    let hashed = ListParams::default().labels(POD_TEMPLATE_HASH);
    let (rs_api, pod_api) = (
        Api::<ReplicaSet>::namespaced(client.clone(), ns),
        Api::<Pod>::namespaced(client.clone(), ns),
    );
    let (ar_api, exp_api) = (
        Api::<AnalysisRun>::namespaced(client.clone(), ns),
        Api::<Experiment>::namespaced(client.clone(), ns),
    );
    let (replica_sets, pods, analysis_runs, experiments) = futures::try_join!(
        rs_api.list(&hashed),
        pod_api.list(&params),
        ar_api.list(&all),
        exp_api.list(&all)
    )?;
    Ok(RolloutObjects {
        rollout,
        replica_sets: replica_sets.items,
        pods: pods.items,
        analysis_runs: analysis_runs.items,
        experiments: experiments.items,
    })
}

/// `get rollout`.
pub async fn rollout(session: &Session, args: &GetRolloutArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let color = use_color(args.no_color, io);
    let objects = fetch_rollout(session, &args.name).await?;
    if let Some(format) = args.output {
        return print_object(&objects.rollout, format, io.out);
    }
    if !args.watch {
        io.out
            .write_all(objects.render(Timestamp::now(), color).as_bytes())?;
        return Ok(());
    }
    let timeout = (args.timeout_seconds > 0).then(|| Duration::from_secs(args.timeout_seconds));
    watch_rollout(session, objects, color, timeout, io).await
}

fn owned<K>(store: &Store<K>) -> Vec<K>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store.state().iter().map(|k| (**k).clone()).collect()
}

/// Watches the rollout's objects and redraws on every change until Ctrl-C or the timeout.
pub async fn watch_rollout(
    session: &Session,
    initial: RolloutObjects,
    color: bool,
    timeout: Option<Duration>,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let (client, ns) = (session.client.clone(), session.namespace.as_str());
    let name = initial.rollout.metadata.name.clone().unwrap_or_default();
    let pod_config = match &initial.rollout.spec.selector {
        Some(selector) => watcher::Config::default().labels(&label_selector(selector)?),
        None => watcher::Config::default(),
    };
    let (rollouts, s0) = reflect(
        Api::<Rollout>::namespaced(client.clone(), ns),
        watcher::Config::default().fields(&format!("metadata.name={name}")),
        0,
    );
    let (replica_sets, s1) = reflect(
        Api::<ReplicaSet>::namespaced(client.clone(), ns),
        watcher::Config::default().labels(POD_TEMPLATE_HASH),
        1,
    );
    let (pods, s2) = reflect(Api::<Pod>::namespaced(client.clone(), ns), pod_config, 2);
    let (runs, s3) = reflect(
        Api::<AnalysisRun>::namespaced(client.clone(), ns),
        watcher::Config::default(),
        3,
    );
    let (experiments, s4) = reflect(
        Api::<Experiment>::namespaced(client.clone(), ns),
        watcher::Config::default(),
        4,
    );
    let mut events = select_all([s0, s1, s2, s3, s4]);
    let mut ready = [false; 5];

    redraw(io, &initial.render(Timestamp::now(), color))?;
    let mut last_draw = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let stop = deadline(timeout);
    let ctrl_c = interrupted();
    tokio::pin!(stop, ctrl_c);
    loop {
        tokio::select! {
            signal = events.next() => match signal {
                Some(Signal::Ready(i)) => ready[i] = true,
                Some(Signal::Changed(_)) => {}
                None => break,
            },
            // Ages move even when nothing changes.
            _ = ticker.tick() => {}
            () = &mut stop => break,
            () = &mut ctrl_c => break,
        }
        // Until every store has its initial list, the first drawing (from direct reads) stays.
        if !ready.iter().all(|r| *r) || last_draw.elapsed() < MIN_REDRAW_INTERVAL {
            continue;
        }
        let Some(rollout) = rollouts.state().first().map(|r| (**r).clone()) else {
            return Err(Error::Api(format!("rollouts.argoproj.io \"{name}\" not found")));
        };
        let objects = RolloutObjects {
            rollout,
            replica_sets: owned(&replica_sets),
            pods: owned(&pods),
            analysis_runs: owned(&runs),
            experiments: owned(&experiments),
        };
        redraw(io, &objects.render(Timestamp::now(), color))?;
        last_draw = Instant::now();
    }
    Ok(())
}

fn redraw(io: &mut Io<'_>, text: &str) -> Result<(), Error> {
    io.out.write_all(CLEAR_SCREEN.as_bytes())?;
    io.out.write_all(text.as_bytes())?;
    io.out.flush()?;
    Ok(())
}

/// An experiment and the objects of its tree.
#[derive(Clone, Debug)]
pub struct ExperimentObjects {
    /// The experiment.
    pub experiment: Experiment,
    /// ReplicaSets.
    pub replica_sets: Vec<ReplicaSet>,
    /// Pods.
    pub pods: Vec<Pod>,
    /// AnalysisRuns.
    pub analysis_runs: Vec<AnalysisRun>,
}

impl ExperimentObjects {
    /// The `get experiment` text at `now`.
    pub fn render(&self, now: Timestamp, color: bool) -> String {
        render_experiment_objects(
            &self.experiment,
            &self.replica_sets,
            &self.pods,
            &self.analysis_runs,
            now,
            color,
        )
    }
}

/// Reads the experiment and the objects of its tree.
pub async fn fetch_experiment(session: &Session, name: &str) -> Result<ExperimentObjects, Error> {
    let (client, ns) = (session.client.clone(), session.namespace.as_str());
    let experiment = Api::<Experiment>::namespaced(client.clone(), ns)
        .get(name)
        .await?;
    let all = ListParams::default();
    let (rs_api, pod_api) = (
        Api::<ReplicaSet>::namespaced(client.clone(), ns),
        Api::<Pod>::namespaced(client.clone(), ns),
    );
    let ar_api = Api::<AnalysisRun>::namespaced(client.clone(), ns);
    let (replica_sets, pods, analysis_runs) =
        futures::try_join!(rs_api.list(&all), pod_api.list(&all), ar_api.list(&all))?;
    Ok(ExperimentObjects {
        experiment,
        replica_sets: replica_sets.items,
        pods: pods.items,
        analysis_runs: analysis_runs.items,
    })
}

/// `get experiment`. With `--watch` the experiment is re-read every second (experiments are
/// short-lived and small, so polling keeps this simple).
pub async fn experiment(session: &Session, args: &GetExperimentArgs, io: &mut Io<'_>) -> Result<(), Error> {
    let color = use_color(args.no_color, io);
    let objects = fetch_experiment(session, &args.name).await?;
    if let Some(format) = args.output {
        return print_object(&objects.experiment, format, io.out);
    }
    if !args.watch {
        io.out
            .write_all(objects.render(Timestamp::now(), color).as_bytes())?;
        return Ok(());
    }
    redraw(io, &objects.render(Timestamp::now(), color))?;
    let ctrl_c = interrupted();
    tokio::pin!(ctrl_c);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = &mut ctrl_c => return Ok(()),
        }
        let objects = fetch_experiment(session, &args.name).await?;
        redraw(io, &objects.render(Timestamp::now(), color))?;
    }
}
