//! When to try a failed notification again: per destination and transition, waiting 5 s after
//! the first failure and doubling up to 5 minutes. Kept in memory: after a restart a failed
//! notification is tried at once (it is not in the sent record), then backs off again.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

const FIRST: Duration = Duration::from_secs(5);
const MAX: Duration = Duration::from_secs(300);

/// Failures and the next allowed attempt, by notification key.
#[derive(Debug, Default)]
pub struct RetryGate(Mutex<HashMap<String, (u32, Instant)>>);

impl RetryGate {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, Instant)>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// When `key` may be tried again, if not now.
    pub fn not_before(&self, key: &str, now: Instant) -> Option<Instant> {
        self.lock().get(key).map(|(_, at)| *at).filter(|at| *at > now)
    }

    /// Records a failure; returns when to try again.
    pub fn failed(&self, key: &str, now: Instant) -> Instant {
        let mut map = self.lock();
        // Entries long past their time belong to notifications that went away (sent by a
        // restart, or no longer due): drop them, so the map stays as small as what fails now.
        map.retain(|_, (_, at)| now.saturating_duration_since(*at) < MAX * 2);
        let failures = map.get(key).map_or(0, |(n, _)| *n).saturating_add(1);
        let wait = FIRST.saturating_mul(2u32.saturating_pow(failures - 1)).min(MAX);
        map.insert(key.to_string(), (failures, now + wait));
        now + wait
    }

    /// Forgets `key` (sent, or no longer due).
    pub fn succeeded(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_and_success_resets() {
        let gate = RetryGate::default();
        let t0 = Instant::now();
        assert_eq!(gate.not_before("a", t0), None);
        assert_eq!(gate.failed("a", t0), t0 + Duration::from_secs(5));
        assert_eq!(
            gate.not_before("a", t0 + Duration::from_secs(1)),
            Some(t0 + Duration::from_secs(5))
        );
        assert_eq!(gate.not_before("a", t0 + Duration::from_secs(6)), None);
        assert_eq!(gate.failed("a", t0), t0 + Duration::from_secs(10));
        for _ in 0..10 {
            gate.failed("a", t0);
        }
        assert_eq!(gate.failed("a", t0), t0 + MAX);
        gate.succeeded("a");
        assert_eq!(gate.not_before("a", t0), None);
        // Old entries go when the next failure is recorded.
        gate.failed("old", t0);
        let later = t0 + MAX * 3;
        gate.failed("new", later);
        assert!(gate.0.lock().unwrap().get("old").is_none());
        assert_eq!(gate.not_before("new", later), Some(later + FIRST));
    }
}
