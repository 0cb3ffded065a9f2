//! The contract of a PLC driver: what the engine asks of every protocol.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use tag_model::Quality;

/// Why a driver call failed, in three layers that say what to do next (the same split as
/// tokio-modbus's transport error / exception response).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The connection failed, timed out or was closed: reconnect with backoff.
    #[error("{0}")]
    Transport(String),
    /// The peer answered something that is not the protocol (a bad frame, a wrong length):
    /// the stream cannot be trusted any more, so reconnect.
    #[error("{0}")]
    Protocol(String),
    /// The PLC understood and refused this request (an MC end code, a Modbus exception):
    /// the addresses of the request are BAD, the connection is fine.
    #[error("{message}")]
    Device {
        /// The PLC's own code (MC end code, Modbus exception code).
        code: u32,
        /// The code in hex and what it means.
        message: String,
    },
}

impl DriverError {
    /// A transport error with this text (the kind a simulated outage is).
    pub fn new(message: impl Into<String>) -> Self {
        DriverError::Transport(message.into())
    }

    /// Whether the connection must be closed and opened again (not a device refusal).
    pub fn needs_reconnect(&self) -> bool {
        !matches!(self, DriverError::Device { .. })
    }
}

/// The result of one read: a value or an error per address, in plan order; or an error for
/// the whole read.
pub type ReadResult = Result<Vec<Result<f64, DriverError>>, DriverError>;

/// One reading of one address, from a driver that knows more than the value: the quality the
/// device gives it and the time it was measured (an OPC UA SourceTimestamp).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// The raw value (before scale and offset); `None` when the device has none.
    pub value: Option<f64>,
    /// GOOD, or what the device says of the value (UNCERTAIN, BAD).
    pub quality: Quality,
    /// When the device measured it, UTC; `None`: the time of the poll.
    pub timestamp: Option<NaiveDateTime>,
}

impl Sample {
    /// A GOOD value, stamped with the poll's time (what the register protocols read).
    pub fn good(value: f64) -> Self {
        Sample {
            value: Some(value),
            quality: Quality::Good,
            timestamp: None,
        }
    }
}

/// The result of one read as [`Sample`]s: per address a sample or an error, in plan order; or
/// an error for the whole read.
pub type SampleResult = Result<Vec<Result<Sample, DriverError>>, DriverError>;

/// What a `mode = "SUBSCRIPTION"` group asks of its driver.
#[derive(Clone, Debug, PartialEq)]
pub struct SubscriptionRequest {
    /// How often the server sends what changed (`publishing_interval_ms`).
    pub publishing_interval: Duration,
    /// How often the server samples each address (`sampling_interval_ms`).
    pub sampling_interval: Duration,
    /// Per address, in plan order: the absolute deadband the server applies, in raw units.
    pub deadbands: Vec<Option<f64>>,
}

/// Takes a subscription's notifications: (index of the address in plan order, its sample).
/// Each notification is one sample. An empty batch says the subscription is alive (a
/// keep-alive), so the group's status can show when the server was last heard from.
pub type SampleSink = Arc<dyn Fn(Vec<(usize, Sample)>) + Send + Sync>;

/// The state of a subscribed driver's connection, as the group's thread checks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Connected; notifications flow.
    Up,
    /// The connection or the subscription was lost, for this reason: reconnect and subscribe
    /// again.
    Lost(String),
}

/// A tag address parsed once, at configuration time, by its driver: the text the operator
/// wrote (stored as `tag_address`) and the driver's typed form of it.
#[derive(Clone)]
pub struct Address {
    text: Arc<str>,
    parsed: Arc<dyn Any + Send + Sync>,
}

impl Address {
    /// An address with its driver's parsed form.
    pub fn new(text: impl Into<Arc<str>>, parsed: impl Any + Send + Sync) -> Self {
        Address {
            text: text.into(),
            parsed: Arc::new(parsed),
        }
    }

    /// The text from the configuration (`D100`, `HR7`).
    pub fn text(&self) -> &Arc<str> {
        &self.text
    }

    /// The parsed form, if it is of type `T` (each driver reads back its own type).
    pub fn parsed<T: Any>(&self) -> Option<&T> {
        self.parsed.downcast_ref()
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Address {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// The requests a driver will send for one set of addresses, planned once at start.
pub struct ReadPlan {
    requests: usize,
    inner: Box<dyn Any + Send + Sync>,
}

impl ReadPlan {
    /// A plan of `requests` requests; `inner` is the driver's own description of them.
    pub fn new(requests: usize, inner: impl Any + Send + Sync) -> Self {
        ReadPlan {
            requests,
            inner: Box::new(inner),
        }
    }

    /// Requests sent per read.
    pub fn requests(&self) -> usize {
        self.requests
    }

    /// The driver's description, if it is of type `T`.
    pub fn inner<T: Any>(&self) -> Option<&T> {
        self.inner.downcast_ref()
    }
}

impl fmt::Debug for ReadPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReadPlan({} requests)", self.requests)
    }
}

/// A configured PLC: its driver's options, parsed from the `[[plc]]` table. Parses the
/// addresses of its groups, plans their reads and opens connections.
pub trait DriverConfig: fmt::Debug + Send + Sync {
    /// The `driver = "..."` name.
    fn driver_name(&self) -> &'static str;

    /// Parses one tag address for `data_type` (`None`: the address's natural type, an INT16
    /// word or a BOOL bit). The error says what is wrong, e.g. "D is a word device; ...".
    fn parse_address(&self, text: &str, tag: &TagType) -> Result<Address, String>;

    /// Whether the service may write `address` (a handshake `ack`): Err says why not.
    fn check_writable(&self, address: &Address) -> Result<(), String> {
        let _ = address;
        Ok(())
    }

    /// Merges `addresses` into as few requests as the protocol allows. Called once per
    /// group at start; the values of a read come back in this order.
    fn plan(&self, addresses: &[Address]) -> ReadPlan;

    /// A new, not yet connected driver for one polling group.
    fn open(&self, plc_code: &Arc<str>) -> Box<dyn PlcDriver>;

    /// Whether its drivers can [`subscribe`](PlcDriver::subscribe) (`mode = "SUBSCRIPTION"`).
    fn supports_subscriptions(&self) -> bool {
        false
    }
}

/// The type of a tag as the configuration gives it; the driver checks that its address can
/// hold it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TagType {
    /// `type = "FLOAT32"`; `None` is the address's natural type.
    pub data_type: Option<crate::DataType>,
    /// `word_order` for 32/64-bit types; `None` is the PLC's (or protocol's) default.
    pub word_order: Option<crate::WordOrder>,
}

/// Talks to one PLC. Each polling group owns its own driver (its own connection), so a slow
/// group never holds up another.
pub trait PlcDriver: Send {
    /// Opens the connection. Called at start and again, with backoff, after a failed read.
    fn connect(&mut self) -> Result<(), DriverError>;

    /// Sends the requests of `plan` (from this driver's [`DriverConfig::plan`]). `Err` means
    /// the whole read failed; an `Err` inside the vector marks one address.
    fn read(&mut self, plan: &ReadPlan) -> ReadResult;

    /// [`read`](Self::read) as samples. Drivers whose device gives a quality or a timestamp
    /// per value (OPC UA) override this; the engine calls it for every poll.
    fn read_samples(&mut self, plan: &ReadPlan) -> SampleResult {
        self.read(plan)
            .map(|values| values.into_iter().map(|r| r.map(Sample::good)).collect())
    }

    /// Asks the device to send the addresses of `plan` when they change, to `sink`. Called
    /// once after each [`connect`](Self::connect) of a SUBSCRIPTION group.
    fn subscribe(
        &mut self,
        plan: &ReadPlan,
        request: &SubscriptionRequest,
        sink: SampleSink,
    ) -> Result<(), DriverError> {
        let _ = (plan, request, sink);
        Err(DriverError::Protocol(
            "this driver cannot subscribe; use mode = \"FIXED\"".into(),
        ))
    }

    /// Whether a subscribed connection still stands. Checked a few times a second.
    fn link(&mut self) -> LinkState {
        LinkState::Up
    }

    /// Writes `value` to one address (a handshake `ack`, or a trigger reset).
    fn write(&mut self, address: &Address, value: f64) -> Result<(), DriverError>;

    /// Closes the connection; the next [`connect`](Self::connect) opens a new one.
    fn disconnect(&mut self);
}
