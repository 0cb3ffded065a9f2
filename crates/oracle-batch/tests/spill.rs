//! Spilling while a batch waits for its retry: the writer's sleeps are held by the test
//! clock, so the retry wait lasts exactly as long as the test needs; the spill thread works
//! in real time against the buffer, as in production.

mod common;

use std::time::Duration;

use common::{config, eventually, files_in, sorted, values, Rig};
use oracle_batch::{BatchWriter, SinkError, WriterConfig};

fn timeout() -> SinkError {
    SinkError::transient("ORA-12170: TNS:Connect timeout occurred")
}

/// Waits until the writer sleeps before its first retry (the sleep is held).
fn in_retry_wait(rig: &Rig) {
    eventually("the first retry wait", || rig.clock.sleeps().len() == 1);
}

/// A buffer of 1,000 spills from 800 (the default 80 %) down to 700 (a tenth below).
#[test]
fn values_past_the_mark_go_to_backup_during_a_retry_and_are_replayed_after_it() {
    let mut rig = Rig::new(1_000);
    rig.clock.hold_sleeps();
    let writer = rig.start(config(100, 50));
    rig.faults.fail_next(1, timeout());
    let first = values(0, 100);
    rig.push_all(&first);
    in_retry_wait(&rig);

    // 1,400 more while the batch waits: 500 more than the buffer could hold.
    let more = values(100, 1_400);
    for chunk in more.chunks(50) {
        rig.push_all(chunk); // asserts that nothing was displaced
        eventually("the buffer below its capacity", || {
            rig.buffer.len() <= 1_000 - 50
        });
    }
    eventually("the spill settled below the mark", || {
        let stats = writer.stats();
        rig.buffer.len() < 800
            && stats.in_flight == 100
            && stats.spilled + rig.buffer.len() as u64 == 1_400
    });
    let stats = writer.stats();
    assert!(stats.spilled > 600, "{stats:?}");
    assert_eq!(rig.buffer.overflow_count(), 0);
    assert_eq!((stats.written, stats.backed_up), (0, 0), "{stats:?}");
    assert!(
        writer.mode().online,
        "still online: the batch has retries left"
    );

    // The database is back: the batch is written, the spool sealed and replayed, live data
    // written directly.
    rig.clock.release_sleeps();
    eventually("the spilled values replayed", || {
        writer.mode().replayed_rows == stats.spilled
    });
    eventually("the live values written", || {
        writer.stats().written == 1_500 - stats.spilled
    });
    let report = writer.shutdown(Duration::from_secs(5));
    assert!(report.clean, "{report:?}");
    assert_eq!(report.stats.drained(), 1_500, "{report:?}");
    assert_eq!(report.overflow_count, 0);
    let mut sent = first;
    sent.extend(more);
    assert_eq!(sorted(rig.rows_in_db()), sorted(sent));
    assert!(rig.backup.pending().unwrap().is_empty());
    assert_eq!(
        files_in(&rig.backup.dir().join("replayed")).len(),
        1,
        "one spool file for the whole window"
    );
}

/// The spec's behaviour for an outage that fits: retry, then write; nothing spilled.
#[test]
fn an_outage_that_fits_below_the_mark_spills_nothing() {
    let mut rig = Rig::new(1_000);
    rig.clock.hold_sleeps();
    let writer = rig.start(config(100, 50));
    rig.faults.fail_next(1, timeout());
    rig.push_all(&values(0, 100));
    in_retry_wait(&rig);
    rig.push_all(&values(100, 699));
    // Give the spill thread every chance to act wrongly.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(writer.stats().spilled, 0);
    rig.clock.release_sleeps();
    eventually("everything written", || writer.stats().written == 799);
    let report = writer.shutdown(Duration::from_secs(5));
    assert_eq!(
        report.stats.spilled + report.stats.backed_up,
        0,
        "{report:?}"
    );
    assert!(files_in(rig.backup.dir()).is_empty());
    assert_eq!(rig.rows_in_db().len(), 799);
}

/// The backup directory fails too: spilled values go back into the buffer, the failure is
/// counted, the buffer then displaces its oldest values (overflow), and every value is still
/// accounted for.
#[test]
fn when_the_backup_also_fails_overflow_is_counted_and_the_accounting_balances() {
    let mut rig = Rig::new(1_000);
    rig.clock.hold_sleeps();
    let writer = rig.start(config(100, 50));
    let backup_dir = rig.backup.dir().to_owned();
    std::fs::remove_dir(&backup_dir).unwrap();
    std::fs::write(&backup_dir, "a failed disk").unwrap();
    rig.faults.fail_next(1, timeout());
    rig.push_all(&values(0, 100));
    in_retry_wait(&rig);
    let mut accepted = 100u64;
    for chunk in values(100, 1_500).chunks(100) {
        accepted += rig.buffer.push_batch(chunk.to_vec()).unwrap().pushed as u64;
    }
    // Once the failed spill is back in the buffer: full, 500 displaced, all accounted for.
    eventually("a failed spill put back", || {
        let stats = writer.stats();
        stats.backup_failures >= 1
            && stats.in_flight == 100
            && rig.buffer.len() == 1_000
            && rig.buffer.overflow_count() == 500
            && stats.drained() + 500 + 1_000 == accepted
    });
    let stats = writer.stats();
    assert_eq!((stats.spilled, stats.backed_up), (0, 0), "{stats:?}");

    // Disk and database return.
    std::fs::remove_file(&backup_dir).unwrap();
    std::fs::create_dir(&backup_dir).unwrap();
    rig.clock.release_sleeps();
    eventually("the buffer written", || {
        let stats = writer.stats();
        stats.in_flight == 0
            && rig.buffer.is_empty()
            && stats.written > 0
            && writer.mode().replayed_rows == stats.spilled
    });
    let report = writer.shutdown(Duration::from_secs(5));
    assert!(report.clean, "{report:?}");
    assert_eq!(
        report.stats.drained() + report.overflow_count,
        accepted,
        "{report:?}"
    );
    assert_eq!(
        rig.rows_in_db().len() as u64,
        report.stats.written + report.stats.spilled + report.stats.backed_up,
        "{report:?}"
    );
}

/// BUFFER_SPILL_PCT=100 turns spilling off: the spec's literal behaviour.
#[test]
fn spill_pct_100_never_spills() {
    let mut rig = Rig::new(1_000);
    rig.clock.hold_sleeps();
    let writer = rig.start(WriterConfig {
        spill_pct: 100,
        ..config(100, 50)
    });
    rig.faults.fail_next(1, timeout());
    rig.push_all(&values(0, 100));
    in_retry_wait(&rig);
    let pushed = rig.buffer.push_batch(values(100, 1_200)).unwrap();
    assert_eq!(pushed.displaced, 200);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(writer.stats().spilled, 0);
    rig.clock.release_sleeps();
    let report = writer.shutdown(Duration::from_secs(5));
    assert_eq!(report.overflow_count, 200);
    assert_eq!(report.stats.drained() + 200, 1_300, "{report:?}");
}

/// Several writer threads share one spill thread; all of them may wait at once.
#[test]
fn two_writer_threads_waiting_together_spill_once_each_wait() {
    let rig = Rig::new(1_000);
    rig.clock.hold_sleeps();
    let (first, faults) = oracle_batch::testing::FaultySink::new(rig.sqlite());
    let (second, faults2) = oracle_batch::testing::FaultySink::new(rig.sqlite());
    faults.fail_next(1, timeout());
    faults2.fail_next(1, timeout());
    let writer = BatchWriter::builder(rig.buffer.clone(), rig.backup.clone())
        .sink(first)
        .sink(second)
        .config(config(100, 50))
        .clock(rig.clock.clone())
        .spawn()
        .unwrap();
    rig.push_all(&values(0, 200));
    eventually("both threads waiting", || rig.clock.sleeps().len() == 2);
    for chunk in values(200, 1_200).chunks(50) {
        rig.push_all(chunk);
        eventually("room in the buffer", || rig.buffer.len() <= 950);
    }
    eventually("a spill", || writer.stats().spilled > 0);
    rig.clock.release_sleeps();
    eventually("all replayed", || {
        let stats = writer.stats();
        writer.mode().replayed_rows == stats.spilled && stats.written == 1_400 - stats.spilled
    });
    let report = writer.shutdown(Duration::from_secs(5));
    assert_eq!(report.overflow_count, 0);
    assert_eq!(rig.rows_in_db().len(), 1_400);
}
