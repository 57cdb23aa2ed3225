//! `concord bench`: a closed-loop load generator over the HTTP API, shaped like
//! `../shared/bench/concord.lua` so its numbers compare with wrk's.
//!
//! - [`load`]: the tasks and their loop (prefill and measured phases).
//! - [`stats`]: per-operation histograms and outcome counts, merged at the end.
//! - [`report`]: the result as a table or one JSON object.
//! - [`progress`]: the progress bar on stderr.
//! - [`timeline`]: with `--timeline`, one line a second (throughput, p50, p99, max, errors) so
//!   stalls show; printed on stderr as it goes and kept in the JSON report.
//!
//! Writes are blind (no context), like wrk's. In a `siblings` namespace they pile up siblings,
//! so a missing namespace is created with `conflicts: lww`.

mod load;
mod progress;
mod report;
mod stats;
mod timeline;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Args;
use concord_client::{Client, ClientConfig, ConflictPolicy, Error, NamespaceConfig};
use rand::Rng;

use self::load::{Limit, PhaseResult, Workload};
use self::report::{Report, Settings};
use self::stats::Stats;
use self::timeline::Timeline;
use crate::cli::ClientArgs;
use crate::cli::output::{OutputFormat, note, print_json};

/// Measured phase length when neither `--duration` nor `--ops` is given.
const DURATION_DEFAULT: Duration = Duration::from_secs(20);

/// Flags of `concord bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    client: ClientArgs,

    /// Connections, each driven by one task sending one request at a time.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: u32,

    /// How long to measure: e.g. 20s, 500ms, 2m [default: 20s unless --ops is given].
    #[arg(long, value_name = "TIME", value_parser = parse_duration, conflicts_with = "ops")]
    duration: Option<Duration>,

    /// Measure this many operations instead of a duration.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    ops: Option<u64>,

    /// Keyspace size: keys are key000000000 to key{N-1} (zero-padded to 9 digits).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100_000,
        value_parser = clap::value_parser!(u64).range(1..=1_000_000_000)
    )]
    keys: u64,

    /// Size of each written value in bytes (random printable ASCII).
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = 128,
        value_parser = clap::value_parser!(u32).range(0..=(64 << 20))
    )]
    value_size: u32,

    /// Fraction of operations that are reads, 0.0 to 1.0.
    #[arg(long, value_name = "RATIO", default_value_t = 0.5, value_parser = parse_ratio)]
    read_ratio: f64,

    /// Namespace to load (created with `conflicts: lww` if missing).
    #[arg(long, value_name = "NAME", default_value = "bench")]
    ns: String,

    /// Write every key once before measuring, so reads find values.
    #[arg(long)]
    prefill: bool,

    /// Print a line every second of the measured phase (wall-clock time, ops/s, p50, p99, max,
    /// errors) on stderr, and keep the lines in the JSON report, so stalls are visible.
    #[arg(long)]
    timeline: bool,
}

/// Runs `concord bench` on its own multi-threaded runtime.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let config = ClientConfig {
        pool_idle_connections_max: args.concurrency as usize,
        ..ClientConfig::default()
    };
    let client = Client::with_config(&args.client.endpoint, config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(bench(&client, &args))?;
    match args.client.output {
        OutputFormat::Json => print_json(&report),
        OutputFormat::Table => report.print_table(),
    }
}

async fn bench(client: &Client, args: &BenchArgs) -> anyhow::Result<Report> {
    ensure_namespace(client, &args.ns, args.read_ratio).await?;
    let workload = Arc::new(Workload {
        ns: args.ns.clone(),
        keys: args.keys,
        read_ratio: args.read_ratio,
        value: random_value(args.value_size as usize),
    });
    let prefill = if args.prefill {
        Some(load::prefill(client, workload.clone(), args.concurrency).await?)
    } else {
        None
    };
    let timeline = args.timeline.then(|| Arc::new(Timeline::new()));
    let limit = match (args.ops, args.duration) {
        (Some(ops), _) => Limit::Ops(ops),
        (None, duration) => Limit::Time(duration.unwrap_or(DURATION_DEFAULT)),
    };
    let measured = match &prefill {
        // Ctrl-C during the prefill means stop: report the prefill and an empty measured phase.
        Some(prefill) if prefill.interrupted => {
            note(format_args!("prefill interrupted after {:.1} s", prefill.elapsed.as_secs_f64()));
            PhaseResult { stats: Stats::new(), elapsed: Duration::ZERO, interrupted: true }
        }
        _ => load::measure(client, workload, args.concurrency, limit, timeline.clone()).await?,
    };
    let settings = Settings {
        endpoint: client.endpoint().to_owned(),
        namespace: args.ns.clone(),
        concurrency: args.concurrency,
        keys: args.keys,
        value_size: args.value_size as usize,
        read_ratio: args.read_ratio,
    };
    let timeline = timeline.map(|timeline| timeline.seconds());
    Ok(Report::new(settings, prefill.as_ref(), &measured, timeline))
}

/// Checks that `ns` exists, creating it with `lww` conflicts if it does not. Failing here,
/// before any load, turns an unreachable endpoint into one clear error instead of a report of
/// nothing but transport errors.
async fn ensure_namespace(client: &Client, ns: &str, read_ratio: f64) -> anyhow::Result<()> {
    match client.namespace(ns).await {
        Ok(view) => {
            if view.conflicts == ConflictPolicy::Siblings && read_ratio < 1.0 {
                note(format_args!(
                    "warning: namespace {ns} keeps siblings, so the bench's blind writes pile \
                     them up; prefer a namespace created with --conflicts lww"
                ));
            }
            Ok(())
        }
        Err(Error::Api { code, .. }) if code == "namespace_not_found" => {
            let config =
                NamespaceConfig { conflicts: Some(ConflictPolicy::Lww), ..Default::default() };
            client.create_namespace(ns, &config).await?;
            note(format_args!("created namespace {ns} (conflicts lww) for the bench"));
            Ok(())
        }
        Err(err) => Err(err.into()),
    }
}

/// `size` random printable ASCII bytes (33..=126), as the wrk script writes.
fn random_value(size: usize) -> Bytes {
    let mut rng = rand::rng();
    (0..size).map(|_| rng.random_range(33u8..=126)).collect::<Vec<u8>>().into()
}

/// Parses `20s`, `500ms`, `2m`, `1h`, `1.5s` or a bare number of seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds_per_unit = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("unknown unit {other:?}: use ms, s, m or h")),
    };
    let number: f64 = number.parse().map_err(|_| format!("invalid duration {text:?}"))?;
    let seconds = number * seconds_per_unit;
    // A week bounds the run and keeps `Duration::from_secs_f64` far from overflow.
    if !(seconds > 0.0 && seconds <= 7.0 * 24.0 * 3600.0) {
        return Err(format!("duration {text:?} must be above zero and at most a week"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(format!("{text:?} is not a ratio between 0.0 and 1.0")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_common_units() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        for bad in ["", "0s", "-1s", "1d", "s", "1e400s", "1..2s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ratios_stay_between_zero_and_one() {
        assert_eq!(parse_ratio("0.5"), Ok(0.5));
        assert_eq!(parse_ratio("1"), Ok(1.0));
        for bad in ["1.01", "-0.1", "NaN", "half"] {
            assert!(parse_ratio(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn values_are_printable_ascii_of_the_asked_size() {
        let value = random_value(1000);
        assert_eq!(value.len(), 1000);
        assert!(value.iter().all(|byte| (33..=126).contains(byte)));
    }
}
