//! Rolling metrics: recording one write event, and a snapshot of a full 300-bucket window.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use rolling_metrics::{ManualClock, Outcome, RollingMetrics, DEFAULT_WINDOW};

fn record(c: &mut Criterion) {
    let metrics = RollingMetrics::new(DEFAULT_WINDOW).unwrap();
    c.bench_function("record_one_write", |b| {
        b.iter(|| {
            metrics.record(
                black_box(500),
                black_box(Duration::from_micros(1_234)),
                Outcome::Success,
            )
        })
    });
}

fn snapshot(c: &mut Criterion) {
    let clock = Arc::new(ManualClock::new());
    let metrics = RollingMetrics::with_clock(DEFAULT_WINDOW, clock.clone()).unwrap();
    // Fill all 300 one-second buckets with varied latencies.
    for second in 0..300u64 {
        for i in 0..20u64 {
            metrics.record(
                500,
                Duration::from_micros(100 + second * 37 + i * 911),
                Outcome::Success,
            );
        }
        clock.advance(Duration::from_secs(1));
    }
    c.bench_function("snapshot_full_300s_window", |b| {
        b.iter(|| black_box(metrics.snapshot()))
    });
}

criterion_group!(benches, record, snapshot);
criterion_main!(benches);
