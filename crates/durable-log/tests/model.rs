//! The log against a plain in-memory model, over random sequences of appends, syncs, drains,
//! settlements, failing syncs, power cuts and restarts.
//!
//! The model knows which values must come back after a power cut (appended before a
//! successful sync and not settled), which may (appended, and not settled before a
//! successful sync), and checks that the log hands out exactly values between the two, each
//! once, in order, never one that was not synced, and that its figures add up.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use durable_log::io::{Fault, MemoryFs};
use durable_log::{BytesCodec, Claim, DurableLog, LogOptions};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Append(u64),
    Flush,
    FailingFlush,
    Drain(usize),
    Settle(usize),
    Crash(u64),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u64..60).prop_map(Op::Append),
        4 => Just(Op::Flush),
        1 => Just(Op::FailingFlush),
        5 => (1usize..80).prop_map(Op::Drain),
        4 => (0usize..8).prop_map(Op::Settle),
        1 => any::<u64>().prop_map(Op::Crash),
        1 => Just(Op::Restart),
    ]
}

struct Model {
    fs: MemoryFs,
    log: Option<DurableLog<BytesCodec>>,
    next: u64,
    /// Accepted by the log and not settled durably: may be handed out.
    allowed: BTreeSet<u64>,
    /// Synced and not settled: must come back after a crash.
    required: BTreeSet<u64>,
    /// Appended (accepted) since the last successful sync.
    unsynced: BTreeSet<u64>,
    /// Synced (may be handed out now).
    synced: BTreeSet<u64>,
    /// Settled since the last successful sync.
    settled_unsynced: BTreeSet<u64>,
    /// Handed out in this run of the log, in order.
    handed_out: Vec<u64>,
    held: Vec<(Claim, Vec<u64>)>,
}

fn model_options() -> LogOptions {
    LogOptions {
        segment_bytes: Some(8 * 1024),
        max_bytes: 64 << 20,
        ..options()
    }
}

impl Model {
    fn new() -> Self {
        let fs = MemoryFs::new();
        let log = open_with(&fs, model_options());
        Model {
            fs,
            log: Some(log),
            next: 0,
            allowed: BTreeSet::new(),
            required: BTreeSet::new(),
            unsynced: BTreeSet::new(),
            synced: BTreeSet::new(),
            settled_unsynced: BTreeSet::new(),
            handed_out: Vec::new(),
            held: Vec::new(),
        }
    }

    fn log(&self) -> &DurableLog<BytesCodec> {
        self.log.as_ref().expect("open")
    }

    fn synced_ok(&mut self) {
        let unsynced = std::mem::take(&mut self.unsynced);
        self.synced.extend(unsynced.iter().copied());
        self.required.extend(unsynced);
        for value in std::mem::take(&mut self.settled_unsynced) {
            self.allowed.remove(&value);
            self.required.remove(&value);
        }
    }

    fn hand_out(&mut self, batch: &[Vec<u8>]) -> Vec<u64> {
        let numbers: Vec<u64> = batch.iter().map(|item| number(item)).collect();
        for &n in &numbers {
            assert!(self.allowed.contains(&n), "{n} handed out but not allowed");
            assert!(
                self.synced.contains(&n),
                "{n} handed out before it was synced"
            );
            if let Some(&last) = self.handed_out.last() {
                assert!(
                    n > last,
                    "{n} handed out after {last}: out of order or twice"
                );
            }
            self.handed_out.push(n);
        }
        numbers
    }

    /// After a reopen: what the log has must lie between required and allowed.
    fn reopened(&mut self, log: DurableLog<BytesCodec>) {
        self.handed_out.clear();
        self.held.clear();
        self.log = Some(log);
        // Everything the log now holds is on disk: hand it all out and hold it.
        let mut present = BTreeSet::new();
        loop {
            let mut batch = Vec::new();
            let Some(claim) = self.log().drain_into(&mut batch, 1000) else {
                break;
            };
            let numbers: Vec<u64> = batch.iter().map(|item| number(item)).collect();
            for &n in &numbers {
                assert!(present.insert(n), "{n} handed out twice after reopening");
            }
            self.held.push((claim, numbers));
        }
        let missing: Vec<_> = self.required.difference(&present).collect();
        assert!(missing.is_empty(), "synced, unsettled, lost: {missing:?}");
        let extra: Vec<_> = present.difference(&self.allowed).collect();
        assert!(
            extra.is_empty(),
            "settled durably, handed out again: {extra:?}"
        );
        self.handed_out = present.iter().copied().collect();
        self.allowed = present.clone();
        self.required = present.clone();
        self.synced = present;
        self.unsynced.clear();
        self.settled_unsynced.clear();
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append(n) => {
                let items = values(self.next..self.next + n);
                match self.log().append(&items) {
                    Ok(appended) => {
                        assert_eq!(appended.count, *n);
                        for value in self.next..self.next + n {
                            self.allowed.insert(value);
                            self.unsynced.insert(value);
                        }
                    }
                    Err(error) => assert!(
                        self.log().stats().disk_error.is_some(),
                        "refused without a disk error: {error}"
                    ),
                }
                self.next += n;
            }
            Op::Flush => match self.log().flush(Duration::from_secs(10)) {
                Ok(()) => self.synced_ok(),
                Err(error) => panic!("flush failed on a healthy disk: {error}"),
            },
            Op::FailingFlush => {
                self.fs.inject(Fault::FailSyncs(1));
                let result = self.log().flush(Duration::from_secs(10));
                self.fs.clear_faults();
                // Nothing pending, nothing settled: nothing to write, so nothing fails.
                if result.is_ok() {
                    self.synced_ok();
                }
            }
            Op::Drain(max) => {
                let mut batch = Vec::new();
                if let Some(claim) = self.log().drain_into(&mut batch, *max) {
                    assert!(batch.len() <= *max);
                    let numbers = self.hand_out(&batch);
                    self.held.push((claim, numbers));
                } else {
                    // Nothing left means every synced, unsettled value was handed out.
                    let handed: BTreeSet<u64> = self.handed_out.iter().copied().collect();
                    let waiting: Vec<_> = self
                        .synced
                        .iter()
                        .filter(|n| self.allowed.contains(n) && !handed.contains(n))
                        .collect();
                    assert!(
                        waiting.is_empty(),
                        "synced but never handed out: {waiting:?}"
                    );
                }
            }
            Op::Settle(index) => {
                if !self.held.is_empty() {
                    let (claim, numbers) = self.held.remove(index % self.held.len());
                    self.log().settle(claim);
                    // Settled values are stored elsewhere: they need not come back (but may,
                    // until the settlement is synced).
                    for n in &numbers {
                        self.required.remove(n);
                    }
                    self.settled_unsynced.extend(numbers);
                }
            }
            Op::Crash(seed) => {
                let after = self.fs.crash(*seed);
                // The old process is gone: its log fails against the dead file system.
                drop(self.log.take());
                self.fs = after;
                let log = open_with(&self.fs, model_options());
                self.reopened(log);
            }
            Op::Restart => {
                let stats = self.log().close();
                assert_eq!(stats.lost_unsynced, 0);
                // A clean close syncs everything: all accepted values are required.
                self.synced_ok();
                drop(self.log.take());
                let log = open_with(&self.fs, model_options());
                assert_eq!(
                    log.recovery().corrupt_records,
                    0,
                    "a clean close leaves no damage"
                );
                self.reopened(log);
            }
        }
        assert_identity(self.log());
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_log_behaves_like_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut model = Model::new();
        for op in &ops {
            model.apply(op);
        }
        // Finally, a power cut: nothing synced and unsettled may be missing.
        model.apply(&Op::Crash(0));
    }
}
