//! The operator sees the quickstart's log lines during an outage and on recovery.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::{config, eventually, values, Rig};
use oracle_batch::SinkError;

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info
    }
    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let line = format!("[{}] {}", record.level(), record.args());
            LINES.lock().unwrap().push(line);
        }
    }
    fn flush(&self) {}
}

fn position(lines: &[String], expected: &str, from: usize) -> usize {
    lines[from..]
        .iter()
        .position(|line| line.starts_with(expected))
        .map(|i| i + from)
        .unwrap_or_else(|| panic!("no line starting {expected:?} after line {from} in {lines:#?}"))
}

#[test]
fn outage_and_recovery_log_like_the_quickstart() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Info);

    let mut rig = Rig::new(1_000);
    let writer = rig.start(config(7, 50));
    let timeout = "ORA-12170: TNS:Connect timeout occurred";
    rig.faults.fail_next(4, SinkError::transient(timeout));
    rig.push_all(&values(0, 7));
    eventually("the backup", || writer.stats().backed_up == 7);
    rig.clock.advance(Duration::from_secs(1));
    eventually("the replay", || writer.mode().replayed_rows == 7);
    rig.faults.fail_next(1, SinkError::transient(timeout));
    rig.push_all(&values(7, 7));
    eventually("the recovery", || writer.stats().written == 7);
    rig.push_all(&values(14, 7));
    eventually("a healthy batch", || writer.stats().written == 14);
    writer.shutdown(Duration::from_secs(5));

    let lines = LINES.lock().unwrap().clone();
    let expected = [
        // The first attempt is known to fail only afterwards: announced just before its error.
        "[INFO] Batch write attempt 1/4...",
        "[ERROR] SQLite write failed (attempt 1/4): ORA-12170: TNS:Connect timeout occurred",
        "[INFO] Retrying in 1.0 seconds...",
        "[INFO] Batch write attempt 2/4...",
        "[ERROR] SQLite write failed (attempt 2/4): ORA-12170",
        "[INFO] Retrying in 2.0 seconds...",
        "[INFO] Batch write attempt 3/4...",
        "[INFO] Retrying in 4.0 seconds...",
        "[INFO] Batch write attempt 4/4...",
        "[ERROR] SQLite write failed (attempt 4/4): ORA-12170",
        "[ERROR] All 3 retries exhausted, saving to CSV backup",
        "[ERROR] SQLite is unavailable: going offline.",
        "[INFO] Saved 7 items to ",
        "[INFO] Continuing operation...",
        "[INFO] SQLite is reachable again: back online",
        "[INFO] Replaying backup file ",
        "[INFO] Replayed ",
        // The next batch fails once, then recovers.
        "[INFO] Batch write attempt 1/4...",
        "[ERROR] SQLite write failed (attempt 1/4)",
        "[INFO] Batch write attempt 2/4...",
        "[INFO] Batch written successfully: 7 rows, 0 errors",
        "[INFO] Write completed in ",
        "[INFO] Flushing remaining buffer data...",
        "[INFO] Final batch written: 0 rows",
        "[INFO] SQLiteWriter thread stopped",
    ];
    let mut at = 0;
    for line in expected {
        at = position(&lines, line, at) + 1;
    }
    let first_failure = position(&lines, "[ERROR] SQLite write failed (attempt 1/4)", 0);
    assert_eq!(
        lines[first_failure - 1],
        "[INFO] Batch write attempt 1/4..."
    );
    // Healthy batches stay quiet at info level: no attempt line and no success line for them
    // (the first attempts at info are the failing batch's and the recovering batch's).
    let first_attempts = lines
        .iter()
        .filter(|l| l.starts_with("[INFO] Batch write attempt 1/"))
        .count();
    assert_eq!(first_attempts, 2, "{lines:#?}");
    let successes = lines
        .iter()
        .filter(|l| l.contains("written successfully"))
        .count();
    assert_eq!(successes, 1, "{lines:#?}");
}
