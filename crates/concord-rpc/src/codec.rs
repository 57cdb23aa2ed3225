//! Payload encoding. Upper crates turn their message types into bytes with [`encode`] and back
//! with [`decode`], so that only this crate knows the format (postcard).

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::RpcError;

/// The compact binary encoding of `value`.
///
/// Panics if `value`'s `Serialize` implementation fails, which postcard does only for types it
/// cannot represent (sequences of unknown length): a bug in the message type, not an input.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Bytes {
    match postcard::to_allocvec(value) {
        Ok(bytes) => Bytes::from(bytes),
        Err(e) => panic!("message type cannot be encoded with postcard: {e}"),
    }
}

/// Decodes a payload produced by [`encode`]. Trailing bytes are an error: a payload is exactly
/// one value. Types validate themselves as they decode (a `NodeId` of 300 bytes does not
/// decode), and a refusal names the type and the field's position:
/// ``invalid value in HintRequest at field `[0]` ``.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, RpcError> {
    let (value, rest) = match postcard::take_from_bytes(payload) {
        Ok(decoded) => decoded,
        Err(error) => return Err(RpcError::Decode(explain::<T>(payload, &error))),
    };
    if !rest.is_empty() {
        let name = short_type_name::<T>();
        return Err(RpcError::Decode(format!("{} trailing bytes after {name}", rest.len())));
    }
    Ok(value)
}

/// Why `payload` does not decode as `T`, with where it failed: the type and the path of the
/// field, by position (postcard encodes a struct as a tuple of its fields, in order). Postcard
/// drops the message of a type's own refusal, so the position is what names the culprit.
/// Decodes a second time, tracking the path: failures are rare and the happy path stays
/// untracked.
fn explain<T: DeserializeOwned>(payload: &[u8], error: &postcard::Error) -> String {
    let what = match error {
        postcard::Error::SerdeDeCustom => "invalid value".to_string(),
        other => other.to_string(),
    };
    let name = short_type_name::<T>();
    let mut deserializer = postcard::Deserializer::from_bytes(payload);
    match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Err(tracked) if tracked.path().iter().next().is_some() => {
            format!("{what} in {name} at field `{}`", tracked.path())
        }
        _ => format!("{what} in {name}"),
    }
}

/// `T`'s name without its path or generic arguments (`HintRequest`, `Result`), as errors
/// show it.
pub(crate) fn short_type_name<T: ?Sized>() -> &'static str {
    let full_name = std::any::type_name::<T>();
    let name = full_name.split('<').next().unwrap_or(full_name);
    name.rsplit("::").next().unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Probe {
        seq: u64,
        name: String,
        offsets: Vec<i64>,
    }

    #[test]
    fn values_round_trip() {
        let probe = Probe { seq: 7, name: "n1".into(), offsets: vec![-3, 0, 12] };
        assert_eq!(decode::<Probe>(&encode(&probe)), Ok(probe));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&5u32).to_vec();
        bytes.push(0);
        let refused = decode::<u32>(&bytes);
        assert_eq!(refused, Err(RpcError::Decode("1 trailing bytes after u32".into())));
    }

    /// A type that refuses a value as it decodes: postcard keeps no message, so the error names
    /// the type and the field's position.
    #[test]
    fn a_refused_value_is_named_by_its_field() {
        #[derive(Debug, Serialize)]
        struct Join<'a> {
            incarnation: u64,
            node: &'a str,
        }
        #[derive(Debug, Deserialize)]
        struct Checked {
            #[allow(dead_code)]
            incarnation: u64,
            #[allow(dead_code)]
            node: concord_types::NodeId,
        }
        let bytes = encode(&Join { incarnation: 1, node: &"n".repeat(300) });
        let error = decode::<Checked>(&bytes).unwrap_err().to_string();
        assert_eq!(error, "cannot decode payload: invalid value in Checked at field `[1]`");
        let short = decode::<Checked>(&bytes[..3]).unwrap_err().to_string();
        assert!(short.contains("in Checked at field `[1]`"), "{short}");
    }

    #[test]
    fn short_input_is_an_error_not_a_panic() {
        let bytes = encode(&Probe { seq: 1, name: "abc".into(), offsets: vec![1, 2] });
        for len in 0..bytes.len() {
            assert!(decode::<Probe>(&bytes[..len]).is_err(), "prefix of {len} bytes decoded");
        }
    }
}
