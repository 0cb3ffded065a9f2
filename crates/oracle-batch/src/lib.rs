#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod sink;
mod sqlite;

pub use sink::{validate_table_name, FailureKind, RowRejection, Sink, SinkError, WriteReport};
pub use sqlite::{SqliteSink, SQLITE_DDL};
pub mod conformance;
