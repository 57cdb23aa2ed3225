//! The sequential specification of one key of a strong namespace, for the search: a register
//! holding a value or nothing, with the revisions the server reported as extra evidence.
//!
//! The state is only what the key holds ([`Held`]). Revisions are not state: a value names one
//! write, and that write's revision is a fact of the history, collected up front in
//! [`Revisions`]. The model uses it two ways: a write must carry a higher revision than the
//! value it replaces (revisions are log indices, so they grow along the true order of
//! writes), and a refused compare-and-set whose 412 reported the key's revision reads the
//! value written at that revision.
//!
//! Values that no op observed (no read returned them, no compare-and-set expected them, no
//! revision was reported for them) are one state, [`Held::Unobserved`]: no op can tell them
//! apart, so the abstraction changes no verdict, and a burst of unknown writes nobody saw
//! leads the search to one state instead of one per write.

use std::collections::{HashMap, HashSet};
use std::fmt;

use super::op::{Call, Op, Outcome, Return, Revision, Value};
use super::wgl::Model;

/// What the key holds, as far as the history can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Held {
    Absent,
    Value(Value),
    /// One of the values no op observed.
    Unobserved,
}

impl fmt::Display for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Held::Absent => write!(f, "no value"),
            Held::Value(v) => write!(f, "{v}"),
            Held::Unobserved => write!(f, "a value no op observed"),
        }
    }
}

/// Which revision each value was written at, and which value (or delete) each revision wrote,
/// as the server reported them.
#[derive(Debug, Default)]
pub struct Revisions {
    of_value: HashMap<Value, (Revision, usize)>,
    /// The value a revision wrote (`None`: a delete) and the op that reported it.
    at: HashMap<Revision, (Option<Value>, usize)>,
}

/// Two reports of the server that cannot both be true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevisionConflict {
    /// One value reported at two revisions.
    ValueTwice { value: Value, revisions: [Revision; 2], ops: [usize; 2] },
    /// One revision reported for two different writes.
    RevisionTwice { revision: Revision, values: [Option<Value>; 2], ops: [usize; 2] },
}

impl Revisions {
    /// Collects every revision the `ops` (one key's) report, or the first contradiction.
    pub fn collect(ops: &[Op]) -> Result<Revisions, RevisionConflict> {
        let mut revisions = Revisions::default();
        for (i, op) in ops.iter().enumerate() {
            let (value, revision) = match (op.call, op.outcome) {
                (_, Outcome::Ok(Return::Read { value, revision: Some(r) })) => (value, r),
                (call, Outcome::Ok(Return::Applied { revision: Some(r) })) => (call.written(), r),
                _ => continue,
            };
            revisions.note(i, value, revision)?;
        }
        Ok(revisions)
    }

    fn note(
        &mut self,
        op: usize,
        value: Option<Value>,
        revision: Revision,
    ) -> Result<(), RevisionConflict> {
        let (earlier, first) = *self.at.entry(revision).or_insert((value, op));
        if earlier != value {
            let values = [earlier, value];
            return Err(RevisionConflict::RevisionTwice { revision, values, ops: [first, op] });
        }
        if let Some(value) = value {
            let (earlier, first) = *self.of_value.entry(value).or_insert((revision, op));
            if earlier != revision {
                let revisions = [earlier, revision];
                return Err(RevisionConflict::ValueTwice { value, revisions, ops: [first, op] });
            }
        }
        Ok(())
    }

    /// The revision `value` was written at, when some op reported it.
    pub fn of(&self, value: Value) -> Option<Revision> {
        self.of_value.get(&value).map(|(r, _)| *r)
    }

    /// What `revision` wrote, when some op reported it: `Some(None)` for a delete.
    fn wrote(&self, revision: Revision) -> Option<Option<Value>> {
        self.at.get(&revision).map(|(v, _)| *v)
    }
}

/// A register under reads, writes, deletes and compare-and-set (by value: see the module doc
/// of [`super`] for why a CAS by revision is one by value here).
pub struct Register {
    revisions: Revisions,
    /// Values some op observed: read, expected, or reported with a revision.
    observed: HashSet<Value>,
}

impl Model for Register {
    type State = Held;
    type Op = Op;

    fn step(&self, held: &Held, op: &Op) -> Option<Held> {
        match (op.call, op.outcome) {
            (Call::Read, Outcome::Ok(Return::Read { value, .. })) => {
                (*held == self.held(value)).then_some(*held)
            }
            // An unknown read observed nothing: it fits anywhere.
            (Call::Read, _) => Some(*held),
            (Call::Write { value }, _) => self.replace(*held, Some(value)),
            (Call::Delete, _) => Some(Held::Absent),
            (Call::Cas { expect, .. }, Outcome::Ok(Return::Refused { revision })) => {
                let consistent = match revision.and_then(|r| self.revisions.wrote(r)) {
                    Some(Some(value)) => *held == Held::Value(value),
                    _ => true,
                };
                (*held != self.held(expect) && consistent).then_some(*held)
            }
            // Applied, or unknown: placing an unknown CAS means it applied, which needs its
            // expectation met; one that did not apply is simply left out.
            (Call::Cas { expect, new }, _) => {
                if *held == self.held(expect) {
                    self.replace(*held, new)
                } else {
                    None
                }
            }
        }
    }
}

impl Register {
    /// The model of one key whose history is `ops`, or the revisions it reports contradict.
    pub fn new(ops: &[Op]) -> Result<Register, RevisionConflict> {
        let revisions = Revisions::collect(ops)?;
        let mut observed: HashSet<Value> = revisions.of_value.keys().copied().collect();
        for op in ops {
            match (op.call, op.outcome) {
                (_, Outcome::Ok(Return::Read { value: Some(v), .. })) => observed.insert(v),
                (Call::Cas { expect: Some(v), .. }, _) => observed.insert(v),
                _ => false,
            };
        }
        Ok(Register { revisions, observed })
    }

    /// What the key holds when it holds `value`.
    pub fn held(&self, value: Option<Value>) -> Held {
        match value {
            None => Held::Absent,
            Some(v) if self.observed.contains(&v) => Held::Value(v),
            Some(_) => Held::Unobserved,
        }
    }

    fn revision(&self, held: Held) -> Option<Revision> {
        match held {
            Held::Value(v) => self.revisions.of(v),
            Held::Absent | Held::Unobserved => None,
        }
    }

    /// A write of `new` over `old`, which must come with a higher revision when both are known.
    fn replace(&self, old: Held, new: Option<Value>) -> Option<Held> {
        let new = self.held(new);
        match (self.revision(old), self.revision(new)) {
            (Some(old), Some(new)) if new <= old => None,
            _ => Some(new),
        }
    }

    /// Why `op` cannot take effect when the key holds `value`, in words, or `None` if it can.
    pub fn why_not(&self, value: Option<Value>, op: &Op) -> Option<String> {
        let held = self.held(value);
        if self.step(&held, op).is_some() {
            return None;
        }
        let shown = show(value);
        Some(match (op.call, op.outcome) {
            (Call::Read, Outcome::Ok(Return::Read { value: read, .. })) => {
                format!("it read {} but the key held {shown}", show(read))
            }
            (Call::Cas { expect, .. }, Outcome::Ok(Return::Refused { revision: Some(r) }))
                if held != self.held(expect) =>
            {
                let wrote = self.revisions.wrote(r).flatten().map_or("?".into(), |v| v.to_string());
                format!("its 412 reported revision {r} (value {wrote}) but the key held {shown}")
            }
            (Call::Cas { .. }, Outcome::Ok(Return::Refused { .. })) => {
                format!("it was refused but the key held {shown}, the value it expected")
            }
            (Call::Cas { expect, .. }, _) if held != self.held(expect) => {
                format!("it expected {} but the key held {shown}", show(expect))
            }
            _ => {
                let new = op.call.written().and_then(|v| self.revisions.of(v));
                let known = |r: Option<Revision>| r.map_or("?".into(), |r| r.to_string());
                format!(
                    "its revision {} is not above revision {} of {shown}, the value it replaces",
                    known(new),
                    known(self.revision(held))
                )
            }
        })
    }
}

/// A value or its absence, in words.
pub fn show(value: Option<Value>) -> String {
    value.map_or("no value".to_string(), |v| v.to_string())
}

/// What the key holds after `ops` took effect in this order from an absent key: the value
/// the model abstracts away when no op observed it.
pub fn replay<'a>(ops: impl IntoIterator<Item = &'a Op>) -> Option<Value> {
    let mut value = None;
    for op in ops {
        match (op.call, op.outcome) {
            (Call::Read, _) | (Call::Cas { .. }, Outcome::Ok(Return::Refused { .. })) => {}
            (Call::Delete, _) => value = None,
            (call, _) => value = call.written(),
        }
    }
    value
}
