//! Checkers: pure functions from a recorded history (and the final reads made after heal and
//! quiescence) to a verdict. Each is tested on hand-made histories that must pass and must fail.

use std::collections::{BTreeMap, BTreeSet};

use super::history::{History, Op, Phase};

/// The verdict of the set workload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetReport {
    /// Adds acknowledged to the client.
    pub acknowledged: usize,
    /// Acknowledged elements missing from the final read: lost writes.
    pub lost: Vec<(String, u64)>,
    /// Elements whose add had an unknown outcome and that are present: they took effect.
    pub recovered: usize,
    /// Elements present that no client attempted, or whose add definitely failed.
    pub unexpected: Vec<(String, u64)>,
}

impl SetReport {
    pub fn valid(&self) -> bool {
        self.lost.is_empty() && self.unexpected.is_empty()
    }
}

/// Checks the set workload: every acknowledged element is in the final read of its key, and
/// nothing is there that was not attempted (or definitely failed). `finals` maps each key to
/// the elements a read with R=N returned after heal (values and siblings together).
pub fn check_sets(history: &History, finals: &BTreeMap<String, BTreeSet<u64>>) -> SetReport {
    let mut report = SetReport::default();
    let mut outcome: BTreeMap<(String, u64), Phase> = BTreeMap::new();
    for (_, phase, op) in history.operations() {
        if let Op::Add { key, element } = op {
            outcome.insert((key.clone(), *element), phase);
        }
    }
    for ((key, element), phase) in &outcome {
        let present = finals.get(key).is_some_and(|found| found.contains(element));
        match (phase, present) {
            (Phase::Ok, true) => report.acknowledged += 1,
            (Phase::Ok, false) => {
                report.acknowledged += 1;
                report.lost.push((key.clone(), *element));
            }
            (Phase::Unknown | Phase::Invoke, true) => report.recovered += 1,
            (Phase::Fail, true) => report.unexpected.push((key.clone(), *element)),
            (_, false) => {}
        }
    }
    for (key, found) in finals {
        for element in found {
            if !outcome.contains_key(&(key.clone(), *element)) {
                report.unexpected.push((key.clone(), *element));
            }
        }
    }
    report
}

/// A read that missed its own client's acknowledged write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleRead {
    pub process: u32,
    pub key: String,
    /// The client's last acknowledged write of the key before the read was invoked.
    pub expected_at_least: u64,
    pub read: Vec<u64>,
}

/// Checks read-your-writes for keys each written by one client with increasing values: a read
/// invoked after that client's write of `v` was acknowledged must return `v` or a later value
/// of the same client (a sibling counts). Reads of other clients are not constrained.
pub fn check_read_your_writes(history: &History) -> Vec<StaleRead> {
    let mut acked: BTreeMap<(u32, String), u64> = BTreeMap::new();
    let mut stale = Vec::new();
    // Completions are in the history in real-time order: walking the events in order, the
    // acknowledged writes seen so far are exactly those completed before each invocation.
    let mut pending_reads: BTreeMap<u32, u64> = BTreeMap::new();
    for event in &history.events {
        match (&event.op, event.phase) {
            (Op::Write { key, value }, Phase::Ok) => {
                let last = acked.entry((event.process, key.clone())).or_default();
                *last = (*last).max(*value);
            }
            (Op::Read { key, .. }, Phase::Invoke) => {
                let floor = acked.get(&(event.process, key.clone())).copied().unwrap_or(0);
                pending_reads.insert(event.process, floor);
            }
            (Op::Read { key, values: Some(values) }, Phase::Ok) => {
                let floor = pending_reads.remove(&event.process).unwrap_or(0);
                if floor > 0 && !values.iter().any(|v| *v >= floor) {
                    stale.push(StaleRead {
                        process: event.process,
                        key: key.clone(),
                        expected_at_least: floor,
                        read: values.clone(),
                    });
                }
            }
            _ => {}
        }
    }
    stale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(history: &mut History, process: u32, element: u64, done: Phase) {
        let op = Op::Add { key: "k".into(), element };
        history.push(process, Phase::Invoke, op.clone(), 0);
        history.push(process, done, op, 1);
    }

    fn finals(elements: &[u64]) -> BTreeMap<String, BTreeSet<u64>> {
        BTreeMap::from([("k".to_string(), elements.iter().copied().collect())])
    }

    #[test]
    fn a_set_holding_every_acknowledged_element_passes() {
        let mut history = History::default();
        add(&mut history, 1, 1, Phase::Ok);
        add(&mut history, 2, 2, Phase::Unknown);
        add(&mut history, 1, 3, Phase::Unknown);
        add(&mut history, 2, 4, Phase::Fail);
        let report = check_sets(&history, &finals(&[1, 2]));
        assert!(report.valid(), "{report:?}");
        assert_eq!((report.acknowledged, report.recovered), (1, 1));
    }

    #[test]
    fn a_lost_acknowledged_element_fails() {
        let mut history = History::default();
        add(&mut history, 1, 1, Phase::Ok);
        add(&mut history, 1, 2, Phase::Ok);
        let report = check_sets(&history, &finals(&[2]));
        assert!(!report.valid());
        assert_eq!(report.lost, vec![("k".to_string(), 1)]);
    }

    #[test]
    fn an_element_never_added_or_definitely_failed_is_unexpected() {
        let mut history = History::default();
        add(&mut history, 1, 1, Phase::Ok);
        add(&mut history, 1, 2, Phase::Fail);
        let report = check_sets(&history, &finals(&[1, 2, 9]));
        assert_eq!(report.unexpected, vec![("k".to_string(), 2), ("k".to_string(), 9)]);
        assert!(report.lost.is_empty() && !report.valid());
    }

    fn write(history: &mut History, process: u32, value: u64, done: Phase) {
        let op = Op::Write { key: format!("rw-{process}"), value };
        history.push(process, Phase::Invoke, op.clone(), 0);
        history.push(process, done, op, 1);
    }

    fn read(history: &mut History, process: u32, key: &str, values: &[u64]) {
        history.push(process, Phase::Invoke, Op::Read { key: key.into(), values: None }, 0);
        let done = Op::Read { key: key.into(), values: Some(values.to_vec()) };
        history.push(process, Phase::Ok, done, 1);
    }

    #[test]
    fn reads_that_see_the_own_last_write_or_later_pass() {
        let mut history = History::default();
        write(&mut history, 1, 1, Phase::Ok);
        read(&mut history, 1, "rw-1", &[1]);
        write(&mut history, 1, 2, Phase::Unknown);
        read(&mut history, 1, "rw-1", &[1]);
        write(&mut history, 1, 3, Phase::Ok);
        read(&mut history, 1, "rw-1", &[2, 3]);
        // Another client's view of the key is not constrained.
        read(&mut history, 2, "rw-1", &[]);
        assert_eq!(check_read_your_writes(&history), Vec::new());
    }

    #[test]
    fn a_read_missing_the_own_acknowledged_write_fails() {
        let mut history = History::default();
        write(&mut history, 1, 1, Phase::Ok);
        write(&mut history, 1, 2, Phase::Ok);
        read(&mut history, 1, "rw-1", &[1]);
        read(&mut history, 1, "rw-1", &[]);
        let stale = check_read_your_writes(&history);
        assert_eq!(stale.len(), 2, "{stale:?}");
        assert_eq!(stale[0].expected_at_least, 2);
        assert_eq!(stale[1].read, Vec::<u64>::new());
    }

    #[test]
    fn a_write_acknowledged_only_after_the_read_began_does_not_bind_it() {
        let mut history = History::default();
        let op = Op::Write { key: "rw-1".into(), value: 1 };
        // Process 1's write and read cannot overlap; model a read by process 1 invoked before
        // its own write completed by ordering: invoke read, complete it, then the write's ack.
        history.push(1, Phase::Invoke, Op::Read { key: "rw-1".into(), values: None }, 0);
        history.push(1, Phase::Ok, Op::Read { key: "rw-1".into(), values: Some(vec![]) }, 1);
        history.push(1, Phase::Invoke, op.clone(), 2);
        history.push(1, Phase::Ok, op, 3);
        assert_eq!(check_read_your_writes(&history), Vec::new());
    }
}
