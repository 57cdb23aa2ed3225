//! The API's rule for binary data in JSON: a field `X` holds the bytes when they are valid UTF-8,
//! otherwise `X_base64` holds them in standard base64 with padding; exactly one of the two is
//! present.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::ser::SerializeMap;

/// Decodes a binary field from its two JSON spellings, `name` being the plain one.
pub(crate) fn decode(
    name: &str,
    text: Option<String>,
    base64: Option<String>,
) -> Result<Vec<u8>, String> {
    match (text, base64) {
        (Some(text), None) => Ok(text.into_bytes()),
        (None, Some(encoded)) => STANDARD
            .decode(encoded.as_bytes())
            .map_err(|err| format!("`{name}_base64` is not valid base64: {err}")),
        (Some(_), Some(_)) => Err(format!("both `{name}` and `{name}_base64` are present")),
        (None, None) => Err(format!("neither `{name}` nor `{name}_base64` is present")),
    }
}

/// Writes `bytes` into `map` as `name` (UTF-8) or `name_base64` (anything else).
pub(crate) fn serialize_entry<M: SerializeMap>(
    map: &mut M,
    names: (&'static str, &'static str),
    bytes: &[u8],
) -> Result<(), M::Error> {
    match std::str::from_utf8(bytes) {
        Ok(text) => map.serialize_entry(names.0, text),
        Err(_) => map.serialize_entry(names.1, &STANDARD.encode(bytes)),
    }
}

/// A JSON object `{"key": ...}` or `{"key_base64": ...}`, as in key listings.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct WireKey {
    key: Option<String>,
    key_base64: Option<String>,
}

impl TryFrom<WireKey> for Vec<u8> {
    type Error = String;

    fn try_from(wire: WireKey) -> Result<Self, String> {
        decode("key", wire.key, wire.key_base64)
    }
}

/// Serializes a key as [`WireKey`] does.
pub(crate) struct KeyEntry<'a>(pub(crate) &'a [u8]);

impl serde::Serialize for KeyEntry<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        serialize_entry(&mut map, ("key", "key_base64"), self.0)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exactly one spelling must be present, and base64 must be valid.
    #[test]
    fn decode_accepts_exactly_one_valid_spelling() {
        assert_eq!(decode("value", Some("hé".into()), None).unwrap(), "hé".as_bytes());
        assert_eq!(decode("value", None, Some("//8=".into())).unwrap(), vec![0xff, 0xff]);
        assert!(decode("value", None, Some("not base64!".into())).is_err());
        assert!(decode("value", Some("a".into()), Some("YQ==".into())).is_err());
        assert!(decode("value", None, None).is_err());
    }

    /// UTF-8 keys are written as text, others as base64.
    #[test]
    fn keys_serialize_by_the_utf8_rule() {
        let text = serde_json::to_string(&KeyEntry(b"a/b")).unwrap();
        assert_eq!(text, r#"{"key":"a/b"}"#);
        let text = serde_json::to_string(&KeyEntry(&[0xff, 0xff])).unwrap();
        assert_eq!(text, r#"{"key_base64":"//8="}"#);
    }
}
