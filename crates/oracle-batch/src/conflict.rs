//! Repeated keys: a row the database did not insert because its primary key (plc_code,
//! tag_address, timestamp) is already stored. An identical repeat (same value, same quality)
//! is a harmless duplicate: resending is how retries and replays stay safe. A repeat with
//! another value or quality is a conflict: the database keeps the row it has, and the writer
//! keeps the losing row in a `conflicts_*.csv` file, so nothing disappears without a trace.
//!
//! The comparison lives here once, for every sink. A sink says which rows were repeats (or,
//! where the database reports only a count, how many), reads the stored rows back for those
//! keys in one call, and [`settle_repeats`] splits them. A batch without repeats reads nothing.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use tag_model::TagValue;

/// A row that was not stored because its key is stored with another value or quality.
#[derive(Clone, Debug, PartialEq)]
pub struct RowConflict {
    /// Index of the row in the batch.
    pub index: usize,
    /// The stored row it lost to; `None` when no row had that key any more when it was read
    /// back (another program deleted it meanwhile): the row is kept in the conflicts file all
    /// the same, as it is in no table.
    pub stored: Option<TagValue>,
}

/// How a repeated row compares with the row stored under its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeat {
    /// Same value (both absent, or equal numbers) and same quality: already stored.
    Identical,
    /// Another value or another quality: the offered row is not stored.
    Conflict,
}

/// The one comparison every sink uses: a repeat is identical when its value and quality
/// equal the stored row's. Numbers compare exactly (`0.0` and `-0.0` are equal: databases
/// do not keep the sign of zero); an absent value equals only an absent value.
///
/// ```
/// use oracle_batch::{compare_repeat, Repeat};
/// use tag_model::{Quality, TagValue};
///
/// let at = chrono::Utc::now().naive_utc();
/// let stored = TagValue::new(at, "PLC01", "D100", Some(1.0), Quality::Good)?;
/// let again = TagValue::new(at, "PLC01", "D100", Some(1.0), Quality::Good)?;
/// let other = TagValue::new(at, "PLC01", "D100", Some(2.0), Quality::Good)?;
/// assert_eq!(compare_repeat(&again, &stored), Repeat::Identical);
/// assert_eq!(compare_repeat(&other, &stored), Repeat::Conflict);
/// # Ok::<(), tag_model::TagValueError>(())
/// ```
pub fn compare_repeat(offered: &TagValue, stored: &TagValue) -> Repeat {
    if offered.value() == stored.value() && offered.quality() == stored.quality() {
        Repeat::Identical
    } else {
        Repeat::Conflict
    }
}

/// The repeated rows of a batch, split.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Repeats {
    /// Identical repeats: already stored.
    pub duplicates: usize,
    /// Repeats with another value or quality, in batch order.
    pub conflicts: Vec<RowConflict>,
}

type Key<'a> = (NaiveDateTime, &'a str, &'a str);

fn key(value: &TagValue) -> Key<'_> {
    (value.timestamp(), value.plc_code(), value.tag_address())
}

/// Splits the `repeats` rows of `batch` that the database did not insert because their key
/// was stored into identical duplicates and conflicts.
///
/// `candidates` are the indices of the rows that may be repeats: exactly the repeated rows
/// where the database says which (SQLite's per-row result, Oracle's ORA-00001 batch errors,
/// PostgreSQL row by row), or every row that was not rejected where it reports only a count
/// (PostgreSQL's bulk insert): an inserted row reads back equal to itself, so it is never
/// taken for a conflict, and the conflicts found are the repeats that differ.
///
/// `read_back` gets each distinct key of the candidates once and returns the stored rows with
/// those keys (in any order; a key may be missing). It is called once, and not at all when
/// `repeats` is 0: a batch without repeats pays nothing. Its error is returned as is.
///
/// At most `repeats` rows are conflicts (a row changed by another program meanwhile cannot
/// make the counts exceed the batch); the rest of the repeats are duplicates.
pub fn settle_repeats<E>(
    batch: &[TagValue],
    candidates: &[usize],
    repeats: usize,
    read_back: impl FnOnce(&[&TagValue]) -> Result<Vec<TagValue>, E>,
) -> Result<Repeats, E> {
    if repeats == 0 {
        return Ok(Repeats::default());
    }
    let mut seen = HashSet::with_capacity(candidates.len());
    let keys: Vec<&TagValue> = candidates
        .iter()
        .filter_map(|&index| batch.get(index))
        .filter(|value| seen.insert(key(value)))
        .collect();
    let stored_rows = read_back(&keys)?;
    let stored: HashMap<Key<'_>, &TagValue> = stored_rows.iter().map(|s| (key(s), s)).collect();
    let mut conflicts = Vec::new();
    for &index in candidates {
        if conflicts.len() == repeats {
            break;
        }
        let Some(offered) = batch.get(index) else {
            continue;
        };
        match stored.get(&key(offered)) {
            Some(row) if compare_repeat(offered, row) == Repeat::Identical => {}
            found => conflicts.push(RowConflict {
                index,
                stored: found.map(|row| (*row).clone()),
            }),
        }
    }
    Ok(Repeats {
        duplicates: repeats - conflicts.len(),
        conflicts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use tag_model::Quality;

    fn at(second: u32) -> NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2025, 11, 2)
            .and_then(|d| d.and_hms_opt(14, 30, second))
            .unwrap()
    }

    fn row(second: u32, address: &str, value: Option<f64>, quality: Quality) -> TagValue {
        TagValue::new(at(second), "PLC01", address, value, quality).unwrap()
    }

    #[test]
    fn identical_means_same_value_and_quality() {
        let stored = row(0, "D100", Some(1.0), Quality::Good);
        let cases = [
            (Some(1.0), Quality::Good, Repeat::Identical),
            (Some(2.0), Quality::Good, Repeat::Conflict),
            (Some(1.0), Quality::Bad, Repeat::Conflict),
            (Some(1.0), Quality::Uncertain, Repeat::Conflict),
            (None, Quality::Good, Repeat::Conflict),
            (Some(1.0 + f64::EPSILON), Quality::Good, Repeat::Conflict),
        ];
        for (value, quality, expected) in cases {
            let offered = row(0, "D100", value, quality);
            assert_eq!(compare_repeat(&offered, &stored), expected, "{offered:?}");
        }
        let absent = row(0, "D100", None, Quality::Bad);
        assert_eq!(
            compare_repeat(&row(0, "D100", None, Quality::Bad), &absent),
            Repeat::Identical
        );
        assert_eq!(
            compare_repeat(&row(0, "D100", Some(0.0), Quality::Bad), &absent),
            Repeat::Conflict
        );
        let zero = row(0, "D100", Some(0.0), Quality::Good);
        assert_eq!(
            compare_repeat(&row(0, "D100", Some(-0.0), Quality::Good), &zero),
            Repeat::Identical
        );
    }

    #[test]
    fn no_repeats_reads_nothing() {
        let batch = [row(0, "D100", Some(1.0), Quality::Good)];
        let called = Cell::new(false);
        let repeats = settle_repeats(&batch, &[], 0, |_| {
            called.set(true);
            Ok::<_, ()>(Vec::new())
        })
        .unwrap();
        assert_eq!(repeats, Repeats::default());
        assert!(!called.get(), "a batch without repeats read back rows");
    }

    #[test]
    fn exact_repeats_split_into_duplicates_and_conflicts_with_one_read() {
        // 1, 2 and 99 for one key in one batch, then an identical 1, and a repeat of an
        // earlier stored key (D200 = 5, GOOD) that differs in quality only.
        let batch = [
            row(0, "D100", Some(1.0), Quality::Good),
            row(0, "D100", Some(2.0), Quality::Good),
            row(0, "D100", Some(99.0), Quality::Good),
            row(0, "D100", Some(1.0), Quality::Good),
            row(0, "D200", Some(5.0), Quality::Bad),
        ];
        let stored = [
            row(0, "D100", Some(1.0), Quality::Good),
            row(0, "D200", Some(5.0), Quality::Good),
        ];
        let calls = Cell::new(0);
        let repeats = settle_repeats(&batch, &[1, 2, 3, 4], 4, |keys| {
            calls.set(calls.get() + 1);
            // Each distinct key once.
            let addresses: Vec<&str> = keys.iter().map(|k| k.tag_address()).collect();
            assert_eq!(addresses, ["D100", "D200"]);
            Ok::<_, ()>(stored.to_vec())
        })
        .unwrap();
        assert_eq!(calls.get(), 1);
        assert_eq!(repeats.duplicates, 1);
        let lost: Vec<(usize, Option<f64>, Option<Quality>)> = repeats
            .conflicts
            .iter()
            .map(|c| {
                let stored = c.stored.as_ref().unwrap();
                (c.index, stored.value(), Some(stored.quality()))
            })
            .collect();
        assert_eq!(
            lost,
            [
                (1, Some(1.0), Some(Quality::Good)),
                (2, Some(1.0), Some(Quality::Good)),
                (4, Some(5.0), Some(Quality::Good)),
            ]
        );
    }

    #[test]
    fn a_count_only_report_finds_the_rows_that_differ() {
        // PostgreSQL's bulk insert: 2 of 4 rows were not inserted; which is not said.
        let batch = [
            row(0, "D100", Some(1.0), Quality::Good),
            row(1, "D100", Some(3.0), Quality::Good),
            row(0, "D100", Some(2.0), Quality::Good),
            row(1, "D100", Some(3.0), Quality::Good),
        ];
        let stored = [
            row(0, "D100", Some(1.0), Quality::Good),
            row(1, "D100", Some(3.0), Quality::Good),
        ];
        let repeats =
            settle_repeats(&batch, &[0, 1, 2, 3], 2, |_| Ok::<_, ()>(stored.to_vec())).unwrap();
        assert_eq!(repeats.duplicates, 1);
        assert_eq!(repeats.conflicts.len(), 1);
        assert_eq!(repeats.conflicts[0].index, 2);
    }

    #[test]
    fn a_stored_row_gone_when_read_back_is_kept_as_a_conflict() {
        let batch = [row(0, "D100", Some(1.0), Quality::Good)];
        let repeats = settle_repeats(&batch, &[0], 1, |_| Ok::<_, ()>(Vec::new())).unwrap();
        assert_eq!(
            repeats,
            Repeats {
                duplicates: 0,
                conflicts: vec![RowConflict {
                    index: 0,
                    stored: None
                }],
            }
        );
    }

    #[test]
    fn conflicts_never_exceed_the_repeats() {
        // Another program changed both stored rows after one was inserted: the counts still
        // add up to the batch.
        let batch = [
            row(0, "D100", Some(1.0), Quality::Good),
            row(1, "D100", Some(1.0), Quality::Good),
        ];
        let stored = [
            row(0, "D100", Some(7.0), Quality::Good),
            row(1, "D100", Some(7.0), Quality::Good),
        ];
        let repeats = settle_repeats(&batch, &[0, 1], 1, |_| Ok::<_, ()>(stored.to_vec())).unwrap();
        assert_eq!((repeats.duplicates, repeats.conflicts.len()), (0, 1));
    }

    #[test]
    fn a_read_back_error_is_returned() {
        let batch = [row(0, "D100", Some(1.0), Quality::Good)];
        let error = settle_repeats(&batch, &[0], 1, |_| Err::<Vec<TagValue>, _>("lost"));
        assert_eq!(error, Err("lost"));
    }
}
