#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod clock;
mod histogram;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use clock::{Clock, ManualClock, SystemClock};
use histogram::{bin_of, quantile, BINS};

/// The window the spec asks for: five minutes.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);
/// The longest window accepted: one day of one-second buckets (about 90 MB would follow
/// from a week, so we stop at a day).
pub const MAX_WINDOW: Duration = Duration::from_secs(86_400);

/// Upper bounds, in microseconds, of the buckets of [`LatencyHistogram`]: 1 ms to 60 s for
/// batch writes, with 2 s (the spec's latency target) as a bound so that "more than 1 % of
/// writes took over 2 s" is exact; one more bucket takes everything longer.
pub const LATENCY_BUCKET_BOUNDS_US: [u64; 15] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_000_000,
    5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

/// The buckets of [`LatencyHistogram`], the last one unbounded.
pub const LATENCY_BUCKETS: usize = LATENCY_BUCKET_BOUNDS_US.len() + 1;

/// Whether a write attempt stored its items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The items were stored.
    Success,
    /// The attempt failed.
    Failure,
}

/// The window was not a whole number of seconds between 1 s and [`MAX_WINDOW`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("metrics window must be a whole number of seconds from 1 to 86400, got {0:?}")]
pub struct WindowError(pub Duration);

/// Time-windowed write statistics. Share it with `Arc`.
pub struct RollingMetrics {
    window_secs: u64,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

struct State {
    buckets: Vec<Bucket>,
    lifetime: Totals,
    lifetime_latency: LatencyHistogram,
    last_success: Option<DateTime<Utc>>,
    last_failure: Option<DateTime<Utc>>,
}

#[derive(Clone)]
struct Bucket {
    /// The monotonic second this bucket holds, `None` before first use.
    second: Option<u64>,
    writes: u64,
    successes: u64,
    items: u64,
    items_written: u64,
    latency_sum_us: u64,
    latency_max_us: u64,
    hist: [u32; BINS],
}

impl Bucket {
    const EMPTY: Bucket = Bucket {
        second: None,
        writes: 0,
        successes: 0,
        items: 0,
        items_written: 0,
        latency_sum_us: 0,
        latency_max_us: 0,
        hist: [0; BINS],
    };
}

/// Counts since the metrics were created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Write attempts.
    pub writes: u64,
    /// Attempts that stored their items.
    pub successes: u64,
    /// Attempts that failed.
    pub failures: u64,
    /// Items in all attempts.
    pub items: u64,
    /// Items in successful attempts.
    pub items_written: u64,
}

/// Latencies of every write attempt since the metrics were created, in the fixed buckets of
/// [`LATENCY_BUCKET_BOUNDS_US`]: what a Prometheus histogram exposes (cumulative, so that
/// Prometheus can compute percentiles over any range it likes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// `counts[i]`: attempts that took more than bound `i - 1` and at most bound `i`; the
    /// last element counts those longer than the last bound. Not cumulative.
    pub counts: [u64; LATENCY_BUCKETS],
    /// The sum of all latencies, in microseconds.
    pub sum_us: u64,
}

impl LatencyHistogram {
    fn record(&mut self, micros: u64) {
        let bucket = LATENCY_BUCKET_BOUNDS_US.partition_point(|&bound| bound < micros);
        self.counts[bucket] += 1;
        self.sum_us = self.sum_us.saturating_add(micros);
    }

    /// Attempts counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Statistics over the window at one moment. Latencies are in milliseconds; all figures are
/// zero when the window holds no writes, except the success rate, which is then 100.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The configured window.
    pub window: Duration,
    /// How much of the window has elapsed since the metrics were created (the divisor of
    /// the throughput), at least one second.
    pub covered: Duration,
    /// Write attempts in the window.
    pub writes: u64,
    /// Successful attempts in the window.
    pub successes: u64,
    /// Failed attempts in the window.
    pub failures: u64,
    /// Successes as a percentage of attempts.
    pub success_rate_pct: f64,
    /// Items per attempt.
    pub avg_batch_size: f64,
    /// Items in successful attempts in the window.
    pub items_written: u64,
    /// Items stored per second over the covered part of the window.
    pub throughput_items_per_sec: f64,
    /// Mean latency.
    pub avg_latency_ms: f64,
    /// Longest latency (exact).
    pub max_latency_ms: f64,
    /// Median latency (histogram bin midpoint, within 6.25 %).
    pub p50_latency_ms: f64,
    /// 95th percentile latency.
    pub p95_latency_ms: f64,
    /// 99th percentile latency.
    pub p99_latency_ms: f64,
    /// Counts since creation.
    pub lifetime: Totals,
    /// Latencies since creation, bucketed.
    pub lifetime_latency: LatencyHistogram,
    /// When the last successful write was recorded.
    pub last_success: Option<DateTime<Utc>>,
    /// When the last failed write was recorded.
    pub last_failure: Option<DateTime<Utc>>,
}

impl RollingMetrics {
    /// Metrics over `window` (whole seconds, 1 s to one day) on the system clock.
    pub fn new(window: Duration) -> Result<Self, WindowError> {
        Self::with_clock(window, Arc::new(SystemClock::new()))
    }

    /// Metrics over `window` reading time from `clock`.
    pub fn with_clock(window: Duration, clock: Arc<dyn Clock>) -> Result<Self, WindowError> {
        if window.subsec_nanos() != 0 || window.is_zero() || window > MAX_WINDOW {
            return Err(WindowError(window));
        }
        let window_secs = window.as_secs();
        Ok(RollingMetrics {
            window_secs,
            clock,
            state: Mutex::new(State {
                buckets: vec![Bucket::EMPTY; window_secs as usize],
                lifetime: Totals::default(),
                lifetime_latency: LatencyHistogram::default(),
                last_success: None,
                last_failure: None,
            }),
        })
    }

    /// The configured window.
    pub fn window(&self) -> Duration {
        Duration::from_secs(self.window_secs)
    }

    /// Records one write attempt of `items` items that took `latency`.
    pub fn record(&self, items: usize, latency: Duration, outcome: Outcome) {
        let second = self.clock.monotonic().as_secs();
        let wall = self.clock.utc();
        let items = items as u64;
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let success = outcome == Outcome::Success;

        let mut state = self.lock();
        let slot = (second % self.window_secs) as usize;
        let bucket = &mut state.buckets[slot];
        if bucket.second != Some(second) {
            *bucket = Bucket::EMPTY;
            bucket.second = Some(second);
        }
        bucket.writes += 1;
        bucket.items += items;
        bucket.latency_sum_us = bucket.latency_sum_us.saturating_add(micros);
        bucket.latency_max_us = bucket.latency_max_us.max(micros);
        bucket.hist[bin_of(micros)] += 1;
        if success {
            bucket.successes += 1;
            bucket.items_written += items;
        }

        state.lifetime_latency.record(micros);
        let lifetime = &mut state.lifetime;
        lifetime.writes += 1;
        lifetime.items += items;
        if success {
            lifetime.successes += 1;
            lifetime.items_written += items;
            state.last_success = Some(wall);
        } else {
            lifetime.failures += 1;
            state.last_failure = Some(wall);
        }
    }

    /// The statistics over the window ending now.
    pub fn snapshot(&self) -> Snapshot {
        let now = self.clock.monotonic();
        let now_second = now.as_secs();
        let mut hist = [0u64; BINS];
        let mut window = Bucket::EMPTY;
        let state = self.lock();
        for bucket in &state.buckets {
            let Some(second) = bucket.second else {
                continue;
            };
            if second > now_second || now_second - second >= self.window_secs {
                continue;
            }
            window.writes += bucket.writes;
            window.successes += bucket.successes;
            window.items += bucket.items;
            window.items_written += bucket.items_written;
            window.latency_sum_us = window.latency_sum_us.saturating_add(bucket.latency_sum_us);
            window.latency_max_us = window.latency_max_us.max(bucket.latency_max_us);
            for (total, &count) in hist.iter_mut().zip(bucket.hist.iter()) {
                *total += u64::from(count);
            }
        }
        let lifetime = state.lifetime;
        let lifetime_latency = state.lifetime_latency;
        let (last_success, last_failure) = (state.last_success, state.last_failure);
        drop(state);

        let covered = now.clamp(Duration::from_secs(1), self.window());
        let writes = window.writes;
        let per_write = |value: u64| match writes {
            0 => 0.0,
            n => value as f64 / n as f64,
        };
        let ms = |micros: u64| micros as f64 / 1000.0;
        let max = window.latency_max_us;
        Snapshot {
            window: self.window(),
            covered,
            writes,
            successes: window.successes,
            failures: writes - window.successes,
            success_rate_pct: if writes == 0 {
                100.0
            } else {
                window.successes as f64 * 100.0 / writes as f64
            },
            avg_batch_size: per_write(window.items),
            items_written: window.items_written,
            throughput_items_per_sec: window.items_written as f64 / covered.as_secs_f64(),
            avg_latency_ms: per_write(window.latency_sum_us) / 1000.0,
            max_latency_ms: ms(max),
            p50_latency_ms: ms(quantile(&hist, writes, 0.50, max)),
            p95_latency_ms: ms(quantile(&hist, writes, 0.95, max)),
            p99_latency_ms: ms(quantile(&hist, writes, 0.99, max)),
            lifetime,
            lifetime_latency,
            last_success,
            last_failure,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent, so a panic elsewhere cannot corrupt it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for RollingMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RollingMetrics")
            .field("window_secs", &self.window_secs)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(window_secs: u64) -> (RollingMetrics, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        let metrics =
            RollingMetrics::with_clock(Duration::from_secs(window_secs), clock.clone()).unwrap();
        (metrics, clock)
    }

    #[test]
    fn rejects_bad_windows() {
        for bad in [
            Duration::ZERO,
            Duration::from_millis(1500),
            Duration::from_secs(86_401),
        ] {
            assert_eq!(RollingMetrics::new(bad).unwrap_err(), WindowError(bad));
        }
        assert!(RollingMetrics::new(DEFAULT_WINDOW).is_ok());
    }

    #[test]
    fn empty_snapshot_is_all_zero_with_full_success_rate() {
        let (metrics, _) = metrics(300);
        let snap = metrics.snapshot();
        assert_eq!(snap.writes, 0);
        assert_eq!(snap.success_rate_pct, 100.0);
        assert_eq!(snap.avg_batch_size, 0.0);
        assert_eq!(snap.p99_latency_ms, 0.0);
        assert_eq!(snap.throughput_items_per_sec, 0.0);
        assert_eq!(snap.last_success, None);
    }

    #[test]
    fn aggregates_counts_sizes_and_latencies() {
        let (metrics, clock) = metrics(300);
        for i in 1..=100u64 {
            metrics.record(i as usize * 10, Duration::from_millis(i), Outcome::Success);
            if i % 10 == 0 {
                clock.advance(Duration::from_secs(1));
            }
        }
        metrics.record(7, Duration::from_millis(5), Outcome::Failure);
        let snap = metrics.snapshot();
        assert_eq!((snap.writes, snap.successes, snap.failures), (101, 100, 1));
        assert!((snap.success_rate_pct - 100.0 * 100.0 / 101.0).abs() < 1e-9);
        assert!((snap.avg_batch_size - (50_500.0 + 7.0) / 101.0).abs() < 1e-9);
        assert_eq!(snap.items_written, 50_500);
        assert_eq!(snap.max_latency_ms, 100.0);
        assert!((snap.avg_latency_ms - 5055.0 / 101.0).abs() < 1e-9);
        for (got, exact) in [
            (snap.p50_latency_ms, 50.0),
            (snap.p95_latency_ms, 95.0),
            (snap.p99_latency_ms, 99.0),
        ] {
            assert!((got - exact).abs() / exact < 0.07, "{got} vs {exact}");
        }
        // 10 seconds elapsed: throughput divides by 10, not by the 300 s window.
        assert_eq!(snap.covered, Duration::from_secs(10));
        assert!((snap.throughput_items_per_sec - 5_050.0).abs() < 1e-9);
        assert_eq!(
            snap.lifetime,
            Totals {
                writes: 101,
                successes: 100,
                failures: 1,
                items: 50_507,
                items_written: 50_500
            }
        );
        let one_second = chrono::Duration::seconds(1);
        assert_eq!(snap.last_success, Some(clock.utc() - one_second));
        assert_eq!(snap.last_failure, Some(clock.utc()));
    }

    #[test]
    fn events_leave_the_window_second_by_second() {
        let (metrics, clock) = metrics(60);
        metrics.record(1, Duration::from_millis(900), Outcome::Success);
        clock.advance(Duration::from_secs(30));
        metrics.record(2, Duration::from_millis(10), Outcome::Success);
        clock.advance(Duration::from_secs(29));
        assert_eq!(metrics.snapshot().writes, 2);
        clock.advance(Duration::from_secs(1));
        let snap = metrics.snapshot();
        assert_eq!(snap.writes, 1, "the first event is 60 s old");
        assert_eq!(snap.max_latency_ms, 10.0, "its latency left with it");
        assert_eq!(snap.covered, Duration::from_secs(60));
        clock.advance(Duration::from_secs(30));
        assert_eq!(metrics.snapshot().writes, 0);
        assert_eq!(metrics.snapshot().lifetime.writes, 2);
    }

    #[test]
    fn a_reused_bucket_forgets_its_old_second() {
        let (metrics, clock) = metrics(5);
        metrics.record(100, Duration::from_millis(1), Outcome::Success);
        clock.advance(Duration::from_secs(5)); // same slot, new second
        metrics.record(1, Duration::from_millis(1), Outcome::Success);
        let snap = metrics.snapshot();
        assert_eq!(snap.writes, 1);
        assert_eq!(snap.items_written, 1);
    }

    #[test]
    fn the_lifetime_histogram_buckets_every_attempt_and_keeps_it() {
        let (metrics, clock) = metrics(5);
        for (micros, outcome) in [
            (0, Outcome::Success),
            (1_000, Outcome::Success), // on a bound: in that bucket (le = "0.001")
            (1_001, Outcome::Failure),
            (2_000_000, Outcome::Success),
            (2_000_001, Outcome::Success),
            (3_600_000_000, Outcome::Failure), // past the last bound
        ] {
            metrics.record(10, Duration::from_micros(micros), outcome);
        }
        clock.advance(Duration::from_secs(60)); // the window forgets; the lifetime does not
        let histogram = metrics.snapshot().lifetime_latency;
        let mut expected = [0; LATENCY_BUCKETS];
        expected[0] = 2;
        expected[1] = 1;
        expected[10] = 1; // le = 2 s
        expected[11] = 1; // le = 5 s
        expected[LATENCY_BUCKETS - 1] = 1;
        assert_eq!(histogram.counts, expected);
        assert_eq!(histogram.count(), 6);
        assert_eq!(histogram.sum_us, 3_604_002_002);
        assert_eq!(LATENCY_BUCKET_BOUNDS_US[10], 2_000_000);
    }

    #[test]
    fn recording_from_many_threads_loses_nothing() {
        let metrics = Arc::new(RollingMetrics::new(DEFAULT_WINDOW).unwrap());
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..10_000 {
                        metrics.record(3, Duration::from_micros(250), Outcome::Success);
                    }
                });
            }
            scope.spawn(|| {
                for _ in 0..100 {
                    let snap = metrics.snapshot();
                    assert_eq!(snap.items_written, snap.writes * 3);
                }
            });
        });
        let snap = metrics.snapshot();
        assert_eq!(snap.lifetime.writes, 40_000);
        assert_eq!(snap.lifetime.items_written, 120_000);
    }
}
