//! Histories of a correct register, for the property tests: clients run overlapping
//! operations, each takes effect at one instant inside its interval (or, for an unknown outcome,
//! at any later instant or never), and a sequential register executed in the order of those
//! instants decides what each returned. Such a history is linearizable by construction.

use std::collections::HashMap;

use rand::Rng;
use rand::rngs::StdRng;

use super::op::{Call, Op, Outcome, Return, Revision, Value};

/// The size and weather of a generated history.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub clients: u32,
    pub keys: usize,
    pub ops_per_client: usize,
    /// Chance of an op ending unknown (half of those take effect, any time after their start).
    pub unknown_percent: u32,
    /// Chance of an op failing (it takes no effect).
    pub failed_percent: u32,
}

impl Shape {
    /// A small shape drawn from `rng`.
    pub fn small(rng: &mut StdRng) -> Shape {
        Shape {
            clients: rng.random_range(1..=6),
            keys: rng.random_range(1..=3),
            ops_per_client: rng.random_range(1..=25),
            unknown_percent: rng.random_range(0..=20),
            failed_percent: rng.random_range(0..=10),
        }
    }
}

/// An op under construction: the instant it takes effect, if it does.
struct Planned {
    op: Op,
    effect_us: Option<u64>,
}

/// A history of `shape` drawn from `rng`.
pub fn history(rng: &mut StdRng, shape: &Shape) -> Vec<Op> {
    let mut planned = Vec::new();
    let mut next_value: Value = 1;
    // The last value planned per key, so that compare-and-sets often expect the right one.
    let mut last: HashMap<String, Option<Value>> = HashMap::new();
    for client in 0..shape.clients {
        let mut now_us = rng.random_range(0..100);
        for _ in 0..shape.ops_per_client {
            let key = format!("k{}", rng.random_range(0..shape.keys));
            let recent = last.get(&key).copied().flatten();
            let call = draw_call(rng, recent, &mut next_value);
            if let Some(written) = call.written() {
                last.insert(key.clone(), Some(written));
            }
            let start_us = now_us + rng.random_range(0..200);
            let end_us = start_us + rng.random_range(1..2_000);
            now_us = end_us;
            let roll = rng.random_range(0..100);
            let (outcome, effect_us) = if roll < shape.failed_percent {
                (Outcome::Failed, None)
            } else if roll < shape.failed_percent + shape.unknown_percent {
                let late = rng.random_range(0..10_000);
                (Outcome::Unknown, rng.random_bool(0.5).then_some(start_us + late))
            } else {
                (
                    Outcome::Ok(Return::Applied { revision: None }),
                    Some(rng.random_range(start_us..=end_us)),
                )
            };
            let op = Op { client, key, call, start_us, end_us: Some(end_us), outcome };
            planned.push(Planned { op, effect_us });
        }
    }
    execute(&mut planned);
    planned.into_iter().map(|p| p.op).collect()
}

fn draw_call(rng: &mut StdRng, recent: Option<Value>, next_value: &mut Value) -> Call {
    let written = *next_value;
    let kind = rng.random_range(0..100);
    if (40..75).contains(&kind) || kind >= 78 {
        *next_value += 1;
    }
    match kind {
        0..40 => Call::Read,
        40..65 => Call::Write { value: written },
        65..70 => Call::Delete,
        70..75 => Call::create(written),
        75..78 => Call::Cas { expect: recent.or(Some(0)), new: None },
        _ => {
            // Mostly the latest value planned, sometimes an older or a wrong one.
            let expect = match rng.random_range(0..4) {
                0 => rng.random_range(1..=written),
                _ => recent.unwrap_or(0),
            };
            Call::cas(expect, written)
        }
    }
}

/// Runs a sequential register in the order of the effect instants and fills in each returned
/// value. Revisions count every change of every key, as one Raft log would.
fn execute(planned: &mut [Planned]) {
    let mut order: Vec<usize> =
        (0..planned.len()).filter(|&i| planned[i].effect_us.is_some()).collect();
    order.sort_by_key(|&i| (planned[i].effect_us, i));
    let mut keys: HashMap<String, (Value, Revision)> = HashMap::new();
    let mut revision: Revision = 0;
    for i in order {
        let op = &mut planned[i].op;
        let current = keys.get(&op.key).copied();
        let returned = match op.call {
            Call::Read => {
                Return::Read { value: current.map(|c| c.0), revision: current.map(|c| c.1) }
            }
            Call::Cas { expect, .. } if current.map(|c| c.0) != expect => {
                Return::Refused { revision: current.map(|c| c.1) }
            }
            call => {
                revision += 1;
                match call.written() {
                    Some(value) => keys.insert(op.key.clone(), (value, revision)),
                    None => keys.remove(&op.key),
                };
                Return::Applied { revision: Some(revision) }
            }
        };
        if let Outcome::Ok(_) = op.outcome {
            op.outcome = Outcome::Ok(returned);
        }
    }
}

/// Why a read cannot have returned a value: the kinds of [`corrupt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Never {
    /// No op wrote it, or only one that failed or was refused.
    Written,
    /// Its write started after the read ended.
    Yet,
    /// Its write was acknowledged, then overwritten by an acknowledged change that ended
    /// before the read started.
    Again,
}

/// Changes the value one acknowledged read returned to one that was never current during the
/// read, whatever the order of the concurrent ops. Returns the read's index, the value, and
/// why it cannot be; `None` if the history has no read to change.
pub fn corrupt(rng: &mut StdRng, history: &mut [Op]) -> Option<(usize, Option<Value>, Never)> {
    let reads: Vec<usize> = (0..history.len())
        .filter(|&i| matches!(history[i].outcome, Outcome::Ok(Return::Read { .. })))
        .collect();
    if reads.is_empty() {
        return None;
    }
    let i = reads[rng.random_range(0..reads.len())];
    let mut choices = vec![(Some(u64::MAX), Never::Written)];
    let read = &history[i];
    let same_key = || history.iter().filter(|op| op.key == read.key);
    let changed = |op: &Op| matches!(op.outcome, Outcome::Ok(Return::Applied { .. }));
    for writer in same_key() {
        let Some(value) = writer.call.written() else { continue };
        let (start, end) = (writer.start_us, writer.end_us.expect("generated ops have ends"));
        if writer.outcome == Outcome::Failed
            || matches!(writer.outcome, Outcome::Ok(Return::Refused { .. }))
        {
            choices.push((Some(value), Never::Written));
        } else if start > read.end_us.expect("an end") {
            choices.push((Some(value), Never::Yet));
        } else if changed(writer)
            && same_key().any(|w| changed(w) && end < w.start_us && w.end_us < Some(read.start_us))
        {
            choices.push((Some(value), Never::Again));
        }
    }
    let may_delete =
        same_key().any(|op| matches!(op.call, Call::Delete | Call::Cas { new: None, .. }));
    let created_before = same_key().any(|w| changed(w) && w.end_us < Some(read.start_us));
    if !may_delete && created_before {
        choices.push((None, Never::Again));
    }
    let (value, never) = choices[rng.random_range(0..choices.len())];
    let Outcome::Ok(Return::Read { value: actual, .. }) = read.outcome else { unreachable!() };
    assert_ne!(actual, value, "the generator returned a value that cannot be: {never:?}");
    history[i].outcome = Outcome::Ok(Return::Read { value, revision: None });
    Some((i, value, never))
}
