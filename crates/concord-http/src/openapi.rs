//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::OpenApi;

use crate::error::{ErrorBody, ErrorDetail};
use crate::routes::{admin, cluster, kv, namespaces, ops};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Concord HTTP API",
        version = "1",
        description = "Concord's key-value, namespace and cluster API. See docs/api.md."
    ),
    paths(
        kv::get_key,
        kv::put_key,
        kv::delete_key,
        kv::list_keys,
        namespaces::put_namespace,
        namespaces::list_namespaces,
        namespaces::get_namespace,
        cluster::get_cluster,
        cluster::get_ring,
        cluster::get_partition,
        cluster::leave_node,
        cluster::remove_node,
        admin::set_faults,
        admin::clear_faults,
        admin::holdings,
        admin::drop_hints,
        ops::health,
        ops::ready,
        ops::metrics,
        ops::openapi,
    ),
    components(schemas(ErrorBody, ErrorDetail))
)]
pub struct ApiDoc;
