//! Conflicting duplicates: rows the database did not store because their key holds another
//! value or quality. Each batch's go to a `conflicts_*.csv` file (counted as `conflicts` once
//! it is written; held and tried again like rejected rows if the disk refuses), and are logged
//! at warn at most once a minute, with a count of those not logged.

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use csv_backup::ConflictRow;
use tag_model::TagValue;

use crate::sink::WriteReport;

use super::accounting::Counters;
use super::worker::Worker;
use super::Shared;

/// At most one conflict log line per this long.
pub(super) const CONFLICT_LOG_EVERY: Duration = Duration::from_secs(60);

/// The rate limit of the conflict log line.
#[derive(Default)]
pub(super) struct ConflictLog {
    state: Mutex<ConflictLogState>,
}

#[derive(Default)]
struct ConflictLogState {
    /// Monotonic time of the last line.
    logged_at: Option<Duration>,
    /// Conflicting rows since then, not logged.
    rows_since: u64,
    /// When the last conflict was saved (for health).
    last: Option<DateTime<Utc>>,
}

impl ConflictLog {
    /// Notes `rows` saved to `path`; logs them unless a line was logged less than a minute
    /// ago. `replaying` names the backup file they came from.
    pub(super) fn saved(
        &self,
        shared: &Shared,
        rows: &[ConflictRow],
        path: &Path,
        replaying: Option<&Path>,
    ) {
        let now = shared.now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.last = Some(shared.clock.utc());
        let due = state
            .logged_at
            .is_none_or(|at| now.saturating_sub(at) >= CONFLICT_LOG_EVERY);
        if !due {
            state.rows_since += rows.len() as u64;
            return;
        }
        let earlier = match state.rows_since {
            0 => String::new(),
            rows => format!(" ({rows} more conflicting rows since the last such message)"),
        };
        state.logged_at = Some(now);
        state.rows_since = 0;
        drop(state);
        let source = replaying
            .map(|file| format!(" replayed from {}", file.display()))
            .unwrap_or_default();
        let first = rows.first().map(describe).unwrap_or_default();
        log::warn!(
            "Conflicting duplicates: {} rows{source} not stored because the database holds \
             another value or quality for their key (plc_code, tag_address, timestamp); kept \
             in {}. First: {first}{earlier}",
            rows.len(),
            path.display(),
        );
    }

    /// When the last conflicting row was saved.
    pub(super) fn last(&self) -> Option<DateTime<Utc>> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last
    }
}

/// `PLC01 D100 at 2025-11-02T14:30:45.000000: offered 2 GOOD, stored 1 GOOD`.
fn describe(row: &ConflictRow) -> String {
    let reading = |value: &TagValue| {
        let number = value
            .value()
            .map_or_else(|| "no value".to_owned(), |v| v.to_string());
        format!("{number} {}", value.quality().as_str())
    };
    let stored = row
        .stored
        .as_ref()
        .map_or_else(|| "no row any more".to_owned(), reading);
    format!(
        "{} {} at {}: offered {}, stored {stored}",
        row.value.plc_code(),
        row.value.tag_address(),
        tag_model::format_timestamp(row.value.timestamp()),
        reading(&row.value)
    )
}

/// The conflicting rows of a written `batch`, for a conflicts file.
pub(crate) fn conflict_rows(batch: &[TagValue], report: &WriteReport) -> Vec<ConflictRow> {
    report
        .conflicts
        .iter()
        .filter_map(|conflict| {
            batch.get(conflict.index).map(|value| ConflictRow {
                value: value.clone(),
                stored: conflict.stored.clone(),
            })
        })
        .collect()
}

impl Worker {
    /// Saves conflicting rows of a live batch to a conflicts file and settles them; keeps
    /// them in memory to try again if the file cannot be written.
    pub(super) fn save_conflicts(&mut self, rows: Vec<ConflictRow>) {
        if rows.is_empty() {
            return;
        }
        let shared = &self.shared;
        match shared
            .backup
            .write_conflicts(&rows, shared.clock.utc().naive_utc())
        {
            Ok(path) => {
                shared
                    .counters
                    .settle(&shared.counters.conflicts, rows.len());
                shared.conflict_log.saved(shared, &rows, &path, None);
            }
            Err(error) => {
                Counters::add(&shared.counters.backup_failures, 1);
                log::error!(
                    "Cannot save {} conflicting rows, keeping them in memory and retrying: {error}",
                    rows.len()
                );
                self.held_conflicts.extend(rows);
            }
        }
    }

    pub(super) fn retry_held_conflicts(&mut self) {
        if !self.held_conflicts.is_empty() {
            let rows = std::mem::take(&mut self.held_conflicts);
            self.save_conflicts(rows);
        }
    }
}
