//! The batch writer: drains the ring buffer into a sink, retries, backs up, never loses a row.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use csv_backup::{BackupError, BackupWriter, RejectedRow};
use ringbuf_core::{RingBuffer, Wait};
use rolling_metrics::{Outcome, RollingMetrics, SystemClock, WindowError};
use tag_model::TagValue;

use crate::clock::{Wake, WriterClock};
use crate::sink::{Sink, SinkError, WriteReport};

/// How the writer batches and retries. The defaults are the spec's.
#[derive(Clone, Debug, PartialEq)]
pub struct WriterConfig {
    /// Most rows per batch (BUFFER_BATCH_SIZE_MAX).
    pub batch_size_max: usize,
    /// Write as soon as the buffer holds this many (BUFFER_BATCH_THRESHOLD).
    pub batch_threshold: usize,
    /// ... or when this much time has passed (BUFFER_WRITE_INTERVAL_SEC).
    pub write_interval: Duration,
    /// Retries of a failed batch after the first attempt (ORACLE_RETRY_MAX).
    pub retry_max: u32,
    /// Delay before the first retry; each further retry waits twice as long
    /// (ORACLE_RETRY_BASE_DELAY).
    pub retry_base_delay: Duration,
    /// The rolling metrics window (METRICS_WINDOW_SEC).
    pub metrics_window: Duration,
    /// While offline, the first wait before probing the database again (OFFLINE_PROBE_MIN_SEC).
    pub offline_probe_min: Duration,
    /// ... doubling up to this (OFFLINE_PROBE_MAX_SEC).
    pub offline_probe_max: Duration,
    /// Replay pending backup files into the database once it is reachable
    /// (BACKUP_AUTO_REPLAY).
    pub auto_replay: bool,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            batch_size_max: 500,
            batch_threshold: 500,
            write_interval: Duration::from_millis(500),
            retry_max: 3,
            retry_base_delay: Duration::from_secs(1),
            metrics_window: rolling_metrics::DEFAULT_WINDOW,
            offline_probe_min: Duration::from_secs(1),
            offline_probe_max: Duration::from_secs(30),
            auto_replay: true,
        }
    }
}

/// Most retries accepted: 2^16 times the base delay is already most of a day.
pub const MAX_RETRIES: u32 = 16;
/// The longest wait between two tries of a batch that neither the database nor the backup
/// directory would take.
const HELD_RETRY_CAP: Duration = Duration::from_secs(30);

/// The writer could not start.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// A configuration value is out of range; names the setting.
    #[error("{setting} = {value}: {allowed}")]
    Config {
        /// The setting (its environment variable name).
        setting: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        allowed: &'static str,
    },
    /// The metrics window is invalid.
    #[error(transparent)]
    Window(#[from] WindowError),
    /// No sink was given.
    #[error("a BatchWriter needs at least one sink (one per writer thread)")]
    NoSink,
    /// A writer thread could not be started.
    #[error("cannot start a writer thread: {0}")]
    Spawn(std::io::Error),
}

impl WriterConfig {
    /// Checks every value; the error names the environment variable.
    pub fn validate(&self) -> Result<(), WriterError> {
        let fail = |setting, value: String, allowed| {
            Err(WriterError::Config {
                setting,
                value,
                allowed,
            })
        };
        if self.batch_size_max == 0 {
            return fail("BUFFER_BATCH_SIZE_MAX", "0".into(), "must be at least 1");
        }
        if self.batch_threshold == 0 {
            return fail("BUFFER_BATCH_THRESHOLD", "0".into(), "must be at least 1");
        }
        if self.write_interval.is_zero() {
            return fail(
                "BUFFER_WRITE_INTERVAL_SEC",
                "0".into(),
                "must be greater than 0",
            );
        }
        if self.offline_probe_min.is_zero() {
            return fail(
                "OFFLINE_PROBE_MIN_SEC",
                "0".into(),
                "must be greater than 0",
            );
        }
        if self.offline_probe_max < self.offline_probe_min {
            return fail(
                "OFFLINE_PROBE_MAX_SEC",
                format!("{}", self.offline_probe_max.as_secs_f64()),
                "must be at least OFFLINE_PROBE_MIN_SEC",
            );
        }
        if self.retry_max > MAX_RETRIES {
            return fail(
                "ORACLE_RETRY_MAX",
                self.retry_max.to_string(),
                "must be from 0 to 16",
            );
        }
        Ok(())
    }
}

/// Lifetime counts of where every drained value went.
///
/// The accounting identity: values accepted by the buffer =
/// `written + duplicates + rejected + backed_up + unsaved + in_flight` + the buffer's
/// overflow count + what the buffer still holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Rows inserted.
    pub written: u64,
    /// Rows the database already had (same primary key): stored.
    pub duplicates: u64,
    /// Rows the database refused, saved in rejected files.
    pub rejected: u64,
    /// Rows saved in backup files.
    pub backed_up: u64,
    /// Rows drained but not yet settled (being written, or held after a backup failure).
    pub in_flight: u64,
    /// Rows that neither the database nor any backup directory took by the end of shutdown.
    /// Zero unless the disk and the database failed together; logged loudly.
    pub unsaved: u64,
    /// Batches that failed as a whole, counting every attempt.
    pub failed_attempts: u64,
    /// Backup or rejected files that could not be written.
    pub backup_failures: u64,
}

impl WriterStats {
    /// Every value the writer has taken from the buffer, wherever it went.
    pub fn drained(&self) -> u64 {
        self.written
            + self.duplicates
            + self.rejected
            + self.backed_up
            + self.in_flight
            + self.unsaved
    }
}

#[derive(Default)]
struct Counters {
    written: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    backed_up: AtomicU64,
    in_flight: AtomicU64,
    unsaved: AtomicU64,
    failed_attempts: AtomicU64,
    backup_failures: AtomicU64,
    probes: AtomicU64,
    replayed_files: AtomicU64,
    replayed_rows: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Moves `n` rows out of `in_flight` into `counter` in one step as seen by readers that
    /// add `counter` first: readers may briefly count them twice, never zero times.
    fn settle(&self, counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::SeqCst);
        self.in_flight.fetch_sub(n as u64, Ordering::SeqCst);
    }

    fn snapshot(&self) -> WriterStats {
        let get = |c: &AtomicU64| c.load(Ordering::SeqCst);
        WriterStats {
            written: get(&self.written),
            duplicates: get(&self.duplicates),
            rejected: get(&self.rejected),
            backed_up: get(&self.backed_up),
            unsaved: get(&self.unsaved),
            in_flight: get(&self.in_flight),
            failed_attempts: get(&self.failed_attempts),
            backup_failures: get(&self.backup_failures),
        }
    }
}

struct Shared {
    buffer: Arc<RingBuffer<TagValue>>,
    backup: Arc<BackupWriter>,
    metrics: Arc<RollingMetrics>,
    clock: Arc<dyn WriterClock>,
    config: WriterConfig,
    counters: Counters,
    /// Set when shutdown begins: retry sleeps end early.
    stopping: Wake,
    /// Monotonic time by which shutdown must be done; `u64::MAX` nanoseconds until then.
    deadline_nanos: AtomicU64,
    /// Rows written while shutting down, for the "Final batch written" line.
    final_rows: AtomicU64,
    /// Online (writing) or offline (backing up, probing).
    online: std::sync::atomic::AtomicBool,
    mode: std::sync::Mutex<ModeState>,
    /// Pending backup files may exist: the replaying thread should look.
    replay_check: std::sync::atomic::AtomicBool,
    /// The file being replayed, for status.
    replaying: std::sync::Mutex<Option<std::path::PathBuf>>,
    kind: &'static str,
}

struct ModeState {
    offline_since: Option<chrono::DateTime<chrono::Utc>>,
    offline_at: Duration,
    reason: Option<String>,
    next_probe: Duration,
    probe_delay: Duration,
}

/// Whether the writer is writing to the database or, offline, to CSV backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriterMode {
    /// Writing to the database.
    pub online: bool,
    /// When the writer went offline.
    pub offline_since: Option<chrono::DateTime<chrono::Utc>>,
    /// The error that sent it offline.
    pub reason: Option<String>,
    /// Probes of the database made while offline, since start.
    pub probes: u64,
    /// The backup file being replayed now.
    pub replaying: Option<std::path::PathBuf>,
    /// Backup files fully replayed since start.
    pub replayed_files: u64,
    /// Rows of those files.
    pub replayed_rows: u64,
    /// Rows waiting in backup files.
    pub pending_backup_rows: u64,
}

impl Shared {
    fn now(&self) -> Duration {
        self.clock.monotonic()
    }

    fn deadline(&self) -> Option<Duration> {
        match self.deadline_nanos.load(Ordering::SeqCst) {
            u64::MAX => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    fn past_deadline(&self) -> bool {
        self.deadline()
            .is_some_and(|deadline| self.now() >= deadline)
    }

    fn is_online(&self) -> bool {
        self.online.load(Ordering::SeqCst)
    }

    fn lock_mode(&self) -> std::sync::MutexGuard<'_, ModeState> {
        self.mode
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stops writing to the database: batches go straight to backup and the database is
    /// probed on a backoff.
    fn go_offline(&self, error: &SinkError) {
        let mut mode = self.lock_mode();
        if !self.online.swap(false, Ordering::SeqCst) {
            return;
        }
        mode.offline_since = Some(self.clock.utc());
        mode.offline_at = self.now();
        mode.reason = Some(error.message().to_owned());
        mode.probe_delay = self.config.offline_probe_min;
        mode.next_probe = self.now() + self.config.offline_probe_min;
        log::error!(
            "{} is unavailable: going offline. New batches go straight to CSV backup; probing \
             the database every {:.1} s, backing off to {:.0} s",
            self.kind,
            self.config.offline_probe_min.as_secs_f64(),
            self.config.offline_probe_max.as_secs_f64()
        );
    }

    fn go_online(&self) {
        let mut mode = self.lock_mode();
        if self.online.swap(true, Ordering::SeqCst) {
            return;
        }
        let offline_for = self.now().saturating_sub(mode.offline_at);
        mode.offline_since = None;
        mode.reason = None;
        drop(mode);
        log::info!(
            "{} is reachable again: back online after {:.1} s offline",
            self.kind,
            offline_for.as_secs_f64()
        );
        match self.backup.seal() {
            Ok(Some(path)) => log::info!("Backup file {} is ready for replay", path.display()),
            Ok(None) => {}
            Err(error) => log::error!("Cannot complete the backup file: {error}"),
        }
        self.replay_check.store(true, Ordering::SeqCst);
    }

    fn mode(&self) -> WriterMode {
        let mode = self.lock_mode();
        WriterMode {
            online: self.is_online(),
            offline_since: mode.offline_since,
            reason: mode.reason.clone(),
            probes: self.counters.probes.load(Ordering::SeqCst),
            replaying: self
                .replaying
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            replayed_files: self.counters.replayed_files.load(Ordering::SeqCst),
            replayed_rows: self.counters.replayed_rows.load(Ordering::SeqCst),
            pending_backup_rows: self.backup.pending_rows(),
        }
    }
}

/// Starts a [`BatchWriter`].
pub struct BatchWriterBuilder {
    buffer: Arc<RingBuffer<TagValue>>,
    backup: Arc<BackupWriter>,
    sinks: Vec<Box<dyn Sink>>,
    config: WriterConfig,
    clock: Arc<dyn WriterClock>,
}

impl BatchWriterBuilder {
    /// Adds a sink; the writer runs one thread per sink.
    pub fn sink(mut self, sink: impl Sink + 'static) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }

    /// Adds a boxed sink.
    pub fn boxed_sink(mut self, sink: Box<dyn Sink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Batching and retry settings.
    pub fn config(mut self, config: WriterConfig) -> Self {
        self.config = config;
        self
    }

    /// The clock (a manual one in tests).
    pub fn clock(mut self, clock: Arc<dyn WriterClock>) -> Self {
        self.clock = clock;
        self
    }

    /// Validates the settings and starts the writer threads.
    pub fn spawn(self) -> Result<BatchWriter, WriterError> {
        self.config.validate()?;
        if self.sinks.is_empty() {
            return Err(WriterError::NoSink);
        }
        let metrics_clock: Arc<dyn rolling_metrics::Clock> = self.clock.clone();
        let metrics = Arc::new(RollingMetrics::with_clock(
            self.config.metrics_window,
            metrics_clock,
        )?);
        let kind = self.sinks[0].kind();
        let shared = Arc::new(Shared {
            buffer: self.buffer,
            backup: self.backup,
            metrics,
            clock: self.clock,
            config: self.config,
            counters: Counters::default(),
            stopping: Wake::new(),
            deadline_nanos: AtomicU64::new(u64::MAX),
            final_rows: AtomicU64::new(0),
            online: std::sync::atomic::AtomicBool::new(true),
            mode: std::sync::Mutex::new(ModeState {
                offline_since: None,
                offline_at: Duration::ZERO,
                reason: None,
                next_probe: Duration::ZERO,
                probe_delay: Duration::ZERO,
            }),
            replay_check: std::sync::atomic::AtomicBool::new(true),
            replaying: std::sync::Mutex::new(None),
            kind,
        });
        let mut threads = Vec::new();
        for (index, sink) in self.sinks.into_iter().enumerate() {
            let worker = Worker {
                shared: Arc::clone(&shared),
                sink,
                held: Vec::new(),
                held_rejected: Vec::new(),
                recovering: false,
                replayer: index == 0,
                replay: None,
                unreadable: std::collections::HashSet::new(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("{}-writer-{index}", kind.to_lowercase()))
                .spawn(move || worker.run());
            match thread {
                Ok(handle) => threads.push(handle),
                Err(error) => {
                    // Stop the threads already started before reporting.
                    let writer = BatchWriter {
                        shared,
                        threads,
                        kind,
                    };
                    writer.shutdown(Duration::from_secs(5));
                    return Err(WriterError::Spawn(error));
                }
            }
        }
        log::info!("{kind}Writer thread started ({} thread(s))", threads.len());
        Ok(BatchWriter {
            shared,
            threads,
            kind,
        })
    }
}

/// Drains a [`RingBuffer`] of tag values into one or more sinks.
///
/// Each writer thread waits until the buffer holds `batch_threshold` values or
/// `write_interval` passes, drains up to `batch_size_max`, and writes. A batch that fails
/// transiently is retried `retry_max` times after delays of `retry_base_delay`, twice that,
/// four times that...; then, or at once for a set-up error, it is saved to a CSV backup
/// file. Rows the database refuses go to a rejected file; the rest of their batch counts as
/// written. If even the backup fails (disk full), the batch is kept in memory and both are
/// tried again, while new values wait in the buffer.
pub struct BatchWriter {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    kind: &'static str,
}

/// What shutdown did.
#[derive(Clone, Debug, PartialEq)]
pub struct ShutdownReport {
    /// Where every drained value went, at the end.
    pub stats: WriterStats,
    /// Values in the buffer when shutdown began.
    pub buffered_at_start: usize,
    /// Rows written to the database during shutdown.
    pub final_rows_written: u64,
    /// Whether every value was settled (written, backed up or rejected) in time.
    pub clean: bool,
    /// The buffer's overflow count at the end.
    pub overflow_count: u64,
}

impl BatchWriter {
    /// Prepares a writer over `buffer` that backs up into `backup`. Add sinks, then
    /// [`spawn`](BatchWriterBuilder::spawn).
    pub fn builder(
        buffer: Arc<RingBuffer<TagValue>>,
        backup: Arc<BackupWriter>,
    ) -> BatchWriterBuilder {
        BatchWriterBuilder {
            buffer,
            backup,
            sinks: Vec::new(),
            config: WriterConfig::default(),
            clock: Arc::new(SystemClock::new()),
        }
    }

    /// Lifetime counts of where drained values went.
    pub fn stats(&self) -> WriterStats {
        self.shared.counters.snapshot()
    }

    /// A handle for other threads (an HTTP API, a signal handler) that outlives
    /// [`shutdown`](Self::shutdown)'s consumption of the writer.
    pub fn monitor(&self) -> WriterMonitor {
        WriterMonitor {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The rolling write metrics (shared; snapshots are cheap).
    pub fn metrics(&self) -> &Arc<RollingMetrics> {
        &self.shared.metrics
    }

    /// The buffer being drained.
    pub fn buffer(&self) -> &Arc<RingBuffer<TagValue>> {
        &self.shared.buffer
    }

    /// The backup directory.
    pub fn backup(&self) -> &Arc<BackupWriter> {
        &self.shared.backup
    }

    /// Online or offline, replay progress.
    pub fn mode(&self) -> WriterMode {
        self.shared.mode()
    }

    /// The settings in force.
    pub fn config(&self) -> &WriterConfig {
        &self.shared.config
    }

    /// Closes the buffer (later pushes are refused), writes what it holds in final batches,
    /// and saves to backup whatever cannot be written within `grace`; then stops the threads.
    ///
    /// A write already in progress at the deadline is waited for (its duration is bounded by
    /// the sink's own timeouts), so its rows are settled either way.
    pub fn shutdown(self, grace: Duration) -> ShutdownReport {
        let shared = &self.shared;
        let deadline = shared.now() + grace;
        // fetch_min: a deadline already brought forward (a second Ctrl+C) stays.
        shared.deadline_nanos.fetch_min(
            u64::try_from(deadline.as_nanos()).unwrap_or(u64::MAX - 1),
            Ordering::SeqCst,
        );
        shared.buffer.close();
        let buffered = shared.buffer.len();
        log::info!("Flushing remaining buffer data...");
        if buffered > 0 {
            log::info!("Buffer contains {buffered} items, writing final batch...");
        }
        shared.stopping.set();
        for thread in self.threads {
            if thread.join().is_err() {
                log::error!("A writer thread panicked; its batch is accounted as in flight");
            }
        }
        // Anything left (a thread died, or none ran) goes to backup now.
        let mut rest = Vec::new();
        shared.buffer.drain_into(&mut rest, usize::MAX);
        if !rest.is_empty() {
            Counters::add(&shared.counters.in_flight, rest.len());
            last_resort_save(shared, &rest);
        }
        // Give the open backup file its final name (it logs "Backup file ... complete").
        if let Err(error) = shared.backup.seal() {
            log::error!(
                "Cannot complete the open backup file: {error}. Its rows are safe in the hidden \
                 .tmp file and are recovered at the next start"
            );
        }
        let final_rows = shared.final_rows.load(Ordering::SeqCst);
        log::info!("Final batch written: {final_rows} rows");
        log::info!("{}Writer thread stopped", self.kind);
        let stats = shared.counters.snapshot();
        ShutdownReport {
            stats,
            buffered_at_start: buffered,
            final_rows_written: final_rows,
            clean: stats.in_flight == 0 && stats.unsaved == 0,
            overflow_count: shared.buffer.overflow_count(),
        }
    }
}

/// Watches a running writer from another thread, and can hurry its shutdown.
#[derive(Clone)]
pub struct WriterMonitor {
    shared: Arc<Shared>,
}

impl WriterMonitor {
    /// Lifetime counts of where drained values went.
    pub fn stats(&self) -> WriterStats {
        self.shared.counters.snapshot()
    }

    /// The rolling write metrics.
    pub fn metrics(&self) -> &Arc<RollingMetrics> {
        &self.shared.metrics
    }

    /// The settings in force.
    pub fn config(&self) -> &WriterConfig {
        &self.shared.config
    }

    /// Online or offline, replay progress.
    pub fn mode(&self) -> WriterMode {
        self.shared.mode()
    }

    /// Whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.shared.stopping.is_set()
    }

    /// Ends a shutdown in progress as fast as possible: the deadline becomes now, so every
    /// remaining batch goes straight to backup (for a second Ctrl+C).
    pub fn hurry(&self) {
        let now = u64::try_from(self.shared.now().as_nanos()).unwrap_or(u64::MAX - 1);
        self.shared.deadline_nanos.fetch_min(now, Ordering::SeqCst);
        self.shared.stopping.set();
    }
}

impl std::fmt::Debug for WriterMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterMonitor")
            .field("stats", &self.stats())
            .finish()
    }
}

/// One writer thread with its sink.
struct Worker {
    shared: Arc<Shared>,
    sink: Box<dyn Sink>,
    /// A batch that neither the database nor the backup took; tried again before new data.
    held: Vec<TagValue>,
    /// Rejected rows whose rejected file could not be written.
    held_rejected: Vec<RejectedRow>,
    /// The last batch failed: log the next success at info, as the quickstart shows.
    recovering: bool,
    /// This thread replays backup files (one thread does, so files replay in order).
    replayer: bool,
    /// The file being replayed.
    replay: Option<crate::replay::Replay>,
    /// Backup files that cannot be read: left for an operator, not retried in a loop.
    unreadable: std::collections::HashSet<std::path::PathBuf>,
}

impl Worker {
    fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        let mut batch = Vec::with_capacity(config.batch_size_max);
        let mut held_delay = config.retry_base_delay.max(Duration::from_millis(100));
        loop {
            self.retry_held_rejected();
            if !self.held.is_empty() {
                if self.retry_held() {
                    held_delay = config.retry_base_delay.max(Duration::from_millis(100));
                } else if shared.stopping.is_set() {
                    // Shutting down: one more try was made just now; back up or give up.
                    self.give_up_held();
                } else {
                    shared.clock.sleep(held_delay, &shared.stopping);
                    held_delay = (held_delay * 2).min(HELD_RETRY_CAP);
                }
                continue;
            }
            if !shared.is_online() {
                self.maybe_probe();
            }
            let replaying = self.wants_replay();
            // While replaying, look at the buffer without waiting: live data first, then one
            // chunk of the backlog, so both keep moving.
            let wait_time = if replaying {
                Duration::ZERO
            } else {
                config.write_interval
            };
            let wait = shared.buffer.wait_for(config.batch_threshold, wait_time);
            batch.clear();
            let drained = shared.buffer.drain_into(&mut batch, config.batch_size_max);
            if drained > 0 {
                Counters::add(&shared.counters.in_flight, drained);
                if shared.past_deadline() || !shared.is_online() {
                    self.save_to_backup(&mut batch);
                } else {
                    self.write_with_retries(&mut batch);
                }
            }
            if replaying {
                self.replay_step();
            }
            if wait != Wait::Ready && shared.buffer.is_closed() && shared.buffer.is_empty() {
                break;
            }
        }
        self.retry_held_rejected();
        if !self.held_rejected.is_empty() {
            let rows: Vec<RejectedRow> = std::mem::take(&mut self.held_rejected);
            let values: Vec<TagValue> = rows.into_iter().map(|row| row.value).collect();
            last_resort_save(&shared, &values);
        }
    }

    /// Writes `batch`, retrying transient failures; falls back to backup. Leaves `batch`
    /// empty unless it had to be held.
    fn write_with_retries(&mut self, batch: &mut Vec<TagValue>) {
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        let attempts = config.retry_max + 1;
        let kind = self.sink.kind();
        for attempt in 1..=attempts {
            if attempt > 1 && shared.past_deadline() {
                log::warn!("Shutting down: no time to retry, saving the batch to CSV backup");
                break;
            }
            if attempt > 1 || self.recovering {
                log::info!("Batch write attempt {attempt}/{attempts}...");
            } else {
                log::debug!("Batch write attempt {attempt}/{attempts}...");
            }
            let started = shared.now();
            let result = self.write_once(batch);
            let latency = shared.now().saturating_sub(started);
            match result {
                Ok(report) => {
                    shared
                        .metrics
                        .record(batch.len(), latency, Outcome::Success);
                    self.settle_report(batch, report, latency);
                    self.recovering = false;
                    batch.clear();
                    return;
                }
                Err(error) => {
                    shared
                        .metrics
                        .record(batch.len(), latency, Outcome::Failure);
                    Counters::add(&shared.counters.failed_attempts, 1);
                    self.recovering = true;
                    log::error!("{kind} write failed (attempt {attempt}/{attempts}): {error}");
                    if !error.is_transient() {
                        log::error!(
                            "{kind} set-up error, not retrying: {}. Fix the configuration; \
                             saving the batch to CSV backup meanwhile",
                            self.sink.describe()
                        );
                        shared.go_offline(&error);
                        break;
                    }
                    if attempt == attempts {
                        log::error!(
                            "All {} retries exhausted, saving to CSV backup",
                            config.retry_max
                        );
                        shared.go_offline(&error);
                        break;
                    }
                    let delay = config.retry_base_delay * 2u32.pow(attempt - 1);
                    if shared
                        .deadline()
                        .is_some_and(|deadline| shared.now() + delay > deadline)
                    {
                        log::warn!(
                            "Shutting down: no time to retry, saving the batch to CSV backup"
                        );
                        break;
                    }
                    log::info!("Retrying in {:.1} seconds...", delay.as_secs_f64());
                    shared.clock.sleep(delay, &shared.stopping);
                }
            }
        }
        self.save_to_backup(batch);
    }

    /// One call to the sink; a panicking sink counts as a failed write, not a lost batch.
    fn write_once(&mut self, batch: &[TagValue]) -> Result<WriteReport, SinkError> {
        let sink = &mut self.sink;
        match catch_unwind(AssertUnwindSafe(|| sink.write_batch(batch))) {
            Ok(Ok(report)) if report.accounts_for(batch.len()) => Ok(report),
            Ok(Ok(report)) => Err(SinkError::setup(format!(
                "the sink reported {} written, {} duplicates and {} rejected for a batch of {}: \
                 a bug in the sink",
                report.written,
                report.duplicates,
                report.rejected.len(),
                batch.len()
            ))),
            Ok(Err(error)) => Err(error),
            Err(panic) => Err(SinkError::transient(format!(
                "the sink panicked: {}",
                panic_message(panic.as_ref())
            ))),
        }
    }

    fn settle_report(&mut self, batch: &[TagValue], report: WriteReport, latency: Duration) {
        let shared = &self.shared;
        let counters = &shared.counters;
        counters.settle(&counters.written, report.written);
        counters.settle(&counters.duplicates, report.duplicates);
        if shared.deadline().is_some() {
            shared
                .final_rows
                .fetch_add(report.written as u64, Ordering::SeqCst);
        }
        let level = if self.recovering {
            log::Level::Info
        } else {
            log::Level::Debug
        };
        log::log!(
            level,
            "Batch written successfully: {} rows, {} errors",
            report.written + report.duplicates,
            report.rejected.len()
        );
        log::log!(
            level,
            "Write completed in {:.1} ms",
            latency.as_secs_f64() * 1000.0
        );
        if report.duplicates > 0 {
            log::debug!(
                "{} rows were already stored (duplicates)",
                report.duplicates
            );
        }
        if !report.rejected.is_empty() {
            let rows: Vec<RejectedRow> = report
                .rejected
                .into_iter()
                .filter_map(|rejection| {
                    batch.get(rejection.index).map(|value| RejectedRow {
                        value: value.clone(),
                        error: rejection.reason,
                    })
                })
                .collect();
            self.save_rejected(rows);
        }
    }

    fn save_rejected(&mut self, rows: Vec<RejectedRow>) {
        let shared = &self.shared;
        match shared
            .backup
            .write_rejected(&rows, shared.clock.utc().naive_utc())
        {
            Ok(path) => {
                shared
                    .counters
                    .settle(&shared.counters.rejected, rows.len());
                log::warn!(
                    "{} rows rejected by the database, saved to {}; first reason: {}",
                    rows.len(),
                    path.display(),
                    rows[0].error
                );
            }
            Err(error) => {
                Counters::add(&shared.counters.backup_failures, 1);
                log::error!(
                    "Cannot save {} rejected rows, keeping them in memory and retrying: {error}",
                    rows.len()
                );
                self.held_rejected.extend(rows);
            }
        }
    }

    fn retry_held_rejected(&mut self) {
        if !self.held_rejected.is_empty() {
            let rows = std::mem::take(&mut self.held_rejected);
            self.save_rejected(rows);
        }
    }

    /// Saves `batch` as a backup file; on failure keeps it as the held batch.
    fn save_to_backup(&mut self, batch: &mut Vec<TagValue>) {
        let shared = &self.shared;
        match write_backup(shared, &shared.backup, batch) {
            Ok(_) => batch.clear(),
            Err(error) => {
                Counters::add(&shared.counters.backup_failures, 1);
                log::error!(
                    "CSV backup failed, keeping {} items in memory and retrying: {error}",
                    batch.len()
                );
                self.held.append(batch);
            }
        }
    }

    /// One more try of the held batch: database first, then backup. True when settled.
    fn retry_held(&mut self) -> bool {
        let mut held = std::mem::take(&mut self.held);
        let started = self.shared.now();
        match self.write_once(&held) {
            Ok(report) => {
                let latency = self.shared.now().saturating_sub(started);
                self.shared
                    .metrics
                    .record(held.len(), latency, Outcome::Success);
                self.settle_report(&held, report, latency);
                true
            }
            Err(error) => {
                Counters::add(&self.shared.counters.failed_attempts, 1);
                log::debug!("Held batch still not written: {error}");
                self.save_to_backup(&mut held);
                self.held.is_empty()
            }
        }
    }

    /// While offline: probes the database when the backoff says so; goes online on success.
    fn maybe_probe(&mut self) {
        let shared = Arc::clone(&self.shared);
        {
            let mut mode = shared.lock_mode();
            if shared.is_online() || shared.now() < mode.next_probe {
                return;
            }
            // Claim this probe so other writer threads do not probe at the same time.
            mode.next_probe = shared.now() + mode.probe_delay;
        }
        shared.counters.probes.fetch_add(1, Ordering::SeqCst);
        let sink = &mut self.sink;
        let result = catch_unwind(AssertUnwindSafe(|| sink.probe())).unwrap_or_else(|panic| {
            Err(SinkError::transient(format!(
                "the sink panicked: {}",
                panic_message(panic.as_ref())
            )))
        });
        match result {
            Ok(()) => shared.go_online(),
            Err(error) => {
                let mut mode = shared.lock_mode();
                mode.probe_delay = (mode.probe_delay * 2).min(shared.config.offline_probe_max);
                mode.next_probe = shared.now() + mode.probe_delay;
                mode.reason = Some(error.message().to_owned());
                log::warn!(
                    "Still offline ({error}); next probe in {:.1} s",
                    mode.probe_delay.as_secs_f64()
                );
            }
        }
    }

    /// Whether this thread has backup rows to replay now; opens the next pending file when
    /// one may be waiting.
    fn wants_replay(&mut self) -> bool {
        let shared = Arc::clone(&self.shared);
        let allowed = self.replayer
            && shared.config.auto_replay
            && shared.is_online()
            && shared.deadline().is_none();
        if !allowed {
            return false;
        }
        if self.replay.is_none() && shared.replay_check.load(Ordering::SeqCst) {
            self.open_next_replay();
        }
        self.replay.is_some()
    }

    /// Opens the oldest pending backup file for replay, or clears the replay check when there
    /// is none.
    fn open_next_replay(&mut self) {
        let shared = Arc::clone(&self.shared);
        let next = shared.backup.pending().map(|files| {
            files
                .into_iter()
                .find(|file| !self.unreadable.contains(&file.path))
        });
        match next {
            Ok(Some(file)) => match crate::replay::Replay::open(&file.path) {
                Ok(replay) => {
                    log::info!(
                        "Replaying backup file {} ({} rows)",
                        file.path.display(),
                        replay.tally().rows
                    );
                    *shared
                        .replaying
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some(file.path.clone());
                    self.replay = Some(replay);
                }
                Err(error) => {
                    log::error!(
                        "Cannot replay {}: {error}. It stays in the backup directory for an \
                         operator to fix and replay with replay_backup",
                        file.path.display()
                    );
                    self.unreadable.insert(file.path);
                }
            },
            Ok(None) => shared.replay_check.store(false, Ordering::SeqCst),
            Err(error) => {
                log::error!("Cannot list the backup directory: {error}");
                shared.replay_check.store(false, Ordering::SeqCst);
            }
        }
    }

    /// Replays one chunk of the file being replayed; moves the file to `replayed/` when all
    /// its rows are stored. A database error pauses the replay (the writer goes offline); the
    /// file stays pending and is replayed again later, which is safe.
    fn replay_step(&mut self) {
        let shared = Arc::clone(&self.shared);
        let Some(replay) = self.replay.as_mut() else {
            return;
        };
        let chunk = replay.next_chunk(shared.config.batch_size_max).to_vec();
        let started = shared.now();
        let sink = &mut self.sink;
        let result =
            catch_unwind(AssertUnwindSafe(|| sink.write_batch(&chunk))).unwrap_or_else(|panic| {
                Err(SinkError::transient(format!(
                    "the sink panicked: {}",
                    panic_message(panic.as_ref())
                )))
            });
        let latency = shared.now().saturating_sub(started);
        match result {
            Ok(report) => {
                shared
                    .metrics
                    .record(chunk.len(), latency, Outcome::Success);
                let rejected = crate::replay::rejected_rows(&chunk, &report);
                if !rejected.is_empty() {
                    if let Err(error) = shared
                        .backup
                        .write_rejected(&rejected, shared.clock.utc().naive_utc())
                    {
                        log::error!("Replay paused: cannot save rejected rows: {error}");
                        return;
                    }
                }
                replay.advance(chunk.len(), &report);
                if replay.is_done() {
                    let tally = replay.tally();
                    let path = replay.path().to_owned();
                    self.replay = None;
                    *shared
                        .replaying
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                    match shared.backup.mark_replayed(&path) {
                        Ok(moved) => {
                            shared
                                .counters
                                .replayed_files
                                .fetch_add(1, Ordering::SeqCst);
                            shared
                                .counters
                                .replayed_rows
                                .fetch_add(tally.rows as u64, Ordering::SeqCst);
                            log::info!(
                                "Replayed {}: {} rows ({} written, {} already stored, {} \
                                 rejected); moved to {}",
                                path.display(),
                                tally.rows,
                                tally.written,
                                tally.duplicates,
                                tally.rejected,
                                moved.display()
                            );
                        }
                        Err(error) => {
                            log::error!("Replayed {} but cannot move it: {error}", path.display());
                            self.unreadable.insert(path);
                        }
                    }
                }
            }
            Err(error) => {
                shared
                    .metrics
                    .record(chunk.len(), latency, Outcome::Failure);
                log::warn!("Replay of {} paused: {error}", replay.path().display());
                shared.go_offline(&error);
            }
        }
    }

    fn give_up_held(&mut self) {
        let held = std::mem::take(&mut self.held);
        last_resort_save(&self.shared, &held);
    }
}

fn write_backup(
    shared: &Shared,
    backup: &BackupWriter,
    batch: &[TagValue],
) -> Result<PathBuf, BackupError> {
    let path = backup.append_batch(batch, shared.clock.utc().naive_utc())?;
    shared
        .counters
        .settle(&shared.counters.backed_up, batch.len());
    log::info!("Saved {} items to {}", batch.len(), path.display());
    log::info!("Continuing operation...");
    Ok(path)
}

/// At shutdown, when the backup directory refuses a batch: try an emergency directory in the
/// system temp folder; if that fails too, count the rows as unsaved and say so loudly.
fn last_resort_save(shared: &Shared, values: &[TagValue]) {
    if values.is_empty() {
        return;
    }
    if write_backup(shared, &shared.backup, values).is_ok() {
        return;
    }
    let emergency = std::env::temp_dir().join("buffer-oracle-writer-emergency-backup");
    let saved = BackupWriter::new(&emergency).and_then(|backup| {
        let path = write_backup(shared, &backup, values)?;
        backup.seal()?;
        Ok(path)
    });
    match saved {
        Ok(path) => log::error!(
            "The backup directory {} refused {} items; saved them to the emergency file {} \
             instead. Move it into the backup directory to replay it.",
            shared.backup.dir().display(),
            values.len(),
            path.display()
        ),
        Err(error) => {
            shared
                .counters
                .settle(&shared.counters.unsaved, values.len());
            log::error!(
                "DATA LOST: {} items could be saved neither to the database nor to {} nor to \
                 {}: {error}",
                values.len(),
                shared.backup.dir().display(),
                emergency.display()
            );
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

impl std::fmt::Debug for BatchWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchWriter")
            .field("kind", &self.kind)
            .field("threads", &self.threads.len())
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_the_spec() {
        let config = WriterConfig::default();
        assert_eq!(config.batch_size_max, 500);
        assert_eq!(config.batch_threshold, 500);
        assert_eq!(config.write_interval, Duration::from_millis(500));
        assert_eq!(config.retry_max, 3);
        assert_eq!(config.retry_base_delay, Duration::from_secs(1));
        assert!(config.validate().is_ok());
    }

    #[test]
    fn invalid_config_names_the_variable() {
        let cases = [
            (
                WriterConfig {
                    batch_size_max: 0,
                    ..Default::default()
                },
                "BUFFER_BATCH_SIZE_MAX = 0: must be at least 1",
            ),
            (
                WriterConfig {
                    batch_threshold: 0,
                    ..Default::default()
                },
                "BUFFER_BATCH_THRESHOLD = 0: must be at least 1",
            ),
            (
                WriterConfig {
                    write_interval: Duration::ZERO,
                    ..Default::default()
                },
                "BUFFER_WRITE_INTERVAL_SEC = 0: must be greater than 0",
            ),
            (
                WriterConfig {
                    retry_max: 17,
                    ..Default::default()
                },
                "ORACLE_RETRY_MAX = 17: must be from 0 to 16",
            ),
        ];
        for (config, message) in cases {
            assert_eq!(config.validate().unwrap_err().to_string(), message);
        }
    }

    #[test]
    fn panic_messages_are_extracted() {
        let panic = catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
        assert_eq!(panic_message(panic.as_ref()), "boom 1");
        let panic = catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(panic_message(panic.as_ref()), "unknown panic");
    }
}
