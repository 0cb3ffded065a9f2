use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Lets one caller through per interval, without a lock: for log lines on hot paths.
pub(crate) struct RateLimit {
    interval_nanos: u64,
    /// [`now_nanos`] of the last allowed call, plus one; 0 means never.
    last: AtomicU64,
}

impl RateLimit {
    pub(crate) fn new(interval: Duration) -> Self {
        RateLimit {
            interval_nanos: u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX),
            last: AtomicU64::new(0),
        }
    }

    /// Whether a call at `now` (from [`now_nanos`]) may go ahead. Of concurrent callers,
    /// exactly one wins.
    pub(crate) fn allow(&self, now: u64) -> bool {
        let stamp = now.saturating_add(1);
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && stamp.saturating_sub(last) < self.interval_nanos {
            return false;
        }
        self.last
            .compare_exchange(last, stamp, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

/// Nanoseconds on a monotonic clock that is cheap to read, for a limit of about a second:
/// a displacing push asks for the time on every call, and `Instant::now` (with the
/// conversion to nanoseconds) was the largest part of such a push.
#[cfg(target_os = "linux")]
pub(crate) fn now_nanos() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid place for the result. The coarse clock reads the kernel's
    // last tick (a few milliseconds' resolution) without reading the hardware counter.
    let failed = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut now) } != 0;
    if failed {
        return fallback_now_nanos();
    }
    (now.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(now.tv_nsec as u64)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn now_nanos() -> u64 {
    fallback_now_nanos()
}

fn fallback_now_nanos() -> u64 {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(std::time::Instant::now);
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn allows_the_first_call_then_one_per_interval() {
        let limit = RateLimit::new(Duration::from_secs(1));
        let start = 5 * MS;
        assert!(limit.allow(start));
        assert!(!limit.allow(start + MS));
        assert!(!limit.allow(start + 999 * MS));
        assert!(limit.allow(start + 1000 * MS));
        assert!(!limit.allow(start + 1500 * MS));
        assert!(limit.allow(start + 60_000 * MS));
    }

    #[test]
    fn the_first_call_at_time_zero_is_allowed_and_counted() {
        let limit = RateLimit::new(Duration::from_secs(1));
        assert!(limit.allow(0));
        assert!(!limit.allow(1));
    }

    #[test]
    fn a_burst_of_a_million_calls_in_one_interval_passes_once() {
        let limit = RateLimit::new(Duration::from_secs(1));
        // Under Miri (which checks for undefined behaviour, not counts) a shorter burst.
        let calls: u64 = if cfg!(miri) { 10_000 } else { 1_000_000 };
        let allowed = (0..calls).filter(|&i| limit.allow(7 + i * 900)).count();
        assert_eq!(allowed, 1);
    }

    #[test]
    fn concurrent_callers_get_one_pass() {
        let limit = RateLimit::new(Duration::from_secs(3600));
        let now = now_nanos();
        let calls = if cfg!(miri) { 500 } else { 10_000 };
        let passes: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| (0..calls).filter(|_| limit.allow(now)).count()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(passes, 1);
    }

    #[test]
    fn the_clock_moves_forward() {
        let before = now_nanos();
        std::thread::sleep(Duration::from_millis(30));
        let after = now_nanos();
        assert!(after >= before + 10 * MS, "{before} then {after}");
    }
}
