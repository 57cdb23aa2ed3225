//! Small rings with exact expected lists, accessors, errors and the stored form.
//!
//! The exact lists pin the claim algorithm: a change to it shows up here first, and the comments
//! say why each list is what it is. Q = 8 throughout, so a list fits on a line.

use concord_types::{NodeId, PartitionId};

use crate::{MEMBERS_MAX, PartitionCount, Ring, RingError};

fn ids(names: &[&str]) -> Vec<NodeId> {
    names.iter().map(|name| NodeId::new(*name).unwrap()).collect()
}

fn q8() -> PartitionCount {
    PartitionCount::new(8).unwrap()
}

fn lists(ring: &Ring) -> Vec<Vec<&str>> {
    let list = |p| ring.preference_list(p).iter().map(NodeId::as_str).collect();
    ring.partitions().all().map(list).collect()
}

#[test]
fn one_member_holds_every_partition() {
    let ring = Ring::new(q8(), &ids(&["a"])).unwrap();
    assert_eq!(ring.width(), 1);
    assert_eq!(lists(&ring), vec![vec!["a"]; 8]);
    assert_eq!(ring.primary_count(&ids(&["a"])[0]), 8);
    assert!(ring.fallbacks(PartitionId(3)).is_empty());
}

/// Joining b to a: b takes exactly half the primaries, and every list grows to hold both.
/// Joining c: c is primary of ⌊8/3⌋ = 2 (taken one each from a and b, which had 4), a and b keep
/// 3; c holds 5 of the 16 prefix-2 places and every list ends with all three nodes. Every prefix
/// of every list gained at most c.
#[test]
fn second_and_third_member_claim_exactly() {
    let ab = Ring::new(q8(), &ids(&["a"])).unwrap().rebalance(&ids(&["a", "b"])).unwrap();
    #[rustfmt::skip]
    assert_eq!(lists(&ab), vec![
        vec!["b", "a"], vec!["a", "b"], vec!["b", "a"], vec!["a", "b"],
        vec!["a", "b"], vec!["b", "a"], vec!["b", "a"], vec!["a", "b"],
    ]);
    let abc = ab.rebalance(&ids(&["a", "b", "c"])).unwrap();
    #[rustfmt::skip]
    assert_eq!(lists(&abc), vec![
        vec!["b", "c", "a"], vec!["a", "b", "c"], vec!["b", "a", "c"], vec!["a", "c", "b"],
        vec!["c", "a", "b"], vec!["b", "c", "a"], vec!["c", "b", "a"], vec!["a", "b", "c"],
    ]);
    let primaries: Vec<usize> = abc.members().iter().map(|x| abc.primary_count(x)).collect();
    assert_eq!(primaries, [3, 3, 2]);
    let second: Vec<usize> = abc.members().iter().map(|x| abc.replica_count(x, 2)).collect();
    assert_eq!(second, [5, 6, 5]);
}

/// b leaves a, b, c: its three primaries go to the least loaded (c, a, c: 4 each after), every
/// list just closes up over b, and lists that did not hold b in a prefix keep that prefix.
#[test]
fn leave_fills_only_the_leavers_places() {
    let abc = Ring::new(q8(), &ids(&["a", "b", "c"])).unwrap();
    let ac = abc.rebalance(&ids(&["a", "c"])).unwrap();
    #[rustfmt::skip]
    assert_eq!(lists(&ac), vec![
        vec!["c", "a"], vec!["a", "c"], vec!["a", "c"], vec!["a", "c"],
        vec!["c", "a"], vec!["c", "a"], vec!["c", "a"], vec!["a", "c"],
    ]);
    assert_eq!(ac.primary_count(&ids(&["a"])[0]), 4);
}

/// d joins a, b, c, then b leaves. In partition 5, `b c a d` becomes `c d a`: d moves up two
/// places and a stays, which prefix 2 needs (d is short there) and the rules allow (a node may
/// only move earlier on a leave, and a does not move).
#[test]
fn leave_may_promote_from_deeper_in_the_list() {
    let abcd = Ring::new(q8(), &ids(&["a", "b", "c", "d"])).unwrap();
    #[rustfmt::skip]
    assert_eq!(lists(&abcd), vec![
        vec!["b", "d", "c", "a"], vec!["d", "a", "b", "c"], vec!["d", "b", "a", "c"],
        vec!["a", "c", "d", "b"], vec!["c", "a", "d", "b"], vec!["b", "c", "a", "d"],
        vec!["c", "d", "b", "a"], vec!["a", "b", "c", "d"],
    ]);
    let acd = abcd.rebalance(&ids(&["a", "c", "d"])).unwrap();
    #[rustfmt::skip]
    assert_eq!(lists(&acd), vec![
        vec!["d", "c", "a"], vec!["d", "a", "c"], vec!["d", "a", "c"], vec!["a", "c", "d"],
        vec!["c", "a", "d"], vec!["c", "d", "a"], vec!["c", "d", "a"], vec!["a", "c", "d"],
    ]);
}

/// With 9 members lists are full (7 wide) and Q = 8 < 9, so one member is primary of nothing.
/// When n9 leaves, a list that held it closes up and takes the outsider at its end: partition 0
/// `n1 n5 n2 n9 n7 n8 n3` becomes `n1 n5 n2 n7 n8 n3 n4`. A list without n9 is unchanged.
#[test]
fn full_lists_take_an_outsider_when_a_member_leaves() {
    let nine: Vec<NodeId> = (1..=9).map(|i| NodeId::new(format!("n{i}")).unwrap()).collect();
    let ring = Ring::new(q8(), &nine).unwrap();
    assert_eq!(ring.width(), 7);
    assert_eq!(lists(&ring)[0], ["n1", "n5", "n2", "n9", "n7", "n8", "n3"]);
    assert_eq!(lists(&ring)[1], ["n4", "n7", "n8", "n2", "n3", "n6", "n5"]);
    assert_eq!(ring.members().iter().filter(|x| ring.primary_count(x) == 0).count(), 1);
    let eight = ring.rebalance(&nine[..8]).unwrap();
    assert_eq!(lists(&eight)[0], ["n1", "n5", "n2", "n7", "n8", "n3", "n4"]);
    assert_eq!(lists(&eight)[1], lists(&ring)[1]);
}

#[test]
fn new_is_joining_one_at_a_time_in_sorted_order() {
    let shuffled = ids(&["c", "e", "a", "d", "b"]);
    let ring = Ring::new(q8(), &shuffled).unwrap();
    let mut stepwise = Ring::new(q8(), &ids(&["a"])).unwrap();
    for members in
        [&["a", "b"][..], &["a", "b", "c"], &["a", "b", "c", "d"], &["a", "b", "c", "d", "e"]]
    {
        stepwise = stepwise.rebalance(&ids(members)).unwrap();
    }
    assert_eq!(ring, stepwise);
    assert_eq!(ring.members(), ids(&["a", "b", "c", "d", "e"]));
}

#[test]
fn rebalance_to_the_same_members_changes_nothing() {
    let ring = Ring::new(q8(), &ids(&["a", "b", "c"])).unwrap();
    assert_eq!(ring.rebalance(&ids(&["c", "a", "b"])).unwrap(), ring);
}

#[test]
fn bad_memberships_are_refused() {
    let ring = Ring::new(q8(), &ids(&["a", "b"])).unwrap();
    assert_eq!(Ring::new(q8(), &[]), Err(RingError::NoMembers));
    assert_eq!(ring.rebalance(&[]), Err(RingError::NoMembers));
    assert_eq!(
        Ring::new(q8(), &ids(&["a", "b", "a"])),
        Err(RingError::DuplicateMember(ids(&["a"])[0].clone()))
    );
    assert_eq!(ring.rebalance(&ids(&["c", "d"])), Err(RingError::NoSurvivingMember));
    let crowd: Vec<NodeId> =
        (0..=MEMBERS_MAX).map(|i| NodeId::new(format!("n{i}")).unwrap()).collect();
    assert_eq!(
        Ring::new(q8(), &crowd),
        Err(RingError::TooManyMembers { count: MEMBERS_MAX + 1, max: MEMBERS_MAX })
    );
}

#[test]
fn replicas_are_a_prefix_clamped_to_the_width() {
    let ring = Ring::new(q8(), &ids(&["a", "b", "c"])).unwrap();
    let p = PartitionId(0);
    assert_eq!(ring.replicas(p, 0), &[] as &[NodeId]);
    assert_eq!(ring.replicas(p, 2), &ring.preference_list(p)[..2]);
    assert_eq!(ring.replicas(p, 5), ring.preference_list(p));
}

#[test]
fn position_and_partitions_of_agree() {
    let ring = Ring::new(q8(), &ids(&["a", "b", "c", "d"])).unwrap();
    let b = &ids(&["b"])[0];
    for n in 1..=4 {
        let held: Vec<PartitionId> = ring
            .partitions()
            .all()
            .filter(|&p| ring.position(p, b).is_some_and(|at| at < n))
            .collect();
        assert_eq!(ring.partitions_of(b, n), held);
        assert_eq!(ring.replica_count(b, n), held.len());
    }
    assert_eq!(ring.position(PartitionId(0), b), Some(0));
    assert_eq!(ring.position(PartitionId(0), &ids(&["z"])[0]), None);
    let total: usize = ring.members().iter().map(|x| ring.primary_count(x)).sum();
    assert_eq!(total, 8);
}

/// Fallbacks are the members outside the list, starting from the member at index p mod m.
#[test]
fn fallbacks_are_the_other_members_rotated_by_partition() {
    let names = ids(&["a", "b", "c", "d", "e", "f", "g", "h", "i"]);
    let ring = Ring::new(q8(), &names).unwrap();
    for p in ring.partitions().all() {
        let list = ring.preference_list(p);
        let expected: Vec<&NodeId> = (0..names.len())
            .map(|i| &names[(usize::from(p.0) + i) % names.len()])
            .filter(|x| !list.contains(x))
            .collect();
        assert_eq!(ring.fallbacks(p), expected);
        assert_eq!(expected.len(), 2);
    }
}

#[test]
#[should_panic(expected = "out of range")]
fn a_partition_beyond_q_is_a_bug() {
    Ring::new(q8(), &ids(&["a"])).unwrap().preference_list(PartitionId(8));
}

/// The stored form names everything, so a reader can check it, and reads back equal.
#[test]
fn stored_form_round_trips() {
    let ab = Ring::new(q8(), &ids(&["a", "b"])).unwrap();
    let json = serde_json::to_string(&ab).unwrap();
    assert_eq!(
        json,
        r#"{"partitions":8,"members":["a","b"],"preference_lists":[["b","a"],["a","b"],["b","a"],["a","b"],["a","b"],["b","a"],["b","a"],["a","b"]]}"#
    );
    assert_eq!(serde_json::from_str::<Ring>(&json).unwrap(), ab);
}

#[test]
fn stored_form_is_validated_when_read() {
    let two = r#"["a","b"],["b","a"]"#;
    let cases = [
        (
            format!(r#"{{"partitions":3,"members":["a","b"],"preference_lists":[{two}]}}"#),
            "power of two",
        ),
        (
            format!(r#"{{"partitions":2,"members":["a","b"],"preference_lists":[{two},{two}]}}"#),
            "one list per partition",
        ),
        (
            r#"{"partitions":2,"members":["a","b"],"preference_lists":[["a"],["b"]]}"#.into(),
            "wrong width",
        ),
        (
            r#"{"partitions":2,"members":["b","a"],"preference_lists":[["a","b"],["b","a"]]}"#
                .into(),
            "sorted",
        ),
        (
            r#"{"partitions":2,"members":["a","b"],"preference_lists":[["a","a"],["b","a"]]}"#
                .into(),
            "twice",
        ),
        (
            r#"{"partitions":2,"members":["a","b"],"preference_lists":[["a","c"],["b","a"]]}"#
                .into(),
            "not a member",
        ),
        (r#"{"partitions":2,"members":[],"preference_lists":[[],[]]}"#.into(), "no members"),
    ];
    for (json, reason) in cases {
        let error = serde_json::from_str::<Ring>(&json).unwrap_err().to_string();
        assert!(error.contains(reason), "{json}: {error}");
    }
}
