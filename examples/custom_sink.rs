//! Plugs a database of your own into the writer: implement `Sink`, prove it with the
//! conformance suite, and hand it to a `BatchWriter`. This one keeps rows in memory, keyed by
//! the primary key, tells identical repeats from conflicting ones, and refuses values the way
//! Oracle's NUMBER would.
//!
//! Run it: `cargo run -p examples --example custom_sink`

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDateTime;
use csv_backup::BackupWriter;
use oracle_batch::conformance::{self, ConformanceSink};
use oracle_batch::{
    compare_repeat, BatchWriter, Repeat, RowConflict, RowRejection, Sink, SinkError, WriteReport,
};
use ringbuf_core::RingBuffer;
use tag_model::{Quality, TagValue};

type Key = (String, String, NaiveDateTime);

/// An in-memory historian; clones share the table.
#[derive(Clone, Default)]
struct MemoryHistorian {
    rows: Arc<Mutex<BTreeMap<Key, TagValue>>>,
}

impl Sink for MemoryHistorian {
    fn write_batch(&mut self, batch: &[TagValue]) -> Result<WriteReport, SinkError> {
        let mut rows = self
            .rows
            .lock()
            .map_err(|_| SinkError::transient("the table lock is poisoned"))?;
        let mut report = WriteReport::default();
        for (index, value) in batch.iter().enumerate() {
            if value.value().is_some_and(|v| v.abs() >= 1e126) {
                report.rejected.push(RowRejection {
                    index,
                    reason: "value out of range for NUMBER".into(),
                });
                continue;
            }
            let key = (
                value.plc_code().to_owned(),
                value.tag_address().to_owned(),
                value.timestamp(),
            );
            match rows.entry(key) {
                // Idempotent: a resent row is not stored twice. A repeat with another value
                // or quality is a conflict: the stored row stays, and the writer keeps the
                // offered one in a conflicts_*.csv file.
                Entry::Occupied(stored) => match compare_repeat(value, stored.get()) {
                    Repeat::Identical => report.duplicates += 1,
                    Repeat::Conflict => report.conflicts.push(RowConflict {
                        index,
                        stored: Some(stored.get().clone()),
                    }),
                },
                Entry::Vacant(slot) => {
                    slot.insert(value.clone());
                    report.written += 1;
                }
            }
        }
        Ok(report)
    }

    fn probe(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "Memory"
    }

    fn describe(&self) -> String {
        "in-memory historian".into()
    }
}

impl ConformanceSink for MemoryHistorian {
    fn stored_rows(&mut self) -> Result<Vec<TagValue>, SinkError> {
        let rows = self
            .rows
            .lock()
            .map_err(|_| SinkError::transient("the table lock is poisoned"))?;
        Ok(rows.values().cloned().collect())
    }
}

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. The same checks every built-in sink passes.
    conformance::run_all(MemoryHistorian::default);
    println!("MemoryHistorian passes the sink conformance suite");

    // 2. In a writer, next to a backup directory.
    let dir = tempfile::tempdir()?;
    let historian = MemoryHistorian::default();
    let buffer = Arc::new(RingBuffer::new(10_000)?);
    let writer = BatchWriter::builder(
        Arc::clone(&buffer),
        Arc::new(BackupWriter::new(dir.path())?),
    )
    .sink(historian.clone())
    .spawn()?;
    let now = chrono::Utc::now().naive_utc();
    for i in 0..1_000 {
        let value = if i == 500 { 1e200 } else { f64::from(i) };
        buffer.push(TagValue::new(
            now,
            "PLC01",
            format!("D{i}"),
            Some(value),
            Quality::Good,
        )?)?;
    }
    let report = writer.shutdown(Duration::from_secs(5));
    println!(
        "written {}, rejected {} (saved in a rejected_*.csv file)",
        report.stats.written, report.stats.rejected
    );
    assert_eq!((report.stats.written, report.stats.rejected), (999, 1));
    assert_eq!(
        historian.rows.lock().map(|rows| rows.len()).unwrap_or(0),
        999
    );
    Ok(())
}
