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
    ///
    /// The gaps stop changing after a few dozen attempts at most (once capped, or once `first`
    /// has doubled 31 times), so the rest is one multiplication: any attempt number is cheap.
    pub fn due_at(&self, attempt: u32) -> Duration {
        let mut total = Duration::ZERO;
        let mut n = 1u32;
        while n <= attempt {
            let gap = self.gap(n);
            if gap == self.gap(n.saturating_add(1)) {
                return total.saturating_add(gap.saturating_mul(attempt - n + 1));
            }
            total = total.saturating_add(gap);
            n += 1;
        }
        total
    }

    /// How many retries are due `elapsed` after the stall (at most `u32::MAX`).
    pub fn due(&self, elapsed: Duration) -> u32 {
        let mut attempts = 0u32;
        let mut at = Duration::ZERO;
        loop {
            let gap = self.gap(attempts.saturating_add(1));
            if gap == self.gap(attempts.saturating_add(2)) {
                // Every later gap is this one (never zero, see `gap`).
                let more = elapsed.saturating_sub(at).as_nanos() / gap.as_nanos().max(1);
                return u32::try_from(u128::from(attempts).saturating_add(more))
                    .unwrap_or(u32::MAX);
            }
            let next = at.saturating_add(gap);
            if next > elapsed {
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
        let next = schedule.due_at(attempts.saturating_add(1));
        // Only a count that can grow no more leaves `next` behind `elapsed`: wait a whole gap
        // rather than not at all.
        let wait = if next > elapsed {
            next - elapsed
        } else {
            schedule.gap(u32::MAX)
        };
        (Hold::Wait(wait), attempts)
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

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn odd_schedules_are_capped_and_never_hot() {
        // (first ms, max ms, attempt) → gap ms
        let cases = [
            (300_000, 3_600_000, 0, 300_000),
            (300_000, 3_600_000, 32, 3_600_000),
            (300_000, 3_600_000, u32::MAX, 3_600_000),
            // A cap below the first wait wins from the first retry on.
            (300_000, 120_000, 1, 120_000),
            (300_000, 120_000, u32::MAX, 120_000),
            // A zero schedule still waits a millisecond.
            (0, 0, 1, 1),
            (0, 3_600_000, u32::MAX, 1),
            // Doubling stops after 31 steps, and saturates instead of overflowing.
            (1, u64::MAX, u32::MAX, 1 << 31),
            (u64::MAX, u64::MAX, 40, u64::MAX),
        ];
        for (first, max, attempt, expected) in cases {
            let schedule = RetrySchedule {
                first: ms(first),
                max: ms(max),
            };
            assert_eq!(
                schedule.gap(attempt),
                ms(expected),
                "gap {attempt} of {first}..{max} ms"
            );
        }
    }

    #[test]
    fn due_counts_agree_with_counting_one_by_one() {
        let schedules = [
            (300_000, 3_600_000),
            (300_000, 120_000),
            (0, 0),
            (7, 1_000),
            (1_000, 1_000),
            (3, u64::MAX),
        ];
        for (first, max) in schedules {
            let schedule = RetrySchedule {
                first: ms(first),
                max: ms(max),
            };
            let mut at = Duration::ZERO;
            for attempt in 1..=60u32 {
                at = at.saturating_add(schedule.gap(attempt));
                assert_eq!(
                    schedule.due_at(attempt),
                    at,
                    "{first}..{max} ms: due_at({attempt})"
                );
                assert_eq!(
                    schedule.due(at),
                    attempt,
                    "{first}..{max} ms: due at {at:?}"
                );
                assert_eq!(
                    schedule.due(at.saturating_sub(ms(1))),
                    attempt - 1,
                    "{first}..{max} ms: due just before {at:?}"
                );
            }
        }
    }

    #[test]
    fn huge_attempt_numbers_and_elapsed_times_are_cheap_and_never_panic() {
        let hours = |n: u64| Duration::from_secs(3600 * n);
        // 300 + 600 + 1200 + 2400 s, then an hour each.
        assert_eq!(
            schedule().due_at(u32::MAX),
            Duration::from_secs(4500 + (u64::from(u32::MAX) - 4) * 3600)
        );
        assert_eq!(schedule().due(hours(10) + Duration::from_secs(4500)), 14);
        assert_eq!(schedule().due(Duration::MAX), u32::MAX);

        // (schedule, seconds since the stall, retries already made) → (hold, retries made)
        let zero = RetrySchedule {
            first: Duration::ZERO,
            max: Duration::ZERO,
        };
        let century = 100 * 365 * 86_400;
        let cases = [
            (
                schedule(),
                86_400,
                u32::MAX,
                Hold::Wait(schedule().due_at(u32::MAX) - Duration::from_secs(86_400)),
                u32::MAX,
            ),
            (schedule(), century, 0, Hold::Act, 876_002),
            // After u32::MAX one-millisecond retries the count cannot grow: wait, never spin.
            (zero, century, 0, Hold::Act, u32::MAX),
            (zero, century, u32::MAX, Hold::Wait(ms(1)), u32::MAX),
        ];
        for (schedule, elapsed, attempts, expected, after) in cases {
            assert_eq!(
                hold(schedule, at(0), at(elapsed), attempts),
                (expected, after),
                "{schedule:?}: {elapsed}s after the stall with {attempts} retries made"
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
