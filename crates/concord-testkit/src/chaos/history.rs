//! Recorded histories: every client operation as an invocation and then its completion (ok,
//! fail, or unknown when the outcome cannot be known, as after a timeout or a 503 on a write),
//! written as JSON lines. The checkers read nothing else, so a history file is a complete,
//! replayable account of what clients saw.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

/// What happened to an operation: its invocation, or how it completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Invoke,
    /// Completed and acknowledged.
    Ok,
    /// Definitely did not take effect (refused before any replica took it).
    Fail,
    /// May or may not have taken effect (timeout, quorum not reached on a write).
    Unknown,
}

/// One operation of a workload. A completion repeats its invocation's operation, with what a
/// read returned filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum Op {
    /// Add a unique `element` to the set stored under `key` (read, then write with the context).
    Add { key: String, element: u64 },
    /// Write `value` to `key`, which only this client writes, with strict quorums.
    Write { key: String, value: u64 },
    /// Read `key`: every value found (siblings included), once completed.
    Read { key: String, values: Option<Vec<u64>> },
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Add { key, .. } | Op::Write { key, .. } | Op::Read { key, .. } => key,
        }
    }
}

/// One line of a history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The client that ran the operation; its operations never overlap.
    pub process: u32,
    pub phase: Phase,
    pub op: Op,
    /// Milliseconds since the schedule started.
    pub at_ms: u64,
}

/// A whole history, in the order events happened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub events: Vec<Event>,
}

impl History {
    pub fn push(&mut self, process: u32, phase: Phase, op: Op, at_ms: u64) {
        self.events.push(Event { process, phase, op, at_ms });
    }

    /// Writes the history as JSON lines.
    pub fn write_jsonl(&self, out: &mut impl Write) -> std::io::Result<()> {
        for event in &self.events {
            serde_json::to_writer(&mut *out, event)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Reads a history written by [`History::write_jsonl`].
    pub fn read_jsonl(input: impl BufRead) -> anyhow::Result<History> {
        let mut events = Vec::new();
        for (n, line) in input.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let event = serde_json::from_str(&line)
                .map_err(|e| anyhow::anyhow!("history line {}: {e}", n + 1))?;
            events.push(event);
        }
        Ok(History { events })
    }

    /// Each operation as (invocation, completion); an operation never completed (the run
    /// stopped first) completes as unknown.
    pub fn operations(&self) -> Vec<(&Event, Phase, &Op)> {
        let mut open: std::collections::HashMap<u32, usize> = Default::default();
        let mut ops: Vec<(&Event, Phase, &Op)> = Vec::new();
        for event in &self.events {
            match event.phase {
                Phase::Invoke => {
                    open.insert(event.process, ops.len());
                    ops.push((event, Phase::Unknown, &event.op));
                }
                done => {
                    if let Some(i) = open.remove(&event.process) {
                        ops[i].1 = done;
                        ops[i].2 = &event.op;
                    }
                }
            }
        }
        ops
    }

    /// How many operations completed ok, failed, or with an unknown outcome.
    pub fn counts(&self) -> (usize, usize, usize) {
        let ops = self.operations();
        let count = |phase| ops.iter().filter(|(_, p, _)| *p == phase).count();
        (count(Phase::Ok), count(Phase::Fail), count(Phase::Unknown))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_round_trips_through_json_lines_and_pairs_operations() {
        let mut history = History::default();
        let add = Op::Add { key: "s".into(), element: 7 };
        history.push(1, Phase::Invoke, add.clone(), 0);
        history.push(2, Phase::Invoke, Op::Read { key: "s".into(), values: None }, 1);
        history.push(1, Phase::Ok, add.clone(), 2);
        history.push(2, Phase::Ok, Op::Read { key: "s".into(), values: Some(vec![7]) }, 3);
        history.push(1, Phase::Invoke, Op::Add { key: "s".into(), element: 8 }, 4);
        let mut bytes = Vec::new();
        history.write_jsonl(&mut bytes).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(text.lines().count(), 5);
        assert!(text.lines().next().unwrap().contains(r#""f":"add""#), "{text}");
        let back = History::read_jsonl(bytes.as_slice()).unwrap();
        assert_eq!(back, history);
        let ops = back.operations();
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[1].2, &Op::Read { key: "s".into(), values: Some(vec![7]) });
        assert_eq!(back.counts(), (2, 0, 1), "the unfinished add counts as unknown");
    }

    #[test]
    fn a_malformed_line_is_an_error_naming_it() {
        let err = History::read_jsonl(&b"{\"process\":1}\n"[..]).unwrap_err();
        assert!(err.to_string().contains("history line 1"), "{err}");
    }
}
