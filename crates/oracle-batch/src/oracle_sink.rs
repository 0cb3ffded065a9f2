//! The Oracle sink: array DML with batch errors over an r2d2 pool of `oracle` connections.
//!
//! Everything that does not need a server (SQL text, bind types, error classification, the
//! mapping of batch errors to written / duplicate / rejected rows) is a plain function here,
//! unit-tested without a database.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use oracle::sql_type::{OracleType, ToSql};
use oracle::{Connection, Connector, ErrorKind};
use r2d2::ManageConnection;
use r2d2_oracle::OracleConnectionManager;
use tag_model::TagValue;

use crate::conflict::settle_repeats;
use crate::mapping::{Cell, CellKind, ColumnMapping, KeyCell, StoredRow, StoredValue, TableColumn};
use crate::oracle::connect::connect_target;
use crate::oracle::errors::{DriverFault, ErrorContext, OracleError, OracleErrorSource};
use crate::oracle::pool::{
    build_pool, checkout, discard_idle, LoginState, OracleConnection, OracleLogin, OraclePool,
    OracleSession, PoolSettings,
};
use crate::oracle::sql::probe_sql;
use crate::secret::Secret;
use crate::sink::{stored_value, validate_table_name, RowRejection, Sink, SinkError, WriteReport};

/// Oracle's limit on rows in one array DML call with batch errors (a 16-bit error count).
pub const MAX_ROWS_PER_EXECUTE: usize = 65_535;

/// The default bound of each round trip (ORACLE_CALL_TIMEOUT_SEC): a batch of the default 500
/// rows takes milliseconds and a 65,535-row chunk seconds, so this is only ever reached when
/// the network or the database has stalled.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// The default wait before logging in again after the database refused a login
/// (ORACLE_LOGIN_RETRY_SEC): 15 minutes, doubling after each further refusal.
pub const DEFAULT_LOGIN_RETRY: Duration = Duration::from_secs(900);

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct OracleConfig {
    /// An Easy Connect string (`host:port/service?connect_timeout=10...`, see
    /// [`EasyConnect`](crate::EasyConnect)), a TNS alias or a full descriptor.
    pub connect_string: String,
    /// The database user.
    pub user: String,
    /// The password; never printed.
    pub password: Secret,
    /// The table, validated as an identifier (`TAG_VALUES` or `SCHEMA.TAG_VALUES`).
    pub table: String,
    /// Connections the pool keeps open (ORACLE_POOL_MIN).
    pub pool_min: u32,
    /// Most connections (ORACLE_POOL_MAX).
    pub pool_max: u32,
    /// How long to wait for a connection (ORACLE_POOL_TIMEOUT).
    pub pool_timeout: Duration,
    /// Bound of every round trip on every connection (ORACLE_CALL_TIMEOUT_SEC); `None`: none.
    pub call_timeout: Option<Duration>,
    /// After the database refused a login, how long before the next one
    /// (ORACLE_LOGIN_RETRY_SEC, doubling after each further refusal); `None`: not before a
    /// restart.
    pub login_retry: Option<Duration>,
    /// The columns written and how each is formed (TABLE_COLUMNS; the shipped layout by
    /// default).
    pub mapping: ColumnMapping,
}

impl OracleConfig {
    /// Settings for `connect_string` with the defaults: table TAG_VALUES, pool 2..5 with a
    /// 10 s wait, the default call timeout and login retry.
    pub fn new(
        connect_string: impl Into<String>,
        user: impl Into<String>,
        password: Secret,
    ) -> Self {
        OracleConfig {
            connect_string: connect_string.into(),
            user: user.into(),
            password,
            table: "TAG_VALUES".into(),
            pool_min: 2,
            pool_max: 5,
            pool_timeout: Duration::from_secs(10),
            call_timeout: Some(DEFAULT_CALL_TIMEOUT),
            login_retry: Some(DEFAULT_LOGIN_RETRY),
            mapping: ColumnMapping::standard(),
        }
    }

    /// The connect string without Easy Connect parameters, for logs: `host:port/service`.
    pub fn target(&self) -> &str {
        connect_target(&self.connect_string)
    }

    /// The timeouts in force, for logs: `connect 10 s, each call 20 s`.
    pub fn timeouts(&self) -> String {
        let connect = match crate::oracle::connect_timeout_in(&self.connect_string) {
            Some(value) if value.chars().all(|c| c.is_ascii_digit()) => format!("{value} s"),
            Some(value) => value,
            None => "none set in the connect string".to_owned(),
        };
        let call = self
            .call_timeout
            .map_or_else(|| "none".to_owned(), |t| format!("{} s", t.as_secs_f64()));
        format!("connect {connect}, each call {call}")
    }
}

/// The INSERT for `table`: one positional bind per mapped column, in the mapping's order;
/// columns it leaves out (`inserted_at`) get their defaults.
pub fn insert_sql(table: &str, mapping: &ColumnMapping) -> String {
    crate::oracle::sql::insert_sql(table, &mapping.names())
}

/// Bind types fixed up front, in bind order (the mapping's): without them a `NaiveDateTime`
/// binds as TIMESTAMP(9) and an `f64` as text, and a batch re-describes its binds on the
/// first odd row. For the shipped layout they match the columns of
/// `sql/oracle/create_tag_values.sql`; a text column is as long as the longest text its
/// template can form.
pub fn bind_types(mapping: &ColumnMapping) -> Vec<OracleType> {
    mapping
        .columns()
        .iter()
        .map(|column| oracle_type(column.kind()))
        .collect()
}

fn oracle_type(kind: CellKind) -> OracleType {
    match kind {
        CellKind::Timestamp => OracleType::Timestamp(6),
        CellKind::Number => OracleType::BinaryDouble,
        CellKind::Text { max_bytes } => {
            OracleType::Varchar2(u32::try_from(max_bytes).unwrap_or(4000).min(4000))
        }
    }
}

/// A column's value as bound: the bind type itself is fixed by the caller.
struct OracleCell<'a>(Cell<'a>);

impl ToSql for OracleCell<'_> {
    fn oratype(&self, connection: &Connection) -> oracle::Result<OracleType> {
        match &self.0 {
            Cell::Timestamp(at) => at.oratype(connection),
            Cell::Number(number) => number.oratype(connection),
            Cell::Text(text) => text.as_deref().oratype(connection),
        }
    }
    fn to_sql(&self, value: &mut oracle::SqlValue) -> oracle::Result<()> {
        match &self.0 {
            Cell::Timestamp(at) => at.to_sql(value),
            Cell::Number(number) => number.to_sql(value),
            Cell::Text(text) => text.as_deref().to_sql(value),
        }
    }
}

/// The dictionary query for the table's columns: `:1` is the owner (NULL: the user's own
/// schema), `:2` the table name, both as Oracle stores unquoted names (upper case).
/// (`data_default` is a LONG, which a query cannot test; `default_length` says the same.)
pub(crate) const TABLE_COLUMNS_SQL: &str = "SELECT column_name, nullable, \
     CASE WHEN default_length > 0 OR identity_column = 'YES' THEN 1 ELSE 0 END \
     FROM all_tab_columns WHERE owner = NVL(:1, USER) AND table_name = :2 ORDER BY column_id";

/// The owner and table name `table` (`TAG_VALUES` or `SCADA.TAG_VALUES`) stands for in the
/// dictionary: upper case, as Oracle stores an unquoted identifier.
pub(crate) fn dictionary_name(table: &str) -> (Option<String>, String) {
    match table.split_once('.') {
        Some((owner, name)) => (Some(owner.to_ascii_uppercase()), name.to_ascii_uppercase()),
        None => (None, table.to_ascii_uppercase()),
    }
}

/// A dictionary row (name, `Y`/`N` nullable, has a default) as a [`TableColumn`].
pub(crate) fn table_column(name: String, nullable: &str, has_default: bool) -> TableColumn {
    TableColumn {
        required: nullable == "N" && !has_default,
        name,
    }
}

/// One row error from array DML: its 0-based offset in the executed rows, its ORA code and
/// message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchRowError {
    /// Row offset within the executed rows.
    pub offset: usize,
    /// ORA error code (1 is a duplicate key).
    pub code: i32,
    /// The message, e.g. `ORA-01426: numeric overflow`.
    pub message: String,
}

/// Why [`report_from_batch_errors`] could not give a report.
#[derive(Debug, PartialEq)]
pub enum RowVerdictError<E> {
    /// A row failed for a reason that is not about its data (a full tablespace, a quota, a
    /// deadlock, undo): the whole batch fails, is rolled back, and is handled by that error's
    /// class. The first such row.
    WholeBatch(BatchRowError),
    /// Reading back the stored rows of the repeats failed.
    ReadBack(E),
}

/// Turns the batch errors of an executed batch into its report. `errors` carry offsets within
/// `batch` (each chunk's offsets plus the chunk's first index). ORA-00001 rows repeat a stored
/// key: they are split into duplicates and conflicts by [`settle_repeats`], with the stored
/// rows for their keys from `read_back` (one call, and none when no row hit ORA-00001, so a
/// healthy batch pays nothing). Only errors about a row's own data
/// ([`is_row_data_error`](crate::oracle::is_row_data_error): NULL, too large, bad number or
/// date, check or parent key) reject that row; any other error reported for a row fails the
/// whole batch ([`RowVerdictError::WholeBatch`]), so that a full tablespace never sends good
/// rows to a rejected file. The remaining rows were written. Offsets out of range, and a
/// second error for the same row, are ignored.
pub fn report_from_batch_errors<E>(
    batch: &[TagValue],
    errors: &[BatchRowError],
    read_back: impl FnOnce(&[&TagValue]) -> Result<Vec<TagValue>, E>,
) -> Result<WriteReport, RowVerdictError<E>> {
    let whole_batch = errors
        .iter()
        .filter(|e| e.offset < batch.len() && e.code != 1)
        .filter(|e| !u32::try_from(e.code).is_ok_and(crate::oracle::is_row_data_error))
        .min_by_key(|e| e.offset);
    if let Some(error) = whole_batch {
        return Err(RowVerdictError::WholeBatch(error.clone()));
    }
    let mut report = WriteReport::default();
    let mut failed = vec![false; batch.len()];
    let mut repeated = Vec::new();
    for error in errors {
        let Some(slot) = failed.get_mut(error.offset) else {
            continue;
        };
        if std::mem::replace(slot, true) {
            continue; // one verdict per row
        }
        if error.code == 1 {
            repeated.push(error.offset);
        } else {
            report.rejected.push(RowRejection {
                index: error.offset,
                reason: error.message.clone(),
            });
        }
    }
    report.rejected.sort_by_key(|r| r.index);
    repeated.sort_unstable();
    report.written = batch.len() - repeated.len() - report.rejected.len();
    let repeats = settle_repeats(batch, &repeated, repeated.len(), read_back)
        .map_err(RowVerdictError::ReadBack)?;
    report.duplicates = repeats.duplicates;
    report.conflicts = repeats.conflicts;
    Ok(report)
}

/// Most keys in one read-back query: Oracle allows 1,000 entries in an IN list.
const KEYS_PER_QUERY: usize = 1_000;

/// The number of keys a read-back query of `keys` keys binds: rounded up to 1, 4, 16, 64, 256
/// or 1,000 (the last key repeated), so that a handful of statement texts serve every batch
/// and stay in the statement cache instead of each being parsed anew.
fn stored_rows_query_keys(keys: usize) -> usize {
    [1, 4, 16, 64, 256]
        .into_iter()
        .find(|&size| keys <= size)
        .unwrap_or(KEYS_PER_QUERY)
}

/// The read-back of the stored rows for `keys` keys (at most 1,000), each bound as its key
/// columns in the mapping's order: one IN list on the key, selecting
/// [`ColumnMapping::read_back_columns`].
fn stored_rows_sql(table: &str, mapping: &ColumnMapping, keys: usize) -> String {
    let key_names: Vec<&str> = mapping
        .key_columns()
        .into_iter()
        .map(|c| c.name.as_str())
        .collect();
    let width = key_names.len();
    let list: Vec<String> = (0..keys)
        .map(|i| {
            let binds: Vec<String> = (1..=width).map(|j| format!(":{}", width * i + j)).collect();
            format!("({})", binds.join(", "))
        })
        .collect();
    let selected: Vec<&str> = mapping
        .read_back_columns()
        .into_iter()
        .map(|c| c.name.as_str())
        .collect();
    format!(
        "SELECT {} FROM {table} WHERE ({}) IN ({})",
        selected.join(", "),
        key_names.join(", "),
        list.join(", ")
    )
}

/// `SELECT timestamp, plc_code, tag_address, value, quality` in the mapping's column names
/// (the quality `'GOOD'` where the table has none); an error when the codes share a column.
pub(crate) fn fetch_all_sql(table: &str, mapping: &ColumnMapping) -> Result<String, SinkError> {
    let Some((plc, address)) = mapping.code_columns() else {
        return Err(SinkError::setup(
            "this column mapping forms plc_code and tag_address into one column: rows cannot \
             be read back whole",
        ));
    };
    let quality = mapping
        .quality_column()
        .map_or("'GOOD'", |c| c.name.as_str());
    Ok(format!(
        "SELECT {}, {}, {}, {}, {quality} FROM {table}",
        mapping.timestamp_column().name,
        plc.name,
        address.name,
        mapping.value_column().name
    ))
}

/// One row of [`stored_rows_sql`]: the key cells, the value, the quality if selected.
fn read_stored_row(
    row: &oracle::Row,
    read: &[&crate::mapping::MappedColumn],
    keys: usize,
) -> Result<StoredRow, oracle::Error> {
    let mut key = Vec::with_capacity(keys);
    for (i, column) in read[..keys].iter().enumerate() {
        key.push(match column.kind() {
            CellKind::Timestamp => KeyCell::Timestamp(row.get(i)?),
            // Oracle stores an empty string as NULL.
            _ => KeyCell::Text(row.get::<_, Option<String>>(i)?.unwrap_or_default()),
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

/// The driver's error, classified by where it came from (never by its text).
pub(crate) fn oracle_error(error: &oracle::Error) -> OracleError {
    let source = match error.kind() {
        ErrorKind::OciError => OracleErrorSource::Database(
            error
                .oci_code()
                .or_else(|| error.db_error().map(|db| db.code()))
                .and_then(|code| u32::try_from(code).ok())
                .unwrap_or(0),
        ),
        ErrorKind::DpiError => OracleErrorSource::Client(
            error
                .dpi_code()
                .and_then(|code| u32::try_from(code).ok())
                .unwrap_or(0),
        ),
        ErrorKind::NullValue
        | ErrorKind::ParseError
        | ErrorKind::OutOfRange
        | ErrorKind::InvalidTypeConversion => OracleErrorSource::Driver(DriverFault::Conversion),
        ErrorKind::InvalidBindIndex
        | ErrorKind::InvalidBindName
        | ErrorKind::InvalidColumnIndex
        | ErrorKind::InvalidColumnName
        | ErrorKind::InvalidAttributeName
        | ErrorKind::InvalidOperation
        | ErrorKind::InvalidArgument
        | ErrorKind::UninitializedBindValue => OracleErrorSource::Driver(DriverFault::Usage),
        ErrorKind::NoDataFound => OracleErrorSource::Driver(DriverFault::NoData),
        _ => OracleErrorSource::Driver(DriverFault::Internal),
    };
    OracleError::new(source, error.to_string())
}

/// Logs in with ODPI-C (Oracle Client), through r2d2-oracle's manager.
struct OdpiLogin {
    manager: OracleConnectionManager,
    user: String,
    /// ORA-28002 (the password will expire) is logged once, not at every login.
    expiry_warned: AtomicBool,
}

impl OracleLogin for OdpiLogin {
    type Session = Connection;

    fn login(&self) -> Result<Connection, OracleError> {
        let connection = self.manager.connect().map_err(|e| oracle_error(&e))?;
        // The warning is only there before the first statement runs on the connection.
        if let Some(warning) = connection.last_warning() {
            if warning.oci_code() == Some(28002) && !self.expiry_warned.swap(true, Ordering::SeqCst)
            {
                log::warn!(
                    "Oracle: {warning} (user {}): change the password before it expires, or \
                     the writer will be refused and stop logging in",
                    self.user
                );
            }
        }
        Ok(connection)
    }
}

impl OracleSession for Connection {
    fn set_call_timeout(&mut self, timeout: Option<Duration>) -> Result<(), OracleError> {
        Connection::set_call_timeout(self, timeout).map_err(|e| oracle_error(&e))
    }

    fn ping(&mut self) -> Result<(), OracleError> {
        Connection::ping(self).map_err(|e| oracle_error(&e))
    }

    fn is_closed(&mut self) -> bool {
        !matches!(self.status(), Ok(oracle::ConnStatus::Normal))
    }
}

/// Writes tag values into Oracle with array DML and batch errors, over an r2d2 pool.
///
/// Clones share the pool: give each writer thread its own clone.
#[derive(Clone)]
pub struct OracleSink {
    pool: OraclePool<OdpiLogin>,
    /// The account's login protection and last login failure, shared with the pool.
    logins: Arc<LoginState>,
    config: OracleConfig,
    insert_sql: String,
}

/// A connection checked out of the sink's pool.
type PooledOracle = OracleConnection<OdpiLogin>;

impl OracleSink {
    /// Validates the settings and creates the pool without connecting (connections open in
    /// the background), so start-up never hangs on an unreachable database. Call
    /// [`Sink::probe`] to find out whether the database can be reached.
    pub fn new(config: OracleConfig) -> Result<Self, SinkError> {
        validate_table_name(&config.table)?;
        if config.pool_max == 0 || config.pool_min > config.pool_max {
            return Err(SinkError::setup(format!(
                "ORACLE_POOL_MIN = {} and ORACLE_POOL_MAX = {}: need 1 <= max and min <= max",
                config.pool_min, config.pool_max
            )));
        }
        let mut connector = Connector::new(
            config.user.as_str(),
            config.password.expose(),
            config.connect_string.as_str(),
        );
        connector.stmt_cache_size(20);
        let login = OdpiLogin {
            manager: OracleConnectionManager::from_connector(connector),
            user: config.user.clone(),
            expiry_warned: AtomicBool::new(false),
        };
        let logins = Arc::new(LoginState::new(config.login_retry));
        let settings = PoolSettings {
            min: config.pool_min,
            max: config.pool_max,
            timeout: config.pool_timeout,
            call_timeout: config.call_timeout,
        };
        Ok(OracleSink {
            pool: build_pool(login, Arc::clone(&logins), &settings),
            logins,
            insert_sql: insert_sql(&config.table, &config.mapping),
            config,
        })
    }

    fn context(&self) -> ErrorContext<'_> {
        ErrorContext {
            target: self.config.target(),
            user: &self.config.user,
            table: &self.config.table,
            call_timeout: self.config.call_timeout,
            password: &self.config.password,
        }
    }

    /// Classifies a driver error. After a lost connection or a timed-out call the idle
    /// connections are discarded, so the retry gets a fresh one instead of finding each dead
    /// one in turn.
    fn classify(&self, error: &oracle::Error) -> SinkError {
        self.classified(&oracle_error(error))
    }

    fn classified(&self, error: &OracleError) -> SinkError {
        if error.class.drops_connections() {
            let discarded = discard_idle(&self.pool);
            if discarded > 0 {
                log::debug!(
                    "Discarded {discarded} idle Oracle connections after: {}",
                    error.message
                );
            }
        }
        error.to_sink_error(&self.context())
    }

    /// Rolls back what `connection` did, classifies `error`, and keeps the connection out of
    /// the pool when it can no longer be trusted.
    fn fail(&self, connection: &PooledOracle, error: &oracle::Error) -> SinkError {
        let error = oracle_error(error);
        if error.class.drops_connections() {
            connection.mark_broken();
        } else {
            let _ = connection.rollback();
        }
        self.classified(&error)
    }

    /// A pooled connection. Fails at once when logins are stopped (a refused password) or
    /// the last login failed for a set-up reason (no client library); otherwise waits up to
    /// ORACLE_POOL_TIMEOUT and says why the last login failed.
    fn connection(&self) -> Result<PooledOracle, SinkError> {
        checkout(&self.pool, &self.logins, self.config.pool_timeout)
            .map_err(|e| self.classified(&e))
    }

    /// Executes one chunk with batch errors on; returns the row errors (offsets within the
    /// chunk). Nothing is committed here.
    fn write_chunk(
        &self,
        connection: &Connection,
        rows: &[TagValue],
    ) -> Result<Vec<BatchRowError>, oracle::Error> {
        let mut batch = connection
            .batch(&self.insert_sql, rows.len())
            .with_batch_errors()
            .build()?;
        let mapping = &self.config.mapping;
        for (index, oracle_type) in bind_types(mapping).iter().enumerate() {
            batch.set_type(index + 1, oracle_type)?;
        }
        let now = mapping.now();
        let mut cells: Vec<OracleCell<'_>> = Vec::with_capacity(mapping.columns().len());
        for value in rows {
            cells.clear();
            cells.extend(
                mapping
                    .columns()
                    .iter()
                    .map(|column| OracleCell(column.cell(value, now))),
            );
            let binds: Vec<&dyn ToSql> = cells.iter().map(|c| c as &dyn ToSql).collect();
            batch.append_row(&binds)?;
        }
        match batch.execute() {
            Ok(()) => Ok(Vec::new()),
            Err(error) if error.kind() == ErrorKind::BatchErrors => Ok(error
                .batch_errors()
                .map(|errors| {
                    errors
                        .iter()
                        .map(|e| BatchRowError {
                            offset: e.offset() as usize,
                            code: e.code(),
                            message: e.message().to_owned(),
                        })
                        .collect()
                })
                .unwrap_or_default()),
            Err(error) => Err(error),
        }
    }

    /// The stored rows with these keys, on the batch's connection (so rows inserted earlier in
    /// the same, uncommitted batch are seen): one IN-list query per 1,000 keys.
    fn stored_rows(
        &self,
        connection: &Connection,
        keys: &[&TagValue],
    ) -> Result<Vec<TagValue>, SinkError> {
        let mapping = &self.config.mapping;
        let key_columns = mapping.key_columns();
        // The columns' own types, as for the insert: a TIMESTAMP(9) bind against the
        // TIMESTAMP(6) key column must not cost the primary-key index.
        let key_types: Vec<OracleType> =
            key_columns.iter().map(|c| oracle_type(c.kind())).collect();
        let read = mapping.read_back_columns();
        let mut stored = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let size = stored_rows_query_keys(chunk.len());
            let cells: Vec<OracleCell<'_>> = (0..size)
                .flat_map(|i| {
                    let key = chunk[i.min(chunk.len() - 1)];
                    key_columns
                        .iter()
                        .map(move |c| OracleCell(c.cell(key, chrono::NaiveDateTime::default())))
                })
                .collect();
            let typed: Vec<(&OracleCell<'_>, &OracleType)> =
                cells.iter().zip(key_types.iter().cycle()).collect();
            let binds: Vec<&dyn ToSql> = typed.iter().map(|t| t as &dyn ToSql).collect();
            let rows = connection
                .query(&stored_rows_sql(&self.config.table, mapping, size), &binds)
                .map_err(|e| self.classify(&e))?;
            let mut found = Vec::new();
            for row in rows {
                let row = row.map_err(|e| self.classify(&e))?;
                found.push(
                    read_stored_row(&row, &read, key_columns.len())
                        .map_err(|e| self.classify(&e))?,
                );
            }
            stored.extend(mapping.rebuild_stored(chunk, found)?);
        }
        Ok(stored)
    }

    /// The table's columns from the dictionary, checked against the mapping: the error names
    /// a mapped column the table lacks, or a NOT NULL column without a default that the
    /// mapping leaves out. Start-up calls it once the database answers.
    pub fn check_table(&self) -> Result<(), SinkError> {
        let connection = self.connection()?;
        let (owner, name) = dictionary_name(&self.config.table);
        let rows = connection
            .query_as::<(String, String, i32)>(TABLE_COLUMNS_SQL, &[&owner, &name])
            .map_err(|e| self.classify(&e))?;
        let mut columns = Vec::new();
        for row in rows {
            let (name, nullable, has_default) = row.map_err(|e| self.classify(&e))?;
            columns.push(table_column(name, &nullable, has_default != 0));
        }
        self.config
            .mapping
            .check_table(&self.config.table, &columns)
            .map_err(|e| SinkError::setup(format!("Oracle: {e}")))
    }

    /// Every row of the table (for tests and checks). Needs a mapping that stores
    /// `plc_code` and `tag_address` in columns of their own.
    pub fn fetch_all(&self) -> Result<Vec<TagValue>, SinkError> {
        let sql = fetch_all_sql(&self.config.table, &self.config.mapping)?;
        let value_kind = self.config.mapping.value_column().kind();
        let connection = self.connection()?;
        let rows = connection.query(&sql, &[]).map_err(|e| self.classify(&e))?;
        let mut values = Vec::new();
        for row in rows {
            let row = row.map_err(|e| self.classify(&e))?;
            let read = |i: usize| row.get::<_, String>(i).map_err(|e| self.classify(&e));
            let timestamp: chrono::NaiveDateTime = row.get(0).map_err(|e| self.classify(&e))?;
            let (plc, address, quality) = (read(1)?, read(2)?, read(4)?);
            let value = match value_kind {
                CellKind::Number => row.get::<_, Option<f64>>(3),
                _ => row
                    .get::<_, Option<String>>(3)
                    .map(|t| t.as_deref().and_then(crate::mapping::parse_value_text)),
            }
            .map_err(|e| self.classify(&e))?;
            values.push(stored_value(timestamp, plc, address, value, &quality)?);
        }
        Ok(values)
    }

    /// Deletes every row (for the conformance tests' fresh table).
    pub fn delete_all(&self) -> Result<(), SinkError> {
        let connection = self.connection()?;
        connection
            .execute(&format!("DELETE FROM {}", self.config.table), &[])
            .and_then(|_| connection.commit())
            .map_err(|e| self.classify(&e))
    }

    /// Inserts `row` and reads it back on one connection, then rolls back: nothing stays in
    /// the table and no DELETE privilege is needed.
    pub fn check_row(&self, row: &TagValue) -> Result<crate::sink::RowCheck, SinkError> {
        let connection = self.connection()?;
        let result = self.check_row_on(&connection, row);
        let rolled_back = connection.rollback();
        let check = result?;
        rolled_back.map_err(|e| self.fail(&connection, &e))?;
        Ok(check)
    }

    fn check_row_on(
        &self,
        connection: &PooledOracle,
        row: &TagValue,
    ) -> Result<crate::sink::RowCheck, SinkError> {
        let mapping = &self.config.mapping;
        let now = mapping.now();
        let cells: Vec<OracleCell<'_>> = mapping
            .columns()
            .iter()
            .map(|column| OracleCell(column.cell(row, now)))
            .collect();
        let types = bind_types(mapping);
        let typed: Vec<(&OracleCell<'_>, &OracleType)> = cells.iter().zip(&types).collect();
        let binds: Vec<&dyn ToSql> = typed.iter().map(|t| t as &dyn ToSql).collect();
        let inserted = match connection.execute(&self.insert_sql, &binds) {
            Ok(statement) => statement
                .row_count()
                .map_err(|e| self.fail(connection, &e))?,
            // The key is stored already: read back what is there.
            Err(error) if error.oci_code() == Some(1) => 0,
            Err(error) => return Err(self.fail(connection, &error)),
        };
        let stored = self.stored_rows(connection, &[row])?.into_iter().next();
        Ok(crate::sink::RowCheck {
            inserted: usize::try_from(inserted).unwrap_or(usize::MAX),
            stored,
        })
    }

    /// The version of the Oracle Client library, loading it if need be: a connection check
    /// looks at this first, to tell a missing client from a database that cannot be reached.
    pub fn client_version(&self) -> Result<String, SinkError> {
        oracle::Version::client()
            .map(|version| version.to_string())
            .map_err(|e| oracle_error(&e).to_sink_error(&self.context()))
    }

    /// The server's version banner, e.g. `Oracle Database 19c Enterprise Edition ...`.
    pub fn server_version(&self) -> Result<String, SinkError> {
        let connection = self.connection()?;
        let (version, banner) = connection.server_version().map_err(|e| self.classify(&e))?;
        Ok(if banner.is_empty() {
            version.to_string()
        } else {
            banner
        })
    }
}

impl Sink for OracleSink {
    fn write_batch(&mut self, batch: &[TagValue]) -> Result<WriteReport, SinkError> {
        if batch.is_empty() {
            return Ok(WriteReport::default());
        }
        let connection = self.connection()?;
        let mut errors = Vec::new();
        for (chunk_number, rows) in batch.chunks(MAX_ROWS_PER_EXECUTE).enumerate() {
            let first_index = chunk_number * MAX_ROWS_PER_EXECUTE;
            match self.write_chunk(&connection, rows) {
                Ok(chunk_errors) => {
                    errors.extend(chunk_errors.into_iter().map(|error| BatchRowError {
                        offset: first_index + error.offset,
                        ..error
                    }))
                }
                Err(error) => return Err(self.fail(&connection, &error)),
            }
        }
        // Read back the rows that hit ORA-00001 before committing, on the same connection.
        let verdicts =
            report_from_batch_errors(batch, &errors, |keys| self.stored_rows(&connection, keys));
        let report = match verdicts {
            Ok(report) => report,
            Err(RowVerdictError::ReadBack(error)) => {
                let _ = connection.rollback();
                return Err(error);
            }
            Err(RowVerdictError::WholeBatch(row)) => {
                let _ = connection.rollback();
                let code = u32::try_from(row.code).unwrap_or(0);
                let error = OracleError::new(
                    OracleErrorSource::Database(code),
                    format!(
                        "{} (reported for row {} of {}, but not about its data: the whole batch \
                         is rolled back)",
                        row.message,
                        row.offset + 1,
                        batch.len()
                    ),
                );
                return Err(self.classified(&error));
            }
        };
        // Good rows of a batch with errors are still uncommitted: commit them all at once.
        connection
            .commit()
            .map_err(|e| self.fail(&connection, &e))?;
        Ok(report)
    }

    /// The least-privilege probe: an INSERT of no rows into the writer's columns, rolled
    /// back. It fails when the writer could not insert (no table, a missing column, no INSERT
    /// privilege) and passes for an account that may only insert.
    fn probe(&mut self) -> Result<(), SinkError> {
        let connection = self.connection()?;
        let sql = probe_sql(&self.config.table, &self.config.mapping.names());
        let result = connection.execute(&sql, &[]);
        let result = result.and_then(|_| connection.rollback());
        result.map_err(|e| self.fail(&connection, &e))
    }

    fn kind(&self) -> &'static str {
        "Oracle"
    }

    fn describe(&self) -> String {
        format!(
            "Oracle {}@{} (table {}, pool {}..{})",
            self.config.user,
            self.config.target(),
            self.config.table,
            self.config.pool_min,
            self.config.pool_max
        )
    }
}

impl crate::sink::SinkCheck for OracleSink {
    fn server_version(&mut self) -> Result<String, SinkError> {
        OracleSink::server_version(self)
    }
    fn check_row(&mut self, row: &TagValue) -> Result<crate::sink::RowCheck, SinkError> {
        OracleSink::check_row(self, row)
    }
}

impl std::fmt::Debug for OracleSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::FailureKind;
    use tag_model::Quality;

    /// The spec's quickstart table, as TABLE_COLUMNS names it.
    const TAG_DATA: &str = "tag_name={plc_code}.{tag_address}, tag_value={value:text}, \
                            timestamp={timestamp}, quality={quality}";

    #[test]
    fn insert_sql_lists_the_columns_and_binds() {
        let standard = ColumnMapping::standard();
        assert_eq!(
            insert_sql("SCADA.TAG_VALUES", &standard),
            "INSERT INTO SCADA.TAG_VALUES (timestamp, plc_code, tag_address, tag_value, quality) \
             VALUES (:1, :2, :3, :4, :5)"
        );
        let tag_data: ColumnMapping = TAG_DATA.parse().unwrap();
        assert_eq!(
            insert_sql("TAG_DATA", &tag_data),
            "INSERT INTO TAG_DATA (tag_name, tag_value, timestamp, quality) VALUES (:1, :2, :3, :4)"
        );
        assert_eq!(
            probe_sql("TAG_DATA", &tag_data.names()),
            "INSERT INTO TAG_DATA (tag_name, tag_value, timestamp, quality) \
             SELECT NULL, NULL, NULL, NULL FROM dual WHERE 1 = 0"
        );
        // A constant and the time of writing are binds like the others.
        let with_site: ColumnMapping = format!("{TAG_DATA}, site=PLANT 7, written={{now}}")
            .parse()
            .unwrap();
        assert_eq!(
            insert_sql("TAG_DATA", &with_site),
            "INSERT INTO TAG_DATA (tag_name, tag_value, timestamp, quality, site, written) \
             VALUES (:1, :2, :3, :4, :5, :6)"
        );
        assert_eq!(
            bind_types(&with_site),
            [
                // PLC code, '.', tag address: 50 + 1 + 100 bytes.
                OracleType::Varchar2(151),
                OracleType::Varchar2(32),
                OracleType::Timestamp(6),
                OracleType::Varchar2(20),
                OracleType::Varchar2(7),
                OracleType::Timestamp(6),
            ]
        );
    }

    #[test]
    fn the_tag_data_read_back_selects_its_key_value_and_quality() {
        let tag_data: ColumnMapping = TAG_DATA.parse().unwrap();
        assert_eq!(
            stored_rows_sql("TAG_DATA", &tag_data, 2),
            "SELECT tag_name, timestamp, tag_value, quality FROM TAG_DATA \
             WHERE (tag_name, timestamp) IN ((:1, :2), (:3, :4))"
        );
        let error = fetch_all_sql("TAG_DATA", &tag_data).unwrap_err();
        assert!(error.message().contains("into one column"), "{error}");
        let own: ColumnMapping = "ts={timestamp}, plc={plc_code}, addr={tag_address}, val={value}"
            .parse()
            .unwrap();
        assert_eq!(
            fetch_all_sql("H.SAMPLES", &own).unwrap(),
            "SELECT ts, plc, addr, val, 'GOOD' FROM H.SAMPLES"
        );
    }

    #[test]
    fn the_dictionary_check_reads_upper_case_names_and_defaults() {
        assert_eq!(
            dictionary_name("scada.Tag_Data"),
            (Some("SCADA".to_owned()), "TAG_DATA".to_owned())
        );
        assert_eq!(dictionary_name("TAG_DATA"), (None, "TAG_DATA".to_owned()));
        assert!(TABLE_COLUMNS_SQL.contains("FROM all_tab_columns"));
        assert!(
            !TABLE_COLUMNS_SQL.contains("data_default"),
            "a LONG cannot be tested"
        );
        let columns = [
            table_column("TAG_NAME".into(), "N", false),
            table_column("TAG_VALUE".into(), "N", false),
            table_column("TIMESTAMP".into(), "N", false),
            table_column("QUALITY".into(), "N", false),
            table_column("INSERTED_AT".into(), "N", true),
            table_column("NOTE".into(), "Y", false),
        ];
        assert_eq!(
            columns.iter().map(|c| c.required).collect::<Vec<_>>(),
            [true, true, true, true, false, false]
        );
        let tag_data: ColumnMapping = TAG_DATA.parse().unwrap();
        tag_data.check_table("TAG_DATA", &columns).unwrap();
        let error = ColumnMapping::standard()
            .check_table("TAG_DATA", &columns)
            .unwrap_err();
        assert!(
            error.starts_with("table TAG_DATA has no column plc_code"),
            "{error}"
        );
    }

    #[test]
    fn bind_types_match_the_columns() {
        assert_eq!(
            bind_types(&ColumnMapping::standard()),
            [
                OracleType::Timestamp(6),
                OracleType::Varchar2(50),
                OracleType::Varchar2(100),
                OracleType::BinaryDouble,
                OracleType::Varchar2(20),
            ]
        );
        let ddl = include_str!("../../../sql/oracle/create_tag_values.sql");
        for column in [
            "timestamp   TIMESTAMP(6)",
            "plc_code    VARCHAR2(50)",
            "tag_address VARCHAR2(100)",
            "tag_value   NUMBER",
            "quality     VARCHAR2(20)",
        ] {
            assert!(ddl.contains(column), "{column}");
        }
    }

    fn sample(count: usize) -> Vec<TagValue> {
        crate::conformance::sample_rows(count)
    }

    /// A read-back that must not happen.
    fn no_read(_: &[&TagValue]) -> Result<Vec<TagValue>, SinkError> {
        panic!("read back rows for a batch without ORA-00001")
    }

    #[test]
    fn batch_errors_map_to_duplicates_rejections_and_written_rows() {
        let batch = sample(10);
        let errors = [
            BatchRowError {
                offset: 7,
                code: 1426,
                message: "ORA-01426: numeric overflow".into(),
            },
            BatchRowError {
                offset: 2,
                code: 1,
                message: "ORA-00001: unique constraint (SCADA.PK_TAG_VALUES) violated".into(),
            },
            BatchRowError {
                offset: 3,
                code: 12899,
                message: "ORA-12899: value too large for column".into(),
            },
            // Out of range offsets and repeated rows are ignored, not double-counted.
            BatchRowError {
                offset: 99,
                code: 1,
                message: "?".into(),
            },
            BatchRowError {
                offset: 2,
                code: 1,
                message: "again".into(),
            },
        ];
        // Row 2 is stored as sent: an identical repeat.
        let stored = vec![batch[2].clone()];
        let report =
            report_from_batch_errors(&batch, &errors, |_| Ok::<_, SinkError>(stored)).unwrap();
        assert_eq!(report.written, 7);
        assert_eq!(report.duplicates, 1);
        assert!(report.conflicts.is_empty());
        assert_eq!(
            report.rejected,
            [
                RowRejection {
                    index: 3,
                    reason: "ORA-12899: value too large for column".into()
                },
                RowRejection {
                    index: 7,
                    reason: "ORA-01426: numeric overflow".into()
                },
            ]
        );
        assert!(report.accounts_for(10));
        assert_eq!(
            report_from_batch_errors(&batch[..5], &[], no_read).unwrap(),
            WriteReport {
                written: 5,
                ..WriteReport::default()
            }
        );
        // Rejections alone read nothing back either.
        let rejected_only = &errors[..1];
        let report = report_from_batch_errors(&batch, rejected_only, no_read).unwrap();
        assert_eq!((report.written, report.rejected.len()), (9, 1));
    }

    /// 1, 2 and 99 for one key in one array insert: rows 1 and 2 hit ORA-00001 against row 0
    /// (uncommitted, same statement); a further row repeats a key stored earlier with another
    /// quality. One read-back query for the two keys; the stored rows win.
    #[test]
    fn ora_00001_rows_that_differ_from_the_stored_row_are_conflicts() {
        let first = sample(2);
        let with = |i: usize, value: f64, quality: Quality| {
            TagValue::new(
                first[i].timestamp(),
                first[i].plc_code(),
                first[i].tag_address(),
                Some(value),
                quality,
            )
            .unwrap()
        };
        let earlier = with(1, 5.0, Quality::Good);
        let batch = [
            with(0, 1.0, Quality::Good),
            with(0, 2.0, Quality::Good),
            with(0, 99.0, Quality::Good),
            with(0, 1.0, Quality::Good),
            with(1, 5.0, Quality::Bad),
        ];
        let errors: Vec<BatchRowError> = [4, 1, 3, 2] // Oracle does not sort them
            .into_iter()
            .map(|offset| BatchRowError {
                offset,
                code: 1,
                message: "ORA-00001: unique constraint (SCADA.PK_TAG_VALUES) violated".into(),
            })
            .collect();
        let mut calls = Vec::new();
        let report = report_from_batch_errors(&batch, &errors, |keys| {
            calls.push(keys.len());
            Ok::<_, SinkError>(vec![batch[0].clone(), earlier.clone()])
        })
        .unwrap();
        assert_eq!(calls, [2], "one read-back of the two distinct keys");
        assert_eq!((report.written, report.duplicates), (1, 1));
        // (index, offered value, stored value, stored quality)
        type Lost = (usize, Option<f64>, Option<f64>, Option<Quality>);
        let conflicts: Vec<Lost> = report
            .conflicts
            .iter()
            .map(|c| {
                let stored = c.stored.as_ref().unwrap();
                (
                    c.index,
                    batch[c.index].value(),
                    stored.value(),
                    Some(stored.quality()),
                )
            })
            .collect();
        assert_eq!(
            conflicts,
            [
                (1, Some(2.0), Some(1.0), Some(Quality::Good)),
                (2, Some(99.0), Some(1.0), Some(Quality::Good)),
                (4, Some(5.0), Some(5.0), Some(Quality::Good)),
            ]
        );
        assert!(report.accounts_for(batch.len()));
        // A failed read-back fails the batch (it is rolled back and retried).
        let error = report_from_batch_errors(&batch, &errors, |_| {
            Err::<Vec<TagValue>, _>(SinkError::transient("ORA-03113: end-of-file"))
        })
        .unwrap_err();
        assert!(matches!(error, RowVerdictError::ReadBack(e) if e.is_transient()));
    }

    /// A full tablespace, a quota, undo or a deadlock reported per row is not about that
    /// row's data: no row is rejected, the whole batch fails with the first such error.
    #[test]
    fn only_data_errors_reject_rows_and_others_fail_the_batch() {
        let batch = sample(10);
        let row_error = |offset: usize, code: i32| BatchRowError {
            offset,
            code,
            message: format!("ORA-{code:05}: ..."),
        };
        for code in [1653, 1688, 1950, 30036, 60, 54, 3113] {
            let errors = [row_error(6, 1400), row_error(4, code), row_error(8, code)];
            let error = report_from_batch_errors(&batch, &errors, no_read).unwrap_err();
            assert_eq!(
                error,
                RowVerdictError::WholeBatch(row_error(4, code)),
                "ORA-{code}"
            );
        }
        // Data errors alone: rejections, the rest written.
        let data = [1400, 1438, 1426, 12899, 1722, 1840, 1841, 1847, 2290, 2291];
        let errors: Vec<BatchRowError> = data
            .iter()
            .enumerate()
            .map(|(offset, &code)| row_error(offset, code))
            .collect();
        let report = report_from_batch_errors(&batch, &errors, no_read).unwrap();
        assert_eq!((report.written, report.rejected.len()), (0, 10));
        // An offset past the batch counts for nothing, whatever its code.
        let report = report_from_batch_errors(&batch, &[row_error(10, 1653)], no_read).unwrap();
        assert_eq!(report.written, 10);
    }

    #[test]
    fn the_read_back_query_uses_a_few_statement_texts() {
        let sizes: Vec<usize> = [1, 2, 4, 5, 16, 17, 64, 65, 256, 257, 999, 1_000]
            .into_iter()
            .map(stored_rows_query_keys)
            .collect();
        assert_eq!(
            sizes,
            [1, 4, 4, 16, 16, 64, 64, 256, 256, 1_000, 1_000, 1_000]
        );
        let standard = ColumnMapping::standard();
        assert_eq!(
            stored_rows_sql("SCADA.TAG_VALUES", &standard, 2),
            "SELECT timestamp, plc_code, tag_address, tag_value, quality FROM SCADA.TAG_VALUES \
             WHERE (timestamp, plc_code, tag_address) IN ((:1, :2, :3), (:4, :5, :6))"
        );
        assert!(stored_rows_sql("T", &standard, 1_000).ends_with("(:2998, :2999, :3000))"));
    }

    /// Errors that are not the database's are classified by their kind; words in their text
    /// that look like codes change nothing.
    #[test]
    #[allow(deprecated)] // the enum variants are how a test builds a database error
    fn driver_errors_are_classified_by_kind_not_by_text() {
        use crate::oracle::ErrorClass;
        use oracle::DbError;
        let db = |code: i32, message: &str| DbError::new(code, 0, message, "", "");
        let cases = [
            (
                oracle::Error::OciError(db(1017, "ORA-01017: invalid username/password")),
                ErrorClass::LoginRefused,
            ),
            (
                oracle::Error::OciError(db(12541, "ORA-12541: TNS:no listener")),
                ErrorClass::Unreachable,
            ),
            (
                oracle::Error::DpiError(db(0, "DPI-1047: Cannot locate a 64-bit Oracle Client")),
                ErrorClass::ClientLibrary,
            ),
            (
                oracle::Error::DpiError(db(0, "DPI-1080: connection was closed by ORA-03113")),
                ErrorClass::ConnectionLost,
            ),
            (
                oracle::Error::DpiError(db(0, "DPI-1067: call timeout of 20000 ms exceeded")),
                ErrorClass::CallTimeout,
            ),
            (
                oracle::Error::new(ErrorKind::InvalidTypeConversion, "ORA-03113 in the text"),
                ErrorClass::Setup,
            ),
            (oracle::Error::NullValue, ErrorClass::Setup),
            (oracle::Error::InvalidBindIndex(9), ErrorClass::Setup),
            (
                oracle::Error::InternalError("DPI-1047 in the text".into()),
                ErrorClass::Unknown,
            ),
            (
                oracle::Error::new(ErrorKind::Other, "ORA-01017 in the text"),
                ErrorClass::Unknown,
            ),
        ];
        for (error, class) in cases {
            assert_eq!(oracle_error(&error).class, class, "{error}");
            assert_eq!(oracle_error(&error).message, error.to_string());
        }
    }

    #[test]
    fn pool_settings_are_checked_and_description_has_no_password() {
        let config = OracleConfig::new(
            crate::EasyConnect::new("db.plant", 1521, "XEPDB1").connect_string(),
            "scada_user",
            Secret::new("hunter2"),
        );
        let sink = OracleSink::new(config.clone()).unwrap();
        assert_eq!(
            sink.describe(),
            "Oracle scada_user@db.plant:1521/XEPDB1 (table TAG_VALUES, pool 2..5)"
        );
        assert!(!format!("{sink:?} {config:?}").contains("hunter2"));
        let error = OracleSink::new(OracleConfig {
            pool_min: 6,
            ..config.clone()
        })
        .unwrap_err();
        assert!(error.message().contains("ORACLE_POOL_MIN = 6"), "{error}");
        let error = OracleSink::new(OracleConfig {
            table: "TAG VALUES".into(),
            ..config
        })
        .unwrap_err();
        assert_eq!(error.kind(), FailureKind::Setup);
    }
}
