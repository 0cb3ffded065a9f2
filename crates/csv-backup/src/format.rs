//! The CSV layout of backup and rejected files, writing and reading.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDateTime;
use tag_model::{format_timestamp, parse_timestamp, Quality, TagValue};

use crate::BackupError;

/// Columns of a backup file, in order.
pub const BACKUP_HEADER: [&str; 6] = [
    "timestamp",
    "plc_code",
    "tag_address",
    "tag_value",
    "quality",
    "insertion_attempt_time",
];

/// Columns of a rejected-rows file: the backup columns plus the database's reason.
pub const REJECTED_HEADER: [&str; 7] = [
    "timestamp",
    "plc_code",
    "tag_address",
    "tag_value",
    "quality",
    "insertion_attempt_time",
    "error",
];

/// A row the database refused, with its reason.
#[derive(Clone, Debug, PartialEq)]
pub struct RejectedRow {
    /// The value as it was offered.
    pub value: TagValue,
    /// The database's error text, e.g. `ORA-12899: value too large for column`.
    pub error: String,
}

/// Writes `values` as a backup CSV (header included) to `out`.
///
/// ```
/// use chrono::NaiveDate;
/// use tag_model::{Quality, TagValue};
///
/// let at = NaiveDate::from_ymd_opt(2025, 11, 2).unwrap().and_hms_micro_opt(14, 30, 45, 123_456).unwrap();
/// let tried = at + chrono::Duration::seconds(7);
/// let values = [TagValue::new(at, "PLC01", "D100", Some(1234.5), Quality::Good)?];
/// let csv = csv_backup::write_csv(Vec::new(), &values, tried)?;
/// assert_eq!(
///     String::from_utf8(csv).unwrap(),
///     "timestamp,plc_code,tag_address,tag_value,quality,insertion_attempt_time\n\
///      2025-11-02T14:30:45.123456,PLC01,D100,1234.5,GOOD,2025-11-02T14:30:52.123456\n"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_csv<W: io::Write>(
    out: W,
    values: &[TagValue],
    attempt_time: NaiveDateTime,
) -> io::Result<W> {
    let attempt = format_timestamp(attempt_time);
    write_rows(
        out,
        &BACKUP_HEADER,
        values.iter().map(|value| (value, None)),
        attempt.as_str(),
    )
}

/// Writes rejected rows (header included) to `out`.
pub fn write_rejected_csv<W: io::Write>(
    out: W,
    rows: &[RejectedRow],
    attempt_time: NaiveDateTime,
) -> io::Result<W> {
    let attempt = format_timestamp(attempt_time);
    let rows = rows
        .iter()
        .map(|row| (&row.value, Some(row.error.as_str())));
    write_rows(out, &REJECTED_HEADER, rows, attempt.as_str())
}

/// Appends backup rows (no header) to `out`: the body of a spool file.
pub(crate) fn write_backup_rows<W: io::Write>(
    out: W,
    values: &[TagValue],
    attempt_time: NaiveDateTime,
) -> io::Result<W> {
    let attempt = format_timestamp(attempt_time);
    write_rows(
        out,
        &[],
        values.iter().map(|value| (value, None)),
        attempt.as_str(),
    )
}

fn write_rows<'a, W: io::Write>(
    out: W,
    header: &[&str],
    rows: impl Iterator<Item = (&'a TagValue, Option<&'a str>)>,
    attempt: &str,
) -> io::Result<W> {
    let mut writer = csv::Writer::from_writer(out);
    let write_all = || -> csv::Result<()> {
        if !header.is_empty() {
            writer.write_record(header)?;
        }
        for (value, error) in rows {
            write_value(&mut writer, value, attempt)?;
            if let Some(error) = error {
                writer.write_field(neutralize(error).as_ref())?;
            }
            writer.write_record(None::<&[u8]>)?;
        }
        Ok(())
    };
    write_all().map_err(into_io_error)?;
    writer.into_inner().map_err(|error| error.into_error())
}

/// Keeps the OS error (ENOSPC, EROFS) visible instead of wrapping it.
fn into_io_error(error: csv::Error) -> io::Error {
    match error.into_kind() {
        csv::ErrorKind::Io(error) => error,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// What a spreadsheet reads as the start of a formula (`=`, `+`, `-`, `@`), and the escape.
const FORMULA_LEADS: [u8; 5] = [b'=', b'+', b'-', b'@', b'\''];

/// A text cell as written to CSV: one that a spreadsheet would run as a formula
/// (`=HYPERLINK(...)`, `@SUM(...)`, `-2+3`) gets a leading `'`, which spreadsheets show as
/// text; so does one that already starts with `'`, so that [`restore`] is exact.
pub fn neutralize(text: &str) -> std::borrow::Cow<'_, str> {
    match text.as_bytes().first() {
        Some(first) if FORMULA_LEADS.contains(first) => format!("'{text}").into(),
        _ => text.into(),
    }
}

/// The text a [`neutralize`]d cell stood for.
pub fn restore(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest)
            if rest
                .as_bytes()
                .first()
                .is_some_and(|b| FORMULA_LEADS.contains(b)) =>
        {
            rest
        }
        _ => cell,
    }
}

fn write_value<W: io::Write>(
    writer: &mut csv::Writer<W>,
    value: &TagValue,
    attempt: &str,
) -> csv::Result<()> {
    let mut number = ryu::Buffer::new();
    writer.write_field(format_timestamp(value.timestamp()).as_str())?;
    writer.write_field(neutralize(value.plc_code()).as_ref())?;
    writer.write_field(neutralize(value.tag_address()).as_ref())?;
    // Finite by construction, so ryu's shortest round-trip form; absent is an empty field.
    writer.write_field(value.value().map_or("", |v| number.format_finite(v)))?;
    writer.write_field(value.quality().as_str())?;
    writer.write_field(attempt)
}

/// Reads a backup file back into tag values, in file order.
///
/// Columns are found by header name, so a file whose columns were reordered (say, by a
/// spreadsheet) still reads; `insertion_attempt_time` and any extra columns are optional.
/// A malformed row is an error naming the file, line and column.
pub fn read_backup(path: &Path) -> Result<Vec<TagValue>, BackupError> {
    let file = std::fs::File::open(path).map_err(|source| BackupError::Read {
        path: path.to_owned(),
        source,
    })?;
    read_csv(file, path)
}

/// Reads backup CSV from any reader; `path` is used only in error messages.
pub fn read_csv<R: io::Read>(input: R, path: &Path) -> Result<Vec<TagValue>, BackupError> {
    let malformed = |line: u64, reason: String| BackupError::Malformed {
        path: path.to_owned(),
        line,
        reason,
    };
    let mut reader = csv::ReaderBuilder::new().from_reader(input);
    let headers = reader
        .byte_headers()
        .map_err(|error| csv_error(path, error))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name.as_bytes())
            .ok_or_else(|| malformed(1, format!("the header has no {name} column")))
    };
    let columns = [
        column("timestamp")?,
        column("plc_code")?,
        column("tag_address")?,
        column("tag_value")?,
        column("quality")?,
    ];
    let attempt_column = column("insertion_attempt_time").ok();

    let mut interner = Interner::default();
    let mut values = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(error) => return Err(csv_error(path, error)),
        }
        let line = record.position().map_or(0, csv::Position::line);
        let field = |index: usize| record.get(index).unwrap_or_default();
        let [timestamp, plc_code, tag_address, tag_value, quality] = columns.map(field);

        let timestamp = parse_timestamp(timestamp).map_err(|e| malformed(line, e.to_string()))?;
        let tag_value = match tag_value {
            "" => None,
            text => Some(
                text.parse::<f64>()
                    .map_err(|_| malformed(line, format!("tag_value {text:?} is not a number")))?,
            ),
        };
        let quality: Quality = quality
            .parse()
            .map_err(|e: tag_model::TagValueError| malformed(line, e.to_string()))?;
        if let Some(index) = attempt_column {
            let attempt = field(index);
            if !attempt.is_empty() {
                parse_timestamp(attempt)
                    .map_err(|e| malformed(line, format!("insertion_attempt_{e}")))?;
            }
        }
        let value = TagValue::new(
            timestamp,
            interner.get(restore(plc_code)),
            interner.get(restore(tag_address)),
            tag_value,
            quality,
        )
        .map_err(|e| malformed(line, e.to_string()))?;
        values.push(value);
    }
    Ok(values)
}

fn csv_error(path: &Path, error: csv::Error) -> BackupError {
    let line = error.position().map_or(0, csv::Position::line);
    match error.into_kind() {
        csv::ErrorKind::Io(source) => BackupError::Read {
            path: path.to_owned(),
            source,
        },
        csv::ErrorKind::Utf8 { err, .. } => BackupError::Malformed {
            path: path.to_owned(),
            line,
            reason: format!("invalid UTF-8: {err}"),
        },
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => BackupError::Malformed {
            path: path.to_owned(),
            line,
            reason: format!("{len} fields where the header has {expected_len}"),
        },
        other => BackupError::Malformed {
            path: path.to_owned(),
            line,
            reason: format!("{other:?}"),
        },
    }
}

/// Shares one `Arc<str>` per distinct PLC code and address, as the polling engine does, so
/// that replaying a large file does not hold a string per value.
#[derive(Default)]
struct Interner {
    strings: HashMap<Box<str>, Arc<str>>,
}

impl Interner {
    fn get(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.strings.get(text) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(text);
        self.strings.insert(Box::from(text), Arc::clone(&shared));
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralized_and_restored_exactly() {
        for text in [
            "=SUM(A1:A9)",
            "+1",
            "-2+3",
            "@cmd",
            "'quoted",
            "''",
            "'",
            "D100",
            "a=b",
        ] {
            let cell = neutralize(text);
            assert_eq!(restore(&cell), text, "{text:?} -> {cell:?}");
            let first = cell.as_bytes()[0];
            assert!(
                !matches!(first, b'=' | b'+' | b'-' | b'@'),
                "{text:?} -> {cell:?}"
            );
        }
        assert_eq!(neutralize("D100"), "D100");
        assert_eq!(neutralize("=1+1"), "'=1+1");
        // A quote before an ordinary character was never added by neutralize: kept.
        assert_eq!(restore("'D100"), "'D100");
    }

    #[test]
    fn a_backup_file_with_formula_looking_values_round_trips() {
        let at = parse_timestamp("2025-11-02T14:30:45.123456").unwrap();
        let values: Vec<TagValue> = [
            ("=HYPERLINK(\"http://x\")", "@A1"),
            ("+PLC", "-D100"),
            ("'PLC", "D100"),
        ]
        .iter()
        .map(|(plc, tag)| TagValue::new(at, *plc, *tag, Some(-1.5), Quality::Good).unwrap())
        .collect();
        let csv = String::from_utf8(write_csv(Vec::new(), &values, at).unwrap()).unwrap();
        for line in csv.lines().skip(1).take(2) {
            for cell in line.split(',').skip(1).take(2) {
                let cell = cell.trim_start_matches('"');
                assert!(cell.starts_with('\''), "{line}");
            }
        }
        // Numbers keep their sign: a negative value is no formula.
        assert!(csv.contains(",-1.5,GOOD,"), "{csv}");
        let read = read_csv(csv.as_bytes(), Path::new("mem.csv")).unwrap();
        assert_eq!(read, values);
    }
}
