#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod quality;
mod timestamp;
mod zone;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use chrono::NaiveDateTime;

pub use quality::Quality;
pub use timestamp::{format_timestamp, normalize_timestamp, parse_timestamp, TimestampText, YEARS};
pub use zone::{parse_timestamp_in, TimestampZone};

/// Longest `plc_code` in bytes (Oracle `VARCHAR2(50)`).
pub const PLC_CODE_MAX_BYTES: usize = 50;
/// Longest `tag_address` in bytes (Oracle `VARCHAR2(100)`).
pub const TAG_ADDRESS_MAX_BYTES: usize = 100;

/// One polled value. Immutable, cheap to clone (two reference counts), at most 64 bytes.
///
/// The PLC code and tag address are `Arc<str>` so that a polling engine reading the same
/// addresses every cycle shares one allocation per address instead of making new strings.
#[derive(Clone, PartialEq)]
pub struct TagValue {
    timestamp: NaiveDateTime,
    plc_code: Arc<str>,
    tag_address: Arc<str>,
    value: Option<f64>,
    quality: Quality,
}

impl TagValue {
    /// Validates and builds a tag value.
    ///
    /// The timestamp is taken as UTC and truncated to microseconds. Errors name the field and
    /// the offending value: an empty or over-long `plc_code` (more than 50 bytes) or
    /// `tag_address` (more than 100 bytes) or one with a control character, a NaN or infinite
    /// value, a year outside 1..=9999, a leap second.
    ///
    /// Pass `Arc<str>` for codes and addresses you reuse; `&str` and `String` work too.
    pub fn new(
        timestamp: NaiveDateTime,
        plc_code: impl Into<Arc<str>>,
        tag_address: impl Into<Arc<str>>,
        value: Option<f64>,
        quality: Quality,
    ) -> Result<Self, TagValueError> {
        let plc_code = plc_code.into();
        let tag_address = tag_address.into();
        check_text(Field::PlcCode, &plc_code, PLC_CODE_MAX_BYTES)?;
        check_text(Field::TagAddress, &tag_address, TAG_ADDRESS_MAX_BYTES)?;
        if let Some(number) = value {
            if !number.is_finite() {
                return Err(TagValueError::Invalid {
                    field: Field::TagValue,
                    value: number.to_string(),
                    reason: "must be a finite number or absent",
                });
            }
        }
        Ok(TagValue {
            timestamp: normalize_timestamp(timestamp)?,
            plc_code,
            tag_address,
            value,
            quality,
        })
    }

    /// When the value was polled, UTC, microsecond precision.
    pub fn timestamp(&self) -> NaiveDateTime {
        self.timestamp
    }

    /// The PLC the value came from, e.g. `PLC01`.
    pub fn plc_code(&self) -> &str {
        &self.plc_code
    }

    /// The shared PLC code, to reuse for further values without allocating.
    pub fn plc_code_arc(&self) -> &Arc<str> {
        &self.plc_code
    }

    /// The address read, e.g. `D100`.
    pub fn tag_address(&self) -> &str {
        &self.tag_address
    }

    /// The shared tag address, to reuse for further values without allocating.
    pub fn tag_address_arc(&self) -> &Arc<str> {
        &self.tag_address
    }

    /// The value, absent when the read failed.
    pub fn value(&self) -> Option<f64> {
        self.value
    }

    /// The quality reported with the value.
    pub fn quality(&self) -> Quality {
        self.quality
    }
}

impl fmt::Debug for TagValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TagValue")
            .field("timestamp", &format_timestamp(self.timestamp))
            .field("plc_code", &self.plc_code)
            .field("tag_address", &self.tag_address)
            .field("tag_value", &self.value)
            .field("quality", &self.quality)
            .finish()
    }
}

fn check_text(field: Field, text: &str, max: usize) -> Result<(), TagValueError> {
    if text.is_empty() {
        return Err(TagValueError::Invalid {
            field,
            value: String::new(),
            reason: "must not be empty",
        });
    }
    if text.len() > max {
        return Err(TagValueError::TooLong {
            field,
            len: text.len(),
            max,
            value: excerpt(text),
        });
    }
    // Tabs, newlines, escape sequences and the like break CSV files, log lines and the
    // terminals operators read them on.
    if text.chars().any(char::is_control) {
        return Err(TagValueError::Invalid {
            field,
            value: excerpt(text),
            reason: "must not contain control characters",
        });
    }
    Ok(())
}

/// The fields of a tag value, named as in JSON, CSV and the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// `timestamp`
    Timestamp,
    /// `plc_code`
    PlcCode,
    /// `tag_address`
    TagAddress,
    /// `tag_value`
    TagValue,
    /// `quality`
    Quality,
}

impl Field {
    /// The field's name as it appears in JSON, CSV headers and database columns.
    pub const fn name(self) -> &'static str {
        match self {
            Field::Timestamp => "timestamp",
            Field::PlcCode => "plc_code",
            Field::TagAddress => "tag_address",
            Field::TagValue => "tag_value",
            Field::Quality => "quality",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a tag value was refused; always names the field and shows the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TagValueError {
    /// The text is longer than its column allows.
    #[error("{field} is {len} bytes, more than the {max} allowed: {value:?}")]
    TooLong {
        /// Which field.
        field: Field,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
        /// The start of the value (at most 80 characters).
        value: String,
    },
    /// The value is malformed or out of range.
    #[error("{field} {value:?} {reason}")]
    Invalid {
        /// Which field.
        field: Field,
        /// The offending value as text (at most 80 characters).
        value: String,
        /// What is allowed.
        reason: &'static str,
    },
}

impl TagValueError {
    /// The field that was refused.
    pub fn field(&self) -> Field {
        match self {
            TagValueError::TooLong { field, .. } | TagValueError::Invalid { field, .. } => *field,
        }
    }
}

/// The first 80 characters of `text`, so that an error about a megabyte-long field stays
/// readable.
pub(crate) fn excerpt(text: &str) -> String {
    const LIMIT: usize = 80;
    match text.char_indices().nth(LIMIT) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}...", &text[..cut]),
    }
}

impl serde::Serialize for TagValue {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut state = serializer.serialize_struct("TagValue", 5)?;
        state.serialize_field("timestamp", format_timestamp(self.timestamp).as_str())?;
        state.serialize_field("plc_code", &*self.plc_code)?;
        state.serialize_field("tag_address", &*self.tag_address)?;
        state.serialize_field("tag_value", &self.value)?;
        state.serialize_field("quality", &self.quality)?;
        state.end()
    }
}

/// The wire form; deserialising a [`TagValue`] reads this, then validates through
/// [`TagValue::new`].
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TagValueFields<'a> {
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    #[serde(borrow)]
    plc_code: Cow<'a, str>,
    #[serde(borrow)]
    tag_address: Cow<'a, str>,
    #[serde(default)]
    tag_value: Option<f64>,
    quality: Quality,
}

impl<'de> serde::Deserialize<'de> for TagValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = TagValueFields::deserialize(deserializer)?;
        let timestamp = parse_timestamp(&fields.timestamp).map_err(serde::de::Error::custom)?;
        TagValue::new(
            timestamp,
            fields.plc_code.as_ref(),
            fields.tag_address.as_ref(),
            fields.tag_value,
            fields.quality,
        )
        .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(micros: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2025, 11, 2)
            .unwrap()
            .and_hms_micro_opt(14, 30, 45, micros)
            .unwrap()
    }

    #[test]
    fn is_at_most_64_bytes() {
        assert!(std::mem::size_of::<TagValue>() <= 64);
    }

    #[test]
    fn keeps_valid_fields() {
        let value =
            TagValue::new(at(123_456), "PLC01", "D100", Some(-0.5), Quality::Uncertain).unwrap();
        assert_eq!(value.timestamp(), at(123_456));
        assert_eq!(value.plc_code(), "PLC01");
        assert_eq!(value.tag_address(), "D100");
        assert_eq!(value.value(), Some(-0.5));
        assert_eq!(value.quality(), Quality::Uncertain);
    }

    #[test]
    fn truncates_timestamps_to_microseconds() {
        let fine = at(0) + chrono::Duration::nanoseconds(123_456_789);
        let value = TagValue::new(fine, "P", "A", None, Quality::Bad).unwrap();
        assert_eq!(value.timestamp(), at(123_456));
    }

    #[test]
    fn shares_arc_strings_without_copying() {
        let plc: Arc<str> = Arc::from("PLC01");
        let value = TagValue::new(at(0), plc.clone(), "D1", None, Quality::Good).unwrap();
        assert!(Arc::ptr_eq(value.plc_code_arc(), &plc));
    }

    #[test]
    fn accepts_text_exactly_at_the_limits() {
        let plc = "P".repeat(PLC_CODE_MAX_BYTES);
        let address = "A".repeat(TAG_ADDRESS_MAX_BYTES);
        assert!(TagValue::new(at(0), plc.as_str(), address.as_str(), None, Quality::Good).is_ok());
    }

    #[test]
    fn refuses_empty_and_overlong_text_naming_field_and_value() {
        let cases = [
            (
                "",
                "D100",
                Field::PlcCode,
                "plc_code \"\" must not be empty",
            ),
            (
                "PLC01",
                "",
                Field::TagAddress,
                "tag_address \"\" must not be empty",
            ),
        ];
        for (plc, address, field, message) in cases {
            let error = TagValue::new(at(0), plc, address, None, Quality::Good).unwrap_err();
            assert_eq!(error.field(), field);
            assert_eq!(error.to_string(), message);
        }

        let long_plc = "P".repeat(51);
        let error = TagValue::new(at(0), long_plc.as_str(), "D1", None, Quality::Good).unwrap_err();
        assert_eq!(error.field(), Field::PlcCode);
        assert_eq!(
            error.to_string(),
            format!("plc_code is 51 bytes, more than the 50 allowed: \"{long_plc}\"")
        );

        // Bytes, not characters: 34 three-byte characters are 102 bytes.
        let long_address = "\u{20ac}".repeat(34);
        let error =
            TagValue::new(at(0), "PLC01", long_address.as_str(), None, Quality::Good).unwrap_err();
        assert_eq!(error.field(), Field::TagAddress);
        assert!(
            error.to_string().contains("102 bytes, more than the 100"),
            "{error}"
        );
    }

    #[test]
    fn refuses_control_characters_in_codes_and_addresses() {
        for text in [
            "PLC\n01",
            "D\t100",
            "\u{1b}[31mD100",
            "D100\u{7f}",
            "D\u{85}1",
            "\0",
        ] {
            let error = TagValue::new(at(0), text, "D100", None, Quality::Good).unwrap_err();
            assert_eq!(error.field(), Field::PlcCode, "{text:?}");
            assert!(
                error
                    .to_string()
                    .ends_with("must not contain control characters"),
                "{error}"
            );
            let error = TagValue::new(at(0), "PLC01", text, None, Quality::Good).unwrap_err();
            assert_eq!(error.field(), Field::TagAddress, "{text:?}");
        }
        // Spaces, punctuation and other scripts are text, not control characters.
        for text in ["D 1!", "Линия-1", "=SUM(A1)", "ns=2;s=Line1.Temp"] {
            assert!(TagValue::new(at(0), "PLC01", text, None, Quality::Good).is_ok());
        }
    }

    #[test]
    fn error_messages_quote_only_the_start_of_huge_values() {
        let huge = "x".repeat(1_000_000);
        let error = TagValue::new(at(0), huge.as_str(), "D1", None, Quality::Good).unwrap_err();
        assert!(error.to_string().len() < 200, "{}", error.to_string().len());
        assert!(error.to_string().ends_with("...\""));
    }

    #[test]
    fn refuses_non_finite_values() {
        for (number, text) in [
            (f64::NAN, "NaN"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            let error = TagValue::new(at(0), "P", "A", Some(number), Quality::Good).unwrap_err();
            assert_eq!(error.field(), Field::TagValue);
            assert_eq!(
                error.to_string(),
                format!("tag_value \"{text}\" must be a finite number or absent")
            );
        }
    }

    #[test]
    fn serde_round_trip_keeps_every_field() {
        for (value, quality) in [
            (Some(1234.5), Quality::Good),
            (None, Quality::Bad),
            (Some(0.1), Quality::Uncertain),
        ] {
            let original = TagValue::new(at(7), "PLC01", "D100", value, quality).unwrap();
            let json = serde_json::to_string(&original).unwrap();
            let back: TagValue = serde_json::from_str(&json).unwrap();
            assert_eq!(back, original, "{json}");
        }
    }

    #[test]
    fn serializes_absent_values_as_null() {
        let value = TagValue::new(at(0), "PLC01", "D100", None, Quality::Bad).unwrap();
        let json = serde_json::to_value(&value).unwrap();
        assert_eq!(json["tag_value"], serde_json::Value::Null);
        assert_eq!(json["quality"], "BAD");
        assert_eq!(json["timestamp"], "2025-11-02T14:30:45.000000");
    }

    #[test]
    fn deserializing_validates_like_new() {
        let missing_value: TagValue = serde_json::from_str(
            r#"{"timestamp":"2025-11-02T14:30:45Z","plc_code":"P","tag_address":"A","quality":"bad"}"#,
        )
        .unwrap();
        assert_eq!(missing_value.value(), None);
        assert_eq!(missing_value.quality(), Quality::Bad);

        let cases = [
            (
                r#"{"timestamp":"2025-11-02T14:30:45","plc_code":"","tag_address":"A","tag_value":1,"quality":"GOOD"}"#,
                "plc_code",
            ),
            (
                r#"{"timestamp":"noon","plc_code":"P","tag_address":"A","tag_value":1,"quality":"GOOD"}"#,
                "timestamp",
            ),
            (
                r#"{"timestamp":"2025-11-02T14:30:45","plc_code":"P","tag_address":"A","tag_value":1,"quality":"FINE"}"#,
                "quality",
            ),
            (
                r#"{"timestamp":"2025-11-02T14:30:45","plc_code":"P","tag_address":"A","tagvalue":1,"quality":"GOOD"}"#,
                "tagvalue",
            ),
            (
                r#"{"plc_code":"P","tag_address":"A","tag_value":1,"quality":"GOOD"}"#,
                "timestamp",
            ),
        ];
        for (json, mentioned) in cases {
            let error = serde_json::from_str::<TagValue>(json)
                .unwrap_err()
                .to_string();
            assert!(error.contains(mentioned), "{json}: {error}");
        }
    }
}
