//! How values become record payloads and back.

/// Turns a batch of values into a record payload and back. The log checksums and frames the
/// payload; the codec only has to be deterministic and refuse what it did not write.
pub trait Codec: Send + Sync + 'static {
    /// The value type.
    type Item: Send + 'static;

    /// Appends the encoding of `items` to `out`.
    fn encode(&self, items: &[Self::Item], out: &mut Vec<u8>);

    /// Decodes exactly `count` values from `payload` into `out`. On error `out` may hold part
    /// of them; the log discards those and counts the record as corrupt.
    fn decode(
        &self,
        payload: &[u8],
        count: usize,
        out: &mut Vec<Self::Item>,
    ) -> Result<(), DecodeError>;
}

/// A payload the codec cannot read (its checksum passed, so it was written so, by another
/// version or a bug).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("undecodable payload: {0}")]
pub struct DecodeError(pub String);

/// Byte strings, each stored with a little-endian u32 length. For tests and for embedders who
/// serialise their own values.
#[derive(Clone, Copy, Debug, Default)]
pub struct BytesCodec;

impl Codec for BytesCodec {
    type Item = Vec<u8>;

    fn encode(&self, items: &[Vec<u8>], out: &mut Vec<u8>) {
        for item in items {
            let len = u32::try_from(item.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&item[..len as usize]);
        }
    }

    fn decode(
        &self,
        payload: &[u8],
        count: usize,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), DecodeError> {
        let mut rest = payload;
        for index in 0..count {
            let (len, tail) = rest
                .split_first_chunk::<4>()
                .ok_or_else(|| DecodeError(format!("item {index}: length cut off")))?;
            let len = u32::from_le_bytes(*len) as usize;
            if tail.len() < len {
                return Err(DecodeError(format!("item {index}: bytes cut off")));
            }
            out.push(tail[..len].to_vec());
            rest = &tail[len..];
        }
        if !rest.is_empty() {
            return Err(DecodeError(format!(
                "{} bytes left after {count} items",
                rest.len()
            )));
        }
        Ok(())
    }
}

/// LEB128 varints and zigzag, shared by the codecs.
pub(crate) mod varint {
    /// Appends `value` as an unsigned LEB128 varint.
    pub(crate) fn put(out: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    /// Reads a varint from the front of `bytes`, advancing it.
    pub(crate) fn get(bytes: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = bytes.split_first()?;
            *bytes = rest;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return None;
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    pub(crate) fn zigzag(value: i64) -> u64 {
        ((value << 1) ^ (value >> 63)) as u64
    }

    pub(crate) fn unzigzag(value: u64) -> i64 {
        ((value >> 1) as i64) ^ -((value & 1) as i64)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn round_trips_edges() {
            for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
                let mut out = Vec::new();
                put(&mut out, value);
                let mut bytes = &out[..];
                assert_eq!(get(&mut bytes), Some(value));
                assert!(bytes.is_empty());
            }
            for value in [0i64, -1, 1, i64::MIN, i64::MAX] {
                assert_eq!(unzigzag(zigzag(value)), value);
            }
        }

        #[test]
        fn refuses_cut_off_and_overlong_varints() {
            assert_eq!(get(&mut &[0x80u8][..]), None);
            assert_eq!(get(&mut &[0xffu8; 11][..]), None);
            assert_eq!(
                get(&mut &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02][..]),
                None
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_refuse_damage() {
        let items = vec![b"one".to_vec(), Vec::new(), vec![0u8; 300]];
        let mut payload = Vec::new();
        BytesCodec.encode(&items, &mut payload);
        let mut back = Vec::new();
        BytesCodec.decode(&payload, 3, &mut back).unwrap();
        assert_eq!(back, items);
        assert!(BytesCodec.decode(&payload, 4, &mut Vec::new()).is_err());
        assert!(BytesCodec.decode(&payload, 2, &mut Vec::new()).is_err());
        assert!(BytesCodec
            .decode(&payload[..payload.len() - 1], 3, &mut Vec::new())
            .is_err());
    }
}
