//! One recorded operation on a register: who ran it, on which key, what it asked, when, and
//! what came of it. This is also a register history's form on disk (JSON lines, see
//! [`crate::chaos::register`]), which is why these types derive `Serialize`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A value the workload writes. Every write of a key writes a value no other op of that key
/// writes, so a value names exactly one write (see the module doc for why that matters).
pub type Value = u64;

/// A key's mod revision: the Raft log index of the write that last changed it.
pub type Revision = u64;

/// What an operation asked of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum Call {
    /// `GET`: the key's value and mod revision, or that it does not exist.
    Read,
    /// An unconditional `PUT` of `value`.
    Write { value: Value },
    /// An unconditional `DELETE`.
    Delete,
    /// A conditional write. `expect`: the value the client read (it sent that value's mod
    /// revision as `If-Match`), or `None` for a create-only write (`If-None-Match: *`). `new`:
    /// the value written, or `None` for a conditional delete.
    Cas { expect: Option<Value>, new: Option<Value> },
}

impl Call {
    /// A compare-and-set from `expect` to `new`.
    pub fn cas(expect: Value, new: Value) -> Call {
        Call::Cas { expect: Some(expect), new: Some(new) }
    }

    /// A create-only write of `new`.
    pub fn create(new: Value) -> Call {
        Call::Cas { expect: None, new: Some(new) }
    }

    /// The value this call writes, if it writes one.
    pub fn written(&self) -> Option<Value> {
        match self {
            Call::Write { value } => Some(*value),
            Call::Cas { new, .. } => *new,
            Call::Read | Call::Delete => None,
        }
    }
}

/// What a completed operation returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "snake_case")]
pub enum Return {
    /// A read: the value found (`None`: no such key) and its mod revision when the server gave
    /// one.
    Read { value: Option<Value>, revision: Option<Revision> },
    /// A write, delete or compare-and-set that took effect, at this revision when known.
    Applied { revision: Option<Revision> },
    /// A compare-and-set refused because the key's mod revision was not the expected one (412),
    /// with the key's revision then when the server reported it.
    Refused { revision: Option<Revision> },
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "return", rename_all = "snake_case")]
pub enum Outcome {
    /// It happened, between its start and its end, and returned this.
    Ok(Return),
    /// It definitely did not happen (refused before it could take effect).
    Failed,
    /// It may have happened, at any moment after its start, even long after the client gave up
    /// (a timeout, a 503 on a write, a lost connection).
    Unknown,
}

/// One operation of a register history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// The client that ran it.
    pub client: u32,
    pub key: String,
    pub call: Call,
    /// Microseconds since the run started, taken before the request left.
    pub start_us: u64,
    /// Microseconds since the run started, taken after the answer (or its absence) was known.
    /// Required for `Ok` and `Failed`; an `Unknown` op's end is treated as +infinity whatever
    /// was recorded.
    pub end_us: Option<u64>,
    pub outcome: Outcome,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = |v: &Option<Value>| v.map_or("none".to_string(), |v| v.to_string());
        match self {
            Call::Read => write!(f, "read"),
            Call::Write { value } => write!(f, "write {value}"),
            Call::Delete => write!(f, "delete"),
            Call::Cas { expect: None, new } => write!(f, "create {}", value(new)),
            Call::Cas { expect, new } => write!(f, "cas {}->{}", value(expect), value(new)),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let revision = |r: &Option<Revision>| r.map_or(String::new(), |r| format!(" @{r}"));
        match self {
            Outcome::Ok(Return::Read { value: Some(v), revision: r }) => {
                write!(f, "-> {v}{}", revision(r))
            }
            Outcome::Ok(Return::Read { value: None, .. }) => write!(f, "-> none"),
            Outcome::Ok(Return::Applied { revision: r }) => write!(f, "ok{}", revision(r)),
            Outcome::Ok(Return::Refused { revision: r }) => write!(f, "refused{}", revision(r)),
            Outcome::Failed => write!(f, "failed"),
            Outcome::Unknown => write!(f, "unknown"),
        }
    }
}

/// Microseconds as milliseconds with three decimals.
fn ms(us: u64) -> String {
    format!("{}.{:03}", us / 1000, us % 1000)
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = match (self.outcome, self.end_us) {
            (Outcome::Unknown, _) | (_, None) => "inf".to_string(),
            (_, Some(end)) => ms(end),
        };
        write!(
            f,
            "client {} {} {} [{} ms, {} ms]",
            self.client,
            self.call,
            self.outcome,
            ms(self.start_us),
            end
        )
    }
}
