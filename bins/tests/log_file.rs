//! The log file: `./logs/buffer_writer.log` by default (the spec's troubleshooting tails it),
//! `LOG_FILE=` (empty) turns it off, the start-up summary says where the log goes.

mod common;

use common::*;

#[test]
fn the_service_logs_to_logs_buffer_writer_log_by_default() {
    let dir = tempfile::tempdir().unwrap();
    // Standard input is closed at once: the service starts, flushes and stops.
    let mut command = command("start_buffer_writer", dir.path(), &[]);
    command.arg("--stdin");
    let (status, output) = run(&mut command);
    assert!(status.success(), "{output}");
    assert!(
        output.contains(
            "[INFO] Log file: ./logs/buffer_writer.log (and stderr; LOG_FILE= turns the file off)"
        ),
        "{output}"
    );
    let log = std::fs::read_to_string(dir.path().join("logs/buffer_writer.log")).unwrap();
    for line in [
        "[INFO] Starting Buffer and SQLite Writer...",
        "[INFO] Log file: ./logs/buffer_writer.log",
        "[INFO] Shutdown complete",
    ] {
        assert!(log.contains(line), "no {line:?} in the file:\n{log}");
    }
}

#[test]
fn an_empty_log_file_setting_logs_to_stderr_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = command("start_buffer_writer", dir.path(), &[("LOG_FILE", "")]);
    command.arg("--stdin");
    let (status, output) = run(&mut command);
    assert!(status.success(), "{output}");
    assert!(
        output.contains("[INFO] Log file: none (stderr only)"),
        "{output}"
    );
    assert!(output.contains("Shutdown complete"), "{output}");
    assert!(!dir.path().join("logs").exists());
}

#[test]
fn a_default_log_file_that_cannot_be_written_warns_but_a_chosen_one_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    // `logs` is a file, so the folder cannot be created.
    std::fs::write(dir.path().join("logs"), "not a folder").unwrap();
    let mut default = command("start_buffer_writer", dir.path(), &[]);
    default.arg("--stdin");
    let (status, output) = run(&mut default);
    assert!(status.success(), "{output}");
    assert!(
        output.contains(
            "[WARNING] Cannot write the default log file (LOG_FILE=./logs/buffer_writer.log: \
             cannot create its folder"
        ),
        "{output}"
    );
    assert!(output.contains("logging to stderr only"), "{output}");
    assert!(
        output.contains("[INFO] Log file: none (stderr only)"),
        "the summary says where the log really goes:\n{output}"
    );
    assert!(output.contains("Shutdown complete"), "{output}");

    let mut chosen = command(
        "start_buffer_writer",
        dir.path(),
        &[("LOG_FILE", "logs/service.log")],
    );
    chosen.arg("--stdin");
    let (status, output) = run(&mut chosen);
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(
        output.contains("Configuration error: LOG_FILE=logs/service.log: cannot create its folder"),
        "{output}"
    );
}

#[test]
fn the_polling_engine_logs_to_its_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = command("start_polling_engine", dir.path(), &[]);
    engine.args(["--config", "missing.toml"]);
    let (status, output) = run(&mut engine);
    assert_eq!(status.code(), Some(2), "{output}");
    let log = std::fs::read_to_string(dir.path().join("logs/polling_engine.log")).unwrap();
    for line in [
        "[INFO] Starting Polling Engine...",
        "[INFO] Log file: ./logs/polling_engine.log",
        "[ERROR] Configuration error: ",
    ] {
        assert!(log.contains(line), "no {line:?} in the file:\n{log}");
    }
    assert!(log.contains("missing.toml"), "{log}");
    assert!(!dir.path().join("logs/buffer_writer.log").exists());
}
