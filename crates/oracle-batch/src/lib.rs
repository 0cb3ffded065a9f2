#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod sink;
mod sqlite;

pub use sink::{
    validate_table_name, FailureCause, FailureKind, RowCheck, RowConflict, RowRejection, Sink,
    SinkCheck, SinkError, WriteReport,
};
pub use sqlite::{SqliteSink, SQLITE_DDL};
mod clock;
mod conflict;
pub mod conformance;
mod mapping;
mod oracle_sink;
mod postgres_sink;
mod replay;
mod secret;
pub mod testing;
mod writer;

pub use clock::{Wake, WriterClock};
pub use conflict::{compare_repeat, settle_repeats, Repeat, Repeats};
pub use mapping::{
    format_value_text, ColumnMapping, ColumnSource, MappedColumn, TableColumn, TextPiece,
};
pub mod oracle;
pub use self::oracle::{EasyConnect, ErrorClass};
pub use oracle_sink::{
    bind_types, insert_sql, report_from_batch_errors, BatchRowError, OracleConfig, OracleSink,
    RowVerdictError, DEFAULT_CALL_TIMEOUT, DEFAULT_LOGIN_RETRY, MAX_ROWS_PER_EXECUTE,
};
pub use postgres_sink::{
    classify_postgres, postgres_insert_sql, PostgresConfig, PostgresSink, POSTGRES_DDL,
};
pub use replay::{replay_file, Replay, ReplayError, ReplayTally};
pub use secret::Secret;
pub use writer::{
    BatchWriter, BatchWriterBuilder, Intake, ShutdownReport, TagLog, WriterConfig, WriterError,
    WriterMode, WriterMonitor, WriterStats, DEFAULT_SPILL_PCT, MAX_RETRIES,
};
