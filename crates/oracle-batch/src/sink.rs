//! The contract every database implements.

use std::fmt;

use tag_model::TagValue;

pub use crate::conflict::RowConflict;

/// A database that stores batches of tag values.
///
/// Writes must be idempotent through the primary key (plc_code, tag_address, timestamp): a
/// row already stored is never stored twice, so any batch may be resent after a failure whose
/// outcome is unknown. It is reported as a duplicate when it repeats the stored row, or as a
/// conflict (with the stored row) when its value or quality differs: the stored row stays.
///
/// A sink belongs to one writer thread at a time (`&mut self`); a writer with several threads
/// gets one sink each (clones sharing a connection pool, say).
pub trait Sink: Send {
    /// Writes one batch in one transaction. Rows the database refuses for their data are
    /// reported in [`WriteReport::rejected`] while the rest are committed; a failure of the
    /// whole batch (connection lost, table missing) is an `Err` and nothing was committed.
    fn write_batch(&mut self, batch: &[TagValue]) -> Result<WriteReport, SinkError>;

    /// A cheap check that the database is reachable and the table exists.
    fn probe(&mut self) -> Result<(), SinkError>;

    /// The kind of database, for log lines such as "Oracle write failed": `Oracle`,
    /// `SQLite`, `PostgreSQL`.
    fn kind(&self) -> &'static str;

    /// Where the sink writes, for logs: host, service or file and table. Never a password.
    fn describe(&self) -> String;
}

/// What a connection check (`test_oracle_connection`) needs beyond writing: the server's
/// version, and a row inserted and read back without leaving a trace.
pub trait SinkCheck: Sink {
    /// The server or library version, e.g. `Oracle Database 19c ...` or `SQLite 3.50.2`.
    fn server_version(&mut self) -> Result<String, SinkError>;
    /// Inserts `row` the way the writer does and reads it back, in one transaction that is
    /// then rolled back: nothing stays in the table, and no DELETE privilege is needed.
    fn check_row(&mut self, row: &TagValue) -> Result<RowCheck, SinkError>;
}

/// What [`SinkCheck::check_row`] saw before it rolled back.
#[derive(Clone, Debug, PartialEq)]
pub struct RowCheck {
    /// Rows the INSERT reported (1; 0 when the key was stored already).
    pub inserted: usize,
    /// The row read back by its key.
    pub stored: Option<TagValue>,
}

/// Rebuilds a tag value from a row read back from a database. A row that breaks the model
/// (edited by another program, say) is a set-up error that says what is wrong.
pub(crate) fn stored_value(
    timestamp: chrono::NaiveDateTime,
    plc_code: impl Into<std::sync::Arc<str>>,
    tag_address: impl Into<std::sync::Arc<str>>,
    value: Option<f64>,
    quality: &str,
) -> Result<TagValue, SinkError> {
    let invalid = |e: tag_model::TagValueError| SinkError::setup(format!("stored row: {e}"));
    let quality = quality.parse().map_err(invalid)?;
    TagValue::new(timestamp, plc_code, tag_address, value, quality).map_err(invalid)
}

impl<S: Sink + ?Sized> Sink for Box<S> {
    fn write_batch(&mut self, batch: &[TagValue]) -> Result<WriteReport, SinkError> {
        (**self).write_batch(batch)
    }
    fn probe(&mut self) -> Result<(), SinkError> {
        (**self).probe()
    }
    fn kind(&self) -> &'static str {
        (**self).kind()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

/// What happened to the rows of a batch that was written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteReport {
    /// Rows inserted.
    pub written: usize,
    /// Rows already stored with the same value and quality (same primary key): they count as
    /// stored.
    pub duplicates: usize,
    /// Rows not stored because their primary key is stored with another value or quality,
    /// with the stored row (see [`settle_repeats`](crate::settle_repeats)). A sink that
    /// cannot tell may count them as duplicates; the built-in sinks all tell.
    pub conflicts: Vec<RowConflict>,
    /// Rows the database refused, with its reason.
    pub rejected: Vec<RowRejection>,
}

impl WriteReport {
    /// All rows of a batch of `rows` accounted for?
    pub fn accounts_for(&self, rows: usize) -> bool {
        self.written + self.duplicates + self.conflicts.len() + self.rejected.len() == rows
    }
}

/// One row the database refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowRejection {
    /// Index of the row in the batch.
    pub index: usize,
    /// The database's error text.
    pub reason: String,
}

/// Whether a failed batch is worth retrying soon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The database is unreachable, restarting or overloaded: retry with backoff.
    Transient,
    /// Configuration or installation is wrong (no client library, bad credentials, missing
    /// table): retrying at speed will not help; an operator must act.
    Setup,
}

/// What failed, where a sink can tell; for tools that report it in their own words and exit
/// codes (`test_oracle_connection`). [`FailureKind`] says what to do; this says what is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureCause {
    /// The database's client library is not installed or not usable (Oracle Instant Client).
    ClientLibrary,
    /// The database refused the login (wrong user or password, account locked or expired).
    Credentials,
    /// Anything else; [`FailureKind`] tells a configuration error from an unreachable
    /// database.
    Other,
}

/// A batch (or probe, or connection) that failed as a whole.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    kind: FailureKind,
    cause: FailureCause,
    message: String,
}

impl SinkError {
    /// A transient failure: retry later.
    pub fn transient(message: impl Into<String>) -> Self {
        SinkError {
            kind: FailureKind::Transient,
            cause: FailureCause::Other,
            message: message.into(),
        }
    }

    /// A set-up failure: say what to fix.
    pub fn setup(message: impl Into<String>) -> Self {
        SinkError {
            kind: FailureKind::Setup,
            cause: FailureCause::Other,
            message: message.into(),
        }
    }

    /// The same error, saying what failed.
    pub fn with_cause(self, cause: FailureCause) -> Self {
        SinkError { cause, ..self }
    }

    /// Transient or set-up.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// What failed, where the sink could tell.
    pub fn cause(&self) -> FailureCause {
        self.cause
    }

    /// Whether a retry may succeed.
    pub fn is_transient(&self) -> bool {
        self.kind == FailureKind::Transient
    }

    /// The message, already free of secrets.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureKind::Transient => "transient",
            FailureKind::Setup => "set-up",
        })
    }
}

/// Checks that `name` is a table name that Oracle, PostgreSQL and SQLite all accept
/// unquoted: an identifier, optionally qualified by a schema (`SCADA.TAG_VALUES`). An
/// identifier is a letter, then letters, digits or `_`, at most 128 bytes. The table name is
/// put into SQL text, so nothing else may pass.
///
/// ```
/// assert!(oracle_batch::validate_table_name("TAG_VALUES").is_ok());
/// assert!(oracle_batch::validate_table_name("SCADA.TAG_VALUES").is_ok());
/// assert!(oracle_batch::validate_table_name("tag_values; DROP TABLE x").is_err());
/// ```
pub fn validate_table_name(name: &str) -> Result<(), SinkError> {
    let identifier = |part: &str| {
        let mut chars = part.chars();
        part.len() <= 128
            && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() <= 2 && parts.iter().all(|part| identifier(part)) {
        Ok(())
    } else {
        Err(SinkError::setup(format!(
            "table name {name:?} is not a valid identifier: use a letter followed by letters, \
             digits or _ (at most 128), optionally after a schema name and a dot"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        for good in [
            "TAG_VALUES",
            "t",
            "Tag_Values_2025",
            "SCADA.TAG_VALUES",
            &"A".repeat(128),
        ] {
            assert!(validate_table_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1TAG",
            "_TAG",
            "TAG VALUES",
            "TAG-VALUES",
            "\"TAG\"",
            "TAG;DROP",
            "A.B.C",
            ".TAG",
            "SCADA.",
            "T\u{00c4}G",
            &"A".repeat(129),
        ] {
            let error = validate_table_name(bad).unwrap_err();
            assert_eq!(error.kind(), FailureKind::Setup);
            assert!(error.message().contains("not a valid identifier"), "{bad}");
        }
    }

    #[test]
    fn report_accounts_for_rows() {
        let report = WriteReport {
            written: 3,
            duplicates: 1,
            conflicts: vec![RowConflict {
                index: 5,
                stored: None,
            }],
            rejected: vec![RowRejection {
                index: 4,
                reason: "bad".into(),
            }],
        };
        assert!(report.accounts_for(6));
        assert!(!report.accounts_for(5));
    }
}
