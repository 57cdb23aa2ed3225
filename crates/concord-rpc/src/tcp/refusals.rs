//! [`RefusalLog`]: which refused peer connections get a log line. A port scanner, a load
//! balancer's health check or a misdirected client opens connection after connection to the
//! peer port; one line each would flood the log. Each source address gets at most one line per
//! interval, and that line counts the refusals suppressed since the previous one. Every refusal
//! is still counted in `concord_rpc_rejected_connections_total`.
//!
//! Pure: the caller passes the time in, so the tests need no clock and no sleeps.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How often one source may be logged by default.
pub(crate) const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Sources remembered at once by default; refusals from any further source share one line.
pub(crate) const REFUSAL_LOG_SOURCES_MAX: usize = 1024;

/// What to do with one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Log it, saying how many refusals from the same source were not logged since the last
    /// line.
    Log { suppressed: u64 },
    /// Count it, without a line.
    Suppress,
}

/// The per-source windows. Bounded: at most `sources_max` sources plus one shared entry for
/// the rest.
#[derive(Debug)]
pub(crate) struct RefusalLog {
    interval: Duration,
    sources_max: usize,
    /// Keyed by source address; `None` is every source beyond `sources_max`.
    windows: HashMap<Option<IpAddr>, Window>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    /// When the source's last line was logged.
    logged_at: Instant,
    /// Refusals from it since then, not logged.
    suppressed: u64,
}

impl RefusalLog {
    pub(crate) fn new(interval: Duration, sources_max: usize) -> Self {
        assert!(sources_max > 0, "a refusal log remembers at least one source");
        RefusalLog { interval, sources_max, windows: HashMap::new() }
    }

    /// Decides on a refusal of a connection from `source` at `now`.
    pub(crate) fn refused(&mut self, source: IpAddr, now: Instant) -> Verdict {
        let key = self.key_for(source, now);
        match self.windows.get_mut(&key) {
            Some(window) if now.saturating_duration_since(window.logged_at) < self.interval => {
                window.suppressed += 1;
                Verdict::Suppress
            }
            Some(window) => {
                let suppressed = window.suppressed;
                *window = Window { logged_at: now, suppressed: 0 };
                Verdict::Log { suppressed }
            }
            None => {
                self.windows.insert(key, Window { logged_at: now, suppressed: 0 });
                Verdict::Log { suppressed: 0 }
            }
        }
    }

    /// The entry `source` is counted under: its own, or the shared one when the table is full
    /// even after forgetting sources whose window has passed with nothing suppressed.
    fn key_for(&mut self, source: IpAddr, now: Instant) -> Option<IpAddr> {
        let key = Some(source);
        if self.windows.contains_key(&key) || self.own_entries() < self.sources_max {
            return key;
        }
        let interval = self.interval;
        self.windows.retain(|k, w| {
            k.is_none() || w.suppressed > 0 || now.saturating_duration_since(w.logged_at) < interval
        });
        if self.own_entries() < self.sources_max { key } else { None }
    }

    fn own_entries(&self) -> usize {
        self.windows.len() - usize::from(self.windows.contains_key(&None))
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    /// One line per source per interval; the next line counts what was suppressed.
    #[test]
    fn a_source_is_logged_once_per_interval_with_the_count_of_repeats() {
        let start = Instant::now();
        let mut log = RefusalLog::new(MINUTE, 16);
        assert_eq!(log.refused(ip(1), start), Verdict::Log { suppressed: 0 });
        for i in 1..=99 {
            let now = start + Duration::from_millis(i * 500);
            assert_eq!(log.refused(ip(1), now), Verdict::Suppress, "repeat {i}");
        }
        // Another source is not held back by the first.
        assert_eq!(log.refused(ip(2), start + MINUTE / 2), Verdict::Log { suppressed: 0 });
        assert_eq!(log.refused(ip(1), start + MINUTE), Verdict::Log { suppressed: 99 });
        assert_eq!(log.refused(ip(1), start + MINUTE + MINUTE / 2), Verdict::Suppress);
        // A source quiet for a long time is logged at once, with nothing suppressed in between.
        let later = start + 10 * MINUTE;
        assert_eq!(log.refused(ip(2), later), Verdict::Log { suppressed: 0 });
    }

    /// Memory is bounded: past the limit, new sources share one entry, and so one line per
    /// interval between them.
    #[test]
    fn sources_beyond_the_limit_share_one_line() {
        let start = Instant::now();
        let mut log = RefusalLog::new(MINUTE, 2);
        assert_eq!(log.refused(ip(1), start), Verdict::Log { suppressed: 0 });
        assert_eq!(log.refused(ip(2), start), Verdict::Log { suppressed: 0 });
        assert_eq!(log.refused(ip(3), start), Verdict::Log { suppressed: 0 });
        assert_eq!(log.refused(ip(4), start), Verdict::Suppress);
        assert_eq!(log.refused(ip(5), start), Verdict::Suppress);
        assert_eq!(log.windows.len(), 3);
        // Once the known sources' windows pass with nothing suppressed, they make room.
        let later = start + 2 * MINUTE;
        assert_eq!(log.refused(ip(6), later), Verdict::Log { suppressed: 0 });
        assert!(log.windows.contains_key(&Some(ip(6))));
        assert!(log.windows.len() <= 3);
    }

    /// A source with suppressed refusals keeps its entry, so its count is not lost.
    #[test]
    fn a_source_with_suppressed_refusals_is_not_forgotten() {
        let start = Instant::now();
        let mut log = RefusalLog::new(MINUTE, 1);
        assert_eq!(log.refused(ip(1), start), Verdict::Log { suppressed: 0 });
        assert_eq!(log.refused(ip(1), start + MINUTE / 2), Verdict::Suppress);
        assert_eq!(log.refused(ip(2), start + 2 * MINUTE), Verdict::Log { suppressed: 0 });
        assert_eq!(log.refused(ip(1), start + 2 * MINUTE), Verdict::Log { suppressed: 1 });
    }
}
