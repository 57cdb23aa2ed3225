//! The storage metrics (`concord_storage_*`): each commit's phases, as the committer reports
//! them, and the engine's background work, as `concord_storage::EngineWatch` samples it
//! (issue 21: a slow write's time is lined up with the flush or compaction it waited behind).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use concord_storage::{CommitKind, CommitTiming, EngineEvent, EngineState, Space};

/// Labels of a commit phase: `phase` is `queue_wait`, `apply` or `engine`; `kind` is
/// `client` or `bulk`. Both come from fixed sets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: &'static str,
    pub kind: &'static str,
}

/// The keyspace a gauge or counter is about (`data`, `meta`, `raft`, `hints`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct SpaceLabels {
    pub space: &'static str,
}

fn seconds_histogram() -> Histogram {
    // 50 µs to about 26 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

fn batch_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 12))
}

/// Every storage metric.
pub struct StorageMetrics {
    commit_seconds: Histogram,
    commit_batch_updates: Histogram,
    phase_seconds: Family<PhaseLabels, Histogram, fn() -> Histogram>,
    flushes: Family<SpaceLabels, Counter>,
    flush_pending_seconds: Histogram,
    compactions: Counter,
    compaction_seconds: Counter<f64>,
    compactions_active: Gauge,
    sealed_memtables: Family<SpaceLabels, Gauge>,
    l0_tables: Family<SpaceLabels, Gauge>,
    tables: Family<SpaceLabels, Gauge>,
    write_buffer_bytes: Gauge,
    journals: Gauge,
    process_write_bytes: Gauge,
}

impl StorageMetrics {
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            commit_seconds: seconds_histogram(),
            commit_batch_updates: batch_histogram(),
            phase_seconds: Family::new_with_constructor(seconds_histogram),
            flushes: Family::default(),
            flush_pending_seconds: seconds_histogram(),
            compactions: Counter::default(),
            compaction_seconds: Counter::default(),
            compactions_active: Gauge::default(),
            sealed_memtables: Family::default(),
            l0_tables: Family::default(),
            tables: Family::default(),
            write_buffer_bytes: Gauge::default(),
            journals: Gauge::default(),
            process_write_bytes: Gauge::default(),
        };
        metrics.register(registry);
        metrics
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "storage_commit_duration_seconds",
            "Time to apply and sync one group commit (its apply and engine phases)",
            self.commit_seconds.clone(),
        );
        registry.register(
            "storage_commit_batch_updates",
            "Writes sharing one group commit",
            self.commit_batch_updates.clone(),
        );
        registry.register(
            "storage_commit_phase_seconds",
            "One commit's phases: queue_wait (its oldest write waiting for the batch to start), \
             apply (read, merge, encode), engine (journal write, fsync, memtables, engine stalls)",
            self.phase_seconds.clone(),
        );
        let engine = registry.sub_registry_with_prefix("storage_engine");
        engine.register(
            "flushes",
            "Memtables flushed to tables (sampled every 20 ms)",
            self.flushes.clone(),
        );
        engine.register(
            "flush_pending_seconds",
            "From a memtable seen sealed to its table written (sampled every 20 ms)",
            self.flush_pending_seconds.clone(),
        );
        engine.register("compactions", "Compactions completed", self.compactions.clone());
        engine.register(
            "compaction_seconds",
            "Time spent in completed compactions",
            self.compaction_seconds.clone(),
        );
        engine.register(
            "compactions_active",
            "Compactions running",
            self.compactions_active.clone(),
        );
        engine.register(
            "sealed_memtables",
            "Memtables sealed and waiting for their flush (writes halt at 4)",
            self.sealed_memtables.clone(),
        );
        engine.register("l0_tables", "Tables in level 0", self.l0_tables.clone());
        engine.register("tables", "Tables on disk", self.tables.clone());
        engine.register(
            "write_buffer_bytes",
            "Bytes in memtables, active and sealed",
            self.write_buffer_bytes.clone(),
        );
        engine.register("journals", "Journal files on disk", self.journals.clone());
        engine.register(
            "process_write_bytes",
            "Bytes this process caused to be written to storage (/proc/self/io write_bytes)",
            self.process_write_bytes.clone(),
        );
    }

    pub fn on_commit(&self, timing: &CommitTiming) {
        self.commit_seconds.observe((timing.apply + timing.engine).as_secs_f64());
        self.commit_batch_updates.observe(timing.updates as f64);
        let kind = match timing.kind {
            CommitKind::Client => "client",
            CommitKind::Bulk => "bulk",
        };
        for (phase, took) in
            [("queue_wait", timing.queue_wait), ("apply", timing.apply), ("engine", timing.engine)]
        {
            let labels = PhaseLabels { phase, kind };
            self.phase_seconds.get_or_create(&labels).observe(took.as_secs_f64());
        }
    }

    pub fn on_engine_state(&self, state: &EngineState) {
        let gauge = |value: usize| i64::try_from(value).unwrap_or(i64::MAX);
        for space in Space::ALL {
            let labels = SpaceLabels { space: space.name() };
            let i = space.index();
            self.sealed_memtables.get_or_create(&labels).set(gauge(state.sealed_memtables[i]));
            self.l0_tables.get_or_create(&labels).set(gauge(state.l0_tables[i]));
            self.tables.get_or_create(&labels).set(gauge(state.tables[i]));
        }
        self.write_buffer_bytes.set(i64::try_from(state.write_buffer_bytes).unwrap_or(i64::MAX));
        self.compactions_active.set(gauge(state.compactions_active));
        self.journals.set(gauge(state.journals));
        if let Some(bytes) = state.process_write_bytes {
            self.process_write_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
    }

    pub fn on_engine_event(&self, event: &EngineEvent) {
        match event {
            EngineEvent::FlushDone { space, pending } => {
                self.flushes.get_or_create(&SpaceLabels { space: space.name() }).inc();
                self.flush_pending_seconds.observe(pending.as_secs_f64());
            }
            EngineEvent::CompactionsDone { completed, took } => {
                self.compactions.inc_by(*completed);
                self.compaction_seconds.inc_by(took.as_secs_f64());
            }
            EngineEvent::MemtableSealed { .. }
            | EngineEvent::CompactionStarted { .. }
            | EngineEvent::Journals { .. } => {}
        }
    }
}
