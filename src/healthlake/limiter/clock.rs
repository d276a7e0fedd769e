//! Where the limiter reads the time, so tests can move it by hand.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Instant;
}

/// Any function returning the time is a clock: lets the limiter follow another controlled
/// clock, such as the emulator's in end-to-end tests.
impl<F> Clock for F
where
    F: Fn() -> Instant + Send + Sync,
{
    fn now(&self) -> Instant {
        self()
    }
}

/// A limiter clock that follows a clock of timestamps, such as the controllers' clock (which
/// end-to-end tests share with the emulator): it starts at the real `Instant::now()` and moves
/// as far as the timestamps move, never backwards past its start.
pub fn following(timestamps: impl Fn() -> jiff::Timestamp + Send + Sync) -> impl Clock {
    let start = Instant::now();
    let origin = timestamps();
    move || {
        let elapsed = Duration::try_from(timestamps().duration_since(origin)).unwrap_or_default();
        later(start, elapsed)
    }
}

/// The process's monotonic clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to, for tests.
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<Mutex<Instant>>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock standing at the moment it was made.
    pub fn new() -> Self {
        Self {
            now: Arc::new(Mutex::new(Instant::now())),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now = later(*now, by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `instant + duration`, saturating instead of panicking on overflow.
pub(super) fn later(instant: Instant, duration: Duration) -> Instant {
    instant.checked_add(duration).unwrap_or(instant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_a_function_is_a_clock() {
        let manual = ManualClock::new();
        let start = manual.now();
        assert_eq!(manual.now(), start);
        manual.advance(Duration::from_secs(90));
        assert_eq!(manual.now(), start + Duration::from_secs(90));

        let shared = manual.clone();
        let follower: Arc<dyn Clock> = Arc::new(move || shared.now() + Duration::from_secs(1));
        manual.advance(Duration::from_secs(10));
        assert_eq!(follower.now(), start + Duration::from_secs(101));
    }

    #[test]
    fn a_clock_following_timestamps_moves_with_them() {
        let wall = Arc::new(Mutex::new(jiff::Timestamp::UNIX_EPOCH));
        let shared = wall.clone();
        let clock = following(move || *shared.lock().unwrap_or_else(PoisonError::into_inner));
        let start = clock.now();
        let set = |seconds: i64| {
            *wall.lock().unwrap_or_else(PoisonError::into_inner) =
                jiff::Timestamp::from_second(seconds).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        };
        set(90);
        assert_eq!(clock.now(), start + Duration::from_secs(90));
        set(-5);
        assert_eq!(clock.now(), start, "never before its start");
    }
}
