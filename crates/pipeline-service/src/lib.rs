#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod config;
mod http;
mod ingest;
pub mod logging;
pub mod pid;
pub mod platform;
mod prometheus;
mod service;
mod state;

pub use config::{
    available_memory, buffer_memory_estimate, check_buffer_memory, human_bytes, log_file_line,
    Config, ConfigError, DiskBuffer, Durability, SinkConfig, Vars, DEFAULT_DISK_MAX_BYTES,
    DEFAULT_LOG_FILE, DEFAULT_PID_FILE,
};
pub use http::{HttpServer, MAX_INGEST_BYTES};
pub use ingest::{parse_ingest, parse_ingest_in, parse_line, parse_line_in, IngestError};
pub use prometheus::PREFIX as METRICS_PREFIX;
pub use service::{
    open_sink, read_ndjson, Service, ShutdownSummary, StartError, StopReason, FLUSH_GRACE,
};
pub use state::{
    disk_utilization_warning, utilization_warning, Accounting, IngestRefusal, Pushed, ServiceState,
    UTILIZATION_WARNING_PCT,
};
