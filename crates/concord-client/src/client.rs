//! [`Client`]: one connection pool to one Concord endpoint, and one method per API call.
//!
//! Each method builds a path (see [`crate::path`]), sends one request with a deadline, and turns
//! the answer into a typed result or an [`Error`]. Nothing is retried here: whether a failure is
//! worth retrying is the caller's decision ([`Error::is_retryable`]).

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

use crate::cluster::{ClusterStatus, FaultRules, MembershipChange, PartitionTrees, Ring};
use crate::error::{Error, Result, api_error};
use crate::kv::{
    DEFAULT_CONTENT_TYPE, DeleteResult, Envelope, GetOptions, GetResult, ListPage, PutResult,
    WriteOptions, WriteResult,
};
use crate::namespace::{NamespaceConfig, NamespaceList, NamespaceView};
use crate::path::{self, Query};

mod admin;

/// Header carrying the causal context of a key.
pub const CONTEXT_HEADER: &str = "Concord-Context";
/// Header carrying `answered/required` replica counts.
pub const REPLICAS_HEADER: &str = "Concord-Replicas";

/// Extra client-side time granted beyond a request's server-side `timeout_ms`, so the server's
/// own `504 timeout` answer arrives before the client gives up on the connection.
const SERVER_DEADLINE_MARGIN: Duration = Duration::from_secs(5);

/// Connection and deadline settings of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Time allowed to open a TCP connection. Default 5 s.
    pub connect_timeout: Duration,
    /// Deadline of a whole request, from connecting to the last byte of the answer, when the
    /// request sets no `timeout_ms`. Default 30 s.
    pub request_timeout: Duration,
    /// How long an idle keep-alive connection stays in the pool. Default 60 s.
    pub pool_idle_timeout: Duration,
    /// Most idle connections kept in the pool. Default 1024.
    pub pool_idle_connections_max: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            pool_idle_timeout: Duration::from_secs(60),
            pool_idle_connections_max: 1024,
        }
    }
}

/// A client of one Concord endpoint. Cheap to clone: clones share the connection pool, so a
/// program should make one and clone it into its tasks.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// `scheme://host:port[/prefix]`, without a trailing slash.
    base: String,
    /// Deadline of requests without `timeout_ms`.
    request_timeout: Duration,
}

impl Client {
    /// A client of `endpoint` (`http://host:port`; a missing scheme means `http://`) with the
    /// default [`ClientConfig`]. No connection is opened until the first request.
    pub fn new(endpoint: &str) -> Result<Client> {
        Self::with_config(endpoint, ClientConfig::default())
    }

    /// A client of `endpoint` with explicit connection settings.
    pub fn with_config(endpoint: &str, config: ClientConfig) -> Result<Client> {
        let base = normalize_endpoint(endpoint)?;
        // A database client talks to its cluster directly: proxies from the environment
        // would only add a hop, or break local clusters outright.
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_idle_connections_max)
            .tcp_nodelay(true)
            .no_proxy()
            .user_agent(concat!("concord-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(Error::Transport)?;
        Ok(Client { http, base, request_timeout: config.request_timeout })
    }

    /// The endpoint this client talks to, normalized.
    pub fn endpoint(&self) -> &str {
        &self.base
    }

    /// Reads a key: its value, its siblings, or that it is absent.
    ///
    /// Values come raw (no base64); a `404 namespace_not_found` or any other error status is an
    /// [`Error::Api`].
    pub async fn get(&self, ns: &str, key: &[u8], opts: GetOptions) -> Result<GetResult> {
        let url = self.url(&path::key_path(ns, key)?, &read_query(opts));
        let request = self.http.get(url).timeout(self.deadline(opts.timeout_ms));
        let response = self.send(request).await?;
        match response.status() {
            StatusCode::OK => {
                let context = required_header(response.headers(), CONTEXT_HEADER)?;
                let content_type = optional_header(response.headers(), CONTENT_TYPE.as_str())?
                    .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned());
                let value = Vec::from(body(response).await?);
                Ok(GetResult::Value { value, content_type, context })
            }
            StatusCode::MULTIPLE_CHOICES => Ok(json::<Envelope>(response).await?.into()),
            StatusCode::NOT_FOUND => {
                let context = optional_header(response.headers(), CONTEXT_HEADER)?;
                not_found_or_error(response).await.map(|()| GetResult::NotFound { context })
            }
            _ => Err(error_from(response).await),
        }
    }

    /// Reads a key as the JSON envelope (`Accept: application/json`), which carries each
    /// sibling's timestamp. `None` when the key is absent or deleted.
    pub async fn get_envelope(
        &self,
        ns: &str,
        key: &[u8],
        opts: GetOptions,
    ) -> Result<Option<Envelope>> {
        let url = self.url(&path::key_path(ns, key)?, &read_query(opts));
        let request = self
            .http
            .get(url)
            .header(ACCEPT, "application/json")
            .timeout(self.deadline(opts.timeout_ms));
        let response = self.send(request).await?;
        match response.status() {
            StatusCode::OK | StatusCode::MULTIPLE_CHOICES => Ok(Some(json(response).await?)),
            StatusCode::NOT_FOUND => not_found_or_error(response).await.map(|()| None),
            _ => Err(error_from(response).await),
        }
    }

    /// Writes `value` under `key`. `content_type` defaults to `application/octet-stream`;
    /// `context` is the token of the last read (omit it for a blind write, which adds a sibling
    /// in `siblings` namespaces).
    #[expect(
        clippy::too_many_arguments,
        reason = "the signature mirrors the PUT request one-to-one, as the API brief specifies"
    )]
    pub async fn put(
        &self,
        ns: &str,
        key: &[u8],
        value: impl Into<Bytes>,
        content_type: Option<&str>,
        context: Option<&str>,
        opts: WriteOptions,
    ) -> Result<PutResult> {
        let url = self.url(&path::key_path(ns, key)?, &write_query(opts));
        let content_type =
            header_value("content type", content_type.unwrap_or(DEFAULT_CONTENT_TYPE))?;
        let mut request = self
            .http
            .put(url)
            .header(CONTENT_TYPE, content_type)
            .body(value.into())
            .timeout(self.deadline(opts.timeout_ms));
        if let Some(context) = context {
            request = request.header(CONTEXT_HEADER, header_value("context", context)?);
        }
        write_result(self.send(request).await?).await
    }

    /// Deletes `key` (writes a tombstone). Deleting an absent key is not an error.
    pub async fn delete(
        &self,
        ns: &str,
        key: &[u8],
        context: Option<&str>,
        opts: WriteOptions,
    ) -> Result<DeleteResult> {
        let url = self.url(&path::key_path(ns, key)?, &write_query(opts));
        let mut request = self.http.delete(url).timeout(self.deadline(opts.timeout_ms));
        if let Some(context) = context {
            request = request.header(CONTEXT_HEADER, header_value("context", context)?);
        }
        write_result(self.send(request).await?).await
    }

    /// One page of the keys of `ns` in byte order, optionally only those starting with
    /// `prefix`. `after` is the `next` token of the previous page; `limit` is 1..=1000
    /// (server default 100).
    pub async fn list(
        &self,
        ns: &str,
        prefix: Option<&[u8]>,
        after: Option<&str>,
        limit: Option<u32>,
    ) -> Result<ListPage> {
        let mut query = Query::default();
        if let Some(prefix) = prefix {
            query.push("prefix", prefix);
        }
        query.push_opt("after", after);
        query.push_opt("limit", limit);
        self.get_json(&path::list_path(ns)?, &query).await
    }

    /// Creates namespace `name`, or, if it exists, sets its quorums and `strict` to these.
    /// Returns whether it was created, and the namespace as the server sees it. A namespace
    /// that exists with another `replicas`, `conflicts` or `consistency` (fixed at creation) is
    /// an `Api` error with code `conflict`.
    pub async fn create_namespace(
        &self,
        name: &str,
        config: &NamespaceConfig,
    ) -> Result<(bool, NamespaceView)> {
        let url = self.url(&path::namespace_path(name)?, &Query::default());
        let request = self.http.put(url).json(config).timeout(self.request_timeout);
        let response = self.send(request).await?;
        let created = match response.status() {
            StatusCode::CREATED => true,
            StatusCode::OK => false,
            _ => return Err(error_from(response).await),
        };
        Ok((created, json(response).await?))
    }

    /// Every namespace.
    pub async fn namespaces(&self) -> Result<Vec<NamespaceView>> {
        let list: NamespaceList = self.get_json("/v1/namespaces", &Query::default()).await?;
        Ok(list.namespaces)
    }

    /// One namespace; `404 namespace_not_found` if it does not exist.
    pub async fn namespace(&self, name: &str) -> Result<NamespaceView> {
        self.get_json(&path::namespace_path(name)?, &Query::default()).await
    }

    /// Members, epoch, leader and data movement.
    pub async fn cluster(&self) -> Result<ClusterStatus> {
        self.get_json("/v1/cluster", &Query::default()).await
    }

    /// The partition table.
    pub async fn ring(&self) -> Result<Ring> {
        self.get_json("/v1/cluster/ring", &Query::default()).await
    }

    /// Every replica's anti-entropy tree root and key count for one partition of namespace
    /// `ns`, and whether they agree (`GET /v1/cluster/partitions/{p}?ns=`).
    pub async fn partition(&self, partition: u32, ns: &str) -> Result<PartitionTrees> {
        let mut query = Query::default();
        query.push("ns", ns.as_bytes());
        self.get_json(&format!("/v1/cluster/partitions/{partition}"), &query).await
    }

    /// Starts decommissioning `node`: its partitions move to the others, then it is removed.
    /// Returns once the change is accepted (`202`); `404 node_not_found` for a stranger.
    pub async fn leave(&self, node: &str) -> Result<MembershipChange> {
        self.post_json(&path::node_action_path(node, "leave")?, StatusCode::ACCEPTED).await
    }

    /// Removes a dead `node` at once; its replicas are rebuilt from the others. A node that is
    /// not down is refused with `409 node_up` (see [`Client::force_remove`]).
    pub async fn remove(&self, node: &str) -> Result<MembershipChange> {
        self.post_json(&path::node_action_path(node, "remove")?, StatusCode::ACCEPTED).await
    }

    /// Replaces the fault rules of the node this client talks to, and returns them as the node
    /// understood them. `403 forbidden` unless the node runs with `--enable-fault-injection`.
    pub async fn set_faults(&self, rules: &FaultRules) -> Result<FaultRules> {
        let url = self.url("/v1/admin/faults", &Query::default());
        let request = self.http.post(url).json(rules).timeout(self.request_timeout);
        let response = self.send(request).await?;
        if response.status() != StatusCode::OK {
            return Err(error_from(response).await);
        }
        json(response).await
    }

    /// Removes every fault rule of the node this client talks to.
    pub async fn clear_faults(&self) -> Result<()> {
        let url = self.url("/v1/admin/faults", &Query::default());
        let response = self.send(self.http.delete(url).timeout(self.request_timeout)).await?;
        if response.status() != StatusCode::NO_CONTENT {
            return Err(error_from(response).await);
        }
        Ok(())
    }

    /// `GET /health`: `Ok` while the process serves.
    pub async fn health(&self) -> Result<()> {
        let request = self.http.get(self.url("/health", &Query::default()));
        let response = self.send(request.timeout(self.request_timeout)).await?;
        if !response.status().is_success() {
            return Err(error_from(response).await);
        }
        Ok(())
    }

    /// `GET /ready`: whether storage is open and the node accepts writes (`false` on 503).
    pub async fn ready(&self) -> Result<bool> {
        let request = self.http.get(self.url("/ready", &Query::default()));
        let response = self.send(request.timeout(self.request_timeout)).await?;
        match response.status() {
            status if status.is_success() => Ok(true),
            StatusCode::SERVICE_UNAVAILABLE => Ok(false),
            _ => Err(error_from(response).await),
        }
    }

    fn url(&self, path: &str, query: &Query) -> String {
        format!("{}{}{}", self.base, path, query.as_str())
    }

    /// The client-side deadline of a request with server-side deadline `timeout_ms`.
    fn deadline(&self, timeout_ms: Option<u32>) -> Duration {
        match timeout_ms {
            Some(timeout_ms) => Duration::from_millis(timeout_ms.into()) + SERVER_DEADLINE_MARGIN,
            None => self.request_timeout,
        }
    }

    async fn send(&self, request: RequestBuilder) -> Result<Response> {
        request.send().await.map_err(Error::Transport)
    }

    /// `POST path` without a body, answered with `expected` and a JSON body of type `T`.
    async fn post_json<T: DeserializeOwned>(&self, path: &str, expected: StatusCode) -> Result<T> {
        let request = self.http.post(self.url(path, &Query::default()));
        let response = self.send(request.timeout(self.request_timeout)).await?;
        if response.status() != expected {
            return Err(error_from(response).await);
        }
        json(response).await
    }

    /// `GET path` answered with 200 and a JSON body of type `T`.
    async fn get_json<T: DeserializeOwned>(&self, path: &str, query: &Query) -> Result<T> {
        let request = self.http.get(self.url(path, query)).timeout(self.request_timeout);
        let response = self.send(request).await?;
        if response.status() != StatusCode::OK {
            return Err(error_from(response).await);
        }
        json(response).await
    }
}

/// Checks and normalizes an endpoint: adds `http://` when no scheme is given, refuses what this
/// build cannot speak (TLS is not compiled in) and strips trailing slashes.
pub(crate) fn normalize_endpoint(endpoint: &str) -> Result<String> {
    let endpoint = endpoint.trim();
    let with_scheme =
        if endpoint.contains("://") { endpoint.to_owned() } else { format!("http://{endpoint}") };
    let invalid = |why: &str| Error::InvalidArgument(format!("endpoint {endpoint:?}: {why}"));
    let url = reqwest::Url::parse(&with_scheme).map_err(|err| invalid(&err.to_string()))?;
    if url.scheme() != "http" {
        return Err(invalid("only http:// endpoints are supported"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("an endpoint takes no query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn read_query(opts: GetOptions) -> Query {
    let mut query = Query::default();
    query.push_opt("r", opts.r);
    query.push_opt("timeout_ms", opts.timeout_ms);
    query
}

fn write_query(opts: WriteOptions) -> Query {
    let mut query = Query::default();
    query.push_opt("w", opts.w);
    query.push_opt("strict", opts.strict);
    query.push_opt("timeout_ms", opts.timeout_ms);
    query
}

/// `text` as a request header value; `what` names it in the error.
fn header_value(what: &str, text: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(text)
        .map_err(|_| Error::InvalidArgument(format!("{what} {text:?} is not a valid header value")))
}

fn optional_header(headers: &HeaderMap, name: &str) -> Result<Option<String>> {
    let Some(value) = headers.get(name) else { return Ok(None) };
    let text =
        value.to_str().map_err(|_| Error::Decode(format!("header {name} is not visible ASCII")))?;
    Ok(Some(text.to_owned()))
}

fn required_header(headers: &HeaderMap, name: &str) -> Result<String> {
    optional_header(headers, name)?
        .ok_or_else(|| Error::Decode(format!("the response has no {name} header")))
}

/// The result of a PUT or DELETE: 2xx with the new context and replica counts, or an error.
async fn write_result(response: Response) -> Result<WriteResult> {
    if !response.status().is_success() {
        return Err(error_from(response).await);
    }
    let headers = response.headers();
    let context = required_header(headers, CONTEXT_HEADER)?;
    let replicas = required_header(headers, REPLICAS_HEADER)?.parse().map_err(Error::Decode)?;
    Ok(WriteResult { context, replicas })
}

/// `Ok` when a 404 answer is the key's `not_found`, the error otherwise (`namespace_not_found`,
/// an unknown route).
async fn not_found_or_error(response: Response) -> Result<()> {
    match error_from(response).await {
        Error::Api { code, .. } if code == "not_found" => Ok(()),
        err => Err(err),
    }
}

async fn body(response: Response) -> Result<Bytes> {
    response.bytes().await.map_err(Error::Transport)
}

async fn json<T: DeserializeOwned>(response: Response) -> Result<T> {
    let body = body(response).await?;
    serde_json::from_slice(&body).map_err(|err| Error::Decode(err.to_string()))
}

/// The [`Error`] an error response stands for. A body that cannot be read still yields the
/// status, since the status is the most useful part.
async fn error_from(response: Response) -> Error {
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap_or_default();
    api_error(status, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Endpoints get a scheme when they lack one and lose trailing slashes.
    #[test]
    fn endpoints_are_normalized() {
        let cases = [
            ("http://127.0.0.1:7700", "http://127.0.0.1:7700"),
            ("http://127.0.0.1:7700/", "http://127.0.0.1:7700"),
            ("127.0.0.1:7700", "http://127.0.0.1:7700"),
            ("localhost:7700", "http://localhost:7700"),
            ("http://db.example/concord/", "http://db.example/concord"),
        ];
        for (given, expected) in cases {
            assert_eq!(normalize_endpoint(given).unwrap(), expected, "{given}");
        }
    }

    /// Endpoints this build cannot reach are refused up front.
    #[test]
    fn unusable_endpoints_are_refused() {
        for bad in ["https://127.0.0.1:7700", "http://", "http://h:1/?a=b", "ftp://h", ""] {
            let err = normalize_endpoint(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{bad:?}: {err}");
        }
    }

    /// Options become query parameters in the API's spelling.
    #[test]
    fn options_become_query_parameters() {
        assert_eq!(read_query(GetOptions::default()).as_str(), "");
        let opts = GetOptions { r: Some(crate::Quorum::All), timeout_ms: Some(250) };
        assert_eq!(read_query(opts).as_str(), "?r=all&timeout_ms=250");
        let opts = WriteOptions {
            w: Some(crate::Quorum::Count(2)),
            strict: Some(true),
            ..Default::default()
        };
        assert_eq!(write_query(opts).as_str(), "?w=2&strict=true");
    }
}
