//! The ring buffer against Mutex<VecDeque> and crossbeam_channel::bounded doing the same work.

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringbuf_core::RingBuffer;

const OPS: u64 = 100_000;

fn single_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("push_pop_single_thread");
    group.throughput(Throughput::Elements(OPS));
    group.bench_function("RingBuffer", |b| {
        let buffer = RingBuffer::new(1024).unwrap();
        b.iter(|| {
            for i in 0..OPS {
                let _ = buffer.push(black_box(i));
                black_box(buffer.pop());
            }
        })
    });
    group.bench_function("Mutex<VecDeque>", |b| {
        let queue = Mutex::new(VecDeque::with_capacity(1024));
        b.iter(|| {
            for i in 0..OPS {
                queue.lock().unwrap().push_back(black_box(i));
                black_box(queue.lock().unwrap().pop_front());
            }
        })
    });
    group.bench_function("crossbeam_channel::bounded", |b| {
        let (tx, rx) = crossbeam_channel::bounded(1024);
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
    group.bench_function("RingBuffer", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // Room for every item: this measures contention, not the overflow path.
                let buffer = Arc::new(RingBuffer::new(1 << 17).unwrap());
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
                total += started.elapsed();
            }
            total
        })
    });
    group.bench_function("Mutex<VecDeque>", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let queue = Mutex::new(VecDeque::with_capacity(1 << 17));
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
                total += started.elapsed();
            }
            total
        })
    });
    group.bench_function("crossbeam_channel::bounded", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (tx, rx) = crossbeam_channel::bounded(1 << 17);
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
                total += started.elapsed();
            }
            total
        })
    });
    group.finish();
}

/// Pushing into a full buffer: every push displaces the oldest item.
fn overflow(c: &mut Criterion) {
    let mut group = c.benchmark_group("push_into_full_buffer");
    group.throughput(Throughput::Elements(OPS));
    group.bench_function("RingBuffer", |b| {
        let buffer = RingBuffer::new(1024).unwrap();
        buffer.push_batch(0..1024u64).unwrap();
        b.iter(|| {
            for i in 0..OPS {
                black_box(buffer.push(black_box(i)).ok());
            }
        })
    });
    group.finish();
}

fn drain(c: &mut Criterion) {
    let mut group = c.benchmark_group("drain_into_batches_of_500");
    group.throughput(Throughput::Elements(OPS));
    for (name, with_values) in [("u64", false), ("TagValue", true)] {
        group.bench_with_input(
            BenchmarkId::new("RingBuffer", name),
            &with_values,
            |b, &tv| {
                if tv {
                    let buffer = RingBuffer::new(OPS as usize).unwrap();
                    let values = benches::values(0, OPS as usize);
                    let mut batch = Vec::with_capacity(500);
                    b.iter_batched(
                        || buffer.push_batch(values.iter().cloned()).unwrap(),
                        |_| {
                            while buffer.drain_into(&mut batch, 500) > 0 {
                                batch.clear();
                            }
                        },
                        criterion::BatchSize::LargeInput,
                    )
                } else {
                    let buffer = RingBuffer::new(OPS as usize).unwrap();
                    let mut batch = Vec::with_capacity(500);
                    b.iter_batched(
                        || buffer.push_batch(0..OPS).unwrap(),
                        |_| {
                            while buffer.drain_into(&mut batch, 500) > 0 {
                                batch.clear();
                            }
                        },
                        criterion::BatchSize::LargeInput,
                    )
                }
            },
        );
    }
    group.finish();
}

criterion_group!(benches, single_thread, four_producers, overflow, drain);
criterion_main!(benches);
