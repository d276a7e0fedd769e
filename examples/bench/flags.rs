//! The operator's `run` flag sets the benchmarks compare: the operator as shipped, and the
//! baseline of issue 11 item 7 (limiter off, a fixed 5 s requeue), both scaled for an emulator
//! clock that runs faster than real time.
//!
//! Scaling rule: when the emulator's clock runs `speed` times faster than real time, every
//! interval flag is divided by `speed` and every limiter rate multiplied by it, so that the
//! operator behaves, in emulated time, as it would in real time at speed 1.

use crate::processes::LIMITER_LIFTED;

/// The operator's default intervals, in seconds, as `run` flags.
pub const DEFAULT_INTERVALS: [(&str, f64); 7] = [
    ("--poll-soon-seconds", 5.0),
    ("--poll-long-seconds", 45.0),
    ("--resync-seconds", 600.0),
    ("--backoff-base-seconds", 5.0),
    ("--backoff-max-seconds", 300.0),
    ("--stalled-retry-seconds", 300.0),
    ("--stalled-retry-max-seconds", 3600.0),
];

/// The baseline's intervals: every requeue 5 s (polls, drift checks and retries alike, with no
/// growth on repeated failures), as a controller that always answers `requeue(5 s)` does.
pub const FIXED_5S_INTERVALS: [(&str, f64); 7] = [
    ("--poll-soon-seconds", 5.0),
    ("--poll-long-seconds", 5.0),
    ("--resync-seconds", 5.0),
    ("--backoff-base-seconds", 5.0),
    ("--backoff-max-seconds", 5.0),
    ("--stalled-retry-seconds", 5.0),
    ("--stalled-retry-max-seconds", 5.0),
];

/// The client-side rate limiter of an operator flag set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limiter {
    /// The defaults (1/min datastore lifecycle, 1/min job starts, 10/s reads, 3% margin).
    Default,
    /// [`LIMITER_LIFTED`]: no client-side limit to speak of.
    Lifted,
}

/// One operator flag set: intervals in emulated seconds and a limiter.
#[derive(Clone, Debug)]
pub struct OperatorFlags {
    /// What the figures call it: `default` or `baseline`.
    pub name: &'static str,
    /// Interval flags and their values in (emulated) seconds.
    pub intervals: Vec<(&'static str, f64)>,
    /// The limiter.
    pub limiter: Limiter,
}

/// The limiter's default ticket retention, in seconds (`--rate-limit-ticket-retention-seconds`).
const DEFAULT_TICKET_RETENTION_SECONDS: f64 = 600.0;

impl OperatorFlags {
    /// The operator as shipped: default intervals, default limiter.
    pub fn shipped() -> Self {
        Self {
            name: "default",
            intervals: DEFAULT_INTERVALS.to_vec(),
            limiter: Limiter::Default,
        }
    }

    /// Default intervals with the limiter lifted (the API-economy run's set).
    pub fn default_intervals_limiter_lifted() -> Self {
        Self {
            name: "default",
            intervals: DEFAULT_INTERVALS.to_vec(),
            limiter: Limiter::Lifted,
        }
    }

    /// Issue 11 item 7: the limiter lifted and a fixed 5 s requeue.
    pub fn baseline() -> Self {
        Self {
            name: "baseline",
            intervals: FIXED_5S_INTERVALS.to_vec(),
            limiter: Limiter::Lifted,
        }
    }

    /// The `run` flags for an emulator clock `speed` times faster than real time: intervals
    /// divided by `speed`, limiter rates multiplied by it (a `speed` below 1 counts as 1).
    pub fn scaled(&self, speed: f64) -> Vec<String> {
        let speed = speed.max(1.0);
        let mut flags: Vec<String> = self
            .intervals
            .iter()
            .flat_map(|(flag, seconds)| [(*flag).to_owned(), (seconds / speed).to_string()])
            .collect();
        match self.limiter {
            Limiter::Lifted => flags.extend(LIMITER_LIFTED.iter().map(|flag| (*flag).to_owned())),
            Limiter::Default => {
                // The quota syntax takes whole requests: 1/min at speed 200 is 200/min.
                let per_minute = speed.round().max(1.0) as u64;
                let retention = (DEFAULT_TICKET_RETENTION_SECONDS / speed).ceil().max(1.0) as u64;
                flags.extend([
                    "--rate-limit-datastore-lifecycle".to_owned(),
                    format!("{per_minute}/min"),
                    "--rate-limit-job-start".to_owned(),
                    format!("{per_minute}/min"),
                    "--rate-limit-read".to_owned(),
                    format!("{}/s", 10 * per_minute),
                    "--rate-limit-ticket-retention-seconds".to_owned(),
                    retention.to_string(),
                ]);
            }
        }
        flags
    }

    /// The flags as one JSON string, for results.json.
    pub fn describe(&self, speed: f64) -> String {
        self.scaled(speed).join(" ")
    }
}
