//! The hybrid logical clock: wall milliseconds plus a counter, never raw wall time.
//!
//! A [`Timestamp`] orders events: first by wall milliseconds, then by counter. Versions break
//! remaining ties by author (instance id) and CID, so no two versions ever compare equal.
//! [`Clock::tick`] stamps a local event; [`Clock::observe`] merges a remote timestamp, refusing
//! one too far in the future so that a peer with a wrong clock cannot drag everyone forward.

use std::fmt;

use chum_object::{Int, Value};

/// A hybrid logical clock reading: wall milliseconds since the Unix epoch and a counter that
/// orders events within one millisecond (or while the wall clock stands still or goes back).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Wall-clock milliseconds (the largest seen, not necessarily the local wall clock).
    pub wall_ms: u64,
    /// Events within the same `wall_ms`.
    pub counter: u32,
}

impl Timestamp {
    /// A timestamp from its parts.
    pub const fn new(wall_ms: u64, counter: u32) -> Timestamp {
        Timestamp { wall_ms, counter }
    }
}

impl Timestamp {
    /// The `[wall_ms, counter]` value objects carry a timestamp as.
    pub fn to_value(self) -> Value {
        Value::List(vec![self.wall_ms.into(), self.counter.into()])
    }

    /// Reads `[wall_ms (u64), counter (u32)]`; `None` for anything else.
    pub fn from_value(value: &Value) -> Option<Timestamp> {
        match value.as_list()? {
            [wall, counter] => {
                let wall = wall.as_int().and_then(Int::to_u64)?;
                let counter = counter
                    .as_int()
                    .and_then(Int::to_u64)
                    .and_then(|c| u32::try_from(c).ok())?;
                Some(Timestamp::new(wall, counter))
            }
            _ => None,
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.wall_ms, self.counter)
    }
}

/// A remote timestamp the clock refused. The sender's clock is wrong (or the message lies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClockError {
    /// The remote timestamp is further ahead of local wall time than the configured bound.
    #[error(
        "remote clock {remote:?} is {ahead_ms} ms ahead of local time (bound {max_drift_ms} ms)"
    )]
    TooFarAhead {
        /// The refused timestamp.
        remote: Timestamp,
        /// How far ahead of local wall time it is.
        ahead_ms: u64,
        /// The configured bound.
        max_drift_ms: u64,
    },
    /// The counter would overflow (more than 2^32 events in one millisecond).
    #[error("clock counter exhausted at {0:?}")]
    CounterExhausted(Timestamp),
}

/// A hybrid logical clock. It never reads the time: every call takes `now_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clock {
    last: Timestamp,
    max_drift_ms: u64,
}

impl Clock {
    /// Default bound on how far ahead of local time a remote timestamp may be: one minute.
    pub const DEFAULT_MAX_DRIFT_MS: u64 = 60_000;

    /// A clock that has seen nothing, with the default drift bound.
    pub fn new() -> Clock {
        Clock::with_max_drift(Clock::DEFAULT_MAX_DRIFT_MS)
    }

    /// A clock that refuses remote timestamps more than `max_drift_ms` ahead of local time.
    pub fn with_max_drift(max_drift_ms: u64) -> Clock {
        Clock {
            last: Timestamp::default(),
            max_drift_ms,
        }
    }

    /// Resumes a clock from the last timestamp it issued or observed (e.g. after a restart).
    pub fn resume(last: Timestamp, max_drift_ms: u64) -> Clock {
        Clock { last, max_drift_ms }
    }

    /// The last timestamp issued or observed.
    pub fn last(&self) -> Timestamp {
        self.last
    }

    /// Stamps a local event: greater than every timestamp issued or observed before.
    pub fn tick(&mut self, now_ms: u64) -> Result<Timestamp, ClockError> {
        let next = if now_ms > self.last.wall_ms {
            Timestamp::new(now_ms, 0)
        } else {
            let counter = self
                .last
                .counter
                .checked_add(1)
                .ok_or(ClockError::CounterExhausted(self.last))?;
            Timestamp::new(self.last.wall_ms, counter)
        };
        self.last = next;
        Ok(next)
    }

    /// Stamps a local event that must also come after `after` (e.g. the clocks of a new
    /// version's parents). Fails like [`Clock::observe`] if `after` is too far ahead.
    pub fn tick_after(&mut self, after: Timestamp, now_ms: u64) -> Result<Timestamp, ClockError> {
        self.observe(after, now_ms)?;
        self.tick(now_ms)
    }

    /// Merges a remote timestamp so that later local events order after it. A timestamp more
    /// than the drift bound ahead of `now_ms` is refused and leaves the clock unchanged.
    pub fn observe(&mut self, remote: Timestamp, now_ms: u64) -> Result<(), ClockError> {
        let ahead_ms = remote.wall_ms.saturating_sub(now_ms);
        if ahead_ms > self.max_drift_ms {
            return Err(ClockError::TooFarAhead {
                remote,
                ahead_ms,
                max_drift_ms: self.max_drift_ms,
            });
        }
        if remote > self.last {
            self.last = remote;
        }
        Ok(())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_strictly_increasing_even_when_the_wall_clock_goes_back() {
        let mut clock = Clock::new();
        let a = clock.tick(1_000).unwrap();
        let b = clock.tick(1_000).unwrap();
        let c = clock.tick(500).unwrap();
        let d = clock.tick(2_000).unwrap();
        assert!(a < b && b < c && c < d);
        assert_eq!(c, Timestamp::new(1_000, 2));
        assert_eq!(d, Timestamp::new(2_000, 0));
    }

    #[test]
    fn observing_moves_the_clock_past_remote_events() {
        let mut clock = Clock::new();
        clock.tick(1_000).unwrap();
        clock.observe(Timestamp::new(30_000, 7), 1_000).unwrap();
        assert_eq!(clock.tick(1_001).unwrap(), Timestamp::new(30_000, 8));
    }

    #[test]
    fn a_remote_clock_too_far_ahead_is_refused_and_changes_nothing() {
        let mut clock = Clock::with_max_drift(60_000);
        clock.tick(1_000).unwrap();
        let hour_ahead = Timestamp::new(1_000 + 3_600_000, 0);
        let error = clock.observe(hour_ahead, 1_000).unwrap_err();
        assert!(matches!(
            error,
            ClockError::TooFarAhead {
                ahead_ms: 3_600_000,
                ..
            }
        ));
        assert_eq!(clock.last(), Timestamp::new(1_000, 0));
        assert_eq!(clock.tick(1_001).unwrap(), Timestamp::new(1_001, 0));
        assert!(clock.tick_after(hour_ahead, 1_002).is_err());
    }

    #[test]
    fn counter_exhaustion_is_an_error_not_a_wrap() {
        let mut clock = Clock::resume(Timestamp::new(5, u32::MAX), 0);
        assert!(matches!(
            clock.tick(5),
            Err(ClockError::CounterExhausted(_))
        ));
        assert_eq!(clock.tick(6).unwrap(), Timestamp::new(6, 0));
    }
}
