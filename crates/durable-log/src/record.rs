//! The record frame: a fixed header with two checksums, then the payload. Pure functions over
//! bytes, no I/O, so the reader's parsing can be tested and fuzzed on exact bytes.

/// The first four bytes of every record; lets the reader find the next record after damage.
pub const RECORD_MAGIC: [u8; 4] = *b"DLR\x01";
/// Bytes before the payload.
pub const HEADER_LEN: usize = 40;
/// The largest payload a record may carry (a length above this is damage, not data).
pub const MAX_PAYLOAD_LEN: u32 = 16 << 20;

/// What a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// `count` values with ids `first_id .. first_id + count`, encoded by the log's codec.
    Values,
    /// `count` ranges of ids that are settled, each two little-endian u64s (start, end).
    Settled,
}

impl RecordKind {
    fn code(self) -> u8 {
        match self {
            RecordKind::Values => 1,
            RecordKind::Settled => 2,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(RecordKind::Values),
            2 => Some(RecordKind::Settled),
            _ => None,
        }
    }
}

/// A record's header, as checked by [`decode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Values or settled ranges.
    pub kind: RecordKind,
    /// The id of the first value (0 for settled records).
    pub first_id: u64,
    /// Values, or settled ranges, in the payload.
    pub count: u32,
    /// When the record was appended, microseconds since 1970 (UTC).
    pub appended_at_micros: i64,
    /// Payload bytes after the header.
    pub payload_len: u32,
}

impl RecordHeader {
    /// One past the last value id (`first_id` for settled records).
    pub fn end_id(&self) -> u64 {
        match self.kind {
            RecordKind::Values => self.first_id.saturating_add(u64::from(self.count)),
            RecordKind::Settled => self.first_id,
        }
    }

    /// Header plus payload.
    pub fn record_len(&self) -> usize {
        HEADER_LEN + self.payload_len as usize
    }
}

/// Why the bytes at an offset are not a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The bytes do not start with [`RECORD_MAGIC`]: not a record boundary.
    #[error("no record starts here (bad magic)")]
    BadMagic,
    /// The header's own checksum fails: its length cannot be trusted.
    #[error("the record header's checksum does not match")]
    BadHeaderChecksum,
    /// The header is intact but claims more than [`MAX_PAYLOAD_LEN`] bytes.
    #[error("the record header claims a payload of {0} bytes, more than allowed")]
    TooLarge(u32),
    /// The header is intact but names a kind this version does not know.
    #[error("the record has unknown kind {0}")]
    UnknownKind(u8),
    /// The header is intact, the payload's checksum fails; the whole record (of `record_len`
    /// bytes) can be skipped.
    #[error("the record's payload checksum does not match")]
    BadPayloadChecksum {
        /// Header plus payload, as the intact header says.
        record_len: usize,
    },
}

impl RecordError {
    /// How many bytes to skip to the next record, when the header is trustworthy; `None` when
    /// the reader has to search for the next record byte by byte.
    pub fn skip(&self) -> Option<usize> {
        match self {
            RecordError::BadPayloadChecksum { record_len } => Some(*record_len),
            _ => None,
        }
    }
}

/// Appends a record to `out`.
///
/// # Panics
///
/// If `payload` is longer than [`MAX_PAYLOAD_LEN`]: the log splits batches so that this
/// cannot happen.
pub fn encode(
    kind: RecordKind,
    first_id: u64,
    count: u32,
    appended_at_micros: i64,
    payload: &[u8],
    out: &mut Vec<u8>,
) {
    encode_with_checksum(
        kind,
        first_id,
        count,
        appended_at_micros,
        payload,
        crc32c::crc32c(payload),
        out,
    );
}

/// [`encode`] with the payload's CRC32C already computed (outside a lock).
pub(crate) fn encode_with_checksum(
    kind: RecordKind,
    first_id: u64,
    count: u32,
    appended_at_micros: i64,
    payload: &[u8],
    payload_crc: u32,
    out: &mut Vec<u8>,
) {
    let payload_len = u32::try_from(payload.len())
        .ok()
        .filter(|len| *len <= MAX_PAYLOAD_LEN)
        .expect("record payload longer than MAX_PAYLOAD_LEN");
    let mut header = [0u8; HEADER_LEN];
    header[0..4].copy_from_slice(&RECORD_MAGIC);
    header[4..8].copy_from_slice(&payload_len.to_le_bytes());
    header[8..16].copy_from_slice(&first_id.to_le_bytes());
    header[16..20].copy_from_slice(&count.to_le_bytes());
    header[20] = kind.code();
    // 21..24 reserved, zero.
    header[24..32].copy_from_slice(&appended_at_micros.to_le_bytes());
    header[32..36].copy_from_slice(&payload_crc.to_le_bytes());
    let header_crc = crc32c::crc32c(&header[..36]);
    header[36..40].copy_from_slice(&header_crc.to_le_bytes());
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Checks only the header at the start of `bytes` (at least [`HEADER_LEN`] of them).
/// `Ok(None)` when fewer bytes are given.
pub fn decode_header(bytes: &[u8]) -> Result<Option<RecordHeader>, RecordError> {
    let magic_len = bytes.len().min(RECORD_MAGIC.len());
    if bytes[..magic_len] != RECORD_MAGIC[..magic_len] {
        return Err(RecordError::BadMagic);
    }
    if bytes.len() < HEADER_LEN {
        return Ok(None);
    }
    let stored_crc = u32_at(bytes, 36);
    if crc32c::crc32c(&bytes[..36]) != stored_crc {
        return Err(RecordError::BadHeaderChecksum);
    }
    let payload_len = u32_at(bytes, 4);
    if payload_len > MAX_PAYLOAD_LEN {
        return Err(RecordError::TooLarge(payload_len));
    }
    let kind = RecordKind::from_code(bytes[20]).ok_or(RecordError::UnknownKind(bytes[20]))?;
    let mut micros = [0u8; 8];
    micros.copy_from_slice(&bytes[24..32]);
    Ok(Some(RecordHeader {
        kind,
        first_id: u64_at(bytes, 8),
        count: u32_at(bytes, 16),
        appended_at_micros: i64::from_le_bytes(micros),
        payload_len,
    }))
}

/// Decodes the record at the start of `bytes`.
///
/// `Ok(None)`: the bytes are a valid beginning of a record but too few (read more, or, at the
/// end of a file, a torn tail). `Ok(Some((header, payload)))`: an intact record of
/// `header.record_len()` bytes. `Err`: damage; see [`RecordError::skip`].
pub fn decode(bytes: &[u8]) -> Result<Option<(RecordHeader, &[u8])>, RecordError> {
    let Some(header) = decode_header(bytes)? else {
        return Ok(None);
    };
    let record_len = header.record_len();
    if bytes.len() < record_len {
        return Ok(None);
    }
    let payload = &bytes[HEADER_LEN..record_len];
    if crc32c::crc32c(payload) != u32_at(bytes, 32) {
        return Err(RecordError::BadPayloadChecksum { record_len });
    }
    Ok(Some((header, payload)))
}

/// The offset of the next byte in `bytes[from..]` where a record header with a valid checksum
/// starts, or where a record's beginning is cut off by the end of `bytes` (so that more data
/// may complete it). `None` when there is no candidate.
pub fn find_next_header(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at < bytes.len() {
        match memchr_magic(&bytes[at..]) {
            None => return None,
            Some(found) => {
                let candidate = at + found;
                match decode_header(&bytes[candidate..]) {
                    Ok(_) => return Some(candidate),
                    Err(RecordError::TooLarge(_)) | Err(RecordError::UnknownKind(_)) => {
                        // A checksummed header we cannot use: treat it as a boundary anyway,
                        // so the damage report points at it.
                        return Some(candidate);
                    }
                    Err(_) => at = candidate + 1,
                }
            }
        }
    }
    None
}

/// The first offset where the magic starts, or where a prefix of it ends `bytes`.
fn memchr_magic(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let first = rest.iter().position(|byte| *byte == RECORD_MAGIC[0])?;
        let candidate = at + first;
        let tail = &bytes[candidate..];
        let len = tail.len().min(RECORD_MAGIC.len());
        if tail[..len] == RECORD_MAGIC[..len] {
            return Some(candidate);
        }
        at = candidate + 1;
    }
    None
}

/// Encodes settled id ranges as a settled record's payload.
pub(crate) fn encode_ranges(ranges: &[std::ops::Range<u64>], out: &mut Vec<u8>) {
    for range in ranges {
        out.extend_from_slice(&range.start.to_le_bytes());
        out.extend_from_slice(&range.end.to_le_bytes());
    }
}

/// Decodes a settled record's payload; `None` if it is not `count` well-formed ranges.
pub(crate) fn decode_ranges(payload: &[u8], count: u32) -> Option<Vec<std::ops::Range<u64>>> {
    if payload.len() != count as usize * 16 {
        return None;
    }
    payload
        .chunks_exact(16)
        .map(|pair| {
            let start = u64_at(pair, 0);
            let end = u64_at(pair, 8);
            (start <= end).then_some(start..end)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut out = Vec::new();
        encode(
            RecordKind::Values,
            7,
            3,
            1_700_000_000_000_000,
            b"abc",
            &mut out,
        );
        out
    }

    #[test]
    fn header_layout_is_pinned() {
        let bytes = sample();
        assert_eq!(bytes.len(), HEADER_LEN + 3);
        assert_eq!(&bytes[0..4], b"DLR\x01");
        assert_eq!(&bytes[4..8], &3u32.to_le_bytes());
        assert_eq!(&bytes[8..16], &7u64.to_le_bytes());
        assert_eq!(&bytes[16..20], &3u32.to_le_bytes());
        assert_eq!(bytes[20], 1);
        assert_eq!(&bytes[21..24], &[0, 0, 0]);
        assert_eq!(&bytes[24..32], &1_700_000_000_000_000i64.to_le_bytes());
        assert_eq!(&bytes[32..36], &crc32c::crc32c(b"abc").to_le_bytes());
        assert_eq!(&bytes[36..40], &crc32c::crc32c(&bytes[..36]).to_le_bytes());
        assert_eq!(&bytes[40..], b"abc");
    }

    #[test]
    fn round_trips() {
        let bytes = sample();
        let (header, payload) = decode(&bytes).unwrap().unwrap();
        assert_eq!(header.kind, RecordKind::Values);
        assert_eq!(header.first_id, 7);
        assert_eq!(header.end_id(), 10);
        assert_eq!(header.appended_at_micros, 1_700_000_000_000_000);
        assert_eq!(payload, b"abc");
    }

    #[test]
    fn every_prefix_is_incomplete_not_damage() {
        let bytes = sample();
        for len in 0..bytes.len() {
            assert_eq!(decode(&bytes[..len]), Ok(None), "prefix of {len} bytes");
        }
    }

    #[test]
    fn a_flipped_payload_bit_is_skippable() {
        let mut bytes = sample();
        bytes[HEADER_LEN + 1] ^= 0x10;
        let error = decode(&bytes).unwrap_err();
        assert_eq!(error, RecordError::BadPayloadChecksum { record_len: 43 });
        assert_eq!(error.skip(), Some(43));
    }

    #[test]
    fn a_flipped_header_bit_is_not_trusted() {
        for at in 4..HEADER_LEN {
            let mut bytes = sample();
            bytes[at] ^= 0x01;
            let error = decode(&bytes).unwrap_err();
            assert_eq!(error, RecordError::BadHeaderChecksum, "byte {at}");
            assert_eq!(error.skip(), None);
        }
        let mut bytes = sample();
        bytes[0] = b'X';
        assert_eq!(decode(&bytes), Err(RecordError::BadMagic));
    }

    #[test]
    fn finds_the_next_header_after_garbage() {
        let mut bytes = b"garbage DLR but not a header".to_vec();
        let start = bytes.len();
        bytes.extend(sample());
        assert_eq!(find_next_header(&bytes, 0), Some(start));
        // A cut-off magic at the end is a candidate (more bytes may follow).
        assert_eq!(find_next_header(b"xxDL", 0), Some(2));
        assert_eq!(find_next_header(b"xxxx", 0), None);
    }

    #[test]
    fn settled_ranges_round_trip_and_refuse_bad_sizes() {
        let mut payload = Vec::new();
        encode_ranges(&[1..5, 9..9, 10..20], &mut payload);
        assert_eq!(decode_ranges(&payload, 3), Some(vec![1..5, 9..9, 10..20]));
        assert_eq!(decode_ranges(&payload, 2), None);
        let mut backwards = Vec::new();
        encode_ranges(&[std::ops::Range { start: 5, end: 1 }], &mut backwards);
        assert_eq!(decode_ranges(&backwards, 1), None);
    }
}
