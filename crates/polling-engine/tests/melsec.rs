//! The MC protocol driver against the fake MC server (test-support): planning, types, end
//! codes, frames in pieces, dropped and silent connections, writes.

use std::time::{Duration, Instant};

use polling_engine::{DriverError, PlcDriver, PollingConfig, ReadPlan};
use test_support::fake_mc::{code, FakeMc, Fault};

fn config(port: u16, tags: &str) -> PollingConfig {
    PollingConfig::from_toml(
        &format!(
            "[[plc]]\nplc_code = \"MC1\"\ndriver = \"melsec\"\nhost = \"127.0.0.1\"\nport = {port}\n\
             timeout_ms = 500\n\
             [[group]]\nname = \"G\"\nmode = \"FIXED\"\ninterval_ms = 100\nplc_code = \"MC1\"\n\
             tags = [{tags}]\n"
        ),
        "test",
    )
    .expect("valid configuration")
}

fn open(config: &PollingConfig) -> (Box<dyn PlcDriver>, ReadPlan) {
    let plc = &config.plcs[0];
    let plan = plc.driver.plan(&config.groups[0].addresses());
    let mut driver = plc.driver.open(&plc.plc_code);
    driver.connect().expect("connect");
    (driver, plan)
}

fn values(result: &[Result<f64, DriverError>]) -> Vec<Option<f64>> {
    result.iter().map(|r| r.as_ref().ok().copied()).collect()
}

#[test]
fn words_dwords_floats_and_bits_in_few_requests() {
    let server = FakeMc::start();
    server.set_words(code::D, 100, &[0xFFFF, 7]);
    // FLOAT32 1.5 = 0x3FC00000 at D102 (low word first), INT32 -70000 at D104.
    server.set_words(code::D, 102, &[0x0000, 0x3FC0]);
    let (low, high) = ((-70000i32) as u32 as u16, ((-70000i32) as u32 >> 16) as u16);
    server.set_words(code::D, 104, &[low, high]);
    server.set_words(code::W, 0x1A, &[1234]);
    server.set_words(code::ZR, 0x10, &[42]);
    server.set_words(code::R, 9, &[0x0001, 0x0002]); // UINT32 0x00020001
    server.set_bits(code::M, 0, &[true, false, true]);
    server.set_bits(code::X, 0x1F, &[true]);
    let config = config(
        server.address().port(),
        "\"D100\", \"D101\", { address = \"D102\", type = \"FLOAT32\" }, \
         { address = \"D104\", type = \"INT32\" }, \"W1A\", \"ZR10\", \
         { address = \"R9\", type = \"UINT32\" }, \"M0\", \"M2\", \"X1F\"",
    );
    let (mut driver, plan) = open(&config);
    // D100..D105 in one batch read; W1A, ZR10 and R9 (a dword) in one random read; M0..M2
    // and X1F in one bit read each.
    assert_eq!(plan.requests(), 4);
    let read = driver.read(&plan).expect("read");
    assert_eq!(
        values(&read),
        [
            Some(-1.0),
            Some(7.0),
            Some(1.5),
            Some(-70000.0),
            Some(1234.0),
            Some(42.0),
            Some(131073.0),
            Some(1.0),
            Some(1.0),
            Some(1.0)
        ]
    );
    let commands: Vec<u16> = server.requests().iter().map(|r| r.0).collect();
    assert_eq!(commands, [0x0401, 0x0403, 0x0401, 0x0401]);
}

#[test]
fn an_end_code_marks_its_tags_bad_and_keeps_the_connection() {
    let server = FakeMc::start();
    server.set_words(code::D, 0, &[5]);
    server.set_bits(code::M, 0, &[true]);
    let config = config(server.address().port(), "\"D0\", \"M0\"");
    let (mut driver, plan) = open(&config);
    server.push_fault(Fault::EndCode(0xC056));
    let read = driver
        .read(&plan)
        .expect("a refusal of one request is not a failed read");
    assert_eq!(
        read[0].as_ref().unwrap_err().to_string(),
        "end code 0xC056: the request exceeds the largest device number"
    );
    assert!(matches!(
        read[0],
        Err(DriverError::Device { code: 0xC056, .. })
    ));
    assert_eq!(read[1], Ok(1.0));
    // Every request refused: the whole read is the device error, still no reconnect.
    server.push_fault(Fault::EndCode(0xC059));
    server.push_fault(Fault::EndCode(0xC059));
    let error = driver.read(&plan).unwrap_err();
    assert!(!error.needs_reconnect(), "{error}");
    assert_eq!(driver.read(&plan).unwrap()[0], Ok(5.0));
    assert_eq!(server.connections(), 1);
}

#[test]
fn a_reply_in_pieces_is_read_whole() {
    let server = FakeMc::start();
    server.set_words(code::D, 10, &[1, 2, 3]);
    let config = config(server.address().port(), "\"D10\", \"D11\", \"D12\"");
    let (mut driver, plan) = open(&config);
    for at in [1, 5, 9, 12] {
        server.push_fault(Fault::Split {
            at,
            pause: Duration::from_millis(30),
        });
        assert_eq!(
            values(&driver.read(&plan).unwrap()),
            [Some(1.0), Some(2.0), Some(3.0)],
            "split at {at}"
        );
    }
}

#[test]
fn a_dropped_or_silent_connection_is_a_transport_error_within_the_timeout() {
    let server = FakeMc::start();
    let config = config(server.address().port(), "\"D0\"");
    let (mut driver, plan) = open(&config);
    server.push_fault(Fault::Close);
    let error = driver.read(&plan).unwrap_err();
    assert!(error.needs_reconnect());
    assert!(
        error.to_string().contains("closed the connection"),
        "{error}"
    );
    driver.connect().unwrap();
    server.push_fault(Fault::Silence);
    let started = Instant::now();
    let error = driver.read(&plan).unwrap_err();
    assert!(
        error.to_string().contains("no answer within 500 ms"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    driver.connect().unwrap();
    assert_eq!(driver.read(&plan).unwrap()[0], Ok(0.0));
    assert_eq!(server.connections(), 3);
}

#[test]
fn nobody_listening_fails_the_connect_quickly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = config(port, "\"D0\"");
    let mut driver = config.plcs[0].driver.open(&config.plcs[0].plc_code);
    let error = driver.connect().unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with(&format!("127.0.0.1:{port}: cannot connect")),
        "{error}"
    );
}

#[test]
fn writes_words_and_bits() {
    let server = FakeMc::start();
    let config = config(server.address().port(), "\"D0\"");
    let (mut driver, _) = open(&config);
    let driver_config = &config.plcs[0].driver;
    let ack = driver_config
        .parse_address("M100", &Default::default())
        .unwrap();
    driver.write(&ack, 1.0).unwrap();
    assert!(server.bit(code::M, 100));
    let word = driver_config
        .parse_address(
            "D7",
            &polling_engine::TagType {
                data_type: Some(polling_engine::DataType::Int32),
                word_order: None,
            },
        )
        .unwrap();
    driver.write(&word, -2.0).unwrap();
    assert_eq!(
        (server.word(code::D, 7), server.word(code::D, 8)),
        (0xFFFE, 0xFFFF)
    );
}

/// Through the engine: a request the PLC refuses stores its tags as BAD (no value) while the
/// other request's tags stay GOOD, the group stays connected, and the status names the tag
/// and the end code.
#[test]
fn the_engine_stores_a_refused_requests_tags_as_bad_and_the_rest_as_good() {
    use std::sync::{Arc, Mutex};
    use tag_model::{Quality, TagValue};

    let server = FakeMc::start();
    server.set_words(code::D, 0, &[5]);
    server.set_bits(code::M, 0, &[true]);
    let config = config(server.address().port(), "\"D0\", \"M0\"");
    let polls: Arc<Mutex<Vec<Vec<TagValue>>>> = Arc::default();
    let sink = polls.clone();
    // The first poll's word request is refused.
    server.push_fault(Fault::EndCode(0xC05B));
    let engine = polling_engine::PollingEngine::new(
        &config,
        Arc::new(move |v| sink.lock().unwrap().push(v)),
    );
    engine.start().unwrap();
    test_support::eventually("two polls", || polls.lock().unwrap().len() >= 2);
    engine.stop();
    let polls = polls.lock().unwrap();
    assert_eq!(
        (polls[0][0].quality(), polls[0][0].value()),
        (Quality::Bad, None)
    );
    assert_eq!(polls[0][1].value(), Some(1.0));
    assert_eq!(
        polls[1][0].value(),
        Some(5.0),
        "the next poll reads it again"
    );
    let status = engine.handle().status().remove(0);
    assert_eq!(status.errors, 1);
    assert_eq!(server.connections(), 1, "no reconnect for a refusal");
}
