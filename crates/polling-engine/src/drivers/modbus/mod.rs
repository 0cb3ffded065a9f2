//! `driver = "modbus"`: Modbus TCP through `tokio-modbus` (its blocking client, with a
//! timeout on every request). The frame codec is tokio-modbus's own, tested there on exact
//! bytes; this folder adds addresses, request planning and error mapping.

pub mod address;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use crate::driver::{Address, DriverConfig, PlcDriver, ReadPlan, TagType};
use crate::drivers::plan::{blocks, Span};
use crate::drivers::{DriverKind, Options};
use crate::WordOrder;

pub use address::{ModbusAddress, Table};

/// `driver = "modbus"`.
pub const KIND: DriverKind = DriverKind {
    name: "modbus",
    options: &[
        "host",
        "port",
        "unit_id",
        "timeout_ms",
        "connect_timeout_ms",
        "word_order",
        "max_gap",
    ],
    configure: |options| Ok(Arc::new(ModbusConfig::from_options(options)?)),
};

/// The options of a `driver = "modbus"` PLC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModbusConfig {
    /// Host name or IP address.
    pub host: String,
    /// TCP port (502).
    pub port: u16,
    /// Unit identifier (a gateway's downstream device; 255 or 1 for a direct device).
    pub unit_id: u8,
    /// How long a request may take (`timeout_ms`).
    pub timeout: Duration,
    /// How long connecting may take (`connect_timeout_ms`).
    pub connect_timeout: Duration,
    /// Word order of 32/64-bit values unless a tag says otherwise.
    pub word_order: WordOrder,
    /// Unused registers a read may bridge (`max_gap`, default 0: many devices refuse reads
    /// of registers they do not map, with exception 02).
    pub max_gap: u32,
}

impl ModbusConfig {
    fn from_options(options: &Options<'_>) -> Result<Self, String> {
        Ok(ModbusConfig {
            host: options.required_string("host")?.to_owned(),
            port: options.integer("port", 1, 65535)?.unwrap_or(502) as u16,
            unit_id: options.integer("unit_id", 0, 255)?.unwrap_or(1) as u8,
            timeout: options
                .millis("timeout_ms", 1)?
                .unwrap_or(Duration::from_secs(2)),
            connect_timeout: options
                .millis("connect_timeout_ms", 1)?
                .unwrap_or(Duration::from_secs(3)),
            word_order: options
                .parsed("word_order")?
                .unwrap_or(WordOrder::HighFirst),
            max_gap: options.integer("max_gap", 0, 125)?.unwrap_or(0) as u32,
        })
    }
}

/// One read request of a plan and where its tags sit in the answer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Planned {
    pub table: Table,
    pub start: u16,
    pub count: u16,
    /// (tag index, offset in the answer, the tag).
    pub slots: Vec<(usize, usize, ModbusAddress)>,
}

fn table_index(table: Table) -> u32 {
    match table {
        Table::Coil => 0,
        Table::DiscreteInput => 1,
        Table::InputRegister => 3,
        Table::HoldingRegister => 4,
    }
}

pub(crate) fn plan(tags: &[ModbusAddress], max_gap: u32) -> Vec<Planned> {
    let spans: Vec<Span> = tags
        .iter()
        .map(|t| Span {
            area: table_index(t.table),
            start: u32::from(t.number),
            len: u32::from(t.data_type.words().max(1)),
        })
        .collect();
    let mut requests = Vec::new();
    for table in [
        Table::Coil,
        Table::DiscreteInput,
        Table::InputRegister,
        Table::HoldingRegister,
    ] {
        let of_table: Vec<usize> = (0..tags.len())
            .filter(|&i| tags[i].table == table)
            .collect();
        let table_spans: Vec<Span> = of_table.iter().map(|&i| spans[i]).collect();
        for block in blocks(&table_spans, u32::from(table.max_read()), max_gap) {
            requests.push(Planned {
                table,
                start: block.start as u16,
                count: block.len as u16,
                slots: block
                    .members
                    .iter()
                    .map(|&m| {
                        let i = of_table[m];
                        (
                            i,
                            (u32::from(tags[i].number) - block.start) as usize,
                            tags[i],
                        )
                    })
                    .collect(),
            });
        }
    }
    requests
}

impl DriverConfig for ModbusConfig {
    fn driver_name(&self) -> &'static str {
        "modbus"
    }

    fn parse_address(&self, text: &str, tag: &TagType) -> Result<Address, String> {
        let parsed = ModbusAddress::parse(
            text,
            tag.data_type,
            tag.word_order.unwrap_or(self.word_order),
        )?;
        Ok(Address::new(text, parsed))
    }

    fn check_writable(&self, address: &Address) -> Result<(), String> {
        match address.parsed::<ModbusAddress>() {
            Some(a) if a.table.is_writable() => Ok(()),
            Some(a) => Err(format!(
                "{} is a read-only table (use a coil C or holding register HR)",
                a.table.prefix()
            )),
            None => Err("not a modbus address".into()),
        }
    }

    fn plan(&self, addresses: &[Address]) -> ReadPlan {
        let parsed: Vec<ModbusAddress> = addresses
            .iter()
            .filter_map(|a| a.parsed::<ModbusAddress>().copied())
            .collect();
        let requests = plan(&parsed, self.max_gap);
        ReadPlan::new(requests.len(), requests)
    }

    fn open(&self, plc_code: &Arc<str>) -> Box<dyn PlcDriver> {
        Box::new(transport::ModbusDriver::new(
            Arc::clone(plc_code),
            self.clone(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataType;

    #[test]
    fn each_table_is_planned_within_its_limit() {
        let mut tags: Vec<ModbusAddress> = (0..130)
            .map(|i| ModbusAddress::parse(&format!("HR{i}"), None, WordOrder::HighFirst).unwrap())
            .collect();
        tags.push(
            ModbusAddress::parse("IR10", Some(DataType::Float32), WordOrder::HighFirst).unwrap(),
        );
        tags.push(ModbusAddress::parse("IR12", None, WordOrder::HighFirst).unwrap());
        tags.push(ModbusAddress::parse("C5", None, WordOrder::HighFirst).unwrap());
        tags.push(ModbusAddress::parse("C9", None, WordOrder::HighFirst).unwrap());
        let shape = |p: &Vec<Planned>| -> Vec<(Table, u16, u16)> {
            p.iter().map(|r| (r.table, r.start, r.count)).collect()
        };
        assert_eq!(
            shape(&plan(&tags, 0)),
            [
                (Table::Coil, 5, 1),
                (Table::Coil, 9, 1),
                (Table::InputRegister, 10, 3),
                (Table::HoldingRegister, 0, 125),
                (Table::HoldingRegister, 125, 5),
            ]
        );
        assert_eq!(shape(&plan(&tags, 8))[0], (Table::Coil, 5, 5));
    }
}
