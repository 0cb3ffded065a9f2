//! The embedded default sink: one SQLite file, no server to install.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};
use rusqlite::{ffi, params, Connection, ErrorCode, OptionalExtension};
use tag_model::TagValue;

use crate::conflict::settle_repeats;
use crate::sink::{stored_value, validate_table_name, RowRejection, Sink, SinkError, WriteReport};

/// The DDL in `sql/sqlite/create_tag_values.sql`, for table `TAG_VALUES`.
pub const SQLITE_DDL: &str = include_str!("../../../sql/sqlite/create_tag_values.sql");

/// Writes tag values into a SQLite file: WAL journal, `synchronous=NORMAL`, one transaction
/// per batch, one cached prepared statement. Creates the file, its folder and the table when
/// missing.
///
/// Timestamps are stored as INTEGER microseconds since 1970 (UTC); the view
/// `<table>_TEXT` shows them as ISO 8601 text.
///
/// ```
/// use oracle_batch::{Sink, SqliteSink};
/// use tag_model::{Quality, TagValue};
///
/// let dir = tempfile::tempdir()?;
/// let mut sink = SqliteSink::open(dir.path().join("data/tag_values.db"), "TAG_VALUES")?;
/// let now = chrono::Utc::now().naive_utc();
/// let batch = [TagValue::new(now, "PLC01", "D100", Some(1.5), Quality::Good)?];
/// assert_eq!(sink.write_batch(&batch)?.written, 1);
/// assert_eq!(sink.write_batch(&batch)?.duplicates, 1); // resending adds nothing
/// assert_eq!(sink.count()?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SqliteSink {
    connection: Connection,
    path: PathBuf,
    table: String,
    insert_sql: String,
}

impl SqliteSink {
    /// Opens (or creates) the database file at `path` with table `table`.
    pub fn open(path: impl Into<PathBuf>, table: &str) -> Result<Self, SinkError> {
        let path = path.into();
        validate_table_name(table)?;
        if table.contains('.') {
            return Err(SinkError::setup(format!(
                "table name {table:?}: the SQLite sink takes a table name without a schema"
            )));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                SinkError::setup(format!(
                    "cannot create the folder {} for the SQLite database: {e}",
                    parent.display()
                ))
            })?;
        }
        let context = |e: rusqlite::Error| {
            let error = classify(&e);
            let message = format!("SQLite database {}: {}", path.display(), error.message());
            match error.is_transient() {
                true => SinkError::transient(message),
                false => SinkError::setup(message),
            }
        };
        let connection = Connection::open(&path).map_err(context)?;
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(context)?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(context)?;
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(context)?;
        connection
            .execute_batch(&SQLITE_DDL.replace("TAG_VALUES", table))
            .map_err(context)?;
        let insert_sql = format!(
            "INSERT INTO {table} (timestamp, plc_code, tag_address, tag_value, quality, inserted_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (timestamp, plc_code, tag_address) DO NOTHING"
        );
        Ok(SqliteSink {
            connection,
            path,
            table: table.to_owned(),
            insert_sql,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rows in the table.
    pub fn count(&self) -> Result<u64, SinkError> {
        self.connection
            .query_row(&format!("SELECT count(*) FROM {}", self.table), [], |row| {
                row.get::<_, i64>(0)
            })
            .map(|count| count.unsigned_abs())
            .map_err(|e| classify(&e))
    }

    /// Every row, ordered by primary key: for tests, verification and the connection check.
    pub fn fetch_all(&self) -> Result<Vec<TagValue>, SinkError> {
        let sql = format!(
            "SELECT timestamp, plc_code, tag_address, tag_value, quality FROM {} \
             ORDER BY plc_code, tag_address, timestamp",
            self.table
        );
        let mut statement = self.connection.prepare(&sql).map_err(|e| classify(&e))?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Option<f64>>(3)?,
                    row.get::<_, String>(4)?,
                ))
            })
            .map_err(|e| classify(&e))?;
        let mut values = Vec::new();
        for row in rows {
            let (micros, plc, address, value, quality) = row.map_err(|e| classify(&e))?;
            values.push(stored_value(
                from_micros(micros),
                plc,
                address,
                value,
                &quality,
            )?);
        }
        Ok(values)
    }

    /// Deletes the row with this primary key; returns whether it existed.
    pub fn delete(&self, value: &TagValue) -> Result<bool, SinkError> {
        let sql = format!(
            "DELETE FROM {} WHERE plc_code = ?1 AND tag_address = ?2 AND timestamp = ?3",
            self.table
        );
        self.connection
            .execute(
                &sql,
                params![
                    value.plc_code(),
                    value.tag_address(),
                    to_micros(value.timestamp())
                ],
            )
            .map(|n| n > 0)
            .map_err(|e| classify(&e))
    }

    /// Reads one stored row back by primary key.
    pub fn fetch(&self, key: &TagValue) -> Result<Option<TagValue>, SinkError> {
        fetch_on(&self.connection, &self.table, key)
    }

    fn write_in_transaction(&mut self, batch: &[TagValue]) -> Result<WriteReport, SinkError> {
        let sql_error = |e: rusqlite::Error| classify(&e);
        let inserted_at = to_micros(Utc::now().naive_utc());
        let transaction = self
            .connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql_error)?;
        let mut report = WriteReport::default();
        let mut repeated = Vec::new();
        {
            let mut insert = transaction
                .prepare_cached(&self.insert_sql)
                .map_err(sql_error)?;
            for (index, value) in batch.iter().enumerate() {
                let result = insert.execute(params![
                    to_micros(value.timestamp()),
                    value.plc_code(),
                    value.tag_address(),
                    value.value(),
                    value.quality().as_str(),
                    inserted_at,
                ]);
                match result {
                    Ok(0) => repeated.push(index),
                    Ok(_) => report.written += 1,
                    Err(error) if is_row_error(&error) => report.rejected.push(RowRejection {
                        index,
                        reason: error.to_string(),
                    }),
                    // The transaction rolls back on drop.
                    Err(error) => return Err(sql_error(error)),
                }
            }
        }
        // Inside the transaction: the rows that won, earlier in this batch or before it.
        let repeats = settle_repeats(batch, &repeated, repeated.len(), |keys| {
            stored_rows(&transaction, &self.table, keys)
        })?;
        report.duplicates = repeats.duplicates;
        report.conflicts = repeats.conflicts;
        transaction.commit().map_err(sql_error)?;
        Ok(report)
    }
}

/// Keys per read-back query: 3 parameters each, well under SQLite's limit of 32,766.
const KEYS_PER_QUERY: usize = 1_000;

/// The stored rows with these keys, by primary-key lookups (the keys drive the join).
fn stored_rows(
    connection: &Connection,
    table: &str,
    keys: &[&TagValue],
) -> Result<Vec<TagValue>, SinkError> {
    let mut rows = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(KEYS_PER_QUERY) {
        let mut statement = connection
            .prepare(&stored_rows_sql(table, chunk.len()))
            .map_err(|e| classify(&e))?;
        let sql_error = |e: rusqlite::Error| classify(&e);
        for (i, key) in chunk.iter().enumerate() {
            statement
                .raw_bind_parameter(3 * i + 1, to_micros(key.timestamp()))
                .and_then(|()| statement.raw_bind_parameter(3 * i + 2, key.plc_code()))
                .and_then(|()| statement.raw_bind_parameter(3 * i + 3, key.tag_address()))
                .map_err(sql_error)?;
        }
        let mut found = statement.raw_query();
        while let Some(row) = found.next().map_err(sql_error)? {
            let read = |row: &rusqlite::Row<'_>| -> rusqlite::Result<_> {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Option<f64>>(3)?,
                    row.get::<_, String>(4)?,
                ))
            };
            let (micros, plc, address, value, quality) = read(row).map_err(sql_error)?;
            rows.push(stored_value(
                from_micros(micros),
                plc,
                address,
                value,
                &quality,
            )?);
        }
    }
    Ok(rows)
}

/// `SELECT` of the stored rows for `keys` keys, bound as (timestamp, plc_code, tag_address)
/// triples. `CROSS JOIN` keeps the keys as the outer loop, so each is one primary-key lookup.
fn stored_rows_sql(table: &str, keys: usize) -> String {
    let mut values = "(?,?,?),".repeat(keys);
    values.pop();
    format!(
        "WITH keys (timestamp, plc_code, tag_address) AS (VALUES {values}) \
         SELECT t.timestamp, t.plc_code, t.tag_address, t.tag_value, t.quality \
         FROM keys CROSS JOIN {table} AS t \
         ON t.timestamp = keys.timestamp AND t.plc_code = keys.plc_code \
         AND t.tag_address = keys.tag_address"
    )
}

impl Sink for SqliteSink {
    fn write_batch(&mut self, batch: &[TagValue]) -> Result<WriteReport, SinkError> {
        if batch.is_empty() {
            return Ok(WriteReport::default());
        }
        self.write_in_transaction(batch)
    }

    fn probe(&mut self) -> Result<(), SinkError> {
        let sql = format!("SELECT 1 FROM {} LIMIT 0", self.table);
        self.connection
            .prepare_cached(&sql)
            .and_then(|mut statement| statement.exists([]))
            .map(drop)
            .map_err(|e| classify(&e))?;
        // In WAL mode a read succeeds while another program holds the write lock, so a
        // read-only probe would bring the writer back online only to fail the next batch
        // through all its retries: take the write lock for a moment instead.
        self.connection
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| classify(&e))?;
        self.connection
            .execute_batch("ROLLBACK")
            .map_err(|e| classify(&e))
    }

    fn kind(&self) -> &'static str {
        "SQLite"
    }

    fn describe(&self) -> String {
        format!(
            "SQLite database {} (table {})",
            self.path.display(),
            self.table
        )
    }
}

impl crate::sink::SinkCheck for SqliteSink {
    fn server_version(&mut self) -> Result<String, SinkError> {
        Ok(format!("SQLite {}", rusqlite::version()))
    }
    fn check_row(&mut self, row: &TagValue) -> Result<crate::sink::RowCheck, SinkError> {
        let inserted_at = to_micros(Utc::now().naive_utc());
        let transaction = self
            .connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| classify(&e))?;
        let inserted = transaction
            .execute(
                &self.insert_sql,
                params![
                    to_micros(row.timestamp()),
                    row.plc_code(),
                    row.tag_address(),
                    row.value(),
                    row.quality().as_str(),
                    inserted_at,
                ],
            )
            .map_err(|e| classify(&e))?;
        let stored = fetch_on(&transaction, &self.table, row)?;
        transaction.rollback().map_err(|e| classify(&e))?;
        Ok(crate::sink::RowCheck { inserted, stored })
    }
}

impl std::fmt::Debug for SqliteSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The row of `table` with `key`'s primary key, on `connection` (in its transaction).
fn fetch_on(
    connection: &Connection,
    table: &str,
    key: &TagValue,
) -> Result<Option<TagValue>, SinkError> {
    let sql = format!(
        "SELECT tag_value, quality FROM {table} \
         WHERE plc_code = ?1 AND tag_address = ?2 AND timestamp = ?3"
    );
    let row = connection
        .query_row(
            &sql,
            params![
                key.plc_code(),
                key.tag_address(),
                to_micros(key.timestamp())
            ],
            |row| Ok((row.get::<_, Option<f64>>(0)?, row.get::<_, String>(1)?)),
        )
        .optional()
        .map_err(|e| classify(&e))?;
    row.map(|(value, quality)| {
        stored_value(
            key.timestamp(),
            key.plc_code_arc().clone(),
            key.tag_address_arc().clone(),
            value,
            &quality,
        )
    })
    .transpose()
}

/// Microseconds since 1970-01-01 UTC.
pub(crate) fn to_micros(timestamp: NaiveDateTime) -> i64 {
    timestamp.and_utc().timestamp_micros()
}

pub(crate) fn from_micros(micros: i64) -> NaiveDateTime {
    DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .naive_utc()
}

/// A constraint failure belongs to one row; anything else fails the batch.
fn is_row_error(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::ConstraintViolation | ErrorCode::TypeMismatch | ErrorCode::TooBig)
    )
}

/// Busy, locked, I/O and disk-full errors may clear up: transient. A read-only, unopenable,
/// corrupt or foreign file, a missing table, or a refused permission need an operator.
fn classify(error: &rusqlite::Error) -> SinkError {
    let message = error.to_string();
    match error.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::OutOfMemory
            | ErrorCode::OperationInterrupted
            | ErrorCode::FileLockingProtocolFailed,
        ) => SinkError::transient(message),
        Some(
            ErrorCode::ReadOnly
            | ErrorCode::CannotOpen
            | ErrorCode::NotADatabase
            | ErrorCode::DatabaseCorrupt
            | ErrorCode::PermissionDenied
            | ErrorCode::AuthorizationForStatementDenied
            | ErrorCode::SchemaChanged
            | ErrorCode::ApiMisuse,
        ) => SinkError::setup(message),
        // SQLITE_ERROR covers SQL errors such as a table dropped under a running writer.
        Some(ErrorCode::Unknown) if is_generic_sql_error(error) => SinkError::setup(message),
        _ => SinkError::transient(message),
    }
}

fn is_generic_sql_error(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(e, _) if e.extended_code == ffi::SQLITE_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::FailureKind;
    use tag_model::Quality;

    fn at(micros: i64) -> NaiveDateTime {
        from_micros(1_762_093_845_000_000 + micros)
    }

    fn open(dir: &tempfile::TempDir) -> SqliteSink {
        SqliteSink::open(dir.path().join("t.db"), "TAG_VALUES").unwrap()
    }

    #[test]
    fn micros_round_trip_including_before_1970() {
        for micros in [0, 1, -1, 1_762_093_845_123_456, -62_135_596_800_000_000] {
            assert_eq!(to_micros(from_micros(micros)), micros);
        }
    }

    #[test]
    fn text_view_shows_iso_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = open(&dir);
        let early = chrono::NaiveDate::from_ymd_opt(1969, 12, 31)
            .unwrap()
            .and_hms_micro_opt(23, 59, 59, 999_999)
            .unwrap();
        for ts in [at(123_456), early] {
            let value = TagValue::new(ts, "P", "A", None, Quality::Good).unwrap();
            sink.write_batch(std::slice::from_ref(&value)).unwrap();
            let text: String = sink
                .connection
                .query_row(
                    "SELECT timestamp FROM TAG_VALUES_TEXT WHERE timestamp = ?1",
                    [tag_model::format_timestamp(ts).as_str()],
                    |row| row.get(0),
                )
                .unwrap();
            assert_eq!(text, tag_model::format_timestamp(ts).as_str());
        }
    }

    #[test]
    fn the_read_back_of_repeats_is_primary_key_lookups() {
        let dir = tempfile::tempdir().unwrap();
        let sink = open(&dir);
        let plan: Vec<String> = sink
            .connection
            .prepare(&format!(
                "EXPLAIN QUERY PLAN {}",
                stored_rows_sql("TAG_VALUES", 3)
            ))
            .unwrap()
            .query_map(params![1, "P", "A", 2, "P", "A", 3, "P", "A"], |row| {
                row.get::<_, String>(3)
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(
            plan.iter()
                .any(|step| step.starts_with("SEARCH t USING PRIMARY KEY")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.starts_with("SCAN t")),
            "{plan:?}"
        );
    }

    #[test]
    fn a_schema_qualified_name_is_refused_for_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let error = SqliteSink::open(dir.path().join("t.db"), "main.T").unwrap_err();
        assert_eq!(error.kind(), FailureKind::Setup);
    }

    #[test]
    fn a_dropped_table_is_a_setup_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = open(&dir);
        sink.connection
            .execute_batch("DROP VIEW TAG_VALUES_TEXT; DROP TABLE TAG_VALUES;")
            .unwrap();
        let batch = [TagValue::new(at(0), "P", "A", None, Quality::Good).unwrap()];
        let error = sink.write_batch(&batch).unwrap_err();
        assert_eq!(error.kind(), FailureKind::Setup, "{error}");
        assert!(error.message().contains("no such table"), "{error}");
        assert_eq!(sink.probe().unwrap_err().kind(), FailureKind::Setup);
    }

    #[test]
    fn a_locked_database_is_transient() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = open(&dir);
        sink.connection
            .busy_timeout(std::time::Duration::from_millis(10))
            .unwrap();
        let other = Connection::open(dir.path().join("t.db")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let batch = [TagValue::new(at(0), "P", "A", None, Quality::Good).unwrap()];
        let error = sink.write_batch(&batch).unwrap_err();
        assert_eq!(error.kind(), FailureKind::Transient, "{error}");
        other.execute_batch("ROLLBACK").unwrap();
        assert_eq!(sink.write_batch(&batch).unwrap().written, 1);
    }

    #[test]
    fn the_probe_fails_while_another_program_holds_the_write_lock() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = open(&dir);
        sink.connection
            .busy_timeout(std::time::Duration::from_millis(10))
            .unwrap();
        let other = Connection::open(dir.path().join("t.db")).unwrap();
        other.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let error = sink.probe().unwrap_err();
        assert_eq!(error.kind(), FailureKind::Transient, "{error}");
        assert!(error.message().contains("locked"), "{error}");
        other.execute_batch("ROLLBACK").unwrap();
        sink.probe().unwrap();
        // The probe leaves no transaction open behind it.
        let batch = [TagValue::new(at(0), "P", "A", None, Quality::Good).unwrap()];
        assert_eq!(sink.write_batch(&batch).unwrap().written, 1);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_a_setup_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.db");
        std::fs::write(
            &path,
            "these are not the pages you are looking for, ".repeat(100),
        )
        .unwrap();
        let error = SqliteSink::open(&path, "TAG_VALUES").unwrap_err();
        assert_eq!(error.kind(), FailureKind::Setup, "{error}");
        assert!(error.message().contains("notes.db"), "{error}");
    }
}
