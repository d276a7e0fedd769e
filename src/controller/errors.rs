//! Per-object memory of failures, keyed by `metadata.uid`: exponential backoff with jitter after
//! retryable errors, and the slow retries of stalled objects.
//!
//! The memory is a cache, never the truth: a Stalled object's hold is derived from its own status
//! (see [`crate::decide::stall`]), so a restart that empties this memory costs no AWS call. Records
//! are keyed by uid, so an object deleted and created again under the same name starts afresh;
//! they are dropped when the object goes and, as a bound, when untouched for longer than any wait.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::decide::stall::{self, Hold, RetrySchedule};

/// A record untouched for this many of the longest waits is dropped.
const IDLE_LIMIT_FACTOR: u32 = 4;

/// The slow retries of one stalled object, at one generation.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stall {
    generation: Option<i64>,
    /// When the schedule started: the stall, or the last asked-for retry.
    anchor: Timestamp,
    /// Retries made since `anchor`.
    attempts: u32,
    /// The `retry-at` annotation's value when last honoured.
    retry_at: Option<String>,
}

#[derive(Clone, Debug)]
struct Record {
    failures: u32,
    stall: Option<Stall>,
    touched: Instant,
}

/// Tracks consecutive failures and slow retries per object uid.
#[derive(Debug)]
pub struct ErrorTracker {
    base: Duration,
    max: Duration,
    schedule: RetrySchedule,
    records: Mutex<HashMap<String, Record>>,
}

impl ErrorTracker {
    /// Backoff starts at `base` and doubles per consecutive failure up to `max`; stalled objects
    /// are retried on `schedule`.
    pub fn new(base: Duration, max: Duration, schedule: RetrySchedule) -> Self {
        Self {
            base,
            max,
            schedule,
            records: Mutex::new(HashMap::new()),
        }
    }

    fn with_record<T>(&self, uid: &str, change: impl FnOnce(&mut Record) -> T) -> T {
        let mut records = self
            .records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if !records.contains_key(uid) {
            let idle = self
                .max
                .max(self.schedule.max)
                .saturating_mul(IDLE_LIMIT_FACTOR);
            records.retain(|_, record| now.duration_since(record.touched) < idle);
        }
        let record = records.entry(uid.to_owned()).or_insert_with(|| Record {
            failures: 0,
            stall: None,
            touched: now,
        });
        record.touched = now;
        change(record)
    }

    /// Records a retryable failure and returns how long to wait: exponential in the number of
    /// consecutive failures, capped, with "equal jitter" so that a burst of failing objects
    /// spreads out instead of retrying in lockstep.
    pub fn backoff(&self, uid: &str) -> Duration {
        let failures = self.with_record(uid, |record| {
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

    /// Whether an object that stalled at `since` (its Stalled condition's `lastTransitionTime` at
    /// its current `generation`) may call AWS now: when a slow retry is due, or when the
    /// `retry-at` annotation holds a value not yet honoured. Without memory of the stall (after a
    /// restart), the retries that were due are taken as made, so a restart costs no call.
    pub fn stalled(
        &self,
        uid: &str,
        generation: Option<i64>,
        since: Timestamp,
        retry_at: Option<&str>,
        now: Timestamp,
    ) -> Hold {
        let schedule = self.schedule;
        self.with_record(uid, |record| {
            let remembered = record
                .stall
                .as_ref()
                .filter(|stall| stall.generation == generation)
                .cloned();
            let mut memory = remembered.clone().unwrap_or_else(|| Stall {
                generation,
                anchor: since,
                attempts: stall::hold(schedule, since, now, 0).1,
                retry_at: None,
            });
            let requested = match &remembered {
                Some(stall) => retry_at.is_some() && retry_at != stall.retry_at.as_deref(),
                // After a restart: honour a timestamp later than the stall.
                None => stall::retry_requested(retry_at, None, since),
            };
            if requested {
                memory.retry_at = retry_at.map(str::to_owned);
                memory.anchor = now;
                memory.attempts = 0;
                record.stall = Some(memory);
                return Hold::Act;
            }
            if remembered.is_none() {
                memory.retry_at = retry_at.map(str::to_owned);
            }
            let (hold, attempts) = stall::hold(schedule, memory.anchor, now, memory.attempts);
            memory.attempts = attempts;
            record.stall = Some(memory);
            hold
        })
    }

    /// The wait before the next slow retry of an object that failed with a stalling error at
    /// `generation` (known at `now`, before its status was written), its `retry-at` annotation
    /// being `retry_at`. A first failure at this generation starts the schedule at `now`.
    pub fn slow_retry(
        &self,
        uid: &str,
        generation: Option<i64>,
        retry_at: Option<&str>,
        now: Timestamp,
    ) -> Duration {
        let schedule = self.schedule;
        self.with_record(uid, |record| {
            let stall = match record.stall.take() {
                Some(stall) if stall.generation == generation => stall,
                _ => Stall {
                    generation,
                    anchor: now,
                    attempts: 0,
                    retry_at: retry_at.map(str::to_owned),
                },
            };
            let (hold, attempts) = stall::hold(schedule, stall.anchor, now, stall.attempts);
            record.stall = Some(Stall { attempts, ..stall });
            match hold {
                Hold::Wait(wait) => wait,
                Hold::Act => schedule.gap(attempts + 1),
            }
        })
    }

    /// Takes back the slow retry last counted for the object: the client-side rate limiter deferred
    /// the call, so the retry is still to be made when budget comes, rather than at the next step
    /// of the schedule.
    pub fn retry_deferred(&self, uid: &str) {
        let mut records = self
            .records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(stall) = records
            .get_mut(uid)
            .and_then(|record| record.stall.as_mut())
        {
            stall.attempts = stall.attempts.saturating_sub(1);
        }
    }

    /// Forgets failures after a success.
    pub fn succeeded(&self, uid: &str) {
        self.forget(uid);
    }

    /// Forgets an object that no longer exists (or no longer fails).
    pub fn forget(&self, uid: &str) {
        let mut records = self
            .records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        records.remove(uid);
    }

    /// How many objects are remembered, for tests and metrics.
    pub fn len(&self) -> usize {
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    /// True when no object is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> ErrorTracker {
        ErrorTracker::new(
            Duration::from_secs(2),
            Duration::from_secs(60),
            RetrySchedule {
                first: Duration::from_secs(300),
                max: Duration::from_secs(3600),
            },
        )
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).expect("valid timestamp")
    }

    #[test]
    fn backoff_grows_is_capped_and_resets() {
        let tracker = tracker();
        let waits: Vec<_> = (0..10).map(|_| tracker.backoff("uid-a")).collect();
        assert!(waits[0] >= Duration::from_secs(1) && waits[0] <= Duration::from_secs(2));
        assert!(waits[3] >= Duration::from_secs(8) && waits[3] <= Duration::from_secs(16));
        assert!(waits.iter().all(|wait| *wait <= Duration::from_secs(60)));
        assert!(
            waits[9] >= Duration::from_secs(30),
            "capped at max, never below half of it"
        );
        tracker.succeeded("uid-a");
        assert!(tracker.backoff("uid-a") <= Duration::from_secs(2));
    }

    #[test]
    fn failures_belong_to_one_uid() {
        let tracker = tracker();
        for _ in 0..8 {
            tracker.backoff("uid-old");
        }
        assert!(
            tracker.backoff("uid-new") <= Duration::from_secs(2),
            "an object re-created under the same name starts afresh"
        );
    }

    #[test]
    fn a_stall_is_retried_slowly_then_on_request() {
        let tracker = tracker();
        assert_eq!(
            tracker.slow_retry("uid-a", Some(1), None, at(0)),
            Duration::from_secs(300)
        );
        assert_eq!(
            tracker.stalled("uid-a", Some(1), at(0), None, at(10)),
            Hold::Wait(Duration::from_secs(290))
        );
        assert_eq!(
            tracker.stalled("uid-a", Some(1), at(0), None, at(300)),
            Hold::Act
        );
        assert_eq!(
            tracker.slow_retry("uid-a", Some(1), None, at(301)),
            Duration::from_secs(599)
        );
        assert_eq!(
            tracker.stalled("uid-a", Some(1), at(0), Some("now please"), at(320)),
            Hold::Act,
            "a new retry-at value retries at once"
        );
        assert_eq!(
            tracker.slow_retry("uid-a", Some(1), None, at(321)),
            Duration::from_secs(299),
            "the schedule starts again after an asked-for retry"
        );
        assert_eq!(
            tracker.stalled("uid-a", Some(1), at(0), Some("now please"), at(330)),
            Hold::Wait(Duration::from_secs(290)),
            "the same value does not retry again"
        );
    }

    #[test]
    fn a_retry_deferred_by_the_rate_limiter_is_made_when_budget_comes() {
        let tracker = tracker();
        tracker.slow_retry("uid-a", Some(1), None, at(0));
        assert_eq!(
            tracker.stalled("uid-a", Some(1), at(0), None, at(300)),
            Hold::Act
        );
        tracker.retry_deferred("uid-a");
        assert_eq!(
            tracker.stalled("uid-a", Some(1), at(0), None, at(330)),
            Hold::Act,
            "the deferred retry is still due"
        );
        assert_eq!(
            tracker.slow_retry("uid-a", Some(1), None, at(331)),
            Duration::from_secs(569),
            "the schedule doubles on from the first stall"
        );
    }

    #[test]
    fn a_restart_derives_the_hold_from_status_without_a_call() {
        let tracker = tracker();
        // Stalled 1000 s ago, nothing remembered: retries at 300 and 900 were due, 2100 is next.
        assert_eq!(
            tracker.stalled("uid-a", Some(1), at(0), None, at(1000)),
            Hold::Wait(Duration::from_secs(1100))
        );
        assert!(matches!(
            tracker.stalled(
                "uid-b",
                Some(1),
                at(0),
                Some("2000-01-01T00:00:00Z"),
                at(1000)
            ),
            Hold::Wait(_)
        ));
        assert_eq!(
            tracker.stalled(
                "uid-c",
                Some(1),
                at(0),
                Some("2030-01-01T00:00:00Z"),
                at(1000)
            ),
            Hold::Act,
            "a retry-at newer than the stall is honoured after a restart"
        );
    }
}
