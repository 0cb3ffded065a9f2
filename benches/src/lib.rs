//! Shared inputs of the benchmarks: realistic tag values (1,000 tags over 10 PLCs, shared
//! strings, one timestamp per poll).

use std::sync::Arc;

use chrono::NaiveDateTime;
use tag_model::{Quality, TagValue};

/// The start of every generated series.
pub fn start() -> NaiveDateTime {
    chrono::DateTime::from_timestamp(1_762_093_845, 0)
        .unwrap_or_default()
        .naive_utc()
}

/// `count` values as polls of 10 PLCs x 100 addresses, from poll number `first_poll`.
pub fn values(first_poll: usize, count: usize) -> Vec<TagValue> {
    let plcs: Vec<Arc<str>> = (0..10).map(|p| Arc::from(format!("PLC{p:02}"))).collect();
    let addresses: Vec<Arc<str>> = (0..100)
        .map(|a| Arc::from(format!("D{}", 100 + a)))
        .collect();
    (0..count)
        .map(|i| {
            let poll = first_poll + i / 1000;
            let slot = i % 1000;
            let timestamp = start() + chrono::Duration::milliseconds(poll as i64 * 100);
            TagValue::new(
                timestamp,
                plcs[slot / 100].clone(),
                addresses[slot % 100].clone(),
                Some((i % 9973) as f64 * 0.25),
                Quality::Good,
            )
            .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

/// Resident set size of this process in bytes (Linux), from /proc/self/status.
pub fn rss_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
