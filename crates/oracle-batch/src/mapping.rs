//! The column mapping: which columns of the target table the writer fills, and how each is
//! formed from a tag value. Every sink (Oracle, PostgreSQL, SQLite) builds its SQL from it,
//! so a plant's own historian table works without a view or a trigger.
//!
//! Written as `column=template` pairs separated by commas (TABLE_COLUMNS):
//!
//! ```text
//! tag_name={plc_code}.{tag_address}, tag_value={value:text}, timestamp={timestamp}, quality={quality}
//! ```
//!
//! | placeholder | becomes |
//! |---|---|
//! | `{timestamp}` | the value's timestamp (TIMESTAMP) |
//! | `{value}` | the value as a number (NULL when absent) |
//! | `{value:text}` | the value as text, e.g. `1234.5`, `12345.0`, `1e-7` (NULL when absent) |
//! | `{quality}` | `GOOD`, `BAD` or `UNCERTAIN` |
//! | `{plc_code}`, `{tag_address}` | the codes, alone or with text around them: `{plc_code}.{tag_address}` |
//! | `{now}` | the time of writing, in TIMESTAMP_ZONE (for a column with no default) |
//! | anything else | that text, for every row (a constant column) |
//!
//! `{timestamp}`, `{value}` / `{value:text}`, `{quality}` and `{now}` stand alone in their
//! column; `{plc_code}` and `{tag_address}` must both appear. The key of a row (what makes a
//! resent row a duplicate) is the timestamp column and the columns formed from the codes;
//! the table's primary key should be exactly those columns.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use chrono::NaiveDateTime;
use tag_model::{TagValue, TimestampZone};

use crate::sink::{stored_value, SinkError};

/// How one column is formed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColumnSource {
    /// `{timestamp}`.
    Timestamp,
    /// `{now}`: the time of writing.
    Now,
    /// `{value}`: a number.
    Value,
    /// `{value:text}`: the number as text.
    ValueText,
    /// `{quality}`.
    Quality,
    /// Text: literals, `{plc_code}` and `{tag_address}`.
    Text(Vec<TextPiece>),
}

/// A piece of a text column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TextPiece {
    /// Written as is.
    Literal(String),
    /// `{plc_code}`.
    PlcCode,
    /// `{tag_address}`.
    TagAddress,
}

/// One column of the target table and how it is formed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappedColumn {
    /// The column's name, as in the table.
    pub name: String,
    /// How its value is formed.
    pub source: ColumnSource,
}

/// The columns a sink fills. [`ColumnMapping::standard`] is the layout of
/// `sql/*/create_tag_values.sql`.
///
/// ```
/// use oracle_batch::ColumnMapping;
///
/// let tag_data: ColumnMapping =
///     "tag_name={plc_code}.{tag_address}, tag_value={value:text}, timestamp={timestamp}, \
///      quality={quality}".parse()?;
/// assert_eq!(tag_data.names(), ["tag_name", "tag_value", "timestamp", "quality"]);
/// assert!(!tag_data.is_standard());
/// assert!("tag_value={value}".parse::<ColumnMapping>().is_err()); // no timestamp, no codes
/// # Ok::<(), String>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnMapping {
    columns: Vec<MappedColumn>,
    zone: TimestampZone,
}

impl Default for ColumnMapping {
    fn default() -> Self {
        ColumnMapping::standard()
    }
}

impl ColumnMapping {
    /// `timestamp`, `plc_code`, `tag_address`, `tag_value` (a number), `quality`: the shipped
    /// `TAG_VALUES` layout (`inserted_at` left to its default).
    pub fn standard() -> Self {
        ColumnMapping {
            columns: vec![
                column("timestamp", ColumnSource::Timestamp),
                column("plc_code", ColumnSource::Text(vec![TextPiece::PlcCode])),
                column(
                    "tag_address",
                    ColumnSource::Text(vec![TextPiece::TagAddress]),
                ),
                column("tag_value", ColumnSource::Value),
                column("quality", ColumnSource::Quality),
            ],
            zone: TimestampZone::Utc,
        }
    }

    /// The same mapping, with `{now}` read from `zone`'s clock.
    pub fn with_zone(mut self, zone: TimestampZone) -> Self {
        self.zone = zone;
        self
    }

    /// The same mapping plus a column.
    pub fn with_column(mut self, name: &str, source: ColumnSource) -> Result<Self, String> {
        self.columns.push(column(name, source));
        self.check()?;
        Ok(self)
    }

    /// Whether this is [`ColumnMapping::standard`] (whatever the zone).
    pub fn is_standard(&self) -> bool {
        self.columns == ColumnMapping::standard().columns
    }

    /// The columns, in the order given.
    pub fn columns(&self) -> &[MappedColumn] {
        &self.columns
    }

    /// The column names, in the order given.
    pub fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// The zone of `{now}`.
    pub fn zone(&self) -> TimestampZone {
        self.zone
    }

    /// The time `{now}` stands for, now.
    pub(crate) fn now(&self) -> NaiveDateTime {
        self.zone.now()
    }

    /// The columns that identify a row: the timestamp and those formed from the codes.
    pub fn key_columns(&self) -> Vec<&MappedColumn> {
        self.columns.iter().filter(|c| c.is_key()).collect()
    }

    /// The column holding the value.
    pub fn value_column(&self) -> &MappedColumn {
        self.columns
            .iter()
            .find(|c| matches!(c.source, ColumnSource::Value | ColumnSource::ValueText))
            .unwrap_or(&self.columns[0]) // checked at construction: there is one
    }

    /// The column holding the quality, if the table has one.
    pub fn quality_column(&self) -> Option<&MappedColumn> {
        self.columns
            .iter()
            .find(|c| c.source == ColumnSource::Quality)
    }

    /// What a read-back selects, in order: the key columns, the value, the quality if any.
    pub(crate) fn read_back_columns(&self) -> Vec<&MappedColumn> {
        let mut columns = self.key_columns();
        columns.push(self.value_column());
        columns.extend(self.quality_column());
        columns
    }

    /// The columns holding exactly `{plc_code}` and exactly `{tag_address}`, if any: then
    /// whole rows can be read back (for tests and checks).
    pub(crate) fn code_columns(&self) -> Option<(&MappedColumn, &MappedColumn)> {
        let only = |piece: TextPiece| {
            self.columns
                .iter()
                .find(move |c| c.source == ColumnSource::Text(vec![piece.clone()]))
        };
        Some((only(TextPiece::PlcCode)?, only(TextPiece::TagAddress)?))
    }

    /// The timestamp column.
    pub(crate) fn timestamp_column(&self) -> &MappedColumn {
        self.columns
            .iter()
            .find(|c| c.source == ColumnSource::Timestamp)
            .unwrap_or(&self.columns[0]) // checked at construction: there is one
    }

    /// The key of `value` as the table stores it.
    pub(crate) fn key_of(&self, value: &TagValue) -> Vec<KeyCell> {
        self.key_columns()
            .iter()
            .map(
                |column| match column.cell(value, NaiveDateTime::default()) {
                    Cell::Timestamp(at) => KeyCell::Timestamp(at),
                    Cell::Text(text) => {
                        KeyCell::Text(text.map(Cow::into_owned).unwrap_or_default())
                    }
                    Cell::Number(_) => KeyCell::Text(String::new()), // never a key column
                },
            )
            .collect()
    }

    /// The stored rows for the offered `keys`: each read-back row (its key cells, value and
    /// quality as the table has them) is matched to the offered row with that key, whose
    /// codes and timestamp it takes. Rows that match no key are ignored.
    pub(crate) fn rebuild_stored(
        &self,
        keys: &[&TagValue],
        rows: Vec<StoredRow>,
    ) -> Result<Vec<TagValue>, SinkError> {
        let offered: HashMap<Vec<KeyCell>, &TagValue> =
            keys.iter().map(|key| (self.key_of(key), *key)).collect();
        let mut stored = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(key) = offered.get(&row.key) else {
                continue;
            };
            let value = match row.value {
                StoredValue::Number(number) => number,
                StoredValue::Text(text) => text.as_deref().and_then(parse_value_text),
            };
            let quality = match row.quality {
                Some(text) => text,
                // No quality column: a repeat can only differ in its value.
                None => key.quality().as_str().to_owned(),
            };
            stored.push(stored_value(
                key.timestamp(),
                key.plc_code_arc().clone(),
                key.tag_address_arc().clone(),
                value,
                &quality,
            )?);
        }
        Ok(stored)
    }

    /// Checks the mapping against the table's columns (from the database's dictionary):
    /// every mapped column exists, and no column the writer leaves out would refuse every
    /// row (NOT NULL without a default). The error names the column.
    pub fn check_table(&self, table: &str, columns: &[TableColumn]) -> Result<(), String> {
        if columns.is_empty() {
            return Err(format!(
                "table {table} does not exist, or the user cannot see it"
            ));
        }
        let has = |name: &str| columns.iter().any(|c| c.name.eq_ignore_ascii_case(name));
        let missing: Vec<&str> = self
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .filter(|name| !has(name))
            .collect();
        if !missing.is_empty() {
            let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
            return Err(format!(
                "table {table} has no column {} (its columns: {}): check TABLE_COLUMNS",
                missing.join(", "),
                names.join(", ")
            ));
        }
        let mapped = |name: &str| {
            self.columns
                .iter()
                .any(|c| c.name.eq_ignore_ascii_case(name))
        };
        if let Some(unfilled) = columns.iter().find(|c| c.required && !mapped(&c.name)) {
            return Err(format!(
                "column {} of table {table} is NOT NULL without a default and TABLE_COLUMNS does \
                 not fill it, so the database would refuse every row: add it to TABLE_COLUMNS \
                 ({}={{now}}, say, or a constant), or give it a default",
                unfilled.name, unfilled.name
            ));
        }
        Ok(())
    }

    fn check(&self) -> Result<(), String> {
        let count = |pred: &dyn Fn(&ColumnSource) -> bool| {
            self.columns.iter().filter(|c| pred(&c.source)).count()
        };
        let mut seen: Vec<String> = Vec::new();
        for column in &self.columns {
            if !is_identifier(&column.name) {
                return Err(format!(
                    "column name {:?} is not a valid identifier: a letter followed by letters, \
                     digits or _ (at most 128)",
                    column.name
                ));
            }
            let lower = column.name.to_ascii_lowercase();
            if seen.contains(&lower) {
                return Err(format!("column {} is named twice", column.name));
            }
            seen.push(lower);
        }
        match count(&|s| *s == ColumnSource::Timestamp) {
            1 => {}
            0 => return Err("no column takes {timestamp}: one must".into()),
            _ => return Err("{timestamp} goes into one column only".into()),
        }
        match count(&|s| matches!(s, ColumnSource::Value | ColumnSource::ValueText)) {
            1 => {}
            0 => return Err("no column takes {value} or {value:text}: one must".into()),
            _ => return Err("{value} goes into one column only".into()),
        }
        if count(&|s| *s == ColumnSource::Quality) > 1 {
            return Err("{quality} goes into one column only".into());
        }
        let uses = |piece: &TextPiece| {
            self.columns
                .iter()
                .any(|c| matches!(&c.source, ColumnSource::Text(p) if p.contains(piece)))
        };
        for (piece, name) in [
            (TextPiece::PlcCode, "plc_code"),
            (TextPiece::TagAddress, "tag_address"),
        ] {
            if !uses(&piece) {
                return Err(format!(
                    "no column takes {{{name}}}: the codes identify a value, and without them a \
                     resent value could not be recognised as stored"
                ));
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for ColumnMapping {
    type Err = String;

    /// Parses `column=template, column=template, ...` (see the module documentation).
    fn from_str(text: &str) -> Result<Self, String> {
        let mut columns = Vec::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, template)) = pair.split_once('=') else {
                return Err(format!(
                    "{pair:?} is not column=template (columns are separated by commas)"
                ));
            };
            let (name, template) = (name.trim(), template.trim());
            let source = parse_template(template).map_err(|e| format!("column {name}: {e}"))?;
            columns.push(column(name, source));
        }
        if columns.is_empty() {
            return Err("no columns given".into());
        }
        let mapping = ColumnMapping {
            columns,
            zone: TimestampZone::Utc,
        };
        mapping.check()?;
        Ok(mapping)
    }
}

impl fmt::Display for ColumnMapping {
    /// As TABLE_COLUMNS spells it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pairs: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{}={}", c.name, c.template()))
            .collect();
        f.write_str(&pairs.join(", "))
    }
}

fn column(name: &str, source: ColumnSource) -> MappedColumn {
    MappedColumn {
        name: name.to_owned(),
        source,
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_template(template: &str) -> Result<ColumnSource, String> {
    if template.is_empty() {
        return Err("the template is empty".into());
    }
    let mut pieces = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        match rest.find(['{', '}']) {
            Some(0) if rest.starts_with('{') => {
                let Some(end) = rest.find('}') else {
                    return Err(format!("{template:?}: a {{ without its }}"));
                };
                let name = rest[1..end].trim();
                let whole = |source: ColumnSource| {
                    if template.trim() == &rest[..=end] {
                        Ok(source)
                    } else {
                        Err(format!(
                            "{{{name}}} must stand alone in its column (it is read back, or \
                             has its own type)"
                        ))
                    }
                };
                match name {
                    "timestamp" => return whole(ColumnSource::Timestamp),
                    "now" => return whole(ColumnSource::Now),
                    "value" => return whole(ColumnSource::Value),
                    "value:text" => return whole(ColumnSource::ValueText),
                    "quality" => return whole(ColumnSource::Quality),
                    "plc_code" => pieces.push(TextPiece::PlcCode),
                    "tag_address" => pieces.push(TextPiece::TagAddress),
                    other => {
                        return Err(format!(
                            "unknown placeholder {{{other}}}: use {{timestamp}}, {{plc_code}}, \
                             {{tag_address}}, {{value}}, {{value:text}}, {{quality}} or {{now}}"
                        ))
                    }
                }
                rest = &rest[end + 1..];
            }
            Some(0) => return Err(format!("{template:?}: a }} without its {{")),
            Some(at) => {
                pieces.push(TextPiece::Literal(rest[..at].to_owned()));
                rest = &rest[at..];
            }
            None => {
                pieces.push(TextPiece::Literal(rest.to_owned()));
                rest = "";
            }
        }
    }
    Ok(ColumnSource::Text(pieces))
}

impl MappedColumn {
    /// Whether the column is part of a row's key.
    pub fn is_key(&self) -> bool {
        match &self.source {
            ColumnSource::Timestamp => true,
            ColumnSource::Text(pieces) => pieces
                .iter()
                .any(|p| matches!(p, TextPiece::PlcCode | TextPiece::TagAddress)),
            _ => false,
        }
    }

    /// The template, as TABLE_COLUMNS spells it.
    pub fn template(&self) -> String {
        match &self.source {
            ColumnSource::Timestamp => "{timestamp}".into(),
            ColumnSource::Now => "{now}".into(),
            ColumnSource::Value => "{value}".into(),
            ColumnSource::ValueText => "{value:text}".into(),
            ColumnSource::Quality => "{quality}".into(),
            ColumnSource::Text(pieces) => pieces
                .iter()
                .map(|p| match p {
                    TextPiece::Literal(text) => text.as_str(),
                    TextPiece::PlcCode => "{plc_code}",
                    TextPiece::TagAddress => "{tag_address}",
                })
                .collect(),
        }
    }

    /// What kind of value the column gets.
    pub(crate) fn kind(&self) -> CellKind {
        match &self.source {
            ColumnSource::Timestamp | ColumnSource::Now => CellKind::Timestamp,
            ColumnSource::Value => CellKind::Number,
            ColumnSource::ValueText => CellKind::Text { max_bytes: 32 },
            ColumnSource::Quality => CellKind::Text { max_bytes: 20 },
            ColumnSource::Text(pieces) => CellKind::Text {
                max_bytes: pieces
                    .iter()
                    .map(|p| match p {
                        TextPiece::Literal(text) => text.len(),
                        TextPiece::PlcCode => tag_model::PLC_CODE_MAX_BYTES,
                        TextPiece::TagAddress => tag_model::TAG_ADDRESS_MAX_BYTES,
                    })
                    .sum::<usize>()
                    .max(1),
            },
        }
    }

    /// The column's value for `value`, written at `now`.
    pub(crate) fn cell<'a>(&self, value: &'a TagValue, now: NaiveDateTime) -> Cell<'a> {
        match &self.source {
            ColumnSource::Timestamp => Cell::Timestamp(value.timestamp()),
            ColumnSource::Now => Cell::Timestamp(now),
            ColumnSource::Value => Cell::Number(value.value()),
            ColumnSource::ValueText => {
                Cell::Text(value.value().map(|v| Cow::Owned(format_value_text(v))))
            }
            ColumnSource::Quality => Cell::Text(Some(Cow::Borrowed(value.quality().as_str()))),
            ColumnSource::Text(pieces) => Cell::Text(Some(match pieces.as_slice() {
                [TextPiece::PlcCode] => Cow::Borrowed(value.plc_code()),
                [TextPiece::TagAddress] => Cow::Borrowed(value.tag_address()),
                [TextPiece::Literal(text)] => Cow::Owned(text.clone()),
                pieces => {
                    let mut text = String::new();
                    for piece in pieces {
                        text.push_str(match piece {
                            TextPiece::Literal(literal) => literal,
                            TextPiece::PlcCode => value.plc_code(),
                            TextPiece::TagAddress => value.tag_address(),
                        });
                    }
                    Cow::Owned(text)
                }
            })),
        }
    }
}

/// The kind of a column's value, for bind types and casts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CellKind {
    Timestamp,
    Number,
    /// Text of at most this many bytes.
    Text {
        max_bytes: usize,
    },
}

/// One column's value for one row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cell<'a> {
    Timestamp(NaiveDateTime),
    Number(Option<f64>),
    Text(Option<Cow<'a, str>>),
}

/// One cell of a row's key, as compared after a read-back.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum KeyCell {
    Timestamp(NaiveDateTime),
    Text(String),
}

/// A stored value as read back.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum StoredValue {
    Number(Option<f64>),
    Text(Option<String>),
}

/// A row read back: its key cells, value and quality (when the table has a quality column).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StoredRow {
    pub(crate) key: Vec<KeyCell>,
    pub(crate) value: StoredValue,
    pub(crate) quality: Option<String>,
}

/// A number as `{value:text}` writes it: the shortest text that reads back as the same
/// number (`1234.5`, `12345.0`, `1e-7`, `1e125`).
pub fn format_value_text(value: f64) -> String {
    format!("{value:?}")
}

/// The number in a `{value:text}` column; `None` for an empty or unreadable text.
pub(crate) fn parse_value_text(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// A column of the target table, from the database's dictionary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableColumn {
    /// The column's name.
    pub name: String,
    /// NOT NULL without a default (and not generated): a row that leaves it out is refused.
    pub required: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tag_model::Quality;

    /// The standard layout, as TABLE_COLUMNS would spell it.
    const STANDARD: &str =
        "timestamp={timestamp}, plc_code={plc_code}, tag_address={tag_address}, \
                            tag_value={value}, quality={quality}";

    const TAG_DATA: &str = "tag_name={plc_code}.{tag_address}, tag_value={value:text}, \
                            timestamp={timestamp}, quality={quality}";

    fn value(v: Option<f64>) -> TagValue {
        let at = chrono::NaiveDate::from_ymd_opt(2025, 11, 2)
            .unwrap()
            .and_hms_micro_opt(14, 30, 45, 123_456)
            .unwrap();
        TagValue::new(at, "PLC01", "D100", v, Quality::Good).unwrap()
    }

    #[test]
    fn the_standard_mapping_is_the_shipped_layout() {
        let standard = ColumnMapping::standard();
        assert_eq!(
            standard.names(),
            [
                "timestamp",
                "plc_code",
                "tag_address",
                "tag_value",
                "quality"
            ]
        );
        assert_eq!(
            standard.to_string().replace(' ', ""),
            STANDARD.replace(' ', "")
        );
        assert_eq!(STANDARD.parse::<ColumnMapping>().unwrap(), standard);
        assert!(standard.is_standard());
        let keys: Vec<&str> = standard
            .key_columns()
            .into_iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(keys, ["timestamp", "plc_code", "tag_address"]);
    }

    #[test]
    fn the_tag_data_mapping_forms_each_column() {
        let mapping: ColumnMapping = TAG_DATA.parse().unwrap();
        assert_eq!(mapping.to_string(), TAG_DATA);
        let row = value(Some(12345.0));
        let cells: Vec<Cell<'_>> = mapping
            .columns()
            .iter()
            .map(|c| c.cell(&row, NaiveDateTime::default()))
            .collect();
        assert_eq!(
            cells,
            [
                Cell::Text(Some("PLC01.D100".into())),
                Cell::Text(Some("12345.0".into())),
                Cell::Timestamp(row.timestamp()),
                Cell::Text(Some("GOOD".into())),
            ]
        );
        let keys: Vec<&str> = mapping
            .key_columns()
            .into_iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(keys, ["tag_name", "timestamp"]);
        assert_eq!(mapping.value_column().name, "tag_value");
        assert_eq!(
            mapping.columns()[0].kind(),
            CellKind::Text { max_bytes: 151 }
        );
        assert!(mapping.code_columns().is_none());
        // An absent value is NULL, in either form.
        assert_eq!(
            mapping.columns()[1].cell(&value(None), NaiveDateTime::default()),
            Cell::Text(None)
        );
    }

    #[test]
    fn value_text_round_trips() {
        for v in [1234.5, 12345.0, 1e-7, -0.25, 9.99e125, 1.0 / 3.0, 0.0] {
            let text = format_value_text(v);
            assert_eq!(parse_value_text(&text), Some(v), "{text}");
        }
        assert_eq!(format_value_text(12345.0), "12345.0");
        assert_eq!(parse_value_text(""), None);
        assert_eq!(parse_value_text("ON"), None);
        assert_eq!(parse_value_text("NaN"), None);
    }

    #[test]
    fn bad_mappings_say_what_is_wrong() {
        let cases = [
            ("", "no columns given"),
            ("tag_name", "is not column=template"),
            (
                "t={timestamp}, v={value}, p={plc_code}",
                "no column takes {tag_address}",
            ),
            (
                "t={timestamp}, c={plc_code}{tag_address}",
                "no column takes {value}",
            ),
            (
                "v={value}, c={plc_code}{tag_address}",
                "no column takes {timestamp}",
            ),
            (
                "t={timestamp}, v={value}, w={value:text}, c={plc_code}{tag_address}",
                "{value} goes into one column only",
            ),
            (
                "t={timestamp}, v={value} kg, c={plc_code}{tag_address}",
                "column v: {value} must stand alone",
            ),
            (
                "t={timestamp}, v={value}, c={plc_code}-{tagaddress}",
                "column c: unknown placeholder {tagaddress}",
            ),
            ("t={timestamp}, v={value}, c={plc_code", "a { without its }"),
            (
                "t={timestamp}, v={value}, c={plc_code}{tag_address}, C=x",
                "column C is named twice",
            ),
            (
                "t={timestamp}, v={value}, tag-name={plc_code}{tag_address}",
                "column name \"tag-name\" is not a valid identifier",
            ),
            (
                "t={timestamp}, v={value}, c={plc_code}{tag_address}, d=",
                "the template is empty",
            ),
        ];
        for (text, expected) in cases {
            let error = text.parse::<ColumnMapping>().unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn the_table_is_checked_by_name_and_required_columns() {
        let mapping: ColumnMapping = TAG_DATA.parse().unwrap();
        let table = |names: &[(&str, bool)]| -> Vec<TableColumn> {
            names
                .iter()
                .map(|&(name, required)| TableColumn {
                    name: name.into(),
                    required,
                })
                .collect()
        };
        let good = table(&[
            ("TAG_NAME", true),
            ("TAG_VALUE", false),
            ("TIMESTAMP", true),
            ("QUALITY", true),
            ("INSERTED_AT", false),
        ]);
        mapping.check_table("TAG_DATA", &good).unwrap();
        let error = mapping
            .check_table(
                "TAG_DATA",
                &table(&[("TAG_NAME", true), ("TIMESTAMP", true), ("QUALITY", true)]),
            )
            .unwrap_err();
        assert_eq!(
            error,
            "table TAG_DATA has no column tag_value (its columns: TAG_NAME, TIMESTAMP, QUALITY): \
             check TABLE_COLUMNS"
        );
        let mut with_site = good.clone();
        with_site.push(TableColumn {
            name: "SITE".into(),
            required: true,
        });
        let error = mapping.check_table("TAG_DATA", &with_site).unwrap_err();
        assert!(
            error.starts_with("column SITE of table TAG_DATA is NOT NULL"),
            "{error}"
        );
        let error = mapping.check_table("TAG_DATA", &[]).unwrap_err();
        assert!(error.contains("does not exist"), "{error}");
    }

    #[test]
    fn read_back_rows_are_matched_to_the_offered_keys() {
        let mapping: ColumnMapping = TAG_DATA.parse().unwrap();
        let offered = [value(Some(1.5)), value(None)];
        let other = TagValue::new(
            offered[0].timestamp(),
            "PLC02",
            "D7",
            Some(2.0),
            Quality::Bad,
        )
        .unwrap();
        let keys: Vec<&TagValue> = vec![&offered[0], &other];
        let rows = vec![
            StoredRow {
                key: mapping.key_of(&other),
                value: StoredValue::Text(Some("3.0".into())),
                quality: Some("UNCERTAIN".into()),
            },
            StoredRow {
                key: vec![
                    KeyCell::Text("PLC09.X".into()),
                    KeyCell::Timestamp(other.timestamp()),
                ],
                value: StoredValue::Text(None),
                quality: Some("GOOD".into()),
            },
        ];
        let stored = mapping.rebuild_stored(&keys, rows).unwrap();
        assert_eq!(stored.len(), 1, "the unknown key is ignored");
        assert_eq!(
            (stored[0].plc_code(), stored[0].value(), stored[0].quality()),
            ("PLC02", Some(3.0), Quality::Uncertain)
        );
        // Without a quality column the offered quality stands.
        let no_quality: ColumnMapping = "n={plc_code}.{tag_address}, v={value}, t={timestamp}"
            .parse()
            .unwrap();
        let rows = vec![StoredRow {
            key: no_quality.key_of(&other),
            value: StoredValue::Number(Some(2.0)),
            quality: None,
        }];
        let stored = no_quality.rebuild_stored(&[&other], rows).unwrap();
        assert_eq!(stored, std::slice::from_ref(&other));
    }
}
