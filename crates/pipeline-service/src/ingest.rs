//! Parsing of ingested tag values (HTTP JSON arrays and NDJSON lines), all-or-nothing.

use chrono::NaiveDateTime;
use serde_json::{Map, Value};
use tag_model::{parse_timestamp_in, Quality, TagValue, TimestampZone};

/// Why an ingested item was refused: names the item and the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("item {index}: {message}")]
pub struct IngestError {
    /// 0-based position in the array (or line number for NDJSON).
    pub index: usize,
    /// The field, when one is at fault.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

const FIELDS: [&str; 5] = [
    "timestamp",
    "plc_code",
    "tag_address",
    "tag_value",
    "quality",
];

/// Parses a JSON array of tag values. `timestamp` may be left out (now is used) and so may
/// `quality` (GOOD) and `tag_value` (absent). Any bad item refuses the whole array.
///
/// ```
/// let now = chrono::Utc::now().naive_utc();
/// let values = pipeline_service::parse_ingest(
///     br#"[{"plc_code": "PLC01", "tag_address": "D100", "tag_value": 1.5}]"#, now).unwrap();
/// assert_eq!(values[0].timestamp(), tag_model::normalize_timestamp(now).unwrap());
/// let error = pipeline_service::parse_ingest(br#"[{"plc_code": "PLC01"}]"#, now).unwrap_err();
/// assert_eq!(error.to_string(), "item 0: tag_address: missing");
/// ```
pub fn parse_ingest(body: &[u8], now: NaiveDateTime) -> Result<Vec<TagValue>, IngestError> {
    parse_ingest_in(body, now, TimestampZone::Utc)
}

/// [`parse_ingest`] for a service whose timestamps are in `zone` (TIMESTAMP_ZONE): `now` is
/// that zone's time, and a timestamp sent with `Z` or an offset is converted to it (one
/// without is kept as sent).
pub fn parse_ingest_in(
    body: &[u8],
    now: NaiveDateTime,
    zone: TimestampZone,
) -> Result<Vec<TagValue>, IngestError> {
    let items: Vec<Value> = match serde_json::from_slice(body) {
        Ok(Value::Array(items)) => items,
        Ok(_) => return Err(whole("the body must be a JSON array of tag values")),
        Err(error) => return Err(whole(&format!("the body is not valid JSON: {error}"))),
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::Object(object) => parse_item(index, object, now, zone),
            _ => Err(IngestError {
                index,
                field: None,
                message: "must be a JSON object".into(),
            }),
        })
        .collect()
}

/// Parses one JSON object (an NDJSON line); `index` names it in errors.
pub fn parse_line(index: usize, line: &str, now: NaiveDateTime) -> Result<TagValue, IngestError> {
    parse_line_in(index, line, now, TimestampZone::Utc)
}

/// [`parse_line`] in `zone`, as [`parse_ingest_in`].
pub fn parse_line_in(
    index: usize,
    line: &str,
    now: NaiveDateTime,
    zone: TimestampZone,
) -> Result<TagValue, IngestError> {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(object)) => parse_item(index, &object, now, zone),
        Ok(_) => Err(IngestError {
            index,
            field: None,
            message: "must be a JSON object".into(),
        }),
        Err(error) => Err(IngestError {
            index,
            field: None,
            message: format!("not valid JSON: {error}"),
        }),
    }
}

fn whole(message: &str) -> IngestError {
    IngestError {
        index: 0,
        field: None,
        message: message.into(),
    }
}

fn parse_item(
    index: usize,
    object: &Map<String, Value>,
    now: NaiveDateTime,
    zone: TimestampZone,
) -> Result<TagValue, IngestError> {
    let fail = |field: &str, message: String| IngestError {
        index,
        field: Some(field.to_owned()),
        message: format!("{field}: {message}"),
    };
    if let Some(unknown) = object.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        return Err(fail(
            unknown,
            "unknown field (expected timestamp, plc_code, tag_address, tag_value, quality)".into(),
        ));
    }
    let text = |field: &str| match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.as_str())),
        Some(other) => Err(fail(field, format!("must be a string, got {other}"))),
    };
    let plc_code = text("plc_code")?.ok_or_else(|| fail("plc_code", "missing".into()))?;
    let tag_address = text("tag_address")?.ok_or_else(|| fail("tag_address", "missing".into()))?;
    let timestamp = match text("timestamp")? {
        None => now,
        Some(text) => {
            parse_timestamp_in(text, zone).map_err(|e| fail("timestamp", strip(&e, "timestamp")))?
        }
    };
    let quality = match text("quality")? {
        None => Quality::Good,
        Some(text) => text
            .parse()
            .map_err(|e: tag_model::TagValueError| fail("quality", strip(&e, "quality")))?,
    };
    let value = match object.get("tag_value") {
        None | Some(Value::Null) => None,
        Some(Value::Number(number)) => number.as_f64(),
        Some(other) => {
            return Err(fail(
                "tag_value",
                format!("must be a number or null, got {other}"),
            ))
        }
    };
    TagValue::new(timestamp, plc_code, tag_address, value, quality).map_err(|error| {
        let field = error.field().name();
        fail(field, strip(&error, field))
    })
}

/// The validation message without its leading field name (the caller puts it first).
fn strip(error: &tag_model::TagValueError, field: &str) -> String {
    let message = error.to_string();
    message
        .strip_prefix(field)
        .map(|rest| rest.trim_start().to_owned())
        .unwrap_or(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tag_model::parse_timestamp;

    fn now() -> NaiveDateTime {
        parse_timestamp("2025-11-02T14:30:45.123456").unwrap()
    }

    #[test]
    fn fills_in_defaults() {
        let values = parse_ingest(
            br#"[{"plc_code":"PLC01","tag_address":"D100"},
                 {"timestamp":"2025-01-01T00:00:00Z","plc_code":"P","tag_address":"A","tag_value":-2,"quality":"bad"}]"#,
            now(),
        )
        .unwrap();
        assert_eq!(values[0].timestamp(), now());
        assert_eq!(values[0].quality(), Quality::Good);
        assert_eq!(values[0].value(), None);
        assert_eq!(values[1].value(), Some(-2.0));
        assert_eq!(values[1].quality(), Quality::Bad);
    }

    /// A value is stored exactly as sent: serde_json's default float parser can be one unit in
    /// the last place off (`1e45` read as 1.0000000000000001e45, found by the ingest_ndjson
    /// fuzz target); the workspace turns on its `float_roundtrip` feature.
    #[test]
    fn values_are_read_to_the_nearest_f64() {
        for text in [
            "1e45",
            "2.2250738585072014e-308",
            "0.1",
            "123456789.12345679",
        ] {
            let body = format!(r#"[{{"plc_code":"P","tag_address":"A","tag_value":{text}}}]"#);
            let values = parse_ingest(body.as_bytes(), now()).unwrap();
            let want: f64 = text.parse().unwrap();
            assert_eq!(
                values[0].value().map(f64::to_bits),
                Some(want.to_bits()),
                "{text}"
            );
        }
    }

    /// With TIMESTAMP_ZONE=local a timestamp sent with a zone becomes local wall-clock time;
    /// one without a zone is kept as sent.
    #[test]
    fn zoned_timestamps_follow_timestamp_zone() {
        let body = br#"[{"timestamp":"2025-01-01T12:00:00Z","plc_code":"P","tag_address":"A"},
                       {"timestamp":"2025-01-01T12:00:00","plc_code":"P","tag_address":"B"}]"#;
        let utc = parse_timestamp("2025-01-01T12:00:00").unwrap();
        let local = parse_ingest_in(body, now(), TimestampZone::Local).unwrap();
        assert_eq!(local[0].timestamp(), TimestampZone::Local.from_utc(utc));
        assert_eq!(local[1].timestamp(), utc);
        let line = r#"{"timestamp":"2025-01-01T13:00:00+01:00","plc_code":"P","tag_address":"A"}"#;
        assert_eq!(
            parse_line_in(1, line, now(), TimestampZone::Local)
                .unwrap()
                .timestamp(),
            TimestampZone::Local.from_utc(utc)
        );
        assert_eq!(parse_ingest(body, now()).unwrap()[0].timestamp(), utc);
    }

    #[test]
    fn names_the_item_and_the_field() {
        let good = r#"{"plc_code":"P","tag_address":"A"}"#;
        let cases = [
            (
                r#"{"plc_code":"P"}"#,
                "item 1: tag_address: missing",
                Some("tag_address"),
            ),
            (
                r#"{"plc_code":"","tag_address":"A"}"#,
                "item 1: plc_code: \"\" must not be empty",
                Some("plc_code"),
            ),
            (
                r#"{"plc_code":"P","tag_address":"A","tag_value":"12"}"#,
                "item 1: tag_value: must be a number or null, got \"12\"",
                Some("tag_value"),
            ),
            (
                r#"{"plc_code":"P","tag_address":"A","quality":"OK"}"#,
                "item 1: quality: \"OK\" must be GOOD, BAD or UNCERTAIN",
                Some("quality"),
            ),
            (
                r#"{"plc_code":"P","tag_address":"A","timestamp":"noon"}"#,
                "item 1: timestamp: \"noon\" expected",
                Some("timestamp"),
            ),
            (
                r#"{"plc_code":"P","tag_address":"A","value":1}"#,
                "item 1: value: unknown field",
                Some("value"),
            ),
            (
                r#"{"plc_code":7,"tag_address":"A"}"#,
                "item 1: plc_code: must be a string, got 7",
                Some("plc_code"),
            ),
            ("[]", "item 1: must be a JSON object", None),
        ];
        for (item, expected, field) in cases {
            let body = format!("[{good},{item}]");
            let error = parse_ingest(body.as_bytes(), now()).unwrap_err();
            assert!(
                error.to_string().starts_with(expected),
                "{error} vs {expected}"
            );
            assert_eq!(error.index, 1);
            assert_eq!(error.field.as_deref(), field);
        }
        let long = format!(r#"[{{"plc_code":"{}","tag_address":"A"}}]"#, "P".repeat(51));
        let error = parse_ingest(long.as_bytes(), now()).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("item 0: plc_code: is 51 bytes"),
            "{error}"
        );
    }

    #[test]
    fn refuses_bodies_that_are_not_arrays() {
        for body in [&b"{}"[..], b"not json", b""] {
            let error = parse_ingest(body, now()).unwrap_err();
            assert_eq!(error.field, None);
        }
    }

    #[test]
    fn parses_ndjson_lines() {
        let value = parse_line(
            7,
            r#"{"plc_code":"P","tag_address":"A","tag_value":3}"#,
            now(),
        )
        .unwrap();
        assert_eq!(value.value(), Some(3.0));
        let error = parse_line(7, "{", now()).unwrap_err();
        assert!(
            error.to_string().starts_with("item 7: not valid JSON"),
            "{error}"
        );
    }
}
