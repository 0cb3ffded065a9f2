//! BatchWriter draining a durable log (BUFFER_DURABILITY=disk): a batch leaves the log only
//! once it is settled, a crash mid-write loses nothing, shutdown leaves what it could not
//! write in the log.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{config, eventually, sorted, values, Rig};
use durable_log::io::{Filesystem, MemoryFs};
use durable_log::{DurableLog, LogOptions, TagValueCodec};
use oracle_batch::testing::FaultySink;
use oracle_batch::{BatchWriter, SinkError, TagLog, WriterConfig};
use tag_model::TagValue;

fn options() -> LogOptions {
    LogOptions {
        sync_interval: Duration::from_millis(10),
        ..LogOptions::default()
    }
}

fn open_real(dir: &Path) -> Arc<TagLog> {
    Arc::new(DurableLog::open(dir, options(), TagValueCodec::new()).unwrap())
}

fn open_memory(fs: &MemoryFs) -> Arc<TagLog> {
    let fs: Arc<dyn Filesystem> = Arc::new(fs.clone());
    Arc::new(DurableLog::open_with(fs, "/buffer", options(), TagValueCodec::new()).unwrap())
}

fn append(log: &TagLog, values: &[TagValue]) {
    for chunk in values.chunks(1000) {
        log.append(chunk).unwrap();
    }
    log.flush(Duration::from_secs(10)).unwrap();
}

/// Values the log hands out, without settling them.
fn drain_unsettled(log: &TagLog) -> Vec<TagValue> {
    let mut out = Vec::new();
    while let Some(claim) = log.drain_into(&mut out, 10_000) {
        let _ = claim;
    }
    out
}

#[test]
fn every_value_is_written_then_settled_and_the_log_empties() {
    let rig = Rig::new(1_000);
    let log = open_real(&rig.dir.path().join("buffer"));
    let writer = BatchWriter::builder(Arc::clone(&log), rig.backup.clone())
        .sink(rig.sqlite())
        .sink(rig.sqlite())
        .config(config(500, 50))
        .spawn()
        .unwrap();
    let sent = values(0, 20_000);
    append(&log, &sent);
    eventually("20,000 rows written", || writer.stats().written == 20_000);
    let report = writer.shutdown(Duration::from_secs(5));
    assert!(report.clean, "{report:?}");
    let stats = log.close();
    assert_eq!(stats.settled, 20_000, "{stats:?}");
    assert_eq!(stats.unsettled(), 0);
    assert_eq!(stats.segments, 0, "settled segments are deleted: {stats:?}");
    assert_eq!(sorted(rig.rows_in_db()), sorted(sent));
    assert!(rig.backed_up_rows().is_empty());
}

#[test]
fn a_crash_while_a_batch_is_being_written_loses_nothing() {
    let rig = Rig::new(1_000);
    let fs = MemoryFs::new();
    let log = open_memory(&fs);
    let (sink, faults) = FaultySink::new(rig.sqlite());
    faults.slow_writes_real(Duration::from_millis(400));
    let writer = BatchWriter::builder(Arc::clone(&log), rig.backup.clone())
        .sink(sink)
        .config(config(500, 50))
        .spawn()
        .unwrap();
    let sent = values(0, 3_000);
    append(&log, &sent);
    eventually("a write under way", || faults.write_calls() >= 1);
    let stats = log.stats();
    assert!(stats.in_flight > 0, "{stats:?}");
    assert_eq!(stats.settled, 0, "nothing is settled before it is written");
    // The power goes: whatever the database has or not, the log still has every value.
    let after = fs.crash(7);
    let recovered = open_memory(&after);
    assert_eq!(recovered.recovery().unsettled, 3_000);
    assert_eq!(sorted(drain_unsettled(&recovered)), sorted(sent));
    writer.shutdown(Duration::from_secs(5));
}

#[test]
fn a_batch_is_settled_in_the_log_only_once_written() {
    let rig = Rig::new(1_000);
    let log = open_real(&rig.dir.path().join("buffer"));
    let (sink, faults) = FaultySink::new(rig.sqlite());
    faults.fail_next(2, SinkError::transient("connection reset"));
    let writer = BatchWriter::builder(Arc::clone(&log), rig.backup.clone())
        .sink(sink)
        .config(WriterConfig {
            retry_base_delay: Duration::from_millis(20),
            ..config(500, 50)
        })
        .spawn()
        .unwrap();
    append(&log, &values(0, 500));
    eventually("written after two failures", || {
        writer.stats().written == 500
    });
    eventually("settled in the log", || log.stats().settled == 500);
    assert_eq!(faults.write_calls(), 3);
    writer.shutdown(Duration::from_secs(5));
    assert_eq!(log.close().unsettled(), 0);
}

#[test]
fn values_backed_up_while_offline_are_settled_too() {
    let rig = Rig::new(1_000);
    let log = open_real(&rig.dir.path().join("buffer"));
    let (sink, faults) = FaultySink::new(rig.sqlite());
    faults.fail_always(SinkError::setup("table missing"));
    let writer = BatchWriter::builder(Arc::clone(&log), rig.backup.clone())
        .sink(sink)
        .config(config(500, 50))
        .spawn()
        .unwrap();
    let sent = values(0, 2_000);
    append(&log, &sent);
    eventually("all backed up", || writer.stats().backed_up == 2_000);
    eventually("settled in the log", || log.stats().settled == 2_000);
    writer.shutdown(Duration::from_secs(5));
    assert_eq!(log.close().unsettled(), 0);
    assert_eq!(sorted(rig.backed_up_rows()), sorted(sent));
}

#[test]
fn shutdown_leaves_what_it_cannot_write_in_the_log_for_the_next_start() {
    let rig = Rig::new(1_000);
    let dir = rig.dir.path().join("buffer");
    let log = open_real(&dir);
    let (sink, faults) = FaultySink::new(rig.sqlite());
    // A slow database: the grace ends long before 50,000 values are written.
    faults.slow_writes_real(Duration::from_millis(200));
    let writer = BatchWriter::builder(Arc::clone(&log), rig.backup.clone())
        .sink(sink)
        .config(config(500, 50))
        .spawn()
        .unwrap();
    let sent = values(0, 50_000);
    append(&log, &sent);
    eventually("writing", || writer.stats().written > 0);
    let report = writer.shutdown(Duration::from_millis(500));
    let stats = log.close();
    let written = report.stats.written;
    assert!(written < 50_000, "{report:?}");
    assert_eq!(report.stats.in_flight, 0, "{report:?}");
    assert_eq!(
        stats.unsettled() + report.stats.written + report.stats.backed_up,
        50_000,
        "{stats:?} {report:?}"
    );
    assert!(
        rig.backed_up_rows().len() < 1_000,
        "not copied into backup files"
    );
    drop(log);
    // The next start hands out exactly what was not settled.
    let log = open_real(&dir);
    assert_eq!(log.recovery().unsettled, stats.unsettled());
    let mut everything = rig.rows_in_db();
    everything.extend(rig.backed_up_rows());
    everything.extend(drain_unsettled(&log));
    assert_eq!(sorted(everything), sorted(sent));
}
