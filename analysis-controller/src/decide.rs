//! One reconcile of an AnalysisRun, as a pure function: from the run as stored, the readings of
//! provider calls that finished since, and the calls still in flight, decide the new status,
//! which provider calls to start, when to look again, and the Events to record. The controller
//! ([`crate::controller`]) does the I/O around it.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use shared_types::analysis::{
    AnalysisPhase, AnalysisRun, AnalysisRunStatus, Measurement, Metric, MetricResult,
};

use crate::{
    assess, evaluate,
    provider::{ProviderError, Reading},
    schedule::{self, Due},
};

/// A provider call to start.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The metric (arguments substituted).
    pub metric: Metric,
    /// Start a new measurement, resume an unfinished one, or stop it.
    pub kind: CallKind,
}

/// What a [`Call`] does.
#[derive(Clone, Debug, PartialEq)]
pub enum CallKind {
    /// A new measurement.
    Measure,
    /// Check on an unfinished measurement (e.g. a Job) with its metadata.
    Resume(BTreeMap<String, String>),
    /// Stop an unfinished measurement of a terminating run.
    Terminate(BTreeMap<String, String>),
}

/// A provider call that finished: the measurement it produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Finished {
    /// Metric name.
    pub metric: String,
    /// When the call started.
    pub started_at: Timestamp,
    /// What it returned.
    pub outcome: Result<Reading, ProviderError>,
}

/// An Event to record on the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Warning rather than Normal.
    pub warning: bool,
    /// Reason (CamelCase).
    pub reason: String,
    /// Message.
    pub message: String,
}

/// What one reconcile decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// The status to write (when it differs from the stored one).
    pub status: AnalysisRunStatus,
    /// Provider calls to start now.
    pub calls: Vec<Call>,
    /// When to reconcile again (next measurement due, resume, or TTL), if ever.
    pub wake_at: Option<Timestamp>,
    /// Events to record.
    pub events: Vec<Event>,
    /// The run's `ttlStrategy` has expired: delete it.
    pub delete: bool,
}

/// The run's inputs after argument resolution.
pub struct Inputs<'a> {
    /// The run.
    pub run: &'a AnalysisRun,
    /// Its metrics with arguments substituted, or why they could not be.
    pub metrics: Result<Vec<Metric>, String>,
    /// Finished provider calls not yet recorded.
    pub finished: &'a [Finished],
    /// Metrics with a provider call in flight.
    pub in_flight: &'a BTreeSet<String>,
    /// The current time.
    pub now: Timestamp,
}

/// Decides one reconcile of the run.
pub fn decide(inputs: &Inputs<'_>) -> Decision {
    let run = inputs.run;
    let now = inputs.now;
    let mut status = run.status.clone().unwrap_or_default();
    let mut decision = Decision::default();
    let phase = status.phase_or_pending();
    if phase.is_completed() {
        // A finished run costs nothing but its TTL timer.
        let completed = status.completed_at.as_ref().map(|t| t.0);
        if let Some(deadline) = schedule::ttl_deadline(run.spec.ttl_strategy.as_ref(), phase, completed) {
            if deadline <= now {
                decision.delete = true;
            } else {
                decision.wake_at = Some(deadline);
            }
        }
        decision.status = status;
        return decision;
    }
    let started_at = status.started_at.get_or_insert(Time(now)).0;
    let metrics = match &inputs.metrics {
        Ok(metrics) => metrics,
        Err(message) => return error_run(status, message.clone(), now),
    };
    let dry_run = match schedule::dry_run_metrics(run.spec.dry_run.as_deref().unwrap_or_default(), metrics) {
        Ok(d) => d,
        Err(e) => return error_run(status, format!("Analysis spec invalid: {e}"), now),
    };
    let retention = match schedule::Retention::new(
        run.spec.measurement_retention.as_deref().unwrap_or_default(),
        metrics,
    ) {
        Ok(r) => r,
        Err(e) => return error_run(status, format!("Analysis spec invalid: {e}"), now),
    };

    // Record what the providers returned.
    let mut results = status.metric_results.take().unwrap_or_default();
    for finished in inputs.finished {
        let Some(metric) = metrics.iter().find(|m| m.name == finished.metric) else {
            continue;
        };
        // A resumed measurement (a Job) keeps the time it first started.
        let started_at = results
            .iter()
            .find(|r| r.name == metric.name)
            .and_then(|r| r.measurements.as_deref()?.last())
            .filter(|m| m.finished_at.is_none())
            .and_then(|m| m.started_at.as_ref())
            .map_or(finished.started_at, |t| t.0);
        let measurement = measurement(metric, finished, started_at, now);
        let result = match results.iter().position(|r| r.name == metric.name) {
            Some(i) => &mut results[i],
            None => {
                results.push(MetricResult {
                    name: metric.name.clone(),
                    phase: AnalysisPhase::Running,
                    dry_run: dry_run.contains(&metric.name).then_some(true),
                    ..Default::default()
                });
                let last = results.len() - 1;
                &mut results[last]
            }
        };
        assess::record_measurement(result, measurement, now);
        schedule::trim_measurements(result, retention.limit_for(&metric.name));
    }

    let assessment = match assess::assess_run(metrics, &results, &dry_run, run.spec.is_terminating()) {
        Ok(a) => a,
        Err(e) => return error_run(status, format!("Analysis spec invalid: {e}"), now),
    };
    for (metric, phase) in &assessment.completed_metrics {
        decision.events.push(Event {
            warning: matches!(phase, AnalysisPhase::Failed | AnalysisPhase::Error),
            reason: format!("Metric{phase:?}"),
            message: format!("Metric '{metric}' Completed. Result: {phase:?}"),
        });
    }
    status.metric_results = Some(assessment.metric_results.clone()).filter(|r| !r.is_empty());
    status.run_summary = Some(assessment.run_summary.clone());
    status.dry_run_summary = Some(assessment.dry_run_summary.clone()).filter(|s| *s != Default::default());
    let previous = status.phase;
    status.phase = Some(assessment.phase);
    // Argo's message, then what the deciding metric measured.
    status.message = match (&assessment.message, &assessment.cause) {
        (m, _) if m.is_empty() => None,
        (m, Some(cause)) if !cause.detail.is_empty() => Some(format!("{m}: {}", cause.detail)),
        (m, _) => Some(m.clone()),
    };
    let terminating = assess::is_terminating(run.spec.is_terminating(), &assessment.metric_results, &dry_run);
    if assessment.phase.is_completed() {
        status.completed_at = Some(Time(now));
        decision.events.push(Event {
            warning: matches!(assessment.phase, AnalysisPhase::Failed | AnalysisPhase::Error),
            reason: format!("AnalysisRun{:?}", assessment.phase),
            message: format!("Analysis Completed. Result: {:?}", assessment.phase),
        });
    } else if previous != Some(AnalysisPhase::Running) {
        decision.events.push(Event {
            warning: false,
            reason: "AnalysisRunRunning".into(),
            message: "Analysis Started".into(),
        });
    }

    // What is due now, and the one timer for the rest.
    let mut wake: Option<Timestamp> = None;
    for metric in metrics {
        let result = assessment.metric_results.iter().find(|r| r.name == metric.name);
        let due = match schedule::next_measurement(metric, result, started_at, terminating) {
            Ok(due) => due,
            Err(e) => return error_run(status, format!("Analysis spec invalid: {e}"), now),
        };
        let unfinished = || {
            result
                .and_then(|r| r.measurements.as_deref())
                .and_then(<[_]>::last)
                .and_then(|m| m.metadata.clone())
                .unwrap_or_default()
        };
        let kind = match due {
            Due::Never => continue,
            Due::Resume(_) if terminating => Some(CallKind::Terminate(unfinished())),
            due if due.is_due(now) => Some(match due {
                Due::Resume(_) => CallKind::Resume(unfinished()),
                _ => CallKind::Measure,
            }),
            _ => None,
        };
        match kind {
            // A run that ends still stops what it started (a Job is deleted).
            Some(kind)
                if !inputs.in_flight.contains(&metric.name)
                    && (!assessment.phase.is_completed() || matches!(kind, CallKind::Terminate(_))) =>
            {
                decision.calls.push(Call {
                    metric: metric.clone(),
                    kind,
                })
            }
            Some(_) => {}
            None => {
                if let Some(at) = due.wake_at() {
                    wake = Some(wake.map_or(at, |w| w.min(at)));
                }
            }
        }
    }
    if assessment.phase.is_completed() {
        // Measurements still running when the run ended are over too (their provider calls
        // were told to stop above).
        for result in status.metric_results.iter_mut().flatten() {
            if let Some(last) = result.measurements.iter_mut().flatten().last()
                && last.finished_at.is_none()
            {
                last.phase = AnalysisPhase::Inconclusive;
                last.message = Some(crate::provider::job::TERMINATED_MESSAGE.to_string());
                last.finished_at = Some(Time(now));
                last.resume_at = None;
            }
        }
        wake = None;
    }
    decision.wake_at = wake;
    decision.status = status;
    decision
}

/// The measurement a finished provider call gives.
fn measurement(metric: &Metric, finished: &Finished, started_at: Timestamp, now: Timestamp) -> Measurement {
    let started = Some(Time(started_at));
    match &finished.outcome {
        Ok(Reading::Value {
            result,
            text,
            metadata,
        }) => {
            let (phase, message) = match evaluate::evaluate_result(metric, result) {
                Ok(phase) => (phase, None),
                Err(e) => (AnalysisPhase::Error, Some(e.to_string())),
            };
            Measurement {
                phase,
                message,
                started_at: started,
                value: Some(text.clone()),
                metadata: Some(metadata.clone()).filter(|m| !m.is_empty()),
                ..Default::default()
            }
        }
        Ok(Reading::Verdict {
            phase,
            message,
            metadata,
        }) => Measurement {
            phase: *phase,
            message: Some(message.clone()).filter(|m| !m.is_empty()),
            started_at: started,
            metadata: Some(metadata.clone()).filter(|m| !m.is_empty()),
            ..Default::default()
        },
        Ok(Reading::Running { metadata }) => {
            // Argo's back-off for resuming (e.g. a Job): sooner at first, then less often.
            let elapsed = now.duration_since(started_at).max(SignedDuration::ZERO);
            let delay = crate::provider::job::resume_delay(elapsed.unsigned_abs());
            Measurement {
                phase: AnalysisPhase::Running,
                started_at: started,
                metadata: Some(metadata.clone()).filter(|m| !m.is_empty()),
                resume_at: now.checked_add(delay).ok().map(Time),
                ..Default::default()
            }
        }
        Err(e) => Measurement {
            phase: AnalysisPhase::Error,
            message: Some(e.to_string()),
            started_at: started,
            ..Default::default()
        },
    }
}

/// The run ends in Error with `message` (invalid spec, unresolvable arguments).
fn error_run(mut status: AnalysisRunStatus, message: String, now: Timestamp) -> Decision {
    status.phase = Some(AnalysisPhase::Error);
    status.message = Some(message.clone());
    status.completed_at = Some(Time(now));
    Decision {
        status,
        events: vec![Event {
            warning: true,
            reason: "AnalysisRunError".into(),
            message,
        }],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(status: serde_json::Value) -> AnalysisRun {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": "r", "namespace": "ns", "uid": "u1"},
            "spec": {"metrics": [{
                "name": "success-rate", "interval": "10s", "count": 3, "failureLimit": 0,
                "successCondition": "result[0] >= 0.95",
                "provider": {"prometheus": {"address": "http://p", "query": "q"}}
            }], "ttlStrategy": {"secondsAfterCompletion": 60}},
            "status": status
        }))
        .expect("run parses")
    }

    fn decide_at(run: &AnalysisRun, finished: &[Finished], in_flight: &[&str], now: Timestamp) -> Decision {
        decide(&Inputs {
            run,
            metrics: Ok(run.spec.metrics.clone()),
            finished,
            in_flight: &in_flight.iter().map(|s| s.to_string()).collect(),
            now,
        })
    }

    fn value(v: f64) -> Result<Reading, ProviderError> {
        Ok(Reading::Value {
            result: json!([v]),
            text: format!("[{v}]"),
            metadata: BTreeMap::new(),
        })
    }

    /// The run's one metric returned `outcome` just now.
    fn after(outcome: Result<Reading, ProviderError>, now: Timestamp) -> Decision {
        let r = run(json!({"phase": "Running", "startedAt": Time(now)}));
        let finished = [Finished {
            metric: "success-rate".into(),
            started_at: now,
            outcome,
        }];
        decide_at(&r, &finished, &[], now)
    }

    #[test]
    fn a_new_run_starts_measuring_at_once_and_not_twice() {
        let now = Timestamp::now();
        let r = run(json!(null));
        let d = decide_at(&r, &[], &[], now);
        assert_eq!(d.status.phase, Some(AnalysisPhase::Running));
        assert_eq!(d.status.started_at, Some(Time(now)));
        assert_eq!(d.calls.len(), 1);
        assert_eq!(d.calls[0].kind, CallKind::Measure);
        // While the call is in flight nothing else starts and no timer is needed.
        let d = decide_at(&r, &[], &["success-rate"], now);
        assert!(d.calls.is_empty());
        assert_eq!(d.wake_at, None);
    }

    #[test]
    fn a_reading_is_judged_and_the_next_one_is_due_an_interval_later() {
        let now = Timestamp::now();
        let d = after(value(0.98), now);
        let result = &d.status.metric_results.as_ref().expect("results")[0];
        assert_eq!(result.successful, Some(1));
        assert_eq!(
            result.measurements.as_ref().expect("measurements")[0]
                .value
                .as_deref(),
            Some("[0.98]")
        );
        assert!(d.calls.is_empty());
        assert_eq!(d.wake_at, now.checked_add(SignedDuration::from_secs(10)).ok());
    }

    #[test]
    fn a_failed_measurement_past_the_limit_fails_the_run_with_the_cause() {
        let now = Timestamp::now();
        let d = after(value(0.62), now);
        assert_eq!(d.status.phase, Some(AnalysisPhase::Failed));
        let message = d.status.message.clone().unwrap_or_default();
        assert!(
            message
                .starts_with("Metric \"success-rate\" assessed Failed due to failed (1) > failureLimit (0)"),
            "{message}"
        );
        assert!(message.contains("0.62"), "{message}");
        assert!(
            d.events
                .iter()
                .any(|e| e.reason == "AnalysisRunFailed" && e.warning)
        );
        assert!(d.calls.is_empty());
    }

    #[test]
    fn a_provider_error_is_an_error_measurement_retried_later() {
        let now = Timestamp::now();
        let d = after(Err(ProviderError::new("cannot connect")), now);
        let m = &d.status.metric_results.as_ref().expect("results")[0];
        assert_eq!(m.consecutive_error, Some(1));
        assert_eq!(d.status.phase, Some(AnalysisPhase::Running));
        assert!(d.wake_at.is_some());
    }

    #[test]
    fn a_finished_run_only_waits_for_its_ttl() {
        // Whole seconds: stored times have no fraction.
        let now = Timestamp::from_second(Timestamp::now().as_second()).expect("time");
        let done = |at: Timestamp| {
            run(json!({"phase": "Successful", "startedAt": Time(at), "completedAt": Time(at)}))
        };
        let d = decide_at(&done(now), &[], &[], now);
        assert!(!d.delete && d.calls.is_empty());
        assert_eq!(d.wake_at, now.checked_add(SignedDuration::from_secs(60)).ok());
        let old = now.checked_sub(SignedDuration::from_secs(61)).expect("time");
        assert!(decide_at(&done(old), &[], &[], now).delete);
    }

    #[test]
    fn a_terminated_run_stops_its_running_job_and_ends() {
        let now = Timestamp::from_second(Timestamp::now().as_second()).expect("time");
        let earlier = now.checked_sub(SignedDuration::from_secs(30)).expect("time");
        let mut r = run(
            json!({"phase": "Running", "startedAt": Time(earlier), "metricResults": [{
                "name": "success-rate", "phase": "Running",
                "measurements": [{"phase": "Running", "startedAt": Time(earlier), "metadata": {"job-name": "j"}}]
            }]}),
        );
        r.spec.terminate = Some(true);
        let d = decide_at(&r, &[], &[], now);
        assert_eq!(
            d.calls.iter().map(|c| c.kind.clone()).collect::<Vec<_>>(),
            vec![CallKind::Terminate(BTreeMap::from([(
                "job-name".to_string(),
                "j".to_string()
            )]))]
        );
        assert!(d.status.phase_or_pending().is_completed());
        let m = &d.status.metric_results.as_ref().expect("results")[0]
            .measurements
            .as_ref()
            .expect("m")[0];
        assert_eq!(m.finished_at, Some(Time(now)));
        assert_eq!(m.started_at, Some(Time(earlier)));
    }

    #[test]
    fn a_resumed_measurement_keeps_its_start_and_backs_off() {
        let now = Timestamp::from_second(Timestamp::now().as_second()).expect("time");
        let earlier = now.checked_sub(SignedDuration::from_secs(50)).expect("time");
        let r = run(
            json!({"phase": "Running", "startedAt": Time(earlier), "metricResults": [{
                "name": "success-rate", "phase": "Running",
                "measurements": [{"phase": "Running", "startedAt": Time(earlier), "metadata": {"job-name": "j"}}]
            }]}),
        );
        let finished = [Finished {
            metric: "success-rate".into(),
            started_at: now,
            outcome: Ok(Reading::Running {
                metadata: BTreeMap::from([("job-name".to_string(), "j".to_string())]),
            }),
        }];
        let d = decide_at(&r, &finished, &[], now);
        let m = &d.status.metric_results.as_ref().expect("results")[0]
            .measurements
            .as_ref()
            .expect("m")[0];
        assert_eq!(m.started_at, Some(Time(earlier)));
        // sqrt(2 * 50 s) = 10 s after now, not about 1 s.
        let resume = m.resume_at.as_ref().expect("resumeAt").0;
        assert_eq!(resume.duration_since(now).as_secs(), 10);
    }

    #[test]
    fn unresolvable_arguments_end_the_run_in_error() {
        let now = Timestamp::now();
        let r = run(json!(null));
        let d = decide(&Inputs {
            run: &r,
            metrics: Err("Unable to resolve metric arguments: argument \"x\" was not supplied".into()),
            finished: &[],
            in_flight: &BTreeSet::new(),
            now,
        });
        assert_eq!(d.status.phase, Some(AnalysisPhase::Error));
        assert!(d.status.message.unwrap_or_default().contains("argument \"x\""));
    }
}
