//! `driver = "melsec"`: Mitsubishi MC protocol, 3E frame, binary code, over TCP.
//!
//! `address.rs` parses device addresses once at start; `codec.rs` is the pure frame codec;
//! `plan.rs` merges a group's tags into batch reads (0401) and random reads (0403);
//! `transport.rs` owns the socket, the timeouts and the end codes.

pub mod address;
pub mod codec;
mod plan;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use crate::driver::{Address, DriverConfig, PlcDriver, ReadPlan, TagType};
use crate::drivers::{DriverKind, Options};
use crate::WordOrder;

pub use address::{Device, McAddress, Unit};
pub use codec::Route;

/// `driver = "melsec"`.
pub const KIND: DriverKind = DriverKind {
    name: "melsec",
    options: &[
        "host",
        "port",
        "network",
        "station",
        "module_io",
        "module_station",
        "monitoring_timer_ms",
        "timeout_ms",
        "connect_timeout_ms",
        "word_order",
        "max_gap",
        "frame",
    ],
    configure: |options| Ok(Arc::new(MelsecConfig::from_options(options)?)),
};

/// The options of a `driver = "melsec"` PLC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MelsecConfig {
    /// Host name or IP address of the CPU or its Ethernet module.
    pub host: String,
    /// TCP port of the MC protocol connection (set in the PLC's parameters).
    pub port: u16,
    /// Network number and PC number (`network`, `station`) and the module fields.
    pub route: Route,
    /// How long the PLC may take to answer, as sent in the frame (`monitoring_timer_ms`).
    pub monitoring_timer: Duration,
    /// How long the driver waits for an answer (`timeout_ms`).
    pub timeout: Duration,
    /// How long the driver waits for the connection (`connect_timeout_ms`).
    pub connect_timeout: Duration,
    /// Word order of 32/64-bit values unless a tag says otherwise (`word_order`).
    pub word_order: WordOrder,
    /// Unused words a batch read may bridge to save a request (`max_gap`).
    pub max_gap: u32,
}

impl MelsecConfig {
    fn from_options(options: &Options<'_>) -> Result<Self, String> {
        if let Some(frame) = options.string("frame")? {
            if frame != "3E-binary" {
                return Err(format!(
                    "frame: {frame:?} is not supported (supported: \"3E-binary\"; set the \
                     Ethernet module's communication data code to binary)"
                ));
            }
        }
        let timeout = options
            .millis("timeout_ms", 1)?
            .unwrap_or(Duration::from_secs(2));
        Ok(MelsecConfig {
            host: options.required_string("host")?.to_owned(),
            port: options
                .integer("port", 1, 65535)?
                .ok_or("port: is required by this driver")? as u16,
            route: Route {
                network: options.integer("network", 0, 255)?.unwrap_or(0) as u8,
                pc: options.integer("station", 0, 255)?.unwrap_or(0xFF) as u8,
                module_io: options.integer("module_io", 0, 0xFFFF)?.unwrap_or(0x03FF) as u16,
                module_station: options.integer("module_station", 0, 255)?.unwrap_or(0) as u8,
            },
            monitoring_timer: options
                .millis("monitoring_timer_ms", 250)?
                .unwrap_or(timeout.max(Duration::from_millis(250))),
            timeout,
            connect_timeout: options
                .millis("connect_timeout_ms", 1)?
                .unwrap_or(Duration::from_secs(3)),
            word_order: options.parsed("word_order")?.unwrap_or(WordOrder::LowFirst),
            max_gap: options.integer("max_gap", 0, 960)?.unwrap_or(16) as u32,
        })
    }

    /// The monitoring timer in the frame's 250 ms units.
    pub fn timer_units(&self) -> u16 {
        (self.monitoring_timer.as_millis() / 250).clamp(1, u128::from(u16::MAX)) as u16
    }
}

impl DriverConfig for MelsecConfig {
    fn driver_name(&self) -> &'static str {
        "melsec"
    }

    fn parse_address(&self, text: &str, tag: &TagType) -> Result<Address, String> {
        let parsed = McAddress::parse(
            text,
            tag.data_type,
            tag.word_order.unwrap_or(self.word_order),
        )?;
        Ok(Address::new(text, parsed))
    }

    fn check_writable(&self, address: &Address) -> Result<(), String> {
        match address.parsed::<McAddress>() {
            Some(a) if a.device.writable => Ok(()),
            Some(a) => Err(format!(
                "{} is an input or special device; the PLC program owns it",
                a.device.name
            )),
            None => Err("not a melsec address".into()),
        }
    }

    fn plan(&self, addresses: &[Address]) -> ReadPlan {
        let parsed: Vec<McAddress> = addresses
            .iter()
            .filter_map(|a| a.parsed::<McAddress>().copied())
            .collect();
        let requests = plan::plan(&parsed, self.max_gap);
        ReadPlan::new(requests.len(), requests)
    }

    fn open(&self, plc_code: &Arc<str>) -> Box<dyn PlcDriver> {
        Box::new(transport::MelsecDriver::new(
            Arc::clone(plc_code),
            self.clone(),
        ))
    }
}
