#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod overflow;
mod rate_limit;
mod ring;
mod sync;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use rate_limit::RateLimit;
use ring::Ring;

/// How often at most the overflow warning is logged, however many items are displaced.
pub const OVERFLOW_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// A bounded MPMC queue that displaces its oldest item when full. Share it with `Arc`.
pub struct RingBuffer<T> {
    /// The slots and the one atomic word that says who owns which (see `ring.rs`).
    ring: Ring<T>,
    /// The smallest threshold a sleeping consumer waits for, `usize::MAX` when none sleeps.
    /// Producers read only this on the fast path.
    wake_at: CachePaddedUsize,
    /// Thresholds of the consumers inside `wait_for`.
    waiters: Mutex<Vec<usize>>,
    wakeup: Condvar,
    overflow_log: RateLimit,
    /// What an overflow means where this buffer is used, added to the warning.
    overflow_note: OnceLock<Box<str>>,
}

/// `wake_at` is read by every push and written only when consumers go to sleep: its own
/// cache line keeps it out of the way of the ring's busy word.
type CachePaddedUsize = crossbeam_utils::CachePadded<AtomicUsize>;

/// What ended a [`RingBuffer::wait_for`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// The buffer held at least the threshold.
    Ready,
    /// The timeout passed first.
    TimedOut,
    /// The buffer was closed (items may remain: drain them).
    Closed,
}

/// What [`RingBuffer::push_batch`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchPush {
    /// Items stored.
    pub pushed: usize,
    /// Older items displaced (and dropped) to make room; also added to the overflow count.
    pub displaced: usize,
}

/// `capacity` was zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ring buffer capacity must be at least 1")]
pub struct ZeroCapacity;

/// The buffer is closed; the refused item (or batch) is handed back inside.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Closed<T>(pub T);

impl<T> Closed<T> {
    /// The refused item or batch.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Closed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Closed(..)")
    }
}

impl<T> fmt::Display for Closed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the ring buffer is closed and refuses new items")
    }
}

impl<T> std::error::Error for Closed<T> {}

const NOBODY_WAITS: usize = usize::MAX;

impl<T> RingBuffer<T> {
    /// The largest capacity [`new`](Self::new) accepts: 134,217,728 items.
    pub const MAX_CAPACITY: usize = ring::MAX_CAPACITY;

    /// A buffer holding at most `capacity` items, allocated up front
    /// (`capacity *` [`bytes_per_slot`](Self::bytes_per_slot) bytes).
    ///
    /// # Panics
    ///
    /// If `capacity` is above [`MAX_CAPACITY`](Self::MAX_CAPACITY).
    pub fn new(capacity: usize) -> Result<Self, ZeroCapacity> {
        if capacity == 0 {
            return Err(ZeroCapacity);
        }
        Ok(RingBuffer {
            ring: Ring::new(capacity),
            wake_at: CachePaddedUsize::new(AtomicUsize::new(NOBODY_WAITS)),
            waiters: Mutex::new(Vec::new()),
            wakeup: Condvar::new(),
            overflow_log: RateLimit::new(OVERFLOW_LOG_INTERVAL),
            overflow_note: OnceLock::new(),
        })
    }

    /// Adds `note` to the overflow warning, to tell the operator what an overflow means where
    /// the buffer is used (the buffer knows nothing of what drains it). The first call wins;
    /// returns whether this one did.
    pub fn set_overflow_note(&self, note: impl Into<Box<str>>) -> bool {
        self.overflow_note.set(note.into()).is_ok()
    }

    /// Bytes the buffer allocates per item of capacity: the item itself plus an 8-byte stamp
    /// (72 for a 64-byte item). Memory the items own elsewhere (their strings) is not
    /// included.
    pub const fn bytes_per_slot() -> usize {
        Ring::<T>::slot_bytes()
    }

    /// Stores `item`. Returns the oldest item if it had to be displaced to make room (one
    /// overflow is counted), or `Err(Closed(item))` after [`close`](Self::close).
    // Inlined so the caller keeps the result in registers: a call with its register saves and
    // its result written to memory cost as much as the push's one atomic swap.
    #[inline(always)]
    pub fn push(&self, item: T) -> Result<Option<T>, Closed<T>> {
        let pushed = self.ring.push(item).map_err(Closed)?;
        if pushed.log_overflow {
            self.log_overflow();
        }
        self.wake_consumers(pushed.len);
        Ok(pushed.displaced)
    }

    /// Stores every item, displacing the oldest as needed, or refuses the whole batch (handed
    /// back untouched) after [`close`](Self::close). Displaced items are dropped and counted.
    pub fn push_batch<I>(&self, items: I) -> Result<BatchPush, Closed<I>>
    where
        I: IntoIterator<Item = T>,
    {
        let pushed = self.ring.push_batch(items).map_err(Closed)?;
        // A batch that displaces always looks at the clock (once for the whole batch).
        if pushed.displaced > 0 {
            self.log_overflow();
        }
        if pushed.pushed > 0 {
            self.wake_consumers(pushed.len);
        }
        Ok(BatchPush {
            pushed: pushed.pushed,
            displaced: pushed.displaced,
        })
    }

    /// Takes the oldest item.
    #[inline]
    pub fn pop(&self) -> Option<T> {
        self.ring.pop()
    }

    /// Moves up to `max` of the oldest items, in order, to the end of `out`; returns how many.
    /// The items are taken with one atomic operation, however many there are.
    pub fn drain_into(&self, out: &mut Vec<T>, max: usize) -> usize {
        self.ring.drain_into(out, max)
    }

    /// Blocks until the buffer holds at least `threshold` items ([`Wait::Ready`]), `timeout`
    /// passes ([`Wait::TimedOut`]) or the buffer is closed ([`Wait::Closed`]).
    ///
    /// A threshold above the capacity is treated as the capacity, so a full buffer always
    /// satisfies it. Ready wins over Closed when both hold.
    pub fn wait_for(&self, threshold: usize, timeout: Duration) -> Wait {
        let threshold = threshold.min(self.capacity());
        if self.len() >= threshold {
            return Wait::Ready;
        }
        if self.is_closed() {
            return Wait::Closed;
        }
        let deadline = Instant::now().checked_add(timeout);
        let mut waiters = self.lock_waiters();
        waiters.push(threshold);
        let outcome = loop {
            // Publish our threshold before looking at the length; a producer does the
            // opposite (push, then read `wake_at`), so one of us always sees the other.
            self.wake_at.store(
                waiters.iter().copied().min().unwrap_or(NOBODY_WAITS),
                Ordering::SeqCst,
            );
            if self.len() >= threshold {
                break Wait::Ready;
            }
            if self.is_closed() {
                break Wait::Closed;
            }
            let remaining = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(remaining) if !remaining.is_zero() => remaining,
                    _ => break Wait::TimedOut,
                },
                None => Duration::from_secs(3600),
            };
            waiters = self
                .wakeup
                .wait_timeout(waiters, remaining)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        };
        if let Some(index) = waiters.iter().position(|&t| t == threshold) {
            waiters.swap_remove(index);
        }
        self.wake_at.store(
            waiters.iter().copied().min().unwrap_or(NOBODY_WAITS),
            Ordering::SeqCst,
        );
        outcome
    }

    /// Refuses every later push and wakes every waiting consumer. When `close` returns, no
    /// push is still in progress, so a final drain sees every item that was accepted.
    pub fn close(&self) {
        self.ring.close();
        let _waiters = self.lock_waiters();
        self.wakeup.notify_all();
    }

    /// Whether [`close`](Self::close) has been called.
    pub fn is_closed(&self) -> bool {
        self.ring.is_closed()
    }

    /// Items held now.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether the buffer holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most items the buffer holds.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Fill level in percent, 0.0 to 100.0.
    pub fn utilization_pct(&self) -> f64 {
        self.len() as f64 * 100.0 / self.capacity() as f64
    }

    /// Items displaced since the buffer was created.
    pub fn overflow_count(&self) -> u64 {
        self.ring.overflow_count()
    }

    #[cold]
    #[inline(never)]
    fn log_overflow(&self) {
        if self.overflow_log.allow(rate_limit::now_nanos()) {
            let total = self.overflow_count();
            match self.overflow_note.get() {
                Some(note) => log::warn!(
                    "Buffer overflow: discarded oldest data (overflow_count={total}). {note}"
                ),
                None => {
                    log::warn!("Buffer overflow: discarded oldest data (overflow_count={total})")
                }
            }
        }
    }

    /// `len` is the length the push left behind: the waiter's threshold can only be crossed
    /// by a push, and that push sees it.
    #[inline]
    fn wake_consumers(&self, len: usize) {
        let wake_at = self.wake_at.load(Ordering::SeqCst);
        if wake_at != NOBODY_WAITS && len >= wake_at {
            self.wake_consumers_slow(wake_at);
        }
    }

    #[cold]
    fn wake_consumers_slow(&self, wake_at: usize) {
        if self
            .wake_at
            .compare_exchange(wake_at, NOBODY_WAITS, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            // Taking the lock orders this notify after the waiter's check-then-sleep.
            let _waiters = self.lock_waiters();
            self.wakeup.notify_all();
        }
    }

    fn lock_waiters(&self) -> MutexGuard<'_, Vec<usize>> {
        // The list stays consistent even if a waiter panicked while holding the lock.
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> fmt::Debug for RingBuffer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingBuffer")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("overflow_count", &self.overflow_count())
            .field("closed", &self.is_closed())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_capacity_is_an_error() {
        assert_eq!(RingBuffer::<u8>::new(0).unwrap_err(), ZeroCapacity);
    }

    #[test]
    fn keeps_fifo_order_and_displaces_the_oldest() {
        let buffer = RingBuffer::new(3).unwrap();
        assert_eq!(buffer.push(1), Ok(None));
        assert_eq!(buffer.push(2), Ok(None));
        assert_eq!(buffer.push(3), Ok(None));
        assert_eq!(buffer.push(4), Ok(Some(1)));
        assert_eq!(buffer.push(5), Ok(Some(2)));
        assert_eq!(buffer.overflow_count(), 2);
        assert_eq!(buffer.len(), 3);
        assert_eq!(buffer.pop(), Some(3));
        assert_eq!(buffer.pop(), Some(4));
        assert_eq!(buffer.pop(), Some(5));
        assert_eq!(buffer.pop(), None);
        assert!(buffer.is_empty());
    }

    #[test]
    fn push_batch_counts_pushed_and_displaced() {
        let buffer = RingBuffer::new(4).unwrap();
        assert_eq!(
            buffer.push_batch(0..3),
            Ok(BatchPush {
                pushed: 3,
                displaced: 0
            })
        );
        assert_eq!(
            buffer.push_batch(3..6),
            Ok(BatchPush {
                pushed: 3,
                displaced: 2
            })
        );
        assert_eq!(buffer.overflow_count(), 2);
        let mut out = Vec::new();
        buffer.drain_into(&mut out, 10);
        assert_eq!(out, [2, 3, 4, 5]);
    }

    #[test]
    fn drain_into_respects_max_and_appends() {
        let buffer = RingBuffer::new(10).unwrap();
        buffer.push_batch(0..10).unwrap();
        let mut out = vec![-1];
        assert_eq!(buffer.drain_into(&mut out, 4), 4);
        assert_eq!(out, [-1, 0, 1, 2, 3]);
        assert_eq!(buffer.drain_into(&mut out, 0), 0);
        assert_eq!(buffer.drain_into(&mut out, 100), 6);
        assert_eq!(out.len(), 11);
        assert_eq!(buffer.drain_into(&mut out, 100), 0);
    }

    #[test]
    fn utilization_and_capacity() {
        let buffer = RingBuffer::new(8).unwrap();
        assert_eq!(buffer.capacity(), 8);
        assert_eq!(buffer.utilization_pct(), 0.0);
        buffer.push_batch(0..2).unwrap();
        assert_eq!(buffer.utilization_pct(), 25.0);
        buffer.push_batch(0..20).unwrap();
        assert_eq!(buffer.utilization_pct(), 100.0);
    }

    #[test]
    fn closed_buffer_refuses_and_hands_items_back() {
        let buffer = RingBuffer::new(4).unwrap();
        buffer.push(1).unwrap();
        buffer.close();
        assert!(buffer.is_closed());
        assert_eq!(buffer.push(2).unwrap_err().into_inner(), 2);
        let refused = buffer.push_batch(vec![3, 4]).unwrap_err().into_inner();
        assert_eq!(refused, [3, 4]);
        // What was accepted before close stays drainable.
        assert_eq!(buffer.pop(), Some(1));
        assert_eq!(buffer.pop(), None);
        assert_eq!(buffer.wait_for(1, Duration::from_secs(5)), Wait::Closed);
    }

    #[test]
    fn wait_for_returns_at_once_when_satisfied() {
        let buffer = RingBuffer::new(4).unwrap();
        assert_eq!(buffer.wait_for(0, Duration::from_secs(60)), Wait::Ready);
        buffer.push_batch(0..4).unwrap();
        // A threshold past the capacity is met by a full buffer.
        assert_eq!(buffer.wait_for(1_000, Duration::from_secs(60)), Wait::Ready);
        buffer.close();
        assert_eq!(buffer.wait_for(2, Duration::from_secs(60)), Wait::Ready);
    }

    #[test]
    fn wait_for_zero_timeout_times_out_immediately() {
        let buffer = RingBuffer::<u8>::new(4).unwrap();
        assert_eq!(buffer.wait_for(1, Duration::ZERO), Wait::TimedOut);
        assert_eq!(buffer.wake_at.load(Ordering::SeqCst), NOBODY_WAITS);
    }

    #[test]
    fn closed_error_displays_without_the_item() {
        let error = RingBuffer::new(1)
            .map(|b| {
                b.close();
                b.push("secret").unwrap_err()
            })
            .unwrap();
        assert_eq!(format!("{error:?}"), "Closed(..)");
        assert!(!error.to_string().contains("secret"));
    }
}
