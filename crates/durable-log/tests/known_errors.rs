//! One test per kind of damage the log claims to survive. Each checks that the log opens,
//! reports the damage with its segment and offset, hands out every intact value exactly
//! once, and keeps working.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use durable_log::io::{Fault, MemoryFs};
use durable_log::record::{self, RecordKind, HEADER_LEN};
use durable_log::segment::{segment_header, segment_name, SEGMENT_HEADER_LEN};
use durable_log::{BytesCodec, Corruption, CorruptionKind, DurableLog};

/// A log of three records (values 0..10, 10..20, 20..30) in segment 0, closed, nothing
/// settled. Returns the segment's path and the records' (offset, length).
fn three_records(fs: &MemoryFs) -> (PathBuf, Vec<(usize, usize)>) {
    let log = open(fs);
    for batch in 0..3 {
        append_synced(&log, &values(batch * 10..batch * 10 + 10));
    }
    log.close();
    drop(log);
    let path = common::dir().join(segment_name(0));
    let bytes = fs.read(&path).expect("segment 0");
    (path, record_spans(&bytes))
}

fn record_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut at = SEGMENT_HEADER_LEN;
    while let Ok(Some((header, _))) = record::decode(&bytes[at..]) {
        spans.push((at, header.record_len()));
        at += header.record_len();
    }
    assert_eq!(at, bytes.len(), "the segment is records back to back");
    spans
}

/// Opens, checks the report, drains everything, checks the values, appends more and checks
/// they survive a restart too.
fn check_recovers(fs: &MemoryFs, expected_damage: &[Corruption], expected_values: &[u64]) {
    let log = open(fs);
    assert_eq!(
        log.recovery().corrupt,
        expected_damage,
        "{:#?}",
        log.recovery()
    );
    assert_eq!(log.recovery().corrupt_records, expected_damage.len() as u64);
    let seen = drain_all(&log);
    assert_eq!(seen, expected_values);
    assert_identity(&log);
    // The log keeps working after damage.
    append_synced(&log, &values(1000..1005));
    assert_eq!(drain_unsettled(&log), vec![1000, 1001, 1002, 1003, 1004]);
    log.close();
    drop(log);
    let log = open(fs);
    assert_eq!(
        drain_unsettled(&log),
        vec![1000, 1001, 1002, 1003, 1004],
        "settled values are not handed out again; the new ones are"
    );
}

fn damage(segment: u64, offset: usize, len: usize, kind: CorruptionKind) -> Corruption {
    Corruption {
        segment,
        offset: offset as u64,
        len: len as u64,
        kind,
    }
}

fn range(ids: std::ops::Range<u64>) -> Vec<u64> {
    ids.collect()
}

#[test]
fn torn_tail_a_record_cut_short_is_cut_off() {
    let fs = MemoryFs::new();
    let (path, spans) = three_records(&fs);
    let (last, len) = spans[2];
    let bytes = fs.read(&path).unwrap();
    fs.put(&path, &bytes[..last + len - 5]);
    check_recovers(
        &fs,
        &[damage(0, last, len - 5, CorruptionKind::TornTail)],
        &range(0..20),
    );
}

#[test]
fn torn_tail_is_cut_off_the_file_and_not_reported_again() {
    let fs = MemoryFs::new();
    let (path, spans) = three_records(&fs);
    let (last, _) = spans[2];
    let bytes = fs.read(&path).unwrap();
    fs.put(&path, &bytes[..last + 7]);
    let log = open(&fs);
    assert_eq!(log.recovery().corrupt_records, 1);
    assert_eq!(
        fs.read(&path).unwrap().len(),
        last,
        "the torn tail is truncated"
    );
    log.close();
    drop(log);
    let log = open(&fs);
    assert_eq!(log.recovery().corrupt_records, 0);
    assert_eq!(drain_unsettled(&log), range(0..20));
}

#[test]
fn torn_header_fewer_bytes_than_a_header_at_the_end() {
    let fs = MemoryFs::new();
    let (path, spans) = three_records(&fs);
    let (last, _) = spans[2];
    let bytes = fs.read(&path).unwrap();
    fs.put(&path, &bytes[..last + HEADER_LEN - 1]);
    check_recovers(
        &fs,
        &[damage(0, last, HEADER_LEN - 1, CorruptionKind::TornTail)],
        &range(0..20),
    );
}

#[test]
fn zeroed_tail_the_size_was_written_but_not_the_data() {
    let fs = MemoryFs::new();
    let (path, spans) = three_records(&fs);
    let (last, len) = spans[2];
    fs.overwrite(&path, last, &vec![0u8; len]).unwrap();
    check_recovers(
        &fs,
        &[damage(0, last, len, CorruptionKind::TornTail)],
        &range(0..20),
    );
}

#[test]
fn bad_checksum_a_flipped_payload_bit_loses_only_that_record() {
    let fs = MemoryFs::new();
    let (path, spans) = three_records(&fs);
    let (middle, len) = spans[1];
    let mut bytes = fs.read(&path).unwrap();
    bytes[middle + HEADER_LEN + 3] ^= 0x04;
    fs.put(&path, &bytes);
    let mut expected = range(0..10);
    expected.extend(20..30);
    check_recovers(
        &fs,
        &[damage(0, middle, len, CorruptionKind::BadChecksum)],
        &expected,
    );
    let log = open(&fs);
    assert_eq!(log.recovery().values_lost, 0, "settled since");
}

#[test]
fn bad_checksum_counts_the_values_lost() {
    let fs = MemoryFs::new();
    let (path, spans) = three_records(&fs);
    let (middle, _) = spans[1];
    let mut bytes = fs.read(&path).unwrap();
    bytes[middle + HEADER_LEN + 3] ^= 0x04;
    fs.put(&path, &bytes);
    let log = open(&fs);
    assert_eq!(log.recovery().values_lost, 10);
    assert_eq!(log.recovery().unsettled, 20);
}

#[test]
fn bad_header_a_flipped_length_bit_resyncs_at_the_next_record() {
    let fs = MemoryFs::new();
    let (path, spans) = three_records(&fs);
    let (middle, len) = spans[1];
    let mut bytes = fs.read(&path).unwrap();
    bytes[middle + 5] ^= 0x01; // payload length: the header checksum fails
    fs.put(&path, &bytes);
    let mut expected = range(0..10);
    expected.extend(20..30);
    check_recovers(
        &fs,
        &[damage(0, middle, len, CorruptionKind::BadHeader)],
        &expected,
    );
}

#[test]
fn bad_header_the_record_magic_overwritten() {
    let fs = MemoryFs::new();
    let (path, spans) = three_records(&fs);
    let (first, len) = spans[0];
    fs.overwrite(&path, first, b"XXXX").unwrap();
    check_recovers(
        &fs,
        &[damage(0, first, len, CorruptionKind::BadHeader)],
        &range(10..30),
    );
    let log = open(&fs);
    assert_eq!(log.recovery().values_lost, 0, "settled by the first run");
}

#[test]
fn garbage_between_records_is_skipped_without_losing_values() {
    let fs = MemoryFs::new();
    let (path, spans) = three_records(&fs);
    let (second, _) = spans[1];
    let bytes = fs.read(&path).unwrap();
    let mut damaged = bytes[..second].to_vec();
    damaged.extend_from_slice(&[0x5A; 333]);
    damaged.extend_from_slice(&bytes[second..]);
    fs.put(&path, &damaged);
    let log = open(&fs);
    assert_eq!(log.recovery().values_lost, 0);
    drop(log);
    check_recovers(
        &fs,
        &[damage(0, second, 333, CorruptionKind::BadHeader)],
        &range(0..30),
    );
}

#[test]
fn impossible_length_with_a_valid_header_checksum_is_damage() {
    let fs = MemoryFs::new();
    let (path, spans) = three_records(&fs);
    let (middle, len) = spans[1];
    let mut bytes = fs.read(&path).unwrap();
    let header = &mut bytes[middle..middle + HEADER_LEN];
    header[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    let crc = crc32c::crc32c(&header[..36]);
    header[36..40].copy_from_slice(&crc.to_le_bytes());
    fs.put(&path, &bytes);
    let mut expected = range(0..10);
    expected.extend(20..30);
    check_recovers(
        &fs,
        &[damage(0, middle, len, CorruptionKind::BadHeader)],
        &expected,
    );
}

#[test]
fn unknown_record_kind_is_damage() {
    let fs = MemoryFs::new();
    let (path, spans) = three_records(&fs);
    let (middle, len) = spans[1];
    let mut bytes = fs.read(&path).unwrap();
    let header = &mut bytes[middle..middle + HEADER_LEN];
    header[20] = 9;
    let crc = crc32c::crc32c(&header[..36]);
    header[36..40].copy_from_slice(&crc.to_le_bytes());
    fs.put(&path, &bytes);
    let mut expected = range(0..10);
    expected.extend(20..30);
    check_recovers(
        &fs,
        &[damage(0, middle, len, CorruptionKind::BadHeader)],
        &expected,
    );
}

#[test]
fn damage_in_the_last_record_of_a_segment_is_a_torn_tail() {
    let fs = MemoryFs::new();
    let (path, spans) = three_records(&fs);
    let (last, len) = spans[2];
    fs.overwrite(&path, last + 9, &[0xFF]).unwrap();
    check_recovers(
        &fs,
        &[damage(0, last, len, CorruptionKind::TornTail)],
        &range(0..20),
    );
}

#[test]
fn bad_segment_header_its_records_are_still_read() {
    let fs = MemoryFs::new();
    let (path, _) = three_records(&fs);
    fs.overwrite(&path, 2, b"??").unwrap();
    check_recovers(
        &fs,
        &[damage(
            0,
            0,
            SEGMENT_HEADER_LEN,
            CorruptionKind::BadSegmentHeader,
        )],
        &range(0..30),
    );
}

#[test]
fn unsupported_version_the_segment_is_left_in_place_unread() {
    let fs = MemoryFs::new();
    let (path, _) = three_records(&fs);
    let mut header = segment_header();
    header[8..12].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32c::crc32c(&header[..12]);
    header[12..16].copy_from_slice(&crc.to_le_bytes());
    fs.overwrite(&path, 0, &header).unwrap();
    let before = fs.read(&path).unwrap();
    let log = open(&fs);
    assert_eq!(
        log.recovery().corrupt,
        [damage(
            0,
            0,
            before.len(),
            CorruptionKind::UnsupportedVersion(2)
        )]
    );
    append_synced(&log, &values(50..52));
    assert_eq!(drain_all(&log), [50, 51]);
    log.close();
    drop(log);
    assert_eq!(
        fs.read(&path).unwrap(),
        before,
        "left untouched (never deleted) for an operator"
    );
}

#[test]
fn empty_segment_file_created_before_a_crash_is_removed() {
    let fs = MemoryFs::new();
    three_records(&fs);
    let empty = common::dir().join(segment_name(7));
    fs.put(&empty, b"");
    let log = open(&fs);
    assert_eq!(log.recovery().corrupt_records, 0);
    assert_eq!(drain_unsettled(&log), range(0..30));
    assert!(fs.read(&empty).is_none());
}

#[test]
fn short_segment_header_is_a_torn_tail_and_removed() {
    let fs = MemoryFs::new();
    three_records(&fs);
    let short = common::dir().join(segment_name(7));
    fs.put(&short, &segment_header()[..5]);
    check_recovers(
        &fs,
        &[damage(7, 0, 5, CorruptionKind::TornTail)],
        &range(0..30),
    );
    assert!(fs.read(&short).is_none());
}

#[test]
fn undecodable_payload_with_a_good_checksum_is_found_at_read_time() {
    let fs = MemoryFs::new();
    let (path, spans) = three_records(&fs);
    // A record claiming 10 values whose payload holds one: written by a different codec.
    let (middle, len) = spans[1];
    let mut record = Vec::new();
    let mut payload = Vec::new();
    durable_log::Codec::encode(&BytesCodec, &[value(10)], &mut payload);
    payload.resize(len - HEADER_LEN, 0xEE);
    record::encode(RecordKind::Values, 10, 10, 0, &payload, &mut record);
    assert_eq!(record.len(), len);
    fs.overwrite(&path, middle, &record).unwrap();

    let log = open(&fs);
    assert_eq!(
        log.recovery().corrupt_records,
        0,
        "recovery checks checksums only"
    );
    let mut seen = drain_all(&log);
    seen.sort_unstable();
    let mut expected = range(0..10);
    expected.extend(20..30);
    assert_eq!(seen, expected);
    let stats = log.stats();
    assert_eq!(stats.corrupt_records, 1);
    assert_eq!(stats.lost_to_damage, 10);
    assert_identity(&log);
}

#[test]
fn damaged_settled_record_hands_those_values_out_again_rather_than_losing_them() {
    let fs = MemoryFs::new();
    let log = open(&fs);
    append_synced(&log, &values(0..10));
    assert_eq!(drain_all(&log), range(0..10));
    log.flush(Duration::from_secs(5)).unwrap(); // writes the settled record
    append_synced(&log, &values(10..12));
    log.close();
    drop(log);
    let path = common::dir().join(segment_name(0));
    let bytes = fs.read(&path).unwrap();
    let spans = record_spans(&bytes);
    let settled = spans
        .iter()
        .find(|(at, _)| {
            record::decode(&bytes[*at..]).unwrap().unwrap().0.kind == RecordKind::Settled
        })
        .copied()
        .expect("a settled record");
    let mut damaged = bytes.clone();
    damaged[settled.0 + HEADER_LEN] ^= 0xFF;
    fs.put(&path, &damaged);
    check_recovers(
        &fs,
        &[damage(0, settled.0, settled.1, CorruptionKind::BadChecksum)],
        &range(0..12),
    );
}

#[test]
fn missing_segment_deleted_by_hand_counts_the_values_missing() {
    let fs = MemoryFs::new();
    for batch in 0..3 {
        let log = open(&fs);
        append_synced(&log, &values(batch * 10..batch * 10 + 10));
        log.close();
    }
    assert_eq!(segments(&fs).len(), 3, "one segment per run");
    let middle = common::dir().join(segment_name(1));
    durable_log::io::Filesystem::remove(&fs, &middle).unwrap();
    let mut expected = range(0..10);
    expected.extend(20..30);
    check_recovers(
        &fs,
        &[damage(
            2,
            0,
            0,
            CorruptionKind::MissingValues { values: 10 },
        )],
        &expected,
    );
}

#[test]
fn record_written_twice_after_a_failed_sync_is_read_once() {
    let fs = MemoryFs::new();
    fs.create_dir_all_for_test();
    let mut first = segment_header().to_vec();
    let mut second = segment_header().to_vec();
    let mut payload = Vec::new();
    durable_log::Codec::encode(&BytesCodec, &values(0..10), &mut payload);
    record::encode(RecordKind::Values, 0, 10, 0, &payload, &mut first);
    record::encode(RecordKind::Values, 0, 10, 0, &payload, &mut second);
    let mut payload = Vec::new();
    durable_log::Codec::encode(&BytesCodec, &values(10..15), &mut payload);
    record::encode(RecordKind::Values, 10, 5, 0, &payload, &mut second);
    fs.put(&common::dir().join(segment_name(0)), &first);
    fs.put(&common::dir().join(segment_name(1)), &second);
    check_recovers(&fs, &[], &range(0..15));
}

#[test]
fn unreadable_segment_is_reported_and_left_for_the_next_start() {
    let fs = MemoryFs::new();
    three_records(&fs);
    fs.inject(Fault::FailReads);
    let log = open(&fs);
    assert_eq!(log.recovery().corrupt_records, 1);
    assert!(matches!(
        log.recovery().corrupt[0].kind,
        CorruptionKind::Unreadable(_)
    ));
    fs.clear_faults();
    append_synced(&log, &values(100..103));
    assert_eq!(drain_all(&log), [100, 101, 102]);
    log.close();
    drop(log);
    let log = open(&fs);
    assert_eq!(log.recovery().corrupt_records, 0);
    assert_eq!(
        drain_unsettled(&log),
        range(0..30),
        "readable again: nothing lost"
    );
}

#[test]
fn unknown_files_in_the_directory_are_ignored_and_named() {
    let fs = MemoryFs::new();
    three_records(&fs);
    fs.put(&common::dir().join("notes.txt"), b"operator's notes");
    let log = open(&fs);
    assert_eq!(log.recovery().ignored_files, ["notes.txt"]);
    assert_eq!(drain_unsettled(&log), range(0..30));
    drop(log);
    assert!(fs.read(&common::dir().join("notes.txt")).is_some());
}

#[test]
fn a_file_of_random_bytes_named_like_a_segment_never_stops_start_up() {
    let fs = MemoryFs::new();
    fs.create_dir_all_for_test();
    let mut rng = fastrand_bytes(99);
    let garbage: Vec<u8> = (0..100_000).map(|_| rng()).collect();
    fs.put(&common::dir().join(segment_name(3)), &garbage);
    let log: DurableLog<BytesCodec> = open(&fs);
    assert!(log.recovery().corrupt_records >= 1);
    assert_eq!(log.recovery().unsettled, 0);
    append_synced(&log, &values(0..3));
    assert_eq!(drain_all(&log), [0, 1, 2]);
}

fn fastrand_bytes(seed: u64) -> impl FnMut() -> u8 {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u8
    }
}

trait CreateDir {
    fn create_dir_all_for_test(&self);
}

impl CreateDir for MemoryFs {
    fn create_dir_all_for_test(&self) {
        durable_log::io::Filesystem::create_dir_all(self, &common::dir()).unwrap();
    }
}
