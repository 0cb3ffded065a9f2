//! The PostgreSQL sink: one `INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING`
//! per batch over an r2d2 pool; per-row savepoints only for a batch that holds a bad row.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, NoTls};
use r2d2::{NopErrorHandler, Pool, PooledConnection};
use r2d2_postgres::PostgresConnectionManager;
use tag_model::TagValue;

use crate::conflict::settle_repeats;
use crate::mapping::{
    Cell, CellKind, ColumnMapping, KeyCell, MappedColumn, StoredRow, StoredValue, TableColumn,
};
use crate::secret::Secret;
use crate::sink::{
    stored_value, validate_table_name, RowRejection, Sink, SinkCheck, SinkError, WriteReport,
};

/// The DDL in `sql/postgres/create_tag_values.sql`, for table `TAG_VALUES`.
pub const POSTGRES_DDL: &str = include_str!("../../../sql/postgres/create_tag_values.sql");

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/dbname` (or key=value form). Secret: it may hold
    /// the password.
    pub url: Secret,
    /// The table (`TAG_VALUES` or `SCHEMA.TAG_VALUES`).
    pub table: String,
    /// Connections kept open.
    pub pool_min: u32,
    /// Most connections.
    pub pool_max: u32,
    /// How long to wait for a connection.
    pub pool_timeout: Duration,
    /// The columns written and how each is formed (TABLE_COLUMNS; the shipped layout by
    /// default).
    pub mapping: ColumnMapping,
}

type Manager = PostgresConnectionManager<NoTls>;

/// Writes tag values into PostgreSQL (or a PostgreSQL-compatible database). Clones share the
/// pool.
#[derive(Clone)]
pub struct PostgresSink {
    pool: Pool<Manager>,
    connection_config: postgres::Config,
    password: Secret,
    table: String,
    mapping: ColumnMapping,
    insert_sql: String,
    row_sql: String,
    stored_sql: String,
    description: String,
    timeout: Duration,
    /// Set by a failed write: the pool may hold connections to a server that has since
    /// restarted, each of which would fail a retry in turn. Until a write succeeds again,
    /// each pooled connection is tested before use and dead ones are dropped.
    suspect: Arc<AtomicBool>,
}

/// The batch INSERT: one array per mapped column, one statement, duplicates skipped by the
/// key (the mapping's key columns, which the table's primary key or a unique index must be).
pub fn postgres_insert_sql(table: &str, mapping: &ColumnMapping) -> String {
    let arrays: Vec<String> = mapping
        .columns()
        .iter()
        .enumerate()
        .map(|(i, column)| format!("${}::{}[]", i + 1, pg_type(column.kind())))
        .collect();
    format!(
        "INSERT INTO {table} ({}) SELECT * FROM unnest({}) ON CONFLICT ({}) DO NOTHING",
        mapping.names().join(", "),
        arrays.join(", "),
        key_names(mapping).join(", ")
    )
}

/// The one-row INSERT, for finding the bad row of a batch.
fn postgres_row_sql(table: &str, mapping: &ColumnMapping) -> String {
    let binds: Vec<String> = mapping
        .columns()
        .iter()
        .enumerate()
        .map(|(i, column)| format!("${}::{}", i + 1, pg_type(column.kind())))
        .collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT ({}) DO NOTHING",
        mapping.names().join(", "),
        binds.join(", "),
        key_names(mapping).join(", ")
    )
}

fn key_names(mapping: &ColumnMapping) -> Vec<&str> {
    mapping
        .key_columns()
        .into_iter()
        .map(|c| c.name.as_str())
        .collect()
}

/// The type a column's values are sent as; the server converts them to the column's own
/// type (`numeric`, `text`, `timestamptz` in the session's zone) on insert.
fn pg_type(kind: CellKind) -> &'static str {
    match kind {
        CellKind::Timestamp => "timestamp",
        CellKind::Number => "float8",
        CellKind::Text { .. } => "varchar",
    }
}

/// A column read back as the type the sink works with.
fn read_as(column: &MappedColumn, prefix: &str) -> String {
    let cast = match column.kind() {
        CellKind::Timestamp => "timestamp",
        CellKind::Number => "float8",
        CellKind::Text { .. } => "text",
    };
    format!("{prefix}{}::{cast}", column.name)
}

/// One column's values for a batch, as one array parameter.
enum ColumnValues<'a> {
    Timestamps(Vec<NaiveDateTime>),
    Numbers(Vec<Option<f64>>),
    Texts(Vec<Option<std::borrow::Cow<'a, str>>>),
}

impl<'a> ColumnValues<'a> {
    fn of(column: &MappedColumn, rows: &[&'a TagValue], now: NaiveDateTime) -> Self {
        let cells = rows.iter().map(|row| column.cell(row, now));
        match column.kind() {
            CellKind::Timestamp => ColumnValues::Timestamps(
                cells
                    .map(|cell| match cell {
                        Cell::Timestamp(at) => at,
                        _ => NaiveDateTime::default(),
                    })
                    .collect(),
            ),
            CellKind::Number => ColumnValues::Numbers(
                cells
                    .map(|cell| match cell {
                        Cell::Number(number) => number,
                        _ => None,
                    })
                    .collect(),
            ),
            CellKind::Text { .. } => ColumnValues::Texts(
                cells
                    .map(|cell| match cell {
                        Cell::Text(text) => text,
                        _ => None,
                    })
                    .collect(),
            ),
        }
    }

    fn as_param(&self) -> &(dyn ToSql + Sync) {
        match self {
            ColumnValues::Timestamps(values) => values,
            ColumnValues::Numbers(values) => values,
            ColumnValues::Texts(values) => values,
        }
    }
}

/// The array parameters for `columns` over `rows`.
fn column_arrays<'a>(
    columns: &[&MappedColumn],
    rows: &[&'a TagValue],
    now: NaiveDateTime,
) -> Vec<ColumnValues<'a>> {
    columns
        .iter()
        .map(|column| ColumnValues::of(column, rows, now))
        .collect()
}

/// The table's columns from `information_schema` (`$1` the schema or NULL for the current
/// one, `$2` the table, both as PostgreSQL folds unquoted names: lower case): name, and
/// whether a row must give it (NOT NULL, no default, not identity or generated).
const TABLE_COLUMNS_SQL: &str = "SELECT column_name::text, \
     (is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO' \
      AND is_generated = 'NEVER') AS required \
     FROM information_schema.columns \
     WHERE table_schema = coalesce($1::text, current_schema()) AND table_name = $2::text \
     ORDER BY ordinal_position";

impl PostgresSink {
    /// Validates the settings and creates the pool without connecting.
    pub fn new(config: PostgresConfig) -> Result<Self, SinkError> {
        validate_table_name(&config.table)?;
        let connection_config = postgres::Config::from_str(config.url.expose()).map_err(|e| {
            SinkError::setup(format!(
                "POSTGRES_URL is not a valid connection string ({}); expected \
                 postgres://user:password@host:port/dbname",
                config.url.redact(&e.to_string())
            ))
        })?;
        if config.pool_max == 0 || config.pool_min > config.pool_max {
            return Err(SinkError::setup(format!(
                "pool min {} and max {}: need 1 <= max and min <= max",
                config.pool_min, config.pool_max
            )));
        }
        let password = connection_config
            .get_password()
            .map(|p| Secret::new(String::from_utf8_lossy(p)))
            .unwrap_or_default();
        let hosts: Vec<String> = connection_config
            .get_hosts()
            .iter()
            .map(|host| match host {
                postgres::config::Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let port = connection_config
            .get_ports()
            .first()
            .copied()
            .unwrap_or(5432);
        let description = format!(
            "PostgreSQL {}@{}:{port}/{} (table {}, pool {}..{})",
            connection_config.get_user().unwrap_or("?"),
            hosts.join(","),
            connection_config.get_dbname().unwrap_or("?"),
            config.table,
            config.pool_min,
            config.pool_max
        );
        let mut connection_config = connection_config;
        connection_config.connect_timeout(config.pool_timeout.max(Duration::from_millis(100)));
        let manager = PostgresConnectionManager::new(connection_config.clone(), NoTls);
        let pool = Pool::builder()
            .min_idle(Some(config.pool_min))
            .max_size(config.pool_max)
            .connection_timeout(config.pool_timeout.max(Duration::from_millis(100)))
            // No test query on every checkout: it would add a round trip per batch. A dead
            // connection fails its write (transient: retried) and is dropped by the pool.
            .test_on_check_out(false)
            .error_handler(Box::new(NopErrorHandler))
            .build_unchecked(manager);
        let table = config.table;
        let mapping = config.mapping;
        Ok(PostgresSink {
            pool,
            connection_config,
            password,
            insert_sql: postgres_insert_sql(&table, &mapping),
            stored_sql: postgres_stored_rows_sql(&table, &mapping),
            row_sql: postgres_row_sql(&table, &mapping),
            table,
            mapping,
            description,
            timeout: config.pool_timeout,
            suspect: Arc::new(AtomicBool::new(false)),
        })
    }

    fn classify(&self, error: &postgres::Error) -> SinkError {
        classify_postgres(error, &self.table, &self.password)
    }

    fn connection(&self) -> Result<PooledConnection<Manager>, SinkError> {
        if self.suspect.load(Ordering::Relaxed) {
            // Test every idle connection once (one round trip each, only after a failure): a
            // dead one is closed by its failed test, so the pool drops it instead of taking
            // it back; the live ones go back when `live` is dropped.
            let mut live = Vec::new();
            while let Some(mut connection) = self.pool.try_get() {
                if connection
                    .is_valid(self.timeout.min(Duration::from_secs(2)))
                    .is_ok()
                {
                    live.push(connection);
                }
            }
            if let Some(connection) = live.pop() {
                self.suspect.store(false, Ordering::Relaxed);
                return Ok(connection);
            }
        } else if let Some(connection) = self.pool.try_get() {
            return Ok(connection);
        }
        if self.pool.state().connections == 0 {
            // Connect once directly: the precise error (refused, bad password) at once.
            let client = self
                .connection_config
                .connect(NoTls)
                .map_err(|e| self.classify(&e))?;
            drop(client);
        }
        self.pool.get_timeout(self.timeout).map_err(|e| {
            SinkError::transient(self.password.redact(&format!(
                "no PostgreSQL connection within {:?}: {e}",
                self.timeout
            )))
        })
    }

    /// Creates the table from `sql/postgres/create_tag_values.sql` if it is missing (for
    /// tests and first installs; production schemas are usually made by a DBA). Only for the
    /// shipped layout: another mapping's table is the plant's own.
    pub fn create_table(&self) -> Result<(), SinkError> {
        if !self.mapping.is_standard() {
            return Err(SinkError::setup(format!(
                "table {} is mapped by TABLE_COLUMNS: create it yourself (the shipped DDL is \
                 for the standard layout)",
                self.table
            )));
        }
        let mut client = self.connection()?;
        client
            .batch_execute(&POSTGRES_DDL.replace("TAG_VALUES", &self.table))
            .map_err(|e| self.classify(&e))
    }

    /// Deletes every row (for tests).
    pub fn delete_all(&self) -> Result<(), SinkError> {
        let mut client = self.connection()?;
        client
            .batch_execute(&format!("DELETE FROM {}", self.table))
            .map_err(|e| self.classify(&e))
    }

    /// Every row (for tests and checks).
    pub fn fetch_all(&self) -> Result<Vec<TagValue>, SinkError> {
        let Some((plc, address)) = self.mapping.code_columns() else {
            return Err(SinkError::setup(
                "this column mapping forms plc_code and tag_address into one column: rows \
                 cannot be read back whole",
            ));
        };
        let quality = self
            .mapping
            .quality_column()
            .map_or_else(|| "'GOOD'".to_owned(), |c| read_as(c, "t."));
        let sql = format!(
            "SELECT {}, {}, {}, {}, {quality} FROM {} AS t",
            read_as(self.mapping.timestamp_column(), "t."),
            read_as(plc, "t."),
            read_as(address, "t."),
            read_as(self.mapping.value_column(), "t."),
            self.table
        );
        let value_kind = self.mapping.value_column().kind();
        let mut client = self.connection()?;
        let rows = client.query(&sql, &[]).map_err(|e| self.classify(&e))?;
        rows.iter()
            .map(|row| {
                let value = match value_kind {
                    CellKind::Number => row.get::<_, Option<f64>>(3),
                    _ => row
                        .get::<_, Option<&str>>(3)
                        .and_then(crate::mapping::parse_value_text),
                };
                stored_value(
                    row.get::<_, NaiveDateTime>(0),
                    row.get::<_, String>(1),
                    row.get::<_, String>(2),
                    value,
                    row.get::<_, &str>(4),
                )
            })
            .collect()
    }

    /// The table's columns, checked against the mapping: the error names a mapped column
    /// the table lacks, or a NOT NULL column without a default that the mapping leaves out.
    /// Start-up calls it once the database answers.
    pub fn check_table(&self) -> Result<(), SinkError> {
        let (schema, name) = match self.table.split_once('.') {
            Some((schema, name)) => (Some(schema.to_ascii_lowercase()), name.to_ascii_lowercase()),
            None => (None, self.table.to_ascii_lowercase()),
        };
        let mut client = self.connection()?;
        let rows = client
            .query(TABLE_COLUMNS_SQL, &[&schema, &name])
            .map_err(|e| self.classify(&e))?;
        let columns: Vec<TableColumn> = rows
            .iter()
            .map(|row| TableColumn {
                name: row.get(0),
                required: row.get(1),
            })
            .collect();
        self.mapping
            .check_table(&self.table, &columns)
            .map_err(|e| SinkError::setup(format!("PostgreSQL: {e}")))
    }

    /// Rows in the table.
    pub fn count(&self) -> Result<u64, SinkError> {
        let mut client = self.connection()?;
        let row = client
            .query_one(&format!("SELECT count(*) FROM {}", self.table), &[])
            .map_err(|e| self.classify(&e))?;
        Ok(row.get::<_, i64>(0).unsigned_abs())
    }

    fn write_rows_one_by_one(
        &self,
        client: &mut Client,
        batch: &[TagValue],
    ) -> Result<WriteReport, SinkError> {
        let sql_error = |e: postgres::Error| self.classify(&e);
        let mut report = WriteReport::default();
        let mut repeated = Vec::new();
        let mut transaction = client.transaction().map_err(sql_error)?;
        let statement = transaction.prepare(&self.row_sql).map_err(sql_error)?;
        let now = self.mapping.now();
        for (index, value) in batch.iter().enumerate() {
            let mut savepoint = transaction.savepoint("row").map_err(sql_error)?;
            let cells: Vec<PgCell<'_>> = self
                .mapping
                .columns()
                .iter()
                .map(|column| PgCell(column.cell(value, now)))
                .collect();
            let params: Vec<&(dyn ToSql + Sync)> =
                cells.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
            let result = savepoint.execute(&statement, &params);
            match result {
                Ok(0) => {
                    repeated.push(index);
                    savepoint.commit().map_err(sql_error)?;
                }
                Ok(_) => {
                    report.written += 1;
                    savepoint.commit().map_err(sql_error)?;
                }
                Err(error) if is_row_error(&error) => {
                    report.rejected.push(RowRejection {
                        index,
                        reason: db_message(&error),
                    });
                    savepoint.rollback().map_err(sql_error)?;
                }
                Err(error) => return Err(sql_error(error)),
            }
        }
        let repeats = settle_repeats(batch, &repeated, repeated.len(), |keys| {
            self.stored_rows(&mut transaction, keys)
        })?;
        report.duplicates = repeats.duplicates;
        report.conflicts = repeats.conflicts;
        transaction.commit().map_err(sql_error)?;
        Ok(report)
    }

    /// The stored rows with these keys, in one query (the keys as one array per key column).
    fn stored_rows(
        &self,
        client: &mut impl postgres::GenericClient,
        keys: &[&TagValue],
    ) -> Result<Vec<TagValue>, SinkError> {
        let key_columns = self.mapping.key_columns();
        let arrays = column_arrays(&key_columns, keys, NaiveDateTime::default());
        let params: Vec<&(dyn ToSql + Sync)> = arrays.iter().map(ColumnValues::as_param).collect();
        let rows = client
            .query(&self.stored_sql, &params)
            .map_err(|e| self.classify(&e))?;
        let read = self.mapping.read_back_columns();
        let found: Vec<StoredRow> = rows
            .iter()
            .map(|row| stored_row(row, &read, key_columns.len()))
            .collect();
        self.mapping.rebuild_stored(keys, found)
    }
}

/// One column's value for one row, as a parameter of the one-row INSERT.
#[derive(Debug)]
struct PgCell<'a>(Cell<'a>);

impl ToSql for PgCell<'_> {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match &self.0 {
            Cell::Timestamp(at) => at.to_sql(ty, out),
            Cell::Number(number) => number.to_sql(ty, out),
            Cell::Text(text) => text.to_sql(ty, out),
        }
    }

    fn accepts(ty: &postgres::types::Type) -> bool {
        // The statement casts each parameter to the type of its cell.
        <NaiveDateTime as ToSql>::accepts(ty)
            || <f64 as ToSql>::accepts(ty)
            || <&str as ToSql>::accepts(ty)
    }

    postgres::types::to_sql_checked!();
}

/// The read-back of stored rows by key: one array per key column, joined on the key.
fn postgres_stored_rows_sql(table: &str, mapping: &ColumnMapping) -> String {
    let key_columns = mapping.key_columns();
    let arrays: Vec<String> = key_columns
        .iter()
        .enumerate()
        .map(|(i, column)| format!("${}::{}[]", i + 1, pg_type(column.kind())))
        .collect();
    let aliases: Vec<String> = (1..=key_columns.len()).map(|i| format!("k{i}")).collect();
    let join: Vec<String> = key_columns
        .iter()
        .zip(&aliases)
        .map(|(column, alias)| format!("t.{} = k.{alias}", column.name))
        .collect();
    let selected: Vec<String> = mapping
        .read_back_columns()
        .iter()
        .map(|column| read_as(column, "t."))
        .collect();
    format!(
        "SELECT {} FROM unnest({}) AS k ({}) JOIN {table} AS t ON {}",
        selected.join(", "),
        arrays.join(", "),
        aliases.join(", "),
        join.join(" AND ")
    )
}

/// One row of [`postgres_stored_rows_sql`]: key cells, value, quality if selected.
fn stored_row(row: &postgres::Row, read: &[&MappedColumn], keys: usize) -> StoredRow {
    let key = read[..keys]
        .iter()
        .enumerate()
        .map(|(i, column)| match column.kind() {
            CellKind::Timestamp => KeyCell::Timestamp(row.get(i)),
            _ => KeyCell::Text(row.get(i)),
        })
        .collect();
    let value = match read[keys].kind() {
        CellKind::Number => StoredValue::Number(row.get(keys)),
        _ => StoredValue::Text(row.get(keys)),
    };
    let quality = read.get(keys + 1).and_then(|_| row.get(keys + 1));
    StoredRow {
        key,
        value,
        quality,
    }
}

/// A data error belongs to a row (bad value, check failed); anything else fails the batch.
fn is_row_error(error: &postgres::Error) -> bool {
    error.code().is_some_and(|code| {
        let class = &code.code()[..2];
        (class == "22" || class == "23") && *code != SqlState::UNIQUE_VIOLATION
    })
}

fn db_message(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({}): {}", db.severity(), db.code().code(), db.message()),
        None => error.to_string(),
    }
}

/// Connection loss, shutdown, overload: transient. Missing table or column, bad password,
/// missing database, refused privilege: set-up, with what to fix.
pub fn classify_postgres(error: &postgres::Error, table: &str, password: &Secret) -> SinkError {
    let text = password.redact(&match error.as_db_error() {
        Some(_) => db_message(error),
        None => {
            let source = std::error::Error::source(error)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            format!("{error}{source}")
        }
    });
    let Some(code) = error.code() else {
        // No SQLSTATE: the connection failed or was lost.
        return SinkError::transient(format!(
            "{text} (is the PostgreSQL server running and reachable?)"
        ));
    };
    let setup_hint = match code.code() {
        "42P01" => Some(format!(
            "table {table} does not exist: create it with sql/postgres/create_tag_values.sql"
        )),
        "42703" => Some(format!(
            "table {table} lacks a column: compare it with sql/postgres/create_tag_values.sql"
        )),
        "28P01" | "28000" => Some("check the user and password in POSTGRES_URL".to_owned()),
        "3D000" => Some("the database in POSTGRES_URL does not exist".to_owned()),
        "42501" => Some(format!(
            "the user may not insert into {table}: grant INSERT"
        )),
        _ => None,
    };
    match setup_hint {
        Some(hint) => SinkError::setup(format!("{text} ({hint})")),
        None => SinkError::transient(text),
    }
}

impl Sink for PostgresSink {
    fn write_batch(&mut self, batch: &[TagValue]) -> Result<WriteReport, SinkError> {
        if batch.is_empty() {
            return Ok(WriteReport::default());
        }
        let mut client = self.connection().inspect_err(|_| {
            self.suspect.store(true, Ordering::Relaxed);
        })?;
        let rows: Vec<&TagValue> = batch.iter().collect();
        let columns: Vec<&MappedColumn> = self.mapping.columns().iter().collect();
        let arrays = column_arrays(&columns, &rows, self.mapping.now());
        let params: Vec<&(dyn ToSql + Sync)> = arrays.iter().map(ColumnValues::as_param).collect();
        let result = client.execute(&self.insert_sql, &params);
        if result.as_ref().is_err_and(|error| !is_row_error(error)) {
            self.suspect.store(true, Ordering::Relaxed);
        }
        match result {
            Ok(inserted) => {
                let written = usize::try_from(inserted)
                    .unwrap_or(batch.len())
                    .min(batch.len());
                // The statement says only how many rows were skipped, not which: every row
                // is a candidate, and a skipped row is one whose stored row differs or
                // (identical) is counted as a duplicate. A batch without repeats reads nothing.
                let all: Vec<usize> = if written < batch.len() {
                    (0..batch.len()).collect()
                } else {
                    Vec::new()
                };
                let repeats = settle_repeats(batch, &all, batch.len() - written, |keys| {
                    self.stored_rows(&mut *client, keys)
                })?;
                Ok(WriteReport {
                    written,
                    duplicates: repeats.duplicates,
                    conflicts: repeats.conflicts,
                    rejected: Vec::new(),
                })
            }
            // A bad row fails the whole statement: find it row by row.
            Err(error) if is_row_error(&error) => self.write_rows_one_by_one(&mut client, batch),
            Err(error) => Err(self.classify(&error)),
        }
    }

    fn probe(&mut self) -> Result<(), SinkError> {
        let mut client = self.connection()?;
        client
            .simple_query(&format!("SELECT 1 FROM {} WHERE false", self.table))
            .map(drop)
            .map_err(|e| self.classify(&e))
    }

    fn kind(&self) -> &'static str {
        "PostgreSQL"
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

impl SinkCheck for PostgresSink {
    fn server_version(&mut self) -> Result<String, SinkError> {
        let mut client = self.connection()?;
        let row = client
            .query_one("SELECT version()", &[])
            .map_err(|e| self.classify(&e))?;
        Ok(row.get(0))
    }

    fn check_row(&mut self, row: &TagValue) -> Result<crate::sink::RowCheck, SinkError> {
        let mut client = self.connection()?;
        let mut transaction = client.transaction().map_err(|e| self.classify(&e))?;
        let now = self.mapping.now();
        let cells: Vec<PgCell<'_>> = self
            .mapping
            .columns()
            .iter()
            .map(|column| PgCell(column.cell(row, now)))
            .collect();
        let params: Vec<&(dyn ToSql + Sync)> =
            cells.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
        let inserted = transaction
            .execute(&self.row_sql, &params)
            .map_err(|e| self.classify(&e))?;
        let stored = self
            .stored_rows(&mut transaction, &[row])?
            .into_iter()
            .next();
        transaction.rollback().map_err(|e| self.classify(&e))?;
        Ok(crate::sink::RowCheck {
            inserted: usize::try_from(inserted).unwrap_or(usize::MAX),
            stored,
        })
    }
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> PostgresConfig {
        PostgresConfig {
            url: Secret::new(url),
            table: "TAG_VALUES".into(),
            pool_min: 1,
            pool_max: 4,
            pool_timeout: Duration::from_secs(2),
            mapping: ColumnMapping::standard(),
        }
    }

    #[test]
    fn the_insert_is_one_statement_over_arrays() {
        let sql = postgres_insert_sql("SCADA.TAG_VALUES", &ColumnMapping::standard());
        assert!(sql.starts_with("INSERT INTO SCADA.TAG_VALUES (timestamp, plc_code"));
        assert!(sql.contains(
            "unnest($1::timestamp[], $2::varchar[], $3::varchar[], $4::float8[], $5::varchar[])"
        ));
        assert!(sql.ends_with("ON CONFLICT (timestamp, plc_code, tag_address) DO NOTHING"));
    }

    #[test]
    fn the_tag_data_mapping_names_its_columns_and_key() {
        let tag_data: ColumnMapping = "tag_name={plc_code}.{tag_address}, tag_value={value:text}, \
                                       timestamp={timestamp}, quality={quality}"
            .parse()
            .unwrap();
        assert_eq!(
            postgres_insert_sql("tag_data", &tag_data),
            "INSERT INTO tag_data (tag_name, tag_value, timestamp, quality) SELECT * FROM \
             unnest($1::varchar[], $2::varchar[], $3::timestamp[], $4::varchar[]) \
             ON CONFLICT (tag_name, timestamp) DO NOTHING"
        );
        assert_eq!(
            postgres_row_sql("tag_data", &tag_data),
            "INSERT INTO tag_data (tag_name, tag_value, timestamp, quality) VALUES \
             ($1::varchar, $2::varchar, $3::timestamp, $4::varchar) \
             ON CONFLICT (tag_name, timestamp) DO NOTHING"
        );
        assert_eq!(
            postgres_stored_rows_sql("tag_data", &tag_data),
            "SELECT t.tag_name::text, t.timestamp::timestamp, t.tag_value::text, t.quality::text \
             FROM unnest($1::varchar[], $2::timestamp[]) AS k (k1, k2) JOIN tag_data AS t \
             ON t.tag_name = k.k1 AND t.timestamp = k.k2"
        );
    }

    #[test]
    fn description_and_errors_never_show_the_password() {
        let sink = PostgresSink::new(config("postgres://scada:s3cr3t-pg@db.plant:5433/historian"))
            .unwrap();
        assert_eq!(
            sink.describe(),
            "PostgreSQL scada@db.plant:5433/historian (table TAG_VALUES, pool 1..4)"
        );
        assert!(!format!("{sink:?}").contains("s3cr3t-pg"));
        let error = PostgresSink::new(config("postgres://scada:s3cr3t-pg@db.plant:notaport/x"))
            .unwrap_err();
        assert!(!error.message().contains("s3cr3t-pg"), "{error}");
        assert!(error
            .message()
            .starts_with("POSTGRES_URL is not a valid connection string"));
    }

    #[test]
    fn a_refused_connection_is_transient() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut sink =
            PostgresSink::new(config(&format!("postgres://u:pw@127.0.0.1:{port}/db"))).unwrap();
        let error = sink.probe().unwrap_err();
        assert!(error.is_transient(), "{error}");
        assert!(
            error.message().contains("is the PostgreSQL server running"),
            "{error}"
        );
    }
}
