//! A key's state as stored: the one encoding of a DVV set that reaches disk (the data and hints
//! spaces) or crosses the wire as stored bytes (handoff chunks, `SegmentObjects` replies,
//! `MergeBatch`es).
//!
//! Encoding: a format-version byte, then the postcard encoding of the [`DvvSet`]. Version 1 is
//! the only one so far. The byte lets a later build change the encoding: a reader refuses a
//! version it does not know, saying which, instead of misreading the bytes. Disk and wire carry
//! the same bytes, so a state is shipped as read, without decoding and encoding it again, and
//! the receiver decodes (and so validates) it once, with [`StoredState::decode`].
//!
//! On the wire a [`StoredState`] is one byte string: postcard writes the length and then the
//! bytes, exactly what it wrote for the plain `Vec<u8>` these messages carried before, so nodes
//! of either build understand each other. Decoding a message takes the bytes as they are; each
//! state is decoded and validated, version first, by [`StoredState::decode`] alone, later and in
//! the background lane (a message holds up to 8 MiB of states). There the refusal keeps its
//! words: the message decoder reports only a field position for a type's own refusal.

use concord_types::{Content, DvvSet, Key};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::StorageError;

/// The format version this build writes, and the only one it reads.
pub const FORMAT_V1: u8 = 1;

/// Why stored bytes are not a state this build can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoredStateError {
    #[error("empty stored state (no format version byte)")]
    Empty,
    #[error("stored-state format version {0} is unknown: this build reads version {FORMAT_V1}")]
    UnknownVersion(u8),
    #[error("stored state does not decode (truncated or garbled): {0}")]
    Malformed(String),
    #[error("stored state has {0} bytes after its DVV set")]
    TrailingBytes(usize),
    #[error("stored DVV set breaks its invariants (siblings unsorted or not covered)")]
    NotWellFormed,
}

/// The bytes of one key's stored state, as stored or shipped. Nothing about them is trusted until
/// [`StoredState::decode`] has checked them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredState {
    bytes: Vec<u8>,
}

impl StoredState {
    /// Encodes a state. Only a well-formed DVV set is ever stored or shipped.
    pub fn encode(state: &DvvSet) -> Self {
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
        let mut bytes = Vec::with_capacity(64 + values);
        bytes.push(FORMAT_V1);
        postcard::to_io(state, &mut bytes).expect("encoding into a Vec cannot fail");
        Self { bytes }
    }

    /// Bytes as read from disk or received from a peer, checked when decoded.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self { bytes }
    }

    /// Decodes and validates the state: a format version this build reads, then a DVV set
    /// taking all the remaining bytes, well formed. The one place stored bytes are checked.
    pub fn decode(&self) -> Result<DvvSet, StoredStateError> {
        decode_slice(&self.bytes)
    }

    /// The encoded bytes, version first, as stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Size of the encoding, in bytes.
    pub fn encoded_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Decodes a stored state in place (reads from disk need no copy of the bytes first).
fn decode_slice(bytes: &[u8]) -> Result<DvvSet, StoredStateError> {
    let body = match bytes.split_first() {
        Some((&FORMAT_V1, body)) => body,
        Some((&other, _)) => return Err(StoredStateError::UnknownVersion(other)),
        None => return Err(StoredStateError::Empty),
    };
    let (state, rest): (DvvSet, &[u8]) =
        postcard::take_from_bytes(body).map_err(|e| StoredStateError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(StoredStateError::TrailingBytes(rest.len()));
    }
    if !state.is_well_formed() {
        return Err(StoredStateError::NotWellFormed);
    }
    Ok(state)
}

/// Decodes the state stored under `key` (of any space): a record that does not decode is
/// corruption, reported with its key.
pub(crate) fn decode_stored(key: &[u8], bytes: &[u8]) -> Result<DvvSet, StorageError> {
    decode_slice(bytes)
        .map_err(|e| StorageError::Corrupt { key: key.to_vec(), reason: e.to_string() })
}

/// Decodes (and so validates) objects as another replica stores and ships them; the first
/// that does not decode is an error naming its key.
pub fn decode_objects(objects: Vec<(Key, StoredState)>) -> Result<Vec<(Key, DvvSet)>, String> {
    objects
        .into_iter()
        .map(|(key, stored)| match stored.decode() {
            Ok(state) => Ok((key, state)),
            Err(e) => Err(format!("malformed state for {key:?}: {e}")),
        })
        .collect()
}

impl Serialize for StoredState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.bytes)
    }
}

impl<'de> Deserialize<'de> for StoredState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(StoredState::from_bytes(serde_bytes::ByteBuf::deserialize(deserializer)?.into_vec()))
    }
}

#[cfg(test)]
mod tests;
