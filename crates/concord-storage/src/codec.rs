//! On-disk encoding of DVV sets: a format byte, then postcard.

use concord_types::{Content, DvvSet};

use crate::StorageError;

const FORMAT_V1: u8 = 1;

pub(crate) fn encode(state: &DvvSet) -> Vec<u8> {
    assert!(state.is_well_formed(), "refusing to store a malformed DVV set");
    // Sized up front: values are most of a state, and growing the buffer copies them again.
    let values: usize = state
        .siblings()
        .iter()
        .map(|sibling| match &sibling.content {
            Content::Value { data, content_type } => data.len() + content_type.len() + 48,
            Content::Tombstone => 48,
        })
        .sum();
    let mut out = Vec::with_capacity(64 + values);
    out.push(FORMAT_V1);
    postcard::to_io(state, &mut out).expect("encoding into a Vec cannot fail");
    out
}

pub(crate) fn decode(key: &[u8], bytes: &[u8]) -> Result<DvvSet, StorageError> {
    let corrupt = |reason: String| StorageError::Corrupt { key: key.to_vec(), reason };
    match bytes.split_first() {
        Some((&FORMAT_V1, rest)) => {
            let state: DvvSet =
                postcard::from_bytes(rest).map_err(|e| corrupt(format!("postcard: {e}")))?;
            if !state.is_well_formed() {
                return Err(corrupt("DVV set breaks its invariants".into()));
            }
            Ok(state)
        }
        Some((format, _)) => Err(corrupt(format!("unknown format byte {format}"))),
        None => Err(corrupt("empty record".into())),
    }
}
