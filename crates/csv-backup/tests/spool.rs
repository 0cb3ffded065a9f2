//! Spool files: appended to during an outage, fsynced per batch, rotated, sealed, recovered.

use std::fs;

use chrono::{NaiveDate, NaiveDateTime};
use csv_backup::{read_backup, BackupWriter};
use tag_model::{Quality, TagValue};

fn at(h: u32, m: u32, s: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2025, 11, 2)
        .unwrap()
        .and_hms_opt(h, m, s)
        .unwrap()
}

fn batch(first: usize, count: usize) -> Vec<TagValue> {
    (first..first + count)
        .map(|i| {
            let ts = at(14, 0, 0) + chrono::Duration::milliseconds(i as i64);
            TagValue::new(
                ts,
                "PLC01",
                format!("D{}", i % 7),
                Some(i as f64),
                Quality::Good,
            )
            .unwrap()
        })
        .collect()
}

#[test]
fn batches_of_one_minute_share_a_file_that_is_pending_only_when_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let backups = BackupWriter::new(dir.path()).unwrap();
    let mut all = Vec::new();
    for n in 0..3 {
        let rows = batch(n * 10, 10);
        let path = backups
            .append_batch(&rows, at(14, 30, 10 + n as u32))
            .unwrap();
        assert_eq!(path, dir.path().join("backup_20251102_143010.csv"));
        all.extend(rows);
    }
    assert!(
        backups.pending().unwrap().is_empty(),
        "an open spool is not replayable yet"
    );
    let stats = backups.stats().unwrap();
    assert_eq!(stats.pending_files, 1, "but it counts as waiting data");
    assert_eq!(backups.pending_rows(), 30);
    let sealed = backups.seal().unwrap().unwrap();
    assert_eq!(backups.seal().unwrap(), None);
    assert_eq!(backups.pending().unwrap()[0].path, sealed);
    assert_eq!(read_backup(&sealed).unwrap(), all);
    backups.mark_replayed(&sealed).unwrap();
    assert_eq!(backups.pending_rows(), 0);
}

#[test]
fn a_new_minute_or_a_full_file_starts_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let backups = BackupWriter::new(dir.path()).unwrap();
    backups.append_batch(&batch(0, 5), at(14, 30, 59)).unwrap();
    let second = backups.append_batch(&batch(5, 5), at(14, 31, 0)).unwrap();
    assert_eq!(second, dir.path().join("backup_20251102_143100.csv"));
    assert_eq!(
        backups.pending().unwrap().len(),
        1,
        "the first minute's file was sealed"
    );

    let small = BackupWriter::new(dir.path().join("small"))
        .unwrap()
        .with_spool_limit(200);
    for n in 0..4 {
        small.append_batch(&batch(n * 3, 3), at(15, 0, 0)).unwrap();
    }
    small.seal().unwrap();
    let files = small.pending().unwrap();
    assert!(files.len() >= 2, "{files:?}");
    let rows: usize = files
        .iter()
        .map(|f| read_backup(&f.path).unwrap().len())
        .sum();
    assert_eq!(rows, 12);
}

#[test]
fn a_file_left_open_by_a_crash_is_recovered_without_its_torn_line() {
    let dir = tempfile::tempdir().unwrap();
    {
        let backups = BackupWriter::new(dir.path()).unwrap();
        backups.append_batch(&batch(0, 4), at(9, 0, 0)).unwrap();
        // The process dies here: no seal.
        std::mem::forget(backups);
    }
    let temp = dir.path().join(".backup_20251102_090000.csv.tmp");
    let mut bytes = fs::read(&temp).unwrap();
    bytes.extend_from_slice(b"2025-11-02T14:00:00.004000,PLC01,D4,4.0,GO");
    fs::write(&temp, bytes).unwrap();
    // An empty leftover (header only) is simply removed.
    fs::write(
        dir.path().join(".backup_20251102_100000.csv.tmp"),
        "timestamp,plc_code\n",
    )
    .unwrap();

    let backups = BackupWriter::new(dir.path()).unwrap();
    let pending = backups.pending().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0].path,
        dir.path().join("backup_20251102_090000.csv")
    );
    assert_eq!(read_backup(&pending[0].path).unwrap(), batch(0, 4));
    assert_eq!(backups.pending_rows(), 4);
    assert!(!temp.exists());
    assert!(!dir.path().join(".backup_20251102_100000.csv.tmp").exists());
}

#[test]
fn append_into_a_vanished_directory_fails_and_a_retry_works_once_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let backup_dir = dir.path().join("backup");
    let backups = BackupWriter::new(&backup_dir).unwrap();
    fs::remove_dir(&backup_dir).unwrap();
    let error = backups
        .append_batch(&batch(0, 3), at(14, 0, 0))
        .unwrap_err();
    assert!(
        error.to_string().contains("backup_20251102_140000.csv"),
        "{error}"
    );
    assert_eq!(backups.pending_rows(), 0);
    fs::create_dir(&backup_dir).unwrap();
    backups.append_batch(&batch(0, 3), at(14, 0, 0)).unwrap();
    let sealed = backups.seal().unwrap().unwrap();
    assert_eq!(read_backup(&sealed).unwrap(), batch(0, 3));
}
