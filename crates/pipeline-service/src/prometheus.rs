//! `GET /metrics`: the same figures in Prometheus text format (OpenMetrics), all named
//! `buffer_oracle_writer_*`. Counters end in `_total`, figures with a unit end in it
//! (`_seconds`, `_bytes`, `_ratio`); every family has a HELP line. The alert rules and the
//! Grafana dashboard in `deploy/` read these names: rename one and they break (their tests
//! say which).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use rolling_metrics::{LATENCY_BUCKETS, LATENCY_BUCKET_BOUNDS_US};

use crate::state::ServiceState;

/// The common prefix of every metric.
pub const PREFIX: &str = "buffer_oracle_writer";

/// The states `health_status` reports, one series each, 1 for the current one.
const HEALTH_STATES: [&str; 3] = ["healthy", "degraded", "unhealthy"];

/// Reads one figure of a polling group's status; `None` leaves the group out of the family.
type GroupFigure = fn(&polling_engine::GroupStatus) -> Option<f64>;

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

fn flag(value: bool) -> f64 {
    if value {
        1.0
    } else {
        0.0
    }
}

/// One family of a value per polling group (left out when no group has the figure).
fn per_group(
    encoder: &mut DescriptorEncoder,
    groups: &[polling_engine::GroupStatus],
    (name, help, metric_type, figure): (&str, &str, MetricType, GroupFigure),
) -> Result<(), std::fmt::Error> {
    let values: Vec<(&str, f64)> = groups
        .iter()
        .filter_map(|g| figure(g).map(|value| (g.name.as_str(), value)))
        .collect();
    if values.is_empty() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (group, value) in values {
        let labels = [("group", group)];
        let metric = family.encode_family(&labels)?;
        match metric_type {
            // Counts of polls: whole numbers, kept exact.
            MetricType::Counter => ConstCounter::new(value as u64).encode(metric)?,
            _ => ConstGauge::new(value).encode(metric)?,
        }
    }
    Ok(())
}

/// Seconds since a poll that started at `time` (ISO 8601, UTC), on this machine's clock, so
/// that a Prometheus server whose clock differs from the plant PC's still judges it right.
fn age_seconds(time: &str) -> Option<f64> {
    let started = tag_model::parse_timestamp(time).ok()?;
    let age = chrono::Utc::now().naive_utc() - started;
    Some((age.num_microseconds()? as f64 / 1e6).max(0.0))
}

/// The durable log's figures (BUFFER_DURABILITY=disk only).
fn durable_log_metrics(
    e: &mut DescriptorEncoder,
    log: &oracle_batch::TagLog,
    accounting: &crate::state::Accounting,
) -> Result<(), std::fmt::Error> {
    let stats = log.stats();
    gauge(
        e,
        "durable_log_bytes",
        "Bytes of segment files in BUFFER_DIR",
        stats.bytes as f64,
    )?;
    gauge(
        e,
        "durable_log_max_bytes",
        "The log's cap (BUFFER_DISK_MAX_BYTES)",
        log.options().max_bytes as f64,
    )?;
    gauge(
        e,
        "durable_log_segments",
        "Segment files in BUFFER_DIR",
        stats.segments as f64,
    )?;
    gauge(
        e,
        "durable_log_unsettled",
        "Values in the log not yet written, backed up or rejected",
        stats.unsettled() as f64,
    )?;
    gauge(
        e,
        "durable_log_oldest_unsettled_age_seconds",
        "How long ago the oldest value not yet settled was appended (0 when none)",
        stats
            .oldest_unsettled_age
            .map_or(0.0, |age| age.as_secs_f64()),
    )?;
    counter(
        e,
        "durable_log_corrupt_records",
        "Damaged records skipped (at start and since); the log names segment and offset",
        stats.corrupt_records,
    )?;
    counter(
        e,
        "durable_log_recovered_values",
        "Values found unsettled at start and written again",
        accounting.recovered,
    )?;
    counter(
        e,
        "durable_log_lost_values",
        "Values lost to damage found after start, or never synced because the disk failed",
        accounting.lost,
    )?;
    counter(
        e,
        "durable_log_fsyncs",
        "Group commits (fsyncs)",
        stats.fsyncs,
    )?;
    counter(
        e,
        "durable_log_written_bytes",
        "Bytes written to segment files",
        stats.bytes_written,
    )?;
    counter(
        e,
        "durable_log_sync_failures",
        "Writes or fsyncs of the log that failed",
        stats.sync_failures,
    )?;
    gauge(
        e,
        "durable_log_disk_error",
        "1 while the log's disk refuses writes (ingest answers 503)",
        flag(stats.disk_error.is_some()),
    )?;
    Ok(())
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = &self.0;
        let accounting = state.accounting();
        let snapshot = state.writer.metrics().snapshot();
        let mode = state.writer.mode();
        let backup = state.backup.stats().unwrap_or_default();
        let (_, health) = state.health();
        let e = &mut encoder;

        let info = [
            ("version", env!("CARGO_PKG_VERSION")),
            ("sink", state.sink_kind),
        ];
        ConstGauge::new(1.0).encode(
            e.encode_descriptor(
                "build_info",
                "Always 1; the version and the sink (Oracle, SQLite, PostgreSQL) as labels",
                None,
                MetricType::Gauge,
            )?
            .encode_family(&info)?,
        )?;
        {
            let mut family = e.encode_descriptor(
                "health_status",
                "1 for the current state of GET /api/buffer/health (healthy, degraded, \
                 unhealthy), 0 for the others",
                None,
                MetricType::Gauge,
            )?;
            for status in HEALTH_STATES {
                let labels = [("status", status)];
                ConstGauge::new(flag(health["status"] == status))
                    .encode(family.encode_family(&labels)?)?;
            }
        }

        // The buffer.
        gauge(
            e,
            "buffer_size",
            "Values in the ring buffer",
            accounting.buffered as f64,
        )?;
        if let Some(capacity) = state.capacity() {
            gauge(
                e,
                "buffer_capacity",
                "Ring buffer capacity (BUFFER_MAX_SIZE)",
                capacity as f64,
            )?;
        }
        gauge(
            e,
            "buffer_utilization_ratio",
            "Buffer fill level, 0 to 1 (disk mode: of BUFFER_DISK_MAX_BYTES)",
            state.utilization_pct() / 100.0,
        )?;
        if let Some(log) = state.log() {
            durable_log_metrics(e, log, &accounting)?;
        }
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
            "Oldest values displaced from the full buffer (lost)",
            accounting.overflow,
        )?;

        // Where the values went (the accounting).
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
            "rows_conflict",
            "Rows not stored because the database holds another value or quality for their \
             key (plc_code, tag_address, timestamp); saved in conflicts files with the stored \
             value",
            accounting.conflicts,
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
        counter(
            e,
            "rows_spilled",
            "Values moved from the buffer to CSV backup while a batch waited for its retry",
            accounting.spilled,
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

        // The writer: attempts since start.
        counter(
            e,
            "writes",
            "Batch write attempts",
            snapshot.lifetime.writes,
        )?;
        counter(
            e,
            "write_failures",
            "Failed batch write attempts (each is retried, or its batch backed up)",
            snapshot.lifetime.failures,
        )?;
        counter(
            e,
            "write_attempt_rows",
            "Rows in all batch write attempts, failed ones included",
            snapshot.lifetime.items,
        )?;
        counter(
            e,
            "backup_failures",
            "Backup or rejected files that could not be written",
            state.writer.stats().backup_failures,
        )?;
        {
            let histogram = snapshot.lifetime_latency;
            let buckets: Vec<(f64, u64)> = LATENCY_BUCKET_BOUNDS_US
                .iter()
                .map(|&us| us as f64 / 1e6)
                .chain([f64::INFINITY])
                .zip(histogram.counts)
                .collect();
            debug_assert_eq!(buckets.len(), LATENCY_BUCKETS);
            e.encode_descriptor(
                "write_latency_seconds",
                "Batch write attempt latency since start, failed attempts included",
                None,
                MetricType::Histogram,
            )?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                histogram.sum_us as f64 / 1e6,
                histogram.count(),
                &buckets,
                None,
            )?;
        }

        // The writer: the rolling window (what /api/buffer/writer/metrics shows).
        gauge(
            e,
            "metrics_window_seconds",
            "The rolling window of the *_avg, *_p50/p95/p99/max, throughput and success \
             ratio gauges (METRICS_WINDOW_SEC)",
            snapshot.window.as_secs_f64(),
        )?;
        for (name, help, ms) in [
            (
                "write_latency_avg_seconds",
                "Mean batch write latency over the window",
                snapshot.avg_latency_ms,
            ),
            (
                "write_latency_p50_seconds",
                "Median batch write latency over the window",
                snapshot.p50_latency_ms,
            ),
            (
                "write_latency_p95_seconds",
                "95th percentile batch write latency over the window",
                snapshot.p95_latency_ms,
            ),
            (
                "write_latency_p99_seconds",
                "99th percentile batch write latency over the window",
                snapshot.p99_latency_ms,
            ),
            (
                "write_latency_max_seconds",
                "Longest batch write latency over the window",
                snapshot.max_latency_ms,
            ),
        ] {
            gauge(e, name, help, ms / 1000.0)?;
        }
        gauge(
            e,
            "write_batch_rows_avg",
            "Mean rows per batch write attempt over the window",
            snapshot.avg_batch_size,
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

        // Store and forward.
        gauge(
            e,
            "database_online",
            "1 while the writer writes to the database, 0 while it is offline (values go \
             to CSV backup and the database is probed)",
            flag(mode.online),
        )?;
        counter(
            e,
            "offline_probes",
            "Probes of the database made while offline",
            mode.probes,
        )?;
        gauge(
            e,
            "backup_replaying",
            "1 while a backup file is being replayed into the database",
            flag(mode.replaying.is_some()),
        )?;
        counter(
            e,
            "backup_replayed_files",
            "Backup files fully replayed into the database (moved to replayed/)",
            mode.replayed_files,
        )?;
        counter(
            e,
            "backup_replayed_rows",
            "Rows of the fully replayed backup files",
            mode.replayed_rows,
        )?;
        counter(
            e,
            "backup_replayed_conflicts",
            "Rows of replayed backup files not stored because the database holds another value \
             or quality for their key; saved in conflicts files",
            mode.replayed_conflicts,
        )?;
        gauge(
            e,
            "backup_pending_rows",
            "Rows waiting in backup files to be loaded into the database",
            state.backup.pending_rows() as f64,
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
        gauge(
            e,
            "quarantine_files",
            "Quarantine files: lines of backup files that could not be read back",
            backup.quarantine_files as f64,
        )?;
        counter(
            e,
            "backup_lines_quarantined",
            "Lines of replayed backup files that could not be read back, moved to quarantine",
            state.writer.mode().quarantined_lines,
        )?;
        gauge(
            e,
            "conflict_files",
            "Conflicts files: rows that lost to a stored row with the same key",
            backup.conflict_files as f64,
        )?;

        // Polling groups (start_all): one series per group, labelled `group`.
        let groups = state.engine.get().map(|e| e.status()).unwrap_or_default();
        if !groups.is_empty() {
            let mut family = e.encode_descriptor(
                "polling_group_info",
                "Always 1; the group's mode (FIXED, HANDSHAKE) and PLC as labels",
                None,
                MetricType::Gauge,
            )?;
            for group in &groups {
                let labels = [
                    ("group", group.name.as_str()),
                    ("mode", group.mode),
                    ("plc", group.plc_code.as_str()),
                ];
                ConstGauge::new(1.0).encode(family.encode_family(&labels)?)?;
            }
        }
        let figures: [(&str, &str, MetricType, GroupFigure); 11] = [
            (
                "polling_polls",
                "Polls done, per group",
                MetricType::Counter,
                |g| Some(g.polls as f64),
            ),
            (
                "polling_errors",
                "Polls with a failed read (values stored as BAD), per group",
                MetricType::Counter,
                |g| Some(g.errors as f64),
            ),
            (
                "polling_overruns",
                "Missed deadlines of FIXED groups, per group",
                MetricType::Counter,
                |g| Some(g.overruns as f64),
            ),
            (
                "polling_group_running",
                "1 while the group's thread runs",
                MetricType::Gauge,
                |g| Some(flag(g.running)),
            ),
            (
                "polling_group_connected",
                "1 while the group's PLC driver is connected",
                MetricType::Gauge,
                |g| Some(flag(g.connected)),
            ),
            (
                "polling_interval_seconds",
                "Poll interval of a FIXED group",
                MetricType::Gauge,
                |g| g.interval_ms.map(|ms| ms as f64 / 1000.0),
            ),
            (
                "polling_last_poll_age_seconds",
                "Seconds since the group's last poll started (on the service's clock); \
                 absent before the first poll",
                MetricType::Gauge,
                |g| g.last_poll_time.as_deref().and_then(age_seconds),
            ),
            (
                "polling_last_poll_duration_seconds",
                "How long the group's last poll took",
                MetricType::Gauge,
                |g| g.last_poll_duration_ms.map(|ms| ms / 1000.0),
            ),
            (
                "polling_pending_triggers",
                "Triggers of a HANDSHAKE group waiting to be polled",
                MetricType::Gauge,
                |g| Some(g.pending_triggers as f64),
            ),
            (
                "polling_suppressed",
                "Polled values not pushed because they stayed inside their deadband, per group",
                MetricType::Counter,
                |g| Some(g.suppressed as f64),
            ),
            (
                "polling_requests_per_poll",
                "Requests a poll sends after request planning, per group",
                MetricType::Gauge,
                |g| Some(g.requests_per_poll as f64),
            ),
        ];
        for figure in figures {
            per_group(e, &groups, figure)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_age_is_read_on_this_machine_s_clock() {
        let ten_seconds_ago = chrono::Utc::now().naive_utc() - chrono::Duration::seconds(10);
        let text = tag_model::format_timestamp(ten_seconds_ago).to_string();
        let age = age_seconds(&text).unwrap();
        assert!((10.0..15.0).contains(&age), "{age}");
        // A poll stamped in the future (a clock stepped back) is not a negative age.
        let ahead = tag_model::format_timestamp(
            chrono::Utc::now().naive_utc() + chrono::Duration::seconds(60),
        )
        .to_string();
        assert_eq!(age_seconds(&ahead), Some(0.0));
        assert_eq!(age_seconds("yesterday"), None);
    }
}
