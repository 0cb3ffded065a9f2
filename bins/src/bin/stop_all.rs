//! Stops the running service: reads its PID file, checks that the process it names is the
//! service that wrote it, sends SIGTERM, waits up to 10 s.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pipeline_service::pid;

/// Stop a running start_all or start_buffer_writer gracefully.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// The service's PID file. Default: PID_FILE from the environment or .env, else
    /// ./buffer-oracle-writer.pid.
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// How long to wait for the service to finish flushing, in seconds.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let path = args.pid_file.unwrap_or_else(|| {
        pipeline_service::Config::load()
            .map(|config| config.pid_file)
            .unwrap_or_else(|_| PathBuf::from(pipeline_service::DEFAULT_PID_FILE))
    });
    let record = match pid::read_pid(&path) {
        Ok(Some(record)) => record,
        Ok(None) => {
            println!(
                "No service is running: there is no PID file at {}",
                path.display()
            );
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("[ERROR] {error}");
            return ExitCode::FAILURE;
        }
    };
    let pid = record.pid;
    // Only the service that wrote the file is signalled: a PID that has exited, was reused
    // by another program, or is 0 or 1 (a process group, init) makes the file stale.
    if let Some(reason) = pid::verify(&record).stale_reason(pid) {
        let removed = match std::fs::remove_file(&path) {
            Ok(()) => "stale PID file removed".to_owned(),
            Err(error) => format!("cannot remove the stale PID file: {error}"),
        };
        println!(
            "No service is running: {} is stale, {reason} ({removed}; nothing was signalled)",
            path.display()
        );
        return ExitCode::SUCCESS;
    }
    if let Err(error) = pid::request_stop(&record) {
        eprintln!("[ERROR] {error}");
        return ExitCode::FAILURE;
    }
    println!(
        "Sent a stop request to PID {pid}; waiting up to {} s for it to flush and exit...",
        args.timeout
    );
    match pid::wait_for_exit(pid, Duration::from_secs(args.timeout)) {
        Some(took) => {
            println!(
                "Service PID {pid} stopped after {:.1} s",
                took.as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        None => {
            eprintln!(
                "[ERROR] Service PID {pid} is still running after {} s; it may still be saving \
                 data. Check its log; run stop_all again to wait longer.",
                args.timeout
            );
            ExitCode::FAILURE
        }
    }
}
