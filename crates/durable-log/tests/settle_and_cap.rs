//! Settlement in any order from several threads, segment deletion, and the byte cap.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use durable_log::io::MemoryFs;
use durable_log::LogOptions;

fn small(max_bytes: u64) -> LogOptions {
    LogOptions {
        max_bytes,
        segment_bytes: Some(16 * 1024),
        ..options()
    }
}

#[test]
fn segments_are_deleted_once_everything_in_them_is_settled() {
    let fs = MemoryFs::new();
    let log = open_with(&fs, small(1 << 20));
    for batch in 0..20 {
        append_synced(&log, &values(batch * 500..batch * 500 + 500));
    }
    let before = log.stats();
    assert!(before.segments >= 10, "{before:?}");
    // Hand everything out, settle all but the first claim.
    let mut claims = Vec::new();
    loop {
        let mut batch = Vec::new();
        match log.drain_into(&mut batch, 500) {
            Some(claim) => claims.push(claim),
            None => break,
        }
    }
    let first = claims.remove(0);
    for claim in claims {
        log.settle(claim);
    }
    log.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(
        log.stats().segments,
        before.segments,
        "the oldest values are not settled: nothing can go"
    );
    log.settle(first);
    log.flush(Duration::from_secs(5)).unwrap();
    let after = log.stats();
    assert_eq!(
        after.segments, 1,
        "only the active segment is left: {after:?}"
    );
    assert!(after.bytes < 16 * 1024 + 4096, "{after:?}");
    assert_identity(&log);
}

#[test]
fn writer_threads_settling_out_of_order_settle_everything_exactly_once() {
    let fs = MemoryFs::new();
    let log = Arc::new(open_with(
        &fs,
        LogOptions {
            sync_interval: Duration::from_millis(5),
            ..small(4 << 20)
        },
    ));
    let total = 20_000u64;
    let producer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for start in (0..total).step_by(250) {
                log.append(&values(start..start + 250)).unwrap();
            }
        })
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..4)
        .map(|thread| {
            let log = Arc::clone(&log);
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || {
                let mut rng = fastrand_like(thread);
                let mut held = Vec::new();
                loop {
                    let mut batch = Vec::new();
                    match log.drain_into(&mut batch, 1 + (rng() % 700) as usize) {
                        Some(claim) => {
                            seen.lock()
                                .unwrap()
                                .extend(batch.iter().map(|item| number(item)));
                            held.push(claim);
                            // Settle in a scrambled order, sometimes late.
                            if rng() % 3 == 0 {
                                while let Some(claim) = held.pop() {
                                    log.settle(claim);
                                }
                            }
                        }
                        None => {
                            for claim in held.drain(..) {
                                log.settle(claim);
                            }
                            if log.stats().settled >= total {
                                return;
                            }
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                }
            })
        })
        .collect();
    producer.join().unwrap();
    for writer in writers {
        writer.join().unwrap();
    }
    let mut seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len() as u64, total, "each value handed out once");
    seen.sort_unstable();
    assert_eq!(seen, (0..total).collect::<Vec<_>>());
    log.flush(Duration::from_secs(5)).unwrap();
    eventually("settled segments deleted", || log.stats().segments <= 1);
    assert_identity(&log);
    let stats = log.close();
    assert_eq!(stats.unsettled(), 0);
    drop(log);
    let log = open(&fs);
    assert_eq!(log.recovery().unsettled, 0, "settlements were durable");
}

/// A tiny deterministic generator for thread-local randomness.
fn fastrand_like(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

#[test]
fn the_cap_displaces_the_oldest_unsettled_values_as_overflow() {
    let fs = MemoryFs::new();
    let cap = 256 * 1024;
    let log = open_with(&fs, small(cap));
    let total = 40_000u64;
    for start in (0..total).step_by(1000) {
        append_synced(&log, &values(start..start + 1000));
        assert!(
            fs.used_bytes() <= cap,
            "{} bytes on disk, cap {cap}",
            fs.used_bytes()
        );
    }
    let stats = log.stats();
    assert!(stats.overflow > 0, "{stats:?}");
    assert!(stats.bytes <= cap);
    assert_identity(&log);
    let seen = drain_all(&log);
    // What is left is the newest values, in order, with nothing missing after the oldest.
    let oldest = seen[0];
    assert_eq!(seen, (oldest..total).collect::<Vec<_>>());
    assert_eq!(
        log.stats().overflow,
        oldest,
        "every displaced value is counted"
    );
    assert_identity(&log);
}

#[test]
fn values_handed_out_before_displacement_still_settle_normally() {
    let fs = MemoryFs::new();
    let log = open_with(&fs, small(256 * 1024));
    append_synced(&log, &values(0..1000));
    let mut held = Vec::new();
    let claim = log.drain_into(&mut held, 300).unwrap();
    for start in (1000..40_000).step_by(1000) {
        append_synced(&log, &values(start..start + 1000));
    }
    let stats = log.stats();
    assert!(stats.overflow > 0);
    assert_eq!(stats.in_flight, 300, "the writer still holds its batch");
    assert_identity(&log);
    log.settle(claim);
    let seen = drain_all(&log);
    let numbers: BTreeSet<u64> = seen.iter().copied().collect();
    assert!(
        numbers.iter().all(|n| *n >= 300),
        "nothing handed out twice"
    );
    assert_eq!(log.stats().overflow + 300 + seen.len() as u64, 40_000);
    assert_identity(&log);
    log.flush(Duration::from_secs(5)).unwrap();
    eventually("settled segments deleted", || log.stats().segments <= 1);
}

#[test]
fn memory_stays_bounded_when_the_disk_is_slower_than_the_producers() {
    let fs = MemoryFs::new();
    let log = Arc::new(open_with(
        &fs,
        LogOptions {
            max_unsynced_bytes: 64 * 1024,
            ..options() // a minute between syncs
        },
    ));
    let producer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for start in (0..20_000u64).step_by(100) {
                log.append(&values(start..start + 100)).unwrap();
            }
        })
    };
    eventually("the producer to wait for room", || {
        log.stats().pending > 0 && !producer.is_finished()
    });
    std::thread::sleep(Duration::from_millis(50));
    let pending = log.stats().pending;
    assert!(pending < 5_000, "{pending} values held in memory");
    while !producer.is_finished() {
        log.flush(Duration::from_secs(5)).unwrap();
    }
    producer.join().unwrap();
    log.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(drain_all(&log).len(), 20_000);
}

/// Found by the model test: a log whose only segment holds a settlement of ids above the
/// oldest (older ids settled and their segments deleted earlier) must not count the older
/// ids as missing.
#[test]
fn a_log_holding_only_settlements_reopens_without_false_damage() {
    let fs = MemoryFs::new();
    let log = open(&fs);
    append_synced(&log, &values(0..1));
    log.close();
    drop(log);
    // Second run: settle value 0, append value 1, close: segment 1 holds value 1 and the
    // settlement of id 0; segment 0 is deleted.
    let log = open(&fs);
    assert_eq!(drain_all(&log), [0]);
    log.append(&values(1..2)).unwrap();
    log.close();
    drop(log);
    // Third run: settle value 1 and sync: segment 2 holds only the settlement of id 1.
    let log = open(&fs);
    assert_eq!(drain_all(&log), [1]);
    log.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(
        log.stats().segments,
        1,
        "only the segment with the settlement"
    );
    let after = fs.crash(1);
    drop(log);
    let log = open(&after);
    assert_eq!(log.recovery().corrupt_records, 0);
    assert_eq!(log.recovery().unsettled, 0);
    append_synced(&log, &values(2..4));
    assert_eq!(drain_all(&log), [2, 3]);
    let stats = log.stats();
    assert_eq!(
        (stats.lost_to_damage, stats.corrupt_records),
        (0, 0),
        "{stats:?}"
    );
    assert_identity(&log);
}

/// A reader that drains the moment a sync makes records readable must not leave `unread`
/// counting values it already took: the figure once drifted upwards (a sync published the
/// records to readers before it counted them as unread, and the reader's subtraction
/// saturated at zero), so `wait_for` kept answering `Ready` for values that were gone and
/// never answered `Closed`.
#[test]
fn unread_never_counts_values_already_handed_out() {
    let fs = MemoryFs::new();
    let log = Arc::new(open_with(
        &fs,
        LogOptions {
            sync_interval: Duration::from_millis(1),
            ..options()
        },
    ));
    let total = 3_000u64;
    let producer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            // One sync round per append: many rounds, each a chance for the race.
            for start in (0..total).step_by(3) {
                let appended = log.append(&values(start..start + 3)).unwrap();
                log.wait_synced(appended.ticket, Duration::from_secs(30))
                    .unwrap();
            }
            log.close_appends();
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut taken = 0u64;
                let deadline = std::time::Instant::now() + Duration::from_secs(60);
                loop {
                    let mut batch = Vec::new();
                    // Spin: the race is a reader arriving straight after a sync.
                    match log.drain_into(&mut batch, 1_000) {
                        Some(claim) => {
                            taken += batch.len() as u64;
                            log.settle(claim);
                        }
                        None if log.stats().settled >= total => return taken,
                        None => {
                            assert!(std::time::Instant::now() < deadline, "{:#?}", log.stats());
                            std::thread::yield_now();
                        }
                    }
                }
            })
        })
        .collect();
    producer.join().unwrap();
    let taken: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert_eq!(taken, total, "each value handed out once");
    log.flush(Duration::from_secs(10)).unwrap();
    let stats = log.stats();
    assert_eq!(
        (stats.unread, stats.pending, stats.in_flight),
        (0, 0, 0),
        "{stats:#?}"
    );
    assert_identity(&log);
    assert_eq!(
        log.wait_for(1, Duration::from_secs(10)),
        durable_log::Wait::Closed,
        "nothing is left to read once appends are closed"
    );
}
