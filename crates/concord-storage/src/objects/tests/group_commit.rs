//! Group commit: writes queued behind a commit share the next one, and client and bulk batches
//! take turns; a partition drop waits in the same queue.

use std::sync::Mutex as StdMutex;
use std::sync::mpsc as std_mpsc;

use super::*;
use crate::engine::Entries;

/// Records the size of every committed batch, and its timing.
#[derive(Default)]
struct BatchSizes(StdMutex<Vec<usize>>, StdMutex<Vec<CommitTiming>>);

impl CommitObserver for BatchSizes {
    fn on_commit(&self, timing: &CommitTiming) {
        self.0.lock().unwrap().push(timing.updates);
        self.1.lock().unwrap().push(*timing);
    }
}

/// A storage whose first `holds` commits each block until the test releases them, so the test
/// can queue writes behind a commit in progress without relying on timing.
struct GatedStorage {
    inner: MemoryStorage,
    holds: StdMutex<usize>,
    entered: StdMutex<std_mpsc::Sender<()>>,
    release: StdMutex<std_mpsc::Receiver<()>>,
    /// The durability each commit asked for, in order.
    durabilities: StdMutex<Vec<Durability>>,
}

impl Storage for GatedStorage {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(space, key)
    }
    fn scan(
        &self,
        space: Space,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Entries, StorageError> {
        self.inner.scan(space, start, end, limit)
    }
    fn commit(&self, batch: Batch, durability: Durability) -> Result<(), StorageError> {
        let held = {
            let mut holds = self.holds.lock().unwrap();
            match holds.checked_sub(1) {
                Some(left) => {
                    *holds = left;
                    true
                }
                None => false,
            }
        };
        if held {
            self.entered.lock().unwrap().send(()).unwrap();
            self.release.lock().unwrap().recv().unwrap();
        }
        self.durabilities.lock().unwrap().push(durability);
        self.inner.commit(batch, durability)
    }
    fn persist(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

/// A store over [`GatedStorage`] whose first commit, one write of key "first", is in progress
/// and held until `release` is sent; `entered` hears of each later held commit.
struct HeldCommit {
    store: Arc<ObjectStore>,
    storage: Arc<GatedStorage>,
    sizes: Arc<BatchSizes>,
    first: tokio::task::JoinHandle<Result<(), StorageError>>,
    release: std_mpsc::Sender<()>,
    entered: Arc<StdMutex<std_mpsc::Receiver<()>>>,
}

async fn store_with_a_held_commit(options: ObjectStoreOptions) -> HeldCommit {
    store_with_held_commits(options, 1).await
}

/// Like [`store_with_a_held_commit`], holding the first `holds` commits.
async fn store_with_held_commits(options: ObjectStoreOptions, holds: usize) -> HeldCommit {
    let (entered_tx, entered_rx) = std_mpsc::channel();
    let (release, release_rx) = std_mpsc::channel();
    let storage = Arc::new(GatedStorage {
        inner: MemoryStorage::new(),
        holds: StdMutex::new(holds),
        entered: StdMutex::new(entered_tx),
        release: StdMutex::new(release_rx),
        durabilities: StdMutex::new(Vec::new()),
    });
    let sizes = Arc::new(BatchSizes::default());
    let store = Arc::new(ObjectStore::start(storage.clone(), options, sizes.clone()));
    let first = {
        let store = store.clone();
        tokio::spawn(async move {
            store.update(&key("first"), write(&Default::default(), "x")).await.map(|_| ())
        })
    };
    let entered = Arc::new(StdMutex::new(entered_rx));
    wait_entered(&entered).await;
    HeldCommit { store, storage, sizes, first, release, entered }
}

/// Waits until the committer is inside its next held commit.
async fn wait_entered(entered: &Arc<StdMutex<std_mpsc::Receiver<()>>>) {
    let entered = entered.clone();
    tokio::task::spawn_blocking(move || entered.lock().unwrap().recv().unwrap()).await.unwrap();
}

/// Waits until more than `queued` messages wait in the committer's inbox.
async fn wait_until_queued_past(store: &ObjectStore, queued: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.queue.max_capacity() - store.queue.capacity() <= queued {
        assert!(Instant::now() < deadline, "never queued past {queued}");
        tokio::task::yield_now().await;
    }
}

/// Writes that arrive while a commit is in progress are all committed together in the next
/// batch: one sync for all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_queued_behind_a_commit_share_the_next_one() {
    let HeldCommit { store, sizes, first, release, .. } =
        store_with_a_held_commit(Default::default()).await;

    let mut queued = Vec::new();
    for i in 0..99 {
        let store = store.clone();
        queued.push(tokio::spawn(async move {
            store.update(&key(&format!("k{i}")), write(&Default::default(), "y")).await
        }));
    }
    wait_until_queued_past(&store, 98).await;
    release.send(()).unwrap();

    first.await.unwrap().unwrap();
    for task in queued {
        task.await.unwrap().unwrap();
    }
    assert_eq!(*sizes.0.lock().unwrap(), vec![1, 99]);
}

/// A write queued behind a commit in progress reports, as its batch's queue wait, at least the
/// time it was seen waiting while that commit was held: the phase a slow write spent its time
/// in is the one the metrics name. Checked as an ordering of clock readings, not a speed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waiting_behind_a_commit_reports_its_wait_as_queue_wait() {
    let HeldCommit { store, sizes, first, release, .. } =
        store_with_a_held_commit(Default::default()).await;
    let queued = {
        let store = store.clone();
        tokio::spawn(
            async move { store.update(&key("second"), write(&Default::default(), "y")).await },
        )
    };
    wait_until_queued_past(&store, 0).await;
    let seen_queued = Instant::now();
    tokio::task::yield_now().await;
    let waited_at_least = seen_queued.elapsed();
    release.send(()).unwrap();
    first.await.unwrap().unwrap();
    queued.await.unwrap().unwrap();

    let timings = sizes.1.lock().unwrap().clone();
    assert_eq!(timings.len(), 2, "{timings:?}");
    let second = timings[1];
    assert_eq!((second.kind, second.updates, second.synced), (CommitKind::Client, 1, true));
    assert!(second.queue_wait >= waited_at_least, "{second:?} waited at least {waited_at_least:?}");
    assert_eq!(second.total(), second.queue_wait + second.apply + second.engine);
}

/// Client writes and bulk merges go in separate batches: the client writes queued among bulk
/// merges go first, together, then the bulk merges, at most `bulk_max` items a batch; every item
/// is committed in the end. A client batch is synced; a bulk batch only if one of its merges
/// asked for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_writes_and_bulk_merges_take_separate_batches() {
    let options = ObjectStoreOptions { bulk_max: 4, ..Default::default() };
    let HeldCommit { store, storage, sizes, first, release, .. } =
        store_with_a_held_commit(options).await;
    let mut tasks = vec![first];

    // Queued in this order: bulk, write, bulk, write, bulk, write, write, write.
    let remote = remote_state("remote");
    const PLAN: [&str; 8] = ["bulk", "write", "bulk", "write", "bulk", "write", "write", "write"];
    for (i, step) in PLAN.iter().enumerate() {
        let queued_before = store.queue.max_capacity() - store.queue.capacity();
        let (task_store, remote) = (store.clone(), remote.clone());
        tasks.push(tokio::spawn(async move {
            let store = task_store;
            match *step {
                "bulk" => {
                    let objects = (0..4)
                        .map(|j| (Key::new(format!("b{i}-{j}")).unwrap(), remote.clone()))
                        .collect();
                    let (ns, p, policy) =
                        (NamespaceId(1), PartitionId(0), ConflictPolicy::Siblings);
                    // The second bulk merge asks for a sync, the others do not.
                    let durability = if i == 2 { Durability::Sync } else { Durability::Buffered };
                    store.merge_all(ns, p, objects, policy, durability).await
                }
                _ => store
                    .update(&key(&format!("w{i}")), write(&Default::default(), "y"))
                    .await
                    .map(|_| ()),
            }
        }));
        wait_until_queued_past(&store, queued_before).await;
    }
    release.send(()).unwrap();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    // The first write alone; then the five writes queued behind it; then the three bulk
    // merges, one batch each, of which only the second asked for a sync.
    assert_eq!(*sizes.0.lock().unwrap(), vec![1, 5, 4, 4, 4]);
    let kinds: Vec<CommitKind> = sizes.1.lock().unwrap().iter().map(|t| t.kind).collect();
    use CommitKind::{Bulk, Client};
    assert_eq!(kinds, vec![Client, Client, Bulk, Bulk, Bulk]);
    let synced: Vec<bool> = sizes.1.lock().unwrap().iter().map(|t| t.synced).collect();
    assert_eq!(synced, vec![true, true, false, true, false]);
    use Durability::{Buffered, Sync};
    assert_eq!(*storage.durabilities.lock().unwrap(), vec![Sync, Sync, Buffered, Sync, Buffered]);
    for (i, step) in PLAN.iter().enumerate() {
        if *step == "bulk" {
            for j in 0..4 {
                let held = store.get(&key(&format!("b{i}-{j}"))).unwrap().unwrap();
                assert_eq!(values(&held), ["remote"]);
            }
        } else {
            assert_eq!(values(&store.get(&key(&format!("w{i}"))).unwrap().unwrap()), ["y"]);
        }
    }
    store.close().await.unwrap();
}

/// Bulk merges are not starved by client writes that keep arriving: while writes queue behind
/// every commit, client and bulk batches still take turns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_merges_take_turns_with_a_steady_stream_of_writes() {
    let options = ObjectStoreOptions { bulk_max: 4, ..Default::default() };
    let HeldCommit { store, sizes, first, release, entered, .. } =
        store_with_held_commits(options, 6).await;
    let mut tasks = vec![first];
    let queue = |tasks: &mut Vec<_>, name: String, bulk: bool| {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            if bulk {
                let state = store.get(&key("first")).unwrap().unwrap_or_default();
                let objects =
                    (0..4).map(|j| (Key::new(format!("{name}-{j}")).unwrap(), state.clone()));
                let (ns, p) = (NamespaceId(1), PartitionId(0));
                let policy = ConflictPolicy::Siblings;
                store.merge_all(ns, p, objects.collect(), policy, Durability::Buffered).await
            } else {
                store.update(&key(&name), write(&Default::default(), "y")).await.map(|_| ())
            }
        }));
    };
    for (name, bulk) in [("bulk-a", true), ("bulk-b", true), ("w0", false)] {
        let queued_before = store.queue.max_capacity() - store.queue.capacity();
        queue(&mut tasks, name.to_string(), bulk);
        wait_until_queued_past(&store, queued_before).await;
    }
    // Five more held commits; one more write queues behind each of the first four.
    for i in 1..=5 {
        release.send(()).unwrap();
        wait_entered(&entered).await;
        if i < 5 {
            let queued_before = store.queue.max_capacity() - store.queue.capacity();
            queue(&mut tasks, format!("w{i}"), false);
            wait_until_queued_past(&store, queued_before).await;
        }
    }
    release.send(()).unwrap();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    // first; w0; bulk-a; w1 and w2; bulk-b; w3 and w4.
    assert_eq!(*sizes.0.lock().unwrap(), vec![1, 1, 4, 2, 4, 2]);
    for name in ["bulk-a-0", "bulk-b-3", "w0", "w4"] {
        assert!(store.get(&key(name)).unwrap().is_some(), "{name} missing");
    }
    store.close().await.unwrap();
}

/// Dropping a partition goes through the committer: while the committer is held in a commit,
/// the drop waits in its queue and deletes nothing; released, it deletes the partition in
/// bounded steps (more keys than one step holds) and the tree follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_waits_for_the_committer_like_any_write() {
    let (entered_tx, entered) = std_mpsc::channel();
    let (release, release_rx) = std_mpsc::channel();
    let storage = Arc::new(GatedStorage {
        inner: MemoryStorage::new(),
        holds: StdMutex::new(0),
        entered: StdMutex::new(entered_tx),
        release: StdMutex::new(release_rx),
        durabilities: StdMutex::new(Vec::new()),
    });
    let store = Arc::new(store_on(storage.clone()));
    let keys = DROP_STEP_MAX + 100;
    let objects: Vec<(Key, DvvSet)> = {
        let first = in_partition(5, "k");
        let state = store.update(&first, write(&VersionVector::new(), "v")).await.unwrap();
        (0..keys).map(|i| (Key::new(format!("k{i:05}")).unwrap(), state.clone())).collect()
    };
    let policy = ConflictPolicy::Siblings;
    store
        .merge_all(NamespaceId(1), PartitionId(5), objects, policy, Durability::Sync)
        .await
        .unwrap();
    let stored = keys + 1;
    assert_eq!(store.count(NamespaceId(1), PartitionId(5)).unwrap(), stored);

    *storage.holds.lock().unwrap() = 1;
    let held = {
        let store = store.clone();
        tokio::spawn(
            async move { store.update(&key("held"), write(&VersionVector::new(), "x")).await },
        )
    };
    wait_entered(&Arc::new(StdMutex::new(entered))).await;
    let drop = {
        let store = store.clone();
        tokio::spawn(async move { store.drop_partition(NamespaceId(1), PartitionId(5)).await })
    };
    wait_until_queued_past(&store, 0).await;
    assert_eq!(
        store.count(NamespaceId(1), PartitionId(5)).unwrap(),
        stored,
        "deleted around the committer"
    );

    release.send(()).unwrap();
    held.await.unwrap().unwrap();
    assert_eq!(drop.await.unwrap().unwrap(), stored);
    assert!(!store.holds(NamespaceId(1), PartitionId(5)).unwrap());
    assert_eq!(store.trees().get(NamespaceId(1), PartitionId(5)).keys(), 0);
    assert!(store.get(&key("held")).unwrap().is_some(), "other partitions are left alone");
}
