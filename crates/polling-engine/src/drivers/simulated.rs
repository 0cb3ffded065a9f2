//! A simulated PLC: deterministic values, optional latency, injectable faults.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::driver::{Address, DriverConfig, DriverError, PlcDriver, ReadPlan, ReadResult, TagType};
use crate::drivers::{DriverKind, Options};
use crate::DataType;

/// `driver = "simulated"`.
pub const KIND: DriverKind = DriverKind {
    name: "simulated",
    options: &[
        "latency_ms",
        "fail_every",
        "offline_after_ms",
        "offline_for_ms",
    ],
    configure: |options| {
        Ok(Arc::new(SimulatedConfig(SimulatedOptions::from_options(
            options,
        )?)))
    },
};

/// Settings of a simulated PLC (the options of a `driver = "simulated"` entry).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimulatedOptions {
    /// Time each read takes (`latency_ms`).
    pub latency: Duration,
    /// Every Nth read request fails as a whole (`fail_every`; 0 never).
    pub fail_every: u64,
    /// The PLC stops answering this long after the driver is created (`offline_after_ms`)...
    pub offline_after: Option<Duration>,
    /// ... for this long (`offline_for_ms`).
    pub offline_for: Duration,
}

impl SimulatedOptions {
    fn from_options(options: &Options<'_>) -> Result<Self, String> {
        Ok(SimulatedOptions {
            latency: options.millis("latency_ms", 0)?.unwrap_or_default(),
            fail_every: options.integer("fail_every", 0, i64::MAX)?.unwrap_or(0) as u64,
            offline_after: options.millis("offline_after_ms", 0)?,
            offline_for: options.millis("offline_for_ms", 0)?.unwrap_or_default(),
        })
    }
}

/// A configured simulated PLC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulatedConfig(pub SimulatedOptions);

/// A simulated address: its text and the type asked for.
#[derive(Clone, Debug)]
struct SimulatedAddress {
    data_type: DataType,
}

impl DriverConfig for SimulatedConfig {
    fn driver_name(&self) -> &'static str {
        "simulated"
    }

    fn parse_address(&self, text: &str, tag: &TagType) -> Result<Address, String> {
        SimulatedPlc::check_address(text)?;
        Ok(Address::new(
            text,
            SimulatedAddress {
                data_type: tag.data_type.unwrap_or(DataType::Int16),
            },
        ))
    }

    fn plan(&self, addresses: &[Address]) -> ReadPlan {
        ReadPlan::new(1, addresses.to_vec())
    }

    fn open(&self, plc_code: &Arc<str>) -> Box<dyn PlcDriver> {
        Box::new(SimulatedPlc::new(plc_code, self.0.clone()))
    }
}

/// The waveform an address follows, chosen from a hash of the address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Waveform {
    /// Climbs steadily and wraps around.
    Ramp,
    /// A sine wave.
    Sine,
    /// A random walk seeded from the address: the same address walks the same way every run.
    RandomWalk,
}

/// A PLC that is not there: answers every address with a plausible, deterministic value.
///
/// ```
/// use std::sync::Arc;
/// use polling_engine::{PlcDriver, SimulatedOptions, SimulatedPlc};
///
/// let mut plc = SimulatedPlc::new("PLC01", SimulatedOptions::default());
/// plc.connect().unwrap();
/// let addresses: Vec<Arc<str>> = vec!["D100".into(), "D101".into()];
/// let values = plc.read_addresses(&addresses).unwrap();
/// assert!(values.iter().all(|v| v.as_ref().is_ok_and(|x| x.is_finite())));
/// ```
pub struct SimulatedPlc {
    plc_code: String,
    options: SimulatedOptions,
    created: Instant,
    connected: bool,
    requests: u64,
    walks: HashMap<Arc<str>, (fastrand::Rng, f64)>,
    written: HashMap<Arc<str>, f64>,
}

impl SimulatedPlc {
    /// A simulated PLC; `plc_code` appears in its error messages.
    pub fn new(plc_code: &str, options: SimulatedOptions) -> Self {
        SimulatedPlc {
            plc_code: plc_code.to_owned(),
            options,
            created: Instant::now(),
            connected: false,
            requests: 0,
            walks: HashMap::new(),
            written: HashMap::new(),
        }
    }

    /// Addresses look like `D100`, `W1F`, `M0` or `DB1.DBW10`: letters, then digits, with
    /// optional `.` parts.
    pub fn check_address(address: &str) -> Result<(), String> {
        let mut parts = address.split('.');
        let valid = parts.all(|part| {
            let letters = part.chars().take_while(char::is_ascii_alphabetic).count();
            let rest = &part[letters..];
            letters > 0 && !rest.is_empty() && rest.chars().all(|c| c.is_ascii_hexdigit())
        });
        if valid && address.len() <= tag_model::TAG_ADDRESS_MAX_BYTES {
            Ok(())
        } else {
            Err("expected a device letter and a number, such as D100 or DB1.DBW10".into())
        }
    }

    /// The waveform `address` follows.
    pub fn waveform(address: &str) -> Waveform {
        match seed(address) % 3 {
            0 => Waveform::Ramp,
            1 => Waveform::Sine,
            _ => Waveform::RandomWalk,
        }
    }

    fn offline(&self) -> bool {
        self.options.offline_after.is_some_and(|after| {
            let elapsed = self.created.elapsed();
            elapsed >= after && elapsed < after + self.options.offline_for
        })
    }

    fn value(&mut self, address: &Arc<str>, seconds: f64) -> f64 {
        let seed = seed(address);
        // A base between 0 and 1000 and a span between 10 and 110, per address.
        let base = (seed % 1000) as f64;
        let span = 10.0 + (seed >> 10) as f64 % 100.0;
        let raw = match Self::waveform(address) {
            Waveform::Ramp => base + (seconds * span / 60.0) % span,
            Waveform::Sine => {
                let period = 30.0 + (seed >> 20) as f64 % 90.0;
                base + span / 2.0 * (std::f64::consts::TAU * seconds / period).sin()
            }
            Waveform::RandomWalk => {
                let (rng, level) = self
                    .walks
                    .entry(Arc::clone(address))
                    .or_insert_with(|| (fastrand::Rng::with_seed(seed), base));
                *level += (rng.f64() - 0.5) * span / 10.0;
                *level
            }
        };
        (raw * 10.0).round() / 10.0
    }
}

/// FNV-1a: stable across runs and Rust versions, unlike `DefaultHasher`.
fn seed(address: &str) -> u64 {
    address.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl SimulatedPlc {
    /// Reads addresses given as text in one request (a value or error per address); an
    /// address written before reads back what was written.
    pub fn read_addresses(&mut self, addresses: &[Arc<str>]) -> ReadResult {
        if !self.connected {
            return Err(DriverError::new(format!(
                "{}: not connected",
                self.plc_code
            )));
        }
        if !self.options.latency.is_zero() {
            std::thread::sleep(self.options.latency);
        }
        self.requests += 1;
        if self.offline() {
            self.connected = false;
            return Err(DriverError::new(format!(
                "{}: connection lost (simulated outage)",
                self.plc_code
            )));
        }
        if self.options.fail_every > 0 && self.requests % self.options.fail_every == 0 {
            return Err(DriverError::new(format!(
                "{}: read request {} failed (simulated fault, every {})",
                self.plc_code, self.requests, self.options.fail_every
            )));
        }
        let seconds = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
        Ok(addresses
            .iter()
            .map(|address| match self.written.get(address) {
                Some(&value) => Ok(value),
                None => Ok(self.value(address, seconds)),
            })
            .collect())
    }
}

impl PlcDriver for SimulatedPlc {
    fn connect(&mut self) -> Result<(), DriverError> {
        if self.offline() {
            return Err(DriverError::new(format!(
                "{}: no answer (simulated outage)",
                self.plc_code
            )));
        }
        self.connected = true;
        Ok(())
    }

    fn read(&mut self, plan: &ReadPlan) -> ReadResult {
        let Some(addresses) = plan.inner::<Vec<Address>>() else {
            return Err(DriverError::Protocol(
                "a read plan of another driver was given to the simulated driver".into(),
            ));
        };
        let texts: Vec<Arc<str>> = addresses.iter().map(|a| Arc::clone(a.text())).collect();
        let mut values = self.read_addresses(&texts)?;
        for (value, address) in values.iter_mut().zip(addresses) {
            let bool_tag = address
                .parsed::<SimulatedAddress>()
                .is_some_and(|a| a.data_type == DataType::Bool);
            if let (Ok(v), true) = (value.as_mut(), bool_tag) {
                *v = (v.round() as i64 % 2).abs() as f64;
            }
        }
        Ok(values)
    }

    fn write(&mut self, address: &Address, value: f64) -> Result<(), DriverError> {
        if !self.connected {
            return Err(DriverError::new(format!(
                "{}: not connected",
                self.plc_code
            )));
        }
        self.written.insert(Arc::clone(address.text()), value);
        Ok(())
    }

    fn disconnect(&mut self) {
        self.connected = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(names: &[&str]) -> Vec<Arc<str>> {
        names.iter().map(|&n| Arc::from(n)).collect()
    }

    #[test]
    fn addresses_are_checked() {
        for good in ["D100", "W1F", "M0", "DB1.DBW10", "x9"] {
            assert!(SimulatedPlc::check_address(good).is_ok(), "{good}");
        }
        for bad in ["", "100", "D", "D 100", "D100.", "D-1", "Dé1"] {
            assert!(SimulatedPlc::check_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_are_deterministic_per_address() {
        let names = addresses(&["D100", "D101", "D102", "D103", "W7", "M3"]);
        let mut a = SimulatedPlc::new("P", SimulatedOptions::default());
        let mut b = SimulatedPlc::new("P", SimulatedOptions::default());
        for name in &names {
            for second in [0.0, 1.5, 60.0] {
                assert_eq!(a.value(name, second), b.value(name, second), "{name}");
            }
        }
        // Every waveform is used by some address.
        let kinds: std::collections::HashSet<_> =
            names.iter().map(|n| SimulatedPlc::waveform(n)).collect();
        assert_eq!(kinds.len(), 3);
    }

    #[test]
    fn reads_need_a_connection_and_fail_every_nth_request() {
        let mut plc = SimulatedPlc::new(
            "PLC07",
            SimulatedOptions {
                fail_every: 3,
                ..Default::default()
            },
        );
        let names = addresses(&["D1", "D2"]);
        assert_eq!(
            plc.read_addresses(&names).unwrap_err().to_string(),
            "PLC07: not connected"
        );
        plc.connect().unwrap();
        let outcomes: Vec<bool> = (0..6).map(|_| plc.read_addresses(&names).is_ok()).collect();
        assert_eq!(outcomes, [true, true, false, true, true, false]);
    }

    #[test]
    fn goes_offline_for_a_period() {
        let mut plc = SimulatedPlc::new(
            "PLC09",
            SimulatedOptions {
                offline_after: Some(Duration::ZERO),
                offline_for: Duration::from_millis(100),
                ..Default::default()
            },
        );
        assert!(plc
            .connect()
            .unwrap_err()
            .to_string()
            .contains("simulated outage"));
        std::thread::sleep(Duration::from_millis(120));
        plc.connect().unwrap();
        assert!(plc.read_addresses(&addresses(&["D1"])).is_ok());
    }
}
