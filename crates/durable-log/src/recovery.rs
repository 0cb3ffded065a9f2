//! Opening a log: read every segment, skip and report damage, work out what is unsettled.

use std::collections::HashSet;
use std::io;
use std::ops::Range;
use std::path::Path;
use std::time::Instant;

use crate::io::Filesystem;
use crate::ledger::SettledSet;
use crate::options::{Corruption, CorruptionKind, Recovery};
use crate::record::{self, RecordError, RecordKind};
use crate::segment::{
    check_segment_header, parse_segment_name, segment_path, Cursor, HeaderCheck, Step,
    SEGMENT_HEADER_LEN,
};
use crate::state::SegmentInfo;

/// The most damage entries kept in the report (all are counted).
const MAX_REPORTED: usize = 1000;

/// Ids of one value record, as recovery saw it.
struct IdRange {
    ids: Range<u64>,
    /// The record's payload is damaged: its values are lost.
    lost: bool,
    /// Damage came just before it, so missing ids before it are that damage's values.
    after_damage: bool,
}

/// What the log starts from.
pub(crate) struct Recovered {
    pub(crate) segments: Vec<SegmentInfo>,
    pub(crate) settled: SettledSet,
    pub(crate) next_id: u64,
    pub(crate) next_segment: u64,
    pub(crate) report: Recovery,
    /// Damage already reported, by (segment, offset), so the reader does not count it twice.
    pub(crate) known_damage: HashSet<(u64, u64)>,
}

struct Scan<'a> {
    fs: &'a dyn Filesystem,
    dir: &'a Path,
    report: Recovery,
    known_damage: HashSet<(u64, u64)>,
    settled: SettledSet,
    /// Value id ranges in log order.
    ranges: Vec<IdRange>,
    /// Damage was found since the last intact value record: a gap in ids is explained.
    damaged_since_record: bool,
    max_end: u64,
    settled_max: u64,
}

impl Scan<'_> {
    fn damage(&mut self, segment: u64, offset: u64, len: u64, kind: CorruptionKind) {
        let corruption = Corruption {
            segment,
            offset,
            len,
            kind,
        };
        log::warn!("Durable log recovery: {corruption}");
        self.damaged_since_record = true;
        self.known_damage.insert((segment, offset));
        self.report.corrupt_records += 1;
        if self.report.corrupt.len() < MAX_REPORTED {
            self.report.corrupt.push(corruption);
        }
    }

    /// Reads one segment; `None` when it is not to be used (left in place or removed).
    fn segment(&mut self, number: u64, file_len: u64) -> Option<SegmentInfo> {
        let path = segment_path(self.dir, number);
        if file_len < SEGMENT_HEADER_LEN as u64 {
            // Created, then the crash came before its header was durable: nothing in it.
            if file_len > 0 {
                self.damage(number, 0, file_len, CorruptionKind::TornTail);
            }
            if let Err(error) = self.fs.remove(&path) {
                log::warn!(
                    "Cannot remove the empty segment {}: {error}",
                    path.display()
                );
            }
            return None;
        }
        let file = match self.fs.open_read(&path) {
            Ok(file) => file,
            Err(error) => {
                self.damage(
                    number,
                    0,
                    file_len,
                    CorruptionKind::Unreadable(error.to_string()),
                );
                return None;
            }
        };
        let mut header = [0u8; SEGMENT_HEADER_LEN];
        let header_read = read_exact_at(&*file, &mut header);
        match header_read.map(|()| check_segment_header(&header)) {
            Ok(HeaderCheck::Good) => {}
            Ok(HeaderCheck::Damaged) => self.damage(
                number,
                0,
                SEGMENT_HEADER_LEN as u64,
                CorruptionKind::BadSegmentHeader,
            ),
            Ok(HeaderCheck::Unsupported(version)) => {
                self.damage(
                    number,
                    0,
                    file_len,
                    CorruptionKind::UnsupportedVersion(version),
                );
                return None;
            }
            Ok(HeaderCheck::Short) => return None,
            Err(error) => {
                self.damage(
                    number,
                    0,
                    file_len,
                    CorruptionKind::Unreadable(error.to_string()),
                );
                return None;
            }
        }
        let start_id = self.max_end;
        let mut info = SegmentInfo {
            number,
            start_id,
            end_id: start_id,
            readable_len: file_len,
            file_len,
            finished: true,
            first_micros: None,
        };
        let mut has_values = false;
        let mut cursor = Cursor::new(file, SEGMENT_HEADER_LEN as u64);
        loop {
            let step = match cursor.next(file_len, true) {
                Ok(step) => step,
                Err(error) => {
                    let offset = cursor.offset();
                    self.damage(
                        number,
                        offset,
                        file_len - offset,
                        CorruptionKind::Unreadable(error.to_string()),
                    );
                    info.readable_len = offset;
                    break;
                }
            };
            match step {
                Step::End => break,
                Step::Record {
                    offset,
                    header,
                    payload,
                } => match header.kind {
                    RecordKind::Values => {
                        let end = header.end_id();
                        info.first_micros.get_or_insert(header.appended_at_micros);
                        if end <= self.max_end {
                            // Written twice (a sync failed and the batch went to a new
                            // segment): the first copy counts.
                            continue;
                        }
                        let from = header.first_id.max(self.max_end);
                        if !has_values {
                            // Ids before the segment's first value belong to older segments
                            // (or were lost, which the gap check counts).
                            info.start_id = from;
                            has_values = true;
                        }
                        self.push_range(from..end, false);
                        info.end_id = end;
                    }
                    RecordKind::Settled => match record::decode_ranges(payload, header.count) {
                        Some(ranges) => {
                            for range in ranges {
                                self.settled_max = self.settled_max.max(range.end);
                                self.settled.insert(range);
                            }
                        }
                        None => self.damage(
                            number,
                            offset,
                            header.record_len() as u64,
                            CorruptionKind::Undecodable("malformed settled ranges".into()),
                        ),
                    },
                },
                Step::Damaged {
                    offset,
                    len,
                    error,
                    header,
                } => {
                    let kind = match error {
                        RecordError::BadPayloadChecksum { .. } => CorruptionKind::BadChecksum,
                        _ => CorruptionKind::BadHeader,
                    };
                    self.damage(number, offset, len, kind);
                    // An intact header says which values were lost.
                    if let Some(header) = header.filter(|h| h.kind == RecordKind::Values) {
                        let end = header.end_id();
                        if end > self.max_end {
                            let from = header.first_id.max(self.max_end);
                            if !has_values {
                                info.start_id = from;
                                has_values = true;
                            }
                            self.push_range(from..end, true);
                            info.end_id = end;
                        }
                    }
                }
                Step::TornTail { offset, len } => {
                    self.damage(number, offset, len, CorruptionKind::TornTail);
                    // Cut it off, so the next start does not report it again and appends
                    // never follow garbage.
                    match self.fs.truncate(&path, offset) {
                        Ok(()) => info.file_len = offset,
                        Err(error) => log::warn!(
                            "Cannot cut the torn tail off {}: {error}; it is skipped",
                            path.display()
                        ),
                    }
                    info.readable_len = offset;
                    break;
                }
            }
        }
        Some(info)
    }
}

impl Scan<'_> {
    fn push_range(&mut self, ids: Range<u64>, lost: bool) {
        self.max_end = ids.end;
        // Damage before this record explains a gap before it, not one after it.
        self.ranges.push(IdRange {
            ids,
            lost,
            after_damage: self.damaged_since_record,
        });
        self.damaged_since_record = false;
    }
}

fn read_exact_at(file: &dyn crate::io::ReadAt, buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(done as u64, &mut buf[done..])? {
            0 => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            n => done += n,
        }
    }
    Ok(())
}

/// Reads the log in `dir` (which exists and is locked).
pub(crate) fn recover(fs: &dyn Filesystem, dir: &Path) -> io::Result<Recovered> {
    let started = Instant::now();
    let mut numbers = Vec::new();
    let mut ignored = Vec::new();
    for entry in fs.list(dir)? {
        match parse_segment_name(&entry.name) {
            Some(number) => numbers.push((number, entry.len)),
            None if entry.name == crate::io::LOCK_FILE => {}
            None => ignored.push(entry.name),
        }
    }
    numbers.sort_unstable();
    ignored.sort();
    for name in &ignored {
        log::warn!(
            "Durable log {}: ignoring {name}, which is not a segment file",
            dir.display()
        );
    }
    let next_segment = numbers.last().map_or(0, |(number, _)| number + 1);
    let mut scan = Scan {
        fs,
        dir,
        report: Recovery {
            ignored_files: ignored,
            ..Recovery::default()
        },
        known_damage: HashSet::new(),
        settled: SettledSet::new(0),
        ranges: Vec::new(),
        damaged_since_record: false,
        max_end: 0,
        settled_max: 0,
    };
    let mut segments = Vec::new();
    for (number, len) in numbers {
        if let Some(info) = scan.segment(number, len) {
            segments.push(info);
        }
    }
    // Ids below the oldest value still on disk were settled (their segments deleted).
    let next_id = scan.max_end.max(scan.settled_max);
    let lowest = scan.ranges.first().map_or(next_id, |range| range.ids.start);
    let mut settled = std::mem::replace(&mut scan.settled, SettledSet::new(0));
    settled.insert(0..lowest);
    // Ids missing between records, and records whose payload is damaged, are values lost
    // to damage: count them and settle them.
    let mut expected = lowest;
    let mut unsettled = 0;
    let ranges = std::mem::take(&mut scan.ranges);
    for range in &ranges {
        let ids = range.ids.clone();
        if ids.start > expected {
            let gap = expected..ids.start;
            let lost = (gap.end - gap.start) - settled.count_in(gap.clone());
            if lost > 0 {
                scan.report.values_lost += lost;
                if !range.after_damage {
                    // Nothing damaged explains it: a segment file is missing.
                    let segment = segments
                        .iter()
                        .find(|info| info.start_id <= ids.start && ids.start < info.end_id)
                        .map_or(0, |info| info.number);
                    scan.damage(
                        segment,
                        0,
                        0,
                        CorruptionKind::MissingValues { values: lost },
                    );
                }
            }
            settled.insert(gap);
        }
        let settled_here = settled.count_in(ids.clone());
        if range.lost {
            scan.report.values_lost += (ids.end - ids.start) - settled_here;
            settled.insert(ids.clone());
        } else {
            unsettled += (ids.end - ids.start) - settled_here;
        }
        expected = ids.end;
    }
    let bytes = segments.iter().map(|info| info.file_len).sum();
    let mut report = scan.report;
    report.segments = segments.len();
    report.bytes = bytes;
    report.unsettled = unsettled;
    report.duration = started.elapsed();
    Ok(Recovered {
        next_id,
        segments,
        settled,
        next_segment,
        report,
        known_damage: scan.known_damage,
    })
}
