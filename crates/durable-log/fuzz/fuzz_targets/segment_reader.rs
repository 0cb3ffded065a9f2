//! Any bytes as a segment file: recovery and reading never panic, hand out only what the
//! file's intact records hold, and the log keeps working.
#![no_main]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use durable_log::io::{Filesystem, MemoryFs};
use durable_log::segment::segment_name;
use durable_log::{BytesCodec, DurableLog, LogOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The record decoder alone.
    let _ = durable_log::record::decode(data);
    let _ = durable_log::record::find_next_header(data, 0);

    // The whole reader over a file of these bytes.
    let fs = MemoryFs::new();
    let dir = Path::new("/log");
    fs.put(&dir.join(segment_name(0)), data);
    let shared: Arc<dyn Filesystem> = Arc::new(fs.clone());
    let options = LogOptions {
        sync_interval: Duration::from_secs(60),
        ..LogOptions::default()
    };
    let log = DurableLog::open_with(shared, dir, options, BytesCodec).expect("always opens");
    let mut batch = Vec::new();
    while let Some(claim) = log.drain_into(&mut batch, 1000) {
        log.settle(claim);
    }
    let stats = log.stats();
    assert_eq!(
        stats.recovered,
        stats.settled + stats.lost_to_damage + stats.unread + stats.in_flight,
        "{stats:?}"
    );
    log.append(&[b"after".to_vec()]).expect("appends work");
    log.flush(Duration::from_secs(5)).expect("syncs work");
});
