//! The online/offline state machine: online, batches go to the database; offline (after a
//! batch failed through its retries, or a set-up error), they go straight to the backup spool
//! while one thread probes the database on a backoff (see `offline.rs`).

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::sink::SinkError;

use super::Shared;

/// The offline details, under one lock so that a probe is claimed by one thread only.
#[derive(Default)]
pub(super) struct ModeState {
    pub(super) offline_since: Option<chrono::DateTime<chrono::Utc>>,
    /// Monotonic time of going offline, for the "back online after N s" line.
    pub(super) offline_at: Duration,
    pub(super) reason: Option<String>,
    pub(super) next_probe: Duration,
    pub(super) probe_delay: Duration,
}

/// Whether the writer is writing to the database or, offline, to CSV backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriterMode {
    /// Writing to the database.
    pub online: bool,
    /// When the writer went offline.
    pub offline_since: Option<chrono::DateTime<chrono::Utc>>,
    /// The error that sent it offline.
    pub reason: Option<String>,
    /// Probes of the database made while offline, since start.
    pub probes: u64,
    /// The backup file being replayed now.
    pub replaying: Option<std::path::PathBuf>,
    /// Backup files fully replayed since start.
    pub replayed_files: u64,
    /// Rows of those files.
    pub replayed_rows: u64,
    /// Lines of replayed files that did not read back (torn, damaged), moved to
    /// `quarantine_*.csv` files.
    pub quarantined_lines: u64,
    /// Rows of replayed backup files that were not stored because their key holds another
    /// value or quality (saved in conflicts files; counted as backed up already).
    pub replayed_conflicts: u64,
    /// When a conflicting row (live or replayed) was last saved to a conflicts file.
    pub last_conflict: Option<chrono::DateTime<chrono::Utc>>,
    /// Rows waiting in backup files.
    pub pending_backup_rows: u64,
}

impl Shared {
    pub(super) fn is_online(&self) -> bool {
        self.online.load(Ordering::SeqCst)
    }

    pub(super) fn lock_mode(&self) -> std::sync::MutexGuard<'_, ModeState> {
        self.mode
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stops writing to the database: batches go straight to backup and the database is
    /// probed on a backoff.
    pub(super) fn go_offline(&self, error: &SinkError) {
        let mut mode = self.lock_mode();
        if !self.online.swap(false, Ordering::SeqCst) {
            return;
        }
        mode.offline_since = Some(self.clock.utc());
        mode.offline_at = self.now();
        mode.reason = Some(error.message().to_owned());
        mode.probe_delay = self.config.offline_probe_min;
        mode.next_probe = self.now() + self.config.offline_probe_min;
        log::error!(
            "{} is unavailable: going offline. New batches go straight to CSV backup; probing \
             the database every {:.1} s, backing off to {:.0} s",
            self.kind,
            self.config.offline_probe_min.as_secs_f64(),
            self.config.offline_probe_max.as_secs_f64()
        );
    }

    pub(super) fn go_online(&self) {
        let mut mode = self.lock_mode();
        if self.online.swap(true, Ordering::SeqCst) {
            return;
        }
        let offline_for = self.now().saturating_sub(mode.offline_at);
        mode.offline_since = None;
        mode.reason = None;
        drop(mode);
        log::info!(
            "{} is reachable again: back online after {:.1} s offline",
            self.kind,
            offline_for.as_secs_f64()
        );
        match self.backup.seal() {
            Ok(Some(path)) => log::info!("Backup file {} is ready for replay", path.display()),
            Ok(None) => {}
            Err(error) => log::error!("Cannot complete the backup file: {error}"),
        }
        self.replay_check.store(true, Ordering::SeqCst);
    }

    /// Asks the replaying thread to look for pending backup files.
    pub(super) fn request_replay(&self) {
        self.replay_check.store(true, Ordering::SeqCst);
    }

    pub(super) fn mode(&self) -> WriterMode {
        let mode = self.lock_mode();
        WriterMode {
            online: self.is_online(),
            offline_since: mode.offline_since,
            reason: mode.reason.clone(),
            probes: self.counters.probes.load(Ordering::SeqCst),
            replaying: self
                .replaying
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            replayed_files: self.counters.replayed_files.load(Ordering::SeqCst),
            replayed_rows: self.counters.replayed_rows.load(Ordering::SeqCst),
            quarantined_lines: self.counters.quarantined_lines.load(Ordering::SeqCst),
            replayed_conflicts: self.counters.replayed_conflicts.load(Ordering::SeqCst),
            last_conflict: self.conflict_log.last(),
            pending_backup_rows: self.backup.pending_rows(),
        }
    }
}
