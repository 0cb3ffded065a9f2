//! The contract of a PLC driver.

use std::sync::Arc;

/// A read or connection failure, with the driver's explanation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DriverError(pub String);

impl DriverError {
    /// An error with this text.
    pub fn new(message: impl Into<String>) -> Self {
        DriverError(message.into())
    }
}

/// The result of one read request: a value or an error per address, in request order.
pub type ReadResult = Result<Vec<Result<f64, DriverError>>, DriverError>;

/// Talks to one PLC. Each polling group owns its own driver (its own connection), so a slow
/// group never holds up another.
///
/// A real driver (MC protocol, S7, Modbus...) implements this; [`crate::SimulatedPlc`] is the
/// embedded stand-in.
pub trait PlcDriver: Send {
    /// Opens the connection. Called at start and again, with backoff, after a failed read.
    fn connect(&mut self) -> Result<(), DriverError>;

    /// Reads `addresses` in one request. `Err` means the whole request failed (the engine
    /// then reconnects); an `Err` inside the vector marks one address.
    fn read(&mut self, addresses: &[Arc<str>]) -> ReadResult;

    /// Closes the connection; the next [`connect`](Self::connect) opens a new one.
    fn disconnect(&mut self);
}
