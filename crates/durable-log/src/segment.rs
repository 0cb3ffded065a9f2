//! Segment files: names, the file header, and a cursor that reads records and steps over
//! damage.

use std::io;
use std::path::{Path, PathBuf};

use crate::io::ReadAt;
use crate::record::{self, RecordError, RecordHeader, HEADER_LEN};

/// The first bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"DLSEG\r\n\x1a";
/// The segment format this version writes and reads.
pub const SEGMENT_VERSION: u32 = 1;
/// Magic, version, CRC32C of both.
pub const SEGMENT_HEADER_LEN: usize = 16;
/// Segment files are named by a 20-digit number and this extension.
pub const SEGMENT_EXTENSION: &str = "seg";

/// How much the cursor reads from the file at once.
const READ_CHUNK: usize = 256 * 1024;

/// `00000000000000000042.seg`.
pub fn segment_name(number: u64) -> String {
    format!("{number:020}.{SEGMENT_EXTENSION}")
}

/// The number in a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The path of segment `number` in `dir`.
pub(crate) fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(segment_name(number))
}

/// The 16-byte file header.
pub fn segment_header() -> [u8; SEGMENT_HEADER_LEN] {
    let mut header = [0u8; SEGMENT_HEADER_LEN];
    header[..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    let crc = crc32c::crc32c(&header[..12]);
    header[12..16].copy_from_slice(&crc.to_le_bytes());
    header
}

/// What is wrong with a segment's file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeaderCheck {
    Good,
    /// Shorter than a header: created, then the crash came before the header was durable.
    Short,
    /// Damaged (magic or checksum); records may still be readable after it.
    Damaged,
    /// Intact but of a format version this build cannot read.
    Unsupported(u32),
}

pub(crate) fn check_segment_header(bytes: &[u8]) -> HeaderCheck {
    if bytes.len() < SEGMENT_HEADER_LEN {
        return HeaderCheck::Short;
    }
    let crc = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    if bytes[..8] != SEGMENT_MAGIC || crc32c::crc32c(&bytes[..12]) != crc {
        return HeaderCheck::Damaged;
    }
    match u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) {
        SEGMENT_VERSION => HeaderCheck::Good,
        other => HeaderCheck::Unsupported(other),
    }
}

/// One step of a [`Cursor`].
#[derive(Debug)]
pub(crate) enum Step<'a> {
    /// An intact record at `offset`.
    Record {
        offset: u64,
        header: RecordHeader,
        payload: &'a [u8],
    },
    /// `len` bytes at `offset` are not records; reading goes on after them. `header` is the
    /// record's intact header when only its payload is damaged.
    Damaged {
        offset: u64,
        len: u64,
        error: RecordError,
        header: Option<RecordHeader>,
    },
    /// From `offset` to the end of a finished segment there is no complete record: a write
    /// cut short.
    TornTail { offset: u64, len: u64 },
    /// Nothing more before the limit.
    End,
}

/// Reads records from a segment file, in order, up to a limit that may grow (the active
/// segment grows as the log syncs).
pub(crate) struct Cursor {
    file: Box<dyn ReadAt>,
    /// File offset of `buf[0]`.
    buf_start: u64,
    buf: Vec<u8>,
    /// The next offset to read.
    offset: u64,
}

impl Cursor {
    /// A cursor at `offset` (after the segment header, usually).
    pub(crate) fn new(file: Box<dyn ReadAt>, offset: u64) -> Self {
        Cursor {
            file,
            buf_start: offset,
            buf: Vec::new(),
            offset,
        }
    }

    /// The next offset to read.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Makes `buf` hold the file's bytes from `from` to `from + want` (fewer at the end of the
    /// file or at `limit`). Returns how many it holds from `from`.
    fn fill(&mut self, from: u64, want: usize, limit: u64) -> io::Result<usize> {
        let want = want.min(usize::try_from(limit.saturating_sub(from)).unwrap_or(usize::MAX));
        let buf_end = self.buf_start + self.buf.len() as u64;
        if from < self.buf_start || from > buf_end {
            self.buf.clear();
            self.buf_start = from;
        } else if from > self.buf_start {
            let drop = (from - self.buf_start) as usize;
            self.buf.drain(..drop);
            self.buf_start = from;
        }
        while self.buf.len() < want {
            let have = self.buf.len();
            let target = want.max(
                READ_CHUNK.min(usize::try_from(limit.saturating_sub(from)).unwrap_or(usize::MAX)),
            );
            self.buf.resize(target, 0);
            let read = self
                .file
                .read_at(self.buf_start + have as u64, &mut self.buf[have..])
                .inspect_err(|_| self.buf.truncate(have))?;
            self.buf.truncate(have + read);
            if read == 0 {
                break;
            }
        }
        Ok(self.buf.len().min(want))
    }

    /// The next record, damage or end before `limit`. `finished`: the segment will not grow,
    /// so an incomplete record before `limit` is a torn tail rather than data still to come.
    pub(crate) fn next(&mut self, limit: u64, finished: bool) -> io::Result<Step<'_>> {
        let offset = self.offset;
        if offset >= limit {
            return Ok(Step::End);
        }
        let have = self.fill(offset, HEADER_LEN, limit)?;
        let at = (offset - self.buf_start) as usize;
        let header = record::decode_header(&self.buf[at..at + have]);
        let header = match header {
            Ok(Some(header)) => header,
            Ok(None) => return Ok(self.incomplete(offset, limit, finished)),
            Err(error) => return self.resync(offset, limit, finished, error),
        };
        let record_len = header.record_len();
        let have = self.fill(offset, record_len, limit)?;
        if have < record_len {
            return Ok(self.incomplete(offset, limit, finished));
        }
        let at = (offset - self.buf_start) as usize;
        match record::decode(&self.buf[at..at + record_len]) {
            Ok(Some((header, _))) => {
                self.offset = offset + record_len as u64;
                Ok(Step::Record {
                    offset,
                    header,
                    payload: &self.buf[at + HEADER_LEN..at + record_len],
                })
            }
            Ok(None) => Ok(self.incomplete(offset, limit, finished)),
            Err(error) => match error.skip() {
                Some(len) => {
                    self.offset = offset + len as u64;
                    Ok(Step::Damaged {
                        offset,
                        len: len as u64,
                        error,
                        header: Some(header),
                    })
                }
                None => self.resync(offset, limit, finished, error),
            },
        }
    }

    /// Fewer bytes than a record before `limit` (or the end of the file).
    fn incomplete(&mut self, offset: u64, limit: u64, finished: bool) -> Step<'static> {
        if !finished {
            return Step::End;
        }
        // The file may be shorter than `limit`; the tail is what is really there.
        let file_end = self.file.file_len().unwrap_or(limit).min(limit);
        self.offset = limit;
        if file_end <= offset {
            return Step::End;
        }
        Step::TornTail {
            offset,
            len: file_end - offset,
        }
    }

    /// Searches for the next intact header after damage at `offset`.
    fn resync(
        &mut self,
        offset: u64,
        limit: u64,
        finished: bool,
        error: RecordError,
    ) -> io::Result<Step<'static>> {
        let mut from = offset + 1;
        let found = loop {
            if from >= limit {
                break None;
            }
            let want = READ_CHUNK.min(usize::try_from(limit - from).unwrap_or(usize::MAX));
            let have = self.fill(from, want, limit)?;
            if have == 0 {
                break None;
            }
            // Nothing follows this window: the file or the limit ends it.
            let last_window = have < want || from + have as u64 >= limit;
            let at = (from - self.buf_start) as usize;
            match record::find_next_header(&self.buf[at..at + have], 0) {
                Some(index) => {
                    let candidate = from + index as u64;
                    let cut_off = candidate + HEADER_LEN as u64 > from + have as u64;
                    if cut_off && !last_window && index > 0 {
                        // The window ends inside the candidate's header: look again from it.
                        from = candidate;
                        continue;
                    }
                    break Some(candidate);
                }
                None if last_window => break None,
                None => from += have as u64,
            }
        };
        match found {
            Some(next) if next > offset => {
                self.offset = next;
                Ok(Step::Damaged {
                    offset,
                    len: next - offset,
                    error,
                    header: None,
                })
            }
            _ if finished => Ok(self.incomplete(offset, limit, true)),
            _ => {
                // Damage up to the limit of a growing segment: the next record starts there.
                self.offset = limit;
                Ok(Step::Damaged {
                    offset,
                    len: limit - offset,
                    error,
                    header: None,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{Filesystem, MemoryFs};
    use crate::record::RecordKind;

    #[test]
    fn names_round_trip_and_others_are_refused() {
        assert_eq!(segment_name(42), "00000000000000000042.seg");
        assert_eq!(parse_segment_name("00000000000000000042.seg"), Some(42));
        for other in [
            "42.seg",
            "0000000000000000004x.seg",
            "00000000000000000042.log",
            "LOCK",
        ] {
            assert_eq!(parse_segment_name(other), None, "{other}");
        }
    }

    #[test]
    fn header_checks() {
        let header = segment_header();
        assert_eq!(check_segment_header(&header), HeaderCheck::Good);
        assert_eq!(check_segment_header(&header[..10]), HeaderCheck::Short);
        let mut damaged = header;
        damaged[3] ^= 1;
        assert_eq!(check_segment_header(&damaged), HeaderCheck::Damaged);
        let mut newer = header;
        newer[8..12].copy_from_slice(&2u32.to_le_bytes());
        let crc = crc32c::crc32c(&newer[..12]);
        newer[12..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(check_segment_header(&newer), HeaderCheck::Unsupported(2));
    }

    fn cursor_over(bytes: &[u8]) -> Cursor {
        let fs = MemoryFs::new();
        let path = Path::new("/f");
        fs.put(path, bytes);
        Cursor::new(fs.open_read(path).unwrap(), 0)
    }

    fn records(n: u64, payload_len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for id in 0..n {
            record::encode(
                RecordKind::Values,
                id,
                1,
                0,
                &vec![id as u8; payload_len],
                &mut out,
            );
        }
        out
    }

    #[test]
    fn reads_records_larger_than_a_chunk() {
        let bytes = records(3, READ_CHUNK + 100);
        let mut cursor = cursor_over(&bytes);
        for id in 0..3 {
            match cursor.next(bytes.len() as u64, true).unwrap() {
                Step::Record {
                    header, payload, ..
                } => {
                    assert_eq!(header.first_id, id);
                    assert_eq!(payload.len(), READ_CHUNK + 100);
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            cursor.next(bytes.len() as u64, true).unwrap(),
            Step::End
        ));
    }

    #[test]
    fn steps_over_garbage_between_records() {
        let mut bytes = records(1, 10);
        let garbage_at = bytes.len() as u64;
        bytes.extend_from_slice(&[0xAB; 1000]);
        bytes.extend(records(1, 10));
        let mut cursor = cursor_over(&bytes);
        let limit = bytes.len() as u64;
        assert!(matches!(
            cursor.next(limit, true).unwrap(),
            Step::Record { .. }
        ));
        match cursor.next(limit, true).unwrap() {
            Step::Damaged {
                offset,
                len,
                header,
                ..
            } => {
                assert_eq!(header, None);
                assert_eq!(offset, garbage_at);
                assert_eq!(len, 1000);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            cursor.next(limit, true).unwrap(),
            Step::Record { .. }
        ));
        assert!(matches!(cursor.next(limit, true).unwrap(), Step::End));
    }

    #[test]
    fn a_cut_off_record_is_a_torn_tail_only_when_finished() {
        let bytes = records(2, 10);
        let cut = &bytes[..bytes.len() - 3];
        let mut cursor = cursor_over(cut);
        let limit = cut.len() as u64;
        assert!(matches!(
            cursor.next(limit, false).unwrap(),
            Step::Record { .. }
        ));
        assert!(matches!(cursor.next(limit, false).unwrap(), Step::End));
        match cursor.next(limit, true).unwrap() {
            Step::TornTail { offset, len } => {
                assert_eq!(offset, 50);
                assert_eq!(len, 47);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(cursor.next(limit, true).unwrap(), Step::End));
    }
}
