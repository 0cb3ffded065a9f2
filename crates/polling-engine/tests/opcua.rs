//! The OPC UA driver against a real OPC UA server we did not write: asyncua (Python), from the
//! simulators' virtualenv under target/ (test-support), on a free loopback port. Without
//! Python the tests skip loudly; CI sets REQUIRE_PLC_SIMULATORS=1 and they must run.
//!
//! The server takes seconds to start (much longer on a loaded machine), so each test starts
//! one and goes through several steps with it.
#![cfg(feature = "opcua")]

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use polling_engine::{
    DriverError, GroupStatus, PlcDriver, PollingConfig, PollingEngine, ReadPlan, Sample,
};
use tag_model::{Quality, TagValue};
use test_support::simulators::{simulators, Simulator};

const NS: &str = "urn:buffer-oracle-writer:test";

/// Captures every log record (trace included) to prove the password never appears.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(line);
    }
    fn flush(&self) {}
}

fn captured() -> &'static Capture {
    static LOGGER: OnceLock<&'static Capture> = OnceLock::new();
    LOGGER.get_or_init(|| {
        let logger: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        let _ = log::set_logger(logger);
        log::set_max_level(log::LevelFilter::Trace);
        logger
    })
}

fn logs() -> Vec<String> {
    captured()
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

/// Waits up to 3 minutes: a reconnect waits out the engine's backoff (up to 30 s) after a
/// server that itself takes long to start on a loaded machine.
fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "timed out after 180 s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn plc(port: u16, pki: &Path, extra: &str) -> String {
    format!(
        "[[plc]]\nplc_code = \"OPC1\"\ndriver = \"opcua\"\n\
         endpoint = \"opc.tcp://127.0.0.1:{port}/test\"\npki_dir = {pki:?}\n{extra}\n"
    )
}

fn config(text: &str) -> PollingConfig {
    PollingConfig::from_toml(text, "opcua.toml").expect("a valid configuration")
}

fn open(config: &PollingConfig) -> (Box<dyn PlcDriver>, ReadPlan) {
    let plc = &config.plcs[0];
    let plan = plc.driver.plan(&config.groups[0].addresses());
    (plc.driver.open(&plc.plc_code), plan)
}

fn set(server: &Simulator, node: &str, value: &str, status: &str, source: &str) {
    server.command(&format!(
        "\"op\": \"set\", \"node\": \"{node}\", \"value\": {value}, \"status\": \"{status}\", \
         \"source\": \"{source}\""
    ));
}

fn at(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").expect("a timestamp")
}

fn sample(result: &Result<Sample, DriverError>) -> Sample {
    match result {
        Ok(sample) => *sample,
        Err(error) => panic!("expected a value, got {error}"),
    }
}

#[test]
fn opcua_reads_every_type_the_changes_bad_nodes_and_a_wrong_node_id() {
    let Some(sims) = simulators("opcua_reads_every_type_the_changes_bad_nodes_and_a_wrong_node_id")
    else {
        return;
    };
    let server = sims.opcua(0, &[]);
    let pki = tempfile::tempdir().unwrap();
    let tags = format!(
        "\"ns=2;s=Double\", \"ns=2;s=Float\", \"ns=2;s=Int16\", \"ns=2;s=Int32\", \
         \"ns=2;s=UInt16\", \"ns=2;s=UInt32\", \"ns=2;s=Boolean\", \"ns=2;s=Bad\", \
         \"ns=2;s=Uncertain\", \"ns=2;s=NoSuchNode\", \"ns=2;i=1001\", \"nsu={NS};s=Int16\", \
         \"ns=2;s=Text\""
    );
    let config = config(&format!(
        "{}[[group]]\nname = \"G\"\nmode = \"FIXED\"\ninterval_ms = 500\nplc_code = \"OPC1\"\n\
         tags = [{tags}]\n",
        plc(server.port(), pki.path(), "")
    ));
    let (mut driver, plan) = open(&config);
    driver.connect().expect("connect to the asyncua server");
    // The client's certificate and key were created on first start.
    assert!(pki.path().join("own/cert.der").is_file());
    assert!(pki.path().join("private/private.pem").is_file());

    let read = driver.read_samples(&plan).expect("one Read for the group");
    assert_eq!(read.len(), 13);
    let values: Vec<Option<f64>> = read
        .iter()
        .map(|r| r.as_ref().ok().and_then(|s| s.value))
        .collect();
    assert_eq!(
        &values[..7],
        [
            Some(1.5),
            Some(2.25),
            Some(-123.0),
            Some(-70000.0),
            Some(65535.0),
            Some(4e9),
            Some(1.0)
        ]
    );
    // A node with a Bad status: BAD, its status name in the error (the engine and the log
    // name the tag, as for the other drivers' refusals).
    let bad = read[7].as_ref().unwrap_err().to_string();
    assert!(bad.contains("BadSensorFailure (0x808C0000)"), "{bad}");
    // Uncertain: the value, marked UNCERTAIN.
    let uncertain = sample(&read[8]);
    assert_eq!(
        (uncertain.value, uncertain.quality),
        (Some(7.0), Quality::Uncertain)
    );
    // A wrong NodeId: a clear error for that tag alone; the tags after it still read.
    let missing = read[9].as_ref().unwrap_err().to_string();
    assert!(missing.contains("BadNodeIdUnknown"), "{missing}");
    assert!(
        logs()
            .iter()
            .any(|l| l.contains("PLC OPC1: ns=2;s=NoSuchNode: BadNodeIdUnknown")),
        "the wrong NodeId is named in the log"
    );
    assert_eq!(sample(&read[10]).value, Some(10.0));
    assert_eq!(
        sample(&read[11]).value,
        Some(-123.0),
        "nsu= resolved to ns=2"
    );
    let text = read[12].as_ref().unwrap_err().to_string();
    assert!(text.contains("String"), "{text}");
    assert!(
        logs()
            .iter()
            .any(|l| l.contains("ns=2;s=Bad: BadSensorFailure")),
        "the status name is in the log"
    );

    // Values changed on the server read back, with the server's source timestamps.
    for (node, value) in [
        ("Double", "-2.5"),
        ("Float", "0.75"),
        ("Int16", "-32768"),
        ("Int32", "2147483647"),
        ("UInt16", "1"),
        ("UInt32", "0"),
        ("Boolean", "false"),
        ("Bad", "3.0"),
    ] {
        set(&server, node, value, "Good", "2024-05-06T07:08:09.123456");
    }
    set(
        &server,
        "1001",
        "99.5",
        "Good",
        "2024-05-06T07:08:10.000001",
    );
    let read = driver.read_samples(&plan).expect("read again");
    let values: Vec<Option<f64>> = read
        .iter()
        .map(|r| r.as_ref().ok().and_then(|s| s.value))
        .collect();
    assert_eq!(
        &values[..8],
        [
            Some(-2.5),
            Some(0.75),
            Some(-32768.0),
            Some(2147483647.0),
            Some(1.0),
            Some(0.0),
            Some(0.0),
            Some(3.0)
        ]
    );
    for result in &read[..8] {
        assert_eq!(
            sample(result).timestamp,
            Some(at("2024-05-06T07:08:09.123456"))
        );
        assert_eq!(sample(result).quality, Quality::Good);
    }
    assert_eq!(
        sample(&read[10]).timestamp,
        Some(at("2024-05-06T07:08:10.000001"))
    );
    assert!(
        logs()
            .iter()
            .any(|l| l.contains("ns=2;s=Bad is GOOD again")),
        "the recovery is logged"
    );
    driver.disconnect();
    assert!(driver.read_samples(&plan).is_err(), "not connected");
}

fn engine_with(config: &PollingConfig) -> (PollingEngine, Arc<Mutex<Vec<TagValue>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&received);
    let engine = PollingEngine::new(
        config,
        Arc::new(move |values: Vec<TagValue>| sink.lock().unwrap().extend(values)),
    );
    engine.start().expect("start the engine");
    (engine, received)
}

fn of(received: &Mutex<Vec<TagValue>>, tag: &str) -> Vec<(Option<f64>, Quality, NaiveDateTime)> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|v| v.tag_address() == tag)
        .map(|v| (v.value(), v.quality(), v.timestamp()))
        .collect()
}

fn status(engine: &PollingEngine, group: &str) -> GroupStatus {
    engine
        .handle()
        .status()
        .into_iter()
        .find(|g| g.name == group)
        .expect("the group")
}

#[test]
fn opcua_subscription_delivers_each_change_once_and_honours_the_deadband() {
    let Some(sims) =
        simulators("opcua_subscription_delivers_each_change_once_and_honours_the_deadband")
    else {
        return;
    };
    let server = sims.opcua(0, &[]);
    let pki = tempfile::tempdir().unwrap();
    let config = config(&format!(
        "{}[[group]]\nname = \"SUB\"\nmode = \"SUBSCRIPTION\"\npublishing_interval_ms = 100\n\
         sampling_interval_ms = 50\nplc_code = \"OPC1\"\n\
         tags = [{{ address = \"ns=2;s=Double\", deadband = 0.5 }}, \
                 {{ address = \"ns=2;s=Int32\", scale = 0.1 }}, \"ns=2;s=NoSuchNode\"]\n",
        plc(server.port(), pki.path(), "")
    ));
    let (engine, received) = engine_with(&config);
    // The initial values, then one BAD for the node the server refuses to monitor.
    wait_for("the initial notifications", || {
        of(&received, "ns=2;s=Double").len() == 1 && of(&received, "ns=2;s=Int32").len() == 1
    });
    wait_for("the refused node's BAD value", || {
        of(&received, "ns=2;s=NoSuchNode")
            .iter()
            .any(|(v, q, _)| v.is_none() && *q == Quality::Bad)
    });
    assert_eq!(
        of(&received, "ns=2;s=Int32")[0].0,
        Some(-70000.0 * 0.1),
        "scaled"
    );
    assert!(status(&engine, "SUB").connected);

    // 1.5 -> 1.8 stays inside the server's deadband of 0.5; 2.5 leaves it.
    set(
        &server,
        "Double",
        "1.8",
        "Good",
        "2024-05-06T07:00:00.000001",
    );
    set(
        &server,
        "Double",
        "2.5",
        "Good",
        "2024-05-06T07:00:01.000002",
    );
    set(&server, "Int32", "12", "Good", "2024-05-06T07:00:02.000003");
    set(
        &server,
        "Int32",
        "13",
        "UncertainLastUsableValue",
        "2024-05-06T07:00:03.000004",
    );
    wait_for("the changes", || of(&received, "ns=2;s=Int32").len() == 3);
    wait_for("the change past the deadband", || {
        of(&received, "ns=2;s=Double").len() >= 2
    });
    // Let anything late arrive before counting.
    std::thread::sleep(Duration::from_millis(1500));
    let double = of(&received, "ns=2;s=Double");
    assert_eq!(double.len(), 2, "1.8 was inside the deadband: {double:?}");
    assert_eq!(
        double[1],
        (Some(2.5), Quality::Good, at("2024-05-06T07:00:01.000002"))
    );
    let int32 = of(&received, "ns=2;s=Int32");
    assert_eq!(
        int32[1..],
        [
            (
                Some(12.0 * 0.1),
                Quality::Good,
                at("2024-05-06T07:00:02.000003")
            ),
            (
                Some(13.0 * 0.1),
                Quality::Uncertain,
                at("2024-05-06T07:00:03.000004")
            ),
        ]
    );
    let group = status(&engine, "SUB");
    assert_eq!(group.mode, "SUBSCRIPTION");
    assert_eq!(group.interval_ms, Some(100));
    assert!(group.notifications >= 5, "{group:?}");
    assert_eq!(engine.stop(), 1);
}

#[test]
fn opcua_server_stopped_and_started_again_reconnects_and_restores_the_subscription() {
    let Some(sims) = simulators(
        "opcua_server_stopped_and_started_again_reconnects_and_restores_the_subscription",
    ) else {
        return;
    };
    let mut server = sims.opcua(0, &[]);
    let port = server.port();
    let pki = tempfile::tempdir().unwrap();
    let config = config(&format!(
        "{}[[group]]\nname = \"POLLED\"\nmode = \"FIXED\"\ninterval_ms = 200\nplc_code = \"OPC1\"\n\
         tags = [\"ns=2;s=Float\"]\n\
         [[group]]\nname = \"SUB\"\nmode = \"SUBSCRIPTION\"\npublishing_interval_ms = 200\n\
         plc_code = \"OPC1\"\ntags = [\"ns=2;s=Double\"]\n",
        plc(port, pki.path(), "timeout_ms = 2000\nkeep_alive_ms = 500")
    ));
    let (engine, received) = engine_with(&config);
    wait_for("both groups connected", || {
        status(&engine, "POLLED").connected && status(&engine, "SUB").connected
    });
    wait_for("values", || {
        !of(&received, "ns=2;s=Float").is_empty() && !of(&received, "ns=2;s=Double").is_empty()
    });

    server.kill();
    wait_for("BAD values of the polled group", || {
        of(&received, "ns=2;s=Float")
            .iter()
            .any(|(v, q, _)| v.is_none() && *q == Quality::Bad)
    });
    wait_for("the subscription group marked BAD and disconnected", || {
        let sub = status(&engine, "SUB");
        !sub.connected
            && sub.last_error.is_some()
            && logs()
                .iter()
                .any(|l| l.contains("SUB: PLC OPC1") && l.contains("keep-alives in a row"))
            && of(&received, "ns=2;s=Double")
                .iter()
                .any(|(v, q, _)| v.is_none() && *q == Quality::Bad)
    });
    let polled = status(&engine, "POLLED");
    assert!(
        !polled.connected && polled.last_error.is_some(),
        "{polled:?}"
    );
    // One BAD value marks the subscription's outage, not one per reconnect attempt.
    std::thread::sleep(Duration::from_secs(3));
    let bad = |tag| {
        of(&received, tag)
            .iter()
            .filter(|(v, _, _)| v.is_none())
            .count()
    };
    assert_eq!(bad("ns=2;s=Double"), 1);

    let server = sims.opcua(port, &[]);
    wait_for("both groups connected again", || {
        status(&engine, "POLLED").connected && status(&engine, "SUB").connected
    });
    set(
        &server,
        "Double",
        "42.25",
        "Good",
        "2024-06-01T00:00:00.000007",
    );
    set(
        &server,
        "Float",
        "8.5",
        "Good",
        "2024-06-01T00:00:00.000008",
    );
    wait_for("the restored subscription delivering", || {
        of(&received, "ns=2;s=Double").iter().any(|(v, q, t)| {
            *v == Some(42.25) && *q == Quality::Good && *t == at("2024-06-01T00:00:00.000007")
        })
    });
    wait_for("the polled group reading again", || {
        of(&received, "ns=2;s=Float")
            .iter()
            .any(|(v, _, t)| *v == Some(8.5) && *t == at("2024-06-01T00:00:00.000008"))
    });
    assert!(status(&engine, "SUB").last_error.is_none());
    assert_eq!(engine.stop(), 2);
    drop(server);
}

/// A server that hangs (SIGSTOP: its sockets stay open, nothing is answered), with the
/// driver's default timeouts: the polled group stores BAD once its read is not answered in
/// time, the subscription group notices through failed keep-alives, both come back when the
/// server does, and a stop while a read waits on the hung server does not wait for it.
#[test]
fn opcua_server_that_hangs_is_bad_then_recovers_and_stop_does_not_wait_on_it() {
    let Some(sims) =
        simulators("opcua_server_that_hangs_is_bad_then_recovers_and_stop_does_not_wait_on_it")
    else {
        return;
    };
    captured();
    let server = sims.opcua(0, &[]);
    let pki = tempfile::tempdir().unwrap();
    let config = config(&format!(
        "{}[[group]]\nname = \"POLLED\"\nmode = \"FIXED\"\ninterval_ms = 200\nplc_code = \"OPC1\"\n\
         tags = [\"ns=2;s=Float\"]\n\
         [[group]]\nname = \"SUB\"\nmode = \"SUBSCRIPTION\"\npublishing_interval_ms = 200\n\
         plc_code = \"OPC1\"\ntags = [\"ns=2;s=Double\"]\n",
        plc(server.port(), pki.path(), "")
    ));
    let (engine, received) = engine_with(&config);
    wait_for("both groups connected", || {
        status(&engine, "POLLED").connected && status(&engine, "SUB").connected
    });
    wait_for("values", || {
        !of(&received, "ns=2;s=Float").is_empty() && !of(&received, "ns=2;s=Double").is_empty()
    });

    server.pause();
    wait_for(
        "BAD values of the polled group, its read unanswered",
        || {
            let polled = status(&engine, "POLLED");
            !polled.connected
                && polled
                    .last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("no answer within"))
                && of(&received, "ns=2;s=Float")
                    .iter()
                    .any(|(v, q, _)| v.is_none() && *q == Quality::Bad)
        },
    );
    // The keep-alives (every 5 s by default) go unanswered: the session is closed.
    wait_for("the subscription group marked BAD and disconnected", || {
        let sub = status(&engine, "SUB");
        !sub.connected
            && sub.last_error.is_some()
            && logs()
                .iter()
                .any(|l| l.contains("SUB: PLC OPC1") && l.contains("keep-alives in a row"))
            && of(&received, "ns=2;s=Double")
                .iter()
                .any(|(v, q, _)| v.is_none() && *q == Quality::Bad)
    });
    // Rechecked every 200 ms, the outage is one error, not five a second.
    let errors = status(&engine, "SUB").errors;
    std::thread::sleep(Duration::from_secs(2));
    assert!(status(&engine, "SUB").errors <= errors + 1);

    server.resume();
    wait_for("both groups connected again", || {
        status(&engine, "POLLED").connected && status(&engine, "SUB").connected
    });
    set(
        &server,
        "Double",
        "-4.5",
        "Good",
        "2024-07-01T00:00:00.000001",
    );
    wait_for("the subscription delivering again", || {
        of(&received, "ns=2;s=Double").iter().any(|(v, q, t)| {
            *v == Some(-4.5) && *q == Quality::Good && *t == at("2024-07-01T00:00:00.000001")
        })
    });

    // Hung again: the next poll's Read waits up to 5.5 s for its answer; stop does not.
    server.pause();
    std::thread::sleep(Duration::from_millis(1000));
    let started = Instant::now();
    let outcome = engine.stop_within(polling_engine::STOP_GRACE);
    let took = started.elapsed();
    assert_eq!(outcome.stopped + outcome.abandoned.len(), 2, "{outcome:?}");
    assert!(
        took < Duration::from_secs(4),
        "stop waited {took:?} on a hung server ({outcome:?})"
    );
    drop(server);
}

#[test]
fn opcua_basic256sha256_sign_and_encrypt_with_user_and_password() {
    let Some(sims) = simulators("opcua_basic256sha256_sign_and_encrypt_with_user_and_password")
    else {
        return;
    };
    captured();
    let password = "Op3rator-S3cret!";
    let server_pki = tempfile::tempdir().unwrap();
    let server_pki_text = server_pki.path().to_str().unwrap().to_owned();
    let server = sims.opcua(
        0,
        &[
            "--secure",
            &server_pki_text,
            "--user",
            "operator",
            "--password",
            password,
        ],
    );
    let pki = tempfile::tempdir().unwrap();
    let secure = |user_password: &str| {
        config(&format!(
            "{}[[group]]\nname = \"G\"\nmode = \"FIXED\"\ninterval_ms = 500\nplc_code = \"OPC1\"\n\
             tags = [\"ns=2;s=Double\"]\n",
            plc(
                server.port(),
                pki.path(),
                &format!(
                    "security_policy = \"Basic256Sha256\"\nsecurity_mode = \"SignAndEncrypt\"\n\
                     user = \"operator\"\npassword = \"{user_password}\""
                )
            )
        ))
    };
    let config = secure(password);

    // First start: the server's certificate is unknown, so it is refused, and the error says
    // where it was put and where the operator moves it.
    let (mut driver, plan) = open(&config);
    let error = driver
        .connect()
        .expect_err("an untrusted server")
        .to_string();
    assert!(error.contains("not trusted"), "{error}");
    let rejected = pki.path().join("rejected");
    let trusted = pki.path().join("trusted");
    assert!(error.contains(&trusted.display().to_string()), "{error}");
    let files = test_support::files_in(&rejected);
    assert_eq!(
        files.len(),
        1,
        "the server's certificate in rejected/: {files:?}"
    );
    assert!(error.contains(&files[0]), "{error}");
    std::fs::rename(rejected.join(&files[0]), trusted.join(&files[0])).unwrap();

    // Trusted now: a SignAndEncrypt session with the user, and the value reads.
    driver
        .connect()
        .expect("connect once the certificate is trusted");
    let read = driver
        .read_samples(&plan)
        .expect("read over the encrypted channel");
    assert_eq!(sample(&read[0]).value, Some(1.5));
    set(
        &server,
        "Double",
        "6.25",
        "Good",
        "2024-05-06T07:08:09.000001",
    );
    let read = driver.read_samples(&plan).expect("read again");
    assert_eq!(sample(&read[0]).value, Some(6.25));
    driver.disconnect();

    // A wrong password is refused, and says so without the password.
    let (mut wrong, _) = open(&secure("not-the-password"));
    let error = wrong.connect().expect_err("a wrong password").to_string();
    assert!(
        error.contains("BadUserAccessDenied") || error.contains("BadIdentityTokenRejected"),
        "{error}"
    );
    drop(wrong);

    // The password is in no log line, error or debug output.
    let config_debug = format!("{config:?}");
    assert!(!config_debug.contains(password), "{config_debug}");
    for line in logs() {
        assert!(
            !line.contains(password),
            "the password leaked into the log: {line}"
        );
        assert!(!line.contains("not-the-password"), "leaked: {line}");
    }
}

#[test]
fn opcua_configuration_mistakes_stop_start_up_naming_file_group_tag_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let group = |tags: &str| {
        format!(
            "[[group]]\nname = \"LINE1\"\nmode = \"FIXED\"\ninterval_ms = 1000\n\
             plc_code = \"OPC1\"\ntags = [{tags}]\n"
        )
    };
    let error_of = |text: String| {
        PollingConfig::from_toml(&text, "plant/opcua.toml")
            .expect_err("refused")
            .to_string()
    };
    let cases = [
        (
            format!(
                "{}{}",
                plc(4840, &pki, ""),
                group("\"ns=2;s=A\", \"ns=2;x=7\"")
            ),
            "plant/opcua.toml: group \"LINE1\": tags[1]: \"ns=2;x=7\" is not a valid opcua \
             address: \"x=7\" is not an identifier",
        ),
        (
            format!("{}{}", plc(4840, &pki, ""), group("\"ns=99999;i=1\"")),
            "tags[0]: \"ns=99999;i=1\" is not a valid opcua address: ns=99999: the namespace \
             index must be a whole number from 0 to 65535",
        ),
        (
            format!(
                "{}{}",
                plc(4840, &pki, ""),
                group("{ address = \"ns=2;s=A\", type = \"FLOAT32\" }")
            ),
            "an OPC UA node has its own type: remove type and word_order",
        ),
        (
            format!(
                "{}{}",
                plc(4840, &pki, "security_policy = \"Basic128\""),
                group("\"ns=2;s=A\"")
            ),
            "plant/opcua.toml: plc[0] \"OPC1\": security_policy: \"Basic128\" is not a security \
             policy this client supports (known: None, Basic256Sha256",
        ),
        (
            format!(
                "{}{}",
                plc(
                    4840,
                    &pki,
                    "security_policy = \"Basic256Sha256\"\ncertificate = \"own/plant.der\"\n\
                     private_key = \"private/plant.pem\""
                ),
                group("\"ns=2;s=A\"")
            ),
            "plc[0] \"OPC1\": certificate: ",
        ),
        (
            format!(
                "{}{}",
                plc(4840, &pki, "user = \"operator\""),
                group("\"ns=2;s=A\"")
            ),
            "plc[0] \"OPC1\": user: give password (or password_env) with the user",
        ),
        (
            format!(
                "{}{}",
                plc(4840, &pki, "trust_server_cert = \"yes\""),
                group("\"ns=2;s=A\"")
            ),
            "trust_server_cert: \"yes\" is not a choice (known: pki, always)",
        ),
        (
            format!(
                "{}{}",
                plc(4840, &pki, "security_mode = \"Sign\""),
                group("\"ns=2;s=A\"")
            ),
            "security_mode: Sign and SignAndEncrypt need a security_policy",
        ),
        (
            format!(
                "{}[[group]]\nname = \"SUB\"\nmode = \"SUBSCRIPTION\"\nplc_code = \"OPC1\"\n\
                 publishing_interval_ms = 500\ntags = [{{ address = \"ns=2;s=A\", \
                 deadband_pct = 5 }}]\n",
                plc(4840, &pki, "")
            ),
            "group \"SUB\": tags[0]: \"ns=2;s=A\": deadband_pct: a SUBSCRIPTION group's deadband \
             is the server's absolute deadband",
        ),
        (
            format!(
                "{}[[group]]\nname = \"SUB\"\nmode = \"SUBSCRIPTION\"\nplc_code = \"OPC1\"\n\
                 tags = [\"ns=2;s=A\"]\n",
                plc(4840, &pki, "")
            ),
            "group \"SUB\": publishing_interval_ms: a SUBSCRIPTION group needs \
             publishing_interval_ms",
        ),
        (
            "[[plc]]\nplc_code = \"MB\"\ndriver = \"modbus\"\nhost = \"h\"\n[[group]]\n\
             name = \"SUB\"\nmode = \"SUBSCRIPTION\"\nplc_code = \"MB\"\n\
             publishing_interval_ms = 500\ntags = [\"HR1\"]\n"
                .to_owned(),
            "group \"SUB\": mode: the modbus driver of PLC \"MB\" cannot subscribe; use FIXED",
        ),
        (
            format!(
                "{}{}",
                plc(4840, &pki, "endpoint_url = \"x\""),
                group("\"ns=2;s=A\"")
            ),
            "endpoint_url: unknown option of the opcua driver (known: plc_code, driver, \
             endpoint, security_policy",
        ),
    ];
    for (text, expected) in cases {
        let error = error_of(text);
        assert!(
            error.contains(expected),
            "{error}\n  does not contain\n{expected}"
        );
    }
    // Parsing a configuration creates nothing on disk: the PKI is made at the first connect.
    assert!(!pki.exists());
}
