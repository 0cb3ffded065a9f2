//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_log::io::{Filesystem, MemoryFs};
use durable_log::{BytesCodec, DurableLog, LogOptions, Wait};

/// Where tests put the log on a `MemoryFs`.
pub fn dir() -> PathBuf {
    PathBuf::from("/buffer")
}

/// Options for tests: the interval long enough that only `flush` syncs, unless a test wants
/// the timer.
pub fn options() -> LogOptions {
    LogOptions {
        sync_interval: Duration::from_secs(60),
        ..LogOptions::default()
    }
}

pub fn open(fs: &MemoryFs) -> DurableLog<BytesCodec> {
    open_with(fs, options())
}

pub fn open_with(fs: &MemoryFs, options: LogOptions) -> DurableLog<BytesCodec> {
    let fs: Arc<dyn Filesystem> = Arc::new(fs.clone());
    DurableLog::open_with(fs, dir(), options, BytesCodec).expect("a log always opens")
}

/// A distinct value per number.
pub fn value(n: u64) -> Vec<u8> {
    format!("value-{n:08}").into_bytes()
}

pub fn number(value: &[u8]) -> u64 {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.strip_prefix("value-"))
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("not a test value: {value:?}"))
}

pub fn values(range: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    range.map(value).collect()
}

/// Appends and syncs.
pub fn append_synced(log: &DurableLog<BytesCodec>, items: &[Vec<u8>]) {
    log.append(items).expect("append");
    log.flush(Duration::from_secs(10)).expect("flush");
}

/// Drains everything readable now, settling each batch; returns the value numbers in order.
pub fn drain_all(log: &DurableLog<BytesCodec>) -> Vec<u64> {
    let mut seen = Vec::new();
    loop {
        let mut batch = Vec::new();
        match log.drain_into(&mut batch, 100) {
            Some(claim) => {
                assert_eq!(claim.len(), batch.len());
                seen.extend(batch.iter().map(|item| number(item)));
                log.settle(claim);
            }
            None => return seen,
        }
    }
}

/// Drains everything readable now without settling.
pub fn drain_unsettled(log: &DurableLog<BytesCodec>) -> Vec<u64> {
    let mut seen = Vec::new();
    let mut batch = Vec::new();
    while let Some(claim) = log.drain_into(&mut batch, 100) {
        let _ = claim; // left unsettled
    }
    seen.extend(batch.iter().map(|item| number(item)));
    seen
}

/// The only segment file's path (panics if there are several).
pub fn segments(fs: &MemoryFs) -> Vec<PathBuf> {
    fs.files(&dir())
        .into_iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect()
}

pub fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Waits for `condition` with a generous deadline.
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The accounting identity of the log's figures.
pub fn assert_identity(log: &DurableLog<BytesCodec>) {
    let stats = log.stats();
    assert_eq!(
        stats.recovered + stats.appended,
        stats.pending
            + stats.unread
            + stats.in_flight
            + stats.settled
            + stats.overflow
            + stats.lost_to_damage
            + stats.lost_unsynced,
        "{stats:#?}"
    );
}

pub fn wait_ready(log: &DurableLog<BytesCodec>, n: usize) {
    assert_eq!(log.wait_for(n, Duration::from_secs(30)), Wait::Ready);
}
