//! MELSEC device addresses (`D100`, `W1A`, `X1F`, `ZR10`), numbered as Mitsubishi defines
//! per device: decimal for D, R, M, L, F, V, SM, SD, TN, CN; hexadecimal for X, Y, B, W, SB,
//! SW, ZR.

use crate::{DataType, WordOrder};

/// Whether a device holds bits or 16-bit words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    /// A bit device (M, X, Y, B, L, ...).
    Bit,
    /// A word device (D, W, R, ZR, ...).
    Word,
}

/// One MELSEC device type.
#[derive(Debug, PartialEq, Eq)]
pub struct Device {
    /// Its name (`D`).
    pub name: &'static str,
    /// The binary device code of the 3E frame (Q/L series).
    pub code: u8,
    /// Bits or words.
    pub unit: Unit,
    /// How its numbers are written: 10 or 16.
    pub radix: u32,
    /// Whether the service may write it (inputs and special relays are refused as `ack`).
    pub writable: bool,
}

const fn device(name: &'static str, code: u8, unit: Unit, radix: u32, writable: bool) -> Device {
    Device {
        name,
        code,
        unit,
        radix,
        writable,
    }
}

/// The devices this driver reads, two-letter names first so that `SM` is not read as `S`.
pub const DEVICES: &[Device] = &[
    device("SM", 0x91, Unit::Bit, 10, false),
    device("SD", 0xA9, Unit::Word, 10, false),
    device("SB", 0xA1, Unit::Bit, 16, true),
    device("SW", 0xB5, Unit::Word, 16, true),
    device("TN", 0xC2, Unit::Word, 10, true),
    device("CN", 0xC5, Unit::Word, 10, true),
    device("ZR", 0xB0, Unit::Word, 16, true),
    device("X", 0x9C, Unit::Bit, 16, false),
    device("Y", 0x9D, Unit::Bit, 16, true),
    device("M", 0x90, Unit::Bit, 10, true),
    device("L", 0x92, Unit::Bit, 10, true),
    device("F", 0x93, Unit::Bit, 10, true),
    device("V", 0x94, Unit::Bit, 10, true),
    device("B", 0xA0, Unit::Bit, 16, true),
    device("D", 0xA8, Unit::Word, 10, true),
    device("W", 0xB4, Unit::Word, 16, true),
    device("R", 0xAF, Unit::Word, 10, true),
];

/// The largest device number a 3E frame can carry (three bytes).
pub const MAX_NUMBER: u32 = 0xFF_FFFF;

/// A parsed MELSEC address with the type read from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct McAddress {
    /// The device.
    pub device: &'static Device,
    /// The (first) device number.
    pub number: u32,
    /// The value's type (BOOL for bit devices).
    pub data_type: DataType,
    /// Word order of 32/64-bit values.
    pub word_order: WordOrder,
}

impl McAddress {
    /// Parses `text` (`D100`, `x1f`) for `data_type` (`None`: INT16 for words, BOOL for bits).
    pub fn parse(
        text: &str,
        data_type: Option<DataType>,
        word_order: WordOrder,
    ) -> Result<McAddress, String> {
        let upper = text.to_ascii_uppercase();
        let Some(device) = DEVICES.iter().find(|d| {
            upper.starts_with(d.name)
                && upper[d.name.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_hexdigit())
        }) else {
            let names: Vec<&str> = DEVICES.iter().map(|d| d.name).collect();
            return Err(format!(
                "unknown device (known: {}), or no device number",
                names.join(", ")
            ));
        };
        let digits = &upper[device.name.len()..];
        let number = u32::from_str_radix(digits, device.radix).map_err(|_| {
            format!(
                "{} numbers are {}: {digits:?} is not one",
                device.name,
                if device.radix == 16 {
                    "hexadecimal"
                } else {
                    "decimal"
                }
            )
        })?;
        let data_type = match (device.unit, data_type) {
            (Unit::Bit, None | Some(DataType::Bool)) => DataType::Bool,
            (Unit::Bit, Some(other)) => {
                return Err(format!(
                    "{} is a bit device and holds BOOL only, not {other}",
                    device.name
                ))
            }
            (Unit::Word, None) => DataType::Int16,
            (Unit::Word, Some(DataType::Bool)) => {
                return Err(format!(
                    "{} is a word device; read it as INT16/UINT16, or use a bit device for BOOL",
                    device.name
                ))
            }
            (Unit::Word, Some(other)) => other,
        };
        let last = number + u32::from(data_type.words().max(1)) - 1;
        if number > MAX_NUMBER || last > MAX_NUMBER {
            return Err(format!(
                "out of range: the largest {} number is {}",
                device.name,
                if device.radix == 16 {
                    format!("{MAX_NUMBER:X}")
                } else {
                    MAX_NUMBER.to_string()
                }
            ));
        }
        Ok(McAddress {
            device,
            number,
            data_type,
            word_order,
        })
    }

    /// Words (or bits) it takes.
    pub fn units(&self) -> u32 {
        u32::from(self.data_type.words().max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<McAddress, String> {
        McAddress::parse(text, None, WordOrder::LowFirst)
    }

    #[test]
    fn numbering_follows_each_device() {
        let cases = [
            ("D100", "D", 100, DataType::Int16),
            ("W1A", "W", 0x1A, DataType::Int16),
            ("R0", "R", 0, DataType::Int16),
            ("ZR10", "ZR", 0x10, DataType::Int16),
            ("M0", "M", 0, DataType::Bool),
            ("x1f", "X", 0x1F, DataType::Bool),
            ("Y7", "Y", 7, DataType::Bool),
            ("B10", "B", 0x10, DataType::Bool),
            ("L99", "L", 99, DataType::Bool),
            ("SM400", "SM", 400, DataType::Bool),
            ("SD203", "SD", 203, DataType::Int16),
        ];
        for (text, name, number, data_type) in cases {
            let address = parse(text).unwrap();
            assert_eq!(
                (address.device.name, address.number, address.data_type),
                (name, number, data_type),
                "{text}"
            );
        }
    }

    #[test]
    fn mistakes_say_what_is_wrong() {
        let error = |text: &str, t: Option<DataType>| {
            McAddress::parse(text, t, WordOrder::LowFirst).unwrap_err()
        };
        assert!(error("Q100", None).starts_with("unknown device (known: SM, SD"));
        assert_eq!(
            error("D1A", None),
            "D numbers are decimal: \"1A\" is not one"
        );
        assert_eq!(error("XG", None).split(' ').next(), Some("unknown"));
        assert!(error("D16777216", None).starts_with("out of range"));
        assert!(error("ZRFFFFFF", Some(DataType::Float32)).starts_with("out of range"));
        assert_eq!(
            error("M0", Some(DataType::Float32)),
            "M is a bit device and holds BOOL only, not FLOAT32"
        );
        assert!(error("D0", Some(DataType::Bool)).starts_with("D is a word device"));
    }
}
