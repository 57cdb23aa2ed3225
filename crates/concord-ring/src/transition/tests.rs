//! Transitions between small rings with exact expected changes, and their consistency with the
//! replica sets on random histories.

use concord_types::{NodeId, PartitionId};
use proptest::prelude::*;

use crate::{PartitionChange, PartitionCount, Ring, RingError, changes};

fn ids(names: &[&str]) -> Vec<NodeId> {
    names.iter().map(|name| NodeId::new(*name).unwrap()).collect()
}

fn change(partition: u16, gained: &[&str], lost: &[&str]) -> PartitionChange {
    PartitionChange { partition: PartitionId(partition), gained: ids(gained), lost: ids(lost) }
}

fn q8() -> PartitionCount {
    PartitionCount::new(8).unwrap()
}

/// c joins a, b (lists in `ring::tests`). For one replica, c takes the primaries of partitions 4
/// (from a) and 6 (from b). For two, five partitions move one replica each to c; the other three
/// keep their pair although the order may change.
#[test]
fn join_moves_each_changed_partition_to_the_joiner() {
    let ab = Ring::new(q8(), &ids(&["a", "b"])).unwrap();
    let abc = ab.rebalance(&ids(&["a", "b", "c"])).unwrap();
    assert_eq!(
        changes(&ab, &abc, 1).unwrap(),
        [change(4, &["c"], &["a"]), change(6, &["c"], &["b"])]
    );
    assert_eq!(
        changes(&ab, &abc, 2).unwrap(),
        [
            change(0, &["c"], &["a"]),
            change(3, &["c"], &["b"]),
            change(4, &["c"], &["b"]),
            change(5, &["c"], &["a"]),
            change(6, &["c"], &["a"]),
        ]
    );
    // Three replicas of two-node lists: c is new everywhere, nobody loses anything.
    let all = changes(&ab, &abc, 3).unwrap();
    assert_eq!(all.len(), 8);
    assert!(all.iter().all(|c| c.gained == ids(&["c"]) && c.lost.is_empty()));
}

/// b leaves a, b, c: every partition b held loses it, and gains exactly one node where the
/// remaining members are enough to fill the replica set.
#[test]
fn leave_replaces_the_leaver_once_per_partition() {
    let abc = Ring::new(q8(), &ids(&["a", "b", "c"])).unwrap();
    let ac = abc.rebalance(&ids(&["a", "c"])).unwrap();
    assert_eq!(
        changes(&abc, &ac, 1).unwrap(),
        [change(0, &["c"], &["b"]), change(2, &["a"], &["b"]), change(5, &["c"], &["b"])]
    );
    assert_eq!(changes(&abc, &ac, 2).unwrap().len(), 6);
    let whole = changes(&abc, &ac, 3).unwrap();
    assert_eq!(whole.len(), 8);
    assert!(whole.iter().all(|c| c.gained.is_empty() && c.lost == ids(&["b"])));
}

#[test]
fn no_change_between_equal_rings_or_for_no_replicas() {
    let ring = Ring::new(q8(), &ids(&["a", "b", "c"])).unwrap();
    let other = ring.rebalance(&ids(&["a", "b", "c", "d"])).unwrap();
    assert!(changes(&ring, &ring, 3).unwrap().is_empty());
    assert!(changes(&ring, &other, 0).unwrap().is_empty());
}

#[test]
fn rings_of_different_partition_counts_cannot_be_compared() {
    let small = Ring::new(q8(), &ids(&["a"])).unwrap();
    let large = Ring::new(PartitionCount::new(16).unwrap(), &ids(&["a"])).unwrap();
    assert_eq!(
        changes(&small, &large, 1),
        Err(RingError::PartitionCountMismatch { from: 8, to: 16 })
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// For any two rings of a history and any replica count, old replicas plus gained minus
    /// lost are the new replicas, gained and lost are disjoint from what stays, and unchanged
    /// partitions are left out.
    #[test]
    fn changes_turn_old_replica_sets_into_new_ones(
        partitions in prop::sample::select(vec![8u16, 16, 64]),
        before in prop::sample::subsequence((0..10).collect::<Vec<_>>(), 1..=9),
        after in prop::sample::subsequence((0..10).collect::<Vec<_>>(), 1..=9),
        n in 0..=8usize,
    ) {
        let name = |i: &usize| NodeId::new(format!("n{i}")).unwrap();
        let q = PartitionCount::new(partitions).unwrap();
        let from = Ring::new(q, &before.iter().map(name).collect::<Vec<_>>()).unwrap();
        // Rings after a change that keeps nobody cannot be made; start from the union instead.
        let union: Vec<NodeId> = before.iter().chain(&after).map(name).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        let to = from.rebalance(&union).unwrap().rebalance(&after.iter().map(name).collect::<Vec<_>>()).unwrap();
        let list = changes(&from, &to, n).unwrap();
        let mut listed = list.iter().map(|c| c.partition).peekable();
        for p in q.all() {
            let (old, new) = (from.replicas(p, n), to.replicas(p, n));
            let Some(c) = list.iter().find(|c| c.partition == p) else {
                let (mut a, mut b) = (old.to_vec(), new.to_vec());
                a.sort();
                b.sort();
                prop_assert_eq!(a, b);
                continue;
            };
            prop_assert_eq!(listed.next(), Some(p), "partition order");
            let mut rebuilt: Vec<NodeId> =
                old.iter().filter(|x| !c.lost.contains(x)).chain(&c.gained).cloned().collect();
            let mut expected = new.to_vec();
            rebuilt.sort();
            expected.sort();
            prop_assert_eq!(rebuilt, expected);
            prop_assert!(c.gained.iter().all(|x| !old.contains(x)));
            prop_assert!(c.lost.iter().all(|x| !new.contains(x)));
            prop_assert!(!c.gained.is_empty() || !c.lost.is_empty());
        }
    }
}
