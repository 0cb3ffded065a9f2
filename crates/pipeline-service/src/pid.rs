//! The PID file that lets `stop_all` find the running service, and the check that the
//! process it names really is that service.
//!
//! A PID alone is not enough: after a reboot or a crash the number is reused by whatever
//! program gets it next, and `0`, `1` or a negative number would make `kill()` signal a whole
//! process group or init. So the file records, besides the PID, the executable and the start
//! time of the process, and a PID is acted on only when a live process still matches them:
//!
//! ```text
//! 12345
//! exe=/opt/bow/start_all
//! start=8123456
//! ```
//!
//! `start` is the process start time in clock ticks since boot from `/proc/<pid>/stat` on
//! Linux, the `ps -o lstart` text on other Unix systems; Windows records none and compares
//! the image name that `tasklist` reports. A file of the older one-line form is checked by
//! executable name only. Anything that does not match is a stale file: reported, removed,
//! never signalled.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::platform::{self, exe_name, Identity};

/// The binaries that write a PID file: a process of another name is never ours.
pub const SERVICE_BINARIES: [&str; 2] = ["start_all", "start_buffer_writer"];

/// What a PID file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PidRecord {
    /// The process id, as written (it may be 0 or 1 in a damaged file).
    pub pid: u32,
    /// The executable's path, when recorded.
    pub exe: Option<PathBuf>,
    /// The process start time, when recorded (see the module documentation).
    pub start: Option<String>,
}

/// Who the process named by a PID file is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The service that wrote the file is running.
    Running,
    /// The PID cannot be a service (0 or 1: a process group, or init).
    Invalid,
    /// No process has this PID any more.
    Exited,
    /// The PID now belongs to another program (named, when known).
    Reused(String),
}

impl Verdict {
    /// Why the file is stale, for the operator; `None` for [`Verdict::Running`].
    pub fn stale_reason(&self, pid: u32) -> Option<String> {
        match self {
            Verdict::Running => None,
            Verdict::Invalid => Some(format!("it holds PID {pid}, which is no service")),
            Verdict::Exited => Some(format!("PID {pid} has exited")),
            Verdict::Reused(program) => Some(format!(
                "PID {pid} is now another program ({program}), not this service"
            )),
        }
    }
}

/// The record in `path`, if the file exists and holds one.
pub fn read_pid(path: &Path) -> Result<Option<PidRecord>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
    };
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default().trim();
    let pid = first.parse().map_err(|_| {
        format!(
            "{} does not hold a process id: {:?}",
            path.display(),
            text.trim()
        )
    })?;
    let mut record = PidRecord {
        pid,
        exe: None,
        start: None,
    };
    for line in lines {
        match line.split_once('=') {
            Some(("exe", exe)) => record.exe = Some(PathBuf::from(exe)),
            Some(("start", start)) => record.start = Some(start.to_owned()),
            _ => {}
        }
    }
    Ok(Some(record))
}

/// This process, as a PID file records it.
pub fn current_record() -> PidRecord {
    let pid = std::process::id();
    PidRecord {
        pid,
        exe: std::env::current_exe().ok(),
        start: platform::identify(pid).and_then(|identity| identity.start),
    }
}

/// Checks whether the process `record` names is the service that wrote it.
pub fn verify(record: &PidRecord) -> Verdict {
    if record.pid <= 1 {
        return Verdict::Invalid;
    }
    match platform::identify(record.pid) {
        None => Verdict::Exited,
        Some(identity) => judge(record, &identity),
    }
}

/// The pure half of [`verify`]: does the live process match the record?
fn judge(record: &PidRecord, identity: &Identity) -> Verdict {
    let same_start = match (&record.start, &identity.start) {
        (Some(recorded), Some(live)) => Some(recorded == live),
        _ => None,
    };
    let recorded_name = record.exe.as_deref().and_then(exe_name);
    let same_name = match &recorded_name {
        Some(name) => names_match(name, &identity.name),
        None => SERVICE_BINARIES
            .iter()
            .any(|name| names_match(name, &identity.name)),
    };
    match same_start {
        Some(true) if same_name => Verdict::Running,
        // The start time decides: a process started at another moment is another process,
        // even one of our own binaries.
        Some(_) => Verdict::Reused(identity.name.clone()),
        None if same_name => Verdict::Running,
        None => Verdict::Reused(identity.name.clone()),
    }
}

/// Linux cuts the command name to 15 bytes (`start_buffer_wr`); it is the fallback when the
/// executable link cannot be read.
fn names_match(recorded: &str, live: &str) -> bool {
    recorded == live || (live.len() == 15 && recorded.starts_with(live))
}

/// Writes this process's record to `path`, refusing if the service it names is running;
/// a stale file (an exited process, a reused PID, PID 0) is reported and replaced.
pub fn write_pid(path: &Path) -> Result<(), String> {
    if let Ok(Some(existing)) = read_pid(path) {
        if existing.pid != std::process::id() {
            match verify(&existing) {
                Verdict::Running => {
                    return Err(format!(
                        "another service is running (PID {}, from {}): stop it with stop_all, \
                         or set PID_FILE to run a second one",
                        existing.pid,
                        path.display()
                    ))
                }
                verdict => {
                    if let Some(reason) = verdict.stale_reason(existing.pid) {
                        log::warn!("Stale PID file {} replaced: {reason}", path.display());
                    }
                }
            }
        }
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            format!(
                "cannot create the folder of PID_FILE {}: {e}",
                path.display()
            )
        })?;
    }
    let record = current_record();
    let mut text = format!("{}\n", record.pid);
    if let Some(exe) = &record.exe {
        text.push_str(&format!("exe={}\n", exe.display()));
    }
    if let Some(start) = &record.start {
        text.push_str(&format!("start={start}\n"));
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write PID_FILE {}: {e}", path.display()))
}

/// Removes the PID file if it still names this process.
pub fn remove_pid(path: &Path) {
    if read_pid(path).ok().flatten().map(|r| r.pid) == Some(std::process::id()) {
        let _ = std::fs::remove_file(path);
    }
}

/// Whether a process with this PID exists (0 and 1 never count).
pub fn is_alive(pid: u32) -> bool {
    pid > 1 && platform::identify(pid).is_some()
}

/// Asks the service `record` names to stop (SIGTERM on Unix, `taskkill` on Windows), after
/// checking that it is the service: anything else is refused, never signalled.
pub fn request_stop(record: &PidRecord) -> Result<(), String> {
    if let Some(reason) = verify(record).stale_reason(record.pid) {
        return Err(format!("not signalled: {reason}"));
    }
    platform::terminate(record.pid)
}

/// Waits until the process is gone; returns how long that took, or `None` after `timeout`.
pub fn wait_for_exit(pid: u32, timeout: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if !is_alive(pid) {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_reads_and_removes_our_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/service.pid");
        assert_eq!(read_pid(&path), Ok(None));
        write_pid(&path).unwrap();
        let record = read_pid(&path).unwrap().unwrap();
        assert_eq!(record, current_record());
        assert_eq!(record.pid, std::process::id());
        assert!(is_alive(std::process::id()));
        // The test binary is not one of the service binaries, but the record matches it.
        assert_eq!(verify(&record), Verdict::Running);
        remove_pid(&path);
        assert!(!path.exists());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_record_with_another_start_time_is_a_reused_pid() {
        let mut record = current_record();
        assert!(record.start.is_some(), "{record:?}");
        record.start = Some("1".into());
        assert!(matches!(verify(&record), Verdict::Reused(_)));
    }

    #[test]
    fn pids_0_and_1_are_never_a_service() {
        for pid in [0, 1] {
            let record = PidRecord {
                pid,
                exe: None,
                start: None,
            };
            assert_eq!(verify(&record), Verdict::Invalid);
            assert!(!is_alive(pid));
            let error = request_stop(&record).unwrap_err();
            assert_eq!(
                error,
                format!("not signalled: it holds PID {pid}, which is no service")
            );
        }
    }

    #[test]
    fn judging_a_live_process_against_the_record() {
        let live = |name: &str, start: Option<&str>| Identity {
            name: name.into(),
            start: start.map(str::to_owned),
        };
        let record = |exe: Option<&str>, start: Option<&str>| PidRecord {
            pid: 42,
            exe: exe.map(PathBuf::from),
            start: start.map(str::to_owned),
        };
        let full = record(Some("/opt/bow/start_all"), Some("900"));
        assert_eq!(
            judge(&full, &live("start_all", Some("900"))),
            Verdict::Running
        );
        assert_eq!(
            judge(&full, &live("start_all", Some("901"))),
            Verdict::Reused("start_all".into())
        );
        assert_eq!(
            judge(&full, &live("sleep", Some("900"))),
            Verdict::Reused("sleep".into())
        );
        // Windows: no start time, the image name decides.
        let windows = record(Some("C:/bow/start_all.exe"), None);
        assert_eq!(judge(&windows, &live("start_all", None)), Verdict::Running);
        // An old one-line file: only our binaries' names count.
        let bare = record(None, None);
        assert_eq!(
            judge(&bare, &live("start_buffer_writer", Some("5"))),
            Verdict::Running
        );
        assert_eq!(
            judge(&bare, &live("sleep", Some("5"))),
            Verdict::Reused("sleep".into())
        );
        assert_eq!(
            judge(&bare, &live("start_buffer_wr", None)),
            Verdict::Running
        );
        assert_eq!(
            exe_name(Path::new("/x/start_all (deleted)")).as_deref(),
            Some("start_all")
        );
    }

    #[test]
    fn a_stale_file_is_taken_over_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("service.pid");
        std::fs::write(&path, "4000000\n").unwrap(); // above any Linux pid_max
        assert!(!is_alive(4_000_000));
        write_pid(&path).unwrap();
        assert_eq!(read_pid(&path).unwrap().unwrap().pid, std::process::id());
        std::fs::write(&path, "0\n").unwrap();
        write_pid(&path).unwrap();
        std::fs::write(&path, "not a pid").unwrap();
        assert!(read_pid(&path)
            .unwrap_err()
            .contains("does not hold a process id"));
    }
}
