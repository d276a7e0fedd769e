//! The emulator's clock: real time shifted by an offset, or frozen at an instant.
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
    /// Real time plus an offset that grows each time the clock is advanced.
    Running {
        /// Milliseconds added to real time.
        offset_millis: i64,
    },
    /// Stopped at an instant; only advancing moves it.
    Frozen {
        /// The instant the clock shows.
        at_millis: EpochMillis,
    },
}

impl Clock {
    /// The time the clock shows now.
    pub fn now(&self) -> EpochMillis {
        match *self {
            Clock::Running { offset_millis } => {
                to_epoch_millis(SystemTime::now()).saturating_add(offset_millis)
            }
            Clock::Frozen { at_millis } => at_millis,
        }
    }

    /// Moves the clock forward.
    pub fn advance(&mut self, by: Duration) {
        let by = duration_millis(by);
        match self {
            Clock::Running { offset_millis } => *offset_millis = offset_millis.saturating_add(by),
            Clock::Frozen { at_millis } => *at_millis = at_millis.saturating_add(by),
        }
    }

    /// Stops the clock at the time it shows now.
    pub fn freeze(&mut self) {
        *self = Clock::Frozen {
            at_millis: self.now(),
        };
    }

    /// Lets the clock run again from the time it shows now.
    pub fn unfreeze(&mut self) {
        if let Clock::Frozen { at_millis } = *self {
            *self = Clock::Running {
                offset_millis: at_millis.saturating_sub(to_epoch_millis(SystemTime::now())),
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
    fn unfreezing_keeps_the_shown_time() {
        let mut clock = Clock::Frozen {
            at_millis: to_epoch_millis(SystemTime::now()) + 3_600_000,
        };
        clock.unfreeze();
        let shown = clock.now() - to_epoch_millis(SystemTime::now());
        assert!((3_599_000..=3_600_000).contains(&shown), "offset {shown}");
    }
}
