//! The MC protocol 3E frame, binary code: pure encoding and decoding, no I/O.
//!
//! Request: subheader `50 00`, network, PC, module I/O (LE), module station, data length
//! (LE, from the timer on), monitoring timer (LE, 250 ms units), command (LE), subcommand
//! (LE), command data. Response: `D0 00`, network, PC, module I/O, module station, data length
//! (LE, from the end code on), end code (LE), then the data (or, for an end code other than 0,
//! the error information: the responder's network..station and the command).

use super::address::Unit;

/// Where a request goes (the 3E frame's routing fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Network number (0: the connected station's own network).
    pub network: u8,
    /// PC (station) number (0xFF: the connected station).
    pub pc: u8,
    /// Request destination module I/O number (0x03FF: the CPU).
    pub module_io: u16,
    /// Request destination module station number.
    pub module_station: u8,
}

impl Default for Route {
    fn default() -> Self {
        Route {
            network: 0,
            pc: 0xFF,
            module_io: 0x03FF,
            module_station: 0,
        }
    }
}

/// A device and number as the frame carries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceRef {
    /// Binary device code (`0xA8` for D).
    pub code: u8,
    /// Device number (three bytes on the wire).
    pub number: u32,
}

/// A request this driver sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Batch read (0401) of `points` consecutive words or bits.
    BatchRead {
        /// First device.
        head: DeviceRef,
        /// Words or bits.
        unit: Unit,
        /// How many.
        points: u16,
    },
    /// Random read (0403) of scattered words and double words.
    RandomRead {
        /// One word each.
        words: Vec<DeviceRef>,
        /// Two words each (the device and the next).
        dwords: Vec<DeviceRef>,
    },
    /// Batch write (1401) of words.
    WriteWords {
        /// First device.
        head: DeviceRef,
        /// The words.
        values: Vec<u16>,
    },
    /// Batch write (1401) of bits.
    WriteBits {
        /// First device.
        head: DeviceRef,
        /// The bits.
        values: Vec<bool>,
    },
}

/// Per-request limits of the 3E frame (Q/L series, binary).
pub const MAX_BATCH_WORDS: u16 = 960;
/// See [`MAX_BATCH_WORDS`].
pub const MAX_BATCH_BITS: u16 = 7168;
/// Words plus double words of one random read.
pub const MAX_RANDOM_POINTS: usize = 192;

/// A decoded response: the end code and the data (or error information) after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// 0 for success; otherwise the PLC's end code.
    pub end_code: u16,
    /// The response data.
    pub data: Vec<u8>,
}

/// A frame that is not a 3E binary response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The first two bytes are not `D0 00`.
    #[error("not a 3E binary response: subheader {0:02X} {1:02X} (expected D0 00)")]
    Subheader(u8, u8),
    /// The length field is too small to hold an end code.
    #[error("3E response data length {0} is shorter than its end code")]
    Length(u16),
    /// The data does not fit the request (too few bytes for the points asked for).
    #[error("3E response has {got} data bytes, expected {expected}")]
    DataSize {
        /// Received.
        got: usize,
        /// Needed by the request.
        expected: usize,
    },
}

const HEADER: usize = 9;

/// The bytes of `request` to `route` with `timer` (250 ms units).
pub fn encode(route: &Route, timer: u16, request: &Request) -> Vec<u8> {
    let mut body = Vec::with_capacity(32);
    body.extend_from_slice(&timer.to_le_bytes());
    let device = |body: &mut Vec<u8>, d: &DeviceRef| {
        body.extend_from_slice(&d.number.to_le_bytes()[..3]);
        body.push(d.code);
    };
    match request {
        Request::BatchRead { head, unit, points } => {
            body.extend_from_slice(&0x0401u16.to_le_bytes());
            body.extend_from_slice(&subcommand(*unit).to_le_bytes());
            device(&mut body, head);
            body.extend_from_slice(&points.to_le_bytes());
        }
        Request::RandomRead { words, dwords } => {
            body.extend_from_slice(&0x0403u16.to_le_bytes());
            body.extend_from_slice(&0u16.to_le_bytes());
            body.push(words.len() as u8);
            body.push(dwords.len() as u8);
            for d in words.iter().chain(dwords) {
                device(&mut body, d);
            }
        }
        Request::WriteWords { head, values } => {
            body.extend_from_slice(&0x1401u16.to_le_bytes());
            body.extend_from_slice(&0u16.to_le_bytes());
            device(&mut body, head);
            body.extend_from_slice(&(values.len() as u16).to_le_bytes());
            for v in values {
                body.extend_from_slice(&v.to_le_bytes());
            }
        }
        Request::WriteBits { head, values } => {
            body.extend_from_slice(&0x1401u16.to_le_bytes());
            body.extend_from_slice(&1u16.to_le_bytes());
            device(&mut body, head);
            body.extend_from_slice(&(values.len() as u16).to_le_bytes());
            // Two points per byte, the first in the high nibble.
            for pair in values.chunks(2) {
                let high = u8::from(pair[0]) << 4;
                let low = pair.get(1).map_or(0, |&b| u8::from(b));
                body.push(high | low);
            }
        }
    }
    let mut frame = Vec::with_capacity(HEADER + body.len());
    frame.extend_from_slice(&[0x50, 0x00, route.network, route.pc]);
    frame.extend_from_slice(&route.module_io.to_le_bytes());
    frame.push(route.module_station);
    frame.extend_from_slice(&(body.len() as u16).to_le_bytes());
    frame.extend_from_slice(&body);
    frame
}

fn subcommand(unit: Unit) -> u16 {
    match unit {
        Unit::Word => 0x0000,
        Unit::Bit => 0x0001,
    }
}

/// Decodes one response from the start of `bytes`: `Ok(None)` while the frame is incomplete
/// (read more and call again), or the response and the bytes it took.
pub fn decode(bytes: &[u8]) -> Result<Option<(Response, usize)>, ProtocolError> {
    if bytes.len() >= 2 && bytes[..2] != [0xD0, 0x00] {
        return Err(ProtocolError::Subheader(bytes[0], bytes[1]));
    }
    if bytes.len() < HEADER {
        return Ok(None);
    }
    let length = u16::from_le_bytes([bytes[7], bytes[8]]);
    if length < 2 {
        return Err(ProtocolError::Length(length));
    }
    let total = HEADER + usize::from(length);
    if bytes.len() < total {
        return Ok(None);
    }
    let end_code = u16::from_le_bytes([bytes[9], bytes[10]]);
    let data = bytes[HEADER + 2..total].to_vec();
    Ok(Some((Response { end_code, data }, total)))
}

/// The words of a word read, in device order.
pub fn words(data: &[u8], expected: usize) -> Result<Vec<u16>, ProtocolError> {
    if data.len() != expected * 2 {
        return Err(ProtocolError::DataSize {
            got: data.len(),
            expected: expected * 2,
        });
    }
    Ok(data
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .collect())
}

/// The bits of a bit-unit read (two per byte, the first in the high nibble).
pub fn bits(data: &[u8], points: usize) -> Result<Vec<bool>, ProtocolError> {
    let expected = points.div_ceil(2);
    if data.len() != expected {
        return Err(ProtocolError::DataSize {
            got: data.len(),
            expected,
        });
    }
    Ok((0..points)
        .map(|i| {
            let byte = data[i / 2];
            let nibble = if i % 2 == 0 { byte >> 4 } else { byte & 0x0F };
            nibble != 0
        })
        .collect())
}

/// What an end code means (from the MC protocol reference manual), for the log.
pub fn end_code_meaning(code: u16) -> &'static str {
    match code {
        0xC050 => "ASCII data that cannot be converted to binary was received",
        0xC051..=0xC054 => "the number of read/write points is outside the allowed range",
        0xC055 => "the number of file data read/write points is outside the allowed range",
        0xC056 => "the request exceeds the largest device number",
        0xC057 | 0xC058 | 0xC061 => "the request data length does not match the data",
        0xC059 => "the command or subcommand is wrong, or this CPU does not support it",
        0xC05B => "the CPU cannot read or write the specified device",
        0xC05C => "the request is wrong (for example bit access to a word device)",
        0xC05F => "the request cannot be executed on the target CPU",
        0xC060 => "the request is wrong (for example bad data for a bit device)",
        0xC06F => "the frame's code (ASCII/binary) does not match the module's setting",
        0xC070 => "device memory extension cannot be specified for the target station",
        0xC0B5 => "the CPU cannot handle the specified data",
        0xC200 => "the PLC is locked with a remote password",
        0xC201 => "the remote password is wrong or locked out",
        0xC204 => "the request comes from a device other than the one that unlocked the PLC",
        0x4000..=0x4FFF => "an error detected by the CPU (see the CPU's error code list)",
        _ => "an error reported by the PLC or its Ethernet module (see its manual)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: u8 = 0xA8;
    const M: u8 = 0x90;

    /// Batch read of D100..D102 as the MC protocol manual lays it out (binary, 3E).
    #[test]
    fn batch_read_of_words_has_the_manual_bytes() {
        let frame = encode(
            &Route::default(),
            0x0010,
            &Request::BatchRead {
                head: DeviceRef {
                    code: D,
                    number: 100,
                },
                unit: Unit::Word,
                points: 3,
            },
        );
        assert_eq!(
            frame,
            [
                0x50, 0x00, 0x00, 0xFF, 0xFF, 0x03, 0x00, // subheader, route
                0x0C, 0x00, // 12 bytes follow
                0x10, 0x00, // monitoring timer 4 s
                0x01, 0x04, 0x00, 0x00, // 0401 word units
                0x64, 0x00, 0x00, 0xA8, // D100
                0x03, 0x00, // 3 points
            ]
        );
    }

    #[test]
    fn random_read_and_writes_have_the_manual_bytes() {
        let route = Route {
            network: 1,
            pc: 2,
            module_io: 0x03FF,
            module_station: 0,
        };
        let frame = encode(
            &route,
            4,
            &Request::RandomRead {
                words: vec![
                    DeviceRef { code: D, number: 0 },
                    DeviceRef {
                        code: 0xB4,
                        number: 0x1A,
                    },
                ],
                dwords: vec![DeviceRef {
                    code: D,
                    number: 1500,
                }],
            },
        );
        assert_eq!(
            frame,
            [
                0x50, 0x00, 0x01, 0x02, 0xFF, 0x03, 0x00, 0x14, 0x00, 0x04, 0x00, 0x03, 0x04, 0x00,
                0x00, 0x02, 0x01, // 2 words, 1 dword
                0x00, 0x00, 0x00, 0xA8, 0x1A, 0x00, 0x00, 0xB4, 0xDC, 0x05, 0x00, 0xA8,
            ]
        );
        let frame = encode(
            &Route::default(),
            4,
            &Request::WriteBits {
                head: DeviceRef {
                    code: M,
                    number: 100,
                },
                values: vec![true, false, true],
            },
        );
        assert_eq!(
            &frame[9..],
            [0x04, 0x00, 0x01, 0x14, 0x01, 0x00, 0x64, 0x00, 0x00, 0x90, 0x03, 0x00, 0x10, 0x10]
        );
        let frame = encode(
            &Route::default(),
            4,
            &Request::WriteWords {
                head: DeviceRef { code: D, number: 7 },
                values: vec![0x1234],
            },
        );
        assert_eq!(
            &frame[9..],
            [0x04, 0x00, 0x01, 0x14, 0x00, 0x00, 0x07, 0x00, 0x00, 0xA8, 0x01, 0x00, 0x34, 0x12]
        );
    }

    const ANSWER: [u8; 17] = [
        0xD0, 0x00, 0x00, 0xFF, 0xFF, 0x03, 0x00, 0x08, 0x00, 0x00, 0x00, // end code 0
        0x95, 0x19, 0x02, 0x12, 0x30, 0x11, // D100 = 0x1995, D101 = 0x1202, D102 = 0x1130
    ];

    #[test]
    fn a_response_decodes_to_its_words() {
        let (response, used) = decode(&ANSWER).unwrap().unwrap();
        assert_eq!(used, ANSWER.len());
        assert_eq!(response.end_code, 0);
        assert_eq!(words(&response.data, 3).unwrap(), [0x1995, 0x1202, 0x1130]);
        assert_eq!(
            words(&response.data, 4).unwrap_err(),
            ProtocolError::DataSize {
                got: 6,
                expected: 8
            }
        );
    }

    /// A frame that arrives in pieces: nothing until the last byte, then the whole frame,
    /// and the bytes of the next frame are left alone.
    #[test]
    fn a_frame_arriving_in_pieces_decodes_once_complete() {
        for cut in 0..ANSWER.len() {
            assert_eq!(decode(&ANSWER[..cut]).unwrap(), None, "after {cut} bytes");
        }
        let mut two = ANSWER.to_vec();
        two.extend_from_slice(&ANSWER[..4]);
        let (_, used) = decode(&two).unwrap().unwrap();
        assert_eq!(used, ANSWER.len());
        assert_eq!(decode(&two[used..]).unwrap(), None);
    }

    #[test]
    fn an_end_code_carries_the_error_information() {
        let frame = [
            0xD0, 0x00, 0x00, 0xFF, 0xFF, 0x03, 0x00, 0x0B, 0x00, 0x56, 0xC0, // end code C056
            0x00, 0xFF, 0xFF, 0x03, 0x00, 0x01, 0x04, 0x00, 0x00,
        ];
        let (response, used) = decode(&frame).unwrap().unwrap();
        assert_eq!((response.end_code, used), (0xC056, frame.len()));
        assert_eq!(
            end_code_meaning(0xC056),
            "the request exceeds the largest device number"
        );
    }

    #[test]
    fn bits_come_two_per_byte_high_nibble_first() {
        assert_eq!(
            bits(&[0x10, 0x01, 0x10], 5).unwrap(),
            [true, false, false, true, true]
        );
        assert!(bits(&[0x10], 3).is_err());
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        assert_eq!(
            decode(&[0x50, 0x00]),
            Err(ProtocolError::Subheader(0x50, 0x00))
        );
        assert_eq!(
            decode(&[0xD0, 0x00, 0, 0, 0, 0, 0, 0x01, 0x00]),
            Err(ProtocolError::Length(1))
        );
        assert_eq!(decode(&[0xD0]), Ok(None));
    }
}
