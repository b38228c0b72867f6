//! When the control loop decides: every sync period, a fixed offset after the metrics scrape.
//!
//! The HPA's sync is not aligned with metric scrapes: a decision at the instant of a scrape
//! would see the newest sample or not by chance. [`Schedule`] fixes the offset (7 s by default,
//! about half a 15-s scrape period) so every autoscaler decides at the same instants.

use graphscale_core::Millis;
use serde::{Deserialize, Serialize};

use crate::ControlError;

/// A typed decision schedule: rounds at `offset + k * sync_period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    sync_period: Millis,
    offset: Millis,
}

/// The default offset of a decision after a scrape, 7 s.
pub const DEFAULT_OFFSET: Millis = Millis(7_000);

impl Schedule {
    /// Rounds every `sync_period` (> 0) at `offset` after each multiple of it; an offset of a
    /// period or more wraps around (7 s after a scrape with a 5-s period is 2 s after it).
    pub fn new(sync_period: Millis, offset: Millis) -> Result<Self, ControlError> {
        if sync_period.0 == 0 {
            return Err(ControlError::Schedule {
                field: "sync_period",
                reason: "must be > 0".into(),
            });
        }
        Ok(Schedule {
            sync_period,
            offset: Millis(offset.0 % sync_period.0),
        })
    }

    /// The sync period.
    pub fn sync_period(&self) -> Millis {
        self.sync_period
    }

    /// The offset within a period.
    pub fn offset(&self) -> Millis {
        self.offset
    }

    /// Whether a round falls at `now`.
    pub fn is_due(&self, now: Millis) -> bool {
        now.0 % self.sync_period.0 == self.offset.0
    }

    /// The first round at or after `t`.
    pub fn next_at_or_after(&self, t: Millis) -> Millis {
        let p = self.sync_period.0;
        let base = t.0 - t.0 % p + self.offset.0;
        Millis(if base >= t.0 { base } else { base + p })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_fall_at_the_offset_of_every_period() {
        let s = Schedule::new(Millis(15_000), DEFAULT_OFFSET).unwrap();
        assert!(s.is_due(Millis(7_000)) && s.is_due(Millis(22_000)));
        assert!(!s.is_due(Millis(15_000)) && !s.is_due(Millis(0)));
        assert_eq!(s.next_at_or_after(Millis(7_001)), Millis(22_000));
        assert_eq!(s.next_at_or_after(Millis(7_000)), Millis(7_000));
        assert_eq!(s.next_at_or_after(Millis(0)), Millis(7_000));
    }

    #[test]
    fn an_offset_past_the_period_wraps_and_still_fires() {
        // 7 s after a scrape with a 5-s period: every period, 2 s in (the old `% sync == 7000`
        // rule never fired for periods of 7 s or less).
        let s = Schedule::new(Millis(5_000), DEFAULT_OFFSET).unwrap();
        assert_eq!(s.offset(), Millis(2_000));
        let fired: Vec<u64> = (0..=20).filter(|t| s.is_due(Millis(t * 1000))).collect();
        assert_eq!(fired, vec![2, 7, 12, 17]);
        assert!(Schedule::new(Millis(0), DEFAULT_OFFSET).is_err());
    }
}
