#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod config;
mod driver;
mod engine;
mod simulated;

pub use config::{
    ConfigError, DriverConfig, GroupConfig, Mode, PlcConfig, PollingConfig, EXAMPLE_CONFIG,
};
pub use driver::{DriverError, PlcDriver, ReadResult};
pub use engine::{
    Consumer, DriverFactory, EngineHandle, EngineOptions, GroupStatus, PollingEngine, StopOutcome,
    TriggerError, STOP_GRACE,
};
pub use simulated::{SimulatedOptions, SimulatedPlc, Waveform};
