//! The conformance suite every [`Sink`] must pass: run it against your own sink too.
//!
//! Each check takes a fresh sink over an empty table and panics (like `assert!`) when the
//! sink breaks the contract. Call [`run_all`], or each check from its own `#[test]`.
//!
//! ```
//! use oracle_batch::{conformance, SqliteSink};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let mut n = 0;
//! conformance::run_all(|| {
//!     n += 1;
//!     SqliteSink::open(dir.path().join(format!("{n}.db")), "TAG_VALUES").unwrap()
//! });
//! ```

use chrono::{Duration, NaiveDate, NaiveDateTime};
use tag_model::{Quality, TagValue};

use crate::{PostgresSink, Sink, SinkError, SqliteSink};

/// A sink whose stored rows the suite can read back.
pub trait ConformanceSink: Sink {
    /// Every stored row, in any order.
    fn stored_rows(&mut self) -> Result<Vec<TagValue>, SinkError>;
}

impl ConformanceSink for SqliteSink {
    fn stored_rows(&mut self) -> Result<Vec<TagValue>, SinkError> {
        self.fetch_all()
    }
}

impl ConformanceSink for PostgresSink {
    fn stored_rows(&mut self) -> Result<Vec<TagValue>, SinkError> {
        self.fetch_all()
    }
}

/// A value every database must refuse while taking the rest of its batch: it is a valid
/// `f64` but larger than Oracle's NUMBER allows (the other sinks mirror that limit).
pub const OUT_OF_RANGE_VALUE: f64 = 1e130;

/// Runs every check, each on a new sink from `fresh`.
pub fn run_all<S: ConformanceSink>(mut fresh: impl FnMut() -> S) {
    empty_batch_is_a_no_op(&mut fresh());
    writes_rows_that_read_back_equal(&mut fresh());
    resent_rows_are_duplicates_not_copies(&mut fresh());
    duplicate_keys_within_a_batch_are_stored_once(&mut fresh());
    a_bad_row_is_rejected_alone(&mut fresh());
    writes_a_batch_of_20000_rows(&mut fresh());
    probe_succeeds_on_a_healthy_sink(&mut fresh());
}

fn start() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2025, 11, 2)
        .and_then(|d| d.and_hms_micro_opt(14, 30, 45, 123_456))
        .unwrap_or_default()
}

/// `count` distinct, varied rows: every quality, absent values, negative and fractional
/// numbers, non-ASCII text, names at the column limits, microsecond timestamps.
pub fn sample_rows(count: usize) -> Vec<TagValue> {
    let long_plc = "P".repeat(tag_model::PLC_CODE_MAX_BYTES);
    let long_address = format!("{}A", "\u{00e9}".repeat(49)); // 99 bytes
    (0..count)
        .map(|i| {
            let plc = match i % 4 {
                0 => "PLC01",
                1 => "PLC02",
                2 => "Ofen-\u{00fc}1",
                _ => long_plc.as_str(),
            };
            let address = match i % 5 {
                4 => long_address.clone(),
                n => format!("D{}", 100 + n + 10 * (i / 20)),
            };
            let value = match i % 6 {
                0 => None,
                1 => Some(-(i as f64) / 7.0),
                2 => Some(1234.5),
                3 => Some(0.0),
                4 => Some(1e-7 * i as f64),
                _ => Some(9.87654321e15),
            };
            let timestamp = start() + Duration::microseconds(i as i64 * 1_000_003);
            TagValue::new(timestamp, plc, address, value, Quality::ALL[i % 3])
                .unwrap_or_else(|e| panic!("sample row {i}: {e}"))
        })
        .collect()
}

fn sorted(mut rows: Vec<TagValue>) -> Vec<TagValue> {
    rows.sort_by(|a, b| {
        (a.plc_code(), a.tag_address(), a.timestamp()).cmp(&(
            b.plc_code(),
            b.tag_address(),
            b.timestamp(),
        ))
    });
    rows
}

fn stored<S: ConformanceSink>(sink: &mut S) -> Vec<TagValue> {
    sorted(
        sink.stored_rows()
            .unwrap_or_else(|e| panic!("reading back from {}: {e}", sink.describe())),
    )
}

fn write<S: ConformanceSink>(sink: &mut S, batch: &[TagValue]) -> crate::WriteReport {
    let report = sink
        .write_batch(batch)
        .unwrap_or_else(|e| panic!("{} write of {} rows: {e}", sink.describe(), batch.len()));
    assert!(
        report.accounts_for(batch.len()),
        "{}: report {report:?} does not account for {} rows",
        sink.describe(),
        batch.len()
    );
    report
}

/// An empty batch writes nothing and reports nothing.
pub fn empty_batch_is_a_no_op<S: ConformanceSink>(sink: &mut S) {
    assert_eq!(write(sink, &[]), crate::WriteReport::default());
    assert!(stored(sink).is_empty());
}

/// N rows written are read back equal, field by field.
pub fn writes_rows_that_read_back_equal<S: ConformanceSink>(sink: &mut S) {
    let rows = sample_rows(1_000);
    let report = write(sink, &rows);
    assert_eq!((report.written, report.duplicates), (1_000, 0));
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    let back = stored(sink);
    assert_eq!(back.len(), rows.len());
    for (got, sent) in back.iter().zip(sorted(rows).iter()) {
        assert_eq!(got, sent);
    }
}

/// A resent batch adds no rows and reports every row as a duplicate; a batch that overlaps
/// half writes only the new half.
pub fn resent_rows_are_duplicates_not_copies<S: ConformanceSink>(sink: &mut S) {
    let rows = sample_rows(200);
    write(sink, &rows[..100]);
    let again = write(sink, &rows[..100]);
    assert_eq!((again.written, again.duplicates), (0, 100));
    let overlap = write(sink, &rows[50..]);
    assert_eq!((overlap.written, overlap.duplicates), (100, 50));
    assert_eq!(stored(sink).len(), 200);
}

/// The same key twice in one batch is stored once: one written, one duplicate.
pub fn duplicate_keys_within_a_batch_are_stored_once<S: ConformanceSink>(sink: &mut S) {
    let rows = sample_rows(3);
    let batch = [
        rows[0].clone(),
        rows[1].clone(),
        rows[0].clone(),
        rows[2].clone(),
    ];
    let report = write(sink, &batch);
    assert_eq!((report.written, report.duplicates), (3, 1));
    assert_eq!(stored(sink).len(), 3);
}

/// A row the database refuses is reported with its index and a reason, and the other rows
/// of its batch are stored.
pub fn a_bad_row_is_rejected_alone<S: ConformanceSink>(sink: &mut S) {
    let mut rows = sample_rows(10);
    let bad = &rows[4];
    rows[4] = TagValue::new(
        bad.timestamp(),
        bad.plc_code(),
        bad.tag_address(),
        Some(OUT_OF_RANGE_VALUE),
        Quality::Good,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let report = write(sink, &rows);
    assert_eq!(report.written, 9, "{report:?}");
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert_eq!(report.rejected[0].index, 4);
    assert!(!report.rejected[0].reason.trim().is_empty());
    let back = stored(sink);
    assert_eq!(back.len(), 9);
    assert!(back
        .iter()
        .all(|row| row.value() != Some(OUT_OF_RANGE_VALUE)));
}

/// 20,000 rows in one batch.
pub fn writes_a_batch_of_20000_rows<S: ConformanceSink>(sink: &mut S) {
    let rows = sample_rows(20_000);
    let report = write(sink, &rows);
    assert_eq!(report.written, 20_000);
    assert_eq!(stored(sink).len(), 20_000);
}

/// The probe passes on a reachable database with its table.
pub fn probe_succeeds_on_a_healthy_sink<S: ConformanceSink>(sink: &mut S) {
    sink.probe()
        .unwrap_or_else(|e| panic!("probe of {}: {e}", sink.describe()));
}
