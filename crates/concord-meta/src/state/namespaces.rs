//! Namespaces: created, their settings updated, deleted and their data dropped everywhere.
//!
//! A deleted namespace leaves the name space at once (a new namespace may take its name, and
//! gets a new id: ids are never reused), while its data is dropped in the background by every
//! node that was a member when it was deleted. Each node reports its copy gone
//! ([`Command::NamespaceDropped`](super::Command)); the deletion is complete when every such
//! node has, or has left the cluster. Data is found and dropped by id, so a namespace created
//! again under the same name is never touched.

use std::collections::BTreeSet;

use concord_types::{
    Consistency, NamespaceConfig, NamespaceId, NamespaceName, NamespacePatch, NodeId, PatchError,
};
use serde::{Deserialize, Serialize};

use super::{CommandResult, MetaState, NamespaceEntry};

/// A deleted namespace whose data some nodes still hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceDrop {
    pub id: NamespaceId,
    /// The name it had (another namespace may have it now).
    pub name: NamespaceName,
    /// The members that have not yet reported their copy dropped.
    pub nodes: BTreeSet<NodeId>,
}

impl MetaState {
    /// Whether `id` names a namespace that was deleted: known to this state (below the next id)
    /// and no longer registered. Data that arrives for it is not kept.
    pub fn namespace_deleted(&self, id: NamespaceId) -> bool {
        id.0 < self.next_namespace_id && self.namespace_by_id(id).is_none()
    }

    /// The deleted namespaces whose data `node` still has to drop.
    pub fn drops_for<'a>(&'a self, node: &'a NodeId) -> impl Iterator<Item = &'a NamespaceDrop> {
        self.dropping.values().filter(move |drop| drop.nodes.contains(node))
    }

    pub(super) fn create_namespace(
        &mut self,
        name: &NamespaceName,
        config: &NamespaceConfig,
    ) -> CommandResult {
        if let Err(e) = config.validate() {
            return CommandResult::Refused(e.to_string());
        }
        if config.consistency == Consistency::Strong {
            return CommandResult::Refused("strong namespaces are not available yet".into());
        }
        if let Some(entry) = self.namespaces.get(name) {
            return if &entry.config == config {
                CommandResult::NamespaceExists(entry.id)
            } else {
                CommandResult::NamespaceConflict(entry.config.clone())
            };
        }
        let id = NamespaceId(self.next_namespace_id);
        self.next_namespace_id += 1;
        self.namespaces.insert(name.clone(), NamespaceEntry { id, config: config.clone() });
        CommandResult::NamespaceCreated(id)
    }

    pub(super) fn delete_namespace(&mut self, name: &NamespaceName) -> CommandResult {
        let Some(entry) = self.namespaces.remove(name) else {
            return CommandResult::NamespaceNotFound;
        };
        let nodes: BTreeSet<NodeId> = self.members.keys().cloned().collect();
        self.dropping.insert(entry.id, NamespaceDrop { id: entry.id, name: name.clone(), nodes });
        CommandResult::NamespaceDeleted(entry.id)
    }

    pub(super) fn update_namespace(
        &mut self,
        name: &NamespaceName,
        patch: &NamespacePatch,
    ) -> CommandResult {
        let Some(entry) = self.namespaces.get_mut(name) else {
            return CommandResult::NamespaceNotFound;
        };
        match patch.apply(&entry.config) {
            Ok(config) if config == entry.config => CommandResult::NamespaceExists(entry.id),
            Ok(config) => {
                entry.config = config;
                CommandResult::NamespaceUpdated(entry.id)
            }
            Err(PatchError::Fixed(field)) => CommandResult::NamespaceFieldFixed(field.to_owned()),
            Err(PatchError::Invalid(e)) => CommandResult::Refused(e.to_string()),
        }
    }

    pub(super) fn namespace_dropped(&mut self, id: NamespaceId, node: &NodeId) -> CommandResult {
        let Some(drop) = self.dropping.get_mut(&id) else { return CommandResult::Unchanged };
        if !drop.nodes.remove(node) {
            return CommandResult::Unchanged;
        }
        if drop.nodes.is_empty() {
            self.dropping.remove(&id);
        }
        CommandResult::Ok
    }

    /// A node that is no longer a member drops nothing more: its data dir left with it.
    pub(super) fn forget_drops_of(&mut self, node: &NodeId) {
        for drop in self.dropping.values_mut() {
            drop.nodes.remove(node);
        }
        self.dropping.retain(|_, drop| !drop.nodes.is_empty());
    }
}
