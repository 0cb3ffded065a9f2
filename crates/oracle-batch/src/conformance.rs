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

use crate::{PostgresSink, RowConflict, Sink, SinkError, SqliteSink};

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
    a_repeat_with_another_value_or_quality_is_a_conflict(&mut fresh());
    conflicting_repeats_within_a_batch_lose_to_the_first(&mut fresh());
    a_conflict_beside_a_rejected_row(&mut fresh());
    many_repeats_with_a_few_conflicts(&mut fresh());
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
    assert!(again.conflicts.is_empty(), "{:?}", again.conflicts);
    let overlap = write(sink, &rows[50..]);
    assert_eq!((overlap.written, overlap.duplicates), (100, 50));
    assert!(overlap.conflicts.is_empty(), "{:?}", overlap.conflicts);
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
    assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);
    assert_eq!(stored(sink).len(), 3);
}

/// `row` with another value and quality, same key.
fn variant(row: &TagValue, value: Option<f64>, quality: Quality) -> TagValue {
    TagValue::new(
        row.timestamp(),
        row.plc_code(),
        row.tag_address(),
        value,
        quality,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// (index, offered value and quality, stored value and quality) of each conflict.
type Lost = (usize, Option<f64>, Quality, Option<(Option<f64>, Quality)>);

/// In batch order (a sink may report them in any order).
fn lost(batch: &[TagValue], conflicts: &[RowConflict]) -> Vec<Lost> {
    let mut conflicts: Vec<&RowConflict> = conflicts.iter().collect();
    conflicts.sort_by_key(|c| c.index);
    conflicts
        .into_iter()
        .map(|c| {
            let offered = &batch[c.index];
            (
                c.index,
                offered.value(),
                offered.quality(),
                c.stored.as_ref().map(|s| (s.value(), s.quality())),
            )
        })
        .collect()
}

/// A repeat of a stored key is a duplicate when value and quality are the same (an absent
/// value included), and a conflict, reported with the stored row, when either differs; the
/// stored rows stay as they were.
pub fn a_repeat_with_another_value_or_quality_is_a_conflict<S: ConformanceSink>(sink: &mut S) {
    let rows = sample_rows(7);
    let first = [
        variant(&rows[0], Some(1.0), Quality::Good),
        variant(&rows[1], None, Quality::Bad),
        variant(&rows[2], Some(0.5), Quality::Uncertain),
    ];
    write(sink, &first);
    let batch = [
        variant(&rows[0], Some(1.0), Quality::Good), // identical
        variant(&rows[0], Some(2.0), Quality::Good), // another value
        variant(&rows[1], None, Quality::Bad),       // identical, absent value
        variant(&rows[1], Some(0.0), Quality::Bad),  // a value where none was stored
        variant(&rows[2], Some(0.5), Quality::Good), // another quality
        rows[5].clone(),                             // new
    ];
    let report = write(sink, &batch);
    assert_eq!(
        (report.written, report.duplicates),
        (1, 2),
        "{}: {report:?}",
        sink.describe()
    );
    assert_eq!(
        lost(&batch, &report.conflicts),
        [
            (
                1,
                Some(2.0),
                Quality::Good,
                Some((Some(1.0), Quality::Good))
            ),
            (3, Some(0.0), Quality::Bad, Some((None, Quality::Bad))),
            (
                4,
                Some(0.5),
                Quality::Good,
                Some((Some(0.5), Quality::Uncertain))
            ),
        ],
        "{}",
        sink.describe()
    );
    for conflict in &report.conflicts {
        let stored = conflict.stored.as_ref().map(|s| {
            (
                s.timestamp(),
                s.plc_code().to_owned(),
                s.tag_address().to_owned(),
            )
        });
        let offered = &batch[conflict.index];
        assert_eq!(
            stored,
            Some((
                offered.timestamp(),
                offered.plc_code().to_owned(),
                offered.tag_address().to_owned()
            )),
            "the stored row of a conflict has the offered row's key"
        );
    }
    let mut expected = first.to_vec();
    expected.push(rows[5].clone());
    assert_eq!(stored(sink), sorted(expected), "stored rows changed");
}

/// 1, 2, 99 and 1 again for one key in one batch (a PLC whose clock stands still, two
/// pollers of one tag): the first is stored, the identical repeat is a duplicate, 2 and 99
/// are conflicts that lost to 1.
pub fn conflicting_repeats_within_a_batch_lose_to_the_first<S: ConformanceSink>(sink: &mut S) {
    let rows = sample_rows(2);
    let batch = [
        variant(&rows[0], Some(1.0), Quality::Good),
        variant(&rows[0], Some(2.0), Quality::Good),
        rows[1].clone(),
        variant(&rows[0], Some(99.0), Quality::Good),
        variant(&rows[0], Some(1.0), Quality::Good),
    ];
    let report = write(sink, &batch);
    assert_eq!(
        (report.written, report.duplicates),
        (2, 1),
        "{}: {report:?}",
        sink.describe()
    );
    let stored_one = Some((Some(1.0), Quality::Good));
    assert_eq!(
        lost(&batch, &report.conflicts),
        [
            (1, Some(2.0), Quality::Good, stored_one),
            (3, Some(99.0), Quality::Good, stored_one),
        ],
        "{}",
        sink.describe()
    );
    assert_eq!(
        stored(sink),
        sorted(vec![batch[0].clone(), rows[1].clone()])
    );
}

/// A batch with a row the database refuses, a conflict and a duplicate: each is reported as
/// what it is (PostgreSQL redoes such a batch row by row).
pub fn a_conflict_beside_a_rejected_row<S: ConformanceSink>(sink: &mut S) {
    let rows = sample_rows(4);
    write(sink, &rows[..2]);
    let batch = [
        variant(&rows[2], Some(OUT_OF_RANGE_VALUE), Quality::Good),
        variant(&rows[0], Some(-7.25), rows[0].quality()),
        rows[1].clone(),
        rows[3].clone(),
    ];
    let report = write(sink, &batch);
    assert_eq!(
        (report.written, report.duplicates, report.rejected.len()),
        (1, 1, 1),
        "{}: {report:?}",
        sink.describe()
    );
    assert_eq!(report.rejected[0].index, 0);
    assert_eq!(
        lost(&batch, &report.conflicts),
        [(
            1,
            Some(-7.25),
            rows[0].quality(),
            Some((rows[0].value(), rows[0].quality()))
        )],
        "{}",
        sink.describe()
    );
    assert_eq!(stored(sink).len(), 3);
}

/// 2,500 rows resent, every 100th with another value: 25 conflicts, 2,475 duplicates, the
/// stored rows unchanged (more keys than one read-back query takes on some databases).
pub fn many_repeats_with_a_few_conflicts<S: ConformanceSink>(sink: &mut S) {
    let rows = sample_rows(2_500);
    write(sink, &rows);
    let resent: Vec<TagValue> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| match i % 100 {
            42 => variant(row, Some(i as f64 + 0.25), row.quality()),
            _ => row.clone(),
        })
        .collect();
    let report = write(sink, &resent);
    assert_eq!(
        (report.written, report.duplicates, report.conflicts.len()),
        (0, 2_475, 25),
        "{}",
        sink.describe()
    );
    for conflict in &report.conflicts {
        assert_eq!(conflict.index % 100, 42);
        assert_eq!(conflict.stored.as_ref(), Some(&rows[conflict.index]));
    }
    assert_eq!(stored(sink), sorted(rows));
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
