//! The quickstart's Step 4 on the configured sink: load the client library (Oracle), log in,
//! probe the table as the writer does, show the server version, insert a TEST/D999/12345.0
//! row and read it back in a transaction that is rolled back (so nothing stays behind and no
//! DELETE privilege is needed), then list what was checked.
//!
//! Exit codes: 0 all good; 2 a bad setting (named); 3 client library missing; 4
//! configuration or credentials wrong (the database refused something); 5 database
//! unreachable.

use std::process::ExitCode;

use buffer_oracle_writer::configure;
use oracle_batch::{
    FailureCause, FailureKind, OracleSink, PostgresSink, Sink, SinkCheck, SinkError, SqliteSink,
};
use pipeline_service::SinkConfig;
use tag_model::{format_timestamp, Quality, TagValue};

/// The client library (Oracle Instant Client) is not installed or not usable.
const EXIT_CLIENT_MISSING: u8 = 3;
/// The database is there but refused the login or the table: fix the settings or grants.
const EXIT_CONFIGURATION: u8 = 4;
/// No database answered: network, listener, or the database itself is down.
const EXIT_UNREACHABLE: u8 = 5;

/// What was checked, in order, for the summary at the end.
#[derive(Default)]
struct Checks(Vec<String>);

impl Checks {
    fn passed(&mut self, what: impl Into<String>) {
        self.0.push(what.into());
    }
}

fn main() -> ExitCode {
    let config = match configure() {
        Ok(config) => config,
        Err(code) => return code,
    };
    let kind = config.sink.kind();
    let zone = config.timestamp_zone;
    let mut checks = Checks::default();
    let result = match &config.sink {
        SinkConfig::Oracle(oracle) => {
            let target = oracle.target();
            log::info!("Connecting to Oracle: {target} ({})", oracle.timeouts());
            OracleSink::new(oracle.clone()).and_then(|mut sink| {
                let client = sink.client_version()?;
                log::info!("Oracle Client library: version {client}");
                checks.passed(format!("Oracle Client library loaded (version {client})"));
                let opened = format!("login: {}@{target}", oracle.user);
                let probe = sink.clone();
                check(
                    &mut sink,
                    &mut checks,
                    opened,
                    ORACLE_PROBE,
                    || probe.check_table(),
                    zone,
                )
            })
        }
        SinkConfig::Postgres(postgres) => {
            PostgresSink::new(postgres.clone()).and_then(|mut sink| {
                log::info!("Connecting to {}", sink.describe());
                let opened = format!("login: {}", sink.describe());
                let probe = sink.clone();
                check(
                    &mut sink,
                    &mut checks,
                    opened,
                    "the table exists",
                    || probe.check_table(),
                    zone,
                )
            })
        }
        SinkConfig::Sqlite {
            path,
            table,
            mapping,
        } => {
            log::info!("Connecting to SQLite: {}", path.display());
            SqliteSink::open_with(path, table, mapping.clone()).and_then(|mut sink| {
                let opened = format!("database file opened: {}", path.display());
                check(
                    &mut sink,
                    &mut checks,
                    opened,
                    "the table exists and takes writes",
                    || Ok(()), // checked when opened
                    zone,
                )
            })
        }
    };
    let code = match &result {
        Ok(()) => {
            log::info!("{kind} connection test completed successfully");
            ExitCode::SUCCESS
        }
        Err(error) => {
            let (verdict, code) = verdict(error);
            log::error!("{kind} connection test failed: {verdict} (exit code {code}): {error}");
            ExitCode::from(code)
        }
    };
    log::info!("Checked:");
    if checks.0.is_empty() {
        log::info!("  nothing passed");
    }
    for check in &checks.0 {
        log::info!("  OK  {check}");
    }
    if let Err(error) = &result {
        log::info!("  FAILED  {}", verdict(error).0);
    }
    code
}

/// The words and exit code for a failure.
fn verdict(error: &SinkError) -> (&'static str, u8) {
    match (error.cause(), error.kind()) {
        (FailureCause::ClientLibrary, _) => ("client library missing", EXIT_CLIENT_MISSING),
        (_, FailureKind::Setup) => ("configuration or credentials wrong", EXIT_CONFIGURATION),
        (_, FailureKind::Transient) => ("database unreachable", EXIT_UNREACHABLE),
    }
}

/// What the Oracle probe proves.
const ORACLE_PROBE: &str = "the table takes the writer's INSERT (privilege and columns: an \
                            INSERT of no rows, rolled back)";

fn check(
    sink: &mut dyn SinkCheck,
    checks: &mut Checks,
    opened: String,
    probed: &str,
    check_columns: impl FnOnce() -> Result<(), SinkError>,
    zone: tag_model::TimestampZone,
) -> Result<(), SinkError> {
    sink.probe()?;
    log::info!("Connection successful");
    checks.passed(opened);
    checks.passed(probed);
    check_columns()?;
    checks.passed("the table has every column the mapping (TABLE_COLUMNS) fills");
    let version = sink.server_version()?;
    log::info!("{} version: {version}", sink.kind());
    checks.passed(format!("server version: {version}"));
    log::info!("Testing insert...");
    let now = zone.now();
    let row = TagValue::new(now, "TEST", "D999", Some(12345.0), Quality::Good)
        .map_err(|e| SinkError::setup(e.to_string()))?;
    let result = sink.check_row(&row)?;
    log::info!("Insert successful: {} row(s) affected", result.inserted);
    log::info!("Testing query...");
    let stored = result
        .stored
        .ok_or_else(|| SinkError::setup("the test row was inserted but cannot be read back"))?;
    log::info!(
        "Query result: timestamp={}, plc_code={}, tag_address={}, tag_value={:?}, quality={}",
        format_timestamp(stored.timestamp())
            .as_str()
            .replace('T', " "),
        stored.plc_code(),
        stored.tag_address(),
        stored.value().unwrap_or(f64::NAN),
        stored.quality()
    );
    if stored != row {
        return Err(SinkError::setup(format!(
            "the row read back differs from the row written: {stored:?} vs {row:?}"
        )));
    }
    log::info!("Cleaning up test data... (rolled back: nothing was stored)");
    checks.passed(
        "insert and read-back of a TEST/D999 row, in a transaction rolled back: nothing left in \
         the table, no DELETE privilege needed",
    );
    Ok(())
}
