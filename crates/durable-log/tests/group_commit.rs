//! Group commit, acknowledgement only after sync, full and failing disks.

mod common;

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use durable_log::io::{Fault, MemoryFs};
use durable_log::{AppendError, LogOptions, SyncError, Wait};

#[test]
fn nothing_is_handed_out_or_acknowledged_before_the_sync() {
    let fs = MemoryFs::new();
    let log = open(&fs); // the interval is a minute: only flush syncs
    let appended = log.append(&values(0..5)).unwrap();
    assert_eq!(appended.count, 5);
    assert_eq!(
        log.wait_synced(appended.ticket, Duration::from_millis(50)),
        Err(SyncError::TimedOut)
    );
    assert!(
        log.drain_into(&mut Vec::new(), 100).is_none(),
        "not synced yet"
    );
    assert_eq!(log.wait_for(1, Duration::from_millis(20)), Wait::TimedOut);
    assert_eq!(fs.syncs(), 0);
    log.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(
        log.wait_synced(appended.ticket, Duration::from_secs(5)),
        Ok(())
    );
    assert_eq!(drain_all(&log), [0, 1, 2, 3, 4]);
}

#[test]
fn one_fsync_covers_every_append_of_an_interval() {
    let fs = MemoryFs::new();
    let log = Arc::new(open_with(
        &fs,
        LogOptions {
            sync_interval: Duration::from_millis(200),
            ..options()
        },
    ));
    let started = Instant::now();
    let mut tickets = Vec::new();
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                (0..500)
                    .map(|i| log.append(&[value(p * 1000 + i)]).unwrap().ticket)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for producer in producers {
        tickets.extend(producer.join().unwrap());
    }
    for ticket in &tickets {
        log.wait_synced(*ticket, Duration::from_secs(30)).unwrap();
    }
    let elapsed = started.elapsed();
    let stats = log.stats();
    assert_eq!(stats.appended, 2000);
    // At most one data fsync per interval (plus one for the segment's directory entry): never
    // one per value.
    let intervals = elapsed.as_millis() as u64 / 200 + 2;
    assert!(
        stats.fsyncs <= intervals,
        "{} fsyncs in {elapsed:?} for 2000 appends",
        stats.fsyncs
    );
    assert!(fs.syncs() <= intervals + 1, "{} syncs", fs.syncs());
}

#[test]
fn on_synced_calls_back_once_durable() {
    let fs = MemoryFs::new();
    let log = open(&fs);
    let appended = log.append(&values(0..3)).unwrap();
    let (send, receive) = mpsc::channel();
    log.on_synced(appended.ticket, move |result| send.send(result).unwrap());
    assert!(receive.recv_timeout(Duration::from_millis(50)).is_err());
    log.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(
        receive.recv_timeout(Duration::from_secs(5)).unwrap(),
        Ok(())
    );
    // Already synced: at once.
    let (send, receive) = mpsc::channel();
    log.on_synced(appended.ticket, move |result| send.send(result).unwrap());
    assert_eq!(receive.try_recv().unwrap(), Ok(()));
}

#[test]
fn failed_fsync_fails_the_waiters_refuses_appends_and_retries_without_loss() {
    let fs = MemoryFs::new();
    let log = open(&fs);
    append_synced(&log, &values(0..5));
    fs.inject(Fault::FailSyncs(1));
    let appended = log.append(&values(5..10)).unwrap();
    let error = log.flush(Duration::from_secs(5)).unwrap_err();
    assert!(matches!(error, SyncError::Failed { .. }), "{error:?}");
    assert!(matches!(
        log.wait_synced(appended.ticket, Duration::from_secs(5)),
        Err(SyncError::Failed { .. })
    ));
    let refused = log.append(&values(10..11)).unwrap_err();
    assert!(
        matches!(refused, AppendError::DiskFailed { .. }),
        "{refused:?}"
    );
    assert!(refused.reason().contains("fsync"), "{refused}");
    assert!(log.stats().disk_error.is_some());
    // The next sync gets through: the kept batch is written to a new segment.
    log.flush(Duration::from_secs(5)).unwrap();
    assert!(log.stats().disk_error.is_none());
    append_synced(&log, &values(11..12));
    let mut seen = drain_all(&log);
    seen.sort_unstable();
    assert_eq!(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11]);
    let stats = log.stats();
    assert_eq!(stats.refused, 1);
    assert_eq!(stats.sync_failures, 1);
    assert_identity(&log);
    // A power cut now keeps everything that was acknowledged.
    drop(log);
}

#[test]
fn a_power_cut_after_a_failed_fsync_never_loses_what_was_acknowledged() {
    for seed in 0..40 {
        let fs = MemoryFs::new();
        let log = open(&fs);
        append_synced(&log, &values(0..5));
        fs.inject(Fault::FailSyncs(2)); // the fsync and the truncate after it fail
        log.append(&values(5..10)).unwrap();
        assert!(log.flush(Duration::from_secs(5)).is_err());
        log.flush(Duration::from_secs(5)).unwrap(); // acknowledged now
        let after = fs.crash(seed);
        drop(log);
        let log = open(&after);
        let mut seen = drain_unsettled(&log);
        seen.sort_unstable();
        assert_eq!(seen, (0..10).collect::<Vec<_>>(), "seed {seed}: once each");
    }
}

#[test]
fn disk_full_refuses_appends_with_the_reason_until_space_returns() {
    let fs = MemoryFs::new();
    let log = open(&fs);
    append_synced(&log, &values(0..10));
    fs.inject(Fault::Capacity(fs.used_bytes() + 20));
    let appended = log.append(&values(10..20)).unwrap();
    assert!(matches!(
        log.flush(Duration::from_secs(5)),
        Err(SyncError::Failed { .. })
    ));
    let error = log.append(&values(20..21)).unwrap_err();
    match &error {
        AppendError::DiskFull { reason } => assert!(!reason.is_empty()),
        other => panic!("{other:?}"),
    }
    assert!(error.to_string().contains("disk is full"), "{error}");
    // Draining and settling what is synced goes on while the disk is full.
    assert_eq!(drain_all(&log), (0..10).collect::<Vec<_>>());
    fs.clear_faults();
    log.flush(Duration::from_secs(5)).unwrap();
    log.wait_synced(appended.ticket, Duration::from_secs(5))
        .unwrap();
    assert_eq!(drain_all(&log), (10..20).collect::<Vec<_>>());
    assert_eq!(log.stats().refused, 1);
    assert_identity(&log);
}

#[test]
fn a_torn_write_is_retried_in_a_new_segment() {
    let fs = MemoryFs::new();
    let log = open(&fs);
    append_synced(&log, &values(0..3));
    fs.inject(Fault::TornWrite(17));
    log.append(&values(3..6)).unwrap();
    assert!(log.flush(Duration::from_secs(5)).is_err());
    log.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(drain_all(&log), (0..6).collect::<Vec<_>>());
    log.close();
    drop(log);
    let log = open(&fs);
    assert_eq!(
        log.recovery().corrupt_records,
        0,
        "the torn part was cut back"
    );
    assert_eq!(log.recovery().unsettled, 0);
}

#[test]
fn closing_with_a_disk_that_never_recovers_counts_what_is_lost() {
    let fs = MemoryFs::new();
    let log = open(&fs);
    append_synced(&log, &values(0..3));
    fs.inject(Fault::FailSyncs(1000));
    log.append(&values(3..8)).unwrap();
    let stats = log.close();
    assert_eq!(stats.lost_unsynced, 5);
    assert_eq!(stats.pending, 0);
    assert_identity(&log);
}

#[test]
fn close_appends_lets_readers_finish_then_says_closed() {
    let fs = MemoryFs::new();
    let log = open(&fs);
    log.append(&values(0..4)).unwrap();
    log.close_appends();
    assert_eq!(log.append(&values(4..5)), Err(AppendError::Closed));
    wait_ready(&log, 4);
    assert_eq!(drain_all(&log), [0, 1, 2, 3]);
    assert_eq!(log.wait_for(1, Duration::from_secs(5)), Wait::Closed);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first =
        durable_log::DurableLog::open(dir.path(), options(), durable_log::BytesCodec).unwrap();
    let error =
        durable_log::DurableLog::open(dir.path(), options(), durable_log::BytesCodec).unwrap_err();
    assert!(
        matches!(error, durable_log::OpenError::Locked { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("in use"), "{error}");
    first.close();
    assert!(
        durable_log::DurableLog::open(dir.path(), options(), durable_log::BytesCodec).is_ok(),
        "closing releases the lock"
    );
}

#[test]
fn bad_options_name_the_field() {
    let fs = MemoryFs::new();
    let fs: Arc<dyn durable_log::io::Filesystem> = Arc::new(fs);
    let cases = [
        (
            LogOptions {
                sync_interval: Duration::ZERO,
                ..LogOptions::default()
            },
            "sync_interval",
        ),
        (
            LogOptions {
                max_bytes: 1000,
                ..LogOptions::default()
            },
            "max_bytes",
        ),
        (
            LogOptions {
                max_record_values: 0,
                ..LogOptions::default()
            },
            "max_record_values",
        ),
    ];
    for (options, field) in cases {
        let error = durable_log::DurableLog::open_with(
            Arc::clone(&fs),
            dir(),
            options,
            durable_log::BytesCodec,
        )
        .unwrap_err();
        assert!(error.to_string().contains(field), "{error}");
    }
}

#[test]
fn real_files_round_trip_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log =
        durable_log::DurableLog::open(dir.path(), options(), durable_log::BytesCodec).unwrap();
    append_synced(&log, &values(0..1000));
    let mut batch = Vec::new();
    let claim = log.drain_into(&mut batch, 400).unwrap();
    assert_eq!(batch.len(), 400);
    log.settle(claim);
    log.close();
    drop(log);
    let log =
        durable_log::DurableLog::open(dir.path(), options(), durable_log::BytesCodec).unwrap();
    assert_eq!(log.recovery().unsettled, 600);
    assert_eq!(drain_all(&log), (400..1000).collect::<Vec<_>>());
    let stats = log.close();
    assert_eq!(
        stats.segments, 0,
        "every segment settled and deleted: {stats:?}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["LOCK"]);
}
