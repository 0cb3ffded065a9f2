//! Drives the real pipeline (buffer, writer, configured sink) at a steady rate, then reports
//! offered, accepted and written values, throughput, write latency, overflow and success rate,
//! and exits non-zero when the spec's targets are missed.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use buffer_oracle_writer::{configure, log_configuration, start_service, EXIT_FAILURE};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use tag_model::{Quality, TagValue};

/// Load-test the pipeline on the configured sink.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Values per second to offer.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Seconds to run.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Tag addresses per PLC.
    #[arg(long, default_value_t = 100)]
    tags: u64,
    /// PLCs.
    #[arg(long, default_value_t = 10)]
    plcs: u64,
    /// `memory` or `disk`: overrides BUFFER_DURABILITY (disk mode takes BUFFER_DIR,
    /// BUFFER_SYNC_MS and BUFFER_DISK_MAX_BYTES, or their defaults).
    #[arg(long, value_parser = ["memory", "disk"])]
    durability: Option<String>,
}

/// The spec's targets.
const TARGET_RATE: f64 = 1000.0;
const TARGET_AVG_LATENCY_MS: f64 = 2000.0;
const TARGET_SUCCESS_PCT: f64 = 99.9;

fn main() -> ExitCode {
    let args = Args::parse();
    if args.rate == 0 || args.duration == 0 || args.tags == 0 || args.plcs == 0 {
        eprintln!("[ERROR] --rate, --duration, --tags and --plcs must be at least 1");
        return ExitCode::from(buffer_oracle_writer::EXIT_CONFIG);
    }
    if let Some(mode) = &args.durability {
        // Before any thread starts: the flag is the variable, so BUFFER_DIR, BUFFER_SYNC_MS
        // and BUFFER_DISK_MAX_BYTES apply (and are checked) as for the service.
        std::env::set_var("BUFFER_DURABILITY", mode);
    }
    let config = match configure() {
        Ok(config) => config,
        Err(code) => return code,
    };
    log::info!(
        "High-throughput test: {} values/s for {} s over {} PLCs x {} tags",
        args.rate,
        args.duration,
        args.plcs,
        args.tags
    );
    log_configuration(&config);
    let service = match start_service(config) {
        Ok(service) => service,
        Err(code) => return code,
    };
    let state = Arc::clone(service.state());
    let offered = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let plcs: Vec<Arc<str>> = (0..args.plcs)
        .map(|p| Arc::from(format!("PLC{p:02}")))
        .collect();
    let tags: Vec<Arc<str>> = (0..args.tags)
        .map(|t| Arc::from(format!("D{}", 100 + t)))
        .collect();
    let started = Instant::now();
    let producer = {
        let (offered, stop, state) = (offered.clone(), stop.clone(), state.clone());
        std::thread::spawn(move || {
            // Ticks of 10 ms: each tick offers what the rate owes so far.
            let total = args.rate * args.duration;
            let mut sent = 0u64;
            let mut tick = 0u32;
            let per_poll = args.plcs * args.tags;
            while sent < total && !stop.load(Ordering::SeqCst) {
                tick += 1;
                let due = started + Duration::from_millis(10) * tick;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let owed = ((started.elapsed().as_secs_f64() * args.rate as f64) as u64).min(total);
                let now = chrono::Utc::now().naive_utc();
                let mut batch = Vec::with_capacity((owed - sent) as usize);
                for i in sent..owed {
                    let slot = i % per_poll;
                    // A distinct timestamp per value of the same tag within one tick.
                    let ts = now + chrono::Duration::microseconds(((i - sent) / per_poll) as i64);
                    let value = TagValue::new(
                        ts,
                        plcs[(slot / args.tags) as usize].clone(),
                        tags[(slot % args.tags) as usize].clone(),
                        Some(i as f64 * 0.1),
                        Quality::Good,
                    );
                    if let Ok(value) = value {
                        batch.push(value);
                    }
                }
                offered.fetch_add(owed - sent, Ordering::SeqCst);
                sent = owed;
                if state.push(batch).is_err() {
                    break;
                }
            }
        })
    };
    let progress = ProgressBar::new(args.duration);
    progress.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} s {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let stopper = service.stopper();
    let ticker = {
        let state = state.clone();
        let progress = progress.clone();
        std::thread::spawn(move || {
            for second in 1..=args.duration {
                std::thread::sleep(Duration::from_secs(1));
                let accounting = state.accounting();
                progress.set_position(second);
                progress.set_message(format!(
                    "written {} buffered {} overflow {}",
                    accounting.written, accounting.buffered, accounting.overflow
                ));
            }
            let _ = stopper.send(pipeline_service::StopReason::Signal);
        })
    };
    service.wait();
    stop.store(true, Ordering::SeqCst);
    let _ = producer.join();
    progress.finish();
    let elapsed = started.elapsed();
    let summary = service.shutdown();
    let snapshot = state.writer.metrics().snapshot();
    let _ = ticker.join();
    let accounting = state.accounting();
    let lifetime = snapshot.lifetime;
    let total_elapsed = started.elapsed().as_secs_f64();
    let throughput = accounting.written as f64 / total_elapsed;
    let success_pct = if lifetime.writes == 0 {
        0.0
    } else {
        lifetime.successes as f64 * 100.0 / lifetime.writes as f64
    };
    let offered = offered.load(Ordering::SeqCst);
    let wanted_rate = (args.rate as f64).min(TARGET_RATE);
    let checks = [
        (
            format!(
                "throughput {throughput:.0} values/s (target {wanted_rate:.0}, {:.0} offered)",
                args.rate
            ),
            throughput >= wanted_rate * 0.95
                && offered == accounting.written + accounting.duplicates,
        ),
        (
            format!(
                "average write latency {:.1} ms (target < {TARGET_AVG_LATENCY_MS:.0} ms)",
                snapshot.avg_latency_ms
            ),
            snapshot.avg_latency_ms < TARGET_AVG_LATENCY_MS,
        ),
        (
            format!("success rate {success_pct:.3}% (target > {TARGET_SUCCESS_PCT}%)"),
            success_pct > TARGET_SUCCESS_PCT,
        ),
        (
            format!("overflow {} (target 0)", accounting.overflow),
            accounting.overflow == 0,
        ),
    ];
    println!(
        "Results after {:.1} s of load ({total_elapsed:.1} s with the final flush):",
        elapsed.as_secs_f64()
    );
    println!("  offered:   {offered}");
    println!("  accepted:  {}", accounting.accepted);
    println!(
        "  written:   {} (+{} already stored)",
        accounting.written, accounting.duplicates
    );
    println!(
        "  backed up: {}, spilled: {}, rejected: {}",
        accounting.backed_up, accounting.spilled, accounting.rejected
    );
    println!(
        "  write latency: avg {:.2} ms, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        snapshot.avg_latency_ms,
        snapshot.p50_latency_ms,
        snapshot.p99_latency_ms,
        snapshot.max_latency_ms
    );
    println!(
        "  batches: {} (avg {:.1} rows)",
        lifetime.writes, snapshot.avg_batch_size
    );
    match state.log() {
        None => println!("  buffer: memory (BUFFER_DURABILITY=memory)"),
        Some(log) => {
            let stats = log.stats();
            println!(
                "  buffer: durable log in {}: {} bytes written, {:.1} bytes per value, {} \
                 fsyncs ({:.1} per second), {} values left in the log",
                log.dir().display(),
                stats.bytes_written,
                stats.bytes_written as f64 / stats.appended.max(1) as f64,
                stats.fsyncs,
                stats.fsyncs as f64 / total_elapsed,
                stats.unsettled()
            );
        }
    }
    let mut passed = summary.balanced;
    for (text, ok) in &checks {
        println!("  [{}] {text}", if *ok { "PASS" } else { "FAIL" });
        passed &= ok;
    }
    if passed {
        println!("All targets met.");
        ExitCode::SUCCESS
    } else {
        println!("Targets missed.");
        ExitCode::from(EXIT_FAILURE)
    }
}
