//! The binaries run as a careless or hostile user would: PID files that name strangers or
//! process groups, environments with bytes that are not UTF-8, a BOM in `.env`, garbage in
//! RUST_LOG, stderr closed under the service, odd API_BIND spellings.
#![cfg(unix)]

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// An unrelated process the tests own: `sleep 600`, killed when dropped.
struct Stranger(std::process::Child);

impl Stranger {
    fn start() -> Self {
        Stranger(
            Command::new("sleep")
                .arg("600")
                .spawn()
                .expect("start sleep"),
        )
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn is_running(&mut self) -> bool {
        self.0.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Stranger {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn stop_all_never_signals_a_process_that_is_not_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("buffer-oracle-writer.pid");
    let mut stranger = Stranger::start();
    let start_all = binary("start_all");
    for contents in [
        // The old one-line form, after a reboot gave the PID to another program.
        format!("{}\n", stranger.pid()),
        // A full record whose executable is ours but whose start time is not the stranger's.
        format!("{}\nexe={}\nstart=1\n", stranger.pid(), start_all.display()),
    ] {
        std::fs::write(&pid_file, &contents).unwrap();
        let (status, output) = run(&mut command("stop_all", dir.path(), &[]));
        assert!(status.success(), "{contents}: {output}");
        assert!(
            output.contains(&format!(
                "PID {} is now another program (sleep), not this service",
                stranger.pid()
            )),
            "{output}"
        );
        assert!(output.contains("nothing was signalled"), "{output}");
        assert!(!pid_file.exists(), "the stale file is removed");
        std::thread::sleep(Duration::from_millis(200));
        assert!(stranger.is_running(), "stop_all signalled the stranger");
    }
}

#[test]
fn stop_all_never_signals_a_process_group_for_pid_0() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("buffer-oracle-writer.pid");
    std::fs::write(&pid_file, "0\n").unwrap();
    // In a process group of its own, with a stranger beside it: kill(0, SIGTERM) would end
    // both (and never this test).
    let mut stranger = {
        let mut sleep = Command::new("sleep");
        sleep.arg("600").process_group(0);
        Stranger(sleep.spawn().expect("start sleep"))
    };
    let mut stop_all = command("stop_all", dir.path(), &[]);
    stop_all.process_group(libc::pid_t::try_from(stranger.pid()).unwrap());
    let (status, output) = run(&mut stop_all);
    assert_eq!(
        status.signal(),
        None,
        "stop_all signalled its own group: {output}"
    );
    assert!(status.success(), "{output}");
    assert!(
        output.contains("it holds PID 0, which is no service"),
        "{output}"
    );
    assert!(!pid_file.exists());
    std::thread::sleep(Duration::from_millis(200));
    assert!(stranger.is_running(), "the process group was signalled");
    // A negative number is not a PID at all: refused, the file left for the operator.
    std::fs::write(&pid_file, "-1\n").unwrap();
    let (status, output) = run(&mut command("stop_all", dir.path(), &[]));
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(output.contains("does not hold a process id"), "{output}");
    assert!(stranger.is_running());
}

#[test]
fn a_pid_file_naming_a_stranger_does_not_block_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("buffer-oracle-writer.pid");
    let mut stranger = Stranger::start();
    std::fs::write(&pid_file, format!("{}\n", stranger.pid())).unwrap();
    let mut service = Running::spawn(command("start_buffer_writer", dir.path(), &[]));
    service.wait_for_line("Press Ctrl+C to stop.");
    let warning = service.wait_for_line("Stale PID file");
    assert!(
        warning.contains(&format!(
            "PID {} is now another program (sleep)",
            stranger.pid()
        )),
        "{warning}"
    );
    let written = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(
        written.lines().next(),
        Some(service.child.id().to_string().as_str())
    );
    // stop_all stops the real service, and only it.
    let (status, output) = run(&mut command("stop_all", dir.path(), &[]));
    assert!(status.success(), "{output}");
    assert!(service.wait_exit(Duration::from_secs(10)).0.success());
    assert!(stranger.is_running());
    assert!(!pid_file.exists());
}

/// start_buffer_writer reading an empty standard input: starts, finds the end, exits.
fn run_once(dir: &std::path::Path, env: &[(&str, &OsStr)]) -> (std::process::ExitStatus, String) {
    let mut command = command("start_buffer_writer", dir, &[]);
    for (key, value) in env {
        command.env(key, value);
    }
    command.arg("--stdin").stdin(Stdio::null());
    run(&mut command)
}

#[test]
fn an_environment_that_is_not_utf8_stops_nothing_but_a_bad_setting_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let junk = OsStr::from_bytes(b"\xff\xfe junk");
    let (status, output) = run_once(dir.path(), &[("JUNK", junk)]);
    assert!(status.success(), "{output}");
    assert!(output.contains("Shutdown complete"), "{output}");
    // Every binary reads the environment the same way.
    let mut stop_all = command("stop_all", dir.path(), &[]);
    stop_all.env("JUNK", junk);
    let (status, output) = run(&mut stop_all);
    assert!(status.success(), "{output}");

    let (status, output) = run_once(
        dir.path(),
        &[("BACKUP_DIR", OsStr::from_bytes(b"/tmp/\xff"))],
    );
    assert_eq!(status.code(), Some(2), "{output}");
    assert_eq!(
        output.trim(),
        "[ERROR] Configuration error: BACKUP_DIR=\"/tmp/\u{fffd}\" is not valid: text in UTF-8 \
         (the value has bytes that are not)"
    );
    let (status, output) = run_once(dir.path(), &[("RUST_LOG", OsStr::from_bytes(b"\xff"))]);
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(output.contains("RUST_LOG="), "{output}");
}

#[test]
fn rust_log_garbage_exits_2_instead_of_silencing_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let (status, output) = run_once(dir.path(), &[("RUST_LOG", OsStr::new("%%%garbage"))]);
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(
        output.starts_with("[ERROR] Configuration error: RUST_LOG=\"%%%garbage\" is not valid: "),
        "{output}"
    );
    assert_eq!(output.lines().count(), 1, "{output}");
}

#[test]
fn a_dotenv_with_a_byte_order_mark_is_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "\u{feff}BUFFER_MAX_SIZE=lots\n").unwrap();
    let (status, output) = run_once(dir.path(), &[]);
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(output.contains("BUFFER_MAX_SIZE=\"lots\""), "{output}");
    assert!(!output.contains('\u{feff}'), "{output}");
}

#[test]
fn log_file_gets_every_line_when_stderr_is_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let input: String = (0..100)
        .map(|i| format!("{{\"plc_code\":\"PLC01\",\"tag_address\":\"D{i}\",\"tag_value\":{i}}}\n"))
        .collect();
    std::fs::write(dir.path().join("input.ndjson"), input).unwrap();
    let mut command = command(
        "start_buffer_writer",
        dir.path(),
        &[("LOG_FILE", "logs/service.log")],
    );
    command
        .arg("--stdin")
        .stdin(std::fs::File::open(dir.path().join("input.ndjson")).unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    // `2>&1 | head -0`: the reading end is gone before the first line.
    drop(child.stderr.take());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(dir.path().join("logs/service.log")).unwrap_or_default();
    assert!(status.success(), "{status}: {log}");
    for line in [
        "[INFO] Buffer created",
        "End of standard input: 100 values read, 0 lines refused",
        "[INFO] Shutdown complete",
    ] {
        assert!(log.contains(line), "{line:?} missing from LOG_FILE:\n{log}");
    }
    assert_eq!(count_rows(&dir.path().join("data/tag_values.db"), ""), 100);
}

#[test]
fn api_bind_takes_a_bare_port_and_localhost() {
    for bind in [":0", "localhost:0"] {
        let dir = tempfile::tempdir().unwrap();
        let mut service = Running::spawn(command(
            "start_buffer_writer",
            dir.path(),
            &[("API_BIND", bind)],
        ));
        let base = service.base_url();
        assert!(base.starts_with("http://127.0.0.1:"), "{bind}: {base}");
        assert!(!base.ends_with(":0"), "{bind}: {base}");
        let (status, _) = get(&format!("{base}/api/buffer/health"));
        assert_eq!(status, 200, "{bind}");
        service.terminate();
        assert!(service.wait_exit(Duration::from_secs(10)).0.success());
    }
}

/// POST with the response headers, for Retry-After.
fn post_with_headers(url: &str, body: &str) -> (u16, Option<String>, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .expect("POST");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, retry_after, json)
}

/// HTTP clients can retry, so ingest gives back-pressure instead of displacing values:
/// 413 for more values than the buffer holds (or a body over 16 MiB), 503 with Retry-After
/// while there is no room; every error is JSON; accounting counts only what was taken.
#[test]
fn ingest_answers_413_and_503_instead_of_displacing_values() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("BUFFER_MAX_SIZE", "1000"),
        ("BUFFER_BATCH_SIZE_MAX", "100"),
        ("BUFFER_BATCH_THRESHOLD", "1000"),
    ];
    let mut service = Running::spawn(command("start_buffer_writer", dir.path(), &env));
    let base = service.base_url();
    let ingest = format!("{base}/api/buffer/ingest");
    // A database that does not answer: the writer holds one batch, the rest waits.
    let lock = rusqlite::Connection::open(dir.path().join("data/tag_values.db")).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let (status, _, reply) = post_with_headers(&ingest, &ingest_body(0, 1500));
    assert_eq!(status, 413, "{reply}");
    assert_eq!(
        reply["error"],
        "the request has 1500 values, more than the buffer holds (1000, BUFFER_MAX_SIZE): send \
         them in smaller requests"
    );
    let (status, _, reply) = post_with_headers(&ingest, &ingest_body(0, 800));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["displaced"], 0);
    let (status, retry_after, reply) = post_with_headers(&ingest, &ingest_body(800, 400));
    assert_eq!(status, 503, "{reply}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    let error = reply["error"].as_str().unwrap();
    assert!(error.starts_with("the buffer has room for "), "{error}");
    assert!(
        error.ends_with(" values, not 400: nothing was taken, retry shortly"),
        "{error}"
    );
    // A body over the 16 MiB limit: JSON too.
    let huge = format!("[{}]", " ".repeat(16 * 1024 * 1024 - 1));
    let (status, _, reply) = post_with_headers(&ingest, &huge);
    assert_eq!(status, 413, "{reply}");
    assert_eq!(
        reply["error"],
        "the body is larger than 16 MiB: send the values in smaller requests"
    );
    let metrics = get_json(&format!("{base}/api/buffer/metrics"));
    assert_eq!(metrics["accounting"]["accepted"], 800, "{metrics}");
    assert_eq!(metrics["buffer"]["overflow_count"], 0, "{metrics}");

    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    // The client retries after the database catches up: everything lands, nothing displaced.
    eventually("the retried request is taken", || {
        post_with_headers(&ingest, &ingest_body(800, 400)).0 == 200
    });
    eventually("all 1200 written", || {
        get_json(&format!("{base}/api/buffer/metrics"))["accounting"]["written"] == 1200
    });
    let metrics = get_json(&format!("{base}/api/buffer/metrics"));
    assert_eq!(metrics["buffer"]["overflow_count"], 0, "{metrics}");
    assert_eq!(metrics["accounting"]["balanced"], true, "{metrics}");
    service.terminate();
    assert!(service.wait_exit(Duration::from_secs(10)).0.success());
    assert_eq!(count_rows(&dir.path().join("data/tag_values.db"), ""), 1200);
}

#[test]
fn control_characters_are_refused_at_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let mut service = Running::spawn(command("start_buffer_writer", dir.path(), &[]));
    let base = service.base_url();
    let body = r#"[{"plc_code":"PLC01","tag_address":"D100"},{"plc_code":"PLC\u001b[2J","tag_address":"D100"}]"#;
    let (status, _, reply) = post_with_headers(&format!("{base}/api/buffer/ingest"), body);
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["item"], 1);
    assert_eq!(reply["field"], "plc_code");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .ends_with("must not contain control characters"),
        "{reply}"
    );
    let metrics = get_json(&format!("{base}/api/buffer/metrics"));
    assert_eq!(metrics["accounting"]["accepted"], 0, "{metrics}");
    service.terminate();
    assert!(service.wait_exit(Duration::from_secs(10)).0.success());
}

#[test]
fn the_buffer_memory_estimate_is_logged_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (status, output) = run_once(dir.path(), &[("BUFFER_MAX_SIZE", OsStr::new("1000000"))]);
    assert!(status.success(), "{output}");
    assert!(
        output.contains("Buffer max size: 1000000 (about 68.7 MiB of memory, allocated at start)"),
        "{output}"
    );
}

const BACKUP_HEADER: &str =
    "timestamp,plc_code,tag_address,tag_value,quality,insertion_attempt_time\n";

/// A backup file of `rows` values of `plc`.
fn backup_text(plc: &str, rows: usize) -> String {
    let mut text = BACKUP_HEADER.to_owned();
    for i in 0..rows {
        text.push_str(&format!(
            "2025-11-02T14:30:{:02}.{i:06},{plc},D{i},{i}.5,GOOD,2025-11-02T14:31:00.000000\n",
            i % 60
        ));
    }
    text
}

#[test]
fn replay_backup_goes_on_after_a_malformed_file_and_quarantines_its_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup");
    std::fs::create_dir_all(&backup).unwrap();
    std::fs::write(
        backup.join("backup_20251102_143000.csv"),
        backup_text("PLC01", 10),
    )
    .unwrap();
    let bad = backup.join("backup_20251102_143100.csv");
    std::fs::write(&bad, format!("{BACKUP_HEADER}yesterday,PLC02,D1,1,GOOD,\n")).unwrap();
    std::fs::write(
        backup.join("backup_20251102_143200.csv"),
        backup_text("PLC03", 20),
    )
    .unwrap();
    let (status, output) = run(&mut command("replay_backup", dir.path(), &[]));
    assert!(status.success(), "{output}");
    // Issue 12: the malformed line goes to quarantine and its file is finished; the files
    // around it are replayed.
    assert!(
        output.contains(
            "Replayed 3 files: 30 rows (30 written, 0 already stored, 0 rejected); 1 bad lines"
        ),
        "{output}"
    );
    let bad_name = "./backup/backup_20251102_143100.csv";
    assert!(
        output.contains(&format!("{bad_name} line 2: timestamp \"yesterday\"")),
        "{output}"
    );
    let db = dir.path().join("data/tag_values.db");
    assert_eq!(count_rows(&db, "WHERE plc_code = 'PLC01'"), 10);
    assert_eq!(count_rows(&db, "WHERE plc_code = 'PLC03'"), 20);
    assert_eq!(
        std::fs::read_to_string(backup.join("quarantine_backup_20251102_143100.csv")).unwrap(),
        format!("{BACKUP_HEADER}yesterday,PLC02,D1,1,GOOD,\n")
    );
    assert!(!bad.exists());
    assert_eq!(files_in(&backup.join("replayed")).len(), 3);
}

#[test]
fn replay_backup_only_takes_backup_files_from_backup_dir_unless_imported() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup");
    std::fs::create_dir_all(&backup).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let outside = elsewhere.join("backup_20251102_143000.csv");
    std::fs::write(&outside, backup_text("PLC09", 5)).unwrap();
    let notes = backup.join("notes.txt");
    std::fs::write(&notes, backup_text("PLC08", 5)).unwrap();
    let link = backup.join("backup_20251102_143500.csv");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let zero_link = backup.join("backup_20251102_143600.csv");
    std::os::unix::fs::symlink("/dev/zero", &zero_link).unwrap();

    let started = std::time::Instant::now();
    let mut replay = command("replay_backup", dir.path(), &[]);
    replay
        .arg(&outside)
        .arg(&notes)
        .arg(&link)
        .arg("/dev/zero")
        .arg(&zero_link);
    let (status, output) = run(&mut replay);
    assert!(started.elapsed() < Duration::from_secs(20), "{output}");
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(output.contains("Replayed 0 files"), "{output}");
    assert!(output.contains("Skipped 5 files"), "{output}");
    for path in [&outside, &link] {
        assert!(
            output.contains(&format!(
                "  {}: not a backup file in BACKUP_DIR",
                path.display()
            )),
            "{output}"
        );
    }
    assert!(
        output.contains(&format!(
            "  {}: \"notes.txt\" is not named like a backup file",
            notes.display()
        )),
        "{output}"
    );
    assert!(
        output.contains("  /dev/zero: not a backup file in BACKUP_DIR"),
        "{output}"
    );
    assert!(
        output.contains(&format!(
            "  {}: not a backup file in BACKUP_DIR",
            zero_link.display()
        )),
        "{output}"
    );
    // Nothing was read, moved or renamed.
    assert!(outside.exists() && notes.exists());
    assert!(files_in(&backup.join("replayed")).is_empty());
    assert!(
        !dir.path().join("data/tag_values.db").exists(),
        "no database was even opened"
    );

    // --import copies: the rows land, the original stays where it was.
    std::fs::remove_file(&link).unwrap();
    std::fs::remove_file(&zero_link).unwrap();
    let mut replay = command("replay_backup", dir.path(), &[]);
    replay.arg("--import").arg(&outside);
    let (status, output) = run(&mut replay);
    assert!(status.success(), "{output}");
    assert!(
        output.contains("Replayed 1 files: 5 rows (5 written"),
        "{output}"
    );
    assert_eq!(
        std::fs::read_to_string(&outside).unwrap(),
        backup_text("PLC09", 5)
    );
    assert_eq!(
        count_rows(
            &dir.path().join("data/tag_values.db"),
            "WHERE plc_code = 'PLC09'"
        ),
        5
    );
    assert_eq!(files_in(&backup.join("replayed")).len(), 1);
    let mut replay = command("replay_backup", dir.path(), &[]);
    replay.arg("--import").arg("/dev/zero");
    let (status, output) = run(&mut replay);
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(
        output.contains("  /dev/zero: not a regular file"),
        "{output}"
    );
}

/// BACKUP_DIR that nobody can write to (procfs refuses new files, even for root): a loud
/// warning at start, health degraded with the reason; once the database is down too, health
/// is unhealthy: database down and backup failing. Default retry delays.
#[test]
fn an_unwritable_backup_dir_is_reported_at_start_and_in_health() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("BACKUP_DIR", "/proc/self")];
    let mut service = Running::spawn(command("start_buffer_writer", dir.path(), &env));
    let base = service.base_url();
    let warning = service.wait_for_line("[WARNING] BACKUP_DIR /proc/self is not writable");
    assert!(warning.contains("held in memory only"), "{warning}");
    let (status, body) = get(&format!("{base}/api/buffer/health"));
    assert_eq!(status, 503, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(
        health["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("the backup directory is not writable"),
        "{health}"
    );
    let lock = rusqlite::Connection::open(dir.path().join("data/tag_values.db")).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let (status, body) = post(&format!("{base}/api/buffer/ingest"), &ingest_body(0, 10));
    assert_eq!(status, 200, "{body}");
    // Four attempts of SQLite's 5 s busy wait and the 1, 2, 4 s delays: about 30 s.
    let started = std::time::Instant::now();
    let health = loop {
        let (_, body) = get(&format!("{base}/api/buffer/health"));
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        if health["status"] == "unhealthy" {
            break health;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "{health}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let reasons = health["reasons"].to_string();
    assert!(
        reasons.contains("database down and backup failing"),
        "{health}"
    );
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    eventually("the held values written", || {
        get_json(&format!("{base}/api/buffer/metrics"))["accounting"]["written"] == 10
    });
    service.terminate();
    assert!(service.wait_exit(Duration::from_secs(10)).0.success());
}
