//! The bench's result: built from the merged [`Stats`], printed as a table for people or as one
//! JSON object for scripts. Errors are always part of it, by operation and kind.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::load::PhaseResult;
use super::stats::OpStats;
use super::timeline::Second;
use crate::cli::output::{Table, note, print_fields, print_line};

/// The settings a run used, echoed in its report.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub endpoint: String,
    pub namespace: String,
    pub concurrency: u32,
    pub keys: u64,
    pub value_size: usize,
    pub read_ratio: f64,
}

/// Everything a run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    pub settings: Settings,
    /// The prefill phase, when `--prefill` was given.
    pub prefill: Option<PhaseReport>,
    /// The measured phase, reads and writes together.
    pub total: PhaseReport,
    pub get: OpReport,
    pub put: OpReport,
    /// The measured phase second by second, with `--timeline`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<Second>>,
}

/// One phase (or one operation of it): throughput, outcomes, latency.
#[derive(Debug, Serialize)]
pub struct PhaseReport {
    pub elapsed_s: f64,
    /// Stopped early by Ctrl-C.
    pub interrupted: bool,
    /// Requests that got an answer (ok or not found).
    pub ops: u64,
    pub ops_per_s: f64,
    pub errors: u64,
    /// Errors by kind: `http_<status>_<code>`, `transport_timeout`, `transport_connect`, ...
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Latency of answered requests; `None` when there were none.
    pub latency_ms: Option<Latency>,
}

/// One operation of the measured phase.
#[derive(Debug, Serialize)]
pub struct OpReport {
    #[serde(flatten)]
    pub phase: PhaseReport,
    /// Answered with a value (siblings included).
    pub ok: u64,
    /// Reads of absent keys (not errors).
    pub not_found: u64,
    /// Reads that returned siblings.
    pub siblings: u64,
}

/// Latency percentiles in milliseconds (microsecond resolution).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    fn of(latency_us: &Histogram<u64>) -> Option<Latency> {
        if latency_us.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Latency {
            p50: ms(latency_us.value_at_quantile(0.50)),
            p90: ms(latency_us.value_at_quantile(0.90)),
            p99: ms(latency_us.value_at_quantile(0.99)),
            p999: ms(latency_us.value_at_quantile(0.999)),
            max: ms(latency_us.max()),
            mean: latency_us.mean().round() / 1000.0,
        })
    }
}

impl PhaseReport {
    fn new(stats: &OpStats, elapsed: Duration, interrupted: bool) -> Self {
        let ops = stats.answered();
        let ops_per_s = ops as f64 / elapsed.as_secs_f64().max(1e-9);
        PhaseReport {
            elapsed_s: round(elapsed.as_secs_f64(), 3),
            interrupted,
            ops,
            ops_per_s: round(ops_per_s, 1),
            errors: stats.errors_total(),
            errors_by_kind: stats.errors.clone(),
            latency_ms: Latency::of(&stats.latency_us),
        }
    }
}

impl OpReport {
    fn new(stats: &OpStats, elapsed: Duration, interrupted: bool) -> Self {
        OpReport {
            phase: PhaseReport::new(stats, elapsed, interrupted),
            ok: stats.ok,
            not_found: stats.not_found,
            siblings: stats.siblings,
        }
    }
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

impl Report {
    pub fn new(
        settings: Settings,
        prefill: Option<&PhaseResult>,
        measured: &PhaseResult,
        timeline: Option<Vec<Second>>,
    ) -> Self {
        let PhaseResult { stats, elapsed, interrupted } = measured;
        Report {
            settings,
            prefill: prefill
                .map(|phase| PhaseReport::new(&phase.stats.put, phase.elapsed, phase.interrupted)),
            total: PhaseReport::new(&stats.all(), *elapsed, *interrupted),
            get: OpReport::new(&stats.get, *elapsed, *interrupted),
            put: OpReport::new(&stats.put, *elapsed, *interrupted),
            timeline,
        }
    }

    /// Errors of the measured phase and of the prefill.
    pub fn errors(&self) -> u64 {
        self.total.errors + self.prefill.as_ref().map_or(0, |prefill| prefill.errors)
    }

    /// Prints the report for people.
    pub fn print_table(&self) -> anyhow::Result<()> {
        let settings = &self.settings;
        print_fields(&[
            ("endpoint", settings.endpoint.clone()),
            ("namespace", settings.namespace.clone()),
            (
                "load",
                format!(
                    "{} connections, {} keys, {} B values, read ratio {:.2}",
                    settings.concurrency, settings.keys, settings.value_size, settings.read_ratio
                ),
            ),
            ("prefill", self.prefill.as_ref().map_or_else(|| "no".to_owned(), phase_summary)),
            ("measured", phase_summary(&self.total)),
        ])?;
        print_line("")?;
        self.print_ops_table()?;
        print_line("")?;
        self.print_errors()?;
        print_line(
            "latency: answered requests only (ok and not_found); errors are counted, not timed",
        )?;
        Ok(())
    }

    fn print_ops_table(&self) -> anyhow::Result<()> {
        let header = [
            "OP",
            "OPS",
            "OPS/S",
            "NOT_FOUND",
            "SIBLINGS",
            "ERRORS",
            "P50_MS",
            "P90_MS",
            "P99_MS",
            "P99.9_MS",
            "MAX_MS",
        ];
        let mut table = Table::new(&header).numeric(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        for (name, op) in [("get", &self.get), ("put", &self.put)] {
            table.row(op_row(name, &op.phase, &op.not_found.to_string(), &op.siblings.to_string()));
        }
        table.row(op_row("all", &self.total, "", ""));
        Ok(table.print()?)
    }

    fn print_errors(&self) -> anyhow::Result<()> {
        let prefill = self.prefill.as_ref().map(|prefill| ("prefill", &prefill.errors_by_kind));
        let measured =
            [("get", &self.get.phase.errors_by_kind), ("put", &self.put.phase.errors_by_kind)];
        let mut table = Table::new(&["PHASE/OP", "ERROR", "COUNT"]).numeric(&[2]);
        for (name, errors) in prefill.into_iter().chain(measured) {
            for (kind, count) in errors {
                table.row(vec![name.to_owned(), kind.clone(), count.to_string()]);
            }
        }
        if self.errors() == 0 {
            print_line("errors: none")?;
        } else {
            table.print()?;
            note(format_args!("warning: {} requests failed (see the error table)", self.errors()));
        }
        Ok(())
    }
}

fn phase_summary(phase: &PhaseReport) -> String {
    let interrupted = if phase.interrupted { " (interrupted)" } else { "" };
    format!(
        "{} ops in {:.2} s, {:.0} ops/s, {} errors{interrupted}",
        phase.ops, phase.elapsed_s, phase.ops_per_s, phase.errors
    )
}

fn op_row(name: &str, phase: &PhaseReport, not_found: &str, siblings: &str) -> Vec<String> {
    let mut row = vec![
        name.to_owned(),
        phase.ops.to_string(),
        format!("{:.1}", phase.ops_per_s),
        not_found.to_owned(),
        siblings.to_owned(),
        phase.errors.to_string(),
    ];
    match phase.latency_ms {
        Some(latency) => {
            let values = [latency.p50, latency.p90, latency.p99, latency.p999, latency.max];
            row.extend(values.iter().map(|ms| format!("{ms:.3}")));
        }
        None => row.extend(std::iter::repeat_n("-".to_owned(), 5)),
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::{Outcome, Stats};

    /// Throughput counts answered requests; not found is separate from errors; the JSON has one
    /// object per operation with its latency in milliseconds.
    #[test]
    fn report_counts_answers_and_errors_separately() {
        let mut stats = Stats::new();
        for _ in 0..8 {
            stats.get.record(Duration::from_micros(1500), Outcome::Ok);
        }
        stats.get.record(Duration::from_micros(500), Outcome::NotFound);
        stats.put.record(Duration::from_millis(2), Outcome::Ok);
        stats.put.record(Duration::from_secs(5), Outcome::Error("http_503_unavailable".into()));
        let measured = PhaseResult { stats, elapsed: Duration::from_secs(2), interrupted: false };
        let settings = Settings {
            endpoint: "http://127.0.0.1:7700".into(),
            namespace: "bench".into(),
            concurrency: 4,
            keys: 10,
            value_size: 128,
            read_ratio: 0.5,
        };
        let report = Report::new(settings, None, &measured, None);
        assert_eq!((report.total.ops, report.total.errors), (10, 1));
        assert_eq!(report.total.ops_per_s, 5.0);
        assert_eq!(report.errors(), 1);

        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["get"]["ops"], 9);
        assert_eq!(json["get"]["not_found"], 1);
        assert_eq!(json["put"]["errors_by_kind"]["http_503_unavailable"], 1);
        assert_eq!(json["put"]["latency_ms"]["max"], 2.0);
        assert_eq!(json["get"]["latency_ms"]["p50"], 1.5);
        assert!(json["prefill"].is_null());
        assert!(json.get("timeline").is_none(), "no timeline unless asked for");
    }
}
