//! The background lane: a few threads of low CPU priority for bulk work that no client waits
//! for (scanning and encoding handoff chunks on the source, decoding them on the receiver).
//!
//! A handoff is megabytes per second of such work on a machine that is also serving clients.
//! On tokio's blocking pool it ran at the same priority as the client path, and on a busy
//! machine every client request queued behind it: the bench's p99 during a handoff was up to 3×
//! its p99 without one. At a higher nice value the scheduler runs it in the time client work
//! leaves, so a handoff goes as fast as the machine's spare CPU allows and slows down, not the
//! clients, when there is little to spare.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// A pool of low-priority threads; dropping it lets the threads end once the queue is empty.
pub struct Background {
    queue: mpsc::Sender<Job>,
}

/// The lane's threads have stopped, or the job panicked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("background job did not complete (panicked or the lane stopped)")]
pub struct JobLost;

impl Background {
    /// Starts `threads` threads named `name`, each at nice value `nice` (0 = normal, 19 =
    /// lowest), or left where they are if they already run at that or lower priority.
    pub fn new(name: &str, threads: usize, nice: i32) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        for _ in 0..threads.max(1) {
            let jobs = jobs.clone();
            std::thread::Builder::new().name(name.to_owned()).spawn(move || {
                lower_priority(nice);
                loop {
                    let next = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok(job) = next else { return };
                    // A panicking job drops its reply sender (its caller sees `JobLost`); the
                    // thread lives on for the next one.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                }
            })?;
        }
        Ok(Self { queue })
    }

    /// Runs `work` on the lane and waits for its result without blocking the async worker.
    pub async fn run<T, F>(&self, work: F) -> Result<T, JobLost>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = reply.send(work());
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
    async fn jobs_return_their_results_and_a_panic_loses_only_its_own() {
        let lane = Background::new("test-lane", 2, 10).unwrap();
        assert_eq!(lane.run(|| 6 * 7).await, Ok(42));
        let lost = lane.run(|| -> u32 { panic!("job failed on purpose") }).await;
        assert_eq!(lost, Err(JobLost));
        // Both threads still serve: two jobs that each wait for the other need two threads.
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
