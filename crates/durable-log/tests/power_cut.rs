//! Power cuts (MemoryFs::crash: what was not synced is lost or torn) in the middle of
//! concurrent appends, syncs and settlements, several rounds on the same files.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use durable_log::io::MemoryFs;
use durable_log::LogOptions;

fn fast() -> LogOptions {
    LogOptions {
        sync_interval: Duration::from_millis(3),
        segment_bytes: Some(32 * 1024),
        ..options()
    }
}

#[test]
fn acknowledged_unsettled_values_survive_power_cuts_at_random_moments() {
    let mut fs = MemoryFs::new();
    let mut required: BTreeSet<u64> = BTreeSet::new();
    let mut next = 0u64;
    for round in 0..12u64 {
        let log = Arc::new(open_with(&fs, fast()));
        // What the previous rounds left must all be here.
        let acked = Arc::new(Mutex::new(BTreeSet::new()));
        let settling = Arc::new(Mutex::new(BTreeSet::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let producer = {
            let (log, acked, stop) = (Arc::clone(&log), Arc::clone(&acked), Arc::clone(&stop));
            let start = next;
            std::thread::spawn(move || {
                let mut n = start;
                while !stop.load(Ordering::SeqCst) {
                    let Ok(appended) = log.append(&values(n..n + 20)) else {
                        break;
                    };
                    if log
                        .wait_synced(appended.ticket, Duration::from_secs(10))
                        .is_ok()
                    {
                        acked.lock().unwrap().extend(n..n + 20);
                    }
                    n += 20;
                }
                n
            })
        };
        let settler = {
            let (log, settling, stop) =
                (Arc::clone(&log), Arc::clone(&settling), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let mut batch = Vec::new();
                    match log.drain_into(&mut batch, 33) {
                        Some(claim) => {
                            let numbers: Vec<u64> = batch.iter().map(|v| number(v)).collect();
                            if numbers[0] % 2 == 0 {
                                settling.lock().unwrap().extend(numbers);
                                log.settle(claim);
                            }
                        }
                        None => {
                            log.wait_for(1, Duration::from_millis(5));
                        }
                    }
                }
            })
        };
        eventually("some acknowledgements", || {
            acked.lock().unwrap().len() > 200
        });
        std::thread::sleep(Duration::from_millis(round * 7 % 40));
        let after = fs.crash(round);
        stop.store(true, Ordering::SeqCst);
        next = producer.join().unwrap() + 1_000;
        settler.join().unwrap();
        drop(log);
        fs = after;

        required.extend(acked.lock().unwrap().iter().copied());
        for n in settling.lock().unwrap().iter() {
            required.remove(n);
        }
        let log = open_with(&fs, fast());
        let mut on_disk = BTreeSet::new();
        let mut batch = Vec::new();
        while let Some(claim) = log.drain_into(&mut batch, 1000) {
            let _ = claim;
        }
        for value in &batch {
            assert!(on_disk.insert(number(value)), "handed out twice");
        }
        let missing: Vec<_> = required.difference(&on_disk).take(10).collect();
        assert!(
            missing.is_empty(),
            "round {round}: acknowledged, unsettled values lost in the power cut: {missing:?}"
        );
        assert_identity(&log);
        required = on_disk;
        log.close();
    }
}
