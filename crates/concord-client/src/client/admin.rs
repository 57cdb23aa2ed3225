//! The operator's calls that change the cluster beyond keys: a forced removal of a node that is
//! not down.

use reqwest::StatusCode;

use super::{Client, error_from, json};
use crate::cluster::MembershipChange;
use crate::error::Result;
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
}
