//! Windows: `tasklist` to identify a process, `taskkill` to ask it to stop.

use super::{exe_name, Identity};

/// From `tasklist`: the image name (no start time).
pub(super) fn identify(pid: u32) -> Option<Identity> {
    let output = std::process::Command::new("tasklist")
        .args(["/FI", &format!("PID eq {pid}"), "/FO", "CSV", "/NH"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "start_all.exe","12345","Console","1","10,000 K"
    let line = text.lines().find(|l| l.starts_with('"'))?;
    let mut columns = line.split("\",\"");
    let image = columns.next()?.trim_start_matches('"');
    let listed_pid = columns.next()?;
    if listed_pid != pid.to_string() {
        return None;
    }
    Some(Identity {
        name: exe_name(std::path::Path::new(image))?,
        start: None,
    })
}

/// `taskkill` without `/F`: a close request the service handles like Ctrl+C.
pub(super) fn terminate(pid: u32) -> Result<(), String> {
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
