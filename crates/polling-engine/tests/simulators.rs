//! The drivers against real simulators that neither we nor our libraries wrote: virtual-plc
//! (MC protocol) and pymodbus (Modbus TCP), from a virtualenv under target/ (test-support).
//! Without Python they skip loudly; CI sets REQUIRE_PLC_SIMULATORS=1 and they must run.

use std::sync::{Arc, Mutex};

use polling_engine::{DriverError, PlcDriver, PollingConfig, PollingEngine, ReadPlan};
use tag_model::{Quality, TagValue};
use test_support::{eventually, simulators::simulators};

fn config(driver: &str, port: u16, tags: &str) -> PollingConfig {
    PollingConfig::from_toml(
        &format!(
            "[[plc]]\nplc_code = \"P1\"\ndriver = \"{driver}\"\nhost = \"127.0.0.1\"\nport = {port}\n\
             [[group]]\nname = \"G\"\nmode = \"FIXED\"\ninterval_ms = 200\nplc_code = \"P1\"\n\
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
    driver.connect().expect("connect to the simulator");
    (driver, plan)
}

fn values(result: &[Result<f64, DriverError>]) -> Vec<Option<f64>> {
    result.iter().map(|r| r.as_ref().ok().copied()).collect()
}

/// D100 = -1 and 7, a FLOAT32 at D102 (low word first, Mitsubishi's order), an INT32 at
/// D200, W1A and ZR10 (hexadecimal numbers), R5, M0..M2 and X1F; read back through our
/// driver exactly as virtual-plc holds them.
const MC_SEED: &str = r#"{
  "D": {"100": [65535, 7, 0, 16320], "200": [0, 65535], "5000": [99]},
  "W": {"26": [1234]},
  "ZR": {"16": [42]},
  "R": {"5": [77]},
  "M": {"0": [1, 0, 1]},
  "X": {"31": [1]}
}"#;

const MC_TAGS: &str = "\"D100\", \"D101\", { address = \"D102\", type = \"FLOAT32\" }, \
    { address = \"D200\", type = \"INT32\" }, \"D5000\", \"W1A\", \"ZR10\", \"R5\", \"M0\", \
    \"M1\", \"M2\", \"X1F\"";

#[test]
fn melsec_reads_what_virtual_plc_holds() {
    let Some(sims) = simulators("melsec_reads_what_virtual_plc_holds") else {
        return;
    };
    let plc = sims.virtual_plc(MC_SEED, None);
    let config = config("melsec", plc.port(), MC_TAGS);
    let (mut driver, plan) = open(&config);
    // D100..D103 is a batch read; the dword D200, D5000, W1A, ZR10 and R5 one random read
    // (0403); M0..M2 and X1F bit reads.
    assert_eq!(plan.requests(), 4);
    let read = driver
        .read(&plan)
        .unwrap_or_else(|e| panic!("{e}\n{}", plc.log()));
    assert_eq!(
        values(&read),
        [
            Some(-1.0),
            Some(7.0),
            Some(1.5),
            Some(-65536.0),
            Some(99.0),
            Some(1234.0),
            Some(42.0),
            Some(77.0),
            Some(1.0),
            Some(0.0),
            Some(1.0),
            Some(1.0),
        ],
        "{}",
        plc.log()
    );
    // A write (the handshake's ack) lands in the simulator: read it back.
    let ack = config.plcs[0]
        .driver
        .parse_address("M1", &Default::default())
        .unwrap();
    driver.write(&ack, 1.0).unwrap();
    assert_eq!(driver.read(&plan).unwrap()[9], Ok(1.0));
}

/// virtual-plc's fault plan answers the first batch read with end code 0xC056: its tags are
/// BAD with the code and its meaning, the rest of the poll is read, the connection stays.
#[test]
fn melsec_turns_a_virtual_plc_end_code_into_a_readable_error() {
    let Some(sims) = simulators("melsec_turns_a_virtual_plc_end_code_into_a_readable_error") else {
        return;
    };
    let plan_json = r#"{"steps": [{"match": {"command": "0x0401"}, "times": 1,
        "action": {"type": "bad_end_code", "code": 49238}}]}"#;
    let plc = sims.virtual_plc(MC_SEED, Some(plan_json));
    let config = config("melsec", plc.port(), "\"D100\", \"M0\"");
    let (mut driver, plan) = open(&config);
    let read = driver.read(&plan).unwrap();
    assert_eq!(
        read[0].as_ref().unwrap_err().to_string(),
        "end code 0xC056: the request exceeds the largest device number"
    );
    assert_eq!(read[1], Ok(1.0));
    assert_eq!(
        values(&driver.read(&plan).unwrap()),
        [Some(-1.0), Some(1.0)]
    );
}

const MB_SEED: &str = r#"{"hr": {"0": 65534, "1": 16320, "2": 0, "10": 1, "11": 2},
    "ir": {"5": 300}, "co": {"12": true}, "di": {"1": true}}"#;

#[test]
fn modbus_reads_what_pymodbus_holds() {
    let Some(sims) = simulators("modbus_reads_what_pymodbus_holds") else {
        return;
    };
    let server = sims.pymodbus(MB_SEED);
    let config = config(
        "modbus",
        server.port(),
        "\"HR0\", { address = \"40002\", type = \"FLOAT32\" }, \
         { address = \"HR10\", type = \"UINT32\" }, \"IR5\", \"30006\", \"C12\", \"DI1\", \"DI0\"",
    );
    let (mut driver, plan) = open(&config);
    let read = driver
        .read(&plan)
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert_eq!(
        values(&read),
        [
            Some(-2.0),
            Some(1.5),
            Some(65538.0),
            Some(300.0),
            Some(300.0),
            Some(1.0),
            Some(1.0),
            Some(0.0)
        ],
        "{}",
        server.log()
    );
    // pymodbus holds 1000 registers: HR5000 is answered with exception 02.
    let far = config_with(&config, server.port());
    let (mut driver, plan) = open(&far);
    let error = driver.read(&plan).unwrap_err();
    assert_eq!(
        error.to_string(),
        "exception 0x02 (illegal data address: the device does not map these registers)"
    );
    assert!(!error.needs_reconnect());
}

fn config_with(_: &PollingConfig, port: u16) -> PollingConfig {
    config("modbus", port, "\"HR5000\"")
}

/// The pymodbus server is killed mid-run: polls store BAD values with no value, the engine
/// reconnects with its default backoff, and GOOD values return once the server is back.
#[test]
fn modbus_server_killed_mid_run_gives_bad_values_then_recovers() {
    let Some(sims) = simulators("modbus_server_killed_mid_run_gives_bad_values_then_recovers")
    else {
        return;
    };
    let mut server = sims.pymodbus(MB_SEED);
    let port = server.port();
    let config = config("modbus", port, "\"HR0\", \"IR5\"");
    let polls: Arc<Mutex<Vec<Vec<TagValue>>>> = Arc::default();
    let sink = polls.clone();
    let engine = PollingEngine::new(&config, Arc::new(move |v| sink.lock().unwrap().push(v)));
    engine.start().unwrap();
    let last_quality =
        |polls: &Mutex<Vec<Vec<TagValue>>>| polls.lock().unwrap().last().map(|p| p[0].quality());
    eventually("a GOOD poll", || {
        last_quality(&polls) == Some(Quality::Good)
    });
    server.kill();
    eventually("a BAD poll", || last_quality(&polls) == Some(Quality::Bad));
    let _server = sims.pymodbus_on(MB_SEED, port);
    eventually("GOOD polls again", || {
        last_quality(&polls) == Some(Quality::Good)
    });
    engine.stop();
    let polls = polls.lock().unwrap();
    for poll in polls.iter() {
        match poll[0].quality() {
            Quality::Good => assert_eq!(
                (poll[0].value(), poll[1].value()),
                (Some(-2.0), Some(300.0))
            ),
            _ => assert!(poll.iter().all(|v| v.value().is_none())),
        }
    }
    let status = engine.handle().status().remove(0);
    assert!(status.errors >= 1, "{status:?}");
}
