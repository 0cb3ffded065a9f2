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
            "plant/polling.toml: group \"G2\": mode: \"SOMETIMES\" is not FIXED or HANDSHAKE",
        ),
        (
            group("name = \"G3\"\nmode = \"HANDSHAKE\"\ninterval_ms = 5\nplc_code = \"PLC01\"\ntags = [\"D1\"]"),
            "plant/polling.toml: group \"G3\": interval_ms: a HANDSHAKE group polls when triggered",
        ),
        (
            PLC.replace("simulated", "modbus") + "[[group]]\nname = \"G\"\nmode = \"HANDSHAKE\"\nplc_code = \"PLC01\"\ntags = [\"D1\"]\n",
            "plant/polling.toml: plc[0] \"PLC01\": driver: unknown driver \"modbus\"",
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
