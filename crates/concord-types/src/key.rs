//! User keys: 1 to 1024 arbitrary bytes.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ValidationError;

/// A validated user key. Any bytes, 1 to [`Key::MAX_BYTES`] long. Keys crossing the wire are
/// validated again when decoded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(Vec<u8>);

/// Serialized as a byte string: one copy, where a derived `Vec<u8>` goes byte by byte. Postcard
/// encodes both as the same bytes (length, then the bytes).
impl Serialize for Key {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(deserializer)?;
        Key::new(bytes.into_vec()).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<Vec<u8>> for Key {
    type Error = ValidationError;

    fn try_from(bytes: Vec<u8>) -> Result<Self, Self::Error> {
        Key::new(bytes)
    }
}

impl From<Key> for Vec<u8> {
    fn from(key: Key) -> Vec<u8> {
        key.0
    }
}

impl Key {
    pub const MAX_BYTES: usize = 1024;

    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, ValidationError> {
        let bytes = bytes.into();
        if bytes.is_empty() || bytes.len() > Self::MAX_BYTES {
            return Err(ValidationError::KeyLength { len: bytes.len(), max: Self::MAX_BYTES });
        }
        Ok(Key(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_length_bounds() {
        assert!(Key::new(Vec::new()).is_err());
        assert!(Key::new(vec![0u8; 1]).is_ok());
        assert!(Key::new(vec![0xffu8; Key::MAX_BYTES]).is_ok());
        assert_eq!(
            Key::new(vec![b'a'; Key::MAX_BYTES + 1]),
            Err(ValidationError::KeyLength { len: 1025, max: 1024 })
        );
    }
}
