//! Store and forward against a real PostgreSQL server that the tests stop and start (a
//! throwaway cluster; skipped loudly without the server binaries unless REQUIRE_PG=1).

mod common;

use std::time::{Duration, Instant};

use common::*;
use pg_test_cluster::PgCluster;

fn admin(pg: &PgCluster) -> postgres::Client {
    postgres::Client::connect(&pg.url(), postgres::NoTls).expect("admin connection")
}

fn create_table(pg: &PgCluster) {
    let ddl = include_str!("../../sql/postgres/create_tag_values.sql");
    admin(pg).batch_execute(ddl).expect("create table");
}

fn rows(pg: &PgCluster) -> (i64, i64) {
    let row = admin(pg)
        .query_one(
            "SELECT count(*), count(DISTINCT (plc_code, tag_address, timestamp)) FROM TAG_VALUES",
            &[],
        )
        .expect("count");
    (row.get(0), row.get(1))
}

/// The PostgreSQL sink at `url` with `extra` settings; everything else at its default.
fn pg_env<'a>(url: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![("SINK", "postgres"), ("POSTGRES_URL", url)];
    env.extend_from_slice(extra);
    env
}

fn metrics(base: &str) -> serde_json::Value {
    get_json(&format!("{base}/api/buffer/metrics"))
}

/// Waits until the service has written everything and replayed every backup file.
fn wait_until_settled(base: &str, ingested: u64) {
    eventually("everything written and replayed", || {
        let m = metrics(base);
        m["accounting"]["buffered"] == 0
            && m["accounting"]["in_flight"] == 0
            && m["offline"]["online"] == true
            && m["backup"]["file_count"] == 0
            && m["backup"]["pending_rows"] == 0
            && m["offline"]["replaying"].is_null()
            && m["accounting"]["accepted"] == ingested
    });
}

/// The user's settings for these drills: the PostgreSQL sink and a buffer smaller than
/// 7 s of input at 1,000 values/s; everything else (retry delays 1, 2, 4 s, pool, probes,
/// spill mark) at its default.
fn default_env(url: &str) -> Vec<(&str, &str)> {
    pg_env(url, &[("BUFFER_MAX_SIZE", "5000")])
}

/// Posts 100 values every 100 ms (1,000 values/s) for `ticks` ticks, calling `at_tick` before
/// each post; returns how many were sent. Every post must be accepted.
fn ingest_at_1000_per_second(base: &str, ticks: u32, at_tick: impl FnMut(u32)) -> usize {
    let ingest = format!("{base}/api/buffer/ingest");
    at_1000_per_second(ticks, at_tick, |first| {
        let (status, body) = post(&ingest, &ingest_body(first, 100));
        assert_eq!(status, 200, "{body}");
    })
}

/// Calls `send(first)` for 100 values every 100 ms for `ticks` ticks, `at_tick` before each.
fn at_1000_per_second(
    ticks: u32,
    mut at_tick: impl FnMut(u32),
    mut send: impl FnMut(usize),
) -> usize {
    let started = Instant::now();
    let mut sent = 0;
    for tick in 0..ticks {
        let due = started + Duration::from_millis(100 * u64::from(tick));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        at_tick(tick);
        send(sent);
        sent += 100;
    }
    sent
}

fn csv_files(dir: &std::path::Path) -> Vec<String> {
    files_in(dir)
        .into_iter()
        .filter(|n| n.ends_with(".csv"))
        .collect()
}

/// The drill with the spec's default retry delays: 1,000 values/s for 30 s, a
/// buffer of 5,000 (less than the 7 s of input the retries of one batch take), and the
/// server down for 21 s, three times the retry schedule. While the first failing batch waits
/// for its retries, values past 80 % of the buffer spill to the backup spool; then the writer
/// is offline and spools batches; when the server is back everything is replayed. Every value
/// ends in the table exactly once, none is displaced, no backup file is left behind.
#[test]
fn a_long_outage_with_the_default_retry_delays_loses_nothing() {
    let Some(pg) = PgCluster::start() else { return };
    create_table(&pg);
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let env = default_env(&url);
    let mut service = Running::spawn(command("start_buffer_writer", dir.path(), &env));
    let base = service.base_url();
    let mut saw_offline = false;
    // The server is down from 3 s to 24 s.
    let sent = ingest_at_1000_per_second(&base, 300, |tick| {
        if tick == 30 {
            pg.stop();
        }
        if tick == 240 {
            pg.start_again();
        }
        if tick % 10 == 5 && metrics(&base)["offline"]["online"] == false {
            saw_offline = true;
        }
    });
    assert!(saw_offline, "never went offline:\n{}", service.output());
    wait_until_settled(&base, sent as u64);
    let m = metrics(&base);
    assert_eq!(m["buffer"]["overflow_count"], 0, "{m}");
    let spilled = m["accounting"]["spilled"].as_u64().unwrap();
    assert!(spilled > 0, "{m}");
    assert_eq!(m["buffer"]["spilled_count"], spilled, "{m}");
    assert_eq!(m["accounting"]["balanced"], true, "{m}");
    let backed_up = m["accounting"]["backed_up"].as_u64().unwrap();
    assert_eq!(
        m["offline"]["replayed_rows"],
        spilled + backed_up,
        "{m}\n{:?}\n{:?}\n{}",
        files_in(&dir.path().join("backup")),
        files_in(&dir.path().join("backup/replayed")),
        service.output()
    );
    let (_, prometheus) = get(&format!("{base}/metrics"));
    assert!(
        prometheus.contains(&format!(
            "buffer_oracle_writer_rows_spilled_total {spilled}\n"
        )),
        "{prometheus}"
    );
    service.interrupt();
    assert!(service.wait_exit(Duration::from_secs(10)).0.success());
    assert_eq!(
        rows(&pg),
        (sent as i64, sent as i64),
        "rows and distinct keys"
    );
    let pending = csv_files(&dir.path().join("backup"));
    assert!(pending.is_empty(), "{pending:?}");
    let log = service.output();
    for line in [
        "Retrying in 1.0 seconds...",
        "Retrying in 2.0 seconds...",
        "Retrying in 4.0 seconds...",
        "A batch is waiting for its retry and the buffer is past 4000 of 5000 values",
        "going offline",
        "reachable again: back online",
        "Replayed ",
        &format!("spilled to backup during retries: {spilled}"),
    ] {
        assert!(log.contains(line), "no {line:?} in\n{log}");
    }
    eprintln!(
        "drill: {sent} values ingested, {spilled} spilled, {backed_up} backed up while offline, \
         0 overflow, {} rows in the table",
        rows(&pg).0
    );
}

/// An outage shorter than the retry window and small enough for the buffer: the spec's
/// behaviour exactly. The failing batch is retried and written; nothing is spilled or backed
/// up, no backup file is made.
#[test]
fn a_short_outage_is_retried_and_written_with_nothing_spilled() {
    let Some(pg) = PgCluster::start() else { return };
    create_table(&pg);
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let env = default_env(&url);
    let mut service = Running::spawn(command("start_buffer_writer", dir.path(), &env));
    let base = service.base_url();
    let lines = service.lines.clone();
    let mut restarted = false;
    // The server stops at 2 s and starts again as soon as a batch has failed once.
    let sent = ingest_at_1000_per_second(&base, 100, |tick| {
        if tick == 20 {
            pg.stop();
        }
        if tick > 20
            && !restarted
            && lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("Retrying in 1.0 seconds..."))
        {
            pg.start_again();
            restarted = true;
        }
    });
    assert!(restarted, "no batch failed:\n{}", service.output());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(metrics(&base)["accounting"]["written"] == sent
        && metrics(&base)["accounting"]["in_flight"] == 0)
    {
        assert!(
            Instant::now() < deadline,
            "not all written: {}\n{}",
            metrics(&base),
            service.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let m = metrics(&base);
    assert_eq!(m["accounting"]["spilled"], 0, "{m}");
    assert_eq!(m["accounting"]["backed_up"], 0, "{m}");
    assert_eq!(m["buffer"]["overflow_count"], 0, "{m}");
    assert_eq!(m["offline"]["online"], true, "{m}");
    assert!(m["writer"]["failed_writes"].as_u64().unwrap() >= 1, "{m}");
    service.interrupt();
    assert!(service.wait_exit(Duration::from_secs(10)).0.success());
    assert_eq!(rows(&pg), (sent as i64, sent as i64));
    let backup = dir.path().join("backup");
    assert!(files_in(&backup).is_empty(), "{:?}", files_in(&backup));
    let log = service.output();
    assert!(!log.contains("going offline"), "{log}");
    assert!(log.contains("Batch written successfully"), "{log}");
}

/// The same drill with the backup directory failing too (replaced by a file, as a failed
/// disk looks): spills fail and are put back, the full buffer displaces its oldest values,
/// the overflow is counted and logged with what it means, and the accounting still balances.
/// The values come over standard input, which pushes whatever comes (HTTP ingest would
/// answer 503 to a full buffer instead, so nothing it accepts is ever displaced).
#[test]
fn a_long_outage_with_a_failed_backup_disk_counts_and_logs_the_overflow() {
    use std::io::Write;
    let Some(pg) = PgCluster::start() else { return };
    create_table(&pg);
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let env = default_env(&url);
    let mut command = command("start_buffer_writer", dir.path(), &env);
    command.arg("--stdin").stdin(std::process::Stdio::piped());
    let mut service = Running::spawn(command);
    let base = service.base_url();
    let mut stdin = service.child.stdin.take().unwrap();
    let backup = dir.path().join("backup");
    let moved = dir.path().join("backup.moved");
    // Down from 2 s to 14 s, the disk failed from 1.5 s to 13 s.
    let at_tick = |tick| {
        if tick == 15 {
            std::fs::rename(&backup, &moved).unwrap();
            std::fs::write(&backup, "a failed disk").unwrap();
        }
        if tick == 20 {
            pg.stop();
        }
        if tick == 130 {
            std::fs::remove_file(&backup).unwrap();
            std::fs::rename(&moved, &backup).unwrap();
        }
        if tick == 140 {
            pg.start_again();
        }
    };
    let sent = at_1000_per_second(200, at_tick, |first| {
        let lines: String = ingest_items(first, 100)
            .into_iter()
            .map(|item| item + "\n")
            .collect();
        stdin.write_all(lines.as_bytes()).unwrap();
        stdin.flush().unwrap();
    });
    eventually("everything settled", || {
        let m = metrics(&base);
        m["accounting"]["accepted"] == sent
            && m["accounting"]["buffered"] == 0
            && m["accounting"]["in_flight"] == 0
            && m["offline"]["online"] == true
            && m["backup"]["file_count"] == 0
    });
    let m = metrics(&base);
    let overflow = m["buffer"]["overflow_count"].as_u64().unwrap();
    assert!(overflow > 0, "{m}");
    assert_eq!(m["accounting"]["accepted"], sent, "{m}");
    assert_eq!(m["accounting"]["balanced"], true, "{m}");
    let (_, prometheus) = get(&format!("{base}/metrics"));
    assert!(
        prometheus.contains(&format!(
            "buffer_oracle_writer_buffer_overflow_total {overflow}\n"
        )),
        "{prometheus}"
    );
    service.interrupt();
    assert!(service.wait_exit(Duration::from_secs(10)).0.success());
    assert_eq!(
        rows(&pg).0 as u64,
        sent as u64 - overflow,
        "every value not displaced is in the table"
    );
    let log = service.output();
    for line in [
        "CSV backup failed while spilling",
        "Buffer overflow: discarded oldest data (overflow_count=",
        "so this means the backup directory failed or is full too",
        &format!("  Overflow count: {overflow}"),
    ] {
        assert!(log.contains(line), "no {line:?} in\n{log}");
    }
    eprintln!(
        "drill with a failed disk: {sent} values ingested, {overflow} overflow, {} rows in the \
         table",
        rows(&pg).0
    );
}

/// A backend killed while its batch is being inserted: the batch is retried on a new
/// connection; nothing is lost and nothing doubled.
#[test]
fn a_connection_killed_mid_batch_is_retried_without_loss_or_duplicates() {
    let Some(pg) = PgCluster::start() else { return };
    create_table(&pg);
    // Slow every insert down so that a batch is surely in flight when we strike.
    admin(&pg)
        .batch_execute(
            "CREATE FUNCTION slow_insert() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(0.001); RETURN NEW; END $$ LANGUAGE plpgsql;
             CREATE TRIGGER slow_insert BEFORE INSERT ON TAG_VALUES FOR EACH ROW EXECUTE FUNCTION slow_insert();",
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = pg.url();
    let env = pg_env(&url, &[]);
    let mut service = Running::spawn(command("start_buffer_writer", dir.path(), &env));
    let base = service.base_url();
    for chunk in 0..10 {
        let (status, _) = post(
            &format!("{base}/api/buffer/ingest"),
            &ingest_body(chunk * 500, 500),
        );
        assert_eq!(status, 200);
    }
    let mut killed = 0;
    let mut client = admin(&pg);
    let deadline = Instant::now() + Duration::from_secs(30);
    while killed < 3 && Instant::now() < deadline {
        let victims = client
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE state = 'active' AND query LIKE 'INSERT INTO TAG_VALUES%' AND pid <> pg_backend_pid()",
                &[],
            )
            .unwrap();
        killed += victims.len();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(killed >= 1, "no insert was caught in flight");
    wait_until_settled(&base, 5_000);
    service.terminate();
    assert!(service.wait_exit(Duration::from_secs(10)).0.success());
    assert_eq!(rows(&pg), (5_000, 5_000));
    // The client sees the kill either as the server's 57P01 notice or, when the socket is
    // torn down before the notice is read, as a closed connection; both are one failed
    // attempt followed by a retry.
    let log = service.output();
    assert!(
        log.contains("57P01")
            || log.contains("terminating connection")
            || log.contains("connection closed"),
        "{log}"
    );
}

/// The server is down when the service starts: it starts anyway, goes offline, backs up,
/// and replays once the server appears. Meanwhile the backup directory is replaced by a
/// file (a failed disk): the loss is refused loudly, the data held in memory and retried.
#[test]
fn the_server_down_at_start_up_and_a_failed_backup_disk_lose_nothing() {
    let Some(pg) = PgCluster::start() else { return };
    create_table(&pg);
    pg.stop();
    let dir = tempfile::tempdir().unwrap();
    let url = pg.url();
    // Every append starts a new backup file, so a failed disk shows at the next batch.
    let env = pg_env(&url, &[("BACKUP_ROTATE_BYTES", "1")]);
    let mut service = Running::spawn(command("start_buffer_writer", dir.path(), &env));
    let base = service.base_url();
    service.wait_for_line("PostgreSQL is not reachable yet");
    let (status, _) = post(&format!("{base}/api/buffer/ingest"), &ingest_body(0, 1_000));
    assert_eq!(status, 200);
    eventually("the first backup", || {
        metrics(&base)["accounting"]["backed_up"] == 1_000
    });
    let (status, health) = get(&format!("{base}/api/buffer/health"));
    assert_eq!(status, 503, "{health}");
    assert!(
        health.contains("\"status\":\"degraded\"") && health.contains("offline"),
        "{health}"
    );

    // The backup disk fails too.
    let backup = dir.path().join("backup");
    let spool: Vec<String> = files_in(&backup);
    std::fs::rename(&backup, dir.path().join("backup.moved")).unwrap();
    std::fs::write(&backup, "not a directory").unwrap();
    let (status, _) = post(
        &format!("{base}/api/buffer/ingest"),
        &ingest_body(1_000, 500),
    );
    assert_eq!(status, 200);
    service.wait_for_line("CSV backup failed, keeping");
    let (status, health) = get(&format!("{base}/api/buffer/health"));
    assert_eq!(status, 503);
    assert!(
        health.contains("held in memory") || health.contains("\"status\":\"degraded\""),
        "{health}"
    );
    let (_, prometheus) = get(&format!("{base}/metrics"));
    let failures: u64 = prometheus
        .lines()
        .find(|l| l.starts_with("buffer_oracle_writer_backup_failures_total"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(failures >= 1, "{prometheus}");

    // The disk and the server come back.
    std::fs::remove_file(&backup).unwrap();
    std::fs::rename(dir.path().join("backup.moved"), &backup).unwrap();
    pg.start_again();
    wait_until_settled(&base, 1_500);
    service.interrupt();
    assert!(service.wait_exit(Duration::from_secs(10)).0.success());
    assert_eq!(
        rows(&pg),
        (1_500, 1_500),
        "spool files before the failure: {spool:?}"
    );
}

/// Shutdown while offline: everything goes to backup within the deadline; replay_backup
/// loads it once the server is back.
#[test]
fn shutdown_while_offline_backs_up_everything_and_replay_backup_loads_it() {
    let Some(pg) = PgCluster::start() else { return };
    create_table(&pg);
    let dir = tempfile::tempdir().unwrap();
    let url = pg.url();
    let env = pg_env(
        &url,
        &[
            ("BUFFER_BATCH_THRESHOLD", "100000"),
            ("BUFFER_WRITE_INTERVAL_SEC", "3600"),
        ],
    );
    let mut service = Running::spawn(command("start_buffer_writer", dir.path(), &env));
    let base = service.base_url();
    pg.stop();
    for chunk in 0..6 {
        let (status, _) = post(
            &format!("{base}/api/buffer/ingest"),
            &ingest_body(chunk * 500, 500),
        );
        assert_eq!(status, 200);
    }
    service.interrupt();
    let (exit, took) = service.wait_exit(Duration::from_secs(15));
    assert!(exit.success(), "{}", service.output());
    assert!(took < Duration::from_secs(6), "{took:?}");
    let log = service.output();
    assert!(log.contains("backed up: 3000"), "{log}");

    pg.start_again();
    let mut replay = command("replay_backup", dir.path(), &env);
    let (status, output) = run(&mut replay);
    assert!(status.success(), "{output}");
    assert!(
        output.contains("3000 rows (3000 written, 0 already stored, 0 rejected)"),
        "{output}"
    );
    assert_eq!(rows(&pg), (3_000, 3_000));
    // Again: nothing left to do.
    let (status, output) = run(&mut command("replay_backup", dir.path(), &env));
    assert!(status.success());
    assert!(output.contains("No backup files to replay"), "{output}");
}
