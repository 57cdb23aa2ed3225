//! The guard of the tombstone rule: a node that was down for longer than the tombstone grace
//! refuses to start.
//!
//! While the node runs it records, durably and every so often, the wall-clock time it was last
//! alive (meta space, key `alive`). Tombstones are purged once they are older than the grace and
//! every replica holds them; a node that was down meanwhile could not confirm, but it may still
//! hold values those tombstones deleted, or a data dir restored from an older copy may. Serving
//! that data would bring deleted keys back, so such a node must be removed and rebuilt instead
//! (`concord cluster remove NODE`, then a fresh join with an empty data dir). After a
//! whole-cluster outage nothing could be purged, and `anti_entropy.start_after_grace` lets the
//! nodes start.
//!
//! Time is read through the node's [`WallClock`], the same clock hints and tombstones are
//! judged by (and which fault injection can shift).

use std::sync::Arc;
use std::time::Duration;

use concord_storage::Storage;
use concord_types::WallClock;
use tokio::sync::watch;

use crate::Error;

/// When this data dir's node was last recorded alive, in wall-clock ms (`None` if never).
fn last_alive(storage: &dyn Storage) -> Result<Option<u64>, Error> {
    Ok(concord_storage::meta::last_alive(storage)?)
}

fn record_alive(storage: &dyn Storage, at_ms: u64) -> Result<(), Error> {
    Ok(concord_storage::meta::record_alive(storage, at_ms)?)
}

/// Refuses to start a node whose data dir was last alive longer than `grace` ago (unless
/// `allow`), then records it alive now.
pub fn check(
    storage: &dyn Storage,
    clock: &dyn WallClock,
    grace: Duration,
    allow: bool,
    node: &str,
) -> Result<(), Error> {
    let now = clock.now_ms();
    if let Some(last) = last_alive(storage)? {
        let down = Duration::from_millis(now.saturating_sub(last));
        if down > grace && !allow {
            return Err(Error::Startup(format!(
                "this node was last alive {}s ago, longer than anti_entropy.tombstone_grace_s \
                 ({}s): deletes it never saw may have been purged from the other replicas, and \
                 its data could bring deleted keys back. Rebuild it: run `concord cluster remove \
                 {node}` against another node, empty this data dir, and start it again with \
                 --join. Only if every node of the cluster was down together, start it with \
                 anti_entropy.start_after_grace = true",
                down.as_secs(),
                grace.as_secs()
            )));
        }
        if down > grace {
            tracing::warn!(
                down_s = down.as_secs(),
                "starting after a downtime longer than the tombstone grace \
                 (anti_entropy.start_after_grace)"
            );
        }
    }
    record_alive(storage, now)
}

/// How often the last-alive time is recorded: often enough that a node is never refused for a
/// downtime much shorter than the grace.
pub fn period(grace: Duration) -> Duration {
    (grace / 8).clamp(Duration::from_millis(250), Duration::from_secs(60))
}

/// Records the node alive every [`period`] until `stop` turns true.
pub async fn keep_alive(
    storage: Arc<dyn Storage>,
    clock: Arc<dyn WallClock>,
    grace: Duration,
    mut stop: watch::Receiver<bool>,
) {
    while !concord_replica::stopped_after(period(grace), &mut stop).await {
        let storage = storage.clone();
        let now = clock.now_ms();
        let recorded = tokio::task::spawn_blocking(move || record_alive(&*storage, now)).await;
        if let Ok(Err(e)) = recorded {
            tracing::warn!(error = %e, "recording the last-alive time failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use concord_storage::MemoryStorage;

    use super::*;

    /// A wall clock the test sets.
    struct TestClock(AtomicU64);

    impl TestClock {
        fn at(ms: u64) -> Arc<TestClock> {
            Arc::new(TestClock(AtomicU64::new(ms)))
        }

        fn advance(&self, by: Duration) {
            self.0.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
        }
    }

    impl WallClock for TestClock {
        fn now_ms(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    /// A time far from the system clock's, so a read of the system clock cannot pass.
    const START_MS: u64 = 1_000_000_000;

    #[test]
    fn a_node_down_longer_than_the_grace_is_refused_unless_allowed() {
        let storage = MemoryStorage::new();
        let clock = TestClock::at(START_MS);
        let grace = Duration::from_secs(60);
        check(&storage, &*clock, grace, false, "n1").expect("a fresh data dir starts");
        assert_eq!(last_alive(&storage).unwrap(), Some(START_MS), "recorded by the node's clock");
        clock.advance(Duration::from_secs(60));
        check(&storage, &*clock, grace, false, "n1").expect("down exactly the grace starts");

        clock.advance(Duration::from_secs(61));
        let err = check(&storage, &*clock, grace, false, "n1").unwrap_err().to_string();
        assert!(err.contains("last alive 61s ago") && err.contains("cluster remove n1"), "{err}");
        check(&storage, &*clock, grace, true, "n1").expect("allowed after a whole-cluster outage");
        check(&storage, &*clock, grace, false, "n1").expect("the allowed start recorded it alive");
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_alive_time_is_recorded_by_the_nodes_clock() {
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let clock = TestClock::at(START_MS);
        let grace = Duration::from_secs(8);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(keep_alive(storage.clone(), clock.clone(), grace, stopped));
        clock.advance(Duration::from_secs(5));
        let deadline = tokio::time::Instant::now() + 4 * period(grace);
        while last_alive(&*storage).unwrap() != Some(START_MS + 5_000) {
            assert!(tokio::time::Instant::now() < deadline, "never recorded the clock's time");
            tokio::time::sleep(period(grace) / 4).await;
        }
        stop.send(true).unwrap();
        task.await.unwrap();
    }

    #[test]
    fn the_record_period_follows_the_grace_within_bounds() {
        assert_eq!(period(Duration::from_secs(8)), Duration::from_secs(1));
        assert_eq!(period(Duration::from_secs(864_000)), Duration::from_secs(60));
        assert_eq!(period(Duration::from_millis(1)), Duration::from_millis(250));
    }
}
