//! The Modbus TCP driver against the fake Modbus server (test-support): every table and type,
//! planning, exceptions, dropped and silent connections, writes.

use std::time::{Duration, Instant};

use polling_engine::{DriverError, PlcDriver, PollingConfig, ReadPlan};
use test_support::fake_modbus::{FakeModbus, Fault};

fn config(port: u16, extra: &str, tags: &str) -> PollingConfig {
    PollingConfig::from_toml(
        &format!(
            "[[plc]]\nplc_code = \"MB1\"\ndriver = \"modbus\"\nhost = \"127.0.0.1\"\nport = {port}\n\
             timeout_ms = 500\n{extra}\n\
             [[group]]\nname = \"G\"\nmode = \"FIXED\"\ninterval_ms = 100\nplc_code = \"MB1\"\n\
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
fn every_table_and_type() {
    let server = FakeModbus::start();
    server.set_holding(0, &[0xFFFE, 0x3FC0, 0x0000, 0x0001, 0x0002]);
    server.set_holding(10, &[0xC002, 0, 0, 0]);
    server.set_input(5, &[300]);
    server.set_coils(12, &[true]);
    server.set_discrete(0, &[false, true]);
    let config = config(
        server.address().port(),
        "",
        "\"HR0\", { address = \"40002\", type = \"FLOAT32\" }, \
         { address = \"HR3\", type = \"UINT32\", word_order = \"low_first\" }, \
         { address = \"HR10\", type = \"FLOAT64\" }, \"IR5\", \"C12\", \"DI1\", \"10001\", \
         { address = \"HR4\", type = \"UINT16\", scale = 0.1 }",
    );
    let (mut driver, plan) = open(&config);
    // HR0..HR4, HR10..HR13, IR5, C12, DI0..DI1: planning merges contiguous registers only
    // (max_gap 0 by default).
    assert_eq!(plan.requests(), 5);
    let read = driver.read(&plan).unwrap();
    assert_eq!(
        values(&read),
        [
            Some(-2.0),
            Some(1.5),
            Some(131073.0),
            Some(-2.25),
            Some(300.0),
            Some(1.0),
            Some(1.0),
            Some(0.0),
            Some(2.0), // the driver gives the raw value; the engine applies scale
        ]
    );
    let mut functions = server.requests();
    functions.sort_unstable();
    assert_eq!(functions, [1, 2, 3, 3, 4]);
}

#[test]
fn max_gap_bridges_nearly_contiguous_registers() {
    let server = FakeModbus::start();
    let tags = "\"HR0\", \"HR4\", \"HR9\"";
    assert_eq!(
        open(&config(server.address().port(), "", tags))
            .1
            .requests(),
        3
    );
    assert_eq!(
        open(&config(server.address().port(), "max_gap = 4", tags))
            .1
            .requests(),
        1
    );
}

#[test]
fn an_exception_marks_its_tags_bad_and_keeps_the_connection() {
    let server = FakeModbus::start();
    server.set_holding(0, &[9]);
    let config = config(server.address().port(), "", "\"HR0\", \"C0\"");
    let (mut driver, plan) = open(&config);
    server.push_fault(Fault::Exception(2));
    let read = driver.read(&plan).unwrap();
    let refused = read
        .iter()
        .find_map(|r| r.as_ref().err())
        .expect("one refused");
    assert_eq!(
        refused.to_string(),
        "exception 0x02 (illegal data address: the device does not map these registers)"
    );
    assert!(matches!(refused, DriverError::Device { code: 2, .. }));
    assert_eq!(values(&driver.read(&plan).unwrap()), [Some(9.0), Some(0.0)]);
    assert_eq!(server.connections(), 1);
}

#[test]
fn a_dropped_or_silent_connection_is_a_transport_error_within_the_timeout() {
    let server = FakeModbus::start();
    let config = config(server.address().port(), "", "\"HR0\"");
    let (mut driver, plan) = open(&config);
    server.push_fault(Fault::Close);
    assert!(driver.read(&plan).unwrap_err().needs_reconnect());
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
}

#[test]
fn writes_coils_and_registers() {
    let server = FakeModbus::start();
    let config = config(server.address().port(), "", "\"HR0\"");
    let (mut driver, _) = open(&config);
    let plc = &config.plcs[0].driver;
    driver
        .write(&plc.parse_address("C7", &Default::default()).unwrap(), 1.0)
        .unwrap();
    assert!(server.coil(7));
    driver
        .write(
            &plc.parse_address("HR20", &Default::default()).unwrap(),
            -1.0,
        )
        .unwrap();
    assert_eq!(server.holding(20), 0xFFFF);
    let float = polling_engine::TagType {
        data_type: Some(polling_engine::DataType::Float32),
        word_order: None,
    };
    driver
        .write(&plc.parse_address("HR30", &float).unwrap(), 1.5)
        .unwrap();
    assert_eq!((server.holding(30), server.holding(31)), (0x3FC0, 0));
}
