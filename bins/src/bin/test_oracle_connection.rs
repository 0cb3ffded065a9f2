//! The quickstart's Step 4 on the configured sink: connect, show the server version, insert a
//! TEST/D999/12345.0 row, read it back, delete it. Exit 0 on success, 1 with a diagnosis.

use std::process::ExitCode;

use buffer_oracle_writer::{configure, EXIT_FAILURE};
use oracle_batch::{OracleSink, PostgresSink, Sink, SinkCheck, SinkError, SqliteSink};
use pipeline_service::SinkConfig;
use tag_model::{format_timestamp, Quality, TagValue};

fn main() -> ExitCode {
    let config = match configure() {
        Ok(config) => config,
        Err(code) => return code,
    };
    let kind = config.sink.kind();
    let result = match &config.sink {
        SinkConfig::Oracle(oracle) => {
            log::info!("Connecting to Oracle: {}", oracle.connect_string);
            OracleSink::new(oracle.clone()).and_then(|mut sink| check(&mut sink))
        }
        SinkConfig::Postgres(postgres) => {
            PostgresSink::new(postgres.clone()).and_then(|mut sink| {
                log::info!("Connecting to {}", sink.describe());
                check(&mut sink)
            })
        }
        SinkConfig::Sqlite { path, table } => {
            log::info!("Connecting to SQLite: {}", path.display());
            SqliteSink::open(path, table).and_then(|mut sink| check(&mut sink))
        }
    };
    match result {
        Ok(()) => {
            log::info!("{kind} connection test completed successfully");
            ExitCode::SUCCESS
        }
        Err(error) => {
            log::error!("{kind} connection test failed: {error}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn check(sink: &mut dyn SinkCheck) -> Result<(), SinkError> {
    sink.probe()?;
    log::info!("Connection successful");
    log::info!("{} version: {}", sink.kind(), sink.server_version()?);
    log::info!("Testing insert...");
    let now = chrono::Utc::now().naive_utc();
    let row = TagValue::new(now, "TEST", "D999", Some(12345.0), Quality::Good)
        .map_err(|e| SinkError::setup(e.to_string()))?;
    let report = sink.write_batch(std::slice::from_ref(&row))?;
    if let Some(rejected) = report.rejected.first() {
        return Err(SinkError::setup(format!(
            "the test row was rejected: {}",
            rejected.reason
        )));
    }
    log::info!(
        "Insert successful: {} row(s) affected",
        report.written + report.duplicates
    );
    log::info!("Testing query...");
    let stored = sink
        .fetch(&row)?
        .ok_or_else(|| SinkError::setup("the test row was written but cannot be read back"))?;
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
    log::info!("Cleaning up test data...");
    sink.delete(&row)?;
    Ok(())
}
