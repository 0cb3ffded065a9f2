//! Tag types and how they are laid out in 16-bit PLC words (MC protocol and Modbus alike).

use std::fmt;
use std::str::FromStr;

/// The type of a tag's value in the PLC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    /// One bit (a bit device or coil; or bit `.N` of a word).
    Bool,
    /// One signed 16-bit word (the spec's default for `tags = ["D100"]`).
    Int16,
    /// One unsigned 16-bit word.
    Uint16,
    /// Two words, signed.
    Int32,
    /// Two words, unsigned.
    Uint32,
    /// Two words, IEEE 754 single.
    Float32,
    /// Four words, IEEE 754 double.
    Float64,
}

impl DataType {
    /// Every type, in the order the README lists them.
    pub const ALL: [DataType; 7] = [
        DataType::Bool,
        DataType::Int16,
        DataType::Uint16,
        DataType::Int32,
        DataType::Uint32,
        DataType::Float32,
        DataType::Float64,
    ];

    /// 16-bit words the value takes (a BOOL takes none: it is a bit).
    pub fn words(self) -> u16 {
        match self {
            DataType::Bool => 0,
            DataType::Int16 | DataType::Uint16 => 1,
            DataType::Int32 | DataType::Uint32 | DataType::Float32 => 2,
            DataType::Float64 => 4,
        }
    }

    /// The name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::Int16 => "INT16",
            DataType::Uint16 => "UINT16",
            DataType::Int32 => "INT32",
            DataType::Uint32 => "UINT32",
            DataType::Float32 => "FLOAT32",
            DataType::Float64 => "FLOAT64",
        }
    }

    /// The value held in `words` (exactly [`words`](Self::words) of them), first word at the
    /// lowest address.
    pub fn decode(self, words: &[u16], order: WordOrder) -> f64 {
        let mut ordered = [0u16; 4];
        let n = words.len().min(4);
        ordered[..n].copy_from_slice(&words[..n]);
        // Bring the most significant word first.
        if order == WordOrder::LowFirst {
            ordered[..n].reverse();
        }
        let wide = ordered[..n]
            .iter()
            .fold(0u64, |acc, &w| (acc << 16) | u64::from(w));
        match self {
            DataType::Bool => f64::from(u8::from(words.first().is_some_and(|&w| w != 0))),
            DataType::Int16 => f64::from(wide as u16 as i16),
            DataType::Uint16 => f64::from(wide as u16),
            DataType::Int32 => f64::from(wide as u32 as i32),
            DataType::Uint32 => f64::from(wide as u32),
            DataType::Float32 => f64::from(f32::from_bits(wide as u32)),
            DataType::Float64 => f64::from_bits(wide),
        }
    }

    /// The words that hold `value`, first word at the lowest address; `Err` when the value
    /// does not fit the type.
    pub fn encode(self, value: f64, order: WordOrder) -> Result<Vec<u16>, String> {
        let whole = |min: f64, max: f64| {
            if value.fract() == 0.0 && (min..=max).contains(&value) {
                Ok(value as i64)
            } else {
                Err(format!("{value} does not fit {}", self.name()))
            }
        };
        let wide: u64 = match self {
            DataType::Bool => return Ok(vec![u16::from(value != 0.0)]),
            DataType::Int16 => whole(i16::MIN.into(), i16::MAX.into())? as i16 as u16 as u64,
            DataType::Uint16 => whole(0.0, u16::MAX.into())? as u64,
            DataType::Int32 => whole(i32::MIN.into(), i32::MAX.into())? as i32 as u32 as u64,
            DataType::Uint32 => whole(0.0, u32::MAX.into())? as u64,
            DataType::Float32 => u64::from((value as f32).to_bits()),
            DataType::Float64 => value.to_bits(),
        };
        let n = usize::from(self.words());
        let mut words: Vec<u16> = (0..n).rev().map(|i| (wide >> (16 * i)) as u16).collect();
        if order == WordOrder::LowFirst {
            words.reverse();
        }
        Ok(words)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DataType {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        DataType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| {
                let names: Vec<&str> = DataType::ALL.iter().map(|t| t.name()).collect();
                format!("{text:?} is not a type (known: {})", names.join(", "))
            })
    }
}

/// Which 16-bit word of a 32/64-bit value comes first (at the lower address). The protocols
/// leave it open: Mitsubishi CPUs store the low word first, most Modbus devices the high word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WordOrder {
    /// `word_order = "high_first"` (big-endian words, Modbus's usual layout).
    HighFirst,
    /// `word_order = "low_first"` (MELSEC's layout of D100:D101).
    LowFirst,
}

impl FromStr for WordOrder {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "high_first" => Ok(WordOrder::HighFirst),
            "low_first" => Ok(WordOrder::LowFirst),
            other => Err(format!(
                "{other:?} is not a word order (known: high_first, low_first)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_decode_from_words_in_either_order() {
        use DataType::*;
        use WordOrder::*;
        assert_eq!(Int16.decode(&[0xFFFE], HighFirst), -2.0);
        assert_eq!(Uint16.decode(&[0xFFFE], HighFirst), 65534.0);
        assert_eq!(Int32.decode(&[0xFFFF, 0xFFFE], HighFirst), -2.0);
        assert_eq!(Int32.decode(&[0xFFFE, 0xFFFF], LowFirst), -2.0);
        assert_eq!(Uint32.decode(&[0x0001, 0x0000], LowFirst), 1.0);
        assert_eq!(Uint32.decode(&[0x0001, 0x0000], HighFirst), 65536.0);
        // 1.5f32 = 0x3FC00000
        assert_eq!(Float32.decode(&[0x3FC0, 0x0000], HighFirst), 1.5);
        assert_eq!(Float32.decode(&[0x0000, 0x3FC0], LowFirst), 1.5);
        // -2.25f64 = 0xC002000000000000
        assert_eq!(Float64.decode(&[0xC002, 0, 0, 0], HighFirst), -2.25);
        assert_eq!(Float64.decode(&[0, 0, 0, 0xC002], LowFirst), -2.25);
    }

    #[test]
    fn encode_is_the_inverse_of_decode() {
        for order in [WordOrder::HighFirst, WordOrder::LowFirst] {
            for (data_type, value) in [
                (DataType::Int16, -123.0),
                (DataType::Uint16, 65535.0),
                (DataType::Int32, -70000.0),
                (DataType::Uint32, 4_000_000_000.0),
                (DataType::Float32, 3.25),
                (DataType::Float64, -1e300),
            ] {
                let words = data_type.encode(value, order).unwrap();
                assert_eq!(words.len(), usize::from(data_type.words()));
                assert_eq!(data_type.decode(&words, order), value, "{data_type}");
            }
        }
        assert!(DataType::Int16
            .encode(40000.0, WordOrder::HighFirst)
            .is_err());
        assert!(DataType::Uint16.encode(1.5, WordOrder::HighFirst).is_err());
        assert_eq!("float32".parse::<DataType>(), Ok(DataType::Float32));
        assert!("REAL"
            .parse::<DataType>()
            .unwrap_err()
            .contains("BOOL, INT16"));
    }
}
