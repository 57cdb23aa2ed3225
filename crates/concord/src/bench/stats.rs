//! What the load generator measures, per operation: a latency histogram of answered requests and
//! counts of each outcome. Every task keeps its own [`Stats`]; they are merged at the end, so the
//! hot loop shares nothing but two counters.

use std::collections::BTreeMap;
use std::time::Duration;

use concord_client::{Error, GetResult, PutResult};
use hdrhistogram::Histogram;

/// Largest latency recorded exactly, in microseconds (5 minutes, far above any request
/// deadline); slower requests are recorded as this value.
const LATENCY_US_MAX: u64 = 300_000_000;
/// Significant decimal digits kept by the histograms: 0.1% resolution.
const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A value was read or written.
    Ok,
    /// A read returned two or more siblings (answered, and counted as ok too).
    Siblings,
    /// A read of an absent key: an answer, not an error.
    NotFound,
    /// An error, labelled by kind (see [`error_kind`]).
    Error(String),
}

impl Outcome {
    /// The outcome of a read.
    pub fn of_get(result: &Result<GetResult, Error>) -> Outcome {
        match result {
            Ok(GetResult::Value { .. }) => Outcome::Ok,
            Ok(GetResult::Siblings { .. }) => Outcome::Siblings,
            Ok(GetResult::NotFound { .. }) => Outcome::NotFound,
            Err(err) => Outcome::Error(error_kind(err)),
        }
    }

    /// The outcome of a write.
    pub fn of_put(result: &Result<PutResult, Error>) -> Outcome {
        match result {
            Ok(_) => Outcome::Ok,
            Err(err) => Outcome::Error(error_kind(err)),
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Outcome::Error(_))
    }
}

/// A short label for an error: `http_<status>_<code>` for server answers (e.g.
/// `http_503_unavailable`), `transport_timeout`, `transport_connect`, `transport_other`,
/// `decode`, `invalid_argument`.
pub fn error_kind(err: &Error) -> String {
    match err {
        // Bodies that were not the API's JSON already have the code `http_<status>`.
        Error::Api { code, .. } if code.starts_with("http_") => code.clone(),
        Error::Api { status, code, .. } => format!("http_{status}_{code}"),
        Error::Transport(err) if err.is_timeout() => "transport_timeout".to_owned(),
        Error::Transport(err) if err.is_connect() => "transport_connect".to_owned(),
        Error::Transport(_) => "transport_other".to_owned(),
        Error::Decode(_) => "decode".to_owned(),
        Error::InvalidArgument(_) => "invalid_argument".to_owned(),
    }
}

/// The measurements of one kind of operation.
#[derive(Debug, Clone)]
pub struct OpStats {
    /// Latency of answered requests (ok, siblings, not found), in microseconds. Errors are
    /// counted in `errors`, not timed: a refused connection is not a fast operation.
    pub latency_us: Histogram<u64>,
    /// Answered with a value (siblings included).
    pub ok: u64,
    /// Reads that returned siblings.
    pub siblings: u64,
    /// Reads of absent keys.
    pub not_found: u64,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
}

impl OpStats {
    pub fn new() -> Self {
        let latency_us = Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_DIGITS)
            .expect("constant histogram bounds are valid");
        OpStats { latency_us, ok: 0, siblings: 0, not_found: 0, errors: BTreeMap::new() }
    }

    /// Records one request that took `latency` and ended with `outcome`.
    pub fn record(&mut self, latency: Duration, outcome: Outcome) {
        let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Siblings => {
                self.ok += 1;
                self.siblings += 1;
            }
            Outcome::NotFound => self.not_found += 1,
            Outcome::Error(kind) => {
                *self.errors.entry(kind).or_default() += 1;
                return;
            }
        }
        self.latency_us.saturating_record(latency_us.max(1));
    }

    /// Adds `other`'s measurements to these.
    pub fn merge(&mut self, other: &OpStats) {
        self.latency_us.add(&other.latency_us).expect("histograms share their bounds");
        self.ok += other.ok;
        self.siblings += other.siblings;
        self.not_found += other.not_found;
        for (kind, count) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += count;
        }
    }

    /// Requests that got an answer: ok or not found.
    pub fn answered(&self) -> u64 {
        self.ok + self.not_found
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The measurements of a run (or of one task's share of it).
#[derive(Debug, Clone)]
pub struct Stats {
    pub get: OpStats,
    pub put: OpStats,
}

impl Stats {
    pub fn new() -> Self {
        Stats { get: OpStats::new(), put: OpStats::new() }
    }

    pub fn merge(&mut self, other: &Stats) {
        self.get.merge(&other.get);
        self.put.merge(&other.put);
    }

    /// Reads and writes together.
    pub fn all(&self) -> OpStats {
        let mut all = self.get.clone();
        all.merge(&self.put);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(status: u16, code: &str) -> Error {
        Error::Api {
            status,
            code: code.into(),
            message: String::new(),
            details: serde_json::Value::Null,
        }
    }

    /// Not found is an answer; errors are labelled by status and code.
    #[test]
    fn outcomes_are_classified() {
        let not_found = Ok(GetResult::NotFound { context: None });
        assert_eq!(Outcome::of_get(&not_found), Outcome::NotFound);
        let siblings = Ok(GetResult::Siblings { siblings: vec![], context: "c".into() });
        assert_eq!(Outcome::of_get(&siblings), Outcome::Siblings);
        let unavailable = Err(api_error(503, "unavailable"));
        assert_eq!(Outcome::of_get(&unavailable), Outcome::Error("http_503_unavailable".into()));
        let bad_gateway = Err(api_error(502, "http_502"));
        assert_eq!(Outcome::of_put(&bad_gateway), Outcome::Error("http_502".into()));
        assert_eq!(error_kind(&Error::Decode("x".into())), "decode");
    }

    /// Merging adds counts and histograms; errors are counted but not timed.
    #[test]
    fn merge_adds_counts_and_latencies() {
        let mut first = Stats::new();
        first.get.record(Duration::from_millis(1), Outcome::Ok);
        first.get.record(Duration::from_millis(2), Outcome::NotFound);
        first.put.record(Duration::from_secs(9), Outcome::Error("transport_timeout".into()));
        let mut second = Stats::new();
        second.get.record(Duration::from_millis(3), Outcome::Siblings);
        second.put.record(Duration::from_millis(4), Outcome::Error("transport_timeout".into()));
        first.merge(&second);

        assert_eq!((first.get.ok, first.get.siblings, first.get.not_found), (2, 1, 1));
        assert_eq!(first.get.latency_us.len(), 3);
        assert_eq!(first.put.latency_us.len(), 0);
        assert_eq!(first.put.errors["transport_timeout"], 2);
        let all = first.all();
        assert_eq!((all.answered(), all.errors_total()), (3, 2));
        assert!(all.latency_us.max() >= 2_999 && all.latency_us.max() <= 3_010);
    }
}
