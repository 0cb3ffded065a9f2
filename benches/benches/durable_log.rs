//! The durable log with tag values on the real file system: appends with group commit, the
//! round trip a writer thread makes (append, sync, drain, settle), and recovery at open.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use durable_log::{DurableLog, LogOptions, TagValueCodec, Wait};

const VALUES: usize = 100_000;

fn open(dir: &std::path::Path) -> DurableLog<TagValueCodec> {
    DurableLog::open(dir, LogOptions::default(), TagValueCodec::new()).unwrap()
}

fn durable_log(c: &mut Criterion) {
    let mut group = c.benchmark_group("durable_log_100k_values");
    group.throughput(Throughput::Elements(VALUES as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    let mut round = 0;
    // Appends in polls of 1,000 values, then one flush: encoding, checksums, the write and
    // the fsync.
    group.bench_function("append and sync", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let values = benches::values(round * 100, VALUES);
                let dir = tempfile::tempdir().unwrap();
                let log = open(dir.path());
                let started = Instant::now();
                for poll in values.chunks(1000) {
                    log.append(poll).unwrap();
                }
                log.flush(Duration::from_secs(30)).unwrap();
                total += started.elapsed();
                log.close();
            }
            total
        })
    });
    // A producer appending while a consumer drains batches of 500 and settles them: every
    // value written, synced, read back, decoded and settled.
    group.bench_function("append, sync, drain, settle", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let values = benches::values(round * 100, VALUES);
                let dir = tempfile::tempdir().unwrap();
                let log = Arc::new(open(dir.path()));
                let started = Instant::now();
                let consumer = {
                    let log = Arc::clone(&log);
                    std::thread::spawn(move || {
                        let mut batch = Vec::with_capacity(500);
                        let mut settled = 0;
                        while settled < VALUES {
                            batch.clear();
                            match log.drain_into(&mut batch, 500) {
                                Some(claim) => {
                                    settled += claim.len();
                                    log.settle(claim);
                                }
                                None => {
                                    if log.wait_for(500, Duration::from_millis(200)) == Wait::Closed
                                    {
                                        break;
                                    }
                                }
                            }
                        }
                    })
                };
                for poll in values.chunks(1000) {
                    log.append(poll).unwrap();
                }
                consumer.join().unwrap();
                total += started.elapsed();
                log.close();
            }
            total
        })
    });
    // Opening a log of 100,000 unsettled values: every record's checksums.
    group.bench_function("recovery at open", |b| {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = open(dir.path());
            for poll in benches::values(0, VALUES).chunks(1000) {
                log.append(poll).unwrap();
            }
            log.close();
        }
        b.iter(|| {
            let log = open(dir.path());
            assert_eq!(log.recovery().unsettled, VALUES as u64);
            log.close();
        })
    });
    group.finish();

    // Bytes written per value, for BENCHMARKS.md.
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    for poll in benches::values(0, VALUES).chunks(1000) {
        log.append(poll).unwrap();
    }
    log.flush(Duration::from_secs(30)).unwrap();
    let stats = log.close();
    println!(
        "durable_log: {:.1} bytes written per value ({} bytes for {VALUES} values)",
        stats.bytes_written as f64 / VALUES as f64,
        stats.bytes_written
    );
}

criterion_group!(benches, durable_log);
criterion_main!(benches);
