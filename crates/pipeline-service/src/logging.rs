//! Log lines like the spec's (`[INFO] ...`), on stderr and optionally in LOG_FILE, which is
//! rotated by size: past LOG_MAX_BYTES it becomes `LOG_FILE.1` (the one before, `.2`, ...,
//! up to LOG_KEEP files) and a new file is started.
//!
//! Every line is written to the file as it is logged, so a crash loses none of the lines
//! before it. Rotation is a few renames under the log's lock; when it fails (a folder made
//! read-only, a log viewer holding the file on Windows) the failure is reported on stderr and
//! in the file, the line goes on into the current file, and rotation is tried again 10 s
//! later: logging never stops or fails the service.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// LOG_MAX_BYTES when unset: 50 MiB.
pub const DEFAULT_LOG_MAX_BYTES: u64 = 50 * 1024 * 1024;
/// LOG_KEEP when unset: five rotated files beside the current one.
pub const DEFAULT_LOG_KEEP: u32 = 5;
/// How long after a failed rotation (or reopening) the next attempt waits.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// LOG_FILE and its rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFile {
    /// The file lines are appended to.
    pub path: PathBuf,
    /// A line that would take the file past this many bytes first rotates it (LOG_MAX_BYTES);
    /// 0 turns rotation off.
    pub max_bytes: u64,
    /// Rotated files kept: `path.1` (the newest) to `path.N` (LOG_KEEP); 0 keeps none.
    pub keep: u32,
}

impl LogFile {
    /// `path` with the default rotation (50 MiB, five files kept).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        LogFile {
            path: path.into(),
            max_bytes: DEFAULT_LOG_MAX_BYTES,
            keep: DEFAULT_LOG_KEEP,
        }
    }

    /// The `n`th rotated file: `buffer_writer.log.1` for `buffer_writer.log`.
    pub fn rotated(&self, n: u32) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }
}

/// Where problems with the log file itself are reported: stderr, never failing.
type Report = Box<dyn FnMut(&str) + Send>;

fn report_on_stderr(message: &str) {
    let _ = writeln!(
        io::stderr(),
        "{} [WARNING] {message}",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ")
    );
}

/// The log file, rotated by size.
struct RotatingFile {
    settings: LogFile,
    /// `None` after a rotation whose reopening failed; reopened on a later line.
    file: Option<File>,
    /// Bytes in the current file.
    size: u64,
    /// After a failure: no new attempt before this.
    retry_at: Option<Instant>,
    /// Whether the last attempt failed (so that the recovery is reported once).
    failing: bool,
    report: Report,
}

fn open_append(path: &Path) -> io::Result<(File, u64)> {
    let file = File::options().create(true).append(true).open(path)?;
    let size = file.metadata().map_or(0, |m| m.len());
    Ok((file, size))
}

impl RotatingFile {
    /// Opens (creates, with its folder) the file for appending.
    fn open(settings: LogFile, report: Report) -> Result<Self, String> {
        let path = &settings.path;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                format!("LOG_FILE={}: cannot create its folder: {e}", path.display())
            })?;
        }
        let (file, size) = open_append(path)
            .map_err(|e| format!("LOG_FILE={}: cannot open it: {e}", path.display()))?;
        Ok(RotatingFile {
            settings,
            file: Some(file),
            size,
            retry_at: None,
            failing: false,
            report,
        })
    }

    /// Appends one log line, rotating first if the line would take the file past its size.
    fn write_line(&mut self, line: &[u8]) {
        let full = self.settings.max_bytes > 0
            && self.size > 0
            && self.size.saturating_add(line.len() as u64) > self.settings.max_bytes;
        if (full || self.file.is_none()) && self.retry_at.is_none_or(|at| Instant::now() >= at) {
            self.maintain();
        }
        if let Some(file) = &mut self.file {
            // A full disk loses the file's copy of the line only; stderr has it.
            if file.write_all(line).is_ok() {
                self.size += line.len() as u64;
            }
        }
    }

    /// Rotates (or, after a failed reopening, reopens) the file, reporting a failure once and
    /// the recovery after it.
    fn maintain(&mut self) {
        let path = self.settings.path.display().to_string();
        let result = if self.file.is_some() {
            self.rotate()
        } else {
            self.reopen()
        };
        match result {
            Ok(()) => {
                self.retry_at = None;
                if std::mem::take(&mut self.failing) {
                    self.note(&format!("LOG_FILE {path}: working again"));
                }
            }
            Err(error) => {
                self.retry_at = Some(Instant::now() + RETRY_AFTER);
                if !std::mem::replace(&mut self.failing, true) {
                    let still = if self.file.is_some() {
                        format!("still writing to {path}")
                    } else {
                        "log lines go to stderr only".to_owned()
                    };
                    self.note(&format!(
                        "LOG_FILE {path}: {error}; {still}, trying again every {} s",
                        RETRY_AFTER.as_secs()
                    ));
                }
            }
        }
    }

    /// Reports `message` on stderr and, when it is open, in the file.
    fn note(&mut self, message: &str) {
        (self.report)(message);
        if let Some(file) = &mut self.file {
            let line = format!(
                "{} [WARNING] {message}\n",
                chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ")
            );
            if file.write_all(line.as_bytes()).is_ok() {
                self.size += line.len() as u64;
            }
        }
    }

    fn reopen(&mut self) -> Result<(), String> {
        let (file, size) =
            open_append(&self.settings.path).map_err(|e| format!("cannot open it: {e}"))?;
        self.file = Some(file);
        self.size = size;
        Ok(())
    }

    /// `path.N-1` -> `path.N`, ..., `path` -> `path.1`, then a new `path`.
    fn rotate(&mut self) -> Result<(), String> {
        // Closed first: Windows refuses to rename a file that is open without delete sharing.
        self.file = None;
        let shifted = self.shift();
        // Whatever the renames did, lines go on into `path`: a new file, or the old one.
        let reopened = self.reopen();
        shifted.and(reopened)
    }

    fn shift(&self) -> Result<(), String> {
        let settings = &self.settings;
        let fail = |what: &str, error: io::Error| format!("cannot rotate it ({what}: {error})");
        if settings.keep == 0 {
            return std::fs::remove_file(&settings.path).map_err(|e| fail("remove", e));
        }
        // Files past LOG_KEEP (left by a larger LOG_KEEP earlier) go, so the disk holds at
        // most LOG_KEEP of them.
        for n in settings.keep + 1.. {
            match std::fs::remove_file(settings.rotated(n)) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => break,
                Err(error) => return Err(fail(&settings.rotated(n).display().to_string(), error)),
            }
        }
        for n in (1..settings.keep).rev() {
            let from = settings.rotated(n);
            match std::fs::rename(&from, settings.rotated(n + 1)) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(fail(&from.display().to_string(), error)),
            }
        }
        std::fs::rename(&settings.path, settings.rotated(1))
            .map_err(|e| fail(&settings.rotated(1).display().to_string(), e))
    }
}

/// Writes every log line to stderr and, if set, to a file.
struct Tee {
    file: Option<Mutex<RotatingFile>>,
}

impl Write for Tee {
    // Logging never fails the service: the file gets every line whatever happens to stderr
    // (a closed pipe, `2>&1 | head -1`), and a full disk loses the file's copy only.
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if let Some(file) = &self.file {
            file.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .write_line(bytes);
        }
        let _ = io::stderr().write_all(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(file) = &self.file {
            let mut file = file
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(file) = &mut file.file {
                let _ = file.flush();
            }
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
/// error) to stderr and `log_file` (appended, created with its folder if missing, rotated by
/// size). Lines look like
/// `2025-11-02T14:30:45.123Z [INFO] Starting Buffer and Oracle Writer...`.
pub fn init(log_file: Option<&LogFile>) -> Result<(), String> {
    let file = match log_file {
        None => None,
        Some(settings) => Some(Mutex::new(RotatingFile::open(
            settings.clone(),
            Box::new(report_on_stderr),
        )?)),
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

    use std::sync::Arc;

    /// A rotating file whose reports are collected.
    fn rotating(settings: LogFile) -> (RotatingFile, Arc<Mutex<Vec<String>>>) {
        let reports = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&reports);
        let file = RotatingFile::open(
            settings,
            Box::new(move |message: &str| sink.lock().unwrap().push(message.to_owned())),
        )
        .unwrap();
        (file, reports)
    }

    fn line(n: usize) -> String {
        // 100 bytes each.
        format!("{n:06} {}\n", "x".repeat(92))
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn writing_past_the_limit_rotates_and_keeps_log_keep_files() {
        let dir = tempfile::tempdir().unwrap();
        let settings = LogFile {
            path: dir.path().join("logs/buffer_writer.log"),
            max_bytes: 1000,
            keep: 3,
        };
        let (mut file, reports) = rotating(settings.clone());
        // 100 lines of 100 bytes: ten files' worth, of which the current one and three
        // rotated ones are kept.
        for n in 0..100 {
            file.write_line(line(n).as_bytes());
        }
        assert_eq!(reports.lock().unwrap().len(), 0, "{reports:?}");
        let current = read(&settings.path);
        assert_eq!(current, (90..100).map(line).collect::<String>());
        for (n, first) in [(1, 80), (2, 70), (3, 60)] {
            let rotated = read(&settings.rotated(n));
            assert_eq!(
                rotated,
                (first..first + 10).map(line).collect::<String>(),
                "{n}"
            );
        }
        assert!(!settings.rotated(4).exists());
        let names = std::fs::read_dir(dir.path().join("logs")).unwrap().count();
        assert_eq!(names, 4);
    }

    #[test]
    fn a_file_is_never_left_past_the_limit_and_a_huge_line_still_goes_in() {
        let dir = tempfile::tempdir().unwrap();
        let settings = LogFile {
            path: dir.path().join("service.log"),
            max_bytes: 250,
            keep: 1,
        };
        // The file exists already, nearly full: its size counts.
        std::fs::write(&settings.path, "x".repeat(200)).unwrap();
        let (mut file, _) = rotating(settings.clone());
        file.write_line(line(1).as_bytes());
        assert_eq!(read(&settings.rotated(1)), "x".repeat(200));
        assert_eq!(read(&settings.path), line(1));
        let huge = "y".repeat(1000) + "\n";
        file.write_line(huge.as_bytes());
        assert_eq!(read(&settings.rotated(1)), line(1));
        assert_eq!(read(&settings.path), huge);
    }

    #[test]
    fn keep_0_starts_afresh_and_max_0_never_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let settings = LogFile {
            path: dir.path().join("a.log"),
            max_bytes: 300,
            keep: 0,
        };
        let (mut file, _) = rotating(settings.clone());
        for n in 0..10 {
            file.write_line(line(n).as_bytes());
        }
        assert_eq!(read(&settings.path), line(9));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        let settings = LogFile {
            path: dir.path().join("b.log"),
            max_bytes: 0,
            keep: 5,
        };
        let (mut file, _) = rotating(settings.clone());
        for n in 0..50 {
            file.write_line(line(n).as_bytes());
        }
        assert_eq!(read(&settings.path).len(), 5000);
        assert!(!settings.rotated(1).exists());
    }

    #[test]
    fn files_past_a_smaller_log_keep_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let settings = LogFile {
            path: dir.path().join("c.log"),
            max_bytes: 150,
            keep: 2,
        };
        for n in 1..=6 {
            std::fs::write(settings.rotated(n), "old").unwrap();
        }
        let (mut file, _) = rotating(settings.clone());
        file.write_line(line(0).as_bytes());
        file.write_line(line(1).as_bytes());
        assert_eq!(read(&settings.rotated(1)), line(0));
        assert_eq!(read(&settings.rotated(2)), "old");
        assert!((3..=6).all(|n| !settings.rotated(n).exists()));
    }

    #[test]
    fn a_failed_rotation_is_reported_once_and_logging_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let settings = LogFile {
            path: dir.path().join("d.log"),
            max_bytes: 200,
            keep: 1,
        };
        // A folder where the rotated file should go: the rename fails on every platform.
        std::fs::create_dir(settings.rotated(1)).unwrap();
        std::fs::write(settings.rotated(1).join("keep"), "").unwrap();
        let (mut file, reports) = rotating(settings.clone());
        for n in 0..10 {
            file.write_line(line(n).as_bytes());
        }
        let reported = reports.lock().unwrap().clone();
        assert_eq!(reported.len(), 1, "{reported:?}");
        let path = settings.path.display();
        let prefix = format!(
            "LOG_FILE {path}: cannot rotate it ({}: ",
            settings.rotated(1).display()
        );
        let suffix = format!("); still writing to {path}, trying again every 10 s");
        assert!(
            reported[0].starts_with(&prefix) && reported[0].ends_with(&suffix),
            "{reported:?}"
        );
        // Every line is in the file, with the warning among them.
        let text = read(&settings.path);
        assert!((0..10).all(|n| text.contains(&line(n))), "{text}");
        assert!(text.contains("[WARNING] LOG_FILE "), "{text}");

        // Once the obstacle is gone and the retry is due, rotation resumes and says so.
        std::fs::remove_dir_all(settings.rotated(1)).unwrap();
        file.retry_at = Some(Instant::now());
        file.write_line(line(10).as_bytes());
        let reported = reports.lock().unwrap().clone();
        assert_eq!(reported.len(), 2, "{reported:?}");
        assert!(reported[1].ends_with("working again"), "{reported:?}");
        assert!(read(&settings.rotated(1)).contains(&line(9)));
        assert!(read(&settings.path).contains(&line(10)));
    }

    #[test]
    fn a_log_file_whose_folder_vanished_is_reopened_when_it_is_back() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("logs");
        let settings = LogFile {
            path: folder.join("e.log"),
            max_bytes: 150,
            keep: 1,
        };
        let (mut file, reports) = rotating(settings.clone());
        file.write_line(line(0).as_bytes());
        std::fs::remove_dir_all(&folder).unwrap();
        // The rotation's rename fails, and so does reopening: lines go to stderr only.
        file.write_line(line(1).as_bytes());
        assert!(file.file.is_none());
        assert_eq!(reports.lock().unwrap().len(), 1, "{reports:?}");
        assert!(
            reports.lock().unwrap()[0]
                .ends_with("log lines go to stderr only, trying again every 10 s"),
            "{reports:?}"
        );
        file.write_line(line(2).as_bytes());
        std::fs::create_dir(&folder).unwrap();
        file.retry_at = Some(Instant::now());
        file.write_line(line(3).as_bytes());
        assert!(read(&settings.path).ends_with(&line(3)));
        assert_eq!(reports.lock().unwrap().len(), 2, "{reports:?}");
    }

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
