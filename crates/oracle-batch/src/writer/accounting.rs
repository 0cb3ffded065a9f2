//! Where every drained value went: lifetime counters, read race-free by the API.

use std::sync::atomic::{AtomicU64, Ordering};

/// Lifetime counts of where every drained value went.
///
/// The accounting identity: values accepted by the buffer =
/// `written + duplicates + conflicts + rejected + backed_up + spilled + unsaved + in_flight` +
/// the buffer's overflow count + what the buffer still holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Rows inserted.
    pub written: u64,
    /// Rows the database already had (same primary key, same value and quality): stored.
    pub duplicates: u64,
    /// Rows not stored because their primary key is stored with another value or quality;
    /// saved in conflicts files with the stored value they lost to.
    pub conflicts: u64,
    /// Rows the database refused, saved in rejected files.
    pub rejected: u64,
    /// Rows saved in backup files: batches that failed through their retries, or came while
    /// offline or at the shutdown deadline.
    pub backed_up: u64,
    /// Values moved from the buffer to backup files while a batch waited for its retry (the
    /// buffer was past the spill mark); replayed from there like any backup.
    pub spilled: u64,
    /// Rows drained but not yet settled (being written, or held after a backup failure).
    pub in_flight: u64,
    /// Rows that neither the database nor any backup directory took by the end of shutdown.
    /// Zero unless the disk and the database failed together; logged loudly.
    pub unsaved: u64,
    /// Batches that failed as a whole, counting every attempt.
    pub failed_attempts: u64,
    /// Backup or rejected files that could not be written.
    pub backup_failures: u64,
}

impl WriterStats {
    /// Every value the writer has taken from the buffer, wherever it went.
    pub fn drained(&self) -> u64 {
        self.written
            + self.duplicates
            + self.conflicts
            + self.rejected
            + self.backed_up
            + self.spilled
            + self.in_flight
            + self.unsaved
    }
}

/// The live counts behind [`WriterStats`], plus the offline and replay counts of
/// [`super::WriterMode`].
#[derive(Default)]
pub(super) struct Counters {
    pub(super) written: AtomicU64,
    pub(super) duplicates: AtomicU64,
    pub(super) conflicts: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) backed_up: AtomicU64,
    pub(super) spilled: AtomicU64,
    pub(super) in_flight: AtomicU64,
    pub(super) unsaved: AtomicU64,
    pub(super) failed_attempts: AtomicU64,
    pub(super) backup_failures: AtomicU64,
    pub(super) probes: AtomicU64,
    pub(super) replayed_files: AtomicU64,
    pub(super) replayed_rows: AtomicU64,
    pub(super) quarantined_lines: AtomicU64,
    /// Rows of backup files that conflicted when replayed (already counted as backed up).
    pub(super) replayed_conflicts: AtomicU64,
}

impl Counters {
    pub(super) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Moves `n` rows out of `in_flight` into `counter` in one step as seen by readers that
    /// add `counter` first: readers may briefly count them twice, never zero times.
    pub(super) fn settle(&self, counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::SeqCst);
        self.in_flight.fetch_sub(n as u64, Ordering::SeqCst);
    }

    pub(super) fn snapshot(&self) -> WriterStats {
        let get = |c: &AtomicU64| c.load(Ordering::SeqCst);
        WriterStats {
            written: get(&self.written),
            duplicates: get(&self.duplicates),
            conflicts: get(&self.conflicts),
            rejected: get(&self.rejected),
            backed_up: get(&self.backed_up),
            spilled: get(&self.spilled),
            unsaved: get(&self.unsaved),
            in_flight: get(&self.in_flight),
            failed_attempts: get(&self.failed_attempts),
            backup_failures: get(&self.backup_failures),
        }
    }
}
