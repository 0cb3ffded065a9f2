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
    // Logging never fails the service: the file gets every line whatever happens to stderr
    // (a closed pipe, `2>&1 | head -1`), and a full disk loses the file's copy only.
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if let Some(file) = &self.file {
            let mut file = file
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = file.write_all(bytes);
        }
        let _ = io::stderr().write_all(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(file) = &self.file {
            let mut file = file
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = file.flush();
        }
        let _ = io::stderr().flush();
        Ok(())
    }
}

/// Checks a `RUST_LOG` value: comma-separated directives, each a level (`off`, `error`,
/// `warn`, `info`, `debug`, `trace`), a module path, or `module=level`, optionally followed
/// by `/text`. env_logger reads anything else as a module name, which silently turns off
/// every line, errors included.
pub fn check_filter(filter: &str) -> Result<(), String> {
    let allowed = "comma-separated levels (error, warn, info, debug, trace, off) or \
                   module=level directives, e.g. info or info,oracle_batch=debug";
    let refuse = || format!("RUST_LOG={filter:?} is not valid: {allowed}");
    let directives = filter.split_once('/').map_or(filter, |(before, _)| before);
    for directive in directives.split(',').map(str::trim) {
        if directive.is_empty() {
            continue;
        }
        let (module, level) = match directive.split_once('=') {
            Some((module, level)) => (Some(module.trim()), Some(level.trim())),
            None if directive.parse::<log::LevelFilter>().is_ok() => (None, None),
            None => (Some(directive), None),
        };
        if let Some(level) = level.filter(|l| !l.is_empty()) {
            level.parse::<log::LevelFilter>().map_err(|_| refuse())?;
        }
        if let Some(module) = module {
            let is_path = module.split("::").all(|part| {
                let mut chars = part.chars();
                chars
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            if !is_path {
                return Err(refuse());
            }
        }
    }
    Ok(())
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

/// Starts logging at `RUST_LOG` (default `info`; a value env_logger would misread is an
/// error) to stderr and `log_file` (appended, created
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
    let filter = match std::env::var_os("RUST_LOG") {
        None => "info".to_owned(),
        Some(value) => value.into_string().map_err(|value| {
            format!(
                "RUST_LOG={:?} is not valid: text in UTF-8 (the value has bytes that are not)",
                value.to_string_lossy()
            )
        })?,
    };
    let filter = if filter.trim().is_empty() {
        "info".to_owned()
    } else {
        check_filter(&filter)?;
        filter
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_values_are_checked() {
        for good in [
            "info",
            "DEBUG",
            "off",
            "info,oracle_batch=debug",
            "pipeline_service::http=trace",
            "warn/Buffer",
            "oracle_batch",
            "",
        ] {
            assert_eq!(check_filter(good), Ok(()), "{good}");
        }
        for bad in [
            "%%%garbage",
            "info,=debug",
            "oracle_batch=loud",
            "in fo",
            "a::",
        ] {
            let error = check_filter(bad).unwrap_err();
            assert!(
                error.starts_with(&format!("RUST_LOG={bad:?} is not valid: ")),
                "{error}"
            );
        }
    }
}
