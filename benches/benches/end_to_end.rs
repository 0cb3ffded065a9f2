//! End to end: 100,000 values pushed into the buffer and committed to SQLite by the
//! BatchWriter, against the same rows written by calling the sink directly in batches of
//! 500 (the writer's overhead is the difference).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use csv_backup::BackupWriter;
use oracle_batch::{BatchWriter, Sink, SqliteSink, WriterConfig};
use ringbuf_core::RingBuffer;

const VALUES: usize = 100_000;

/// A writer with default settings draining `buffer` into a new SQLite file in `dir`.
fn writer_into_sqlite(
    dir: &std::path::Path,
    buffer: &Arc<RingBuffer<tag_model::TagValue>>,
) -> BatchWriter {
    let backup = Arc::new(BackupWriter::new(dir.join("backup")).unwrap());
    BatchWriter::builder(Arc::clone(buffer), backup)
        .sink(SqliteSink::open(dir.join("e2e.db"), "TAG_VALUES").unwrap())
        .config(WriterConfig::default())
        .spawn()
        .unwrap()
}

fn end_to_end(c: &mut Criterion) {
    let mut group = c.benchmark_group("end_to_end_100k_values_sqlite");
    group.throughput(Throughput::Elements(VALUES as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    let mut round = 0;
    group.bench_function("BatchWriter", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let values = benches::values(round * 100, VALUES);
                let dir = tempfile::tempdir().unwrap();
                let buffer = Arc::new(RingBuffer::new(1_000_000).unwrap());
                let writer = writer_into_sqlite(dir.path(), &buffer);
                let started = Instant::now();
                for value in values {
                    let _ = buffer.push(value);
                }
                while writer.stats().written < VALUES as u64 {
                    std::thread::sleep(Duration::from_micros(200));
                }
                total += started.elapsed();
                writer.shutdown(Duration::from_secs(5));
            }
            total
        })
    });
    // The writer alone: the buffer is full before the writer starts, so no producer shares
    // the two cores with it.
    group.bench_function("BatchWriter, buffer filled first", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let values = benches::values(round * 100, VALUES);
                let dir = tempfile::tempdir().unwrap();
                let buffer = Arc::new(RingBuffer::new(1_000_000).unwrap());
                buffer.push_batch(values).unwrap();
                let started = Instant::now();
                let writer = writer_into_sqlite(dir.path(), &buffer);
                while writer.stats().written < VALUES as u64 {
                    std::thread::sleep(Duration::from_micros(200));
                }
                total += started.elapsed();
                writer.shutdown(Duration::from_secs(5));
            }
            total
        })
    });
    group.bench_function("sink directly", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let values = benches::values(round * 100, VALUES);
                let dir = tempfile::tempdir().unwrap();
                let mut sink =
                    SqliteSink::open(dir.path().join("direct.db"), "TAG_VALUES").unwrap();
                let started = Instant::now();
                for batch in values.chunks(500) {
                    sink.write_batch(batch).unwrap();
                }
                total += started.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, end_to_end);
criterion_main!(benches);
