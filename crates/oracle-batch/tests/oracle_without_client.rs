//! The one Oracle path this machine has for real: no Oracle Client library installed. The
//! sink must fail fast with a set-up error that says how to fix it, never the password, and
//! the writer must back the batch up instead of retrying in a loop.

mod common;

use std::time::{Duration, Instant};

use common::{config, eventually, values, Rig};
use oracle_batch::{BatchWriter, FailureKind, OracleConfig, OracleSink, Secret, Sink};

const PASSWORD: &str = "Sup3r-S3cret!pw";

fn sink() -> OracleSink {
    OracleSink::new(OracleConfig {
        pool_timeout: Duration::from_secs(2),
        // Nothing listens on the discard port: if a client library were installed, the
        // error would be "no listener" instead.
        ..OracleConfig::new("127.0.0.1:9/NOSUCH", "scada_user", Secret::new(PASSWORD))
    })
    .expect("valid settings")
}

fn client_library_missing(message: &str) -> bool {
    message.contains("DPI-1047")
}

#[test]
fn probe_and_write_fail_with_an_actionable_setup_error() {
    let mut sink = sink();
    let started = Instant::now();
    let probe = sink.probe().unwrap_err();
    let write = sink.write_batch(&values(0, 3)).unwrap_err();
    for error in [&probe, &write] {
        let message = error.message();
        assert!(!message.contains(PASSWORD), "password leaked: {message}");
        if client_library_missing(message) {
            assert_eq!(error.kind(), FailureKind::Setup, "{message}");
            for advice in [
                "Oracle Client library",
                "Instant Client",
                "LD_LIBRARY_PATH",
                "SINK=sqlite",
            ] {
                assert!(message.contains(advice), "{message} lacks {advice}");
            }
        } else {
            // A machine with Instant Client: the database is simply not there.
            assert_eq!(error.kind(), FailureKind::Transient, "{message}");
            assert!(message.contains("ORA-12541"), "{message}");
        }
    }
    // The direct connection attempt reports at once instead of waiting out the pool timeout.
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn the_writer_backs_up_instead_of_retrying_a_setup_error() {
    let mut probe_sink = sink();
    let missing = probe_sink
        .probe()
        .err()
        .is_some_and(|e| client_library_missing(e.message()));
    let rig = Rig::new(100);
    let writer = BatchWriter::builder(rig.buffer.clone(), rig.backup.clone())
        .sink(sink())
        .config(config(5, 20))
        .clock(rig.clock.clone())
        .spawn()
        .unwrap();
    rig.push_all(&values(0, 5));
    eventually("the backup", || writer.stats().backed_up == 5);
    if missing {
        assert!(rig.clock.sleeps().is_empty(), "retried a set-up error");
    }
    let report = writer.shutdown(Duration::from_secs(5));
    assert!(report.clean);
    assert_eq!(rig.backed_up_rows(), values(0, 5));
}
