//! Kubernetes Events written off the reconcile path.
//!
//! Not `kube::runtime::events::Recorder`: it keys its cache on (object, reason) without the
//! message, so a second event with the same reason but another message becomes a PATCH of the
//! first one (the new message is lost), and every publish is awaited by the caller. Argo's
//! controllers create one `v1` Event per occurrence through a queue; so do we: reconciles hand
//! events to a bounded queue and never wait for the API server, and a full queue drops the
//! event with a log line rather than slowing reconciles down.

use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::{
    api::core::v1::{Event, EventSource, ObjectReference},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
    jiff::Timestamp,
};
use kube::{Api, Client, api::PostParams};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Events waiting to be written; past this, new ones are dropped (and logged).
const QUEUE: usize = 4096;
/// Events written at the same time: few, so that under load they yield the API server to the
/// writes that move rollouts forward (client-go's recorder writes one at a time).
const CONCURRENCY: usize = 2;

/// `Normal` or `Warning`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something the user should look at.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One occurrence to record on an object.
#[derive(Clone, Debug)]
pub struct Occurrence {
    /// The object the event is about (namespace, name, uid, kind, apiVersion).
    pub regarding: ObjectReference,
    /// Normal or Warning.
    pub type_: EventType,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable message (cut to 1024 characters).
    pub message: String,
}

/// Hands events to a background writer. Cheap to clone.
#[derive(Clone)]
pub struct EventPublisher {
    queue: mpsc::Sender<Occurrence>,
    /// When each rate-limited event was last published, by its key.
    last_published: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>>,
}

impl EventPublisher {
    /// Starts the writer task. `component` is the event source (Argo: `rollouts-controller`).
    pub fn start(client: Client, component: &str, instance: Option<String>) -> Self {
        let (queue, mut rx) = mpsc::channel::<Occurrence>(QUEUE);
        let writer = Writer {
            client,
            component: component.to_string(),
            instance,
            sequence: AtomicU64::new(0),
        };
        tokio::spawn(async move {
            let writer = std::sync::Arc::new(writer);
            let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
            while let Some(occurrence) = rx.recv().await {
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    break;
                };
                let writer = writer.clone();
                tokio::spawn(async move {
                    writer.write(occurrence).await;
                    drop(permit);
                });
            }
        });
        Self {
            queue,
            last_published: Default::default(),
        }
    }

    /// Queues an event unless one with the same `key` was published less than `every` ago
    /// (for repeated failures: one Event per object and cause per window, not one per retry).
    pub fn publish_at_most_every(&self, key: String, every: std::time::Duration, occurrence: Occurrence) {
        let due = {
            let mut last = self
                .last_published
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            due(&mut last, key, std::time::Instant::now(), every)
        };
        if due {
            self.publish(occurrence);
        }
    }

    /// Queues an event; never waits.
    pub fn publish(&self, occurrence: Occurrence) {
        debug!(reason = %occurrence.reason, message = %occurrence.message, "event");
        if let Err(e) = self.queue.try_send(occurrence) {
            let dropped = match e {
                mpsc::error::TrySendError::Full(o) | mpsc::error::TrySendError::Closed(o) => o,
            };
            warn!(reason = %dropped.reason, "event queue full; event dropped");
        }
    }
}

/// Whether an event with `key` may be published at `now` (and if so, remembers it).
fn due(
    last: &mut std::collections::HashMap<String, std::time::Instant>,
    key: String,
    now: std::time::Instant,
    every: std::time::Duration,
) -> bool {
    // Forget old entries so the map stays as small as the set of current failures.
    last.retain(|_, at| now.duration_since(*at) < every);
    if last.contains_key(&key) {
        return false;
    }
    last.insert(key, now);
    true
}

struct Writer {
    client: Client,
    component: String,
    instance: Option<String>,
    sequence: AtomicU64,
}

impl Writer {
    async fn write(&self, occurrence: Occurrence) {
        let namespace = occurrence
            .regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let event = self.event(occurrence, Timestamp::now());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            warn!(error = %e, reason = ?event.reason, "failed to record event");
        }
    }

    fn event(&self, occurrence: Occurrence, now: Timestamp) -> Event {
        let object = occurrence.regarding.name.clone().unwrap_or_default();
        // Unique per process and instant, like client-go's `<object>.<unix nanos in hex>`.
        let nanos = u64::try_from(now.as_nanosecond()).unwrap_or_default();
        let seq = self.sequence.fetch_add(1, Ordering::Relaxed);
        let name = format!("{object}.{:x}", nanos.wrapping_add(seq));
        Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: occurrence.regarding.namespace.clone(),
                ..Default::default()
            },
            involved_object: occurrence.regarding,
            type_: Some(occurrence.type_.as_str().into()),
            reason: Some(occurrence.reason),
            message: Some(occurrence.message.chars().take(1024).collect()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: None,
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.instance.clone().unwrap_or_else(|| self.component.clone())),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> Writer {
        // A client is needed to build the writer, never used by `event`.
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("static URL"));
        Writer {
            client: Client::try_from(config).expect("client from static config"),
            component: "rollouts-controller".into(),
            instance: None,
            sequence: AtomicU64::new(0),
        }
    }

    #[tokio::test]
    async fn each_occurrence_is_its_own_event_with_its_message() {
        let w = writer();
        let regarding = ObjectReference {
            kind: Some("Rollout".into()),
            name: Some("demo".into()),
            namespace: Some("ns".into()),
            ..Default::default()
        };
        let now = Timestamp::from_second(1_700_000_000).expect("valid timestamp");
        let occurrence = |message: &str| Occurrence {
            regarding: regarding.clone(),
            type_: EventType::Normal,
            reason: "ScalingReplicaSet".into(),
            message: message.into(),
        };
        let a = w.event(occurrence("Scaled up ReplicaSet demo-1 from 0 to 1"), now);
        let b = w.event(occurrence("Scaled down ReplicaSet demo-0 from 2 to 1"), now);
        assert_ne!(a.metadata.name, b.metadata.name, "same instant, distinct names");
        assert!(a.metadata.name.as_deref().is_some_and(|n| n.starts_with("demo.")));
        assert_eq!(
            b.message.as_deref(),
            Some("Scaled down ReplicaSet demo-0 from 2 to 1")
        );
        assert_eq!(a.count, Some(1));
        assert_eq!(a.type_.as_deref(), Some("Normal"));
        assert_eq!(
            a.source.and_then(|s| s.component).as_deref(),
            Some("rollouts-controller")
        );
    }

    #[test]
    fn rate_limited_events_once_per_key_and_window() {
        let mut last = std::collections::HashMap::new();
        let start = std::time::Instant::now();
        let every = std::time::Duration::from_secs(300);
        assert!(due(&mut last, "ns/a/api".into(), start, every));
        assert!(!due(
            &mut last,
            "ns/a/api".into(),
            start + std::time::Duration::from_secs(10),
            every
        ));
        assert!(due(&mut last, "ns/b/api".into(), start, every), "another object");
        assert!(
            due(&mut last, "ns/a/api".into(), start + every, every),
            "a new window"
        );
    }

    #[tokio::test]
    async fn long_messages_are_cut() {
        let w = writer();
        let e = w.event(
            Occurrence {
                regarding: ObjectReference::default(),
                type_: EventType::Warning,
                reason: "X".into(),
                message: "m".repeat(5000),
            },
            Timestamp::now(),
        );
        assert_eq!(e.message.map(|m| m.len()), Some(1024));
        assert_eq!(e.type_.as_deref(), Some("Warning"));
    }
}
