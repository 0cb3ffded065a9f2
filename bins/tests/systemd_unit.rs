//! The shipped systemd unit (`deploy/systemd/buffer-oracle-writer.service`): the real
//! start_all run the way the unit runs it (its ExecStart arguments, WorkingDirectory and
//! EnvironmentFile, with the unit's absolute folders moved into a temp dir) is stopped by
//! SIGTERM within the unit's TimeoutStopSec with exit 0 (nothing left unsaved), values in the
//! database, none in backup, the log in LOG_FILE; and
//! `systemd-analyze verify` accepts the unit.
//!
//! `systemd-analyze` comes from Debian's `systemd` package (`.ci/run` installs it). Without it
//! the verify test says SKIPPED on stderr and passes, unless REQUIRE_SYSTEMD=1 (set by CI).
#![cfg(unix)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/systemd")
        .join(path)
}

/// The `[Service]` section's settings (the last one wins, as in systemd).
fn service_section(unit: &str) -> BTreeMap<String, String> {
    let mut settings = BTreeMap::new();
    let mut in_service = false;
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service && !line.is_empty() && !line.starts_with('#') {
            let (key, value) = line.split_once('=').expect("key=value");
            settings.insert(key.to_owned(), value.to_owned());
        }
    }
    settings
}

/// An EnvironmentFile: `KEY=value` lines, `#` comments, optional quotes.
fn environment_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (key, value) = line.split_once('=').expect("KEY=value");
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            (key.trim().to_owned(), value.to_owned())
        })
        .collect()
}

/// The unit's absolute folders, moved under `root` (and the binary to the one cargo built).
struct Paths {
    root: PathBuf,
}

impl Paths {
    fn map(&self, text: &str) -> String {
        text.replace(
            "/opt/buffer-oracle-writer/bin/start_all",
            &binary("start_all").to_string_lossy(),
        )
        .replace(
            "/var/lib/buffer-oracle-writer",
            &self.root.join("var/lib").to_string_lossy(),
        )
        .replace(
            "/var/log/buffer-oracle-writer",
            &self.root.join("var/log").to_string_lossy(),
        )
        .replace(
            "/etc/buffer-oracle-writer",
            &self.root.join("etc").to_string_lossy(),
        )
    }
}

fn seconds(value: &str) -> Duration {
    let number = value.strip_suffix('s').unwrap_or(value);
    Duration::from_secs(number.parse().expect("TimeoutStopSec in seconds"))
}

#[test]
fn start_all_runs_as_the_unit_says_and_stops_on_sigterm_within_the_stop_timeout() {
    let unit = std::fs::read_to_string(deploy("buffer-oracle-writer.service")).unwrap();
    let service = service_section(&unit);
    assert_eq!(service["KillSignal"], "SIGTERM");
    assert_eq!(service["Restart"], "on-failure");
    let stop_timeout = seconds(&service["TimeoutStopSec"]);
    // Longer than the service's own shutdown bound, so systemd never kills a flush.
    assert!(
        stop_timeout > pipeline_service::FLUSH_GRACE + Duration::from_secs(20),
        "TimeoutStopSec {stop_timeout:?} does not cover the flush grace and an Oracle call"
    );

    let temp = tempfile::tempdir().unwrap();
    let paths = Paths {
        root: temp.path().to_owned(),
    };
    // What the install steps in the unit's header and StateDirectory/LogsDirectory create.
    let etc = paths.root.join("etc");
    for dir in [
        &etc,
        &paths.root.join("var/lib"),
        &paths.root.join("var/log"),
    ] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/polling.toml"),
        etc.join("polling.toml"),
    )
    .unwrap();
    let env_file = PathBuf::from(paths.map(&service["EnvironmentFile"]));
    std::fs::copy(deploy("buffer-oracle-writer.env"), &env_file).unwrap();

    let exec: Vec<String> = paths
        .map(&service["ExecStart"])
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let working_dir = PathBuf::from(paths.map(&service["WorkingDirectory"]));
    let mut command = Command::new(&exec[0]);
    command
        .args(&exec[1..])
        .current_dir(&working_dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    let env_text = std::fs::read_to_string(&env_file).unwrap();
    for (key, value) in environment_file(&env_text) {
        // The shipped port may be taken on a test machine; everything else as shipped.
        let value = if key == "API_BIND" {
            "127.0.0.1:0".to_owned()
        } else {
            paths.map(&value)
        };
        command.env(key, value);
    }

    let mut running = Running::spawn(command);
    let base = running.base_url();
    let database = working_dir.join("data/tag_values.db");
    eventually("polled values in the database", || {
        database.exists() && count_rows(&database, "") > 0
    });

    running.terminate();
    let (status, took) = running.wait_exit(stop_timeout);
    assert!(status.success(), "{status}:\n{}", running.output());
    assert!(took < stop_timeout, "stopping took {took:?}");
    let output = running.output();
    assert!(output.contains("Shutdown signal received"), "{output}");

    // Exit 0 means nothing was left unsaved; a healthy database leaves nothing in backup.
    let written = count_rows(&database, "");
    let backup = working_dir.join("backup");
    let backups: Vec<String> = files_in(&backup)
        .into_iter()
        .filter(|name| name.starts_with("backup_"))
        .collect();
    assert!(
        backups.is_empty(),
        "backup files after a clean stop: {backups:?}"
    );
    assert!(written > 0);
    // LOG_FILE (under LogsDirectory) holds the same log.
    let log = std::fs::read_to_string(paths.root.join("var/log/buffer_writer.log")).unwrap();
    assert!(log.contains("Shutdown signal received"), "{log}");
    assert!(
        log.contains(&base),
        "the API address is not in LOG_FILE:\n{log}"
    );
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    // verify checks that ExecStart is executable: point it at the binary cargo built, in a
    // unit of the same name.
    let unit = std::fs::read_to_string(deploy("buffer-oracle-writer.service")).unwrap();
    let unit = unit.replace(
        "/opt/buffer-oracle-writer/bin/start_all",
        &binary("start_all").to_string_lossy(),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("buffer-oracle-writer.service");
    std::fs::write(&path, unit).unwrap();
    let output = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .expect("run systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "systemd-analyze verify:\n{text}");
    // Unknown keys and misplaced settings are only warnings: none is allowed either.
    let own: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("buffer-oracle-writer.service"))
        .collect();
    assert!(own.is_empty(), "systemd-analyze verify warned:\n{text}");
}

/// `systemd-analyze` on PATH; when missing, None after a loud SKIPPED, or a panic under
/// REQUIRE_SYSTEMD=1.
fn systemd_analyze() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("systemd-analyze"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        let message =
            "systemd-analyze not found (Debian package systemd): the unit file is not verified";
        if std::env::var("REQUIRE_SYSTEMD").as_deref() == Ok("1") {
            panic!("REQUIRE_SYSTEMD=1: {message}");
        }
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("SKIPPED: {message}\n").as_bytes(),
        );
    }
    found
}
