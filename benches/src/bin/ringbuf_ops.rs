//! Fixed single-threaded work on the ring buffer and its alternatives, for counting
//! instructions with callgrind (stable on a shared machine, unlike wall-clock time):
//!
//! ```sh
//! cargo build --release -p benches --bin ringbuf_ops
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     --collect-atstart=no --toggle-collect='ringbuf_ops::measured*' \
//!     target/release/ringbuf_ops push_pop RingBuffer
//! ```
//!
//! Divide the reported `Collected` instructions by the operation count it prints. An optional
//! third argument repeats the work that many times (for `perf record` or a rough timing). Rows:
//! `push_pop` (push one, pop one), `push_full` (every push displaces the oldest),
//! `drain` (drain batches of 500 u64). Implementations: `RingBuffer`, `Mutex<VecDeque>`,
//! `crossbeam_channel::bounded`.

use std::collections::VecDeque;
use std::hint::black_box;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Instant;

use benches::drop_oldest;
use ringbuf_core::RingBuffer;

const OPS: u64 = 1_000_000;
const CAPACITY: usize = 1024;
const DRAIN_ITEMS: u64 = 100_000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (row, implementation, rounds) = match args.as_slice() {
        [row, implementation] => (row, implementation, 1),
        [row, implementation, rounds] => match rounds.parse::<u32>() {
            Ok(rounds) if rounds > 0 => (row, implementation, rounds),
            _ => return usage(),
        },
        _ => return usage(),
    };
    let started = Instant::now();
    let cpu_started = cpu_time();
    let mut ops = 0;
    for _ in 0..rounds {
        match run(row, implementation) {
            Some(done) => ops += done,
            None => return usage(),
        }
    }
    let elapsed = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_started);
    println!(
        "{row} {implementation}: {ops} operations, {:.2} ns each of wall clock, {:.2} ns of CPU \
         (setup included)",
        elapsed.as_nanos() as f64 / ops as f64,
        cpu.as_nanos() as f64 / ops as f64
    );
    ExitCode::SUCCESS
}

/// CPU time of this process: on a shared machine it moves less than the wall clock when
/// other processes take turns on the cores.
fn cpu_time() -> std::time::Duration {
    let usage = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // utime and stime, fields 14 and 15, in clock ticks (100 per second on Linux); coarse, so
    // give it many rounds.
    let fields: Vec<&str> = usage
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|t| t.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    std::time::Duration::from_millis(ticks * 10)
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: ringbuf_ops push_pop|push_full|drain \
         RingBuffer|Mutex<VecDeque>|crossbeam_channel::bounded [ROUNDS]"
    );
    ExitCode::from(2)
}

fn run(row: &str, implementation: &str) -> Option<u64> {
    let ops = match (row, implementation) {
        ("push_pop", "RingBuffer") => {
            let buffer = RingBuffer::new(CAPACITY).expect("capacity");
            measured_ring_push_pop(&buffer)
        }
        ("push_pop", "Mutex<VecDeque>") => {
            let queue = Mutex::new(VecDeque::with_capacity(CAPACITY));
            measured_mutex_push_pop(&queue)
        }
        ("push_pop", "crossbeam_channel::bounded") => {
            let channel = crossbeam_channel::bounded(CAPACITY);
            measured_channel_push_pop(&channel)
        }
        ("push_full", "RingBuffer") => {
            let buffer = RingBuffer::new(CAPACITY).expect("capacity");
            let _ = buffer.push_batch(0..CAPACITY as u64);
            measured_ring_push_full(&buffer)
        }
        ("push_full", "Mutex<VecDeque>") => {
            let queue = Mutex::new((0..CAPACITY as u64).collect::<VecDeque<_>>());
            measured_mutex_push_full(&queue)
        }
        ("push_full", "crossbeam_channel::bounded") => {
            let (tx, rx) = crossbeam_channel::bounded(CAPACITY);
            for i in 0..CAPACITY as u64 {
                let _ = tx.try_send(i);
            }
            measured_channel_push_full(&(tx, rx))
        }
        ("drain", "RingBuffer") => {
            let buffer = RingBuffer::new(DRAIN_ITEMS as usize).expect("capacity");
            let _ = buffer.push_batch(0..DRAIN_ITEMS);
            measured_ring_drain(&buffer)
        }
        ("drain", "Mutex<VecDeque>") => {
            let queue = Mutex::new((0..DRAIN_ITEMS).collect::<VecDeque<_>>());
            measured_mutex_drain(&queue)
        }
        ("drain", "crossbeam_channel::bounded") => {
            let (tx, rx) = crossbeam_channel::bounded(DRAIN_ITEMS as usize);
            for i in 0..DRAIN_ITEMS {
                let _ = tx.try_send(i);
            }
            measured_channel_drain(&rx)
        }
        _ => return None,
    };
    Some(ops)
}

#[inline(never)]
fn measured_ring_push_pop(buffer: &RingBuffer<u64>) -> u64 {
    for i in 0..OPS {
        let _ = buffer.push(black_box(i));
        black_box(buffer.pop());
    }
    OPS
}

#[inline(never)]
fn measured_mutex_push_pop(queue: &Mutex<VecDeque<u64>>) -> u64 {
    for i in 0..OPS {
        queue.lock().expect("lock").push_back(black_box(i));
        black_box(queue.lock().expect("lock").pop_front());
    }
    OPS
}

#[inline(never)]
fn measured_channel_push_pop(
    (tx, rx): &(
        crossbeam_channel::Sender<u64>,
        crossbeam_channel::Receiver<u64>,
    ),
) -> u64 {
    for i in 0..OPS {
        let _ = tx.try_send(black_box(i));
        black_box(rx.try_recv().ok());
    }
    OPS
}

#[inline(never)]
fn measured_ring_push_full(buffer: &RingBuffer<u64>) -> u64 {
    for i in 0..OPS {
        black_box(buffer.push(black_box(i)).ok());
    }
    OPS
}

#[inline(never)]
fn measured_mutex_push_full(queue: &Mutex<VecDeque<u64>>) -> u64 {
    for i in 0..OPS {
        black_box(drop_oldest::mutex_push(queue, CAPACITY, black_box(i)));
    }
    OPS
}

#[inline(never)]
fn measured_channel_push_full(
    (tx, rx): &(
        crossbeam_channel::Sender<u64>,
        crossbeam_channel::Receiver<u64>,
    ),
) -> u64 {
    for i in 0..OPS {
        black_box(drop_oldest::channel_push(tx, rx, black_box(i)));
    }
    OPS
}

#[inline(never)]
fn measured_ring_drain(buffer: &RingBuffer<u64>) -> u64 {
    let mut batch = Vec::with_capacity(500);
    let mut total = 0;
    loop {
        batch.clear();
        let moved = buffer.drain_into(&mut batch, 500);
        if moved == 0 {
            return total;
        }
        total += moved as u64;
        black_box(&batch);
    }
}

#[inline(never)]
fn measured_mutex_drain(queue: &Mutex<VecDeque<u64>>) -> u64 {
    let mut batch = Vec::with_capacity(500);
    let mut total = 0;
    loop {
        batch.clear();
        {
            let mut queue = queue.lock().expect("lock");
            let n = queue.len().min(500);
            batch.extend(queue.drain(..n));
        }
        if batch.is_empty() {
            return total;
        }
        total += batch.len() as u64;
        black_box(&batch);
    }
}

#[inline(never)]
fn measured_channel_drain(rx: &crossbeam_channel::Receiver<u64>) -> u64 {
    let mut batch = Vec::with_capacity(500);
    let mut total = 0;
    loop {
        batch.clear();
        batch.extend(rx.try_iter().take(500));
        if batch.is_empty() {
            return total;
        }
        total += batch.len() as u64;
        black_box(&batch);
    }
}
