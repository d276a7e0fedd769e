//! When an object stalled by a failed call is tried again.
//!
//! Some terminal errors are fixed outside Kubernetes (an IAM policy, a KMS key, a bucket, a quota),
//! so a Stalled object is not left alone forever: it is tried again on a slow schedule that starts
//! at `first` and doubles up to `max` between attempts. The schedule is anchored on the Stalled
//! condition's `lastTransitionTime`, so it is derived from the object's own status and survives a
//! restart of the operator without costing an AWS call.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::api::ConditionType;

/// The annotation whose new value makes a Stalled object be tried again at once, such as
/// `kubectl annotate fhirimport nightly healthlake.fhir-operator.io/retry-at="$(date -u +%FT%TZ)" --overwrite`.
pub const RETRY_AT_ANNOTATION: &str = "healthlake.fhir-operator.io/retry-at";

/// The slow retry schedule of Stalled objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetrySchedule {
    /// Wait before the first retry.
    pub first: Duration,
    /// Longest wait between two retries.
    pub max: Duration,
}

impl RetrySchedule {
    /// The wait between retry `attempt - 1` and retry `attempt` (1-based): `first`, doubled per
    /// attempt, at most `max`.
    pub fn gap(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.first
            .saturating_mul(1u32 << doublings)
            .min(self.max)
            .max(Duration::from_millis(1))
    }

    /// How long after the stall retry `attempt` is due.
    pub fn due_at(&self, attempt: u32) -> Duration {
        (1..=attempt).fold(Duration::ZERO, |total, n| total.saturating_add(self.gap(n)))
    }

    /// How many retries are due `elapsed` after the stall.
    pub fn due(&self, elapsed: Duration) -> u32 {
        let mut attempts = 0u32;
        let mut at = Duration::ZERO;
        loop {
            let next = at.saturating_add(self.gap(attempts + 1));
            if next > elapsed || attempts == u32::MAX {
                return attempts;
            }
            attempts += 1;
            at = next;
        }
    }
}

/// What a stalled object should do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Try the call: the object is not stalled, or a retry is due.
    Act,
    /// Not yet: look again after this long.
    Wait(Duration),
}

/// The reason of an object that waits for an account-wide quota: `Reconciling`, yet held to the
/// same slow schedule as a stall, since only a change outside Kubernetes ends the wait.
pub const ACCOUNT_QUOTA_REASON: &str = "AccountQuotaReached";

/// When the object started waiting on the slow schedule at its current generation: the
/// `lastTransitionTime` of its Stalled condition, or of its Reconciling condition while that waits
/// for an account quota, if it is True and describes `generation`.
pub fn held_since(conditions: &[Condition], generation: Option<i64>) -> Option<Timestamp> {
    conditions
        .iter()
        .find(|condition| {
            condition.status == "True"
                && condition.observed_generation == generation
                && (condition.type_ == ConditionType::Stalled.as_str()
                    || (condition.type_ == ConditionType::Reconciling.as_str()
                        && condition.reason == ACCOUNT_QUOTA_REASON))
        })
        .map(|condition| condition.last_transition_time.0)
}

/// Decides whether a stalled object may be tried now. `since` is when it stalled, `attempts` how
/// many retries were already made since then (after a restart: all that were due). Returns the
/// hold and the number of retries made once the caller acts on it.
pub fn hold(
    schedule: RetrySchedule,
    since: Timestamp,
    now: Timestamp,
    attempts: u32,
) -> (Hold, u32) {
    let elapsed = now.duration_since(since).unsigned_abs();
    let elapsed = if now < since { Duration::ZERO } else { elapsed };
    let due = schedule.due(elapsed);
    if due > attempts {
        (Hold::Act, due)
    } else {
        let next = schedule.due_at(attempts + 1);
        (Hold::Wait(next.saturating_sub(elapsed)), attempts)
    }
}

/// True when the `retry-at` annotation asks for a retry the object has not had: its value
/// changed since the stall was recorded (`seen`), or, with nothing recorded (after a restart), it
/// is a timestamp later than the stall.
pub fn retry_requested(annotation: Option<&str>, seen: Option<&str>, since: Timestamp) -> bool {
    match (annotation, seen) {
        (None, _) => false,
        (Some(value), Some(seen)) => value != seen,
        (Some(value), None) => value
            .parse::<Timestamp>()
            .is_ok_and(|requested| requested > since),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> RetrySchedule {
        RetrySchedule {
            first: Duration::from_secs(300),
            max: Duration::from_secs(3600),
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).expect("valid timestamp")
    }

    #[test]
    fn retries_start_slow_double_and_are_capped() {
        let gaps: Vec<u64> = (1..=7).map(|n| schedule().gap(n).as_secs()).collect();
        assert_eq!(gaps, [300, 600, 1200, 2400, 3600, 3600, 3600]);
        assert_eq!(schedule().due_at(3).as_secs(), 2100);
    }

    #[test]
    fn the_hold_follows_the_schedule_from_the_stall() {
        // (seconds since the stall, retries already made) → (hold, retries made after acting)
        let cases = [
            (0, 0, Hold::Wait(Duration::from_secs(300)), 0),
            (299, 0, Hold::Wait(Duration::from_secs(1)), 0),
            (300, 0, Hold::Act, 1),
            (400, 1, Hold::Wait(Duration::from_secs(500)), 1),
            (900, 1, Hold::Act, 2),
            // A restart long after the stall assumes the due retries were made: no call at once.
            (5000, 4, Hold::Wait(Duration::from_secs(8100 - 5000)), 4),
            // A clock that went backwards waits for the first retry.
            (-60, 0, Hold::Wait(Duration::from_secs(300)), 0),
        ];
        for (elapsed, attempts, expected, after) in cases {
            assert_eq!(
                hold(schedule(), at(0), at(elapsed), attempts),
                (expected, after),
                "{elapsed}s after the stall with {attempts} retries made"
            );
        }
    }

    fn condition(type_: &str, status: &str, reason: &str, generation: i64) -> Condition {
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: String::new(),
            observed_generation: Some(generation),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(0)),
        }
    }

    #[test]
    fn stalls_and_account_quota_waits_are_held_at_their_generation_only() {
        let cases = [
            (condition("Stalled", "True", "AccessDenied", 2), Some(at(0))),
            (condition("Stalled", "True", "AccessDenied", 1), None),
            (condition("Stalled", "False", "Active", 2), None),
            (
                condition("Reconciling", "True", ACCOUNT_QUOTA_REASON, 2),
                Some(at(0)),
            ),
            (condition("Reconciling", "True", "Creating", 2), None),
        ];
        for (condition, expected) in cases {
            assert_eq!(
                held_since(std::slice::from_ref(&condition), Some(2)),
                expected,
                "{condition:?}"
            );
        }
    }

    #[test]
    fn retry_at_asks_for_a_retry_only_when_new() {
        let cases = [
            (None, None, false),
            (Some("a"), Some("a"), false),
            (Some("b"), Some("a"), true),
            (Some("2027-01-15T10:00:00Z"), None, true),
            (Some("2020-01-01T00:00:00Z"), None, false),
            (Some("please"), None, false),
        ];
        for (annotation, seen, expected) in cases {
            assert_eq!(
                retry_requested(annotation, seen, at(0)),
                expected,
                "{annotation:?} after {seen:?}"
            );
        }
    }
}
