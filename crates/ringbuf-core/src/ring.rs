//! The slot ring under [`RingBuffer`](crate::RingBuffer): who owns which slot, decided by one
//! atomic word.
//!
//! # Design
//!
//! ```text
//! state word (AtomicU64):  bit 63   bits 35..=62         bits 0..=34
//!                          closed   len (items held)     tail (next position to write)
//!
//! position = lap << index_bits | index    (index < capacity; index_bits = bits of capacity - 1)
//! head     = tail - len                   (in positions: the oldest item)
//!
//! slot:  stamp (AtomicU64) | value (MaybeUninit<T>)       8 bytes + size_of::<T>()
//! stamp = position << 1 | full        full = 0: free, waiting for the writer of `position`
//!                                     full = 1: holds the item written at `position`
//! ```
//!
//! Every decision about who owns a position is one compare-and-swap on the state word:
//!
//! - a push that finds room takes position `tail` (tail + 1, len + 1);
//! - a push that finds the ring full takes position `tail` *and* the oldest item, at
//!   `tail - one lap`, in the same swap (tail + 1, len unchanged, so head moves too);
//! - a pop or a drain takes the `n` oldest positions at once (len - n);
//! - `close` sets the closed bit; single pushes swap only from an open word.
//!
//! Slots are then handed over with stamps alone (no further read-modify-write): the owner
//! of a position waits until the slot's stamp says the previous owner is done, uses the
//! value, and stores the next stamp with `Release`:
//!
//! ```text
//! writer of p:      wait stamp == free(p)        write item    stamp = full(p)
//! displacer of p:   wait stamp == full(p - lap)  swap items    stamp = full(p)
//! taker of p:       wait stamp == full(p)        read item     stamp = free(p + lap)
//! ```
//!
//! # Invariants (each one is what makes an `unsafe` access below sound)
//!
//! 1. Each position is given to exactly one writer, when the state word's tail passes it.
//! 2. Each position's item is given to exactly one taker (a pop, a drain, or the push that
//!    displaces it), when the state word's head passes it; a taker never takes a position
//!    the tail has not passed (len never goes below 0 nor above the capacity).
//! 3. A slot's value is touched only by the owner of its current stamp's next step, and
//!    only after it saw that stamp with `Acquire`; the stamp it then stores with `Release`
//!    hands the slot on. So no two threads touch a value at once, and every read sees the
//!    write before it.
//! 4. A slot holds an initialised `T` exactly when its stamp is full; the positions from
//!    head to tail are full once every in-flight writer has stored its stamp.
//!
//! Positions wrap within the 35-bit tail field. A stale position could only be confused
//! with a current one after 256 or more laps of the whole ring (2^8 laps at the largest
//! capacity, 2^25 at a capacity of 1,024) while one thread sits between two instructions.
//!
//! Progress: a thread preempted between its swap and its stamp store makes the next user of
//! that one slot wait (as in crossbeam's `ArrayQueue` and channels); nothing else waits.

use std::mem::MaybeUninit;
use std::sync::atomic::Ordering;

use crossbeam_utils::CachePadded;

use crate::overflow::OverflowCount;
use crate::sync::{AtomicBool, AtomicU64, Backoff, RwLock, UnsafeCell};

const CLOSED: u64 = 1 << 63;
/// The tail field: bits 0 to 34.
const TAIL_BITS: u32 = 35;
const TAIL_MASK: u64 = (1 << TAIL_BITS) - 1;
/// The len field: bits 35 to 62, room for 0 to 2^28 - 1 items.
const LEN_SHIFT: u32 = TAIL_BITS;
const LEN_ONE: u64 = 1 << LEN_SHIFT;
const LEN_MASK: u64 = (1 << (63 - LEN_SHIFT)) - 1;
/// The len field in place: a word with none of these bits holds no item.
const LEN_FIELD: u64 = LEN_MASK << LEN_SHIFT;
/// Stamps are positions shifted left by one; their arithmetic wraps here.
const STAMP_MASK: u64 = (1 << (TAIL_BITS + 1)) - 1;

/// The largest capacity: at 2^27 slots (27 index bits) the tail field still counts 2^8 laps
/// before it wraps.
pub(crate) const MAX_CAPACITY: usize = 1 << 27;

/// The arithmetic of positions for one capacity (the field layout of the word is fixed, so
/// its masks are constants).
#[derive(Clone, Copy, Debug)]
struct Layout {
    capacity: u64,
    /// `capacity - 1`: the index after which a position moves to the next lap.
    last_index: u64,
    /// `one_lap - 1`: the index bits of a position.
    index_mask: u64,
    one_lap: u64,
    /// The len field of a full ring: a word at or above it (closed bit aside) is full.
    full_len: u64,
}

impl Layout {
    fn new(capacity: usize) -> Self {
        assert!(
            (1..=MAX_CAPACITY).contains(&capacity),
            "ring buffer capacity {capacity} is outside 1..={MAX_CAPACITY}"
        );
        let capacity = capacity as u64;
        let index_bits = u64::BITS - (capacity - 1).leading_zeros();
        debug_assert!(TAIL_BITS >= index_bits + 8 && capacity <= LEN_MASK);
        Layout {
            capacity,
            last_index: capacity - 1,
            index_mask: (1 << index_bits) - 1,
            one_lap: 1 << index_bits,
            full_len: capacity << LEN_SHIFT,
        }
    }

    /// The word after a push into `word`: tail + 1, and len + 1 unless the ring is full
    /// (then head moves on with the tail: the oldest item is displaced).
    #[inline(always)]
    fn pushed(&self, word: u64) -> u64 {
        let grown = if self.is_full(word) { 0 } else { LEN_ONE };
        if word & self.index_mask != self.last_index {
            // Within the lap, tail + 1 carries into nothing.
            word + 1 + grown
        } else {
            // The last index of a lap: the tail goes to index 0 of the next lap.
            ((word & !TAIL_MASK) + grown) | ((word | self.index_mask) + 1) & TAIL_MASK
        }
    }

    /// Whether the ring of `word` holds `capacity` items.
    #[inline(always)]
    fn is_full(&self, word: u64) -> bool {
        word & !CLOSED >= self.full_len
    }

    #[inline(always)]
    fn tail(&self, word: u64) -> u64 {
        word & TAIL_MASK
    }

    #[inline(always)]
    fn len(&self, word: u64) -> u64 {
        (word >> LEN_SHIFT) & LEN_MASK
    }

    #[inline(always)]
    fn index(&self, position: u64) -> usize {
        (position & self.index_mask) as usize
    }

    /// The position `n` after `position`, `n <= capacity`.
    #[inline(always)]
    fn advance(&self, position: u64, n: u64) -> u64 {
        let index = position & self.index_mask;
        if index + n < self.capacity {
            position + n
        } else {
            ((position | self.index_mask) + 1 + (index + n - self.capacity)) & TAIL_MASK
        }
    }

    /// The position `n` before `position`, `n <= capacity`.
    #[inline(always)]
    fn back(&self, position: u64, n: u64) -> u64 {
        let index = position & self.index_mask;
        if index >= n {
            position - n
        } else {
            ((position & !self.index_mask).wrapping_sub(self.one_lap) + index + self.capacity - n)
                & TAIL_MASK
        }
    }

    #[inline(always)]
    fn head(&self, word: u64) -> u64 {
        self.back(self.tail(word), self.len(word))
    }

    /// The same slot one lap later.
    #[inline(always)]
    fn next_lap(&self, position: u64) -> u64 {
        (position + self.one_lap) & TAIL_MASK
    }

    /// The same slot one lap earlier.
    #[inline(always)]
    fn previous_lap(&self, position: u64) -> u64 {
        position.wrapping_sub(self.one_lap) & TAIL_MASK
    }

    #[inline(always)]
    fn free(position: u64) -> u64 {
        position << 1
    }

    #[inline(always)]
    fn full(position: u64) -> u64 {
        position << 1 | 1
    }

    /// Whether `stamp` is `target` or a later step of the same slot.
    fn reached(&self, stamp: u64, target: u64) -> bool {
        stamp.wrapping_sub(target) & STAMP_MASK <= STAMP_MASK >> 1
    }
}

struct Slot<T> {
    stamp: AtomicU64,
    value: UnsafeCell<MaybeUninit<T>>,
}

impl<T> Slot<T> {
    /// Spins (then yields) until the previous owner has stored `stamp`.
    #[inline(always)]
    fn wait_for(&self, stamp: u64) {
        if self.stamp.load(Ordering::Acquire) != stamp {
            self.wait_slow(stamp);
        }
    }

    /// Moves the item of `position` (which the caller took) out, freeing the slot for
    /// `next_lap`, the same slot's position one lap later.
    #[inline(always)]
    fn take(&self, position: u64, next_lap: u64) -> T {
        self.wait_for(Layout::full(position));
        // SAFETY: the caller's swap took this position (invariant 2) and the stamp says its
        // item is written (invariants 3 and 4); after the read the slot is free for the next
        // lap and we never touch it again.
        let item = self
            .value
            .with_mut(|value| unsafe { value.read().assume_init() });
        self.stamp.store(Layout::free(next_lap), Ordering::Release);
        item
    }

    #[cold]
    fn wait_slow(&self, stamp: u64) {
        let mut backoff = Backoff::new();
        while self.stamp.load(Ordering::Acquire) != stamp {
            backoff.snooze();
        }
    }
}

/// The fields every operation touches, on one cache line of their own.
struct Shared {
    word: AtomicU64,
    /// A run of displacing pushes is under way: set by its first push, cleared when a
    /// consumer takes items (only that makes room). Lets the overflow warning look at the clock only at the start
    /// of a run and every [`CLOCK_EVERY`] displacements within it.
    overflow_run: AtomicBool,
}

/// How many displacements of a run pass between two looks at the clock for the overflow
/// warning (reading the clock on every displacement was most of a displacing push's cost).
pub(crate) const CLOCK_EVERY: u64 = 64;

/// What a push did.
pub(crate) struct Pushed<T> {
    pub(crate) displaced: Option<T>,
    /// Items held right after this push (for the consumer wake-up check).
    pub(crate) len: usize,
    /// Whether the overflow warning should look at the clock: at the first displacement of
    /// a run, then at every [`CLOCK_EVERY`]th of this thread's.
    pub(crate) log_overflow: bool,
}

/// What a batch push did.
#[derive(Default)]
pub(crate) struct BatchPushed {
    pub(crate) pushed: usize,
    pub(crate) displaced: usize,
    /// Items held right after the last push.
    pub(crate) len: usize,
}

pub(crate) struct Ring<T> {
    shared: CachePadded<Shared>,
    overflow: OverflowCount,
    /// Batches hold it shared while they push, `close` takes it exclusively: a batch that
    /// began before `close` finishes whole, one that begins after sees the closed bit.
    batch_gate: RwLock<()>,
    layout: Layout,
    slots: Box<[Slot<T>]>,
}

// SAFETY: the ring moves `T`s between threads (so `T: Send`) and never hands out shared
// references to them (so `T: Sync` is not needed); each value is touched by one thread at
// a time (invariant 3).
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Ring<T> {}

/// Whether a push may go ahead on a closed ring: only pushes of a batch that began before
/// `close`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Admission {
    OpenOnly,
    BatchBeforeClose,
}

impl<T> Ring<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self::starting_at_lap(capacity, 0)
    }

    /// A ring whose first position is at the start of `lap` (tests start near the wrap).
    fn starting_at_lap(capacity: usize, lap: u64) -> Self {
        let layout = Layout::new(capacity);
        let first = lap.wrapping_mul(layout.one_lap) & TAIL_MASK;
        let slots = (0..capacity as u64)
            .map(|index| Slot {
                stamp: AtomicU64::new(Layout::free(first + index)),
                value: UnsafeCell::new(MaybeUninit::uninit()),
            })
            .collect();
        Ring {
            shared: CachePadded::new(Shared {
                word: AtomicU64::new(first),
                overflow_run: AtomicBool::new(false),
            }),
            overflow: OverflowCount::new(),
            batch_gate: RwLock::new(()),
            layout,
            slots,
        }
    }

    /// Bytes of one slot: the stamp and the item.
    pub(crate) const fn slot_bytes() -> usize {
        std::mem::size_of::<Slot<T>>()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.layout.capacity as usize
    }

    /// Items held, counting pushes that took a position and are still writing it.
    pub(crate) fn len(&self) -> usize {
        self.layout.len(self.shared.word.load(Ordering::SeqCst)) as usize
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.shared.word.load(Ordering::SeqCst) & CLOSED != 0
    }

    pub(crate) fn overflow_count(&self) -> u64 {
        self.overflow.total()
    }

    /// Stores `item`, or hands it back if the ring is closed.
    #[inline]
    pub(crate) fn push(&self, item: T) -> Result<Pushed<T>, T> {
        self.push_admitted(item, Admission::OpenOnly)
    }

    /// Pushes every item of `items` (taken one at a time, so a panicking iterator loses
    /// nothing already stored) unless the ring is closed before the batch begins, in which
    /// case `items` is handed back untouched. Displaced items are dropped.
    pub(crate) fn push_batch<I>(&self, items: I) -> Result<BatchPushed, I>
    where
        I: IntoIterator<Item = T>,
    {
        let _batch = self
            .batch_gate
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.is_closed() {
            return Err(items);
        }
        let mut result = BatchPushed::default();
        for item in items {
            // A batch admitted before `close` may push past the closed bit: `close` waits for it.
            let Ok(done) = self.push_admitted(item, Admission::BatchBeforeClose) else {
                unreachable!("an admitted batch push is never refused");
            };
            result.pushed += 1;
            result.len = done.len;
            if done.displaced.is_some() {
                result.displaced += 1;
            }
            // The displaced item (if any) is dropped here, after its slot was handed on.
        }
        Ok(result)
    }

    #[inline(always)]
    fn push_admitted(&self, item: T, admission: Admission) -> Result<Pushed<T>, T> {
        let Some((current, new)) = self.claim_push(admission) else {
            return Err(item);
        };
        // We own position `tail` (invariant 1) and, if the ring was full, the item one lap
        // before it (invariant 2).
        let layout = &self.layout;
        let tail = layout.tail(current);
        let index = tail & layout.index_mask;
        if layout.is_full(current) {
            return Ok(self.displace(index, tail, item, new));
        }
        let slot = self.slot(index);
        slot.wait_for(Layout::free(tail));
        // SAFETY: the stamp says the slot is free for position `tail`, which our swap gave us
        // alone (invariants 1 and 3).
        slot.value
            .with_mut(|value| unsafe { value.write(MaybeUninit::new(item)) });
        slot.stamp.store(Layout::full(tail), Ordering::Release);
        Ok(Pushed {
            displaced: None,
            len: layout.len(new) as usize,
            log_overflow: false,
        })
    }

    /// The swap of a push: returns the word before and after it, or `None` when the ring is
    /// closed to this push. The first try is inline; retries (another thread changed the word
    /// first) are out of line, so the uncontended path keeps its registers.
    #[inline(always)]
    fn claim_push(&self, admission: Admission) -> Option<(u64, u64)> {
        let word = &self.shared.word;
        let current = word.load(Ordering::Relaxed);
        if current & CLOSED != 0 && admission == Admission::OpenOnly {
            return None;
        }
        let new = self.layout.pushed(current);
        match word.compare_exchange_weak(current, new, Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => Some((current, new)),
            Err(actual) => self.claim_push_contended(actual, admission),
        }
    }

    #[cold]
    #[inline(never)]
    fn claim_push_contended(&self, mut current: u64, admission: Admission) -> Option<(u64, u64)> {
        let mut backoff = Backoff::new();
        loop {
            backoff.spin();
            if current & CLOSED != 0 && admission == Admission::OpenOnly {
                return None;
            }
            let new = self.layout.pushed(current);
            match self.shared.word.compare_exchange_weak(
                current,
                new,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some((current, new)),
                Err(actual) => current = actual,
            }
        }
    }

    /// The rest of a push whose swap took position `tail` (at `index`) and the item one lap
    /// before it: swaps the items, counts the displacement.
    #[inline(always)]
    fn displace(&self, index: u64, tail: u64, item: T, new: u64) -> Pushed<T> {
        let own_count = self.overflow.add_one();
        let slot = self.slot(index);
        slot.wait_for(Layout::full(self.layout.previous_lap(tail)));
        // SAFETY: the stamp says the slot holds the initialised item of the previous lap,
        // which our swap took (invariants 2 to 4); nobody else touches the value until we
        // store the next stamp.
        let old = slot
            .value
            .with_mut(|value| unsafe { value.replace(MaybeUninit::new(item)).assume_init() });
        slot.stamp.store(Layout::full(tail), Ordering::Release);
        let run = &self.shared.overflow_run;
        let log_overflow = if !run.load(Ordering::Relaxed) {
            run.store(true, Ordering::Relaxed);
            true
        } else {
            own_count % CLOCK_EVERY == 0
        };
        Pushed {
            displaced: Some(old),
            len: self.layout.len(new) as usize,
            log_overflow,
        }
    }

    /// The slot at `index`, an index from a position's low bits.
    #[inline(always)]
    fn slot(&self, index: u64) -> &Slot<T> {
        debug_assert!(index < self.layout.capacity);
        // SAFETY: every position the ring uses has an index below the capacity, and there
        // are `capacity` slots. Positions start at index 0 of a lap and change only by
        // `advance` and `back` (which keep the index below the capacity, wrapping to the
        // next or previous lap), `next_lap` and `previous_lap` (which keep the index), and
        // the mask of the tail field (a multiple of a lap, so the index bits survive it).
        unsafe { self.slots.get_unchecked(index as usize) }
    }

    /// Takes up to `max` of the oldest positions in one swap; returns the first and the count.
    #[inline(always)]
    fn take(&self, max: u64) -> Option<(u64, u64)> {
        let word = &self.shared.word;
        let current = word.load(Ordering::Relaxed);
        let n = self.layout.len(current).min(max);
        if n == 0 {
            return None;
        }
        let taken = match word.compare_exchange_weak(
            current,
            current - (n << LEN_SHIFT),
            Ordering::SeqCst,
            Ordering::Relaxed,
        ) {
            Ok(_) => (current, n),
            Err(actual) => self.take_contended(actual, max)?,
        };
        self.room_made();
        Some((self.layout.head(taken.0), taken.1))
    }

    /// The retries of [`take`](Self::take): returns the word before our swap and the count.
    #[cold]
    #[inline(never)]
    fn take_contended(&self, mut current: u64, max: u64) -> Option<(u64, u64)> {
        let mut backoff = Backoff::new();
        loop {
            backoff.spin();
            let n = self.layout.len(current).min(max);
            if n == 0 {
                return None;
            }
            match self.shared.word.compare_exchange_weak(
                current,
                current - (n << LEN_SHIFT),
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some((current, n)),
                Err(actual) => current = actual,
            }
        }
    }

    /// A consumer took items, so the ring has room again: a displacement after this starts
    /// a new run (and looks at the clock for the overflow warning).
    #[inline(always)]
    fn room_made(&self) {
        let run = &self.shared.overflow_run;
        if run.load(Ordering::Relaxed) {
            run.store(false, Ordering::Relaxed);
        }
    }

    /// Moves the item at `position`, which [`take`](Self::take) gave us, out of its slot.
    #[inline(always)]
    fn take_item(&self, position: u64) -> T {
        self.slot(position & self.layout.index_mask)
            .take(position, self.layout.next_lap(position))
    }

    /// Takes the oldest item: [`take`](Self::take) for one item, with the count test and
    /// the subtraction of a single item.
    #[inline]
    pub(crate) fn pop(&self) -> Option<T> {
        let word = &self.shared.word;
        let current = word.load(Ordering::Relaxed);
        if current & LEN_FIELD == 0 {
            return None;
        }
        let current = match word.compare_exchange_weak(
            current,
            current - LEN_ONE,
            Ordering::SeqCst,
            Ordering::Relaxed,
        ) {
            Ok(_) => current,
            Err(actual) => self.take_contended(actual, 1)?.0,
        };
        self.room_made();
        Some(self.take_item(self.layout.head(current)))
    }

    /// Moves up to `max` of the oldest items to the end of `out`, with one swap.
    pub(crate) fn drain_into(&self, out: &mut Vec<T>, max: usize) -> usize {
        let wanted = (max as u64).min(self.len() as u64);
        if wanted == 0 {
            return 0;
        }
        // Reserve before taking positions: nothing below may panic or allocate.
        out.reserve(wanted as usize);
        let Some((first, n)) = self.take(wanted) else {
            return 0;
        };
        let start = out.len();
        let mut places = out.spare_capacity_mut()[..n as usize].iter_mut();
        for (slots, first_of_run) in self.runs(first, n) {
            // Within a run, positions and their next-lap positions both go up by one.
            let next_laps = self.layout.next_lap(first_of_run)..;
            for ((slot, place), (position, next_lap)) in slots
                .iter()
                .zip(&mut places)
                .zip((first_of_run..).zip(next_laps))
            {
                place.write(slot.take(position, next_lap));
            }
        }
        // SAFETY: the `n` places after `start` were reserved and have just been written.
        unsafe { out.set_len(start + n as usize) };
        n as usize
    }

    /// The slots of the `n` positions from `first`, as up to two runs of consecutive slots
    /// with the position of each run's first slot (positions go up by one within a run).
    fn runs(&self, first: u64, n: u64) -> [(&[Slot<T>], u64); 2] {
        let index = self.layout.index(first);
        let in_lap = (n as usize).min(self.slots.len() - index);
        let wrapped = n as usize - in_lap;
        [
            (&self.slots[index..index + in_lap], first),
            (
                &self.slots[..wrapped],
                self.layout.advance(first, in_lap as u64),
            ),
        ]
    }

    /// Refuses later pushes and returns once every push that took a position before has
    /// stored its item.
    pub(crate) fn close(&self) {
        self.shared.word.fetch_or(CLOSED, Ordering::SeqCst);
        // Batches that began before the closed bit finish before we go on.
        drop(
            self.batch_gate
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        // The tail no longer moves. Wait for the writers of the positions still held: a
        // position below head was taken by a consumer, which waits for its writer itself.
        let layout = self.layout;
        let current = self.shared.word.load(Ordering::SeqCst);
        let mut position = layout.head(current);
        for _ in 0..layout.len(current) {
            let slot = &self.slots[layout.index(position)];
            let target = Layout::full(position);
            let mut backoff = Backoff::new();
            while !layout.reached(slot.stamp.load(Ordering::Acquire), target) {
                backoff.snooze();
            }
            position = layout.advance(position, 1);
        }
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        if !std::mem::needs_drop::<T>() {
            return;
        }
        // `&mut self`: no operation is in flight, so head..tail are exactly the full slots.
        let layout = self.layout;
        let current = self.shared.word.load(Ordering::Relaxed);
        let mut position = layout.head(current);
        for _ in 0..layout.len(current) {
            let slot = &self.slots[layout.index(position)];
            debug_assert_eq!(slot.stamp.load(Ordering::Relaxed), Layout::full(position));
            // SAFETY: a full slot holds an initialised item (invariant 4), dropped once here.
            slot.value
                .with_mut(|value| unsafe { (*value).assume_init_drop() });
            position = layout.advance(position, 1);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn positions_wrap_within_a_lap_and_the_tail_field() {
        let layout = Layout::new(5); // one lap = 8 positions, indices 0..5
        assert_eq!(layout.one_lap, 8);
        assert_eq!(layout.advance(3, 1), 4);
        assert_eq!(layout.advance(4, 1), 8);
        assert_eq!(layout.advance(3, 5), 11);
        assert_eq!(layout.back(8, 1), 4);
        assert_eq!(layout.back(11, 5), 3);
        assert_eq!(layout.back(0, 5), TAIL_MASK + 1 - 8);
        let last = TAIL_MASK & !layout.index_mask | 4;
        assert_eq!(
            layout.advance(last, 1),
            0,
            "the tail field wraps to position 0"
        );
        assert_eq!(layout.back(0, 1), last);
        assert_eq!(layout.previous_lap(2), TAIL_MASK + 1 - 8 + 2);
        assert_eq!(layout.next_lap(layout.previous_lap(2)), 2);
    }

    #[test]
    fn every_capacity_up_to_the_maximum_has_room_for_256_laps() {
        for capacity in [1, 2, 3, 1000, 100_000, 100_000_000, MAX_CAPACITY] {
            let layout = Layout::new(capacity);
            assert!(layout.capacity <= layout.one_lap);
            let laps = (TAIL_MASK + 1) / layout.one_lap;
            assert!(laps >= 256, "capacity {capacity}: {laps} laps");
            assert!(LEN_MASK >= layout.capacity);
            assert_eq!(LEN_MASK << LEN_SHIFT | TAIL_MASK, !CLOSED);
        }
    }

    #[test]
    #[should_panic(expected = "outside 1..=")]
    fn capacity_above_the_maximum_panics() {
        Layout::new(MAX_CAPACITY + 1);
    }

    #[test]
    fn reached_orders_stamps_across_the_wrap() {
        let layout = Layout::new(4);
        let p = 3;
        assert!(layout.reached(Layout::full(p), Layout::full(p)));
        assert!(layout.reached(Layout::free(layout.next_lap(p)), Layout::full(p)));
        assert!(!layout.reached(Layout::free(p), Layout::full(p)));
        assert!(!layout.reached(Layout::full(layout.previous_lap(p)), Layout::full(p)));
        // Position 0 right after the wrap is later than the last position before it.
        let last = TAIL_MASK & !layout.index_mask | 3;
        assert!(layout.reached(Layout::full(0), Layout::full(last)));
        assert!(!layout.reached(Layout::full(last), Layout::full(0)));
    }

    /// Pushes and pops through many laps of the tail field, so positions wrap to zero many
    /// times, with the ring full (displacing) and part-full.
    #[test]
    fn fifo_order_survives_the_tail_field_wrapping() {
        let layout = Layout::new(3);
        let laps = (TAIL_MASK + 1) / layout.one_lap;
        // Start four laps before the tail field wraps to zero and go ten laps past it.
        let ring = Ring::starting_at_lap(3, laps - 4);
        let mut expected = std::collections::VecDeque::new();
        for i in 0..3 * 14 * 2 {
            let pushed = ring.push(i).ok().unwrap();
            expected.push_back(i);
            if expected.len() > 3 {
                assert_eq!(pushed.displaced, expected.pop_front());
            } else {
                assert_eq!(pushed.displaced, None);
            }
            if i % 5 == 0 {
                assert_eq!(ring.pop(), expected.pop_front());
            }
        }
        let mut rest = Vec::new();
        ring.drain_into(&mut rest, usize::MAX);
        assert_eq!(rest, Vec::from(expected));
    }
}
