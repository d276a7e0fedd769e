//! A client-side rate limiter that keeps the operator under HealthLake's request quotas.
//!
//! HealthLake publishes per-account, per-region quotas by operation: about one
//! CreateFHIRDatastore/DeleteFHIRDatastore a minute, one Start*Job a minute and ten
//! Describe/List/tag calls a second. [`RateLimited`] wraps any
//! [`HealthLake`](super::HealthLake) and, per (region, [`OperationClass`]), lets a call through
//! only when the bucket has budget; otherwise it answers
//! [`WaitingForQuota`](super::HealthLakeError::WaitingForQuota) at once, without calling AWS, and
//! the controller requeues the object after `retry_after`. Nothing here sleeps or blocks a
//! reconcile.
//!
//! Each bucket is a GCRA token bucket (one "theoretical arrival time" instead of a token count),
//! so admissions never exceed `burst + elapsed / interval`, whatever order callers arrive in. A
//! caller turned away gets a ticket: a slot in a first-come queue, keyed by what the call is about
//! (the ClientToken of a create or start, the id of what is described). Coming back at its slot,
//! it goes first; a newcomer cannot jump the queue. This is what spreads a burst of 500 job starts
//! in arrival order instead of letting them race every minute. A caller that comes back late is
//! served as soon as there is budget; a ticket nobody claims blocks no one and is forgotten after
//! a while (`ticket_retention`), so an object deleted while waiting costs nothing.
//!
//! The clock is an argument ([`Clock`], or `now` on [`RateLimiter::try_acquire`]), so tests are
//! deterministic and never sleep.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::OperationClass;

mod args;
mod clock;
mod quota;
mod rate_limited;

pub use args::RateLimitArgs;
use clock::later;
pub use clock::{Clock, ManualClock, SystemClock, following};
pub use quota::{Quota, RateLimitConfig, RateLimitConfigError};
pub use rate_limited::{DEFAULT_INLINE_WAIT, RateLimited};

/// One (region, operation class) bucket.
#[derive(Debug)]
struct Bucket {
    interval: Duration,
    /// How far the theoretical arrival time may run ahead of now: `interval * (burst - 1)`.
    tolerance: Duration,
    /// When the bucket would be back to one free request if nobody called; `None` when full.
    theoretical_arrival: Option<Instant>,
    /// Callers turned away, with the moment their turn comes.
    tickets: HashMap<String, Instant>,
}

impl Bucket {
    fn new(interval: Duration, burst: u32) -> Self {
        Self {
            interval,
            tolerance: interval.saturating_mul(burst.saturating_sub(1)),
            theoretical_arrival: None,
            tickets: HashMap::new(),
        }
    }

    /// How long until the bucket can admit one request.
    fn wait_for_budget(&self, now: Instant) -> Duration {
        self.theoretical_arrival.map_or(Duration::ZERO, |arrival| {
            arrival
                .saturating_duration_since(now)
                .saturating_sub(self.tolerance)
        })
    }

    fn spend(&mut self, now: Instant) {
        let from = self
            .theoretical_arrival
            .map_or(now, |arrival| arrival.max(now));
        self.theoretical_arrival = Some(later(from, self.interval));
    }

    fn try_acquire(
        &mut self,
        key: &str,
        now: Instant,
        retention: Duration,
    ) -> std::result::Result<(), Duration> {
        self.tickets
            .retain(|_, slot| later(*slot, retention) >= now);
        let wait = self.wait_for_budget(now);
        if let Some(slot) = self.tickets.get(key).copied() {
            if slot > now {
                return Err(slot - now);
            }
            // Its turn has come (or came while it was away): first come, first served.
            if wait.is_zero() {
                self.tickets.remove(key);
                self.spend(now);
                return Ok(());
            }
            // Someone else took the budget meanwhile: it goes next.
            self.tickets.insert(key.to_owned(), later(now, wait));
            return Err(wait);
        }
        // Only callers still waiting for their turn hold places; tickets whose turn has passed
        // belong to callers that are late or gone, and must not push newcomers back.
        let end_of_queue = self
            .tickets
            .values()
            .filter(|slot| **slot > now)
            .max()
            .map(|last| later(*last, self.interval));
        let slot = end_of_queue.map_or(later(now, wait), |end| end.max(later(now, wait)));
        if slot <= now {
            self.spend(now);
            return Ok(());
        }
        self.tickets.insert(key.to_owned(), slot);
        Err(slot - now)
    }

    /// AWS throttled a call this bucket let through: someone else shares the quota, so give up
    /// one interval of budget.
    fn penalize(&mut self, now: Instant) {
        self.spend(now);
    }
}

/// Budgets per (region, operation class), shared by every controller.
#[derive(Debug)]
pub struct RateLimiter {
    config: RateLimitConfig,
    intervals: BTreeMap<OperationClass, Duration>,
    buckets: Mutex<HashMap<(String, OperationClass), Bucket>>,
}

impl RateLimiter {
    /// A limiter with these settings, or why they are invalid.
    pub fn new(config: RateLimitConfig) -> std::result::Result<Self, RateLimitConfigError> {
        let mut intervals = BTreeMap::new();
        for class in [
            OperationClass::DatastoreLifecycle,
            OperationClass::JobStart,
            OperationClass::Read,
        ] {
            intervals.insert(class, config.interval(class)?);
        }
        Ok(Self {
            config,
            intervals,
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// The settings.
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// The time between two requests of a class, safety margin included.
    pub fn interval(&self, class: OperationClass) -> Duration {
        self.intervals
            .get(&class)
            .copied()
            .unwrap_or(Duration::from_secs(60))
    }

    /// Takes budget for one call about `key` at `now`, or says how long to wait.
    ///
    /// `key` names what the call is about (a ClientToken, a datastore id, ...) so that a caller
    /// coming back after the wait finds its place in the queue.
    pub fn try_acquire(
        &self,
        region: &str,
        class: OperationClass,
        key: &str,
        now: Instant,
    ) -> std::result::Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        buckets
            .entry((region.to_owned(), class))
            .or_insert_with(|| Bucket::new(self.interval(class), self.config.quota(class).burst))
            .try_acquire(key, now, self.config.ticket_retention)
    }

    /// Records that AWS throttled a call of this class in this region at `now`.
    pub fn penalize(&self, region: &str, class: OperationClass, now: Instant) {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        buckets
            .entry((region.to_owned(), class))
            .or_insert_with(|| Bucket::new(self.interval(class), self.config.quota(class).burst))
            .penalize(now);
    }

    /// How many callers wait for budget in this region and class.
    pub fn waiting(&self, region: &str, class: OperationClass) -> usize {
        let buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        buckets
            .get(&(region.to_owned(), class))
            .map_or(0, |bucket| bucket.tickets.len())
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    use proptest::prelude::*;

    use super::*;

    /// One request every 10 s once the 10% margin is taken off 1 per 9 s.
    fn ten_second_config(burst: u32) -> RateLimitConfig {
        let quota = Quota {
            requests: 1,
            per: Duration::from_secs(9),
            burst,
        };
        RateLimitConfig {
            datastore_lifecycle: quota,
            job_start: quota,
            read: quota,
            safety_margin: 0.1,
            ticket_retention: Duration::from_secs(30),
        }
    }

    fn limiter(config: RateLimitConfig) -> RateLimiter {
        RateLimiter::new(config).unwrap_or_else(|error| panic!("{error}"))
    }

    /// (seconds after start, key, expected: Ok or the wait in whole seconds)
    type Step = (u64, &'static str, std::result::Result<(), u64>);

    fn run(limiter: &RateLimiter, steps: &[Step]) {
        let start = Instant::now();
        for (index, (at, key, expected)) in steps.iter().enumerate() {
            let now = start + Duration::from_secs(*at);
            let got = limiter
                .try_acquire("us-east-1", OperationClass::JobStart, key, now)
                .map_err(|wait| wait.as_secs_f64().round() as u64);
            assert_eq!(got, *expected, "step {index}: {key} at {at}s");
        }
    }

    #[test]
    fn callers_are_served_in_arrival_order() {
        let steps: &[Step] = &[
            (0, "a", Ok(())),
            (0, "b", Err(10)),
            (0, "c", Err(20)),
            // Early: told the rest of its wait, keeps its place.
            (5, "b", Err(5)),
            // A newcomer queues behind c even though b's turn has come.
            (10, "d", Err(20)),
            (10, "b", Ok(())),
            (20, "c", Ok(())),
            (30, "d", Ok(())),
            // Queue empty and budget back: straight through.
            (45, "e", Ok(())),
            (46, "f", Err(9)),
        ];
        run(&limiter(ten_second_config(1)), steps);
    }

    #[test]
    fn a_caller_that_never_returns_blocks_no_one() {
        let steps: &[Step] = &[
            (0, "a", Ok(())),
            (0, "gone", Err(10)),
            // "gone" is late for its slot at 10 s; budget is there, so c need not wait for it.
            (35, "c", Ok(())),
            (36, "late", Err(9)),
            // Past slot + grace (10 + 30 s) the ticket is dropped; coming back, it queues anew.
            (45, "late", Ok(())),
            (50, "gone", Err(5)),
        ];
        run(&limiter(ten_second_config(1)), steps);
    }

    #[test]
    fn a_late_caller_keeps_its_turn_when_the_budget_was_taken() {
        let steps: &[Step] = &[
            (0, "a", Ok(())),
            (0, "b", Err(10)),
            (0, "c", Err(20)),
            // b comes back late; c is on time and takes the budget at 20 s.
            (20, "c", Ok(())),
            (21, "b", Err(9)),
            (30, "b", Ok(())),
        ];
        run(&limiter(ten_second_config(1)), steps);
    }

    #[test]
    fn burst_allows_back_to_back_calls_then_spaces_them() {
        let steps: &[Step] = &[
            (0, "a", Ok(())),
            (0, "b", Ok(())),
            (0, "c", Ok(())),
            (0, "d", Err(10)),
            (10, "d", Ok(())),
            (10, "e", Err(10)),
        ];
        run(&limiter(ten_second_config(3)), steps);
    }

    #[test]
    fn regions_and_classes_have_their_own_budget() {
        let limiter = limiter(ten_second_config(1));
        let now = Instant::now();
        let calls = [
            ("us-east-1", OperationClass::JobStart, true),
            ("us-east-1", OperationClass::JobStart, false),
            ("us-west-2", OperationClass::JobStart, true),
            ("us-east-1", OperationClass::DatastoreLifecycle, true),
            ("us-east-1", OperationClass::Read, true),
            ("us-west-2", OperationClass::Read, true),
            ("us-west-2", OperationClass::Read, false),
        ];
        for (index, (region, class, admitted)) in calls.into_iter().enumerate() {
            let key = format!("call-{index}");
            assert_eq!(
                limiter.try_acquire(region, class, &key, now).is_ok(),
                admitted,
                "{region} {class:?}"
            );
        }
        assert_eq!(limiter.waiting("us-east-1", OperationClass::JobStart), 1);
        assert_eq!(limiter.waiting("us-east-1", OperationClass::Read), 0);
    }

    #[test]
    fn throttling_by_aws_costs_one_interval() {
        let limiter = limiter(ten_second_config(1));
        let start = Instant::now();
        let region = "eu-west-1";
        let class = OperationClass::Read;
        assert_eq!(limiter.try_acquire(region, class, "a", start), Ok(()));
        limiter.penalize(region, class, start + Duration::from_secs(1));
        let wait = limiter.try_acquire(region, class, "b", start + Duration::from_secs(10));
        assert_eq!(wait, Err(Duration::from_secs(10)));
    }

    #[test]
    fn default_intervals_leave_a_three_percent_margin() {
        let limiter = limiter(RateLimitConfig::default());
        let cases = [
            (OperationClass::DatastoreLifecycle, 61_855),
            (OperationClass::JobStart, 61_855),
            (OperationClass::Read, 103),
        ];
        for (class, milliseconds) in cases {
            assert_eq!(
                limiter.interval(class).as_millis(),
                milliseconds,
                "{class:?}"
            );
        }
    }

    /// Runs callers against the limiter on a virtual clock. Each caller first calls at its
    /// arrival time and, when turned away, comes back `retry_after + lateness` later.
    /// Returns (admission times in order, callers in admission order, limiter calls).
    fn simulate(
        limiter: &RateLimiter,
        arrivals: &[(Duration, Duration)],
    ) -> (Vec<Duration>, Vec<usize>, usize) {
        let start = Instant::now();
        let mut queue: BinaryHeap<Reverse<(Duration, usize)>> = arrivals
            .iter()
            .enumerate()
            .map(|(caller, (arrival, _))| Reverse((*arrival, caller)))
            .collect();
        let mut times = Vec::new();
        let mut order = Vec::new();
        let mut calls = 0;
        while let Some(Reverse((at, caller))) = queue.pop() {
            calls += 1;
            assert!(
                calls < arrivals.len() * 50,
                "the simulation does not converge"
            );
            let key = format!("job-{caller}");
            match limiter.try_acquire("us-east-1", OperationClass::JobStart, &key, start + at) {
                Ok(()) => {
                    times.push(at);
                    order.push(caller);
                }
                Err(wait) => {
                    assert!(!wait.is_zero(), "a refusal must name a wait");
                    queue.push(Reverse((at + wait + arrivals[caller].1, caller)));
                }
            }
        }
        (times, order, calls)
    }

    #[test]
    fn a_burst_of_500_job_starts_is_spread_at_the_configured_rate_in_arrival_order() {
        let limiter = limiter(RateLimitConfig::default());
        let interval = limiter.interval(OperationClass::JobStart);
        let arrivals = vec![(Duration::ZERO, Duration::ZERO); 500];
        let (times, order, calls) = simulate(&limiter, &arrivals);

        assert_eq!(order, (0..500).collect::<Vec<_>>());
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            // Never two starts within one minute: the published quota is 1 per minute.
            assert!(gap >= interval, "gap {gap:?} is shorter than {interval:?}");
            assert!(gap > Duration::from_secs(60));
        }
        let span = times[499] - times[0];
        let expected = interval * 499;
        assert!(
            span.abs_diff(expected) < Duration::from_millis(1),
            "500 starts took {span:?}, expected {expected:?}"
        );
        // Each waiting caller is told its turn once and comes back once.
        assert_eq!(calls, 999);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn admissions_never_exceed_the_quota_whatever_callers_do(
            burst in 1u32..4,
            // Callers come back up to 30 s late: the ticket retention of this configuration. A
            // caller later than that has lost its place and queues anew, by design.
            callers in proptest::collection::vec((0u64..600_000, 0u64..30_000), 1..120),
        ) {
            let limiter = limiter(ten_second_config(burst));
            let interval = limiter.interval(OperationClass::JobStart);
            let arrivals: Vec<(Duration, Duration)> = callers
                .iter()
                .map(|(arrival, lateness)| {
                    (Duration::from_millis(*arrival), Duration::from_millis(*lateness))
                })
                .collect();
            let (times, order, _) = simulate(&limiter, &arrivals);

            prop_assert_eq!(order.len(), arrivals.len(), "every caller gets through");
            for first in 0..times.len() {
                for last in first..times.len() {
                    let admitted = (last - first + 1) as f64;
                    let allowed = f64::from(burst)
                        + (times[last] - times[first]).as_secs_f64() / interval.as_secs_f64();
                    prop_assert!(
                        admitted <= allowed + 1e-9,
                        "{} admissions within {:?}",
                        admitted,
                        times[last] - times[first]
                    );
                }
            }
        }
    }
}
