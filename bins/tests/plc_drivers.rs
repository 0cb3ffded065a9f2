//! start_all with the bundled MELSEC and Modbus examples against real simulators
//! (virtual-plc, pymodbus): the rows in SQLite hold exactly what the servers hold, and the
//! handshake groups read on the PLC's trigger and write the ack.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use test_support::simulators::simulators;

/// The bundled example with its port pointed at the simulator.
fn example(name: &str, port_line: &str, port: u16, dir: &Path) {
    edited_example(name, dir, &[(port_line, format!("port = {port}"))]);
}

/// The bundled example written into `dir` with each (line, replacement) applied; every line
/// must be in the example.
fn edited_example(name: &str, dir: &Path, edits: &[(&str, String)]) {
    let mut text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../config")
            .join(name),
    )
    .expect("bundled example");
    for (line, replacement) in edits {
        assert!(text.contains(line), "{name} has no {line:?}");
        text = text.replace(line, replacement);
    }
    std::fs::write(dir.join(name), text).unwrap();
}

/// The OPC UA example's endpoint line, pointed at `port` by [`opcua_endpoint`].
const OPCUA_ENDPOINT: &str = "endpoint = \"opc.tcp://127.0.0.1:4840/test\"";

fn opcua_endpoint(port: u16) -> (&'static str, String) {
    (
        OPCUA_ENDPOINT,
        format!("endpoint = \"opc.tcp://127.0.0.1:{port}/test\""),
    )
}

/// (tag, value, quality) of every row of `plc`.
fn rows(db: &Path, plc: &str) -> Vec<(String, Option<f64>, String)> {
    let connection = rusqlite::Connection::open(db).expect("open database");
    let mut statement = connection
        .prepare(
            "SELECT tag_address, tag_value, quality FROM TAG_VALUES WHERE plc_code = ?1 \
             ORDER BY timestamp, tag_address",
        )
        .unwrap();
    statement
        .query_map([plc], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn run_example(
    name: &str,
    port_line: &str,
    port: u16,
    wait: impl Fn(&serde_json::Value) -> bool,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    example(name, port_line, port, dir.path());
    let mut command = command("start_all", dir.path(), &[]);
    command.args(["--config", name]);
    let mut service = Running::spawn(command);
    let base = service.base_url();
    eventually("the groups to poll", || {
        wait(&get_json(&format!("{base}/api/polling/status")))
    });
    service.terminate();
    let (exit, _) = service.wait_exit(Duration::from_secs(20));
    assert!(exit.success(), "{}", service.output());
    dir
}

fn check(rows: &[(String, Option<f64>, String)], expected: &[(&str, f64)]) {
    assert!(!rows.is_empty());
    for (tag, value, quality) in rows {
        assert_eq!(quality, "GOOD", "{tag}");
        let want = expected
            .iter()
            .find(|(t, _)| t == tag)
            .unwrap_or_else(|| panic!("unexpected tag {tag}"))
            .1;
        assert_eq!(*value, Some(want), "{tag}");
    }
    for (tag, _) in expected {
        assert!(rows.iter().any(|r| r.0 == *tag), "no row for {tag}");
    }
}

#[test]
fn start_all_polls_virtual_plc_with_the_melsec_example() {
    let Some(sims) = simulators("start_all_polls_virtual_plc_with_the_melsec_example") else {
        return;
    };
    // D110:D111 FLOAT32 -12.5 = 0xC1480000 (low word first); D120:D121 INT32 123456 =
    // 0x0001E240; M100 (the trigger) already set: the handshake group reads at start.
    let plc = sims.virtual_plc(
        r#"{"D": {"100": [1, 65535, 300], "110": [0, 49480], "120": [57920, 1], "130": [55],
                  "200": [7, 8, 9, 10]},
            "W": {"26": [60000]}, "M": {"0": [1, 0], "100": [1]}, "X": {"31": [1]}}"#,
        None,
    );
    let dir = run_example("melsec_example.toml", "port = 5000", plc.port(), |status| {
        status["groups"][0]["polls"].as_u64() >= Some(2) && status["groups"][1]["polls"] == 1
    });
    let fixed: Vec<_> = rows(&dir.path().join("data/tag_values.db"), "MC_PLC01");
    let expected = [
        ("D100", 1.0),
        ("D101", -1.0),
        ("D102", 300.0),
        ("D110", -12.5),
        ("D120", 1234.56),
        ("W1A", 60000.0),
        ("D130", 55.0),
        ("M0", 1.0),
        ("M1", 0.0),
        ("X1F", 1.0),
        ("D200", 7.0),
        ("D201", 8.0),
        ("D202", 9.0),
        ("D203", 10.0),
    ];
    check(&fixed, &expected);
    // D130 has a deadband and did not move: one row although the group polled twice or more.
    assert_eq!(fixed.iter().filter(|r| r.0 == "D130").count(), 1);
    assert_eq!(
        fixed.iter().filter(|r| r.0 == "D200").count(),
        1,
        "one handshake read"
    );
    assert!(fixed.iter().filter(|r| r.0 == "D100").count() >= 2);
}

#[test]
fn start_all_polls_pymodbus_with_the_modbus_example() {
    let Some(sims) = simulators("start_all_polls_pymodbus_with_the_modbus_example") else {
        return;
    };
    // HR2:HR3 FLOAT32 2.5 = 0x40200000; HR10:HR11 UINT32 70000 = 0x00011170; IR5 = 650 ->
    // 650 x 0.1 - 40 = 25; C0 (the trigger) set.
    let server = sims.pymodbus(
        r#"{"hr": {"0": 11, "1": 65535, "2": 16416, "3": 0, "10": 1, "11": 4464,
                   "20": 5, "21": 6, "22": 7},
            "ir": {"5": 650}, "co": {"0": true, "12": true}, "di": {"1": true}}"#,
    );
    let dir = run_example(
        "modbus_example.toml",
        "port = 502",
        server.port(),
        |status| {
            status["groups"][0]["polls"].as_u64() >= Some(2) && status["groups"][1]["polls"] == 1
        },
    );
    let all = rows(&dir.path().join("data/tag_values.db"), "MB_PLC01");
    check(
        &all,
        &[
            ("HR0", 11.0),
            ("HR1", -1.0),
            ("HR2", 2.5),
            ("40011", 70000.0),
            ("IR5", 25.0),
            ("C12", 1.0),
            ("DI1", 1.0),
            ("HR20", 5.0),
            ("HR21", 6.0),
            ("HR22", 7.0),
        ],
    );
    assert_eq!(
        all.iter().filter(|r| r.0 == "HR20").count(),
        1,
        "one handshake read"
    );
}

/// (tag, value, quality, timestamp in microseconds) of every row of `plc`.
fn timed_rows(db: &Path, plc: &str) -> Vec<(String, Option<f64>, String, i64)> {
    let connection = rusqlite::Connection::open(db).expect("open database");
    let mut statement = connection
        .prepare(
            "SELECT tag_address, tag_value, quality, timestamp FROM TAG_VALUES \
             WHERE plc_code = ?1 ORDER BY tag_address, timestamp",
        )
        .unwrap();
    statement
        .query_map([plc], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn micros(text: &str) -> i64 {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .expect("a timestamp")
        .and_utc()
        .timestamp_micros()
}

#[test]
fn start_all_polls_and_subscribes_to_asyncua_with_the_opcua_example() {
    let Some(sims) = simulators("start_all_polls_and_subscribes_to_asyncua_with_the_opcua_example")
    else {
        return;
    };
    let server = sims.opcua(0, &[]);
    let set = |node: &str, value: &str, source: &str| {
        server.command(&format!(
            "\"op\": \"set\", \"node\": \"{node}\", \"value\": {value}, \"source\": \"{source}\""
        ));
    };
    // Every node of the example, with the time the "device" measured it.
    let measured = [
        (
            "Double",
            "21.75",
            "ns=2;s=Double",
            21.75,
            "2024-05-06T07:08:09.123456",
        ),
        (
            "Float",
            "-3.5",
            "ns=2;s=Float",
            -3.5,
            "2024-05-06T07:08:09.223456",
        ),
        (
            "Int16",
            "-12",
            "ns=2;s=Int16",
            -12.0,
            "2024-05-06T07:08:09.323456",
        ),
        (
            "UInt32",
            "4000000001",
            "ns=2;s=UInt32",
            4000000001.0,
            "2024-05-06T07:08:09.423456",
        ),
        (
            "Int32",
            "12345",
            "ns=2;s=Int32",
            123.45,
            "2024-05-06T07:08:09.523456",
        ),
        (
            "1001",
            "99.5",
            "ns=2;i=1001",
            99.5,
            "2024-05-06T07:08:09.623456",
        ),
        (
            "UInt16",
            "100",
            "nsu=urn:buffer-oracle-writer:test;s=UInt16",
            100.0,
            "2024-05-06T07:08:09.723456",
        ),
        (
            "Boolean",
            "true",
            "ns=2;s=Boolean",
            1.0,
            "2024-05-06T07:08:09.823456",
        ),
    ];
    for (node, value, _, _, source) in measured {
        set(node, value, source);
    }
    let dir = tempfile::tempdir().unwrap();
    let name = "opcua_example.toml";
    edited_example(name, dir.path(), &[opcua_endpoint(server.port())]);
    let mut command = command("start_all", dir.path(), &[]);
    command.args(["--config", name]);
    let mut service = Running::spawn(command);
    let base = service.base_url();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let ready = |status: &serde_json::Value| {
        status["groups"][0]["polls"].as_u64() >= Some(3)
            && status["groups"][1]["notifications"].as_u64() >= Some(2)
    };
    while !ready(&get_json(&format!("{base}/api/polling/status"))) {
        assert!(
            std::time::Instant::now() < deadline,
            "the groups did not poll: {}\n{}",
            get_json(&format!("{base}/api/polling/status")),
            service.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A change inside the subscription's server-side deadband of 2 is not sent; one past it is.
    set("UInt16", "101", "2024-05-06T07:08:10.000001");
    set("UInt16", "105", "2024-05-06T07:08:11.000002");
    let subscribed =
        |status: &serde_json::Value| status["groups"][1]["notifications"].as_u64() >= Some(3);
    while !subscribed(&get_json(&format!("{base}/api/polling/status"))) {
        assert!(
            std::time::Instant::now() < deadline,
            "the change was not sent: {}",
            service.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1000));
    service.terminate();
    let (exit, _) = service.wait_exit(Duration::from_secs(20));
    assert!(exit.success(), "{}", service.output());

    let rows = timed_rows(&dir.path().join("data/tag_values.db"), "UA_PLC01");
    // Polled several times, a value keeps its source timestamp: one row per measurement.
    for (_, _, tag, value, source) in measured {
        let of_tag: Vec<_> = rows.iter().filter(|r| r.0 == tag).collect();
        assert!(!of_tag.is_empty(), "no row for {tag}: {rows:?}");
        let first = of_tag[0];
        assert_eq!(
            (first.1, first.2.as_str(), first.3),
            (Some(value), "GOOD", micros(source)),
            "{tag}"
        );
        if tag != "nsu=urn:buffer-oracle-writer:test;s=UInt16" {
            assert_eq!(of_tag.len(), 1, "{tag}: {of_tag:?}");
        }
    }
    let changes: Vec<_> = rows
        .iter()
        .filter(|r| r.0 == "nsu=urn:buffer-oracle-writer:test;s=UInt16")
        .map(|r| (r.1, r.3))
        .collect();
    assert_eq!(
        changes,
        [
            (Some(100.0), micros("2024-05-06T07:08:09.723456")),
            (Some(105.0), micros("2024-05-06T07:08:11.000002")),
        ],
        "101 stayed inside the deadband"
    );
    assert!(
        dir.path().join("pki/own/cert.der").is_file(),
        "the client certificate was created on first start"
    );
}

/// An OPC UA server that hangs (SIGSTOP: its socket stays open, nothing is answered) while
/// start_all polls it, with a read timeout far longer than a shutdown may take: SIGTERM still
/// ends the service promptly with exit 0 (the group waiting on the server is abandoned, and
/// says so), and the values read before the hang are in the database.
#[test]
fn start_all_stops_promptly_while_its_opcua_server_hangs() {
    let Some(sims) = simulators("start_all_stops_promptly_while_its_opcua_server_hangs") else {
        return;
    };
    let server = sims.opcua(0, &[]);
    let dir = tempfile::tempdir().unwrap();
    let name = "opcua_example.toml";
    edited_example(
        name,
        dir.path(),
        &[
            opcua_endpoint(server.port()),
            ("timeout_ms = 5000", "timeout_ms = 120000".to_owned()),
        ],
    );
    let mut command = command("start_all", dir.path(), &[]);
    command.args(["--config", name]);
    let mut service = Running::spawn(command);
    let base = service.base_url();
    eventually("the groups to poll", || {
        let status = get_json(&format!("{base}/api/polling/status"));
        status["groups"][0]["polls"].as_u64() >= Some(2)
            && status["groups"][1]["connected"].as_bool() == Some(true)
    });
    server.pause();
    // The FIXED group polls every second: its next Read is now waiting (up to 120 s).
    std::thread::sleep(Duration::from_millis(2500));
    service.terminate();
    let (exit, took) = service.wait_exit(Duration::from_secs(60));
    assert!(exit.success(), "{}", service.output());
    assert!(
        took < Duration::from_secs(30),
        "shutdown waited {took:?} on the hung server:\n{}",
        service.output()
    );
    assert!(
        service
            .output()
            .contains("Polling group LINE1_POLLED is still waiting for its PLC"),
        "{}",
        service.output()
    );
    let rows = timed_rows(&dir.path().join("data/tag_values.db"), "UA_PLC01");
    assert!(
        rows.iter()
            .any(|r| r.0 == "ns=2;s=Double" && r.1 == Some(1.5) && r.2 == "GOOD"),
        "{rows:?}"
    );
    server.resume();
}
