//! The socket side: tokio-modbus's blocking client with connect and request timeouts;
//! exception responses become device errors, everything else a reconnect.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use tokio_modbus::client::sync::{self, Reader as _, Writer as _};
use tokio_modbus::{ExceptionCode, Slave};

use super::address::{ModbusAddress, Table};
use super::{ModbusConfig, Planned};
use crate::driver::{Address, DriverError, PlcDriver, ReadPlan, ReadResult};
use crate::DataType;

pub(crate) struct ModbusDriver {
    plc_code: Arc<str>,
    config: ModbusConfig,
    context: Option<sync::Context>,
}

impl ModbusDriver {
    pub(crate) fn new(plc_code: Arc<str>, config: ModbusConfig) -> Self {
        ModbusDriver {
            plc_code,
            config,
            context: None,
        }
    }

    fn peer(&self) -> String {
        format!("{}:{}", self.config.host, self.config.port)
    }

    fn error(&self, error: tokio_modbus::Error) -> DriverError {
        match error {
            tokio_modbus::Error::Transport(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                DriverError::Transport(format!(
                    "{}: no answer within {} ms",
                    self.peer(),
                    self.config.timeout.as_millis()
                ))
            }
            tokio_modbus::Error::Transport(e) => {
                DriverError::Transport(format!("{}: {e}", self.peer()))
            }
            tokio_modbus::Error::Protocol(e) => {
                DriverError::Protocol(format!("{}: {e}", self.peer()))
            }
        }
    }

    fn read_one(&mut self, planned: &Planned) -> Result<Vec<(usize, f64)>, DriverError> {
        let Some(context) = self.context.as_mut() else {
            return Err(DriverError::Transport(format!(
                "{}: not connected",
                self.peer()
            )));
        };
        let (start, count) = (planned.start, planned.count);
        let answer = match planned.table {
            Table::Coil => context.read_coils(start, count).map(|r| r.map(Units::Bits)),
            Table::DiscreteInput => context
                .read_discrete_inputs(start, count)
                .map(|r| r.map(Units::Bits)),
            Table::InputRegister => context
                .read_input_registers(start, count)
                .map(|r| r.map(Units::Words)),
            Table::HoldingRegister => context
                .read_holding_registers(start, count)
                .map(|r| r.map(Units::Words)),
        };
        let units = answer
            .map_err(|e| self.error(e))?
            .map_err(exception_error)?;
        let short = |got: usize| {
            DriverError::Protocol(format!(
                "{}: asked for {count} {}, got {got}",
                self.peer(),
                planned.table.prefix()
            ))
        };
        let mut values = Vec::with_capacity(planned.slots.len());
        match units {
            Units::Bits(bits) => {
                if bits.len() < usize::from(count) {
                    return Err(short(bits.len()));
                }
                for &(index, at, _) in &planned.slots {
                    values.push((index, f64::from(u8::from(bits[at]))));
                }
            }
            Units::Words(words) => {
                if words.len() != usize::from(count) {
                    return Err(short(words.len()));
                }
                for &(index, at, tag) in &planned.slots {
                    let n = usize::from(tag.data_type.words().max(1));
                    values.push((
                        index,
                        tag.data_type.decode(&words[at..at + n], tag.word_order),
                    ));
                }
            }
        }
        Ok(values)
    }
}

enum Units {
    Bits(Vec<bool>),
    Words(Vec<u16>),
}

/// An exception response as the operator reads it: `exception 0x02 (illegal data address)`.
fn exception_error(code: ExceptionCode) -> DriverError {
    let value = u8::from(code);
    let meaning = match value {
        0x01 => "illegal function: the device does not support this read or write",
        0x02 => "illegal data address: the device does not map these registers",
        0x03 => "illegal data value",
        0x04 => "server device failure",
        0x05 => "acknowledge: the device is still processing",
        0x06 => "server device busy",
        0x08 => "memory parity error",
        0x0A => "gateway path unavailable",
        0x0B => "gateway target device failed to respond",
        _ => "an exception code the Modbus specification does not define",
    };
    DriverError::Device {
        code: u32::from(value),
        message: format!("exception 0x{value:02X} ({meaning})"),
    }
}

impl PlcDriver for ModbusDriver {
    fn connect(&mut self) -> Result<(), DriverError> {
        self.context = None;
        let peer = self.peer();
        let addresses: Vec<SocketAddr> = (self.config.host.as_str(), self.config.port)
            .to_socket_addrs()
            .map_err(|e| DriverError::Transport(format!("{peer}: cannot resolve: {e}")))?
            .collect();
        let mut last = format!("{peer}: the host name has no address");
        for address in addresses {
            match sync::tcp::connect_slave_with_timeout(
                address,
                Slave(self.config.unit_id),
                Some(self.config.connect_timeout),
            ) {
                Ok(mut context) => {
                    context.set_timeout(self.config.timeout);
                    self.context = Some(context);
                    return Ok(());
                }
                Err(e) => last = format!("{peer}: cannot connect: {e}"),
            }
        }
        Err(DriverError::Transport(last))
    }

    fn read(&mut self, plan: &ReadPlan) -> ReadResult {
        let Some(requests) = plan.inner::<Vec<Planned>>() else {
            return Err(DriverError::Protocol(format!(
                "{}: a read plan of another driver was given to the modbus driver",
                self.plc_code
            )));
        };
        let count = requests.iter().map(|p| p.slots.len()).sum();
        let mut results: Vec<Result<f64, DriverError>> =
            vec![Err(DriverError::Protocol("not read".into())); count];
        let mut any_ok = false;
        let mut refused = None;
        for planned in requests {
            match self.read_one(planned) {
                Ok(values) => {
                    any_ok = true;
                    for (index, value) in values {
                        if let Some(slot) = results.get_mut(index) {
                            *slot = Ok(value);
                        }
                    }
                }
                Err(error @ DriverError::Device { .. }) => {
                    for &(index, _, _) in &planned.slots {
                        if let Some(slot) = results.get_mut(index) {
                            *slot = Err(error.clone());
                        }
                    }
                    refused = Some(error);
                }
                Err(error) => {
                    self.context = None;
                    return Err(error);
                }
            }
        }
        match refused {
            Some(error) if !any_ok => Err(error),
            _ => Ok(results),
        }
    }

    fn write(&mut self, address: &Address, value: f64) -> Result<(), DriverError> {
        let Some(tag) = address.parsed::<ModbusAddress>().copied() else {
            return Err(DriverError::Protocol(format!(
                "{:?} is not a modbus address",
                address.text()
            )));
        };
        let peer = self.peer();
        let Some(context) = self.context.as_mut() else {
            return Err(DriverError::Transport(format!("{peer}: not connected")));
        };
        let result =
            match (tag.table, tag.data_type) {
                (Table::Coil, _) => context.write_single_coil(tag.number, value != 0.0),
                (Table::HoldingRegister, DataType::Int16 | DataType::Uint16) => {
                    let words = tag.data_type.encode(value, tag.word_order).map_err(|why| {
                        DriverError::Protocol(format!("{:?}: {why}", address.text()))
                    })?;
                    context.write_single_register(tag.number, words[0])
                }
                (Table::HoldingRegister, _) => {
                    let words = tag.data_type.encode(value, tag.word_order).map_err(|why| {
                        DriverError::Protocol(format!("{:?}: {why}", address.text()))
                    })?;
                    context.write_multiple_registers(tag.number, &words)
                }
                (table, _) => {
                    return Err(DriverError::Protocol(format!(
                        "{} is read-only",
                        table.prefix()
                    )))
                }
            };
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(code)) => Err(exception_error(code)),
            Err(e) => {
                let error = self.error(e);
                self.context = None;
                Err(error)
            }
        }
    }

    fn disconnect(&mut self) {
        self.context = None;
    }
}
