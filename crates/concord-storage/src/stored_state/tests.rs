//! Tests of the stored-state encoding: it round-trips through disk bytes and the wire, it is the
//! byte layout data dirs already hold, and unknown versions, truncated, padded or malformed
//! bytes are refused with an error, never a panic.

use concord_types::{ActorId, ConflictPolicy, Dot, Key, Sibling, Timestamp, VersionVector};

use super::*;

/// Two concurrent values and the tombstone of a third: every kind of sibling.
fn state() -> DvvSet {
    let mut state = DvvSet::new();
    let value = |text: &str| Content::Value {
        data: text.as_bytes().to_vec(),
        content_type: "text/plain".into(),
    };
    let blind = VersionVector::new();
    let write = |state: &mut DvvSet, actor: u64, content: Content| {
        let last = Dot { actor: ActorId(actor), counter: 0 };
        let at = Timestamp::from_wall_ms(actor);
        state.write(&blind, last, at, content, ConflictPolicy::Siblings).unwrap();
    };
    write(&mut state, 7, value("seven"));
    write(&mut state, 9, value("nine"));
    write(&mut state, 11, Content::Tombstone);
    state
}

#[test]
fn a_stored_state_round_trips_through_disk_bytes_and_the_wire() {
    let state = state();
    let stored = StoredState::encode(&state);
    assert_eq!(stored.decode().unwrap(), state);

    let from_disk = StoredState::from_bytes(stored.as_bytes().to_vec());
    assert_eq!(from_disk, stored);
    assert_eq!(from_disk.decode().unwrap(), state);

    let wire = postcard::to_allocvec(&stored).unwrap();
    let shipped: StoredState = postcard::from_bytes(&wire).unwrap();
    assert_eq!(shipped, stored);
    assert_eq!(shipped.decode().unwrap(), state);
}

/// Data dirs hold format byte 1 and the postcard DVV set, and peers of the previous build send
/// those bytes as a plain byte vector: both stay readable, byte for byte.
#[test]
fn the_encoding_is_the_one_data_dirs_and_peers_already_use() {
    let state = state();
    let stored = StoredState::encode(&state);
    let on_disk = [vec![1u8], postcard::to_allocvec(&state).unwrap()].concat();
    assert_eq!(stored.as_bytes(), on_disk.as_slice());
    assert_eq!(stored.encoded_len(), on_disk.len());
    assert_eq!(postcard::to_allocvec(&stored).unwrap(), postcard::to_allocvec(&on_disk).unwrap());
}

/// A state of a format this build does not know is refused when decoded, whether it came from
/// a peer (the error names the key) or from disk (corruption under its key), saying which
/// version it was.
#[test]
fn an_unknown_version_is_refused_saying_which() {
    let mut bytes = StoredState::encode(&state()).into_bytes();
    for version in [0u8, 2, 0xff] {
        bytes[0] = version;
        let stored = StoredState::from_bytes(bytes.clone());
        let refused = stored.decode().unwrap_err();
        assert_eq!(refused, StoredStateError::UnknownVersion(version));
        assert_eq!(
            refused.to_string(),
            format!("stored-state format version {version} is unknown: this build reads version 1")
        );

        // From a peer: the message decodes, the state does not, and the error says which.
        let wire = postcard::to_allocvec(&vec![(Key::new("k").unwrap(), stored)]).unwrap();
        let shipped: Vec<(Key, StoredState)> = postcard::from_bytes(&wire).unwrap();
        let error = decode_objects(shipped).unwrap_err();
        assert!(error.starts_with("malformed state for "), "{error}");
        assert!(error.contains(&format!("version {version} is unknown")), "{error}");

        // From disk: corruption under its key.
        match decode_stored(b"the-key", &bytes) {
            Err(StorageError::Corrupt { key, reason }) => {
                assert_eq!(key, b"the-key");
                assert_eq!(reason, refused.to_string());
            }
            other => panic!("expected corruption, got {other:?}"),
        }
    }
    assert_eq!(StoredState::from_bytes(Vec::new()).decode(), Err(StoredStateError::Empty));
}

/// Every proper prefix of a state is refused (the empty one for lacking a version, the others
/// when decoded), and so is a state with bytes after it.
#[test]
fn a_truncated_or_padded_state_is_refused() {
    let bytes = StoredState::encode(&state()).into_bytes();
    for len in 0..bytes.len() {
        let refused = StoredState::from_bytes(bytes[..len].to_vec()).decode().unwrap_err();
        match len {
            0 => assert_eq!(refused, StoredStateError::Empty),
            _ => assert!(matches!(refused, StoredStateError::Malformed(_)), "{len}: {refused}"),
        }
    }
    let padded = StoredState::from_bytes([bytes.as_slice(), &[0, 0]].concat());
    assert_eq!(padded.decode().unwrap_err(), StoredStateError::TrailingBytes(2));
}

/// A DVV set that decodes but breaks its invariants (storage asserts them before writing) is
/// refused when decoded.
#[test]
fn a_malformed_dvv_set_is_refused() {
    let sibling = |actor: u64, counter: u64| Sibling {
        dot: Dot { actor: ActorId(actor), counter },
        timestamp: Timestamp(1),
        content: Content::Tombstone,
    };
    // A DVV set as postcard lays it out: version vector entries, then siblings.
    let encoded = |vv: &[(u64, u64)], siblings: Vec<Sibling>| {
        let vv: Vec<(ActorId, u64)> = vv.iter().map(|&(a, c)| (ActorId(a), c)).collect();
        let body = postcard::to_allocvec(&(vv, siblings)).unwrap();
        StoredState::from_bytes([vec![FORMAT_V1], body].concat())
    };
    let good = encoded(&[(1, 2), (2, 1)], vec![sibling(1, 2), sibling(2, 1)]);
    assert!(good.decode().is_ok());
    let bad = [
        ("siblings out of order", encoded(&[(1, 2), (2, 1)], vec![sibling(2, 1), sibling(1, 2)])),
        ("a sibling not covered", encoded(&[(1, 1)], vec![sibling(1, 2)])),
        ("actors out of order", encoded(&[(2, 1), (1, 2)], vec![sibling(1, 2)])),
        ("an actor twice", encoded(&[(1, 2), (1, 3)], vec![])),
        ("a zero counter", encoded(&[(1, 0)], vec![])),
    ];
    for (what, stored) in bad {
        assert_eq!(stored.decode().unwrap_err(), StoredStateError::NotWellFormed, "{what}");
    }
}
