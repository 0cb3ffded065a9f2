//! Properties of the record reader over damaged files: truncated at random offsets, random
//! bytes flipped, or random bytes altogether. Recovery never panics and never refuses to
//! start, and every record that damage did not touch is handed out, once.
//! (`fuzz/` has the same checks as a cargo-fuzz target for longer runs.)

mod common;

use std::collections::BTreeSet;

use common::*;
use durable_log::io::MemoryFs;
use durable_log::record::{self, RecordKind};
use durable_log::segment::{segment_header, segment_name, SEGMENT_HEADER_LEN};
use durable_log::{BytesCodec, Codec};
use proptest::prelude::*;

/// A segment of `records` records of 1..=8 values each; returns the bytes and, per record,
/// its byte span and value numbers.
/// A record's byte span in the file and the value numbers it holds.
type Span = (std::ops::Range<usize>, Vec<u64>);

fn segment(records: &[u8]) -> (Vec<u8>, Vec<Span>) {
    let mut bytes = segment_header().to_vec();
    let mut spans = Vec::new();
    let mut next = 0u64;
    for &n in records {
        let n = u64::from(n % 8 + 1);
        let mut payload = Vec::new();
        BytesCodec.encode(&values(next..next + n), &mut payload);
        let start = bytes.len();
        record::encode(RecordKind::Values, next, n as u32, 0, &payload, &mut bytes);
        spans.push((start..bytes.len(), (next..next + n).collect()));
        next += n;
    }
    (bytes, spans)
}

fn recover(bytes: &[u8]) -> (Vec<u64>, durable_log::Recovery) {
    let fs = MemoryFs::new();
    fs.put(&dir().join(segment_name(0)), bytes);
    let log = open(&fs);
    let recovery = log.recovery().clone();
    let seen = drain_all(&log);
    assert_identity(&log);
    // Still works after whatever it found.
    append_synced(&log, &values(1_000_000..1_000_002));
    assert_eq!(drain_all(&log), [1_000_000, 1_000_001]);
    (seen, recovery)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_bytes_never_stop_start_up(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let (seen, _) = recover(&bytes);
        prop_assert!(seen.is_empty(), "values out of nowhere: {seen:?}");
    }

    #[test]
    fn random_bytes_after_a_valid_header_never_stop_start_up(
        tail in proptest::collection::vec(any::<u8>(), 0..4096)
    ) {
        let mut bytes = segment_header().to_vec();
        bytes.extend(tail);
        let (seen, _) = recover(&bytes);
        prop_assert!(seen.is_empty());
    }

    #[test]
    fn a_truncated_segment_keeps_every_whole_record(
        records in proptest::collection::vec(any::<u8>(), 1..40),
        cut in any::<proptest::sample::Index>(),
    ) {
        let (bytes, spans) = segment(&records);
        let cut = SEGMENT_HEADER_LEN + cut.index(bytes.len() - SEGMENT_HEADER_LEN + 1);
        let (seen, recovery) = recover(&bytes[..cut]);
        let expected: Vec<u64> = spans
            .iter()
            .filter(|(span, _)| span.end <= cut)
            .flat_map(|(_, numbers)| numbers.iter().copied())
            .collect();
        prop_assert_eq!(seen, expected);
        let torn = spans.iter().any(|(span, _)| span.start < cut && cut < span.end);
        prop_assert_eq!(recovery.corrupt_records, u64::from(torn));
    }

    #[test]
    fn flipped_bytes_lose_only_the_records_they_touch(
        records in proptest::collection::vec(any::<u8>(), 1..40),
        flips in proptest::collection::vec((any::<proptest::sample::Index>(), 1u8..=255), 1..6),
    ) {
        let (mut bytes, spans) = segment(&records);
        let mut touched = BTreeSet::new();
        for (at, mask) in &flips {
            let at = at.index(bytes.len());
            bytes[at] ^= mask;
            touched.insert(at);
        }
        let (seen, recovery) = recover(&bytes);
        let intact: BTreeSet<u64> = spans
            .iter()
            .filter(|(span, _)| !touched.iter().any(|at| span.contains(at)))
            .flat_map(|(_, numbers)| numbers.iter().copied())
            .collect();
        let written: BTreeSet<u64> = spans.iter().flat_map(|(_, n)| n.iter().copied()).collect();
        let seen_set: BTreeSet<u64> = seen.iter().copied().collect();
        prop_assert_eq!(seen.len(), seen_set.len(), "nothing twice");
        prop_assert!(seen_set.is_subset(&written), "nothing invented");
        let missing: Vec<_> = intact.difference(&seen_set).collect();
        prop_assert!(missing.is_empty(), "intact records lost: {:?}", missing);
        prop_assert!(recovery.corrupt_records >= 1);
    }
}
