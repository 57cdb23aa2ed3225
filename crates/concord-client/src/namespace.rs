//! Namespace settings as the API spells them: quorum levels, consistency, conflict policy, the
//! creation request ([`NamespaceConfig`]) and the server's answer ([`NamespaceView`]).
//!
//! These mirror the server's types on purpose instead of importing them: the client speaks the
//! JSON contract of `docs/api.md` and must not depend on server crates.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How many replicas must answer: a level or an explicit count. Spelled `one`, `quorum`, `all`
/// or a number, in query strings and JSON alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quorum {
    One,
    Quorum,
    All,
    /// An explicit count, at least 1 (the server checks it against the replica count).
    Count(u8),
}

impl fmt::Display for Quorum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quorum::One => f.write_str("one"),
            Quorum::Quorum => f.write_str("quorum"),
            Quorum::All => f.write_str("all"),
            Quorum::Count(count) => write!(f, "{count}"),
        }
    }
}

impl FromStr for Quorum {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "one" => Ok(Quorum::One),
            "quorum" => Ok(Quorum::Quorum),
            "all" => Ok(Quorum::All),
            count => match count.parse::<u8>() {
                Ok(count) if count >= 1 => Ok(Quorum::Count(count)),
                _ => Err(format!(
                    "invalid quorum {text:?}: expected one, quorum, all or a count from 1"
                )),
            },
        }
    }
}

impl Serialize for Quorum {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Quorum {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// The contract says strings; a bare number is accepted too, being unambiguous.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Text(String),
            Count(u8),
        }
        match Wire::deserialize(deserializer)? {
            Wire::Text(text) => text.parse().map_err(serde::de::Error::custom),
            Wire::Count(count) => format!("{count}").parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Which side of the CAP trade-off a namespace takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// The Dynamo path: N/R/W quorums, siblings, always writable.
    Eventual,
    /// Raft per partition (planned; servers refuse it today).
    Strong,
}

impl fmt::Display for Consistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Consistency::Eventual => "eventual",
            Consistency::Strong => "strong",
        })
    }
}

/// What happens to concurrent writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConflictPolicy {
    /// Keep concurrent values as siblings for the client to resolve.
    Siblings,
    /// Keep only the value with the latest timestamp.
    Lww,
}

impl fmt::Display for ConflictPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConflictPolicy::Siblings => "siblings",
            ConflictPolicy::Lww => "lww",
        })
    }
}

/// The body of `PUT /v1/namespaces/{ns}`. Fields left `None` are omitted and take the server's
/// defaults (eventual, 3 replicas, quorum/quorum, siblings, not strict). As the body of
/// `PATCH`, the fields set are the ones to change (only quorums and `strict` may).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency: Option<Consistency>,
    /// Copies of each key (N).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_quorum: Option<Quorum>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_quorum: Option<Quorum>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflicts: Option<ConflictPolicy>,
    /// Count only primary replicas toward quorums by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// A namespace as the server reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceView {
    pub name: String,
    pub consistency: Consistency,
    /// Copies asked for at creation.
    pub replicas: u32,
    /// `replicas` capped by the cluster size: the copies actually placed.
    pub effective_replicas: u32,
    pub read_quorum: Quorum,
    pub write_quorum: Quorum,
    pub conflicts: ConflictPolicy,
    pub strict: bool,
}

/// A deleted namespace whose data is being dropped: the answer to `DELETE
/// /v1/namespaces/{ns}`, and an entry of [`crate::ClusterStatus::namespaces_deleting`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceDeletion {
    pub name: String,
    /// The deleted namespace's id; a namespace created again under the name has another.
    pub id: u32,
    /// The nodes that still hold its data.
    pub nodes_pending: Vec<String>,
}

/// `GET /v1/namespaces`.
#[derive(Deserialize)]
pub(crate) struct NamespaceList {
    pub(crate) namespaces: Vec<NamespaceView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quorums parse and print in the API's spelling; zero and words outside it are refused.
    #[test]
    fn quorum_spellings() {
        for (text, quorum) in [
            ("one", Quorum::One),
            ("quorum", Quorum::Quorum),
            ("all", Quorum::All),
            ("2", Quorum::Count(2)),
        ] {
            assert_eq!(text.parse::<Quorum>().unwrap(), quorum);
            assert_eq!(quorum.to_string(), text);
        }
        for bad in ["0", "-1", "ALL", "majority", "", "300"] {
            assert!(bad.parse::<Quorum>().is_err(), "{bad:?}");
        }
    }

    /// Only the fields that are set go into the creation request.
    #[test]
    fn namespace_config_omits_unset_fields() {
        let config = NamespaceConfig {
            conflicts: Some(ConflictPolicy::Lww),
            write_quorum: Some(Quorum::Count(2)),
            ..NamespaceConfig::default()
        };
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(json, serde_json::json!({"write_quorum": "2", "conflicts": "lww"}));
        assert_eq!(
            serde_json::to_value(NamespaceConfig::default()).unwrap(),
            serde_json::json!({})
        );
    }

    /// The contract's namespace view decodes.
    #[test]
    fn namespace_view_decodes() {
        let json = br#"{"name": "carts", "consistency": "eventual", "replicas": 3,
            "effective_replicas": 1, "read_quorum": "quorum", "write_quorum": "2",
            "conflicts": "siblings", "strict": false}"#;
        let view: NamespaceView = serde_json::from_slice(json).unwrap();
        assert_eq!(view.effective_replicas, 1);
        assert_eq!(view.write_quorum, Quorum::Count(2));
        assert_eq!(view.conflicts, ConflictPolicy::Siblings);
    }
}
