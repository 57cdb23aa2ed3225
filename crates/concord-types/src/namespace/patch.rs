//! [`NamespacePatch`]: a change to an existing namespace's settings, and which settings may
//! change at all.
//!
//! The quorums and `strict` only steer requests, so they may change at any time: the next
//! request uses the new values. The others decide where and how data is stored: `replicas`
//! places each key on N nodes (a change would have to move data), `conflicts` decides how
//! stored siblings merge (a change would reinterpret them), and `consistency` picks the whole
//! replication path. Those are fixed at creation; a patch that changes one is refused, naming
//! it.

use serde::{Deserialize, Serialize};

use super::{ConflictPolicy, Consistency, NamespaceConfig, Quorum};
use crate::ValidationError;

/// The settings that may change after creation.
pub const MUTABLE_FIELDS: [&str; 3] = ["read_quorum", "write_quorum", "strict"];

/// A change to a namespace's settings: each `Some` field is the value wanted, each `None`
/// stays as it is. A fixed field may be given only with the value it has (so a full config,
/// as `PUT` sends it, is a patch too).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespacePatch {
    pub consistency: Option<Consistency>,
    pub replicas: Option<usize>,
    pub read_quorum: Option<Quorum>,
    pub write_quorum: Option<Quorum>,
    pub conflicts: Option<ConflictPolicy>,
    pub strict: Option<bool>,
}

/// Why a patch does not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchError {
    /// The patch changes a field that is fixed at creation.
    Fixed(&'static str),
    /// The resulting settings are invalid (a quorum above the replicas).
    Invalid(ValidationError),
}

impl NamespacePatch {
    /// Every field of `config`: what a `PUT` of a full configuration asks for.
    pub fn all(config: &NamespaceConfig) -> Self {
        Self {
            consistency: Some(config.consistency),
            replicas: Some(config.replicas),
            read_quorum: Some(config.read_quorum),
            write_quorum: Some(config.write_quorum),
            conflicts: Some(config.conflicts),
            strict: Some(config.strict),
        }
    }

    /// `current` with this patch applied, or why it cannot be.
    pub fn apply(&self, current: &NamespaceConfig) -> Result<NamespaceConfig, PatchError> {
        fn fixed<T: PartialEq>(
            name: &'static str,
            wanted: Option<T>,
            is: T,
        ) -> Result<(), PatchError> {
            match wanted {
                Some(wanted) if wanted != is => Err(PatchError::Fixed(name)),
                _ => Ok(()),
            }
        }
        fixed("consistency", self.consistency, current.consistency)?;
        fixed("replicas", self.replicas, current.replicas)?;
        fixed("conflicts", self.conflicts, current.conflicts)?;
        let config = NamespaceConfig {
            read_quorum: self.read_quorum.unwrap_or(current.read_quorum),
            write_quorum: self.write_quorum.unwrap_or(current.write_quorum),
            strict: self.strict.unwrap_or(current.strict),
            ..current.clone()
        };
        config.validate().map_err(PatchError::Invalid)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quorums and `strict` change; the rest stays.
    #[test]
    fn mutable_fields_change_and_the_rest_stays() {
        let current = NamespaceConfig { conflicts: ConflictPolicy::Lww, ..Default::default() };
        let patch = NamespacePatch {
            write_quorum: Some(Quorum::All),
            strict: Some(true),
            ..Default::default()
        };
        let changed = patch.apply(&current).unwrap();
        assert_eq!(
            changed,
            NamespaceConfig { write_quorum: Quorum::All, strict: true, ..current.clone() }
        );
        assert_eq!(NamespacePatch::default().apply(&current), Ok(current.clone()));
        assert_eq!(NamespacePatch::all(&changed).apply(&current), Ok(changed));
    }

    /// A fixed field given with another value is refused by name; given with its own value
    /// (a full config) it is no change.
    #[test]
    fn fixed_fields_are_refused_by_name() {
        let current = NamespaceConfig::default();
        let cases = [
            (NamespacePatch { replicas: Some(5), ..Default::default() }, "replicas"),
            (
                NamespacePatch { conflicts: Some(ConflictPolicy::Lww), ..Default::default() },
                "conflicts",
            ),
            (
                NamespacePatch { consistency: Some(Consistency::Strong), ..Default::default() },
                "consistency",
            ),
        ];
        for (patch, field) in cases {
            assert_eq!(patch.apply(&current), Err(PatchError::Fixed(field)));
        }
        let same = NamespacePatch { replicas: Some(3), strict: Some(true), ..Default::default() };
        assert!(same.apply(&current).unwrap().strict);
    }

    /// A quorum above the namespace's replicas is invalid.
    #[test]
    fn an_invalid_result_is_refused() {
        let current = NamespaceConfig { replicas: 2, ..Default::default() };
        let patch = NamespacePatch { read_quorum: Some(Quorum::Count(3)), ..Default::default() };
        assert!(matches!(patch.apply(&current), Err(PatchError::Invalid(_))));
    }
}
