//! What the key operations take and return: options, read results, the JSON envelope of a read,
//! write results and key listings.
//!
//! The JSON types serialize back to the API's own shape (binary fields as `X` or `X_base64`), so
//! the CLI can print exactly what the server would have sent.

use std::fmt;
use std::str::FromStr;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};

use crate::Quorum;
use crate::binary::{self, KeyEntry, WireKey};

/// Content type stored when a write names none.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Options of a read: `?r=&timeout_ms=`. The default leaves both to the namespace and server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GetOptions {
    /// How many replicas must answer.
    pub r: Option<Quorum>,
    /// The server-side deadline, 1..=60000 ms.
    pub timeout_ms: Option<u32>,
}

/// Options of a write or delete: `?w=&strict=&timeout_ms=`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// How many replicas must acknowledge.
    pub w: Option<Quorum>,
    /// Refuse sloppy quorums (hinted writes to fallback nodes) for this request.
    pub strict: Option<bool>,
    /// The server-side deadline, 1..=60000 ms.
    pub timeout_ms: Option<u32>,
}

/// The outcome of a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetResult {
    /// The key is absent or deleted. A deleted key still has a context: write with it to
    /// supersede the tombstone.
    NotFound { context: Option<String> },
    /// One value.
    Value { value: Vec<u8>, content_type: String, context: String },
    /// Two or more concurrent values. Resolve them by writing with `context`.
    Siblings { siblings: Vec<SiblingValue>, context: String },
}

impl GetResult {
    /// The context to send with the next write of this key, if any.
    pub fn context(&self) -> Option<&str> {
        match self {
            GetResult::NotFound { context } => context.as_deref(),
            GetResult::Value { context, .. } | GetResult::Siblings { context, .. } => Some(context),
        }
    }
}

impl From<Envelope> for GetResult {
    fn from(envelope: Envelope) -> Self {
        let Envelope { context, mut siblings, .. } = envelope;
        match siblings.len() {
            0 => GetResult::NotFound { context: Some(context) },
            1 => {
                let only = siblings.remove(0);
                GetResult::Value { value: only.value, content_type: only.content_type, context }
            }
            _ => GetResult::Siblings { siblings, context },
        }
    }
}

/// One of the values a read returned.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "WireSibling")]
pub struct SiblingValue {
    pub value: Vec<u8>,
    pub content_type: String,
    /// When the value was written (hybrid logical clock, Unix milliseconds), if the server said.
    pub timestamp_ms: Option<u64>,
}

#[derive(Deserialize)]
struct WireSibling {
    value: Option<String>,
    value_base64: Option<String>,
    content_type: Option<String>,
    timestamp_ms: Option<u64>,
}

impl TryFrom<WireSibling> for SiblingValue {
    type Error = String;

    fn try_from(wire: WireSibling) -> Result<Self, String> {
        Ok(SiblingValue {
            value: binary::decode("value", wire.value, wire.value_base64)?,
            content_type: wire.content_type.unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()),
            timestamp_ms: wire.timestamp_ms,
        })
    }
}

impl Serialize for SiblingValue {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        binary::serialize_entry(&mut map, ("value", "value_base64"), &self.value)?;
        map.serialize_entry("content_type", &self.content_type)?;
        if let Some(timestamp_ms) = self.timestamp_ms {
            map.serialize_entry("timestamp_ms", &timestamp_ms)?;
        }
        map.end()
    }
}

/// The JSON form of a read (`Accept: application/json`, or any 300 answer).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "WireEnvelope")]
pub struct Envelope {
    pub namespace: String,
    pub key: Vec<u8>,
    pub context: String,
    pub siblings: Vec<SiblingValue>,
}

#[derive(Deserialize)]
struct WireEnvelope {
    namespace: String,
    key: Option<String>,
    key_base64: Option<String>,
    context: String,
    siblings: Vec<SiblingValue>,
}

impl TryFrom<WireEnvelope> for Envelope {
    type Error = String;

    fn try_from(wire: WireEnvelope) -> Result<Self, String> {
        Ok(Envelope {
            namespace: wire.namespace,
            key: binary::decode("key", wire.key, wire.key_base64)?,
            context: wire.context,
            siblings: wire.siblings,
        })
    }
}

impl Serialize for Envelope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("namespace", &self.namespace)?;
        binary::serialize_entry(&mut map, ("key", "key_base64"), &self.key)?;
        map.serialize_entry("context", &self.context)?;
        map.serialize_entry("siblings", &self.siblings)?;
        map.end()
    }
}

/// The outcome of a write or delete: the new context and how many replicas acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteResult {
    /// The context of the stored state after the write.
    pub context: String,
    pub replicas: Replicas,
}

/// The outcome of [`crate::Client::put`].
pub type PutResult = WriteResult;

/// The outcome of [`crate::Client::delete`].
pub type DeleteResult = WriteResult;

/// The `Concord-Replicas: answered/required` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replicas {
    pub answered: u32,
    pub required: u32,
}

impl fmt::Display for Replicas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.answered, self.required)
    }
}

impl FromStr for Replicas {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let invalid = || format!("invalid Concord-Replicas {text:?}: expected answered/required");
        let (answered, required) = text.trim().split_once('/').ok_or_else(invalid)?;
        Ok(Replicas {
            answered: answered.parse().map_err(|_| invalid())?,
            required: required.parse().map_err(|_| invalid())?,
        })
    }
}

/// One page of a key listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "WireListPage")]
pub struct ListPage {
    /// Keys in byte order.
    pub keys: Vec<Vec<u8>>,
    /// The `after` token of the next page; `None` on the last page.
    pub next: Option<String>,
}

#[derive(Deserialize)]
struct WireListPage {
    keys: Vec<WireKey>,
    next: Option<String>,
}

impl TryFrom<WireListPage> for ListPage {
    type Error = String;

    fn try_from(wire: WireListPage) -> Result<Self, String> {
        let keys = wire.keys.into_iter().map(Vec::<u8>::try_from).collect::<Result<_, _>>()?;
        Ok(ListPage { keys, next: wire.next })
    }
}

impl Serialize for ListPage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let keys: Vec<KeyEntry<'_>> = self.keys.iter().map(|key| KeyEntry(key)).collect();
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("keys", &keys)?;
        map.serialize_entry("next", &self.next)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract's envelope example, with one text and one binary sibling, decodes and
    /// serializes back to the same JSON.
    #[test]
    fn envelope_with_text_and_binary_siblings_round_trips() {
        let json = serde_json::json!({
            "namespace": "carts",
            "key": "user/42",
            "context": "TOKEN",
            "siblings": [
                {"value": "hello", "content_type": "text/plain", "timestamp_ms": 1700000000000u64},
                {"value_base64": "AP8=", "content_type": "application/octet-stream",
                 "timestamp_ms": 1700000000001u64},
            ],
        });
        let envelope: Envelope = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(envelope.key, b"user/42");
        assert_eq!(envelope.siblings[0].value, b"hello");
        assert_eq!(envelope.siblings[1].value, vec![0x00, 0xff]);
        assert_eq!(envelope.siblings[1].timestamp_ms, Some(1_700_000_000_001));
        assert_eq!(serde_json::to_value(&envelope).unwrap(), json);

        let GetResult::Siblings { siblings, context } = GetResult::from(envelope) else {
            panic!("two siblings must stay siblings");
        };
        assert_eq!((siblings.len(), context.as_str()), (2, "TOKEN"));
    }

    /// A binary key arrives as `key_base64`; one sibling is a plain value.
    #[test]
    fn envelope_with_binary_key_and_one_sibling_is_a_value() {
        let json = br#"{"namespace": "n", "key_base64": "//8=", "context": "C",
            "siblings": [{"value": "v", "content_type": "text/plain"}]}"#;
        let envelope: Envelope = serde_json::from_slice(json).unwrap();
        assert_eq!(envelope.key, vec![0xff, 0xff]);
        let expected = GetResult::Value {
            value: b"v".to_vec(),
            content_type: "text/plain".into(),
            context: "C".into(),
        };
        assert_eq!(GetResult::from(envelope), expected);
    }

    /// A sibling with both or neither spelling of its value is a decode error.
    #[test]
    fn sibling_without_exactly_one_value_is_refused() {
        let both = br#"{"value": "a", "value_base64": "YQ==", "content_type": "t"}"#;
        assert!(serde_json::from_slice::<SiblingValue>(both).is_err());
        let neither = br#"{"content_type": "t"}"#;
        assert!(serde_json::from_slice::<SiblingValue>(neither).is_err());
    }

    /// Listings decode both key spellings and the `next` token, and serialize back.
    #[test]
    fn list_page_round_trips() {
        let json = serde_json::json!({"keys": [{"key": "a"}, {"key_base64": "//8="}], "next": "T"});
        let page: ListPage = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(page.keys, vec![b"a".to_vec(), vec![0xff, 0xff]]);
        assert_eq!(page.next.as_deref(), Some("T"));
        assert_eq!(serde_json::to_value(&page).unwrap(), json);

        let last: ListPage = serde_json::from_str(r#"{"keys": [], "next": null}"#).unwrap();
        assert_eq!(last, ListPage::default());
    }

    /// `Concord-Replicas` is `answered/required`.
    #[test]
    fn replicas_header_parses() {
        assert_eq!("2/3".parse::<Replicas>().unwrap(), Replicas { answered: 2, required: 3 });
        assert_eq!(Replicas { answered: 1, required: 1 }.to_string(), "1/1");
        for bad in ["", "2", "a/b", "2/3/4"] {
            assert!(bad.parse::<Replicas>().is_err(), "{bad:?}");
        }
    }
}
