//! The background lane: a few threads of low CPU priority for bulk work that no client waits
//! for (scanning and encoding handoff chunks on the source, decoding them on the receiver,
//! anti-entropy and listing scans).
//!
//! A handoff is megabytes per second of such work on a machine that is also serving clients.
//! On tokio's blocking pool it ran at the same priority as the client path, and on a busy
//! machine every client request queued behind it: the bench's p99 during a handoff was up to 3×
//! its p99 without one. At a higher nice value the scheduler runs it in the time client work
//! leaves, so a handoff goes as fast as the machine's spare CPU allows and slows down, not the
//! clients, when there is little to spare.
//!
//! The lane holds at most a fixed number of jobs, queued or running (invariant 5). A caller
//! beyond that waits, asynchronously, for room: every job is work its caller needs done (a
//! peer's chunk, a listing page), its caller's own deadline bounds the wait, and a "busy" error
//! would only make the caller retry the same work later. A job whose caller gave up before it
//! started is skipped.
//!
//! A panicking job is a bug. The server's panic hook aborts the process on any panic (see
//! `concord::main`), so the lane does not try to catch one: a catch here would never run.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Semaphore, oneshot};

type Job = Box<dyn FnOnce() + Send>;

/// Most jobs queued or running on a lane made by [`Background::new`]. A job holds at most one
/// handoff chunk (up to a frame, 16 MiB) or one scan's results, so this bounds the lane's memory
/// to a few hundred MiB at worst, and it is twice what a node's own handoff streams, its
/// anti-entropy exchange and a handful of peers' requests ask of it at once.
pub const JOBS_MAX: usize = 16;

/// A pool of low-priority threads; dropping it lets the threads end once the queue is empty.
pub struct Background {
    queue: mpsc::Sender<Job>,
    /// One permit per job the lane may still take; a job holds its permit until it has run.
    room: Arc<Semaphore>,
    bound: usize,
}

/// The lane's threads have stopped, or the job panicked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("background job did not complete (panicked or the lane stopped)")]
pub struct JobLost;

impl Background {
    /// Starts `threads` threads named `name`, each at nice value `nice` (0 = normal, 19 =
    /// lowest), or left where they are if they already run at that or lower priority. Holds at
    /// most [`JOBS_MAX`] jobs.
    pub fn new(name: &str, threads: usize, nice: i32) -> std::io::Result<Self> {
        Self::with_bound(name, threads, nice, JOBS_MAX)
    }

    /// Like [`Background::new`], holding at most `bound` jobs (at least 1), queued or running.
    pub fn with_bound(
        name: &str,
        threads: usize,
        nice: i32,
        bound: usize,
    ) -> std::io::Result<Self> {
        let bound = bound.max(1);
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        for _ in 0..threads.max(1) {
            let jobs = jobs.clone();
            std::thread::Builder::new().name(name.to_owned()).spawn(move || {
                lower_priority(nice);
                loop {
                    let next = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok(job) = next else { return };
                    job();
                }
            })?;
        }
        Ok(Self { queue, room: Arc::new(Semaphore::new(bound)), bound })
    }

    /// Jobs queued or running now.
    pub fn held(&self) -> usize {
        self.bound - self.room.available_permits()
    }

    /// Runs `work` on the lane and waits for its result without blocking the async worker;
    /// waits first for room if the lane holds its bound of jobs.
    pub async fn run<T, F>(&self, work: F) -> Result<T, JobLost>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = self.room.clone().acquire_owned().await.map_err(|_| JobLost)?;
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The caller gave up (its request timed out): nobody needs the work.
            if reply.is_closed() {
                return;
            }
            let result = work();
            drop(permit);
            let _ = reply.send(result);
        });
        self.queue.send(job).map_err(|_| JobLost)?;
        answer.await.map_err(|_| JobLost)
    }
}

/// Raises the calling thread's nice value to `nice` (Linux keeps one per thread); never
/// lowers it.
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        let me = Some(rustix::thread::gettid());
        let current = rustix::process::getpriority_process(me).unwrap_or(0);
        if nice > current
            && let Err(e) = rustix::process::setpriority_process(me, nice)
        {
            tracing::warn!(nice, error = %e, "could not lower the background lane's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_return_their_results_and_run_side_by_side() {
        let lane = Background::new("test-lane", 2, 10).unwrap();
        assert_eq!(lane.run(|| 6 * 7).await, Ok(42));
        // Both threads serve: two jobs that each wait for the other need two threads.
        let (a_tx, a_rx) = std::sync::mpsc::channel::<()>();
        let (b_tx, b_rx) = std::sync::mpsc::channel::<()>();
        let first = lane.run(move || {
            a_tx.send(()).unwrap();
            b_rx.recv().is_ok()
        });
        let second = lane.run(move || {
            b_tx.send(()).unwrap();
            a_rx.recv().is_ok()
        });
        let both = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            tokio::join!(first, second)
        });
        assert_eq!(both.await.expect("the two jobs ran one at a time"), (Ok(true), Ok(true)));
    }

    /// Without the server's aborting panic hook (in tests), a panicking job's caller hears
    /// that it was lost instead of waiting forever.
    #[tokio::test]
    async fn a_panicking_job_is_lost_to_its_caller() {
        let lane = Background::new("test-lane", 1, 10).unwrap();
        let lost = lane.run(|| -> u32 { panic!("job failed on purpose") }).await;
        assert_eq!(lost, Err(JobLost));
        held_becomes(&lane, 0).await;
    }

    /// A lane of one thread bounded to 2 jobs: while a job runs and one waits, a third caller
    /// waits for room and its job is not queued; once the first finishes, it gets in and all
    /// three complete.
    #[tokio::test]
    async fn the_lane_holds_at_most_its_bound_of_jobs() {
        let lane = Arc::new(Background::with_bound("test-lane", 1, 10, 2).unwrap());
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = std::sync::mpsc::channel::<u32>();
        let submit = |i: u32, gate: Option<std::sync::mpsc::Receiver<()>>| {
            let (lane, started_tx) = (lane.clone(), started_tx.clone());
            tokio::spawn(async move {
                lane.run(move || {
                    started_tx.send(i).unwrap();
                    if let Some(gate) = gate {
                        gate.recv().unwrap();
                    }
                    i
                })
                .await
            })
        };
        let first = submit(1, Some(gate));
        held_becomes(&lane, 1).await;
        let second = submit(2, None);
        held_becomes(&lane, 2).await;
        let third = submit(3, None);
        // The third caller runs until it waits for room; give it every chance to get in.
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert_eq!(lane.held(), 2, "a third job got past the bound");
        assert!(!third.is_finished());
        release.send(()).unwrap();
        let results = (first.await.unwrap(), second.await.unwrap(), third.await.unwrap());
        assert_eq!(results, (Ok(1), Ok(2), Ok(3)));
        held_becomes(&lane, 0).await;
        let order: Vec<u32> = started.try_iter().collect();
        assert_eq!(order, [1, 2, 3]);
    }

    /// Waits, up to a deadline, until `lane` holds `jobs` jobs.
    async fn held_becomes(lane: &Background, jobs: usize) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while lane.held() != jobs {
            assert!(tokio::time::Instant::now() < deadline, "the lane never held {jobs} jobs");
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_lane_runs_at_the_nice_value_it_was_given() {
        let lane = Background::new("test-lane", 1, 7).unwrap();
        let own = || rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        let base = own();
        let nice = lane.run(own).await.unwrap();
        assert_eq!(nice, base.max(7));
    }
}
