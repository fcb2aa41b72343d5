//! Phases derived from measurements, as Argo's `assessMetricStatus` and `assessRunStatus` do:
//! a metric's phase from its counters and limits, the run's phase as the worst completed metric,
//! `runSummary` / `dryRunSummary`, and the run message.
//!
//! Argo's run message (`Metric "success-rate" assessed Failed due to failed (3) > failureLimit
//! (2)`) is kept word for word because users and tools match on it. It does not say what was
//! measured, so [`RunAssessment::cause`] carries that separately ([`MetricCause`], e.g. `metric
//! "success-rate" assessed Failed: result [0.62] did not satisfy result[0] >= 0.95`) for the
//! controller to append.

use std::collections::BTreeSet;
use std::fmt;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use shared_types::analysis::{AnalysisPhase, Measurement, Metric, MetricResult, NotAnInteger, RunSummary};

/// A metric's count or limit is not an integer (only possible for a metric that skipped
/// validation, e.g. an argument resolved to a non-number).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("metric \"{metric}\": {field} must be an integer: {source}")]
pub struct InvalidLimit {
    /// Name of the metric.
    pub metric: String,
    /// The field (`count`, `failureLimit`, ...).
    pub field: &'static str,
    /// The value that is not an integer.
    pub source: NotAnInteger,
}

/// A metric's count and limits as integers, defaults applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Measurements to take; `None` = until the run is terminated.
    pub count: Option<i32>,
    /// Failed measurements tolerated (`-1` = failures are not counted against the metric).
    pub failure: i32,
    /// Inconclusive measurements tolerated.
    pub inconclusive: i32,
    /// Consecutive errors tolerated.
    pub consecutive_error: i32,
    /// Consecutive successes that complete the metric (`0` = disabled).
    pub consecutive_success: i32,
}

impl Limits {
    /// Reads the limits of `metric` (Argo's defaults: failure 0, inconclusive 0, consecutive
    /// errors 4, consecutive successes off; effective count per [`Metric::effective_count`]).
    pub fn of(metric: &Metric) -> Result<Self, InvalidLimit> {
        let field = |field: &'static str| {
            move |source| InvalidLimit {
                metric: metric.name.clone(),
                field,
                source,
            }
        };
        Ok(Self {
            count: metric.effective_count().map_err(field("count"))?,
            failure: metric.failure_limit().map_err(field("failureLimit"))?,
            inconclusive: metric.inconclusive_limit().map_err(field("inconclusiveLimit"))?,
            consecutive_error: metric
                .consecutive_error_limit()
                .map_err(field("consecutiveErrorLimit"))?,
            consecutive_success: metric
                .consecutive_success_limit()
                .map_err(field("consecutiveSuccessLimit"))?,
        })
    }

    /// Whether the metric has taken all the measurements it will take.
    pub fn count_reached(&self, result: &MetricResult) -> bool {
        self.count.is_some_and(|c| counter(result.count) >= c)
    }
}

fn counter(value: Option<i32>) -> i32 {
    value.unwrap_or(0)
}

/// Adds a measurement to a metric's result with Argo's bookkeeping. A measurement that
/// follows an unfinished one (no `finishedAt`) replaces it: it is that measurement resumed.
/// A finished measurement gets `finishedAt = now` when the provider did not set it, and counts:
///
/// * Successful: `successful`, `count` and `consecutiveSuccess` up, `consecutiveError` reset;
/// * Failed / Inconclusive: `failed` / `inconclusive` and `count` up, both streaks reset;
/// * Error: `error` and `consecutiveError` up, `consecutiveSuccess` reset. Errors do not count
///   toward `count`, so an erroring metric is retried rather than used up.
///
/// Zero counters are left unset, as Go's `omitempty` writes them.
pub fn record_measurement(result: &mut MetricResult, mut measurement: Measurement, now: Timestamp) {
    let phase = measurement.phase;
    if phase.is_completed() {
        if measurement.finished_at.is_none() {
            measurement.finished_at = Some(Time(now));
        }
        let bump = |v: &mut Option<i32>| *v = Some(counter(*v).saturating_add(1));
        match phase {
            AnalysisPhase::Successful => {
                bump(&mut result.successful);
                bump(&mut result.count);
                bump(&mut result.consecutive_success);
                result.consecutive_error = None;
            }
            AnalysisPhase::Error => {
                bump(&mut result.error);
                bump(&mut result.consecutive_error);
                result.consecutive_success = None;
            }
            _ => {
                if phase == AnalysisPhase::Failed {
                    bump(&mut result.failed);
                } else {
                    bump(&mut result.inconclusive);
                }
                bump(&mut result.count);
                result.consecutive_error = None;
                result.consecutive_success = None;
            }
        }
    }
    let measurements = result.measurements.get_or_insert_with(Vec::new);
    match measurements.last_mut() {
        Some(last) if last.finished_at.is_none() => *last = measurement,
        _ => measurements.push(measurement),
    }
}

/// A limit the metric went past: the phase it forces and Argo's text for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitBreach {
    /// `Failed`, `Inconclusive` or `Error`.
    pub phase: AnalysisPhase,
    /// Argo's text, e.g. `failed (3) > failureLimit (2)`.
    pub message: String,
}

/// Which limit the metric's counters exceed, as Argo's `assessMetricFailureInconclusiveOrError`:
/// failures (unless failureLimit is -1), then inconclusives, then consecutive errors, the later
/// one winning when several trip (so Error > Inconclusive > Failed).
pub fn limit_breach(limits: &Limits, result: &MetricResult) -> Option<LimitBreach> {
    let mut breach = None;
    let failed = counter(result.failed);
    if limits.failure >= 0 && failed > limits.failure {
        breach = Some(LimitBreach {
            phase: AnalysisPhase::Failed,
            message: format!("failed ({failed}) > failureLimit ({})", limits.failure),
        });
    }
    let inconclusive = counter(result.inconclusive);
    if inconclusive > limits.inconclusive {
        breach = Some(LimitBreach {
            phase: AnalysisPhase::Inconclusive,
            message: format!(
                "inconclusive ({inconclusive}) > inconclusiveLimit ({})",
                limits.inconclusive
            ),
        });
    }
    let errors = counter(result.consecutive_error);
    if errors > limits.consecutive_error {
        breach = Some(LimitBreach {
            phase: AnalysisPhase::Error,
            message: format!(
                "consecutiveErrors ({errors}) > consecutiveErrorLimit ({})",
                limits.consecutive_error
            ),
        });
    }
    breach
}

/// The phase of one metric (Argo's `assessMetricStatus`). `terminating` is whether the run is
/// stopping ([`is_terminating`]).
///
/// 1. A completed metric keeps its phase.
/// 2. No measurement yet: `Successful` when terminating (nothing to judge), else `Pending`.
/// 3. The last measurement is unfinished: `Running`.
/// 4. A limit is exceeded: its phase ([`limit_breach`]).
/// 5. `consecutiveSuccessLimit` reached: `Successful`.
/// 6. Count reached: `Successful`, unless consecutiveSuccessLimit is on and was not reached:
///    then `Inconclusive` (or `Failed` when failureLimit is -1, since success was the only
///    criterion).
/// 7. Unbounded metric: `Successful` when terminating, else `Running`.
pub fn metric_phase(limits: &Limits, result: &MetricResult, terminating: bool) -> AnalysisPhase {
    if result.phase.is_completed() {
        return result.phase;
    }
    let Some(last) = result.measurements.as_deref().and_then(<[_]>::last) else {
        return if terminating {
            AnalysisPhase::Successful
        } else {
            AnalysisPhase::Pending
        };
    };
    if !last.phase.is_completed() {
        return AnalysisPhase::Running;
    }
    if let Some(breach) = limit_breach(limits, result) {
        return breach.phase;
    }
    let success_limit_on = limits.consecutive_success > 0;
    if success_limit_on && counter(result.consecutive_success) >= limits.consecutive_success {
        return AnalysisPhase::Successful;
    }
    if limits.count_reached(result) {
        return match (success_limit_on, limits.failure >= 0) {
            (true, true) => AnalysisPhase::Inconclusive,
            (true, false) => AnalysisPhase::Failed,
            (false, _) => AnalysisPhase::Successful,
        };
    }
    if terminating {
        AnalysisPhase::Successful
    } else {
        AnalysisPhase::Running
    }
}

/// Whether the run is stopping: `spec.terminate`, or a metric that is not dry-run already ended
/// `Failed`, `Error` or `Inconclusive` (one bad metric ends the whole run). While terminating no
/// new measurement starts and in-flight ones are terminated.
pub fn is_terminating(terminate: bool, results: &[MetricResult], dry_run: &BTreeSet<String>) -> bool {
    terminate
        || results.iter().any(|r| {
            matches!(
                r.phase,
                AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive
            ) && !dry_run.contains(&r.name)
        })
}

/// Why a metric ended the way it did, in terms of what was measured: the measured value and
/// the condition it met or missed, or the provider's error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricCause {
    /// Name of the metric.
    pub metric: String,
    /// The metric's phase.
    pub phase: AnalysisPhase,
    /// What happened, e.g. `result [0.62] did not satisfy result[0] >= 0.95`.
    pub detail: String,
}

impl fmt::Display for MetricCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "metric \"{}\" assessed {}: {}",
            self.metric, self.phase, self.detail
        )
    }
}

/// Says why `metric` is in `phase`, from its most recent measurement of that phase: that
/// measurement's message when it has one (a provider error, a Job's failure), otherwise the
/// value against the conditions. Falls back to the limit text when no measurement explains it.
pub fn metric_cause(metric: &Metric, result: &MetricResult, phase: AnalysisPhase) -> MetricCause {
    let measurement = result
        .measurements
        .as_deref()
        .unwrap_or_default()
        .iter()
        .rev()
        .find(|m| m.phase == phase);
    let detail = measurement
        .and_then(|m| explain_measurement(metric, m))
        .or_else(|| {
            Limits::of(metric)
                .ok()
                .and_then(|limits| limit_breach(&limits, result))
                .map(|b| b.message)
        })
        .unwrap_or_else(|| format!("{phase} without a recorded reason"));
    MetricCause {
        metric: metric.name.clone(),
        phase,
        detail,
    }
}

/// Explains one finished, unsuccessful measurement. The decision table of
/// [`crate::evaluate::evaluate_result`] tells which condition decided: Failed means the failure
/// condition held (or, without one, the success condition did not); Inconclusive means neither
/// held.
fn explain_measurement(metric: &Metric, measurement: &Measurement) -> Option<String> {
    if let Some(message) = measurement.message.as_deref().filter(|m| !m.is_empty()) {
        return Some(message.to_string());
    }
    let value = measurement.value.as_deref().unwrap_or("<none>");
    let success = metric.success_condition.as_deref().filter(|c| !c.is_empty());
    let failure = metric.failure_condition.as_deref().filter(|c| !c.is_empty());
    match (measurement.phase, success, failure) {
        (AnalysisPhase::Failed, _, Some(f)) => Some(format!("result {value} met failureCondition {f}")),
        (AnalysisPhase::Failed, Some(s), None) => Some(format!("result {value} did not satisfy {s}")),
        (AnalysisPhase::Inconclusive, Some(s), Some(f)) => Some(format!(
            "result {value} met neither successCondition {s} nor failureCondition {f}"
        )),
        _ => None,
    }
}

/// The outcome of assessing a run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunAssessment {
    /// The run's phase.
    pub phase: AnalysisPhase,
    /// Argo's run message (empty while running).
    pub message: String,
    /// For a run that ended `Failed`, `Error` or `Inconclusive` because of a metric: what that
    /// metric measured. Append it to [`RunAssessment::message`].
    pub cause: Option<MetricCause>,
    /// Metrics that are not dry-run, counted by final phase.
    pub run_summary: RunSummary,
    /// Dry-run metrics, counted by final phase.
    pub dry_run_summary: RunSummary,
    /// The input metric results with each metric's phase and message updated.
    pub metric_results: Vec<MetricResult>,
    /// Metrics that completed in this assessment, with their phase (one `Metric<Phase>` event
    /// each).
    pub completed_metrics: Vec<(String, AnalysisPhase)>,
}

/// Argo's order of badness: a run takes the worst phase of its completed metrics.
fn badness(phase: AnalysisPhase) -> u8 {
    match phase {
        AnalysisPhase::Pending => 0,
        AnalysisPhase::Running => 1,
        AnalysisPhase::Successful => 2,
        AnalysisPhase::Inconclusive => 3,
        AnalysisPhase::Error => 4,
        AnalysisPhase::Failed => 5,
    }
}

/// Counts toward a summary; zero counts are left out, as Go's `omitempty` writes them.
#[derive(Default)]
struct Tally {
    count: i32,
    successful: i32,
    failed: i32,
    inconclusive: i32,
    error: i32,
}

impl Tally {
    fn add(&mut self, phase: AnalysisPhase) {
        match phase {
            AnalysisPhase::Failed => self.failed += 1,
            AnalysisPhase::Inconclusive => self.inconclusive += 1,
            AnalysisPhase::Error => self.error += 1,
            _ => self.successful += 1,
        }
    }

    fn summary(&self) -> RunSummary {
        let some = |n: i32| (n != 0).then_some(n);
        RunSummary {
            count: some(self.count),
            successful: some(self.successful),
            failed: some(self.failed),
            inconclusive: some(self.inconclusive),
            error: some(self.error),
        }
    }
}

/// Assesses the run (Argo's `assessRunStatus`): updates each metric's phase, then derives the
/// run's phase and message.
///
/// `metrics` are the run's metrics with arguments resolved (secret arguments replaced by a
/// placeholder, so conditions quoted in causes never show a secret); `results` is
/// `status.metricResults`; `dry_run` names the dry-run metrics; `terminate` is
/// `spec.terminate`.
///
/// * Dry-run metrics never change the run's phase; their result message becomes `Metric
///   assessed <Phase> due to <reason>`.
/// * Terminating (see [`is_terminating`]): the worst completed phase, or `Successful` when no
///   metric completed, with `Run Terminated` as message when `spec.terminate` is set and no
///   metric explains more.
/// * Otherwise `Running` (empty message) until every metric completed, then the worst phase.
///   The message is `Metric "<name>" assessed <Phase> due to <reason>`, plus `: "Error Message:
///   <metric message>"` when the metric has a message.
pub fn assess_run(
    metrics: &[Metric],
    results: &[MetricResult],
    dry_run: &BTreeSet<String>,
    terminate: bool,
) -> Result<RunAssessment, InvalidLimit> {
    let terminating = is_terminating(terminate, results, dry_run);
    let mut metric_results = results.to_vec();
    let mut completed_metrics = Vec::new();
    let mut worst: Option<(AnalysisPhase, usize)> = None;
    let mut message = if terminate {
        "Run Terminated".to_string()
    } else {
        String::new()
    };
    let mut everything_completed = true;
    let mut run_tally = Tally::default();
    let mut dry_tally = Tally::default();

    for (index, metric) in metrics.iter().enumerate() {
        let is_dry = dry_run.contains(&metric.name);
        let tally = if is_dry { &mut dry_tally } else { &mut run_tally };
        tally.count += 1;
        let Some(result) = metric_results.iter_mut().find(|r| r.name == metric.name) else {
            // Not started yet (e.g. waiting for its initial delay).
            everything_completed = false;
            continue;
        };
        let limits = Limits::of(metric)?;
        let phase = metric_phase(&limits, result, terminating);
        if result.phase != phase {
            if phase.is_completed() {
                completed_metrics.push((metric.name.clone(), phase));
            }
            result.message = result
                .measurements
                .as_deref()
                .and_then(<[_]>::last)
                .and_then(|m| m.message.clone())
                .filter(|m| !m.is_empty());
            result.phase = phase;
        }
        if !phase.is_completed() {
            everything_completed = false;
            continue;
        }
        let breach = limit_breach(&limits, result);
        tally.add(phase);
        if is_dry {
            if worst.is_none() {
                // Dry-run metrics count as Successful for the run.
                worst = Some((AnalysisPhase::Successful, index));
            }
            if let Some(breach) = breach {
                result.message = Some(format!("Metric assessed {phase} due to {}", breach.message));
            }
        } else if worst.is_none_or(|(w, _)| badness(phase) > badness(w)) {
            worst = Some((phase, index));
            if let Some(breach) = breach {
                message = format!(
                    "Metric \"{}\" assessed {phase} due to {}",
                    metric.name, breach.message
                );
                if let Some(metric_message) = result.message.as_deref().filter(|m| !m.is_empty()) {
                    message.push_str(&format!(": \"Error Message: {metric_message}\""));
                }
            }
        }
    }

    let message = message.trim().to_string();
    let (phase, message) = match worst {
        _ if terminating => (worst.map_or(AnalysisPhase::Successful, |(w, _)| w), message),
        Some((w, _)) if everything_completed => (w, message),
        _ => (AnalysisPhase::Running, String::new()),
    };
    // Only a metric that is not dry-run can make the run unsuccessful, and `worst` names it.
    let cause = worst
        .filter(|&(w, _)| w == phase && is_unsuccessful(phase))
        .and_then(|(_, index)| metrics.get(index))
        .and_then(|metric| {
            metric_results
                .iter()
                .find(|r| r.name == metric.name)
                .map(|result| metric_cause(metric, result, phase))
        });
    Ok(RunAssessment {
        phase,
        message,
        cause,
        run_summary: run_tally.summary(),
        dry_run_summary: dry_tally.summary(),
        metric_results,
        completed_metrics,
    })
}

fn is_unsuccessful(phase: AnalysisPhase) -> bool {
    matches!(
        phase,
        AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use shared_types::analysis::{MetricProvider, PrometheusMetric};

    use AnalysisPhase::*;

    fn metric(name: &str) -> Metric {
        Metric {
            name: name.into(),
            interval: Some("10s".into()),
            count: Some(IntOrString::Int(5)),
            success_condition: Some("result[0] >= 0.95".into()),
            provider: MetricProvider {
                prometheus: Some(PrometheusMetric::default()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn measurement(phase: AnalysisPhase) -> Measurement {
        Measurement {
            phase,
            value: Some("[0.62]".into()),
            ..Default::default()
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    /// A result after measurements of `phases` (the last one still in flight when Running).
    fn result(name: &str, phases: &[AnalysisPhase]) -> MetricResult {
        let mut r = MetricResult {
            name: name.into(),
            phase: Running,
            ..Default::default()
        };
        for &p in phases {
            let mut m = measurement(p);
            if p == Error {
                m.message = Some("Post \"http://prom:9090/api/v1/query\": connection refused".into());
                m.value = None;
            }
            record_measurement(&mut r, m, now());
        }
        r
    }

    fn limits(metric: &Metric) -> Limits {
        Limits::of(metric).unwrap()
    }

    #[test]
    fn bookkeeping() {
        let r = result("m", &[Successful, Successful, Failed, Successful, Error, Error]);
        assert_eq!(
            (r.count, r.successful, r.failed, r.inconclusive, r.error),
            (Some(4), Some(3), Some(1), None, Some(2))
        );
        assert_eq!((r.consecutive_error, r.consecutive_success), (Some(2), None));
        let r = result("m", &[Error, Inconclusive, Successful, Successful]);
        assert_eq!((r.consecutive_error, r.consecutive_success), (None, Some(2)));
        assert_eq!((r.count, r.inconclusive, r.error), (Some(3), Some(1), Some(1)));
        let ms = r.measurements.as_deref().unwrap();
        assert_eq!(ms.len(), 4);
        assert!(ms.iter().all(|m| m.finished_at == Some(Time(now()))));

        // A resumed measurement replaces the in-flight one and counts once.
        let mut r = result("m", &[Successful, Running]);
        assert_eq!(r.measurements.as_deref().unwrap().len(), 2);
        record_measurement(&mut r, measurement(Running), now());
        assert_eq!((r.measurements.as_deref().unwrap().len(), r.count), (2, Some(1)));
        let finished_earlier = Measurement {
            finished_at: Some(Time(Timestamp::UNIX_EPOCH)),
            ..measurement(Failed)
        };
        record_measurement(&mut r, finished_earlier.clone(), now());
        let ms = r.measurements.as_deref().unwrap();
        assert_eq!((ms.len(), &ms[1]), (2, &finished_earlier));
        assert_eq!((r.count, r.failed), (Some(2), Some(1)));
    }

    #[test]
    fn limits_defaults_and_errors() {
        let m = Metric {
            name: "m".into(),
            ..Default::default()
        };
        assert_eq!(
            limits(&m),
            Limits {
                count: Some(1),
                failure: 0,
                inconclusive: 0,
                consecutive_error: 4,
                consecutive_success: 0
            }
        );
        let m = Metric {
            interval: Some("1m".into()),
            ..m
        };
        assert_eq!(limits(&m).count, None);
        let m = Metric {
            failure_limit: Some(IntOrString::String("x".into())),
            ..m
        };
        assert_eq!(
            Limits::of(&m).unwrap_err().to_string(),
            r#"metric "m": failureLimit must be an integer: "x" is not an integer"#
        );
    }

    #[test]
    fn metric_phase_table() {
        let m = metric("m"); // count 5, failureLimit 0
        let l = limits(&m);
        let cases: Vec<(&str, MetricResult, bool, AnalysisPhase)> = vec![
            ("no measurement", result("m", &[]), false, Pending),
            ("no measurement, terminating", result("m", &[]), true, Successful),
            ("in flight", result("m", &[Successful, Running]), false, Running),
            ("in flight, terminating", result("m", &[Running]), true, Running),
            ("one success of five", result("m", &[Successful]), false, Running),
            ("count reached", result("m", &[Successful; 5]), false, Successful),
            (
                "first failure fails",
                result("m", &[Successful, Failed]),
                false,
                Failed,
            ),
            (
                "first inconclusive",
                result("m", &[Inconclusive]),
                false,
                Inconclusive,
            ),
            ("four errors tolerated", result("m", &[Error; 4]), false, Running),
            ("fifth error", result("m", &[Error; 5]), false, Error),
            (
                "errors reset by a success",
                result("m", &[Error, Error, Error, Error, Successful, Error]),
                false,
                Running,
            ),
            // Terminating stops a bounded metric short of its count too.
            (
                "bounded, terminating",
                result("m", &[Successful]),
                true,
                Successful,
            ),
            (
                "already completed stays",
                MetricResult {
                    phase: Failed,
                    ..result("m", &[Successful])
                },
                false,
                Failed,
            ),
        ];
        for (name, r, terminating, expected) in cases {
            assert_eq!(metric_phase(&l, &r, terminating), expected, "{name}");
        }
        // An unbounded metric runs until terminated, then ends Successful.
        let unbounded = Metric {
            count: None,
            ..metric("m")
        };
        let l = limits(&unbounded);
        let r = result("m", &[Successful; 20]);
        assert_eq!(metric_phase(&l, &r, false), Running);
        assert_eq!(metric_phase(&l, &r, true), Successful);
    }

    #[test]
    fn each_limit() {
        let m = Metric {
            failure_limit: Some(IntOrString::Int(2)),
            inconclusive_limit: Some(IntOrString::Int(1)),
            consecutive_error_limit: Some(IntOrString::Int(1)),
            count: Some(IntOrString::Int(10)),
            ..metric("m")
        };
        let l = limits(&m);
        let phase = |phases: &[AnalysisPhase]| metric_phase(&l, &result("m", phases), false);
        assert_eq!(phase(&[Failed, Failed]), Running);
        assert_eq!(phase(&[Failed, Failed, Failed]), Failed);
        assert_eq!(phase(&[Inconclusive]), Running);
        assert_eq!(phase(&[Inconclusive, Inconclusive]), Inconclusive);
        assert_eq!(phase(&[Error]), Running);
        assert_eq!(phase(&[Error, Error]), Error);
        assert_eq!(
            limit_breach(&l, &result("m", &[Failed, Failed, Failed]))
                .unwrap()
                .message,
            "failed (3) > failureLimit (2)"
        );
        assert_eq!(
            limit_breach(&l, &result("m", &[Inconclusive, Inconclusive]))
                .unwrap()
                .message,
            "inconclusive (2) > inconclusiveLimit (1)"
        );
        assert_eq!(
            limit_breach(&l, &result("m", &[Error, Error])).unwrap().message,
            "consecutiveErrors (2) > consecutiveErrorLimit (1)"
        );
        // Several limits: Error beats Inconclusive beats Failed.
        let all = result(
            "m",
            &[Failed, Failed, Failed, Inconclusive, Inconclusive, Error, Error],
        );
        assert_eq!(limit_breach(&l, &all).unwrap().phase, Error);
        let two = result("m", &[Failed, Failed, Failed, Inconclusive, Inconclusive]);
        assert_eq!(limit_breach(&l, &two).unwrap().phase, Inconclusive);
        // failureLimit -1 never fails on failures.
        let off = Metric {
            failure_limit: Some(IntOrString::Int(-1)),
            consecutive_success_limit: Some(IntOrString::Int(2)),
            ..m
        };
        assert_eq!(limit_breach(&limits(&off), &result("m", &[Failed; 5])), None);
    }

    #[test]
    fn consecutive_success_limit() {
        let m = Metric {
            count: Some(IntOrString::Int(4)),
            consecutive_success_limit: Some(IntOrString::Int(2)),
            failure_limit: Some(IntOrString::Int(3)),
            ..metric("m")
        };
        let l = limits(&m);
        let phase = |phases: &[AnalysisPhase]| metric_phase(&l, &result("m", phases), false);
        assert_eq!(phase(&[Successful]), Running);
        assert_eq!(phase(&[Failed, Successful, Successful]), Successful);
        // Count reached without two successes in a row: Inconclusive.
        assert_eq!(phase(&[Successful, Failed, Successful, Failed]), Inconclusive);
        // With failures not counted, success was the only criterion: Failed.
        let m = Metric {
            failure_limit: Some(IntOrString::Int(-1)),
            ..m
        };
        let l = limits(&m);
        assert_eq!(
            metric_phase(&l, &result("m", &[Successful, Failed, Successful, Failed]), false),
            Failed
        );
        // An error resets the streak.
        assert_eq!(
            metric_phase(&l, &result("m", &[Successful, Error, Successful]), false),
            Running
        );
    }

    fn no_dry_run() -> BTreeSet<String> {
        BTreeSet::new()
    }

    #[test]
    fn run_fails_with_argo_message_and_cause() {
        let m = Metric {
            failure_limit: Some(IntOrString::Int(2)),
            ..metric("success-rate")
        };
        let results = [result("success-rate", &[Failed, Failed, Failed])];
        let a = assess_run(&[m], &results, &no_dry_run(), false).unwrap();
        assert_eq!(a.phase, Failed);
        assert_eq!(
            a.message,
            r#"Metric "success-rate" assessed Failed due to failed (3) > failureLimit (2)"#
        );
        assert_eq!(
            a.cause.unwrap().to_string(),
            r#"metric "success-rate" assessed Failed: result [0.62] did not satisfy result[0] >= 0.95"#
        );
        assert_eq!(
            a.run_summary,
            RunSummary {
                count: Some(1),
                failed: Some(1),
                ..Default::default()
            }
        );
        assert_eq!(a.dry_run_summary, RunSummary::default());
        assert_eq!(a.metric_results[0].phase, Failed);
        assert_eq!(a.completed_metrics, vec![("success-rate".to_string(), Failed)]);
    }

    #[test]
    fn error_run_carries_the_error_message() {
        let results = [result("m", &[Error; 5])];
        let a = assess_run(&[metric("m")], &results, &no_dry_run(), false).unwrap();
        assert_eq!(a.phase, Error);
        let error = "Post \"http://prom:9090/api/v1/query\": connection refused";
        assert_eq!(
            a.message,
            format!(
                "Metric \"m\" assessed Error due to consecutiveErrors (5) > consecutiveErrorLimit (4): \"Error Message: {error}\""
            )
        );
        assert_eq!(a.metric_results[0].message.as_deref(), Some(error));
        assert_eq!(a.cause.unwrap().detail, error);
    }

    #[test]
    fn causes_for_each_condition_shape() {
        let both = Metric {
            failure_condition: Some("result[0] < 0.5".into()),
            ..metric("m")
        };
        let r = result("m", &[Inconclusive]);
        assert_eq!(
            metric_cause(&both, &r, Inconclusive).detail,
            "result [0.62] met neither successCondition result[0] >= 0.95 nor failureCondition result[0] < 0.5"
        );
        let r = result("m", &[Failed]);
        assert_eq!(
            metric_cause(&both, &r, Failed).detail,
            "result [0.62] met failureCondition result[0] < 0.5"
        );
        // A provider verdict (a Job) explains itself.
        let mut r = result("m", &[Failed]);
        if let Some(ms) = r.measurements.as_mut() {
            ms[0].message = Some("Job failed: BackoffLimitExceeded".into());
        }
        assert_eq!(
            metric_cause(&both, &r, Failed).detail,
            "Job failed: BackoffLimitExceeded"
        );
        // Nothing measured explains it: the limit text.
        let r = MetricResult {
            measurements: None,
            ..result("m", &[Failed])
        };
        assert_eq!(
            metric_cause(&both, &r, Failed).detail,
            "failed (1) > failureLimit (0)"
        );
    }

    #[test]
    fn run_is_running_until_every_metric_completes() {
        let metrics = [metric("a"), metric("b"), metric("c")];
        let results = [result("a", &[Successful; 5]), result("b", &[Successful])];
        let a = assess_run(&metrics, &results, &no_dry_run(), false).unwrap();
        assert_eq!((a.phase, a.message.as_str()), (Running, ""));
        assert_eq!(a.cause, None);
        assert_eq!(
            a.run_summary,
            RunSummary {
                count: Some(3),
                successful: Some(1),
                ..Default::default()
            }
        );
        let results = [
            result("a", &[Successful; 5]),
            result("b", &[Successful; 5]),
            result("c", &[Successful; 5]),
        ];
        let a = assess_run(&metrics, &results, &no_dry_run(), false).unwrap();
        assert_eq!((a.phase, a.message.as_str()), (Successful, ""));
        assert_eq!(a.completed_metrics.len(), 3);
    }

    #[test]
    fn a_failed_metric_terminates_the_run() {
        let metrics = [metric("a"), metric("b")];
        // First pass: "a" becomes Failed while "b" still runs: the run is not terminating yet.
        let results = [result("a", &[Failed]), result("b", &[Successful])];
        let first = assess_run(&metrics, &results, &no_dry_run(), false).unwrap();
        assert_eq!(first.phase, Running);
        // Next pass: "a" is stored Failed, so the run terminates: "b" stops short of its count
        // (Successful) and the run ends Failed.
        let second = assess_run(&metrics, &first.metric_results, &no_dry_run(), false).unwrap();
        assert_eq!(second.phase, Failed);
        assert_eq!(
            second.message,
            r#"Metric "a" assessed Failed due to failed (1) > failureLimit (0)"#
        );
        assert_eq!(second.metric_results[1].phase, Successful);
    }

    #[test]
    fn worst_phase_wins() {
        let metrics = [
            metric("ok"),
            metric("inc"),
            Metric {
                consecutive_error_limit: Some(IntOrString::Int(0)),
                ..metric("err")
            },
            metric("fail"),
        ];
        let results = [
            result("ok", &[Successful; 5]),
            result("inc", &[Inconclusive]),
            result("err", &[Error]),
            result("fail", &[Failed]),
        ];
        let a = assess_run(&metrics, &results, &no_dry_run(), false).unwrap();
        assert_eq!(a.phase, Failed);
        assert_eq!(a.cause.unwrap().metric, "fail");
        assert_eq!(
            a.run_summary,
            RunSummary {
                count: Some(4),
                successful: Some(1),
                failed: Some(1),
                inconclusive: Some(1),
                error: Some(1),
            }
        );
        // Inconclusive alone pauses rather than aborts: the run is Inconclusive.
        let a = assess_run(&metrics[..2], &results[..2], &no_dry_run(), false).unwrap();
        assert_eq!(a.phase, Inconclusive);
        assert_eq!(
            a.message,
            r#"Metric "inc" assessed Inconclusive due to inconclusive (1) > inconclusiveLimit (0)"#
        );
    }

    #[test]
    fn terminated_runs() {
        let metrics = [Metric {
            count: None,
            ..metric("m")
        }];
        // Nothing measured yet.
        let a = assess_run(&metrics, &[], &no_dry_run(), true).unwrap();
        assert_eq!((a.phase, a.message.as_str()), (Successful, "Run Terminated"));
        // An unbounded metric that was measuring ends Successful.
        let results = [result("m", &[Successful, Successful])];
        let a = assess_run(&metrics, &results, &no_dry_run(), true).unwrap();
        assert_eq!((a.phase, a.message.as_str()), (Successful, "Run Terminated"));
        assert_eq!(a.completed_metrics, vec![("m".to_string(), Successful)]);
        // An in-flight measurement keeps the metric Running, but the run still ends.
        let results = [result("m", &[Successful, Running])];
        let a = assess_run(&metrics, &results, &no_dry_run(), true).unwrap();
        assert_eq!(a.phase, Successful);
        // A failure found while terminating replaces the message.
        let results = [result("m", &[Failed])];
        let a = assess_run(&metrics, &results, &no_dry_run(), true).unwrap();
        assert_eq!(a.phase, Failed);
        assert_eq!(
            a.message,
            r#"Metric "m" assessed Failed due to failed (1) > failureLimit (0)"#
        );
    }

    #[test]
    fn dry_run_metrics_do_not_decide() {
        let metrics = [metric("real"), metric("dry")];
        let dry: BTreeSet<String> = ["dry".to_string()].into();
        let results = [result("real", &[Successful; 5]), result("dry", &[Failed])];
        let a = assess_run(&metrics, &results, &dry, false).unwrap();
        assert_eq!((a.phase, a.message.as_str()), (Successful, ""));
        assert_eq!(a.cause, None);
        assert_eq!(
            a.metric_results[1].message.as_deref(),
            Some("Metric assessed Failed due to failed (1) > failureLimit (0)")
        );
        assert_eq!(
            a.run_summary,
            RunSummary {
                count: Some(1),
                successful: Some(1),
                ..Default::default()
            }
        );
        assert_eq!(
            a.dry_run_summary,
            RunSummary {
                count: Some(1),
                failed: Some(1),
                ..Default::default()
            }
        );
        // A failed dry-run metric does not terminate the run.
        assert!(!is_terminating(false, &a.metric_results, &dry));
        assert!(is_terminating(false, &a.metric_results, &no_dry_run()));
        assert!(is_terminating(true, &[], &dry));
        // Only dry-run metrics: the run succeeds once they complete.
        let a = assess_run(&metrics[1..], &results[1..], &dry, false).unwrap();
        assert_eq!(a.phase, Successful);
    }
}
