//! Per-object memory of failures: exponential backoff with jitter, and the hold that keeps a
//! terminal error from turning into a retry loop.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Identifies one object across reconciles.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    /// The kind, such as `FHIRDatastore`.
    pub kind: &'static str,
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
}

#[derive(Clone, Copy, Debug, Default)]
struct Record {
    failures: u32,
    /// The generation a terminal error stalled the object at: no AWS call until it changes.
    held_at: Option<Option<i64>>,
}

/// Tracks consecutive failures and terminal holds per object.
#[derive(Debug)]
pub struct ErrorTracker {
    base: Duration,
    max: Duration,
    records: Mutex<HashMap<ObjectKey, Record>>,
}

impl ErrorTracker {
    /// Backoff starts at `base` and doubles per consecutive failure up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            records: Mutex::new(HashMap::new()),
        }
    }

    fn with_record<T>(&self, key: &ObjectKey, change: impl FnOnce(&mut Record) -> T) -> T {
        let mut records = self
            .records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        change(records.entry(key.clone()).or_default())
    }

    /// Records a retryable failure and returns how long to wait: exponential in the number of
    /// consecutive failures, capped, with "equal jitter" so that a burst of failing objects
    /// spreads out instead of retrying in lockstep.
    pub fn backoff(&self, key: &ObjectKey) -> Duration {
        let failures = self.with_record(key, |record| {
            record.failures = record.failures.saturating_add(1);
            record.failures
        });
        let exponent = failures.saturating_sub(1).min(16);
        let ceiling = self.base.saturating_mul(1 << exponent).min(self.max);
        let half = ceiling / 2;
        let jitter =
            rand::random_range(0..=u64::try_from(half.as_millis()).unwrap_or(u64::MAX).max(1));
        half + Duration::from_millis(jitter)
    }

    /// Records that a terminal error stalled the object at `generation`.
    pub fn hold(&self, key: &ObjectKey, generation: Option<i64>) {
        self.with_record(key, |record| record.held_at = Some(generation));
    }

    /// True when a terminal error stalled the object at this very generation.
    pub fn is_held(&self, key: &ObjectKey, generation: Option<i64>) -> bool {
        self.with_record(key, |record| record.held_at == Some(generation))
    }

    /// Forgets failures after a success.
    pub fn succeeded(&self, key: &ObjectKey) {
        let mut records = self
            .records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        records.remove(key);
    }

    /// Forgets an object that no longer exists.
    pub fn forget(&self, key: &ObjectKey) {
        self.succeeded(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ObjectKey {
        ObjectKey {
            kind: "FHIRDatastore",
            namespace: "a".to_owned(),
            name: "b".to_owned(),
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_resets() {
        let tracker = ErrorTracker::new(Duration::from_secs(2), Duration::from_secs(60));
        let waits: Vec<_> = (0..10).map(|_| tracker.backoff(&key())).collect();
        assert!(waits[0] >= Duration::from_secs(1) && waits[0] <= Duration::from_secs(2));
        assert!(waits[3] >= Duration::from_secs(8) && waits[3] <= Duration::from_secs(16));
        assert!(waits.iter().all(|wait| *wait <= Duration::from_secs(60)));
        assert!(
            waits[9] >= Duration::from_secs(30),
            "capped at max, never below half of it"
        );
        tracker.succeeded(&key());
        assert!(tracker.backoff(&key()) <= Duration::from_secs(2));
    }

    #[test]
    fn hold_lasts_for_the_generation_only() {
        let tracker = ErrorTracker::new(Duration::from_secs(1), Duration::from_secs(1));
        tracker.hold(&key(), Some(3));
        assert!(tracker.is_held(&key(), Some(3)));
        assert!(
            !tracker.is_held(&key(), Some(4)),
            "a spec change lifts the hold"
        );
    }
}
