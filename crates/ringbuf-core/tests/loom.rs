//! Model checks of the ring's interleavings with loom: every schedule of a few threads doing
//! a few operations on a tiny buffer, explored exhaustively (up to loom's preemption bound).
//!
//! RUSTFLAGS="--cfg loom" cargo test -p ringbuf-core --test loom --release
//!
//! The ring's atomics, value cells and batch gate come from loom under `cfg(loom)` (see
//! `src/sync.rs`); loom then reports any read of a value cell that races with a write, any
//! schedule where an item is lost or doubled, and any schedule that never ends.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use ringbuf_core::RingBuffer;

/// Explores every schedule with at most `preemptions` forced thread switches (switches at
/// spin-waits are free). The ring's spin-waits multiply loom's schedules, so models with
/// three threads besides the main one run with one preemption, the others with two.
fn model(preemptions: usize, test: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder.max_branches = 100_000;
    builder.check(test);
}

/// Two producers into a one-slot buffer: each push either finds room or displaces the other's
/// item and gets it back, and a consumer racing with them takes what is left; each of the
/// two items comes out exactly once.
#[test]
fn displacing_pushes_and_a_pop_hand_each_item_out_once() {
    model(1, || {
        let buffer = Arc::new(RingBuffer::new(1).unwrap());
        let producers: Vec<_> = [1u32, 2]
            .into_iter()
            .map(|value| {
                let buffer = buffer.clone();
                thread::spawn(move || buffer.push(value).unwrap())
            })
            .collect();
        let consumer = {
            let buffer = buffer.clone();
            thread::spawn(move || buffer.pop())
        };
        let mut out: Vec<u32> = producers
            .into_iter()
            .filter_map(|p| p.join().unwrap())
            .collect();
        let displaced = out.len() as u64;
        out.extend(consumer.join().unwrap());
        out.extend(buffer.pop());
        out.sort_unstable();
        assert_eq!(out, [1, 2]);
        assert_eq!(buffer.overflow_count(), displaced);
    });
}

/// A push racing with `close`: it is refused (and handed back) or accepted, and once close
/// returns an accepted item is there to drain.
#[test]
fn close_waits_for_a_push_in_flight() {
    model(2, || {
        let buffer = Arc::new(RingBuffer::new(2).unwrap());
        let producer = {
            let buffer = buffer.clone();
            thread::spawn(move || {
                let first = buffer.push(1u32).is_ok();
                let second = buffer.push(2u32).is_ok();
                (first, second)
            })
        };
        buffer.close();
        let mut drained = Vec::new();
        buffer.drain_into(&mut drained, usize::MAX);
        let (first, second) = producer.join().unwrap();
        let accepted: Vec<u32> = [(first, 1), (second, 2)]
            .into_iter()
            .filter_map(|(ok, v)| ok.then_some(v))
            .collect();
        assert!(first || !second, "a push after a refused one is refused");
        assert_eq!(
            drained, accepted,
            "close returned before an accepted push landed"
        );
        assert!(buffer.is_empty());
    });
}

/// A batch racing with `close` is stored whole or refused whole.
#[test]
fn a_batch_racing_with_close_is_all_or_nothing() {
    model(2, || {
        let buffer = Arc::new(RingBuffer::new(2).unwrap());
        let producer = {
            let buffer = buffer.clone();
            thread::spawn(move || buffer.push_batch([1u32, 2, 3]).is_ok())
        };
        buffer.close();
        let mut drained = Vec::new();
        buffer.drain_into(&mut drained, usize::MAX);
        if producer.join().unwrap() {
            // Three into two slots: the first was displaced (and dropped, and counted).
            assert_eq!(drained, [2, 3]);
            assert_eq!(buffer.overflow_count(), 1);
        } else {
            assert!(drained.is_empty());
        }
    });
}

/// Two consumers draining batches while a producer pushes: each item once, in order per
/// consumer.
#[test]
fn concurrent_drains_take_disjoint_batches() {
    model(2, || {
        let buffer = Arc::new(RingBuffer::new(4).unwrap());
        buffer.push(1u32).unwrap();
        let producer = {
            let buffer = buffer.clone();
            thread::spawn(move || {
                buffer.push(2).unwrap();
                buffer.push(3).unwrap();
            })
        };
        let consumer = {
            let buffer = buffer.clone();
            thread::spawn(move || {
                let mut batch = Vec::new();
                buffer.drain_into(&mut batch, 2);
                batch
            })
        };
        let mut mine = Vec::new();
        buffer.drain_into(&mut mine, 2);
        producer.join().unwrap();
        let theirs = consumer.join().unwrap();
        for batch in [&mine, &theirs] {
            assert!(
                batch.windows(2).all(|w| w[0] < w[1]),
                "out of order: {batch:?}"
            );
        }
        let mut all: Vec<u32> = mine.into_iter().chain(theirs).collect();
        buffer.drain_into(&mut all, usize::MAX);
        all.sort_unstable();
        assert_eq!(all, [1, 2, 3]);
        assert_eq!(buffer.overflow_count(), 0);
    });
}
