//! Appends and group commit.
//!
//! Appenders encode outside any lock, then copy their records into `pending` under the
//! append lock. One sync thread wakes every `sync_interval`, takes `pending`, writes it to the
//! active segment with one `write` and one `fdatasync`, and only then publishes the new
//! synced position: readers see the values and `wait_synced` returns. A failed write or sync
//! keeps the batch in memory, abandons the segment at its last good length, and tries again
//! in a new segment at the next interval; meanwhile appends are refused with the reason.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::codec::Codec;
use crate::io::{is_storage_full, AppendFile};
use crate::options::{AppendError, Appended, SyncError, SyncTicket};
use crate::record::{self, RecordKind, HEADER_LEN, MAX_PAYLOAD_LEN};
use crate::segment::{segment_header, SEGMENT_HEADER_LEN};
use crate::state::{lock, Counters, DiskFailure, Inner, SegmentInfo, SyncCallback};

/// How often at most a persisting disk failure is logged again.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(30);
/// At close, how many more times a failing sync is tried before unsynced values are given up.
const CLOSE_RETRIES: u32 = 3;
/// ... and how long it waits between those tries.
const CLOSE_RETRY_DELAY: Duration = Duration::from_millis(20);

pub(crate) fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX)
        })
}

struct Frame {
    payload: Vec<u8>,
    crc: u32,
    count: u32,
}

impl<C: Codec> Inner<C> {
    /// Encodes `items` into frames of at most `max_record_values` and the payload limit.
    fn encode_frames(&self, items: &[C::Item], frames: &mut Vec<Frame>) -> Result<(), AppendError> {
        for chunk in items.chunks(self.options.max_record_values) {
            let mut payload = Vec::new();
            self.codec.encode(chunk, &mut payload);
            if payload.len() > MAX_PAYLOAD_LEN as usize {
                if chunk.len() == 1 {
                    return Err(AppendError::TooLarge {
                        bytes: payload.len(),
                        max: MAX_PAYLOAD_LEN as usize,
                    });
                }
                let (left, right) = chunk.split_at(chunk.len() / 2);
                self.encode_frames(left, frames)?;
                self.encode_frames(right, frames)?;
                continue;
            }
            let crc = crc32c::crc32c(&payload);
            frames.push(Frame {
                payload,
                crc,
                count: chunk.len() as u32,
            });
        }
        Ok(())
    }

    pub(crate) fn append(&self, items: &[C::Item]) -> Result<Appended, AppendError> {
        let failures = Counters::get(&self.failures);
        if items.is_empty() {
            return Ok(Appended {
                first_id: lock(&self.append).next_id,
                count: 0,
                ticket: SyncTicket {
                    end_id: 0,
                    failures,
                },
            });
        }
        let mut frames = Vec::new();
        let refuse = |error: AppendError| {
            Counters::add(&self.counters.refused, items.len() as u64);
            Err(error)
        };
        if let Err(error) = self.encode_frames(items, &mut frames) {
            return refuse(error);
        }
        let bytes: usize = frames
            .iter()
            .map(|frame| HEADER_LEN + frame.payload.len())
            .sum();
        let micros = now_micros();
        let mut state = lock(&self.append);
        loop {
            if state.closed {
                drop(state);
                return refuse(AppendError::Closed);
            }
            if let Some(failure) = &state.failure {
                let reason = failure.reason.clone();
                let storage_full = failure.storage_full;
                drop(state);
                return refuse(if storage_full {
                    AppendError::DiskFull { reason }
                } else {
                    AppendError::DiskFailed { reason }
                });
            }
            if state.pending.is_empty()
                || state.pending.len() + bytes <= self.options.max_unsynced_bytes
            {
                break;
            }
            // The disk is slower than the producers: wait for the next sync to take pending.
            state = self
                .append_room
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        let first_id = state.next_id;
        for frame in &frames {
            let id = state.next_id;
            record::encode_with_checksum(
                RecordKind::Values,
                id,
                frame.count,
                micros,
                &frame.payload,
                frame.crc,
                &mut state.pending,
            );
            state.next_id += u64::from(frame.count);
        }
        let count = state.next_id - first_id;
        state.pending_values += count;
        let end_id = state.next_id;
        Counters::add(&self.counters.appended, count);
        Counters::add(&self.counters.pending, count);
        drop(state);
        Ok(Appended {
            first_id,
            count,
            ticket: SyncTicket { end_id, failures },
        })
    }

    pub(crate) fn wait_synced(
        &self,
        ticket: SyncTicket,
        timeout: Duration,
    ) -> Result<(), SyncError> {
        let deadline = Instant::now() + timeout;
        let mut status = lock(&self.sync);
        loop {
            if status.synced_upto >= ticket.end_id {
                return Ok(());
            }
            if Counters::get(&self.failures) > ticket.failures {
                return Err(SyncError::Failed {
                    reason: status.last_failure.clone().unwrap_or_default(),
                });
            }
            if status.done {
                return Err(SyncError::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(SyncError::TimedOut);
            }
            status = self
                .sync_changed
                .wait_timeout(status, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    pub(crate) fn on_synced(&self, ticket: SyncTicket, callback: SyncCallback) {
        let mut status = lock(&self.sync);
        let result = if status.synced_upto >= ticket.end_id {
            Ok(())
        } else if Counters::get(&self.failures) > ticket.failures {
            Err(SyncError::Failed {
                reason: status.last_failure.clone().unwrap_or_default(),
            })
        } else if status.done {
            Err(SyncError::Closed)
        } else {
            status
                .callbacks
                .push((ticket.end_id, ticket.failures, callback));
            return;
        };
        drop(status);
        callback(result);
    }

    /// Asks the sync thread for a round now and waits for it to finish.
    pub(crate) fn flush(&self, timeout: Duration) -> Result<(), SyncError> {
        let failures = Counters::get(&self.failures);
        let (round, end_id) = {
            let mut state = lock(&self.append);
            state.sync_now = true;
            (state.rounds_started, state.next_id)
        };
        self.syncer_wake.notify_all();
        let deadline = Instant::now() + timeout;
        let mut status = lock(&self.sync);
        // The round after `round` began after this call, so it covers everything before it.
        while status.rounds_done <= round && !status.done {
            let now = Instant::now();
            if now >= deadline {
                return Err(SyncError::TimedOut);
            }
            status = self
                .sync_changed
                .wait_timeout(status, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        if status.synced_upto >= end_id && Counters::get(&self.failures) == failures {
            Ok(())
        } else if Counters::get(&self.failures) > failures {
            Err(SyncError::Failed {
                reason: status.last_failure.clone().unwrap_or_default(),
            })
        } else if status.synced_upto >= end_id {
            Ok(())
        } else {
            Err(SyncError::Closed)
        }
    }
}

/// The segment appends go to, owned by the sync thread.
struct Active {
    number: u64,
    file: Box<dyn AppendFile>,
    /// Bytes written and synced (the segment header included once written).
    len: u64,
    /// The directory entry is not durable yet.
    new: bool,
}

/// Records taken from `pending` (and markers), not yet durable.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    values: u64,
    /// One past the last value id in the batch (or before it, if none).
    end_id: u64,
}

/// The sync thread.
pub(crate) fn run_syncer<C: Codec>(inner: Arc<Inner<C>>) {
    let mut syncer = Syncer {
        inner,
        active: None,
        retry: None,
        failing_since: None,
        last_failure_log: None,
    };
    syncer.run();
}

struct Syncer<C: Codec> {
    inner: Arc<Inner<C>>,
    active: Option<Active>,
    retry: Option<Batch>,
    failing_since: Option<Instant>,
    last_failure_log: Option<Instant>,
}

impl<C: Codec> Syncer<C> {
    fn run(&mut self) {
        let interval = self.inner.options.sync_interval;
        let mut next_tick = Instant::now() + interval;
        let mut close_tries = 0;
        loop {
            let (mut batch, stop) = self.take_pending(next_tick);
            next_tick = Instant::now() + interval;
            if let Some(mut retry) = self.retry.take() {
                // The failed batch goes first: ids stay in order on disk.
                retry.bytes.append(&mut batch.bytes);
                retry.values += batch.values;
                retry.end_id = retry.end_id.max(batch.end_id);
                batch = retry;
            }
            self.add_settled_marker(&mut batch);
            if !batch.bytes.is_empty() {
                match self.write(&batch) {
                    Ok(()) => self.published(&batch),
                    Err(error) => {
                        self.failed(&error);
                        self.retry = Some(batch);
                    }
                }
            }
            if stop && self.retry.is_none() && lock(&self.inner.append).pending.is_empty() {
                // Finished, the last segment can go too if everything in it is settled.
                if let Some(active) = self.active.take() {
                    self.finish(active.number);
                }
                self.delete_settled_segments();
                self.round_done();
                break;
            }
            self.delete_settled_segments();
            self.round_done();
            if stop {
                close_tries += 1;
                if close_tries > CLOSE_RETRIES {
                    self.give_up_unsynced();
                    break;
                }
                std::thread::sleep(interval.min(CLOSE_RETRY_DELAY));
            }
        }
        if let Some(active) = self.active.take() {
            self.finish(active.number);
        }
        let callbacks = {
            let mut status = lock(&self.inner.sync);
            status.done = true;
            std::mem::take(&mut status.callbacks)
        };
        self.inner.sync_changed.notify_all();
        for (_, _, callback) in callbacks {
            callback(Err(SyncError::Closed));
        }
        self.inner.notify_ready();
    }

    fn round_done(&self) {
        lock(&self.inner.sync).rounds_done += 1;
        self.inner.sync_changed.notify_all();
    }

    /// Waits for the tick (or a close or flush), then takes what was appended.
    fn take_pending(&mut self, next_tick: Instant) -> (Batch, bool) {
        let inner = &self.inner;
        let mut state = lock(&inner.append);
        loop {
            if state.stop || state.sync_now {
                break;
            }
            let now = Instant::now();
            if now >= next_tick {
                break;
            }
            state = inner
                .syncer_wake
                .wait_timeout(state, next_tick - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        state.sync_now = false;
        state.rounds_started += 1;
        let stop = state.stop;
        let batch = Batch {
            bytes: std::mem::take(&mut state.pending),
            values: std::mem::take(&mut state.pending_values),
            end_id: state.next_id,
        };
        drop(state);
        inner.append_room.notify_all();
        (batch, stop)
    }

    /// Appends a record of the settled ranges, if anything was settled since the last one.
    fn add_settled_marker(&self, batch: &mut Batch) {
        let inner = &self.inner;
        let lowest = lock(&inner.table)
            .segments
            .front()
            .map(|info| info.start_id);
        let ranges = {
            let mut ledger = lock(&inner.ledger);
            if !ledger.dirty {
                return;
            }
            ledger.dirty = false;
            let floor = ledger.settled.floor();
            let mut ranges = Vec::with_capacity(ledger.settled.fragments() + 1);
            // Only ids still on disk need recording.
            let low = lowest.unwrap_or(floor).min(floor);
            if low < floor {
                ranges.push(low..floor);
            }
            ranges.extend(ledger.settled.ranges());
            ranges
        };
        if ranges.is_empty() {
            return;
        }
        // One marker record holds up to a megabyte of ranges; more become several records.
        for chunk in ranges.chunks(65_536) {
            let mut payload = Vec::with_capacity(chunk.len() * 16);
            record::encode_ranges(chunk, &mut payload);
            record::encode(
                RecordKind::Settled,
                0,
                chunk.len() as u32,
                now_micros(),
                &payload,
                &mut batch.bytes,
            );
        }
    }

    /// Writes and syncs `batch`, rotating and displacing segments first as needed.
    fn write(&mut self, batch: &Batch) -> std::io::Result<()> {
        let inner = Arc::clone(&self.inner);
        let incoming = batch.bytes.len() as u64;
        if let Some(active) = &self.active {
            if active.len > SEGMENT_HEADER_LEN as u64 && active.len + incoming > inner.segment_bytes
            {
                let number = active.number;
                self.active = None;
                self.finish(number);
            }
        }
        self.enforce_cap(incoming + SEGMENT_HEADER_LEN as u64);
        if self.active.is_none() {
            let number = inner
                .next_segment
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let file = inner.fs.create_new(&inner.segment_path(number))?;
            let start_id = batch.end_id - batch.values;
            lock(&inner.table).segments.push_back(SegmentInfo {
                number,
                start_id,
                end_id: start_id,
                readable_len: 0,
                file_len: 0,
                finished: false,
                first_micros: None,
            });
            self.active = Some(Active {
                number,
                file,
                len: 0,
                new: true,
            });
        }
        let Some(active) = self.active.as_mut() else {
            return Ok(());
        };
        let result = (|| {
            let mut written = 0;
            if active.len == 0 {
                active.file.write_all(&segment_header())?;
                written += SEGMENT_HEADER_LEN as u64;
            }
            active.file.write_all(&batch.bytes)?;
            written += incoming;
            active.file.sync_data()?;
            if active.new {
                inner.fs.sync_dir(&inner.dir)?;
                active.new = false;
            }
            Ok(written)
        })();
        match result {
            Ok(written) => {
                active.len += written;
                Counters::add(&inner.counters.fsyncs, 1);
                Counters::add(&inner.counters.bytes_written, written);
                let mut table = lock(&inner.table);
                table.total_bytes += written;
                // Counted as unread before readers can see them (under the table lock that
                // `readable_len` is read under): a reader that takes them at once subtracts
                // what is already added. Counted after, the subtraction saturated at zero and
                // `unread` kept values that were gone. Unread first: a reader never sees
                // pending and unread both at zero while values are in between.
                Counters::add(&inner.counters.unread, batch.values);
                Counters::sub(&inner.counters.pending, batch.values);
                if let Some(info) = table.get_mut(active.number) {
                    info.readable_len = active.len;
                    info.file_len = active.len;
                    if batch.values > 0 {
                        info.end_id = info.end_id.max(batch.end_id);
                        info.first_micros.get_or_insert_with(now_micros);
                    }
                }
                Ok(())
            }
            Err(error) => {
                // Abandon the segment at its last good length; the batch goes to a new one.
                let number = active.number;
                let good = active.len;
                self.active = None;
                self.abandon(number, good);
                Err(error)
            }
        }
    }

    /// A segment whose write failed: cut back to what was synced (best effort), finished.
    fn abandon(&self, number: u64, good: u64) {
        let inner = &self.inner;
        let path = inner.segment_path(number);
        let mut table = lock(&inner.table);
        if good == 0 {
            // Nothing durable in it: remove it (this also frees space on a full disk).
            table.segments.retain(|info| info.number != number);
            drop(table);
            if let Err(error) = inner.fs.remove(&path) {
                log::debug!(
                    "Cannot remove the failed segment {}: {error}",
                    path.display()
                );
            }
            return;
        }
        if let Some(info) = table.get_mut(number) {
            info.finished = true;
        }
        drop(table);
        if let Err(error) = inner.fs.truncate(&path, good) {
            log::debug!(
                "Cannot cut the failed segment {} back to {good} bytes: {error}; recovery \
                 skips what follows",
                path.display()
            );
        }
    }

    fn finish(&self, number: u64) {
        if let Some(info) = lock(&self.inner.table).get_mut(number) {
            info.finished = true;
        }
        // A reader waiting at the end of this segment can move on.
        self.inner.notify_ready();
    }

    /// Displaces the oldest segments while the log would exceed `max_bytes`.
    fn enforce_cap(&mut self, incoming: u64) {
        let inner = Arc::clone(&self.inner);
        loop {
            let (total, oldest, count) = {
                let table = lock(&inner.table);
                (
                    table.total_bytes,
                    table
                        .segments
                        .front()
                        .map(|info| (info.number, info.finished)),
                    table.segments.len(),
                )
            };
            if total + incoming <= inner.options.max_bytes {
                return;
            }
            match oldest {
                None => return,
                Some((number, false)) => {
                    // The oldest is the one being written: finish it so it can go.
                    if count > 1 {
                        return;
                    }
                    self.active = None;
                    self.finish(number);
                }
                Some((number, true)) => {
                    inner.displace(number);
                }
            }
        }
    }

    /// A batch is durable (and readable since `write`): wake waiters and readers.
    fn published(&mut self, batch: &Batch) {
        let inner = &self.inner;
        if self.failing_since.take().is_some() {
            log::info!(
                "Durable log: writing to {} works again",
                inner.dir.display()
            );
        }
        lock(&inner.append).failure = None;
        let callbacks = {
            let mut status = lock(&inner.sync);
            status.synced_upto = status.synced_upto.max(batch.end_id);
            let synced = status.synced_upto;
            let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut status.callbacks)
                .into_iter()
                .partition(|(end, _, _)| *end <= synced);
            status.callbacks = waiting;
            done
        };
        inner.sync_changed.notify_all();
        for (_, _, callback) in callbacks {
            callback(Ok(()));
        }
        if batch.values > 0 {
            inner.notify_ready();
        }
    }

    fn failed(&mut self, error: &std::io::Error) {
        let inner = &self.inner;
        let reason = error.to_string();
        let storage_full = is_storage_full(error);
        Counters::add(&inner.counters.sync_failures, 1);
        lock(&inner.append).failure = Some(DiskFailure {
            reason: reason.clone(),
            storage_full,
        });
        let callbacks = {
            let mut status = lock(&inner.sync);
            status.last_failure = Some(reason.clone());
            Counters::add(&inner.failures, 1);
            std::mem::take(&mut status.callbacks)
        };
        inner.sync_changed.notify_all();
        for (_, _, callback) in callbacks {
            callback(Err(SyncError::Failed {
                reason: reason.clone(),
            }));
        }
        let now = Instant::now();
        let first = self.failing_since.is_none();
        let due = self
            .last_failure_log
            .is_none_or(|last| now.duration_since(last) >= FAILURE_LOG_INTERVAL);
        if first || due {
            self.last_failure_log = Some(now);
            log::error!(
                "Durable log: cannot write to {}: {reason}. Appends are refused{} until a \
                 sync succeeds; unsynced values are kept in memory and tried again every {:?}",
                inner.dir.display(),
                if storage_full { " (disk full)" } else { "" },
                inner.options.sync_interval
            );
        }
        self.failing_since.get_or_insert(now);
    }

    fn give_up_unsynced(&mut self) {
        let mut lost = self.retry.take().map_or(0, |batch| batch.values);
        {
            let mut state = lock(&self.inner.append);
            lost += std::mem::take(&mut state.pending_values);
            state.pending.clear();
        }
        if lost > 0 {
            Counters::sub(&self.inner.counters.pending, lost);
            Counters::add(&self.inner.counters.lost_unsynced, lost);
            log::error!(
                "Durable log: closing with {lost} value(s) that could not be synced to {}; \
                 they are lost",
                self.inner.dir.display()
            );
        }
    }

    /// Deletes the oldest segments while every value in them is settled.
    fn delete_settled_segments(&self) {
        let inner = &self.inner;
        let floor = lock(&inner.ledger).settled.floor();
        loop {
            let removed = {
                let mut table = lock(&inner.table);
                match table.segments.front() {
                    Some(info) if info.finished && info.end_id <= floor => {
                        let info = table.segments.pop_front();
                        if let Some(info) = &info {
                            table.total_bytes = table.total_bytes.saturating_sub(info.file_len);
                        }
                        info
                    }
                    _ => None,
                }
            };
            let Some(info) = removed else {
                return;
            };
            let path = inner.segment_path(info.number);
            match inner.fs.remove(&path) {
                Ok(()) => log::debug!("Durable log: deleted settled segment {}", path.display()),
                Err(error) => log::warn!(
                    "Durable log: cannot delete the settled segment {}: {error}",
                    path.display()
                ),
            }
        }
    }
}
