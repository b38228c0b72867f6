//! Time as the control loop sees it: milliseconds on an injected clock.
//!
//! Decision and simulation code never reads the wall clock; it takes a [`Clock`] or is handed
//! the time inside a snapshot. The simulator's clock starts at zero.

use std::cell::Cell;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A point in time (or a span) in whole milliseconds since the start of a run.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Millis(pub u64);

impl Millis {
    /// Zero.
    pub const ZERO: Millis = Millis(0);

    /// From whole seconds.
    pub const fn from_secs(s: u64) -> Self {
        Millis(s * 1000)
    }

    /// From fractional seconds, rounded to the nearest millisecond; negative values become 0.
    pub fn from_secs_f64(s: f64) -> Self {
        if s.is_finite() && s > 0.0 {
            Millis((s * 1000.0).round() as u64)
        } else {
            Millis(0)
        }
    }

    /// As fractional seconds.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// `self - other`, or zero when `other` is later.
    pub fn saturating_sub(self, other: Millis) -> Millis {
        Millis(self.0.saturating_sub(other.0))
    }
}

impl std::ops::Add for Millis {
    type Output = Millis;
    fn add(self, rhs: Millis) -> Millis {
        Millis(self.0 + rhs.0)
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0 / 1000;
        write!(f, "{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)?;
        if !self.0.is_multiple_of(1000) {
            write!(f, ".{:03}", self.0 % 1000)?;
        }
        Ok(())
    }
}

/// A source of the current time.
pub trait Clock {
    /// The current time.
    fn now(&self) -> Millis;
}

/// A clock that moves only when told to: for the simulator and for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: Cell<Millis>,
}

impl ManualClock {
    /// A clock at `start`.
    pub fn new(start: Millis) -> Self {
        ManualClock {
            now: Cell::new(start),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Millis) {
        self.now.set(self.now.get() + by);
    }

    /// Sets the clock to `t`.
    pub fn set(&self, t: Millis) {
        self.now.set(t);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.now.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Millis::from_secs(5));
        assert_eq!(c.now(), Millis(5000));
        c.advance(Millis(250));
        assert_eq!(c.now(), Millis(5250));
        assert_eq!(c.now().to_string(), "00:00:05.250");
    }

    #[test]
    fn negative_seconds_clamp_to_zero() {
        assert_eq!(Millis::from_secs_f64(-3.0), Millis::ZERO);
        assert_eq!(Millis::from_secs_f64(f64::NAN), Millis::ZERO);
        assert_eq!(Millis::from_secs_f64(1.2345), Millis(1235));
    }
}
