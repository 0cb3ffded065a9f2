//! The socket side of the MC driver: connect and request timeouts, one request at a time,
//! end codes turned into device errors.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Instant;

use super::address::{McAddress, Unit};
use super::codec::{self, DeviceRef, Request, Response};
use super::plan::Planned;
use super::MelsecConfig;
use crate::driver::{Address, DriverError, PlcDriver, ReadPlan, ReadResult};
use crate::DataType;

pub(crate) struct MelsecDriver {
    plc_code: Arc<str>,
    config: MelsecConfig,
    stream: Option<TcpStream>,
    buffer: Vec<u8>,
}

impl MelsecDriver {
    pub(crate) fn new(plc_code: Arc<str>, config: MelsecConfig) -> Self {
        MelsecDriver {
            plc_code,
            config,
            stream: None,
            buffer: Vec::with_capacity(2048),
        }
    }

    fn peer(&self) -> String {
        format!("{}:{}", self.config.host, self.config.port)
    }

    /// Sends one request and waits (at most `timeout`) for its whole response.
    fn call(&mut self, request: &Request) -> Result<Response, DriverError> {
        let peer = self.peer();
        let Some(stream) = self.stream.as_mut() else {
            return Err(DriverError::Transport(format!("{peer}: not connected")));
        };
        let frame = codec::encode(&self.config.route, self.config.timer_units(), request);
        let deadline = Instant::now() + self.config.timeout;
        let transport =
            |what: &str, e: std::io::Error| DriverError::Transport(format!("{peer}: {what}: {e}"));
        stream
            .set_write_timeout(Some(self.config.timeout))
            .and_then(|()| stream.write_all(&frame))
            .map_err(|e| transport("send failed", e))?;
        self.buffer.clear();
        let mut chunk = [0u8; 2048];
        loop {
            match codec::decode(&self.buffer) {
                Ok(Some((response, _))) => return Ok(response),
                Ok(None) => {}
                Err(error) => return Err(DriverError::Protocol(format!("{peer}: {error}"))),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(DriverError::Transport(format!(
                    "{peer}: no answer within {} ms",
                    self.config.timeout.as_millis()
                )));
            }
            stream
                .set_read_timeout(Some(left))
                .map_err(|e| transport("socket", e))?;
            match stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(DriverError::Transport(format!(
                        "{peer}: the PLC closed the connection"
                    )))
                }
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(DriverError::Transport(format!(
                        "{peer}: no answer within {} ms",
                        self.config.timeout.as_millis()
                    )))
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(transport("receive failed", e)),
            }
        }
    }

    /// The response's data, or the end code as a device error.
    fn checked(&self, response: Response) -> Result<Vec<u8>, DriverError> {
        if response.end_code == 0 {
            return Ok(response.data);
        }
        Err(end_code_error(response.end_code))
    }

    fn read_one(&mut self, planned: &Planned) -> Result<Vec<(usize, f64)>, DriverError> {
        let response = self.call(&planned.request)?;
        let data = self.checked(response)?;
        let protocol =
            |e: codec::ProtocolError| DriverError::Protocol(format!("{}: {e}", self.peer()));
        let mut values = Vec::with_capacity(planned.slots.len());
        match &planned.request {
            Request::BatchRead {
                unit: Unit::Bit,
                points,
                ..
            } => {
                let bits = codec::bits(&data, usize::from(*points)).map_err(protocol)?;
                for &(index, at, _) in &planned.slots {
                    values.push((index, f64::from(u8::from(bits[at]))));
                }
            }
            Request::BatchRead { points, .. } => {
                let words = codec::words(&data, usize::from(*points)).map_err(protocol)?;
                for &(index, at, tag) in &planned.slots {
                    values.push((index, value_of(&words, at, &tag)));
                }
            }
            Request::RandomRead { words, dwords } => {
                // Words come first, then each dword as 4 bytes: the device, then the next.
                let all = codec::words(&data, words.len() + 2 * dwords.len()).map_err(protocol)?;
                for &(index, at, tag) in &planned.slots {
                    values.push((index, value_of(&all, at, &tag)));
                }
            }
            Request::WriteWords { .. } | Request::WriteBits { .. } => {}
        }
        Ok(values)
    }
}

fn value_of(words: &[u16], at: usize, tag: &McAddress) -> f64 {
    let n = usize::from(tag.data_type.words().max(1));
    tag.data_type.decode(&words[at..at + n], tag.word_order)
}

/// An end code as the operator reads it: `end code 0xC056: the request exceeds ...`.
pub(crate) fn end_code_error(code: u16) -> DriverError {
    DriverError::Device {
        code: u32::from(code),
        message: format!("end code 0x{code:04X}: {}", codec::end_code_meaning(code)),
    }
}

impl PlcDriver for MelsecDriver {
    fn connect(&mut self) -> Result<(), DriverError> {
        self.stream = None;
        let peer = self.peer();
        let addresses = (self.config.host.as_str(), self.config.port)
            .to_socket_addrs()
            .map_err(|e| DriverError::Transport(format!("{peer}: cannot resolve: {e}")))?;
        let mut last = None;
        for address in addresses {
            match TcpStream::connect_timeout(&address, self.config.connect_timeout) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    self.stream = Some(stream);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(DriverError::Transport(match last {
            Some(e) => format!("{peer}: cannot connect: {e}"),
            None => format!("{peer}: the host name has no address"),
        }))
    }

    fn read(&mut self, plan: &ReadPlan) -> ReadResult {
        let Some(requests) = plan.inner::<Vec<Planned>>() else {
            return Err(DriverError::Protocol(format!(
                "{}: a read plan of another driver was given to the melsec driver",
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
                // The PLC refused this request: its tags are BAD, the others are read.
                Err(error @ DriverError::Device { .. }) => {
                    for &(index, _, _) in &planned.slots {
                        if let Some(slot) = results.get_mut(index) {
                            *slot = Err(error.clone());
                        }
                    }
                    refused = Some(error);
                }
                Err(error) => {
                    self.stream = None;
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
        let Some(tag) = address.parsed::<McAddress>() else {
            return Err(DriverError::Protocol(format!(
                "{:?} is not a melsec address",
                address.text()
            )));
        };
        let head = DeviceRef {
            code: tag.device.code,
            number: tag.number,
        };
        let request = if tag.data_type == DataType::Bool {
            Request::WriteBits {
                head,
                values: vec![value != 0.0],
            }
        } else {
            Request::WriteWords {
                head,
                values: tag
                    .data_type
                    .encode(value, tag.word_order)
                    .map_err(|why| DriverError::Protocol(format!("{:?}: {why}", address.text())))?,
            }
        };
        let result = self
            .call(&request)
            .and_then(|response| self.checked(response));
        if let Err(error) = &result {
            if error.needs_reconnect() {
                self.stream = None;
            }
        }
        result.map(drop)
    }

    fn disconnect(&mut self) {
        self.stream = None;
    }
}
