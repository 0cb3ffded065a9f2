//! The batch writer: drains the ring buffer into a sink, retries, backs up, never loses a row.
//!
//! Where things are:
//!
//! - `mod.rs` (here): the builder, the [`BatchWriter`] handle, [`WriterMonitor`] and shutdown.
//! - `config.rs`: [`WriterConfig`], its defaults (the spec's) and checks.
//! - `accounting.rs`: [`WriterStats`] and the counters behind the accounting identity.
//! - `conflicts.rs`: conflicting duplicates to conflicts files, and their rate-limited log.
//! - `mode.rs`: the online/offline state machine and [`WriterMode`].
//! - `worker.rs`: one writer thread's loop: wait, drain, write, settle.
//! - `retry.rs`: the retry loop with its exponential delays, and the held batch.
//! - `offline.rs`: while offline, batches to the backup spool and probes of the database;
//!   the last-resort save at shutdown.
//! - `replay.rs`: replay of pending backup files, a chunk between live batches.
//! - `spill.rs`: while a batch waits for its retry, values past the high-water mark go to
//!   the backup spool instead of being displaced.
//! - `intake.rs`: where batches come from: the ring buffer, or the durable log (whose
//!   claims a thread settles once their values are written, backed up or rejected).

mod accounting;
mod config;
mod conflicts;
mod intake;
mod mode;
mod offline;
mod replay;
mod retry;
mod spill;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use csv_backup::BackupWriter;
use rolling_metrics::{RollingMetrics, SystemClock};

use crate::clock::{Wake, WriterClock};
use crate::sink::Sink;

pub use accounting::WriterStats;
pub use config::{WriterConfig, WriterError, DEFAULT_SPILL_PCT, MAX_RETRIES};
pub(crate) use conflicts::conflict_rows;
pub use intake::{Intake, TagLog};
pub use mode::WriterMode;

use accounting::Counters;
use mode::ModeState;
use offline::last_resort_save;
use spill::SpillWindow;
use worker::Worker;

/// What the writer threads and the handles share.
struct Shared {
    intake: Intake,
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
    online: AtomicBool,
    mode: Mutex<ModeState>,
    /// Pending backup files may exist: the replaying thread should look.
    replay_check: AtomicBool,
    /// The file being replayed, for status.
    replaying: Mutex<Option<std::path::PathBuf>>,
    /// Open while some batch waits for its retry: the spill thread watches the buffer.
    spill: SpillWindow,
    /// Rate limit of the conflicting-duplicates line.
    conflict_log: conflicts::ConflictLog,
    kind: &'static str,
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
}

/// Starts a [`BatchWriter`].
pub struct BatchWriterBuilder {
    intake: Intake,
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
        if let Some(buffer) = self.intake.ring() {
            buffer.set_overflow_note(spill::overflow_note(self.config.spill_pct));
        }
        let shared = Arc::new(Shared {
            intake: self.intake,
            backup: self.backup,
            metrics,
            clock: self.clock,
            config: self.config,
            counters: Counters::default(),
            stopping: Wake::new(),
            deadline_nanos: AtomicU64::new(u64::MAX),
            final_rows: AtomicU64::new(0),
            online: AtomicBool::new(true),
            mode: Mutex::new(ModeState::default()),
            replay_check: AtomicBool::new(true),
            replaying: Mutex::new(None),
            spill: SpillWindow::default(),
            conflict_log: conflicts::ConflictLog::default(),
            kind,
        });
        let mut writer = BatchWriter {
            shared,
            threads: Vec::new(),
            spiller: None,
            kind,
        };
        match spill::spawn(&writer.shared) {
            Ok(spiller) => writer.spiller = spiller,
            Err(error) => return Err(WriterError::Spawn(error)),
        }
        for (index, sink) in self.sinks.into_iter().enumerate() {
            // Thread 0 replays backup files, so that they replay in order.
            let worker = Worker::new(Arc::clone(&writer.shared), sink, index == 0);
            let thread = std::thread::Builder::new()
                .name(format!("{}-writer-{index}", kind.to_lowercase()))
                .spawn(move || worker.run());
            match thread {
                Ok(handle) => writer.threads.push(handle),
                Err(error) => {
                    // Stop the threads already started before reporting.
                    writer.shutdown(Duration::from_secs(5));
                    return Err(WriterError::Spawn(error));
                }
            }
        }
        log::info!(
            "{kind}Writer thread started ({} thread(s))",
            writer.threads.len()
        );
        Ok(writer)
    }
}

/// Drains a ring buffer (or a durable log, see [`Intake`]) of tag values into one or more
/// sinks.
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
    /// The spill thread (none when spilling is off).
    spiller: Option<JoinHandle<()>>,
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
    /// Prepares a writer over `intake` (an `Arc<RingBuffer<TagValue>>`, or an
    /// `Arc<TagLog>` for a durable buffer) that backs up into `backup`. Add sinks, then
    /// [`spawn`](BatchWriterBuilder::spawn).
    pub fn builder(intake: impl Into<Intake>, backup: Arc<BackupWriter>) -> BatchWriterBuilder {
        BatchWriterBuilder {
            intake: intake.into(),
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

    /// Where values are drained from.
    pub fn intake(&self) -> &Intake {
        &self.shared.intake
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
    /// A durable log is not emptied into backup files: what is not written within `grace`
    /// stays in the log, unsettled, and is written at the next start.
    ///
    /// A write already in progress at the deadline is waited for (its duration is bounded by
    /// the sink's own timeouts), so its rows are settled either way.
    pub fn shutdown(self, grace: Duration) -> ShutdownReport {
        let shared = &self.shared;
        // Read before anything wakes the writer threads: `close` wakes them, and a thread
        // that drains first would make this figure 0 (a race seen on a busy machine).
        let buffered = shared.intake.len();
        let deadline = shared.now() + grace;
        // fetch_min: a deadline already brought forward (a second Ctrl+C) stays.
        shared.deadline_nanos.fetch_min(
            u64::try_from(deadline.as_nanos()).unwrap_or(u64::MAX - 1),
            Ordering::SeqCst,
        );
        shared.intake.close();
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
        // No batch waits for a retry any more; the spill thread ends after its current spill.
        shared.spill.exit();
        if let Some(spiller) = self.spiller {
            if spiller.join().is_err() {
                log::error!("The spill thread panicked; its values are accounted as in flight");
            }
        }
        // Anything left in the ring buffer (a thread died, or none ran) goes to backup now;
        // what is left in a durable log waits there for the next start.
        if let Some(buffer) = shared.intake.ring() {
            let mut rest = Vec::new();
            buffer.drain_into(&mut rest, usize::MAX);
            if !rest.is_empty() {
                Counters::add(&shared.counters.in_flight, rest.len());
                last_resort_save(shared, &rest);
            }
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
            overflow_count: shared.intake.overflow_count(),
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

impl std::fmt::Debug for BatchWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchWriter")
            .field("kind", &self.kind)
            .field("threads", &self.threads.len())
            .field("stats", &self.stats())
            .finish()
    }
}
