//! What the HTTP API reads: the buffer, the writer's counts, the backup directory, the
//! polling engine; and the JSON it answers with.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};
use csv_backup::BackupWriter;
use oracle_batch::WriterMonitor;
use polling_engine::EngineHandle;
use ringbuf_core::{BatchPush, RingBuffer};
use serde_json::{json, Value};
use tag_model::TagValue;

/// Shared by the service, its HTTP handlers and its producers.
pub struct ServiceState {
    /// The ring buffer.
    pub buffer: Arc<RingBuffer<TagValue>>,
    /// The backup directory.
    pub backup: Arc<BackupWriter>,
    /// The writer's counts and metrics.
    pub writer: WriterMonitor,
    /// The polling engine, when one runs.
    pub engine: OnceLock<EngineHandle>,
    /// `Oracle` or `SQLite`.
    pub sink_kind: &'static str,
    /// Where values are written (no password).
    pub sink_description: String,
    /// The clock of an ingested value without a timestamp (TIMESTAMP_ZONE; UTC unless set).
    pub timestamp_zone: tag_model::TimestampZone,
    accepted: AtomicU64,
    refused: AtomicU64,
    /// One ingest request at a time checks for room and pushes.
    ingest_lock: Mutex<()>,
    shutting_down: AtomicBool,
    /// Seconds since `started` of the last utilization warning, plus one (0: never).
    last_utilization_warning: AtomicU64,
    started: std::time::Instant,
}

/// The fill level from which the buffer's utilization is logged (the spec's alert level).
pub const UTILIZATION_WARNING_PCT: f64 = 80.0;
/// At most one utilization warning per this many seconds.
const UTILIZATION_WARNING_EVERY_SECS: u64 = 10;

/// The spec's warning line, when the buffer is at least 80 % full:
/// `Buffer utilization: 100.0% (100000/100000 items)`.
pub fn utilization_warning(len: usize, capacity: usize) -> Option<String> {
    let pct = len as f64 * 100.0 / capacity.max(1) as f64;
    (pct >= UTILIZATION_WARNING_PCT)
        .then(|| format!("Buffer utilization: {pct:.1}% ({len}/{capacity} items)"))
}

/// Why [`ServiceState::push_if_room`] took none of the values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IngestRefusal {
    /// More values than the buffer can ever hold: split the request.
    #[error(
        "the request has {count} values, more than the buffer holds ({capacity}, \
         BUFFER_MAX_SIZE): send them in smaller requests"
    )]
    LargerThanBuffer {
        /// Values in the request.
        count: usize,
        /// The buffer's capacity.
        capacity: usize,
    },
    /// The buffer has no room for all of them now: try again shortly.
    #[error(
        "the buffer has room for {free} values, not {count}: nothing was taken, retry shortly"
    )]
    NoRoom {
        /// Values in the request.
        count: usize,
        /// Free slots when it was refused.
        free: usize,
    },
    /// Shutdown has begun.
    #[error("the service is shutting down and accepts no more values")]
    ShuttingDown,
}

/// The accounting of every value the service accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Accounting {
    /// Values accepted into the buffer.
    pub accepted: u64,
    /// Rows inserted.
    pub written: u64,
    /// Rows already stored (same key, same value and quality).
    pub duplicates: u64,
    /// Rows not stored because their key is stored with another value or quality; in
    /// conflicts files.
    pub conflicts: u64,
    /// Rows in rejected files.
    pub rejected: u64,
    /// Rows in backup files.
    pub backed_up: u64,
    /// Values moved from the buffer to backup files while a batch waited for its retry.
    pub spilled: u64,
    /// Values displaced from the full buffer.
    pub overflow: u64,
    /// Values in the buffer now.
    pub buffered: u64,
    /// Values being written.
    pub in_flight: u64,
    /// Values lost at shutdown because neither the database nor any disk took them.
    pub unsaved: u64,
    /// accepted == the sum of the rest.
    pub balanced: bool,
}

impl ServiceState {
    pub(crate) fn new(
        buffer: Arc<RingBuffer<TagValue>>,
        backup: Arc<BackupWriter>,
        writer: WriterMonitor,
        sink_kind: &'static str,
        sink_description: String,
    ) -> Self {
        ServiceState {
            buffer,
            backup,
            writer,
            engine: OnceLock::new(),
            sink_kind,
            sink_description,
            timestamp_zone: tag_model::TimestampZone::Utc,
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            ingest_lock: Mutex::new(()),
            shutting_down: AtomicBool::new(false),
            last_utilization_warning: AtomicU64::new(0),
            started: std::time::Instant::now(),
        }
    }

    /// Pushes values into the buffer, counting them; once shutdown began, refuses them all
    /// and hands them back.
    pub fn push(&self, values: Vec<TagValue>) -> Result<BatchPush, Vec<TagValue>> {
        let count = values.len() as u64;
        match self.buffer.push_batch(values) {
            Ok(pushed) => {
                self.accepted.fetch_add(count, Ordering::SeqCst);
                self.warn_if_nearly_full();
                Ok(pushed)
            }
            Err(closed) => {
                self.refused.fetch_add(count, Ordering::SeqCst);
                Err(closed.into_inner())
            }
        }
    }

    /// Pushes values from a client that can retry (HTTP ingest) only if they all fit without
    /// displacing anything: a client gets back-pressure, not loss. Polled values use
    /// [`push`](Self::push) and keep the spec's drop-oldest behaviour.
    ///
    /// Ingest requests are serialized so that two of them cannot both see room for one;
    /// the writer only ever makes more room. Polled values pushed at the same moment (start_all)
    /// can still take the room first, and then displace as they always do.
    pub fn push_if_room(&self, values: Vec<TagValue>) -> Result<BatchPush, IngestRefusal> {
        let capacity = self.buffer.capacity();
        if values.len() > capacity {
            return Err(IngestRefusal::LargerThanBuffer {
                count: values.len(),
                capacity,
            });
        }
        let _one_at_a_time = self
            .ingest_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let free = capacity.saturating_sub(self.buffer.len());
        if values.len() > free {
            return Err(IngestRefusal::NoRoom {
                count: values.len(),
                free,
            });
        }
        self.push(values).map_err(|_| IngestRefusal::ShuttingDown)
    }

    /// Logs the utilization at warn when the buffer is 80 % full or more, at most every 10 s.
    fn warn_if_nearly_full(&self) {
        let Some(line) = utilization_warning(self.buffer.len(), self.buffer.capacity()) else {
            return;
        };
        let now = self.started.elapsed().as_secs() + 1;
        let last = self.last_utilization_warning.load(Ordering::Relaxed);
        let due = last == 0 || now >= last + UTILIZATION_WARNING_EVERY_SECS;
        if due
            && self
                .last_utilization_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log::warn!("{line}");
        }
    }

    /// Whether shutdown has begun (ingest answers 503).
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Where every accepted value is now.
    pub fn accounting(&self) -> Accounting {
        // Read the writer first: a value moving from buffer to writer meanwhile is then
        // counted twice at worst, never missed, and the next read balances.
        let stats = self.writer.stats();
        let buffered = self.buffer.len() as u64;
        let overflow = self.buffer.overflow_count();
        let accepted = self.accepted.load(Ordering::SeqCst);
        let settled = stats.drained() + overflow + buffered;
        Accounting {
            accepted,
            written: stats.written,
            duplicates: stats.duplicates,
            conflicts: stats.conflicts,
            rejected: stats.rejected,
            backed_up: stats.backed_up,
            spilled: stats.spilled,
            overflow,
            buffered,
            in_flight: stats.in_flight,
            unsaved: stats.unsaved,
            balanced: accepted == settled,
        }
    }

    /// `GET /api/buffer/metrics`: the quickstart's fields, plus the accounting.
    pub fn buffer_metrics(&self) -> Value {
        let snapshot = self.writer.metrics().snapshot();
        let lifetime = snapshot.lifetime;
        let backup = self.backup.stats().unwrap_or_default();
        json!({
            "buffer": {
                "current_size": self.buffer.len(),
                "max_size": self.buffer.capacity(),
                "utilization_pct": round(self.buffer.utilization_pct(), 3),
                "overflow_count": self.buffer.overflow_count(),
                "spilled_count": self.writer.stats().spilled,
                "spill_pct": self.writer.config().spill_pct,
            },
            "writer": {
                "sink": self.sink_kind,
                "total_writes": lifetime.writes,
                "successful_writes": lifetime.successes,
                "failed_writes": lifetime.failures,
                "success_rate_pct": rate(lifetime.successes, lifetime.writes),
                "avg_batch_size": round(snapshot.avg_batch_size, 1),
                "avg_write_latency_ms": round(snapshot.avg_latency_ms, 1),
                "p99_write_latency_ms": round(snapshot.p99_latency_ms, 1),
                "throughput_items_per_sec": round(snapshot.throughput_items_per_sec, 1),
                "last_write_time": snapshot.last_success.map(iso),
            },
            "offline": self.offline_json(),
            "backup": {
                "file_count": backup.pending_files,
                "pending_rows": self.backup.pending_rows(),
                "total_bytes": backup.pending_bytes,
                "rejected_file_count": backup.rejected_files,
                "rejected_bytes": backup.rejected_bytes,
                "quarantine_file_count": backup.quarantine_files,
                "conflict_file_count": backup.conflict_files,
                "conflict_bytes": backup.conflict_bytes,
                "directory": self.backup.dir().display().to_string(),
            },
            "accounting": self.accounting(),
        })
    }

    fn offline_json(&self) -> Value {
        let mode = self.writer.mode();
        json!({
            "online": mode.online,
            "offline_since": mode.offline_since.map(iso),
            "reason": mode.reason,
            "probes": mode.probes,
            "replaying": mode.replaying.map(|p| p.display().to_string()),
            "replayed_files": mode.replayed_files,
            "replayed_rows": mode.replayed_rows,
            "quarantined_lines": mode.quarantined_lines,
            "replayed_conflicts": mode.replayed_conflicts,
            "pending_backup_rows": mode.pending_backup_rows,
        })
    }

    /// `GET /api/buffer/writer/metrics`: the rolling window.
    pub fn writer_metrics(&self) -> Value {
        let s = self.writer.metrics().snapshot();
        json!({
            "window_sec": s.window.as_secs(),
            "covered_sec": s.covered.as_secs(),
            "writes": s.writes,
            "successes": s.successes,
            "failures": s.failures,
            "success_rate_pct": round(s.success_rate_pct, 3),
            "avg_batch_size": round(s.avg_batch_size, 1),
            "items_written": s.items_written,
            "throughput_items_per_sec": round(s.throughput_items_per_sec, 1),
            "avg_latency_ms": round(s.avg_latency_ms, 3),
            "max_latency_ms": round(s.max_latency_ms, 3),
            "p50_latency_ms": round(s.p50_latency_ms, 3),
            "p95_latency_ms": round(s.p95_latency_ms, 3),
            "p99_latency_ms": round(s.p99_latency_ms, 3),
            "last_success_time": s.last_success.map(iso),
            "last_failure_time": s.last_failure.map(iso),
            "lifetime": {
                "writes": s.lifetime.writes,
                "successes": s.lifetime.successes,
                "failures": s.lifetime.failures,
                "items": s.lifetime.items,
                "items_written": s.lifetime.items_written,
            },
        })
    }

    /// `GET /api/buffer/health`: healthy (200), or degraded / unhealthy (503) with reasons.
    pub fn health(&self) -> (bool, Value) {
        let snapshot = self.writer.metrics().snapshot();
        let stats = self.writer.stats();
        let backup = self.backup.stats();
        let mut unhealthy = Vec::new();
        let mut degraded = Vec::new();
        if self.is_shutting_down() {
            unhealthy.push("the service is shutting down".to_owned());
        }
        if stats.in_flight > self.writer.config().batch_size_max as u64 * 2 {
            unhealthy.push(format!(
                "{} values are held in memory: neither the database nor the backup directory takes them",
                stats.in_flight
            ));
        }
        let mode = self.writer.mode();
        let backup_unwritable = self.backup.check_writable().err();
        match &backup_unwritable {
            Some(error) if !mode.online => unhealthy.push(format!(
                "database down and backup failing: {} is offline and the backup directory is \
                 not writable ({error}); values are held in memory only",
                self.sink_kind
            )),
            Some(error) => degraded.push(format!(
                "the backup directory is not writable ({error}): values cannot be saved to CSV \
                 backup if the database fails"
            )),
            None => {}
        }
        if !mode.online {
            if backup_unwritable.is_none() {
                degraded.push(format!(
                    "{} is offline since {}: values go to CSV backup and are replayed when it \
                     returns ({})",
                    self.sink_kind,
                    mode.offline_since.map(iso).unwrap_or_default(),
                    mode.reason.unwrap_or_default()
                ));
            }
        } else if let Some(file) = &mode.replaying {
            degraded.push(format!(
                "replaying backup file {} ({} rows still in backup files)",
                file.display(),
                mode.pending_backup_rows
            ));
        } else if let (Some(failure), success) = (snapshot.last_failure, snapshot.last_success) {
            if success.is_none_or(|success| failure > success) {
                degraded.push(format!(
                    "the last write to {} failed (at {})",
                    self.sink_kind,
                    iso(failure)
                ));
            }
        }
        // Conflicts within the metrics window: two sources write one key, or a PLC's clock
        // stands still. The values are safe in conflicts files; someone should look.
        if let Some(last) = mode.last_conflict {
            let window = chrono::Duration::from_std(self.writer.config().metrics_window)
                .unwrap_or(chrono::Duration::MAX);
            if Utc::now() - last <= window {
                degraded.push(format!(
                    "rows were not stored because the database holds another value or quality \
                     for their key (plc_code, tag_address, timestamp), last at {}: {} live and \
                     {} replayed since start, kept in conflicts_*.csv files in {} (two sources \
                     writing one tag, or a PLC clock that stands still?)",
                    iso(last),
                    stats.conflicts,
                    mode.replayed_conflicts,
                    self.backup.dir().display()
                ));
            }
        }
        let utilization = self.buffer.utilization_pct();
        if utilization >= 80.0 {
            degraded.push(format!("the buffer is {utilization:.1}% full"));
        }
        match backup {
            Ok(backup) if backup.pending_files > 0 && mode.online && mode.replaying.is_none() => {
                degraded.push(format!(
                    "{} backup files in {} wait to be loaded into the database",
                    backup.pending_files,
                    self.backup.dir().display()
                ))
            }
            Ok(_) => {}
            Err(error) => degraded.push(format!("the backup directory cannot be read: {error}")),
        }
        let status = if !unhealthy.is_empty() {
            "unhealthy"
        } else if !degraded.is_empty() {
            "degraded"
        } else {
            "healthy"
        };
        unhealthy.extend(degraded);
        let body = json!({
            "status": status,
            "reasons": unhealthy,
            "sink": self.sink_description,
            "buffer_utilization_pct": round(utilization, 3),
            "last_write_time": snapshot.last_success.map(iso),
            "online": self.writer.mode().online,
        });
        (status == "healthy", body)
    }

    /// `GET /api/polling/status`.
    pub fn polling_status(&self) -> Value {
        let groups = self
            .engine
            .get()
            .map(EngineHandle::status)
            .unwrap_or_default();
        json!({
            "engine_running": groups.iter().any(|g| g.running),
            "groups": groups,
        })
    }

    /// Values refused because shutdown had begun.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }
}

fn iso(time: DateTime<Utc>) -> String {
    tag_model::format_timestamp(time.naive_utc()).to_string()
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        100.0
    } else {
        round(part as f64 * 100.0 / whole as f64, 3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_from_80_percent_in_the_spec_s_words() {
        assert_eq!(utilization_warning(79_999, 100_000), None);
        assert_eq!(
            utilization_warning(80_000, 100_000).as_deref(),
            Some("Buffer utilization: 80.0% (80000/100000 items)")
        );
        assert_eq!(
            utilization_warning(100_000, 100_000).as_deref(),
            Some("Buffer utilization: 100.0% (100000/100000 items)")
        );
    }
}
