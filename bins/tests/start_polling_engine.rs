//! start_polling_engine and start_buffer_writer as separate processes, the writer stopped and
//! started again while the engine polls, with the defaults a user gets (queue of 10,000,
//! retry delays 1, 2, 4 s).

mod common;

use std::time::Duration;

use common::*;

/// 40 tags every 10 ms on one simulated PLC: up to 4,000 values a second.
const TAGS: usize = 40;

fn polling_file(dir: &std::path::Path) {
    let tags: Vec<String> = (0..TAGS).map(|i| format!("\"D{}\"", 100 + i)).collect();
    std::fs::write(
        dir.join("polling.toml"),
        format!(
            "[[plc]]\nplc_code = \"PLC01\"\ndriver = \"simulated\"\n\n[[group]]\nname = \"FAST\"\n\
             mode = \"FIXED\"\ninterval_ms = 10\nplc_code = \"PLC01\"\ntags = [{}]\n",
            tags.join(", ")
        ),
    )
    .unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The number after `label` in `line` ("forwarded: 123,").
fn figure(line: &str, label: &str) -> u64 {
    let start = line
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in {line}"))
        + label.len();
    line[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number after {label:?} in {line}"))
}

/// Milliseconds since midnight of a log line's timestamp (`2025-11-02T14:30:45.123Z ...`).
fn log_millis(line: &str) -> i64 {
    let time = &line[11..23];
    let h: i64 = time[0..2].parse().unwrap();
    let m: i64 = time[3..5].parse().unwrap();
    let s: i64 = time[6..8].parse().unwrap();
    let ms: i64 = time[9..12].parse().unwrap();
    ((h * 60 + m) * 60 + s) * 1000 + ms
}

#[test]
fn every_polled_value_reaches_the_table_or_is_counted_while_the_writer_restarts() {
    let dir = tempfile::tempdir().unwrap();
    polling_file(dir.path());
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let writer_env = [("API_BIND", bind.as_str())];
    let db = dir.path().join("data/tag_values.db");

    let mut writer = Running::spawn(command("start_buffer_writer", dir.path(), &writer_env));
    writer.wait_for_line("Buffer and SQLite Writer running");
    let mut engine_command = command("start_polling_engine", dir.path(), &[]);
    engine_command.args([
        "--config",
        "polling.toml",
        "--writer",
        &format!("http://{bind}"),
    ]);
    let mut engine = Running::spawn(engine_command);
    engine.wait_for_line("Polling engine running with 1 groups");
    engine.wait_for_line(&format!(
        "Forwarding to http://{bind}/api/buffer/ingest (local queue max 10000 values"
    ));
    eventually("values in the table", || {
        db.exists() && count_rows(&db, "") >= 1_000
    });

    // The writer stops (it flushes what it took); the engine keeps polling and holds values.
    writer.terminate();
    let (exit, _) = writer.wait_exit(Duration::from_secs(10));
    assert!(exit.success(), "{}", writer.output());
    // Attempts 1 s, 2 s and 4 s apart: wait for three, so the outage outlasts the queue.
    eventually("three 'Writer unreachable' lines", || {
        engine
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("Writer unreachable at"))
            .count()
            >= 3
    });
    let mut writer = Running::spawn(command("start_buffer_writer", dir.path(), &writer_env));
    writer.wait_for_line("Buffer and SQLite Writer running");
    engine.wait_for_line("takes values again after");
    let after_restart = count_rows(&db, "");
    eventually("values polled after the restart in the table", || {
        count_rows(&db, "") >= after_restart + 2_000
    });

    engine.interrupt();
    let (exit, _) = engine.wait_exit(Duration::from_secs(15));
    let output = engine.output();
    assert!(exit.success(), "{output}");
    let summary = engine.wait_for_line("Values polled: ");
    writer.terminate();
    let (exit, _) = writer.wait_exit(Duration::from_secs(10));
    assert!(exit.success(), "{}", writer.output());

    let polled = figure(&summary, "Values polled: ");
    let forwarded = figure(&summary, "forwarded: ");
    let refused = figure(&summary, "refused by the writer: ");
    let overflow = figure(&summary, "local queue overflow: ");
    let backed_up = figure(&summary, "saved to backup: ");
    let lost = figure(&summary, "lost: ");
    let rows = count_rows(&db, "") as u64;
    // Every polled value is in the table or counted as overflow.
    assert_eq!(rows, forwarded, "{summary}");
    assert_eq!((refused, backed_up, lost), (0, 0, 0), "{output}");
    assert_eq!(polled, rows + overflow, "{summary}");
    assert_eq!(polled % TAGS as u64, 0, "whole polls only: {summary}");
    // The outage (at least 1 + 2 + 4 s at up to 4,000 values a second) outlasted the queue.
    assert!(overflow > 0, "{summary}");
    assert!(
        output.contains("This is the polling engine's local queue"),
        "{output}"
    );
    // Nothing went to the writer's backup: it took everything it accepted into the table.
    let backups = files_in(&dir.path().join("backup"));
    assert!(
        !backups.iter().any(|name| name.starts_with("backup_")),
        "{backups:?}"
    );

    // Said at most once a second.
    let unreachable: Vec<i64> = output
        .lines()
        .filter(|l| l.contains("Writer unreachable at"))
        .map(log_millis)
        .collect();
    assert!(unreachable.len() >= 3, "{output}");
    for pair in unreachable.windows(2) {
        assert!(pair[1] - pair[0] >= 950, "{output}");
    }
}

#[test]
fn a_writer_that_never_comes_leaves_the_values_in_a_backup_file() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut engine_command = command("start_polling_engine", dir.path(), &[]);
    engine_command.args(["--writer", &format!("http://127.0.0.1:{port}")]);
    let mut engine = Running::spawn(engine_command);
    engine.wait_for_line("Polling engine running with 3 groups");
    // LINE1_PROCESS1 polls 10 tags at once, then every second; LINE2_PROCESS2 10 every 5 s.
    engine.wait_for_line("Writer unreachable at");
    engine.terminate();
    let (exit, _) = engine.wait_exit(Duration::from_secs(15));
    let output = engine.output();
    assert!(exit.success(), "{output}");
    let summary = engine.wait_for_line("Values polled: ");
    let polled = figure(&summary, "Values polled: ");
    let backed_up = figure(&summary, "saved to backup: ");
    assert!(polled >= 20, "{summary}");
    assert_eq!(figure(&summary, "forwarded: "), 0, "{summary}");
    assert_eq!(backed_up, polled, "{summary}");
    let files: Vec<String> = files_in(&dir.path().join("backup"))
        .into_iter()
        .filter(|name| name.starts_with("backup_"))
        .collect();
    assert_eq!(files.len(), 1, "{output}");
    let saved = csv_backup::read_backup(&dir.path().join("backup").join(&files[0])).unwrap();
    assert_eq!(saved.len() as u64, backed_up);
    assert!(
        output.contains("(replay them with replay_backup)"),
        "{output}"
    );
}

#[test]
fn a_bad_writer_address_exits_2_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine_command = command("start_polling_engine", dir.path(), &[]);
    engine_command.args(["--writer", "plant-pc:8000"]);
    let (status, output) = run(&mut engine_command);
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(
        output.contains("--writer \"plant-pc:8000\": must be an http:// address"),
        "{output}"
    );
}

/// TIMESTAMP_ZONE=local stamps polled values with the plant's wall clock (here nine hours
/// east of UTC), as start_all does.
#[test]
fn timestamp_zone_local_stamps_polls_with_the_wall_clock() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let before = chrono::Utc::now().naive_utc();
    let mut engine_command = command(
        "start_polling_engine",
        dir.path(),
        &[("TIMESTAMP_ZONE", "local"), ("TZ", "JST-9")],
    );
    engine_command.args(["--writer", &format!("http://127.0.0.1:{port}")]);
    let mut engine = Running::spawn(engine_command);
    engine.wait_for_line("Writer unreachable at");
    engine.terminate();
    let (exit, _) = engine.wait_exit(Duration::from_secs(15));
    let after = chrono::Utc::now().naive_utc();
    assert!(exit.success(), "{}", engine.output());
    let backup = dir.path().join("backup");
    let files: Vec<String> = files_in(&backup)
        .into_iter()
        .filter(|name| name.starts_with("backup_"))
        .collect();
    assert_eq!(files.len(), 1, "{}", engine.output());
    let saved = csv_backup::read_backup(&backup.join(&files[0])).unwrap();
    assert!(!saved.is_empty());
    let nine_hours = chrono::Duration::hours(9);
    let slack = chrono::Duration::seconds(1);
    for value in &saved {
        let at = value.timestamp();
        assert!(
            before + nine_hours - slack <= at && at <= after + nine_hours + slack,
            "{at} is not UTC + 9 h between {before} and {after}"
        );
    }
}
