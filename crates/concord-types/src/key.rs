//! User keys: 1 to 1024 arbitrary bytes.

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// A validated user key. Any bytes, 1 to [`Key::MAX_BYTES`] long. Keys crossing the wire are
/// validated again when decoded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<u8>", into = "Vec<u8>")]
pub struct Key(Vec<u8>);

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
