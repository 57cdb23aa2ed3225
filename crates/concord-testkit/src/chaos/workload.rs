//! Workload clients. Each records every operation in the shared history: the invocation before
//! the request leaves, the completion when the answer (or the lack of one) is known.
//!
//! - *set*: add a unique element to one of a few keys by read-modify-write with the read's
//!   context; the value is the comma-separated elements, siblings are united on read.
//! - *read-your-writes*: each client owns one key of the strict namespace and alternates a read
//!   and a write of the next number with the read's context.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use concord_client::{Client, Error, GetOptions, GetResult, WriteOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use super::history::{History, Op, Phase};

/// The namespace of the set workload (N=3, sibling conflicts, sloppy quorums).
pub const SET_NS: &str = "chaos-set";
/// The namespace of the read-your-writes workload (N=3, strict quorums).
pub const RW_NS: &str = "chaos-rw";

/// The shared history, stamped with milliseconds since the run started.
pub struct Recorder {
    started: Instant,
    history: Mutex<History>,
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder { started: Instant::now(), history: Mutex::new(History::default()) })
    }

    pub fn record(&self, process: u32, phase: Phase, op: Op) {
        let at_ms = self.started.elapsed().as_millis() as u64;
        self.history.lock().expect("history lock").push(process, phase, op, at_ms);
    }

    pub fn history(&self) -> History {
        self.history.lock().expect("history lock").clone()
    }
}

/// How a failed write completes: definitely not applied (the server refused it with a 4xx
/// before any replica took it), or unknown (no answer, a timeout, or too few replicas: the
/// ones that answered hold it).
pub fn write_outcome(error: &Error) -> Phase {
    match error.status() {
        Some(status) if (400..500).contains(&status) && status != 408 => Phase::Fail,
        _ => Phase::Unknown,
    }
}

/// Every number stored under a key, siblings united; the read's context.
pub fn numbers(read: &GetResult) -> (BTreeSet<u64>, Option<String>) {
    let parse = |bytes: &[u8]| -> Vec<u64> {
        String::from_utf8_lossy(bytes).split(',').filter_map(|n| n.trim().parse().ok()).collect()
    };
    let found = match read {
        GetResult::NotFound { .. } => BTreeSet::new(),
        GetResult::Value { value, .. } => parse(value).into_iter().collect(),
        GetResult::Siblings { siblings, .. } => {
            siblings.iter().flat_map(|s| parse(&s.value)).collect()
        }
    };
    (found, read.context().map(str::to_owned))
}

fn encode(numbers: &BTreeSet<u64>) -> String {
    numbers.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// A client's pause after a failed read, so that a dead or unreachable node (refusing at once)
/// does not turn the client into a busy loop that starves the nodes of CPU.
async fn backoff() {
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}

fn write_options() -> WriteOptions {
    WriteOptions { timeout_ms: Some(2000), ..Default::default() }
}

/// The set workload's client `process`: adds unique elements to `set-0..set-{keys}` through
/// random nodes until `stop`.
pub async fn set_client(
    process: u32,
    nodes: Vec<Client>,
    keys: usize,
    seed: u64,
    recorder: Arc<Recorder>,
    stop: watch::Receiver<bool>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut counter = 0u64;
    while !*stop.borrow() {
        let client = &nodes[rng.random_range(0..nodes.len())];
        let key = format!("set-{}", rng.random_range(0..keys));
        counter += 1;
        let element = (u64::from(process) << 32) | counter;
        let op = Op::Add { key: key.clone(), element };
        recorder.record(process, Phase::Invoke, op.clone());
        let read = match client.get(SET_NS, key.as_bytes(), GetOptions::default()).await {
            Ok(read) => read,
            Err(_) => {
                // Nothing was written: the add definitely did not happen.
                recorder.record(process, Phase::Fail, op);
                backoff().await;
                continue;
            }
        };
        let (mut elements, context) = numbers(&read);
        elements.insert(element);
        let value = encode(&elements);
        let put =
            client.put(SET_NS, key.as_bytes(), value, None, context.as_deref(), write_options());
        let phase = match put.await {
            Ok(_) => Phase::Ok,
            Err(e) => write_outcome(&e),
        };
        recorder.record(process, phase, op);
    }
}

/// The read-your-writes client `process`: reads its key `rw-{process}` and writes the next
/// number with the read's context, through random nodes, until `stop`.
pub async fn rw_client(
    process: u32,
    nodes: Vec<Client>,
    seed: u64,
    recorder: Arc<Recorder>,
    stop: watch::Receiver<bool>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let key = format!("rw-{process}");
    let mut next = 1u64;
    while !*stop.borrow() {
        let client = &nodes[rng.random_range(0..nodes.len())];
        recorder.record(process, Phase::Invoke, Op::Read { key: key.clone(), values: None });
        let context = match client.get(RW_NS, key.as_bytes(), GetOptions::default()).await {
            Ok(read) => {
                let (values, context) = numbers(&read);
                let values = Some(values.into_iter().collect());
                recorder.record(process, Phase::Ok, Op::Read { key: key.clone(), values });
                context
            }
            Err(_) => {
                recorder.record(process, Phase::Fail, Op::Read { key: key.clone(), values: None });
                backoff().await;
                continue;
            }
        };
        let op = Op::Write { key: key.clone(), value: next };
        recorder.record(process, Phase::Invoke, op.clone());
        let value = next.to_string();
        let put =
            client.put(RW_NS, key.as_bytes(), value, None, context.as_deref(), write_options());
        let phase = match put.await {
            Ok(_) => Phase::Ok,
            Err(e) => write_outcome(&e),
        };
        recorder.record(process, phase, op);
        next += 1;
    }
}

#[cfg(test)]
mod tests {
    use concord_client::SiblingValue;

    use super::*;

    #[test]
    fn siblings_are_united_and_refusals_are_definite() {
        let sibling = |v: &str| SiblingValue {
            value: v.as_bytes().to_vec(),
            content_type: String::new(),
            timestamp_ms: None,
        };
        let read = GetResult::Siblings {
            siblings: vec![sibling("1,2"), sibling("2,5")],
            context: "c".into(),
        };
        let (found, context) = numbers(&read);
        assert_eq!(found, BTreeSet::from([1, 2, 5]));
        assert_eq!(context.as_deref(), Some("c"));
        assert_eq!(encode(&found), "1,2,5");
        let api = |status| Error::Api {
            status,
            code: String::new(),
            message: String::new(),
            details: serde_json::Value::Null,
        };
        assert_eq!(write_outcome(&api(409)), Phase::Fail);
        assert_eq!(write_outcome(&api(503)), Phase::Unknown);
        assert_eq!(write_outcome(&api(408)), Phase::Unknown);
        assert_eq!(write_outcome(&Error::Decode("x".into())), Phase::Unknown);
    }
}
