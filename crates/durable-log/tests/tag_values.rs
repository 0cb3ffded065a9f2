//! Tag values through the log on real files: every field survives, codes and addresses are
//! shared, and a poll of integer registers takes a few bytes a value on disk.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use durable_log::{DurableLog, LogOptions, TagValueCodec};
use tag_model::{Quality, TagValue};

fn poll(second: u32, plc: &Arc<str>, tags: &[Arc<str>]) -> Vec<TagValue> {
    let at = NaiveDate::from_ymd_opt(2025, 11, 2)
        .unwrap()
        .and_hms_micro_opt(14, 30, second, 123_456)
        .unwrap();
    tags.iter()
        .enumerate()
        .map(|(i, tag)| {
            let (value, quality) = match i % 10 {
                0 => (None, Quality::Bad),
                1 => (Some(i as f64 + 0.25), Quality::Uncertain),
                _ => (Some((i * 7) as f64), Quality::Good),
            };
            TagValue::new(at, Arc::clone(plc), Arc::clone(tag), value, quality).unwrap()
        })
        .collect()
}

#[test]
fn tag_values_round_trip_through_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let plc: Arc<str> = Arc::from("PLC01");
    let tags: Vec<Arc<str>> = (0..1000).map(|i| Arc::from(format!("D{i}"))).collect();
    let options = LogOptions::default();
    let log = DurableLog::open(dir.path(), options.clone(), TagValueCodec::new()).unwrap();
    let mut written = Vec::new();
    for second in 0..10 {
        let values = poll(second, &plc, &tags);
        log.append(&values).unwrap();
        written.extend(values);
    }
    log.flush(Duration::from_secs(10)).unwrap();
    let stats = log.stats();
    let per_value = stats.bytes_written as f64 / written.len() as f64;
    // About 5 bytes of it are the record's dictionary of 1,000 addresses.
    assert!(per_value < 14.0, "{per_value:.1} bytes a value on disk");
    log.close();
    drop(log);

    let log = DurableLog::open(dir.path(), options, TagValueCodec::new()).unwrap();
    assert_eq!(log.recovery().unsettled, 10_000);
    let mut back = Vec::new();
    while let Some(claim) = log.drain_into(&mut back, 500) {
        log.settle(claim);
    }
    assert_eq!(back, written);
    assert!(Arc::ptr_eq(
        back[0].plc_code_arc(),
        back[9_999].plc_code_arc()
    ));
    assert!(Arc::ptr_eq(
        back[5].tag_address_arc(),
        back[1_005].tag_address_arc()
    ));
}
