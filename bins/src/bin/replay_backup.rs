//! Loads backup files into the configured database by hand: the files named, or every
//! pending file in BACKUP_DIR, oldest first. Each file moves to `replayed/` once all its rows
//! are stored; rows the database refuses go to a rejected file. Safe to run again on a file
//! that was partly replayed: rows already stored count as duplicates.

use std::path::PathBuf;
use std::process::ExitCode;

use buffer_oracle_writer::{configure, log_configuration, EXIT_FAILURE};
use clap::Parser;
use csv_backup::BackupWriter;
use indicatif::{ProgressBar, ProgressStyle};
use oracle_batch::{replay_file, ReplayTally};

/// Replay CSV backup files into the database.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Backup files to replay. Default: every pending backup_*.csv in BACKUP_DIR.
    files: Vec<PathBuf>,
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
    let files = if args.files.is_empty() {
        match backup.pending() {
            Ok(files) => files.into_iter().map(|f| f.path).collect(),
            Err(error) => {
                log::error!("{error}");
                return ExitCode::from(EXIT_FAILURE);
            }
        }
    } else {
        args.files
    };
    if files.is_empty() {
        println!(
            "No backup files to replay in {}",
            config.backup_dir.display()
        );
        return ExitCode::SUCCESS;
    }
    let mut sink = match pipeline_service::open_sink(&config) {
        Ok(sink) => sink,
        Err(error) => {
            log::error!("Cannot open the database: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let mut total = ReplayTally::default();
    let mut replayed = 0;
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
                    "Replayed {}: {} rows ({} written, {} already stored, {} rejected)",
                    path.display(),
                    tally.rows,
                    tally.written,
                    tally.duplicates,
                    tally.rejected
                );
                total.add(tally);
                replayed += 1;
            }
            Err(error) => {
                eprintln!(
                    "[ERROR] Replay of {} stopped: {error}. The file stays where it is; run \
                     replay_backup again when the cause is fixed (stored rows are skipped).",
                    path.display()
                );
                print_total(replayed, &total);
                return ExitCode::from(EXIT_FAILURE);
            }
        }
    }
    print_total(replayed, &total);
    ExitCode::SUCCESS
}

fn print_total(files: usize, total: &ReplayTally) {
    println!(
        "Replayed {files} files: {} rows ({} written, {} already stored, {} rejected)",
        total.rows, total.written, total.duplicates, total.rejected
    );
}
