//! The checker's entry point: a history in, one verdict per key out, with an explanation a
//! person can act on for every key that is not linearizable.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use super::op::{Call, Op, Outcome, Return, Value};
use super::register::{Held, Register, RevisionConflict, replay, show};
use super::wgl::{self, Budget, Entry, Search, Spent, Stuck};

/// Bounds of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckOptions {
    /// Model steps the search may try per key before it answers [`Verdict::Undecided`].
    pub steps_max_per_key: u64,
    /// Memory the search's cache may hold per key before it answers [`Verdict::Undecided`].
    pub cache_bytes_max_per_key: u64,
}

impl Default for CheckOptions {
    /// Far more than a chaos run's histories need (2,000 ops over 5 keys take thousands of
    /// steps; a violation after a burst of 30 unknown writes, 75 thousand), while bounded: the
    /// whole step budget takes about 15 s of a debug build on two shared cores.
    fn default() -> Self {
        CheckOptions { steps_max_per_key: 5_000_000, cache_bytes_max_per_key: 512 << 20 }
    }
}

/// The verdict on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    NotLinearizable(Box<Violation>),
    /// The step budget ran out first: neither a pass nor a violation.
    Undecided,
}

/// Why a key's history is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// No order of the operations fits both real time and the register: `op` ended before any
    /// order could place it. The rest describes the order that got furthest in real time.
    Unplaceable {
        op: Op,
        /// A direct reason when one is plain from the history (the value read was never
        /// written, or only by a failed write, or by a write that started later).
        hint: Option<String>,
        /// The operations placed, in order, before the dead end.
        prefix: Vec<Op>,
        /// What the key held after `prefix`.
        state: Option<Value>,
        /// Each operation that could have gone next there, and why it did not fit (`None`: it
        /// fitted, but every order going on from it failed later).
        candidates: Vec<(Op, Option<String>)>,
    },
    /// The server reported revisions that cannot all be true.
    RevisionConflict { what: String, ops: [Op; 2] },
}

/// The verdict on one key and what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVerdict {
    pub key: String,
    /// Operations recorded on the key, whatever their outcome.
    pub ops: usize,
    /// What the search spent: model steps tried, memory its cache held.
    pub spent: Spent,
    pub verdict: Verdict,
}

/// Every key's verdict, by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub keys: Vec<KeyVerdict>,
}

impl Report {
    pub fn linearizable(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Linearizable))
    }

    pub fn undecided(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Undecided))
    }

    pub fn violations(&self) -> usize {
        self.count(|v| matches!(v, Verdict::NotLinearizable(_)))
    }

    /// No key was found not linearizable (undecided keys are not violations, nor passes).
    pub fn valid(&self) -> bool {
        self.violations() == 0
    }

    /// `linearizable=K undecided=U violations=V`, counting keys.
    pub fn summary(&self) -> String {
        format!(
            "linearizable={} undecided={} violations={}",
            self.linearizable(),
            self.undecided(),
            self.violations()
        )
    }

    fn count(&self, which: impl Fn(&Verdict) -> bool) -> usize {
        self.keys.iter().filter(|k| which(&k.verdict)).count()
    }
}

/// A history the checker cannot judge, because it breaks the premises the verdict rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryError {
    /// An `Ok` or `Failed` op without an end.
    NoEnd(Box<Op>),
    EndBeforeStart(Box<Op>),
    /// A return that does not answer the call (a write that returned a value, ...).
    ReturnMismatch(Box<Op>),
    /// `Cas { expect: None, new: None }`: a create-only delete means nothing.
    CreateOnlyDelete(Box<Op>),
    /// Two ops of one key write the same value, so a value no longer names one write.
    ValueWrittenTwice {
        value: Value,
        ops: Box<[Op; 2]>,
    },
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistoryError::NoEnd(op) => write!(f, "a completed op has no end: {op}"),
            HistoryError::EndBeforeStart(op) => write!(f, "an op ends before it starts: {op}"),
            HistoryError::ReturnMismatch(op) => {
                write!(f, "an op's return does not answer its call: {op}")
            }
            HistoryError::CreateOnlyDelete(op) => write!(f, "a create-only delete: {op}"),
            HistoryError::ValueWrittenTwice { value, ops } => write!(
                f,
                "value {value} is written twice on key {:?} (values must be unique): {}; {}",
                ops[0].key, ops[0], ops[1]
            ),
        }
    }
}

impl std::error::Error for HistoryError {}

/// Checks a register history: each key alone (linearizability is compositional, Herlihy &
/// Wing), by the search of [`super::wgl`] under the model of [`super::register`]. A history
/// that breaks the checker's premises is an error and judged not at all.
pub fn check(history: &[Op], options: CheckOptions) -> Result<Report, HistoryError> {
    let mut by_key: BTreeMap<&str, Vec<Op>> = BTreeMap::new();
    for op in history {
        validate(op)?;
        by_key.entry(&op.key).or_default().push(op.clone());
    }
    let mut report = Report::default();
    for (key, ops) in by_key {
        unique_values(&ops)?;
        report.keys.push(check_key(key, &ops, options));
    }
    Ok(report)
}

fn validate(op: &Op) -> Result<(), HistoryError> {
    let fits = matches!(
        (op.call, op.outcome),
        (_, Outcome::Failed | Outcome::Unknown)
            | (Call::Read, Outcome::Ok(Return::Read { .. }))
            | (Call::Write { .. } | Call::Delete, Outcome::Ok(Return::Applied { .. }))
            | (Call::Cas { .. }, Outcome::Ok(Return::Applied { .. } | Return::Refused { .. }))
    );
    if !fits {
        return Err(HistoryError::ReturnMismatch(Box::new(op.clone())));
    }
    if op.call == (Call::Cas { expect: None, new: None }) {
        return Err(HistoryError::CreateOnlyDelete(Box::new(op.clone())));
    }
    match (op.outcome, op.end_us) {
        (Outcome::Unknown, _) => Ok(()),
        (_, None) => Err(HistoryError::NoEnd(Box::new(op.clone()))),
        (_, Some(end)) if end < op.start_us => {
            Err(HistoryError::EndBeforeStart(Box::new(op.clone())))
        }
        _ => Ok(()),
    }
}

fn unique_values(ops: &[Op]) -> Result<(), HistoryError> {
    let mut writer: HashMap<Value, &Op> = HashMap::new();
    for op in ops {
        if let Some(value) = op.call.written()
            && let Some(first) = writer.insert(value, op)
        {
            return Err(HistoryError::ValueWrittenTwice {
                value,
                ops: Box::new([first.clone(), op.clone()]),
            });
        }
    }
    Ok(())
}

fn check_key(key: &str, ops: &[Op], options: CheckOptions) -> KeyVerdict {
    let verdict =
        |verdict, spent| KeyVerdict { key: key.to_owned(), ops: ops.len(), spent, verdict };
    let model = match Register::new(ops) {
        Ok(model) => model,
        Err(conflict) => {
            let violation = revision_conflict(ops, conflict);
            return verdict(Verdict::NotLinearizable(Box::new(violation)), Spent::default());
        }
    };
    // A failed op did not happen and an unknown read observed nothing: neither constrains.
    let entries: Vec<Entry<Op>> = ops
        .iter()
        .filter(|op| match op.outcome {
            Outcome::Failed => false,
            Outcome::Unknown => op.call != Call::Read,
            Outcome::Ok(_) => true,
        })
        .map(|op| Entry {
            op: op.clone(),
            call_us: op.start_us,
            return_us: if op.outcome == Outcome::Unknown { None } else { op.end_us },
        })
        .collect();
    let budget = Budget {
        steps_max: options.steps_max_per_key,
        cache_bytes_max: options.cache_bytes_max_per_key,
    };
    let (answer, spent) = wgl::search(&model, Held::Absent, &entries, budget);
    match answer {
        Search::Linearizable { .. } => verdict(Verdict::Linearizable, spent),
        Search::Undecided => verdict(Verdict::Undecided, spent),
        Search::NotLinearizable(stuck) => {
            let violation = unplaceable(&model, &entries, ops, stuck);
            verdict(Verdict::NotLinearizable(Box::new(violation)), spent)
        }
    }
}

fn revision_conflict(ops: &[Op], conflict: RevisionConflict) -> Violation {
    let (what, [a, b]) = match conflict {
        RevisionConflict::ValueTwice { value, revisions: [r, s], ops } => {
            (format!("value {value} was reported at revision {r} and at revision {s}"), ops)
        }
        RevisionConflict::RevisionTwice { revision, values: [v, w], ops } => {
            (format!("revision {revision} was reported for {} and for {}", show(v), show(w)), ops)
        }
    };
    Violation::RevisionConflict { what, ops: [ops[a].clone(), ops[b].clone()] }
}

fn unplaceable(
    model: &Register,
    entries: &[Entry<Op>],
    ops: &[Op],
    stuck: Stuck<Held>,
) -> Violation {
    let op = entries[stuck.op].op.clone();
    let prefix: Vec<Op> = stuck.prefix.iter().map(|&p| entries[p].op.clone()).collect();
    let state = replay(&prefix);
    assert_eq!(model.held(state), stuck.state, "the search's state is the replayed prefix's");
    let candidates = stuck
        .candidates
        .iter()
        .map(|&c| (entries[c].op.clone(), model.why_not(state, &entries[c].op)))
        .collect();
    Violation::Unplaceable { hint: hint(&op, ops), prefix, state, candidates, op }
}

/// A plain reason `op` saw a value it could not have seen, when the history shows one.
fn hint(op: &Op, ops: &[Op]) -> Option<String> {
    let seen = match (op.call, op.outcome) {
        (Call::Read, Outcome::Ok(Return::Read { value: Some(v), .. })) => v,
        (Call::Cas { expect: Some(v), .. }, Outcome::Ok(Return::Applied { .. })) => v,
        _ => return None,
    };
    let Some(writer) = ops.iter().find(|w| w.call.written() == Some(seen)) else {
        return Some(format!("no operation wrote {seen}"));
    };
    if writer.outcome == Outcome::Failed {
        return Some(format!("{seen} was written only by a write that failed: {writer}"));
    }
    if op.end_us.is_some_and(|end| writer.start_us > end) {
        return Some(format!(
            "{seen} was written by an op that started after this one ended: {writer}"
        ));
    }
    None
}

/// How many of the placed operations an explanation shows, the last ones.
const PREFIX_SHOWN: usize = 8;
/// How many of the candidates that fitted (and led nowhere) an explanation shows.
const FITTED_SHOWN: usize = 4;

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::RevisionConflict { what, ops: [a, b] } => {
                write!(f, "{what}:\n    {a}\n    {b}")
            }
            Violation::Unplaceable { op, hint, prefix, state, candidates } => {
                writeln!(f, "no order places {op}")?;
                if let Some(hint) = hint {
                    writeln!(f, "  {hint}")?;
                }
                let skipped = prefix.len().saturating_sub(PREFIX_SHOWN);
                writeln!(
                    f,
                    "  the order that got furthest placed {} ops (last {} shown), leaving {}:",
                    prefix.len(),
                    prefix.len() - skipped,
                    show(*state)
                )?;
                for placed in &prefix[skipped..] {
                    writeln!(f, "    {placed}")?;
                }
                write!(f, "  then none of the ops that could go next fitted:")?;
                let (refused, fitted): (Vec<_>, Vec<_>) =
                    candidates.iter().partition(|(_, why)| why.is_some());
                for (candidate, why) in refused {
                    write!(f, "\n    {candidate}: {}", why.as_deref().unwrap_or_default())?;
                }
                for (candidate, _) in fitted.iter().take(FITTED_SHOWN) {
                    write!(f, "\n    {candidate}: fits, but every order after it failed")?;
                }
                if fitted.len() > FITTED_SHOWN {
                    let more = fitted.len() - FITTED_SHOWN;
                    write!(f, "\n    and {more} more that fit, but every order after them failed")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Report {
    /// The summary, then a paragraph for every key that is not linearizable or undecided.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.summary())?;
        for key in &self.keys {
            match &key.verdict {
                Verdict::Linearizable => {}
                Verdict::Undecided => write!(
                    f,
                    "\nkey {:?}: undecided, the search's budget ran out ({} ops; {} steps, {} KiB of cache)",
                    key.key,
                    key.ops,
                    key.spent.steps,
                    key.spent.cache_bytes >> 10
                )?,
                Verdict::NotLinearizable(violation) => {
                    write!(f, "\nkey {:?}: not linearizable: {violation}", key.key)?
                }
            }
        }
        Ok(())
    }
}
