//! Replay of damaged backup files, by the writer and by `replay_file`: every good row lands,
//! the bad lines go to a quarantine file, the file is finished, and the files behind it are
//! replayed too.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{config, eventually, files_in, Rig};
use oracle_batch::replay_file;

const HEADER: &str = "timestamp,plc_code,tag_address,tag_value,quality,insertion_attempt_time\n";

fn row(second: u32, address: &str) -> String {
    format!(
        "2025-11-02T14:30:{second:02}.000000,PLC01,{address},{second}.5,GOOD,2025-11-02T14:31:00.000000\n"
    )
}

/// An older file with a wrong field count, a bad value and a torn last line between good
/// rows, and a newer intact file.
fn write_damaged_backups(dir: &Path) -> (String, String) {
    std::fs::create_dir_all(dir).unwrap();
    let wrong_count = "2025-11-02T14:30:03.000000,PLC01,D3,3.5,GOOD\n";
    let bad_value = "2025-11-02T14:30:04.000000,PLC01,D4,four,GOOD,2025-11-02T14:31:00.000000\n";
    let torn = "2025-11-02T14:30:06.000000,PLC01,D6,6.";
    let damaged = format!(
        "{HEADER}{}{}{wrong_count}{bad_value}{}{torn}",
        row(1, "D1"),
        row(2, "D2"),
        row(5, "D5")
    );
    std::fs::write(dir.join("backup_20251102_143100.csv"), &damaged).unwrap();
    let intact = format!("{HEADER}{}{}", row(7, "D7"), row(8, "D8"));
    std::fs::write(dir.join("backup_20251102_143200.csv"), intact).unwrap();
    (
        format!("{HEADER}{wrong_count}{bad_value}{torn}\n"),
        "backup_20251102_143100.csv".into(),
    )
}

fn addresses(rig: &Rig) -> Vec<String> {
    let mut addresses: Vec<String> = rig
        .rows_in_db()
        .iter()
        .map(|v| v.tag_address().to_owned())
        .collect();
    addresses.sort();
    addresses
}

#[test]
fn the_writer_replays_the_good_rows_quarantines_the_bad_lines_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let backup_dir = dir.path().join("backup");
    let (expected_quarantine, damaged_name) = write_damaged_backups(&backup_dir);
    let mut rig = Rig::in_dir(dir);
    let writer = rig.start(config(100, 20));
    eventually("both files replayed", || writer.mode().replayed_files == 2);
    let mode = writer.mode();
    assert_eq!(mode.replayed_rows, 5, "{mode:?}");
    assert_eq!(mode.quarantined_lines, 3, "{mode:?}");
    assert_eq!(addresses(&rig), ["D1", "D2", "D5", "D7", "D8"]);
    assert!(rig.backup.pending().unwrap().is_empty());
    let quarantine = backup_dir.join(format!("quarantine_{damaged_name}"));
    assert_eq!(
        std::fs::read_to_string(&quarantine).unwrap(),
        expected_quarantine
    );
    assert_eq!(
        files_in(&backup_dir.join("replayed")),
        ["backup_20251102_143100.csv", "backup_20251102_143200.csv"]
    );
    // Nothing is tried again: no second quarantine file, no more replays.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(writer.mode().replayed_files, 2);
    let quarantines: Vec<String> = files_in(&backup_dir)
        .into_iter()
        .filter(|n| n.starts_with("quarantine_"))
        .collect();
    assert_eq!(quarantines.len(), 1, "{quarantines:?}");
    writer.shutdown(Duration::from_secs(5));
}

#[test]
fn replay_file_does_the_same_for_replay_backup() {
    let dir = tempfile::tempdir().unwrap();
    let backup_dir = dir.path().join("backup");
    let (expected_quarantine, damaged_name) = write_damaged_backups(&backup_dir);
    let rig = Rig::in_dir(dir);
    let mut sink = rig.sqlite();
    let mut total = oracle_batch::ReplayTally::default();
    for file in rig.backup.pending().unwrap() {
        let tally = replay_file(&mut sink, &rig.backup, &file.path, 2, |_| {}).unwrap();
        total.add(tally);
    }
    assert_eq!(
        (total.rows, total.written, total.quarantined),
        (5, 5, 3),
        "{total:?}"
    );
    assert_eq!(addresses(&rig), ["D1", "D2", "D5", "D7", "D8"]);
    assert_eq!(
        std::fs::read_to_string(backup_dir.join(format!("quarantine_{damaged_name}"))).unwrap(),
        expected_quarantine
    );
    assert!(rig.backup.pending().unwrap().is_empty());
}

/// A file with nothing readable at all is finished too: all of it in quarantine.
#[test]
fn a_file_of_nothing_but_garbage_is_quarantined_whole() {
    let dir = tempfile::tempdir().unwrap();
    let backup_dir = dir.path().join("backup");
    std::fs::create_dir_all(&backup_dir).unwrap();
    std::fs::write(
        backup_dir.join("backup_20251102_143000.csv"),
        b"\x00\x00garbage\xff\nmore garbage\n",
    )
    .unwrap();
    let mut rig = Rig::in_dir(dir);
    let writer = rig.start(config(100, 20));
    eventually("the file finished", || writer.mode().replayed_files == 1);
    assert_eq!(writer.mode().quarantined_lines, 2);
    assert!(rig.rows_in_db().is_empty());
    let quarantine =
        std::fs::read(backup_dir.join("quarantine_backup_20251102_143000.csv")).unwrap();
    assert!(quarantine.ends_with(b"\x00\x00garbage\xff\nmore garbage\n"));
    writer.shutdown(Duration::from_secs(5));
}
