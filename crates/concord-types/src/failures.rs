//! What to log about something that keeps failing: calls to a peer that is down, a background
//! round that cannot reach its target.
//!
//! A node that logged every failed call would flood its log while a peer is down (Raft alone
//! retries a follower twice a second). [`FailureLog`] turns the stream of outcomes of one
//! activity into the few lines worth reading: the first failure (with its cause), one summary
//! per `repeat_every` while it keeps failing (how many failures were not logged), and the
//! recovery (after how many failures, and how long). [`FailureLogs`] keeps one per key (a peer),
//! bounded. Pure: the caller passes `now`, and logs the [`FailureLine`] it gets back.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How often a failure that goes on is summarized, unless the caller picks another period.
pub const REPEAT_EVERY_DEFAULT: Duration = Duration::from_secs(60);

/// A line to log about a failing activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureLine {
    /// It started failing (it worked before, or had not run yet): log once, with the cause.
    Started { cause: String },
    /// It still fails: `failures` in all since it started, `suppressed` of them not logged since
    /// the last line, for `failing_for`; `cause` is the latest.
    Repeated { failures: u64, suppressed: u64, failing_for: Duration, cause: String },
    /// It works again after `failures` failures over `failing_for`.
    Recovered { failures: u64, failing_for: Duration },
}

impl std::fmt::Display for FailureLine {
    /// The line's text, after the subject ("peer n2 ", "hint replay to n2 ").
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureLine::Started { cause } => write!(f, "failing: {cause}"),
            FailureLine::Repeated { failures, suppressed, failing_for, cause } => write!(
                f,
                "still failing after {failures} failures over {}s ({suppressed} not logged): {cause}",
                failing_for.as_secs()
            ),
            FailureLine::Recovered { failures, failing_for } => {
                write!(f, "working again after {failures} failures over {}s", failing_for.as_secs())
            }
        }
    }
}

/// The state of one activity that is failing.
#[derive(Debug, Clone)]
struct Failing {
    since: Instant,
    failures: u64,
    /// Failures since the last line logged.
    suppressed: u64,
    last_logged: Instant,
}

/// Decides what to log about one activity from its outcomes.
#[derive(Debug, Clone)]
pub struct FailureLog {
    repeat_every: Duration,
    failing: Option<Failing>,
}

impl FailureLog {
    /// Summarizes a failure that goes on at most once per `repeat_every`.
    pub fn new(repeat_every: Duration) -> Self {
        Self { repeat_every, failing: None }
    }

    /// Whether the last outcome was a failure.
    pub fn is_failing(&self) -> bool {
        self.failing.is_some()
    }

    /// A failure at `now` with `cause`: a line on the first one, and then at most one per
    /// `repeat_every`. `cause` is only turned into text when a line is due.
    pub fn failed(&mut self, now: Instant, cause: impl std::fmt::Display) -> Option<FailureLine> {
        let Some(failing) = &mut self.failing else {
            self.failing =
                Some(Failing { since: now, failures: 1, suppressed: 0, last_logged: now });
            return Some(FailureLine::Started { cause: cause.to_string() });
        };
        failing.failures = failing.failures.saturating_add(1);
        if now.saturating_duration_since(failing.last_logged) < self.repeat_every {
            failing.suppressed = failing.suppressed.saturating_add(1);
            return None;
        }
        // This failure is the one logged: `suppressed` counts the ones before it.
        let line = FailureLine::Repeated {
            failures: failing.failures,
            suppressed: failing.suppressed,
            failing_for: now.saturating_duration_since(failing.since),
            cause: cause.to_string(),
        };
        failing.suppressed = 0;
        failing.last_logged = now;
        Some(line)
    }

    /// A success at `now`: a line only if it was failing.
    pub fn succeeded(&mut self, now: Instant) -> Option<FailureLine> {
        let failing = self.failing.take()?;
        Some(FailureLine::Recovered {
            failures: failing.failures,
            failing_for: now.saturating_duration_since(failing.since),
        })
    }
}

impl Default for FailureLog {
    fn default() -> Self {
        Self::new(REPEAT_EVERY_DEFAULT)
    }
}

/// One [`FailureLog`] per key (a peer), for the keys that are failing; at most `max_keys` of
/// them (the one failing longest is forgotten to make room, and its recovery goes unlogged).
#[derive(Debug, Clone)]
pub struct FailureLogs<K> {
    repeat_every: Duration,
    max_keys: usize,
    logs: HashMap<K, FailureLog>,
}

impl<K: Eq + Hash + Clone> FailureLogs<K> {
    pub fn new(repeat_every: Duration, max_keys: usize) -> Self {
        assert!(max_keys > 0, "a failure log keeps at least one key");
        Self { repeat_every, max_keys, logs: HashMap::new() }
    }

    /// [`FailureLog::failed`] for `key`.
    pub fn failed(
        &mut self,
        key: &K,
        now: Instant,
        cause: impl std::fmt::Display,
    ) -> Option<FailureLine> {
        if !self.logs.contains_key(key) && self.logs.len() >= self.max_keys {
            let oldest = self
                .logs
                .iter()
                .min_by_key(|(_, log)| log.failing.as_ref().map(|f| f.since))
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.logs.remove(&oldest);
            }
        }
        let log =
            self.logs.entry(key.clone()).or_insert_with(|| FailureLog::new(self.repeat_every));
        log.failed(now, cause)
    }

    /// [`FailureLog::succeeded`] for `key`; a key that works is not kept.
    pub fn succeeded(&mut self, key: &K, now: Instant) -> Option<FailureLine> {
        self.logs.remove(key)?.succeeded(now)
    }

    /// Whether the last outcome for `key` was a failure.
    pub fn is_failing(&self, key: &K) -> bool {
        self.logs.contains_key(key)
    }

    /// How many keys are failing.
    pub fn failing_count(&self) -> usize {
        self.logs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn a_failure_is_logged_once_then_summarized_once_per_period() {
        let start = Instant::now();
        let mut log = FailureLog::new(MINUTE);
        assert_eq!(log.succeeded(start), None, "a success while working logs nothing");
        assert_eq!(
            log.failed(at(start, 0), "connection refused"),
            Some(FailureLine::Started { cause: "connection refused".into() })
        );
        // Two failures a second for a minute: nothing until the minute has passed.
        for i in 1..120 {
            assert_eq!(log.failed(at(start, i * 500), "connection refused"), None, "failure {i}");
        }
        assert_eq!(
            log.failed(at(start, 60_000), "connect failed recently"),
            Some(FailureLine::Repeated {
                failures: 121,
                suppressed: 119,
                failing_for: MINUTE,
                cause: "connect failed recently".into(),
            })
        );
        assert_eq!(log.failed(at(start, 60_500), "refused"), None);
        assert_eq!(
            log.failed(at(start, 120_000), "refused"),
            Some(FailureLine::Repeated {
                failures: 123,
                suppressed: 1,
                failing_for: 2 * MINUTE,
                cause: "refused".into(),
            })
        );
        assert_eq!(
            log.succeeded(at(start, 121_000)),
            Some(FailureLine::Recovered { failures: 123, failing_for: Duration::from_secs(121) })
        );
        assert!(!log.is_failing());
        assert_eq!(log.succeeded(at(start, 122_000)), None, "recovery is logged once");
    }

    #[test]
    fn a_new_failure_after_a_recovery_is_logged_again() {
        let start = Instant::now();
        let mut log = FailureLog::new(MINUTE);
        assert!(log.failed(start, "down").is_some());
        assert!(log.succeeded(at(start, 1_000)).is_some());
        assert_eq!(
            log.failed(at(start, 2_000), "down again"),
            Some(FailureLine::Started { cause: "down again".into() })
        );
    }

    #[test]
    fn a_clock_going_back_suppresses_instead_of_panicking() {
        let start = Instant::now() + MINUTE;
        let mut log = FailureLog::new(MINUTE);
        assert!(log.failed(start, "down").is_some());
        assert_eq!(log.failed(start - Duration::from_secs(5), "down"), None);
        assert_eq!(
            log.succeeded(start - Duration::from_secs(5)),
            Some(FailureLine::Recovered { failures: 2, failing_for: Duration::ZERO })
        );
    }

    #[test]
    fn lines_read_as_sentences() {
        let started = FailureLine::Started { cause: "connection refused".into() };
        assert_eq!(started.to_string(), "failing: connection refused");
        let repeated = FailureLine::Repeated {
            failures: 121,
            suppressed: 119,
            failing_for: MINUTE,
            cause: "refused".into(),
        };
        assert_eq!(
            repeated.to_string(),
            "still failing after 121 failures over 60s (119 not logged): refused"
        );
        let recovered = FailureLine::Recovered { failures: 3, failing_for: MINUTE };
        assert_eq!(recovered.to_string(), "working again after 3 failures over 60s");
    }

    #[test]
    fn keys_are_tracked_apart_and_bounded() {
        let start = Instant::now();
        let mut logs = FailureLogs::new(MINUTE, 2);
        assert!(logs.failed(&"n2", at(start, 0), "down").is_some());
        assert!(logs.failed(&"n3", at(start, 10), "down").is_some());
        assert_eq!(logs.failed(&"n2", at(start, 20), "down"), None, "n2 is already logged");
        assert_eq!(logs.succeeded(&"n4", at(start, 30)), None, "n4 never failed");
        // A third failing key makes room by forgetting the one failing longest (n2).
        assert!(logs.failed(&"n4", at(start, 40), "down").is_some());
        assert_eq!(logs.failing_count(), 2);
        assert!(!logs.is_failing(&"n2") && logs.is_failing(&"n4"));
        assert_eq!(logs.succeeded(&"n2", at(start, 50)), None, "n2 was forgotten");
        assert_eq!(
            logs.succeeded(&"n3", at(start, 1_010)),
            Some(FailureLine::Recovered { failures: 1, failing_for: Duration::from_secs(1) })
        );
        assert_eq!(logs.failing_count(), 1);
    }
}
