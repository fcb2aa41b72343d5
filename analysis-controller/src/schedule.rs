//! When measurements are due, as Argo's `generateMetricTasks` and `calculateNextReconcileTime`
//! decide, so the controller keeps one timer per run (the earliest due time of its metrics) and
//! never polls; plus the run-level rules that name metrics by pattern (`dryRun`,
//! `measurementRetention`), measurement trimming, and the TTL deadline of finished runs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use regex::Regex;
use shared_types::analysis::{
    AnalysisPhase, DEFAULT_ERROR_RETRY_INTERVAL, DEFAULT_MEASUREMENT_HISTORY_LIMIT, DryRun, Measurement,
    MeasurementRetention, Metric, MetricResult, TtlStrategy,
};
use shared_types::duration::DurationError;

use crate::assess::{InvalidLimit, Limits};

/// A metric's schedule cannot be computed (only for metrics that skipped validation).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// `interval` or `initialDelay` is not a duration.
    #[error("metric \"{metric}\": invalid {field}: {source}")]
    Duration {
        /// Name of the metric.
        metric: String,
        /// `interval` or `initialDelay`.
        field: &'static str,
        /// The parse error.
        source: DurationError,
    },
    /// `count` is not an integer.
    #[error(transparent)]
    Limit(#[from] InvalidLimit),
}

/// What a metric needs next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// Nothing: the metric completed, took its `count` measurements, or the run is terminating.
    Never,
    /// Start a new measurement at this time.
    Measure(Timestamp),
    /// Resume the unfinished last measurement (or terminate it, when the run is terminating)
    /// at its `resumeAt`, or as soon as the run is reconciled when it has none.
    Resume(Option<Timestamp>),
}

impl Due {
    /// Whether the work is due at `now`.
    pub fn is_due(&self, now: Timestamp) -> bool {
        match *self {
            Due::Never => false,
            Due::Measure(at) | Due::Resume(Some(at)) => at <= now,
            Due::Resume(None) => true,
        }
    }

    /// When to wake up for this work, if a timer is needed. An unfinished measurement without
    /// `resumeAt` sets no timer: its provider reports back (as in Argo, which does not requeue
    /// for it either).
    pub fn wake_at(&self) -> Option<Timestamp> {
        match *self {
            Due::Measure(at) | Due::Resume(Some(at)) => Some(at),
            Due::Never | Due::Resume(None) => None,
        }
    }
}

fn after(t: Timestamp, d: Duration) -> Timestamp {
    t.saturating_add(d).unwrap_or(Timestamp::MAX)
}

/// What `metric` needs next, given its result so far (`None` before its first measurement),
/// when the run started (`status.startedAt`; the controller stamps it on the first reconcile,
/// before scheduling, which is when Argo's initial delay effectively starts) and whether the run
/// is terminating ([`crate::assess::is_terminating`]).
///
/// * Completed metric: [`Due::Never`].
/// * Unfinished last measurement: [`Due::Resume`] at its `resumeAt` — also while terminating,
///   so the provider can stop it.
/// * Terminating: [`Due::Never`] (no new measurement starts).
/// * First measurement: at `startedAt + initialDelay`, or right away without a delay.
/// * Count reached: [`Due::Never`]. A metric without `count` but with an `interval` is
///   unbounded (background analysis): it is measured until the run is terminated.
/// * Otherwise `interval` after the last measurement finished, or 10 s after it when it was an
///   Error (Argo's `DefaultErrorRetryInterval`, whatever the interval; also used when no
///   interval is set).
pub fn next_measurement(
    metric: &Metric,
    result: Option<&MetricResult>,
    started_at: Timestamp,
    terminating: bool,
) -> Result<Due, ScheduleError> {
    if result.is_some_and(|r| r.phase.is_completed()) {
        return Ok(Due::Never);
    }
    let last = result
        .and_then(|r| r.measurements.as_deref())
        .and_then(<[_]>::last);
    let finished_at = last.and_then(|m| m.finished_at.as_ref()).map(|t| t.0);
    if let Some(last) = last
        && finished_at.is_none()
    {
        return Ok(Due::Resume(last.resume_at.as_ref().map(|t| t.0)));
    }
    if terminating {
        return Ok(Due::Never);
    }
    let duration_error = |field: &'static str| {
        move |source| ScheduleError::Duration {
            metric: metric.name.clone(),
            field,
            source,
        }
    };
    let (Some(last), Some(finished_at), Some(result)) = (last, finished_at, result) else {
        let delay = metric
            .initial_delay_duration()
            .map_err(duration_error("initialDelay"))?
            .unwrap_or_default();
        return Ok(Due::Measure(after(started_at, delay)));
    };
    if Limits::of(metric)?.count_reached(result) {
        return Ok(Due::Never);
    }
    let interval = if last.phase == AnalysisPhase::Error {
        DEFAULT_ERROR_RETRY_INTERVAL
    } else {
        metric
            .interval_duration()
            .map_err(duration_error("interval"))?
            .unwrap_or(DEFAULT_ERROR_RETRY_INTERVAL)
    };
    Ok(Due::Measure(after(finished_at, interval)))
}

/// The run's single timer: the earliest [`Due::wake_at`] over its metrics, or `None` when no
/// metric needs a timer (the run is finished or waits only on providers).
pub fn next_wake(
    metrics: &[Metric],
    results: &[MetricResult],
    started_at: Timestamp,
    terminating: bool,
) -> Result<Option<Timestamp>, ScheduleError> {
    let mut earliest: Option<Timestamp> = None;
    for metric in metrics {
        let result = results.iter().find(|r| r.name == metric.name);
        if let Some(at) = next_measurement(metric, result, started_at, terminating)?.wake_at() {
            earliest = Some(earliest.map_or(at, |e| e.min(at)));
        }
    }
    Ok(earliest)
}

/// When a completed run is due for deletion under its `ttlStrategy`: `completedAt` plus the
/// delay for its phase ([`TtlStrategy::seconds_for`]). `None` keeps the run (no strategy, no
/// delay for this phase, not completed, or no completion time). Argo deletes once the deadline
/// has passed; a finished run needs no other timer.
pub fn ttl_deadline(
    ttl: Option<&TtlStrategy>,
    phase: AnalysisPhase,
    completed_at: Option<Timestamp>,
) -> Option<Timestamp> {
    if !phase.is_completed() {
        return None;
    }
    let seconds = ttl?.seconds_for(phase)?;
    let completed_at = completed_at?;
    Some(
        completed_at
            .saturating_add(jiff::SignedDuration::from_secs(i64::from(seconds)))
            .unwrap_or(Timestamp::MAX),
    )
}

/// A `dryRun` or `measurementRetention` rule that cannot be applied; the run ends in Error with
/// `Analysis spec invalid: <this>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The rule's pattern matches no metric (Argo's text).
    #[error("{field}[{index}]: Rule didn't match any metric name(s)")]
    NoMatch {
        /// `dryRun` or `measurementRetention`.
        field: &'static str,
        /// Position of the rule.
        index: usize,
    },
    /// The pattern is not a regular expression (Argo reports this as "didn't match"; the
    /// reason is more useful).
    #[error("{field}[{index}]: invalid metricName pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// `dryRun` or `measurementRetention`.
        field: &'static str,
        /// Position of the rule.
        index: usize,
        /// The pattern as written.
        pattern: String,
        /// Why it does not compile.
        reason: String,
    },
}

/// Names of the metrics each rule's pattern matches. Patterns are unanchored regular
/// expressions, as Go's `regexp.MatchString` (`.*` selects all, `rate` matches `error-rate`),
/// and every rule must match at least one metric.
fn match_rules<'m>(
    field: &'static str,
    patterns: impl Iterator<Item = &'m str>,
    metrics: &'m [Metric],
) -> Result<Vec<Vec<&'m str>>, RuleError> {
    patterns
        .enumerate()
        .map(|(index, pattern)| {
            let regex = Regex::new(pattern).map_err(|e| RuleError::InvalidPattern {
                field,
                index,
                pattern: pattern.to_string(),
                reason: e
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            })?;
            let matched: Vec<&str> = metrics
                .iter()
                .map(|m| m.name.as_str())
                .filter(|name| regex.is_match(name))
                .collect();
            if matched.is_empty() {
                return Err(RuleError::NoMatch { field, index });
            }
            Ok(matched)
        })
        .collect()
}

/// The metrics that run in dry-run mode (their results never change the run's phase).
pub fn dry_run_metrics(rules: &[DryRun], metrics: &[Metric]) -> Result<BTreeSet<String>, RuleError> {
    let matched = match_rules("dryRun", rules.iter().map(|r| r.metric_name.as_str()), metrics)?;
    Ok(matched.into_iter().flatten().map(String::from).collect())
}

/// How many measurements each metric keeps in `status.metricResults[].measurements`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Limit of the last rule matching each metric (a later rule overrides an earlier one).
    limits: BTreeMap<String, i32>,
}

impl Retention {
    /// Applies the `measurementRetention` rules to `metrics`.
    pub fn new(rules: &[MeasurementRetention], metrics: &[Metric]) -> Result<Self, RuleError> {
        let matched = match_rules(
            "measurementRetention",
            rules.iter().map(|r| r.metric_name.as_str()),
            metrics,
        )?;
        let mut limits = BTreeMap::new();
        for (rule, names) in rules.iter().zip(matched) {
            for name in names {
                limits.insert(name.to_string(), rule.limit);
            }
        }
        Ok(Self { limits })
    }

    /// Measurements kept for `metric`: its rule's limit when positive, else Argo's default of
    /// 10.
    pub fn limit_for(&self, metric: &str) -> usize {
        self.limits
            .get(metric)
            .copied()
            .filter(|l| *l > 0)
            .unwrap_or(DEFAULT_MEASUREMENT_HISTORY_LIMIT)
            .try_into()
            .unwrap_or(usize::MAX)
    }
}

/// Keeps the newest `limit` measurements of `result` and returns the removed ones, oldest
/// first, so the provider can clean up what they refer to (the Job provider deletes their Jobs).
pub fn trim_measurements(result: &mut MetricResult, limit: usize) -> Vec<Measurement> {
    match result.measurements.as_mut() {
        Some(measurements) if measurements.len() > limit => {
            let excess = measurements.len() - limit;
            measurements.drain(..excess).collect()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    use AnalysisPhase::*;

    fn t(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn metric(name: &str) -> Metric {
        Metric {
            name: name.into(),
            interval: Some("30s".into()),
            count: Some(IntOrString::Int(3)),
            ..Default::default()
        }
    }

    fn finished(phase: AnalysisPhase, at: i64) -> Measurement {
        Measurement {
            phase,
            started_at: Some(Time(t(at - 1))),
            finished_at: Some(Time(t(at))),
            ..Default::default()
        }
    }

    fn result(name: &str, measurements: Vec<Measurement>) -> MetricResult {
        let count = measurements
            .iter()
            .filter(|m| matches!(m.phase, Successful | Failed | Inconclusive))
            .count();
        MetricResult {
            name: name.into(),
            phase: Running,
            count: Some(i32::try_from(count).unwrap()),
            measurements: Some(measurements),
            ..Default::default()
        }
    }

    #[test]
    fn first_measurement_and_initial_delay() {
        let m = metric("m");
        assert_eq!(next_measurement(&m, None, t(0), false), Ok(Due::Measure(t(0))));
        let delayed = Metric {
            initial_delay: Some("5m".into()),
            ..m.clone()
        };
        assert_eq!(
            next_measurement(&delayed, None, t(0), false),
            Ok(Due::Measure(t(300)))
        );
        let due = next_measurement(&delayed, None, t(0), false).unwrap();
        assert!(!due.is_due(t(299)));
        assert!(due.is_due(t(300)));
        // A result without measurements (created before the first one finished) is the same.
        let empty = result("m", vec![]);
        assert_eq!(
            next_measurement(&delayed, Some(&empty), t(0), false),
            Ok(Due::Measure(t(300)))
        );
        // Terminating before anything was measured: nothing to do.
        assert_eq!(next_measurement(&delayed, None, t(0), true), Ok(Due::Never));
    }

    #[test]
    fn interval_count_and_error_retry() {
        let m = metric("m");
        let r = result("m", vec![finished(Successful, 10)]);
        assert_eq!(
            next_measurement(&m, Some(&r), t(0), false),
            Ok(Due::Measure(t(40)))
        );
        // Errors are retried after 10 s whatever the interval, and do not count.
        let r = result("m", vec![finished(Successful, 10), finished(Error, 20)]);
        assert_eq!(
            next_measurement(&m, Some(&r), t(0), false),
            Ok(Due::Measure(t(30)))
        );
        let r = result(
            "m",
            vec![
                finished(Successful, 10),
                finished(Failed, 40),
                finished(Inconclusive, 70),
            ],
        );
        assert_eq!(next_measurement(&m, Some(&r), t(0), false), Ok(Due::Never));
        // A single-measurement metric that errored retries until it gets a result.
        let once = Metric {
            name: "m".into(),
            ..Default::default()
        };
        let r = result("m", vec![finished(Error, 5)]);
        assert_eq!(
            next_measurement(&once, Some(&r), t(0), false),
            Ok(Due::Measure(t(15)))
        );
        let r = result("m", vec![finished(Error, 5), finished(Successful, 15)]);
        assert_eq!(next_measurement(&once, Some(&r), t(0), false), Ok(Due::Never));
        // Terminating: no new measurement.
        let r = result("m", vec![finished(Successful, 10)]);
        assert_eq!(next_measurement(&m, Some(&r), t(0), true), Ok(Due::Never));
        // Completed metric: nothing.
        let done = MetricResult {
            phase: Failed,
            ..result("m", vec![finished(Failed, 10)])
        };
        assert_eq!(next_measurement(&m, Some(&done), t(0), false), Ok(Due::Never));
    }

    #[test]
    fn unbounded_background_metric() {
        let m = Metric {
            count: None,
            ..metric("m")
        };
        let r = result("m", (1..=100).map(|i| finished(Successful, i * 30)).collect());
        assert_eq!(
            next_measurement(&m, Some(&r), t(0), false),
            Ok(Due::Measure(t(3030)))
        );
        assert_eq!(next_measurement(&m, Some(&r), t(0), true), Ok(Due::Never));
    }

    #[test]
    fn running_measurement_is_resumed() {
        let m = metric("m");
        let running = Measurement {
            phase: Running,
            started_at: Some(Time(t(5))),
            resume_at: Some(Time(t(20))),
            ..Default::default()
        };
        let r = result("m", vec![finished(Successful, 0), running.clone()]);
        let due = next_measurement(&m, Some(&r), t(0), false).unwrap();
        assert_eq!(due, Due::Resume(Some(t(20))));
        assert!(!due.is_due(t(19)));
        assert!(due.is_due(t(20)));
        assert_eq!(due.wake_at(), Some(t(20)));
        // Resumed (to be terminated) even while terminating.
        assert_eq!(
            next_measurement(&m, Some(&r), t(0), true),
            Ok(Due::Resume(Some(t(20))))
        );
        // Without resumeAt: due at once, but no timer.
        let no_resume = Measurement {
            resume_at: None,
            ..running
        };
        let r = result("m", vec![no_resume]);
        let due = next_measurement(&m, Some(&r), t(0), false).unwrap();
        assert_eq!(due, Due::Resume(None));
        assert!(due.is_due(t(0)));
        assert_eq!(due.wake_at(), None);
    }

    #[test]
    fn one_timer_per_run() {
        let metrics = [
            metric("a"),
            Metric {
                interval: Some("1m".into()),
                ..metric("b")
            },
            Metric {
                initial_delay: Some("45s".into()),
                ..metric("c")
            },
            metric("done"),
        ];
        let results = [
            result("a", vec![finished(Successful, 10)]),
            result("b", vec![finished(Error, 25)]),
            MetricResult {
                phase: Successful,
                ..result("done", vec![finished(Successful, 1)])
            },
        ];
        // a: 40, b: 35 (error retry), c: 45 (initial delay), done: none.
        assert_eq!(next_wake(&metrics, &results, t(0), false), Ok(Some(t(35))));
        assert_eq!(next_wake(&metrics, &results, t(0), true), Ok(None));
        assert_eq!(next_wake(&metrics[3..], &results, t(0), false), Ok(None));
    }

    #[test]
    fn invalid_durations_are_errors() {
        let m = Metric {
            initial_delay: Some("soon".into()),
            ..metric("m")
        };
        assert_eq!(
            next_measurement(&m, None, t(0), false).unwrap_err().to_string(),
            r#"metric "m": invalid initialDelay: time: invalid duration "soon""#
        );
    }

    #[test]
    fn ttl() {
        let ttl = TtlStrategy {
            seconds_after_completion: Some(60),
            seconds_after_failure: Some(600),
            seconds_after_success: None,
        };
        assert_eq!(ttl_deadline(Some(&ttl), Successful, Some(t(0))), Some(t(60)));
        assert_eq!(ttl_deadline(Some(&ttl), Failed, Some(t(0))), Some(t(600)));
        assert_eq!(ttl_deadline(Some(&ttl), Error, Some(t(0))), Some(t(60)));
        assert_eq!(ttl_deadline(Some(&ttl), Running, Some(t(0))), None);
        assert_eq!(ttl_deadline(Some(&ttl), Failed, None), None);
        assert_eq!(ttl_deadline(None, Failed, Some(t(0))), None);
    }

    fn named(names: &[&str]) -> Vec<Metric> {
        names.iter().map(|n| metric(n)).collect()
    }

    fn dry(pattern: &str) -> DryRun {
        DryRun {
            metric_name: pattern.into(),
        }
    }

    #[test]
    fn dry_run_patterns_are_unanchored_regexes() {
        let metrics = named(&["success-rate", "error-rate", "latency"]);
        let set = |rules: &[DryRun]| {
            dry_run_metrics(rules, &metrics)
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>()
        };
        assert_eq!(set(&[dry(".*")]), ["error-rate", "latency", "success-rate"]);
        assert_eq!(set(&[dry("rate")]), ["error-rate", "success-rate"]);
        assert_eq!(set(&[dry("^latency$"), dry("^error")]), ["error-rate", "latency"]);
        assert_eq!(set(&[]), Vec::<String>::new());
        assert_eq!(
            dry_run_metrics(&[dry("latency"), dry("cpu")], &metrics)
                .unwrap_err()
                .to_string(),
            "dryRun[1]: Rule didn't match any metric name(s)"
        );
        let err = dry_run_metrics(&[dry("(")], &metrics).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(r#"dryRun[0]: invalid metricName pattern "(": "#),
            "{err}"
        );
    }

    #[test]
    fn retention_limits_and_trimming() {
        let metrics = named(&["a", "b", "c"]);
        let rule = |pattern: &str, limit| MeasurementRetention {
            metric_name: pattern.into(),
            limit,
        };
        let retention = Retention::new(&[rule(".*", 3), rule("^b$", 20), rule("c", 0)], &metrics).unwrap();
        assert_eq!(retention.limit_for("a"), 3);
        assert_eq!(retention.limit_for("b"), 20);
        // A later rule with no positive limit falls back to the default.
        assert_eq!(retention.limit_for("c"), 10);
        assert_eq!(Retention::default().limit_for("a"), 10);
        assert_eq!(
            Retention::new(&[rule("x", 1)], &metrics).unwrap_err().to_string(),
            "measurementRetention[0]: Rule didn't match any metric name(s)"
        );

        let mut r = result("a", (1..=12).map(|i| finished(Successful, i)).collect());
        let removed = trim_measurements(&mut r, 10);
        assert_eq!(removed, vec![finished(Successful, 1), finished(Successful, 2)]);
        let kept = r.measurements.as_deref().unwrap();
        assert_eq!((kept.len(), kept[0].clone()), (10, finished(Successful, 3)));
        assert_eq!(trim_measurements(&mut r, 10), vec![]);
        let mut none = MetricResult::default();
        assert_eq!(trim_measurements(&mut none, 1), vec![]);
    }
}
