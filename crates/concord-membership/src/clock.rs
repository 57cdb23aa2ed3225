//! Clock-offset measurement (DESIGN.md §6, "Clocks"): pure arithmetic on the four timestamps
//! of a time probe, and a per-peer estimate.
//!
//! A prober sends a request at its time t0; the peer receives it at its time t1 and answers at
//! its time t2; the answer arrives at the prober's time t3. All in wall-clock milliseconds.
//!
//! - delay δ = (t3 − t0) − (t2 − t1): the round trip minus the time spent in the peer;
//! - offset θ = ((t1 − t0) + (t2 − t3)) / 2: how far the peer's clock is ahead of ours,
//!   assuming the two legs took equally long. The error of θ is at most δ / 2.

use std::collections::VecDeque;

use crate::Error;

/// How many recent samples [`OffsetEstimator`] keeps per peer.
pub const OFFSET_WINDOW_SAMPLES: usize = 8;

/// One completed time probe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockSample {
    delay_ms: i64,
    offset_ms: f64,
}

impl ClockSample {
    /// Computes δ and θ from the prober's send and receive times (t0, t3) and the peer's
    /// receive and send times (t1, t2). Rejects timestamps that cannot describe a round trip.
    pub fn new(t0: u64, t1: u64, t2: u64, t3: u64) -> Result<Self, Error> {
        let invalid = Error::InvalidTimeSample { t0, t1, t2, t3 };
        let (t0, t1, t2, t3) = (i128::from(t0), i128::from(t1), i128::from(t2), i128::from(t3));
        if t3 < t0 || t2 < t1 {
            return Err(invalid);
        }
        let delay = (t3 - t0) - (t2 - t1);
        if delay < 0 {
            return Err(invalid);
        }
        let delay_ms = i64::try_from(delay).map_err(|_| invalid)?;
        // Exact whenever the sum is below 2^53 ms (285,000 years); no real offset is larger.
        let offset_ms = ((t1 - t0) + (t2 - t3)) as f64 / 2.0;
        Ok(Self { delay_ms, offset_ms })
    }

    /// δ, in milliseconds.
    pub fn delay_ms(&self) -> i64 {
        self.delay_ms
    }

    /// θ, in milliseconds: positive when the peer's clock is ahead of ours.
    pub fn offset_ms(&self) -> f64 {
        self.offset_ms
    }
}

/// The offset estimate for one peer: of the last [`OFFSET_WINDOW_SAMPLES`] samples, the one
/// with the smallest delay (NTP's clock filter). The smallest round trip is the one least
/// distorted by queueing on one leg, and θ's error is bounded by δ / 2, so it is the most
/// trustworthy; a window rather than all history lets the estimate follow a drifting clock.
#[derive(Debug, Clone, Default)]
pub struct OffsetEstimator {
    samples: VecDeque<ClockSample>,
}

impl OffsetEstimator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&mut self, sample: ClockSample) {
        if self.samples.len() == OFFSET_WINDOW_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// The sample with the smallest delay; among equal delays, the most recent.
    pub fn best(&self) -> Option<ClockSample> {
        self.samples.iter().rev().min_by_key(|sample| sample.delay_ms).copied()
    }

    pub fn offset_ms(&self) -> Option<f64> {
        self.best().map(|sample| sample.offset_ms)
    }

    pub fn delay_ms(&self) -> Option<i64> {
        self.best().map(|sample| sample.delay_ms)
    }

    /// Whether the estimated offset is beyond `max_offset_ms` either way. No estimate, no
    /// alarm.
    pub fn alarm(&self, max_offset_ms: u64) -> bool {
        self.offset_ms().is_some_and(|offset_ms| offset_ms.abs() > max_offset_ms as f64)
    }
}

/// The responder's side of a time probe: (t1, t2) read from its clock. Receipt and answer are
/// the same instant here because answering takes no measurable time; a responder that queues
/// requests should read t1 on receipt instead.
pub fn answer_time_probe(clock: &dyn Fn() -> u64) -> (u64, u64) {
    let t1 = clock();
    let t2 = clock();
    (t1, t2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_and_offset_follow_the_formulas() {
        // δ = (130 − 100) − (170 − 160) = 20; θ = ((160 − 100) + (170 − 130)) / 2 = 50.
        let sample = ClockSample::new(100, 160, 170, 130).unwrap();
        assert_eq!(sample.delay_ms(), 20);
        assert_eq!(sample.offset_ms(), 50.0);
    }

    #[test]
    fn peer_behind_gives_negative_offset() {
        // The peer's clock is 1000 ms behind; each leg takes 5 ms, the peer spends 2 ms.
        let sample = ClockSample::new(10_000, 9_005, 9_007, 10_012).unwrap();
        assert_eq!(sample.delay_ms(), 10);
        assert_eq!(sample.offset_ms(), -1000.0);
    }

    #[test]
    fn odd_sum_gives_half_millisecond_offset() {
        let sample = ClockSample::new(0, 1, 1, 2).unwrap();
        assert_eq!(sample.delay_ms(), 2);
        assert_eq!(sample.offset_ms(), 0.0);
        let sample = ClockSample::new(0, 2, 2, 1).unwrap();
        assert_eq!(sample.delay_ms(), 1);
        assert_eq!(sample.offset_ms(), 1.5);
    }

    #[test]
    fn impossible_timestamps_are_rejected() {
        // Answer before the request left.
        assert!(ClockSample::new(100, 0, 0, 99).is_err());
        // Peer sent before it received.
        assert!(ClockSample::new(0, 10, 9, 5).is_err());
        // Peer claims to have held the request longer than the round trip.
        assert_eq!(
            ClockSample::new(0, 10, 30, 5),
            Err(Error::InvalidTimeSample { t0: 0, t1: 10, t2: 30, t3: 5 })
        );
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        let sample = ClockSample::new(0, u64::MAX, u64::MAX, 0).unwrap();
        assert_eq!(sample.delay_ms(), 0);
        assert_eq!(sample.offset_ms(), u64::MAX as f64);
    }

    /// The estimate is the offset of the smallest-delay sample among the last eight.
    #[test]
    fn estimator_reports_min_delay_sample_of_window() {
        let mut estimator = OffsetEstimator::new();
        assert_eq!(estimator.offset_ms(), None);
        assert!(!estimator.alarm(500));

        // delay 40, offset 30 (asymmetric legs)
        estimator.record(ClockSample::new(0, 50, 50, 40).unwrap());
        // delay 4, offset 600
        estimator.record(ClockSample::new(1000, 1602, 1602, 1004).unwrap());
        // delay 10, offset 595
        estimator.record(ClockSample::new(2000, 2600, 2600, 2010).unwrap());
        assert_eq!(estimator.delay_ms(), Some(4));
        assert_eq!(estimator.offset_ms(), Some(600.0));
        assert!(estimator.alarm(500));
        assert!(!estimator.alarm(600));

        // Eight more samples of delay 6 push the delay-4 one out of the window; the most
        // recent of equal delays wins.
        for i in 0..OFFSET_WINDOW_SAMPLES as u64 {
            let t0 = 10_000 + i * 1000;
            estimator.record(ClockSample::new(t0, t0 + 3 + i, t0 + 3 + i, t0 + 6).unwrap());
        }
        assert_eq!(estimator.delay_ms(), Some(6));
        assert_eq!(estimator.offset_ms(), Some(7.0));
        assert!(!estimator.alarm(500));
    }

    #[test]
    fn negative_offsets_alarm_too() {
        let mut estimator = OffsetEstimator::new();
        estimator.record(ClockSample::new(10_000, 9_000, 9_000, 10_000).unwrap());
        assert_eq!(estimator.offset_ms(), Some(-1000.0));
        assert!(estimator.alarm(500));
    }

    #[test]
    fn responder_reads_its_clock() {
        let (t1, t2) = answer_time_probe(&|| 42);
        assert_eq!((t1, t2), (42, 42));
    }
}
