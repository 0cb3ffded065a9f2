use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Lets one caller through per interval, without a lock: for log lines on hot paths.
pub(crate) struct RateLimit {
    origin: Instant,
    interval_nanos: u64,
    /// Nanoseconds since `origin` of the last allowed call, plus one; 0 means never.
    last: AtomicU64,
}

impl RateLimit {
    pub(crate) fn new(interval: Duration) -> Self {
        RateLimit {
            origin: Instant::now(),
            interval_nanos: u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX),
            last: AtomicU64::new(0),
        }
    }

    /// Whether a call at `now` may go ahead. Of concurrent callers, exactly one wins.
    pub(crate) fn allow(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.origin);
        let stamp = u64::try_from(elapsed.as_nanos())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1);
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && stamp.saturating_sub(last) < self.interval_nanos {
            return false;
        }
        self.last
            .compare_exchange(last, stamp, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_first_call_then_one_per_interval() {
        let limit = RateLimit::new(Duration::from_secs(1));
        let start = limit.origin;
        assert!(limit.allow(start));
        assert!(!limit.allow(start + Duration::from_millis(1)));
        assert!(!limit.allow(start + Duration::from_millis(999)));
        assert!(limit.allow(start + Duration::from_millis(1000)));
        assert!(!limit.allow(start + Duration::from_millis(1500)));
        assert!(limit.allow(start + Duration::from_secs(60)));
    }

    #[test]
    fn a_burst_of_a_million_calls_in_one_interval_passes_once() {
        let limit = RateLimit::new(Duration::from_secs(1));
        let start = limit.origin;
        let allowed = (0..1_000_000u64)
            .filter(|&i| limit.allow(start + Duration::from_nanos(i * 900)))
            .count();
        assert_eq!(allowed, 1);
    }

    #[test]
    fn concurrent_callers_get_one_pass() {
        let limit = RateLimit::new(Duration::from_secs(3600));
        let now = Instant::now();
        let passes: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| (0..10_000).filter(|_| limit.allow(now)).count()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(passes, 1);
    }
}
