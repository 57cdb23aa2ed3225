//! Namespaces: their names, their configuration and quorum levels.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

mod patch;

pub use patch::{MUTABLE_FIELDS, NamespacePatch, PatchError};

/// Largest replica count a namespace may ask for.
pub const REPLICAS_MAX: usize = 7;

/// `[a-z0-9][a-z0-9_-]{0,62}`: the alphabet of namespace names and node ids.
pub(crate) fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let Some(first) = bytes.first() else { return false };
    bytes.len() <= 63
        && (first.is_ascii_lowercase() || first.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
}

/// A validated namespace name. Decoding validates it too (`try_from = "String"`): no invalid
/// name can exist.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct NamespaceName(String);

impl NamespaceName {
    /// The namespace every cluster has.
    pub const DEFAULT: &'static str = "default";

    pub fn new(name: impl Into<String>) -> Result<Self, ValidationError> {
        let name = name.into();
        if is_valid_name(&name) {
            Ok(Self(name))
        } else {
            Err(ValidationError::NamespaceName { name: crate::error::shown(&name) })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NamespaceName {
    type Error = ValidationError;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        NamespaceName::new(name)
    }
}

impl fmt::Display for NamespaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which side of the CAP trade-off a namespace takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// The Dynamo path: N/R/W quorums, siblings, always writable.
    #[default]
    Eventual,
    /// Raft per partition (planned; refused today).
    Strong,
}

/// What happens to concurrent writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConflictPolicy {
    /// Keep concurrent values as siblings for the client to resolve.
    #[default]
    Siblings,
    /// Keep only the value with the latest hybrid timestamp. Loses concurrent writes silently.
    Lww,
}

/// How many replicas must answer: a level or an explicit count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quorum {
    One,
    #[default]
    Quorum,
    All,
    Count(u8),
}

impl Quorum {
    /// The number of replicas this level needs out of `replicas` placed copies.
    pub fn required(self, replicas: usize) -> usize {
        match self {
            Quorum::One => 1,
            Quorum::Quorum => replicas / 2 + 1,
            Quorum::All => replicas,
            Quorum::Count(n) => n as usize,
        }
    }

    /// Checks that an explicit count fits a namespace of `replicas` copies.
    pub fn check(self, replicas: usize) -> Result<Self, ValidationError> {
        match self {
            Quorum::Count(n) if n == 0 || n as usize > replicas => {
                Err(ValidationError::Quorum { value: n.to_string(), max: replicas })
            }
            q => Ok(q),
        }
    }
}

impl FromStr for Quorum {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ValidationError::Quorum { value: crate::error::shown(s), max: REPLICAS_MAX };
        match s {
            "one" => Ok(Quorum::One),
            "quorum" => Ok(Quorum::Quorum),
            "all" => Ok(Quorum::All),
            n => match n.parse::<u8>() {
                Ok(n) if n >= 1 && n as usize <= REPLICAS_MAX => Ok(Quorum::Count(n)),
                _ => Err(err()),
            },
        }
    }
}

impl fmt::Display for Quorum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quorum::One => f.write_str("one"),
            Quorum::Quorum => f.write_str("quorum"),
            Quorum::All => f.write_str("all"),
            Quorum::Count(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for Quorum {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Quorum {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A namespace's settings. The quorums and `strict` may change later ([`NamespacePatch`]); the
/// others are fixed at creation. Decoding checks them like
/// [`NamespaceConfig::validate`], so a config from the disk or a peer is as valid as one a
/// client had checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "NamespaceConfigFields")]
pub struct NamespaceConfig {
    pub consistency: Consistency,
    /// Copies of each key (N). Capped by the cluster size at placement time.
    pub replicas: usize,
    pub read_quorum: Quorum,
    pub write_quorum: Quorum,
    pub conflicts: ConflictPolicy,
    /// Count only primary replicas toward quorums by default.
    pub strict: bool,
}

/// The decoded fields of a [`NamespaceConfig`], before they are checked. Same fields, same
/// order: the encoding is the config's own.
#[derive(Deserialize)]
struct NamespaceConfigFields {
    consistency: Consistency,
    replicas: usize,
    read_quorum: Quorum,
    write_quorum: Quorum,
    conflicts: ConflictPolicy,
    strict: bool,
}

impl TryFrom<NamespaceConfigFields> for NamespaceConfig {
    type Error = ValidationError;

    fn try_from(fields: NamespaceConfigFields) -> Result<Self, Self::Error> {
        let NamespaceConfigFields {
            consistency,
            replicas,
            read_quorum,
            write_quorum,
            conflicts,
            strict,
        } = fields;
        let config =
            NamespaceConfig { consistency, replicas, read_quorum, write_quorum, conflicts, strict };
        config.validate()?;
        Ok(config)
    }
}

impl Default for NamespaceConfig {
    fn default() -> Self {
        Self {
            consistency: Consistency::Eventual,
            replicas: 3,
            read_quorum: Quorum::Quorum,
            write_quorum: Quorum::Quorum,
            conflicts: ConflictPolicy::Siblings,
            strict: false,
        }
    }
}

impl NamespaceConfig {
    /// Checks the settings against each other.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.replicas == 0 || self.replicas > REPLICAS_MAX {
            return Err(ValidationError::Replicas { value: self.replicas, max: REPLICAS_MAX });
        }
        self.read_quorum.check(self.replicas)?;
        self.write_quorum.check(self.replicas)?;
        Ok(())
    }

    /// The replica count actually placed in a cluster of `nodes` nodes.
    pub fn effective_replicas(&self, nodes: usize) -> usize {
        self.replicas.min(nodes.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_follow_the_documented_alphabet() {
        for ok in ["default", "a", "0", "carts_v2", "x-y", &"a".repeat(63)] {
            assert!(NamespaceName::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "_x", "-x", "a b", "ü", "a/b", &"a".repeat(64)] {
            assert!(NamespaceName::new(bad).is_err(), "{bad}");
        }
    }

    /// Names are validated when decoded, so a peer or a damaged disk cannot make an invalid one.
    #[test]
    fn namespace_names_are_validated_when_decoded() {
        let decode = |name: &str| postcard::from_bytes::<NamespaceName>(&encoded(name));
        assert_eq!(decode("carts").unwrap().as_str(), "carts");
        for bad in ["", "A", "a b", &"a".repeat(64), &"a".repeat(300)] {
            assert!(decode(bad).is_err(), "{bad}");
        }
        let name = NamespaceName::new("carts").unwrap();
        assert_eq!(postcard::to_allocvec(&name).unwrap(), encoded("carts"));
    }

    fn encoded(text: &str) -> Vec<u8> {
        postcard::to_allocvec(text).unwrap()
    }

    /// A config decodes only if [`NamespaceConfig::validate`] accepts it, with the encoding the
    /// derived one had.
    #[test]
    fn namespace_configs_are_validated_when_decoded() {
        let good = NamespaceConfig::default();
        let bytes = postcard::to_allocvec(&good).unwrap();
        assert_eq!(postcard::from_bytes::<NamespaceConfig>(&bytes).unwrap(), good);
        let bad = [
            NamespaceConfig { replicas: 0, ..Default::default() },
            NamespaceConfig { replicas: REPLICAS_MAX + 1, ..Default::default() },
            NamespaceConfig { replicas: 2, read_quorum: Quorum::Count(3), ..Default::default() },
            NamespaceConfig { replicas: 1, write_quorum: Quorum::Count(2), ..Default::default() },
        ];
        for config in bad {
            let bytes = postcard::to_allocvec(&config).unwrap();
            assert!(postcard::from_bytes::<NamespaceConfig>(&bytes).is_err(), "{config:?}");
        }
    }

    #[test]
    fn a_long_refused_value_is_quoted_shortened() {
        let error = NamespaceName::new("X".repeat(100_000)).unwrap_err().to_string();
        assert!(error.len() < 300, "{error}");
        assert!(error.contains("(100000 bytes)"), "{error}");
        let error = "9".repeat(5000).parse::<Quorum>().unwrap_err().to_string();
        assert!(error.len() < 300, "{error}");
    }

    #[test]
    fn quorum_levels_resolve_against_the_replica_count() {
        assert_eq!(Quorum::Quorum.required(3), 2);
        assert_eq!(Quorum::Quorum.required(1), 1);
        assert_eq!(Quorum::Quorum.required(4), 3);
        assert_eq!(Quorum::All.required(5), 5);
        assert_eq!(Quorum::One.required(5), 1);
        assert_eq!("2".parse::<Quorum>().unwrap().required(3), 2);
        assert!("0".parse::<Quorum>().is_err());
        assert!("many".parse::<Quorum>().is_err());
        assert!(Quorum::Count(4).check(3).is_err());
    }

    #[test]
    fn config_rejects_quorums_above_replicas() {
        let config =
            NamespaceConfig { replicas: 2, write_quorum: Quorum::Count(3), ..Default::default() };
        assert!(config.validate().is_err());
        assert!(NamespaceConfig { replicas: 0, ..Default::default() }.validate().is_err());
        assert!(NamespaceConfig::default().validate().is_ok());
        assert_eq!(NamespaceConfig::default().effective_replicas(1), 1);
    }
}
