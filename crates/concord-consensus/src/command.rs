//! What a strong group replicates ([`Command`]), what it keeps per key ([`Record`]) and what
//! applying a command answers ([`Response`]).
//!
//! Every type here validates itself when decoded (serde `try_from`), so no invalid command or
//! record exists whatever it came from: a client's request decoded by the node, a leader's log
//! entry decoded by a follower, a snapshot from a peer, or the disk.

use concord_types::{Key, NamespaceId};
use serde::{Deserialize, Serialize};

use crate::ConsensusError;

/// The longest value a strong key holds, in bytes. The node enforces its configured
/// `limits.value_bytes_max` where the request enters; this bound is the one every decoder
/// applies, whatever the configuration: a log entry must fit a 16 MiB peer frame.
pub const VALUE_BYTES_MAX: usize = 16 << 20;

/// The longest content type, in bytes (as the HTTP layer accepts).
pub const CONTENT_TYPE_BYTES_MAX: usize = 256;

/// A value with its content type, validated: at most [`VALUE_BYTES_MAX`] bytes, and a content
/// type of at most [`CONTENT_TYPE_BYTES_MAX`] visible ASCII characters (it is served back as a
/// header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ValueFields")]
pub struct Value {
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
    content_type: String,
}

#[derive(Deserialize)]
struct ValueFields {
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
    content_type: String,
}

impl TryFrom<ValueFields> for Value {
    type Error = ConsensusError;

    fn try_from(fields: ValueFields) -> Result<Self, Self::Error> {
        Value::new(fields.data, fields.content_type)
    }
}

impl Value {
    pub fn new(data: Vec<u8>, content_type: String) -> Result<Self, ConsensusError> {
        if data.len() > VALUE_BYTES_MAX {
            return Err(ConsensusError::ValueTooLarge { len: data.len(), max: VALUE_BYTES_MAX });
        }
        if content_type.len() > CONTENT_TYPE_BYTES_MAX {
            return Err(ConsensusError::ContentType { reason: "longer than 256 bytes" });
        }
        if !content_type.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
            return Err(ConsensusError::ContentType { reason: "not visible ASCII" });
        }
        Ok(Value { data, content_type })
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }

    pub fn content_type(&self) -> &str {
        &self.content_type
    }
}

/// When a put applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PutCondition {
    /// Always (a blind put).
    None,
    /// Only if the key exists and was last written at this revision (HTTP `If-Match`).
    IfMatch(u64),
    /// Only if the key does not exist (HTTP `If-None-Match: *`).
    CreateOnly,
}

/// When a delete applies. There is no create-only delete: "delete only if absent" would never
/// change anything, so it is not representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeleteCondition {
    /// Always; deleting an absent key is applied and changes nothing.
    None,
    /// Only if the key exists and was last written at this revision.
    IfMatch(u64),
}

/// A command on one key of a strong namespace: an entry of a group's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Put { namespace: NamespaceId, key: Key, value: Value, condition: PutCondition },
    Delete { namespace: NamespaceId, key: Key, condition: DeleteCondition },
}

impl Command {
    pub fn namespace(&self) -> NamespaceId {
        match self {
            Command::Put { namespace, .. } | Command::Delete { namespace, .. } => *namespace,
        }
    }

    pub fn key(&self) -> &Key {
        match self {
            Command::Put { key, .. } | Command::Delete { key, .. } => key,
        }
    }
}

/// What a group keeps for one live key. A deleted key has no record: a later put starts it
/// again at version 1 with a new create revision.
///
/// Invariants (checked when decoded): `1 <= create_revision <= mod_revision`, and
/// `1 <= version <= mod_revision - create_revision + 1` (one write per log entry at most).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RecordFields")]
pub struct Record {
    pub value: Value,
    /// The log index of the entry that created the key (since its last delete).
    pub create_revision: u64,
    /// The log index of the entry that last wrote the key.
    pub mod_revision: u64,
    /// Writes since creation: 1 after the creating put.
    pub version: u64,
}

#[derive(Deserialize)]
struct RecordFields {
    value: Value,
    create_revision: u64,
    mod_revision: u64,
    version: u64,
}

impl TryFrom<RecordFields> for Record {
    type Error = ConsensusError;

    fn try_from(f: RecordFields) -> Result<Self, Self::Error> {
        let record = Record {
            value: f.value,
            create_revision: f.create_revision,
            mod_revision: f.mod_revision,
            version: f.version,
        };
        record.check()?;
        Ok(record)
    }
}

/// Format byte of a stored record; an unknown one is refused by name.
const RECORD_FORMAT: u8 = 1;

impl Record {
    /// Checks the record's invariants.
    pub fn check(&self) -> Result<(), ConsensusError> {
        let (create, modified, version) = (self.create_revision, self.mod_revision, self.version);
        let fine =
            1 <= create && create <= modified && 1 <= version && version <= modified - create + 1;
        if fine {
            Ok(())
        } else {
            Err(ConsensusError::corrupt(
                "record",
                format!("create_revision {create}, mod_revision {modified}, version {version}"),
            ))
        }
    }

    /// The bytes stored for the record: a format byte, then postcard.
    pub fn encode(&self) -> Vec<u8> {
        debug_assert!(self.check().is_ok(), "a record is checked before it is stored");
        let mut out = vec![RECORD_FORMAT];
        postcard::to_io(self, &mut out).expect("a record always encodes");
        out
    }

    /// Decodes stored bytes, refusing an unknown format, trailing bytes or a broken invariant.
    pub fn decode(bytes: &[u8]) -> Result<Record, ConsensusError> {
        match bytes.split_first() {
            Some((&RECORD_FORMAT, body)) => {
                let (record, rest) = postcard::take_from_bytes::<Record>(body)
                    .map_err(|e| ConsensusError::corrupt("record", e))?;
                if !rest.is_empty() {
                    return Err(ConsensusError::corrupt("record", "trailing bytes"));
                }
                Ok(record)
            }
            Some((format, _)) => Err(ConsensusError::corrupt(
                "record",
                format!("unknown record format {format}: written by a newer version?"),
            )),
            None => Err(ConsensusError::corrupt("record", "empty")),
        }
    }
}

/// What a command changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// The key now holds this record.
    Written(Record),
    /// The key is gone; `existed` says whether there was one to delete.
    Deleted { existed: bool },
}

/// What applying a log entry answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The command took effect at `revision`, the log index of its entry.
    Applied { change: Change, revision: u64 },
    /// The condition did not hold; nothing changed. `current_mod_revision` is the key's mod
    /// revision, `None` if it does not exist.
    PreconditionFailed { current_mod_revision: Option<u64> },
    /// The entry was Raft's own (a blank entry of a new leader, a membership change): no client
    /// waits for it.
    NotACommand,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command as a peer could send it, with any bytes where the types are stricter.
    #[derive(Serialize)]
    enum RawCommand {
        Put {
            namespace: NamespaceId,
            #[serde(with = "serde_bytes")]
            key: Vec<u8>,
            value: RawValue,
            condition: PutCondition,
        },
    }

    #[derive(Serialize)]
    struct RawValue {
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        content_type: String,
    }

    fn decode_put(key: Vec<u8>, data: Vec<u8>, content_type: &str) -> Result<Command, String> {
        let value = RawValue { data, content_type: content_type.into() };
        let raw = RawCommand::Put {
            namespace: NamespaceId(1),
            key,
            value,
            condition: PutCondition::None,
        };
        let bytes = postcard::to_allocvec(&raw).unwrap();
        postcard::from_bytes::<Command>(&bytes).map_err(|e| e.to_string())
    }

    /// The raw shape is the real one: a valid command decodes to what was meant.
    #[test]
    fn a_valid_command_decodes_from_its_wire_shape() {
        let command = decode_put(b"k".to_vec(), b"v".to_vec(), "text/plain").unwrap();
        let value = Value::new(b"v".to_vec(), "text/plain".into()).unwrap();
        let expected = Command::Put {
            namespace: NamespaceId(1),
            key: Key::new(b"k".to_vec()).unwrap(),
            value,
            condition: PutCondition::None,
        };
        assert_eq!(command, expected);
        assert_eq!(postcard::to_allocvec(&expected).unwrap(), {
            let value = RawValue { data: b"v".to_vec(), content_type: "text/plain".into() };
            let raw = RawCommand::Put {
                namespace: NamespaceId(1),
                key: b"k".to_vec(),
                value,
                condition: PutCondition::None,
            };
            postcard::to_allocvec(&raw).unwrap()
        });
    }

    #[test]
    fn a_command_with_a_bad_key_value_or_content_type_does_not_decode() {
        assert!(decode_put(Vec::new(), b"v".to_vec(), "t").is_err(), "empty key");
        assert!(decode_put(vec![b'k'; 1025], b"v".to_vec(), "t").is_err(), "long key");
        assert!(decode_put(b"k".to_vec(), b"v".to_vec(), "a\nb").is_err(), "control character");
        assert!(decode_put(b"k".to_vec(), b"v".to_vec(), "é").is_err(), "not ASCII");
        assert!(decode_put(b"k".to_vec(), b"v".to_vec(), &"t".repeat(257)).is_err(), "long type");
        assert!(decode_put(b"k".to_vec(), vec![0; VALUE_BYTES_MAX + 1], "t").is_err(), "big value");
        assert!(decode_put(b"k".to_vec(), vec![0; VALUE_BYTES_MAX], "t").is_ok(), "largest value");
    }

    #[test]
    fn values_are_checked_when_built() {
        let too_big = Value::new(vec![0; VALUE_BYTES_MAX + 1], String::new()).unwrap_err();
        assert_eq!(
            too_big.to_string(),
            "a strong key's value is at most 16777216 bytes, got 16777217"
        );
        let error = Value::new(Vec::new(), "a\tb".into()).unwrap_err();
        assert_eq!(error.to_string(), "content type refused: not visible ASCII");
        assert!(Value::new(Vec::new(), "text/plain; charset=utf-8".into()).is_ok());
    }

    fn record(create_revision: u64, mod_revision: u64, version: u64) -> Record {
        let value = Value::new(b"v".to_vec(), "t".into()).unwrap();
        Record { value, create_revision, mod_revision, version }
    }

    #[test]
    fn a_stored_record_round_trips_and_a_broken_one_is_refused() {
        let good = record(3, 7, 5);
        assert_eq!(Record::decode(&good.encode()).unwrap(), good);
        for (create, modified, version) in [(0, 7, 1), (8, 7, 1), (3, 7, 0), (3, 7, 6)] {
            let mut bytes = vec![1];
            postcard::to_io(&record(create, modified, version), &mut bytes).unwrap();
            let error = Record::decode(&bytes).unwrap_err().to_string();
            assert!(error.contains("corrupt record"), "{create} {modified} {version}: {error}");
        }
        let mut newer = good.encode();
        newer[0] = 2;
        assert!(
            Record::decode(&newer).unwrap_err().to_string().contains("unknown record format 2")
        );
        assert!(Record::decode(&[]).is_err());
        let padded = [good.encode().as_slice(), &[0]].concat();
        assert!(Record::decode(&padded).unwrap_err().to_string().contains("trailing"));
    }
}
