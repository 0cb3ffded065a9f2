//! start_all and stop_all as real processes.

mod common;

use std::time::Duration;

use common::*;

/// The bundled configuration: LINE1_PROCESS1 polls 10 tags every second, LINE2_PROCESS2 10
/// tags every 5 s, MANUAL_TRIGGER 3 tags per trigger.
#[test]
fn polls_each_group_at_its_interval_and_on_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let mut service = Running::spawn(command("start_all", dir.path(), &[]));
    let base = service.base_url();
    for line in [
        "Step 1/3: Initializing polling engine...",
        "Polling engine initialized with 3 groups",
        "Step 2/3: Starting buffer consumer and SQLite writer...",
        "Step 3/3: Starting polling groups...",
        "Started polling group: LINE1_PROCESS1 (FIXED, 1000ms)",
        "Started polling group: LINE2_PROCESS2 (FIXED, 5000ms)",
        "Started polling group: MANUAL_TRIGGER (HANDSHAKE)",
        "Press Ctrl+C to stop all systems.",
    ] {
        service.wait_for_line(line);
    }
    let (status, body) = post(
        &format!("{base}/api/polling/groups/MANUAL_TRIGGER/trigger"),
        "",
    );
    assert_eq!(status, 202, "{body}");
    let (status, _) = post(
        &format!("{base}/api/polling/groups/LINE1_PROCESS1/trigger"),
        "",
    );
    assert_eq!(status, 409);
    let (status, _) = post(&format!("{base}/api/polling/groups/NOPE/trigger"), "");
    assert_eq!(status, 404);
    // Wait for LINE2's second poll at t = 5 s.
    eventually("two polls of LINE2_PROCESS2", || {
        let status = get_json(&format!("{base}/api/polling/status"));
        status["groups"][1]["polls"] == 2
    });
    let status = get_json(&format!("{base}/api/polling/status"));
    let groups = status["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3);
    assert_eq!(groups[0]["name"], "LINE1_PROCESS1");
    assert_eq!(groups[0]["mode"], "FIXED");
    assert_eq!(groups[0]["interval_ms"], 1000);
    assert_eq!(groups[0]["running"], true);
    let line1_polls = groups[0]["polls"].as_u64().unwrap();
    assert!((5..=8).contains(&line1_polls), "{status}");
    assert_eq!(groups[2]["polls"], 1);
    assert!(groups
        .iter()
        .all(|g| g["errors"] == 0 && !g["last_poll_time"].is_null()));

    service.interrupt();
    let (exit, took) = service.wait_exit(Duration::from_secs(10));
    assert!(exit.success(), "{}", service.output());
    assert!(took < Duration::from_secs(5));
    let log = service.output();
    assert!(log.contains("Stopped 3 polling groups"), "{log}");
    let db = dir.path().join("data/tag_values.db");
    let plc01 = count_rows(&db, "WHERE plc_code = 'PLC01'");
    assert!(
        plc01 >= line1_polls as i64 * 10 && plc01 % 10 == 0,
        "{plc01} rows of PLC01"
    );
    assert_eq!(count_rows(&db, "WHERE plc_code = 'PLC02'"), 20);
    assert_eq!(count_rows(&db, "WHERE plc_code = 'PLC03'"), 3);
    assert_eq!(count_rows(&db, "WHERE quality <> 'GOOD'"), 0);
}

#[test]
fn stop_all_stops_a_running_start_all_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut service = Running::spawn(command("start_all", dir.path(), &[]));
    service.wait_for_line("Press Ctrl+C to stop all systems.");
    let pid_file = dir.path().join("buffer-oracle-writer.pid");
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().lines().next(),
        Some(service.child.id().to_string().as_str())
    );
    let (status, output) = run(&mut command("stop_all", dir.path(), &[]));
    assert!(status.success(), "{output}");
    assert!(
        output.contains(&format!("Service PID {} stopped after", service.child.id())),
        "{output}"
    );
    let (exit, _) = service.wait_exit(Duration::from_secs(5));
    assert!(exit.success());
    assert!(service.output().contains("Shutdown complete"));
    assert!(!pid_file.exists());
    // Nothing left to stop.
    let (status, output) = run(&mut command("stop_all", dir.path(), &[]));
    assert!(status.success());
    assert!(output.contains("No service is running"), "{output}");
}

#[test]
fn a_second_service_on_the_same_pid_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Running::spawn(command("start_all", dir.path(), &[]));
    first.wait_for_line("Press Ctrl+C to stop all systems.");
    let (status, output) = run(&mut command("start_buffer_writer", dir.path(), &[]));
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(output.contains("another service is running"), "{output}");
    first.terminate();
    assert!(first.wait_exit(Duration::from_secs(10)).0.success());
}

#[test]
fn a_bad_polling_file_exits_2_naming_file_group_and_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("polling.toml"),
        "[[plc]]\nplc_code = \"PLC01\"\ndriver = \"simulated\"\n[[group]]\nname = \"G\"\nmode = \"FIXED\"\ninterval_ms = 0\nplc_code = \"PLC01\"\ntags = [\"D1\"]\n",
    )
    .unwrap();
    let mut command = command("start_all", dir.path(), &[]);
    command.args(["--config", "polling.toml"]);
    let (status, output) = run(&mut command);
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(
        output.contains("polling.toml: group \"G\": interval_ms: must be at least 1"),
        "{output}"
    );
}

#[test]
fn test_oracle_connection_checks_the_embedded_database() {
    let dir = tempfile::tempdir().unwrap();
    let (status, output) = run(&mut command("test_oracle_connection", dir.path(), &[]));
    assert!(status.success(), "{output}");
    for line in [
        "Connection successful",
        "SQLite version: SQLite 3.",
        "Insert successful: 1 row(s) affected",
        "plc_code=TEST, tag_address=D999, tag_value=12345.0, quality=GOOD",
        "Cleaning up test data... (rolled back: nothing was stored)",
        "SQLite connection test completed successfully",
        "Checked:",
        "OK  database file opened: ./data/tag_values.db",
        "OK  the table exists and takes writes",
        "OK  insert and read-back of a TEST/D999 row, in a transaction rolled back",
    ] {
        assert!(output.contains(line), "no {line:?} in\n{output}");
    }
    assert_eq!(count_rows(&dir.path().join("data/tag_values.db"), ""), 0);
}

/// Each kind of failure has its own exit code and words, so a script (or an operator on the
/// phone) can tell a wrong setting from a database that is down.
#[test]
fn test_oracle_connection_tells_a_wrong_setting_from_an_unreachable_database() {
    let dir = tempfile::tempdir().unwrap();
    // Configuration wrong: the database file is not a database.
    std::fs::write(dir.path().join("notes.db"), "not a database ".repeat(100)).unwrap();
    let (status, output) = run(&mut command(
        "test_oracle_connection",
        dir.path(),
        &[("SQLITE_PATH", "notes.db")],
    ));
    assert_eq!(status.code(), Some(4), "{output}");
    assert!(
        output.contains("connection test failed: configuration or credentials wrong (exit code 4)"),
        "{output}"
    );
    assert!(
        output.contains("FAILED  configuration or credentials wrong"),
        "{output}"
    );
    // Unreachable: nothing listens on the port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://scada:pw@127.0.0.1:{port}/historian");
    let (status, output) = run(&mut command(
        "test_oracle_connection",
        dir.path(),
        &[
            ("SINK", "postgres"),
            ("POSTGRES_URL", &url),
            ("ORACLE_POOL_TIMEOUT", "1"),
        ],
    ));
    assert_eq!(status.code(), Some(5), "{output}");
    assert!(
        output.contains("connection test failed: database unreachable (exit code 5)"),
        "{output}"
    );
    assert!(output.contains("nothing passed"), "{output}");
}

/// No Oracle Instant Client on this machine: exit 1, say so and how to fix it, and never
/// print the password (set for every test; the Drop of each run checks all output).
#[test]
fn test_oracle_connection_without_instant_client_explains_the_missing_client() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("ORACLE_HOST", "127.0.0.1"),
        ("ORACLE_PORT", "9"),
        ("ORACLE_SERVICE_NAME", "XEPDB1"),
        ("ORACLE_USER", "scada_user"),
        ("ORACLE_POOL_TIMEOUT", "2"),
    ];
    let (status, output) = run(&mut command("test_oracle_connection", dir.path(), &env));
    assert!(
        output.contains("Connecting to Oracle: 127.0.0.1:9/XEPDB1 (connect 10 s, each call 20 s)"),
        "{output}"
    );
    if output.contains("DPI-1047") {
        assert_eq!(status.code(), Some(3), "{output}");
        assert!(
            output.contains("Oracle connection test failed: client library missing (exit code 3)"),
            "{output}"
        );
        for advice in [
            "Oracle Client library",
            "Instant Client",
            "LD_LIBRARY_PATH",
            "SINK=sqlite",
        ] {
            assert!(output.contains(advice), "no {advice:?} in\n{output}");
        }
    } else {
        assert_eq!(status.code(), Some(5), "{output}");
        assert!(output.contains("database unreachable"), "{output}");
        assert!(output.contains("ORA-12541"), "{output}");
    }
    // start_all refuses to start on a set-up error, with the same diagnosis.
    let (status, output) = run(&mut command("start_all", dir.path(), &env));
    if output.contains("DPI-1047") {
        assert_eq!(status.code(), Some(1), "{output}");
        assert!(
            output.contains("Start-up failed: Oracle: DPI Error: DPI-1047"),
            "{output}"
        );
    }
}

#[test]
fn test_high_throughput_meets_the_targets_on_a_short_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = command("test_high_throughput", dir.path(), &[]);
    command.args([
        "--rate",
        "2000",
        "--duration",
        "2",
        "--tags",
        "20",
        "--plcs",
        "5",
    ]);
    let (status, output) = run(&mut command);
    assert!(status.success(), "{output}");
    assert!(output.contains("offered:   4000"), "{output}");
    assert!(output.contains("written:   4000"), "{output}");
    assert!(output.contains("[PASS] overflow 0"), "{output}");
    assert!(output.contains("All targets met."), "{output}");
    assert_eq!(count_rows(&dir.path().join("data/tag_values.db"), ""), 4000);
}

/// A PLC that takes ten minutes to answer a read (issue 11, item 4): SIGTERM still ends the
/// service within the 5 s the README promises, with exit 0, and every value the healthy
/// group had buffered is in SQLite.
#[test]
fn a_hung_plc_read_does_not_block_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("polling.toml"),
        "[[plc]]\nplc_code = \"PLC01\"\ndriver = \"simulated\"\n\
         [[plc]]\nplc_code = \"HUNG\"\ndriver = \"simulated\"\nlatency_ms = 600000\n\
         [[group]]\nname = \"HEALTHY\"\nmode = \"FIXED\"\ninterval_ms = 100\nplc_code = \"PLC01\"\n\
         tags = [\"D100\", \"D101\"]\n\
         [[group]]\nname = \"STUCK\"\nmode = \"FIXED\"\ninterval_ms = 1000\nplc_code = \"HUNG\"\n\
         tags = [\"D1\"]\n",
    )
    .unwrap();
    let mut command = command("start_all", dir.path(), &[]);
    command.args(["--config", "polling.toml"]);
    let mut service = Running::spawn(command);
    let base = service.base_url();
    eventually("a few polls of the healthy group", || {
        get_json(&format!("{base}/api/polling/status"))["groups"][0]["polls"]
            .as_u64()
            .is_some_and(|polls| polls >= 3)
    });
    service.terminate();
    let (exit, took) = service.wait_exit(Duration::from_secs(20));
    let log = service.output();
    assert!(exit.success(), "{log}");
    assert!(
        took < Duration::from_secs(5),
        "shutdown took {took:?}:\n{log}"
    );
    assert!(
        log.contains("Abandoned 1 polling group(s) stuck in a PLC read: STUCK"),
        "{log}"
    );
    let accepted: i64 = log
        .lines()
        .find_map(|l| l.split("Values accepted: ").nth(1))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no accounting line:\n{log}"));
    assert!(accepted >= 6, "{log}");
    let db = dir.path().join("data/tag_values.db");
    assert_eq!(count_rows(&db, ""), accepted, "{log}");
    assert_eq!(count_rows(&db, "WHERE plc_code = 'HUNG'"), 0);
}
