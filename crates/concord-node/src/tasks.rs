//! [`BackgroundTasks`]: the node's long-running tasks (hint replay, anti-entropy, handoff,
//! tombstone purge, the last-alive record, feeding SWIM its members), and stopping them.
//!
//! Every task watches one stop signal. Shutdown raises it and waits for each task to end, up
//! to a deadline, before the node closes its storage: a task that is still running could
//! otherwise write through a committer that is closing, or call peers after the node said
//! goodbye. A task still running at the deadline is aborted, and awaited, so that when
//! [`BackgroundTasks::stop`] returns none of them runs any more (work a task handed to a
//! blocking thread cannot be aborted; the tasks here hand over only single bounded writes).

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The node's background tasks and their stop signal.
pub(crate) struct BackgroundTasks {
    stop: watch::Sender<bool>,
    /// Each task with its name, for the log when one has to be aborted.
    handles: Vec<(&'static str, JoinHandle<()>)>,
}

impl BackgroundTasks {
    pub(crate) fn new() -> Self {
        Self { stop: watch::channel(false).0, handles: Vec::new() }
    }

    /// The stop signal a task watches: it turns `true` once, at shutdown.
    pub(crate) fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Spawns `task` on the runtime and keeps its handle.
    pub(crate) fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        self.handles.push((name, tokio::spawn(task)));
    }

    /// How many tasks have not ended.
    #[cfg(test)]
    pub(crate) fn running_count(&self) -> usize {
        self.handles.iter().filter(|(_, handle)| !handle.is_finished()).count()
    }

    /// Raises the stop signal and waits until every task has ended, or `timeout` passed: the
    /// tasks still running then are aborted. Returns the names of the aborted ones. When this
    /// returns, no task runs any more.
    pub(crate) async fn stop(&mut self, timeout: Duration) -> Vec<&'static str> {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut aborted = Vec::new();
        for (name, mut handle) in self.handles.drain(..) {
            if tokio::time::timeout_at(deadline, &mut handle).await.is_err() {
                handle.abort();
                // An aborted task is gone once its handle resolves: its state is dropped.
                let _ = handle.await;
                aborted.push(name);
            }
        }
        aborted
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts itself live while a task holds it.
    struct Live(Arc<AtomicUsize>);

    impl Live {
        fn new(count: &Arc<AtomicUsize>) -> Live {
            count.fetch_add(1, Ordering::SeqCst);
            Live(count.clone())
        }
    }

    impl Drop for Live {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn tasks_that_watch_the_signal_have_ended_when_stop_returns() {
        let live = Arc::new(AtomicUsize::new(0));
        let mut tasks = BackgroundTasks::new();
        for _ in 0..3 {
            let mut stop = tasks.stop_signal();
            let guard = Live::new(&live);
            tasks.spawn("loop", async move {
                let _guard = guard;
                while !concord_replica::stopped_after(Duration::from_secs(1), &mut stop).await {}
                // Finishing its round after the signal, as a real task does.
                tokio::time::sleep(Duration::from_millis(300)).await;
            });
        }
        assert_eq!(tasks.running_count(), 3);
        let aborted = tasks.stop(Duration::from_secs(10)).await;
        assert!(aborted.is_empty(), "aborted {aborted:?}");
        assert_eq!(live.load(Ordering::SeqCst), 0, "a task still runs after stop returned");
        assert_eq!(tasks.running_count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_ignores_the_signal_is_aborted_at_the_deadline() {
        let live = Arc::new(AtomicUsize::new(0));
        let mut tasks = BackgroundTasks::new();
        let guard = Live::new(&live);
        tasks.spawn("stubborn", async move {
            let _guard = guard;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let mut stop = tasks.stop_signal();
        let guard = Live::new(&live);
        tasks.spawn("polite", async move {
            let _guard = guard;
            let _ = stop.wait_for(|stopped| *stopped).await;
        });
        let started = tokio::time::Instant::now();
        let aborted = tasks.stop(Duration::from_secs(5)).await;
        assert_eq!(aborted, vec!["stubborn"]);
        assert_eq!(started.elapsed(), Duration::from_secs(5), "stop waits for the deadline");
        assert_eq!(live.load(Ordering::SeqCst), 0, "the aborted task's state is dropped");
    }
}
