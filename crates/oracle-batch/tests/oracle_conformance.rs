//! The sink conformance suite and Oracle's own checks against a real Oracle Database. Runs
//! when ORACLE_TEST_DSN, ORACLE_TEST_USER and ORACLE_TEST_PASSWORD are set (and Instant
//! Client is installed); says loudly that it skipped otherwise.
//!
//! It never touches a table of yours: it creates its own, uniquely named (`BOWT...`), from
//! sql/oracle/create_tag_values.sql, empties only that one between checks, and drops it at
//! the end, also when a check fails. The test user needs CREATE SESSION and CREATE TABLE (and
//! quota on its tablespace). The killed-session check also needs SELECT on V$SESSION and
//! ALTER SYSTEM; without them it says why it skipped.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::eventually;
use csv_backup::BackupWriter;
use oracle_batch::conformance::{self, ConformanceSink};
use oracle_batch::{
    BatchWriter, ColumnMapping, OracleConfig, OracleSink, Secret, Sink, SinkError, WriteReport,
};
use ringbuf_core::RingBuffer;
use tag_model::{Quality, TagValue};

/// Straight to the stderr handle: libtest captures eprintln! of passing tests.
fn say(text: &str) {
    let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{text}\n").as_bytes());
}

struct Settings {
    dsn: String,
    user: String,
    password: String,
}

fn settings() -> Option<Settings> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    Some(Settings {
        dsn: var("ORACLE_TEST_DSN")?,
        user: var("ORACLE_TEST_USER")?,
        password: var("ORACLE_TEST_PASSWORD")?,
    })
}

/// A name no plant table has: `BOWT` and 10 hexadecimal digits from the process id and the
/// time. At most 30 characters with the constraint prefixes, for Oracle 12.1's limit.
fn unique_table_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mixed = (nanos ^ (u128::from(std::process::id()) << 64)) as u64;
    format!("BOWT{:010X}", mixed & 0xFF_FFFF_FFFF)
}

/// The statements of sql/oracle/create_tag_values.sql for table `name` (its constraints and
/// index renamed with it).
fn test_table_ddl(name: &str) -> Vec<String> {
    let ddl = include_str!("../../../sql/oracle/create_tag_values.sql");
    let without_comments: String = ddl
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(|statement| statement.trim().replace("TAG_VALUES", name))
        .filter(|statement| !statement.is_empty())
        .collect()
}

/// The test's own table: created on construction, dropped on drop.
struct TestTable {
    admin: oracle::Connection,
    name: String,
}

impl TestTable {
    fn create(settings: &Settings) -> TestTable {
        let admin = oracle::Connection::connect(&settings.user, &settings.password, &settings.dsn)
            .unwrap_or_else(|e| panic!("log in as ORACLE_TEST_USER: {e}"));
        let name = unique_table_name();
        for statement in test_table_ddl(&name) {
            admin.execute(&statement, &[]).unwrap_or_else(|e| {
                panic!("create the test table (the user needs CREATE TABLE): {e}: {statement}")
            });
        }
        say(&format!("oracle conformance: created test table {name}"));
        TestTable { admin, name }
    }

    /// Empties the test's own table (and nothing else).
    fn empty(&self) {
        self.admin
            .execute(&format!("TRUNCATE TABLE {}", self.name), &[])
            .unwrap_or_else(|e| panic!("truncate {}: {e}", self.name));
    }

    fn count(&self) -> u64 {
        self.admin
            .query_row_as::<u64>(&format!("SELECT COUNT(*) FROM {}", self.name), &[])
            .unwrap_or_else(|e| panic!("count {}: {e}", self.name))
    }
}

impl Drop for TestTable {
    fn drop(&mut self) {
        let sql = format!("DROP TABLE {} CASCADE CONSTRAINTS PURGE", self.name);
        match self.admin.execute(&sql, &[]) {
            Ok(_) => say(&format!(
                "oracle conformance: dropped test table {}",
                self.name
            )),
            Err(e) => say(&format!(
                "oracle conformance: could not drop {}: {e}",
                self.name
            )),
        }
    }
}

struct Fresh(OracleSink);

impl Sink for Fresh {
    fn write_batch(&mut self, batch: &[TagValue]) -> Result<WriteReport, SinkError> {
        self.0.write_batch(batch)
    }
    fn probe(&mut self) -> Result<(), SinkError> {
        self.0.probe()
    }
    fn kind(&self) -> &'static str {
        self.0.kind()
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
}

impl ConformanceSink for Fresh {
    fn stored_rows(&mut self) -> Result<Vec<TagValue>, SinkError> {
        self.0.fetch_all()
    }
}

fn sink(settings: &Settings, table: &TestTable) -> OracleSink {
    OracleSink::new(OracleConfig {
        table: table.name.clone(),
        pool_min: 1,
        pool_max: 4,
        ..OracleConfig::new(
            &settings.dsn,
            &settings.user,
            Secret::new(settings.password.clone()),
        )
    })
    .expect("Oracle settings")
}

/// One test, so that a run without Oracle shows one skipped suite, not a row of green checks.
#[test]
fn conformance_suite_against_oracle_when_configured() {
    let Some(settings) = settings() else {
        say(
            "SKIPPED oracle conformance: set ORACLE_TEST_DSN, ORACLE_TEST_USER and \
             ORACLE_TEST_PASSWORD (and install Oracle Instant Client) to run it",
        );
        return;
    };
    let table = TestTable::create(&settings);
    conformance::run_all(|| {
        table.empty();
        Fresh(sink(&settings, &table))
    });
    table.empty();
    more_than_65535_rows_go_in_chunks_with_verdicts_at_the_right_rows(&sink(&settings, &table));
    table.empty();
    inserted_at_is_filled_by_the_database(&sink(&settings, &table), &table);
    table.empty();
    numeric_edge_values_round_trip(&sink(&settings, &table));
    table.empty();
    two_writer_threads_share_one_pool(&sink(&settings, &table), &table);
    table.empty();
    a_killed_session_is_recovered_from(&sink(&settings, &table), &table);
    drop(table);
    the_spec_tag_data_table_through_a_column_mapping(&settings);
}

/// sql/oracle/create_tag_data.sql under a name of the test's own, written through the
/// TAG_DATA mapping; the dictionary check passes for it and names a misspelt column.
fn the_spec_tag_data_table_through_a_column_mapping(settings: &Settings) {
    let name = format!("{}D", unique_table_name());
    let admin = oracle::Connection::connect(&settings.user, &settings.password, &settings.dsn)
        .unwrap_or_else(|e| panic!("log in as ORACLE_TEST_USER: {e}"));
    let ddl = include_str!("../../../sql/oracle/create_tag_data.sql");
    let without_comments: String = ddl
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    for statement in without_comments
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let statement = statement
            .replace("pk_tag_data", &format!("PK_{name}"))
            .replace("idx_tag_data_timestamp", &format!("IX_{name}"))
            .replace("TAG_DATA", &name);
        admin
            .execute(&statement, &[])
            .unwrap_or_else(|e| panic!("{e}: {statement}"));
    }
    let dropped = TestTable {
        admin,
        name: name.clone(),
    };
    let mapping = |text: &str| -> ColumnMapping { text.parse().expect("mapping") };
    let tag_data = "tag_name={plc_code}.{tag_address}, tag_value={value:text}, \
                    timestamp={timestamp}, quality={quality}";
    let sink = |text: &str| {
        OracleSink::new(OracleConfig {
            table: name.clone(),
            pool_min: 1,
            pool_max: 2,
            mapping: mapping(text),
            ..OracleConfig::new(
                &settings.dsn,
                &settings.user,
                Secret::new(settings.password.clone()),
            )
        })
        .expect("Oracle settings")
    };
    let mut writer = sink(tag_data);
    writer.probe().expect("probe TAG_DATA");
    writer.check_table().expect("TAG_DATA fits the mapping");
    let mut rows = conformance::sample_rows(1_000);
    // No value: NULL into NOT NULL tag_value. A name over 100 bytes: too large (the sample
    // rows have codes at their column limits).
    let fits =
        |r: &TagValue| r.value().is_some() && r.plc_code().len() + 1 + r.tag_address().len() <= 100;
    let refused = rows.iter().filter(|r| !fits(r)).count();
    let report = writer.write_batch(&rows).expect("write TAG_DATA");
    assert_eq!(report.written, 1_000 - refused, "{:?}", report.rejected);
    assert_eq!(report.rejected.len(), refused);
    assert_eq!(dropped.count(), (1_000 - refused) as u64);
    rows.retain(fits);
    let report = writer.write_batch(&rows).expect("resend TAG_DATA");
    assert_eq!(report.duplicates, rows.len(), "{report:?}");
    let (tag_name, tag_value): (String, String) = dropped
        .admin
        .query_row_as(
            &format!(
                "SELECT tag_name, tag_value FROM {name} WHERE tag_name = :1 AND timestamp = :2"
            ),
            &[
                &format!("{}.{}", rows[0].plc_code(), rows[0].tag_address()),
                &rows[0].timestamp(),
            ],
        )
        .expect("read TAG_DATA row");
    assert_eq!(
        tag_name,
        format!("{}.{}", rows[0].plc_code(), rows[0].tag_address())
    );
    assert_eq!(tag_value.parse::<f64>().ok(), rows[0].value());
    let error = sink(&tag_data.replace("quality=", "qualty="))
        .check_table()
        .expect_err("a misspelt column");
    assert!(error.message().contains("has no column qualty"), "{error}");
    drop(dropped);
}

/// Past 65,535 rows a batch is sent in chunks; a duplicate and a bad row in the second chunk
/// are reported at their index in the whole batch.
fn more_than_65535_rows_go_in_chunks_with_verdicts_at_the_right_rows(sink: &OracleSink) {
    let mut rows = conformance::sample_rows(70_000);
    let bad = rows[65_540].clone();
    rows[65_540] = TagValue::new(
        bad.timestamp(),
        bad.plc_code(),
        bad.tag_address(),
        Some(conformance::OUT_OF_RANGE_VALUE),
        Quality::Good,
    )
    .expect("valid value");
    rows.push(rows[10].clone()); // index 70,000: the same row again
    let mut sink = sink.clone();
    let report = sink.write_batch(&rows).expect("write 70,001 rows");
    assert_eq!(report.written, 69_999, "{:?}", report.rejected);
    assert_eq!(report.duplicates, 1);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].index, 65_540);
    assert_eq!(sink.fetch_all().expect("read back").len(), 69_999);
}

/// `inserted_at` is left to the table's default: filled, and close to the database's clock.
fn inserted_at_is_filled_by_the_database(sink: &OracleSink, table: &TestTable) {
    let mut sink = sink.clone();
    sink.write_batch(&conformance::sample_rows(10))
        .expect("write 10 rows");
    let sql = format!(
        "SELECT COUNT(*) FROM {} WHERE inserted_at IS NOT NULL \
         AND inserted_at BETWEEN SYS_EXTRACT_UTC(SYSTIMESTAMP) - INTERVAL '5' MINUTE \
         AND SYS_EXTRACT_UTC(SYSTIMESTAMP)",
        table.name
    );
    let recent: u64 = table
        .admin
        .query_row_as(&sql, &[])
        .expect("query inserted_at");
    assert_eq!(recent, 10);
}

/// The largest and smallest magnitudes NUMBER holds, signed zero, and values that need all
/// of a double's digits; and just past NUMBER's range, a rejected row.
fn numeric_edge_values_round_trip(sink: &OracleSink) {
    let edges = [
        0.0,
        -0.0,
        9.99e125,
        -9.99e125,
        1e-129,
        -1e-129,
        1.0 / 3.0,
        -2.0 / 3.0,
        9_007_199_254_740_992.0,
        123_456_789.123_456_78,
        f64::EPSILON,
    ];
    let keys = conformance::sample_rows(edges.len() + 1);
    let mut rows: Vec<TagValue> = keys
        .iter()
        .zip(edges)
        .map(|(key, value)| {
            TagValue::new(
                key.timestamp(),
                key.plc_code(),
                key.tag_address(),
                Some(value),
                Quality::Good,
            )
            .expect("valid value")
        })
        .collect();
    let last = &keys[edges.len()];
    rows.push(
        TagValue::new(
            last.timestamp(),
            last.plc_code(),
            last.tag_address(),
            Some(1e126),
            Quality::Good,
        )
        .expect("valid value"),
    );
    let mut sink = sink.clone();
    let report = sink.write_batch(&rows).expect("write the edge values");
    assert_eq!(report.written, edges.len(), "{:?}", report.rejected);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].index, edges.len());
    let stored = sink.fetch_all().expect("read back");
    for sent in &rows[..edges.len()] {
        let back = stored
            .iter()
            .find(|row| row.timestamp() == sent.timestamp())
            .unwrap_or_else(|| panic!("{sent:?} not stored"));
        let (sent, back) = (
            sent.value().unwrap_or(f64::NAN),
            back.value().unwrap_or(f64::NAN),
        );
        let close = sent == back || ((sent - back) / sent).abs() < 1e-15;
        assert!(close, "sent {sent:e}, read back {back:e}");
    }
}

/// Two writer threads over clones of one sink, so one pool, write everything once.
fn two_writer_threads_share_one_pool(sink: &OracleSink, table: &TestTable) {
    let dir = tempfile::tempdir().expect("temp dir");
    let buffer = Arc::new(RingBuffer::new(50_000).expect("buffer"));
    let backup = Arc::new(BackupWriter::new(dir.path().join("backup")).expect("backup"));
    let writer = BatchWriter::builder(buffer.clone(), backup)
        .sink(sink.clone())
        .sink(sink.clone())
        .spawn()
        .expect("writer");
    let rows = conformance::sample_rows(20_000);
    for row in &rows {
        assert!(buffer.push(row.clone()).expect("open").is_none());
    }
    let report = writer.shutdown(Duration::from_secs(60));
    assert!(report.clean, "{report:?}");
    assert_eq!(report.stats.written, 20_000, "{report:?}");
    assert_eq!(report.stats.backed_up, 0, "{report:?}");
    assert_eq!(table.count(), 20_000);
}

/// The database kills the writer's sessions (`ALTER SYSTEM KILL SESSION`): the next batch
/// fails as a lost connection and its retry, on a new connection, writes it.
fn a_killed_session_is_recovered_from(sink: &OracleSink, table: &TestTable) {
    let dir = tempfile::tempdir().expect("temp dir");
    let buffer = Arc::new(RingBuffer::new(1_000).expect("buffer"));
    let backup = Arc::new(BackupWriter::new(dir.path().join("backup")).expect("backup"));
    let writer = BatchWriter::builder(buffer.clone(), backup)
        .sink(sink.clone())
        .spawn()
        .expect("writer");
    let rows = conformance::sample_rows(200);
    for row in &rows[..100] {
        assert!(buffer.push(row.clone()).expect("open").is_none());
    }
    eventually("the first 100 rows", || writer.stats().written == 100);
    // This process's sessions but the admin one; matched by process id, so nothing else of
    // the test user is touched.
    let sessions = table.admin.query_as::<(u64, u64)>(
        "SELECT sid, serial# FROM v$session WHERE username = USER \
         AND sid <> SYS_CONTEXT('USERENV', 'SID') AND process = :1",
        &[&std::process::id().to_string()],
    );
    let sessions: Vec<(u64, u64)> = match sessions {
        Ok(rows) => rows.filter_map(Result::ok).collect(),
        Err(e) => {
            say(&format!(
                "SKIPPED oracle killed-session check: cannot read V$SESSION ({e}); grant SELECT \
                 ON V_$SESSION to the test user to run it"
            ));
            writer.shutdown(Duration::from_secs(10));
            return;
        }
    };
    if sessions.is_empty() {
        say(
            "SKIPPED oracle killed-session check: V$SESSION shows no session of this process \
             (PROCESS column format differs)",
        );
        writer.shutdown(Duration::from_secs(10));
        return;
    }
    for (sid, serial) in sessions {
        let sql = format!("ALTER SYSTEM KILL SESSION '{sid},{serial}' IMMEDIATE");
        if let Err(e) = table.admin.execute(&sql, &[]) {
            say(&format!(
                "SKIPPED oracle killed-session check: {e}; grant ALTER SYSTEM to the test user \
                 to run it"
            ));
            writer.shutdown(Duration::from_secs(10));
            return;
        }
    }
    for row in &rows[100..] {
        assert!(buffer.push(row.clone()).expect("open").is_none());
    }
    eventually("the next 100 rows, after a retry", || {
        writer.stats().written == 200
    });
    let report = writer.shutdown(Duration::from_secs(10));
    assert_eq!(report.stats.backed_up, 0, "{report:?}");
    assert_eq!(table.count(), 200);
}

/// Runs without Oracle: the test table is never one of the shipped names.
#[test]
fn the_test_table_is_the_tests_own() {
    let name = unique_table_name();
    assert!(name.starts_with("BOWT") && name.len() == 14, "{name}");
    assert!(oracle_batch::validate_table_name(&name).is_ok());
    assert_ne!(unique_table_name(), "TAG_VALUES");
    let ddl = test_table_ddl(&name);
    assert_eq!(ddl.len(), 2, "{ddl:?}");
    assert!(
        ddl[0].starts_with(&format!("CREATE TABLE {name} (")),
        "{}",
        ddl[0]
    );
    assert!(ddl[0].contains(&format!("CONSTRAINT PK_{name} PRIMARY KEY")));
    assert!(ddl[1].starts_with(&format!("CREATE INDEX IDX_{name}_TIMESTAMP ON {name}")));
    for statement in &ddl {
        assert!(!statement.contains("TAG_VALUES"), "{statement}");
        assert!(!statement.contains(';'));
    }
    // Oracle 12.1 allows 30 characters per identifier.
    assert!(format!("IDX_{name}_TIMESTAMP").len() <= 30);
    assert!(format!("CK_{name}_QUALITY").len() <= 30);
}
