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

/// Columns of a conflicts file: the backup columns of the row that was not stored, then the
/// value and quality of the stored row it lost to (same key). Both stored columns empty means
/// no row had the key any more when it was read back.
pub const CONFLICTS_HEADER: [&str; 8] = [
    "timestamp",
    "plc_code",
    "tag_address",
    "tag_value",
    "quality",
    "insertion_attempt_time",
    "stored_tag_value",
    "stored_quality",
];

/// A row not stored because its key (plc_code, tag_address, timestamp) is stored with another
/// value or quality.
#[derive(Clone, Debug, PartialEq)]
pub struct ConflictRow {
    /// The row as it was offered (and not stored).
    pub value: TagValue,
    /// The stored row it lost to (its key is the same); `None` when no row had the key any
    /// more when it was read back.
    pub stored: Option<TagValue>,
}

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

/// Writes conflicting rows (header included) to `out`.
///
/// ```
/// use chrono::NaiveDate;
/// use csv_backup::ConflictRow;
/// use tag_model::{Quality, TagValue};
///
/// let at = NaiveDate::from_ymd_opt(2025, 11, 2).unwrap().and_hms_opt(14, 30, 45).unwrap();
/// let row = |v| TagValue::new(at, "PLC01", "D100", Some(v), Quality::Good);
/// let rows = [ConflictRow { value: row(2.0)?, stored: Some(row(1.0)?) }];
/// let csv = csv_backup::write_conflicts_csv(Vec::new(), &rows, at)?;
/// assert_eq!(
///     String::from_utf8(csv).unwrap(),
///     "timestamp,plc_code,tag_address,tag_value,quality,insertion_attempt_time,stored_tag_value,stored_quality\n\
///      2025-11-02T14:30:45.000000,PLC01,D100,2.0,GOOD,2025-11-02T14:30:45.000000,1.0,GOOD\n"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_conflicts_csv<W: io::Write>(
    out: W,
    rows: &[ConflictRow],
    attempt_time: NaiveDateTime,
) -> io::Result<W> {
    let attempt = format_timestamp(attempt_time);
    let mut writer = csv::Writer::from_writer(out);
    let mut number = ryu::Buffer::new();
    let mut write_all = || -> csv::Result<()> {
        writer.write_record(CONFLICTS_HEADER)?;
        for row in rows {
            write_value(&mut writer, &row.value, attempt.as_str())?;
            match &row.stored {
                Some(stored) => {
                    writer.write_field(stored.value().map_or("", |v| number.format_finite(v)))?;
                    writer.write_field(stored.quality().as_str())?;
                }
                None => {
                    writer.write_field("")?;
                    writer.write_field("")?;
                }
            }
            writer.write_record(None::<&[u8]>)?;
        }
        Ok(())
    };
    write_all().map_err(into_io_error)?;
    writer.into_inner().map_err(|error| error.into_error())
}

/// Reads a conflicts file back: the rows that were not stored, each with the stored row it
/// lost to. A malformed row is an error naming the file, line and column.
pub fn read_conflicts(path: &Path) -> Result<Vec<ConflictRow>, BackupError> {
    let bytes = std::fs::read(path).map_err(|source| BackupError::Read {
        path: path.to_owned(),
        source,
    })?;
    let values = read_csv(bytes.as_slice(), path)?;
    let malformed = |line: u64, reason: String| BackupError::Malformed {
        path: path.to_owned(),
        line,
        reason,
    };
    let mut reader = csv::ReaderBuilder::new().from_reader(bytes.as_slice());
    let headers = reader
        .headers()
        .map_err(|error| csv_error(path, error))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| malformed(1, format!("the header has no {name} column")))
    };
    let (value_column, quality_column) = (column("stored_tag_value")?, column("stored_quality")?);
    let mut rows = Vec::with_capacity(values.len());
    let mut values = values.into_iter();
    for record in reader.records() {
        let record = record.map_err(|error| csv_error(path, error))?;
        let line = record.position().map_or(0, csv::Position::line);
        let Some(value) = values.next() else {
            return Err(malformed(line, "more rows than values".into()));
        };
        let field = |index: usize| record.get(index).unwrap_or_default();
        let stored = match (field(value_column), field(quality_column)) {
            ("", "") => None,
            (number, quality) => {
                let number = match number {
                    "" => None,
                    text => Some(text.parse::<f64>().map_err(|_| {
                        malformed(line, format!("stored_tag_value {text:?} is not a number"))
                    })?),
                };
                let quality: Quality = quality.parse().map_err(|e: tag_model::TagValueError| {
                    malformed(line, format!("stored_{e}"))
                })?;
                Some(
                    TagValue::new(
                        value.timestamp(),
                        value.plc_code_arc().clone(),
                        value.tag_address_arc().clone(),
                        number,
                        quality,
                    )
                    .map_err(|e| malformed(line, format!("stored row: {e}")))?,
                )
            }
        };
        rows.push(ConflictRow { value, stored });
    }
    Ok(rows)
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
/// A malformed row is an error naming the file, line and column. To read past bad lines
/// instead, use [`read_backup_lenient`].
pub fn read_backup(path: &Path) -> Result<Vec<TagValue>, BackupError> {
    let file = std::fs::File::open(path).map_err(|source| BackupError::Read {
        path: path.to_owned(),
        source,
    })?;
    read_csv(file, path)
}

/// Reads backup CSV from any reader; `path` is used only in error messages. The first
/// malformed row (or a header without the needed columns) is an error.
pub fn read_csv<R: io::Read>(mut input: R, path: &Path) -> Result<Vec<TagValue>, BackupError> {
    let mut bytes = Vec::new();
    input
        .read_to_end(&mut bytes)
        .map_err(|source| BackupError::Read {
            path: path.to_owned(),
            source,
        })?;
    let contents = parse(&bytes, path, true)?;
    match contents.bad_lines.into_iter().next() {
        Some(bad) => Err(BackupError::Malformed {
            path: path.to_owned(),
            line: bad.line,
            reason: bad.reason,
        }),
        None => Ok(contents.values),
    }
}

/// A line of a backup file that does not read back as a value: torn by a crash or a full
/// disk, or damaged by hand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    /// The 1-based line number where the record starts.
    pub line: u64,
    /// The record's bytes as they are in the file (a torn last line has no line break).
    pub raw: Vec<u8>,
    /// What is wrong, naming the column.
    pub reason: String,
}

/// A backup file read past its bad lines.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BackupContents {
    /// The rows that read back, in file order.
    pub values: Vec<TagValue>,
    /// The lines that did not, in file order.
    pub bad_lines: Vec<BadLine>,
    /// The header line to put above the bad lines in a quarantine file (the file's own when
    /// it had a usable one, else the standard [`BACKUP_HEADER`]), with its line break.
    pub header: Vec<u8>,
}

/// Reads a backup file, keeping every row that reads back and setting aside every line that
/// does not, with its line number and reason; only I/O is an error. A file whose header is
/// damaged or missing is read with the standard column order, its first line as a row.
pub fn read_backup_lenient(path: &Path) -> Result<BackupContents, BackupError> {
    let bytes = std::fs::read(path).map_err(|source| BackupError::Read {
        path: path.to_owned(),
        source,
    })?;
    read_csv_lenient(&bytes, path)
}

/// [`read_backup_lenient`] over bytes in memory; `path` is used only in messages.
pub fn read_csv_lenient(bytes: &[u8], path: &Path) -> Result<BackupContents, BackupError> {
    parse(bytes, path, false)
}

/// Where the columns are.
struct Layout {
    /// timestamp, plc_code, tag_address, tag_value, quality.
    columns: [usize; 5],
    attempt: Option<usize>,
    /// Fields per row.
    width: usize,
}

impl Layout {
    fn standard() -> Self {
        Layout {
            columns: [0, 1, 2, 3, 4],
            attempt: Some(5),
            width: BACKUP_HEADER.len(),
        }
    }

    /// The layout a header names, or the first column it lacks.
    fn from_header(header: &csv::ByteRecord) -> Result<Self, &'static str> {
        let column =
            |name: &'static str| header.iter().position(|h| h == name.as_bytes()).ok_or(name);
        Ok(Layout {
            columns: [
                column("timestamp")?,
                column("plc_code")?,
                column("tag_address")?,
                column("tag_value")?,
                column("quality")?,
            ],
            attempt: column("insertion_attempt_time").ok(),
            width: header.len(),
        })
    }
}

/// The one reader behind the strict and the lenient entry points. `strict`: a header
/// without the needed columns is an error rather than a reason to assume the standard
/// layout. Bad rows are collected either way; the strict caller stops at the first.
fn parse(bytes: &[u8], path: &Path, strict: bool) -> Result<BackupContents, BackupError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut record = csv::ByteRecord::new();
    let mut contents = BackupContents::default();
    let mut interner = Interner::default();
    let mut start = reader.position().clone();
    let mut layout = None;
    loop {
        let more = reader
            .read_byte_record(&mut record)
            .map_err(|error| csv_error(path, error))?;
        let end = reader.position().clone();
        if !more {
            break;
        }
        let line = record.position().map_or(start.line(), csv::Position::line);
        let raw = &bytes[record.position().map_or(start.byte(), csv::Position::byte) as usize
            ..end.byte() as usize];
        start = end;
        if layout.is_none() {
            match Layout::from_header(&record) {
                Ok(found) => {
                    contents.header = with_line_break(raw);
                    layout = Some(found);
                    continue;
                }
                Err(missing) if strict => {
                    return Err(BackupError::Malformed {
                        path: path.to_owned(),
                        line: 1,
                        reason: format!("the header has no {missing} column"),
                    })
                }
                // No usable header: the standard layout, and this line is a row.
                Err(_) => {}
            }
        }
        let columns = layout.get_or_insert_with(Layout::standard);
        match parse_row(&record, columns, &mut interner) {
            Ok(value) => contents.values.push(value),
            Err(reason) => contents.bad_lines.push(BadLine {
                line,
                raw: raw.to_vec(),
                reason,
            }),
        }
    }
    if layout.is_none() && strict {
        return Err(BackupError::Malformed {
            path: path.to_owned(),
            line: 1,
            reason: "the header has no timestamp column".into(),
        });
    }
    if contents.header.is_empty() {
        contents.header = format!("{}\n", BACKUP_HEADER.join(",")).into_bytes();
    }
    Ok(contents)
}

fn with_line_break(raw: &[u8]) -> Vec<u8> {
    let mut line = raw.to_vec();
    if !line.ends_with(b"\n") {
        line.push(b'\n');
    }
    line
}

/// One data row, or what is wrong with it.
fn parse_row(
    record: &csv::ByteRecord,
    layout: &Layout,
    interner: &mut Interner,
) -> Result<TagValue, String> {
    if record.len() != layout.width {
        return Err(format!(
            "{} fields where the header has {}",
            record.len(),
            layout.width
        ));
    }
    let field = |index: usize| -> Result<&str, String> {
        std::str::from_utf8(record.get(index).unwrap_or_default())
            .map_err(|error| format!("invalid UTF-8: {error}"))
    };
    let [timestamp, plc_code, tag_address, tag_value, quality] = layout.columns;
    let timestamp = parse_timestamp(field(timestamp)?).map_err(|e| e.to_string())?;
    let tag_value = match field(tag_value)? {
        "" => None,
        text => Some(
            text.parse::<f64>()
                .map_err(|_| format!("tag_value {text:?} is not a number"))?,
        ),
    };
    let quality: Quality = field(quality)?
        .parse()
        .map_err(|e: tag_model::TagValueError| e.to_string())?;
    if let Some(index) = layout.attempt {
        let attempt = field(index)?;
        if !attempt.is_empty() {
            parse_timestamp(attempt).map_err(|e| format!("insertion_attempt_{e}"))?;
        }
    }
    TagValue::new(
        timestamp,
        interner.get(restore(field(plc_code)?)),
        interner.get(restore(field(tag_address)?)),
        tag_value,
        quality,
    )
    .map_err(|e| e.to_string())
}

/// Only I/O can fail while reading byte records from memory; kept general all the same.
fn csv_error(path: &Path, error: csv::Error) -> BackupError {
    let line = error.position().map_or(0, csv::Position::line);
    match error.into_kind() {
        csv::ErrorKind::Io(source) => BackupError::Read {
            path: path.to_owned(),
            source,
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
