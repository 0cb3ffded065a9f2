//! Replaying backup files into a sink: the writer does it chunk by chunk between live
//! batches; `replay_backup` does it file by file.

use std::path::{Path, PathBuf};

use csv_backup::{read_backup_lenient, BackupError, BackupWriter, BadLine, RejectedRow};
use tag_model::TagValue;

use crate::sink::{Sink, SinkError, WriteReport};

/// What the replay of one file did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayTally {
    /// Rows in the file.
    pub rows: usize,
    /// Rows inserted.
    pub written: usize,
    /// Rows the database already had (a partly replayed file replayed again, say).
    pub duplicates: usize,
    /// Rows not stored because their key holds another value or quality (saved to a
    /// conflicts file, with the stored value).
    pub conflicts: usize,
    /// Rows the database refused (saved to a rejected file).
    pub rejected: usize,
    /// Lines that could not be read back (torn, damaged), moved to a quarantine file.
    pub quarantined: usize,
}

impl ReplayTally {
    /// Adds another tally.
    pub fn add(&mut self, other: ReplayTally) {
        self.rows += other.rows;
        self.written += other.written;
        self.duplicates += other.duplicates;
        self.conflicts += other.conflicts;
        self.rejected += other.rejected;
        self.quarantined += other.quarantined;
    }
}

/// One backup file being replayed: its rows, its bad lines, and how far the replay got.
#[derive(Debug)]
pub struct Replay {
    path: PathBuf,
    rows: Vec<TagValue>,
    /// Lines that do not read back, for the quarantine file; with the header to put above.
    bad_lines: Vec<BadLine>,
    header: Vec<u8>,
    cursor: usize,
    tally: ReplayTally,
}

/// At most this many bad lines of one file are logged one by one; the rest are counted.
const BAD_LINES_LOGGED: usize = 20;

impl Replay {
    /// Reads the file, setting its bad lines aside; only I/O is an error.
    pub fn open(path: &Path) -> Result<Self, BackupError> {
        let contents = read_backup_lenient(path)?;
        Ok(Replay {
            path: path.to_owned(),
            tally: ReplayTally {
                rows: contents.values.len(),
                ..ReplayTally::default()
            },
            rows: contents.values,
            bad_lines: contents.bad_lines,
            header: contents.header,
            cursor: 0,
        })
    }

    /// Lines of the file that do not read back.
    pub fn bad_lines(&self) -> &[BadLine] {
        &self.bad_lines
    }

    /// Once every row is stored: saves the bad lines (if any) to a quarantine file, logging
    /// each with the file name and line number, then moves the file to `replayed/`. Returns
    /// the file's new path. On an error the file stays pending (the caller should not retry
    /// it in a loop); nothing has been moved.
    pub fn finish(&mut self, backup: &BackupWriter) -> Result<PathBuf, BackupError> {
        if !self.bad_lines.is_empty() {
            let quarantine = backup.write_quarantine(&self.path, &self.header, &self.bad_lines)?;
            let name = self.path.display();
            for bad in self.bad_lines.iter().take(BAD_LINES_LOGGED) {
                log::warn!(
                    "{name} line {}: {}; moved to quarantine",
                    bad.line,
                    bad.reason
                );
            }
            if self.bad_lines.len() > BAD_LINES_LOGGED {
                log::warn!(
                    "{name}: {} more bad lines moved to quarantine",
                    self.bad_lines.len() - BAD_LINES_LOGGED
                );
            }
            log::warn!(
                "{} lines of {name} could not be read back; they are in {} for an operator to \
                 mend (then rename it to backup_*.csv to replay it)",
                self.bad_lines.len(),
                quarantine.display()
            );
            self.tally.quarantined = self.bad_lines.len();
        }
        backup.mark_replayed(&self.path)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Up to `max` rows not yet stored.
    pub fn next_chunk(&self, max: usize) -> &[TagValue] {
        let end = (self.cursor + max).min(self.rows.len());
        &self.rows[self.cursor..end]
    }

    /// Records that the first `rows` rows of the last chunk were settled as `report` says.
    pub fn advance(&mut self, rows: usize, report: &WriteReport) {
        self.cursor = (self.cursor + rows).min(self.rows.len());
        self.tally.written += report.written;
        self.tally.duplicates += report.duplicates;
        self.tally.conflicts += report.conflicts.len();
        self.tally.rejected += report.rejected.len();
    }

    /// Whether every row is stored (or rejected).
    pub fn is_done(&self) -> bool {
        self.cursor >= self.rows.len()
    }

    /// The counts so far.
    pub fn tally(&self) -> ReplayTally {
        self.tally
    }
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The file could not be read or moved.
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// The database failed; the file stays pending and can be replayed again safely.
    #[error("{0}")]
    Sink(#[from] SinkError),
}

/// Rows the database refused while `chunk` was replayed, ready for a rejected file.
pub(crate) fn rejected_rows(chunk: &[TagValue], report: &WriteReport) -> Vec<RejectedRow> {
    report
        .rejected
        .iter()
        .filter_map(|rejection| {
            chunk.get(rejection.index).map(|value| RejectedRow {
                value: value.clone(),
                error: rejection.reason.clone(),
            })
        })
        .collect()
}

/// Replays one backup file into `sink` in chunks of `chunk_rows`, saves refused rows to a
/// rejected file, rows whose key is stored with another value or quality to a conflicts file,
/// and lines that do not read back (torn, damaged) to a quarantine file, and moves the file
/// to `replayed/` when every good row is stored. `progress` is called with the rows done
/// after each chunk. On a database error the file stays where it is; replaying it again is
/// safe, as writes are idempotent.
pub fn replay_file(
    sink: &mut dyn Sink,
    backup: &BackupWriter,
    path: &Path,
    chunk_rows: usize,
    mut progress: impl FnMut(usize),
) -> Result<ReplayTally, ReplayError> {
    let mut replay = Replay::open(path)?;
    let mut done = 0;
    while !replay.is_done() {
        let chunk = replay.next_chunk(chunk_rows.max(1)).to_vec();
        let report = sink.write_batch(&chunk)?;
        let conflicts = crate::writer::conflict_rows(&chunk, &report);
        if !conflicts.is_empty() {
            backup.write_conflicts(&conflicts, chrono::Utc::now().naive_utc())?;
        }
        let rejected = rejected_rows(&chunk, &report);
        if !rejected.is_empty() {
            backup.write_rejected(&rejected, chrono::Utc::now().naive_utc())?;
        }
        replay.advance(chunk.len(), &report);
        done += chunk.len();
        progress(done);
    }
    replay.finish(backup)?;
    Ok(replay.tally())
}
