//! Conflicting duplicates through the writer: a repeat of a stored key with another value or
//! quality is counted as a conflict (not a duplicate), balances the accounting identity, and
//! its row is kept in a conflicts file with the stored value it lost to; live, and when a
//! backup file is replayed (automatically or with `replay_file`).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{config, eventually, files_in, values, Rig};
use csv_backup::{read_conflicts, ConflictRow};
use oracle_batch::{replay_file, BatchWriter, ReplayTally, ShutdownReport, Sink, WriterConfig};
use tag_model::{Quality, TagValue};

/// accepted = written + duplicates + conflicts + rejected + backed up + spilled + unsaved + in
/// flight + overflow + still buffered, with nothing unsettled.
fn assert_accounted(accepted: u64, report: &ShutdownReport, rig: &Rig) {
    let stats = report.stats;
    assert_eq!(
        stats.written
            + stats.duplicates
            + stats.conflicts
            + stats.rejected
            + stats.backed_up
            + stats.spilled
            + stats.unsaved
            + stats.in_flight
            + report.overflow_count
            + rig.buffer.len() as u64,
        accepted,
        "{report:?}"
    );
    assert_eq!(
        stats.drained(),
        accepted - report.overflow_count,
        "{report:?}"
    );
    assert_eq!((stats.unsaved, stats.in_flight), (0, 0), "{report:?}");
}

/// Whether `rows` drained rows are all settled (none in flight).
fn settled(writer: &BatchWriter, rows: u64) -> bool {
    let stats = writer.stats();
    stats.drained() == rows && stats.in_flight == 0
}

/// `key` with this value and quality.
fn reading(key: &TagValue, value: f64, quality: Quality) -> TagValue {
    TagValue::new(
        key.timestamp(),
        key.plc_code(),
        key.tag_address(),
        Some(value),
        quality,
    )
    .unwrap()
}

fn conflict_files(rig: &Rig) -> Vec<PathBuf> {
    files_in(rig.backup.dir())
        .into_iter()
        .filter(|name| name.starts_with("conflicts_"))
        .map(|name| rig.backup.dir().join(name))
        .collect()
}

/// (offered value, stored value) of each row of the conflicts files, in file order.
fn lost_values(rig: &Rig) -> Vec<(Option<f64>, Option<f64>)> {
    conflict_files(rig)
        .iter()
        .flat_map(|path| read_conflicts(path).unwrap())
        .map(|row| (row.value.value(), row.stored.and_then(|s| s.value())))
        .collect()
}

#[test]
fn conflicting_repeats_are_counted_apart_and_kept_with_the_value_they_lost_to() {
    let mut rig = Rig::new(1_000);
    let writer = rig.start(config(3, 50));
    let key = values(0, 1).remove(0);
    // 1, 2 and 99 for one key in one batch.
    let first = [
        reading(&key, 1.0, Quality::Good),
        reading(&key, 2.0, Quality::Good),
        reading(&key, 99.0, Quality::Good),
    ];
    rig.push_all(&first);
    eventually("the first batch", || settled(&writer, 3));
    let stats = writer.stats();
    assert_eq!(
        (stats.written, stats.duplicates, stats.conflicts),
        (1, 0, 2),
        "{stats:?}"
    );
    let files = conflict_files(&rig);
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "timestamp,plc_code,tag_address,tag_value,quality,insertion_attempt_time,\
         stored_tag_value,stored_quality"
    );
    assert_eq!(lines.len(), 3, "{text}");
    for (line, offered) in lines[1..].iter().zip(["2.0", "99.0"]) {
        assert!(
            line.starts_with(&format!(
                "2025-11-02T14:30:45.000000,PLC00,D100,{offered},GOOD,"
            )),
            "{line}"
        );
        assert!(line.ends_with(",1.0,GOOD"), "{line}");
    }
    let rows = read_conflicts(&files[0]).unwrap();
    assert_eq!(
        rows,
        [
            ConflictRow {
                value: first[1].clone(),
                stored: Some(first[0].clone()),
            },
            ConflictRow {
                value: first[2].clone(),
                stored: Some(first[0].clone()),
            },
        ]
    );

    // Against the row stored earlier: an identical repeat, another value, another quality,
    // and a new key.
    let second = [
        reading(&key, 1.0, Quality::Good),
        reading(&key, 7.0, Quality::Good),
        reading(&key, 1.0, Quality::Bad),
    ];
    rig.push_all(&second);
    eventually("the second batch", || settled(&writer, 6));
    let stats = writer.stats();
    assert_eq!(
        (stats.written, stats.duplicates, stats.conflicts),
        (1, 1, 4),
        "{stats:?}"
    );
    assert_eq!(
        lost_values(&rig),
        [
            (Some(2.0), Some(1.0)),
            (Some(99.0), Some(1.0)),
            (Some(7.0), Some(1.0)),
            (Some(1.0), Some(1.0)),
        ]
    );
    // The stored row is the first one, unchanged.
    assert_eq!(rig.rows_in_db(), [first[0].clone()]);
    assert_eq!(rig.backup.stats().unwrap().conflict_files, 2);
    assert!(writer.mode().last_conflict.is_some());
    let report = writer.shutdown(Duration::from_secs(5));
    assert!(report.clean, "{report:?}");
    assert_accounted(6, &report, &rig);
}

/// The disk refuses the conflicts file: the rows stay in flight (not counted as conflicts,
/// not lost), the failure is counted, and they are saved once the directory is back.
#[test]
fn a_conflicts_file_the_disk_refuses_is_held_and_saved_later() {
    let mut rig = Rig::new(1_000);
    let writer = rig.start(config(2, 50));
    let key = values(0, 1).remove(0);
    let backup_dir = rig.backup.dir().to_owned();
    std::fs::remove_dir(&backup_dir).unwrap();
    std::fs::write(&backup_dir, "the disk is not what it was").unwrap();
    rig.push_all(&[
        reading(&key, 1.0, Quality::Good),
        reading(&key, 2.0, Quality::Good),
    ]);
    eventually("a failed conflicts file", || {
        writer.stats().backup_failures >= 1
    });
    let stats = writer.stats();
    assert_eq!(
        (stats.written, stats.conflicts, stats.in_flight),
        (1, 0, 1),
        "{stats:?}"
    );
    std::fs::remove_file(&backup_dir).unwrap();
    std::fs::create_dir(&backup_dir).unwrap();
    eventually("the held conflict saved", || writer.stats().conflicts == 1);
    assert_eq!(lost_values(&rig), [(Some(2.0), Some(1.0))]);
    let report = writer.shutdown(Duration::from_secs(5));
    assert_accounted(2, &report, &rig);
}

/// A backup file (written during an outage) holding a row whose key the database meanwhile
/// got with another value, an identical repeat and a new row: replayed automatically, the new
/// row is written, the repeat counts as stored, and the conflicting row goes to a conflicts
/// file; the file is moved to `replayed/`.
#[test]
fn a_replayed_backup_file_keeps_its_conflicting_row() {
    let mut rig = Rig::new(1_000);
    let keys = values(0, 3);
    let stored = [
        reading(&keys[0], 1.0, Quality::Good),
        reading(&keys[1], 5.0, Quality::Good),
    ];
    let mut sink = rig.sqlite();
    sink.write_batch(&stored).unwrap();
    let file_rows = [
        reading(&keys[0], 99.0, Quality::Uncertain),
        reading(&keys[1], 5.0, Quality::Good),
        reading(&keys[2], 3.0, Quality::Good),
    ];
    let at = keys[0].timestamp();
    rig.backup.write_batch(&file_rows, at).unwrap();
    let writer = rig.start(config(10, 50));
    eventually("the replay", || writer.mode().replayed_files == 1);
    let mode = writer.mode();
    assert_eq!((mode.replayed_rows, mode.replayed_conflicts), (3, 1));
    assert_eq!(
        lost_values(&rig),
        [(Some(99.0), Some(1.0))],
        "the conflicting row is kept"
    );
    let rows = read_conflicts(&conflict_files(&rig)[0]).unwrap();
    assert_eq!(rows[0].value, file_rows[0]);
    assert_eq!(rows[0].stored.as_ref(), Some(&stored[0]));
    let mut in_db = rig.rows_in_db();
    in_db.sort_by_key(|v| v.tag_address().to_owned());
    assert_eq!(
        in_db,
        [stored[0].clone(), stored[1].clone(), file_rows[2].clone()]
    );
    assert!(rig.backup.pending().unwrap().is_empty());
    assert_eq!(files_in(&rig.backup.dir().join("replayed")).len(), 1);
    // Replayed rows were accounted when they were backed up: not counted again.
    let report = writer.shutdown(Duration::from_secs(5));
    assert_eq!(report.stats.conflicts, 0);
    assert_accounted(0, &report, &rig);
}

/// `replay_file` (the replay_backup tool) does the same and says so in its tally.
#[test]
fn replay_file_keeps_conflicting_rows_in_a_conflicts_file() {
    let rig = Rig::new(10);
    let keys = values(0, 3);
    let mut sink = rig.sqlite();
    sink.write_batch(&[reading(&keys[0], 1.0, Quality::Good)])
        .unwrap();
    let file_rows = [
        reading(&keys[0], 1.0, Quality::Good),
        reading(&keys[0], 2.0, Quality::Good),
        reading(&keys[1], 3.0, Quality::Good),
        reading(&keys[1], 4.0, Quality::Bad),
    ];
    let path = rig
        .backup
        .write_batch(&file_rows, keys[0].timestamp())
        .unwrap();
    let tally = replay_file(&mut sink, &rig.backup, &path, 2, |_| {}).unwrap();
    assert_eq!(
        tally,
        ReplayTally {
            rows: 4,
            written: 1,
            duplicates: 1,
            conflicts: 2,
            ..ReplayTally::default()
        }
    );
    // Chunks of 2: the second chunk repeats a key of its own (3.0 stored, 4.0 lost).
    assert_eq!(
        lost_values(&rig),
        [(Some(2.0), Some(1.0)), (Some(4.0), Some(3.0))]
    );
    assert_eq!(rig.rows_in_db().len(), 2);
    assert!(!path.exists(), "the replayed file was not moved");
}

/// Without auto replay the writer still counts live conflicts the same way (the setting
/// changes nothing here); a repeat of a key whose stored value is absent is a conflict too.
#[test]
fn an_absent_stored_value_loses_nothing_either() {
    let mut rig = Rig::new(100);
    let writer = rig.start(WriterConfig {
        auto_replay: false,
        ..config(2, 50)
    });
    let key = values(0, 1).remove(0);
    let absent = TagValue::new(
        key.timestamp(),
        key.plc_code(),
        key.tag_address(),
        None,
        Quality::Bad,
    )
    .unwrap();
    rig.push_all(&[absent.clone(), reading(&key, 0.0, Quality::Bad)]);
    eventually("the batch", || settled(&writer, 2));
    assert_eq!(writer.stats().conflicts, 1);
    assert_eq!(lost_values(&rig), [(Some(0.0), None)]);
    let rows = read_conflicts(&conflict_files(&rig)[0]).unwrap();
    assert_eq!(rows[0].stored.as_ref(), Some(&absent));
    let report = writer.shutdown(Duration::from_secs(5));
    assert_accounted(2, &report, &rig);
}
