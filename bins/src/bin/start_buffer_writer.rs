//! Buffer, writer and HTTP API: values arrive over `POST /api/buffer/ingest`, or as NDJSON on
//! standard input with `--stdin`.

use std::process::ExitCode;

use buffer_oracle_writer::{configure, log_configuration, start_service, EXIT_FAILURE};
use clap::Parser;
use pipeline_service::StopReason;

/// Run the ring buffer and the database writer, with the HTTP API.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Also read tag values as NDJSON from standard input (one JSON object per line); the
    /// service flushes and exits at the end of input.
    #[arg(long)]
    stdin: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match configure() {
        Ok(config) => config,
        Err(code) => return code,
    };
    let kind = config.sink.kind();
    log::info!("Starting Buffer and {kind} Writer...");
    log_configuration(&config);
    let service = match start_service(config) {
        Ok(service) => service,
        Err(code) => return code,
    };
    if args.stdin {
        if let Err(error) = service.read_stdin() {
            log::error!("{error}");
            service.shutdown();
            return ExitCode::from(EXIT_FAILURE);
        }
        log::info!("Reading NDJSON tag values from standard input");
    }
    let address = service.http_address();
    log::info!("Buffer and {kind} Writer running. Press Ctrl+C to stop.");
    log::info!("Monitoring: http://{address}/api/buffer/metrics");
    if service.wait() == StopReason::EndOfInput {
        log::info!("Standard input closed: flushing and stopping");
    }
    let summary = service.shutdown();
    if summary.writer.stats.unsaved > 0 {
        return ExitCode::from(EXIT_FAILURE);
    }
    ExitCode::SUCCESS
}
