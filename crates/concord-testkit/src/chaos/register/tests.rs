//! The register workload against in-memory stores: one linearizable (with answers lost on
//! the way back, some after applying), one that serves stale reads. The recorder and checker
//! must pass the first and catch the second.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

/// A store of every key in one map, each call applied atomically between two yields (so
/// clients interleave), stopping the run after `stop_after` calls.
struct Inner {
    keys: Mutex<HashMap<String, Versioned>>,
    /// When lagging: a copy refreshed every fourth write, which serves every other read.
    stale: Option<Mutex<HashMap<String, Versioned>>>,
    revision: AtomicU64,
    calls: AtomicU64,
    stop_after: u64,
    stop: watch::Sender<bool>,
}

#[derive(Clone)]
struct Memory(Arc<Inner>);

impl Memory {
    fn new(stale: bool, stop_after: u64) -> (Memory, watch::Receiver<bool>) {
        let (stop, stopped) = watch::channel(false);
        let inner = Inner {
            keys: Mutex::new(HashMap::new()),
            stale: stale.then(|| Mutex::new(HashMap::new())),
            revision: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            stop_after,
            stop,
        };
        (Memory(Arc::new(inner)), stopped)
    }

    fn call(&self) -> u64 {
        let n = self.0.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.0.stop_after {
            let _ = self.0.stop.send(true);
        }
        n
    }

    fn apply(
        &self,
        key: &str,
        value: Value,
        precondition: Precondition,
    ) -> Result<Revision, StoreError> {
        let mut keys = self.0.keys.lock().unwrap();
        let current = keys.get(key).copied();
        let holds = match precondition {
            Precondition::None => true,
            Precondition::Revision(r) => current.is_some_and(|c| c.revision == r),
            Precondition::Absent => current.is_none(),
        };
        if !holds {
            return Err(StoreError::PreconditionFailed { revision: current.map(|c| c.revision) });
        }
        let revision = self.0.revision.fetch_add(1, Ordering::SeqCst) + 1;
        keys.insert(key.to_owned(), Versioned { value, revision });
        if let Some(stale) = &self.0.stale
            && revision.is_multiple_of(4)
        {
            *stale.lock().unwrap() = keys.clone();
        }
        Ok(revision)
    }
}

impl RegisterStore for Memory {
    async fn read(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        tokio::task::yield_now().await;
        let n = self.call();
        let found = match &self.0.stale {
            Some(stale) if n.is_multiple_of(2) => stale.lock().unwrap().get(key).copied(),
            _ => self.0.keys.lock().unwrap().get(key).copied(),
        };
        tokio::task::yield_now().await;
        Ok(found)
    }

    async fn write(
        &self,
        key: &str,
        value: Value,
        precondition: Precondition,
    ) -> Result<Revision, StoreError> {
        tokio::task::yield_now().await;
        let n = self.call();
        // Every seventh call's answer is lost: after applying it, or before.
        let answer = if n % 14 == 7 {
            Err(StoreError::Indeterminate)
        } else {
            self.apply(key, value, precondition)
        };
        tokio::task::yield_now().await;
        match answer {
            Ok(_) if n.is_multiple_of(14) => Err(StoreError::Indeterminate),
            answer => answer,
        }
    }
}

/// Runs `clients` register clients over two nodes of `store` until it stops them.
async fn run(store: Memory, stopped: watch::Receiver<bool>, clients: u32) -> RegisterHistory {
    let recorder = RegisterRecorder::new();
    let seed = crate::seed("register workload");
    let mut seeds = StdRng::seed_from_u64(seed);
    let mut tasks = Vec::new();
    for process in 0..clients {
        let nodes = vec![store.clone(), store.clone()];
        let task =
            register_client(process, nodes, 3, seeds.random(), recorder.clone(), stopped.clone());
        tasks.push(tokio::spawn(task));
    }
    for task in tasks {
        task.await.unwrap();
    }
    recorder.history()
}

#[tokio::test]
async fn a_linearizable_store_gives_a_linearizable_history() {
    let (store, stopped) = Memory::new(false, 600);
    let history = run(store, stopped, 4).await;
    let (ok, failed, unknown) = history.counts();
    println!("{} ops: {ok} ok, {failed} failed, {unknown} unknown", history.ops.len());
    let refused = history
        .ops
        .iter()
        .filter(|op| matches!(op.outcome, Outcome::Ok(Return::Refused { .. })))
        .count();
    assert!(unknown > 0 && refused > 0, "the run should have lost answers and refused CAS");
    let report = check_registers(&history, CheckOptions::default()).unwrap();
    println!("{report}");
    assert_eq!(report.summary(), "linearizable=3 undecided=0 violations=0");
}

#[tokio::test]
async fn a_store_serving_stale_reads_is_caught() {
    let (store, stopped) = Memory::new(true, 600);
    let history = run(store, stopped, 4).await;
    let report = check_registers(&history, CheckOptions::default()).unwrap();
    println!("{report}");
    assert!(report.violations() > 0, "{}", report.summary());
    assert!(report.to_string().contains("not linearizable: no order places"), "{report}");
}

#[test]
fn an_op_never_finished_stays_unknown_and_histories_round_trip() {
    let recorder = RegisterRecorder::new();
    let read = recorder.begin(1, "reg-0", Call::Read);
    let _cut_short = recorder.begin(2, "reg-0", Call::Write { value: 7 });
    recorder.finish(read, Outcome::Ok(Return::Read { value: None, revision: None }));
    let history = recorder.history();
    assert_eq!(history.counts(), (1, 0, 1));
    let unfinished = &history.ops[1];
    assert_eq!((unfinished.outcome, unfinished.end_us), (Outcome::Unknown, None));
    let mut bytes = Vec::new();
    history.write_jsonl(&mut bytes).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.lines().next().unwrap().contains(r#""outcome":"ok","return":{"r":"read""#),
        "{text}"
    );
    assert_eq!(RegisterHistory::read_jsonl(bytes.as_slice()).unwrap(), history);
    let report = check_registers(&history, CheckOptions::default()).unwrap();
    assert_eq!(report.summary(), "linearizable=1 undecided=0 violations=0");
    let err = RegisterHistory::read_jsonl(&b"{\"client\":1}\n"[..]).unwrap_err();
    assert!(err.to_string().contains("register history line 1"), "{err}");
}
