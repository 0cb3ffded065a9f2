//! What the HTTP API reads: the buffer, the writer's counts, the backup directory, the
//! polling engine; and the JSON it answers with.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};
use csv_backup::BackupWriter;
use durable_log::{AppendError, SyncError, SyncTicket};
use oracle_batch::{Intake, TagLog, WriterMonitor};
use polling_engine::EngineHandle;
use ringbuf_core::{BatchPush, RingBuffer};
use serde_json::{json, Value};
use tag_model::TagValue;

/// Shared by the service, its HTTP handlers and its producers.
pub struct ServiceState {
    /// The ring buffer (BUFFER_DURABILITY=memory) or the durable log (disk).
    pub intake: Intake,
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
    /// Polled (or standard input) values the durable log's disk refused: counted as overflow.
    disk_refused: AtomicU64,
    /// Seconds since `started` of the last "disk refused" warning, plus one (0: never).
    last_disk_warning: AtomicU64,
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

/// The same warning in disk mode, where the cap is in bytes:
/// `Buffer utilization: 85.0% (912680550/1073741824 bytes in BUFFER_DIR)`.
pub fn disk_utilization_warning(bytes: u64, max_bytes: u64) -> Option<String> {
    let pct = bytes as f64 * 100.0 / max_bytes.max(1) as f64;
    (pct >= UTILIZATION_WARNING_PCT)
        .then(|| format!("Buffer utilization: {pct:.1}% ({bytes}/{max_bytes} bytes in BUFFER_DIR)"))
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
    /// The durable log's disk refuses writes (full, or failing): nothing was taken.
    #[error("{reason}: nothing was taken, retry once the disk has room")]
    Disk {
        /// The log's reason, with the operating system's error.
        reason: String,
    },
}

/// What an accepted push stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// Values stored.
    pub pushed: usize,
    /// Older values displaced to make room (memory mode).
    pub displaced: usize,
    /// In disk mode: the sync that makes them durable; answer the client only once it has
    /// happened ([`ServiceState::synced`]).
    pub ticket: Option<SyncTicket>,
}

impl From<BatchPush> for Pushed {
    fn from(push: BatchPush) -> Self {
        Pushed {
            pushed: push.pushed,
            displaced: push.displaced,
            ticket: None,
        }
    }
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
    /// Values in the buffer (or, in disk mode, in the durable log, not yet drained) now.
    pub buffered: u64,
    /// Disk mode: values found unsettled in the durable log at start (counted in
    /// `accepted`), written again since.
    pub recovered: u64,
    /// Disk mode: values lost to damage in the log found after start, or appended but never
    /// synced because its disk failed to the end.
    pub lost: u64,
    /// Values being written.
    pub in_flight: u64,
    /// Values lost at shutdown because neither the database nor any disk took them.
    pub unsaved: u64,
    /// accepted == the sum of the rest.
    pub balanced: bool,
}

impl ServiceState {
    pub(crate) fn new(
        intake: Intake,
        backup: Arc<BackupWriter>,
        writer: WriterMonitor,
        sink_kind: &'static str,
        sink_description: String,
    ) -> Self {
        ServiceState {
            intake,
            backup,
            writer,
            engine: OnceLock::new(),
            sink_kind,
            sink_description,
            timestamp_zone: tag_model::TimestampZone::Utc,
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            disk_refused: AtomicU64::new(0),
            last_disk_warning: AtomicU64::new(0),
            ingest_lock: Mutex::new(()),
            shutting_down: AtomicBool::new(false),
            last_utilization_warning: AtomicU64::new(0),
            started: std::time::Instant::now(),
        }
    }

    /// The durable log, in disk mode.
    pub fn log(&self) -> Option<&Arc<TagLog>> {
        self.intake.log()
    }

    /// Pushes values into the buffer, counting them; once shutdown began, refuses them all
    /// and hands them back.
    ///
    /// In disk mode the values are appended to the durable log (durable within
    /// BUFFER_SYNC_MS). If its disk refuses them (full, failing), they cannot be kept: they
    /// are counted as overflow and the refusal is logged, as a full ring buffer would.
    pub fn push(&self, values: Vec<TagValue>) -> Result<BatchPush, Vec<TagValue>> {
        let count = values.len();
        match &self.intake {
            Intake::Memory(buffer) => match buffer.push_batch(values) {
                Ok(pushed) => {
                    self.accepted.fetch_add(count as u64, Ordering::SeqCst);
                    self.warn_if_nearly_full();
                    Ok(pushed)
                }
                Err(closed) => {
                    self.refused.fetch_add(count as u64, Ordering::SeqCst);
                    Err(closed.into_inner())
                }
            },
            Intake::Durable(log) => match log.append(&values) {
                Ok(_) => {
                    self.accepted.fetch_add(count as u64, Ordering::SeqCst);
                    self.warn_if_nearly_full();
                    Ok(BatchPush {
                        pushed: count,
                        displaced: 0,
                    })
                }
                Err(AppendError::Closed) => {
                    self.refused.fetch_add(count as u64, Ordering::SeqCst);
                    Err(values)
                }
                Err(error) => {
                    self.accepted.fetch_add(count as u64, Ordering::SeqCst);
                    self.disk_refused.fetch_add(count as u64, Ordering::SeqCst);
                    self.warn_disk_refused(count, &error);
                    Ok(BatchPush {
                        pushed: 0,
                        displaced: count,
                    })
                }
            },
        }
    }

    /// Pushes values from a client that can retry (HTTP ingest) only if they all fit without
    /// displacing anything: a client gets back-pressure, not loss. Polled values use
    /// [`push`](Self::push) and keep the spec's drop-oldest behaviour.
    ///
    /// Ingest requests are serialized so that two of them cannot both see room for one;
    /// the writer only ever makes more room. Polled values pushed at the same moment (start_all)
    /// can still take the room first, and then displace as they always do.
    ///
    /// In disk mode "room" is the log's byte cap, and a disk that refuses writes refuses the
    /// request ([`IngestRefusal::Disk`]); the values are durable once
    /// [`synced`](Self::synced) says so for the returned ticket.
    pub fn push_if_room(&self, values: Vec<TagValue>) -> Result<Pushed, IngestRefusal> {
        let log = match &self.intake {
            Intake::Memory(buffer) => return self.push_if_room_in(buffer, values),
            Intake::Durable(log) => log,
        };
        if self.is_shutting_down() {
            return Err(IngestRefusal::ShuttingDown);
        }
        let stats = log.stats();
        let max = log.options().max_bytes;
        // About 16 bytes a value on disk: refuse what would make the cap displace values.
        let needed = values.len() as u64 * 16;
        if stats.bytes + needed > max {
            return Err(IngestRefusal::NoRoom {
                count: values.len(),
                free: usize::try_from(max.saturating_sub(stats.bytes) / 16).unwrap_or(0),
            });
        }
        let count = values.len();
        match log.append(&values) {
            Ok(appended) => {
                self.accepted.fetch_add(count as u64, Ordering::SeqCst);
                self.warn_if_nearly_full();
                Ok(Pushed {
                    pushed: count,
                    displaced: 0,
                    ticket: Some(appended.ticket),
                })
            }
            Err(AppendError::Closed) => Err(IngestRefusal::ShuttingDown),
            Err(error) => Err(IngestRefusal::Disk {
                reason: error.reason(),
            }),
        }
    }

    fn push_if_room_in(
        &self,
        buffer: &RingBuffer<TagValue>,
        values: Vec<TagValue>,
    ) -> Result<Pushed, IngestRefusal> {
        let capacity = buffer.capacity();
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
        let free = capacity.saturating_sub(buffer.len());
        if values.len() > free {
            return Err(IngestRefusal::NoRoom {
                count: values.len(),
                free,
            });
        }
        self.push(values)
            .map(Pushed::from)
            .map_err(|_| IngestRefusal::ShuttingDown)
    }

    /// Resolves once the values of `ticket` are durable (or a sync covering them failed, or
    /// the log closed): for the HTTP handler, which answers 200 only then.
    pub fn synced(
        &self,
        ticket: SyncTicket,
    ) -> impl std::future::Future<Output = Result<(), SyncError>> + Send + 'static {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        match self.log() {
            Some(log) => log.on_synced(ticket, move |result| {
                let _ = sender.send(result);
            }),
            None => {
                let _ = sender.send(Ok(()));
            }
        }
        async move { receiver.await.unwrap_or(Err(SyncError::Closed)) }
    }

    /// Logs values refused by the log's disk at error, at most every 10 s.
    fn warn_disk_refused(&self, count: usize, error: &AppendError) {
        let now = self.started.elapsed().as_secs() + 1;
        let last = self.last_disk_warning.load(Ordering::Relaxed);
        if (last == 0 || now >= last + UTILIZATION_WARNING_EVERY_SECS)
            && self
                .last_disk_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log::error!(
                "{error}: {count} polled values could not be kept and are counted as overflow \
                (buffer.overflow_count); free space in BUFFER_DIR or lower \
                BUFFER_DISK_MAX_BYTES"
            );
        }
    }

    /// Values in the buffer (disk mode: in the log, not yet handed to the writer).
    pub fn buffered(&self) -> u64 {
        match &self.intake {
            Intake::Memory(buffer) => buffer.len() as u64,
            Intake::Durable(log) => {
                let stats = log.stats();
                stats.pending + stats.unread
            }
        }
    }

    /// Fill level in percent: of BUFFER_MAX_SIZE values, or of BUFFER_DISK_MAX_BYTES bytes.
    pub fn utilization_pct(&self) -> f64 {
        match &self.intake {
            Intake::Memory(buffer) => buffer.utilization_pct(),
            Intake::Durable(log) => {
                log.stats().bytes as f64 * 100.0 / log.options().max_bytes.max(1) as f64
            }
        }
    }

    /// BUFFER_MAX_SIZE in memory mode; in disk mode the log is limited in bytes
    /// (BUFFER_DISK_MAX_BYTES), not values.
    pub fn capacity(&self) -> Option<usize> {
        self.intake.ring().map(|buffer| buffer.capacity())
    }

    /// Values displaced: by a full ring buffer, or in disk mode by the log's byte cap plus
    /// those its disk refused.
    pub fn overflow_count(&self) -> u64 {
        match &self.intake {
            Intake::Memory(buffer) => buffer.overflow_count(),
            Intake::Durable(log) => log.stats().overflow + self.disk_refused.load(Ordering::SeqCst),
        }
    }

    /// Logs the utilization at warn when the buffer is 80 % full or more, at most every 10 s.
    fn warn_if_nearly_full(&self) {
        let line = match &self.intake {
            Intake::Memory(buffer) => utilization_warning(buffer.len(), buffer.capacity()),
            Intake::Durable(log) => {
                disk_utilization_warning(log.stats().bytes, log.options().max_bytes)
            }
        };
        let Some(line) = line else {
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
        let (buffered, overflow, recovered, lost) = match &self.intake {
            Intake::Memory(buffer) => (buffer.len() as u64, buffer.overflow_count(), 0, 0),
            Intake::Durable(log) => {
                let log_stats = log.stats();
                (
                    log_stats.pending + log_stats.unread,
                    log_stats.overflow + self.disk_refused.load(Ordering::SeqCst),
                    log_stats.recovered,
                    log_stats.lost_to_damage + log_stats.lost_unsynced,
                )
            }
        };
        let accepted = self.accepted.load(Ordering::SeqCst) + recovered;
        let settled = stats.drained() + overflow + buffered + lost;
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
            recovered,
            lost,
            in_flight: stats.in_flight,
            unsaved: stats.unsaved,
            balanced: accepted == settled,
        }
    }

    /// The durable log's figures (`null` in memory mode).
    pub fn durable_log_json(&self) -> Value {
        let Some(log) = self.log() else {
            return Value::Null;
        };
        let stats = log.stats();
        let options = log.options();
        let recovery = log.recovery();
        json!({
            "directory": log.dir().display().to_string(),
            "bytes": stats.bytes,
            "max_bytes": options.max_bytes,
            "segments": stats.segments,
            "sync_interval_ms": options.sync_interval.as_millis() as u64,
            "oldest_unsettled_age_sec": stats.oldest_unsettled_age.map(|age| round(age.as_secs_f64(), 3)),
            "unsettled": stats.unsettled(),
            "pending": stats.pending,
            "unread": stats.unread,
            "in_flight": stats.in_flight,
            "recovered": stats.recovered,
            "appended": stats.appended,
            "settled": stats.settled,
            "overflow": stats.overflow,
            "disk_refused": self.disk_refused.load(Ordering::SeqCst),
            "corrupt_records": stats.corrupt_records,
            "values_lost_to_damage": recovery.values_lost + stats.lost_to_damage,
            "lost_unsynced": stats.lost_unsynced,
            "fsyncs": stats.fsyncs,
            "bytes_written": stats.bytes_written,
            "sync_failures": stats.sync_failures,
            "disk_error": stats.disk_error,
        })
    }

    /// `GET /api/buffer/metrics`: the quickstart's fields, plus the accounting.
    pub fn buffer_metrics(&self) -> Value {
        let snapshot = self.writer.metrics().snapshot();
        let lifetime = snapshot.lifetime;
        let backup = self.backup.stats().unwrap_or_default();
        json!({
            "buffer": {
                "durability": if self.log().is_some() { "disk" } else { "memory" },
                "current_size": self.buffered(),
                "max_size": self.capacity(),
                "utilization_pct": round(self.utilization_pct(), 3),
                "overflow_count": self.overflow_count(),
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
            "durable_log": self.durable_log_json(),
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
        let utilization = self.utilization_pct();
        if utilization >= 80.0 {
            degraded.push(format!("the buffer is {utilization:.1}% full"));
        }
        if let Some(log) = self.log() {
            let stats = log.stats();
            if let Some(error) = &stats.disk_error {
                unhealthy.push(format!(
                    "the durable log in {} cannot write: {error}; ingest answers 503 and polled \
                    values are counted as overflow",
                    log.dir().display()
                ));
            }
            if stats.corrupt_records > 0 {
                degraded.push(format!(
                    "the durable log skipped {} damaged record(s) (the log names segment and \
                    offset); everything else was recovered",
                    stats.corrupt_records
                ));
            }
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
