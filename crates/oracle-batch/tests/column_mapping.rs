//! The column mapping (TABLE_COLUMNS) on real databases: the spec's quickstart table
//! `TAG_DATA (tag_name, tag_value VARCHAR2(255), timestamp, quality)` in SQLite and in a
//! throwaway PostgreSQL cluster (skipped, loudly, without the server binaries unless
//! REQUIRE_PG=1). The rows are read back with plain SQL, as a plant's own queries would.

use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use oracle_batch::{
    ColumnMapping, FailureKind, PostgresConfig, PostgresSink, Secret, Sink, SqliteSink,
};
use pg_test_cluster::PgCluster;
use tag_model::{Quality, TagValue};

/// The example shipped in README and `sql/*/create_tag_data.sql`.
const TAG_DATA: &str = "tag_name={plc_code}.{tag_address}, tag_value={value:text}, \
                        timestamp={timestamp}, quality={quality}";

fn at(second: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2025, 11, 2)
        .and_then(|d| d.and_hms_micro_opt(14, 30, second, 123_456))
        .unwrap()
}

fn value(plc: &str, address: &str, second: u32, v: Option<f64>, quality: Quality) -> TagValue {
    TagValue::new(at(second), plc, address, v, quality).unwrap()
}

/// Three good rows and one without a value (TAG_DATA's tag_value is NOT NULL).
fn batch() -> Vec<TagValue> {
    vec![
        value("PLC01", "D100", 45, Some(12345.0), Quality::Good),
        value("PLC01", "D101", 45, Some(-0.25), Quality::Uncertain),
        value("PLC01", "D102", 45, None, Quality::Bad),
        value("Ofen-\u{fc}1", "W1A", 46, Some(1e-7), Quality::Bad),
    ]
}

/// What the table should hold after [`batch`]: (tag_name, tag_value, quality).
fn expected() -> Vec<(String, String, String)> {
    [
        ("Ofen-\u{fc}1.W1A", "1e-7", "BAD"),
        ("PLC01.D100", "12345.0", "GOOD"),
        ("PLC01.D101", "-0.25", "UNCERTAIN"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect()
}

/// Writes, resends, conflicts: the same on every sink. `rows` reads the table back.
fn exercise(sink: &mut dyn Sink, rows: &mut dyn FnMut() -> Vec<(String, String, String)>) {
    let report = sink.write_batch(&batch()).unwrap();
    assert_eq!(report.written, 3, "{report:?}");
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert_eq!(report.rejected[0].index, 2, "the row without a value");
    assert_eq!(rows(), expected());

    // A resent batch is all duplicates (read back through the mapped key).
    let good: Vec<TagValue> = batch()
        .into_iter()
        .filter(|v| v.value().is_some())
        .collect();
    let report = sink.write_batch(&good).unwrap();
    assert_eq!((report.written, report.duplicates), (0, 3), "{report:?}");

    // Another value under a stored key is a conflict; the stored row stays.
    let changed = value("PLC01", "D100", 45, Some(1.0), Quality::Good);
    let report = sink.write_batch(&[changed]).unwrap();
    assert_eq!(report.conflicts.len(), 1, "{report:?}");
    assert_eq!(
        report.conflicts[0]
            .stored
            .as_ref()
            .and_then(TagValue::value),
        Some(12345.0)
    );
    assert_eq!(rows(), expected());
}

#[test]
fn sqlite_writes_the_spec_tag_data_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plant.db");
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute_batch(include_str!("../../../sql/sqlite/create_tag_data.sql"))
        .unwrap();
    let mapping: ColumnMapping = TAG_DATA.parse().unwrap();
    let mut sink = SqliteSink::open_with(&path, "TAG_DATA", mapping.clone()).unwrap();
    sink.probe().unwrap();
    let mut rows = || {
        let mut statement = connection
            .prepare("SELECT tag_name, tag_value, quality FROM TAG_DATA ORDER BY tag_name")
            .unwrap();
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    };
    exercise(&mut sink, &mut rows);
    let micros: i64 = connection
        .query_row(
            "SELECT timestamp FROM TAG_DATA WHERE tag_name = 'PLC01.D100'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(micros, at(45).and_utc().timestamp_micros());
    // Whole rows cannot be read back: the codes share a column.
    let error = sink.fetch_all().unwrap_err();
    assert!(error.message().contains("into one column"), "{error}");

    // A mapping that names a column the table lacks stops at open, naming it.
    let wrong: ColumnMapping = TAG_DATA.replace("quality=", "qualty=").parse().unwrap();
    let error = SqliteSink::open_with(&path, "TAG_DATA", wrong).unwrap_err();
    assert_eq!(error.kind(), FailureKind::Setup);
    assert!(
        error
            .message()
            .contains("table TAG_DATA has no column qualty"),
        "{error}"
    );
    // So does a NOT NULL column without a default that the mapping leaves out.
    let without_quality: ColumnMapping = "tag_name={plc_code}.{tag_address}, \
                                          tag_value={value:text}, timestamp={timestamp}"
        .parse()
        .unwrap();
    let error = SqliteSink::open_with(&path, "TAG_DATA", without_quality).unwrap_err();
    assert!(
        error
            .message()
            .contains("column quality of table TAG_DATA is NOT NULL without a default"),
        "{error}"
    );
    // And a missing table.
    let error = SqliteSink::open_with(&path, "NO_SUCH_TABLE", mapping).unwrap_err();
    assert!(error.message().contains("does not exist"), "{error}");
}

/// A key the table does not enforce would let a resent row be stored twice: refused at open.
#[test]
fn sqlite_refuses_a_table_without_the_mapped_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plant.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE TAG_DATA (tag_name TEXT NOT NULL, tag_value TEXT NOT NULL, \
             timestamp INTEGER NOT NULL, quality TEXT NOT NULL)",
        )
        .unwrap();
    let error = SqliteSink::open_with(&path, "TAG_DATA", TAG_DATA.parse().unwrap()).unwrap_err();
    assert!(
        error
            .message()
            .contains("needs a primary key or unique index on (tag_name, timestamp)"),
        "{error}"
    );
}

/// The shipped layout with renamed columns and a constant: the sink conformance suite's
/// round trip holds, since the codes have columns of their own.
#[test]
fn sqlite_renamed_columns_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute_batch(
            "CREATE TABLE samples (ts INTEGER NOT NULL, plc TEXT NOT NULL, addr TEXT NOT NULL, \
             val REAL, q TEXT NOT NULL, site TEXT NOT NULL, written INTEGER NOT NULL, \
             PRIMARY KEY (plc, addr, ts))",
        )
        .unwrap();
    let mapping: ColumnMapping = "ts={timestamp}, plc={plc_code}, addr={tag_address}, \
                                  val={value}, q={quality}, site=LINE 7, written={now}"
        .parse()
        .unwrap();
    let mut sink = SqliteSink::open_with(&path, "samples", mapping).unwrap();
    let rows = oracle_batch::conformance::sample_rows(500);
    let report = sink.write_batch(&rows).unwrap();
    assert_eq!(report.written, 500);
    let mut back = sink.fetch_all().unwrap();
    let mut sent = rows.clone();
    let key = |v: &TagValue| {
        (
            v.plc_code().to_owned(),
            v.tag_address().to_owned(),
            v.timestamp(),
        )
    };
    back.sort_by_key(key);
    sent.sort_by_key(key);
    assert_eq!(back, sent);
    let sites: i64 = connection
        .query_row(
            "SELECT count(*) FROM samples WHERE site = 'LINE 7' AND written > 0",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(sites, 500);
    assert_eq!(sink.write_batch(&rows).unwrap().duplicates, 500);
}

#[test]
fn postgres_writes_the_spec_tag_data_table() {
    let Some(pg) = PgCluster::start() else { return };
    let mut client = postgres::Client::connect(&pg.url(), postgres::NoTls).unwrap();
    client
        .batch_execute(include_str!("../../../sql/postgres/create_tag_data.sql"))
        .unwrap();
    let sink = |mapping: &str, table: &str| {
        PostgresSink::new(PostgresConfig {
            url: Secret::new(pg.url()),
            table: table.into(),
            pool_min: 1,
            pool_max: 2,
            pool_timeout: Duration::from_secs(5),
            mapping: mapping.parse().unwrap(),
        })
        .unwrap()
    };
    let mut tag_data = sink(TAG_DATA, "TAG_DATA");
    tag_data.probe().unwrap();
    tag_data.check_table().unwrap();
    let mut rows = || {
        client
            .query(
                "SELECT tag_name, tag_value, quality FROM tag_data ORDER BY tag_name COLLATE \"C\"",
                &[],
            )
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect()
    };
    exercise(&mut tag_data, &mut rows);
    let stored: NaiveDateTime = client
        .query_one(
            "SELECT timestamp FROM tag_data WHERE tag_name = 'PLC01.D100'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(stored, at(45));

    // The table check names what is wrong, before any write.
    let error = sink(&TAG_DATA.replace("quality=", "qualty="), "TAG_DATA")
        .check_table()
        .unwrap_err();
    assert_eq!(error.kind(), FailureKind::Setup);
    assert!(
        error
            .message()
            .contains("table TAG_DATA has no column qualty"),
        "{error}"
    );
    let error = sink(
        "tag_name={plc_code}.{tag_address}, tag_value={value:text}, timestamp={timestamp}",
        "TAG_DATA",
    )
    .check_table()
    .unwrap_err();
    assert!(
        error
            .message()
            .contains("column quality of table TAG_DATA is NOT NULL without a default"),
        "{error}"
    );
    let error = sink(TAG_DATA, "public.NO_SUCH_TABLE")
        .check_table()
        .unwrap_err();
    assert!(error.message().contains("does not exist"), "{error}");
    // The shipped DDL is for the shipped layout only.
    assert!(sink(TAG_DATA, "TAG_DATA").create_table().is_err());
}

/// Renamed columns, `text` code columns and a time-of-writing column: rows read back equal,
/// and a resent batch is all duplicates.
#[test]
fn postgres_renamed_and_retyped_columns_round_trip() {
    let Some(pg) = PgCluster::start() else { return };
    let mut client = postgres::Client::connect(&pg.url(), postgres::NoTls).unwrap();
    client
        .batch_execute(
            "CREATE TABLE samples (ts timestamp(6) NOT NULL, plc text NOT NULL, \
             addr text NOT NULL, val double precision, q varchar(20), \
             written timestamp NOT NULL, PRIMARY KEY (plc, addr, ts))",
        )
        .unwrap();
    let mut sink = PostgresSink::new(PostgresConfig {
        url: Secret::new(pg.url()),
        table: "samples".into(),
        pool_min: 1,
        pool_max: 2,
        pool_timeout: Duration::from_secs(5),
        mapping: "ts={timestamp}, plc={plc_code}, addr={tag_address}, val={value}, \
                  q={quality}, written={now}"
            .parse()
            .unwrap(),
    })
    .unwrap();
    sink.check_table().unwrap();
    let rows = oracle_batch::conformance::sample_rows(2_000);
    assert_eq!(sink.write_batch(&rows).unwrap().written, 2_000);
    let mut back = sink.fetch_all().unwrap();
    let mut sent = rows.clone();
    let key = |v: &TagValue| {
        (
            v.plc_code().to_owned(),
            v.tag_address().to_owned(),
            v.timestamp(),
        )
    };
    back.sort_by_key(key);
    sent.sort_by_key(key);
    assert_eq!(back, sent);
    let report = sink.write_batch(&rows[..100]).unwrap();
    assert_eq!(report.duplicates, 100, "{report:?}");
}
