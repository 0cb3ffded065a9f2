//! Configuration mistakes stop start-up with a message naming the file, group and field.

use polling_engine::PollingConfig;

const PLC: &str = "[[plc]]\nplc_code = \"PLC01\"\ndriver = \"simulated\"\n";

fn group(body: &str) -> String {
    format!("{PLC}\n[[group]]\n{body}\n")
}

fn error_of(text: &str) -> String {
    PollingConfig::from_toml(text, "plant/polling.toml")
        .expect_err("the configuration should be refused")
        .to_string()
}

#[test]
fn each_mistake_names_file_group_and_field() {
    let fixed = "name = \"G1\"\nmode = \"FIXED\"\nplc_code = \"PLC01\"";
    let cases = [
        (
            group(&format!("{fixed}\ninterval_ms = 1000\ntags = [\"D1\"]"))
                .replace("plc_code = \"PLC01\"\ninterval", "plc_code = \"PLC09\"\ninterval"),
            "plant/polling.toml: group \"G1\": plc_code: \"PLC09\" is not a configured [[plc]]",
        ),
        (
            format!(
                "{}\n[[group]]\n{fixed}\ninterval_ms = 5\ntags = [\"D2\"]\n",
                group(&format!("{fixed}\ninterval_ms = 5\ntags = [\"D1\"]"))
            ),
            "plant/polling.toml: group \"G1\": name: two groups have this name",
        ),
        (
            group(&format!("{fixed}\ninterval_ms = 0\ntags = [\"D1\"]")),
            "plant/polling.toml: group \"G1\": interval_ms: must be at least 1",
        ),
        (
            group(&format!("{fixed}\ntags = [\"D1\"]")),
            "plant/polling.toml: group \"G1\": interval_ms: a FIXED group needs interval_ms",
        ),
        (
            group(&format!("{fixed}\ninterval_ms = 10\ntags = []")),
            "plant/polling.toml: group \"G1\": tags: must list at least one address",
        ),
        (
            group(&format!("{fixed}\ninterval_ms = 10\ntags = [\"D1\", \"D 2\"]")),
            "plant/polling.toml: group \"G1\": tags[1]: \"D 2\" is not a valid simulated address",
        ),
        (
            group(&format!("{fixed}\ninterval_ms = 10\ntags = [\"D1\", \"D1\"]")),
            "plant/polling.toml: group \"G1\": tags[1]: \"D1\" is listed twice",
        ),
        (
            group("name = \"G2\"\nmode = \"SOMETIMES\"\nplc_code = \"PLC01\"\ntags = [\"D1\"]"),
            "plant/polling.toml: group \"G2\": mode: \"SOMETIMES\" is not FIXED, HANDSHAKE or SUBSCRIPTION",
        ),
        (
            group("name = \"G3\"\nmode = \"HANDSHAKE\"\ninterval_ms = 5\nplc_code = \"PLC01\"\ntags = [\"D1\"]"),
            "plant/polling.toml: group \"G3\": interval_ms: a HANDSHAKE group polls when triggered",
        ),
        (
            PLC.replace("simulated", "profinet") + "[[group]]\nname = \"G\"\nmode = \"HANDSHAKE\"\nplc_code = \"PLC01\"\ntags = [\"D1\"]\n",
            "plant/polling.toml: plc[0] \"PLC01\": driver: unknown driver \"profinet\" (available: simulated, melsec, modbus",
        ),
        (
            format!("{PLC}latency = 5\n"),
            "plant/polling.toml: plc[0] \"PLC01\": latency: unknown option of the simulated driver",
        ),
        (
            // Not a number, and not a known name either: the name is what is wrong.
            format!("{PLC}host = \"10.0.0.5\"\n"),
            "plant/polling.toml: plc[0] \"PLC01\": host: unknown option of the simulated driver \
             (known: plc_code, driver, latency_ms, fail_every, offline_after_ms, offline_for_ms)",
        ),
        (
            format!("{PLC}latency_ms = -5\n"),
            "plant/polling.toml: plc[0] \"PLC01\": latency_ms: must be a whole number",
        ),
        (
            format!("{PLC}{PLC}"),
            "plant/polling.toml: plc[1] \"PLC01\": plc_code: defined twice",
        ),
        (PLC.to_owned(), "plant/polling.toml: no [[group]] is defined"),
    ];
    for (text, expected) in cases {
        let message = error_of(&text);
        assert!(
            message.starts_with(expected),
            "got {message:?}\nwanted {expected:?}\nfor\n{text}"
        );
    }
}

#[test]
fn toml_syntax_errors_give_the_line() {
    let message = error_of("[[group]\nname = 1");
    assert!(message.starts_with("plant/polling.toml: "), "{message}");
    assert!(message.contains("line 1"), "{message}");
    let message = error_of(&group("name = \"G\"\nmode = \"HANDSHAKE\"\nplc_code = \"PLC01\"\ntags = [\"D1\"]\ncolour = \"red\""));
    assert!(message.contains("colour"), "{message}");
}

#[test]
fn a_missing_file_is_named() {
    let message = PollingConfig::from_file(std::path::Path::new("/nonexistent/polling.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("/nonexistent/polling.toml: cannot read the polling configuration"),
        "{message}"
    );
}

const MELSEC: &str =
    "[[plc]]\nplc_code = \"MC1\"\ndriver = \"melsec\"\nhost = \"127.0.0.1\"\nport = 5000\n";
const MODBUS: &str = "[[plc]]\nplc_code = \"MB1\"\ndriver = \"modbus\"\nhost = \"127.0.0.1\"\n";

fn handshake(plc: &str, code: &str, extra: &str, tags: &str) -> String {
    format!(
        "{plc}[[group]]\nname = \"CELL\"\nmode = \"HANDSHAKE\"\nplc_code = \"{code}\"\n{extra}\ntags = [{tags}]\n"
    )
}

/// Real drivers: unknown devices, numbers out of range, types a device cannot hold, an ack
/// on a read-only table; each names the file, group, tag and reason.
#[test]
fn driver_mistakes_name_file_group_tag_and_reason() {
    let cases = [
        (
            handshake(MELSEC, "MC1", "", "\"D100\", \"Q5\""),
            "plant/polling.toml: group \"CELL\": tags[1]: \"Q5\" is not a valid melsec address: \
             unknown device (known: SM, SD, SB, SW, TN, CN, ZR, X, Y, M, L, F, V, B, D, W, R)",
        ),
        (
            handshake(MELSEC, "MC1", "", "\"D16777216\""),
            "plant/polling.toml: group \"CELL\": tags[0]: \"D16777216\" is not a valid melsec \
             address: out of range: the largest D number is 16777215",
        ),
        (
            handshake(MELSEC, "MC1", "", "\"X1G\""),
            "plant/polling.toml: group \"CELL\": tags[0]: \"X1G\" is not a valid melsec address: \
             X numbers are hexadecimal: \"1G\" is not one",
        ),
        (
            handshake(MELSEC, "MC1", "", "{ address = \"M10\", type = \"FLOAT32\" }"),
            "plant/polling.toml: group \"CELL\": tags[0]: \"M10\" is not a valid melsec address: \
             M is a bit device and holds BOOL only, not FLOAT32",
        ),
        (
            handshake(MELSEC, "MC1", "trigger = \"M0\"\nack = \"X10\"", "\"D1\""),
            "plant/polling.toml: group \"CELL\": ack: \"X10\" cannot be written: X is an input",
        ),
        (
            handshake(MODBUS, "MB1", "trigger = \"C0\"\nack = \"DI5\"", "\"HR1\""),
            "plant/polling.toml: group \"CELL\": ack: \"DI5\" cannot be written: DI is a \
             read-only table",
        ),
        (
            handshake(MODBUS, "MB1", "", "{ address = \"IR3\", type = \"REAL\" }"),
            "plant/polling.toml: group \"CELL\": tags[0]: \"IR3\": type: \"REAL\" is not a type \
             (known: BOOL, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64)",
        ),
        (
            handshake(MODBUS, "MB1", "", "{ address = \"HR3\", scael = 2 }"),
            "plant/polling.toml: group \"CELL\": tags[0]: scael: unknown tag option",
        ),
        (
            handshake(MODBUS, "MB1", "", "\"HR1\", \"40002\", \"C99999\""),
            "plant/polling.toml: group \"CELL\": tags[2]: \"C99999\" is not a valid modbus \
             address: \"99999\" is not a register number from 0 to 65535",
        ),
        (
            format!("{MODBUS}unit = 3\n") + &handshake("", "MB1", "", "\"HR1\""),
            "plant/polling.toml: plc[0] \"MB1\": unit: unknown option of the modbus driver (known: \
             plc_code, driver, host, port, unit_id, timeout_ms, connect_timeout_ms, word_order, \
             max_gap)",
        ),
        (
            MELSEC.replace("port = 5000\n", "") + &handshake("", "MC1", "", "\"D1\""),
            "plant/polling.toml: plc[0] \"MC1\": port: is required by this driver",
        ),
        (
            handshake(MELSEC, "MC1", "deadband = 1\ndeadband_pct = 5", "\"D1\""),
            "plant/polling.toml: group \"CELL\": deadband_pct: give deadband or deadband_pct, not both",
        ),
        (
            PLC.to_owned()
                + "[[group]]\nname = \"F\"\nmode = \"FIXED\"\ninterval_ms = 10\nplc_code = \"PLC01\"\ntrigger = \"M1\"\ntags = [\"D1\"]\n",
            "plant/polling.toml: group \"F\": trigger: only a HANDSHAKE group has a trigger",
        ),
    ];
    for (text, expected) in cases {
        let message = error_of(&text);
        assert!(
            message.starts_with(expected),
            "got {message:?}\nwanted {expected:?}\nfor\n{text}"
        );
    }
}

#[test]
fn values_of_the_wrong_kind_say_what_was_found() {
    let message = error_of(&format!(
        "{MODBUS}port = \"502\"\n{}",
        handshake("", "MB1", "", "\"HR1\"")
    ));
    assert!(
        message.ends_with("port: must be a whole number from 1 to 65535 (found string)"),
        "{message}"
    );
    let message = error_of(&handshake(MODBUS, "MB1", "", "5"));
    assert!(
        message.ends_with(
            "tags[0]: must be an address string or a table with address = \"...\" (found integer)"
        ),
        "{message}"
    );
}
