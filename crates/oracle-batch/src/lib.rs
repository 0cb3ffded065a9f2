#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod sink;
mod sqlite;

pub use sink::{validate_table_name, FailureKind, RowRejection, Sink, SinkError, WriteReport};
pub use sqlite::{SqliteSink, SQLITE_DDL};
mod clock;
pub mod conformance;
pub mod testing;
mod writer;

pub use clock::{Wake, WriterClock};
pub use writer::{
    BatchWriter, BatchWriterBuilder, ShutdownReport, WriterConfig, WriterError, WriterStats,
    MAX_RETRIES,
};
