//! Namespaces created, changed and deleted: the metadata commands behind `PUT`, `PATCH` and
//! `DELETE /v1/namespaces/{ns}`.
//!
//! Each change is committed through the metadata leader, then this node catches up with the
//! leader before it answers, so the answer (and this node's next request) sees the change.
//! Only the quorums and `strict` may change (`NamespacePatch`); a deleted namespace's data is
//! dropped in the background by every node (`concord_replica::deleted`).

use std::sync::Arc;

use concord_meta::{Command, CommandResult, MetaState};
use concord_types::{Consistency, NamespaceConfig, NamespaceName, NamespacePatch};

use super::{Database, view};
use crate::Error;
use crate::namespaces::NamespaceView;

/// A deleted namespace whose data is being dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletionView {
    pub name: String,
    /// Its id: the data dropped is this id's, whatever holds its name now.
    pub id: u32,
    /// The members that have not yet dropped their copy (empty once every one has).
    pub nodes_pending: Vec<String>,
}

/// Every deleted namespace whose data some member still holds.
pub(super) fn deletions(state: &MetaState) -> Vec<DeletionView> {
    state
        .dropping
        .values()
        .map(|drop| DeletionView {
            name: drop.name.to_string(),
            id: drop.id.0,
            nodes_pending: drop.nodes.iter().map(ToString::to_string).collect(),
        })
        .collect()
}

impl Database {
    /// Creates a namespace cluster-wide; `Ok(false)` if it exists already, in which case the
    /// settings that may change are set to `config`'s (a `PUT` of the new configuration) and a
    /// setting that may not change but differs is refused.
    pub async fn create_namespace(
        &self,
        name: &str,
        config: NamespaceConfig,
    ) -> Result<(bool, NamespaceView), Error> {
        let name = NamespaceName::new(name)?;
        config.validate()?;
        if config.consistency == Consistency::Strong {
            return Err(Error::InvalidArgument(
                "strong namespaces are not available yet; use \"eventual\"".into(),
            ));
        }
        let command = Command::CreateNamespace { name: name.clone(), config: config.clone() };
        match self.meta.propose(command).await? {
            CommandResult::NamespaceCreated(_) => {}
            CommandResult::NamespaceExists(_) => return Ok((false, self.caught_up(&name).await?)),
            CommandResult::NamespaceConflict(_) => {
                let patch = NamespacePatch::all(&config);
                return Ok((false, self.update_namespace(name.as_str(), patch).await?));
            }
            CommandResult::Refused(why) => return Err(Error::InvalidArgument(why)),
            other => return Err(Error::Unavailable(format!("unexpected result {other:?}"))),
        }
        Ok((true, self.caught_up(&name).await?))
    }

    /// Changes the settings of namespace `name` that may change. A patch that changes a fixed
    /// setting is refused, naming it.
    pub async fn update_namespace(
        &self,
        name: &str,
        patch: NamespacePatch,
    ) -> Result<NamespaceView, Error> {
        let name = NamespaceName::new(name)?;
        let command = Command::UpdateNamespace { name: name.clone(), patch };
        match self.meta.propose(command).await? {
            CommandResult::NamespaceUpdated(_) | CommandResult::NamespaceExists(_) => {}
            CommandResult::NamespaceNotFound => {
                return Err(Error::NamespaceNotFound(name.to_string()));
            }
            CommandResult::NamespaceFieldFixed(field) => {
                return Err(Error::NamespaceFieldFixed { name: name.to_string(), field });
            }
            CommandResult::Refused(why) => return Err(Error::InvalidArgument(why)),
            other => return Err(Error::Unavailable(format!("unexpected result {other:?}"))),
        }
        self.caught_up(&name).await
    }

    /// Deletes namespace `name`: its name is free at once (a namespace created again under it
    /// is a new one), and every member drops its data in the background.
    pub async fn delete_namespace(&self, name: &str) -> Result<DeletionView, Error> {
        let name = NamespaceName::new(name)?;
        let command = Command::DeleteNamespace { name: name.clone() };
        let id = match self.meta.propose(command).await? {
            CommandResult::NamespaceDeleted(id) => id,
            CommandResult::NamespaceNotFound => {
                return Err(Error::NamespaceNotFound(name.to_string()));
            }
            CommandResult::Refused(why) => return Err(Error::InvalidArgument(why)),
            other => return Err(Error::Unavailable(format!("unexpected result {other:?}"))),
        };
        self.meta.catch_up(self.request_timeout).await?;
        let state = self.meta.state();
        let deletion = deletions(&state).into_iter().find(|d| d.id == id.0);
        Ok(deletion.unwrap_or(DeletionView {
            name: name.to_string(),
            id: id.0,
            nodes_pending: Vec::new(),
        }))
    }

    /// The namespace as this node sees it once it has applied everything the leader had
    /// committed (the change just made included).
    async fn caught_up(&self, name: &NamespaceName) -> Result<NamespaceView, Error> {
        self.meta.catch_up(self.request_timeout).await?;
        let state: Arc<MetaState> = self.meta.state();
        match state.namespaces.get(name) {
            Some(entry) => Ok(view(&state, name, &entry.config)),
            // Deleted meanwhile by another request.
            None => Err(Error::NamespaceNotFound(name.to_string())),
        }
    }
}
