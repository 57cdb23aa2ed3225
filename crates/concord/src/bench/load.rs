//! The closed loop: `concurrency` tasks, each sending one request at a time over its own
//! keep-alive connection from the shared pool, until a deadline or an operation budget is
//! reached. Keys are `key%09d` over the keyspace, as in `../shared/bench/concord.lua`, so wrk
//! and this bench see the same load.
//!
//! Ctrl-C stops the tasks after their request in flight, so an interrupted run still reports;
//! a second Ctrl-C exits at once.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use concord_client::{Client, GetOptions, WriteOptions};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;

use super::progress::{Progress, Span};
use super::stats::{Outcome, Stats};
use super::timeline::Timeline;

/// How often the progress bar is refreshed.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);
/// The span of one line of the timeline.
const TIMELINE_INTERVAL: Duration = Duration::from_secs(1);

/// What the tasks send.
#[derive(Debug)]
pub struct Workload {
    pub ns: String,
    /// Keys are `key000000000` up to `key{keys - 1}`.
    pub keys: u64,
    /// Probability that an operation is a read.
    pub read_ratio: f64,
    /// The body of every write.
    pub value: Bytes,
}

/// When the measured phase ends.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    Time(Duration),
    Ops(u64),
}

/// The measurements of one phase.
#[derive(Debug)]
pub struct PhaseResult {
    pub stats: Stats,
    /// From the first request sent to the last answer received.
    pub elapsed: Duration,
    /// Stopped early by Ctrl-C.
    pub interrupted: bool,
}

/// Counters shared by the tasks, the progress ticker and the Ctrl-C watcher.
#[derive(Debug, Default)]
struct Shared {
    /// Operations handed out so far (budgeted phases only).
    claimed: AtomicU64,
    /// Operations finished, errors included.
    done: AtomicU64,
    errors: AtomicU64,
    /// Set by Ctrl-C.
    stop: AtomicBool,
}

impl Shared {
    /// Hands out the next operation number, `None` once `budget` are handed out or on Ctrl-C.
    fn claim(&self, budget: u64) -> Option<u64> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        let number = self.claimed.fetch_add(1, Ordering::Relaxed);
        (number < budget).then_some(number)
    }

    fn finished(&self, outcome: &Outcome) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if outcome.is_error() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Writes every key once (blind writes), `concurrency` at a time.
pub async fn prefill(
    client: &Client,
    workload: Arc<Workload>,
    concurrency: u32,
) -> anyhow::Result<PhaseResult> {
    let progress = Progress::new("prefill", Span::Ops(workload.keys));
    run_phase(concurrency, progress, |shared| {
        let client = client.clone();
        let workload = workload.clone();
        async move {
            let mut stats = Stats::new();
            while let Some(index) = shared.claim(workload.keys) {
                let (outcome, _) = put(&client, &workload, index, &mut stats).await;
                shared.finished(&outcome);
            }
            stats
        }
    })
    .await
}

/// Runs the measured mix of reads and writes until `limit`. With a `timeline`, every request
/// is also recorded there and a line is printed (and kept) every second.
pub async fn measure(
    client: &Client,
    workload: Arc<Workload>,
    concurrency: u32,
    limit: Limit,
    timeline: Option<Arc<Timeline>>,
) -> anyhow::Result<PhaseResult> {
    let (span, deadline, budget) = match limit {
        Limit::Time(duration) => (Span::Time(duration), Some(Instant::now() + duration), u64::MAX),
        Limit::Ops(ops) => (Span::Ops(ops), None, ops),
    };
    let progress = Progress::new("bench", span);
    let ticker = timeline.clone().map(|timeline| {
        let progress = progress.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(TIMELINE_INTERVAL);
            interval.tick().await;
            loop {
                interval.tick().await;
                progress.println(&timeline.tick().line());
            }
        })
    });
    let result = run_phase(concurrency, progress.clone(), |shared| {
        let client = client.clone();
        let workload = workload.clone();
        let slot = timeline.as_ref().map(|timeline| timeline.slot());
        let mut rng = SmallRng::seed_from_u64(rand::random());
        async move {
            let mut stats = Stats::new();
            while deadline.is_none_or(|deadline| Instant::now() < deadline)
                && shared.claim(budget).is_some()
            {
                let index = rng.random_range(0..workload.keys);
                let (outcome, latency) = if rng.random_bool(workload.read_ratio) {
                    get(&client, &workload, index, &mut stats).await
                } else {
                    put(&client, &workload, index, &mut stats).await
                };
                if let Some(slot) = &slot {
                    slot.record(latency, &outcome);
                }
                shared.finished(&outcome);
            }
            stats
        }
    })
    .await;
    if let (Some(ticker), Some(timeline)) = (ticker, &timeline) {
        ticker.abort();
        // The last, partial second: what completed since the last tick.
        crate::cli::output::note(timeline.tick().line());
    }
    result
}

fn key(index: u64) -> String {
    format!("key{index:09}")
}

/// Reads one key; returns how it ended and how long it took.
async fn get(
    client: &Client,
    workload: &Workload,
    index: u64,
    stats: &mut Stats,
) -> (Outcome, Duration) {
    let started = Instant::now();
    let result = client.get(&workload.ns, key(index).as_bytes(), GetOptions::default()).await;
    let latency = started.elapsed();
    let outcome = Outcome::of_get(&result);
    stats.get.record(latency, outcome.clone());
    (outcome, latency)
}

/// Writes one key blindly; returns how it ended and how long it took.
async fn put(
    client: &Client,
    workload: &Workload,
    index: u64,
    stats: &mut Stats,
) -> (Outcome, Duration) {
    let key = key(index);
    let value = workload.value.clone();
    let started = Instant::now();
    let result =
        client.put(&workload.ns, key.as_bytes(), value, None, None, WriteOptions::default()).await;
    let latency = started.elapsed();
    let outcome = Outcome::of_put(&result);
    stats.put.record(latency, outcome.clone());
    (outcome, latency)
}

/// Spawns `concurrency` tasks made by `task`, shows their progress, and merges their stats.
async fn run_phase<F, T>(
    concurrency: u32,
    progress: Progress,
    mut task: F,
) -> anyhow::Result<PhaseResult>
where
    F: FnMut(Arc<Shared>) -> T,
    T: Future<Output = Stats> + Send + 'static,
{
    let shared = Arc::new(Shared::default());
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        tasks.spawn(task(shared.clone()));
    }
    let ticker = tokio::spawn(show_progress(shared.clone(), progress.clone(), started));
    let watcher = tokio::spawn(stop_on_ctrl_c(shared.clone(), progress.clone()));
    let mut stats = Stats::new();
    while let Some(joined) = tasks.join_next().await {
        stats.merge(&joined.context("a load task failed")?);
    }
    let elapsed = started.elapsed();
    ticker.abort();
    watcher.abort();
    progress.finish();
    Ok(PhaseResult { stats, elapsed, interrupted: shared.stop.load(Ordering::Relaxed) })
}

async fn show_progress(shared: Arc<Shared>, progress: Progress, started: Instant) {
    let mut interval = tokio::time::interval(PROGRESS_INTERVAL);
    loop {
        interval.tick().await;
        let done = shared.done.load(Ordering::Relaxed);
        progress.update(done, shared.errors.load(Ordering::Relaxed), started.elapsed());
    }
}

async fn stop_on_ctrl_c(shared: Arc<Shared>, progress: Progress) {
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    shared.stop.store(true, Ordering::Relaxed);
    progress.println("interrupted: finishing the requests in flight (Ctrl-C again to quit now)");
    if tokio::signal::ctrl_c().await.is_ok() {
        std::process::exit(130);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys match the wrk script's `key%09d`.
    #[test]
    fn keys_are_zero_padded_like_the_wrk_script() {
        assert_eq!(key(0), "key000000000");
        assert_eq!(key(99_999), "key000099999");
    }

    /// A budget hands out exactly that many operations, and none after Ctrl-C.
    #[test]
    fn claims_stop_at_the_budget_and_on_stop() {
        let shared = Shared::default();
        assert_eq!((shared.claim(2), shared.claim(2), shared.claim(2)), (Some(0), Some(1), None));
        let shared = Shared::default();
        shared.stop.store(true, Ordering::Relaxed);
        assert_eq!(shared.claim(u64::MAX), None);
    }
}
