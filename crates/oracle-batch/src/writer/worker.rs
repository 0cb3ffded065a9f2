//! One writer thread's loop: wait for a batch (threshold or interval), drain it, write it,
//! and settle every row: written, already stored, rejected, backed up or held.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use csv_backup::{ConflictRow, RejectedRow};
use durable_log::Claim;
use ringbuf_core::Wait;
use tag_model::TagValue;

use crate::sink::{Sink, SinkError, WriteReport};

use super::accounting::Counters;
use super::offline::last_resort_save;
use super::retry::HeldBackoff;
use super::Shared;

/// One writer thread with its sink.
pub(super) struct Worker {
    pub(super) shared: Arc<Shared>,
    pub(super) sink: Box<dyn Sink>,
    /// A batch that neither the database nor the backup took; tried again before new data.
    pub(super) held: Vec<TagValue>,
    /// Rejected rows whose rejected file could not be written.
    pub(super) held_rejected: Vec<RejectedRow>,
    /// Conflicting rows whose conflicts file could not be written.
    pub(super) held_conflicts: Vec<ConflictRow>,
    /// The last batch failed: log the next success at info, as the quickstart shows.
    pub(super) recovering: bool,
    /// This thread replays backup files (one thread does, so files replay in order).
    pub(super) replayer: bool,
    /// The file being replayed.
    pub(super) replay: Option<crate::replay::Replay>,
    /// Backup files that cannot be read: left for an operator, not retried in a loop.
    pub(super) unreadable: HashSet<PathBuf>,
    /// Durable log claims of batches drained by this thread and not yet settled everywhere:
    /// given back to the log once nothing of theirs is held any more.
    pub(super) claims: Vec<Claim>,
}

impl Worker {
    pub(super) fn new(shared: Arc<Shared>, sink: Box<dyn Sink>, replayer: bool) -> Self {
        Worker {
            shared,
            sink,
            held: Vec::new(),
            held_rejected: Vec::new(),
            held_conflicts: Vec::new(),
            recovering: false,
            replayer,
            replay: None,
            unreadable: HashSet::new(),
            claims: Vec::new(),
        }
    }

    pub(super) fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        let mut batch = Vec::with_capacity(config.batch_size_max);
        let mut held_backoff = HeldBackoff::new(config);
        loop {
            self.retry_held_rejected();
            self.retry_held_conflicts();
            if !self.held.is_empty() {
                self.settle_held(&mut held_backoff);
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
            let wait = shared.intake.wait_for(config.batch_threshold, wait_time);
            if shared.intake.log().is_some() && shared.past_deadline() {
                // Shutting down: what is still in the durable log stays there, safe, and is
                // written at the next start (no point copying it into backup files).
                break;
            }
            batch.clear();
            let (drained, claim) = shared.intake.drain_into(&mut batch, config.batch_size_max);
            self.claims.extend(claim);
            if drained > 0 {
                Counters::add(&shared.counters.in_flight, drained);
                if shared.past_deadline() || !shared.is_online() {
                    self.save_to_backup(&mut batch);
                } else {
                    self.write_with_retries(&mut batch);
                }
            }
            self.settle_claims();
            if replaying {
                self.replay_step();
            }
            if wait != Wait::Ready && shared.intake.is_closed() && shared.intake.is_empty() {
                break;
            }
        }
        self.retry_held_rejected();
        self.retry_held_conflicts();
        // Only batches that are settled everywhere leave the durable log; the rest (neither
        // the database nor the disk took them) are written again at the next start.
        self.settle_claims();
        // Rows whose file the disk still refuses: saved as backup (a conflict comes back as
        // one when that file is replayed).
        let values: Vec<TagValue> = std::mem::take(&mut self.held_rejected)
            .into_iter()
            .map(|row| row.value)
            .chain(
                std::mem::take(&mut self.held_conflicts)
                    .into_iter()
                    .map(|row| row.value),
            )
            .collect();
        last_resort_save(&shared, &values);
    }

    /// Gives this thread's durable log claims back once nothing drained is held: every value
    /// of theirs is written, already stored, rejected, in a conflicts file or backed up.
    pub(super) fn settle_claims(&mut self) {
        if self.held.is_empty() && self.held_rejected.is_empty() && self.held_conflicts.is_empty() {
            for claim in self.claims.drain(..) {
                self.shared.intake.settle(claim);
            }
        }
    }

    /// One call to the sink; a panicking sink counts as a failed write, not a lost batch.
    pub(super) fn write_once(&mut self, batch: &[TagValue]) -> Result<WriteReport, SinkError> {
        let sink = &mut self.sink;
        match catch_unwind(AssertUnwindSafe(|| sink.write_batch(batch))) {
            Ok(Ok(report)) if report.accounts_for(batch.len()) => Ok(report),
            Ok(Ok(report)) => Err(SinkError::setup(format!(
                "the sink reported {} written, {} duplicates, {} conflicts and {} rejected for \
                 a batch of {}: a bug in the sink",
                report.written,
                report.duplicates,
                report.conflicts.len(),
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

    pub(super) fn settle_report(
        &mut self,
        batch: &[TagValue],
        report: WriteReport,
        latency: Duration,
    ) {
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
            report.rejected.len() + report.conflicts.len()
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
        let conflicts = super::conflicts::conflict_rows(batch, &report);
        self.save_conflicts(conflicts);
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

    pub(super) fn save_rejected(&mut self, rows: Vec<RejectedRow>) {
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

    pub(super) fn retry_held_rejected(&mut self) {
        if !self.held_rejected.is_empty() {
            let rows = std::mem::take(&mut self.held_rejected);
            self.save_rejected(rows);
        }
    }
}

pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_extracted() {
        let panic = catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
        assert_eq!(panic_message(panic.as_ref()), "boom 1");
        let panic = catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(panic_message(panic.as_ref()), "unknown panic");
    }
}
