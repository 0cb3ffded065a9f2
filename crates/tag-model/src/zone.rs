//! Which clock the timestamps the service assigns are read from: UTC or the plant's local
//! wall-clock time (TIMESTAMP_ZONE).

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDateTime;

use crate::{parse_timestamp, TagValueError};

/// The zone of the timestamps the service assigns (a poll's time, an ingested value without
/// a timestamp, the time of writing). Timestamps are stored without a zone, so a table holds
/// one or the other.
///
/// `Local` is the wall-clock time of the machine the service runs on (the `TZ` variable on
/// Unix, the system setting on Windows). When clocks go back, local time repeats an hour:
/// values polled in it have the same timestamps as the hour before and can collide with them
/// (counted as duplicates or conflicts). Where that matters, store UTC.
///
/// ```
/// use tag_model::TimestampZone;
///
/// assert_eq!("local".parse::<TimestampZone>(), Ok(TimestampZone::Local));
/// assert_eq!(TimestampZone::default(), TimestampZone::Utc);
/// let before = chrono::Utc::now().naive_utc();
/// assert!(TimestampZone::Utc.now() >= before);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TimestampZone {
    /// Coordinated Universal Time (the default).
    #[default]
    Utc,
    /// The local wall-clock time of this machine.
    Local,
}

impl TimestampZone {
    /// The current time in this zone.
    pub fn now(self) -> NaiveDateTime {
        match self {
            TimestampZone::Utc => chrono::Utc::now().naive_utc(),
            TimestampZone::Local => chrono::Local::now().naive_local(),
        }
    }

    /// A UTC time as this zone's wall-clock time.
    pub fn from_utc(self, utc: NaiveDateTime) -> NaiveDateTime {
        match self {
            TimestampZone::Utc => utc,
            TimestampZone::Local => utc.and_utc().with_timezone(&chrono::Local).naive_local(),
        }
    }

    /// `utc` or `local`.
    pub fn as_str(self) -> &'static str {
        match self {
            TimestampZone::Utc => "utc",
            TimestampZone::Local => "local",
        }
    }
}

impl fmt::Display for TimestampZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TimestampZone {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "utc" => Ok(TimestampZone::Utc),
            "local" => Ok(TimestampZone::Local),
            _ => Err("utc or local"),
        }
    }
}

/// Parses a timestamp that arrived with a value. One without a zone is kept as written; one
/// with `Z` or an offset names an instant, which is written as `zone`'s wall-clock time (so a
/// table holds one zone only).
///
/// ```
/// use tag_model::{format_timestamp, parse_timestamp_in, TimestampZone};
///
/// let kept = parse_timestamp_in("2025-11-02T14:30:45.5", TimestampZone::Local).unwrap();
/// assert_eq!(format_timestamp(kept).as_str(), "2025-11-02T14:30:45.500000");
/// let utc = parse_timestamp_in("2025-11-02T16:30:45+02:00", TimestampZone::Utc).unwrap();
/// assert_eq!(format_timestamp(utc).as_str(), "2025-11-02T14:30:45.000000");
/// ```
pub fn parse_timestamp_in(text: &str, zone: TimestampZone) -> Result<NaiveDateTime, TagValueError> {
    let utc = parse_timestamp(text)?;
    if zone == TimestampZone::Utc || !has_zone(text) {
        return Ok(utc);
    }
    crate::normalize_timestamp(zone.from_utc(utc))
}

/// Whether an ISO 8601 text ends in `Z` or a `+HH:MM` / `-HH:MM` offset.
fn has_zone(text: &str) -> bool {
    let bytes = text.trim_end().as_bytes();
    let n = bytes.len();
    matches!(bytes.last(), Some(b'Z' | b'z'))
        || (n >= 6 && matches!(bytes[n - 6], b'+' | b'-') && bytes[n - 3] == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_parse_and_print() {
        for (text, zone) in [
            ("utc", TimestampZone::Utc),
            ("UTC", TimestampZone::Utc),
            (" Local ", TimestampZone::Local),
        ] {
            assert_eq!(text.parse::<TimestampZone>(), Ok(zone));
        }
        assert!("Europe/Berlin".parse::<TimestampZone>().is_err());
        assert_eq!(TimestampZone::Local.to_string(), "local");
    }

    #[test]
    fn explicit_zones_are_converted_and_naive_times_kept() {
        let utc = parse_timestamp("2025-11-02T14:30:45").unwrap();
        let local = TimestampZone::Local.from_utc(utc);
        for text in ["2025-11-02T14:30:45Z", "2025-11-02T16:30:45+02:00"] {
            assert_eq!(parse_timestamp_in(text, TimestampZone::Utc).unwrap(), utc);
            assert_eq!(
                parse_timestamp_in(text, TimestampZone::Local).unwrap(),
                local
            );
        }
        assert_eq!(
            parse_timestamp_in("2025-11-02T14:30:45", TimestampZone::Local).unwrap(),
            utc,
            "a time without a zone is kept as written"
        );
        assert!(has_zone("2025-11-02T14:30:45-05:00"));
        assert!(!has_zone("2025-11-02 14:30:45.123"));
    }
}
