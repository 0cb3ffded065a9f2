//! Log lines like the spec's (`[INFO] ...`), on stderr and optionally in LOG_FILE.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;

/// Writes every log line to stderr and, if set, to a file.
struct Tee {
    file: Option<Mutex<File>>,
}

impl Write for Tee {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        io::stderr().write_all(bytes)?;
        if let Some(file) = &self.file {
            let mut file = file
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // A full disk must not stop the service: stderr still has the line.
            let _ = file.write_all(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(file) = &self.file {
            let mut file = file
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = file.flush();
        }
        io::stderr().flush()
    }
}

/// The level as the spec's log lines spell it.
pub fn level_name(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "ERROR",
        log::Level::Warn => "WARNING",
        log::Level::Info => "INFO",
        log::Level::Debug => "DEBUG",
        log::Level::Trace => "TRACE",
    }
}

/// Starts logging at `RUST_LOG` (default `info`) to stderr and `log_file` (appended, created
/// with its folder if missing). Lines look like
/// `2025-11-02T14:30:45.123Z [INFO] Starting Buffer and Oracle Writer...`.
pub fn init(log_file: Option<&Path>) -> Result<(), String> {
    let file = match log_file {
        None => None,
        Some(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| {
                    format!("LOG_FILE={}: cannot create its folder: {e}", path.display())
                })?;
            }
            let file = File::options()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("LOG_FILE={}: cannot open it: {e}", path.display()))?;
            Some(Mutex::new(file))
        }
    };
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    env_logger::Builder::new()
        .parse_filters(&filter)
        .format(|out, record| {
            writeln!(
                out,
                "{} [{}] {}",
                chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                level_name(record.level()),
                record.args()
            )
        })
        .target(env_logger::Target::Pipe(Box::new(Tee { file })))
        .try_init()
        .map_err(|e| format!("logging is already set up: {e}"))
}
