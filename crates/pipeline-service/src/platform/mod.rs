//! Everything that differs between Unix and Windows, in one place: who a process is (for the
//! PID file's check), how `stop_all` asks the service to stop, and the signal handling that
//! turns Ctrl+C, SIGTERM (and, on Windows, a stop request from the service manager) into the
//! graceful shutdown.
//!
//! `unix.rs` and `windows.rs` give the same functions; the rest of the crate calls only this
//! module, so a `cfg` attribute appears nowhere else.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::Sender;
use std::sync::OnceLock;

use oracle_batch::WriterMonitor;

use crate::service::StopReason;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as os;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as os;

/// A live process, as the platform describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The executable's file name (without `.exe`).
    pub(crate) name: String,
    /// The start time, where the platform gives one.
    pub(crate) start: Option<String>,
}

/// The live process `pid`, or `None` when there is none (or it is a zombie).
pub(crate) fn identify(pid: u32) -> Option<Identity> {
    os::identify(pid)
}

/// Asks process `pid` to stop gracefully: SIGTERM on Unix, a close request on Windows.
pub(crate) fn terminate(pid: u32) -> Result<(), String> {
    os::terminate(pid)
}

/// `start_all` from `/opt/bow/start_all`, `start_all (deleted)` or `start_all.exe`.
pub(crate) fn exe_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_string_lossy();
    let name = name.strip_suffix(" (deleted)").unwrap_or(&name);
    let name = name.strip_suffix(".exe").unwrap_or(name);
    Some(name.to_owned())
}

/// Interrupts so far (Ctrl+C, SIGINT, SIGTERM, a service stop request).
static INTERRUPTS: AtomicU32 = AtomicU32::new(0);
/// Where an interrupt goes: the service's stop channel and its writer.
static INTERRUPT_TARGET: OnceLock<(Sender<StopReason>, WriterMonitor)> = OnceLock::new();

/// Installs the handler for SIGINT and SIGTERM (Ctrl+C, Ctrl+Break and closing the console on
/// Windows); each one calls [`interrupt`].
pub(crate) fn install_signal_handler(
    stop: Sender<StopReason>,
    monitor: WriterMonitor,
) -> Result<(), String> {
    if INTERRUPT_TARGET.set((stop, monitor)).is_err() {
        return Err("the signal handler is already installed".into());
    }
    ctrlc::set_handler(interrupt).map_err(|e| format!("cannot install the Ctrl+C handler: {e}"))
}

/// What a signal does: the first stops the service gracefully (the service's
/// [`wait`](crate::Service::wait) returns), the second makes the writer save everything left
/// to backup at once, the third exits immediately. A Windows service stop request calls
/// this too, so it runs the same shutdown as Ctrl+C.
pub fn interrupt() {
    let count = INTERRUPTS.fetch_add(1, Ordering::SeqCst) + 1;
    let Some((stop, monitor)) = INTERRUPT_TARGET.get() else {
        return;
    };
    match count {
        1 => {
            log::info!("Shutdown signal received");
            let _ = stop.send(StopReason::Signal);
        }
        2 => {
            log::warn!(
                "Second interrupt: saving everything left to CSV backup now (press Ctrl+C \
                 again to exit at once, losing what is not saved yet)"
            );
            monitor.hurry();
        }
        _ => {
            log::error!("Third interrupt: exiting at once");
            std::process::exit(130);
        }
    }
}
