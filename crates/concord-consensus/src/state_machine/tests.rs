//! The state machine over real storage: batches that touch a key twice, the applied state and
//! records surviving a reopen of the fjall database, snapshots replacing a group's records
//! exactly (and only that group's), and a bad snapshot refused without a change.

use concord_storage::{FjallOptions, FjallStorage, MemoryStorage};
use openraft::{CommittedLeaderId, Membership};

use super::*;
use crate::{Change, DeleteCondition, PutCondition, Value};

const GROUP: GroupId = concord_types::PartitionId(3);

fn log_id(index: u64) -> LogId<RaftId> {
    LogId { leader_id: CommittedLeaderId::new(1, 1), index }
}

fn key(name: &str) -> Key {
    Key::new(name.as_bytes().to_vec()).unwrap()
}

fn put(index: u64, name: &str, text: &str) -> Entry<TypeConfig> {
    let value = Value::new(text.as_bytes().to_vec(), "text/plain".into()).unwrap();
    let command = crate::Command::Put {
        namespace: NamespaceId(1),
        key: key(name),
        value,
        condition: PutCondition::None,
    };
    Entry { log_id: log_id(index), payload: EntryPayload::Normal(command) }
}

fn delete(index: u64, name: &str, condition: DeleteCondition) -> Entry<TypeConfig> {
    let command = crate::Command::Delete { namespace: NamespaceId(1), key: key(name), condition };
    Entry { log_id: log_id(index), payload: EntryPayload::Normal(command) }
}

fn open(group: GroupId, storage: &Arc<dyn Storage>) -> GroupStateMachine {
    let syncer = Syncer::start(storage.clone(), 8).unwrap();
    GroupStateMachine::open(group, storage.clone(), syncer).unwrap()
}

fn memory() -> Arc<dyn Storage> {
    Arc::new(MemoryStorage::new())
}

/// Every record of a group, as (key, value text, create, mod, version).
fn contents(sm: &GroupStateMachine) -> Vec<(String, String, u64, u64, u64)> {
    let records = sm.inner.scan_records().unwrap();
    records
        .into_iter()
        .map(|r| {
            let name = String::from_utf8(r.key.into_bytes()).unwrap();
            let text = String::from_utf8(r.record.value.data().to_vec()).unwrap();
            (name, text, r.record.create_revision, r.record.mod_revision, r.record.version)
        })
        .collect()
}

fn row(
    name: &str,
    text: &str,
    create: u64,
    modified: u64,
    version: u64,
) -> (String, String, u64, u64, u64) {
    (name.into(), text.into(), create, modified, version)
}

#[tokio::test]
async fn a_batch_that_writes_a_key_twice_reads_its_own_writes() {
    let storage = memory();
    let mut sm = open(GROUP, &storage);
    let entries = vec![
        Entry { log_id: log_id(1), payload: EntryPayload::Blank },
        put(2, "a", "one"),
        put(3, "a", "two"),
        delete(4, "a", DeleteCondition::IfMatch(3)),
        put(5, "a", "three"),
        put(6, "b", "x"),
        delete(7, "b", DeleteCondition::IfMatch(2)),
    ];
    let responses = sm.apply(entries).await.unwrap();
    assert_eq!(responses[0], Response::NotACommand);
    assert!(
        matches!(&responses[2], Response::Applied { change: Change::Written(r), revision: 3 } if r.version == 2)
    );
    assert_eq!(
        responses[3],
        Response::Applied { change: Change::Deleted { existed: true }, revision: 4 }
    );
    assert_eq!(responses[6], Response::PreconditionFailed { current_mod_revision: Some(6) });
    assert_eq!(contents(&sm), vec![row("a", "three", 5, 5, 1), row("b", "x", 6, 6, 1)]);
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(7)));
    assert_eq!(sm.applied_index(), 7);
}

/// Records and the applied state are written with each batch: a reopened database shows them.
#[tokio::test]
async fn the_applied_state_and_records_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let membership = Membership::new(vec![[1u64, 2, 3].into()], None);
    {
        let storage: Arc<dyn Storage> =
            Arc::new(FjallStorage::open(dir.path(), &FjallOptions::default()).unwrap());
        let mut sm = open(GROUP, &storage);
        let entries = vec![
            Entry { log_id: log_id(1), payload: EntryPayload::Membership(membership.clone()) },
            put(2, "a", "one"),
            put(3, "b", "two"),
        ];
        sm.apply(entries).await.unwrap();
        sm.apply(vec![put(4, "a", "uno")]).await.unwrap();
        storage.persist().unwrap();
    }
    let storage: Arc<dyn Storage> =
        Arc::new(FjallStorage::open(dir.path(), &FjallOptions::default()).unwrap());
    let mut sm = open(GROUP, &storage);
    let (applied, stored_membership) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(4)));
    assert_eq!(stored_membership, StoredMembership::new(Some(log_id(1)), membership));
    assert_eq!(contents(&sm), vec![row("a", "uno", 2, 4, 2), row("b", "two", 3, 3, 1)]);
    let record = sm.read(NamespaceId(1), &key("a")).unwrap().unwrap();
    assert_eq!(record.mod_revision, 4);
}

/// A snapshot of group 3 on one node installed on another node's group 3 leaves exactly the
/// snapshot's records (a key the follower held and the leader deleted is gone), its applied
/// state, and every other group on the follower untouched.
#[tokio::test]
async fn an_installed_snapshot_replaces_the_groups_records_exactly() {
    let (leader_storage, follower_storage) = (memory(), memory());
    let mut leader = open(GROUP, &leader_storage);
    leader
        .apply(vec![
            put(1, "a", "1"),
            put(2, "b", "2"),
            delete(3, "a", DeleteCondition::None),
            put(4, "c", "4"),
        ])
        .await
        .unwrap();
    let mut follower = open(GROUP, &follower_storage);
    follower.apply(vec![put(1, "a", "1"), put(2, "z", "stale")]).await.unwrap();
    let mut neighbour = open(concord_types::PartitionId(4), &follower_storage);
    neighbour.apply(vec![put(1, "a", "neighbour")]).await.unwrap();

    let snapshot =
        leader.get_current_snapshot().await.unwrap().expect("the leader applied entries");
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(4)));
    follower.install_snapshot(&snapshot.meta, snapshot.snapshot).await.unwrap();

    assert_eq!(contents(&follower), vec![row("b", "2", 2, 2, 1), row("c", "4", 4, 4, 1)]);
    assert_eq!(follower.applied_state().await.unwrap(), leader.applied_state().await.unwrap());
    let current = follower.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta.last_log_id, Some(log_id(4)));
    assert_eq!(contents(&neighbour), vec![row("a", "neighbour", 1, 1, 1)]);
    // The follower goes on applying after the snapshot.
    follower.apply(vec![put(5, "b", "5")]).await.unwrap();
    assert_eq!(contents(&follower)[0], row("b", "5", 2, 5, 2));
}

#[tokio::test]
async fn a_bad_snapshot_is_refused_and_changes_nothing() {
    let storage = memory();
    let mut sm = open(GROUP, &storage);
    sm.apply(vec![put(1, "a", "1")]).await.unwrap();
    let mut other = open(concord_types::PartitionId(9), &memory());
    other.apply(vec![put(1, "x", "1"), put(2, "y", "2")]).await.unwrap();
    let good = other.get_current_snapshot().await.unwrap().unwrap();

    let mut truncated = good.snapshot.get_ref().clone();
    truncated.pop();
    let error =
        sm.install_snapshot(&good.meta, Box::new(Cursor::new(truncated))).await.unwrap_err();
    assert!(error.to_string().contains("snapshot"), "{error}");
    // Metadata that ends before a record's revision: the records cannot be that state.
    let mut early = good.meta.clone();
    early.last_log_id = Some(log_id(1));
    let error = sm
        .install_snapshot(&early, Box::new(Cursor::new(good.snapshot.get_ref().clone())))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("written at 2"), "{error}");

    assert_eq!(contents(&sm), vec![row("a", "1", 1, 1, 1)]);
    assert_eq!(sm.applied_index(), 1);
}

#[tokio::test]
async fn a_group_with_nothing_applied_has_no_snapshot() {
    let mut sm = open(GROUP, &memory());
    assert!(sm.get_current_snapshot().await.unwrap().is_none());
}

/// One generated entry: a put or a delete of one of four keys, possibly conditional on the
/// key's mod revision being `target` (small numbers, so hits happen).
fn arbitrary_entry(index: u64, choice: (u8, u8, Option<u64>)) -> Entry<TypeConfig> {
    let (kind, key_index, target) = choice;
    let name = format!("k{}", key_index % 4);
    match kind % 3 {
        0 => put(index, &name, &format!("v{index}")),
        1 => {
            let value = Value::new(vec![kind], "t".into()).unwrap();
            let condition = target.map_or(PutCondition::CreateOnly, PutCondition::IfMatch);
            let command = crate::Command::Put {
                namespace: NamespaceId(1),
                key: key(&name),
                value,
                condition,
            };
            Entry { log_id: log_id(index), payload: EntryPayload::Normal(command) }
        }
        _ => delete(index, &name, target.map_or(DeleteCondition::None, DeleteCondition::IfMatch)),
    }
}

/// The records the pure apply gives for `entries`, in key order.
fn expected_records(entries: &[Entry<TypeConfig>]) -> Vec<(String, String, u64, u64, u64)> {
    let mut records: BTreeMap<String, Record> = BTreeMap::new();
    for entry in entries {
        let EntryPayload::Normal(command) = &entry.payload else { continue };
        let name = String::from_utf8(command.key().as_bytes().to_vec()).unwrap();
        match apply(records.get(&name), command, entry.log_id.index).effect {
            Effect::Unchanged => {}
            Effect::Write(record) => {
                records.insert(name, record);
            }
            Effect::Remove => {
                records.remove(&name);
            }
        }
    }
    records
        .into_iter()
        .map(|(name, r)| {
            let text = String::from_utf8_lossy(r.value.data()).into_owned();
            (name, text, r.create_revision, r.mod_revision, r.version)
        })
        .collect()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Random entries applied in random batches on one node, and on a second node that installs
    /// the first's snapshot taken at a random point and applies the rest: both end with the
    /// records the pure apply gives, and with the same applied state.
    #[test]
    fn batches_and_a_snapshot_in_the_middle_give_the_pure_apply_records(
        choices in proptest::collection::vec((0u8..6, 0u8..4, proptest::option::of(0u64..12)), 1..60),
        batch_sizes in proptest::collection::vec(1usize..8, 60),
        snapshot_at in 0usize..60,
    ) {
        let entries: Vec<_> =
            choices.into_iter().enumerate().map(|(i, c)| arbitrary_entry(i as u64 + 1, c)).collect();
        let snapshot_at = snapshot_at.min(entries.len());
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let mut first = open(GROUP, &memory());
            let mut second = open(GROUP, &memory());
            let (mut applied, mut sizes) = (0, batch_sizes.iter().cycle());
            while applied < entries.len() {
                let end = if applied < snapshot_at {
                    (applied + sizes.next().unwrap()).min(snapshot_at)
                } else {
                    (applied + sizes.next().unwrap()).min(entries.len())
                };
                first.apply(entries[applied..end].to_vec()).await.unwrap();
                if applied >= snapshot_at {
                    second.apply(entries[applied..end].to_vec()).await.unwrap();
                }
                applied = end;
                if applied == snapshot_at && snapshot_at > 0 {
                    let snapshot = first.get_current_snapshot().await.unwrap().unwrap();
                    second.install_snapshot(&snapshot.meta, snapshot.snapshot).await.unwrap();
                }
            }
            let expected = expected_records(&entries);
            assert_eq!(contents(&first), expected);
            assert_eq!(contents(&second), expected);
            assert_eq!(first.applied_state().await.unwrap(), second.applied_state().await.unwrap());
        });
    }
}
