//! A real process on real files, killed with SIGKILL (TerminateProcess on Windows) at random
//! moments: every value it was told is synced, and did not settle, is there after restart.
//!
//! The test binary runs itself as the child (`child_process`), which appends, waits for the
//! sync, prints what was acknowledged, and settles some of what it drains, printing that too.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{number, values};
use durable_log::{BytesCodec, DurableLog, LogOptions};

const CHILD_DIR: &str = "DURABLE_LOG_KILL9_DIR";
const CHILD_BASE: &str = "DURABLE_LOG_KILL9_BASE";

fn child_options() -> LogOptions {
    LogOptions {
        sync_interval: Duration::from_millis(10),
        segment_bytes: Some(64 * 1024),
        ..LogOptions::default()
    }
}

/// Runs only as the child; a no-op in a normal test run.
#[test]
fn child_process() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let base: u64 = std::env::var(CHILD_BASE).unwrap().parse().unwrap();
    let log = Arc::new(DurableLog::open(&dir, child_options(), BytesCodec).unwrap());
    let stdout = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    // The test harness has printed "test child_process ... " without a newline: end it, so
    // that every line of ours stands alone.
    writeln!(stdout.lock().unwrap()).unwrap();
    let settler = {
        let log = Arc::clone(&log);
        let stdout = Arc::clone(&stdout);
        std::thread::spawn(move || loop {
            let mut batch = Vec::new();
            if let Some(claim) = log.drain_into(&mut batch, 97) {
                let numbers: Vec<u64> = batch.iter().map(|item| number(item)).collect();
                // Settle two batches in three; leave the third for the next run.
                if numbers[0] % 3 != 0 {
                    // Said before settling: once settled, a value may be gone at any moment.
                    let mut out = stdout.lock().unwrap();
                    for n in numbers {
                        writeln!(out, "settled {n}").unwrap();
                    }
                    out.flush().unwrap();
                    drop(out);
                    log.settle(claim);
                }
            } else {
                log.wait_for(1, Duration::from_millis(20));
            }
        })
    };
    let mut next = base;
    loop {
        let appended = log.append(&values(next..next + 50)).unwrap();
        log.wait_synced(appended.ticket, Duration::from_secs(10))
            .unwrap();
        let mut out = stdout.lock().unwrap();
        writeln!(out, "acked {next} {}", next + 50).unwrap();
        out.flush().unwrap();
        drop(out);
        next += 50;
        if settler.is_finished() {
            panic!("settler ended");
        }
    }
}

#[test]
fn values_acknowledged_before_a_kill_survive_it() {
    if std::env::var(CHILD_DIR).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut required: BTreeSet<u64> = BTreeSet::new();
    let mut rng = Lcg(0x5eed);
    let mut base = 0;
    for round in 0..6 {
        let mut child = Command::new(&exe)
            .args([
                "child_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_BASE, base.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (events, received) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if events.send(line).is_err() {
                    break;
                }
            }
        });
        let mut acked = Vec::new();
        let mut settled = Vec::new();
        let mut take = |line: String| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["acked", from, to] => {
                    acked.push((from.parse::<u64>().unwrap(), to.parse::<u64>().unwrap()));
                    true
                }
                ["settled", n] => {
                    settled.push(n.parse::<u64>().unwrap());
                    false
                }
                _ => false,
            }
        };
        // Kill at a random moment after the child has started acknowledging.
        let started = Instant::now();
        while !acked_any(&received, &mut take) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the child acknowledged nothing within a minute"
            );
        }
        let kill_at = Instant::now() + Duration::from_millis(rng.next() % 300);
        while Instant::now() < kill_at {
            if let Ok(line) = received.recv_timeout(Duration::from_millis(5)) {
                take(line);
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        for line in received.try_iter() {
            take(line);
        }
        for (from, to) in &acked {
            required.extend(*from..*to);
        }
        for n in &settled {
            required.remove(n);
        }
        // Reopen: every acknowledged, unsettled value must be there.
        let log = DurableLog::open(dir.path(), child_options(), BytesCodec).unwrap();
        let mut present = BTreeSet::new();
        let mut batch = Vec::new();
        while let Some(claim) = log.drain_into(&mut batch, 1000) {
            let _ = claim; // left unsettled: the next round's child hands them out again
        }
        for item in &batch {
            assert!(present.insert(number(item)), "a value handed out twice");
        }
        let missing: Vec<_> = required.difference(&present).take(10).collect();
        assert!(
            missing.is_empty(),
            "round {round}: acknowledged values lost: {missing:?} (of {})",
            required.len()
        );
        base = acked.last().map_or(base, |(_, to)| *to) + 1_000_000;
        // What is present now is on disk: it must survive the next kill too, unless settled.
        required = present;
        log.close();
    }
}

/// Takes one line (waiting briefly); whether it was an acknowledgement.
fn acked_any(
    received: &std::sync::mpsc::Receiver<String>,
    take: &mut impl FnMut(String) -> bool,
) -> bool {
    match received.recv_timeout(Duration::from_millis(50)) {
        Ok(line) => take(line),
        Err(_) => false,
    }
}

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}
