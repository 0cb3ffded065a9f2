#![cfg(unix)] // SIGKILL to a real process
//! The crash drill of BUFFER_DURABILITY=disk: start_buffer_writer takes values over HTTP at
//! a steady rate (each request answered 200 only once its values are synced) and as NDJSON
//! on standard input (polled-style: nobody is told they are safe), and is killed with
//! SIGKILL at random moments over several rounds: in steady running, during a database
//! outage (another connection holds SQLite's write lock), and while it replays a backup file.
//! After each kill it is started again on the same folders. In the end every value that got
//! a 200 is in the database exactly once, nothing that was never sent is, and the
//! polled-style values lost in each round (only those not yet synced, or still in the pipe)
//! are counted and reported.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// Numbers of values sent over HTTP, over standard input and in the prepared backup file.
const HTTP: u64 = 0;
const STDIN: u64 = 1_000_000_000;
const BACKUP: u64 = 2_000_000_000;

/// A value's fields from its number: the timestamp encodes the number (microseconds after
/// 2025-11-02T14:00:00), so every number is its own primary key.
fn fields(n: u64) -> (String, String, String) {
    let timestamp = format!(
        "2025-11-02T{:02}:{:02}:{:02}.{:06}",
        14 + n / 3_600_000_000,
        (n / 60_000_000) % 60,
        (n / 1_000_000) % 60,
        n % 1_000_000
    );
    (
        timestamp,
        format!("PLC{:02}", n % 7),
        format!("D{}", 100 + n % 13),
    )
}

fn json(n: u64) -> String {
    let (timestamp, plc, tag) = fields(n);
    format!(
        r#"{{"timestamp":"{timestamp}","plc_code":"{plc}","tag_address":"{tag}","tag_value":{}}}"#,
        n % 1000
    )
}

fn body(numbers: std::ops::Range<u64>) -> String {
    let items: Vec<String> = numbers.map(json).collect();
    format!("[{}]", items.join(","))
}

/// 2025-11-02T14:00:00 in microseconds since 1970 (how the SQLite table stores time).
const BASE_MICROS: i64 = 1_762_092_000_000_000;

/// Every value number in the database, and how many rows there are.
fn stored(db: &Path) -> (BTreeSet<u64>, u64) {
    let connection = rusqlite::Connection::open(db).expect("open database");
    let mut statement = connection
        .prepare("SELECT timestamp FROM TAG_VALUES")
        .unwrap();
    let mut numbers = BTreeSet::new();
    let mut rows = 0;
    for micros in statement.query_map([], |row| row.get::<_, i64>(0)).unwrap() {
        rows += 1;
        numbers.insert((micros.unwrap() - BASE_MICROS) as u64);
    }
    (numbers, rows)
}

fn environment(dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("BUFFER_DURABILITY", "disk".into()),
        ("BUFFER_DIR", dir.join("buffer").display().to_string()),
        ("SQLITE_PATH", dir.join("db.sqlite").display().to_string()),
        ("BACKUP_DIR", dir.join("backup").display().to_string()),
        ("PID_FILE", dir.join("service.pid").display().to_string()),
    ]
}

fn start(dir: &Path) -> Running {
    let env = environment(dir);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut command = command("start_buffer_writer", dir, &pairs);
    command.arg("--stdin").stdin(Stdio::piped());
    Running::spawn(command)
}

/// What one round sent.
#[derive(Default)]
struct Sent {
    /// Ranges whose request got a 200.
    acked: Vec<std::ops::Range<u64>>,
    /// Ranges posted, answered or not.
    posted: Vec<std::ops::Range<u64>>,
    /// Polled-style values written to standard input before the kill.
    stdin: Vec<u64>,
}

/// Sends over HTTP and standard input until `stop`; returns what was sent.
fn load(
    service: &mut Running,
    base: &str,
    next_http: &mut u64,
    next_stdin: &mut u64,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Sent> {
    let mut stdin = service.child.stdin.take().expect("stdin");
    let url = format!("{base}/api/buffer/ingest");
    let (mut http, mut polled) = (*next_http, *next_stdin);
    // Each round gets its own number ranges.
    *next_http += 10_000_000;
    *next_stdin += 10_000_000;
    std::thread::spawn(move || {
        let sent = Arc::new(Mutex::new(Sent::default()));
        let posting = {
            let (sent, stop) = (Arc::clone(&sent), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let range = http..http + 250;
                    http += 250;
                    sent.lock().unwrap().posted.push(range.clone());
                    match try_post(&url, &body(range.clone())) {
                        Some(200) => sent.lock().unwrap().acked.push(range),
                        Some(_) => std::thread::sleep(Duration::from_millis(50)),
                        None => return, // the service is gone
                    }
                }
            })
        };
        // Polled-style: about 2,000 values a second, a line each.
        while !stop.load(Ordering::SeqCst) {
            let mut chunk = String::new();
            let numbers: Vec<u64> = (polled..polled + 20).collect();
            for n in &numbers {
                chunk.push_str(&json(*n));
                chunk.push('\n');
            }
            if stdin.write_all(chunk.as_bytes()).is_err() || stdin.flush().is_err() {
                break;
            }
            sent.lock().unwrap().stdin.extend(numbers);
            polled += 20;
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = posting.join();
        drop(stdin);
        Arc::try_unwrap(sent)
            .ok()
            .map(|m| m.into_inner().unwrap())
            .unwrap_or_default()
    })
}

/// POST that reports a refused connection as `None` instead of panicking.
fn try_post(url: &str, body: &str) -> Option<u16> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    agent
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .ok()
        .map(|response| response.status().as_u16())
}

/// A backup file of `rows` values, as a past outage would have left it.
fn write_backup_file(dir: &Path, rows: u64) -> BTreeSet<u64> {
    std::fs::create_dir_all(dir).unwrap();
    let mut text =
        String::from("timestamp,plc_code,tag_address,tag_value,quality,insertion_attempt_time\n");
    let mut numbers = BTreeSet::new();
    for k in 0..rows {
        let n = BACKUP + k;
        let (timestamp, plc, tag) = fields(n);
        text.push_str(&format!(
            "{timestamp},{plc},{tag},{},GOOD,2025-11-02T15:00:00.000000\n",
            n % 1000
        ));
        numbers.insert(n);
    }
    std::fs::write(dir.join("backup_20251102_150000.csv"), text).unwrap();
    numbers
}

fn kill(service: &mut Running) {
    service.child.kill().expect("SIGKILL");
    service.child.wait().expect("reaped");
}

#[test]
fn values_acknowledged_before_a_kill_are_in_the_database_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    // A fixed seed by default, so a failure can be replayed; CRASH_DRILL_SEED picks others.
    let seed = std::env::var("CRASH_DRILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(18);
    eprintln!("crash drill: seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let (mut next_http, mut next_stdin) = (HTTP, STDIN);
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    let mut sent_all: BTreeSet<u64> = BTreeSet::new();
    // Per round: name, polled-style values sent, values acknowledged, ms from the round's
    // start (its outage or replay under way) to the kill.
    let mut polled_rounds: Vec<(String, Vec<u64>, usize, u64)> = Vec::new();
    let mut backup_rows = BTreeSet::new();

    for round in ["steady", "database outage", "replay", "steady again"] {
        if round == "replay" {
            backup_rows = write_backup_file(&dir.path().join("backup"), 300_000);
        }
        let mut service = start(dir.path());
        let base = service.base_url();
        service.wait_for_line("Press Ctrl+C to stop.");
        // The outage: another connection holds the write lock, so every batch waits and
        // fails (busy), and is retried with the spec's delays.
        let outage = (round == "database outage").then(|| {
            let connection = rusqlite::Connection::open(&db).unwrap();
            connection.execute_batch("BEGIN EXCLUSIVE").unwrap();
            connection
        });
        let stop = Arc::new(AtomicBool::new(false));
        let loader = load(
            &mut service,
            &base,
            &mut next_http,
            &mut next_stdin,
            Arc::clone(&stop),
        );
        match round {
            "replay" => eventually("the backup file being replayed", || {
                !get_json(&format!("{base}/api/buffer/metrics"))["offline"]["replaying"].is_null()
            }),
            "database outage" => eventually("a failed write", || {
                service
                    .lines
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|line| line.contains("write failed"))
            }),
            _ => {}
        }
        let kill_after = 300 + rng.u64(0..1500);
        std::thread::sleep(Duration::from_millis(kill_after));
        kill(&mut service);
        stop.store(true, Ordering::SeqCst);
        let sent = loader.join().unwrap();
        drop(outage);
        assert!(!sent.acked.is_empty(), "{round}: nothing was acknowledged");
        let acked_in_round = sent.acked.iter().map(|r| r.end - r.start).sum::<u64>() as usize;
        for range in &sent.acked {
            acked.extend(range.clone());
        }
        sent_all.extend(sent.posted.iter().flat_map(|r| r.clone()));
        sent_all.extend(sent.stdin.iter().copied());
        polled_rounds.push((round.to_owned(), sent.stdin, acked_in_round, kill_after));
    }

    // A last start: everything left in the log and the backup is written; then a clean stop.
    let mut service = start(dir.path());
    let base = service.base_url();
    eventually("everything written", || {
        let metrics = get_json(&format!("{base}/api/buffer/metrics"));
        metrics["accounting"]["buffered"] == 0
            && metrics["accounting"]["in_flight"] == 0
            && metrics["backup"]["pending_rows"] == 0
            && metrics["durable_log"]["unsettled"] == 0
    });
    // The accounting identity of the last run: every value it accepted (recovered from the
    // log included) is in exactly one place.
    let mut accounting = serde_json::Value::Null;
    eventually("a balanced account", || {
        accounting = get_json(&format!("{base}/api/buffer/metrics"))["accounting"].clone();
        accounting["balanced"] == true
    });
    let sum: u64 = [
        "written",
        "duplicates",
        "conflicts",
        "rejected",
        "backed_up",
        "spilled",
        "overflow",
        "buffered",
        "lost",
        "in_flight",
        "unsaved",
    ]
    .iter()
    .map(|field| {
        accounting[*field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field}: {accounting}"))
    })
    .sum();
    assert_eq!(accounting["accepted"].as_u64(), Some(sum), "{accounting}");
    assert!(
        accounting["recovered"].as_u64() > Some(0),
        "the last start recovered nothing from the log: {accounting}"
    );
    service.interrupt();
    let (status, _) = service.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{}", service.output());

    let (in_db, rows) = stored(&db);
    assert_eq!(rows, in_db.len() as u64, "a value stored twice");
    let missing: Vec<_> = acked.difference(&in_db).take(10).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged values are not in the database, e.g. {missing:?}",
        acked.difference(&in_db).count()
    );
    let missing_backup: Vec<_> = backup_rows.difference(&in_db).take(10).collect();
    assert!(
        missing_backup.is_empty(),
        "backup rows lost: {missing_backup:?}"
    );
    sent_all.extend(backup_rows.iter().copied());
    let invented: Vec<_> = in_db.difference(&sent_all).take(10).collect();
    assert!(
        invented.is_empty(),
        "rows that were never sent: {invented:?}"
    );
    // Polled-style values are at risk only until the next sync (100 ms, about 200 values at
    // this rate), plus what was still in the pipe or in the reader's chunk (pushed after at
    // most 50 ms). Typically about 200 are lost; the bound leaves room for a loaded machine.
    for (round, polled, acked_in_round, kill_after) in &polled_rounds {
        let lost = polled.iter().filter(|n| !in_db.contains(n)).count();
        eprintln!(
            "crash drill, round {round:?}: killed {kill_after} ms into the round; \
             {acked_in_round} values acknowledged (200), all in the database once; {} \
             polled-style values sent, {lost} lost at the kill",
            polled.len()
        );
        assert!(lost <= 2_500, "{round}: {lost} polled-style values lost");
    }
    eprintln!(
        "crash drill: {} acknowledged values, all in the database once; {} backup rows replayed",
        acked.len(),
        backup_rows.len()
    );
}
