//! Test doubles for code that embeds the writer: a sink wrapper that fails on command, and a
//! clock that records the writer's sleeps instead of sleeping.
//!
//! ```
//! use oracle_batch::testing::FaultySink;
//! use oracle_batch::{Sink, SinkError, SqliteSink};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let sqlite = SqliteSink::open(dir.path().join("t.db"), "TAG_VALUES").unwrap();
//! let (mut sink, faults) = FaultySink::new(sqlite);
//! faults.fail_next(2, SinkError::transient("ORA-12170: TNS:Connect timeout occurred"));
//! assert!(sink.write_batch(&[]).is_err());
//! assert!(sink.write_batch(&[]).is_err());
//! assert!(sink.write_batch(&[]).is_ok());
//! assert_eq!(faults.write_calls(), 3);
//! ```

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rolling_metrics::{Clock, ManualClock};
use tag_model::TagValue;

use crate::clock::{Wake, WriterClock};
use crate::sink::{Sink, SinkError, WriteReport};

/// Wraps a sink and fails its writes and probes as planned through [`Faults`].
pub struct FaultySink<S> {
    inner: S,
    faults: Arc<Faults>,
}

/// The failure plan of a [`FaultySink`], shared with the test.
#[derive(Default)]
pub struct Faults {
    planned: Mutex<Plan>,
    write_calls: AtomicUsize,
    probe_calls: AtomicUsize,
}

#[derive(Default)]
struct Plan {
    next: VecDeque<SinkError>,
    always: Option<SinkError>,
    write_delay: Option<(Option<Arc<TestClock>>, Duration)>,
}

impl<S: Sink> FaultySink<S> {
    /// Wraps `inner`; keep the returned [`Faults`] to steer it.
    pub fn new(inner: S) -> (Self, Arc<Faults>) {
        let faults = Arc::new(Faults::default());
        (
            FaultySink {
                inner,
                faults: Arc::clone(&faults),
            },
            faults,
        )
    }

    /// The wrapped sink.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl Faults {
    /// The next `count` writes and probes fail with `error`.
    pub fn fail_next(&self, count: usize, error: SinkError) {
        let mut plan = self.plan();
        plan.next.extend(std::iter::repeat_n(error, count));
    }

    /// Every write and probe fails with `error` until [`heal`](Self::heal).
    pub fn fail_always(&self, error: SinkError) {
        self.plan().always = Some(error);
    }

    /// Clears every planned failure.
    pub fn heal(&self) {
        let mut plan = self.plan();
        plan.next.clear();
        plan.always = None;
    }

    /// Each write first advances `clock` by `latency`, as a slow database would take time.
    pub fn slow_writes(&self, clock: Arc<TestClock>, latency: Duration) {
        self.plan().write_delay = Some((Some(clock), latency));
    }

    /// Each write first sleeps for `latency` of real time.
    pub fn slow_writes_real(&self, latency: Duration) {
        self.plan().write_delay = Some((None, latency));
    }

    /// Writes attempted so far, failed ones included.
    pub fn write_calls(&self) -> usize {
        self.write_calls.load(Ordering::SeqCst)
    }

    /// Probes attempted so far.
    pub fn probe_calls(&self) -> usize {
        self.probe_calls.load(Ordering::SeqCst)
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.planned.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn next_failure(&self) -> Option<SinkError> {
        let mut plan = self.plan();
        plan.next.pop_front().or_else(|| plan.always.clone())
    }
}

impl<S: Sink> Sink for FaultySink<S> {
    fn write_batch(&mut self, batch: &[TagValue]) -> Result<WriteReport, SinkError> {
        self.faults.write_calls.fetch_add(1, Ordering::SeqCst);
        let delay = self.faults.plan().write_delay.clone();
        if let Some((clock, latency)) = delay {
            match clock {
                Some(clock) => clock.advance(latency),
                None => std::thread::sleep(latency),
            }
        }
        match self.faults.next_failure() {
            Some(error) => Err(error),
            None => self.inner.write_batch(batch),
        }
    }

    fn probe(&mut self) -> Result<(), SinkError> {
        self.faults.probe_calls.fetch_add(1, Ordering::SeqCst);
        match self.faults.next_failure() {
            Some(error) => Err(error),
            None => self.inner.probe(),
        }
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// A manual clock that records every sleep of the writer, so tests can check the retry
/// delays without waiting for them. With [`hold_sleeps`](Self::hold_sleeps) sleeps block
/// instead, until the test releases them, so a test can act while the writer waits.
#[derive(Debug, Default)]
pub struct TestClock {
    clock: ManualClock,
    sleeps: Mutex<Vec<Duration>>,
    held: Mutex<bool>,
    released: Condvar,
}

impl TestClock {
    /// A clock at monotonic zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The sleeps requested so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.sleeps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Moves time forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// From now on a sleep blocks (after being recorded) until
    /// [`release_sleeps`](Self::release_sleeps) or until its wake signal is set.
    pub fn hold_sleeps(&self) {
        *self.held.lock().unwrap_or_else(PoisonError::into_inner) = true;
    }

    /// Ends the sleeps in progress and lets later ones pass at once again.
    pub fn release_sleeps(&self) {
        *self.held.lock().unwrap_or_else(PoisonError::into_inner) = false;
        self.released.notify_all();
    }
}

impl Clock for TestClock {
    fn monotonic(&self) -> Duration {
        self.clock.monotonic()
    }

    fn utc(&self) -> DateTime<Utc> {
        self.clock.utc()
    }
}

impl WriterClock for TestClock {
    fn sleep(&self, duration: Duration, wake: &Wake) -> bool {
        self.sleeps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(duration);
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        // The wake signal has its own lock; look at it every few milliseconds.
        while *held && !wake.is_set() {
            held = self
                .released
                .wait_timeout(held, Duration::from_millis(5))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        drop(held);
        self.clock.advance(duration);
        wake.is_set()
    }
}
