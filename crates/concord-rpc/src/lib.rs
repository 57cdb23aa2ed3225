//! concord-rpc
