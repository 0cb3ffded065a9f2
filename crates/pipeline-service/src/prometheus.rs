//! `GET /metrics`: the same figures in Prometheus text format, all named
//! `buffer_oracle_writer_*`.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::state::ServiceState;

/// The common prefix of every metric.
pub const PREFIX: &str = "buffer_oracle_writer";

/// Reads one figure of a polling group's status.
type GroupFigure = fn(&polling_engine::GroupStatus) -> u64;

#[derive(Debug)]
struct StateCollector(Arc<ServiceState>);

impl std::fmt::Debug for ServiceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceState")
            .field("sink", &self.sink_description)
            .finish_non_exhaustive()
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = &self.0;
        let accounting = state.accounting();
        let snapshot = state.writer.metrics().snapshot();
        let backup = state.backup.stats().unwrap_or_default();
        let e = &mut encoder;
        gauge(
            e,
            "buffer_size",
            "Values in the ring buffer",
            accounting.buffered as f64,
        )?;
        gauge(
            e,
            "buffer_capacity",
            "Ring buffer capacity",
            state.buffer.capacity() as f64,
        )?;
        gauge(
            e,
            "buffer_utilization_ratio",
            "Buffer fill level, 0 to 1",
            state.buffer.utilization_pct() / 100.0,
        )?;
        counter(
            e,
            "values_accepted",
            "Values accepted into the buffer",
            accounting.accepted,
        )?;
        counter(
            e,
            "values_refused",
            "Values refused because the service was stopping",
            state.refused(),
        )?;
        counter(
            e,
            "buffer_overflow",
            "Oldest values displaced from the full buffer",
            accounting.overflow,
        )?;
        counter(
            e,
            "rows_written",
            "Rows inserted into the database",
            accounting.written,
        )?;
        counter(
            e,
            "rows_duplicate",
            "Rows the database already had",
            accounting.duplicates,
        )?;
        counter(
            e,
            "rows_rejected",
            "Rows the database refused, saved in rejected files",
            accounting.rejected,
        )?;
        counter(
            e,
            "rows_backed_up",
            "Rows saved in CSV backup files",
            accounting.backed_up,
        )?;
        gauge(
            e,
            "rows_in_flight",
            "Rows drained from the buffer and not yet settled",
            accounting.in_flight as f64,
        )?;
        counter(
            e,
            "rows_unsaved",
            "Rows lost at shutdown: no database and no disk took them",
            accounting.unsaved,
        )?;
        counter(
            e,
            "writes",
            "Batch write attempts",
            snapshot.lifetime.writes,
        )?;
        counter(
            e,
            "write_failures",
            "Failed batch write attempts",
            snapshot.lifetime.failures,
        )?;
        counter(
            e,
            "backup_failures",
            "Backup or rejected files that could not be written",
            state.writer.stats().backup_failures,
        )?;
        gauge(
            e,
            "write_latency_avg_seconds",
            "Mean batch write latency over the window",
            snapshot.avg_latency_ms / 1000.0,
        )?;
        gauge(
            e,
            "write_latency_p99_seconds",
            "99th percentile batch write latency over the window",
            snapshot.p99_latency_ms / 1000.0,
        )?;
        gauge(
            e,
            "write_throughput_items_per_second",
            "Rows written per second over the window",
            snapshot.throughput_items_per_sec,
        )?;
        gauge(
            e,
            "write_success_ratio",
            "Successful write attempts over the window, 0 to 1",
            snapshot.success_rate_pct / 100.0,
        )?;
        gauge(
            e,
            "backup_files",
            "Backup files waiting to be loaded",
            backup.pending_files as f64,
        )?;
        gauge(
            e,
            "backup_bytes",
            "Size of the pending backup files",
            backup.pending_bytes as f64,
        )?;
        gauge(
            e,
            "rejected_files",
            "Rejected-row files",
            backup.rejected_files as f64,
        )?;
        let groups = state.engine.get().map(|e| e.status()).unwrap_or_default();
        let per_group: [(&str, &str, GroupFigure); 3] = [
            ("polling_polls", "Polls done, per group", |g| g.polls),
            (
                "polling_errors",
                "Polls with a failed read, per group",
                |g| g.errors,
            ),
            (
                "polling_overruns",
                "Missed deadlines of FIXED groups, per group",
                |g| g.overruns,
            ),
        ];
        for (name, help, value) in per_group {
            if groups.is_empty() {
                continue;
            }
            let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            for group in &groups {
                let labels = [("group", group.name.as_str())];
                ConstCounter::new(value(group)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// A registry whose one collector reads `state` at each scrape.
pub fn registry(state: Arc<ServiceState>) -> Registry {
    let mut registry = Registry::with_prefix(PREFIX);
    registry.register_collector(Box::new(StateCollector(state)));
    registry
}

/// The text exposition.
pub fn render(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}
