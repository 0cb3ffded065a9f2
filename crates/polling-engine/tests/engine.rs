//! The engine on simulated PLCs: schedules, triggers, failures and recovery, stop.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use polling_engine::{EngineOptions, PlcConfig, PlcDriver, PollingConfig, PollingEngine};
use tag_model::{Quality, TagValue};

type Polls = Arc<Mutex<Vec<Vec<TagValue>>>>;

fn start(toml: &str) -> (PollingEngine, Polls) {
    let config = PollingConfig::from_toml(toml, "test").expect("valid config");
    let polls: Polls = Arc::new(Mutex::new(Vec::new()));
    let sink = polls.clone();
    let engine = PollingEngine::with_drivers(
        &config,
        Arc::new(move |values| sink.lock().unwrap().push(values)),
        EngineOptions {
            reconnect_min: Duration::from_millis(20),
            reconnect_max: Duration::from_millis(40),
            ..EngineOptions::default()
        },
        &|plc: &PlcConfig| -> Box<dyn PlcDriver> { plc.driver.open(&plc.plc_code) },
    );
    engine.start().expect("threads");
    (engine, polls)
}

fn wait_for_polls(polls: &Polls, count: usize) {
    test_support::eventually(&format!("{count} polls"), || {
        polls.lock().unwrap().len() >= count
    });
}

fn fixed_group(interval_ms: u64, plc_options: &str) -> String {
    format!(
        "[[plc]]\nplc_code = \"PLC01\"\ndriver = \"simulated\"\n{plc_options}\n\
         [[group]]\nname = \"LINE1\"\nmode = \"FIXED\"\ninterval_ms = {interval_ms}\n\
         plc_code = \"PLC01\"\ntags = [\"D100\", \"D101\", \"D102\"]\n"
    )
}

/// A FIXED group polls on absolute deadlines: over 30 polls the schedule does not drift, and
/// each poll carries one timestamp for all its tags.
#[test]
fn fixed_groups_hold_their_interval_without_drift() {
    let (engine, polls) = start(&fixed_group(50, ""));
    wait_for_polls(&polls, 31);
    engine.stop();
    let polls = polls.lock().unwrap();
    for poll in polls.iter() {
        assert_eq!(poll.len(), 3);
        assert!(poll.iter().all(|v| v.timestamp() == poll[0].timestamp()));
        assert!(poll
            .iter()
            .all(|v| v.quality() == Quality::Good && v.value().is_some()));
        assert_eq!(poll[0].plc_code(), "PLC01");
        assert_eq!(poll[1].tag_address(), "D101");
    }
    // Thirty intervals of 50 ms is 1.5 s: a drifting schedule would add the poll time each
    // round. Tolerance: 100 ms either way for a shared machine.
    let span = polls[30][0].timestamp() - polls[0][0].timestamp();
    let span_ms = span.num_milliseconds();
    assert!(
        (1_400..=1_600).contains(&span_ms),
        "30 intervals took {span_ms} ms"
    );
    let status = &engine.handle().status()[0];
    assert_eq!(status.interval_ms, Some(50));
    assert!(!status.running);
}

/// A poll that takes longer than the interval skips the missed deadlines and counts them as
/// overruns instead of firing a burst of catch-up polls.
#[test]
fn slow_polls_count_overruns_instead_of_bursting() {
    let (engine, polls) = start(&fixed_group(20, "latency_ms = 70"));
    std::thread::sleep(Duration::from_millis(700));
    engine.stop();
    let count = polls.lock().unwrap().len() as u64;
    let status = engine.handle().status().remove(0);
    // 700 ms of 70 ms polls is about 10 polls, not the 35 the schedule asked for.
    assert!((5..=14).contains(&count), "{count} polls");
    assert_eq!(status.polls, count);
    assert!(status.overruns >= 2 * count - 4, "{status:?}");
    let polls = polls.lock().unwrap();
    for pair in polls.windows(2) {
        let gap = (pair[1][0].timestamp() - pair[0][0].timestamp()).num_milliseconds();
        assert!(gap >= 60, "catch-up burst: polls {gap} ms apart");
    }
}

#[test]
fn handshake_groups_poll_once_per_trigger() {
    let (engine, polls) = start(
        "[[plc]]\nplc_code = \"PLC03\"\ndriver = \"simulated\"\n\
         [[group]]\nname = \"MANUAL_TRIGGER\"\nmode = \"HANDSHAKE\"\nplc_code = \"PLC03\"\n\
         tags = [\"D500\", \"D501\"]\n",
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(polls.lock().unwrap().is_empty(), "polled without a trigger");
    let handle = engine.handle();
    for _ in 0..3 {
        handle.trigger("MANUAL_TRIGGER").unwrap();
    }
    wait_for_polls(&polls, 3);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(polls.lock().unwrap().len(), 3);
    let status = handle.status().remove(0);
    assert_eq!(
        (status.mode, status.polls, status.pending_triggers),
        ("HANDSHAKE", 3, 0)
    );
    assert!(status.last_poll_time.is_some());
    assert_eq!(
        handle.trigger("NOPE").unwrap_err().to_string(),
        "no polling group is named \"NOPE\""
    );
    engine.stop();
    assert_eq!(
        handle.trigger("MANUAL_TRIGGER").unwrap_err().to_string(),
        "the polling engine is stopping"
    );
}

#[test]
fn fixed_groups_refuse_triggers() {
    let (engine, _polls) = start(&fixed_group(1_000, ""));
    assert_eq!(
        engine.handle().trigger("LINE1").unwrap_err().to_string(),
        "polling group \"LINE1\" is FIXED; only HANDSHAKE groups are triggered"
    );
    engine.stop();
}

/// The PLC goes offline for 300 ms: those polls store BAD values with no value and count
/// errors; the group keeps polling, reconnects and reads GOOD values again.
#[test]
fn an_offline_plc_gives_bad_values_then_recovers() {
    let (engine, polls) = start(&fixed_group(
        20,
        "offline_after_ms = 100\noffline_for_ms = 300",
    ));
    let started = Instant::now();
    loop {
        let recovered = {
            let polls = polls.lock().unwrap();
            let saw_bad = polls.iter().any(|p| p[0].quality() == Quality::Bad);
            saw_bad
                && polls
                    .last()
                    .is_some_and(|p| p[0].quality() == Quality::Good)
        };
        if recovered {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no recovery");
        std::thread::sleep(Duration::from_millis(10));
    }
    engine.stop();
    let polls = polls.lock().unwrap();
    let bad: Vec<&Vec<TagValue>> = polls
        .iter()
        .filter(|p| p[0].quality() == Quality::Bad)
        .collect();
    assert!(bad.len() >= 3, "{} bad polls", bad.len());
    for poll in &bad {
        assert!(poll
            .iter()
            .all(|v| v.quality() == Quality::Bad && v.value().is_none()));
    }
    assert_eq!(
        polls[0][0].quality(),
        Quality::Good,
        "good before the outage"
    );
    let status = engine.handle().status().remove(0);
    assert_eq!(status.errors, bad.len() as u64);
}

/// Every third read request fails. The reconnect wait (20 ms) is shorter than the interval
/// (40 ms), so each failure costs exactly one BAD poll when the machine keeps time.
#[test]
fn every_nth_read_failing_gives_that_share_of_bad_polls() {
    let (engine, polls) = start(&fixed_group(40, "fail_every = 3"));
    wait_for_polls(&polls, 15);
    engine.stop();
    let polls = polls.lock().unwrap();
    let bad = polls
        .iter()
        .filter(|p| p[0].quality() == Quality::Bad)
        .count();
    let third = polls.len() / 3;
    // A late poll can land inside a reconnect wait and add a BAD poll: allow a few.
    assert!(
        (third..=third + 3).contains(&bad),
        "{bad} of {}",
        polls.len()
    );
    assert_eq!(polls[2][0].quality(), Quality::Bad);
    assert_eq!(
        polls[3][0].quality(),
        Quality::Good,
        "reconnected for the next poll"
    );
}

#[test]
fn stop_ends_every_group_within_a_second() {
    let config = PollingConfig::example().unwrap();
    let polls: Polls = Arc::new(Mutex::new(Vec::new()));
    let sink = polls.clone();
    let engine = PollingEngine::new(&config, Arc::new(move |v| sink.lock().unwrap().push(v)));
    engine.start().unwrap();
    wait_for_polls(&polls, 2); // both FIXED groups polled at t=0
    let started = Instant::now();
    assert_eq!(engine.stop(), 3);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(engine.handle().status().iter().all(|g| !g.running));
}

/// A PLC that takes ten minutes to answer must not hold up `stop`: its group is abandoned at
/// the deadline, the other group stops normally, and nothing the stuck read returns later
/// reaches the consumer.
#[test]
fn stop_abandons_a_group_stuck_in_a_read() {
    let config = PollingConfig::from_toml(
        "[[plc]]\nplc_code = \"FAST\"\ndriver = \"simulated\"\n\
         [[plc]]\nplc_code = \"HUNG\"\ndriver = \"simulated\"\nlatency_ms = 600000\n\
         [[group]]\nname = \"OK\"\nmode = \"FIXED\"\ninterval_ms = 20\nplc_code = \"FAST\"\ntags = [\"D1\"]\n\
         [[group]]\nname = \"STUCK\"\nmode = \"FIXED\"\ninterval_ms = 20\nplc_code = \"HUNG\"\ntags = [\"D2\"]\n",
        "test",
    )
    .unwrap();
    let polls: Polls = Arc::new(Mutex::new(Vec::new()));
    let sink = polls.clone();
    let engine = PollingEngine::new(&config, Arc::new(move |v| sink.lock().unwrap().push(v)));
    engine.start().unwrap();
    wait_for_polls(&polls, 3);
    let started = Instant::now();
    let outcome = engine.stop_within(Duration::from_millis(300));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    assert_eq!(outcome.stopped, 1);
    assert_eq!(outcome.abandoned, ["STUCK"]);
    let polls = polls.lock().unwrap();
    assert!(polls.iter().all(|p| p[0].plc_code() == "FAST"));
}

/// A group that ends just as `stop` looks must count as stopped, never as abandoned (the
/// thread's own teardown after its last act is not "stuck in a driver call"). Repeated,
/// because it is a race.
#[test]
fn groups_that_end_promptly_are_never_reported_abandoned() {
    let config = PollingConfig::from_toml(
        "[[plc]]\nplc_code = \"P\"\ndriver = \"simulated\"\n\
         [[group]]\nname = \"H\"\nmode = \"HANDSHAKE\"\nplc_code = \"P\"\ntags = [\"D1\"]\n\
         [[group]]\nname = \"F\"\nmode = \"FIXED\"\ninterval_ms = 1\nplc_code = \"P\"\ntags = [\"D2\"]\n",
        "test",
    )
    .unwrap();
    for round in 0..50 {
        let engine = PollingEngine::new(&config, Arc::new(|_| {}));
        engine.start().unwrap();
        let outcome = engine.stop_within(Duration::from_secs(5));
        assert_eq!(
            (outcome.stopped, outcome.abandoned.len()),
            (2, 0),
            "round {round}: {outcome:?}"
        );
    }
}
