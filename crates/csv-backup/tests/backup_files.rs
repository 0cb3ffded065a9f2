//! Backup and rejected files on a real file system.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime};
use csv_backup::{
    read_backup, read_conflicts, read_csv, BackupError, BackupWriter, ConflictRow, RejectedRow,
};
use tag_model::{Quality, TagValue};

fn at(h: u32, m: u32, s: u32, micros: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2025, 11, 2)
        .unwrap()
        .and_hms_micro_opt(h, m, s, micros)
        .unwrap()
}

fn value(plc: &str, address: &str, number: Option<f64>, quality: Quality) -> TagValue {
    TagValue::new(at(14, 30, 45, 123_456), plc, address, number, quality).unwrap()
}

fn assorted_values() -> Vec<TagValue> {
    let mut values = vec![
        value("PLC01", "D100", Some(1234.5), Quality::Good),
        value("PLC01", "D101", None, Quality::Bad),
        value("PLC01", "D102", Some(-0.1), Quality::Uncertain),
        value("PLC,02", "D\"103\"", Some(12345.0), Quality::Good),
        value("PLC-\u{00e9}", "=line+break", Some(1e300), Quality::Good),
        value("PLC03", "W0", Some(5e-324), Quality::Good),
        value("PLC03", "W1", Some(f64::MAX), Quality::Good),
        value("PLC03", "W2", Some(0.0), Quality::Bad),
    ];
    for i in 0..1_000 {
        let ts = at(0, 0, 0, 0) + chrono::Duration::microseconds(i * 1_234_567);
        let number = (i % 7 != 0).then(|| i as f64 / 3.0);
        values.push(
            TagValue::new(
                ts,
                "PLC09",
                format!("D{}", i % 50),
                number,
                Quality::ALL[i as usize % 3],
            )
            .unwrap(),
        );
    }
    values
}

#[test]
fn round_trip_gives_equal_values() {
    let dir = tempfile::tempdir().unwrap();
    let backups = BackupWriter::new(dir.path()).unwrap();
    let values = assorted_values();
    let path = backups
        .write_batch(&values, at(14, 30, 52, 789_012))
        .unwrap();
    assert_eq!(read_backup(&path).unwrap(), values);
}

#[test]
fn file_matches_the_spec_format() {
    let dir = tempfile::tempdir().unwrap();
    let backups = BackupWriter::new(dir.path().join("nested/backup")).unwrap();
    let values = [
        value("PLC01", "D100", Some(1234.5), Quality::Good),
        value("PLC01", "D101", None, Quality::Bad),
    ];
    let path = backups
        .write_batch(&values, at(14, 30, 52, 789_012))
        .unwrap();
    assert_eq!(
        path.file_name().unwrap().to_str().unwrap(),
        "backup_20251102_143052.csv"
    );
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "timestamp,plc_code,tag_address,tag_value,quality,insertion_attempt_time\n\
         2025-11-02T14:30:45.123456,PLC01,D100,1234.5,GOOD,2025-11-02T14:30:52.789012\n\
         2025-11-02T14:30:45.123456,PLC01,D101,,BAD,2025-11-02T14:30:52.789012\n"
    );
}

#[test]
fn same_second_names_get_numbered_suffixes_and_list_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let backups = BackupWriter::new(dir.path()).unwrap();
    let batch = [value("P", "A", Some(1.0), Quality::Good)];
    let later = backups.write_batch(&batch, at(15, 0, 0, 0)).unwrap();
    let paths: Vec<_> = (0..12)
        .map(|_| backups.write_batch(&batch, at(14, 30, 52, 0)).unwrap())
        .collect();
    let names: Vec<String> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names[0], "backup_20251102_143052.csv");
    assert_eq!(names[1], "backup_20251102_143052_1.csv");
    assert_eq!(names[11], "backup_20251102_143052_11.csv");

    let pending: Vec<_> = backups
        .pending()
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    let mut expected = paths.clone();
    expected.push(later);
    assert_eq!(pending, expected);
}

#[test]
fn concurrent_writers_never_share_a_name() {
    let dir = tempfile::tempdir().unwrap();
    let backups = Arc::new(BackupWriter::new(dir.path()).unwrap());
    let paths: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let backups = &backups;
                scope.spawn(move || {
                    (0..25)
                        .map(|i| {
                            let batch =
                                [value("P", &format!("T{t}I{i}"), Some(1.0), Quality::Good)];
                            (
                                backups.write_batch(&batch, at(14, 30, 52, 0)).unwrap(),
                                batch,
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(backups.pending().unwrap().len(), 100);
    for (path, batch) in paths {
        assert_eq!(read_backup(&path).unwrap(), batch, "{}", path.display());
    }
}

#[test]
fn rejected_rows_carry_the_reason_and_are_not_pending_backups() {
    let dir = tempfile::tempdir().unwrap();
    let backups = BackupWriter::new(dir.path()).unwrap();
    let rows = [RejectedRow {
        value: value("PLC01", "D100", Some(1e40), Quality::Good),
        error: "ORA-01438: value larger than specified precision, column \"TAG_VALUE\"".into(),
    }];
    let path = backups.write_rejected(&rows, at(14, 30, 52, 0)).unwrap();
    assert_eq!(
        path.file_name().unwrap().to_str().unwrap(),
        "rejected_20251102_143052.csv"
    );
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "timestamp,plc_code,tag_address,tag_value,quality,insertion_attempt_time,error\n\
         2025-11-02T14:30:45.123456,PLC01,D100,1e40,GOOD,2025-11-02T14:30:52.000000,\
         \"ORA-01438: value larger than specified precision, column \"\"TAG_VALUE\"\"\"\n"
    );
    // The values of a rejected file read back like a backup (the error column is extra).
    assert_eq!(read_backup(&path).unwrap(), [rows[0].value.clone()]);
    assert!(backups.pending().unwrap().is_empty());
    let stats = backups.stats().unwrap();
    assert_eq!((stats.pending_files, stats.rejected_files), (0, 1));
    assert_eq!(stats.rejected_bytes, fs::metadata(&path).unwrap().len());
}

#[test]
fn conflicting_rows_keep_the_stored_value_they_lost_to_and_are_not_pending_backups() {
    let dir = tempfile::tempdir().unwrap();
    let backups = BackupWriter::new(dir.path()).unwrap();
    let rows = [
        ConflictRow {
            value: value("PLC01", "D100", Some(2.0), Quality::Good),
            stored: Some(value("PLC01", "D100", Some(1.0), Quality::Good)),
        },
        ConflictRow {
            value: value("=PLC", "D101", None, Quality::Bad),
            stored: Some(value("=PLC", "D101", Some(-0.5), Quality::Uncertain)),
        },
        ConflictRow {
            value: value("PLC01", "D102", Some(99.0), Quality::Good),
            stored: Some(value("PLC01", "D102", None, Quality::Bad)),
        },
        // The stored row was gone when read back.
        ConflictRow {
            value: value("PLC01", "D103", Some(7.0), Quality::Good),
            stored: None,
        },
    ];
    let path = backups.write_conflicts(&rows, at(14, 30, 52, 0)).unwrap();
    assert_eq!(
        path.file_name().unwrap().to_str().unwrap(),
        "conflicts_20251102_143052.csv"
    );
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "timestamp,plc_code,tag_address,tag_value,quality,insertion_attempt_time,\
         stored_tag_value,stored_quality\n\
         2025-11-02T14:30:45.123456,PLC01,D100,2.0,GOOD,2025-11-02T14:30:52.000000,1.0,GOOD\n\
         2025-11-02T14:30:45.123456,'=PLC,D101,,BAD,2025-11-02T14:30:52.000000,-0.5,UNCERTAIN\n\
         2025-11-02T14:30:45.123456,PLC01,D102,99.0,GOOD,2025-11-02T14:30:52.000000,,BAD\n\
         2025-11-02T14:30:45.123456,PLC01,D103,7.0,GOOD,2025-11-02T14:30:52.000000,,\n"
    );
    assert_eq!(read_conflicts(&path).unwrap(), rows);
    // The offered rows read back like a backup (the stored columns are extra).
    let offered: Vec<TagValue> = rows.iter().map(|r| r.value.clone()).collect();
    assert_eq!(read_backup(&path).unwrap(), offered);
    assert!(backups.pending().unwrap().is_empty());
    let stats = backups.stats().unwrap();
    assert_eq!(
        (
            stats.pending_files,
            stats.rejected_files,
            stats.conflict_files
        ),
        (0, 0, 1)
    );
    assert_eq!(stats.conflict_bytes, fs::metadata(&path).unwrap().len());
    // A second one in the same second gets its own name.
    let again = backups
        .write_conflicts(&rows[..1], at(14, 30, 52, 0))
        .unwrap();
    assert!(
        again.ends_with("conflicts_20251102_143052_1.csv"),
        "{again:?}"
    );
    // A damaged stored column is an error naming the line and column.
    let damaged = dir.path().join("conflicts_damaged.csv");
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace(",1.0,GOOD", ",one,GOOD");
    fs::write(&damaged, text).unwrap();
    let error = read_conflicts(&damaged).unwrap_err().to_string();
    assert!(
        error.ends_with("line 2: stored_tag_value \"one\" is not a number"),
        "{error}"
    );
}

#[test]
fn replayed_files_move_aside_without_clobbering() {
    let dir = tempfile::tempdir().unwrap();
    let backups = BackupWriter::new(dir.path()).unwrap();
    let batch = [value("P", "A", Some(2.0), Quality::Good)];
    let first = backups.write_batch(&batch, at(14, 30, 52, 0)).unwrap();
    let moved = backups.mark_replayed(&first).unwrap();
    assert_eq!(
        moved,
        dir.path().join("replayed/backup_20251102_143052.csv")
    );
    // Same name again (the first was moved away, so the name is free), replayed again.
    let second = backups.write_batch(&batch, at(14, 30, 52, 0)).unwrap();
    assert_eq!(second, first);
    let moved_again = backups.mark_replayed(&second).unwrap();
    assert_eq!(
        moved_again,
        dir.path().join("replayed/backup_20251102_143052_1.csv")
    );
    assert!(backups.pending().unwrap().is_empty());
    assert_eq!(read_backup(&moved_again).unwrap(), batch);

    let stats = backups.stats().unwrap();
    assert_eq!(stats.pending_files, 0);
    let error = backups.mark_replayed(&first).unwrap_err();
    assert!(matches!(error, BackupError::Move { .. }), "{error}");
}

#[test]
fn stats_count_pending_files_and_bytes_ignoring_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let backups = BackupWriter::new(dir.path()).unwrap();
    assert_eq!(backups.stats().unwrap(), Default::default());
    let a = backups
        .write_batch(&assorted_values(), at(1, 0, 0, 0))
        .unwrap();
    let b = backups
        .write_batch(&assorted_values()[..3], at(2, 0, 0, 0))
        .unwrap();
    fs::write(dir.path().join(".backup_20251102_030000.csv.tmp"), "half").unwrap();
    fs::write(dir.path().join("notes.txt"), "operator notes").unwrap();
    let stats = backups.stats().unwrap();
    assert_eq!(stats.pending_files, 2);
    assert_eq!(
        stats.pending_bytes,
        fs::metadata(a).unwrap().len() + fs::metadata(b).unwrap().len()
    );
}

#[test]
fn columns_are_found_by_name() {
    let text =
        "quality,tag_value,tag_address,plc_code,timestamp\nbad,,D1,PLC01,2025-11-02 14:30:45.5\n";
    let values = read_csv(text.as_bytes(), Path::new("by_hand.csv")).unwrap();
    assert_eq!(values.len(), 1);
    assert_eq!(values[0].quality(), Quality::Bad);
    assert_eq!(values[0].value(), None);
    assert_eq!(values[0].timestamp(), at(14, 30, 45, 500_000));
}

#[test]
fn malformed_rows_name_the_file_line_and_column() {
    let header = "timestamp,plc_code,tag_address,tag_value,quality,insertion_attempt_time\n";
    let good = "2025-11-02T14:30:45.123456,PLC01,D100,1.5,GOOD,2025-11-02T14:30:52.000000\n";
    let cases = [
        (
            "2025-11-02T25:30:45,PLC01,D100,1.5,GOOD,\n",
            "line 3: timestamp \"2025-11-02T25:30:45\"",
        ),
        (
            "2025-11-02T14:30:45,PLC01,D100,one,GOOD,\n",
            "line 3: tag_value \"one\" is not a number",
        ),
        (
            "2025-11-02T14:30:45,PLC01,D100,NaN,GOOD,\n",
            "line 3: tag_value \"NaN\" must be a finite number",
        ),
        (
            "2025-11-02T14:30:45,PLC01,D100,1,FINE,\n",
            "line 3: quality \"FINE\"",
        ),
        (
            "2025-11-02T14:30:45,,D100,1,GOOD,\n",
            "line 3: plc_code \"\" must not be empty",
        ),
        (
            "2025-11-02T14:30:45,PLC01,D100,1,GOOD,later\n",
            "line 3: insertion_attempt_timestamp \"later\"",
        ),
        (
            "2025-11-02T14:30:45,PLC01,D100\n",
            "line 3: 3 fields where the header has 6",
        ),
    ];
    for (row, expected) in cases {
        let text = format!("{header}{good}{row}");
        let error = read_csv(text.as_bytes(), Path::new("backup/backup_x.csv")).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("backup/backup_x.csv line "),
            "{message}"
        );
        assert!(message.contains(expected), "{message} lacks {expected}");
    }

    let error = read_csv("plc_code,tag_address\n".as_bytes(), Path::new("f.csv")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "f.csv line 1: the header has no timestamp column"
    );
    let error = read_csv(&b""[..], Path::new("empty.csv")).unwrap_err();
    assert!(error.to_string().contains("no timestamp column"), "{error}");
    let mut bytes = format!("{header}{good}").into_bytes();
    bytes.extend_from_slice(b"2025-11-02T14:30:45,PLC\xff,D100,1,GOOD,\n");
    let error = read_csv(&bytes[..], Path::new("bin.csv")).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("bin.csv line 3: invalid UTF-8"),
        "{error}"
    );
}

#[test]
fn a_missing_file_is_a_read_error_naming_it() {
    let error = read_backup(Path::new("/nonexistent/backup_1.csv")).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("cannot read /nonexistent/backup_1.csv: "),
        "{error}"
    );
}

#[test]
fn a_directory_that_cannot_be_created_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("occupied");
    fs::write(&file, "not a directory").unwrap();
    let error = BackupWriter::new(&file).unwrap_err();
    assert!(matches!(error, BackupError::CreateDir { .. }));
    assert!(
        error.to_string().starts_with(&format!(
            "cannot create backup directory {}",
            file.display()
        )),
        "{error}"
    );
    let error = BackupWriter::new(file.join("below")).unwrap_err();
    assert!(matches!(error, BackupError::CreateDir { .. }), "{error}");
}

/// The directory disappears under a running writer (unmounted disk, operator's rm -r):
/// writing fails with the file's name and nothing half-written is left behind.
#[test]
fn write_into_a_vanished_directory_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let backup_dir = dir.path().join("backup");
    let backups = BackupWriter::new(&backup_dir).unwrap();
    fs::remove_dir(&backup_dir).unwrap();
    fs::write(&backup_dir, "a file now").unwrap();
    let error = backups
        .write_batch(&assorted_values(), at(14, 30, 52, 0))
        .unwrap_err();
    assert!(matches!(error, BackupError::Write { .. }), "{error}");
    assert!(
        error.to_string().contains("backup_20251102_143052.csv"),
        "{error}"
    );
    assert_eq!(fs::read_to_string(&backup_dir).unwrap(), "a file now");
}

/// A real full device: the error surfaces instead of being swallowed by buffering.
#[cfg(target_os = "linux")]
#[test]
fn write_csv_reports_a_full_disk() {
    let full = fs::File::options().write(true).open("/dev/full").unwrap();
    let error = csv_backup::write_csv(full, &assorted_values(), at(14, 30, 52, 0)).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(28), "{error}"); // ENOSPC
}
