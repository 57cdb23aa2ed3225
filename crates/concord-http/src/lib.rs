//! concord-http
