//! The PID file that lets `stop_all` find the running service.

use std::path::Path;
use std::time::{Duration, Instant};

/// The PID recorded in `path`, if the file exists and holds one.
pub fn read_pid(path: &Path) -> Result<Option<u32>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| {
            format!(
                "{} does not hold a process id: {:?}",
                path.display(),
                text.trim()
            )
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(format!("cannot read {}: {error}", path.display())),
    }
}

/// Writes our PID to `path`, refusing if another live process holds it.
pub fn write_pid(path: &Path) -> Result<(), String> {
    if let Ok(Some(pid)) = read_pid(path) {
        if pid != std::process::id() && is_alive(pid) {
            return Err(format!(
                "another service is running (PID {pid}, from {}): stop it with stop_all, or set \
                 PID_FILE to run a second one",
                path.display()
            ));
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
    std::fs::write(path, format!("{}\n", std::process::id()))
        .map_err(|e| format!("cannot write PID_FILE {}: {e}", path.display()))
}

/// Removes the PID file if it still names this process.
pub fn remove_pid(path: &Path) {
    if read_pid(path).ok().flatten() == Some(std::process::id()) {
        let _ = std::fs::remove_file(path);
    }
}

/// Whether a process with this PID exists.
#[cfg(unix)]
pub fn is_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // Signal 0 checks existence and permission without sending anything.
    // SAFETY: kill has no memory effects; any pid value is allowed.
    let result = unsafe { libc::kill(pid, 0) };
    let exists = result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    exists && !is_zombie(pid)
}

/// A process that has exited but whose parent has not reaped it yet still answers kill(0);
/// on Linux /proc tells it apart (state Z).
#[cfg(unix)]
fn is_zombie(pid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after_name = stat.rfind(')')?;
            stat[after_name + 1..]
                .split_whitespace()
                .next()
                .map(|s| s == "Z" || s == "X")
        })
        .unwrap_or(false)
}

/// Whether a process with this PID exists.
#[cfg(not(unix))]
pub fn is_alive(pid: u32) -> bool {
    std::process::Command::new("tasklist")
        .args(["/FI", &format!("PID eq {pid}"), "/NH"])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).contains(&pid.to_string()))
        .unwrap_or(false)
}

/// Asks the process to stop: SIGTERM on Unix, `taskkill` (a close request) on Windows.
#[cfg(unix)]
pub fn request_stop(pid: u32) -> Result<(), String> {
    let target = libc::pid_t::try_from(pid).map_err(|_| format!("PID {pid} is out of range"))?;
    // SAFETY: kill has no memory effects.
    if unsafe { libc::kill(target, libc::SIGTERM) } == 0 {
        Ok(())
    } else {
        Err(format!(
            "cannot signal PID {pid}: {}",
            std::io::Error::last_os_error()
        ))
    }
}

/// Asks the process to stop: SIGTERM on Unix, `taskkill` (a close request) on Windows.
#[cfg(not(unix))]
pub fn request_stop(pid: u32) -> Result<(), String> {
    let status = std::process::Command::new("taskkill")
        .args(["/PID", &pid.to_string()])
        .status()
        .map_err(|e| format!("cannot run taskkill: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("taskkill /PID {pid} failed ({status})"))
    }
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
    fn writes_reads_and_removes_our_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/service.pid");
        assert_eq!(read_pid(&path), Ok(None));
        write_pid(&path).unwrap();
        assert_eq!(read_pid(&path), Ok(Some(std::process::id())));
        assert!(is_alive(std::process::id()));
        remove_pid(&path);
        assert!(!path.exists());
    }

    #[test]
    fn a_stale_pid_file_is_taken_over_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("service.pid");
        std::fs::write(&path, "4000000\n").unwrap(); // above any Linux pid_max
        assert!(!is_alive(4_000_000));
        write_pid(&path).unwrap();
        std::fs::write(&path, "not a pid").unwrap();
        assert!(read_pid(&path)
            .unwrap_err()
            .contains("does not hold a process id"));
    }
}
