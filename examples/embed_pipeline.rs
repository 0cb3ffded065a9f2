//! Embeds the whole pipeline in a program: a ring buffer, a writer thread with the embedded
//! SQLite sink, CSV backup, rolling metrics; four threads of your own push values into it.
//!
//! Run it: `cargo run -p examples --example embed_pipeline`

use std::sync::Arc;
use std::time::Duration;

use csv_backup::BackupWriter;
use oracle_batch::{BatchWriter, SqliteSink, WriterConfig};
use ringbuf_core::RingBuffer;
use tag_model::{Quality, TagValue};

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?; // use your own data folder
    let buffer = Arc::new(RingBuffer::new(100_000)?);
    let backup = Arc::new(BackupWriter::new(dir.path().join("backup"))?);
    let writer = BatchWriter::builder(Arc::clone(&buffer), backup)
        .sink(SqliteSink::open(
            dir.path().join("tag_values.db"),
            "TAG_VALUES",
        )?)
        .config(WriterConfig::default())
        .spawn()?;

    // Four "drivers" of your own, each with its PLC code and addresses allocated once.
    std::thread::scope(|scope| {
        for plc in 0..4 {
            let buffer = &buffer;
            scope.spawn(move || {
                let plc_code: Arc<str> = Arc::from(format!("PLC{plc:02}"));
                let addresses: Vec<Arc<str>> = (0..50)
                    .map(|i| Arc::from(format!("D{}", 100 + i)))
                    .collect();
                for cycle in 0..100 {
                    let now =
                        chrono::Utc::now().naive_utc() + chrono::Duration::milliseconds(cycle);
                    let poll: Vec<TagValue> = addresses
                        .iter()
                        .filter_map(|address| {
                            let value = Some(f64::from(plc * 1000) + cycle as f64);
                            TagValue::new(
                                now,
                                plc_code.clone(),
                                address.clone(),
                                value,
                                Quality::Good,
                            )
                            .ok()
                        })
                        .collect();
                    if buffer.push_batch(poll).is_err() {
                        return; // the buffer was closed: shutting down
                    }
                }
            });
        }
    });

    let report = writer.shutdown(Duration::from_secs(5));
    let metrics = writer_metrics_line(&report);
    println!("{metrics}");
    assert_eq!(report.stats.written, 4 * 50 * 100);
    assert!(report.clean);
    Ok(())
}

fn writer_metrics_line(report: &oracle_batch::ShutdownReport) -> String {
    format!(
        "written {} rows, {} already stored, {} backed up, {} rejected, overflow {}",
        report.stats.written,
        report.stats.duplicates,
        report.stats.backed_up,
        report.stats.rejected,
        report.overflow_count
    )
}
