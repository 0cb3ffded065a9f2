//! The drivers: one entry per `driver = "..."` name. Adding a protocol is its folder plus one
//! line in [`DRIVERS`].

pub mod melsec;
pub mod modbus;
#[cfg(feature = "opcua")]
pub mod opcua;
mod options;
pub(crate) mod plan;
pub mod simulated;

use std::sync::Arc;

pub use options::Options;

use crate::driver::DriverConfig;

/// A driver the configuration can name.
pub struct DriverKind {
    /// The `driver = "..."` name.
    pub name: &'static str,
    /// Its `[[plc]]` options (besides `plc_code` and `driver`), in the README's order.
    pub options: &'static [&'static str],
    /// Reads the options (only known names reach it) into a configured PLC.
    pub configure: fn(&mut Options<'_>) -> Result<Arc<dyn DriverConfig>, String>,
}

/// Every driver, by name.
pub const DRIVERS: &[DriverKind] = &[
    simulated::KIND,
    melsec::KIND,
    modbus::KIND,
    #[cfg(feature = "opcua")]
    opcua::KIND,
];

/// The driver called `name`.
pub fn find(name: &str) -> Option<&'static DriverKind> {
    DRIVERS.iter().find(|kind| kind.name == name)
}

/// The names of every driver, for messages.
pub fn names() -> String {
    DRIVERS
        .iter()
        .map(|kind| kind.name)
        .collect::<Vec<_>>()
        .join(", ")
}
