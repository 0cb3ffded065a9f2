//! Settings, errors and reports.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::segment::segment_name;

/// How the log syncs, how large it may grow, how it splits values into records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// Group commit: one fsync covers everything appended since the previous one, and the
    /// log syncs at most this often (default 100 ms). Appended values are at risk for at most
    /// this long, and [`wait_synced`](crate::DurableLog::wait_synced) waits at most about this
    /// long when the disk is healthy.
    pub sync_interval: Duration,
    /// The most bytes of segment files on disk (default 1 GiB). Past it the oldest segment
    /// is displaced: its values not yet handed out are dropped and counted as overflow.
    pub max_bytes: u64,
    /// Segment file size at which a new segment starts. `None`: an eighth of `max_bytes`,
    /// from 64 KiB to 32 MiB, so the cap displaces the oldest eighth at a time.
    pub segment_bytes: Option<u64>,
    /// Appends wait while this many encoded bytes wait for the next sync (default 32 MiB):
    /// memory stays bounded when the disk is slower than the producers.
    pub max_unsynced_bytes: usize,
    /// The most values in one record (default 4096). Larger appends become several records.
    pub max_record_values: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            sync_interval: Duration::from_millis(100),
            max_bytes: 1 << 30,
            segment_bytes: None,
            max_unsynced_bytes: 32 << 20,
            max_record_values: 4096,
        }
    }
}

/// The smallest `max_bytes` accepted.
pub const MIN_MAX_BYTES: u64 = 256 * 1024;
/// The longest `sync_interval` accepted.
pub const MAX_SYNC_INTERVAL: Duration = Duration::from_secs(60);

impl LogOptions {
    /// Checks the settings; the error names the field.
    pub fn validate(&self) -> Result<(), OpenError> {
        let fail = |field, value: String, allowed| {
            Err(OpenError::Options {
                field,
                value,
                allowed,
            })
        };
        if self.sync_interval.is_zero() || self.sync_interval > MAX_SYNC_INTERVAL {
            return fail(
                "sync_interval",
                format!("{:?}", self.sync_interval),
                "from 1 ms to 60 s",
            );
        }
        if self.max_bytes < MIN_MAX_BYTES {
            return fail(
                "max_bytes",
                self.max_bytes.to_string(),
                "at least 262144 (256 KiB)",
            );
        }
        if let Some(segment) = self.segment_bytes {
            if segment < 4096 || segment > self.max_bytes / 2 {
                return fail(
                    "segment_bytes",
                    segment.to_string(),
                    "from 4096 to half of max_bytes",
                );
            }
        }
        if self.max_unsynced_bytes < 64 * 1024 {
            return fail(
                "max_unsynced_bytes",
                self.max_unsynced_bytes.to_string(),
                "at least 65536",
            );
        }
        if self.max_record_values == 0 || self.max_record_values > 1 << 20 {
            return fail(
                "max_record_values",
                self.max_record_values.to_string(),
                "from 1 to 1048576",
            );
        }
        Ok(())
    }

    /// The segment size in force.
    pub fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes
            .unwrap_or_else(|| (self.max_bytes / 8).clamp(64 * 1024, 32 << 20))
    }
}

/// The log could not be opened. Damage inside the log is never one of these: it is skipped
/// and reported in [`Recovery`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// A setting is out of range.
    #[error("durable log setting {field} = {value} is not valid: {allowed}")]
    Options {
        /// The [`LogOptions`] field.
        field: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        allowed: &'static str,
    },
    /// Another process (or log in this process) has the directory open.
    #[error(
        "the durable log in {} is in use by another process; stop it, or give this one its \
         own directory", dir.display()
    )]
    Locked {
        /// The log directory.
        dir: PathBuf,
    },
    /// The directory cannot be created, listed or locked.
    #[error("cannot {action} the durable log directory {}: {source}", dir.display())]
    Directory {
        /// The log directory.
        dir: PathBuf,
        /// What failed: "create", "list", "lock".
        action: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The sync thread could not be started.
    #[error("cannot start the durable log's sync thread: {0}")]
    Spawn(io::Error),
}

/// An append was refused; nothing of it was stored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// [`close_appends`](crate::DurableLog::close_appends) was called.
    #[error("the durable log is closed")]
    Closed,
    /// The disk (or quota) is full; appends succeed again once a sync gets through.
    #[error("the durable log's disk is full: {reason}")]
    DiskFull {
        /// The operating system's error.
        reason: String,
    },
    /// Writing or syncing failed for another reason (I/O error, read-only file system).
    #[error("the durable log cannot write to its disk: {reason}")]
    DiskFailed {
        /// The operating system's error.
        reason: String,
    },
    /// One value alone is larger than a record may be.
    #[error("a value encodes to {bytes} bytes, more than a record holds ({max})")]
    TooLarge {
        /// Its encoded size.
        bytes: usize,
        /// The record payload limit.
        max: usize,
    },
}

impl AppendError {
    /// A reason fit for an HTTP 503 body or a log line.
    pub fn reason(&self) -> String {
        self.to_string()
    }
}

/// Waiting for a sync did not end in success.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// A sync covering the values failed; the log keeps them in memory and tries again at the
    /// next interval, but they are not durable now.
    #[error("the durable log could not sync: {reason}")]
    Failed {
        /// The operating system's error.
        reason: String,
    },
    /// The wait timed out before a sync covered the values.
    #[error("timed out waiting for the durable log to sync")]
    TimedOut,
    /// The log was closed before the values could be synced.
    #[error("the durable log closed before the values were synced")]
    Closed,
}

/// What an append stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The id of the first value (ids are consecutive).
    pub first_id: u64,
    /// Values stored.
    pub count: u64,
    /// Pass to [`wait_synced`](crate::DurableLog::wait_synced) or
    /// [`on_synced`](crate::DurableLog::on_synced).
    pub ticket: SyncTicket,
}

/// Identifies the sync that makes an append durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncTicket {
    /// One past the last id appended.
    pub(crate) end_id: u64,
    /// Sync failures seen before the append: a later one fails the ticket.
    pub(crate) failures: u64,
}

/// Values handed out by [`drain_into`](crate::DurableLog::drain_into), to be given back to
/// [`settle`](crate::DurableLog::settle) once they are written, backed up or rejected. Until
/// then they stay in the log and are handed out again after a restart.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "values stay unsettled (and are written again after a restart) until settled"]
pub struct Claim {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) count: usize,
}

impl Claim {
    /// The id range covered (it may include ids settled earlier).
    pub fn ids(&self) -> std::ops::Range<u64> {
        self.start..self.end
    }

    /// The values handed out.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Never true: empty drains give no claim.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// What [`wait_for`](crate::DurableLog::wait_for) ended with (the same as the ring buffer's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// At least the threshold is ready to drain.
    Ready,
    /// The timeout passed first.
    TimedOut,
    /// Appends are closed and every synced value has been handed out.
    Closed,
}

/// Where damage was found and what it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// The segment number (its file is [`segment_name`](crate::segment_name)`(segment)`).
    pub segment: u64,
    /// Byte offset in the segment file.
    pub offset: u64,
    /// Bytes skipped.
    pub len: u64,
    /// What was wrong.
    pub kind: CorruptionKind,
}

/// Kinds of damage the log survives.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorruptionKind {
    /// The end of a segment holds no complete record: a write cut short by a crash. The tail
    /// is cut off at recovery.
    TornTail,
    /// Bytes where a record should start are not a valid record header (magic, header
    /// checksum, impossible length or kind).
    BadHeader,
    /// A record's payload checksum fails.
    BadChecksum,
    /// The payload checksum passes but the codec cannot read the values.
    Undecodable(String),
    /// The segment's file header is damaged; its records are still read.
    BadSegmentHeader,
    /// The segment was written by a newer format version; it is left in place, unread.
    UnsupportedVersion(u32),
    /// The segment file could not be read.
    Unreadable(String),
    /// Value ids are missing between two records (a segment deleted by hand, or a record
    /// lost to damage whose size was unknown).
    MissingValues {
        /// Values missing.
        values: u64,
    },
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.kind {
            CorruptionKind::TornTail => "torn tail (a write cut short), cut off".to_owned(),
            CorruptionKind::BadHeader => "damaged record header, skipped".to_owned(),
            CorruptionKind::BadChecksum => "record checksum mismatch, skipped".to_owned(),
            CorruptionKind::Undecodable(why) => format!("record cannot be decoded ({why})"),
            CorruptionKind::BadSegmentHeader => "damaged segment header".to_owned(),
            CorruptionKind::UnsupportedVersion(version) => {
                format!("written by a newer format version ({version}); left in place, unread")
            }
            CorruptionKind::Unreadable(why) => format!("cannot be read ({why})"),
            CorruptionKind::MissingValues { values } => format!("{values} value(s) missing"),
        };
        write!(
            f,
            "segment {} offset {}: {what} ({} bytes)",
            segment_name(self.segment),
            self.offset,
            self.len
        )
    }
}

/// What recovery found when the log was opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Segment files read.
    pub segments: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Values not settled before the last stop: handed out again by `drain_into`.
    pub unsettled: u64,
    /// Damaged places, in order (the first 1,000; `corrupt_records` counts all).
    pub corrupt: Vec<Corruption>,
    /// Damaged places found.
    pub corrupt_records: u64,
    /// Values known to be lost to damage (a torn or garbled record whose header was lost
    /// cannot be counted).
    pub values_lost: u64,
    /// Files in the directory that are not segments (left alone).
    pub ignored_files: Vec<String>,
    /// How long recovery took.
    pub duration: Duration,
}

/// Figures for metrics and health. Read without stopping appends.
///
/// The accounting identity: `recovered + appended = pending + unread + in_flight + settled +
/// overflow + lost_to_damage + lost_unsynced`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Bytes of segment files.
    pub bytes: u64,
    /// Segment files.
    pub segments: usize,
    /// How long ago the oldest value not yet settled was appended.
    pub oldest_unsettled_age: Option<Duration>,
    /// Values found unsettled at open.
    pub recovered: u64,
    /// Values appended since open.
    pub appended: u64,
    /// Values refused by `append` (disk full or failing, or closed).
    pub refused: u64,
    /// Appended, waiting for the next sync.
    pub pending: u64,
    /// Synced, not yet handed out.
    pub unread: u64,
    /// Handed out, not yet settled.
    pub in_flight: u64,
    /// Settled since open.
    pub settled: u64,
    /// Dropped unsettled by the byte cap.
    pub overflow: u64,
    /// Lost to damage found after open (damage found at open is in [`Recovery`]).
    pub lost_to_damage: u64,
    /// Appended but never synced because the disk failed until the log was closed.
    pub lost_unsynced: u64,
    /// Damaged places found, at open and since.
    pub corrupt_records: u64,
    /// Successful fsyncs of segment files.
    pub fsyncs: u64,
    /// Bytes written to segment files.
    pub bytes_written: u64,
    /// Syncs that failed.
    pub sync_failures: u64,
    /// Why the disk is refusing writes now, if it is.
    pub disk_error: Option<String>,
}

impl LogStats {
    /// Values the log holds that are not settled: pending + unread + in flight.
    pub fn unsettled(&self) -> u64 {
        self.pending + self.unread + self.in_flight
    }
}
