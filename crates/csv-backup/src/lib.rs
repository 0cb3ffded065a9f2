#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod format;

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use chrono::NaiveDateTime;
use tag_model::TagValue;

pub use format::{
    neutralize, read_backup, read_backup_lenient, read_conflicts, read_csv, read_csv_lenient,
    restore, write_conflicts_csv, write_csv, write_rejected_csv, BackupContents, BadLine,
    ConflictRow, RejectedRow, BACKUP_HEADER, CONFLICTS_HEADER, REJECTED_HEADER,
};

/// Name of the folder inside the backup directory that receives replayed files.
pub const REPLAYED_DIR: &str = "replayed";

const BACKUP_PREFIX: &str = "backup_";
const REJECTED_PREFIX: &str = "rejected_";
const QUARANTINE_PREFIX: &str = "quarantine_";
const CONFLICTS_PREFIX: &str = "conflicts_";
const EXTENSION: &str = ".csv";
/// More same-second files than this means something is badly wrong; stop looking.
const MAX_SUFFIX: u32 = 100_000;

/// Why a backup operation failed. Every variant names the file or directory.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The directory could not be created or is not a directory.
    #[error("cannot create backup directory {}: {source}", dir.display())]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Writing a file failed (disk full, read-only, directory gone); no partial file is left.
    #[error("cannot write backup file {}: {source}", path.display())]
    Write {
        /// The file that was being written.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Reading a file or listing the directory failed.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A row of a backup file is not valid.
    #[error("{} line {line}: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: u64,
        /// What is wrong, naming the column.
        reason: String,
    },
    /// Moving a replayed file failed.
    #[error("cannot move {} to {}: {source}", from.display(), to.display())]
    Move {
        /// The file.
        from: PathBuf,
        /// Where it was going.
        to: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// A backup file waiting to be replayed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupFile {
    /// Full path.
    pub path: PathBuf,
    /// Size in bytes.
    pub bytes: u64,
}

/// What the backup directory holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackupStats {
    /// Backup files not yet replayed, the open spool file included.
    pub pending_files: usize,
    /// Their total size.
    pub pending_bytes: u64,
    /// Rejected-row files.
    pub rejected_files: usize,
    /// Their total size.
    pub rejected_bytes: u64,
    /// Quarantine files: lines of backup files that could not be read back.
    pub quarantine_files: usize,
    /// Conflicts files: rows not stored because their key holds another value or quality.
    pub conflict_files: usize,
    /// Their total size.
    pub conflict_bytes: u64,
}

/// A spool file rotates at this size by default.
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// Writes, lists and retires the files of one backup directory. Share it with `Arc`; file
/// names are chosen under a lock so that concurrent writers never take the same name.
#[derive(Debug)]
pub struct BackupWriter {
    dir: PathBuf,
    naming: Mutex<()>,
    spool: Mutex<Option<Spool>>,
    spool_max_bytes: AtomicU64,
    /// Rows in pending backup files (and the open spool), counted at start-up and kept up to
    /// date by this writer.
    pending_rows: AtomicU64,
}

/// The open spool file: a hidden temporary file that batches are appended to during an
/// outage, renamed to its final `backup_*.csv` name when sealed.
#[derive(Debug)]
struct Spool {
    temp: PathBuf,
    target: PathBuf,
    file: File,
    bytes: u64,
    rows: u64,
    /// The minute of the first batch: a new minute starts a new file.
    minute: String,
}

impl BackupWriter {
    /// Opens `dir`, creating it (and its parents) if missing.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, BackupError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| BackupError::CreateDir {
            dir: dir.clone(),
            source,
        })?;
        if !dir.is_dir() {
            return Err(BackupError::CreateDir {
                source: io::Error::other("the path exists but is not a directory"),
                dir,
            });
        }
        let writer = BackupWriter {
            dir,
            naming: Mutex::new(()),
            spool: Mutex::new(None),
            spool_max_bytes: AtomicU64::new(DEFAULT_SPOOL_MAX_BYTES),
            pending_rows: AtomicU64::new(0),
        };
        let recovered = writer.recover()?;
        for path in &recovered {
            log::warn!(
                "Recovered the unfinished backup file {} left by an earlier run",
                path.display()
            );
        }
        let rows = writer
            .pending()?
            .iter()
            .map(|file| count_rows(&file.path))
            .sum();
        writer.pending_rows.store(rows, Ordering::SeqCst);
        Ok(writer)
    }

    /// Checks that a file can be created, written and removed in the directory now (a
    /// hidden probe file that listings ignore). A read-only mount or a folder without write
    /// permission fails here, before a batch needs it.
    pub fn check_writable(&self) -> Result<(), BackupError> {
        let probe = self
            .dir
            .join(format!(".write_probe_{}.tmp", std::process::id()));
        let result = File::create(&probe).and_then(|mut file| file.write_all(b"probe\n"));
        let _ = fs::remove_file(&probe);
        result.map_err(|source| BackupError::Write {
            path: probe,
            source,
        })
    }

    /// Rotates spool files at `bytes` instead of [`DEFAULT_SPOOL_MAX_BYTES`].
    pub fn with_spool_limit(self, bytes: u64) -> Self {
        self.spool_max_bytes.store(bytes.max(1), Ordering::SeqCst);
        self
    }

    /// Rows waiting in backup files (sealed or being appended to).
    pub fn pending_rows(&self) -> u64 {
        self.pending_rows.load(Ordering::SeqCst)
    }

    /// Appends a batch to the open spool file, creating it (as a hidden temporary file named
    /// after `attempt_time`) if none is open, and fsyncs before returning: once this returns
    /// the rows survive a power cut. The file rotates (is sealed and a new one opened) when it
    /// passes the size limit or the minute changes, so an outage makes a few large files
    /// instead of thousands of small ones. Returns the name the file will have when sealed.
    ///
    /// On failure (disk full) the file is cut back to where it was: no partial batch stays.
    pub fn append_batch(
        &self,
        values: &[TagValue],
        attempt_time: NaiveDateTime,
    ) -> Result<PathBuf, BackupError> {
        let minute = attempt_time.format("%Y%m%d_%H%M").to_string();
        let mut spool = self.spool.lock().unwrap_or_else(PoisonError::into_inner);
        let rotate = spool.as_ref().is_some_and(|open| {
            open.minute != minute || open.bytes >= self.spool_max_bytes.load(Ordering::SeqCst)
        });
        if rotate {
            self.seal_spool(&mut spool)?;
        }
        if spool.is_none() {
            *spool = Some(self.open_spool(attempt_time, minute)?);
        }
        let Some(open) = spool.as_mut() else {
            return Err(BackupError::Write {
                path: self.dir.clone(),
                source: io::Error::other("no spool file"),
            });
        };
        let body =
            format::write_backup_rows(Vec::new(), values, attempt_time).map_err(|source| {
                BackupError::Write {
                    path: open.target.clone(),
                    source,
                }
            })?;
        let written = open
            .file
            .write_all(&body)
            .and_then(|()| open.file.sync_data());
        if let Err(source) = written {
            // Cut the partial batch off again; the caller keeps the batch and retries.
            let _ = open.file.set_len(open.bytes);
            return Err(BackupError::Write {
                path: open.target.clone(),
                source,
            });
        }
        open.bytes += body.len() as u64;
        open.rows += values.len() as u64;
        self.pending_rows
            .fetch_add(values.len() as u64, Ordering::SeqCst);
        Ok(open.target.clone())
    }

    /// Closes the open spool file and gives it its final name, so it is listed as pending and
    /// can be replayed. Returns its path, or `None` when no spool file was open.
    pub fn seal(&self) -> Result<Option<PathBuf>, BackupError> {
        let mut spool = self.spool.lock().unwrap_or_else(PoisonError::into_inner);
        self.seal_spool(&mut spool)
    }

    fn open_spool(
        &self,
        attempt_time: NaiveDateTime,
        minute: String,
    ) -> Result<Spool, BackupError> {
        let stem = format!("{BACKUP_PREFIX}{}", attempt_time.format("%Y%m%d_%H%M%S"));
        let _naming = self.naming.lock().unwrap_or_else(PoisonError::into_inner);
        let write_error = |path: PathBuf| move |source| BackupError::Write { path, source };
        let target = free_name(&self.dir, &stem).map_err(write_error(self.dir.join(&stem)))?;
        let temp = temp_path(&target);
        let mut file = File::options()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(write_error(target.clone()))?;
        let mut header = BACKUP_HEADER.join(",");
        header.push('\n');
        if let Err(source) = file
            .write_all(header.as_bytes())
            .and_then(|()| file.sync_data())
        {
            drop(file);
            let _ = fs::remove_file(&temp);
            return Err(BackupError::Write {
                path: target,
                source,
            });
        }
        Ok(Spool {
            temp,
            target,
            file,
            bytes: header.len() as u64,
            rows: 0,
            minute,
        })
    }

    /// Renames the spool file to its final name. On failure the spool is put back (its file
    /// reopened for appending), so no row is stranded in a hidden file and a later seal
    /// retries.
    fn seal_spool(&self, spool: &mut Option<Spool>) -> Result<Option<PathBuf>, BackupError> {
        let Some(open) = spool.take() else {
            return Ok(None);
        };
        if let Err(source) = open.file.sync_all() {
            let target = open.target.clone();
            *spool = Some(open);
            return Err(BackupError::Write {
                path: target,
                source,
            });
        }
        // Windows cannot rename an open file: close it first there (and reopen on failure).
        #[cfg(windows)]
        let open = {
            let Spool {
                temp,
                target,
                file,
                bytes,
                rows,
                minute,
            } = open;
            drop(file);
            (temp, target, bytes, rows, minute)
        };
        #[cfg(windows)]
        let (temp, target) = (open.0.clone(), open.1.clone());
        #[cfg(not(windows))]
        let (temp, target) = (open.temp.clone(), open.target.clone());
        match fs::rename(&temp, &target) {
            Ok(()) => {
                sync_dir(&self.dir);
                log::info!("Backup file {} complete", target.display());
                Ok(Some(target))
            }
            Err(source) => {
                #[cfg(windows)]
                if let Ok(file) = File::options().append(true).open(&temp) {
                    let (temp, target, bytes, rows, minute) = open;
                    *spool = Some(Spool {
                        temp,
                        target,
                        file,
                        bytes,
                        rows,
                        minute,
                    });
                }
                #[cfg(not(windows))]
                {
                    *spool = Some(open);
                }
                Err(BackupError::Write {
                    path: target,
                    source,
                })
            }
        }
    }

    /// Gives leftover temporary files (from a process that died while writing) their final
    /// names, dropping a torn last line; removes ones that hold no rows. Called by
    /// [`BackupWriter::new`].
    fn recover(&self) -> Result<Vec<PathBuf>, BackupError> {
        let read_error = |source| BackupError::Read {
            path: self.dir.clone(),
            source,
        };
        let mut recovered = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(target_name) = name
                .strip_prefix('.')
                .and_then(|n| n.strip_suffix(".tmp"))
                .filter(|n| {
                    [
                        BACKUP_PREFIX,
                        REJECTED_PREFIX,
                        QUARANTINE_PREFIX,
                        CONFLICTS_PREFIX,
                    ]
                    .iter()
                    .any(|prefix| n.starts_with(prefix))
                })
            else {
                continue;
            };
            let temp = entry.path();
            let bytes = fs::read(&temp).map_err(|source| BackupError::Read {
                path: temp.clone(),
                source,
            })?;
            // Keep whole lines only; a header alone holds nothing.
            let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let lines = bytes[..complete].iter().filter(|&&b| b == b'\n').count();
            if lines <= 1 {
                let _ = fs::remove_file(&temp);
                continue;
            }
            let write_error = |source| BackupError::Write {
                path: temp.clone(),
                source,
            };
            File::options()
                .write(true)
                .open(&temp)
                .and_then(|file| file.set_len(complete as u64).and_then(|()| file.sync_all()))
                .map_err(write_error)?;
            let _naming = self.naming.lock().unwrap_or_else(PoisonError::into_inner);
            let target = self.dir.join(target_name);
            let target = if target.exists() {
                let stem = target_name.strip_suffix(EXTENSION).unwrap_or(target_name);
                free_name(&self.dir, stem).map_err(write_error)?
            } else {
                target
            };
            fs::rename(&temp, &target).map_err(write_error)?;
            recovered.push(target);
        }
        sync_dir(&self.dir);
        Ok(recovered)
    }

    /// The backup directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Saves a batch as a new backup file named after `attempt_time`; returns its path.
    pub fn write_batch(
        &self,
        values: &[TagValue],
        attempt_time: NaiveDateTime,
    ) -> Result<PathBuf, BackupError> {
        let path = self.write_atomically(BACKUP_PREFIX, attempt_time, |out| {
            write_csv(out, values, attempt_time).map(drop)
        })?;
        self.pending_rows
            .fetch_add(values.len() as u64, Ordering::SeqCst);
        Ok(path)
    }

    /// Saves rows the database refused as a new rejected-rows file; returns its path.
    pub fn write_rejected(
        &self,
        rows: &[RejectedRow],
        attempt_time: NaiveDateTime,
    ) -> Result<PathBuf, BackupError> {
        self.write_atomically(REJECTED_PREFIX, attempt_time, |out| {
            write_rejected_csv(out, rows, attempt_time).map(drop)
        })
    }

    /// Saves the lines of the backup file `source` that could not be read back, verbatim
    /// under `header` (see [`BackupContents`]), as `quarantine_<source name>.csv` (`_N`
    /// appended when taken) beside the backup files; returns its path. An operator can mend
    /// the lines and rename the file to `backup_*.csv` to replay them.
    pub fn write_quarantine(
        &self,
        source: &Path,
        header: &[u8],
        lines: &[BadLine],
    ) -> Result<PathBuf, BackupError> {
        let name = source
            .file_name()
            .unwrap_or(source.as_os_str())
            .to_string_lossy();
        let stem = format!(
            "{QUARANTINE_PREFIX}{}",
            name.strip_suffix(EXTENSION).unwrap_or(&name)
        );
        self.write_named(&stem, |out| {
            out.write_all(header)?;
            for line in lines {
                out.write_all(&line.raw)?;
                if !line.raw.ends_with(b"\n") {
                    out.write_all(b"\n")?;
                }
            }
            Ok(())
        })
    }

    /// Saves rows that lost to a stored row with the same key (another value or quality) as a
    /// new `conflicts_YYYYMMDD_HHMMSS.csv` file; returns its path. These files are for an
    /// operator to look at; they are never replayed.
    pub fn write_conflicts(
        &self,
        rows: &[ConflictRow],
        attempt_time: NaiveDateTime,
    ) -> Result<PathBuf, BackupError> {
        self.write_atomically(CONFLICTS_PREFIX, attempt_time, |out| {
            write_conflicts_csv(out, rows, attempt_time).map(drop)
        })
    }

    /// Backup files not yet replayed, oldest first (by the time in their name, then suffix).
    pub fn pending(&self) -> Result<Vec<BackupFile>, BackupError> {
        let mut files: Vec<(SortKey, BackupFile)> = self
            .list(BACKUP_PREFIX)?
            .into_iter()
            .map(|file| (sort_key(&file.path), file))
            .collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(files.into_iter().map(|(_, file)| file).collect())
    }

    /// Moves a fully replayed backup file into `replayed/`; returns its new path.
    pub fn mark_replayed(&self, path: &Path) -> Result<PathBuf, BackupError> {
        let rows = count_rows(path);
        let target_dir = self.dir.join(REPLAYED_DIR);
        fs::create_dir_all(&target_dir).map_err(|source| BackupError::CreateDir {
            dir: target_dir.clone(),
            source,
        })?;
        let name = path
            .file_name()
            .unwrap_or(path.as_os_str())
            .to_string_lossy();
        let stem = name.strip_suffix(EXTENSION).unwrap_or(&name);
        let _naming = self.naming.lock().unwrap_or_else(PoisonError::into_inner);
        let target = free_name(&target_dir, stem).map_err(|source| BackupError::Move {
            from: path.to_owned(),
            to: target_dir.clone(),
            source,
        })?;
        fs::rename(path, &target).map_err(|source| BackupError::Move {
            from: path.to_owned(),
            to: target.clone(),
            source,
        })?;
        // Count first: a reader that no longer sees the file sees its rows gone too.
        let _ = self
            .pending_rows
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_sub(rows))
            });
        sync_dir(&target_dir);
        sync_dir(&self.dir);
        Ok(target)
    }

    /// Counts and sizes of pending backup files and rejected-row files.
    pub fn stats(&self) -> Result<BackupStats, BackupError> {
        let pending = self.list(BACKUP_PREFIX)?;
        let rejected = self.list(REJECTED_PREFIX)?;
        let quarantine = self.list(QUARANTINE_PREFIX)?;
        let conflicts = self.list(CONFLICTS_PREFIX)?;
        let spool_bytes = self
            .spool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|open| open.bytes);
        Ok(BackupStats {
            pending_files: pending.len() + usize::from(spool_bytes.is_some()),
            pending_bytes: pending.iter().map(|f| f.bytes).sum::<u64>() + spool_bytes.unwrap_or(0),
            rejected_files: rejected.len(),
            rejected_bytes: rejected.iter().map(|f| f.bytes).sum(),
            quarantine_files: quarantine.len(),
            conflict_files: conflicts.len(),
            conflict_bytes: conflicts.iter().map(|f| f.bytes).sum(),
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<BackupFile>, BackupError> {
        let read_error = |source| BackupError::Read {
            path: self.dir.clone(),
            source,
        };
        let mut files = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !(name.starts_with(prefix) && name.ends_with(EXTENSION)) {
                continue;
            }
            let metadata = match entry.metadata() {
                Ok(metadata) => metadata,
                // Moved (replayed, sealed) between the listing and now: no longer here.
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(read_error(error)),
            };
            if metadata.is_file() {
                files.push(BackupFile {
                    path: entry.path(),
                    bytes: metadata.len(),
                });
            }
        }
        Ok(files)
    }

    /// Writes through `write` to a hidden temporary file, fsyncs it and renames it to a free
    /// `{prefix}YYYYMMDD_HHMMSS[_N].csv`. On any failure the temporary file is removed.
    fn write_atomically(
        &self,
        prefix: &str,
        attempt_time: NaiveDateTime,
        write: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
    ) -> Result<PathBuf, BackupError> {
        let stem = format!("{prefix}{}", attempt_time.format("%Y%m%d_%H%M%S"));
        self.write_named(&stem, write)
    }

    /// [`write_atomically`](Self::write_atomically) to a free `{stem}[_N].csv`.
    fn write_named(
        &self,
        stem: &str,
        write: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
    ) -> Result<PathBuf, BackupError> {
        let _naming = self.naming.lock().unwrap_or_else(PoisonError::into_inner);
        let write_error = |path: &Path| {
            let path = path.to_owned();
            move |source| BackupError::Write { path, source }
        };
        let target = free_name(&self.dir, stem).map_err(write_error(&self.dir.join(stem)))?;
        let temp = temp_path(&target);
        let result = (|| {
            let mut out = BufWriter::with_capacity(
                256 * 1024,
                File::options().write(true).create_new(true).open(&temp)?,
            );
            write(&mut out)?;
            let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
            file.sync_all()?;
            drop(file);
            fs::rename(&temp, &target)
        })();
        match result {
            Ok(()) => {
                sync_dir(&self.dir);
                Ok(target)
            }
            Err(source) => {
                let _ = fs::remove_file(&temp);
                Err(BackupError::Write {
                    path: target,
                    source,
                })
            }
        }
    }
}

/// Data rows in a backup file (CSV records, so a quoted line break counts once).
fn count_rows(path: &Path) -> u64 {
    let Ok(mut reader) = csv::ReaderBuilder::new().flexible(true).from_path(path) else {
        return 0;
    };
    let mut record = csv::ByteRecord::new();
    let mut rows = 0;
    while let Ok(true) = reader.read_byte_record(&mut record) {
        rows += 1;
    }
    rows
}

/// `dir/stem.csv`, or `dir/stem_N.csv` with the smallest free N. A name whose temporary
/// file exists counts as taken.
fn free_name(dir: &Path, stem: &str) -> io::Result<PathBuf> {
    let taken = |path: &Path| path.exists() || temp_path(path).exists();
    let first = dir.join(format!("{stem}{EXTENSION}"));
    if !taken(&first) {
        return Ok(first);
    }
    (1..MAX_SUFFIX)
        .map(|n| dir.join(format!("{stem}_{n}{EXTENSION}")))
        .find(|path| !taken(path))
        .ok_or_else(|| io::Error::other(format!("{MAX_SUFFIX} files named {stem}_N already")))
}

fn temp_path(target: &Path) -> PathBuf {
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    target.with_file_name(format!(".{name}.tmp"))
}

/// Makes a rename durable: on Unix the directory entry must be fsynced too. Windows has no
/// directory handles to sync, and NTFS journals the rename.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// (time stamp in the name, suffix number, name): `_10` sorts after `_9`.
type SortKey = (String, u32, String);

fn sort_key(path: &Path) -> SortKey {
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let core = name
        .strip_prefix(BACKUP_PREFIX)
        .and_then(|rest| rest.strip_suffix(EXTENSION))
        .unwrap_or_default();
    // YYYYMMDD_HHMMSS is 15 characters; anything after it is `_N`.
    let (stamp, suffix) = core.split_at(core.len().min(15));
    let number = suffix
        .strip_prefix('_')
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    (stamp.to_owned(), number, name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn time() -> NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2025, 11, 2)
            .unwrap()
            .and_hms_opt(14, 30, 52)
            .unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_failed_write_leaves_no_file_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let backups = BackupWriter::new(dir.path()).unwrap();
        let error = backups
            .write_atomically(BACKUP_PREFIX, time(), |out| {
                out.write_all(&[b'x'; 1_000_000])?;
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            })
            .unwrap_err();
        assert!(
            error.to_string().starts_with("cannot write backup file "),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .ends_with("backup_20251102_143052.csv: disk full"),
            "{error}"
        );
        assert_eq!(names(dir.path()), Vec::<String>::new());
        // The name is free again for the retry.
        let path = backups.write_batch(&[], time()).unwrap();
        assert!(path.ends_with("backup_20251102_143052.csv"));
    }

    #[test]
    fn sort_key_orders_suffixes_numerically() {
        let mut keys: Vec<SortKey> = [
            "backup_20251102_143052_10.csv",
            "backup_20251102_143052_9.csv",
            "backup_20251102_143052.csv",
            "backup_20251101_235959_3.csv",
        ]
        .iter()
        .map(|n| sort_key(Path::new(n)))
        .collect();
        keys.sort();
        let order: Vec<&str> = keys.iter().map(|k| k.2.as_str()).collect();
        assert_eq!(
            order,
            [
                "backup_20251101_235959_3.csv",
                "backup_20251102_143052.csv",
                "backup_20251102_143052_9.csv",
                "backup_20251102_143052_10.csv",
            ]
        );
    }
}
