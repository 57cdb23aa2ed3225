//! The pure apply logic of a strong group: one key's record and one command in, the key's new
//! record and the command's response out. No I/O, no clock: the state machine
//! ([`crate::state_machine`]) reads the record, calls [`apply`], and writes the effect.
//!
//! Revisions are the group's log indexes: the entry at index `i` writes records whose
//! `mod_revision` is `i`, so a key's mod revision only grows, and two writes of a key never
//! share one.

use crate::command::{Change, Command, DeleteCondition, PutCondition, Record, Response};

/// What applying a command does to its key's stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Nothing to write.
    Unchanged,
    /// Store this record for the key.
    Write(Record),
    /// Remove the key's record.
    Remove,
}

/// The outcome of applying one command: what to store and what to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub effect: Effect,
    pub response: Response,
}

/// Applies `command`, the entry at log index `revision`, to its key's `current` record.
///
/// Panics if `revision` is not past the record's mod revision: entries are applied in log
/// order, so that would be a bug, not bad input.
pub fn apply(current: Option<&Record>, command: &Command, revision: u64) -> Transition {
    if let Some(record) = current {
        assert!(
            revision > record.mod_revision,
            "entry {revision} applied over a record written at {}",
            record.mod_revision
        );
    }
    match command {
        Command::Put { value, condition, .. } => {
            let holds = match (condition, current) {
                (PutCondition::None, _) => true,
                (PutCondition::IfMatch(expected), Some(record)) => record.mod_revision == *expected,
                (PutCondition::IfMatch(_), None) => false,
                (PutCondition::CreateOnly, current) => current.is_none(),
            };
            if !holds {
                return precondition_failed(current);
            }
            let record = match current {
                Some(old) => Record {
                    value: value.clone(),
                    create_revision: old.create_revision,
                    mod_revision: revision,
                    version: old.version + 1,
                },
                None => Record {
                    value: value.clone(),
                    create_revision: revision,
                    mod_revision: revision,
                    version: 1,
                },
            };
            let response = Response::Applied { change: Change::Written(record.clone()), revision };
            Transition { effect: Effect::Write(record), response }
        }
        Command::Delete { condition, .. } => {
            let holds = match (condition, current) {
                (DeleteCondition::None, _) => true,
                (DeleteCondition::IfMatch(expected), Some(record)) => {
                    record.mod_revision == *expected
                }
                (DeleteCondition::IfMatch(_), None) => false,
            };
            if !holds {
                return precondition_failed(current);
            }
            let existed = current.is_some();
            let effect = if existed { Effect::Remove } else { Effect::Unchanged };
            Transition {
                effect,
                response: Response::Applied { change: Change::Deleted { existed }, revision },
            }
        }
    }
}

fn precondition_failed(current: Option<&Record>) -> Transition {
    Transition {
        effect: Effect::Unchanged,
        response: Response::PreconditionFailed {
            current_mod_revision: current.map(|record| record.mod_revision),
        },
    }
}

#[cfg(test)]
mod tests;
