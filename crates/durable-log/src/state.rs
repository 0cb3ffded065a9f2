//! The state shared by appenders, the sync thread and readers, and its lock order.
//!
//! Locks, always taken in this order and never the other way: `reader` -> `ledger` ->
//! `table`. `append`, `sync` and `ready` are taken alone (never while holding another).

use std::any::Any;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::codec::Codec;
use crate::io::Filesystem;
use crate::ledger::SettledSet;
use crate::options::{Corruption, LogOptions, Recovery, SyncError};
use crate::segment::Cursor;

/// A segment file as the log tracks it.
#[derive(Clone, Debug)]
pub(crate) struct SegmentInfo {
    pub(crate) number: u64,
    /// Ids below this are in older segments.
    pub(crate) start_id: u64,
    /// One past the last id in this segment.
    pub(crate) end_id: u64,
    /// Bytes readers may read: synced, ending at a record boundary.
    pub(crate) readable_len: u64,
    /// Bytes on disk.
    pub(crate) file_len: u64,
    /// No more appends go to it.
    pub(crate) finished: bool,
    /// When its first value record was appended.
    pub(crate) first_micros: Option<i64>,
}

#[derive(Default)]
pub(crate) struct SegmentTable {
    pub(crate) segments: VecDeque<SegmentInfo>,
    pub(crate) total_bytes: u64,
}

impl SegmentTable {
    pub(crate) fn get(&self, number: u64) -> Option<&SegmentInfo> {
        self.segments.iter().find(|info| info.number == number)
    }

    pub(crate) fn get_mut(&mut self, number: u64) -> Option<&mut SegmentInfo> {
        self.segments.iter_mut().find(|info| info.number == number)
    }
}

pub(crate) struct DiskFailure {
    pub(crate) reason: String,
    pub(crate) storage_full: bool,
}

pub(crate) struct AppendState {
    pub(crate) next_id: u64,
    /// Encoded records waiting for the next sync.
    pub(crate) pending: Vec<u8>,
    pub(crate) pending_values: u64,
    /// Appends are refused.
    pub(crate) closed: bool,
    /// The sync thread should make a last sync and end.
    pub(crate) stop: bool,
    /// Sync now instead of at the next interval (close and flush).
    pub(crate) sync_now: bool,
    /// The last write or sync failed; appends are refused until one succeeds.
    pub(crate) failure: Option<DiskFailure>,
    /// Sync rounds begun (each takes `pending`).
    pub(crate) rounds_started: u64,
}

pub(crate) type SyncCallback = Box<dyn FnOnce(Result<(), SyncError>) + Send>;

pub(crate) struct SyncStatus {
    /// Every id below this is durable.
    pub(crate) synced_upto: u64,
    pub(crate) last_failure: Option<String>,
    pub(crate) callbacks: Vec<(u64, u64, SyncCallback)>,
    /// The sync thread has ended: nothing more will be synced.
    pub(crate) done: bool,
    /// Sync rounds finished (written, synced, settled segments deleted).
    pub(crate) rounds_done: u64,
}

pub(crate) struct ReaderState<T> {
    /// The segment being read (or last read).
    pub(crate) segment: Option<u64>,
    pub(crate) cursor: Option<Cursor>,
    /// Decoded values not yet handed out, with their ids.
    pub(crate) decoded: VecDeque<(u64, T)>,
    /// When the record in `decoded` was appended.
    pub(crate) decoded_micros: i64,
    /// When the last record read was appended.
    pub(crate) last_micros: Option<i64>,
    /// Every id below this has been read (handed to `decoded`, skipped or lost).
    pub(crate) read_upto: u64,
    /// Every id below this is claimed or settled.
    pub(crate) claimed_upto: u64,
    pub(crate) scratch: Vec<T>,
    /// Damage was found since the last intact value record: a gap in ids is explained.
    pub(crate) damaged_since_record: bool,
    /// A read error in the active segment was logged (once until reads work again).
    pub(crate) read_error_logged: bool,
}

pub(crate) struct Ledger {
    pub(crate) settled: SettledSet,
    /// Claims not yet settled: start -> (end, when the oldest value was appended).
    pub(crate) claims: BTreeMap<u64, (u64, i64)>,
    /// Settled since the last marker was written.
    pub(crate) dirty: bool,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) recovered: AtomicU64,
    pub(crate) appended: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) pending: AtomicU64,
    pub(crate) unread: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    pub(crate) settled: AtomicU64,
    pub(crate) overflow: AtomicU64,
    pub(crate) lost_to_damage: AtomicU64,
    pub(crate) lost_unsynced: AtomicU64,
    pub(crate) corrupt_records: AtomicU64,
    pub(crate) fsyncs: AtomicU64,
    pub(crate) bytes_written: AtomicU64,
    pub(crate) sync_failures: AtomicU64,
}

impl Counters {
    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::SeqCst);
    }

    pub(crate) fn sub(counter: &AtomicU64, n: u64) {
        // An underflow is a counting bug (one hid the unread race of 698b4a3): loud in debug
        // builds and tests; saturating in release, so a figure never wraps in the field.
        let _ = counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |value| {
            debug_assert!(value >= n, "counter underflow: {value} - {n}");
            Some(value.saturating_sub(n))
        });
    }
}

pub(crate) struct Inner<C: Codec> {
    pub(crate) fs: Arc<dyn Filesystem>,
    pub(crate) dir: PathBuf,
    pub(crate) options: LogOptions,
    pub(crate) segment_bytes: u64,
    pub(crate) codec: C,
    pub(crate) append: Mutex<AppendState>,
    /// Appenders waiting for room in `pending`.
    pub(crate) append_room: Condvar,
    /// The sync thread waiting for its next tick.
    pub(crate) syncer_wake: Condvar,
    pub(crate) sync: Mutex<SyncStatus>,
    pub(crate) sync_changed: Condvar,
    /// Sync failures so far (read by appends without the `sync` lock).
    pub(crate) failures: AtomicU64,
    pub(crate) reader: Mutex<ReaderState<C::Item>>,
    /// Appends are closed (read by `wait_for` without the append lock).
    pub(crate) closed: std::sync::atomic::AtomicBool,
    pub(crate) ready: Mutex<()>,
    pub(crate) ready_changed: Condvar,
    pub(crate) ledger: Mutex<Ledger>,
    pub(crate) table: Mutex<SegmentTable>,
    pub(crate) next_segment: AtomicU64,
    pub(crate) counters: Counters,
    pub(crate) known_damage: HashSet<(u64, u64)>,
    pub(crate) recovery: Recovery,
    /// The directory lock, released by `close`.
    pub(crate) dir_lock: Mutex<Option<Box<dyn Any + Send + Sync>>>,
}

/// Locks a mutex, taking the data of a poisoned one: every critical section here leaves its
/// state consistent before anything that can panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<C: Codec> Inner<C> {
    /// Reports damage found after open (unless recovery already did).
    pub(crate) fn report_damage(&self, corruption: Corruption) {
        if self
            .known_damage
            .contains(&(corruption.segment, corruption.offset))
        {
            return;
        }
        Counters::add(&self.counters.corrupt_records, 1);
        log::error!("Durable log: {corruption}");
    }

    /// Wakes consumers sleeping in `wait_for`.
    pub(crate) fn notify_ready(&self) {
        drop(lock(&self.ready));
        self.ready_changed.notify_all();
    }

    pub(crate) fn segment_path(&self, number: u64) -> PathBuf {
        crate::segment::segment_path(&self.dir, number)
    }
}
