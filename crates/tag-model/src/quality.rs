use std::fmt;
use std::str::FromStr;

use crate::{Field, TagValueError};

/// The quality a PLC driver reports with a value, as OPC and most historians do.
///
/// Its text form is `GOOD`, `BAD` or `UNCERTAIN`; parsing ignores case.
///
/// ```
/// use tag_model::Quality;
///
/// assert_eq!("good".parse::<Quality>().unwrap(), Quality::Good);
/// assert_eq!(Quality::Uncertain.to_string(), "UNCERTAIN");
/// assert!("OK".parse::<Quality>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Quality {
    /// The value was read and is trustworthy.
    #[default]
    Good,
    /// The read failed; the value is absent or must not be used.
    Bad,
    /// The value was read but the device flags it as doubtful.
    Uncertain,
}

impl Quality {
    /// Every quality, in declaration order.
    pub const ALL: [Quality; 3] = [Quality::Good, Quality::Bad, Quality::Uncertain];

    /// The canonical upper-case text stored in the database and in backup files.
    pub const fn as_str(self) -> &'static str {
        match self {
            Quality::Good => "GOOD",
            Quality::Bad => "BAD",
            Quality::Uncertain => "UNCERTAIN",
        }
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Quality {
    type Err = TagValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Quality::ALL
            .into_iter()
            .find(|quality| quality.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| TagValueError::Invalid {
                field: Field::Quality,
                value: crate::excerpt(text),
                reason: "must be GOOD, BAD or UNCERTAIN",
            })
    }
}

impl serde::Serialize for Quality {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Quality {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling_case_insensitively() {
        for quality in Quality::ALL {
            let upper = quality.as_str();
            assert_eq!(upper.parse::<Quality>(), Ok(quality));
            assert_eq!(upper.to_lowercase().parse::<Quality>(), Ok(quality));
        }
        assert_eq!("Uncertain".parse::<Quality>(), Ok(Quality::Uncertain));
    }

    #[test]
    fn rejects_unknown_text_naming_the_field_and_value() {
        let error = " good".parse::<Quality>().unwrap_err();
        assert_eq!(error.field(), Field::Quality);
        let message = error.to_string();
        assert!(message.contains("quality"), "{message}");
        assert!(message.contains("\" good\""), "{message}");
        assert!("".parse::<Quality>().is_err());
    }

    #[test]
    fn default_is_good() {
        assert_eq!(Quality::default(), Quality::Good);
    }
}
