//! Backup files torn by a crash or a full disk, or damaged by hand, replayed by the service
//! (automatically, at start) and by `replay_backup`: every good row lands, the bad lines go to
//! `quarantine_*.csv` with the file name and line number in the log, the file is finished,
//! and the file behind it is replayed too. Embedded SQLite, default settings.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const HEADER: &str = "timestamp,plc_code,tag_address,tag_value,quality,insertion_attempt_time\n";
const DAMAGED: &str = "backup_20251102_143100.csv";
const INTACT: &str = "backup_20251102_143200.csv";

fn row(second: u32) -> String {
    format!(
        "2025-11-02T14:30:{second:02}.000000,PLC01,D{second},{second}.5,GOOD,2025-11-02T14:31:00.000000\n"
    )
}

/// The bad lines of the damaged file, as the quarantine file must hold them.
fn bad_lines() -> [&'static str; 3] {
    [
        // Line 4: a field missing.
        "2025-11-02T14:30:03.000000,PLC01,D3,3.5,GOOD\n",
        // Line 5: a value that is no number.
        "2025-11-02T14:30:04.000000,PLC01,D4,four,GOOD,2025-11-02T14:31:00.000000\n",
        // Line 7: torn by a crash, no line break.
        "2025-11-02T14:30:06.000000,PLC01,D6,6.",
    ]
}

fn write_backups(dir: &Path) {
    let backup = dir.join("backup");
    std::fs::create_dir_all(&backup).unwrap();
    let [wrong_count, bad_value, torn] = bad_lines();
    let damaged = format!(
        "{HEADER}{}{}{wrong_count}{bad_value}{}{torn}",
        row(1),
        row(2),
        row(5)
    );
    std::fs::write(backup.join(DAMAGED), damaged).unwrap();
    std::fs::write(backup.join(INTACT), format!("{HEADER}{}{}", row(7), row(8))).unwrap();
}

fn check_quarantine(dir: &Path) {
    let quarantine = dir.join("backup").join(format!("quarantine_{DAMAGED}"));
    let text = std::fs::read_to_string(&quarantine).unwrap();
    assert_eq!(text, format!("{HEADER}{}\n", bad_lines().concat()));
    assert_eq!(
        files_in(&dir.join("backup/replayed")),
        [DAMAGED, INTACT],
        "both files finished"
    );
    let db = dir.join("data/tag_values.db");
    assert_eq!(count_rows(&db, ""), 5, "the five good rows");
    assert_eq!(
        count_rows(&db, "WHERE tag_address IN ('D3', 'D4', 'D6')"),
        0
    );
}

fn check_log_names_file_and_line(log: &str) {
    for (line, reason) in [
        (4, "5 fields where the header has 6"),
        (5, "tag_value \"four\" is not a number"),
        (7, "4 fields where the header has 6"),
    ] {
        let expected = format!("{DAMAGED} line {line}: {reason}; moved to quarantine");
        assert!(log.contains(&expected), "no {expected:?} in\n{log}");
    }
}

#[test]
fn the_service_replays_damaged_files_at_start_and_quarantines_their_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    write_backups(dir.path());
    let mut service = Running::spawn(command("start_buffer_writer", dir.path(), &[]));
    let base = service.base_url();
    eventually("both files replayed", || {
        get_json(&format!("{base}/api/buffer/metrics"))["offline"]["replayed_files"] == 2
    });
    let metrics = get_json(&format!("{base}/api/buffer/metrics"));
    assert_eq!(metrics["offline"]["replayed_rows"], 5, "{metrics}");
    assert_eq!(metrics["offline"]["quarantined_lines"], 3, "{metrics}");
    assert_eq!(metrics["backup"]["quarantine_file_count"], 1, "{metrics}");
    assert_eq!(metrics["backup"]["file_count"], 0, "{metrics}");
    let (_, prometheus) = get(&format!("{base}/metrics"));
    for line in [
        "buffer_oracle_writer_backup_lines_quarantined_total 3\n",
        "buffer_oracle_writer_quarantine_files 1.0\n",
    ] {
        assert!(prometheus.contains(line), "no {line:?} in {prometheus}");
    }
    // Nothing is retried in a loop: a while later, still one quarantine file, two replays.
    std::thread::sleep(Duration::from_secs(1));
    let metrics = get_json(&format!("{base}/api/buffer/metrics"));
    assert_eq!(metrics["offline"]["replayed_files"], 2, "{metrics}");
    service.interrupt();
    assert!(service.wait_exit(Duration::from_secs(10)).0.success());
    check_quarantine(dir.path());
    let log = service.output();
    check_log_names_file_and_line(&log);
    assert!(log.contains("are in ./backup/quarantine_"), "{log}");
}

#[test]
fn replay_backup_replays_damaged_files_and_quarantines_their_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    write_backups(dir.path());
    let (status, output) = run(&mut command("replay_backup", dir.path(), &[]));
    assert!(status.success(), "{output}");
    for line in [
        "3 rows (3 written, 0 already stored, 0 rejected); 3 bad lines moved to quarantine_",
        "2 rows (2 written, 0 already stored, 0 rejected)\n",
        "Replayed 2 files: 5 rows (5 written, 0 already stored, 0 rejected); 3 bad lines",
    ] {
        assert!(output.contains(line), "no {line:?} in\n{output}");
    }
    check_log_names_file_and_line(&output);
    check_quarantine(dir.path());
    // Run again: nothing is pending, nothing is quarantined twice.
    let (status, output) = run(&mut command("replay_backup", dir.path(), &[]));
    assert!(status.success(), "{output}");
    assert!(output.contains("No backup files to replay"), "{output}");
    let quarantines: Vec<String> = files_in(&dir.path().join("backup"))
        .into_iter()
        .filter(|n| n.starts_with("quarantine_"))
        .collect();
    assert_eq!(quarantines.len(), 1, "{quarantines:?}");
}
