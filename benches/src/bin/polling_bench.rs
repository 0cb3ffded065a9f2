//! Polling cost and throughput of the Modbus driver against a fast peer in its own process
//! (the fake Modbus server of test-support), so the collector's CPU time is read on its own.
//!
//! ```sh
//! cargo run --release -p benches --bin polling_bench -- cost 30        # 10 x 1,000 tags at 1 s
//! cargo run --release -p benches --bin polling_bench -- cost 30 melsec # the same over MC 3E
//! cargo run --release -p benches --bin polling_bench -- throughput 20 20000  # 10 x 20,000 tags at 1 s into SQLite
//! ```

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use csv_backup::BackupWriter;
use oracle_batch::{BatchWriter, SqliteSink, WriterConfig};
use polling_engine::{PollingConfig, PollingEngine};
use ringbuf_core::RingBuffer;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("peer") => peer(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(10_000)),
        Some("mc-peer") => mc_peer(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(10_000)),
        Some("cost") => cost(
            seconds(&args, 30),
            args.get(3).map_or("modbus", String::as_str),
        ),
        Some("throughput") => throughput(
            seconds(&args, 20),
            args.get(3).and_then(|n| n.parse().ok()).unwrap_or(10_000),
        ),
        _ => {
            eprintln!(
                "usage: polling_bench cost [SECONDS] | throughput [SECONDS [TAGS_PER_GROUP]]"
            );
            std::process::exit(2);
        }
    }
}

fn seconds(args: &[String], default: u64) -> u64 {
    args.get(2).and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// The peer: holding registers 0..registers with values, until standard input closes.
fn peer(registers: u16) {
    let server = test_support::fake_modbus::FakeModbus::start();
    let values: Vec<u16> = (0..registers).map(|i| i.wrapping_mul(7)).collect();
    server.set_holding(0, &values);
    println!("listening on {}", server.address());
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// The MC peer: D0..words with values, until standard input closes.
fn mc_peer(words: u16) {
    let server = test_support::fake_mc::FakeMc::start();
    let values: Vec<u16> = (0..words).map(|i| i.wrapping_mul(7)).collect();
    server.set_words(test_support::fake_mc::code::D, 0, &values);
    println!("listening on {}", server.address());
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

struct Peer {
    child: std::process::Child,
    port: u16,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_peer(kind: &str, registers: u16) -> Peer {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .args([kind, &registers.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the peer");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the peer's address");
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    Peer { child, port }
}

fn config(driver: &str, port: u16, groups: usize, tags: usize) -> PollingConfig {
    let mut text = format!(
        "[[plc]]\nplc_code = \"MB\"\ndriver = \"{driver}\"\nhost = \"127.0.0.1\"\nport = {port}\n"
    );
    let prefix = if driver == "melsec" { "D" } else { "HR" };
    for g in 0..groups {
        let list: Vec<String> = (0..tags).map(|t| format!("\"{prefix}{t}\"")).collect();
        text.push_str(&format!(
            "[[group]]\nname = \"G{g}\"\nmode = \"FIXED\"\ninterval_ms = 1000\nplc_code = \"MB\"\ntags = [{}]\n",
            list.join(",")
        ));
    }
    PollingConfig::from_toml(&text, "bench").expect("valid configuration")
}

/// CPU time of this process (user + system).
fn cpu_time() -> Option<Duration> {
    #[cfg(unix)]
    {
        // SAFETY: getrusage writes into the struct we pass.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
            return None;
        }
        let time = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        Some(time(usage.ru_utime) + time(usage.ru_stime))
    }
    #[cfg(not(unix))]
    None
}

fn report_plan(engine: &PollingEngine, tags: usize) {
    let status = engine.handle().status();
    let after: usize = status.iter().map(|g| g.requests_per_poll).sum();
    println!(
        "requests per poll: {} before planning (one per tag), {after} after ({} groups)",
        tags * status.len(),
        status.len()
    );
}

fn cost(seconds: u64, driver: &str) {
    let (groups, tags) = (10, 1_000);
    let peer = start_peer(
        if driver == "melsec" {
            "mc-peer"
        } else {
            "peer"
        },
        tags as u16,
    );
    let config = config(driver, peer.port, groups, tags);
    let values = Arc::new(AtomicU64::new(0));
    let counter = values.clone();
    let engine = PollingEngine::new(
        &config,
        Arc::new(move |v: Vec<tag_model::TagValue>| {
            counter.fetch_add(v.len() as u64, Ordering::Relaxed);
        }),
    );
    engine.start().expect("start");
    std::thread::sleep(Duration::from_secs(2)); // connections made, first polls done
    let (cpu0, wall0, values0) = (cpu_time(), Instant::now(), values.load(Ordering::Relaxed));
    std::thread::sleep(Duration::from_secs(seconds));
    let (cpu1, wall) = (cpu_time(), wall0.elapsed());
    let polled = values.load(Ordering::Relaxed) - values0;
    engine.stop();
    report_plan(&engine, tags);
    let errors: u64 = engine.handle().status().iter().map(|g| g.errors).sum();
    println!(
        "{driver}: {groups} groups x {tags} tags at 1 s for {:.1} s: {polled} values, {errors} errors",
        wall.as_secs_f64()
    );
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        let cpu = b - a;
        println!(
            "collector CPU: {:.3} s = {:.2} % of one core; {:.2} us per tag polled",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 100.0 / wall.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / polled.max(1) as f64
        );
    }
}

fn throughput(seconds: u64, tags: usize) {
    let groups = 10;
    let peer = start_peer("peer", tags as u16);
    let config = config("modbus", peer.port, groups, tags);
    let dir = tempfile::tempdir().expect("temp dir");
    let buffer = Arc::new(RingBuffer::new(500_000).expect("buffer"));
    let backup = Arc::new(BackupWriter::new(dir.path().join("backup")).expect("backup"));
    let writer = BatchWriter::builder(Arc::clone(&buffer), backup)
        .sink(SqliteSink::open(dir.path().join("bench.db"), "TAG_VALUES").expect("sqlite"))
        .config(WriterConfig::default())
        .spawn()
        .expect("writer");
    let sink = Arc::clone(&buffer);
    let engine = PollingEngine::new(
        &config,
        Arc::new(move |v: Vec<tag_model::TagValue>| {
            let _ = sink.push_batch(v);
        }),
    );
    let (cpu0, started) = (cpu_time(), Instant::now());
    engine.start().expect("start");
    std::thread::sleep(Duration::from_secs(seconds));
    engine.stop();
    let report = writer.shutdown(Duration::from_secs(30));
    let wall = started.elapsed();
    let cpu1 = cpu_time();
    report_plan(&engine, tags);
    let status = engine.handle().status();
    let polls: u64 = status.iter().map(|g| g.polls).sum();
    let overruns: u64 = status.iter().map(|g| g.overruns).sum();
    let stats = report.stats;
    let offered = polls * tags as u64;
    println!(
        "{groups} groups x {tags} tags at 1 s for {seconds} s: {polls} polls, {overruns} overruns"
    );
    println!(
        "written to SQLite: {} of {offered} polled rows in {:.1} s = {:.0} tags/s end to end; overflow {}",
        stats.written,
        wall.as_secs_f64(),
        stats.written as f64 / wall.as_secs_f64(),
        buffer.overflow_count()
    );
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        println!(
            "process CPU (polling + writer + SQLite): {:.1} s = {:.0} % of one core",
            (b - a).as_secs_f64(),
            (b - a).as_secs_f64() * 100.0 / wall.as_secs_f64()
        );
    }
}
