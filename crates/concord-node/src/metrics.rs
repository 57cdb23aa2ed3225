//! Prometheus metrics. The registry lives here so every layer (HTTP today, replication later)
//! records into one place; `concord-http` only renders it at `/metrics`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use concord_storage::{CommitTiming, EngineEvent, EngineState};

use crate::storage_metrics::StorageMetrics;

/// Labels of a served HTTP request. Every label value comes from a fixed set, so no client can
/// grow the number of series (issue 19: made-up methods once grew a scrape to 63 MB): `route`
/// and `method` are `'static` strings, which only the front end's own tables can provide (a
/// route template, never the raw path; a known method name, else one shared value), and
/// `status` is a status the server chose.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
    pub method: &'static str,
}

fn latency_histogram() -> Histogram {
    // 50 µs to about 26 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

/// Every metric the node exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    storage: StorageMetrics,
    rpc: concord_rpc::RpcMetrics,
    replica: concord_replica::ReplicaMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("concord");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests served", requests.clone());
        let request_seconds =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency from headers received to response ready",
            request_seconds.clone(),
        );
        let storage = StorageMetrics::new(&mut registry);
        let rpc = concord_rpc::RpcMetrics::new(&mut registry);
        let replica = concord_replica::ReplicaMetrics::new(&mut registry);
        Self { registry, requests, request_seconds, storage, rpc, replica }
    }

    /// The peer transport's metrics (`concord_rpc_*`).
    pub fn rpc(&self) -> &concord_rpc::RpcMetrics {
        &self.rpc
    }

    pub fn replica(&self) -> &concord_replica::ReplicaMetrics {
        &self.replica
    }

    /// Counts one served HTTP request. `route` and `method` must come from fixed tables (see
    /// [`RequestLabels`]); the `'static` bound keeps request data out of them.
    pub fn record_request(
        &self,
        route: &'static str,
        method: &'static str,
        status: u16,
        elapsed: Duration,
    ) {
        self.requests.get_or_create(&RequestLabels { route, method, status }).inc();
        let route = RouteLabels { route, method };
        self.request_seconds.get_or_create(&route).observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

impl concord_storage::CommitObserver for Metrics {
    fn on_commit(&self, timing: &CommitTiming) {
        self.storage.on_commit(timing);
    }
}

impl concord_storage::EngineObserver for Metrics {
    fn on_engine_state(&self, state: &EngineState) {
        self.storage.on_engine_state(state);
    }

    fn on_engine_event(&self, event: &EngineEvent) {
        self.storage.on_engine_event(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_storage::{CommitKind, CommitObserver, EngineObserver, Space};

    #[test]
    fn recorded_values_appear_in_the_exposition() {
        let metrics = Metrics::new();
        metrics.record_request("/v1/kv/{ns}/{key}", "GET", 200, Duration::from_millis(2));
        metrics.on_commit(&CommitTiming {
            kind: CommitKind::Client,
            updates: 7,
            queue_wait: Duration::from_millis(40),
            apply: Duration::from_micros(100),
            engine: Duration::from_micros(200),
            synced: true,
        });
        let mut state = EngineState::default();
        state.sealed_memtables[Space::Data.index()] = 2;
        metrics.on_engine_state(&state);
        let flush = EngineEvent::FlushDone { space: Space::Data, pending: Duration::from_secs(1) };
        metrics.on_engine_event(&flush);
        let text = metrics.render();
        assert!(text.contains(
            "concord_http_requests_total{route=\"/v1/kv/{ns}/{key}\",method=\"GET\",status=\"200\"} 1"
        ), "{text}");
        assert!(text.contains("concord_storage_commit_duration_seconds_count 1"), "{text}");
        assert!(text.contains("concord_storage_commit_batch_updates_sum 7.0"), "{text}");
        assert!(
            text.contains(
                "concord_storage_commit_phase_seconds_sum{phase=\"queue_wait\",kind=\"client\"} 0.04"
            ),
            "{text}"
        );
        assert!(text.contains("concord_storage_engine_flushes_total{space=\"data\"} 1"), "{text}");
        assert!(
            text.contains("concord_storage_engine_sealed_memtables{space=\"data\"} 2"),
            "{text}"
        );
    }
}
