//! Loads backup files into the configured database by hand: the files named, or every
//! pending file in BACKUP_DIR, oldest first. Each file moves to `replayed/` once all its rows
//! are stored; rows the database refuses go to a rejected file, rows whose key is stored with
//! another value or quality to a conflicts file, lines that do not read back (torn, damaged)
//! to a quarantine file. Safe to run again on a file that was partly replayed: rows already
//! stored count as duplicates.
//!
//! Only backup files inside BACKUP_DIR are replayed (and then moved): a named file must be a
//! regular `backup_*.csv` file there, after symlinks are resolved. A file from elsewhere is
//! loaded with `--import`, which copies it into BACKUP_DIR first and leaves the original
//! alone. A file that cannot be read is skipped and listed at the end; the others go on.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use buffer_oracle_writer::{configure, log_configuration, EXIT_FAILURE};
use clap::Parser;
use csv_backup::{read_backup, BackupWriter};
use indicatif::{ProgressBar, ProgressStyle};
use oracle_batch::{replay_file, ReplayError, ReplayTally};

/// Replay CSV backup files into the database.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Backup files in BACKUP_DIR to replay (moved to BACKUP_DIR/replayed/ when done).
    /// Default: every pending backup_*.csv in BACKUP_DIR.
    files: Vec<PathBuf>,
    /// CSV files from anywhere (same columns as a backup file) to load: each is copied into
    /// BACKUP_DIR as a new backup file and replayed from there; the original is not touched.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    import: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match configure() {
        Ok(config) => config,
        Err(code) => return code,
    };
    log_configuration(&config);
    let backup = match BackupWriter::new(&config.backup_dir) {
        Ok(backup) => backup,
        Err(error) => {
            log::error!("{error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let mut skipped: Vec<(PathBuf, String)> = Vec::new();
    let mut files = Vec::new();
    if args.files.is_empty() && args.import.is_empty() {
        match backup.pending() {
            Ok(pending) => files.extend(pending.into_iter().map(|f| f.path)),
            Err(error) => {
                log::error!("{error}");
                return ExitCode::from(EXIT_FAILURE);
            }
        }
    }
    for path in &args.files {
        match backup_file_in(&config.backup_dir, path) {
            Ok(path) => files.push(path),
            Err(reason) => skipped.push((path.clone(), reason)),
        }
    }
    for path in &args.import {
        match import(&backup, path) {
            Ok(copy) => {
                println!("Imported {} as {}", path.display(), copy.display());
                files.push(copy);
            }
            Err(reason) => skipped.push((path.clone(), reason)),
        }
    }
    if files.is_empty() && skipped.is_empty() {
        println!(
            "No backup files to replay in {}",
            config.backup_dir.display()
        );
        return ExitCode::SUCCESS;
    }
    let mut total = ReplayTally::default();
    let mut replayed = 0;
    if !files.is_empty() {
        let mut sink = match pipeline_service::open_sink(&config) {
            Ok(sink) => sink,
            Err(error) => {
                log::error!("Cannot open the database: {error}");
                return ExitCode::from(EXIT_FAILURE);
            }
        };
        for (number, path) in files.iter().enumerate() {
            let progress = ProgressBar::new(0);
            progress.set_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {pos} rows")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            progress.set_message(format!("{}/{} {}", number + 1, files.len(), path.display()));
            let result = replay_file(
                sink.as_mut(),
                &backup,
                path,
                config.writer.batch_size_max,
                |done| progress.set_position(done as u64),
            );
            progress.finish_and_clear();
            match result {
                Ok(tally) => {
                    println!(
                        "Replayed {}: {} rows ({} written, {} already stored, {} rejected){}{}",
                        path.display(),
                        tally.rows,
                        tally.written,
                        tally.duplicates,
                        tally.rejected,
                        conflicting(&tally),
                        quarantined(&tally)
                    );
                    total.add(tally);
                    replayed += 1;
                }
                // The file itself is at fault: the next one may be fine.
                Err(ReplayError::Backup(error)) => {
                    eprintln!("[ERROR] Skipped {}: {error}", path.display());
                    skipped.push((path.clone(), error.to_string()));
                }
                // The database is: the next file would fail the same way.
                Err(error) => {
                    eprintln!(
                        "[ERROR] Replay of {} stopped: {error}. The file stays where it is; run \
                         replay_backup again when the cause is fixed (stored rows are skipped).",
                        path.display()
                    );
                    print_total(replayed, &total, &skipped);
                    return ExitCode::from(EXIT_FAILURE);
                }
            }
        }
    }
    print_total(replayed, &total, &skipped);
    if skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    }
}

/// `path`, resolved, if it is a regular `backup_*.csv` file directly inside `backup_dir`
/// (symlinks resolved on both sides); otherwise why not.
fn backup_file_in(backup_dir: &Path, path: &Path) -> Result<PathBuf, String> {
    let dir = backup_dir
        .canonicalize()
        .map_err(|e| format!("BACKUP_DIR {}: {e}", backup_dir.display()))?;
    let real = path
        .canonicalize()
        .map_err(|e| format!("cannot open it: {e}"))?;
    let elsewhere = || {
        format!(
            "not a backup file in BACKUP_DIR ({}); use --import to copy a file from elsewhere \
             into it",
            dir.display()
        )
    };
    if real.parent() != Some(dir.as_path()) {
        return Err(elsewhere());
    }
    let name = real
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if !(name.starts_with("backup_") && name.ends_with(".csv")) {
        return Err(format!(
            "{name:?} is not named like a backup file (backup_YYYYMMDD_HHMMSS.csv)"
        ));
    }
    regular_file(&real)?;
    Ok(real)
}

/// Refuses devices, pipes and folders (`/dev/zero` would never end).
fn regular_file(path: &Path) -> Result<(), String> {
    let metadata = std::fs::metadata(path).map_err(|e| format!("cannot open it: {e}"))?;
    if metadata.is_file() {
        Ok(())
    } else {
        Err("not a regular file".to_owned())
    }
}

/// Copies `path` into the backup directory as a new backup file, through the CSV reader (so
/// a malformed file is refused before anything is written); returns the copy.
fn import(backup: &BackupWriter, path: &Path) -> Result<PathBuf, String> {
    regular_file(path)?;
    let values = read_backup(path).map_err(|e| e.to_string())?;
    backup
        .write_batch(&values, chrono::Utc::now().naive_utc())
        .map_err(|e| e.to_string())
}

fn print_total(files: usize, total: &ReplayTally, skipped: &[(PathBuf, String)]) {
    println!(
        "Replayed {files} files: {} rows ({} written, {} already stored, {} rejected){}{}",
        total.rows,
        total.written,
        total.duplicates,
        total.rejected,
        conflicting(total),
        quarantined(total)
    );
    if total.conflicts > 0 {
        println!(
            "{} rows were not stored because the database holds another value or quality for \
             their key: they are in conflicts_*.csv files in the backup directory, each with \
             the stored value it lost to",
            total.conflicts
        );
    }
    if !skipped.is_empty() {
        println!(
            "Skipped {} files (left where they are, nothing of them replayed):",
            skipped.len()
        );
        for (path, reason) in skipped {
            println!("  {}: {reason}", path.display());
        }
    }
}

/// "; N conflicting (kept in conflicts_*.csv)" when rows lost to stored rows of their key.
fn conflicting(tally: &ReplayTally) -> String {
    match tally.conflicts {
        0 => String::new(),
        n => format!("; {n} conflicting (kept in conflicts_*.csv)"),
    }
}

/// "; N bad lines moved to quarantine_*.csv" when files had lines that do not read back.
fn quarantined(tally: &ReplayTally) -> String {
    match tally.quarantined {
        0 => String::new(),
        n => format!("; {n} bad lines moved to quarantine_*.csv (see the log)"),
    }
}
