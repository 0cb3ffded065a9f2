#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod config;
mod driver;
pub mod drivers;
mod engine;
mod exception;
mod value;

pub use config::{
    ConfigError, GroupConfig, Handshake, HandshakeAnswer, Mode, PlcConfig, PollingConfig, Report,
    TagConfig, DEFAULT_TRIGGER_POLL, EXAMPLE_CONFIG,
};
pub use driver::{
    Address, DriverConfig, DriverError, LinkState, PlcDriver, ReadPlan, ReadResult, Sample,
    SampleResult, SampleSink, SubscriptionRequest, TagType,
};
pub use drivers::simulated::{SimulatedConfig, SimulatedOptions, SimulatedPlc, Waveform};
pub use engine::{
    Consumer, DriverFactory, EngineHandle, EngineOptions, GroupStatus, PollingEngine, StopOutcome,
    TriggerError, STOP_GRACE,
};
pub use value::{DataType, WordOrder};
