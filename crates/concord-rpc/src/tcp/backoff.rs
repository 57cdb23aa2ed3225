//! Reconnect backoff for one peer: pure, the caller passes the time and the jitter.

use std::time::Duration;

use tokio::time::Instant;

/// After a failed connect, further connects to the peer wait an exponentially growing, capped
/// and jittered delay; calls made meanwhile fail at once instead of piling onto a dead peer.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    consecutive_failures: u32,
    retry_at: Option<Instant>,
}

impl Backoff {
    /// How long until a connect may be tried, or `None` if it may be tried now.
    pub(crate) fn wait_remaining(&self, now: Instant) -> Option<Duration> {
        self.retry_at.filter(|at| *at > now).map(|at| at - now)
    }

    /// Records a failed connect. `jitter` in `[0, 1]` picks the delay within its upper half, so
    /// that nodes which lost the same peer do not all retry in step.
    pub(crate) fn failed(&mut self, now: Instant, min: Duration, max: Duration, jitter: f64) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let doublings = (self.consecutive_failures - 1).min(20);
        let delay = min.saturating_mul(1 << doublings).min(max);
        let delay = delay.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
        self.retry_at = Some(now + delay);
    }

    pub(crate) fn succeeded(&mut self) {
        *self = Backoff::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_millis(400);

    #[test]
    fn delays_double_up_to_the_cap_and_reset_on_success() {
        let now = Instant::now();
        let mut backoff = Backoff::default();
        assert_eq!(backoff.wait_remaining(now), None);
        let mut delays = Vec::new();
        for _ in 0..6 {
            backoff.failed(now, MIN, MAX, 1.0);
            delays.push(backoff.wait_remaining(now).unwrap().as_millis());
        }
        assert_eq!(delays, [50, 100, 200, 400, 400, 400]);
        assert_eq!(backoff.wait_remaining(now + MAX), None);
        backoff.succeeded();
        backoff.failed(now, MIN, MAX, 0.0);
        assert_eq!(backoff.wait_remaining(now), Some(MIN / 2));
    }
}
