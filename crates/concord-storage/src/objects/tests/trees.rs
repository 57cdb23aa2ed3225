//! The anti-entropy trees the committer keeps equal the trees built from the stored data, through
//! every kind of change and a drop racing writes.

use super::*;

/// The trees the committer keeps current equal trees rebuilt from the stored data, through
/// writes, merges, bulk merges, deletes and a dropped partition, and after a reopen.
#[tokio::test]
async fn incremental_trees_match_trees_rebuilt_from_data() {
    let dir = tempfile::tempdir().unwrap();
    let open = || -> Arc<dyn Storage> {
        Arc::new(FjallStorage::open(dir.path(), &crate::FjallOptions::default()).unwrap())
    };
    let storage = open();
    let store = store_on(storage.clone());
    let in_partition = |p: u16, name: &str| ObjectKey {
        namespace: NamespaceId(1),
        partition: PartitionId(p),
        key: Key::new(name).unwrap(),
    };
    let check = |store: &ObjectStore, storage: &Arc<dyn Storage>, p: u16| {
        let kept = store.trees().get(NamespaceId(1), PartitionId(p));
        let built = crate::tree::build(&**storage, NamespaceId(1), PartitionId(p)).unwrap();
        assert_eq!(kept, built, "partition {p}");
        kept
    };
    for i in 0..200 {
        let state = store
            .update(&in_partition(i % 3, &format!("k{i}")), write(&VersionVector::new(), "a"))
            .await
            .unwrap();
        if i % 5 == 0 {
            // Overwrite with the context: a changed digest, the same key count.
            store
                .update(&in_partition(i % 3, &format!("k{i}")), write(state.context(), "b"))
                .await
                .unwrap();
        }
    }
    let other = store.get(&in_partition(0, "k0")).unwrap().unwrap();
    store
        .merge_all(
            NamespaceId(1),
            PartitionId(1),
            vec![(Key::new("bulk").unwrap(), other)],
            ConflictPolicy::Siblings,
            Durability::Sync,
        )
        .await
        .unwrap();
    let delete = Update::DeleteStored {
        actor: ActorId(2),
        timestamp: Timestamp(2),
        policy: ConflictPolicy::Siblings,
    };
    store.update(&in_partition(2, "k2"), delete).await.unwrap();
    for p in 0..3 {
        check(&store, &storage, p);
    }
    assert_eq!(check(&store, &storage, 1).keys(), 67 + 1);
    store.drop_partition(NamespaceId(1), PartitionId(2)).await.unwrap();
    assert_eq!(check(&store, &storage, 2).keys(), 0);
    let before = check(&store, &storage, 0);
    store.close().await.unwrap();
    drop(store);
    drop(storage);

    let storage = open();
    let store = store_on(storage.clone());
    assert_eq!(check(&store, &storage, 0), before, "trees are rebuilt at startup");
    store.close().await.unwrap();
}

/// Writes to a partition racing its drop: each write is either dropped from the data and the
/// tree or kept in both; the tree the committer keeps equals one built from the data. Half the
/// written keys were stored before the drop, half are new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_racing_a_drop_stay_consistent_in_data_and_tree() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> =
        Arc::new(FjallStorage::open(dir.path(), &crate::FjallOptions::default()).unwrap());
    let store = Arc::new(store_on(storage.clone()));
    for round in 0..5 {
        for i in 0..(DROP_STEP_MAX + 200) {
            let object = in_partition(7, &format!("k{i:05}"));
            store.update(&object, write(&VersionVector::new(), "old")).await.unwrap();
        }
        let mut writers = Vec::new();
        for i in 0..200 {
            let object = in_partition(7, &format!("k{:05}", (i * 13 + round) % 2400));
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                store.update(&object, write(&VersionVector::new(), "new")).await
            }));
        }
        let dropped = store.drop_partition(NamespaceId(1), PartitionId(7)).await.unwrap();
        for writer in writers {
            writer.await.unwrap().unwrap();
        }
        let kept = store.trees().get(NamespaceId(1), PartitionId(7));
        let built = crate::tree::build(&*storage, NamespaceId(1), PartitionId(7)).unwrap();
        assert_eq!(kept, built, "round {round}: the tree and the data disagree");
        let left = store.count(NamespaceId(1), PartitionId(7)).unwrap();
        println!("round {round}: dropped {dropped}, {left} written after the drop kept");
        store.drop_partition(NamespaceId(1), PartitionId(7)).await.unwrap();
        assert_eq!(store.trees().get(NamespaceId(1), PartitionId(7)).keys(), 0);
    }
    store.close().await.unwrap();
}
