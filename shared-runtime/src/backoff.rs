//! How long to wait before reconciling an object again after a failed reconcile: exponential
//! per object (a persistent error backs off instead of looping at a fixed rate), reset by the
//! first success.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// Per-object exponential back-off with jitter.
pub struct ErrorBackoff {
    builder: ExponentialBuilder,
    objects: Mutex<HashMap<String, ExponentialBackoff>>,
}

impl ErrorBackoff {
    /// Doubles from `min` up to `max`, with jitter.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            builder: ExponentialBuilder::new()
                .with_min_delay(min)
                .with_max_delay(max)
                .with_factor(2.0)
                .with_jitter()
                .without_max_times(),
            objects: Mutex::new(HashMap::new()),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, ExponentialBackoff>) -> R) -> R {
        let mut objects = self
            .objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut objects)
    }

    /// The wait after one more failure of the object `key`.
    pub fn failed(&self, key: &str) -> Duration {
        let builder = self.builder;
        self.with(|objects| {
            objects
                .entry(key.to_string())
                .or_insert_with(|| builder.build())
                .next()
                .unwrap_or(Duration::from_secs(1))
        })
    }

    /// The object reconciled fine: its next failure starts from the shortest wait again.
    pub fn succeeded(&self, key: &str) {
        self.with(|objects| {
            objects.remove(key);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_per_object_up_to_the_cap_and_reset_on_success() {
        let b = ErrorBackoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let waits: Vec<Duration> = (0..8).map(|_| b.failed("a")).collect();
        // Jitter adds up to one more delay: each wait lies in [d, 2d) of its step.
        assert!(
            waits[0] >= Duration::from_millis(100) && waits[0] < Duration::from_millis(200),
            "{waits:?}"
        );
        assert!(waits[3] >= Duration::from_millis(800), "{waits:?}");
        assert!(
            waits.iter().all(|w| *w <= Duration::from_secs(4)),
            "capped: {waits:?}"
        );
        // Another object starts at the beginning.
        assert!(b.failed("b") < Duration::from_millis(200));
        b.succeeded("a");
        assert!(b.failed("a") < Duration::from_millis(200));
    }
}
