//! The sink conformance suite on the embedded SQLite sink, one test per check.

use oracle_batch::conformance::{self, ConformanceSink};
use oracle_batch::SqliteSink;

/// A fresh database file in a temp dir that lives as long as the sink.
struct Fresh {
    sink: SqliteSink,
    _dir: tempfile::TempDir,
}

fn fresh() -> Fresh {
    let dir = tempfile::tempdir().expect("temp dir");
    let sink = SqliteSink::open(dir.path().join("data/tag_values.db"), "TAG_VALUES")
        .expect("open SQLite sink");
    Fresh { sink, _dir: dir }
}

macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {$(
        #[test]
        fn $check() {
            let mut fresh = fresh();
            conformance::$check(&mut fresh.sink);
        }
    )*};
}

conformance_tests!(
    empty_batch_is_a_no_op,
    writes_rows_that_read_back_equal,
    resent_rows_are_duplicates_not_copies,
    duplicate_keys_within_a_batch_are_stored_once,
    a_repeat_with_another_value_or_quality_is_a_conflict,
    conflicting_repeats_within_a_batch_lose_to_the_first,
    a_conflict_beside_a_rejected_row,
    many_repeats_with_a_few_conflicts,
    a_bad_row_is_rejected_alone,
    writes_a_batch_of_20000_rows,
    probe_succeeds_on_a_healthy_sink,
);

#[test]
fn rejects_what_oracle_would_reject_through_check_constraints() {
    let mut fresh = fresh();
    let rows = conformance::sample_rows(3);
    // Rows that bypass TagValue validation can only come from other tools writing the file,
    // so check the constraints directly with SQL.
    let db = rusqlite::Connection::open(fresh.sink.path()).unwrap();
    for (sql, what) in [
        (
            "INSERT INTO TAG_VALUES VALUES (1, '', 'A', 1.0, 'GOOD', 1)",
            "empty plc_code",
        ),
        (
            "INSERT INTO TAG_VALUES VALUES (1, 'P', 'A', 1.0, 'FINE', 1)",
            "unknown quality",
        ),
        (
            "INSERT INTO TAG_VALUES VALUES (1, 'P', 'A', 'x', 'GOOD', 1)",
            "text value",
        ),
        (
            "INSERT INTO TAG_VALUES VALUES (1, printf('%.51c', 'P'), 'A', 1.0, 'GOOD', 1)",
            "51-byte plc_code",
        ),
    ] {
        assert!(db.execute(sql, []).is_err(), "{what} was accepted");
    }
    assert_eq!(fresh.sink.stored_rows().unwrap().len(), 0);
    oracle_batch::Sink::write_batch(&mut fresh.sink, &rows).unwrap();
    assert_eq!(fresh.sink.count().unwrap(), 3);
}

#[test]
fn run_all_passes() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    conformance::run_all(|| {
        n += 1;
        SqliteSink::open(dir.path().join(format!("{n}.db")), "TAG_VALUES").unwrap()
    });
    assert_eq!(n, 11);
}
