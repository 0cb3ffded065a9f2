//! TABLE_COLUMNS and TIMESTAMP_ZONE on a real process: start_buffer_writer writes the spec's
//! `TAG_DATA` table in SQLite, in the local time of a machine nine hours east of UTC.

mod common;

#[cfg(unix)]
use std::time::Duration;

use common::*;

const TAG_DATA: &str = "tag_name={plc_code}.{tag_address}, tag_value={value:text}, \
                        timestamp={timestamp}, quality={quality}";

/// A POSIX TZ rule: no tz database needed. Nine hours east of UTC, no daylight saving.
#[cfg(unix)]
const NINE_EAST: &str = "JST-9";

fn tag_data_db(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("plant.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(include_str!("../../sql/sqlite/create_tag_data.sql"))
        .unwrap();
    path
}

#[cfg(unix)]
#[test]
fn writes_tag_data_in_local_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = tag_data_db(dir.path());
    let db_text = db.display().to_string();
    let mut service = Running::spawn(command(
        "start_buffer_writer",
        dir.path(),
        &[
            ("SQLITE_PATH", &db_text),
            ("ORACLE_TABLE", "TAG_DATA"),
            ("TABLE_COLUMNS", TAG_DATA),
            ("TIMESTAMP_ZONE", "local"),
            ("TZ", NINE_EAST),
        ],
    ));
    let base = service.base_url();
    service.wait_for_line("Press Ctrl+C to stop.");
    let before = chrono::Utc::now().naive_utc();
    let body = r#"[{"plc_code":"PLC01","tag_address":"D100","tag_value":12345.0},
                  {"plc_code":"PLC01","tag_address":"D101","tag_value":1.5,
                   "timestamp":"2025-11-02T05:30:45.123456Z"},
                  {"plc_code":"PLC01","tag_address":"D102","tag_value":2.5,
                   "timestamp":"2025-11-02T14:30:45.5"},
                  {"plc_code":"PLC01","tag_address":"D103","quality":"BAD"}]"#;
    let (status, reply) = post(&format!("{base}/api/buffer/ingest"), body);
    assert_eq!(status, 200, "{reply}");
    eventually("4 values settled", || {
        let accounting = &get_json(&format!("{base}/api/buffer/metrics"))["accounting"];
        accounting["written"] == 3 && accounting["rejected"] == 1
    });
    let after = chrono::Utc::now().naive_utc();
    service.interrupt();
    let (status, _) = service.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}:\n{}", service.output());
    let log = service.output();
    assert!(log.contains(&format!("Table columns: {TAG_DATA}")), "{log}");

    let connection = rusqlite::Connection::open(&db).unwrap();
    let rows: Vec<(String, String, i64, String)> = connection
        .prepare("SELECT tag_name, tag_value, timestamp, quality FROM TAG_DATA ORDER BY tag_name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let names: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|(n, v, _, q)| (n.as_str(), v.as_str(), q.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("PLC01.D100", "12345.0", "GOOD"),
            ("PLC01.D101", "1.5", "GOOD"),
            ("PLC01.D102", "2.5", "GOOD"),
        ]
    );
    let micros = |at: chrono::NaiveDateTime| at.and_utc().timestamp_micros();
    let nine_hours = 9 * 3_600 * 1_000_000;
    // Assigned by the service: the wall-clock time nine hours east, not UTC.
    let assigned = rows[0].2;
    assert!(
        micros(before) + nine_hours - 1_000_000 <= assigned
            && assigned <= micros(after) + nine_hours + 1_000_000,
        "{assigned} is not local time between {before} and {after} UTC + 9 h"
    );
    // Sent in UTC (Z): converted to the same clock. Sent without a zone: kept.
    let sent = |text: &str| micros(tag_model::parse_timestamp(text).unwrap());
    assert_eq!(rows[1].2, sent("2025-11-02T14:30:45.123456"));
    assert_eq!(rows[2].2, sent("2025-11-02T14:30:45.5"));
    // The value without a number cannot go into TAG_DATA's NOT NULL tag_value: rejected.
    let backup = dir.path().join("backup");
    let rejected: Vec<String> = files_in(&backup)
        .into_iter()
        .filter(|name| name.starts_with("rejected_"))
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    let text = std::fs::read_to_string(backup.join(&rejected[0])).unwrap();
    assert!(text.contains("PLC01,D103,,BAD"), "{text}");
}

#[test]
fn a_mapping_that_does_not_fit_the_table_stops_start_up_naming_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let db = tag_data_db(dir.path());
    let db_text = db.display().to_string();
    let misspelt = TAG_DATA.replace("quality=", "qualty=");
    let (status, output) = run(&mut command(
        "start_buffer_writer",
        dir.path(),
        &[
            ("SQLITE_PATH", &db_text),
            ("ORACLE_TABLE", "TAG_DATA"),
            ("TABLE_COLUMNS", &misspelt),
        ],
    ));
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(
        output.contains("table TAG_DATA has no column qualty"),
        "{output}"
    );
    // The connection test says the same, as a configuration error.
    let (status, output) = run(&mut command(
        "test_oracle_connection",
        dir.path(),
        &[
            ("SQLITE_PATH", &db_text),
            ("ORACLE_TABLE", "TAG_DATA"),
            ("TABLE_COLUMNS", &misspelt),
        ],
    ));
    assert_eq!(status.code(), Some(4), "{output}");
    assert!(
        output.contains("table TAG_DATA has no column qualty"),
        "{output}"
    );
    // A template that cannot work is a bad setting: exit 2, naming the variable.
    let (status, output) = run(&mut command(
        "start_buffer_writer",
        dir.path(),
        &[(
            "TABLE_COLUMNS",
            "tag_name={plc_code}.{tag_address}, v={value}",
        )],
    ));
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(output.contains("TABLE_COLUMNS=\""), "{output}");
    assert!(output.contains("no column takes {timestamp}"), "{output}");
}

/// The connection test on the TAG_DATA table: inserts and reads back its TEST row through the
/// mapping, and leaves nothing behind.
#[test]
fn test_oracle_connection_checks_a_mapped_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = tag_data_db(dir.path());
    let db_text = db.display().to_string();
    let (status, output) = run(&mut command(
        "test_oracle_connection",
        dir.path(),
        &[
            ("SQLITE_PATH", &db_text),
            ("ORACLE_TABLE", "TAG_DATA"),
            ("TABLE_COLUMNS", TAG_DATA),
        ],
    ));
    assert_eq!(status.code(), Some(0), "{output}");
    assert!(output.contains("tag_value=12345.0"), "{output}");
    let count: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM TAG_DATA", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 0, "the TEST row was left behind");
}
