//! The sink conformance suite against a real PostgreSQL server: a throwaway cluster started
//! for this test (skipped, loudly, where the server binaries are missing, unless REQUIRE_PG=1).

use std::time::Duration;

use oracle_batch::conformance;
use oracle_batch::{FailureKind, PostgresConfig, PostgresSink, Secret, Sink};
use pg_test_cluster::PgCluster;

fn sink(url: &str, table: &str) -> PostgresSink {
    PostgresSink::new(PostgresConfig {
        url: Secret::new(url),
        table: table.into(),
        pool_min: 1,
        pool_max: 4,
        pool_timeout: Duration::from_secs(5),
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
    assert_eq!(n, 7);

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
