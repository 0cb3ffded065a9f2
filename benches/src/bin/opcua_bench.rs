//! 5,000 OPC UA monitored items changing once a second, taken into SQLite: are all the changes
//! written, and what does the client cost? The server is the asyncua fixture of test-support
//! (its own process, so this process's CPU time is the client's: driver, engine, buffer,
//! writer and SQLite).
//!
//! ```sh
//! cargo run --release -p benches --bin opcua_bench -- 30 5000   # 30 ticks of 5,000 changes
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use csv_backup::BackupWriter;
use oracle_batch::{BatchWriter, SqliteSink, WriterConfig};
use polling_engine::{PollingConfig, PollingEngine};
use ringbuf_core::RingBuffer;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ticks: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(30);
    let items: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5_000);
    let Some(sims) = test_support::simulators::simulators("opcua_bench") else {
        std::process::exit(1);
    };
    let server = sims.opcua(0, &["--bench", &items.to_string()]);
    let dir = tempfile::tempdir().expect("temp dir");
    let tags: Vec<String> = (0..items)
        .map(|i| format!("\"ns=2;s=Bench.{i}\""))
        .collect();
    let text = format!(
        "[[plc]]\nplc_code = \"UA\"\ndriver = \"opcua\"\n\
         endpoint = \"opc.tcp://127.0.0.1:{}/test\"\npki_dir = {:?}\n\
         [[group]]\nname = \"BENCH\"\nmode = \"SUBSCRIPTION\"\npublishing_interval_ms = 500\n\
         sampling_interval_ms = 100\nplc_code = \"UA\"\ntags = [{}]\n",
        server.port(),
        dir.path().join("pki"),
        tags.join(",")
    );
    let config = PollingConfig::from_toml(&text, "bench").expect("valid configuration");
    let buffer = Arc::new(RingBuffer::new(100_000).expect("buffer"));
    let backup = Arc::new(BackupWriter::new(dir.path().join("backup")).expect("backup"));
    let db = dir.path().join("bench.db");
    let writer = BatchWriter::builder(Arc::clone(&buffer), backup)
        .sink(SqliteSink::open(&db, "TAG_VALUES").expect("sqlite"))
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
    engine.start().expect("start");
    let notifications = || engine.handle().status()[0].notifications;
    let deadline = Instant::now() + Duration::from_secs(300);
    while notifications() < items as u64 {
        assert!(
            Instant::now() < deadline,
            "no initial values: {:?}",
            engine.handle().status()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let initial = notifications();
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    server.command(&format!("\"op\": \"run\", \"ticks\": {ticks}"));
    let done = |reply: &str| reply.contains(&format!("\"ticks\": {ticks},"));
    while !done(&server.command("\"op\": \"bench\"")) {
        std::thread::sleep(Duration::from_millis(200));
    }
    // The last tick's publish, then the writer's last batch.
    let expected = initial + ticks * items as u64;
    let settle = Instant::now() + Duration::from_secs(30);
    while notifications() < expected && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (cpu1, wall) = (cpu_time(), wall0.elapsed());
    let stats = server.command("\"op\": \"bench\"");
    engine.stop();
    let report = writer.shutdown(Duration::from_secs(30));
    let changed: i64 = rusqlite::Connection::open(&db)
        .expect("open")
        .query_row(
            "SELECT COUNT(*) FROM TAG_VALUES WHERE tag_value >= 1000000",
            [],
            |row| row.get(0),
        )
        .expect("count");
    println!("{items} monitored items, {ticks} ticks of one change each, server: {stats}");
    println!(
        "notifications after the initial values: {} of {}; rows of changes in SQLite: {changed} \
         of {}; overflow {}; written {}",
        notifications() - initial,
        ticks * items as u64,
        ticks * items as u64,
        buffer.overflow_count(),
        report.stats.written
    );
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        println!(
            "client CPU (driver + engine + writer + SQLite) over {:.1} s: {:.2} s = {:.1} % of one \
             core",
            wall.as_secs_f64(),
            (b - a).as_secs_f64(),
            (b - a).as_secs_f64() * 100.0 / wall.as_secs_f64()
        );
    }
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
