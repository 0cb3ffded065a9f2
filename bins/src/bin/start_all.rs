//! The whole system: polling engine, buffer, writer and HTTP API. Without `--config`, the
//! bundled example polls three groups on simulated PLCs.

use std::path::PathBuf;
use std::process::ExitCode;

use buffer_oracle_writer::{
    configure, log_configuration, start_service, EXIT_CONFIG, EXIT_FAILURE,
};
use clap::Parser;
use polling_engine::PollingConfig;

/// Start polling, buffering and writing.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// The polling configuration (TOML). Default: the bundled example, the quickstart's three
    /// groups on simulated PLCs (config/polling.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match configure() {
        Ok(config) => config,
        Err(code) => return code,
    };
    let kind = config.sink.kind();
    log::info!("Starting SCADA System...");
    log_configuration(&config);

    log::info!("Step 1/3: Initializing polling engine...");
    let polling = match &args.config {
        Some(path) => PollingConfig::from_file(path),
        None => PollingConfig::example(),
    };
    let polling = match polling {
        Ok(polling) => polling,
        Err(error) => {
            log::error!("Configuration error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    log::info!(
        "Polling engine initialized with {} groups",
        polling.groups.len()
    );

    log::info!("Step 2/3: Starting buffer consumer and {kind} writer...");
    let mut service = match start_service(config) {
        Ok(service) => service,
        Err(code) => return code,
    };
    log::info!("Buffer consumer started");
    log::info!("{kind} writer started");

    log::info!("Step 3/3: Starting polling groups...");
    let engine = service.polling_engine(&polling);
    if let Err(error) = engine.start() {
        log::error!("Cannot start the polling threads: {error}");
        service.shutdown();
        return ExitCode::from(EXIT_FAILURE);
    }
    service.attach_engine(engine);
    let address = service.http_address();
    log::info!("All systems running. Monitoring available at:");
    log::info!("  - Polling status: http://{address}/api/polling/status");
    log::info!("  - Buffer metrics: http://{address}/api/buffer/metrics");
    log::info!("Press Ctrl+C to stop all systems.");
    service.wait();
    let summary = service.shutdown();
    if summary.writer.stats.unsaved > 0 {
        return ExitCode::from(EXIT_FAILURE);
    }
    ExitCode::SUCCESS
}
