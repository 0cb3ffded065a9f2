//! Time for the writer: now, wall time, and sleeps that shutdown can cut short.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use rolling_metrics::{Clock, ManualClock, SystemClock};

/// A clock the writer can also sleep on. Implemented for the real [`SystemClock`] and, for
/// tests, [`ManualClock`] (sleeping advances it at once) and [`crate::testing::TestClock`].
pub trait WriterClock: Clock {
    /// Sleeps for `duration`, or less if `wake` is signalled; returns whether it was.
    fn sleep(&self, duration: Duration, wake: &Wake) -> bool;
}

impl WriterClock for SystemClock {
    fn sleep(&self, duration: Duration, wake: &Wake) -> bool {
        wake.wait(duration)
    }
}

impl WriterClock for ManualClock {
    /// Advances the clock by `duration` at once, so code that sleeps in a loop still sees
    /// time pass; returns whether `wake` is set.
    fn sleep(&self, duration: Duration, wake: &Wake) -> bool {
        self.advance(duration);
        wake.is_set()
    }
}

/// A one-way signal that ends sleeps early: set once at shutdown, never cleared.
#[derive(Debug, Default)]
pub struct Wake {
    set: Mutex<bool>,
    changed: Condvar,
}

impl Wake {
    /// A signal not yet set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the signal and wakes every sleeper.
    pub fn set(&self) {
        *self.set.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.changed.notify_all();
    }

    /// Whether the signal is set.
    pub fn is_set(&self) -> bool {
        *self.set.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks for up to `timeout` or until the signal is set; returns whether it is set.
    pub fn wait(&self, timeout: Duration) -> bool {
        let guard = self.set.lock().unwrap_or_else(PoisonError::into_inner);
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, timeout, |set| !*set)
            .unwrap_or_else(PoisonError::into_inner);
        *guard
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn wake_cuts_a_real_sleep_short() {
        let wake = Arc::new(Wake::new());
        let sleeper = {
            let wake = wake.clone();
            std::thread::spawn(move || SystemClock::new().sleep(Duration::from_secs(60), &wake))
        };
        std::thread::sleep(Duration::from_millis(20));
        let started = Instant::now();
        wake.set();
        assert!(sleeper.join().unwrap());
        assert!(started.elapsed() < Duration::from_secs(10));
        // Once set, sleeps return at once.
        assert!(SystemClock::new().sleep(Duration::from_secs(60), &wake));
    }

    #[test]
    fn real_sleep_without_wake_lasts() {
        let started = Instant::now();
        assert!(!SystemClock::new().sleep(Duration::from_millis(30), &Wake::new()));
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn manual_sleep_advances_the_clock() {
        let clock = ManualClock::new();
        assert!(!clock.sleep(Duration::from_secs(4), &Wake::new()));
        assert_eq!(clock.monotonic(), Duration::from_secs(4));
    }
}
