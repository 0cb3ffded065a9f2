//! The public handle.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::codec::Codec;
use crate::io::{Filesystem, StdFs};
use crate::options::{
    AppendError, Appended, Claim, LogOptions, LogStats, OpenError, Recovery, SyncError, SyncTicket,
    Wait,
};
use crate::recovery::recover;
use crate::state::{
    lock, AppendState, Counters, Inner, Ledger, ReaderState, SegmentTable, SyncStatus,
};
use crate::writer::{now_micros, run_syncer};

/// A crash-safe log of values with group commit. Share it with `Arc`; see the
/// [crate docs](crate) for the design.
///
/// Producers [`append`](Self::append) (and may [`wait_synced`](Self::wait_synced));
/// writer threads [`wait_for`](Self::wait_for), [`drain_into`](Self::drain_into) and
/// [`settle`](Self::settle). Dropping the log closes it as [`close`](Self::close) does.
pub struct DurableLog<C: Codec> {
    inner: Arc<Inner<C>>,
    syncer: Mutex<Option<JoinHandle<()>>>,
}

impl<C: Codec> DurableLog<C> {
    /// Opens (or creates) the log in `dir` on the real file system and recovers it.
    pub fn open(dir: impl AsRef<Path>, options: LogOptions, codec: C) -> Result<Self, OpenError> {
        DurableLog::open_with(Arc::new(StdFs), dir, options, codec)
    }

    /// Opens the log through `fs` (a [`MemoryFs`](crate::io::MemoryFs) in tests).
    ///
    /// Damage inside the log never makes this fail: damaged records are skipped, counted and
    /// logged with their segment and offset ([`recovery`](Self::recovery)). Only a directory
    /// that cannot be created, listed or locked (another process has it) is an error.
    pub fn open_with(
        fs: Arc<dyn Filesystem>,
        dir: impl AsRef<Path>,
        options: LogOptions,
        codec: C,
    ) -> Result<Self, OpenError> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let fail = |action, source: io::Error| OpenError::Directory {
            dir: dir.clone(),
            action,
            source,
        };
        fs.create_dir_all(&dir).map_err(|e| fail("create", e))?;
        let dir_lock = fs.lock_dir(&dir).map_err(|error| {
            if error.kind() == io::ErrorKind::WouldBlock {
                OpenError::Locked { dir: dir.clone() }
            } else {
                fail("lock", error)
            }
        })?;
        let recovered = recover(&*fs, &dir).map_err(|e| fail("list", e))?;
        let report = recovered.report;
        log_recovery(&dir, &report);
        let floor_id = recovered.settled.floor();
        let mut table = SegmentTable::default();
        for info in recovered.segments {
            table.total_bytes += info.file_len;
            table.segments.push_back(info);
        }
        let counters = Counters::default();
        Counters::add(&counters.recovered, report.unsettled);
        Counters::add(&counters.unread, report.unsettled);
        Counters::add(&counters.corrupt_records, report.corrupt_records);
        let segment_bytes = options.effective_segment_bytes();
        let inner = Arc::new(Inner {
            fs,
            segment_bytes,
            codec,
            append: Mutex::new(AppendState {
                next_id: recovered.next_id,
                pending: Vec::new(),
                pending_values: 0,
                closed: false,
                stop: false,
                sync_now: false,
                failure: None,
                rounds_started: 0,
            }),
            append_room: Condvar::new(),
            syncer_wake: Condvar::new(),
            sync: Mutex::new(SyncStatus {
                synced_upto: recovered.next_id,
                last_failure: None,
                callbacks: Vec::new(),
                done: false,
                rounds_done: 0,
            }),
            sync_changed: Condvar::new(),
            failures: AtomicU64::new(0),
            reader: Mutex::new(ReaderState {
                segment: None,
                cursor: None,
                decoded: VecDeque::new(),
                decoded_micros: 0,
                last_micros: None,
                read_upto: floor_id,
                claimed_upto: floor_id,
                scratch: Vec::new(),
                damaged_since_record: false,
                read_error_logged: false,
            }),
            closed: AtomicBool::new(false),
            ready: Mutex::new(()),
            ready_changed: Condvar::new(),
            ledger: Mutex::new(Ledger {
                settled: recovered.settled,
                claims: BTreeMap::new(),
                dirty: false,
            }),
            table: Mutex::new(table),
            next_segment: AtomicU64::new(recovered.next_segment),
            counters,
            known_damage: recovered.known_damage,
            recovery: report,
            dir_lock: Mutex::new(Some(dir_lock)),
            dir,
            options,
        });
        let thread_inner = Arc::clone(&inner);
        let syncer = std::thread::Builder::new()
            .name("durable-log-sync".into())
            .spawn(move || run_syncer(thread_inner))
            .map_err(OpenError::Spawn)?;
        Ok(DurableLog {
            inner,
            syncer: Mutex::new(Some(syncer)),
        })
    }

    /// What recovery found at open.
    pub fn recovery(&self) -> &Recovery {
        &self.inner.recovery
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The settings in force.
    pub fn options(&self) -> &LogOptions {
        &self.inner.options
    }

    /// Appends `items` (one or more records). They become durable at the next sync, within
    /// `sync_interval`; [`wait_synced`](Self::wait_synced) with the returned ticket waits for
    /// that. Refused as a whole with the reason while the disk is full or failing, or after
    /// [`close_appends`](Self::close_appends). Waits only while `max_unsynced_bytes` are
    /// already waiting for a sync.
    pub fn append(&self, items: &[C::Item]) -> Result<Appended, AppendError> {
        self.inner.append(items)
    }

    /// Blocks until the values of `ticket` are durable, a sync covering them fails, or
    /// `timeout` passes.
    pub fn wait_synced(&self, ticket: SyncTicket, timeout: Duration) -> Result<(), SyncError> {
        self.inner.wait_synced(ticket, timeout)
    }

    /// Calls `callback` once the values of `ticket` are durable, or a sync covering them
    /// fails, or the log closes first; at once if one of those already happened. It runs on
    /// the sync thread (or the caller's): keep it short, e.g. send on a channel.
    pub fn on_synced(
        &self,
        ticket: SyncTicket,
        callback: impl FnOnce(Result<(), SyncError>) + Send + 'static,
    ) {
        self.inner.on_synced(ticket, Box::new(callback));
    }

    /// Syncs now rather than at the next interval and waits for that sync round to finish:
    /// everything appended and settled before the call is durable, and segments settled by
    /// then are deleted (for shutdown and tests; the interval is what batches fsyncs).
    pub fn flush(&self, timeout: Duration) -> Result<(), SyncError> {
        self.inner.flush(timeout)
    }

    /// Sleeps until at least `threshold` values are ready to drain, `timeout` passes, or
    /// appends are closed and everything synced has been handed out.
    pub fn wait_for(&self, threshold: usize, timeout: Duration) -> Wait {
        self.inner.wait_for(threshold, timeout)
    }

    /// Moves up to `max` values, oldest first, into `out`, and returns their claim (`None`
    /// when there is nothing to drain). Only synced values are handed out. Several threads may
    /// drain at once; each gets a contiguous range of ids.
    pub fn drain_into(&self, out: &mut Vec<C::Item>, max: usize) -> Option<Claim> {
        self.inner.drain_into(out, max)
    }

    /// Marks a claim's values settled (written, already stored, rejected, or backed up), in
    /// any order. The log records it at the next sync and deletes a segment once all of its
    /// values are settled.
    pub fn settle(&self, claim: Claim) {
        self.inner.settle(claim);
    }

    /// Refuses further appends and syncs what is pending now. Draining and settling go on;
    /// [`wait_for`](Self::wait_for) returns [`Wait::Closed`] once everything is handed out.
    pub fn close_appends(&self) {
        let inner = &self.inner;
        {
            let mut state = lock(&inner.append);
            state.closed = true;
            state.sync_now = true;
        }
        inner.closed.store(true, Ordering::SeqCst);
        inner.syncer_wake.notify_all();
        inner.append_room.notify_all();
        inner.notify_ready();
    }

    /// Whether [`close_appends`](Self::close_appends) (or [`close`](Self::close)) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// Closes appends, makes a last sync (pending values and settlements), deletes settled
    /// segments, stops the sync thread and unlocks the directory. Unsettled values stay on
    /// disk for the next open; values drained but not settled by now are handed out again
    /// then.
    /// Returns the figures at the end. Later calls do nothing but return them again.
    pub fn close(&self) -> LogStats {
        self.close_appends();
        {
            let mut state = lock(&self.inner.append);
            state.stop = true;
        }
        self.inner.syncer_wake.notify_all();
        if let Some(thread) = lock(&self.syncer).take() {
            if thread.join().is_err() {
                log::error!("Durable log: the sync thread panicked");
            }
        }
        // Another process (or a new log here) may open the directory now.
        drop(lock(&self.inner.dir_lock).take());
        self.stats()
    }

    /// Figures for metrics and health.
    pub fn stats(&self) -> LogStats {
        let inner = &self.inner;
        let get = |counter: &AtomicU64| Counters::get(counter);
        let counters = &inner.counters;
        let (bytes, segments) = {
            let table = lock(&inner.table);
            (table.total_bytes, table.segments.len())
        };
        let oldest = inner.oldest_unsettled_micros();
        let disk_error = lock(&inner.append)
            .failure
            .as_ref()
            .map(|failure| failure.reason.clone());
        LogStats {
            bytes,
            segments,
            oldest_unsettled_age: oldest.map(|micros| {
                Duration::from_micros(u64::try_from(now_micros() - micros).unwrap_or(0))
            }),
            recovered: get(&counters.recovered),
            appended: get(&counters.appended),
            refused: get(&counters.refused),
            pending: get(&counters.pending),
            unread: get(&counters.unread),
            in_flight: get(&counters.in_flight),
            settled: get(&counters.settled),
            overflow: get(&counters.overflow),
            lost_to_damage: get(&counters.lost_to_damage),
            lost_unsynced: get(&counters.lost_unsynced),
            corrupt_records: get(&counters.corrupt_records),
            fsyncs: get(&counters.fsyncs),
            bytes_written: get(&counters.bytes_written),
            sync_failures: get(&counters.sync_failures),
            disk_error,
        }
    }

    /// The path of a segment file (for operators' messages and tests).
    pub fn segment_path(&self, number: u64) -> PathBuf {
        self.inner.segment_path(number)
    }
}

impl<C: Codec> Drop for DurableLog<C> {
    fn drop(&mut self) {
        self.close();
    }
}

impl<C: Codec> std::fmt::Debug for DurableLog<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableLog")
            .field("dir", &self.inner.dir)
            .field("stats", &self.stats())
            .finish()
    }
}

fn log_recovery(dir: &Path, report: &Recovery) {
    if report.segments == 0 && report.corrupt_records == 0 {
        log::info!("Durable log {}: empty, starting fresh", dir.display());
        return;
    }
    log::info!(
        "Durable log {} recovered in {:.1} ms: {} segment(s), {} bytes, {} value(s) not yet \
         settled will be written again",
        dir.display(),
        report.duration.as_secs_f64() * 1000.0,
        report.segments,
        report.bytes,
        report.unsettled
    );
    if report.corrupt_records > 0 {
        log::warn!(
            "Durable log {}: skipped {} corrupt record(s), {} value(s) known lost; the rest is \
             intact (buffer.corrupt_records)",
            dir.display(),
            report.corrupt_records,
            report.values_lost
        );
    }
}
