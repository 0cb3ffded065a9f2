//! Typed access to a `[[plc]]` table's driver options, with the messages every driver shares.

use std::time::Duration;

/// The driver options of one `[[plc]]` entry. Unknown names are refused before any driver
/// sees them, so a misspelt option is reported as unknown, whatever its value.
pub struct Options<'a> {
    table: &'a toml::Table,
}

impl<'a> Options<'a> {
    /// Checks the names in `table` against `known`.
    pub fn new(table: &'a toml::Table, driver: &str, known: &[&str]) -> Result<Self, String> {
        if let Some(key) = table.keys().find(|key| !known.contains(&key.as_str())) {
            return Err(format!(
                "{key}: unknown option of the {driver} driver (known: plc_code, driver{}{})",
                if known.is_empty() { "" } else { ", " },
                known.join(", ")
            ));
        }
        Ok(Options { table })
    }

    /// A whole number in `min..=max`, if given.
    pub fn integer(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>, String> {
        let Some(value) = self.table.get(key) else {
            return Ok(None);
        };
        match value.as_integer() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            Some(n) => Err(format!(
                "{key}: must be a whole number from {min} to {max}, not {n}"
            )),
            None => Err(format!(
                "{key}: must be a whole number from {min} to {max} (found {})",
                value.type_str()
            )),
        }
    }

    /// A duration in milliseconds (`*_ms`), at least `min_ms`.
    pub fn millis(&self, key: &str, min_ms: i64) -> Result<Option<Duration>, String> {
        Ok(self
            .integer(key, min_ms, 86_400_000)?
            .map(|ms| Duration::from_millis(ms as u64)))
    }

    /// A string, if given.
    pub fn string(&self, key: &str) -> Result<Option<&'a str>, String> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(format!(
                "{key}: must be a string (found {})",
                other.type_str()
            )),
        }
    }

    /// A string that must be given.
    pub fn required_string(&self, key: &str) -> Result<&'a str, String> {
        self.string(key)?
            .ok_or_else(|| format!("{key}: is required by this driver"))
    }

    /// A value parsed from a string, if given.
    pub fn parsed<T: std::str::FromStr<Err = String>>(
        &self,
        key: &str,
    ) -> Result<Option<T>, String> {
        self.string(key)?
            .map(|text| text.parse().map_err(|why| format!("{key}: {why}")))
            .transpose()
    }
}
