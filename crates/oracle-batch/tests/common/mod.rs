//! A writer over a real SQLite file, a fault-injecting wrapper and a test clock.
#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use csv_backup::{read_backup, BackupWriter};
use oracle_batch::testing::{Faults, FaultySink, TestClock};
use oracle_batch::{BatchWriter, SqliteSink, WriterConfig};
use ringbuf_core::RingBuffer;
use tag_model::{Quality, TagValue};

pub struct Rig {
    pub dir: tempfile::TempDir,
    pub buffer: Arc<RingBuffer<TagValue>>,
    pub backup: Arc<BackupWriter>,
    pub clock: Arc<TestClock>,
    pub faults: Arc<Faults>,
    pub db_path: PathBuf,
}

impl Rig {
    pub fn new(capacity: usize) -> Self {
        Self::with(tempfile::tempdir().expect("temp dir"), capacity)
    }

    /// A rig over `dir`, which may already hold backup files; a buffer of 1,000.
    pub fn in_dir(dir: tempfile::TempDir) -> Self {
        Self::with(dir, 1_000)
    }

    fn with(dir: tempfile::TempDir, capacity: usize) -> Self {
        let backup = Arc::new(BackupWriter::new(dir.path().join("backup")).expect("backup dir"));
        Rig {
            db_path: dir.path().join("data/tag_values.db"),
            buffer: Arc::new(RingBuffer::new(capacity).expect("buffer")),
            backup,
            clock: Arc::new(TestClock::new()),
            faults: Arc::new(Faults::default()),
            dir,
        }
    }

    pub fn sqlite(&self) -> SqliteSink {
        SqliteSink::open(&self.db_path, "TAG_VALUES").expect("open SQLite")
    }

    /// Starts a writer with one faulty SQLite sink steered by `self.faults`.
    pub fn start(&mut self, config: WriterConfig) -> BatchWriter {
        let (sink, faults) = FaultySink::new(self.sqlite());
        self.faults = faults;
        BatchWriter::builder(self.buffer.clone(), self.backup.clone())
            .sink(sink)
            .config(config)
            .clock(self.clock.clone())
            .spawn()
            .expect("spawn writer")
    }

    pub fn push_all(&self, values: &[TagValue]) {
        for value in values {
            assert!(self
                .buffer
                .push(value.clone())
                .expect("open buffer")
                .is_none());
        }
    }

    pub fn rows_in_db(&self) -> Vec<TagValue> {
        self.sqlite().fetch_all().expect("read back")
    }

    pub fn backed_up_rows(&self) -> Vec<TagValue> {
        self.backup
            .pending()
            .expect("list backups")
            .iter()
            .flat_map(|file| read_backup(&file.path).expect("read backup"))
            .collect()
    }
}

pub fn config(threshold: usize, interval_ms: u64) -> WriterConfig {
    WriterConfig {
        batch_threshold: threshold,
        batch_size_max: threshold.max(1),
        write_interval: Duration::from_millis(interval_ms),
        ..WriterConfig::default()
    }
}

/// `count` distinct values, numbered from `first`.
pub fn values(first: usize, count: usize) -> Vec<TagValue> {
    let start = NaiveDate::from_ymd_opt(2025, 11, 2)
        .and_then(|d| d.and_hms_opt(14, 30, 45))
        .expect("date");
    (first..first + count)
        .map(|i| {
            let timestamp = start + chrono::Duration::milliseconds(i as i64);
            TagValue::new(
                timestamp,
                format!("PLC{:02}", i % 3),
                format!("D{}", 100 + i % 10),
                Some(i as f64 * 0.5),
                Quality::Good,
            )
            .expect("valid value")
        })
        .collect()
}

/// Polls `condition` every 10 ms for up to 30 s.
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn sorted(mut values: Vec<TagValue>) -> Vec<TagValue> {
    values.sort_by_key(|v| {
        (
            v.timestamp(),
            v.plc_code().to_owned(),
            v.tag_address().to_owned(),
        )
    });
    values
}

pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
