//! The operator's calls that change the cluster beyond keys: a forced removal of a node that is
//! not down, and changing or deleting a namespace.

use reqwest::StatusCode;

use super::{Client, error_from, json};
use crate::cluster::MembershipChange;
use crate::error::Result;
use crate::namespace::{NamespaceConfig, NamespaceDeletion, NamespaceView};
use crate::path::{self, Query};

impl Client {
    /// Removes `node` at once even if it is up (`?force=true`): its replicas are thrown away
    /// and rebuilt from the others while it may still serve. [`Client::leave`] is the way to
    /// decommission a live node; [`Client::remove`] refuses one (`409 node_up`).
    pub async fn force_remove(&self, node: &str) -> Result<MembershipChange> {
        let mut query = Query::default();
        query.push("force", b"true");
        let url = self.url(&path::node_action_path(node, "remove")?, &query);
        let response = self.send(self.http.post(url).timeout(self.request_timeout)).await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(error_from(response).await);
        }
        json(response).await
    }

    /// Changes the settings of namespace `name` that are set in `changes` (`PATCH`): the
    /// quorums and `strict`. A setting fixed at creation that differs is an `Api` error 409
    /// `conflict` naming it (`details.field`).
    pub async fn update_namespace(
        &self,
        name: &str,
        changes: &NamespaceConfig,
    ) -> Result<NamespaceView> {
        let url = self.url(&path::namespace_path(name)?, &Query::default());
        let request = self.http.patch(url).json(changes).timeout(self.request_timeout);
        let response = self.send(request).await?;
        if response.status() != StatusCode::OK {
            return Err(error_from(response).await);
        }
        json(response).await
    }

    /// Deletes namespace `name`; its data is dropped in the background on every node.
    pub async fn delete_namespace(&self, name: &str) -> Result<NamespaceDeletion> {
        let url = self.url(&path::namespace_path(name)?, &Query::default());
        let response = self.send(self.http.delete(url).timeout(self.request_timeout)).await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(error_from(response).await);
        }
        json(response).await
    }
}
