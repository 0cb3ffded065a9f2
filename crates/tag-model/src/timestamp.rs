//! ISO 8601 timestamps with microseconds, the one text form used in JSON, CSV and logs.
//!
//! Formatting and parsing of the canonical form (`2025-11-02T14:30:45.123456`) are written
//! out by hand because they run once or twice per value on the backup and replay paths, where
//! chrono's general-purpose formatter would cost more than everything else together.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, SubsecRound, Timelike};

use crate::{Field, TagValueError};

/// Earliest and latest years a [`crate::TagValue`] may carry: those of Oracle's TIMESTAMP
/// that ISO 8601 writes with four digits.
pub const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

const FALLBACK_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6f";
const EXPECTED: &str = "expected an ISO 8601 UTC date and time such as 2025-11-02T14:30:45.123456";

/// A formatted timestamp held on the stack: `2025-11-02T14:30:45.123456`.
///
/// ```
/// use chrono::NaiveDate;
/// use tag_model::format_timestamp;
///
/// let ts = NaiveDate::from_ymd_opt(2025, 11, 2).unwrap().and_hms_micro_opt(14, 30, 45, 123_456).unwrap();
/// assert_eq!(format_timestamp(ts).as_str(), "2025-11-02T14:30:45.123456");
/// ```
#[derive(Clone, Copy)]
pub struct TimestampText {
    bytes: [u8; 40],
    len: u8,
}

impl TimestampText {
    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever written into `bytes`.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Display for TimestampText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TimestampText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Formats `timestamp` as ISO 8601 with exactly six fractional digits, truncating (never
/// rounding) anything finer than a microsecond.
pub fn format_timestamp(timestamp: NaiveDateTime) -> TimestampText {
    let mut text = TimestampText {
        bytes: [0; 40],
        len: 0,
    };
    let year = timestamp.year();
    let nanos = timestamp.nanosecond();
    if (0..=9999).contains(&year) && nanos < 1_000_000_000 {
        let out = &mut text.bytes;
        put_digits(&mut out[0..4], year as u32);
        out[4] = b'-';
        put_digits(&mut out[5..7], timestamp.month());
        out[7] = b'-';
        put_digits(&mut out[8..10], timestamp.day());
        out[10] = b'T';
        put_digits(&mut out[11..13], timestamp.hour());
        out[13] = b':';
        put_digits(&mut out[14..16], timestamp.minute());
        out[16] = b':';
        put_digits(&mut out[17..19], timestamp.second());
        out[19] = b'.';
        put_digits(&mut out[20..26], nanos / 1000);
        text.len = 26;
    } else {
        // Years outside 0..=9999 and leap seconds: rare enough for chrono's formatter.
        let mut writer = ArrayWriter { text: &mut text };
        let _ = fmt::write(
            &mut writer,
            format_args!("{}", timestamp.format(FALLBACK_FORMAT)),
        );
    }
    text
}

fn put_digits(out: &mut [u8], mut value: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

struct ArrayWriter<'a> {
    text: &'a mut TimestampText,
}

impl fmt::Write for ArrayWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let start = usize::from(self.text.len);
        let end = start + s.len();
        if end > self.text.bytes.len() {
            return Err(fmt::Error);
        }
        self.text.bytes[start..end].copy_from_slice(s.as_bytes());
        self.text.len = end as u8;
        Ok(())
    }
}

/// Parses an ISO 8601 date and time into UTC, truncated to microseconds.
///
/// Accepts `T` or a space between date and time, zero to nine fractional digits, and an
/// optional `Z`; a timestamp with another UTC offset (`+02:00`) is converted to UTC.
///
/// ```
/// use tag_model::{format_timestamp, parse_timestamp};
///
/// let ts = parse_timestamp("2025-11-02 16:30:45.1234567+02:00").unwrap();
/// assert_eq!(format_timestamp(ts).as_str(), "2025-11-02T14:30:45.123456");
/// assert!(parse_timestamp("02/11/2025").is_err());
/// ```
pub fn parse_timestamp(text: &str) -> Result<NaiveDateTime, TagValueError> {
    // Second 60 in every spelling (no zone, `Z`, an offset) gets the same answer, before
    // chrono accepts some of them and not others.
    if text.len() >= 19 && text.as_bytes()[16] == b':' && text.get(17..19) == Some("60") {
        return Err(leap_second(crate::excerpt(text)));
    }
    let parsed = parse_naive_fast(text.strip_suffix('Z').unwrap_or(text))
        .or_else(|| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|dt| dt.naive_utc())
        })
        .or_else(|| {
            // RFC 3339 demands `T`; people and SQL tools write a space.
            let with_t = text.replacen(' ', "T", 1);
            DateTime::parse_from_rfc3339(&with_t)
                .ok()
                .map(|dt| dt.naive_utc())
        })
        .ok_or_else(|| TagValueError::Invalid {
            field: Field::Timestamp,
            value: crate::excerpt(text),
            reason: EXPECTED,
        })?;
    normalize_timestamp(parsed)
}

/// Truncates to microseconds and checks the year range: the timestamp every
/// [`crate::TagValue`] holds. A leap second (chrono's second 60) is refused: Oracle, SQLite
/// and PostgreSQL have no second 60, and folding it into `23:59:59.999999` or into the next
/// second would make it collide with a real reading there.
pub fn normalize_timestamp(timestamp: NaiveDateTime) -> Result<NaiveDateTime, TagValueError> {
    if !YEARS.contains(&timestamp.year()) {
        return Err(TagValueError::Invalid {
            field: Field::Timestamp,
            value: timestamp.format(FALLBACK_FORMAT).to_string(),
            reason: "must fall in the years 1 to 9999",
        });
    }
    if timestamp.nanosecond() >= 1_000_000_000 {
        return Err(leap_second(timestamp.format(FALLBACK_FORMAT).to_string()));
    }
    Ok(timestamp.trunc_subsecs(6))
}

fn leap_second(value: String) -> TagValueError {
    TagValueError::Invalid {
        field: Field::Timestamp,
        value,
        reason: "is a leap second (second 60), which the databases cannot store: send UTC \
                 without leap seconds (as system clocks keep it)",
    }
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.fffffffff]`, no offset.
fn parse_naive_fast(text: &str) -> Option<NaiveDateTime> {
    let bytes = text.as_bytes();
    if bytes.len() < 19
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !(bytes[10] == b'T' || bytes[10] == b' ')
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let year = digits(&bytes[0..4])?;
    let month = digits(&bytes[5..7])?;
    let day = digits(&bytes[8..10])?;
    let hour = digits(&bytes[11..13])?;
    let minute = digits(&bytes[14..16])?;
    let second = digits(&bytes[17..19])?;
    let nanos = match &bytes[19..] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            digits(fraction)? * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    Some(date.and_time(time))
}

fn digits(bytes: &[u8]) -> Option<u32> {
    bytes.iter().try_fold(0u32, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, nanos: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_nano_opt(h, mi, s, nanos)
            .unwrap()
    }

    #[test]
    fn formats_like_chrono_for_ordinary_timestamps() {
        for value in [
            ts(2025, 11, 2, 14, 30, 45, 123_456_000),
            ts(1, 1, 1, 0, 0, 0, 0),
            ts(9999, 12, 31, 23, 59, 59, 999_999_999),
            ts(1970, 1, 1, 0, 0, 0, 1_000),
        ] {
            let expected = value.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
            assert_eq!(format_timestamp(value).as_str(), expected);
        }
    }

    #[test]
    fn formats_out_of_range_years_and_leap_seconds_without_panicking() {
        let far = NaiveDate::from_ymd_opt(-50_000, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        assert_eq!(
            format_timestamp(far).as_str(),
            "-50000-01-01T00:00:00.000000"
        );
        let leap = ts(2016, 12, 31, 23, 59, 59, 1_500_000_000);
        assert_eq!(
            format_timestamp(leap).as_str(),
            "2016-12-31T23:59:60.500000"
        );
    }

    #[test]
    fn parses_the_forms_operators_write() {
        let expected = ts(2025, 11, 2, 14, 30, 45, 123_456_000);
        for text in [
            "2025-11-02T14:30:45.123456",
            "2025-11-02 14:30:45.123456",
            "2025-11-02T14:30:45.123456Z",
            "2025-11-02T14:30:45.123456789",
            "2025-11-02T16:30:45.123456+02:00",
            "2025-11-02 09:30:45.123456-05:00",
        ] {
            assert_eq!(parse_timestamp(text), Ok(expected), "{text}");
        }
        assert_eq!(
            parse_timestamp("2025-11-02T14:30:45"),
            Ok(ts(2025, 11, 2, 14, 30, 45, 0))
        );
        assert_eq!(
            parse_timestamp("2025-11-02T14:30:45.5"),
            Ok(ts(2025, 11, 2, 14, 30, 45, 500_000_000))
        );
    }

    #[test]
    fn rejects_malformed_text_naming_the_field() {
        for text in [
            "",
            "yesterday",
            "2025-13-02T14:30:45",
            "2025-02-30T14:30:45",
            "2025-11-02T24:00:00",
            "2025-11-02T14:30:45.",
            "2025-11-02T14:30:45.1234567890",
            "2025-11-02T14:30:45 junk",
            "٢٠٢٥-11-02T14:30:45",
        ] {
            let error = parse_timestamp(text).unwrap_err();
            assert_eq!(error.field(), Field::Timestamp, "{text}");
            assert!(error.to_string().starts_with("timestamp "), "{error}");
        }
    }

    #[test]
    fn normalizes_to_microseconds_and_refuses_leap_seconds() {
        assert_eq!(
            normalize_timestamp(ts(2025, 1, 1, 0, 0, 0, 123_456_789)),
            Ok(ts(2025, 1, 1, 0, 0, 0, 123_456_000))
        );
        let error = normalize_timestamp(ts(2016, 12, 31, 23, 59, 59, 1_700_000_000)).unwrap_err();
        assert!(error.to_string().contains("leap second"), "{error}");
        let error = normalize_timestamp(
            NaiveDate::from_ymd_opt(10_000, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("years 1 to 9999"), "{error}");
    }

    #[test]
    fn a_leap_second_is_refused_in_every_spelling() {
        for text in [
            "2016-12-31T23:59:60",
            "2016-12-31T23:59:60.5",
            "2016-12-31T23:59:60Z",
            "2016-12-31T23:59:60.123456Z",
            "2017-01-01T00:59:60+01:00",
            "2016-12-31 23:59:60",
            // A day with no leap second at all.
            "2025-11-02T14:30:60Z",
        ] {
            let error = parse_timestamp(text).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!(
                    "timestamp {text:?} is a leap second (second 60), which the databases \
                     cannot store: send UTC without leap seconds (as system clocks keep it)"
                )
            );
        }
        assert!(parse_timestamp("2016-12-31T23:59:59.999999Z").is_ok());
    }

    #[test]
    fn format_then_parse_is_identity_for_microsecond_timestamps() {
        let mut value = ts(2000, 2, 29, 0, 0, 0, 0);
        for step in 0..2_000u32 {
            value += chrono::Duration::microseconds(i64::from(step) * 7_919_777_777);
            let text = format_timestamp(value);
            assert_eq!(parse_timestamp(text.as_str()), Ok(value), "{text}");
        }
    }
}
