//! Stops the running service: reads its PID file, sends SIGTERM, waits up to 10 s.

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
    let pid = match pid::read_pid(&path) {
        Ok(Some(pid)) => pid,
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
    if !pid::is_alive(pid) {
        let _ = std::fs::remove_file(&path);
        println!(
            "No service is running: PID {pid} from {} has exited (stale PID file removed)",
            path.display()
        );
        return ExitCode::SUCCESS;
    }
    if let Err(error) = pid::request_stop(pid) {
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
