//! Hand-made histories that are linearizable and that are not, each one a story of what
//! clients saw. Times are microseconds; every op is on key `k` unless it says otherwise.

use super::*;

fn op(client: u32, call: Call, start_us: u64, end_us: u64, outcome: Outcome) -> Op {
    Op { client, key: "k".into(), call, start_us, end_us: Some(end_us), outcome }
}

fn write(client: u32, value: Value, start_us: u64, end_us: u64) -> Op {
    let applied = Outcome::Ok(Return::Applied { revision: None });
    op(client, Call::Write { value }, start_us, end_us, applied)
}

fn read(client: u32, value: Option<Value>, start_us: u64, end_us: u64) -> Op {
    let read = Outcome::Ok(Return::Read { value, revision: None });
    op(client, Call::Read, start_us, end_us, read)
}

fn applied(client: u32, call: Call, start_us: u64, end_us: u64) -> Op {
    op(client, call, start_us, end_us, Outcome::Ok(Return::Applied { revision: None }))
}

fn refused(client: u32, call: Call, start_us: u64, end_us: u64) -> Op {
    op(client, call, start_us, end_us, Outcome::Ok(Return::Refused { revision: None }))
}

fn unknown(client: u32, call: Call, start_us: u64) -> Op {
    Op { client, key: "k".into(), call, start_us, end_us: None, outcome: Outcome::Unknown }
}

fn failed(client: u32, call: Call, start_us: u64, end_us: u64) -> Op {
    op(client, call, start_us, end_us, Outcome::Failed)
}

/// With a revision: a read of `(value, revision)` or a write applied at `revision`.
fn at(mut op: Op, revision: Revision) -> Op {
    op.outcome = match op.outcome {
        Outcome::Ok(Return::Read { value, .. }) => {
            Outcome::Ok(Return::Read { value, revision: Some(revision) })
        }
        Outcome::Ok(Return::Applied { .. }) => {
            Outcome::Ok(Return::Applied { revision: Some(revision) })
        }
        Outcome::Ok(Return::Refused { .. }) => {
            Outcome::Ok(Return::Refused { revision: Some(revision) })
        }
        other => other,
    };
    op
}

fn verdict(history: &[Op]) -> Verdict {
    let report = check(history, CheckOptions::default()).expect("a valid history");
    assert_eq!(report.keys.len(), 1, "{report}");
    println!("{report}");
    report.keys[0].verdict.clone()
}

fn assert_linearizable(history: &[Op]) {
    assert_eq!(verdict(history), Verdict::Linearizable);
}

/// The violation, which must place nothing at `op`.
fn violation(history: &[Op]) -> Violation {
    match verdict(history) {
        Verdict::NotLinearizable(violation) => *violation,
        other => panic!("expected a violation, got {other:?}"),
    }
}

fn unplaced(history: &[Op]) -> (Op, Option<Value>) {
    match violation(history) {
        Violation::Unplaceable { op, state, .. } => (op, state),
        other => panic!("expected an unplaceable op, got {other:?}"),
    }
}

#[test]
fn sequential_writes_and_reads_are_linearizable() {
    assert_linearizable(&[
        read(1, None, 0, 10),
        write(1, 1, 20, 30),
        read(2, Some(1), 40, 50),
        write(2, 2, 60, 70),
        read(1, Some(2), 80, 90),
    ]);
}

#[test]
fn a_stale_read_after_an_acknowledged_write_is_not() {
    let history = [write(1, 1, 0, 10), write(1, 2, 20, 30), read(2, Some(1), 40, 50)];
    let (op, state) = unplaced(&history);
    assert_eq!((op, state), (history[2].clone(), Some(2)), "the read, against the key's 2");
}

#[test]
fn a_lost_acknowledged_write_is_not() {
    // The write was acknowledged, and every later read finds no key.
    let history = [write(1, 1, 0, 10), read(2, None, 20, 30), read(3, None, 40, 50)];
    let (op, state) = unplaced(&history);
    assert_eq!((op, state), (history[1].clone(), Some(1)));
}

#[test]
fn a_cas_that_succeeded_twice_from_one_expected_value_is_not() {
    let history = [
        write(1, 1, 0, 10),
        applied(2, Call::cas(1, 2), 20, 40),
        applied(3, Call::cas(1, 3), 25, 45),
    ];
    let text = violation(&history).to_string();
    assert!(text.contains("expected 1 but the key held"), "{text}");
}

#[test]
fn concurrent_cas_from_one_value_where_one_is_refused_is_linearizable() {
    assert_linearizable(&[
        write(1, 1, 0, 10),
        applied(2, Call::cas(1, 2), 20, 40),
        refused(3, Call::cas(1, 3), 25, 45),
        read(1, Some(2), 50, 60),
    ]);
}

#[test]
fn a_refused_cas_whose_expected_value_held_throughout_is_not() {
    let history =
        [write(1, 1, 0, 10), refused(2, Call::cas(1, 2), 20, 30), read(1, Some(1), 40, 50)];
    let (op, state) = unplaced(&history);
    assert_eq!((op, state), (history[1].clone(), Some(1)));
}

#[test]
fn a_failed_write_seen_by_a_read_is_not() {
    let history = [failed(1, Call::Write { value: 9 }, 0, 10), read(2, Some(9), 20, 30)];
    let text = violation(&history).to_string();
    assert!(text.contains("9 was written only by a write that failed"), "{text}");
}

#[test]
fn an_unknown_write_seen_later_is_linearizable() {
    // The client gave up on the write; it took effect long after.
    assert_linearizable(&[
        write(1, 1, 0, 10),
        unknown(1, Call::Write { value: 2 }, 20),
        read(2, Some(1), 30, 40),
        read(1, Some(1), 1000, 1010),
        read(2, Some(2), 5000, 5010),
    ]);
}

#[test]
fn an_unknown_write_never_seen_is_linearizable() {
    assert_linearizable(&[
        write(1, 1, 0, 10),
        unknown(1, Call::Write { value: 2 }, 20),
        read(2, Some(1), 30, 40),
        read(2, Some(1), 5000, 5010),
    ]);
}

#[test]
fn unknown_ops_placed_in_one_order_do_not_hide_another_order() {
    // Placing the unknown write of 5 and then the unknown delete fits the read of no value,
    // but leaves 5 unreadable later; the delete alone, then the write, fits everything. The
    // search must not take the first, failed, configuration as covering the second.
    assert_linearizable(&[
        write(1, 1, 0, 10),
        unknown(2, Call::Write { value: 5 }, 20),
        unknown(3, Call::Delete, 20),
        read(4, None, 30, 40),
        read(4, Some(5), 50, 60),
    ]);
}

#[test]
fn an_unknown_write_seen_then_unseen_is_not() {
    let history = [
        write(1, 1, 0, 10),
        unknown(1, Call::Write { value: 2 }, 20),
        read(2, Some(2), 30, 40),
        read(2, Some(1), 50, 60),
    ];
    let (op, state) = unplaced(&history);
    assert_eq!((op, state), (history[3].clone(), Some(2)));
}

#[test]
fn a_read_that_sees_a_value_before_its_write_started_is_not() {
    let history = [read(1, Some(5), 0, 10), write(2, 5, 20, 30)];
    let text = violation(&history).to_string();
    assert!(text.contains("started after this one ended"), "{text}");
}

#[test]
fn a_read_of_a_value_nobody_wrote_is_not() {
    let text = violation(&[write(1, 1, 0, 10), read(2, Some(7), 20, 30)]).to_string();
    assert!(text.contains("no operation wrote 7"), "{text}");
}

#[test]
fn concurrent_writes_are_linearizable_in_either_order() {
    for last in [1, 2] {
        assert_linearizable(&[
            write(1, 1, 0, 100),
            write(2, 2, 10, 90),
            read(3, Some(last), 200, 210),
            read(1, Some(last), 300, 310),
        ]);
    }
}

#[test]
fn reads_after_concurrent_writes_cannot_flip_between_them() {
    let history = [
        write(1, 1, 0, 100),
        write(2, 2, 10, 90),
        read(3, Some(1), 200, 210),
        read(1, Some(2), 300, 310),
    ];
    let (op, _) = unplaced(&history);
    assert_eq!(op, history[3]);
}

#[test]
fn reads_during_a_write_may_see_old_then_new_but_not_new_then_old() {
    assert_linearizable(&[
        write(1, 1, 0, 10),
        write(1, 2, 20, 100),
        read(2, Some(1), 30, 40),
        read(3, Some(2), 50, 60),
        read(2, Some(2), 70, 80),
    ]);
    let history = [
        write(1, 1, 0, 10),
        write(1, 2, 20, 100),
        read(2, Some(2), 30, 40),
        read(3, Some(1), 50, 60),
    ];
    let (op, state) = unplaced(&history);
    assert_eq!((op, state), (history[3].clone(), Some(2)));
}

#[test]
fn only_one_of_two_concurrent_creates_may_succeed() {
    assert_linearizable(&[
        applied(1, Call::create(1), 0, 20),
        refused(2, Call::create(2), 5, 25),
        read(3, Some(1), 30, 40),
    ]);
    let history = [applied(1, Call::create(1), 0, 20), applied(2, Call::create(2), 5, 25)];
    let text = violation(&history).to_string();
    assert!(text.contains("expected no value but the key held"), "{text}");
}

#[test]
fn a_create_over_an_existing_key_is_not() {
    let history = [write(1, 1, 0, 10), applied(2, Call::create(2), 20, 30)];
    let (op, state) = unplaced(&history);
    assert_eq!((op, state), (history[1].clone(), Some(1)));
}

#[test]
fn a_delete_makes_the_key_missing_and_a_create_may_follow() {
    assert_linearizable(&[
        write(1, 1, 0, 10),
        applied(1, Call::Delete, 20, 30),
        read(2, None, 40, 50),
        applied(2, Call::create(2), 60, 70),
        applied(1, Call::Cas { expect: Some(2), new: None }, 80, 90),
        read(3, None, 100, 110),
    ]);
    let history = [write(1, 1, 0, 10), applied(1, Call::Delete, 20, 30), read(2, Some(1), 40, 50)];
    let (op, state) = unplaced(&history);
    assert_eq!((op, state), (history[2].clone(), None));
}

#[test]
fn an_unknown_cas_placed_only_where_its_expectation_holds() {
    // Seen: it applied, after the write of 1.
    assert_linearizable(&[
        write(1, 1, 0, 10),
        unknown(2, Call::cas(1, 2), 5),
        read(3, Some(2), 50, 60),
    ]);
    // Seen although its expectation never held: it cannot have applied.
    let history = [write(1, 1, 0, 10), unknown(2, Call::cas(7, 2), 20), read(3, Some(2), 50, 60)];
    let (op, state) = unplaced(&history);
    assert_eq!((op, state), (history[2].clone(), Some(1)));
}

#[test]
fn revisions_must_grow_along_the_order_of_writes() {
    assert_linearizable(&[
        at(write(1, 1, 0, 10), 5),
        at(write(2, 2, 20, 30), 9),
        at(read(3, Some(2), 40, 50), 9),
    ]);
    // The second write started after the first ended, yet got a lower log index.
    let history = [at(write(1, 1, 0, 10), 5), at(write(2, 2, 20, 30), 3)];
    let text = violation(&history).to_string();
    assert!(text.contains("its revision 3 is not above revision 5 of 1"), "{text}");
}

#[test]
fn revisions_that_contradict_each_other_are_a_violation() {
    let history = [at(write(1, 1, 0, 10), 5), at(read(2, Some(1), 20, 30), 6)];
    let text = violation(&history).to_string();
    assert!(text.contains("value 1 was reported at revision 5 and at revision 6"), "{text}");
    let history = [at(write(1, 1, 0, 10), 5), at(write(2, 2, 20, 30), 5)];
    assert!(matches!(violation(&history), Violation::RevisionConflict { .. }));
}

#[test]
fn a_refused_cas_that_reported_a_revision_reads_the_value_written_there() {
    // The 412 says the key was at revision 5, which wrote 1: fine while the write of 2 (at
    // revision 8) may not have happened yet.
    let history = |refusal_start| {
        vec![
            at(write(1, 1, 0, 10), 5),
            at(write(2, 2, 20, 30), 8),
            at(refused(3, Call::cas(9, 3), refusal_start, 50), 5),
        ]
    };
    assert_linearizable(&history(25));
    // Not once the write of 2 was acknowledged before the CAS started: 1 was gone by then.
    let text = violation(&history(40)).to_string();
    assert!(text.contains("its 412 reported revision 5 (value 1) but the key held 2"), "{text}");
}

#[test]
fn keys_are_judged_apart_and_counted_in_the_summary() {
    let mut history = vec![write(1, 1, 0, 10), read(2, Some(1), 20, 30)];
    let mut other = vec![write(1, 2, 0, 10), write(1, 3, 20, 30), read(2, Some(2), 40, 50)];
    for op in &mut other {
        op.key = "j".into();
    }
    history.extend(other);
    let report = check(&history, CheckOptions::default()).unwrap();
    assert_eq!(report.summary(), "linearizable=1 undecided=0 violations=1");
    assert!(!report.valid());
    let text = report.to_string();
    assert!(
        text.contains("key \"j\": not linearizable: no order places client 2 read -> 2"),
        "{text}"
    );
}

#[test]
fn an_explanation_names_the_op_the_furthest_order_and_the_candidates() {
    let history = [
        write(1, 1, 0, 10),
        write(1, 2, 20, 30),
        read(2, Some(1), 40, 50),
        unknown(3, Call::Write { value: 3 }, 45),
    ];
    let text = violation(&history).to_string();
    let expected = "no order places client 2 read -> 1 [0.040 ms, 0.050 ms]\n  \
        the order that got furthest placed 2 ops (last 2 shown), leaving 2:\n    \
        client 1 write 1 ok [0.000 ms, 0.010 ms]\n    \
        client 1 write 2 ok [0.020 ms, 0.030 ms]\n  \
        then none of the ops that could go next fitted:\n    \
        client 2 read -> 1 [0.040 ms, 0.050 ms]: it read 1 but the key held 2\n    \
        client 3 write 3 unknown [0.045 ms, inf ms]: fits, but every order after it failed";
    assert_eq!(text, expected);
}

#[test]
fn a_spent_budget_is_undecided_never_a_pass() {
    // Sixteen concurrent unknown writes and a violation at the end: more steps than allowed.
    let mut history: Vec<Op> =
        (0..16).map(|i| unknown(i, Call::Write { value: 100 + u64::from(i) }, 0)).collect();
    history.push(write(20, 1, 0, 10));
    history.push(read(21, Some(1), 20, 30));
    history.push(read(21, Some(99), 40, 50));
    let options = CheckOptions { steps_max_per_key: 10, ..CheckOptions::default() };
    let report = check(&history, options).unwrap();
    assert_eq!(report.keys[0].verdict, Verdict::Undecided);
    assert_eq!(report.keys[0].spent.steps, 10);
    assert_eq!(report.summary(), "linearizable=0 undecided=1 violations=0");
    assert!(report.valid() && report.linearizable() == 0, "undecided is not a pass");
    let text = report.to_string();
    assert!(text.contains("undecided, the search's budget ran out (19 ops; 10 steps, "), "{text}");
    // With the default budget the same history is decided.
    let report = super::check(&history, CheckOptions::default()).unwrap();
    assert_eq!(report.summary(), "linearizable=0 undecided=0 violations=1", "{report}");
}

/// A partition leaves many writes unknown; a violation after it must still be found, not cost
/// every subset of the unknown writes (which Lowe's cache alone would: 2^30 here).
#[test]
fn a_burst_of_unknown_writes_does_not_hide_a_later_violation() {
    let mut history = vec![write(0, 1, 0, 10)];
    for c in 0..30 {
        history.push(unknown(100 + c, Call::Write { value: 1000 + u64::from(c) }, 20));
    }
    for i in 0..40 {
        history.push(write(1, 2 + i, 100 + i * 20, 105 + i * 20));
        history.push(read(2, Some(2 + i), 110 + i * 20, 115 + i * 20));
    }
    history.push(read(2, Some(3), 5000, 5010));
    let report = check(&history, CheckOptions::default()).unwrap();
    println!("{} in {} steps", report.summary(), report.keys[0].spent.steps);
    let (op, state) = unplaced(&history);
    assert_eq!((op, state), (history.last().unwrap().clone(), Some(41)));
}

#[test]
fn failed_and_unknown_reads_constrain_nothing() {
    assert_linearizable(&[
        write(1, 1, 0, 10),
        failed(2, Call::Read, 20, 30),
        unknown(3, Call::Read, 20),
        read(2, Some(1), 40, 50),
    ]);
}

#[test]
fn a_history_breaking_the_premises_is_an_error_not_a_verdict() {
    let check = |history: &[Op]| check(history, CheckOptions::default()).unwrap_err();
    let mut no_end = write(1, 1, 0, 10);
    no_end.end_us = None;
    assert_eq!(check(std::slice::from_ref(&no_end)), HistoryError::NoEnd(Box::new(no_end)));
    let backwards = write(1, 1, 10, 5);
    assert_eq!(
        check(std::slice::from_ref(&backwards)),
        HistoryError::EndBeforeStart(Box::new(backwards))
    );
    let mismatch =
        op(1, Call::Write { value: 1 }, 0, 10, Outcome::Ok(Return::Refused { revision: None }));
    assert_eq!(
        check(std::slice::from_ref(&mismatch)),
        HistoryError::ReturnMismatch(Box::new(mismatch))
    );
    let nonsense = applied(1, Call::Cas { expect: None, new: None }, 0, 10);
    assert_eq!(
        check(std::slice::from_ref(&nonsense)),
        HistoryError::CreateOnlyDelete(Box::new(nonsense))
    );
    let twice = [write(1, 1, 0, 10), applied(2, Call::cas(1, 1), 20, 30)];
    let err = check(&twice);
    assert!(err.to_string().contains("value 1 is written twice on key \"k\""), "{err}");
    // The same value on two keys is fine: keys are apart.
    let mut other = write(1, 1, 0, 10);
    other.key = "j".into();
    assert!(super::check(&[write(1, 1, 0, 10), other], CheckOptions::default()).is_ok());
}
