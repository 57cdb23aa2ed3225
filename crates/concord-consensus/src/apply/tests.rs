//! Exact outputs of the apply logic for each case, then a property: any sequence of commands
//! applied through [`apply`] answers and stores what a plain model of the semantics says.
//! proptest prints a failing sequence, shrunk, and keeps it in `proptest-regressions/`.

use std::collections::BTreeMap;

use concord_types::{Key, NamespaceId};
use proptest::prelude::*;

use super::*;
use crate::Value;

fn value(text: &str) -> Value {
    Value::new(text.as_bytes().to_vec(), "text/plain".into()).unwrap()
}

fn key() -> Key {
    Key::new(b"k".to_vec()).unwrap()
}

fn put(text: &str, condition: PutCondition) -> Command {
    Command::Put { namespace: NamespaceId(1), key: key(), value: value(text), condition }
}

fn delete(condition: DeleteCondition) -> Command {
    Command::Delete { namespace: NamespaceId(1), key: key(), condition }
}

fn record(text: &str, create_revision: u64, mod_revision: u64, version: u64) -> Record {
    Record { value: value(text), create_revision, mod_revision, version }
}

fn written(record: Record, revision: u64) -> Transition {
    Transition {
        effect: Effect::Write(record.clone()),
        response: Response::Applied { change: Change::Written(record), revision },
    }
}

fn failed(current_mod_revision: Option<u64>) -> Transition {
    Transition {
        effect: Effect::Unchanged,
        response: Response::PreconditionFailed { current_mod_revision },
    }
}

#[test]
fn a_blind_put_creates_the_key_at_version_1() {
    assert_eq!(apply(None, &put("a", PutCondition::None), 7), written(record("a", 7, 7, 1), 7));
}

#[test]
fn a_put_over_a_key_keeps_its_create_revision_and_counts_the_write() {
    let current = record("a", 3, 5, 2);
    assert_eq!(
        apply(Some(&current), &put("b", PutCondition::None), 9),
        written(record("b", 3, 9, 3), 9)
    );
}

#[test]
fn if_match_applies_only_at_the_current_mod_revision() {
    let current = record("a", 3, 5, 2);
    assert_eq!(
        apply(Some(&current), &put("b", PutCondition::IfMatch(5)), 8),
        written(record("b", 3, 8, 3), 8),
        "hit"
    );
    assert_eq!(apply(Some(&current), &put("b", PutCondition::IfMatch(4)), 8), failed(Some(5)));
    assert_eq!(apply(Some(&current), &put("b", PutCondition::IfMatch(3)), 8), failed(Some(5)));
    assert_eq!(apply(None, &put("b", PutCondition::IfMatch(5)), 8), failed(None), "absent key");
}

#[test]
fn create_only_applies_only_to_an_absent_key() {
    assert_eq!(
        apply(None, &put("a", PutCondition::CreateOnly), 4),
        written(record("a", 4, 4, 1), 4)
    );
    let current = record("a", 4, 4, 1);
    assert_eq!(apply(Some(&current), &put("b", PutCondition::CreateOnly), 6), failed(Some(4)));
}

#[test]
fn deleting_a_present_key_removes_it_and_an_absent_one_changes_nothing() {
    let current = record("a", 2, 2, 1);
    assert_eq!(
        apply(Some(&current), &delete(DeleteCondition::None), 3),
        Transition {
            effect: Effect::Remove,
            response: Response::Applied { change: Change::Deleted { existed: true }, revision: 3 },
        }
    );
    assert_eq!(
        apply(None, &delete(DeleteCondition::None), 3),
        Transition {
            effect: Effect::Unchanged,
            response: Response::Applied { change: Change::Deleted { existed: false }, revision: 3 },
        }
    );
}

#[test]
fn a_conditional_delete_applies_only_at_the_current_mod_revision() {
    let current = record("a", 2, 6, 3);
    assert_eq!(
        apply(Some(&current), &delete(DeleteCondition::IfMatch(6)), 7),
        Transition {
            effect: Effect::Remove,
            response: Response::Applied { change: Change::Deleted { existed: true }, revision: 7 },
        }
    );
    assert_eq!(apply(Some(&current), &delete(DeleteCondition::IfMatch(2)), 7), failed(Some(6)));
    assert_eq!(apply(None, &delete(DeleteCondition::IfMatch(6)), 7), failed(None));
}

/// put at 1, put at 2, delete at 3, put at 5: the key starts again at version 1 with create
/// revision 5, and an `IfMatch` of its old mod revision no longer matches.
#[test]
fn a_key_created_again_after_a_delete_starts_at_version_1() {
    let first = apply(None, &put("a", PutCondition::None), 1);
    let Effect::Write(r1) = first.effect else { panic!("the put writes") };
    let second = apply(Some(&r1), &put("b", PutCondition::None), 2);
    let Effect::Write(r2) = second.effect else { panic!("the put writes") };
    assert_eq!(r2, record("b", 1, 2, 2));
    assert_eq!(apply(Some(&r2), &delete(DeleteCondition::None), 3).effect, Effect::Remove);
    assert_eq!(apply(None, &put("c", PutCondition::IfMatch(2)), 4), failed(None));
    assert_eq!(apply(None, &put("c", PutCondition::None), 5), written(record("c", 5, 5, 1), 5));
}

#[test]
#[should_panic(expected = "applied over a record written at 5")]
fn applying_an_entry_at_or_before_the_records_revision_is_a_bug() {
    apply(Some(&record("a", 3, 5, 2)), &put("b", PutCondition::None), 5);
}

/// One generated step: which key (of three), what to do, and how many log indexes to skip
/// before it (blank and membership entries take indexes too).
#[derive(Debug, Clone)]
struct Step {
    key: u8,
    op: Op,
    gap: u64,
}

#[derive(Debug, Clone)]
enum Op {
    Put { text: u8, condition: Target },
    CreateOnly { text: u8 },
    Delete { condition: Target },
}

/// The revision an `IfMatch` names: none, the key's current one (a hit when the key exists),
/// or some other small number (usually a miss).
#[derive(Debug, Clone)]
enum Target {
    Blind,
    Current,
    Other(u64),
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![Just(Target::Blind), Just(Target::Current), (0u64..40).prop_map(Target::Other)]
}

fn step() -> impl Strategy<Value = Step> {
    let op = prop_oneof![
        (any::<u8>(), target()).prop_map(|(text, condition)| Op::Put { text, condition }),
        any::<u8>().prop_map(|text| Op::CreateOnly { text }),
        target().prop_map(|condition| Op::Delete { condition }),
    ];
    (0u8..3, op, 0u64..3).prop_map(|(key, op, gap)| Step { key, op, gap })
}

/// The semantics written plainly: a live key is its value, the revision that created it and
/// the revisions of every write since.
#[derive(Debug, Clone)]
struct ModelKey {
    text: u8,
    created: u64,
    writes: Vec<u64>,
}

impl ModelKey {
    fn record(&self) -> Record {
        Record {
            value: model_value(self.text),
            create_revision: self.created,
            mod_revision: *self.writes.last().unwrap(),
            version: self.writes.len() as u64,
        }
    }
}

fn model_value(text: u8) -> Value {
    Value::new(vec![text], "m".into()).unwrap()
}

fn model_key(index: u8) -> Key {
    Key::new(vec![b'k', index]).unwrap()
}

/// The model's answer to a step, updating the model.
fn model_step(
    model: &mut BTreeMap<u8, ModelKey>,
    step: &Step,
    expected: Option<u64>,
    rev: u64,
) -> Response {
    let live = model.get(&step.key).cloned();
    let matches = |expected: Option<u64>| match (&live, expected) {
        (_, None) => true,
        (Some(k), Some(e)) => *k.writes.last().unwrap() == e,
        (None, Some(_)) => false,
    };
    let holds = match &step.op {
        Op::Put { .. } | Op::Delete { .. } => matches(expected),
        Op::CreateOnly { .. } => live.is_none(),
    };
    if !holds {
        let current_mod_revision = live.map(|k| *k.writes.last().unwrap());
        return Response::PreconditionFailed { current_mod_revision };
    }
    let change = match &step.op {
        Op::Put { text, .. } | Op::CreateOnly { text } => {
            let entry = model.entry(step.key).or_insert(ModelKey {
                text: *text,
                created: rev,
                writes: Vec::new(),
            });
            entry.text = *text;
            entry.writes.push(rev);
            Change::Written(entry.record())
        }
        Op::Delete { .. } => Change::Deleted { existed: model.remove(&step.key).is_some() },
    };
    Response::Applied { change, revision: rev }
}

fn command_of(step: &Step, expected: Option<u64>) -> Command {
    let (namespace, key) = (NamespaceId(1), model_key(step.key));
    match &step.op {
        Op::Put { text, .. } => {
            let condition = expected.map_or(PutCondition::None, PutCondition::IfMatch);
            Command::Put { namespace, key, value: model_value(*text), condition }
        }
        Op::CreateOnly { text } => Command::Put {
            namespace,
            key,
            value: model_value(*text),
            condition: PutCondition::CreateOnly,
        },
        Op::Delete { .. } => {
            let condition = expected.map_or(DeleteCondition::None, DeleteCondition::IfMatch);
            Command::Delete { namespace, key, condition }
        }
    }
}

/// Runs `steps` through the pure apply and the model side by side; panics at the first
/// difference in a response or in the stored records.
fn check_against_model(steps: &[Step]) {
    let mut model: BTreeMap<u8, ModelKey> = BTreeMap::new();
    let mut stored: BTreeMap<u8, Record> = BTreeMap::new();
    let mut revision = 0;
    for (i, step) in steps.iter().enumerate() {
        revision += 1 + step.gap;
        let target = match &step.op {
            Op::Put { condition, .. } | Op::Delete { condition } => condition.clone(),
            Op::CreateOnly { .. } => Target::Blind,
        };
        let expected = match target {
            Target::Blind => None,
            Target::Current => Some(model.get(&step.key).map_or(0, |k| *k.writes.last().unwrap())),
            Target::Other(rev) => Some(rev),
        };
        let transition = apply(stored.get(&step.key), &command_of(step, expected), revision);
        let answer = model_step(&mut model, step, expected, revision);
        assert_eq!(transition.response, answer, "step {i}: {step:?}");
        match transition.effect {
            Effect::Unchanged => {}
            Effect::Write(record) => {
                record.check().expect("a written record keeps its invariants");
                stored.insert(step.key, record);
            }
            Effect::Remove => {
                stored.remove(&step.key);
            }
        }
        let modelled: BTreeMap<u8, Record> = model.iter().map(|(k, m)| (*k, m.record())).collect();
        assert_eq!(stored, modelled, "after step {i}: {step:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_command_sequence_matches_the_model(steps in proptest::collection::vec(step(), 1..80)) {
        check_against_model(&steps);
    }
}
