//! The polling engine alone, forwarding its values to a running start_buffer_writer over
//! `POST /api/buffer/ingest` (the spec's `start_polling_engine.py`, in its own terminal).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use buffer_oracle_writer::{configure_logging_to, EXIT_CONFIG, EXIT_FAILURE};
use clap::Parser;
use csv_backup::BackupWriter;
use ingest_forwarder::{Forwarder, ForwarderConfig, DEFAULT_QUEUE_MAX};
use pipeline_service::{log_file_line, FLUSH_GRACE};
use polling_engine::{PollingConfig, PollingEngine};

/// The engine's own log file when LOG_FILE is unset: two processes never rotate one file.
const DEFAULT_LOG_FILE: &str = "./logs/polling_engine.log";

/// Poll the PLCs and forward the values to a running start_buffer_writer.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// The polling configuration (TOML). Default: the bundled example, the quickstart's three
    /// groups on simulated PLCs (config/polling.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The buffer writer's address. Default: http:// and API_BIND (127.0.0.1:8000).
    #[arg(long, value_name = "URL")]
    writer: Option<String>,
    /// The most values held locally while the writer cannot take them; beyond it the oldest
    /// are discarded and counted as overflow.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_QUEUE_MAX)]
    queue_max: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match configure_logging_to(Some(Path::new(DEFAULT_LOG_FILE))) {
        Ok(config) => config,
        Err(code) => return code,
    };
    log::info!("Starting Polling Engine...");
    log::info!("{}", log_file_line(config.log_file.as_ref()));
    let url = match ingest_url(args.writer.as_deref(), config.api_bind) {
        Ok(url) => url,
        Err(error) => {
            log::error!("Configuration error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
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
    let forwarder = match Forwarder::start(ForwarderConfig {
        queue_max: args.queue_max,
        ..ForwarderConfig::new(url.clone())
    }) {
        Ok(forwarder) => forwarder,
        Err(error) => {
            log::error!("Configuration error: --queue-max: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    log::info!(
        "Forwarding to {url} (local queue max {} values while the writer cannot take them)",
        args.queue_max
    );
    let pusher = forwarder.pusher();
    // Poll timestamps on the clock TIMESTAMP_ZONE names, as in start_all.
    let options = polling_engine::EngineOptions {
        timestamp_zone: config.timestamp_zone,
        ..polling_engine::EngineOptions::default()
    };
    let engine = PollingEngine::with_options(
        &polling,
        Arc::new(move |values: Vec<tag_model::TagValue>| {
            if let Err(late) = pusher.push(values) {
                log::warn!(
                    "{} polled values arrived after shutdown began and are discarded",
                    late.len()
                );
            }
        }),
        options,
    );
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    if let Err(error) = ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    }) {
        log::error!("Cannot install the Ctrl+C handler: {error}");
    }
    if let Err(error) = engine.start() {
        log::error!("Cannot start the polling threads: {error}");
        forwarder.shutdown(FLUSH_GRACE);
        return ExitCode::from(EXIT_FAILURE);
    }
    log::info!(
        "Polling engine running with {} groups. Press Ctrl+C to stop.",
        polling.groups.len()
    );
    let _ = stop_rx.recv();

    log::info!("Stopping polling engine...");
    let outcome = engine.stop_within(polling_engine::STOP_GRACE);
    log::info!("Stopped {} polling groups", outcome.stopped);
    if !outcome.abandoned.is_empty() {
        log::warn!(
            "Abandoned {} polling group(s) stuck in a PLC read: {}",
            outcome.abandoned.len(),
            outcome.abandoned.join(", ")
        );
    }
    log::info!("Forwarding the values still held (at most {FLUSH_GRACE:?})...");
    let outcome = forwarder.shutdown(FLUSH_GRACE);
    let counts = outcome.counts;
    let mut backed_up = 0;
    let mut lost = 0;
    if !outcome.unsent.is_empty() {
        let now = chrono::Utc::now().naive_utc();
        let saved = BackupWriter::new(&config.backup_dir)
            .and_then(|backup| backup.write_batch(&outcome.unsent, now));
        match saved {
            Ok(path) => {
                backed_up = outcome.unsent.len();
                log::warn!(
                    "Saved {backed_up} values not forwarded to the writer to {} (replay \
                     them with replay_backup)",
                    path.display()
                );
            }
            Err(error) => {
                lost = outcome.unsent.len();
                log::error!("{lost} values not forwarded and not saved to backup: {error}");
            }
        }
    }
    log::info!(
        "Values polled: {}, forwarded: {}, refused by the writer: {}, local queue overflow: {}, \
         saved to backup: {backed_up}, lost: {lost}",
        counts.pushed,
        counts.forwarded,
        counts.refused,
        counts.overflow
    );
    if !counts.balanced() {
        log::error!("Accounting does not balance at shutdown: {counts:?}");
    }
    log::info!("Shutdown complete");
    if lost > 0 || !counts.balanced() {
        return ExitCode::from(EXIT_FAILURE);
    }
    ExitCode::SUCCESS
}

/// The ingest endpoint of `writer` (a base address, or the endpoint itself), or of API_BIND.
fn ingest_url(writer: Option<&str>, api_bind: SocketAddr) -> Result<String, String> {
    const PATH: &str = "/api/buffer/ingest";
    let base = match writer {
        Some(writer) => {
            let writer = writer.trim().trim_end_matches('/');
            let rest = writer.strip_prefix("http://").ok_or_else(|| {
                format!(
                    "--writer {writer:?}: must be an http:// address such as \
                     http://127.0.0.1:8000"
                )
            })?;
            if rest.is_empty() || rest.starts_with('/') {
                return Err(format!("--writer {writer:?}: the host is missing"));
            }
            writer.strip_suffix(PATH).unwrap_or(writer).to_owned()
        }
        None => {
            let mut address = api_bind;
            if address.ip().is_unspecified() {
                address.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
            }
            if address.port() == 0 {
                address.set_port(8000);
            }
            format!("http://{address}")
        }
    };
    Ok(format!("{base}{PATH}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_address_becomes_its_ingest_endpoint() {
        let bind: SocketAddr = "0.0.0.0:8123".parse().unwrap();
        assert_eq!(
            ingest_url(None, bind).unwrap(),
            "http://127.0.0.1:8123/api/buffer/ingest"
        );
        for given in [
            "http://plant-pc:9000",
            "http://plant-pc:9000/",
            "http://plant-pc:9000/api/buffer/ingest",
        ] {
            assert_eq!(
                ingest_url(Some(given), bind).unwrap(),
                "http://plant-pc:9000/api/buffer/ingest"
            );
        }
        for bad in ["plant-pc:9000", "https://plant-pc", "http://", "ftp://x"] {
            let error = ingest_url(Some(bad), bind).unwrap_err();
            assert!(error.starts_with("--writer "), "{error}");
        }
    }
}
