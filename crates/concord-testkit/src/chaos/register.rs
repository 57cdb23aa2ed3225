//! The register workload on a strong namespace (issue 22): clients read, write and
//! compare-and-set a few keys through random nodes, every operation is recorded with its
//! interval and outcome, and [`check_registers`] judges the history with the
//! [linearizability checker](crate::linearizability).
//!
//! - [`RegisterRecorder`]: records each op when it starts (as unknown, so an op cut short by
//!   the end of a run stays unknown) and completes it when its answer is known.
//! - [`RegisterHistory`]: the recorded ops, as JSON lines (one [`Op`] a line).
//! - [`RegisterStore`]: the seam to the server. The workload needs only a linearizable read
//!   that returns the value and its mod revision, and a write that may be conditional on a
//!   revision or on the key's absence. The HTTP implementation (through `concord-client`,
//!   once strong namespaces exist) maps answers to [`StoreError`]; see its doc.
//! - [`register_client`]: one client's loop over a store per node.

use std::future::Future;
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use crate::linearizability::{
    Call, CheckOptions, HistoryError, Op, Outcome, Report, Return, Revision, Value, check,
};

/// The namespace of the register workload (strong).
pub const REGISTER_NS: &str = "chaos-register";

/// A value read with its mod revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versioned {
    pub value: Value,
    pub revision: Revision,
}

/// What a write requires of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Nothing: an unconditional write.
    None,
    /// `If-Match: "<revision>"`: the key's mod revision is this one.
    Revision(Revision),
    /// `If-None-Match: *`: the key does not exist.
    Absent,
}

/// How a request to the store failed, as far as the client can know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// 412: the precondition did not hold, so nothing was written; the key's mod revision
    /// when the server reported it (`details` of the 412).
    PreconditionFailed { revision: Option<Revision> },
    /// Definitely not applied: refused before anything could be written (a 4xx other than 408
    /// and 412: see [`crate::chaos::workload::write_outcome`]).
    Refused,
    /// May or may not have been applied: a timeout, a 503 (a leader may have appended the
    /// entry before losing its quorum), a lost connection, an answer that did not decode.
    Indeterminate,
}

/// The server as the register workload sees it: one node's view of the strong namespace
/// [`REGISTER_NS`]. Values are decimal `u64`s.
///
/// Implementations must not retry a conditional write on their own: a retry of an applied
/// write finds its own revision and answers 412, turning a success into a refusal (if the
/// transport must retry, answer [`StoreError::Indeterminate`] instead).
pub trait RegisterStore: Send + Sync + 'static {
    /// A linearizable read: the value and its mod revision, or `None` when there is no key.
    fn read(&self, key: &str)
    -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send;

    /// Writes `value` if `precondition` holds; the revision the write got.
    fn write(
        &self,
        key: &str,
        value: Value,
        precondition: Precondition,
    ) -> impl Future<Output = Result<Revision, StoreError>> + Send;
}

/// The ops of a register workload, recorded as they start and completed as they end.
pub struct RegisterRecorder {
    started: Instant,
    ops: Mutex<Vec<Op>>,
}

/// An op started and not completed yet: pass it back to [`RegisterRecorder::finish`].
#[must_use = "an op left pending stays unknown"]
pub struct Pending {
    index: usize,
}

impl RegisterRecorder {
    pub fn new() -> Arc<RegisterRecorder> {
        Arc::new(RegisterRecorder { started: Instant::now(), ops: Mutex::new(Vec::new()) })
    }

    fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    /// Records `call` as started now, with an unknown outcome until it is finished. Call it
    /// before the request leaves.
    pub fn begin(&self, client: u32, key: &str, call: Call) -> Pending {
        let mut ops = self.ops.lock().expect("register history lock");
        let start_us = self.now_us();
        let op = Op {
            client,
            key: key.to_owned(),
            call,
            start_us,
            end_us: None,
            outcome: Outcome::Unknown,
        };
        ops.push(op);
        Pending { index: ops.len() - 1 }
    }

    /// Completes an op now, after its answer (or the lack of one) is known.
    pub fn finish(&self, pending: Pending, outcome: Outcome) {
        let end_us = self.now_us();
        let mut ops = self.ops.lock().expect("register history lock");
        let op = &mut ops[pending.index];
        op.end_us = Some(end_us);
        op.outcome = outcome;
    }

    pub fn history(&self) -> RegisterHistory {
        RegisterHistory { ops: self.ops.lock().expect("register history lock").clone() }
    }
}

/// A register history, in the order ops started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterHistory {
    pub ops: Vec<Op>,
}

impl RegisterHistory {
    /// Writes the history as JSON lines, one op a line.
    pub fn write_jsonl(&self, out: &mut impl Write) -> std::io::Result<()> {
        for op in &self.ops {
            serde_json::to_writer(&mut *out, op)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Reads a history written by [`RegisterHistory::write_jsonl`].
    pub fn read_jsonl(input: impl BufRead) -> anyhow::Result<RegisterHistory> {
        let mut ops = Vec::new();
        for (n, line) in input.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let op = serde_json::from_str(&line)
                .map_err(|e| anyhow::anyhow!("register history line {}: {e}", n + 1))?;
            ops.push(op);
        }
        Ok(RegisterHistory { ops })
    }

    /// How many ops completed ok, failed, or with an unknown outcome.
    pub fn counts(&self) -> (usize, usize, usize) {
        let count =
            |which: fn(&Outcome) -> bool| self.ops.iter().filter(|op| which(&op.outcome)).count();
        (
            count(|o| matches!(o, Outcome::Ok(_))),
            count(|o| *o == Outcome::Failed),
            count(|o| *o == Outcome::Unknown),
        )
    }
}

/// Judges a register history key by key; [`Report::summary`] is the soak's one-line count
/// (`linearizable=K undecided=U violations=V`) and the report's `Display` explains each key
/// that is not linearizable. An error means the history breaks the checker's premises (a
/// workload bug, such as a value written twice), not a verdict on the server.
pub fn check_registers(
    history: &RegisterHistory,
    options: CheckOptions,
) -> Result<Report, HistoryError> {
    check(&history.ops, options)
}

/// Values one client may write in a run; it stops when they are used up (a 30 s run writes a
/// few thousand).
const VALUES_PER_CLIENT: u64 = 1_000_000;

/// A client's pause after an error, so that a node refusing at once does not turn the client
/// into a busy loop that starves the nodes of CPU.
const ERROR_PAUSE: Duration = Duration::from_millis(50);

/// The register client `process`: until `stop` (or its values run out), through a random node each time, on a random
/// key of `reg-0..reg-{keys}`: a read (half the time), an unconditional write of a fresh value
/// (a fifth), or a compare-and-set: a read, then a write of a fresh value conditional on the
/// revision read (create-only when the key was missing). Every read and write is recorded.
pub async fn register_client<S: RegisterStore>(
    process: u32,
    nodes: Vec<S>,
    keys: usize,
    seed: u64,
    recorder: Arc<RegisterRecorder>,
    stop: watch::Receiver<bool>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    // Values are unique per client and counter, so a value names one write (the checker's
    // premise, see `crate::linearizability`), and read well: 3000012 is client 3's 12th.
    let mut counter = 0u64;
    while !*stop.borrow() && counter + 1 < VALUES_PER_CLIENT {
        let node = &nodes[rng.random_range(0..nodes.len())];
        let key = format!("reg-{}", rng.random_range(0..keys));
        counter += 1;
        let fresh = u64::from(process) * VALUES_PER_CLIENT + counter;
        let ok = match rng.random_range(0..10) {
            0..5 => read(process, node, &key, &recorder).await.is_ok(),
            5..7 => write(process, node, &key, fresh, None, &recorder).await,
            _ => match read(process, node, &key, &recorder).await {
                Ok(found) => write(process, node, &key, fresh, Some(found), &recorder).await,
                Err(()) => false,
            },
        };
        if !ok {
            tokio::time::sleep(ERROR_PAUSE).await;
        }
    }
}

/// A recorded read; `Err` when it failed (a failed read has no effect, so it is `Failed`).
async fn read<S: RegisterStore>(
    process: u32,
    node: &S,
    key: &str,
    recorder: &RegisterRecorder,
) -> Result<Option<Versioned>, ()> {
    let pending = recorder.begin(process, key, Call::Read);
    let found = node.read(key).await;
    let outcome = match found {
        Ok(found) => Outcome::Ok(Return::Read {
            value: found.map(|f| f.value),
            revision: found.map(|f| f.revision),
        }),
        Err(_) => Outcome::Failed,
    };
    recorder.finish(pending, outcome);
    found.map_err(|_| ())
}

/// A recorded write of `value`: unconditional when `read` is `None`, else conditional on what
/// was read (its revision, or the key's absence). True when it got an answer.
async fn write<S: RegisterStore>(
    process: u32,
    node: &S,
    key: &str,
    value: Value,
    read: Option<Option<Versioned>>,
    recorder: &RegisterRecorder,
) -> bool {
    let (call, precondition) = match read {
        None => (Call::Write { value }, Precondition::None),
        Some(None) => (Call::create(value), Precondition::Absent),
        Some(Some(found)) => {
            (Call::cas(found.value, value), Precondition::Revision(found.revision))
        }
    };
    let pending = recorder.begin(process, key, call);
    let outcome = match node.write(key, value, precondition).await {
        Ok(revision) => Outcome::Ok(Return::Applied { revision: Some(revision) }),
        Err(StoreError::PreconditionFailed { revision }) if precondition != Precondition::None => {
            Outcome::Ok(Return::Refused { revision })
        }
        // A 412 on an unconditional write says it was not applied: if it was, the checker
        // finds its value read later.
        Err(StoreError::PreconditionFailed { .. } | StoreError::Refused) => Outcome::Failed,
        Err(StoreError::Indeterminate) => Outcome::Unknown,
    };
    let answered = matches!(outcome, Outcome::Ok(_));
    recorder.finish(pending, outcome);
    answered
}

#[cfg(test)]
mod tests;
