//! start_buffer_writer as a real process: ingest over HTTP, metrics, bad input, shutdown.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn ingests_10000_values_and_stops_cleanly_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let mut service = Running::spawn(command("start_buffer_writer", dir.path(), &[]));
    let base = service.base_url();
    service.wait_for_line("Press Ctrl+C to stop.");
    for chunk in 0..10 {
        let (status, body) = post(
            &format!("{base}/api/buffer/ingest"),
            &ingest_body(chunk * 1000, 1000),
        );
        assert_eq!(status, 200, "{body}");
        let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(reply["accepted"], 1000);
        assert_eq!(reply["displaced"], 0);
    }
    eventually("10,000 rows written", || {
        get_json(&format!("{base}/api/buffer/metrics"))["accounting"]["written"] == 10_000
    });
    let metrics = get_json(&format!("{base}/api/buffer/metrics"));
    for (section, fields) in [
        (
            "buffer",
            &[
                "current_size",
                "max_size",
                "utilization_pct",
                "overflow_count",
            ][..],
        ),
        (
            "writer",
            &[
                "total_writes",
                "successful_writes",
                "failed_writes",
                "success_rate_pct",
                "avg_batch_size",
                "avg_write_latency_ms",
                "last_write_time",
            ][..],
        ),
        ("backup", &["file_count"][..]),
    ] {
        for field in fields {
            assert!(
                !metrics[section][field].is_null(),
                "{section}.{field} missing: {metrics}"
            );
        }
    }
    assert_eq!(metrics["buffer"]["max_size"], 100_000);
    assert_eq!(metrics["buffer"]["overflow_count"], 0);
    assert_eq!(metrics["writer"]["failed_writes"], 0);
    assert_eq!(metrics["writer"]["success_rate_pct"], 100.0);
    assert_eq!(metrics["backup"]["file_count"], 0);
    assert_eq!(metrics["accounting"]["accepted"], 10_000);
    assert_eq!(metrics["accounting"]["balanced"], true);
    let (status, health) = get(&format!("{base}/api/buffer/health"));
    assert_eq!(status, 200, "{health}");
    assert!(health.contains("\"status\":\"healthy\""), "{health}");
    let window = get_json(&format!("{base}/api/buffer/writer/metrics"));
    assert_eq!(window["window_sec"], 300);
    assert_eq!(window["items_written"], 10_000);
    assert!(window["p99_latency_ms"].as_f64().unwrap() >= 0.0);
    let (status, prometheus) = get(&format!("{base}/metrics"));
    assert_eq!(status, 200);
    assert!(
        prometheus.contains("buffer_oracle_writer_rows_written_total 10000"),
        "{prometheus}"
    );
    let names: Vec<&str> = prometheus
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert!(
        names.iter().all(|l| l.starts_with("buffer_oracle_writer_")),
        "{prometheus}"
    );

    service.interrupt();
    let (status, took) = service.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}:\n{}", service.output());
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    let log = service.output();
    for line in [
        "Shutdown signal received",
        "Flushing remaining buffer data...",
        "SQLiteWriter thread stopped",
        "Final metrics:",
        "  Overflow count: 0",
        "Shutdown complete",
    ] {
        assert!(log.contains(line), "no {line:?} in\n{log}");
    }
    assert_eq!(
        count_rows(&dir.path().join("data/tag_values.db"), ""),
        10_000
    );
    assert!(
        !dir.path().join("buffer-oracle-writer.pid").exists(),
        "PID file left behind"
    );
}

#[test]
fn bad_ingest_gets_400_naming_the_item_and_field_and_loses_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let mut service = Running::spawn(command("start_buffer_writer", dir.path(), &[]));
    let base = service.base_url();
    let url = format!("{base}/api/buffer/ingest");
    let cases = [
        (
            r#"[{"plc_code":"PLC01","tag_address":"D100"},{"plc_code":"PLC01","tag_address":""}]"#,
            1,
            "tag_address",
        ),
        (
            r#"[{"plc_code":"PLC01","tag_address":"D1","tag_value":"high"}]"#,
            0,
            "tag_value",
        ),
        (
            r#"[{"plc_code":"PLC01","tag_address":"D1","quality":"FINE"}]"#,
            0,
            "quality",
        ),
        (
            r#"[{"plc_code":"PLC01","tag_address":"D1","timestamp":"yesterday"}]"#,
            0,
            "timestamp",
        ),
    ];
    for (body, item, field) in cases {
        let (status, reply) = post(&url, body);
        assert_eq!(status, 400, "{reply}");
        let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(reply["item"], item, "{reply}");
        assert_eq!(reply["field"], field, "{reply}");
        assert!(reply["error"]
            .as_str()
            .unwrap()
            .starts_with(&format!("item {item}: {field}")));
    }
    let (status, reply) = post(&url, "not json");
    assert_eq!(status, 400, "{reply}");
    // All-or-nothing: the good first item of the first case was not accepted either.
    let metrics = get_json(&format!("{base}/api/buffer/metrics"));
    assert_eq!(metrics["accounting"]["accepted"], 0);
    // 16 MiB is the limit.
    let huge = format!("[{}]", "0,".repeat(9 * 1024 * 1024));
    let (status, _) = post(&url, &huge);
    assert_eq!(status, 413);
    // A good batch after all that is taken.
    let (status, reply) = post(
        &url,
        r#"[{"plc_code":"PLC01","tag_address":"D100","tag_value":1}]"#,
    );
    assert_eq!(
        (status, reply.as_str()),
        (200, r#"{"accepted":1,"displaced":0}"#)
    );
    service.terminate();
    let (status, _) = service.wait_exit(Duration::from_secs(10));
    assert!(status.success());
    assert_eq!(count_rows(&dir.path().join("data/tag_values.db"), ""), 1);
}

#[test]
fn reads_ndjson_from_stdin_skipping_bad_lines_and_exits_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines: Vec<String> = (0..1000)
        .map(|i| format!(r#"{{"plc_code":"PLC01","tag_address":"D{}","timestamp":"2025-11-02T14:30:{:02}.{:06}","tag_value":{i}}}"#, i % 10, i / 100, i))
        .collect();
    lines.insert(
        500,
        r#"{"plc_code":"PLC01","tag_address":"D 1!","tag_value":1}"#.into(),
    );
    lines.insert(10, "this is not json".into());
    let input = dir.path().join("input.ndjson");
    std::fs::write(&input, lines.join("\n")).unwrap();
    let mut command = command(
        "start_buffer_writer",
        dir.path(),
        &[("LOG_FILE", "logs/buffer_writer.log")],
    );
    command
        .arg("--stdin")
        .stdin(std::fs::File::open(&input).unwrap());
    let (status, output) = run(&mut command);
    assert!(status.success(), "{output}");
    assert!(
        output.contains("standard input line 11 skipped: not valid JSON"),
        "{output}"
    );
    assert!(
        output.contains("End of standard input: 1001 values read, 1 lines refused"),
        "{output}"
    );
    // "D 1!" is a valid tag address for the buffer (any text up to 100 bytes).
    assert_eq!(count_rows(&dir.path().join("data/tag_values.db"), ""), 1001);
    let log = std::fs::read_to_string(dir.path().join("logs/buffer_writer.log")).unwrap();
    assert!(log.contains("[INFO] Shutdown complete"), "{log}");
    assert!(log.contains("standard input line 11 skipped"), "{log}");
}

#[test]
fn bad_settings_stop_start_up_with_exit_code_2_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (binary, variable, value) in [
        ("start_buffer_writer", "BUFFER_MAX_SIZE", "lots"),
        ("start_all", "BUFFER_WRITE_INTERVAL_SEC", "0"),
        ("start_all", "SINK", "mongodb"),
        ("test_oracle_connection", "ORACLE_RETRY_MAX", "-1"),
    ] {
        let (status, output) = run(&mut command(binary, dir.path(), &[(variable, value)]));
        assert_eq!(
            status.code(),
            Some(2),
            "{binary} {variable}={value}: {output}"
        );
        let line = output
            .lines()
            .find(|l| l.contains("Configuration error"))
            .unwrap_or_default();
        assert!(
            line.contains(&format!("{variable}=\"{value}\"")),
            "{output}"
        );
        assert_eq!(
            output.lines().filter(|l| !l.trim().is_empty()).count(),
            1,
            "{output}"
        );
    }
    // The same from a .env file.
    std::fs::write(dir.path().join(".env"), "BUFFER_BATCH_THRESHOLD=many\n").unwrap();
    let (status, output) = run(&mut command("start_buffer_writer", dir.path(), &[]));
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(
        output.contains("BUFFER_BATCH_THRESHOLD=\"many\""),
        "{output}"
    );
}

#[test]
fn a_taken_port_fails_start_up_with_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let (status, output) = run(&mut command(
        "start_buffer_writer",
        dir.path(),
        &[("API_BIND", &address)],
    ));
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(
        output.contains(&format!("cannot listen on {address}")),
        "{output}"
    );
    assert!(output.contains("API_BIND"), "{output}");
}

/// The database is locked by another program, so every write fails after SQLite's 5 s busy
/// wait. Ctrl+C: ingest answers 503, the buffer goes to CSV backup; a second Ctrl+C hurries
/// it along. Every accepted value ends up in a backup file.
#[test]
fn shutdown_with_the_database_unavailable_backs_up_everything() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("BUFFER_BATCH_THRESHOLD", "100"),
        ("BUFFER_BATCH_SIZE_MAX", "100"),
        ("ORACLE_RETRY_BASE_DELAY", "30"),
    ];
    let mut service = Running::spawn(command("start_buffer_writer", dir.path(), &env));
    let base = service.base_url();
    let lock = rusqlite::Connection::open(dir.path().join("data/tag_values.db")).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let (status, _) = post(&format!("{base}/api/buffer/ingest"), &ingest_body(0, 1000));
    assert_eq!(status, 200);
    service.wait_for_line("Retrying in 30.0 seconds...");
    service.interrupt();
    service.wait_for_line("Flushing remaining buffer data...");
    let (status, body) = post(&format!("{base}/api/buffer/ingest"), &ingest_body(5000, 1));
    assert_eq!(status, 503, "{body}");
    service.interrupt();
    let (exit, took) = service.wait_exit(Duration::from_secs(20));
    assert!(exit.success(), "{}", service.output());
    assert!(took < Duration::from_secs(12), "{took:?}");
    let log = service.output();
    assert!(log.contains("Second interrupt"), "{log}");
    assert!(log.contains("Shutdown complete"), "{log}");
    drop(lock);
    let mut backed_up = 0;
    for entry in std::fs::read_dir(dir.path().join("backup")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(
            "timestamp,plc_code,tag_address,tag_value,quality,insertion_attempt_time\n"
        ));
        backed_up += text.lines().count() - 1;
    }
    assert_eq!(backed_up, 1000, "{log}");
    assert_eq!(count_rows(&dir.path().join("data/tag_values.db"), ""), 0);
    assert!(
        log.contains("Values accepted: 1000, written: 0, already stored: 0, backed up: 1000"),
        "{log}"
    );
}

/// The spec's buffer overflow drill: more values than the buffer holds arrive at once. The
/// oldest are displaced and counted, the operator is warned in the spec's words, and the
/// accounting still balances: accepted = written + overflow. Values from standard input keep
/// the drop-oldest behaviour of polled values (HTTP ingest gets back-pressure instead).
#[test]
fn overflow_is_counted_warned_about_and_accounted_for() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("BUFFER_MAX_SIZE", "1000"),
        ("BUFFER_BATCH_SIZE_MAX", "100"),
        ("BUFFER_BATCH_THRESHOLD", "1000"),
    ];
    // A slow database: the writer holds one batch while the rest waits in the buffer.
    let db = dir.path().join("data/tag_values.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let lock = rusqlite::Connection::open(&db).unwrap();
    let mut command = command("start_buffer_writer", dir.path(), &env);
    command.arg("--stdin").stdin(std::process::Stdio::piped());
    let mut service = Running::spawn(command);
    let base = service.base_url();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let mut stdin = service.child.stdin.take().unwrap();
    // Standard input is pushed in chunks of 1,000 lines: two full chunks.
    let lines: String = (0..2000)
        .map(|i| format!(r#"{{"plc_code":"PLC01","tag_address":"D{}","timestamp":"2025-11-02T14:30:{:02}.{:06}","tag_value":{i}}}"#, i % 10, i / 100, i) + "\n")
        .collect();
    stdin.write_all(lines.as_bytes()).unwrap();
    stdin.flush().unwrap();
    service.wait_for_line("[WARNING] Buffer overflow: discarded oldest data (overflow_count=");
    let warning = service.wait_for_line("[WARNING] Buffer utilization: ");
    assert!(
        warning.contains("% (") && warning.ends_with("/1000 items)"),
        "{warning}"
    );
    eventually("all 2000 lines read", || {
        get_json(&format!("{base}/api/buffer/metrics"))["accounting"]["accepted"] == 2000
    });
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    let mut displaced = 0;
    eventually("the buffer drained", || {
        let m = get_json(&format!("{base}/api/buffer/metrics"));
        displaced = m["buffer"]["overflow_count"].as_u64().unwrap();
        m["accounting"]["written"] == 2000 - displaced && m["buffer"]["current_size"] == 0
    });
    // 1000 unless the writer took its one batch of 100 before the second chunk came.
    assert!((900..=1000).contains(&displaced), "{displaced}");
    let metrics = get_json(&format!("{base}/api/buffer/metrics"));
    assert_eq!(metrics["accounting"]["accepted"], 2000);
    assert_eq!(metrics["accounting"]["balanced"], true, "{metrics}");
    drop(stdin);
    assert!(service.wait_exit(Duration::from_secs(10)).0.success());
    let log = service.output();
    assert!(
        log.contains(&format!("  Overflow count: {displaced}")),
        "{log}"
    );
    assert_eq!(count_rows(&db, "") as u64, 2000 - displaced);
}

/// LOG_FILE past LOG_MAX_BYTES: rotated to `.1` and `.2`, never more than LOG_KEEP older files,
/// no file past the limit, nothing lost from stderr or from the database.
#[test]
fn log_file_is_rotated_past_log_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // Every refused line is logged (about 90 bytes each): 400 of them are some 36 kB of log.
    let mut lines: Vec<String> = (0..400).map(|i| format!("not json {i}")).collect();
    lines.extend(ingest_items(0, 100));
    let input = dir.path().join("input.ndjson");
    std::fs::write(&input, lines.join("\n")).unwrap();
    let mut command = command(
        "start_buffer_writer",
        dir.path(),
        &[
            ("LOG_FILE", "logs/buffer_writer.log"),
            ("LOG_MAX_BYTES", "4096"),
            ("LOG_KEEP", "2"),
        ],
    );
    command
        .arg("--stdin")
        .stdin(std::fs::File::open(&input).unwrap());
    let (status, output) = run(&mut command);
    assert!(status.success(), "{output}");
    assert_eq!(count_rows(&dir.path().join("data/tag_values.db"), ""), 100);
    // stderr has every line, whatever the file did.
    for i in [1, 200, 400] {
        assert!(
            output.contains(&format!("standard input line {i} skipped")),
            "{output}"
        );
    }
    let logs = dir.path().join("logs");
    let mut names: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "buffer_writer.log",
            "buffer_writer.log.1",
            "buffer_writer.log.2"
        ]
    );
    let read = |name: &str| std::fs::read_to_string(logs.join(name)).unwrap();
    for name in &names {
        let size = read(name).len();
        assert!(size <= 4096, "{name} has {size} bytes");
    }
    assert!(read("buffer_writer.log").contains("[INFO] Shutdown complete"));
    // The older file holds the earlier lines: the last refused line in .2 comes before the
    // first in .1.
    let line_numbers = |name: &str| -> Vec<u32> {
        read(name)
            .lines()
            .filter_map(|l| l.split("standard input line ").nth(1))
            .filter_map(|rest| rest.split(' ').next()?.parse().ok())
            .collect()
    };
    let (older, newer) = (
        line_numbers("buffer_writer.log.2"),
        line_numbers("buffer_writer.log.1"),
    );
    assert!(
        !older.is_empty() && !newer.is_empty(),
        "{older:?} {newer:?}"
    );
    assert_eq!(older.last().unwrap() + 1, newer[0]);
}
