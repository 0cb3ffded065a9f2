//! The PLC-side handshake (trigger polled, rising edge only, ack or reset) and report by
//! exception (deadband, heartbeat), against the fake Modbus server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use polling_engine::{PollingConfig, PollingEngine};
use tag_model::TagValue;
use test_support::eventually;
use test_support::fake_modbus::FakeModbus;

type Polls = Arc<Mutex<Vec<Vec<TagValue>>>>;

fn start(port: u16, group: &str) -> (PollingEngine, Polls) {
    let config = PollingConfig::from_toml(
        &format!(
            "[[plc]]\nplc_code = \"MB1\"\ndriver = \"modbus\"\nhost = \"127.0.0.1\"\nport = {port}\n\
             [[group]]\nname = \"CELL\"\nplc_code = \"MB1\"\n{group}\n"
        ),
        "test",
    )
    .expect("valid configuration");
    let polls: Polls = Arc::default();
    let sink = polls.clone();
    let engine = PollingEngine::new(&config, Arc::new(move |v| sink.lock().unwrap().push(v)));
    engine.start().unwrap();
    (engine, polls)
}

fn count(polls: &Polls) -> usize {
    polls.lock().unwrap().len()
}

/// The PLC sets C0; the group reads once, writes 1 to C1; C0 staying set reads nothing more;
/// the PLC resets C0, the service resets C1; the next rising edge reads again.
#[test]
fn a_rising_trigger_reads_once_and_the_ack_follows_the_trigger() {
    let server = FakeModbus::start();
    server.set_holding(0, &[41]);
    let (engine, polls) = start(
        server.address().port(),
        "mode = \"HANDSHAKE\"\ntrigger = \"C0\"\ntrigger_poll_ms = 20\nack = \"C1\"\ntags = [\"HR0\"]",
    );
    let handle = engine.handle();
    eventually("the trigger read a few times", || {
        handle.status()[0].trigger_reads >= 3
    });
    assert_eq!(count(&polls), 0, "read without a trigger");
    server.set_coils(0, &[true]);
    eventually("the ack", || server.coil(1));
    assert_eq!(count(&polls), 1);
    assert_eq!(polls.lock().unwrap()[0][0].value(), Some(41.0));
    // The trigger stays set for many trigger periods: no second read.
    let reads = handle.status()[0].trigger_reads;
    eventually("ten more trigger reads", || {
        handle.status()[0].trigger_reads >= reads + 10
    });
    assert_eq!(count(&polls), 1, "re-read while the trigger stayed set");
    server.set_coils(0, &[false]);
    eventually("the ack reset", || !server.coil(1));
    server.set_holding(0, &[42]);
    server.set_coils(0, &[true]);
    eventually("the second read", || count(&polls) == 2);
    assert_eq!(polls.lock().unwrap()[1][0].value(), Some(42.0));
    // The API trigger still works alongside.
    handle.trigger("CELL").unwrap();
    eventually("the API-triggered read", || count(&polls) == 3);
    engine.stop();
}

/// `reset_trigger = true`: the service writes 0 to the trigger word after the read.
#[test]
fn reset_trigger_clears_the_trigger_after_the_read() {
    let server = FakeModbus::start();
    server.set_holding(0, &[7]);
    let (engine, polls) = start(
        server.address().port(),
        "mode = \"HANDSHAKE\"\ntrigger = \"HR9\"\ntrigger_poll_ms = 20\nreset_trigger = true\n\
         tags = [\"HR0\"]",
    );
    server.set_holding(9, &[1]);
    eventually("the read", || count(&polls) == 1);
    eventually("the trigger reset", || server.holding(9) == 0);
    server.set_holding(9, &[5]);
    eventually("a second read", || count(&polls) == 2);
    engine.stop();
}

/// Deadband 5: a value that stays or moves less is not pushed and is counted as suppressed;
/// a move past the deadband is pushed. Stored values are scaled.
#[test]
fn values_inside_the_deadband_are_suppressed_and_counted() {
    let server = FakeModbus::start();
    server.set_holding(0, &[1000]);
    server.set_holding(1, &[1]);
    let (engine, polls) = start(
        server.address().port(),
        "mode = \"FIXED\"\ninterval_ms = 20\n\
         tags = [{ address = \"HR0\", scale = 0.1, deadband = 5 }, \"HR1\"]",
    );
    let handle = engine.handle();
    eventually("five polls", || handle.status()[0].polls >= 5);
    server.set_holding(0, &[1030]); // 103.0: inside the deadband of 100.0
    let polls_now = handle.status()[0].polls;
    eventually("five more polls", || {
        handle.status()[0].polls >= polls_now + 5
    });
    server.set_holding(0, &[1060]); // 106.0: past it
    eventually("the move pushed", || {
        polls
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .any(|v| v.tag_address() == "HR0" && v.value() == Some(106.0))
    });
    engine.stop();
    let status = handle.status().remove(0);
    let pushed: Vec<Option<f64>> = polls
        .lock()
        .unwrap()
        .iter()
        .flatten()
        .filter(|v| v.tag_address() == "HR0")
        .map(|v| v.value())
        .collect();
    assert_eq!(pushed, [Some(100.0), Some(106.0)]);
    // HR1 has no deadband: pushed every poll. HR0 was suppressed in all the other polls.
    let hr1 = polls
        .lock()
        .unwrap()
        .iter()
        .flatten()
        .filter(|v| v.tag_address() == "HR1")
        .count();
    assert_eq!(hr1 as u64, status.polls);
    assert_eq!(status.suppressed, status.polls - 2);
    assert_eq!(status.requests_per_poll, 1);
    let _ = Duration::ZERO;
}

/// A handshake group whose PLC refuses connections keeps trying on its backoff and still
/// stops at once when asked (it is never inside a driver call for long).
#[test]
fn a_trigger_group_on_an_unreachable_plc_stops_promptly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (engine, polls) = start(
        port,
        "mode = \"HANDSHAKE\"\ntrigger = \"C0\"\ntrigger_poll_ms = 100\nack = \"C1\"\ntags = [\"HR0\"]",
    );
    let handle = engine.handle();
    // Long enough for several refused connects on the backoff.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!handle.status()[0].connected);
    let started = std::time::Instant::now();
    let outcome = engine.stop_within(Duration::from_millis(500));
    assert!(
        outcome.abandoned.is_empty(),
        "{outcome:?} after {:?}",
        started.elapsed()
    );
    assert_eq!(count(&polls), 0);
}
