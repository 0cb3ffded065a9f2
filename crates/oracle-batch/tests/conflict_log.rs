//! The conflicting-duplicates log line: logged at once, then at most once a minute with a
//! count of the conflicts not logged in between. (Its own test binary: it sets the logger.)

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::{config, eventually, values, Rig};
use tag_model::{Quality, TagValue};

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            LINES
                .lock()
                .unwrap()
                .push(format!("[{}] {}", record.level(), record.args()));
        }
    }
    fn flush(&self) {}
}

fn conflict_lines() -> Vec<String> {
    LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|line| line.contains("Conflicting duplicates"))
        .cloned()
        .collect()
}

#[test]
fn conflicts_are_logged_at_once_then_at_most_once_a_minute() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Warn);
    let mut rig = Rig::new(1_000);
    let writer = rig.start(config(3, 50));
    let key = values(0, 1).remove(0);
    let reading = |value: f64| {
        TagValue::new(
            key.timestamp(),
            key.plc_code(),
            key.tag_address(),
            Some(value),
            Quality::Good,
        )
        .unwrap()
    };
    rig.push_all(&[reading(1.0), reading(2.0), reading(99.0)]);
    eventually("the first conflicts", || writer.stats().conflicts == 2);
    let lines = conflict_lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let line = &lines[0];
    assert!(
        line.starts_with(
            "[WARN] Conflicting duplicates: 2 rows not stored because the database holds \
             another value or quality for their key (plc_code, tag_address, timestamp); kept in "
        ),
        "{line}"
    );
    assert!(line.contains("/backup/conflicts_"), "{line}");
    assert!(
        line.ends_with(
            ". First: PLC00 D100 at 2025-11-02T14:30:45.000000: offered 2 GOOD, stored 1 GOOD"
        ),
        "{line}"
    );

    // Within the minute: counted, not logged.
    rig.push_all(&[reading(3.0), reading(4.0), reading(5.0)]);
    eventually("more conflicts", || writer.stats().conflicts == 5);
    assert_eq!(conflict_lines().len(), 1, "{:#?}", conflict_lines());

    // A minute later the next conflict is logged, with the count of those in between.
    rig.clock.advance(Duration::from_secs(60));
    rig.push_all(&[reading(6.0)]);
    eventually("the last conflict", || writer.stats().conflicts == 6);
    let lines = conflict_lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[1].starts_with("[WARN] Conflicting duplicates: 1 rows not stored"),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].ends_with(
            "offered 6 GOOD, stored 1 GOOD (3 more conflicting rows since the last such message)"
        ),
        "{}",
        lines[1]
    );
    writer.shutdown(Duration::from_secs(5));
}
