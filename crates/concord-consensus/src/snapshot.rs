//! The snapshot of a strong group: every record it holds, in key order, as one byte string (a
//! format byte, then postcard). A snapshot arrives from a peer, so [`decode`] checks it all
//! before anything is installed: records valid, keys strictly increasing (no key twice), no
//! record written after the snapshot's last log index.

use concord_types::{Key, NamespaceId};
use serde::{Deserialize, Serialize};

use crate::{ConsensusError, Record};

/// Format byte of a snapshot; an unknown one is refused by name.
const SNAPSHOT_FORMAT: u8 = 1;

/// One key's record in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub namespace: NamespaceId,
    pub key: Key,
    pub record: Record,
}

/// The snapshot's bytes. `records` are in key order (namespace, then key), as a scan of the
/// group's records returns them.
pub fn encode(records: &[SnapshotRecord]) -> Vec<u8> {
    let mut out = vec![SNAPSHOT_FORMAT];
    postcard::to_io(records, &mut out).expect("a snapshot always encodes");
    out
}

/// Decodes and checks a snapshot whose metadata says it holds the group's state as of log
/// index `last_index` (`None`: nothing applied, so no records).
pub fn decode(
    bytes: &[u8],
    last_index: Option<u64>,
) -> Result<Vec<SnapshotRecord>, ConsensusError> {
    let refuse = |reason: String| ConsensusError::Snapshot { reason };
    let body = match bytes.split_first() {
        Some((&SNAPSHOT_FORMAT, body)) => body,
        Some((format, _)) => return Err(refuse(format!("unknown snapshot format {format}"))),
        None => return Err(refuse("empty".into())),
    };
    let (records, rest) = postcard::take_from_bytes::<Vec<SnapshotRecord>>(body)
        .map_err(|e| refuse(format!("does not decode: {e}")))?;
    if !rest.is_empty() {
        return Err(refuse(format!("{} trailing bytes", rest.len())));
    }
    for pair in records.windows(2) {
        if (pair[0].namespace, &pair[0].key) >= (pair[1].namespace, &pair[1].key) {
            return Err(refuse("records are not in strictly increasing key order".into()));
        }
    }
    let newest = records.iter().map(|r| r.record.mod_revision).max();
    if newest.is_some() && newest > last_index {
        return Err(refuse(format!(
            "a record was written at {} but the snapshot ends at {last_index:?}",
            newest.unwrap_or_default()
        )));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;

    fn entry(ns: u32, key: &[u8], revision: u64) -> SnapshotRecord {
        SnapshotRecord {
            namespace: NamespaceId(ns),
            key: Key::new(key.to_vec()).unwrap(),
            record: Record {
                value: Value::new(b"v".to_vec(), "t".into()).unwrap(),
                create_revision: revision,
                mod_revision: revision,
                version: 1,
            },
        }
    }

    #[test]
    fn a_snapshot_round_trips() {
        let records = vec![entry(1, b"a", 3), entry(1, b"b", 5), entry(2, b"a", 4)];
        assert_eq!(decode(&encode(&records), Some(5)).unwrap(), records);
        assert_eq!(decode(&encode(&[]), None).unwrap(), vec![]);
    }

    #[test]
    fn a_snapshot_out_of_order_with_a_key_twice_or_from_the_future_is_refused() {
        let twice = encode(&[entry(1, b"a", 3), entry(1, b"a", 4)]);
        assert!(decode(&twice, Some(9)).unwrap_err().to_string().contains("increasing"));
        let backwards = encode(&[entry(2, b"a", 3), entry(1, b"b", 4)]);
        assert!(decode(&backwards, Some(9)).is_err());
        let future = encode(&[entry(1, b"a", 10)]);
        assert!(decode(&future, Some(9)).unwrap_err().to_string().contains("written at 10"));
        assert!(decode(&future, None).is_err());
    }

    #[test]
    fn bad_bytes_are_refused_saying_why() {
        let good = encode(&[entry(1, b"a", 3)]);
        assert!(decode(&[], Some(3)).unwrap_err().to_string().contains("empty"));
        assert!(
            decode(&[2], Some(3)).unwrap_err().to_string().contains("unknown snapshot format 2")
        );
        assert!(decode(&good[..good.len() - 1], Some(3)).is_err(), "truncated");
        let padded = [good.as_slice(), &[0]].concat();
        assert!(decode(&padded, Some(3)).unwrap_err().to_string().contains("trailing"));
        // A record breaking its invariants (version 0) is refused by the record's own decoder.
        let mut broken = entry(1, b"a", 3);
        broken.record.version = 0;
        assert!(decode(&encode(&[broken]), Some(3)).is_err());
    }
}
