//! The embedded default sink: one SQLite file, no server to install.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime};
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{ffi, Connection, ErrorCode};
use tag_model::{TagValue, TimestampZone};

use crate::conflict::settle_repeats;
use crate::mapping::{
    Cell, CellKind, ColumnMapping, ColumnSource, KeyCell, MappedColumn, StoredRow, StoredValue,
    TableColumn,
};
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
    mapping: ColumnMapping,
    insert_sql: String,
}

impl SqliteSink {
    /// Opens (or creates) the database file at `path` with table `table` in the shipped
    /// layout (created when missing).
    pub fn open(path: impl Into<PathBuf>, table: &str) -> Result<Self, SinkError> {
        Self::open_with(path, table, Self::standard_mapping(TimestampZone::Utc))
    }

    /// The shipped layout as SQLite stores it: the standard columns and `inserted_at`, which
    /// the sink fills (SQLite has no clock default for INTEGER microseconds).
    pub fn standard_mapping(zone: TimestampZone) -> ColumnMapping {
        ColumnMapping::standard()
            .with_column("inserted_at", ColumnSource::Now)
            .unwrap_or_default()
            .with_zone(zone)
    }

    /// Opens the database file at `path` and writes into `table` through `mapping`. The
    /// shipped layout ([`SqliteSink::standard_mapping`]) is created when missing; any other
    /// table must exist and is checked against the mapping (the error names a missing
    /// column). Timestamps go into INTEGER columns as microseconds since 1970.
    pub fn open_with(
        path: impl Into<PathBuf>,
        table: &str,
        mapping: ColumnMapping,
    ) -> Result<Self, SinkError> {
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
        let standard = mapping.columns() == Self::standard_mapping(mapping.zone()).columns();
        if standard {
            connection
                .execute_batch(&SQLITE_DDL.replace("TAG_VALUES", table))
                .map_err(context)?;
        } else {
            let columns = table_columns(&connection, table).map_err(context)?;
            mapping.check_table(table, &columns).map_err(|e| {
                SinkError::setup(format!("SQLite database {}: {e}", path.display()))
            })?;
        }
        let insert_sql = sqlite_insert_sql(table, &mapping);
        // Prepared once here, so that a table without a key on the mapping's key columns is
        // reported at start-up ("ON CONFLICT clause does not match ...").
        connection.prepare_cached(&insert_sql).map_err(|e| {
            let keys: Vec<&str> = mapping
                .key_columns()
                .into_iter()
                .map(|c| c.name.as_str())
                .collect();
            SinkError::setup(format!(
                "SQLite database {}: {e} (table {table} needs a primary key or unique index on \
                 ({}), the columns that identify a value)",
                path.display(),
                keys.join(", ")
            ))
        })?;
        Ok(SqliteSink {
            connection,
            path,
            table: table.to_owned(),
            mapping,
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

    /// Every row, ordered by key: for tests and verification. Needs a mapping that stores
    /// `plc_code` and `tag_address` in columns of their own.
    pub fn fetch_all(&self) -> Result<Vec<TagValue>, SinkError> {
        let Some((plc, address)) = self.mapping.code_columns() else {
            return Err(SinkError::setup(
                "this column mapping forms plc_code and tag_address into one column: rows \
                 cannot be read back whole",
            ));
        };
        let timestamp = &self.mapping.timestamp_column().name;
        let value = &self.mapping.value_column().name;
        let quality = self
            .mapping
            .quality_column()
            .map_or("'GOOD'", |c| c.name.as_str());
        let sql = format!(
            "SELECT {timestamp}, {}, {}, {value}, {quality} FROM {} ORDER BY {}, {}, {timestamp}",
            plc.name, address.name, self.table, plc.name, address.name
        );
        let value_kind = self.mapping.value_column().kind();
        let mut statement = self.connection.prepare(&sql).map_err(|e| classify(&e))?;
        let rows = statement
            .query_map([], |row| {
                let value = match value_kind {
                    CellKind::Number => row.get::<_, Option<f64>>(3)?,
                    _ => row
                        .get::<_, Option<String>>(3)?
                        .as_deref()
                        .and_then(crate::mapping::parse_value_text),
                };
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    value,
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

    /// Reads one stored row back by its key.
    pub fn fetch(&self, key: &TagValue) -> Result<Option<TagValue>, SinkError> {
        Ok(
            stored_rows(&self.connection, &self.table, &self.mapping, &[key])?
                .into_iter()
                .next(),
        )
    }

    fn write_in_transaction(&mut self, batch: &[TagValue]) -> Result<WriteReport, SinkError> {
        let sql_error = |e: rusqlite::Error| classify(&e);
        let now = self.mapping.now();
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
                for (i, column) in self.mapping.columns().iter().enumerate() {
                    insert
                        .raw_bind_parameter(i + 1, SqliteCell(column.cell(value, now)))
                        .map_err(sql_error)?;
                }
                let result = insert.raw_execute();
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
            stored_rows(&transaction, &self.table, &self.mapping, keys)
        })?;
        report.duplicates = repeats.duplicates;
        report.conflicts = repeats.conflicts;
        transaction.commit().map_err(sql_error)?;
        Ok(report)
    }
}

/// Keys per read-back query: a few parameters each, well under SQLite's limit of 32,766.
const KEYS_PER_QUERY: usize = 1_000;

/// A column's value as SQLite stores it: timestamps as INTEGER microseconds since 1970.
struct SqliteCell<'a>(Cell<'a>);

impl rusqlite::ToSql for SqliteCell<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match &self.0 {
            Cell::Timestamp(at) => ToSqlOutput::Owned(Value::Integer(to_micros(*at))),
            Cell::Number(Some(number)) => ToSqlOutput::Owned(Value::Real(*number)),
            Cell::Number(None) | Cell::Text(None) => ToSqlOutput::Owned(Value::Null),
            Cell::Text(Some(text)) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
        })
    }
}

/// `INSERT INTO table (columns) VALUES (?1, ...) ON CONFLICT (key columns) DO NOTHING`.
fn sqlite_insert_sql(table: &str, mapping: &ColumnMapping) -> String {
    let binds: Vec<String> = (1..=mapping.columns().len())
        .map(|i| format!("?{i}"))
        .collect();
    let keys: Vec<&str> = mapping
        .key_columns()
        .into_iter()
        .map(|c| c.name.as_str())
        .collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT ({}) DO NOTHING",
        mapping.names().join(", "),
        binds.join(", "),
        keys.join(", ")
    )
}

/// The table's columns, from `PRAGMA table_info`; none when there is no such table.
fn table_columns(connection: &Connection, table: &str) -> rusqlite::Result<Vec<TableColumn>> {
    let mut statement = connection
        .prepare("SELECT name, \"notnull\", dflt_value, pk, type FROM pragma_table_info(?1)")?;
    let rows = statement.query_map([table], |row| {
        let not_null: i64 = row.get(1)?;
        let default: Option<String> = row.get(2)?;
        let pk: i64 = row.get(3)?;
        let kind: String = row.get(4)?;
        // An INTEGER PRIMARY KEY is the rowid: SQLite fills it.
        let rowid = pk == 1 && kind.eq_ignore_ascii_case("INTEGER");
        Ok(TableColumn {
            name: row.get(0)?,
            required: not_null == 1 && default.is_none() && !rowid,
        })
    })?;
    rows.collect()
}

/// The stored rows for these keys, on `connection` (in its transaction): the keys as a
/// `VALUES` list joined on the key columns (`CROSS JOIN` keeps the keys the outer loop, so
/// each is one index lookup).
fn stored_rows(
    connection: &Connection,
    table: &str,
    mapping: &ColumnMapping,
    keys: &[&TagValue],
) -> Result<Vec<TagValue>, SinkError> {
    let sql_error = |e: rusqlite::Error| classify(&e);
    let key_columns = mapping.key_columns();
    let read = mapping.read_back_columns();
    let mut rows = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(KEYS_PER_QUERY) {
        let mut statement = connection
            .prepare(&stored_rows_sql(table, mapping, chunk.len()))
            .map_err(sql_error)?;
        let mut parameter = 0;
        for key in chunk {
            for column in &key_columns {
                parameter += 1;
                let cell = SqliteCell(column.cell(key, NaiveDateTime::default()));
                statement
                    .raw_bind_parameter(parameter, cell)
                    .map_err(sql_error)?;
            }
        }
        let mut found = statement.raw_query();
        while let Some(row) = found.next().map_err(sql_error)? {
            rows.push(stored_row(row, &read, key_columns.len()).map_err(sql_error)?);
        }
    }
    mapping.rebuild_stored(keys, rows)
}

fn stored_row(
    row: &rusqlite::Row<'_>,
    read: &[&MappedColumn],
    keys: usize,
) -> rusqlite::Result<StoredRow> {
    let mut key = Vec::with_capacity(keys);
    for (i, column) in read[..keys].iter().enumerate() {
        key.push(match column.kind() {
            CellKind::Timestamp => KeyCell::Timestamp(from_micros(row.get(i)?)),
            _ => KeyCell::Text(row.get(i)?),
        });
    }
    let value = match read[keys].kind() {
        CellKind::Number => StoredValue::Number(row.get(keys)?),
        _ => StoredValue::Text(row.get(keys)?),
    };
    let quality = match read.get(keys + 1) {
        Some(_) => row.get(keys + 1)?,
        None => None,
    };
    Ok(StoredRow {
        key,
        value,
        quality,
    })
}

/// The read-back `SELECT` for `keys` keys.
fn stored_rows_sql(table: &str, mapping: &ColumnMapping, keys: usize) -> String {
    let key_columns = mapping.key_columns();
    let one = format!("({})", vec!["?"; key_columns.len()].join(","));
    let values = vec![one; keys].join(",");
    let aliases: Vec<String> = (1..=key_columns.len()).map(|i| format!("k{i}")).collect();
    let join: Vec<String> = key_columns
        .iter()
        .zip(&aliases)
        .map(|(column, alias)| format!("t.{} = keys.{alias}", column.name))
        .collect();
    let selected: Vec<String> = mapping
        .read_back_columns()
        .iter()
        .map(|c| format!("t.{}", c.name))
        .collect();
    format!(
        "WITH keys ({}) AS (VALUES {values}) SELECT {} FROM keys CROSS JOIN {table} AS t ON {}",
        aliases.join(", "),
        selected.join(", "),
        join.join(" AND ")
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
        let now = self.mapping.now();
        let transaction = self
            .connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| classify(&e))?;
        let inserted = {
            let mut insert = transaction
                .prepare_cached(&self.insert_sql)
                .map_err(|e| classify(&e))?;
            for (i, column) in self.mapping.columns().iter().enumerate() {
                insert
                    .raw_bind_parameter(i + 1, SqliteCell(column.cell(row, now)))
                    .map_err(|e| classify(&e))?;
            }
            insert.raw_execute().map_err(|e| classify(&e))?
        };
        let stored = stored_rows(&transaction, &self.table, &self.mapping, &[row])?
            .into_iter()
            .next();
        transaction.rollback().map_err(|e| classify(&e))?;
        Ok(crate::sink::RowCheck { inserted, stored })
    }
}

impl std::fmt::Debug for SqliteSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
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
                stored_rows_sql("TAG_VALUES", &sink.mapping, 3)
            ))
            .unwrap()
            .query_map(
                rusqlite::params![1, "P", "A", 2, "P", "A", 3, "P", "A"],
                |row| row.get::<_, String>(3),
            )
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
