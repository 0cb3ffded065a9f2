//! The overflow count, kept per thread so that a displacing push counts without a locked
//! instruction: a second read-modify-write after the push's swap cost as much as the swap.
//!
//! Each thread that displaces takes one of [`STRIPES`] stripes for its lifetime (process
//! wide, released when the thread ends) and counts in that stripe's counter of the buffer
//! with a plain load and store: no other thread writes it. Threads beyond the stripes, and
//! code running after this thread's thread-locals are gone, count in a shared counter with
//! an atomic add. The count is the sum: exact once the pushes have returned, and never
//! lower than an earlier reading by the same reader (each counter only grows).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

/// Stripes a buffer has (one cache line each): more producers than this at once share one
/// atomic counter.
pub(crate) const STRIPES: usize = 32;

pub(crate) struct OverflowCount {
    /// Stripe `k`'s counter is written only by the thread holding stripe `k`.
    owned: Box<[CachePadded<AtomicU64>; STRIPES]>,
    shared: AtomicU64,
}

impl OverflowCount {
    pub(crate) fn new() -> Self {
        OverflowCount {
            owned: Box::new(std::array::from_fn(|_| CachePadded::new(AtomicU64::new(0)))),
            shared: AtomicU64::new(0),
        }
    }

    /// Counts one displacement; returns this thread's own count so far (for sampling the
    /// clock every so many displacements).
    #[inline]
    pub(crate) fn add_one(&self) -> u64 {
        match stripe() {
            Some(k) => {
                let counter = &self.owned[k];
                // Only this thread writes this counter (see the module docs), so a load and a
                // store count without losing a concurrent increment.
                let count = counter.load(Ordering::Relaxed).wrapping_add(1);
                counter.store(count, Ordering::Relaxed);
                count
            }
            None => self.shared.fetch_add(1, Ordering::Relaxed).wrapping_add(1),
        }
    }

    /// All displacements counted so far.
    pub(crate) fn total(&self) -> u64 {
        self.owned
            .iter()
            .map(|counter| counter.load(Ordering::Relaxed))
            .fold(self.shared.load(Ordering::Relaxed), u64::wrapping_add)
    }
}

/// Bit `k` set: stripe `k` belongs to a live thread.
#[cfg_attr(loom, allow(dead_code))]
static STRIPES_TAKEN: AtomicU32 = AtomicU32::new(0);

const _: () = assert!(STRIPES == u32::BITS as usize);

/// Holds a thread's stripe and gives it back when the thread ends.
#[cfg(not(loom))]
struct StripeGuard(usize);

#[cfg(not(loom))]
impl Drop for StripeGuard {
    fn drop(&mut self) {
        // Later pushes from this thread (from other thread-locals' destructors) count in
        // the shared counter.
        let _ = STRIPE.try_with(|stripe| stripe.set(NO_STRIPE));
        release(&STRIPES_TAKEN, self.0);
    }
}

/// Takes a free bit of `taken`, if any.
#[cfg_attr(loom, allow(dead_code))]
fn claim(taken: &AtomicU32) -> Option<usize> {
    let mut current = taken.load(Ordering::Relaxed);
    while current != u32::MAX {
        let k = (!current).trailing_zeros();
        // Acquire: the counts the stripe's previous owner stored happen before ours.
        match taken.compare_exchange_weak(
            current,
            current | 1 << k,
            Ordering::Acquire,
            Ordering::Relaxed,
        ) {
            Ok(_) => return Some(k as usize),
            Err(actual) => current = actual,
        }
    }
    None
}

#[cfg_attr(loom, allow(dead_code))]
fn release(taken: &AtomicU32, k: usize) {
    // Release: our last counts happen before the next owner's.
    taken.fetch_and(!(1 << k), Ordering::Release);
}

/// This thread's stripe: a constant-initialised thread-local (one instruction to read),
/// with the guard that gives it back in a second one, touched only when claiming.
#[cfg(not(loom))]
const UNCLAIMED: usize = usize::MAX;
#[cfg(not(loom))]
const NO_STRIPE: usize = usize::MAX - 1;

#[cfg(not(loom))]
thread_local! {
    static STRIPE: std::cell::Cell<usize> = const { std::cell::Cell::new(UNCLAIMED) };
    static GUARD: std::cell::RefCell<Option<StripeGuard>> = const { std::cell::RefCell::new(None) };
}

#[cfg(not(loom))]
#[inline]
fn stripe() -> Option<usize> {
    let stripe = STRIPE.with(std::cell::Cell::get);
    if stripe < STRIPES {
        Some(stripe)
    } else if stripe == UNCLAIMED {
        claim_for_this_thread()
    } else {
        None
    }
}

#[cfg(not(loom))]
#[cold]
fn claim_for_this_thread() -> Option<usize> {
    let claimed = claim(&STRIPES_TAKEN);
    // Keep the stripe only if the guard can be stored (not while thread-locals are being
    // destroyed): without it the stripe would never be given back.
    let kept = claimed.filter(|&k| {
        GUARD
            .try_with(|guard| *guard.borrow_mut() = Some(StripeGuard(k)))
            .is_ok()
    });
    if let (Some(k), None) = (claimed, kept) {
        release(&STRIPES_TAKEN, k);
    }
    let _ = STRIPE.try_with(|stripe| stripe.set(kept.unwrap_or(NO_STRIPE)));
    kept
}

/// Loom runs its threads on one OS thread: every push counts in the shared counter there.
#[cfg(loom)]
fn stripe() -> Option<usize> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_add_up_exactly() {
        // Fewer per thread under Miri (it checks for races and undefined behaviour).
        const PER_THREAD: u64 = if cfg!(miri) { 20 } else { 1_000 };
        let count = OverflowCount::new();
        // More threads than stripes, in two waves, so stripes are reused and some threads
        // count in the shared counter.
        for _ in 0..2 {
            std::thread::scope(|scope| {
                for _ in 0..STRIPES + 8 {
                    scope.spawn(|| {
                        for _ in 0..PER_THREAD {
                            count.add_one();
                        }
                    });
                }
            });
        }
        assert_eq!(count.total(), 2 * (STRIPES as u64 + 8) * PER_THREAD);
    }

    #[test]
    fn stripes_are_unique_until_given_back() {
        let taken = AtomicU32::new(0);
        let mut claimed: Vec<usize> = (0..STRIPES).filter_map(|_| claim(&taken)).collect();
        claimed.sort_unstable();
        assert_eq!(claimed, (0..STRIPES).collect::<Vec<_>>());
        assert_eq!(claim(&taken), None, "all stripes are taken");
        release(&taken, 17);
        assert_eq!(claim(&taken), Some(17));
    }

    #[test]
    fn a_thread_keeps_its_stripe() {
        assert_eq!(stripe(), stripe());
    }

    #[test]
    fn own_count_is_returned_for_sampling() {
        let count = OverflowCount::new();
        let counts: Vec<u64> = (0..5).map(|_| count.add_one()).collect();
        assert_eq!(counts, [1, 2, 3, 4, 5]);
    }
}
