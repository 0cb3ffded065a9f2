//! Offline mode's work: batches go to the backup spool (fsynced per batch) and the database
//! is probed on a backoff; at shutdown, a last-resort save to an emergency directory.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use csv_backup::{BackupError, BackupWriter};
use tag_model::TagValue;

use crate::sink::SinkError;

use super::accounting::Counters;
use super::worker::{panic_message, Worker};
use super::Shared;

impl Worker {
    /// Saves `batch` as a backup file; on failure keeps it as the held batch.
    pub(super) fn save_to_backup(&mut self, batch: &mut Vec<TagValue>) {
        let shared = &self.shared;
        match write_backup(shared, &shared.backup, batch) {
            Ok(_) => batch.clear(),
            Err(error) => {
                Counters::add(&shared.counters.backup_failures, 1);
                log::error!(
                    "CSV backup failed, keeping {} items in memory and retrying: {error}",
                    batch.len()
                );
                self.held.append(batch);
            }
        }
    }

    /// While offline: probes the database when the backoff says so; goes online on success.
    pub(super) fn maybe_probe(&mut self) {
        let shared = Arc::clone(&self.shared);
        {
            let mut mode = shared.lock_mode();
            if shared.is_online() || shared.now() < mode.next_probe {
                return;
            }
            // Claim this probe so other writer threads do not probe at the same time.
            mode.next_probe = shared.now() + mode.probe_delay;
        }
        shared.counters.probes.fetch_add(1, Ordering::SeqCst);
        let sink = &mut self.sink;
        let result = catch_unwind(AssertUnwindSafe(|| sink.probe())).unwrap_or_else(|panic| {
            Err(SinkError::transient(format!(
                "the sink panicked: {}",
                panic_message(panic.as_ref())
            )))
        });
        match result {
            Ok(()) => shared.go_online(),
            Err(error) => {
                let mut mode = shared.lock_mode();
                mode.probe_delay = (mode.probe_delay * 2).min(shared.config.offline_probe_max);
                mode.next_probe = shared.now() + mode.probe_delay;
                mode.reason = Some(error.message().to_owned());
                log::warn!(
                    "Still offline ({error}); next probe in {:.1} s",
                    mode.probe_delay.as_secs_f64()
                );
            }
        }
    }
}

/// Appends `batch` to the spool file and counts its rows as backed up.
fn write_backup(
    shared: &Shared,
    backup: &BackupWriter,
    batch: &[TagValue],
) -> Result<PathBuf, BackupError> {
    let path = backup.append_batch(batch, shared.clock.utc().naive_utc())?;
    shared
        .counters
        .settle(&shared.counters.backed_up, batch.len());
    log::info!("Saved {} items to {}", batch.len(), path.display());
    log::info!("Continuing operation...");
    Ok(path)
}

/// At shutdown, when the backup directory refuses a batch: try an emergency directory in the
/// system temp folder; if that fails too, count the rows as unsaved and say so loudly.
pub(super) fn last_resort_save(shared: &Shared, values: &[TagValue]) {
    if values.is_empty() {
        return;
    }
    if write_backup(shared, &shared.backup, values).is_ok() {
        return;
    }
    let emergency = std::env::temp_dir().join("buffer-oracle-writer-emergency-backup");
    let saved = BackupWriter::new(&emergency).and_then(|backup| {
        let path = write_backup(shared, &backup, values)?;
        backup.seal()?;
        Ok(path)
    });
    match saved {
        Ok(path) => log::error!(
            "The backup directory {} refused {} items; saved them to the emergency file {} \
             instead. Move it into the backup directory to replay it.",
            shared.backup.dir().display(),
            values.len(),
            path.display()
        ),
        Err(error) => {
            shared
                .counters
                .settle(&shared.counters.unsaved, values.len());
            log::error!(
                "DATA LOST: {} items could be saved neither to the database nor to {} nor to \
                 {}: {error}",
                values.len(),
                shared.backup.dir().display(),
                emergency.display()
            );
        }
    }
}
