//! The running service: buffer, writer, sinks, HTTP API, optional polling engine; start-up
//! and the shutdown sequence of the spec's quickstart.

use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use csv_backup::BackupWriter;
use durable_log::{DurableLog, LogOptions, TagValueCodec};
use oracle_batch::{
    BatchWriter, Intake, OracleSink, PostgresSink, ShutdownReport, Sink, SqliteSink, WriterMonitor,
};
use polling_engine::{PollingConfig, PollingEngine};
use ringbuf_core::RingBuffer;

use crate::config::{Config, Durability, SinkConfig};
use crate::http::HttpServer;
use crate::state::ServiceState;

/// How long the writer may take to flush at shutdown; the rest of the 5 s budget is for the
/// HTTP server and the log.
pub const FLUSH_GRACE: Duration = Duration::from_secs(4);

/// Why the service could not start. The message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database cannot be used as configured.
    #[error("{0}")]
    Sink(String),
    /// The backup directory cannot be created.
    #[error(transparent)]
    Backup(#[from] csv_backup::BackupError),
    /// The writer settings are invalid.
    #[error(transparent)]
    Writer(#[from] oracle_batch::WriterError),
    /// The API port is taken or not allowed.
    #[error("cannot listen on {address}: {source} (set API_BIND to another address)")]
    Http {
        /// The address.
        address: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The PID file is held by another running service, or cannot be written.
    #[error("{0}")]
    Pid(String),
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    /// The durable log (BUFFER_DURABILITY=disk) cannot be opened.
    #[error("{0}")]
    DurableLog(String),
}

/// Why the service is stopping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// SIGINT, SIGTERM or Ctrl+C.
    Signal,
    /// Standard input ended (`--stdin`).
    EndOfInput,
}

/// A running service.
pub struct Service {
    config: Config,
    state: Arc<ServiceState>,
    writer: BatchWriter,
    http: HttpServer,
    engine: Option<PollingEngine>,
    stop_tx: Sender<StopReason>,
    stop_rx: Receiver<StopReason>,
}

/// What [`Service::shutdown`] did.
#[derive(Debug)]
pub struct ShutdownSummary {
    /// The writer's final report.
    pub writer: ShutdownReport,
    /// Whether every accepted value was accounted for.
    pub balanced: bool,
}

impl Service {
    /// Opens the sink, backup directory and buffer, starts the writer threads and the HTTP
    /// API, and writes the PID file. Logs each step as the quickstart does.
    pub fn start(config: Config) -> Result<Service, StartError> {
        let sinks = open_sinks(&config)?;
        let kind = config.sink.kind();
        let description = sinks[0].describe();
        let backup = Arc::new(
            BackupWriter::new(&config.backup_dir)?.with_spool_limit(config.backup_rotate_bytes),
        );
        if let Err(error) = backup.check_writable() {
            log::warn!(
                "BACKUP_DIR {} is not writable ({error}): if the database fails, values cannot \
                 be saved to CSV backup and are held in memory only. Fix the folder's \
                 permissions or free space, or set BACKUP_DIR",
                config.backup_dir.display()
            );
        }
        let intake = open_intake(&config)?;
        log::info!("Starting {kind}Writer thread...");
        let mut builder =
            BatchWriter::builder(intake.clone(), Arc::clone(&backup)).config(config.writer.clone());
        for sink in sinks {
            builder = builder.boxed_sink(sink);
        }
        let writer = builder.spawn()?;
        let mut state = ServiceState::new(intake, backup, writer.monitor(), kind, description);
        state.timestamp_zone = config.timestamp_zone;
        let state = Arc::new(state);
        let http = match HttpServer::start(config.api_bind, Arc::clone(&state)) {
            Ok(http) => http,
            Err(source) => {
                writer.shutdown(FLUSH_GRACE);
                return Err(StartError::Http {
                    address: config.api_bind,
                    source,
                });
            }
        };
        if let Err(error) = crate::pid::write_pid(&config.pid_file) {
            http.stop();
            writer.shutdown(FLUSH_GRACE);
            return Err(StartError::Pid(error));
        }
        let (stop_tx, stop_rx) = channel();
        Ok(Service {
            config,
            state,
            writer,
            http,
            engine: None,
            stop_tx,
            stop_rx,
        })
    }

    /// Creates a polling engine that feeds this service's buffer (not started yet).
    pub fn polling_engine(&self, config: &PollingConfig) -> PollingEngine {
        let state = Arc::clone(&self.state);
        let options = polling_engine::EngineOptions {
            timestamp_zone: self.state.timestamp_zone,
            ..polling_engine::EngineOptions::default()
        };
        PollingEngine::with_options(
            config,
            Arc::new(move |values: Vec<tag_model::TagValue>| {
                if let Err(refused) = state.push(values) {
                    log::warn!(
                        "{} polled values refused: the service is stopping",
                        refused.len()
                    );
                }
            }),
            options,
        )
    }

    /// Hands the engine to the service, which stops it first at shutdown and serves its
    /// status and triggers over HTTP.
    pub fn attach_engine(&mut self, engine: PollingEngine) {
        let _ = self.state.engine.set(engine.handle());
        self.engine = Some(engine);
    }

    /// The shared state (buffer, writer counts, metrics).
    pub fn state(&self) -> &Arc<ServiceState> {
        &self.state
    }

    /// The address the HTTP API listens on.
    pub fn http_address(&self) -> SocketAddr {
        self.http.address()
    }

    /// The writer's monitor (for a second Ctrl+C).
    pub fn writer_monitor(&self) -> WriterMonitor {
        self.writer.monitor()
    }

    /// A sender that makes [`wait`](Self::wait) return.
    pub fn stopper(&self) -> Sender<StopReason> {
        self.stop_tx.clone()
    }

    /// Installs the SIGINT/SIGTERM handler: the first signal stops the service gracefully,
    /// the second saves everything left to backup at once, the third exits immediately.
    pub fn handle_signals(&self) -> Result<(), String> {
        crate::platform::install_signal_handler(self.stopper(), self.writer_monitor())
    }

    /// Reads NDJSON tag values from standard input on a new thread; a bad line is logged
    /// with its number and skipped; the end of input stops the service.
    pub fn read_stdin(&self) -> Result<(), StartError> {
        let state = Arc::clone(&self.state);
        let stop = self.stopper();
        std::thread::Builder::new()
            .name("stdin".into())
            .spawn(move || {
                read_ndjson(std::io::BufReader::new(std::io::stdin()), &state);
                let _ = stop.send(StopReason::EndOfInput);
            })
            .map(drop)
            .map_err(StartError::Thread)
    }

    /// Blocks until a signal (or the end of standard input) asks the service to stop.
    pub fn wait(&self) -> StopReason {
        self.stop_rx.recv().unwrap_or(StopReason::Signal)
    }

    /// Stops polling, refuses new values, flushes the buffer (to backup what cannot be
    /// written in time), closes the database, stops the API and logs the final metrics.
    pub fn shutdown(self) -> ShutdownSummary {
        let kind = self.state.sink_kind;
        self.state.begin_shutdown();
        if let Some(engine) = &self.engine {
            log::info!("Stopping polling engine...");
            // Never waits on a PLC: a group stuck in a driver call is abandoned at the deadline
            // so the buffer is still flushed within the 5 s shutdown budget.
            let outcome = engine.stop_within(polling_engine::STOP_GRACE);
            log::info!("Stopped {} polling groups", outcome.stopped);
            if !outcome.abandoned.is_empty() {
                log::warn!(
                    "Abandoned {} polling group(s) stuck in a PLC read: {}",
                    outcome.abandoned.len(),
                    outcome.abandoned.join(", ")
                );
            }
        }
        log::info!("Stopping {kind} writer...");
        let report = self.writer.shutdown(FLUSH_GRACE);
        if let Some(log) = self.state.log() {
            // The last settlements become durable; settled segments go.
            let stats = log.close();
            if stats.unsettled() > 0 {
                log::info!(
                    "Durable log {}: {} values not written yet stay there and are written at \
                    the next start",
                    log.dir().display(),
                    stats.unsettled()
                );
            }
        }
        match kind {
            "SQLite" => log::info!("SQLite database closed"),
            _ => {
                log::info!("Closing {kind} connection pool...");
                log::info!("{kind} connection pool closed");
            }
        }
        self.http.stop();
        let accounting = self.state.accounting();
        let snapshot = self.state.writer.metrics().snapshot();
        let lifetime = snapshot.lifetime;
        log::info!("Final metrics:");
        log::info!("  Total writes: {}", lifetime.writes);
        log::info!(
            "  Success rate: {:.1}%",
            if lifetime.writes == 0 {
                100.0
            } else {
                lifetime.successes as f64 * 100.0 / lifetime.writes as f64
            }
        );
        log::info!("  Overflow count: {}", accounting.overflow);
        log::info!(
            "  Values accepted: {}, written: {}, already stored: {}, backed up: {}, rejected: {}, \
             spilled to backup during retries: {}, conflicting: {}",
            accounting.accepted,
            accounting.written,
            accounting.duplicates,
            accounting.backed_up,
            accounting.rejected,
            accounting.spilled,
            accounting.conflicts
        );
        if !accounting.balanced || accounting.unsaved > 0 {
            log::error!("Accounting does not balance at shutdown: {accounting:?}");
        }
        crate::pid::remove_pid(&self.config.pid_file);
        log::info!("Shutdown complete");
        ShutdownSummary {
            writer: report,
            balanced: accounting.balanced,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }
}

/// The ring buffer, or the durable log (recovered: what was not settled before the last stop
/// is handed to the writer first).
fn open_intake(config: &Config) -> Result<Intake, StartError> {
    match &config.durability {
        Durability::Memory => {
            let buffer = RingBuffer::new(config.buffer_max_size)
                .map_err(|e| StartError::Sink(format!("BUFFER_MAX_SIZE: {e}")))?;
            log::info!("Buffer created (max {} items)", buffer.capacity());
            Ok(Intake::Memory(Arc::new(buffer)))
        }
        Durability::Disk(disk) => {
            let options = LogOptions {
                sync_interval: disk.sync_interval,
                max_bytes: disk.max_bytes,
                ..LogOptions::default()
            };
            let log = DurableLog::open(&disk.dir, options, TagValueCodec::new())
                .map_err(|error| StartError::DurableLog(durable_open_message(&error)))?;
            let recovery = log.recovery();
            log::info!(
                "Durable buffer in {} (BUFFER_DURABILITY=disk): {} segment(s), {} bytes, {} \
                values from before the last stop to write first; synced every {} ms, at most \
                {} bytes",
                disk.dir.display(),
                recovery.segments,
                recovery.bytes,
                recovery.unsettled,
                disk.sync_interval.as_millis(),
                disk.max_bytes
            );
            if let Ok(free) = durable_log::io::available_space(&disk.dir) {
                if free < disk.max_bytes.saturating_sub(recovery.bytes) {
                    log::warn!(
                        "BUFFER_DIR {} has {} free, less than BUFFER_DISK_MAX_BYTES allows the \
                        log to grow to: if the disk fills, ingest answers 503 and polled values \
                        are counted as overflow",
                        disk.dir.display(),
                        crate::config::human_bytes(free)
                    );
                }
            }
            Ok(Intake::Durable(Arc::new(log)))
        }
    }
}

/// The open error with the setting to change.
fn durable_open_message(error: &durable_log::OpenError) -> String {
    match error {
        durable_log::OpenError::Locked { .. } => {
            format!("{error} (each service needs its own BUFFER_DIR)")
        }
        durable_log::OpenError::Directory { .. } => {
            format!("{error} (set BUFFER_DIR to a writable folder)")
        }
        _ => error.to_string(),
    }
}

/// Opens one sink on the configured database (for tools such as replay_backup); the same
/// checks and messages as at service start-up.
pub fn open_sink(config: &Config) -> Result<Box<dyn Sink>, StartError> {
    let single = Config {
        writer_threads: 1,
        ..config.clone()
    };
    open_sinks(&single)?
        .pop()
        .ok_or_else(|| StartError::Sink("no sink was opened".into()))
}

/// Opens one sink per writer thread; a set-up error (no client library, bad credentials,
/// missing table) stops start-up, an unreachable database does not: the writer retries and
/// backs up until it returns.
fn open_sinks(config: &Config) -> Result<Vec<Box<dyn Sink>>, StartError> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    match &config.sink {
        SinkConfig::Oracle(oracle) => {
            log::info!(
                "Creating Oracle connection pool (min={}, max={})...",
                oracle.pool_min,
                oracle.pool_max
            );
            let mut sink =
                OracleSink::new(oracle.clone()).map_err(|e| StartError::Sink(e.to_string()))?;
            match sink.probe().and_then(|()| sink.check_table()) {
                Ok(()) => log::info!("Oracle connection pool created successfully"),
                Err(error) if error.is_transient() => log::warn!(
                    "Oracle is not reachable yet: {error}. Values are kept, retried and backed \
                     up until it is"
                ),
                Err(error) => return Err(StartError::Sink(format!("Oracle: {error}"))),
            }
            for _ in 0..config.writer_threads {
                sinks.push(Box::new(sink.clone()));
            }
        }
        SinkConfig::Postgres(postgres) => {
            log::info!(
                "Creating PostgreSQL connection pool (min={}, max={})...",
                postgres.pool_min,
                postgres.pool_max
            );
            let mut sink =
                PostgresSink::new(postgres.clone()).map_err(|e| StartError::Sink(e.to_string()))?;
            log::info!("PostgreSQL: {}", sink.describe());
            match sink.probe().and_then(|()| sink.check_table()) {
                Ok(()) => log::info!("PostgreSQL connection pool created successfully"),
                Err(error) if error.is_transient() => log::warn!(
                    "PostgreSQL is not reachable yet: {error}. Values are kept, backed up and \
                     written when it is"
                ),
                Err(error) => return Err(StartError::Sink(format!("PostgreSQL: {error}"))),
            }
            for _ in 0..config.writer_threads {
                sinks.push(Box::new(sink.clone()));
            }
        }
        SinkConfig::Sqlite {
            path,
            table,
            mapping,
        } => {
            log::info!("Opening SQLite database {}...", path.display());
            for _ in 0..config.writer_threads {
                let sink = SqliteSink::open_with(path, table, mapping.clone())
                    .map_err(|e| StartError::Sink(e.to_string()))?;
                sinks.push(Box::new(sink));
            }
            log::info!("SQLite database ready (table {table})");
        }
    }
    Ok(sinks)
}

/// A chunk of standard input is pushed at 1,000 values, once its first value is this old, or
/// when input pauses that long: a trickle is not held back (in disk mode: it makes the next
/// sync).
const STDIN_IDLE_FLUSH: Duration = Duration::from_millis(50);

/// Pushes NDJSON tag values from `input` into the buffer in chunks; returns (values, bad
/// lines). A second thread reads the lines, so that a partial chunk is pushed when input
/// pauses rather than when the next line comes.
pub fn read_ndjson(input: impl BufRead + Send, state: &ServiceState) -> (u64, u64) {
    let (lines, received) = std::sync::mpsc::sync_channel::<std::io::Result<String>>(4096);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for line in input.lines() {
                let failed = line.is_err();
                if lines.send(line).is_err() || failed {
                    break;
                }
            }
        });
        parse_lines(&received, state)
    })
}

fn parse_lines(
    received: &std::sync::mpsc::Receiver<std::io::Result<String>>,
    state: &ServiceState,
) -> (u64, u64) {
    use std::sync::mpsc::RecvTimeoutError;
    let mut chunk = Vec::with_capacity(1000);
    let mut chunk_started = std::time::Instant::now();
    let (mut read, mut bad) = (0u64, 0u64);
    let flush = |chunk: &mut Vec<tag_model::TagValue>| {
        if chunk.is_empty() {
            return;
        }
        if let Err(refused) = state.push(std::mem::take(chunk)) {
            log::error!(
                "{} values from standard input refused: the service is stopping",
                refused.len()
            );
        }
    };
    let mut line_number = 0;
    loop {
        let line = match received.recv_timeout(STDIN_IDLE_FLUSH) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                flush(&mut chunk);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        line_number += 1;
        let line = match line {
            Ok(line) => line,
            Err(error) => {
                log::error!("standard input line {line_number}: {error}");
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match crate::ingest::parse_line_in(
            line_number,
            &line,
            state.timestamp_zone.now(),
            state.timestamp_zone,
        ) {
            Ok(value) => {
                read += 1;
                if chunk.is_empty() {
                    chunk_started = std::time::Instant::now();
                }
                chunk.push(value);
                if chunk.len() == 1000 || chunk_started.elapsed() >= STDIN_IDLE_FLUSH {
                    flush(&mut chunk);
                }
            }
            Err(error) => {
                bad += 1;
                log::error!(
                    "standard input line {line_number} skipped: {}",
                    error.message
                );
            }
        }
    }
    flush(&mut chunk);
    log::info!("End of standard input: {read} values read, {bad} lines refused");
    (read, bad)
}
