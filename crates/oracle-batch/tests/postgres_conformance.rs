//! The sink conformance suite against a real PostgreSQL server: a throwaway cluster started
//! for this test (skipped, loudly, where the server binaries are missing, unless REQUIRE_PG=1).

use std::time::Duration;

use oracle_batch::conformance;
use oracle_batch::{ColumnMapping, FailureKind, PostgresConfig, PostgresSink, Secret, Sink};
use pg_test_cluster::PgCluster;

fn sink(url: &str, table: &str) -> PostgresSink {
    PostgresSink::new(PostgresConfig {
        url: Secret::new(url),
        table: table.into(),
        pool_min: 1,
        pool_max: 4,
        pool_timeout: Duration::from_secs(5),
        mapping: ColumnMapping::standard(),
    })
    .expect("PostgreSQL settings")
}

#[test]
fn postgres_passes_the_conformance_suite_and_classifies_errors() {
    let Some(pg) = PgCluster::start() else { return };
    let mut n = 0;
    conformance::run_all(|| {
        n += 1;
        let sink = sink(&pg.url(), &format!("TAG_VALUES_{n}"));
        sink.create_table().expect("create table");
        sink
    });
    assert_eq!(n, 11);

    // Set-up errors: a missing table, a wrong password. Neither shows the password.
    let mut missing = sink(&pg.url(), "NO_SUCH_TABLE");
    let error = missing.probe().unwrap_err();
    assert_eq!(error.kind(), FailureKind::Setup, "{error}");
    assert!(
        error
            .message()
            .contains("sql/postgres/create_tag_values.sql"),
        "{error}"
    );
    let wrong = pg
        .url()
        .replace(pg_test_cluster::PASSWORD, "not-the-password");
    let error = sink(&wrong, "TAG_VALUES_1").probe().unwrap_err();
    assert_eq!(error.kind(), FailureKind::Setup, "{error}");
    assert!(
        error
            .message()
            .contains("check the user and password in POSTGRES_URL"),
        "{error}"
    );
    assert!(!error.message().contains("not-the-password"), "{error}");

    // A stopped server is transient, and the sink recovers when it returns.
    let mut healthy = sink(&pg.url(), "TAG_VALUES_1");
    healthy.probe().unwrap();
    pg.stop();
    let error = healthy.probe().unwrap_err();
    assert_eq!(error.kind(), FailureKind::Transient, "{error}");
    pg.start_again();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while healthy.probe().is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "no recovery after restart"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A server restart leaves every pooled connection dead. The first write after it fails
/// (that is how the pool finds out); the next one must not take another dead connection:
/// otherwise each retry of a batch fails in turn, one per pooled connection, and a short
/// outage runs through all the spec's retries although the server is back.
#[test]
fn after_a_restart_one_failed_write_clears_the_dead_connections_from_the_pool() {
    let Some(pg) = PgCluster::start() else { return };
    let mut writer = PostgresSink::new(PostgresConfig {
        url: Secret::new(pg.url()),
        table: "TAG_VALUES".into(),
        pool_min: 5,
        pool_max: 5,
        pool_timeout: Duration::from_secs(5),
        mapping: ColumnMapping::standard(),
    })
    .unwrap();
    writer.create_table().unwrap();
    // Five connections in the pool, all busy at once so that none is left unused.
    let held: Vec<_> = (0..5).map(|_| writer.clone()).collect();
    let batch = values(0, 10);
    writer.write_batch(&batch).unwrap();
    let threads: Vec<_> = held
        .into_iter()
        .enumerate()
        .map(|(i, mut sink)| {
            let batch = values(100 * (i + 1), 10);
            std::thread::spawn(move || sink.write_batch(&batch).unwrap())
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    pg.stop();
    pg.start_again();
    let mut failures = 0;
    for n in 0..5 {
        if writer.write_batch(&values(1_000 + 10 * n, 10)).is_err() {
            failures += 1;
        }
    }
    assert!(
        failures <= 1,
        "{failures} of 5 writes failed after the restart"
    );
}

fn values(first: usize, count: usize) -> Vec<tag_model::TagValue> {
    let start = chrono::NaiveDate::from_ymd_opt(2025, 11, 2)
        .and_then(|d| d.and_hms_opt(14, 30, 45))
        .unwrap();
    (first..first + count)
        .map(|i| {
            tag_model::TagValue::new(
                start + chrono::Duration::milliseconds(i as i64),
                "PLC01",
                "D100",
                Some(i as f64),
                tag_model::Quality::Good,
            )
            .unwrap()
        })
        .collect()
}
