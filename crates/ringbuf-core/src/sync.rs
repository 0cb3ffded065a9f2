//! The synchronisation primitives of the ring, from `std` normally and from `loom` when the
//! crate is built with `RUSTFLAGS="--cfg loom"` to model-check the ring's interleavings.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64};
#[cfg(loom)]
pub(crate) use loom::sync::RwLock;

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64};
#[cfg(not(loom))]
pub(crate) use std::sync::RwLock;

/// `loom::cell::UnsafeCell`'s closure API over `std::cell::UnsafeCell`, so the same code
/// builds both ways (the shape loom recommends).
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(data: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(data))
    }

    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// Waiting for another thread to finish a step it has begun (publish a slot, free a slot):
/// spin briefly, then give the core away, since on a busy machine the thread we wait for may
/// need our core to run.
pub(crate) struct Backoff {
    step: u32,
}

impl Backoff {
    #[cfg_attr(loom, allow(dead_code))]
    const SPIN_LIMIT: u32 = 6;

    pub(crate) fn new() -> Self {
        Backoff { step: 0 }
    }

    /// After a lost compare-and-swap: another thread made progress, retry soon.
    #[inline]
    pub(crate) fn spin(&mut self) {
        #[cfg(loom)]
        loom::thread::yield_now();
        #[cfg(not(loom))]
        for _ in 0..1u32 << self.step.min(Self::SPIN_LIMIT) {
            std::hint::spin_loop();
        }
        self.step = self.step.saturating_add(1);
    }

    /// While another thread's step is unfinished.
    #[inline]
    pub(crate) fn snooze(&mut self) {
        #[cfg(loom)]
        loom::thread::yield_now();
        #[cfg(not(loom))]
        if self.step <= Self::SPIN_LIMIT {
            for _ in 0..1u32 << self.step {
                std::hint::spin_loop();
            }
        } else {
            std::thread::yield_now();
        }
        self.step = self.step.saturating_add(1);
    }
}
