//! A brute-force judge of tiny histories, to hold the search to: every subset of the unknown
//! ops, every order of the ops taken, checked against real time and a register written here
//! from the definition, with concrete values and no cache, no abstraction, no pruning.

use std::collections::HashMap;

use rand::Rng;
use rand::rngs::StdRng;

use super::op::{Call, Op, Outcome, Return, Revision, Value};

/// Whether some subset and order of `ops` (one key's) is a legal run.
pub fn linearizable(ops: &[Op]) -> bool {
    let taken: Vec<&Op> = ops
        .iter()
        .filter(|op| op.outcome != Outcome::Failed)
        .filter(|op| !(op.outcome == Outcome::Unknown && op.call == Call::Read))
        .collect();
    let optional: Vec<usize> =
        (0..taken.len()).filter(|&i| taken[i].outcome == Outcome::Unknown).collect();
    let revisions = reported(ops);
    (0u32..1 << optional.len()).any(|mask| {
        let mut chosen: Vec<&Op> = Vec::new();
        for (i, op) in taken.iter().enumerate() {
            match optional.iter().position(|&o| o == i) {
                Some(bit) if mask & (1 << bit) == 0 => {}
                _ => chosen.push(op),
            }
        }
        some_order(&mut chosen, 0, &revisions)
    })
}

/// Value -> revision and revision -> value (`None`: a delete), as reported by completed ops.
struct Reported {
    of_value: HashMap<Value, Revision>,
    wrote: HashMap<Revision, Option<Value>>,
}

fn reported(ops: &[Op]) -> Reported {
    let mut reported = Reported { of_value: HashMap::new(), wrote: HashMap::new() };
    for op in ops {
        let (value, revision) = match op.outcome {
            Outcome::Ok(Return::Read { value, revision: Some(r) }) => (value, r),
            Outcome::Ok(Return::Applied { revision: Some(r) }) => (op.call.written(), r),
            _ => continue,
        };
        reported.wrote.insert(revision, value);
        if let Some(value) = value {
            reported.of_value.insert(value, revision);
        }
    }
    reported
}

/// Heap's permutations of `ops[k..]`, each order checked in full.
fn some_order(ops: &mut Vec<&Op>, k: usize, revisions: &Reported) -> bool {
    if k == ops.len() {
        return legal(ops, revisions);
    }
    for i in k..ops.len() {
        ops.swap(k, i);
        if some_order(ops, k + 1, revisions) {
            return true;
        }
        ops.swap(k, i);
    }
    false
}

fn legal(order: &[&Op], revisions: &Reported) -> bool {
    let end = |op: &Op| if op.outcome == Outcome::Unknown { None } else { op.end_us };
    for (i, earlier) in order.iter().enumerate() {
        // A later op in the order must not have ended before an earlier one started.
        if order[i + 1..].iter().any(|later| end(later).is_some_and(|e| e < earlier.start_us)) {
            return false;
        }
    }
    let mut state: Option<Value> = None;
    for op in order {
        match step(state, op, revisions) {
            Some(next) => state = next,
            None => return false,
        }
    }
    true
}

/// The register's next state after `op`, or `None` if `op` cannot take effect in `state`.
fn step(state: Option<Value>, op: &Op, revisions: &Reported) -> Option<Option<Value>> {
    let rev = |v: Option<Value>| v.and_then(|v| revisions.of_value.get(&v).copied());
    let replace = |new: Option<Value>| match (rev(state), rev(new)) {
        (Some(old), Some(new)) if new <= old => None,
        _ => Some(new),
    };
    match (op.call, op.outcome) {
        (Call::Read, Outcome::Ok(Return::Read { value, .. })) => (state == value).then_some(state),
        (Call::Read, _) => Some(state),
        (Call::Write { value }, _) => replace(Some(value)),
        (Call::Delete, _) => Some(None),
        (Call::Cas { expect, .. }, Outcome::Ok(Return::Refused { revision })) => {
            let read = revision.and_then(|r| revisions.wrote.get(&r).copied().flatten());
            (state != expect && read.is_none_or(|v| state == Some(v))).then_some(state)
        }
        (Call::Cas { expect, new }, _) => {
            if state == expect {
                replace(new)
            } else {
                None
            }
        }
    }
}

/// A random history of at most `ops_max` ops on key `k`, mostly not linearizable: reads return
/// values drawn at random, outcomes are drawn at random, revisions are reported at random but
/// never contradict each other.
pub fn random_history(rng: &mut StdRng, ops_max: usize) -> Vec<Op> {
    let count = rng.random_range(1..=ops_max);
    let revision = |v: Value| 10 * v;
    let mut written: Vec<Value> = Vec::new();
    let mut ops = Vec::new();
    for i in 0..count {
        let fresh = i as Value + 1;
        let pick = |rng: &mut StdRng, written: &[Value]| match rng.random_range(0..=written.len()) {
            0 => None,
            n => Some(written[n - 1]),
        };
        let call = match rng.random_range(0..10) {
            0..3 => Call::Read,
            3..6 => Call::Write { value: fresh },
            6 => Call::Delete,
            _ => {
                let expect = pick(rng, &written);
                let new = if expect.is_some() && rng.random_bool(0.2) { None } else { Some(fresh) };
                Call::Cas { expect, new }
            }
        };
        if let Some(value) = call.written() {
            written.push(value);
        }
        let reported =
            |rng: &mut StdRng, v: Option<Value>| v.filter(|_| rng.random_bool(0.4)).map(revision);
        let outcome = match rng.random_range(0..10) {
            0 => Outcome::Failed,
            1..4 => Outcome::Unknown,
            _ => match call {
                Call::Read => {
                    let value = pick(rng, &written);
                    Outcome::Ok(Return::Read { value, revision: reported(rng, value) })
                }
                Call::Cas { .. } if rng.random_bool(0.4) => {
                    let revision =
                        pick(rng, &written).filter(|_| rng.random_bool(0.5)).map(revision);
                    Outcome::Ok(Return::Refused { revision })
                }
                call => Outcome::Ok(Return::Applied { revision: reported(rng, call.written()) }),
            },
        };
        let start_us = rng.random_range(0..20);
        let end_us = Some(start_us + rng.random_range(0..10));
        ops.push(Op { client: i as u32, key: "k".into(), call, start_us, end_us, outcome });
    }
    ops
}
