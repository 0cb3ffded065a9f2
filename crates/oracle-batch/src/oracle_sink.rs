//! The Oracle sink: array DML with batch errors over an r2d2 pool of `oracle` connections.
//!
//! Everything that does not need a server (SQL text, bind types, error classification, the
//! mapping of batch errors to written / duplicate / rejected rows) is a plain function here,
//! unit-tested without a database.

use std::time::Duration;

use oracle::sql_type::{OracleType, ToSql};
use oracle::{Connection, Connector, ErrorKind};
use r2d2::{NopErrorHandler, Pool, PooledConnection};
use r2d2_oracle::OracleConnectionManager;
use tag_model::TagValue;

use crate::conflict::settle_repeats;
use crate::secret::Secret;
use crate::sink::{
    stored_value, validate_table_name, FailureKind, RowRejection, Sink, SinkError, WriteReport,
};

/// Oracle's limit on rows in one array DML call with batch errors (a 16-bit error count).
pub const MAX_ROWS_PER_EXECUTE: usize = 65_535;

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct OracleConfig {
    /// An Easy Connect string (`host:port/service`), a TNS alias or a full descriptor.
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
}

impl OracleConfig {
    /// The Easy Connect string for a host, port and service name: `host:port/service`.
    ///
    /// ```
    /// assert_eq!(
    ///     oracle_batch::OracleConfig::easy_connect("oracle.example.com", 1521, "XEPDB1"),
    ///     "oracle.example.com:1521/XEPDB1"
    /// );
    /// ```
    pub fn easy_connect(host: &str, port: u16, service_name: &str) -> String {
        format!("{host}:{port}/{service_name}")
    }
}

/// The INSERT for `table`: five positional binds, `inserted_at` left to its default.
pub fn insert_sql(table: &str) -> String {
    format!(
        "INSERT INTO {table} (timestamp, plc_code, tag_address, tag_value, quality) \
         VALUES (:1, :2, :3, :4, :5)"
    )
}

/// Bind types fixed up front, in bind order, matching the columns of
/// `sql/oracle/create_tag_values.sql`: without them a `NaiveDateTime` binds as TIMESTAMP(9)
/// and an `f64` as text, and a batch re-describes its binds on the first odd row.
pub fn bind_types() -> [OracleType; 5] {
    [
        OracleType::Timestamp(6),
        OracleType::Varchar2(tag_model::PLC_CODE_MAX_BYTES as u32),
        OracleType::Varchar2(tag_model::TAG_ADDRESS_MAX_BYTES as u32),
        OracleType::BinaryDouble,
        OracleType::Varchar2(20),
    ]
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

/// Turns the batch errors of an executed batch into its report. `errors` carry offsets within
/// `batch` (each chunk's offsets plus the chunk's first index). ORA-00001 rows repeat a stored
/// key: they are split into duplicates and conflicts by [`settle_repeats`], with the stored
/// rows for their keys from `read_back` (one call, and none when no row hit ORA-00001, so a
/// healthy batch pays nothing). Other errors are rejections; the remaining rows were written.
/// Offsets out of range, and a second error for the same row, are ignored.
pub fn report_from_batch_errors<E>(
    batch: &[TagValue],
    errors: &[BatchRowError],
    read_back: impl FnOnce(&[&TagValue]) -> Result<Vec<TagValue>, E>,
) -> Result<WriteReport, E> {
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
    let repeats = settle_repeats(batch, &repeated, repeated.len(), read_back)?;
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

/// The read-back of the stored rows for `keys` keys (at most 1,000), bound in order as
/// (plc_code, tag_address, timestamp) triples: one primary-key IN list.
fn stored_rows_sql(table: &str, keys: usize) -> String {
    let list: Vec<String> = (0..keys)
        .map(|i| format!("(:{}, :{}, :{})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
        .collect();
    format!(
        "SELECT timestamp, plc_code, tag_address, tag_value, quality FROM {table} \
         WHERE (plc_code, tag_address, timestamp) IN ({})",
        list.join(", ")
    )
}

const TRANSIENT_ORA: &[u32] = &[
    18, 20, 28, 54, 60, 1012, 1033, 1034, 1089, 1090, 1092, 1653, 1688, 3113, 3114, 3135, 4031,
    12170, 12505, 12514, 12516, 12519, 12520, 12528, 12537, 12541, 12543, 12547, 12560, 12571,
    24418, 25408, 30036,
];
const SETUP_ORA: &[u32] = &[
    904, 942, 1005, 1017, 1031, 1045, 1950, 12154, 12162, 28000, 28001, 28009, 28040,
];
const TRANSIENT_DPI: &[u32] = &[1010, 1067, 1080];

/// The Oracle (`ORA-`) and ODPI-C (`DPI-`) codes in an error text, in order.
pub fn error_codes(message: &str) -> Vec<(&'static str, u32)> {
    let mut codes = Vec::new();
    for prefix in ["ORA-", "DPI-"] {
        let mut rest = message;
        while let Some(at) = rest.find(prefix) {
            let digits: String = rest[at + 4..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(code) = digits.parse() {
                codes.push((at + (message.len() - rest.len()), prefix, code));
            }
            rest = &rest[at + 4..];
        }
    }
    codes.sort_unstable();
    codes
        .into_iter()
        .map(|(_, prefix, code)| (prefix, code))
        .collect()
}

/// Classifies an Oracle error text as in the reference notes, and adds what an operator
/// should do about it. Unknown codes are transient: the batch is retried and then backed up,
/// which loses nothing.
pub fn classify_message(message: &str, context: &ErrorContext<'_>) -> SinkError {
    let codes = error_codes(message);
    let setup = codes.iter().any(|&(prefix, code)| match prefix {
        "DPI-" => code == 1047,
        _ => SETUP_ORA.contains(&code),
    });
    let transient = codes.iter().any(|&(prefix, code)| match prefix {
        "DPI-" => TRANSIENT_DPI.contains(&code),
        _ => TRANSIENT_ORA.contains(&code),
    });
    let kind = if setup && !transient {
        FailureKind::Setup
    } else {
        FailureKind::Transient
    };
    let hint = codes
        .iter()
        .find_map(|&(prefix, code)| hint(prefix, code, context));
    let text = match hint {
        Some(hint) => format!("{message} ({hint})"),
        None => message.to_owned(),
    };
    let text = context.password.redact(&text);
    match kind {
        FailureKind::Setup => SinkError::setup(text),
        FailureKind::Transient => SinkError::transient(text),
    }
}

/// What [`classify_message`] may mention in its advice.
#[derive(Clone, Copy, Debug)]
pub struct ErrorContext<'a> {
    /// The connect string.
    pub connect_string: &'a str,
    /// The user.
    pub user: &'a str,
    /// The table.
    pub table: &'a str,
    /// Scrubbed from every message.
    pub password: &'a Secret,
}

fn hint(prefix: &str, code: u32, context: &ErrorContext<'_>) -> Option<String> {
    let ErrorContext {
        connect_string,
        user,
        table,
        ..
    } = *context;
    let text = match (prefix, code) {
        ("DPI-", 1047) => "the Oracle Client library was not found: install Oracle Instant Client \
             (64-bit, Basic or Basic Light) and libaio, and put its folder on LD_LIBRARY_PATH \
             (PATH on Windows); or set SINK=sqlite to run on the embedded database"
            .to_owned(),
        ("ORA-", 1017) => format!(
            "invalid user name or password for {user}: check ORACLE_USER and ORACLE_PASSWORD"
        ),
        ("ORA-", 28000) => format!("the account {user} is locked: ask the DBA to unlock it"),
        ("ORA-", 28001) => format!("the password of {user} has expired: ask the DBA to reset it"),
        ("ORA-", 942) => format!(
            "table {table} does not exist or {user} cannot see it: create it with \
             sql/oracle/create_tag_values.sql or set ORACLE_TABLE"
        ),
        ("ORA-", 904) => format!(
            "table {table} lacks a column this writer uses: compare it with \
             sql/oracle/create_tag_values.sql"
        ),
        ("ORA-", 1031) | ("ORA-", 1950) => {
            format!("{user} may not insert into {table}: grant INSERT (and tablespace quota)")
        }
        ("ORA-", 1045) => format!("{user} lacks CREATE SESSION: grant it"),
        ("ORA-", 12154) => format!(
            "the connect identifier {connect_string:?} could not be resolved: check ORACLE_DSN, \
             or ORACLE_HOST, ORACLE_PORT and ORACLE_SERVICE_NAME"
        ),
        ("ORA-", 12541) => format!(
            "no listener at {connect_string}: is the database up, and are ORACLE_HOST and \
             ORACLE_PORT right?"
        ),
        ("ORA-", 12514) | ("ORA-", 12505) => format!(
            "the listener does not know the service in {connect_string}: check \
             ORACLE_SERVICE_NAME, or wait if the database is still starting"
        ),
        ("ORA-", 12170) => format!(
            "connecting to {connect_string} timed out: check the host name, the network and \
             firewalls on the way to the listener port"
        ),
        _ => return None,
    };
    Some(text)
}

/// Writes tag values into Oracle with array DML and batch errors, over an r2d2 pool.
///
/// Clones share the pool: give each writer thread its own clone.
#[derive(Clone)]
pub struct OracleSink {
    pool: Pool<OracleConnectionManager>,
    connector: Connector,
    config: OracleConfig,
    insert_sql: String,
}

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
        let manager = OracleConnectionManager::from_connector(connector.clone());
        let pool = Pool::builder()
            .min_idle(Some(config.pool_min))
            .max_size(config.pool_max)
            .connection_timeout(config.pool_timeout.max(Duration::from_millis(100)))
            // We report connection errors ourselves, classified and without secrets.
            .error_handler(Box::new(NopErrorHandler))
            .build_unchecked(manager);
        Ok(OracleSink {
            pool,
            connector,
            insert_sql: insert_sql(&config.table),
            config,
        })
    }

    fn context(&self) -> ErrorContext<'_> {
        ErrorContext {
            connect_string: &self.config.connect_string,
            user: &self.config.user,
            table: &self.config.table,
            password: &self.config.password,
        }
    }

    fn classify(&self, error: &dyn std::fmt::Display) -> SinkError {
        classify_message(&error.to_string(), &self.context())
    }

    /// A pooled connection; when the pool has none idle, a direct connection attempt first
    /// gives the precise error (DPI-1047, ORA-01017) at once instead of after the timeout.
    fn connection(&self) -> Result<PooledConnection<OracleConnectionManager>, SinkError> {
        if let Some(connection) = self.pool.try_get() {
            return Ok(connection);
        }
        if self.pool.state().connections == 0 {
            let direct = self.connector.connect().map_err(|e| self.classify(&e))?;
            let _ = direct.close();
        }
        self.pool
            .get_timeout(self.config.pool_timeout)
            .map_err(|e| self.classify(&e))
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
        for (index, oracle_type) in bind_types().iter().enumerate() {
            batch.set_type(index + 1, oracle_type)?;
        }
        for value in rows {
            batch.append_row(&[
                &value.timestamp(),
                &value.plc_code(),
                &value.tag_address(),
                &value.value(),
                &value.quality().as_str(),
            ])?;
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
        let mut stored = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let size = stored_rows_query_keys(chunk.len());
            let padded: Vec<(&str, &str, chrono::NaiveDateTime)> = (0..size)
                .map(|i| {
                    let key = chunk[i.min(chunk.len() - 1)];
                    (key.plc_code(), key.tag_address(), key.timestamp())
                })
                .collect();
            // The columns' own types, as for the insert: a TIMESTAMP(9) bind against the
            // TIMESTAMP(6) key column must not cost the primary-key index.
            let [timestamp_type, plc_type, address_type, ..] = bind_types();
            type Typed<'a, T> = (&'a T, &'a OracleType);
            let typed: Vec<(Typed<&str>, Typed<&str>, Typed<chrono::NaiveDateTime>)> = padded
                .iter()
                .map(|(plc, address, timestamp)| {
                    (
                        (plc, &plc_type),
                        (address, &address_type),
                        (timestamp, &timestamp_type),
                    )
                })
                .collect();
            let mut binds: Vec<&dyn ToSql> = Vec::with_capacity(typed.len() * 3);
            for (plc, address, timestamp) in &typed {
                binds.extend([plc as &dyn ToSql, address, timestamp]);
            }
            let rows = connection
                .query(&stored_rows_sql(&self.config.table, size), &binds)
                .map_err(|e| self.classify(&e))?;
            for row in rows {
                let row = row.map_err(|e| self.classify(&e))?;
                let (timestamp, plc, address, value, quality): (
                    chrono::NaiveDateTime,
                    String,
                    String,
                    Option<f64>,
                    String,
                ) = row.get_as().map_err(|e| self.classify(&e))?;
                stored.push(stored_value(timestamp, plc, address, value, &quality)?);
            }
        }
        Ok(stored)
    }

    /// Every row of the table (for tests and the connection check).
    pub fn fetch_all(&self) -> Result<Vec<TagValue>, SinkError> {
        let connection = self.connection()?;
        let sql = format!(
            "SELECT timestamp, plc_code, tag_address, tag_value, quality FROM {}",
            self.config.table
        );
        let rows = connection.query(&sql, &[]).map_err(|e| self.classify(&e))?;
        let mut values = Vec::new();
        for row in rows {
            let row = row.map_err(|e| self.classify(&e))?;
            let (timestamp, plc, address, value, quality): (
                chrono::NaiveDateTime,
                String,
                String,
                Option<f64>,
                String,
            ) = row.get_as().map_err(|e| self.classify(&e))?;
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

    /// Deletes the row with this primary key; returns whether it existed.
    pub fn delete(&self, value: &TagValue) -> Result<bool, SinkError> {
        let connection = self.connection()?;
        let sql = format!(
            "DELETE FROM {} WHERE plc_code = :1 AND tag_address = :2 AND timestamp = :3",
            self.config.table
        );
        let statement = connection
            .execute(
                &sql,
                &[&value.plc_code(), &value.tag_address(), &value.timestamp()],
            )
            .map_err(|e| self.classify(&e))?;
        let deleted = statement.row_count().map_err(|e| self.classify(&e))? > 0;
        connection.commit().map_err(|e| self.classify(&e))?;
        Ok(deleted)
    }

    /// Reads one stored row back by primary key.
    pub fn fetch(&self, key: &TagValue) -> Result<Option<TagValue>, SinkError> {
        let connection = self.connection()?;
        let sql = format!(
            "SELECT tag_value, quality FROM {} \
             WHERE plc_code = :1 AND tag_address = :2 AND timestamp = :3",
            self.config.table
        );
        let row = connection.query_row_as::<(Option<f64>, String)>(
            &sql,
            &[&key.plc_code(), &key.tag_address(), &key.timestamp()],
        );
        let (value, quality) = match row {
            Ok(row) => row,
            Err(error) if error.kind() == ErrorKind::NoDataFound => return Ok(None),
            Err(error) => return Err(self.classify(&error)),
        };
        stored_value(
            key.timestamp(),
            key.plc_code_arc().clone(),
            key.tag_address_arc().clone(),
            value,
            &quality,
        )
        .map(Some)
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
                Err(error) => {
                    let _ = connection.rollback();
                    return Err(self.classify(&error));
                }
            }
        }
        // Read back the rows that hit ORA-00001 before committing, on the same connection.
        let report =
            report_from_batch_errors(batch, &errors, |keys| self.stored_rows(&connection, keys))
                .inspect_err(|_| {
                    let _ = connection.rollback();
                })?;
        // Good rows of a batch with errors are still uncommitted: commit them all at once.
        connection.commit().map_err(|e| self.classify(&e))?;
        Ok(report)
    }

    fn probe(&mut self) -> Result<(), SinkError> {
        let connection = self.connection()?;
        connection.ping().map_err(|e| self.classify(&e))?;
        let sql = format!("SELECT 1 FROM {} WHERE 1 = 0", self.config.table);
        connection
            .query(&sql, &[])
            .map(drop)
            .map_err(|e| self.classify(&e))
    }

    fn kind(&self) -> &'static str {
        "Oracle"
    }

    fn describe(&self) -> String {
        format!(
            "Oracle {}@{} (table {}, pool {}..{})",
            self.config.user,
            self.config.connect_string,
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
    fn fetch(&mut self, key: &TagValue) -> Result<Option<TagValue>, SinkError> {
        OracleSink::fetch(self, key)
    }
    fn delete(&mut self, key: &TagValue) -> Result<bool, SinkError> {
        OracleSink::delete(self, key)
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
    use tag_model::Quality;

    fn context(password: &Secret) -> ErrorContext<'_> {
        ErrorContext {
            connect_string: "db.plant:1521/XEPDB1",
            user: "scada_user",
            table: "TAG_VALUES",
            password,
        }
    }

    #[test]
    fn insert_sql_lists_the_columns_and_binds() {
        assert_eq!(
            insert_sql("SCADA.TAG_VALUES"),
            "INSERT INTO SCADA.TAG_VALUES (timestamp, plc_code, tag_address, tag_value, quality) \
             VALUES (:1, :2, :3, :4, :5)"
        );
    }

    #[test]
    fn bind_types_match_the_columns() {
        assert_eq!(
            bind_types(),
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
        assert!(error.is_transient());
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
        assert_eq!(
            stored_rows_sql("SCADA.TAG_VALUES", 2),
            "SELECT timestamp, plc_code, tag_address, tag_value, quality FROM SCADA.TAG_VALUES \
             WHERE (plc_code, tag_address, timestamp) IN ((:1, :2, :3), (:4, :5, :6))"
        );
        assert!(stored_rows_sql("T", 1_000).ends_with("(:2998, :2999, :3000))"));
    }

    #[test]
    fn finds_codes_in_messages() {
        assert_eq!(
            error_codes("DPI Error: DPI-1080: connection was closed by ORA-03113"),
            [("DPI-", 1080), ("ORA-", 3113)]
        );
        assert_eq!(error_codes("ORA-"), []);
        assert_eq!(error_codes("nothing here"), []);
    }

    #[test]
    fn classifies_as_the_reference_notes_say() {
        let password = Secret::new("pw");
        let transient = [
            "DPI Error: DPI-1080: connection was closed by ORA-3113",
            "DPI Error: DPI-1010: not connected",
            "DPI Error: DPI-1067: call timeout of 5000 ms exceeded with ORA-3156",
            "OCI Error: ORA-12170: TNS:Connect timeout occurred",
            "OCI Error: ORA-12541: TNS:no listener",
            "OCI Error: ORA-12514: TNS:listener does not currently know of service",
            "OCI Error: ORA-01033: ORACLE initialization or shutdown in progress",
            "OCI Error: ORA-01034: ORACLE not available",
            "OCI Error: ORA-00054: resource busy",
            "OCI Error: ORA-04031: unable to allocate shared memory",
            "OCI Error: ORA-01653: unable to extend table",
            "OCI Error: ORA-25408: can not safely replay call",
            "OCI Error: ORA-24418: Cannot open further sessions",
            "timed out waiting for connection: OCI Error: ORA-12541: TNS:no listener",
            "something nobody has seen before",
        ];
        for message in transient {
            let error = classify_message(message, &context(&password));
            assert_eq!(error.kind(), FailureKind::Transient, "{message}");
            assert!(error.message().starts_with(message));
        }
        let setup = [
            "DPI Error: DPI-1047: Cannot locate a 64-bit Oracle Client library",
            "OCI Error: ORA-00942: table or view does not exist",
            "OCI Error: ORA-00904: \"QUALITY\": invalid identifier",
            "OCI Error: ORA-01031: insufficient privileges",
            "OCI Error: ORA-01017: invalid username/password; logon denied",
            "OCI Error: ORA-28000: the account is locked",
            "OCI Error: ORA-12154: TNS:could not resolve the connect identifier specified",
            "timed out waiting for connection: DPI Error: DPI-1047: Cannot locate",
        ];
        for message in setup {
            let error = classify_message(message, &context(&password));
            assert_eq!(error.kind(), FailureKind::Setup, "{message}");
        }
    }

    #[test]
    fn setup_errors_say_what_to_do() {
        let password = Secret::new("pw");
        let cases = [
            (
                "DPI Error: DPI-1047: Cannot locate",
                "install Oracle Instant Client",
            ),
            ("DPI Error: DPI-1047: Cannot locate", "LD_LIBRARY_PATH"),
            ("DPI Error: DPI-1047: Cannot locate", "SINK=sqlite"),
            (
                "ORA-01017: invalid username/password",
                "check ORACLE_USER and ORACLE_PASSWORD",
            ),
            (
                "ORA-00942: table or view does not exist",
                "sql/oracle/create_tag_values.sql",
            ),
            (
                "ORA-12541: TNS:no listener",
                "no listener at db.plant:1521/XEPDB1",
            ),
            (
                "ORA-12514: TNS:listener does not know",
                "check ORACLE_SERVICE_NAME",
            ),
        ];
        for (message, advice) in cases {
            let error = classify_message(message, &context(&password));
            assert!(error.message().contains(advice), "{error} lacks {advice}");
        }
    }

    #[test]
    fn messages_never_carry_the_password() {
        let password = Secret::new("Tr0ub4dor&3");
        let error = classify_message(
            "ORA-01017: invalid username/password; logon denied for Tr0ub4dor&3",
            &context(&password),
        );
        assert!(!error.message().contains("Tr0ub4dor&3"), "{error}");
        assert!(error.message().contains("***"));
    }

    #[test]
    fn pool_settings_are_checked_and_description_has_no_password() {
        let config = OracleConfig {
            connect_string: OracleConfig::easy_connect("db.plant", 1521, "XEPDB1"),
            user: "scada_user".into(),
            password: Secret::new("hunter2"),
            table: "TAG_VALUES".into(),
            pool_min: 2,
            pool_max: 5,
            pool_timeout: Duration::from_secs(10),
        };
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
