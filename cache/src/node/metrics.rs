//! Prometheus `/metrics` and `/healthz` over HTTP on `--metrics-listen`.
//!
//! The store's counters live in its shards (updated under the shard locks the commands take
//! anyway), so rather than mirroring every hit into a Prometheus counter, a [`Collector`] reads
//! them at scrape time. Only the command latency histogram is recorded as commands run.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Node;

/// What the node records as it runs.
#[derive(Debug, Clone)]
pub(super) struct Metrics {
    /// Time to parse and execute one command, in seconds.
    pub command_duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            // 1 µs to 32 ms.
            command_duration: Histogram::new(exponential_buckets(1e-6, 2.0, 16)),
        }
    }
}

pub(super) async fn serve(listener: TcpListener, node: Arc<Node>, stop: CancellationToken) {
    let mut registry = Registry::with_prefix("cache");
    registry.register_with_unit(
        "command_duration",
        "Time to execute one command",
        Unit::Seconds,
        node.metrics.command_duration.clone(),
    );
    registry.register_collector(Box::new(NodeCollector(node)));
    let registry = Arc::new(registry);
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || service::metrics::respond(registry.clone())),
        );
    let stopped = async move { stop.cancelled().await };
    if let Err(error) =
        service::http::serve(listener, router, stopped, Duration::from_secs(1)).await
    {
        tracing::error!(%error, "metrics server failed");
    }
}

/// Reads the node's counters at scrape time.
#[derive(Debug)]
struct NodeCollector(Arc<Node>);

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let node = &self.0;
        let stats = node.store.stats();
        let clients = &node.clients;
        let counters = [
            ("hits", "Reads that found their key", stats.hits),
            ("misses", "Reads that did not find their key", stats.misses),
            ("evictions", "Items evicted to make room", stats.evictions),
            (
                "expirations",
                "Items removed because their TTL passed",
                stats.expired,
            ),
            (
                "commands",
                "Commands executed",
                clients.commands.load(Ordering::Relaxed),
            ),
            (
                "connections_accepted",
                "Connections accepted",
                clients.total.load(Ordering::Relaxed),
            ),
            (
                "connections_rejected",
                "Connections refused over --max-connections",
                clients.rejected.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let gauges = [
            ("items", "Items stored", None, stats.items),
            (
                "memory",
                "Memory the store uses",
                Some(&Unit::Bytes),
                stats.bytes,
            ),
            (
                "max_memory",
                "The store's memory limit",
                Some(&Unit::Bytes),
                node.store.max_memory(),
            ),
            (
                "connections",
                "Open client connections",
                None,
                clients.connected.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, unit, value) in gauges {
            let gauge = ConstGauge::new(value as i64);
            gauge.encode(encoder.encode_descriptor(name, help, unit, gauge.metric_type())?)?;
        }
        Ok(())
    }
}
