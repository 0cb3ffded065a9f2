//! Unix: `/proc` (Linux) or `ps` (other Unix systems) to identify a process, SIGTERM to stop it.

#[cfg(target_os = "linux")]
pub(super) use linux::identify;
#[cfg(not(target_os = "linux"))]
pub(super) use other::identify;

#[cfg(target_os = "linux")]
mod linux {
    use super::super::{exe_name, Identity};

    /// From `/proc/<pid>/stat`: the start time (field 22, clock ticks since boot), which
    /// tells a reused PID apart; and the executable from `/proc/<pid>/exe` (or the command
    /// name when the link cannot be read, as for another user's process).
    pub(in super::super) fn identify(pid: u32) -> Option<Identity> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        let comm = stat.get(open + 1..close)?.to_owned();
        let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
        // fields[0] is field 3 (state); a zombie has exited but is not reaped yet.
        if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
            return None;
        }
        let start = fields.get(19).map(|s| (*s).to_owned());
        let name = std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .and_then(|exe| exe_name(&exe))
            .unwrap_or(comm);
        Some(Identity { name, start })
    }
}

#[cfg(not(target_os = "linux"))]
mod other {
    use super::super::{exe_name, Identity};

    /// From `ps`: the start time (`lstart`) and the command.
    pub(in super::super) fn identify(pid: u32) -> Option<Identity> {
        let output = std::process::Command::new("ps")
            .args(["-o", "lstart=", "-o", "comm=", "-p", &pid.to_string()])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&output.stdout);
        let line = text.lines().next()?.trim();
        // lstart is five words: `Mon Nov  3 14:30:45 2025`.
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() < 6 {
            return None;
        }
        let start = words[..5].join(" ");
        let name = exe_name(std::path::Path::new(&words[5..].join(" ")))?;
        Some(Identity {
            name,
            start: Some(start),
        })
    }
}

/// SIGTERM, which the service handles like Ctrl+C.
pub(super) fn terminate(pid: u32) -> Result<(), String> {
    // pid::verify() has refused 0 and 1; a pid_t that does not fit would be negative.
    let target = libc::pid_t::try_from(pid)
        .ok()
        .filter(|&p| p > 1)
        .ok_or_else(|| format!("PID {pid} is out of range"))?;
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
