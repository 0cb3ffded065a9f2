//! The ring buffer against Mutex<VecDeque> and crossbeam_channel::bounded doing the same work.
//!
//! Every row moves OPS items. Where an alternative has no drop-oldest push, it does the
//! same work in the two steps an embedder would write (`benches::drop_oldest`).

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use benches::drop_oldest;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringbuf_core::RingBuffer;

const OPS: u64 = 100_000;
/// The capacity of the rows that work on a small (cache-resident) buffer.
const SMALL: usize = 1024;
/// Room for every item of a row: those rows measure contention, not the overflow path.
const ROOMY: usize = 1 << 17;

const RING: &str = "RingBuffer";
const MUTEX: &str = "Mutex<VecDeque>";
const CHANNEL: &str = "crossbeam_channel::bounded";

/// Runs `round` (which builds its own state, then returns the time its threads took) `iters`
/// times.
fn timed(iters: u64, mut round: impl FnMut() -> Duration) -> Duration {
    (0..iters).map(|_| round()).sum()
}

fn single_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("push_pop_single_thread");
    group.throughput(Throughput::Elements(OPS));
    group.bench_function(RING, |b| {
        let buffer = RingBuffer::new(SMALL).unwrap();
        b.iter(|| {
            for i in 0..OPS {
                let _ = buffer.push(black_box(i));
                black_box(buffer.pop());
            }
        })
    });
    group.bench_function(MUTEX, |b| {
        let queue = Mutex::new(VecDeque::with_capacity(SMALL));
        b.iter(|| {
            for i in 0..OPS {
                queue.lock().unwrap().push_back(black_box(i));
                black_box(queue.lock().unwrap().pop_front());
            }
        })
    });
    group.bench_function(CHANNEL, |b| {
        let (tx, rx) = crossbeam_channel::bounded(SMALL);
        b.iter(|| {
            for i in 0..OPS {
                tx.try_send(black_box(i)).unwrap();
                black_box(rx.try_recv().ok());
            }
        })
    });
    group.finish();
}

/// Four producers push OPS items in total while one consumer drains batches of 500.
fn four_producers(c: &mut Criterion) {
    let mut group = c.benchmark_group("four_producers_one_consumer");
    group.throughput(Throughput::Elements(OPS));
    group.sample_size(20);
    let per_producer = OPS / 4;
    group.bench_function(RING, |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let buffer = Arc::new(RingBuffer::new(ROOMY).unwrap());
                let started = Instant::now();
                std::thread::scope(|s| {
                    for p in 0..4 {
                        let buffer = &buffer;
                        s.spawn(move || {
                            for i in 0..per_producer {
                                let _ = buffer.push(p * per_producer + i);
                            }
                        });
                    }
                    s.spawn(|| {
                        let mut got = 0;
                        let mut batch = Vec::with_capacity(500);
                        while got < OPS - buffer.overflow_count() {
                            batch.clear();
                            got += buffer.drain_into(&mut batch, 500) as u64;
                        }
                    });
                });
                started.elapsed()
            })
        })
    });
    group.bench_function(MUTEX, |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let queue = Mutex::new(VecDeque::with_capacity(ROOMY));
                let started = Instant::now();
                std::thread::scope(|s| {
                    for p in 0..4 {
                        let queue = &queue;
                        s.spawn(move || {
                            for i in 0..per_producer {
                                queue.lock().unwrap().push_back(p * per_producer + i);
                            }
                        });
                    }
                    s.spawn(|| {
                        let mut got = 0;
                        while got < OPS {
                            let mut q = queue.lock().unwrap();
                            let n = q.len().min(500);
                            got += q.drain(..n).count() as u64;
                        }
                    });
                });
                started.elapsed()
            })
        })
    });
    group.bench_function(CHANNEL, |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let (tx, rx) = crossbeam_channel::bounded(ROOMY);
                let started = Instant::now();
                std::thread::scope(|s| {
                    for p in 0..4 {
                        let tx = tx.clone();
                        s.spawn(move || {
                            for i in 0..per_producer {
                                tx.send(p * per_producer + i).unwrap();
                            }
                        });
                    }
                    s.spawn(|| {
                        for _ in 0..OPS {
                            black_box(rx.recv().unwrap());
                        }
                    });
                });
                started.elapsed()
            })
        })
    });
    group.finish();
}

/// Two producers push OPS items in total while two consumers take them, the ring buffer and
/// the mutex in batches of 500, the channel one `recv` at a time (its batch would be the
/// same loop).
fn two_producers_two_consumers(c: &mut Criterion) {
    let mut group = c.benchmark_group("two_producers_two_consumers");
    group.throughput(Throughput::Elements(OPS));
    group.sample_size(20);
    let per_producer = OPS / 2;
    group.bench_function(RING, |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let buffer = RingBuffer::new(ROOMY).unwrap();
                let taken = AtomicU64::new(0);
                let started = Instant::now();
                std::thread::scope(|s| {
                    for p in 0..2 {
                        let buffer = &buffer;
                        s.spawn(move || {
                            for i in 0..per_producer {
                                let _ = buffer.push(p * per_producer + i);
                            }
                        });
                    }
                    for _ in 0..2 {
                        s.spawn(|| {
                            let mut batch = Vec::with_capacity(500);
                            while taken.load(Ordering::Relaxed) < OPS {
                                batch.clear();
                                let n = buffer.drain_into(&mut batch, 500) as u64;
                                if n > 0 {
                                    taken.fetch_add(n, Ordering::Relaxed);
                                } else {
                                    std::thread::yield_now();
                                }
                            }
                        });
                    }
                });
                started.elapsed()
            })
        })
    });
    group.bench_function(MUTEX, |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let queue = Mutex::new(VecDeque::with_capacity(ROOMY));
                let taken = AtomicU64::new(0);
                let started = Instant::now();
                std::thread::scope(|s| {
                    for p in 0..2 {
                        let queue = &queue;
                        s.spawn(move || {
                            for i in 0..per_producer {
                                queue.lock().unwrap().push_back(p * per_producer + i);
                            }
                        });
                    }
                    for _ in 0..2 {
                        s.spawn(|| {
                            let mut batch = Vec::with_capacity(500);
                            while taken.load(Ordering::Relaxed) < OPS {
                                batch.clear();
                                {
                                    let mut q = queue.lock().unwrap();
                                    let n = q.len().min(500);
                                    batch.extend(q.drain(..n));
                                }
                                if !batch.is_empty() {
                                    taken.fetch_add(batch.len() as u64, Ordering::Relaxed);
                                } else {
                                    std::thread::yield_now();
                                }
                            }
                        });
                    }
                });
                started.elapsed()
            })
        })
    });
    group.bench_function(CHANNEL, |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let (tx, rx) = crossbeam_channel::bounded(ROOMY);
                let started = Instant::now();
                std::thread::scope(|s| {
                    for p in 0..2 {
                        let tx = tx.clone();
                        s.spawn(move || {
                            for i in 0..per_producer {
                                tx.send(p * per_producer + i).unwrap();
                            }
                        });
                    }
                    // The consumers stop when the producers' senders are gone and it is empty.
                    drop(tx);
                    for _ in 0..2 {
                        let rx = rx.clone();
                        s.spawn(move || {
                            while let Ok(item) = rx.recv() {
                                black_box(item);
                            }
                        });
                    }
                });
                started.elapsed()
            })
        })
    });
    group.finish();
}

/// Pushing into a full buffer from one thread: every push displaces the oldest item.
fn overflow(c: &mut Criterion) {
    let mut group = c.benchmark_group("push_into_full_buffer");
    group.throughput(Throughput::Elements(OPS));
    group.bench_function(RING, |b| {
        let buffer = RingBuffer::new(SMALL).unwrap();
        buffer.push_batch(0..SMALL as u64).unwrap();
        b.iter(|| {
            for i in 0..OPS {
                black_box(buffer.push(black_box(i)).ok());
            }
        })
    });
    group.bench_function(MUTEX, |b| {
        let queue = Mutex::new((0..SMALL as u64).collect::<VecDeque<_>>());
        b.iter(|| {
            for i in 0..OPS {
                black_box(drop_oldest::mutex_push(&queue, SMALL, black_box(i)));
            }
        })
    });
    group.bench_function(CHANNEL, |b| {
        let (tx, rx) = crossbeam_channel::bounded(SMALL);
        for i in 0..SMALL as u64 {
            tx.try_send(i).unwrap();
        }
        b.iter(|| {
            for i in 0..OPS {
                black_box(drop_oldest::channel_push(&tx, &rx, black_box(i)));
            }
        })
    });
    group.finish();
}

/// Four producers push OPS items in total into a full buffer and nobody consumes: every push
/// displaces the oldest item and hands it back.
fn four_producers_into_full_buffer(c: &mut Criterion) {
    let mut group = c.benchmark_group("four_producers_into_full_buffer");
    group.throughput(Throughput::Elements(OPS));
    group.sample_size(20);
    let per_producer = OPS / 4;
    group.bench_function(RING, |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let buffer = RingBuffer::new(SMALL).unwrap();
                buffer.push_batch(0..SMALL as u64).unwrap();
                let started = Instant::now();
                std::thread::scope(|s| {
                    for p in 0..4 {
                        let buffer = &buffer;
                        s.spawn(move || {
                            for i in 0..per_producer {
                                black_box(buffer.push(p * per_producer + i).ok());
                            }
                        });
                    }
                });
                let elapsed = started.elapsed();
                assert_eq!(buffer.overflow_count(), OPS);
                elapsed
            })
        })
    });
    group.bench_function(MUTEX, |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let queue = Mutex::new((0..SMALL as u64).collect::<VecDeque<_>>());
                let started = Instant::now();
                std::thread::scope(|s| {
                    for p in 0..4 {
                        let queue = &queue;
                        s.spawn(move || {
                            for i in 0..per_producer {
                                black_box(drop_oldest::mutex_push(
                                    queue,
                                    SMALL,
                                    p * per_producer + i,
                                ));
                            }
                        });
                    }
                });
                started.elapsed()
            })
        })
    });
    group.bench_function(CHANNEL, |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let (tx, rx) = crossbeam_channel::bounded(SMALL);
                for i in 0..SMALL as u64 {
                    tx.try_send(i).unwrap();
                }
                let started = Instant::now();
                std::thread::scope(|s| {
                    for p in 0..4 {
                        let (tx, rx) = (&tx, &rx);
                        s.spawn(move || {
                            for i in 0..per_producer {
                                black_box(drop_oldest::channel_push(tx, rx, p * per_producer + i));
                            }
                        });
                    }
                });
                started.elapsed()
            })
        })
    });
    group.finish();
}

/// Taking batches of 500 out of a buffer filled beforehand (the filling is not timed).
fn drain(c: &mut Criterion) {
    let mut group = c.benchmark_group("drain_into_batches_of_500");
    group.throughput(Throughput::Elements(OPS));
    let tag_values = benches::values(0, OPS as usize);
    drain_rows(&mut group, "u64", || (0..OPS).collect::<Vec<_>>());
    drain_rows(&mut group, "TagValue", || tag_values.clone());
    group.finish();
}

fn drain_rows<T: Send>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    item: &str,
    items: impl Fn() -> Vec<T>,
) {
    let mut batch = Vec::with_capacity(500);
    group.bench_function(BenchmarkId::new(RING, item), |b| {
        let buffer = RingBuffer::new(OPS as usize).unwrap();
        b.iter_batched(
            || buffer.push_batch(items()).unwrap(),
            |_| {
                while buffer.drain_into(&mut batch, 500) > 0 {
                    batch.clear();
                }
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_function(BenchmarkId::new(MUTEX, item), |b| {
        let queue = Mutex::new(VecDeque::with_capacity(OPS as usize));
        b.iter_batched(
            || queue.lock().unwrap().extend(items()),
            |_| loop {
                {
                    let mut q = queue.lock().unwrap();
                    let n = q.len().min(500);
                    batch.extend(q.drain(..n));
                }
                if batch.is_empty() {
                    break;
                }
                batch.clear();
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_function(BenchmarkId::new(CHANNEL, item), |b| {
        let (tx, rx) = crossbeam_channel::bounded(OPS as usize);
        b.iter_batched(
            || {
                for item in items() {
                    tx.try_send(item).ok();
                }
            },
            |_| loop {
                batch.extend(rx.try_iter().take(500));
                if batch.is_empty() {
                    break;
                }
                batch.clear();
            },
            criterion::BatchSize::LargeInput,
        )
    });
}

criterion_group!(
    benches,
    single_thread,
    four_producers,
    two_producers_two_consumers,
    overflow,
    four_producers_into_full_buffer,
    drain
);
criterion_main!(benches);
