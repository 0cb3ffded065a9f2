//! Spilling: while a batch waits for its next retry, the thread that owns it drains nothing,
//! so with the spec's delays (1 s, 2 s, 4 s) seven seconds of input must fit in the buffer.
//! The spill thread keeps that from displacing anything: while any batch is in its retry
//! window (from its first failure until it is written or backed up), it watches the buffer
//! and, once the buffer is past the high-water mark (`spill_pct`), moves the oldest values
//! to the same fsynced backup spool that offline mode uses, down to a little below the mark.
//! When the window closes with the database back, the spool is sealed and replayed like any
//! other backup file. An outage that fits below the mark spills nothing.
//!
//! If the backup directory refuses a spill, the values go back into the buffer (newest end)
//! and spilling pauses on a backoff; only then can the full buffer displace its oldest
//! values, counted as overflow.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringbuf_core::{RingBuffer, Wait};
use tag_model::TagValue;

use super::accounting::Counters;
use super::offline::last_resort_save;
use super::Shared;

/// How long the spill thread waits on the buffer before looking at the window again.
const POLL: Duration = Duration::from_millis(100);
/// Most values moved in one append (one fsync): about 4 MB of CSV.
const MAX_CHUNK: usize = 50_000;
/// After a failed spill, the first pause before trying the disk again; doubles to the cap.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// Whether some batch is in its retry window; the spill thread sleeps while none is.
#[derive(Default)]
pub(super) struct SpillWindow {
    state: Mutex<WindowState>,
    changed: Condvar,
}

#[derive(Default)]
struct WindowState {
    /// Batches now in their retry window (one per writer thread at most).
    retrying: usize,
    /// The writer is stopping: the spill thread ends.
    exit: bool,
}

/// Keeps the window open while it lives; a batch holds one from its first failure until it
/// is settled.
pub(super) struct RetryWindow<'a>(&'a SpillWindow);

impl Drop for RetryWindow<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.retrying = state.retrying.saturating_sub(1);
        self.0.changed.notify_all();
    }
}

impl SpillWindow {
    fn lock(&self) -> MutexGuard<'_, WindowState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens the window for one batch until the guard is dropped.
    pub(super) fn open(&self) -> RetryWindow<'_> {
        self.lock().retrying += 1;
        self.changed.notify_all();
        RetryWindow(self)
    }

    fn is_open(&self) -> bool {
        self.lock().retrying > 0
    }

    /// Blocks until the window opens (true) or the writer stops (false).
    fn wait_open(&self) -> bool {
        let state = self.lock();
        let state = self
            .changed
            .wait_while(state, |s| s.retrying == 0 && !s.exit)
            .unwrap_or_else(PoisonError::into_inner);
        !state.exit
    }

    /// Sleeps up to `duration`, less if the window changes or the writer stops.
    fn sleep(&self, duration: Duration) {
        let state = self.lock();
        if !state.exit {
            let _ = self
                .changed
                .wait_timeout(state, duration)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Ends the spill thread.
    pub(super) fn exit(&self) {
        self.lock().exit = true;
        self.changed.notify_all();
    }
}

/// Buffer levels, in values: spill from `mark`, down to `low`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Levels {
    pub(super) mark: usize,
    pub(super) low: usize,
}

impl Levels {
    /// The mark is `pct` % of the capacity (at least 1); each spill goes a tenth of the
    /// capacity (at least one batch) below it, so that it is one fsync per many values.
    pub(super) fn new(capacity: usize, pct: u8, batch_size_max: usize) -> Self {
        let mark = (capacity as u128 * u128::from(pct)).div_ceil(100) as usize;
        let mark = mark.clamp(1, capacity.max(1));
        let margin = (capacity / 10).max(batch_size_max);
        Levels {
            mark,
            low: mark.saturating_sub(margin),
        }
    }
}

/// What a buffer overflow means with this writer draining the buffer, for the warning.
pub(super) fn overflow_note(spill_pct: u8) -> &'static str {
    if spill_pct >= 100 {
        "Spilling to CSV backup during retries is off: while a batch waits for its retry, new \
         values wait in the buffer"
    } else {
        "While a batch waits for its retry, and while the database is offline, values go to \
         CSV backup instead, so this means the backup directory failed or is full too, or \
         values arrive faster than the database and the disk take them"
    }
}

/// Starts the spill thread, unless spilling is off (`spill_pct` 100) or the writer drains a
/// durable log (whose byte cap holds any retry: nothing to spill).
pub(super) fn spawn(shared: &Arc<Shared>) -> std::io::Result<Option<JoinHandle<()>>> {
    let Some(buffer) = shared.intake.ring().cloned() else {
        return Ok(None);
    };
    if shared.config.spill_pct >= 100 {
        return Ok(None);
    }
    let levels = Levels::new(
        buffer.capacity(),
        shared.config.spill_pct,
        shared.config.batch_size_max,
    );
    let spiller = Spiller {
        shared: Arc::clone(shared),
        buffer,
        levels,
        spilled_in_window: 0,
        pause: None,
        pause_for: FIRST_PAUSE,
    };
    std::thread::Builder::new()
        .name(format!("{}-spill", shared.kind.to_lowercase()))
        .spawn(move || spiller.run())
        .map(Some)
}

struct Spiller {
    shared: Arc<Shared>,
    buffer: Arc<RingBuffer<TagValue>>,
    levels: Levels,
    /// Values spilled since the window opened, for the closing log line.
    spilled_in_window: u64,
    /// After a failed spill: no new try before this.
    pause: Option<Instant>,
    pause_for: Duration,
}

impl Spiller {
    fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        let window = &shared.spill;
        loop {
            if !window.is_open() {
                self.window_closed();
                if !window.wait_open() {
                    break;
                }
            }
            if let Some(until) = self.pause {
                match until.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => {
                        window.sleep(left.min(POLL));
                        continue;
                    }
                    _ => self.pause = None,
                }
            }
            match self.buffer.wait_for(self.levels.mark, POLL) {
                Wait::Ready if window.is_open() => self.spill_once(),
                Wait::Closed => window.sleep(POLL),
                _ => {}
            }
        }
        self.window_closed();
    }

    /// Moves the oldest values above the low level to the backup spool.
    fn spill_once(&mut self) {
        let shared = &self.shared;
        let len = self.buffer.len();
        if len < self.levels.mark {
            return;
        }
        let mut chunk = Vec::new();
        let drained = self
            .buffer
            .drain_into(&mut chunk, (len - self.levels.low).min(MAX_CHUNK));
        if drained == 0 {
            return;
        }
        Counters::add(&shared.counters.in_flight, drained);
        match shared
            .backup
            .append_batch(&chunk, shared.clock.utc().naive_utc())
        {
            Ok(path) => {
                shared.counters.settle(&shared.counters.spilled, drained);
                let level = if self.spilled_in_window == 0 {
                    log::Level::Warn
                } else {
                    log::Level::Debug
                };
                log::log!(
                    level,
                    "A batch is waiting for its retry and the buffer is past {} of {} values: \
                     moved the oldest {drained} to {} (more follow while the retry lasts), so \
                     that none is displaced",
                    self.levels.mark,
                    self.buffer.capacity(),
                    path.display()
                );
                self.spilled_in_window += drained as u64;
                self.pause_for = FIRST_PAUSE;
            }
            Err(error) => {
                Counters::add(&shared.counters.backup_failures, 1);
                log::error!(
                    "CSV backup failed while spilling {drained} values during a retry: {error}. \
                     They go back into the buffer; if it fills up, its oldest values are \
                     displaced and counted as overflow. Trying the disk again in {:.0} s",
                    self.pause_for.as_secs_f64()
                );
                match self.buffer.push_batch(chunk) {
                    Ok(_) => {
                        shared
                            .counters
                            .in_flight
                            .fetch_sub(drained as u64, std::sync::atomic::Ordering::SeqCst);
                    }
                    // Shutdown closed the buffer meanwhile: save them the last way there is.
                    Err(closed) => last_resort_save(shared, &closed.into_inner()),
                }
                self.pause = Some(Instant::now() + self.pause_for);
                self.pause_for = (self.pause_for * 2).min(MAX_PAUSE);
            }
        }
    }

    /// The retry window closed: if the database took the batch, the spool is sealed so that
    /// the spilled values are replayed now; if the writer went offline, offline mode goes on
    /// appending to the same spool.
    fn window_closed(&mut self) {
        if self.spilled_in_window == 0 {
            return;
        }
        let shared = &self.shared;
        let online = shared.is_online();
        log::info!(
            "The retry is over: {} values were spilled to CSV backup meanwhile{}",
            self.spilled_in_window,
            if online {
                "; they are replayed from there now"
            } else {
                "; the writer is offline, so later values follow them there"
            }
        );
        self.spilled_in_window = 0;
        if online {
            match shared.backup.seal() {
                Ok(_) => shared.request_replay(),
                Err(error) => log::error!("Cannot complete the backup file: {error}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_a_share_of_the_capacity_with_a_margin() {
        assert_eq!(
            Levels::new(100_000, 80, 500),
            Levels {
                mark: 80_000,
                low: 70_000
            }
        );
        assert_eq!(
            Levels::new(5_000, 80, 500),
            Levels {
                mark: 4_000,
                low: 3_500
            }
        );
        // A batch larger than a tenth of the buffer sets the margin.
        assert_eq!(
            Levels::new(1_000, 80, 300),
            Levels {
                mark: 800,
                low: 500
            }
        );
        // Rounded up, never zero, never above the capacity.
        assert_eq!(Levels::new(3, 1, 1), Levels { mark: 1, low: 0 });
        assert_eq!(Levels::new(10, 99, 1), Levels { mark: 10, low: 9 });
    }

    #[test]
    fn the_window_counts_open_retries() {
        let window = SpillWindow::default();
        assert!(!window.is_open());
        let first = window.open();
        let second = window.open();
        drop(first);
        assert!(window.is_open());
        drop(second);
        assert!(!window.is_open());
        window.exit();
        assert!(!window.wait_open(), "exit ends the wait");
    }
}
