//! The `Concord-Context` header: a context token in base64url without padding. Clients treat it
//! as opaque; the node seals and opens the bytes (`concord_types::context`), so a token that
//! was not issued for the key it is sent with is refused there.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::ApiError;

pub const HEADER: &str = "concord-context";
/// Longest token accepted. A context carries one entry per sibling (at most
/// `limits.siblings_max`), about 20 bytes each, so real tokens stay far below this.
const TOKEN_CHARS_MAX: usize = 16 * 1024;

pub fn encode(token: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(token)
}

/// The token's bytes; whether they are a context of this cluster for this key is for the node
/// to say.
pub fn decode(token: &str) -> Result<Vec<u8>, ApiError> {
    let bad = |why: &str| ApiError::invalid(format!("malformed Concord-Context token: {why}"));
    if token.len() > TOKEN_CHARS_MAX {
        return Err(bad("too long"));
    }
    let bytes = URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| bad("not base64url"))?;
    if bytes.is_empty() {
        return Err(bad("empty"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for token in [vec![2u8, 0, 1, 2, 3], vec![0xff; 300]] {
            assert_eq!(decode(&encode(&token)).unwrap(), token);
        }
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for token in ["%%%", "", "A", &"A".repeat(TOKEN_CHARS_MAX + 1)] {
            assert!(decode(token).is_err(), "{token:?}");
        }
    }
}
