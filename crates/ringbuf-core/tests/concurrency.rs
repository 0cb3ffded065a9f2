//! Several producers and consumers at once: nothing is lost, nothing is doubled.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ringbuf_core::{RingBuffer, Wait};

const PRODUCERS: u64 = 4;
const PER_PRODUCER: u64 = 200_000;

fn item(producer: u64, seq: u64) -> u64 {
    producer << 32 | seq
}

#[derive(Default)]
struct Tally {
    count: u64,
    sum: u64,
}

impl Tally {
    fn add(&mut self, value: u64) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(value);
    }
}

/// Every pushed item is popped exactly once or handed back as displaced, with matching
/// counts and checksums, and each consumer sees each producer's items in order.
#[test]
fn every_item_is_popped_once_or_counted_as_overflow() {
    let buffer = Arc::new(RingBuffer::new(1024).unwrap());
    let producers_done = Arc::new(AtomicBool::new(false));

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let buffer = Arc::clone(&buffer);
            thread::spawn(move || {
                let mut displaced = Tally::default();
                for seq in 0..PER_PRODUCER {
                    if let Some(old) = buffer.push(item(p, seq)).unwrap() {
                        displaced.add(old);
                    }
                }
                displaced
            })
        })
        .collect();

    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let buffer = Arc::clone(&buffer);
            let done = Arc::clone(&producers_done);
            thread::spawn(move || {
                let mut seen = Vec::new();
                let mut batch = Vec::with_capacity(500);
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    buffer.wait_for(500, Duration::from_millis(1));
                    batch.clear();
                    buffer.drain_into(&mut batch, 500);
                    seen.extend_from_slice(&batch);
                    if finished && buffer.is_empty() {
                        return seen;
                    }
                }
            })
        })
        .collect();

    let mut displaced = Tally::default();
    for handle in producers {
        let tally = handle.join().unwrap();
        displaced.count += tally.count;
        displaced.sum = displaced.sum.wrapping_add(tally.sum);
    }
    producers_done.store(true, Ordering::SeqCst);

    let mut popped = Tally::default();
    let mut unique = HashSet::new();
    for handle in consumers {
        let seen = handle.join().unwrap();
        let mut last_seq = vec![None::<u64>; PRODUCERS as usize];
        for &value in &seen {
            popped.add(value);
            assert!(unique.insert(value), "item {value:#x} popped twice");
            let (producer, seq) = ((value >> 32) as usize, value & 0xffff_ffff);
            if let Some(previous) = last_seq[producer] {
                assert!(
                    seq > previous,
                    "producer {producer}: {seq} after {previous}"
                );
            }
            last_seq[producer] = Some(seq);
        }
    }

    let total = PRODUCERS * PER_PRODUCER;
    let expected_sum = (0..PRODUCERS)
        .flat_map(|p| (0..PER_PRODUCER).map(move |s| item(p, s)))
        .fold(0u64, u64::wrapping_add);
    assert_eq!(popped.count + displaced.count, total);
    assert_eq!(popped.sum.wrapping_add(displaced.sum), expected_sum);
    assert_eq!(buffer.overflow_count(), displaced.count);
    assert!(buffer.is_empty());
}

/// push_batch drops what it displaces, so only counts can be checked: pushed = popped +
/// overflow.
#[test]
fn batch_pushes_account_for_every_item() {
    let buffer = Arc::new(RingBuffer::new(256).unwrap());
    let popped = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (buffer, popped, stop) = (buffer.clone(), popped.clone(), stop.clone());
        thread::spawn(move || {
            let mut batch = Vec::new();
            while !(stop.load(Ordering::SeqCst) && buffer.is_empty()) {
                batch.clear();
                buffer.wait_for(100, Duration::from_millis(1));
                popped.fetch_add(buffer.drain_into(&mut batch, 100) as u64, Ordering::SeqCst);
            }
        })
    };
    let displaced: u64 = thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                scope.spawn(|| {
                    (0..2_000)
                        .map(|_| buffer.push_batch(0..50u32).unwrap().displaced as u64)
                        .sum::<u64>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    stop.store(true, Ordering::SeqCst);
    consumer.join().unwrap();
    assert_eq!(buffer.overflow_count(), displaced);
    assert_eq!(popped.load(Ordering::SeqCst) + displaced, 3 * 2_000 * 50);
}

/// close() while producers push: every push either succeeds and its item is drained, or is
/// refused with the item handed back; nothing arrives after close returns.
#[test]
fn close_during_pushes_loses_nothing() {
    for round in 0..20u64 {
        let buffer = Arc::new(RingBuffer::new(1_000_000).unwrap());
        let started = Arc::new(AtomicU64::new(0));
        let producers: Vec<_> = (0..4u64)
            .map(|p| {
                let (buffer, started) = (buffer.clone(), started.clone());
                thread::spawn(move || {
                    let (mut accepted, mut refused) = (Tally::default(), Tally::default());
                    started.fetch_add(1, Ordering::SeqCst);
                    for seq in 0.. {
                        match buffer.push(item(p, seq)) {
                            Ok(displaced) => {
                                assert!(displaced.is_none());
                                accepted.add(item(p, seq));
                            }
                            Err(closed) => {
                                refused.add(closed.into_inner());
                                if refused.count == 100 {
                                    break;
                                }
                            }
                        }
                    }
                    (accepted, refused)
                })
            })
            .collect();
        while started.load(Ordering::SeqCst) < 4 {
            thread::yield_now();
        }
        thread::sleep(Duration::from_micros(200 * (round % 5)));
        buffer.close();
        let mut drained = Vec::new();
        buffer.drain_into(&mut drained, usize::MAX);

        let mut accepted = Tally::default();
        for handle in producers {
            let (a, r) = handle.join().unwrap();
            assert_eq!(r.count, 100);
            accepted.count += a.count;
            accepted.sum = accepted.sum.wrapping_add(a.sum);
        }
        let drained_sum = drained.iter().copied().fold(0u64, u64::wrapping_add);
        assert_eq!(drained.len() as u64, accepted.count, "round {round}");
        assert_eq!(drained_sum, accepted.sum, "round {round}");
        assert!(buffer.is_empty(), "an item landed after close returned");
    }
}

#[test]
fn waiter_wakes_when_threshold_is_reached() {
    let buffer = Arc::new(RingBuffer::new(1000).unwrap());
    let waiter = {
        let buffer = buffer.clone();
        thread::spawn(move || {
            let outcome = buffer.wait_for(100, Duration::from_secs(30));
            (outcome, buffer.len())
        })
    };
    buffer.push_batch(0..99).unwrap();
    thread::sleep(Duration::from_millis(100));
    assert!(!waiter.is_finished(), "woke below the threshold");
    let started = Instant::now();
    buffer.push(99).unwrap();
    let (outcome, len_at_wake) = waiter.join().unwrap();
    assert_eq!(outcome, Wait::Ready);
    assert!(len_at_wake >= 100);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn waiter_times_out() {
    let buffer = RingBuffer::new(10).unwrap();
    buffer.push(1).unwrap();
    let started = Instant::now();
    assert_eq!(
        buffer.wait_for(5, Duration::from_millis(80)),
        Wait::TimedOut
    );
    assert!(started.elapsed() >= Duration::from_millis(80));
}

#[test]
fn close_wakes_every_waiter() {
    let buffer = Arc::new(RingBuffer::<u32>::new(10).unwrap());
    let waiters: Vec<_> = (0..3)
        .map(|i| {
            let buffer = buffer.clone();
            thread::spawn(move || buffer.wait_for(5 + i, Duration::from_secs(60)))
        })
        .collect();
    thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    buffer.close();
    for waiter in waiters {
        assert_eq!(waiter.join().unwrap(), Wait::Closed);
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Two consumers with different thresholds: each wakes when its own is met.
#[test]
fn waiters_with_different_thresholds_wake_in_turn() {
    let buffer = Arc::new(RingBuffer::new(100).unwrap());
    let small = {
        let buffer = buffer.clone();
        thread::spawn(move || buffer.wait_for(10, Duration::from_secs(30)))
    };
    let large = {
        let buffer = buffer.clone();
        thread::spawn(move || buffer.wait_for(50, Duration::from_secs(30)))
    };
    thread::sleep(Duration::from_millis(50));
    buffer.push_batch(0..10).unwrap();
    assert_eq!(small.join().unwrap(), Wait::Ready);
    thread::sleep(Duration::from_millis(50));
    assert!(!large.is_finished(), "woke below its threshold");
    for i in 10..50 {
        buffer.push(i).unwrap();
    }
    assert_eq!(large.join().unwrap(), Wait::Ready);
}

/// Many short waits racing with pushes: a wake-up is never lost (each wait with a long
/// timeout ends promptly once its threshold is met).
#[test]
fn no_lost_wakeups_under_churn() {
    let buffer = Arc::new(RingBuffer::new(64).unwrap());
    let consumer = {
        let buffer = buffer.clone();
        thread::spawn(move || {
            let mut batch = Vec::new();
            let mut got = 0usize;
            while got < 20_000 {
                let started = Instant::now();
                let outcome = buffer.wait_for(1, Duration::from_secs(20));
                assert_eq!(outcome, Wait::Ready);
                assert!(started.elapsed() < Duration::from_secs(10), "lost wake-up");
                batch.clear();
                got += buffer.drain_into(&mut batch, 64);
            }
            got
        })
    };
    for i in 0..20_000u32 {
        while buffer.len() == buffer.capacity() {
            thread::yield_now();
        }
        buffer.push(i).unwrap();
        if i % 1000 == 0 {
            thread::sleep(Duration::from_millis(1));
        }
    }
    assert_eq!(consumer.join().unwrap(), 20_000);
    assert_eq!(buffer.overflow_count(), 0);
}

/// Items of the MPMC test: one dropped inside the buffer (displaced by a batch push) is
/// recorded, so that every accepted item can be found.
struct Tracked(u64);

static DROPPED_INSIDE: std::sync::Mutex<Tally> = std::sync::Mutex::new(Tally { count: 0, sum: 0 });

impl Tracked {
    /// The value, without counting a drop: it came out of the buffer.
    fn take(self) -> u64 {
        let value = self.0;
        std::mem::forget(self);
        value
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        DROPPED_INSIDE.lock().unwrap().add(self.0);
    }
}

/// Several producers (single and batch pushes) and several consumers (pops and batches of
/// several sizes) at once on a small buffer, so pushes displace, with `close` in the
/// middle: every accepted item comes out exactly once (popped, handed back as displaced, or
/// dropped by the batch push that displaced it), every refused item is handed back, and
/// counts and sums match.
#[test]
fn mpmc_with_displacement_and_close_in_the_middle_loses_and_doubles_nothing() {
    const PRODUCERS: u64 = 3;
    const CONSUMERS: usize = 3;
    let per_producer: u64 = if cfg!(miri) { 200 } else { 100_000 };
    // Under Miri the consumers keep up with a 64-slot buffer over so few items, and the
    // displacing path would go unchecked: a smaller one there.
    let capacity = if cfg!(miri) { 4 } else { 64 };
    let buffer = Arc::new(RingBuffer::new(capacity).unwrap());
    let pushes_done = Arc::new(AtomicU64::new(0));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (buffer, pushes_done) = (buffer.clone(), pushes_done.clone());
            thread::spawn(move || {
                let (mut accepted, mut refused) = (Tally::default(), Tally::default());
                let mut handed_back = Vec::new();
                let mut seq = 0;
                while seq < per_producer {
                    // Producer 0 pushes every fourth step as a batch of 4: a batch is stored
                    // or refused whole, never split by the close.
                    if p == 0 && seq % 16 == 0 && seq + 4 <= per_producer {
                        let values: Vec<u64> = (seq..seq + 4).map(|s| item(p, s)).collect();
                        match buffer.push_batch(values.iter().map(|&v| Tracked(v))) {
                            Ok(done) => {
                                assert_eq!(done.pushed, 4);
                                values.iter().for_each(|&v| accepted.add(v));
                            }
                            Err(closed) => {
                                let back: Vec<u64> =
                                    closed.into_inner().map(|t| t.take()).collect();
                                assert_eq!(back, values, "a refused batch comes back whole");
                                values.iter().for_each(|&v| refused.add(v));
                            }
                        }
                        seq += 4;
                    } else {
                        let value = item(p, seq);
                        match buffer.push(Tracked(value)) {
                            Ok(old) => {
                                accepted.add(value);
                                handed_back.extend(old.map(Tracked::take));
                            }
                            Err(closed) => {
                                assert_eq!(closed.into_inner().take(), value);
                                refused.add(value);
                            }
                        }
                        seq += 1;
                    }
                    pushes_done.store(seq, Ordering::Relaxed);
                }
                (accepted, refused, handed_back)
            })
        })
        .collect();
    // Set once `close` has returned: `is_closed` turns true as `close` begins, while a batch
    // admitted before it may still be pushing; the contract is about `close` returning.
    let close_returned = Arc::new(AtomicBool::new(false));
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|c| {
            let (buffer, close_returned) = (buffer.clone(), close_returned.clone());
            thread::spawn(move || {
                let mut seen = Vec::new();
                let mut batch = Vec::new();
                loop {
                    let closed = close_returned.load(Ordering::SeqCst);
                    let before = seen.len();
                    if c == 0 {
                        seen.extend(buffer.pop().map(Tracked::take));
                    } else {
                        buffer.drain_into(&mut batch, 1 + 7 * c);
                        seen.extend(batch.drain(..).map(Tracked::take));
                    }
                    if closed && buffer.is_empty() {
                        return seen;
                    }
                    if seen.len() == before {
                        thread::yield_now();
                    }
                }
            })
        })
        .collect();

    // Close in the middle: once producer 0 is about half way.
    while pushes_done.load(Ordering::Relaxed) < per_producer / 2 {
        thread::yield_now();
    }
    buffer.close();
    close_returned.store(true, Ordering::SeqCst);
    let held_at_close = buffer.len();

    let (mut accepted, mut refused) = (Tally::default(), Tally::default());
    let mut handed_back = Vec::new();
    for handle in producers {
        let (a, r, d) = handle.join().unwrap();
        accepted.count += a.count;
        accepted.sum = accepted.sum.wrapping_add(a.sum);
        refused.count += r.count;
        refused.sum = refused.sum.wrapping_add(r.sum);
        handed_back.extend(d);
    }
    let popped: Vec<u64> = consumers
        .into_iter()
        .flat_map(|handle| handle.join().unwrap())
        .collect();
    let dropped_inside = std::mem::take(&mut *DROPPED_INSIDE.lock().unwrap());

    assert!(buffer.is_empty());
    assert!(held_at_close <= buffer.capacity());
    assert!(refused.count > 0, "the close came after every push");
    assert!(accepted.count > 0, "the close came before any push");
    assert!(
        !handed_back.is_empty(),
        "nothing was displaced: the test needs a smaller buffer"
    );

    // Every item pushed is accepted or refused, once.
    let all = PRODUCERS * per_producer;
    let all_sum = (0..PRODUCERS)
        .flat_map(|p| (0..per_producer).map(move |s| item(p, s)))
        .fold(0u64, u64::wrapping_add);
    assert_eq!(accepted.count + refused.count, all);
    assert_eq!(accepted.sum.wrapping_add(refused.sum), all_sum);

    // Every accepted item comes out exactly once.
    let mut once = HashSet::new();
    for &value in popped.iter().chain(&handed_back) {
        assert!(once.insert(value), "{value:#x} came out twice");
    }
    let out_count = popped.len() as u64 + handed_back.len() as u64 + dropped_inside.count;
    let out_sum = popped
        .iter()
        .chain(&handed_back)
        .fold(dropped_inside.sum, |sum, &v| sum.wrapping_add(v));
    assert_eq!(out_count, accepted.count, "accepted = popped + displaced");
    assert_eq!(out_sum, accepted.sum);
    assert_eq!(
        buffer.overflow_count(),
        handed_back.len() as u64 + dropped_inside.count,
        "every displacement is counted once"
    );
}
