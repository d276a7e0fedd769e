//! The emulator's clock: real time shifted by an offset (optionally running faster than real
//! time), or frozen at an instant.
//!
//! Every lifecycle is evaluated against this clock, so a test moves a datastore from CREATING
//! to ACTIVE by advancing the clock instead of sleeping.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, the emulator's unit of time.
pub type EpochMillis = i64;

/// Converts a system time into epoch milliseconds (saturating for times before 1970).
pub fn to_epoch_millis(time: SystemTime) -> EpochMillis {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// Converts epoch milliseconds into a system time.
pub fn to_system_time(millis: EpochMillis) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

/// Converts a duration into milliseconds, saturating.
pub fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The clock's state; serialisable so that a state file keeps lifecycles where they were.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Clock {
    /// Real time plus an offset that grows each time the clock is advanced; with a `speed`
    /// above 1, the clock runs that many times faster than real time from `since_millis` on.
    Running {
        /// Milliseconds added to real time.
        offset_millis: i64,
        /// How many emulated milliseconds pass per real millisecond (1: real time).
        #[serde(default = "real_speed")]
        speed: u32,
        /// The real time (epoch milliseconds) from which the clock runs at `speed`.
        #[serde(default)]
        since_millis: EpochMillis,
    },
    /// Stopped at an instant; only advancing moves it.
    Frozen {
        /// The instant the clock shows.
        at_millis: EpochMillis,
    },
}

fn real_speed() -> u32 {
    1
}

impl Clock {
    /// A clock that follows real time.
    pub fn real_time() -> Self {
        Clock::accelerated(1)
    }

    /// A clock that starts at real time and runs `speed` times faster (a `speed` of 0 counts
    /// as 1): a benchmark at speed 60 sees a minute-long quota window refill in a second.
    pub fn accelerated(speed: u32) -> Self {
        Clock::Running {
            offset_millis: 0,
            speed: speed.max(1),
            since_millis: to_epoch_millis(SystemTime::now()),
        }
    }

    /// The time the clock shows now.
    pub fn now(&self) -> EpochMillis {
        match *self {
            Clock::Running {
                offset_millis,
                speed,
                since_millis,
            } => {
                let real = to_epoch_millis(SystemTime::now());
                let extra = real
                    .saturating_sub(since_millis)
                    .max(0)
                    .saturating_mul(i64::from(speed.max(1)) - 1);
                real.saturating_add(offset_millis).saturating_add(extra)
            }
            Clock::Frozen { at_millis } => at_millis,
        }
    }

    /// Moves the clock forward.
    pub fn advance(&mut self, by: Duration) {
        let by = duration_millis(by);
        match self {
            Clock::Running { offset_millis, .. } => {
                *offset_millis = offset_millis.saturating_add(by)
            }
            Clock::Frozen { at_millis } => *at_millis = at_millis.saturating_add(by),
        }
    }

    /// Stops the clock at the time it shows now.
    pub fn freeze(&mut self) {
        *self = Clock::Frozen {
            at_millis: self.now(),
        };
    }

    /// Lets the clock run again, at real-time speed, from the time it shows now.
    pub fn unfreeze(&mut self) {
        if let Clock::Frozen { at_millis } = *self {
            let real = to_epoch_millis(SystemTime::now());
            *self = Clock::Running {
                offset_millis: at_millis.saturating_sub(real),
                speed: 1,
                since_millis: real,
            };
        }
    }

    /// Whether the clock is frozen.
    pub fn is_frozen(&self) -> bool {
        matches!(self, Clock::Frozen { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_clock_moves_only_when_advanced() {
        let mut clock = Clock::Frozen { at_millis: 1_000 };
        assert_eq!(clock.now(), 1_000);
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now(), 3_000);
    }

    #[test]
    fn an_accelerated_clock_runs_faster_than_real_time() {
        let clock = Clock::accelerated(1000);
        let start = clock.now();
        std::thread::sleep(Duration::from_millis(20));
        let real = to_epoch_millis(SystemTime::now());
        // At least 20 real milliseconds passed: at least 20 emulated seconds.
        assert!(
            clock.now() - start >= 20_000,
            "moved {}",
            clock.now() - start
        );
        assert!(clock.now() > real + 19_000);
    }

    #[test]
    fn a_state_file_clock_without_speed_runs_in_real_time() {
        let clock: Clock =
            serde_json::from_str(r#"{"mode": "running", "offset_millis": 5000}"#).unwrap();
        let shown = clock.now() - to_epoch_millis(SystemTime::now());
        assert!((4_000..=5_000).contains(&shown), "offset {shown}");
    }

    #[test]
    fn unfreezing_keeps_the_shown_time() {
        let mut clock = Clock::Frozen {
            at_millis: to_epoch_millis(SystemTime::now()) + 3_600_000,
        };
        clock.unfreeze();
        let shown = clock.now() - to_epoch_millis(SystemTime::now());
        assert!((3_599_000..=3_600_000).contains(&shown), "offset {shown}");
    }
}
