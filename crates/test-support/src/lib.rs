#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod fake_mc;
pub mod fake_modbus;
pub mod simulators;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long [`eventually`] waits: generous, because CI shares two cores among many builds.
pub const EVENTUALLY: Duration = Duration::from_secs(30);

/// Polls `condition` every 20 ms until it holds; panics naming `what` after [`EVENTUALLY`].
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < EVENTUALLY,
            "timed out after {EVENTUALLY:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The names of the entries in `dir` (none if it cannot be read), sorted.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The workspace's `target/` directory (`CARGO_TARGET_DIR` when set).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
    }
}
