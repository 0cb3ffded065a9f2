use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// Where [`crate::RollingMetrics`] reads the time. Swap in [`ManualClock`] to test window
/// expiry without waiting.
pub trait Clock: Send + Sync {
    /// Monotonic time since a fixed, arbitrary origin; never goes backwards.
    fn monotonic(&self) -> Duration;
    /// Wall-clock time, for "last write" stamps shown to people.
    fn utc(&self) -> DateTime<Utc>;
}

/// The real clocks: [`Instant`] and the system time.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose monotonic origin is now.
    pub fn new() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }

    fn utc(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to, for tests.
///
/// ```
/// use std::time::Duration;
/// use rolling_metrics::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let before = clock.utc();
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(clock.monotonic(), Duration::from_secs(90));
/// assert_eq!((clock.utc() - before).num_seconds(), 90);
/// ```
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<(Duration, DateTime<Utc>)>,
}

impl ManualClock {
    /// Monotonic time zero; wall time 2025-11-02T14:30:00Z.
    pub fn new() -> Self {
        let start = DateTime::from_timestamp(1_762_093_800, 0).unwrap_or_default();
        ManualClock {
            now: Mutex::new((Duration::ZERO, start)),
        }
    }

    /// Moves both clocks forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        now.0 += by;
        now.1 += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn monotonic(&self) -> Duration {
        self.now.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    fn utc(&self) -> DateTime<Utc> {
        self.now.lock().unwrap_or_else(|e| e.into_inner()).1
    }
}
