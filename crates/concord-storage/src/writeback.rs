//! Table files go to disk in small steps while the engine writes them, so no journal fsync
//! waits behind a whole table (issue 21).
//!
//! fjall writes a flushed memtable or a compaction's output as one table file through the page
//! cache and syncs it once at the end: up to 64 MiB of dirty pages reach the disk queue at
//! once, and on ext4 (ordered data) the next journal fsync's commit waits for all of them. That
//! is RocksDB's problem that `bytes_per_sync` solves; fjall has no such setting, so Concord
//! does it from beside the engine: a thread looks at the table folders every
//! [`WritebackOptions::interval`] and, for each table file that grew by a step since it last
//! looked, asks the kernel to start writing the new bytes now, so table data reaches the disk
//! as it is produced, a few steps at a time, and the engine's final fsync finds little left.
//! It only starts writeback earlier; what is durable when is unchanged, so every durability
//! argument stands.
//!
//! [`WritebackPlan`] is the pure part (listings in, ranges to write back out); [`Writeback`]
//! drives it on a thread that the engine owns and stops when it closes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// How table writeback runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WritebackOptions {
    /// Bytes a table file must grow by before they are written back; also the most written
    /// back in one call.
    pub step_bytes: u64,
    /// How often the table folders are looked at.
    pub interval: Duration,
}

impl Default for WritebackOptions {
    fn default() -> Self {
        Self { step_bytes: 1 << 20, interval: Duration::from_millis(10) }
    }
}

/// Writeback failures logged per engine: one is a curiosity (writeback is only a head start,
/// the engine still syncs every table), a stream of them would flood the log.
const FAILURES_LOGGED_MAX: u32 = 10;

/// Looks unchanged this many times in a row: the engine has finished (and synced) the file.
const STABLE_LOOKS: u32 = 50;

/// A byte range of a file to write back now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub path: PathBuf,
    pub offset: u64,
    pub len: u64,
}

#[derive(Debug)]
struct Tracked {
    /// Bytes from the start already asked to be written back.
    written_back: u64,
    size: u64,
    /// Looks in a row that found the size unchanged.
    unchanged: u32,
}

/// Which new table bytes to write back, from successive listings of the table files. Pure.
#[derive(Debug)]
pub struct WritebackPlan {
    step_bytes: u64,
    /// Files being written (or not yet known to be finished).
    tracked: HashMap<PathBuf, Tracked>,
    /// Files seen finished, or there before the first look: never looked at again.
    finished: std::collections::HashSet<PathBuf>,
    first_look: bool,
}

impl WritebackPlan {
    pub fn new(step_bytes: u64) -> Self {
        assert!(step_bytes > 0, "a writeback step must be at least a byte");
        Self { step_bytes, tracked: HashMap::new(), finished: Default::default(), first_look: true }
    }

    /// Whether `path` still needs its size looked at (a file not known to be finished).
    pub fn wants(&self, path: &Path) -> bool {
        !self.finished.contains(path)
    }

    /// Takes one look: `present` is every table file now, `sizes` the size of each that
    /// [`WritebackPlan::wants`]. Returns the ranges to write back, in steps of at most
    /// `step_bytes`. Files there at the first look are finished (written by an earlier run,
    /// synced by it); a file that stopped growing keeps its last partial step for the engine's
    /// own sync; files gone are forgotten.
    pub fn look(&mut self, present: &[PathBuf], sizes: &[(PathBuf, u64)]) -> Vec<Range> {
        if std::mem::take(&mut self.first_look) {
            self.finished.extend(present.iter().cloned());
            return Vec::new();
        }
        let present: std::collections::HashSet<&PathBuf> = present.iter().collect();
        self.finished.retain(|path| present.contains(path));
        self.tracked.retain(|path, _| present.contains(path));
        let mut ranges = Vec::new();
        for (path, size) in sizes {
            let tracked = self.tracked.entry(path.clone()).or_insert(Tracked {
                written_back: 0,
                size: 0,
                unchanged: 0,
            });
            if *size == tracked.size {
                tracked.unchanged += 1;
                if tracked.unchanged >= STABLE_LOOKS {
                    self.tracked.remove(path);
                    self.finished.insert(path.clone());
                }
                continue;
            }
            tracked.size = *size;
            tracked.unchanged = 0;
            let full_steps = (size.saturating_sub(tracked.written_back)) / self.step_bytes;
            for _ in 0..full_steps {
                ranges.push(Range {
                    path: path.clone(),
                    offset: tracked.written_back,
                    len: self.step_bytes,
                });
                tracked.written_back += self.step_bytes;
            }
        }
        ranges
    }
}

/// The writeback thread of one engine; stopped and joined when dropped.
pub struct Writeback {
    stop: Arc<AtomicBool>,
    /// Bytes whose writeback the thread started so far.
    started: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Writeback {
    /// Starts writing back the tables under `tables` (each a folder of table files).
    pub fn start(tables: Vec<PathBuf>, options: WritebackOptions) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicU64::new(0));
        let (stopping, counting) = (stop.clone(), started.clone());
        // The first look, here rather than on the thread: what exists when the engine opened
        // is finished, and every table written after this returns is written back.
        let mut plan = WritebackPlan::new(options.step_bytes);
        plan.look(&list(&tables), &[]);
        let thread = std::thread::Builder::new()
            .name("concord-writeback".into())
            .spawn(move || run(&tables, plan, options.interval, &stopping, &counting))
            .expect("spawning the table writeback thread");
        Self { stop, started, thread: Some(thread) }
    }

    /// Bytes whose writeback was started so far.
    pub fn bytes_started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(
    folders: &[PathBuf],
    mut plan: WritebackPlan,
    interval: Duration,
    stop: &AtomicBool,
    started: &AtomicU64,
) {
    let mut failures_logged = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let present = list(folders);
        let sizes: Vec<(PathBuf, u64)> = present
            .iter()
            .filter(|path| plan.wants(path))
            .filter_map(|path| Some((path.clone(), std::fs::metadata(path).ok()?.len())))
            .collect();
        for range in plan.look(&present, &sizes) {
            // A table may be gone already (compacted away): nothing left to write.
            let result = write_back(&range);
            if result.is_ok() {
                started.fetch_add(range.len, Ordering::Relaxed);
            }
            if let Err(e) = result
                && e.kind() != std::io::ErrorKind::NotFound
                && failures_logged < FAILURES_LOGGED_MAX
            {
                failures_logged += 1;
                tracing::warn!(path = %range.path.display(), error = %e, "table writeback failed");
            }
        }
        std::thread::sleep(interval);
    }
}

/// Every file in the folders.
fn list(folders: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for folder in folders {
        let Ok(entries) = std::fs::read_dir(folder) else { continue };
        files.extend(entries.filter_map(|entry| Some(entry.ok()?.path())));
    }
    files
}

/// Starts writing the range's dirty pages now, without waiting: `posix_fadvise(DONTNEED)`,
/// which on Linux starts writeback of the range (as `sync_file_range(WRITE)` would, and as
/// RocksDB's `bytes_per_sync` does) and then drops only the range's pages that are already
/// clean; just-written pages are dirty or under writeback, so the table stays cached.
fn write_back(range: &Range) -> std::io::Result<()> {
    let file = std::fs::File::open(&range.path)?;
    let len = std::num::NonZeroU64::new(range.len);
    rustix::fs::fadvise(&file, range.offset, len, rustix::fs::Advice::DontNeed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str) -> PathBuf {
        PathBuf::from(format!("/db/keyspaces/0/tables/{name}"))
    }

    fn range(name: &str, offset: u64, len: u64) -> Range {
        Range { path: p(name), offset, len }
    }

    /// Tables there before the first look are never looked at; a new one is written back a
    /// whole step at a time as it grows, the partial step left for the engine's own sync.
    #[test]
    fn a_growing_table_is_written_back_step_by_step() {
        let mut plan = WritebackPlan::new(100);
        assert_eq!(plan.look(&[p("1")], &[]), vec![]);
        assert!(!plan.wants(&p("1")), "there before the first look");
        let present = [p("1"), p("2")];
        assert!(plan.wants(&p("2")));
        assert_eq!(plan.look(&present, &[(p("2"), 50)]), vec![]);
        assert_eq!(
            plan.look(&present, &[(p("2"), 250)]),
            vec![range("2", 0, 100), range("2", 100, 100)]
        );
        assert_eq!(plan.look(&present, &[(p("2"), 299)]), vec![]);
        assert_eq!(plan.look(&present, &[(p("2"), 300)]), vec![range("2", 200, 100)]);
    }

    /// A file that stops growing is finished after a run of unchanged looks and never looked
    /// at again; a file that disappears (compacted away) is forgotten.
    #[test]
    fn finished_and_removed_tables_are_dropped() {
        let mut plan = WritebackPlan::new(100);
        plan.look(&[], &[]);
        let present = [p("7"), p("8")];
        plan.look(&present, &[(p("7"), 120), (p("8"), 10)]);
        for _ in 0..STABLE_LOOKS - 1 {
            assert_eq!(plan.look(&present, &[(p("7"), 120), (p("8"), 10)]), vec![]);
            assert!(plan.wants(&p("7")));
        }
        plan.look(&present, &[(p("7"), 120), (p("8"), 10)]);
        assert!(!plan.wants(&p("7")) && !plan.wants(&p("8")));
        plan.look(&[p("8")], &[]);
        assert!(plan.wants(&p("7")), "a name that is gone is forgotten");
        assert!(!plan.wants(&p("8")));
    }
}
