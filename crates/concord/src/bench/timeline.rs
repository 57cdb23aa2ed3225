//! The per-second timeline of `concord bench --timeline`: one line a second with that second's
//! throughput, latency (p50, p99, max) and errors, so a stall that the run's percentiles average
//! away shows up as the second it happened in.
//!
//! Every load task records into its own [`Slot`] (a mutex nobody else touches except once a
//! second), and a ticker drains all slots each second into one [`Second`]. A request belongs to
//! the second it *completed* in, as in wrk: a request stuck for 300 ms shows as a second of low
//! throughput followed by a second whose max is 300 ms. Each line carries the wall-clock time
//! (UTC, the format of the server's log), so it lines up with the server's engine events.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::stats::Outcome;

/// Largest latency a timeline window records exactly, in microseconds (as the run's histograms).
const LATENCY_US_MAX: u64 = 300_000_000;
/// 1% resolution is plenty for a per-second line, and keeps each window small (the windows
/// are reset every second).
const LATENCY_SIGNIFICANT_DIGITS: u8 = 2;

/// One second of the measured phase.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Second {
    /// Seconds since the phase started, at the end of this window.
    pub t_s: f64,
    /// Wall-clock time at the end of this window, UTC (RFC 3339, milliseconds).
    pub at: String,
    /// Answered requests completed in this window.
    pub ops: u64,
    pub ops_per_s: f64,
    /// Latency of the answered requests completed in this window; `None` if there were none.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Requests that failed in this window.
    pub errors: u64,
}

impl Second {
    /// The line printed for people and scripts alike: `key=value` fields after a tag.
    pub fn line(&self) -> String {
        let ms = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"));
        format!(
            "timeline {} t={:.0}s ops/s={:.0} p50_ms={} p99_ms={} max_ms={} errors={}",
            self.at,
            self.t_s,
            self.ops_per_s,
            ms(self.p50_ms),
            ms(self.p99_ms),
            ms(self.max_ms),
            self.errors
        )
    }
}

/// What one task recorded since the last tick.
#[derive(Debug)]
struct Window {
    latency_us: Histogram<u64>,
    errors: u64,
}

impl Window {
    fn new() -> Self {
        let latency_us = Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_DIGITS)
            .expect("constant histogram bounds are valid");
        Window { latency_us, errors: 0 }
    }
}

/// One task's share of the timeline.
#[derive(Debug, Clone)]
pub struct Slot(Arc<Mutex<Window>>);

impl Slot {
    /// Records one request; errors are counted, not timed (as in the run's report).
    pub fn record(&self, latency: Duration, outcome: &Outcome) {
        let mut window = self.0.lock().expect("timeline slot lock");
        if outcome.is_error() {
            window.errors += 1;
        } else {
            let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            window.latency_us.saturating_record(latency_us.max(1));
        }
    }
}

/// The timeline of one phase: the tasks' slots and the seconds drained so far.
#[derive(Debug)]
pub struct Timeline {
    slots: Mutex<Vec<Slot>>,
    seconds: Mutex<Vec<Second>>,
    /// The merge of every slot at a tick, reset after each; kept to allocate it once.
    merged: Mutex<Window>,
    started: Instant,
    last_tick: Mutex<Instant>,
}

impl Timeline {
    pub fn new() -> Self {
        let now = Instant::now();
        Timeline {
            slots: Mutex::new(Vec::new()),
            seconds: Mutex::new(Vec::new()),
            merged: Mutex::new(Window::new()),
            started: now,
            last_tick: Mutex::new(now),
        }
    }

    /// A new slot for one task.
    pub fn slot(&self) -> Slot {
        let slot = Slot(Arc::new(Mutex::new(Window::new())));
        self.slots.lock().expect("timeline slots lock").push(slot.clone());
        slot
    }

    /// Drains every slot into the window ending now, keeps it and returns it.
    pub fn tick(&self) -> Second {
        let now = Instant::now();
        let mut last_tick = self.last_tick.lock().expect("timeline tick lock");
        let span = now.duration_since(*last_tick);
        *last_tick = now;
        let mut merged = self.merged.lock().expect("timeline merge lock");
        for slot in self.slots.lock().expect("timeline slots lock").iter() {
            let mut window = slot.0.lock().expect("timeline slot lock");
            merged.latency_us.add(&window.latency_us).expect("windows share their bounds");
            merged.errors += window.errors;
            window.latency_us.reset();
            window.errors = 0;
        }
        let second = second_of(&merged, now.duration_since(self.started), span, SystemTime::now());
        merged.latency_us.reset();
        merged.errors = 0;
        self.seconds.lock().expect("timeline seconds lock").push(second.clone());
        second
    }

    /// Every second drained so far.
    pub fn seconds(&self) -> Vec<Second> {
        self.seconds.lock().expect("timeline seconds lock").clone()
    }
}

/// The line of a window that lasted `span` and ended `since_start` into the phase, at `at`.
fn second_of(window: &Window, since_start: Duration, span: Duration, at: SystemTime) -> Second {
    let latency = &window.latency_us;
    let ms = |us: u64| (!latency.is_empty()).then(|| us as f64 / 1000.0);
    let ops = latency.len();
    Second {
        t_s: (since_start.as_secs_f64() * 1000.0).round() / 1000.0,
        at: utc_rfc3339(at),
        ops,
        ops_per_s: (ops as f64 / span.as_secs_f64().max(1e-3)).round(),
        p50_ms: ms(latency.value_at_quantile(0.50)),
        p99_ms: ms(latency.value_at_quantile(0.99)),
        max_ms: ms(latency.max()),
        errors: window.errors,
    }
}

/// `time` as `YYYY-MM-DDTHH:MM:SS.mmmZ`, the format of the server's log timestamps (to the ms).
pub fn utc_rfc3339(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        since_epoch.subsec_millis()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dates around leap days and the epoch come out as `date -u` prints them.
    #[test]
    fn utc_times_match_the_calendar() {
        let at = |secs: u64, ms: u64| UNIX_EPOCH + Duration::from_millis(secs * 1000 + ms);
        assert_eq!(utc_rfc3339(at(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc_rfc3339(at(951_782_400, 5)), "2000-02-29T00:00:00.005Z");
        assert_eq!(utc_rfc3339(at(1_709_251_199, 999)), "2024-02-29T23:59:59.999Z");
        assert_eq!(utc_rfc3339(at(1_767_225_600, 0)), "2026-01-01T00:00:00.000Z");
    }

    /// A tick takes what every slot recorded since the last one, and the next starts empty:
    /// a slow request shows in the second it completed in, not averaged over the run.
    #[test]
    fn each_tick_holds_the_requests_completed_since_the_last() {
        let timeline = Timeline::new();
        let (first, second) = (timeline.slot(), timeline.slot());
        for _ in 0..99 {
            first.record(Duration::from_millis(1), &Outcome::Ok);
        }
        second.record(Duration::from_millis(300), &Outcome::Ok);
        second.record(Duration::from_secs(5), &Outcome::Error("transport_timeout".into()));
        let stalled = timeline.tick();
        assert_eq!((stalled.ops, stalled.errors), (100, 1));
        let max = stalled.max_ms.expect("answered requests");
        assert!((299.0..=303.0).contains(&max), "{max}");
        let p50 = stalled.p50_ms.expect("answered requests");
        assert!((0.99..=1.01).contains(&p50), "{p50}");

        let quiet = timeline.tick();
        assert_eq!((quiet.ops, quiet.errors, quiet.max_ms), (0, 0, None));
        assert!(quiet.line().contains("p99_ms=- max_ms=- errors=0"), "{}", quiet.line());
        assert_eq!(timeline.seconds(), vec![stalled, quiet]);
    }
}
