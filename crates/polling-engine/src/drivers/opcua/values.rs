//! A DataValue as the historian stores it: numeric and Boolean variants become the value, the
//! status code the quality (with its name for the log), and the chosen timestamp the time.

use chrono::{NaiveDateTime, Timelike};
use opcua::types::{DataValue, DateTime, StatusCode, Variant};
use tag_model::Quality;

use crate::driver::{DriverError, Sample};

/// Which of a value's timestamps is stored (`timestamp = "..."`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimestampSource {
    /// The SourceTimestamp: when the device measured it (default); the server's when the
    /// value has none, the poll's when it has neither.
    #[default]
    Source,
    /// The ServerTimestamp: when the server last saw it.
    Server,
    /// The client's clock at the poll (or at the notification).
    Poll,
}

impl std::str::FromStr for TimestampSource {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "source" => Ok(TimestampSource::Source),
            "server" => Ok(TimestampSource::Server),
            "poll" => Ok(TimestampSource::Poll),
            other => Err(format!(
                "{other:?} is not a timestamp choice (known: source, server, poll)"
            )),
        }
    }
}

/// The quality of a status code: Good, Uncertain or Bad by its severity bits.
pub fn quality(status: StatusCode) -> Quality {
    if status.is_bad() {
        Quality::Bad
    } else if status.is_uncertain() {
        Quality::Uncertain
    } else {
        Quality::Good
    }
}

/// `BadNodeIdUnknown (0x80340000)`: the name an operator looks up.
pub fn status_name(status: StatusCode) -> String {
    format!("{status} (0x{:08X})", status.bits())
}

/// The stored form of `value`; a Bad status or a value that is no number is an error for this
/// node alone (the node is BAD, the connection is fine). The engine names the tag.
pub fn sample(value: &DataValue, source: TimestampSource) -> Result<Sample, DriverError> {
    let status = value.status.unwrap_or(StatusCode::Good);
    if status.is_bad() {
        return Err(DriverError::Device {
            code: status.bits(),
            message: status_name(status),
        });
    }
    let number = match &value.value {
        Some(variant) => number(variant).map_err(|why| DriverError::Device {
            code: StatusCode::BadTypeMismatch.bits(),
            message: why,
        })?,
        None => {
            return Err(DriverError::Device {
                code: StatusCode::BadNoData.bits(),
                message: format!("the server sent no value ({})", status_name(status)),
            })
        }
    };
    Ok(Sample {
        value: Some(number),
        quality: quality(status),
        timestamp: timestamp(value, source),
    })
}

/// A numeric or Boolean variant as f64 (64-bit integers beyond 2^53 lose their last digits).
pub fn number(variant: &Variant) -> Result<f64, String> {
    Ok(match variant {
        Variant::Boolean(b) => f64::from(u8::from(*b)),
        Variant::SByte(n) => f64::from(*n),
        Variant::Byte(n) => f64::from(*n),
        Variant::Int16(n) => f64::from(*n),
        Variant::UInt16(n) => f64::from(*n),
        Variant::Int32(n) => f64::from(*n),
        Variant::UInt32(n) => f64::from(*n),
        Variant::Int64(n) => *n as f64,
        Variant::UInt64(n) => *n as f64,
        Variant::Float(x) => f64::from(*x),
        Variant::Double(x) => *x,
        Variant::Empty => return Err("the node has no value (an empty variant)".into()),
        other => {
            return Err(format!(
                "the node's value is a {}; only numbers and Booleans are stored",
                variant_name(other)
            ))
        }
    })
}

fn variant_name(variant: &Variant) -> &'static str {
    match variant {
        Variant::String(_) => "String",
        Variant::DateTime(_) => "DateTime",
        Variant::Guid(_) => "Guid",
        Variant::StatusCode(_) => "StatusCode",
        Variant::ByteString(_) => "ByteString",
        Variant::XmlElement(_) => "XmlElement",
        Variant::QualifiedName(_) => "QualifiedName",
        Variant::LocalizedText(_) => "LocalizedText",
        Variant::NodeId(_) => "NodeId",
        Variant::ExpandedNodeId(_) => "ExpandedNodeId",
        Variant::ExtensionObject(_) => "structure (ExtensionObject)",
        Variant::Array(_) => "array",
        _ => "value of another type",
    }
}

/// The chosen timestamp of `value`, UTC, to the microsecond (what the tables hold).
pub fn timestamp(value: &DataValue, source: TimestampSource) -> Option<NaiveDateTime> {
    let usable = |t: &Option<DateTime>| t.filter(|t| !t.is_null()).map(|t| naive(&t));
    match source {
        TimestampSource::Source => {
            usable(&value.source_timestamp).or_else(|| usable(&value.server_timestamp))
        }
        TimestampSource::Server => usable(&value.server_timestamp),
        TimestampSource::Poll => None,
    }
}

fn naive(time: &DateTime) -> NaiveDateTime {
    let utc = time.as_chrono().naive_utc();
    // Microseconds, as stored; a leap second (nanos >= 1e9) is kept in its second.
    let micros = (utc.nanosecond() / 1_000).min(999_999);
    utc.with_nanosecond(micros * 1_000).unwrap_or(utc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(h: u32, us: u32) -> DateTime {
        let t = NaiveDate::from_ymd_opt(2024, 5, 6)
            .unwrap()
            .and_hms_micro_opt(h, 8, 9, us)
            .unwrap()
            .and_utc();
        DateTime::from(t)
    }

    fn value(variant: Variant, status: StatusCode) -> DataValue {
        DataValue {
            value: Some(variant),
            status: Some(status),
            source_timestamp: Some(at(7, 123_456)),
            server_timestamp: Some(at(8, 5)),
            ..DataValue::null()
        }
    }

    #[test]
    fn numbers_and_booleans_become_values() {
        for (variant, expected) in [
            (Variant::Double(-2.5), -2.5),
            (Variant::Float(2.25), 2.25),
            (Variant::Int16(-123), -123.0),
            (Variant::UInt16(65535), 65535.0),
            (Variant::Int32(-70000), -70000.0),
            (Variant::UInt32(4_000_000_000), 4e9),
            (Variant::Int64(-5), -5.0),
            (Variant::Byte(7), 7.0),
            (Variant::Boolean(true), 1.0),
            (Variant::Boolean(false), 0.0),
        ] {
            assert_eq!(number(&variant), Ok(expected), "{variant:?}");
        }
        let error = number(&Variant::from("text")).unwrap_err();
        assert!(error.contains("String"), "{error}");
    }

    #[test]
    fn status_codes_map_to_quality_and_keep_their_name() {
        let good = sample(
            &value(Variant::Double(1.0), StatusCode::Good),
            TimestampSource::Source,
        );
        assert_eq!(good.unwrap().quality, Quality::Good);
        let uncertain = sample(
            &value(Variant::Double(7.0), StatusCode::UncertainLastUsableValue),
            TimestampSource::Source,
        )
        .unwrap();
        assert_eq!(
            (uncertain.value, uncertain.quality),
            (Some(7.0), Quality::Uncertain)
        );
        let bad = sample(
            &value(Variant::Double(0.0), StatusCode::BadSensorFailure),
            TimestampSource::Source,
        )
        .unwrap_err();
        assert_eq!(bad.to_string(), "BadSensorFailure (0x808C0000)");
        assert!(!bad.needs_reconnect(), "a Bad node keeps the connection");
        let unknown = sample(
            &DataValue {
                status: Some(StatusCode::BadNodeIdUnknown),
                ..DataValue::null()
            },
            TimestampSource::Source,
        )
        .unwrap_err();
        assert!(
            unknown.to_string().contains("BadNodeIdUnknown"),
            "{unknown}"
        );
    }

    #[test]
    fn the_timestamp_is_the_chosen_one_to_the_microsecond() {
        let v = value(Variant::Double(1.0), StatusCode::Good);
        let source = timestamp(&v, TimestampSource::Source).unwrap();
        assert_eq!(source.to_string(), "2024-05-06 07:08:09.123456");
        let server = timestamp(&v, TimestampSource::Server).unwrap();
        assert_eq!(server.to_string(), "2024-05-06 08:08:09.000005");
        assert_eq!(timestamp(&v, TimestampSource::Poll), None);
        // No source timestamp: the server's.
        let v = DataValue {
            source_timestamp: None,
            ..v
        };
        assert_eq!(timestamp(&v, TimestampSource::Source), Some(server));
        let v = DataValue {
            server_timestamp: Some(DateTime::null()),
            ..v
        };
        assert_eq!(timestamp(&v, TimestampSource::Source), None);
        assert_eq!("server".parse(), Ok(TimestampSource::Server));
        assert!("device"
            .parse::<TimestampSource>()
            .unwrap_err()
            .contains("source, server, poll"));
    }
}
