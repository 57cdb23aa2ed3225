//! Causal contexts as Concord issues them: sealed to one key with the cluster's context key.
//!
//! A client gets a context with every read and write and sends it back with its next write of
//! the key; the write then replaces exactly the versions the context covers. A context is a
//! version vector, and a vector the client made up could make acknowledged writes disappear: a
//! counter of 2^64−1 for an actor would make that actor's next dot wrap, a large counter for
//! another node's actor would cover (and so replace) writes that actor has not made yet, and a
//! context read from another key of the same partition (the same actors) covers siblings the
//! client never saw. So Concord seals every context it hands out: the token carries the
//! entries and a MAC over them, the namespace and the key, keyed by a secret drawn when the
//! cluster was founded and kept in its metadata. A token that does not open with the key it is
//! sent for is refused, whatever its contents.
//!
//! Token bytes: format byte `2`, the entries in postcard (`Vec<(u64, u64)>`, strictly increasing
//! actors, counters > 0), then the first [`MAC_BYTES`] bytes of BLAKE3 in keyed mode over a
//! domain string, the namespace id, the key's length and bytes, and the entries' bytes.

use serde::{Deserialize, Serialize};

use crate::{ActorId, Key, NamespaceId, VersionVector};

const FORMAT: u8 = 2;
/// Length of a token's MAC: 128 bits, far past what forging by guessing could reach.
pub const MAC_BYTES: usize = 16;
const DOMAIN: &[u8] = b"concord context v2\0";

/// The cluster's secret for sealing contexts. Drawn once when the cluster is founded and
/// replicated in its metadata, so every node seals and opens alike.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextKey([u8; 32]);

/// Why a context token was refused. Always the client's fault: it never changes data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error("unknown token format")]
    Format,
    #[error("undecodable token")]
    Undecodable,
    #[error("token entries are not in canonical form")]
    NotCanonical,
    #[error("this context was not issued for this key")]
    Forged,
}

impl ContextKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The token for `vv` as the context of `key` in namespace `namespace`.
    pub fn seal(&self, namespace: NamespaceId, key: &Key, vv: &VersionVector) -> Vec<u8> {
        let entries: Vec<(u64, u64)> = vv.iter().map(|(a, c)| (a.0, c)).collect();
        let mut token = vec![FORMAT];
        postcard::to_io(&entries, &mut token).expect("encoding into a Vec cannot fail");
        let mac = self.mac(namespace, key, &token[1..]);
        token.extend_from_slice(&mac);
        token
    }

    /// The version vector of a token sealed by [`ContextKey::seal`] for this same key.
    pub fn open(
        &self,
        namespace: NamespaceId,
        key: &Key,
        token: &[u8],
    ) -> Result<VersionVector, ContextError> {
        let Some((&FORMAT, rest)) = token.split_first() else {
            return Err(ContextError::Format);
        };
        let Some(body_len) = rest.len().checked_sub(MAC_BYTES) else {
            return Err(ContextError::Undecodable);
        };
        let (body, mac) = rest.split_at(body_len);
        // Checked before decoding, so a forged body is never even parsed; the comparison takes
        // the same time wherever the first differing byte is.
        let expected = self.mac(namespace, key, body);
        if !constant_time_eq(&expected, mac) {
            return Err(ContextError::Forged);
        }
        let (entries, tail): (Vec<(u64, u64)>, _) =
            postcard::take_from_bytes(body).map_err(|_| ContextError::Undecodable)?;
        if !tail.is_empty() {
            return Err(ContextError::Undecodable);
        }
        let canonical =
            entries.windows(2).all(|w| w[0].0 < w[1].0) && entries.iter().all(|&(_, c)| c > 0);
        if !canonical {
            return Err(ContextError::NotCanonical);
        }
        Ok(VersionVector::from_entries(entries.into_iter().map(|(a, c)| (ActorId(a), c))))
    }

    fn mac(&self, namespace: NamespaceId, key: &Key, body: &[u8]) -> [u8; MAC_BYTES] {
        let mut hasher = blake3::Hasher::new_keyed(&self.0);
        hasher.update(DOMAIN);
        hasher.update(&namespace.0.to_be_bytes());
        hasher.update(&(key.as_bytes().len() as u64).to_be_bytes());
        hasher.update(key.as_bytes());
        hasher.update(body);
        let hash = hasher.finalize();
        hash.as_bytes()[..MAC_BYTES].try_into().expect("a BLAKE3 hash has 32 bytes")
    }
}

/// The secret stays out of logs and debug output.
impl std::fmt::Debug for ContextKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContextKey(..)")
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(bytes: &[u8]) -> Key {
        Key::new(bytes.to_vec()).unwrap()
    }

    fn vv() -> VersionVector {
        VersionVector::from_entries([(ActorId(3), 9), (ActorId(u64::MAX), 1)])
    }

    const SECRET: [u8; 32] = [7; 32];
    const NS: NamespaceId = NamespaceId(4);

    #[test]
    fn a_sealed_context_opens_for_its_own_key() {
        let k = ContextKey::new(SECRET);
        assert_eq!(k.open(NS, &key(b"a"), &k.seal(NS, &key(b"a"), &vv())).unwrap(), vv());
        let empty = VersionVector::new();
        assert_eq!(k.open(NS, &key(b"a"), &k.seal(NS, &key(b"a"), &empty)).unwrap(), empty);
    }

    #[test]
    fn a_context_of_another_key_namespace_or_cluster_is_refused() {
        let k = ContextKey::new(SECRET);
        let token = k.seal(NS, &key(b"b"), &vv());
        assert_eq!(k.open(NS, &key(b"a"), &token), Err(ContextError::Forged));
        assert_eq!(k.open(NamespaceId(5), &key(b"b"), &token), Err(ContextError::Forged));
        let other = ContextKey::new([8; 32]);
        assert_eq!(other.open(NS, &key(b"b"), &token), Err(ContextError::Forged));
        // Keys that only differ in where one ends and the body begins do not collide.
        let ab = k.seal(NS, &key(b"ab"), &VersionVector::new());
        assert_eq!(k.open(NS, &key(b"a"), &ab), Err(ContextError::Forged));
    }

    #[test]
    fn a_tampered_or_truncated_token_is_refused() {
        let k = ContextKey::new(SECRET);
        let token = k.seal(NS, &key(b"a"), &vv());
        for i in 0..token.len() {
            let mut bad = token.clone();
            bad[i] ^= 1;
            assert!(k.open(NS, &key(b"a"), &bad).is_err(), "flipped byte {i}");
        }
        for len in 0..token.len() {
            assert!(k.open(NS, &key(b"a"), &token[..len]).is_err(), "truncated to {len}");
        }
        let mut longer = token.clone();
        longer.push(0);
        assert!(k.open(NS, &key(b"a"), &longer).is_err());
    }

    #[test]
    fn an_overflowing_counter_needs_the_mac_too() {
        // The attack the MAC stops: a client rewrites a counter to 2^64−1.
        let k = ContextKey::new(SECRET);
        let token = k.seal(NS, &key(b"a"), &vv());
        let forged_vv = VersionVector::from_entries([(ActorId(3), u64::MAX)]);
        let mut forged = ContextKey::new([0; 32]).seal(NS, &key(b"a"), &forged_vv);
        let mac_at = forged.len() - MAC_BYTES;
        forged[mac_at..].copy_from_slice(&token[token.len() - MAC_BYTES..]);
        assert_eq!(k.open(NS, &key(b"a"), &forged), Err(ContextError::Forged));
    }

    #[test]
    fn the_secret_is_not_in_debug_output() {
        assert_eq!(format!("{:?}", ContextKey::new(SECRET)), "ContextKey(..)");
    }
}
