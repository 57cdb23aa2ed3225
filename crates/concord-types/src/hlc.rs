//! Hybrid logical clock: timestamps that follow wall time but never go backwards, used to order
//! writes in last-write-wins namespaces.
//!
//! A timestamp packs milliseconds since the Unix epoch in the high 48 bits and a logical counter
//! in the low 16 bits. The clock is pure: the caller supplies the wall time it read.

use serde::{Deserialize, Serialize};

/// A hybrid logical clock timestamp. Totally ordered; larger is later.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp(pub u64);

impl Timestamp {
    const LOGICAL_BITS: u32 = 16;

    pub fn from_wall_ms(wall_ms: u64) -> Self {
        Timestamp(wall_ms << Self::LOGICAL_BITS)
    }

    /// The wall-clock part, in milliseconds since the Unix epoch.
    pub fn wall_ms(self) -> u64 {
        self.0 >> Self::LOGICAL_BITS
    }
}

/// A source of wall-clock time, in milliseconds since the Unix epoch. A seam: production reads
/// the system clock, simulation and fault injection supply their own.
pub trait WallClock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;
}

/// The clock state of one node. Each `now` is strictly greater than every timestamp this clock
/// issued or observed before.
#[derive(Debug, Default, Clone)]
pub struct Hlc {
    last: Timestamp,
}

impl Hlc {
    pub fn new() -> Self {
        Self::default()
    }

    /// Issues a timestamp for a local event, given the current wall time.
    pub fn now(&mut self, wall_ms: u64) -> Timestamp {
        let physical = Timestamp::from_wall_ms(wall_ms);
        self.last = if physical > self.last { physical } else { Timestamp(self.last.0 + 1) };
        self.last
    }

    /// Takes a timestamp seen from another node into account, so later local timestamps order
    /// after it.
    pub fn observe(&mut self, remote: Timestamp) {
        if remote > self.last {
            self.last = remote;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_strictly_increasing_even_when_wall_time_stalls_or_goes_back() {
        let mut hlc = Hlc::new();
        let a = hlc.now(1_000);
        let b = hlc.now(1_000);
        let c = hlc.now(900);
        let d = hlc.now(2_000);
        assert!(a < b && b < c && c < d);
        assert_eq!(a.wall_ms(), 1_000);
        assert_eq!(c.wall_ms(), 1_000);
        assert_eq!(d, Timestamp::from_wall_ms(2_000));
    }

    #[test]
    fn observe_moves_the_clock_past_remote_timestamps() {
        let mut hlc = Hlc::new();
        hlc.now(1_000);
        let remote = Timestamp::from_wall_ms(5_000);
        hlc.observe(remote);
        assert!(hlc.now(1_001) > remote);
    }
}
