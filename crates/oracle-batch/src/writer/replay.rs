//! Replay of pending backup files by the writer: thread 0 opens the oldest file once the
//! database is reachable and writes one chunk of it after each live batch, so the backlog and
//! live data both keep moving. (Reading a file is `crate::replay`.)

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rolling_metrics::Outcome;

use crate::sink::SinkError;

use super::worker::{panic_message, Worker};

impl Worker {
    /// Whether this thread has backup rows to replay now; opens the next pending file when
    /// one may be waiting.
    pub(super) fn wants_replay(&mut self) -> bool {
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
                    let bad = match replay.bad_lines().len() {
                        0 => String::new(),
                        n => format!(", and {n} lines that do not read back, for quarantine"),
                    };
                    log::info!(
                        "Replaying backup file {} ({} rows{bad})",
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
                        "Cannot read {}: {error}. It stays in the backup directory for an \
                         operator (replay_backup replays it once readable); the next files go on",
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

    /// Replays one chunk of the file being replayed; finishes the file (quarantine of its bad
    /// lines, move to `replayed/`) when all its good rows are stored. A database error pauses
    /// the replay (the writer goes offline); the file stays pending and is replayed again
    /// later, which is safe.
    pub(super) fn replay_step(&mut self) {
        let shared = Arc::clone(&self.shared);
        let Some(replay) = self.replay.as_mut() else {
            return;
        };
        if !replay.is_done() {
            let chunk = replay.next_chunk(shared.config.batch_size_max).to_vec();
            let started = shared.now();
            let sink = &mut self.sink;
            let result = catch_unwind(AssertUnwindSafe(|| sink.write_batch(&chunk)))
                .unwrap_or_else(|panic| {
                    Err(SinkError::transient(format!(
                        "the sink panicked: {}",
                        panic_message(panic.as_ref())
                    )))
                });
            let latency = shared.now().saturating_sub(started);
            let report = match result {
                Ok(report) => report,
                Err(error) => {
                    shared
                        .metrics
                        .record(chunk.len(), latency, Outcome::Failure);
                    log::warn!("Replay of {} paused: {error}", replay.path().display());
                    shared.go_offline(&error);
                    return;
                }
            };
            shared
                .metrics
                .record(chunk.len(), latency, Outcome::Success);
            let conflicts = super::conflicts::conflict_rows(&chunk, &report);
            if !conflicts.is_empty() {
                match shared
                    .backup
                    .write_conflicts(&conflicts, shared.clock.utc().naive_utc())
                {
                    Ok(path) => {
                        shared
                            .counters
                            .replayed_conflicts
                            .fetch_add(conflicts.len() as u64, Ordering::SeqCst);
                        shared
                            .conflict_log
                            .saved(&shared, &conflicts, &path, Some(replay.path()));
                    }
                    Err(error) => {
                        log::error!("Replay paused: cannot save conflicting rows: {error}");
                        return;
                    }
                }
            }
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
        }
        if replay.is_done() {
            self.finish_replay();
        }
    }

    /// Quarantines the bad lines of the replayed file and moves it to `replayed/`. If that
    /// fails the file stays pending, skipped until the next start, so the files behind it go
    /// on.
    fn finish_replay(&mut self) {
        let shared = Arc::clone(&self.shared);
        let Some(mut replay) = self.replay.take() else {
            return;
        };
        let path = replay.path().to_owned();
        let finished = replay.finish(&shared.backup);
        match finished {
            Ok(moved) => {
                let tally = replay.tally();
                let counters = &shared.counters;
                counters.replayed_files.fetch_add(1, Ordering::SeqCst);
                counters
                    .replayed_rows
                    .fetch_add(tally.rows as u64, Ordering::SeqCst);
                counters
                    .quarantined_lines
                    .fetch_add(tally.quarantined as u64, Ordering::SeqCst);
                let quarantined = if tally.quarantined > 0 {
                    format!("; {} bad lines quarantined", tally.quarantined)
                } else {
                    String::new()
                };
                let conflicting = match tally.conflicts {
                    0 => String::new(),
                    n => format!("; {n} conflicting (kept in conflicts_*.csv)"),
                };
                log::info!(
                    "Replayed {}: {} rows ({} written, {} already stored, {} rejected)\
                     {conflicting}{quarantined}; moved to {}",
                    path.display(),
                    tally.rows,
                    tally.written,
                    tally.duplicates,
                    tally.rejected,
                    moved.display()
                );
            }
            Err(error) => {
                log::error!(
                    "Replayed the rows of {} but cannot complete it: {error}. It stays in the \
                     backup directory and is skipped until the next start (replaying it again \
                     is safe)",
                    path.display()
                );
                self.unreadable.insert(path);
            }
        }
        // Last: whoever sees no file being replayed also sees its counts.
        *shared
            .replaying
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}
