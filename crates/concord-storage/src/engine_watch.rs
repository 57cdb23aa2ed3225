//! What the engine does in the background (memtable flushes, compactions, journal files), seen
//! from Concord by sampling, so a stall of the write path can be lined up with it (issue 21).
//!
//! fjall 3.1 has no event hooks: it offers counters and gauges (sealed memtables, tables,
//! compactions running and completed, time spent compacting, journal files). [`EngineTracker`]
//! is the pure part: it takes one [`EngineState`] sample after another and returns the
//! [`EngineEvent`]s between them (a memtable sealed, a flush done and how long it was pending,
//! compactions started and done, the journal rotated). [`EngineWatch`] is the driver: a thread
//! that samples the engine every [`SAMPLE_INTERVAL`], logs each event at debug (target
//! `concord_storage::engine`, with the log's timestamps) and tells an [`EngineObserver`] (the
//! node's metrics). Sampled means approximate: a flush's time is known to one interval, and a
//! memtable sealed and flushed within one interval is not seen.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{Space, Storage};

/// How many spaces a sample covers: every [`Space`], in [`Space::index`] order.
const SPACES: usize = Space::ALL.len();

/// How often [`EngineWatch`] samples the engine.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(20);

/// One sample of the engine's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineState {
    /// Per space ([`Space::index`] order): memtables sealed and waiting for their flush.
    pub sealed_memtables: [usize; SPACES],
    /// Per space: a number the engine raises by one at every memtable seal (the active
    /// memtable's id), so seals between two samples are counted even when their flush is done
    /// before the next sample.
    pub memtable_seals: [u64; SPACES],
    /// Per space: tables on disk, and of them those in level 0 (flushed, not yet compacted).
    pub tables: [usize; SPACES],
    pub l0_tables: [usize; SPACES],
    /// Bytes in every memtable, active and sealed.
    pub write_buffer_bytes: u64,
    /// Compactions running now.
    pub compactions_active: usize,
    /// Compactions completed since the engine opened, and the time they took together.
    pub compactions_completed: u64,
    pub compacting: Duration,
    /// Journal files on disk (the active one included): one more after each rotation.
    pub journals: usize,
    /// Bytes this process caused to be written to storage so far (`write_bytes` of
    /// `/proc/self/io`), when the system tells.
    pub process_write_bytes: Option<u64>,
}

/// Something the engine did between two samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEvent {
    /// `sealed_since` memtables of `space` were sealed, each queueing a flush to a table;
    /// `sealed` wait now.
    MemtableSealed { space: Space, sealed_since: usize, sealed: usize },
    /// A sealed memtable of `space` became a table, `pending` after it was seen sealed.
    FlushDone { space: Space, pending: Duration },
    /// More compactions run than at the last sample.
    CompactionStarted { active: usize },
    /// `completed` compactions ended since the last sample, taking `took` together.
    CompactionsDone { completed: u64, took: Duration },
    /// The journal count changed (a rotation adds one; a flush lets old ones go).
    Journals { journals: usize },
}

/// Turns successive samples into events. Pure: the caller gives each sample's time.
#[derive(Debug, Default)]
pub struct EngineTracker {
    last: Option<EngineState>,
    /// Per space, when each memtable still sealed was first seen sealed, oldest first.
    sealed_at: [VecDeque<Duration>; SPACES],
}

impl EngineTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// The events between the previous sample and `state`, taken at `now` (any fixed origin).
    /// The first sample only sets the baseline, except for memtables already sealed.
    ///
    /// Flushes are counted from seals: the memtables sealed before plus those sealed since,
    /// less those still sealed, were flushed. A flush's pending time runs from the sample that
    /// first saw its memtable sealed (or counted its seal), so it is known to one interval.
    pub fn observe(&mut self, now: Duration, state: &EngineState) -> Vec<EngineEvent> {
        let mut events = Vec::new();
        // Before the first sample, nothing was sealed and no seal is counted.
        let last = self.last.unwrap_or(EngineState {
            sealed_memtables: [0; SPACES],
            memtable_seals: state.memtable_seals,
            ..*state
        });
        for space in Space::ALL {
            let i = space.index();
            let sealed_since = state.memtable_seals[i].saturating_sub(last.memtable_seals[i]);
            let sealed_since = usize::try_from(sealed_since).unwrap_or(usize::MAX);
            // Without a seal counted, a memtable seen sealed now and not before was sealed since.
            let sealed_since = sealed_since
                .max(state.sealed_memtables[i].saturating_sub(last.sealed_memtables[i]));
            let flushed =
                (last.sealed_memtables[i] + sealed_since).saturating_sub(state.sealed_memtables[i]);
            self.sealed_at[i].extend(std::iter::repeat_n(now, sealed_since));
            for _ in 0..flushed {
                let sealed = self.sealed_at[i].pop_front().unwrap_or(now);
                events.push(EngineEvent::FlushDone { space, pending: now.saturating_sub(sealed) });
            }
            if sealed_since > 0 {
                let sealed = state.sealed_memtables[i];
                events.push(EngineEvent::MemtableSealed { space, sealed_since, sealed });
            }
        }
        if let Some(last) = self.last {
            if state.compactions_active > last.compactions_active {
                events.push(EngineEvent::CompactionStarted { active: state.compactions_active });
            }
            if state.compactions_completed > last.compactions_completed {
                events.push(EngineEvent::CompactionsDone {
                    completed: state.compactions_completed - last.compactions_completed,
                    took: state.compacting.saturating_sub(last.compacting),
                });
            }
            if state.journals != last.journals {
                events.push(EngineEvent::Journals { journals: state.journals });
            }
        }
        self.last = Some(*state);
        events
    }
}

/// Told about every sample and every event; the node turns them into metrics.
pub trait EngineObserver: Send + Sync + 'static {
    fn on_engine_state(&self, state: &EngineState);
    fn on_engine_event(&self, event: &EngineEvent);
}

/// The sampling thread. It holds the storage weakly and ends at the first sample after the
/// storage is gone, so it never keeps an engine open.
pub struct EngineWatch;

impl EngineWatch {
    /// Starts sampling `storage`, if its engine has a state to sample (fjall does; memory
    /// does not). Returns the thread, which ends once the storage is dropped.
    pub fn spawn(
        storage: &Arc<dyn Storage>,
        observer: Arc<dyn EngineObserver>,
    ) -> Option<JoinHandle<()>> {
        storage.engine_state()?;
        let storage: Weak<dyn Storage> = Arc::downgrade(storage);
        let thread = std::thread::Builder::new()
            .name("concord-engine-watch".into())
            .spawn(move || watch(storage, &*observer))
            .expect("spawning the engine watch thread");
        Some(thread)
    }
}

fn watch(storage: Weak<dyn Storage>, observer: &dyn EngineObserver) {
    let started = Instant::now();
    let mut tracker = EngineTracker::new();
    loop {
        let Some(state) = storage.upgrade().and_then(|storage| storage.engine_state()) else {
            return;
        };
        observer.on_engine_state(&state);
        for event in tracker.observe(started.elapsed(), &state) {
            log_event(&event, &state);
            observer.on_engine_event(&event);
        }
        std::thread::sleep(SAMPLE_INTERVAL);
    }
}

fn log_event(event: &EngineEvent, state: &EngineState) {
    let data = Space::Data.index();
    let (l0_tables, write_buffer_bytes) = (state.l0_tables[data], state.write_buffer_bytes);
    match event {
        EngineEvent::MemtableSealed { space, sealed_since, sealed } => tracing::debug!(
            target: "concord_storage::engine",
            space = space.name(), sealed_since, sealed, write_buffer_bytes,
            "memtable sealed, flush queued"
        ),
        EngineEvent::FlushDone { space, pending } => tracing::debug!(
            target: "concord_storage::engine",
            space = space.name(), pending_ms = pending.as_millis() as u64, l0_tables,
            "flush done"
        ),
        EngineEvent::CompactionStarted { active } => tracing::debug!(
            target: "concord_storage::engine", active, l0_tables, "compaction started"
        ),
        EngineEvent::CompactionsDone { completed, took } => tracing::debug!(
            target: "concord_storage::engine",
            completed, took_ms = took.as_millis() as u64, l0_tables, "compactions done"
        ),
        EngineEvent::Journals { journals } => {
            tracing::debug!(target: "concord_storage::engine", journals, "journal files")
        }
    }
}

/// `write_bytes` of `/proc/self/io`: bytes this process sent (or caused) to storage.
pub(crate) fn process_write_bytes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines().find_map(|line| line.strip_prefix("write_bytes:")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// A state with `sealed` data memtables waiting and `seals` counted so far.
    fn data(sealed: usize, seals: u64) -> EngineState {
        let mut state = EngineState { memtable_seals: [7; SPACES], ..EngineState::default() };
        state.sealed_memtables[Space::Data.index()] = sealed;
        state.memtable_seals[Space::Data.index()] = seals;
        state
    }

    fn flush(pending_ms: u64) -> EngineEvent {
        EngineEvent::FlushDone { space: Space::Data, pending: at(pending_ms) }
    }

    fn sealed(sealed_since: usize, sealed: usize) -> EngineEvent {
        EngineEvent::MemtableSealed { space: Space::Data, sealed_since, sealed }
    }

    /// A memtable seen sealed at 100 ms and gone at 900 ms is one flush pending 800 ms; two
    /// sealed are done in the order they were sealed.
    #[test]
    fn a_flush_is_timed_from_the_seal_to_the_table() {
        let mut tracker = EngineTracker::new();
        assert_eq!(tracker.observe(at(0), &data(0, 10)), vec![]);
        assert_eq!(tracker.observe(at(100), &data(1, 11)), vec![sealed(1, 1)]);
        assert_eq!(tracker.observe(at(500), &data(1, 11)), vec![]);
        assert_eq!(tracker.observe(at(900), &data(0, 11)), vec![flush(800)]);
        tracker.observe(at(1000), &data(1, 12));
        tracker.observe(at(1100), &data(2, 13));
        assert_eq!(tracker.observe(at(1500), &data(0, 13)), vec![flush(500), flush(400)]);
    }

    /// Seals counted by the engine find the flushes no sample saw: a memtable sealed and
    /// flushed between two samples is one flush (pending less than an interval), and so is one
    /// flushed while the next was sealed, the count of sealed memtables staying at one.
    #[test]
    fn flushes_between_samples_are_counted_from_seals() {
        let mut tracker = EngineTracker::new();
        tracker.observe(at(0), &data(0, 10));
        assert_eq!(tracker.observe(at(20), &data(0, 11)), vec![flush(0), sealed(1, 0)]);
        assert_eq!(tracker.observe(at(40), &data(1, 12)), vec![sealed(1, 1)]);
        assert_eq!(tracker.observe(at(60), &data(1, 13)), vec![flush(20), sealed(1, 1)]);
    }

    /// Memtables already sealed at the first sample are flushes in progress, timed from it.
    #[test]
    fn the_first_sample_counts_memtables_already_sealed() {
        let mut tracker = EngineTracker::new();
        assert_eq!(tracker.observe(at(0), &data(2, 10)), vec![sealed(2, 2)]);
        assert_eq!(tracker.observe(at(40), &data(1, 10)), vec![flush(40)]);
    }

    /// Compactions are reported when more run than before and when the completed count moves,
    /// with the time they took from the engine's own total; journal rotations as counts.
    #[test]
    fn compactions_and_journals_are_reported_as_they_move() {
        let mut tracker = EngineTracker::new();
        let base = EngineState {
            compactions_completed: 3,
            compacting: at(2000),
            journals: 1,
            ..EngineState::default()
        };
        assert_eq!(tracker.observe(at(0), &base), vec![], "the first sample is the baseline");
        let running = EngineState { compactions_active: 1, journals: 2, ..base };
        assert_eq!(
            tracker.observe(at(50), &running),
            vec![
                EngineEvent::CompactionStarted { active: 1 },
                EngineEvent::Journals { journals: 2 }
            ]
        );
        let done = EngineState { compactions_completed: 4, compacting: at(2350), ..base };
        assert_eq!(
            tracker.observe(at(400), &done),
            vec![
                EngineEvent::CompactionsDone { completed: 1, took: at(350) },
                EngineEvent::Journals { journals: 1 }
            ]
        );
    }

    /// On fjall itself: writing three memtables' worth through 1 MiB memtables is seen as at
    /// least two seals and as many flushes done, whatever the samples' timing (waited for with
    /// a deadline, not a sleep). Guards the use of the memtable id as the seal count.
    #[test]
    fn fjall_flushes_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let options = crate::FjallOptions { memtable_bytes: 1 << 20, ..Default::default() };
        let storage = crate::FjallStorage::open(dir.path(), &options).unwrap();
        let mut tracker = EngineTracker::new();
        let started = Instant::now();
        tracker.observe(started.elapsed(), &storage.engine_state().unwrap());
        for batch in 0..48u32 {
            let mut writes = crate::Batch::new();
            for i in 0..64u32 {
                writes.put(Space::Data, format!("k{batch:03}-{i:03}").into_bytes(), vec![7; 1024]);
            }
            storage.commit(writes, crate::Durability::Buffered).unwrap();
        }
        let (mut seals, mut flushes) = (0, 0);
        let deadline = started + Duration::from_secs(60);
        while flushes < 2 || flushes < seals {
            assert!(Instant::now() < deadline, "saw {seals} seals and {flushes} flushes");
            for event in tracker.observe(started.elapsed(), &storage.engine_state().unwrap()) {
                match event {
                    EngineEvent::MemtableSealed { space: Space::Data, sealed_since, .. } => {
                        seals += sealed_since
                    }
                    EngineEvent::FlushDone { space: Space::Data, .. } => flushes += 1,
                    _ => {}
                }
            }
            std::thread::yield_now();
        }
        assert!(storage.engine_state().unwrap().tables[Space::Data.index()] >= 1);
    }

    /// The process's own write counter reads on Linux (the only system Concord runs on).
    #[test]
    fn process_write_bytes_reads_proc_self_io() {
        if std::path::Path::new("/proc/self/io").exists() {
            assert!(process_write_bytes().is_some());
        }
    }
}
