//! The PostgreSQL sink: one `INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING`
//! per batch over an r2d2 pool; per-row savepoints only for a batch that holds a bad row.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use postgres::error::SqlState;
use postgres::{Client, NoTls};
use r2d2::{NopErrorHandler, Pool, PooledConnection};
use r2d2_postgres::PostgresConnectionManager;
use tag_model::TagValue;

use crate::conflict::settle_repeats;
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

/// The batch INSERT: five arrays, one statement, duplicates skipped by the primary key.
pub fn postgres_insert_sql(table: &str) -> String {
    format!(
        "INSERT INTO {table} (timestamp, plc_code, tag_address, tag_value, quality) \
         SELECT * FROM unnest($1::timestamp[], $2::varchar[], $3::varchar[], $4::float8[], $5::varchar[]) \
         ON CONFLICT (plc_code, tag_address, timestamp) DO NOTHING"
    )
}

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
        Ok(PostgresSink {
            pool,
            connection_config,
            password,
            insert_sql: postgres_insert_sql(&table),
            stored_sql: postgres_stored_rows_sql(&table),
            row_sql: format!(
                "INSERT INTO {table} (timestamp, plc_code, tag_address, tag_value, quality) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (plc_code, tag_address, timestamp) DO NOTHING"
            ),
            table,
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
    /// tests and first installs; production schemas are usually made by a DBA).
    pub fn create_table(&self) -> Result<(), SinkError> {
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
        let mut client = self.connection()?;
        let rows = client
            .query(
                &format!(
                    "SELECT timestamp, plc_code, tag_address, tag_value, quality FROM {}",
                    self.table
                ),
                &[],
            )
            .map_err(|e| self.classify(&e))?;
        rows.iter().map(row_to_value).collect()
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
        for (index, value) in batch.iter().enumerate() {
            let mut savepoint = transaction.savepoint("row").map_err(sql_error)?;
            let result = savepoint.execute(
                &statement,
                &[
                    &value.timestamp(),
                    &value.plc_code(),
                    &value.tag_address(),
                    &value.value(),
                    &value.quality().as_str(),
                ],
            );
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

    /// The stored rows with these keys, in one query (the keys as three arrays).
    fn stored_rows(
        &self,
        client: &mut impl postgres::GenericClient,
        keys: &[&TagValue],
    ) -> Result<Vec<TagValue>, SinkError> {
        let timestamps: Vec<NaiveDateTime> = keys.iter().map(|k| k.timestamp()).collect();
        let plc_codes: Vec<&str> = keys.iter().map(|k| k.plc_code()).collect();
        let addresses: Vec<&str> = keys.iter().map(|k| k.tag_address()).collect();
        let rows = client
            .query(&self.stored_sql, &[&timestamps, &plc_codes, &addresses])
            .map_err(|e| self.classify(&e))?;
        rows.iter().map(row_to_value).collect()
    }
}

/// The read-back of stored rows by key: three arrays joined on the primary key.
fn postgres_stored_rows_sql(table: &str) -> String {
    format!(
        "SELECT t.timestamp, t.plc_code, t.tag_address, t.tag_value, t.quality \
         FROM unnest($1::timestamp[], $2::varchar[], $3::varchar[]) AS k (timestamp, plc_code, tag_address) \
         JOIN {table} AS t ON t.plc_code = k.plc_code AND t.tag_address = k.tag_address \
         AND t.timestamp = k.timestamp"
    )
}

fn row_to_value(row: &postgres::Row) -> Result<TagValue, SinkError> {
    stored_value(
        row.get::<_, NaiveDateTime>(0),
        row.get::<_, String>(1),
        row.get::<_, String>(2),
        row.get::<_, Option<f64>>(3),
        row.get::<_, &str>(4),
    )
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
        let timestamps: Vec<NaiveDateTime> = batch.iter().map(TagValue::timestamp).collect();
        let plc_codes: Vec<&str> = batch.iter().map(TagValue::plc_code).collect();
        let addresses: Vec<&str> = batch.iter().map(TagValue::tag_address).collect();
        let values: Vec<Option<f64>> = batch.iter().map(TagValue::value).collect();
        let qualities: Vec<&str> = batch.iter().map(|v| v.quality().as_str()).collect();
        let result = client.execute(
            &self.insert_sql,
            &[&timestamps, &plc_codes, &addresses, &values, &qualities],
        );
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
        let inserted = transaction
            .execute(
                &self.row_sql,
                &[
                    &row.timestamp(),
                    &row.plc_code(),
                    &row.tag_address(),
                    &row.value(),
                    &row.quality().as_str(),
                ],
            )
            .map_err(|e| self.classify(&e))?;
        let stored = transaction
            .query_opt(
                &format!(
                    "SELECT timestamp, plc_code, tag_address, tag_value, quality FROM {} \
                     WHERE plc_code = $1 AND tag_address = $2 AND timestamp = $3",
                    self.table
                ),
                &[&row.plc_code(), &row.tag_address(), &row.timestamp()],
            )
            .map_err(|e| self.classify(&e))?;
        let stored = stored.as_ref().map(row_to_value).transpose()?;
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
        }
    }

    #[test]
    fn the_insert_is_one_statement_over_arrays() {
        let sql = postgres_insert_sql("SCADA.TAG_VALUES");
        assert!(sql.starts_with("INSERT INTO SCADA.TAG_VALUES (timestamp, plc_code"));
        assert!(sql.contains(
            "unnest($1::timestamp[], $2::varchar[], $3::varchar[], $4::float8[], $5::varchar[])"
        ));
        assert!(sql.ends_with("ON CONFLICT (plc_code, tag_address, timestamp) DO NOTHING"));
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
