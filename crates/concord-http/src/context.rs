//! The `Concord-Context` token: a version vector, encoded as a format byte plus postcard, in
//! base64url without padding. Clients treat it as opaque.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use concord_types::{ActorId, VersionVector};

use crate::error::ApiError;

pub const HEADER: &str = "concord-context";
const FORMAT_V1: u8 = 1;
/// Longest token accepted; a vector of a few hundred actors fits well within it.
const TOKEN_CHARS_MAX: usize = 16 * 1024;

pub fn encode(vv: &VersionVector) -> String {
    let entries: Vec<(u64, u64)> = vv.iter().map(|(a, c)| (a.0, c)).collect();
    let mut bytes = vec![FORMAT_V1];
    postcard::to_io(&entries, &mut bytes).expect("encoding into a Vec cannot fail");
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn decode(token: &str) -> Result<VersionVector, ApiError> {
    let bad = |why: &str| ApiError::invalid(format!("malformed Concord-Context token: {why}"));
    if token.len() > TOKEN_CHARS_MAX {
        return Err(bad("too long"));
    }
    let bytes = URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| bad("not base64url"))?;
    let Some((&FORMAT_V1, rest)) = bytes.split_first() else {
        return Err(bad("unknown format"));
    };
    let (entries, tail): (Vec<(u64, u64)>, _) =
        postcard::take_from_bytes(rest).map_err(|_| bad("undecodable"))?;
    if !tail.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok(VersionVector::from_entries(entries.into_iter().map(|(a, c)| (ActorId(a), c))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let vv = VersionVector::from_entries([(ActorId(3), 9), (ActorId(u64::MAX), 1)]);
        assert_eq!(decode(&encode(&vv)).unwrap(), vv);
        assert_eq!(decode(&encode(&VersionVector::new())).unwrap(), VersionVector::new());
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for token in ["%%%", "", "AAAA", "Ag", &"A".repeat(TOKEN_CHARS_MAX + 1)] {
            assert!(decode(token).is_err(), "{token:?}");
        }
        let mut trailing = URL_SAFE_NO_PAD.decode(encode(&VersionVector::new())).unwrap();
        trailing.push(0);
        assert!(decode(&URL_SAFE_NO_PAD.encode(trailing)).is_err());
    }
}
