//! CSV backup: write and read back 100,000 rows.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const ROWS: usize = 100_000;

fn backup(c: &mut Criterion) {
    let values = benches::values(0, ROWS);
    let attempt = benches::start();
    let mut group = c.benchmark_group("csv_backup_100k_rows");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(20);
    group.bench_function("write", |b| {
        b.iter(|| {
            black_box(csv_backup::write_csv(Vec::with_capacity(8 << 20), &values, attempt).unwrap())
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let backups = csv_backup::BackupWriter::new(dir.path()).unwrap();
    group.bench_function("write_file_fsynced", |b| {
        b.iter(|| {
            let path = backups.write_batch(&values, attempt).unwrap();
            std::fs::remove_file(path).unwrap();
        })
    });
    let text = csv_backup::write_csv(Vec::new(), &values, attempt).unwrap();
    group.bench_function("read", |b| {
        b.iter(|| black_box(csv_backup::read_csv(&text[..], Path::new("bench.csv")).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, backup);
criterion_main!(benches);
