//! Modbus addresses: the table by name (`HR100`, `IR5`, `C12`, `DI0`, protocol addresses from
//! 0) or in the operator's 1-based forms (`40001` = `HR0`, `30001`, `00001`, `10001`, and the
//! six-digit `400001`).

use crate::{DataType, WordOrder};

/// The four Modbus tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Table {
    /// Coils: read/write bits (function 1, written with 5).
    Coil,
    /// Discrete inputs: read-only bits (function 2).
    DiscreteInput,
    /// Input registers: read-only words (function 4).
    InputRegister,
    /// Holding registers: read/write words (function 3, written with 6/16).
    HoldingRegister,
}

impl Table {
    /// Whether the table holds bits.
    pub fn is_bit(self) -> bool {
        matches!(self, Table::Coil | Table::DiscreteInput)
    }

    /// Whether a client may write it.
    pub fn is_writable(self) -> bool {
        matches!(self, Table::Coil | Table::HoldingRegister)
    }

    /// The prefix of the address syntax.
    pub fn prefix(self) -> &'static str {
        match self {
            Table::Coil => "C",
            Table::DiscreteInput => "DI",
            Table::InputRegister => "IR",
            Table::HoldingRegister => "HR",
        }
    }

    /// Most units one read may ask for.
    pub fn max_read(self) -> u16 {
        if self.is_bit() {
            2000
        } else {
            125
        }
    }
}

/// A parsed Modbus address with its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModbusAddress {
    /// The table.
    pub table: Table,
    /// Protocol address (0-based).
    pub number: u16,
    /// The value's type (BOOL for coils and discrete inputs).
    pub data_type: DataType,
    /// Word order of 32/64-bit values.
    pub word_order: WordOrder,
}

impl ModbusAddress {
    /// Parses `text` for `data_type` (`None`: INT16 for registers, BOOL for bits).
    pub fn parse(
        text: &str,
        data_type: Option<DataType>,
        word_order: WordOrder,
    ) -> Result<Self, String> {
        let upper = text.to_ascii_uppercase();
        let (table, number) = if upper.bytes().all(|b| b.is_ascii_digit()) && !upper.is_empty() {
            numbered(&upper)?
        } else {
            let (table, digits) = [
                (Table::HoldingRegister, "HR"),
                (Table::InputRegister, "IR"),
                (Table::DiscreteInput, "DI"),
                (Table::Coil, "C"),
            ]
            .into_iter()
            .find_map(|(table, prefix)| upper.strip_prefix(prefix).map(|rest| (table, rest)))
            .ok_or("expected HR, IR, C or DI and a number (HR100), or 40001-style numbering")?;
            let number = digits
                .parse::<u16>()
                .map_err(|_| format!("{digits:?} is not a register number from 0 to 65535"))?;
            (table, number)
        };
        let data_type = match (table.is_bit(), data_type) {
            (true, None | Some(DataType::Bool)) => DataType::Bool,
            (true, Some(other)) => {
                return Err(format!(
                    "{} is a bit table and holds BOOL only, not {other}",
                    table.prefix()
                ))
            }
            (false, None) => DataType::Int16,
            (false, Some(DataType::Bool)) => {
                return Err(format!(
                    "{} holds 16-bit registers; use a coil (C) or discrete input (DI) for BOOL",
                    table.prefix()
                ))
            }
            (false, Some(other)) => other,
        };
        if u32::from(number) + u32::from(data_type.words().max(1)) - 1 > u32::from(u16::MAX) {
            return Err(format!(
                "out of range: a {data_type} at {number} runs past register 65535"
            ));
        }
        Ok(ModbusAddress {
            table,
            number,
            data_type,
            word_order,
        })
    }
}

/// `40001` (5 digits, 1-based) and `400001` (6 digits) forms.
fn numbered(digits: &str) -> Result<(Table, u16), String> {
    let (lead, rest) = match digits.len() {
        5 | 6 => digits.split_at(1),
        _ => {
            return Err(format!(
                "{digits:?}: numbered addresses have 5 digits (40001) or 6 (400001)"
            ))
        }
    };
    let table = match lead {
        "0" => Table::Coil,
        "1" => Table::DiscreteInput,
        "3" => Table::InputRegister,
        "4" => Table::HoldingRegister,
        _ => {
            return Err(format!(
                "{digits:?}: the first digit names the table: 0 coils, 1 discrete inputs, 3 \
                 input registers, 4 holding registers"
            ))
        }
    };
    let one_based: u32 = rest
        .parse()
        .map_err(|_| format!("{digits:?} is not a number"))?;
    if !(1..=65536).contains(&one_based) {
        return Err(format!("{digits:?}: numbering starts at 1 (40001 is HR0)"));
    }
    Ok((table, (one_based - 1) as u16))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(Table, u16, DataType), String> {
        ModbusAddress::parse(text, None, WordOrder::HighFirst)
            .map(|a| (a.table, a.number, a.data_type))
    }

    #[test]
    fn both_syntaxes_name_the_table() {
        use Table::*;
        assert_eq!(parse("HR100"), Ok((HoldingRegister, 100, DataType::Int16)));
        assert_eq!(parse("ir5"), Ok((InputRegister, 5, DataType::Int16)));
        assert_eq!(parse("C12"), Ok((Coil, 12, DataType::Bool)));
        assert_eq!(parse("DI0"), Ok((DiscreteInput, 0, DataType::Bool)));
        assert_eq!(parse("40001"), Ok((HoldingRegister, 0, DataType::Int16)));
        assert_eq!(parse("30010"), Ok((InputRegister, 9, DataType::Int16)));
        assert_eq!(parse("00001"), Ok((Coil, 0, DataType::Bool)));
        assert_eq!(parse("10002"), Ok((DiscreteInput, 1, DataType::Bool)));
        assert_eq!(
            parse("465536"),
            Ok((HoldingRegister, 65535, DataType::Int16))
        );
    }

    #[test]
    fn mistakes_say_what_is_wrong() {
        assert!(parse("D100")
            .unwrap_err()
            .starts_with("expected HR, IR, C or DI"));
        assert!(parse("HR70000").unwrap_err().contains("0 to 65535"));
        assert!(parse("40000").unwrap_err().contains("starts at 1"));
        assert!(parse("20001")
            .unwrap_err()
            .contains("first digit names the table"));
        assert!(parse("4001").unwrap_err().contains("5 digits"));
        let float_coil = ModbusAddress::parse("C1", Some(DataType::Float32), WordOrder::HighFirst);
        assert_eq!(
            float_coil.unwrap_err(),
            "C is a bit table and holds BOOL only, not FLOAT32"
        );
        let past = ModbusAddress::parse("HR65535", Some(DataType::Int32), WordOrder::HighFirst);
        assert!(past.unwrap_err().starts_with("out of range"));
    }
}
