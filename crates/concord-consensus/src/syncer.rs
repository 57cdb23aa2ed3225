//! [`Syncer`]: the one node-wide thread that makes strong groups' log appends durable.
//!
//! Every group writes its appended entries without a sync and hands the append's flush
//! callback here. The syncer thread takes every callback waiting in its queue, syncs the
//! journal once ([`Storage::persist`]), then fires them all: one fsync per batch for all the
//! node's groups, however many appended (DESIGN.md §8, group commit as in §7). A callback is
//! queued only after its write, and the sync starts only after the callback was taken from the
//! queue, so every callback fires after a sync that followed its write.
//!
//! Writes that must be durable before their caller goes on (a vote) go through the same queue
//! and wait ([`Syncer::wait_durable`]), sharing the appends' fsyncs.
//!
//! The queue is bounded ([`Syncer::start`]'s `queue_max`): when it is full, callers (blocking
//! threads, never async workers) wait for room. The thread ends once every handle is dropped,
//! after firing what is queued.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use concord_storage::Storage;

use crate::ConsensusError;

/// Told whether the sync that followed the write succeeded.
pub type FlushCallback = Box<dyn FnOnce(io::Result<()>) + Send>;

/// Counters for the node's metrics: fsyncs per acknowledged write is
/// `persist_count / append_flush_count`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncerStats {
    /// Journal syncs done.
    pub persist_count: u64,
    /// Log appends made durable (callbacks fired).
    pub append_flush_count: u64,
    /// Other writes waited for (votes, installed snapshots).
    pub durable_wait_count: u64,
}

enum Job {
    AppendFlushed(FlushCallback),
    Durable(FlushCallback),
}

#[derive(Default)]
struct Counters {
    persist_count: AtomicU64,
    append_flush_count: AtomicU64,
    durable_wait_count: AtomicU64,
}

/// A handle to the node's syncer thread; clones share it.
#[derive(Clone)]
pub struct Syncer {
    queue: mpsc::SyncSender<Job>,
    counters: Arc<Counters>,
}

impl Syncer {
    /// Starts the syncer thread over `storage`, with room for `queue_max` waiting callbacks.
    pub fn start(storage: Arc<dyn Storage>, queue_max: usize) -> io::Result<Syncer> {
        let (queue, jobs) = mpsc::sync_channel(queue_max.max(1));
        let counters = Arc::new(Counters::default());
        let thread_counters = counters.clone();
        std::thread::Builder::new()
            .name("concord-syncer".into())
            .spawn(move || run(storage.as_ref(), &jobs, &thread_counters))?;
        Ok(Syncer { queue, counters })
    }

    /// Hands over the flush callback of a log append already written (without a sync). It
    /// fires after the next sync. Blocks while the queue is full: call it from a blocking
    /// thread.
    pub fn after_append(&self, callback: FlushCallback) {
        if let Err(mpsc::SendError(job)) = self.queue.send(Job::AppendFlushed(callback)) {
            fire(job, Err(ConsensusError::SyncerStopped.to_string()));
        }
    }

    /// Returns once everything written before the call is durable. Blocks: call it from a
    /// blocking thread.
    pub fn wait_durable(&self) -> Result<(), ConsensusError> {
        let (done, wait) = mpsc::sync_channel(1);
        let callback: FlushCallback = Box::new(move |result| {
            let _ = done.send(result);
        });
        self.queue.send(Job::Durable(callback)).map_err(|_| ConsensusError::SyncerStopped)?;
        match wait.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                Err(ConsensusError::Storage(concord_storage::StorageError::Engine(e.to_string())))
            }
            Err(_) => Err(ConsensusError::SyncerStopped),
        }
    }

    pub fn stats(&self) -> SyncerStats {
        SyncerStats {
            persist_count: self.counters.persist_count.load(Ordering::Relaxed),
            append_flush_count: self.counters.append_flush_count.load(Ordering::Relaxed),
            durable_wait_count: self.counters.durable_wait_count.load(Ordering::Relaxed),
        }
    }
}

/// The thread: wait for one job, take every other one waiting, sync once, fire them all.
fn run(storage: &dyn Storage, jobs: &mpsc::Receiver<Job>, counters: &Counters) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        batch.extend(jobs.try_iter());
        let result = storage.persist().map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::error!(error = %e, waiting = batch.len(), "syncing the strong groups' log failed");
        }
        counters.persist_count.fetch_add(1, Ordering::Relaxed);
        for job in batch {
            let counter = match &job {
                Job::AppendFlushed(_) => &counters.append_flush_count,
                Job::Durable(_) => &counters.durable_wait_count,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            fire(job, result.clone());
        }
    }
}

fn fire(job: Job, result: Result<(), String>) {
    let (Job::AppendFlushed(callback) | Job::Durable(callback)) = job;
    callback(result.map_err(io::Error::other));
}

#[cfg(test)]
mod tests;
