//! The writer's settings, their defaults (the spec's) and their checks.

use std::time::Duration;

use rolling_metrics::WindowError;

/// How the writer batches and retries. The defaults are the spec's.
#[derive(Clone, Debug, PartialEq)]
pub struct WriterConfig {
    /// Most rows per batch (BUFFER_BATCH_SIZE_MAX).
    pub batch_size_max: usize,
    /// Write as soon as the buffer holds this many (BUFFER_BATCH_THRESHOLD).
    pub batch_threshold: usize,
    /// ... or when this much time has passed (BUFFER_WRITE_INTERVAL_SEC).
    pub write_interval: Duration,
    /// Retries of a failed batch after the first attempt (ORACLE_RETRY_MAX).
    pub retry_max: u32,
    /// Delay before the first retry; each further retry waits twice as long
    /// (ORACLE_RETRY_BASE_DELAY).
    pub retry_base_delay: Duration,
    /// The rolling metrics window (METRICS_WINDOW_SEC).
    pub metrics_window: Duration,
    /// While offline, the first wait before probing the database again (OFFLINE_PROBE_MIN_SEC).
    pub offline_probe_min: Duration,
    /// ... doubling up to this (OFFLINE_PROBE_MAX_SEC).
    pub offline_probe_max: Duration,
    /// Replay pending backup files into the database once it is reachable
    /// (BACKUP_AUTO_REPLAY).
    pub auto_replay: bool,
    /// While a batch waits for its retry, values past this fill level (percent of the buffer)
    /// are moved to the backup spool instead of waiting to be displaced (BUFFER_SPILL_PCT).
    /// 100 turns spilling off.
    pub spill_pct: u8,
}

/// The default high-water mark for spilling: the spec's utilization alert level, which
/// leaves a fifth of the buffer for the values that arrive while a spill is fsynced.
pub const DEFAULT_SPILL_PCT: u8 = 80;

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            batch_size_max: 500,
            batch_threshold: 500,
            write_interval: Duration::from_millis(500),
            retry_max: 3,
            retry_base_delay: Duration::from_secs(1),
            metrics_window: rolling_metrics::DEFAULT_WINDOW,
            offline_probe_min: Duration::from_secs(1),
            offline_probe_max: Duration::from_secs(30),
            auto_replay: true,
            spill_pct: DEFAULT_SPILL_PCT,
        }
    }
}

/// Most retries accepted: 2^16 times the base delay is already most of a day.
pub const MAX_RETRIES: u32 = 16;

/// The writer could not start.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// A configuration value is out of range; names the setting.
    #[error("{setting} = {value}: {allowed}")]
    Config {
        /// The setting (its environment variable name).
        setting: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        allowed: &'static str,
    },
    /// The metrics window is invalid.
    #[error(transparent)]
    Window(#[from] WindowError),
    /// No sink was given.
    #[error("a BatchWriter needs at least one sink (one per writer thread)")]
    NoSink,
    /// A writer thread could not be started.
    #[error("cannot start a writer thread: {0}")]
    Spawn(std::io::Error),
}

impl WriterConfig {
    /// Checks every value; the error names the environment variable.
    pub fn validate(&self) -> Result<(), WriterError> {
        let fail = |setting, value: String, allowed| {
            Err(WriterError::Config {
                setting,
                value,
                allowed,
            })
        };
        if self.batch_size_max == 0 {
            return fail("BUFFER_BATCH_SIZE_MAX", "0".into(), "must be at least 1");
        }
        if self.batch_threshold == 0 {
            return fail("BUFFER_BATCH_THRESHOLD", "0".into(), "must be at least 1");
        }
        if self.write_interval.is_zero() {
            return fail(
                "BUFFER_WRITE_INTERVAL_SEC",
                "0".into(),
                "must be greater than 0",
            );
        }
        if self.offline_probe_min.is_zero() {
            return fail(
                "OFFLINE_PROBE_MIN_SEC",
                "0".into(),
                "must be greater than 0",
            );
        }
        if self.offline_probe_max < self.offline_probe_min {
            return fail(
                "OFFLINE_PROBE_MAX_SEC",
                format!("{}", self.offline_probe_max.as_secs_f64()),
                "must be at least OFFLINE_PROBE_MIN_SEC",
            );
        }
        if !(1..=100).contains(&self.spill_pct) {
            return fail(
                "BUFFER_SPILL_PCT",
                self.spill_pct.to_string(),
                "must be from 1 to 100",
            );
        }
        if self.retry_max > MAX_RETRIES {
            return fail(
                "ORACLE_RETRY_MAX",
                self.retry_max.to_string(),
                "must be from 0 to 16",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_the_spec() {
        let config = WriterConfig::default();
        assert_eq!(config.batch_size_max, 500);
        assert_eq!(config.batch_threshold, 500);
        assert_eq!(config.write_interval, Duration::from_millis(500));
        assert_eq!(config.retry_max, 3);
        assert_eq!(config.retry_base_delay, Duration::from_secs(1));
        assert_eq!(config.metrics_window, Duration::from_secs(300));
        assert_eq!(config.offline_probe_min, Duration::from_secs(1));
        assert_eq!(config.offline_probe_max, Duration::from_secs(30));
        assert!(config.auto_replay);
        assert_eq!(config.spill_pct, 80);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn invalid_config_names_the_variable() {
        let cases = [
            (
                WriterConfig {
                    batch_size_max: 0,
                    ..Default::default()
                },
                "BUFFER_BATCH_SIZE_MAX = 0: must be at least 1",
            ),
            (
                WriterConfig {
                    batch_threshold: 0,
                    ..Default::default()
                },
                "BUFFER_BATCH_THRESHOLD = 0: must be at least 1",
            ),
            (
                WriterConfig {
                    write_interval: Duration::ZERO,
                    ..Default::default()
                },
                "BUFFER_WRITE_INTERVAL_SEC = 0: must be greater than 0",
            ),
            (
                WriterConfig {
                    retry_max: 17,
                    ..Default::default()
                },
                "ORACLE_RETRY_MAX = 17: must be from 0 to 16",
            ),
            (
                WriterConfig {
                    spill_pct: 0,
                    ..Default::default()
                },
                "BUFFER_SPILL_PCT = 0: must be from 1 to 100",
            ),
            (
                WriterConfig {
                    spill_pct: 101,
                    ..Default::default()
                },
                "BUFFER_SPILL_PCT = 101: must be from 1 to 100",
            ),
        ];
        for (config, message) in cases {
            assert_eq!(config.validate().unwrap_err().to_string(), message);
        }
    }
}
