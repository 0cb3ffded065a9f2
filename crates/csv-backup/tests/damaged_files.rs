//! One test per kind of damage a backup file can suffer (a crash mid-write, a full disk, an
//! editor): the lenient reader keeps every good row, and sets aside each bad line with its
//! number, its bytes and the reason; the quarantine file holds those lines verbatim.

use std::path::Path;

use csv_backup::{read_csv_lenient, BackupContents, BackupWriter, BACKUP_HEADER};

const HEADER: &str = "timestamp,plc_code,tag_address,tag_value,quality,insertion_attempt_time\n";

fn row(n: u32) -> String {
    format!("2025-11-02T14:30:{n:02}.000000,PLC01,D{n},{n}.5,GOOD,2025-11-02T14:31:00.000000\n")
}

fn read(bytes: &[u8]) -> BackupContents {
    read_csv_lenient(bytes, Path::new("backup/backup_20251102_143052.csv")).unwrap()
}

/// (line, reason contains) of each bad line.
fn bad(contents: &BackupContents) -> Vec<(u64, String)> {
    contents
        .bad_lines
        .iter()
        .map(|b| (b.line, b.reason.clone()))
        .collect()
}

fn addresses(contents: &BackupContents) -> Vec<String> {
    contents
        .values
        .iter()
        .map(|v| v.tag_address().to_owned())
        .collect()
}

#[test]
fn a_torn_last_line() {
    let text = format!(
        "{HEADER}{}{}2025-11-02T14:30:03.000000,PLC0",
        row(1),
        row(2)
    );
    let contents = read(text.as_bytes());
    assert_eq!(addresses(&contents), ["D1", "D2"]);
    assert_eq!(
        bad(&contents),
        [(4, "2 fields where the header has 6".into())]
    );
    assert_eq!(
        contents.bad_lines[0].raw,
        b"2025-11-02T14:30:03.000000,PLC0"
    );
    assert_eq!(contents.header, HEADER.as_bytes());
}

#[test]
fn a_line_torn_inside_a_value() {
    // The line was cut after "1"; its line break is the next row's start.
    let text = format!("{HEADER}2025-11-02T14:30:01.000000,PLC01,D1,1\n{}", row(2));
    let contents = read(text.as_bytes());
    assert_eq!(addresses(&contents), ["D2"]);
    assert_eq!(bad(&contents)[0].0, 2);
}

#[test]
fn a_wrong_field_count() {
    let text = format!(
        "{HEADER}{}2025-11-02T14:30:02.000000,PLC01,D2,2.5,GOOD,,extra\n{}",
        row(1),
        row(3)
    );
    let contents = read(text.as_bytes());
    assert_eq!(addresses(&contents), ["D1", "D3"]);
    assert_eq!(
        bad(&contents),
        [(3, "7 fields where the header has 6".into())]
    );
}

#[test]
fn bad_values_name_their_column() {
    let cases = [
        (
            "2025-11-02T14:30:02.000000,PLC01,D2,two,GOOD,",
            "tag_value \"two\" is not a number",
        ),
        ("2025-11-02T14:30:02.000000,PLC01,D2,inf,GOOD,", "finite"),
        ("2025-11-02T99:30:02,PLC01,D2,2,GOOD,", "timestamp"),
        (
            "2025-11-02T14:30:02.000000,PLC01,D2,2,FINE,",
            "quality \"FINE\"",
        ),
        ("2025-11-02T14:30:02.000000,,D2,2,GOOD,", "plc_code"),
        (
            "2025-11-02T14:30:02.000000,PLC01,D2,2,GOOD,soon",
            "insertion_attempt_timestamp",
        ),
    ];
    for (line, reason) in cases {
        let text = format!("{HEADER}{}{line}\n{}", row(1), row(3));
        let contents = read(text.as_bytes());
        assert_eq!(addresses(&contents), ["D1", "D3"], "{line}");
        assert_eq!(contents.bad_lines.len(), 1, "{line}");
        assert_eq!(contents.bad_lines[0].line, 3);
        assert!(
            contents.bad_lines[0].reason.contains(reason),
            "{line}: {}",
            contents.bad_lines[0].reason
        );
    }
}

#[test]
fn invalid_utf8() {
    let mut bytes = format!("{HEADER}{}", row(1)).into_bytes();
    bytes.extend_from_slice(b"2025-11-02T14:30:02.000000,PLC\xff,D2,2,GOOD,\n");
    bytes.extend_from_slice(row(3).as_bytes());
    let contents = read(&bytes);
    assert_eq!(addresses(&contents), ["D1", "D3"]);
    assert!(contents.bad_lines[0].reason.starts_with("invalid UTF-8"));
    assert!(contents.bad_lines[0].raw.contains(&0xff));
}

#[test]
fn a_tail_of_zero_bytes_after_a_power_cut() {
    let mut bytes = format!("{HEADER}{}", row(1)).into_bytes();
    bytes.extend_from_slice(&[0u8; 512]);
    let contents = read(&bytes);
    assert_eq!(addresses(&contents), ["D1"]);
    assert_eq!(contents.bad_lines.len(), 1);
    assert_eq!(contents.bad_lines[0].raw.len(), 512);
}

#[test]
fn a_damaged_header_is_set_aside_and_the_standard_columns_assumed() {
    let text = format!("timest\u{0}mp,plc_code,tag\n{}{}", row(1), row(2));
    let contents = read(text.as_bytes());
    assert_eq!(addresses(&contents), ["D1", "D2"]);
    assert_eq!(bad(&contents)[0].0, 1);
    // The quarantine file gets the standard header above the bad lines.
    assert_eq!(
        contents.header,
        format!("{}\n", BACKUP_HEADER.join(",")).as_bytes()
    );
}

#[test]
fn a_file_without_a_header() {
    let text = format!("{}{}", row(1), row(2));
    let contents = read(text.as_bytes());
    assert_eq!(addresses(&contents), ["D1", "D2"]);
    assert!(contents.bad_lines.is_empty());
}

#[test]
fn an_unterminated_quote_swallows_the_rest_into_one_bad_record() {
    let text = format!(
        "{HEADER}{}2025-11-02T14:30:02.000000,\"PLC01,D2,2,GOOD,\n{}",
        row(1),
        row(3)
    );
    let contents = read(text.as_bytes());
    assert_eq!(addresses(&contents), ["D1"]);
    assert_eq!(contents.bad_lines.len(), 1);
    assert_eq!(contents.bad_lines[0].line, 3);
    // Nothing is lost: the swallowed row is in the bad record's bytes.
    assert!(String::from_utf8_lossy(&contents.bad_lines[0].raw).contains("D3"));
}

#[test]
fn crlf_line_ends_and_blank_lines_read_fine() {
    let text = format!("{HEADER}{}\r\n\n{}", row(1).trim_end(), row(2)).replace('\n', "\r\n");
    let contents = read(text.as_bytes());
    assert_eq!(addresses(&contents), ["D1", "D2"]);
    assert!(contents.bad_lines.is_empty(), "{:?}", contents.bad_lines);
}

#[test]
fn an_empty_file_holds_nothing() {
    let contents = read(b"");
    assert!(contents.values.is_empty() && contents.bad_lines.is_empty());
    let contents = read(HEADER.as_bytes());
    assert!(contents.values.is_empty() && contents.bad_lines.is_empty());
}

#[test]
fn the_quarantine_file_holds_the_bad_lines_verbatim_under_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let backups = BackupWriter::new(dir.path()).unwrap();
    let source = dir.path().join("backup_20251102_143052.csv");
    let text = format!(
        "{HEADER}{}2025-11-02T14:30:02.000000,PLC01,D2,two,GOOD,\n{}2025-11-02T14:30:04",
        row(1),
        row(3)
    );
    let contents = read(text.as_bytes());
    let path = backups
        .write_quarantine(&source, &contents.header, &contents.bad_lines)
        .unwrap();
    assert_eq!(
        path.file_name().unwrap(),
        "quarantine_backup_20251102_143052.csv"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{HEADER}2025-11-02T14:30:02.000000,PLC01,D2,two,GOOD,\n2025-11-02T14:30:04\n")
    );
    // A second quarantine of the same file does not overwrite the first.
    let again = backups
        .write_quarantine(&source, &contents.header, &contents.bad_lines)
        .unwrap();
    assert_eq!(
        again.file_name().unwrap(),
        "quarantine_backup_20251102_143052_1.csv"
    );
    // Quarantine files are neither pending backups nor rejected files.
    let stats = backups.stats().unwrap();
    assert_eq!(
        (
            stats.pending_files,
            stats.rejected_files,
            stats.quarantine_files
        ),
        (0, 0, 2)
    );
}
