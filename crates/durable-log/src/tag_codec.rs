//! The codec for PLC tag values.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::DateTime;
use tag_model::{Quality, TagValue};

use crate::codec::{varint, Codec, DecodeError};

/// Distinct codes and addresses remembered across records; past this the cache starts over.
const INTERN_LIMIT: usize = 65_536;
/// Integers with a magnitude up to this are exact in an f64.
const EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// Encodes [`TagValue`]s in about 8 to 16 bytes each. The payload layout:
///
/// ```text
/// payload := strings values
/// strings := varint n, n x (varint byte_len, UTF-8 bytes)   PLC codes and tag addresses, once each
/// value   := varint plc_index, varint tag_index,
///            varint zigzag(timestamp_us - previous timestamp_us)   (the first is taken from 0)
///            u8 flags                                        bits 0-1 quality: 0 GOOD, 1 BAD, 2 UNCERTAIN
///                                                            bits 2-3 value: 0 absent, 1 f64, 2 integer
///            [f64 little-endian | varint zigzag(integer)]
/// ```
///
/// Whole numbers up to 2^53 (most PLC registers) are stored as varints, so an INT16 reading
/// takes one to three bytes instead of eight. Decoding validates every value as
/// [`TagValue::new`] does, and shares one `Arc<str>` per distinct code and address.
#[derive(Default)]
pub struct TagValueCodec {
    interned: Mutex<HashSet<Arc<str>>>,
}

impl TagValueCodec {
    /// A codec with an empty string cache.
    pub fn new() -> Self {
        TagValueCodec::default()
    }
}

impl std::fmt::Debug for TagValueCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TagValueCodec")
    }
}

fn quality_code(quality: Quality) -> u8 {
    match quality {
        Quality::Good => 0,
        Quality::Bad => 1,
        Quality::Uncertain => 2,
    }
}

impl Codec for TagValueCodec {
    type Item = TagValue;

    fn encode(&self, items: &[TagValue], out: &mut Vec<u8>) {
        let mut index: HashMap<&str, u64> = HashMap::new();
        let mut strings: Vec<&str> = Vec::new();
        let mut refs: Vec<(u64, u64)> = Vec::with_capacity(items.len());
        // Values from one poll share their PLC code's Arc: skip the hash for a repeat.
        let mut last_plc: Option<(*const u8, u64)> = None;
        for item in items {
            let plc_ptr = item.plc_code().as_ptr();
            let plc = match last_plc {
                Some((ptr, at)) if ptr == plc_ptr => at,
                _ => {
                    let at = *index.entry(item.plc_code()).or_insert_with(|| {
                        strings.push(item.plc_code());
                        strings.len() as u64 - 1
                    });
                    last_plc = Some((plc_ptr, at));
                    at
                }
            };
            let tag = *index.entry(item.tag_address()).or_insert_with(|| {
                strings.push(item.tag_address());
                strings.len() as u64 - 1
            });
            refs.push((plc, tag));
        }
        varint::put(out, strings.len() as u64);
        for text in &strings {
            varint::put(out, text.len() as u64);
            out.extend_from_slice(text.as_bytes());
        }
        let mut previous = 0i64;
        for (item, (plc, tag)) in items.iter().zip(refs) {
            varint::put(out, plc);
            varint::put(out, tag);
            let micros = item.timestamp().and_utc().timestamp_micros();
            varint::put(out, varint::zigzag(micros.wrapping_sub(previous)));
            previous = micros;
            let quality = quality_code(item.quality());
            match item.value() {
                None => out.push(quality),
                Some(number)
                    if number.fract() == 0.0
                        && number.abs() <= EXACT_INTEGER
                        && !(number == 0.0 && number.is_sign_negative()) =>
                {
                    out.push(quality | 2 << 2);
                    varint::put(out, varint::zigzag(number as i64));
                }
                Some(number) => {
                    out.push(quality | 1 << 2);
                    out.extend_from_slice(&number.to_le_bytes());
                }
            }
        }
    }

    fn decode(
        &self,
        payload: &[u8],
        count: usize,
        out: &mut Vec<TagValue>,
    ) -> Result<(), DecodeError> {
        let fail = |what: &str| DecodeError(what.to_owned());
        let mut bytes = payload;
        let n = varint::get(&mut bytes).ok_or_else(|| fail("string count cut off"))?;
        // Each string takes at least one byte: a larger count is damage, not a reason to
        // allocate.
        if n > bytes.len() as u64 {
            return Err(fail("string count larger than the payload"));
        }
        let mut strings: Vec<Arc<str>> = Vec::with_capacity(n as usize);
        {
            let mut interned = self.interned.lock().unwrap_or_else(PoisonError::into_inner);
            if interned.len() > INTERN_LIMIT {
                interned.clear();
            }
            for _ in 0..n {
                let len = varint::get(&mut bytes).ok_or_else(|| fail("string length cut off"))?;
                if len > bytes.len() as u64 {
                    return Err(fail("string cut off"));
                }
                let (text, rest) = bytes.split_at(len as usize);
                bytes = rest;
                let text = std::str::from_utf8(text).map_err(|_| fail("a string is not UTF-8"))?;
                let shared = match interned.get(text) {
                    Some(shared) => Arc::clone(shared),
                    None => {
                        let shared: Arc<str> = Arc::from(text);
                        interned.insert(Arc::clone(&shared));
                        shared
                    }
                };
                strings.push(shared);
            }
        }
        let lookup = |at: u64| -> Result<&Arc<str>, DecodeError> {
            usize::try_from(at)
                .ok()
                .and_then(|at| strings.get(at))
                .ok_or_else(|| fail("string index out of range"))
        };
        // Each value takes at least four bytes.
        if count > bytes.len() / 4 {
            return Err(fail("more values than the payload can hold"));
        }
        let mut previous = 0i64;
        out.reserve(count);
        for _ in 0..count {
            let plc = lookup(varint::get(&mut bytes).ok_or_else(|| fail("value cut off"))?)?;
            let tag = lookup(varint::get(&mut bytes).ok_or_else(|| fail("value cut off"))?)?;
            let delta = varint::get(&mut bytes).ok_or_else(|| fail("timestamp cut off"))?;
            let micros = previous.wrapping_add(varint::unzigzag(delta));
            previous = micros;
            let timestamp = DateTime::from_timestamp_micros(micros)
                .ok_or_else(|| fail("timestamp out of range"))?
                .naive_utc();
            let (&flags, rest) = bytes.split_first().ok_or_else(|| fail("flags cut off"))?;
            bytes = rest;
            let quality = match flags & 0b11 {
                0 => Quality::Good,
                1 => Quality::Bad,
                2 => Quality::Uncertain,
                _ => return Err(fail("unknown quality code")),
            };
            let value = match flags >> 2 {
                0 => None,
                1 => {
                    let (number, rest) = bytes
                        .split_first_chunk::<8>()
                        .ok_or_else(|| fail("value cut off"))?;
                    bytes = rest;
                    Some(f64::from_le_bytes(*number))
                }
                2 => {
                    let integer = varint::get(&mut bytes).ok_or_else(|| fail("value cut off"))?;
                    Some(varint::unzigzag(integer) as f64)
                }
                _ => return Err(fail("unknown value form")),
            };
            let value = TagValue::new(timestamp, Arc::clone(plc), Arc::clone(tag), value, quality)
                .map_err(|error| DecodeError(error.to_string()))?;
            out.push(value);
        }
        if !bytes.is_empty() {
            return Err(fail("bytes left after the last value"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn value(micros: u32, plc: &str, tag: &str, number: Option<f64>, quality: Quality) -> TagValue {
        let at = NaiveDate::from_ymd_opt(2025, 11, 2)
            .unwrap()
            .and_hms_micro_opt(14, 30, 45, micros)
            .unwrap();
        TagValue::new(at, plc, tag, number, quality).unwrap()
    }

    fn round_trip(items: &[TagValue]) -> (Vec<TagValue>, usize) {
        let codec = TagValueCodec::new();
        let mut payload = Vec::new();
        codec.encode(items, &mut payload);
        let mut back = Vec::new();
        codec.decode(&payload, items.len(), &mut back).unwrap();
        (back, payload.len())
    }

    #[test]
    fn round_trips_every_kind_of_value() {
        let items = vec![
            value(0, "PLC01", "D100", Some(1234.0), Quality::Good),
            value(1, "PLC01", "D101", Some(-0.5), Quality::Uncertain),
            value(0, "PLC02", "D100", None, Quality::Bad),
            value(999_999, "PLC01", "D100", Some(-0.0), Quality::Good),
            value(5, "P", "A", Some(f64::MAX), Quality::Good),
            value(5, "P", "A", Some(-9_007_199_254_740_992.0), Quality::Good),
            value(5, "P", "A", Some(1e300), Quality::Good),
        ];
        let (back, _) = round_trip(&items);
        assert_eq!(back, items);
        // -0.0 keeps its sign.
        assert!(back[3].value().unwrap().is_sign_negative());
    }

    #[test]
    fn a_poll_of_integer_registers_takes_few_bytes_a_value() {
        let plc: Arc<str> = Arc::from("PLC01");
        let tags: Vec<Arc<str>> = (0..1000).map(|i| Arc::from(format!("D{i}"))).collect();
        let items: Vec<TagValue> = tags
            .iter()
            .enumerate()
            .map(|(i, tag)| {
                let at = NaiveDate::from_ymd_opt(2025, 11, 2)
                    .unwrap()
                    .and_hms_opt(14, 30, 45)
                    .unwrap();
                TagValue::new(
                    at,
                    Arc::clone(&plc),
                    Arc::clone(tag),
                    Some(i as f64),
                    Quality::Good,
                )
                .unwrap()
            })
            .collect();
        let (back, len) = round_trip(&items);
        assert_eq!(back, items);
        let per_value = len as f64 / items.len() as f64;
        assert!(per_value < 12.0, "{per_value} bytes a value");
    }

    #[test]
    fn decoded_values_share_their_strings() {
        let items = vec![
            value(0, "PLC01", "D100", None, Quality::Good),
            value(1, "PLC01", "D100", None, Quality::Good),
        ];
        let codec = TagValueCodec::new();
        let mut payload = Vec::new();
        codec.encode(&items, &mut payload);
        let mut first = Vec::new();
        codec.decode(&payload, 2, &mut first).unwrap();
        let mut second = Vec::new();
        codec.decode(&payload, 2, &mut second).unwrap();
        assert!(Arc::ptr_eq(
            first[0].plc_code_arc(),
            first[1].plc_code_arc()
        ));
        assert!(Arc::ptr_eq(
            first[0].tag_address_arc(),
            second[1].tag_address_arc()
        ));
    }

    #[test]
    fn refuses_damaged_payloads_without_panicking() {
        let items = vec![
            value(0, "PLC01", "D100", Some(1.5), Quality::Good),
            value(1, "PLC01", "D101", Some(7.0), Quality::Bad),
        ];
        let codec = TagValueCodec::new();
        let mut payload = Vec::new();
        codec.encode(&items, &mut payload);
        for len in 0..payload.len() {
            assert!(codec.decode(&payload[..len], 2, &mut Vec::new()).is_err());
        }
        assert!(codec.decode(&payload, 3, &mut Vec::new()).is_err());
        assert!(codec.decode(&payload, 1, &mut Vec::new()).is_err());
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..2000 {
            let mut damaged = payload.clone();
            let at = rng.usize(..damaged.len());
            damaged[at] = rng.u8(..);
            let _ = codec.decode(&damaged, 2, &mut Vec::new());
        }
    }

    #[test]
    fn refuses_invalid_values_as_tag_value_new_does() {
        // An empty PLC code and a NaN, encoded by hand.
        let mut payload = Vec::new();
        varint::put(&mut payload, 1);
        varint::put(&mut payload, 0);
        varint::put(&mut payload, 0);
        varint::put(&mut payload, 0);
        varint::put(&mut payload, 0);
        payload.push(0);
        let error = TagValueCodec::new()
            .decode(&payload, 1, &mut Vec::new())
            .unwrap_err();
        assert!(error.0.contains("plc_code"), "{error}");

        let mut payload = Vec::new();
        varint::put(&mut payload, 1);
        varint::put(&mut payload, 1);
        payload.push(b'P');
        for _ in 0..3 {
            varint::put(&mut payload, 0);
        }
        payload.push(1 << 2);
        payload.extend_from_slice(&f64::NAN.to_le_bytes());
        let error = TagValueCodec::new()
            .decode(&payload, 1, &mut Vec::new())
            .unwrap_err();
        assert!(error.0.contains("tag_value"), "{error}");
    }
}
