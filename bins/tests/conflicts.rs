//! Conflicting duplicates through the real binaries, with the defaults a user gets: the same
//! (plc_code, tag_address, timestamp) posted with values 1, 2 and 99 stores 1, counts 2 and 99
//! as conflicts (not duplicates) in the metrics JSON and /metrics, says so in the log and in
//! health, and keeps them in a conflicts file with the value they lost to; replay_backup does
//! the same for a backup file that holds a conflicting row.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const KEY: &str =
    r#""timestamp":"2025-11-02T14:30:45.123456","plc_code":"PLC01","tag_address":"D100""#;

fn body(readings: &[(&str, &str)]) -> String {
    let items: Vec<String> = readings
        .iter()
        .map(|(value, quality)| format!(r#"{{{KEY},"tag_value":{value},"quality":"{quality}"}}"#))
        .collect();
    format!("[{}]", items.join(","))
}

/// The stored (tag_value, quality) rows of PLC01 D100.
fn stored(db: &Path) -> Vec<(Option<f64>, String)> {
    let connection = rusqlite::Connection::open(db).expect("open database");
    let mut statement = connection
        .prepare("SELECT tag_value, quality FROM TAG_VALUES WHERE plc_code = 'PLC01' AND tag_address = 'D100'")
        .unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The data lines of the conflicts files in `dir`, in name order.
fn conflict_lines(dir: &Path) -> Vec<String> {
    files_in(dir)
        .iter()
        .filter(|name| name.starts_with("conflicts_"))
        .flat_map(|name| {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            let mut lines = text.lines();
            assert_eq!(
                lines.next(),
                Some(
                    "timestamp,plc_code,tag_address,tag_value,quality,insertion_attempt_time,\
                     stored_tag_value,stored_quality"
                ),
                "{name}"
            );
            lines.map(str::to_owned).collect::<Vec<_>>()
        })
        .collect()
}

/// `2025-11-02T14:30:45.123456,PLC01,D100,<offered>,<attempt time>,<stored>` for each line.
fn offered_and_stored(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 8, "{line}");
            assert_eq!(
                &fields[..3],
                ["2025-11-02T14:30:45.123456", "PLC01", "D100"],
                "{line}"
            );
            (
                format!("{} {}", fields[3], fields[4]),
                format!("{} {}", fields[6], fields[7]),
            )
        })
        .collect()
}

fn settled(base: &str, accepted: u64) -> serde_json::Value {
    let mut metrics = serde_json::Value::Null;
    eventually("every value settled", || {
        metrics = get_json(&format!("{base}/api/buffer/metrics"));
        let accounting = &metrics["accounting"];
        accounting["accepted"] == accepted
            && accounting["in_flight"] == 0
            && accounting["buffered"] == 0
            && accounting["balanced"] == true
            && accounting["written"].as_u64().unwrap_or(0)
                + accounting["duplicates"].as_u64().unwrap_or(0)
                + accounting["conflicts"].as_u64().unwrap_or(0)
                == accepted
    });
    metrics
}

#[test]
fn one_key_posted_with_1_2_and_99_stores_1_and_keeps_2_and_99_as_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let mut service = Running::spawn(command("start_buffer_writer", dir.path(), &[]));
    let base = service.base_url();
    let ingest = format!("{base}/api/buffer/ingest");
    let (status, reply) = post(
        &ingest,
        &body(&[("1", "GOOD"), ("2", "GOOD"), ("99", "GOOD")]),
    );
    assert_eq!(status, 200, "{reply}");

    let metrics = settled(&base, 3);
    let accounting = &metrics["accounting"];
    assert_eq!(
        (
            &accounting["written"],
            &accounting["duplicates"],
            &accounting["conflicts"]
        ),
        (&1.into(), &0.into(), &2.into()),
        "{metrics}"
    );
    assert_eq!(metrics["backup"]["conflict_file_count"], 1, "{metrics}");
    let db = dir.path().join("data/tag_values.db");
    assert_eq!(stored(&db), [(Some(1.0), "GOOD".to_owned())]);
    let backup = dir.path().join("backup");
    assert_eq!(
        offered_and_stored(&conflict_lines(&backup)),
        [
            ("2.0 GOOD".to_owned(), "1.0 GOOD".to_owned()),
            ("99.0 GOOD".to_owned(), "1.0 GOOD".to_owned()),
        ]
    );
    let line = service.wait_for_line("Conflicting duplicates: 2 rows not stored");
    assert!(
        line.contains(
            "First: PLC01 D100 at 2025-11-02T14:30:45.123456: offered 2 GOOD, stored 1 GOOD"
        ),
        "{line}"
    );
    assert!(line.contains("conflicts_"), "{line}");

    let (status, prometheus) = get(&format!("{base}/metrics"));
    assert_eq!(status, 200);
    for expected in [
        // OpenMetrics names the counter family without its _total suffix.
        "# HELP buffer_oracle_writer_rows_conflict Rows not stored because the database holds \
         another value or quality for their key",
        "# TYPE buffer_oracle_writer_rows_conflict counter",
        "buffer_oracle_writer_rows_conflict_total 2",
        "buffer_oracle_writer_rows_duplicate_total 0",
        "buffer_oracle_writer_conflict_files 1",
        "buffer_oracle_writer_backup_replayed_conflicts_total 0",
    ] {
        assert!(
            prometheus.contains(expected),
            "no {expected:?} in\n{prometheus}"
        );
    }
    let (status, health) = get(&format!("{base}/api/buffer/health"));
    assert_eq!(status, 503, "{health}");
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(
        health["reasons"].as_array().unwrap().iter().any(|r| r
            .as_str()
            .unwrap()
            .contains("kept in conflicts_*.csv files")),
        "{health}"
    );

    // Against the stored row: the same reading again is a harmless duplicate; another
    // quality is one more conflict.
    let (status, reply) = post(&ingest, &body(&[("1", "GOOD"), ("1", "BAD")]));
    assert_eq!(status, 200, "{reply}");
    let metrics = settled(&base, 5);
    let accounting = &metrics["accounting"];
    assert_eq!(
        (
            &accounting["written"],
            &accounting["duplicates"],
            &accounting["conflicts"]
        ),
        (&1.into(), &1.into(), &3.into()),
        "{metrics}"
    );
    assert_eq!(stored(&db), [(Some(1.0), "GOOD".to_owned())]);
    assert_eq!(
        offered_and_stored(&conflict_lines(&backup)).last(),
        Some(&("1.0 BAD".to_owned(), "1.0 GOOD".to_owned()))
    );

    service.interrupt();
    let (status, _) = service.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}:\n{}", service.output());
    let log = service.output();
    assert!(
        log.contains(
            "Values accepted: 5, written: 1, already stored: 1, backed up: 0, rejected: 0, \
             spilled to backup during retries: 0, conflicting: 3"
        ),
        "{log}"
    );
    assert!(!log.contains("Accounting does not balance"), "{log}");
}

#[test]
fn replay_backup_keeps_a_conflicting_row_of_a_backup_file() {
    let dir = tempfile::tempdir().unwrap();
    // The database holds 1 for the key.
    let mut service = Running::spawn(command("start_buffer_writer", dir.path(), &[]));
    let base = service.base_url();
    let (status, reply) = post(
        &format!("{base}/api/buffer/ingest"),
        &body(&[("1", "GOOD")]),
    );
    assert_eq!(status, 200, "{reply}");
    settled(&base, 1);
    service.interrupt();
    assert!(service.wait_exit(Duration::from_secs(10)).0.success());

    // A backup file from an outage holds 5 (UNCERTAIN) for the same key, and a new row.
    std::fs::write(
        dir.path().join("backup/backup_20251102_143052.csv"),
        "timestamp,plc_code,tag_address,tag_value,quality,insertion_attempt_time\n\
         2025-11-02T14:30:45.123456,PLC01,D100,5,UNCERTAIN,2025-11-02T14:30:52.000000\n\
         2025-11-02T14:30:46.000000,PLC01,D100,6,GOOD,2025-11-02T14:30:52.000000\n",
    )
    .unwrap();
    let (status, output) = run(&mut command("replay_backup", dir.path(), &[]));
    assert!(status.success(), "{status}:\n{output}");
    assert!(
        output.contains(
            "2 rows (1 written, 0 already stored, 0 rejected); 1 conflicting (kept in \
             conflicts_*.csv)"
        ),
        "{output}"
    );
    assert!(output.contains("conflicts_*.csv"), "{output}");
    let backup = dir.path().join("backup");
    assert_eq!(
        offered_and_stored(&conflict_lines(&backup)),
        [("5.0 UNCERTAIN".to_owned(), "1.0 GOOD".to_owned())]
    );
    assert_eq!(
        stored(&dir.path().join("data/tag_values.db")),
        [
            (Some(1.0), "GOOD".to_owned()),
            (Some(6.0), "GOOD".to_owned())
        ]
    );
    assert_eq!(files_in(&backup.join("replayed")).len(), 1);
}
