//! Delivery metrics. Argo's names (`notification_send_success`, `notification_send_error`,
//! `notification_send`), labelled by trigger and service type only: bounded by configuration,
//! not by the number of objects (Argo labels them with each object's namespace and name).

use std::time::Duration;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SendLabels {
    trigger: String,
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

/// Counters of sent and failed notifications and a histogram of send durations.
#[derive(Clone)]
pub struct SendMetrics {
    success: Family<SendLabels, Counter>,
    error: Family<SendLabels, Counter>,
    duration: Family<ServiceLabels, Histogram>,
}

impl SendMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = SendMetrics {
            success: Family::default(),
            error: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
            }),
        };
        registry.register(
            "notification_send_success",
            "Notifications sent, by trigger and service type.",
            metrics.success.clone(),
        );
        registry.register(
            "notification_send_error",
            "Notifications that could not be sent (after retries) or rendered, by trigger and service type.",
            metrics.error.clone(),
        );
        registry.register(
            "notification_send",
            "Duration of notification sends in seconds, retries included.",
            metrics.duration.clone(),
        );
        metrics
    }

    pub fn succeeded(&self, trigger: &str, service: &str) {
        self.success.get_or_create(&labels(trigger, service)).inc();
    }

    pub fn failed(&self, trigger: &str, service: &str) {
        self.error.get_or_create(&labels(trigger, service)).inc();
    }

    pub fn observe(&self, service: &str, took: Duration) {
        self.duration
            .get_or_create(&ServiceLabels {
                service: service.into(),
            })
            .observe(took.as_secs_f64());
    }
}

fn labels(trigger: &str, service: &str) -> SendLabels {
    SendLabels {
        trigger: trigger.into(),
        service: service.into(),
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn series_are_labelled_by_trigger_and_service() {
        let mut registry = Registry::default();
        let metrics = SendMetrics::register(&mut registry);
        metrics.succeeded("on-rollout-completed", "slack");
        metrics.failed("on-rollout-aborted", "webhook");
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(
                r#"notification_send_success_total{trigger="on-rollout-completed",service="slack"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"notification_send_error_total{trigger="on-rollout-aborted",service="webhook"} 1"#
            ),
            "{text}"
        );
    }
}
