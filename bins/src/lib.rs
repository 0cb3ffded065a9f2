//! What the binaries share: loading the configuration and starting the log.

use std::path::Path;
use std::process::ExitCode;

use pipeline_service::{logging, Config, Service, SinkConfig};

/// Exit code for a bad setting (environment variable, `.env` or configuration file).
pub const EXIT_CONFIG: u8 = 2;
/// Exit code for a failure at start-up or at run time.
pub const EXIT_FAILURE: u8 = 1;

/// Reads the environment and `.env`, then starts logging. A bad value prints one line naming
/// the variable and returns exit code 2.
pub fn configure() -> Result<Config, ExitCode> {
    configure_logging_to(None)
}

/// [`configure`], with `default_log` as the log file when LOG_FILE is unset (instead of
/// `./logs/buffer_writer.log`, which belongs to the service). A LOG_FILE that cannot be
/// opened stops start-up (exit 2); the default file only gives a warning: logging goes on to
/// stderr.
pub fn configure_logging_to(default_log: Option<&Path>) -> Result<Config, ExitCode> {
    let mut config = Config::load().map_err(|error| {
        eprintln!("[ERROR] Configuration error: {error}");
        ExitCode::from(EXIT_CONFIG)
    })?;
    if let (true, Some(path), Some(log)) = (
        config.log_file_chosen_by_default,
        default_log,
        config.log_file.as_mut(),
    ) {
        log.path = path.to_owned();
    }
    let refuse = |error: String| {
        eprintln!("[ERROR] Configuration error: {error}");
        ExitCode::from(EXIT_CONFIG)
    };
    match logging::init(config.log_file.as_ref()) {
        Ok(()) => {}
        Err(error) if config.log_file_chosen_by_default && error.starts_with("LOG_FILE=") => {
            logging::init(None).map_err(refuse)?;
            log::warn!(
                "Cannot write the default log file ({error}); logging to stderr only. Set \
                 LOG_FILE to a writable file, or LOG_FILE= to log to stderr without this warning"
            );
            config.log_file = None;
        }
        Err(error) => return Err(refuse(error)),
    }
    Ok(config)
}

/// Logs the configuration summary, without the password, and which sink was chosen and why.
pub fn log_configuration(config: &Config) {
    log::info!("Loading configuration from environment variables");
    if config.sink_chosen_by_default {
        match config.sink {
            SinkConfig::Oracle(_) => {
                log::info!("Sink: Oracle (SINK not set; ORACLE_HOST or ORACLE_DSN is)")
            }
            SinkConfig::Postgres(_) => log::info!("Sink: PostgreSQL"),
            SinkConfig::Sqlite { .. } => log::info!(
                "Sink: embedded SQLite (SINK not set and no ORACLE_HOST or ORACLE_DSN; set \
                 them to write to Oracle)"
            ),
        }
    } else {
        log::info!("Sink: {} (SINK)", config.sink.kind());
    }
    for line in config.summary() {
        log::info!("{line}");
    }
    for warning in config.warnings() {
        log::warn!("{warning}");
    }
}

/// Starts the service and installs the Ctrl+C / SIGTERM handler. A failure is logged with
/// what to fix and gives exit code 1.
pub fn start_service(config: Config) -> Result<Service, ExitCode> {
    let service = Service::start(config).map_err(|error| {
        log::error!("Start-up failed: {error}");
        ExitCode::from(EXIT_FAILURE)
    })?;
    if let Err(error) = service.handle_signals() {
        log::error!("{error}");
    }
    Ok(service)
}
