//! Each sink's write_batch of 500 rows against the raw loop that is its limit: a rusqlite
//! loop with one cached prepared statement per 500-row transaction into the same table, and
//! (when the PostgreSQL server binaries are present) a raw COPY into the same table. Also a
//! resent batch: 500 repeats whose stored rows are read back to tell duplicates from
//! conflicts.

use std::io::Write;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use oracle_batch::{PostgresConfig, PostgresSink, Secret, Sink, SqliteSink};
use tag_model::TagValue;

const BATCH: usize = 500;

/// Hands out batches of new rows (distinct keys), so no write is a duplicate.
struct Rows(usize);

impl Rows {
    fn next(&mut self) -> Vec<TagValue> {
        self.0 += 1;
        // 1,000 values per poll: two batches per poll.
        let values = benches::values(self.0 * BATCH / 1000, 1000);
        let half = (self.0 % 2) * BATCH;
        values[half..half + BATCH].to_vec()
    }
}

fn sqlite(c: &mut Criterion) {
    let mut group = c.benchmark_group("sqlite_write_500_rows");
    group.throughput(Throughput::Elements(BATCH as u64));
    let dir = tempfile::tempdir().unwrap();
    let mut sink = SqliteSink::open(dir.path().join("sink.db"), "TAG_VALUES").unwrap();
    let mut rows = Rows(0);
    group.bench_function("SqliteSink::write_batch", |b| {
        b.iter_batched(
            || rows.next(),
            |batch| sink.write_batch(&batch).unwrap(),
            BatchSize::SmallInput,
        )
    });
    // A resent batch (a retry whose first attempt had committed, a replay run twice): every
    // row is a repeat, read back in the transaction and compared.
    let resent = rows.next();
    sink.write_batch(&resent).unwrap();
    group.bench_function("SqliteSink::write_batch, resent (500 repeats)", |b| {
        b.iter(|| {
            let report = sink.write_batch(&resent).unwrap();
            assert_eq!(report.duplicates, BATCH);
        })
    });
    drop(SqliteSink::open(dir.path().join("raw.db"), "TAG_VALUES").unwrap());
    let mut raw = rusqlite::Connection::open(dir.path().join("raw.db")).unwrap();
    raw.pragma_update(None, "journal_mode", "WAL").unwrap();
    raw.pragma_update(None, "synchronous", "NORMAL").unwrap();
    let mut rows = Rows(0);
    group.bench_function("raw rusqlite loop", |b| {
        b.iter_batched(
            || rows.next(),
            |batch| {
                let tx = raw.transaction().unwrap();
                {
                    let mut insert = tx
                        .prepare_cached(
                            "INSERT INTO TAG_VALUES (timestamp, plc_code, tag_address, tag_value, quality, inserted_at) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        )
                        .unwrap();
                    for v in &batch {
                        insert
                            .execute(rusqlite::params![
                                v.timestamp().and_utc().timestamp_micros(),
                                v.plc_code(),
                                v.tag_address(),
                                v.value(),
                                v.quality().as_str(),
                                0i64
                            ])
                            .unwrap();
                    }
                }
                tx.commit().unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn postgres(c: &mut Criterion) {
    let Some(pg) = pg_test_cluster::PgCluster::start() else {
        return;
    };
    let mut group = c.benchmark_group("postgres_write_500_rows");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(8));
    let make = |table: &str| {
        let sink = PostgresSink::new(PostgresConfig {
            url: Secret::new(pg.url()),
            table: table.into(),
            pool_min: 1,
            pool_max: 2,
            pool_timeout: Duration::from_secs(5),
            mapping: oracle_batch::ColumnMapping::standard(),
        })
        .unwrap();
        sink.create_table().unwrap();
        sink
    };
    let mut sink = make("SINK_ROWS");
    let mut rows = Rows(0);
    group.bench_function("PostgresSink::write_batch", |b| {
        b.iter_batched(
            || rows.next(),
            |batch| sink.write_batch(&batch).unwrap(),
            BatchSize::SmallInput,
        )
    });
    let resent = rows.next();
    sink.write_batch(&resent).unwrap();
    group.bench_function("PostgresSink::write_batch, resent (500 repeats)", |b| {
        b.iter(|| {
            let report = sink.write_batch(&resent).unwrap();
            assert_eq!(report.duplicates, BATCH);
        })
    });
    make("COPY_ROWS");
    let mut client = postgres::Client::connect(&pg.url(), postgres::NoTls).unwrap();
    let mut rows = Rows(0);
    group.bench_function("raw COPY", |b| {
        b.iter_batched(
            || rows.next(),
            |batch| {
                let mut writer = client
                    .copy_in("COPY COPY_ROWS (timestamp, plc_code, tag_address, tag_value, quality) FROM STDIN")
                    .unwrap();
                let mut text = Vec::with_capacity(batch.len() * 64);
                for v in &batch {
                    let value = v.value().map_or("\\N".to_owned(), |x| x.to_string());
                    writeln!(
                        text,
                        "{}\t{}\t{}\t{}\t{}",
                        tag_model::format_timestamp(v.timestamp()),
                        v.plc_code(),
                        v.tag_address(),
                        value,
                        v.quality()
                    )
                    .unwrap();
                }
                writer.write_all(&text).unwrap();
                writer.finish().unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, sqlite, postgres);
criterion_main!(benches);
