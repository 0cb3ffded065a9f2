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

/// Drop-oldest written with the obvious alternatives to the ring buffer, for the benchmarks
/// that compare them doing the same work.
pub mod drop_oldest {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    /// Stores `item` in a queue holding at most `capacity`, handing back the oldest item when
    /// it had to make room.
    pub fn mutex_push<T>(queue: &Mutex<VecDeque<T>>, capacity: usize, item: T) -> Option<T> {
        let mut queue = queue.lock().unwrap_or_else(|e| e.into_inner());
        let displaced = if queue.len() >= capacity {
            queue.pop_front()
        } else {
            None
        };
        queue.push_back(item);
        displaced
    }

    /// The same with a bounded channel: while it is full, take the oldest item out and try
    /// again (two steps, so another thread may slip in between; the channel has no
    /// single-step equivalent).
    pub fn channel_push<T>(
        tx: &crossbeam_channel::Sender<T>,
        rx: &crossbeam_channel::Receiver<T>,
        mut item: T,
    ) -> Option<T> {
        let mut displaced = None;
        loop {
            match tx.try_send(item) {
                Ok(()) => return displaced,
                Err(crossbeam_channel::TrySendError::Full(refused)) => {
                    item = refused;
                    displaced = rx.try_recv().ok().or(displaced);
                }
                // The benchmarks hold a receiver, so the channel never disconnects.
                Err(crossbeam_channel::TrySendError::Disconnected(_)) => return displaced,
            }
        }
    }
}
