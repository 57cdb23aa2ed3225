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
/// one value.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, RpcError> {
    let (value, rest) =
        postcard::take_from_bytes(payload).map_err(|e| RpcError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(RpcError::Decode(format!("{} trailing bytes", rest.len())));
    }
    Ok(value)
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
        assert!(matches!(decode::<u32>(&bytes), Err(RpcError::Decode(_))));
    }

    #[test]
    fn short_input_is_an_error_not_a_panic() {
        let bytes = encode(&Probe { seq: 1, name: "abc".into(), offsets: vec![1, 2] });
        for len in 0..bytes.len() {
            assert!(decode::<Probe>(&bytes[..len]).is_err(), "prefix of {len} bytes decoded");
        }
    }
}
