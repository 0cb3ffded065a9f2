//! Settings from environment variables and a `.env` file.
//!
//! Each variable is parsed on its own so that a bad value stops start-up with one line that
//! names the variable, its value and what is allowed (envy's serde errors name neither).

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oracle_batch::{
    ColumnMapping, EasyConnect, OracleConfig, PostgresConfig, Secret, SqliteSink, WriterConfig,
};
use tag_model::TimestampZone;

/// Where values are written.
#[derive(Clone, Debug)]
pub enum SinkConfig {
    /// Oracle Database.
    Oracle(OracleConfig),
    /// PostgreSQL (or a compatible database).
    Postgres(PostgresConfig),
    /// The embedded SQLite file.
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The table.
        table: String,
        /// The columns written (TABLE_COLUMNS; by default the shipped layout with
        /// `inserted_at`, which SQLite has the sink fill).
        mapping: ColumnMapping,
    },
}

impl SinkConfig {
    /// `Oracle` or `SQLite`.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::Oracle(_) => "Oracle",
            SinkConfig::Postgres(_) => "PostgreSQL",
            SinkConfig::Sqlite { .. } => "SQLite",
        }
    }
}

/// How values wait between the producers and the writer (BUFFER_DURABILITY).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Durability {
    /// `memory` (the default, the spec's design): the bounded ring buffer. A crash loses what
    /// it holds and the batches being written.
    Memory,
    /// `disk`: the durable log in BUFFER_DIR. Values are on disk (group-committed every
    /// BUFFER_SYNC_MS) before they count as accepted; a crash loses nothing acknowledged.
    Disk(DiskBuffer),
}

/// The durable log's settings (BUFFER_DURABILITY=disk).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskBuffer {
    /// BUFFER_DIR (default `./buffer`).
    pub dir: PathBuf,
    /// BUFFER_SYNC_MS (default 100): the group commit interval.
    pub sync_interval: Duration,
    /// BUFFER_DISK_MAX_BYTES (default 1 GiB): past it the oldest values are displaced and
    /// counted as overflow.
    pub max_bytes: u64,
}

/// The default BUFFER_DISK_MAX_BYTES: 1 GiB, about 90 million values at 11 bytes each.
pub const DEFAULT_DISK_MAX_BYTES: u64 = 1 << 30;

/// Everything the service reads from its environment. `Debug` never shows the password.
#[derive(Clone, Debug)]
pub struct Config {
    /// The sink, with its settings.
    pub sink: SinkConfig,
    /// Whether SINK was set or chosen by default.
    pub sink_chosen_by_default: bool,
    /// Ring buffer capacity (BUFFER_MAX_SIZE).
    pub buffer_max_size: usize,
    /// Memory or disk (BUFFER_DURABILITY), with the disk settings.
    pub durability: Durability,
    /// Batching and retry.
    pub writer: WriterConfig,
    /// Writer threads (WRITER_THREADS).
    pub writer_threads: usize,
    /// BACKUP_DIR.
    pub backup_dir: PathBuf,
    /// BACKUP_ROTATE_BYTES: an outage's backup file is closed and a new one started past
    /// this size (and at each new minute).
    pub backup_rotate_bytes: u64,
    /// API_BIND.
    pub api_bind: SocketAddr,
    /// LOG_FILE: [`DEFAULT_LOG_FILE`] when unset, none when set empty (stderr only); rotated
    /// past LOG_MAX_BYTES with LOG_KEEP older files kept.
    pub log_file: Option<crate::logging::LogFile>,
    /// Whether LOG_FILE was unset, so `log_file` is the default (a binary may choose its
    /// own, and a default file that cannot be opened does not stop start-up).
    pub log_file_chosen_by_default: bool,
    /// PID_FILE: written at start, removed at exit; read by stop_all.
    pub pid_file: PathBuf,
    /// TIMESTAMP_ZONE: the clock of the times the service assigns (a poll's, an ingested
    /// value's without one, the time of writing).
    pub timestamp_zone: TimestampZone,
}

/// A bad setting: names the variable, the value, and what is allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{variable}={value:?} is not valid: {allowed}")]
pub struct ConfigError {
    /// The variable, as the user spelled it.
    pub variable: String,
    /// The value given (never a password: those are not validated by content).
    pub value: String,
    /// What is allowed.
    pub allowed: String,
}

/// Default PID file, in the working directory.
pub const DEFAULT_PID_FILE: &str = "buffer-oracle-writer.pid";

/// Default log file, where the spec's troubleshooting looks (`LOG_FILE=` turns it off).
pub const DEFAULT_LOG_FILE: &str = "./logs/buffer_writer.log";

/// The variables, merged: the process environment wins over `.env`.
///
/// Only variables with UTF-8 names and values are kept as text; one whose value is not
/// UTF-8 is remembered by name, and is an error only if the service asks for it (an unrelated
/// variable such as `JUNK=$'\xff'` must not stop anything).
#[derive(Clone, Debug, Default)]
pub struct Vars {
    text: HashMap<String, String>,
    /// Variables whose value is not UTF-8: name -> the value with invalid bytes replaced.
    not_unicode: HashMap<String, String>,
    /// The first setting asked for whose value is not UTF-8 (reported by [`Config::from_vars`]).
    asked_not_unicode: Cell<Option<&'static str>>,
}

/// Settings whose values are never shown, not even in an error.
const SECRET_VARIABLES: [&str; 2] = ["ORACLE_PASSWORD", "POSTGRES_URL"];

/// A UTF-8 byte-order mark, which Windows editors put at the start of a `.env`.
const BOM: &str = "\u{feff}";

impl Vars {
    /// The process environment plus `.env` in the working directory (if present).
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut vars = Self::from_dotenv(Path::new(".env"))?;
        for (name, value) in std::env::vars_os() {
            // A name that is not UTF-8 cannot be one of ours: all of ours are ASCII.
            let Ok(name) = name.into_string() else {
                continue;
            };
            match value.into_string() {
                Ok(value) => {
                    vars.not_unicode.remove(&name);
                    vars.text.insert(name, value);
                }
                Err(value) => {
                    vars.text.remove(&name);
                    vars.not_unicode
                        .insert(name, value.to_string_lossy().into_owned());
                }
            }
        }
        Ok(vars)
    }

    /// The `KEY=value` lines of a `.env` file (none if it does not exist); a leading UTF-8
    /// byte-order mark is skipped.
    pub fn from_dotenv(path: &Path) -> Result<Self, ConfigError> {
        let name = path.display().to_string();
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Vars::default())
            }
            Err(error) => {
                return Err(ConfigError {
                    variable: name,
                    value: String::new(),
                    allowed: format!("a readable KEY=value file: {error}"),
                })
            }
        };
        let without_bom = bytes.strip_prefix(BOM.as_bytes()).unwrap_or(&bytes);
        let mut text = HashMap::new();
        for entry in dotenvy::from_read_iter(without_bom) {
            let (key, value) = entry.map_err(|e| ConfigError {
                variable: name.clone(),
                value: String::new(),
                allowed: format!("a KEY=value file: {e}"),
            })?;
            text.insert(key, value);
        }
        Ok(Vars {
            text,
            ..Vars::default()
        })
    }

    /// Variables from pairs, for tests and embedding.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Vars {
            text: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            ..Vars::default()
        }
    }

    /// The first of `names` that is set (and not empty), with the name used. A name whose
    /// value is not UTF-8 is remembered, and [`Config::from_vars`] refuses it.
    fn get(&self, names: &[&'static str]) -> Option<(&'static str, &str)> {
        names.iter().find_map(|&name| {
            if self.not_unicode.contains_key(name) && self.asked_not_unicode.get().is_none() {
                self.asked_not_unicode.set(Some(name));
            }
            self.text
                .get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(|v| (name, v))
        })
    }

    /// Whether `name` is in the environment or `.env` at all, even empty.
    fn is_set(&self, name: &str) -> bool {
        self.text.contains_key(name) || self.not_unicode.contains_key(name)
    }

    /// The error for the first setting asked for whose value is not UTF-8.
    fn not_unicode_error(&self) -> Option<ConfigError> {
        let name = self.asked_not_unicode.get()?;
        let shown = if SECRET_VARIABLES.contains(&name) {
            "(hidden)"
        } else {
            self.not_unicode.get(name).map_or("", String::as_str)
        };
        Some(invalid(
            name,
            shown,
            "text in UTF-8 (the value has bytes that are not)",
        ))
    }
}

fn invalid(variable: &str, value: &str, allowed: impl fmt::Display) -> ConfigError {
    ConfigError {
        variable: variable.to_owned(),
        value: value.to_owned(),
        allowed: allowed.to_string(),
    }
}

/// Parses `names` (canonical first, then aliases) as a number in `range`, or `default`.
fn number<T>(
    vars: &Vars,
    names: &[&'static str],
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let Some((name, text)) = vars.get(names) else {
        return Ok(default);
    };
    let allowed = || format!("a whole number from {} to {}", range.start(), range.end());
    let value: T = text.parse().map_err(|_| invalid(name, text, allowed()))?;
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(invalid(name, text, allowed()))
    }
}

/// Parses seconds (fractions allowed) in `min..=max`.
fn seconds(
    vars: &Vars,
    names: &[&'static str],
    default: Duration,
    min: f64,
    max: f64,
) -> Result<Duration, ConfigError> {
    let Some((name, text)) = vars.get(names) else {
        return Ok(default);
    };
    let allowed = || format!("a number of seconds from {min} to {max}");
    let value: f64 = text.parse().map_err(|_| invalid(name, text, allowed()))?;
    if !(min..=max).contains(&value) {
        return Err(invalid(name, text, allowed()));
    }
    Ok(Duration::from_secs_f64(value))
}

fn text(vars: &Vars, names: &[&'static str]) -> Option<String> {
    vars.get(names).map(|(_, v)| v.to_owned())
}

/// Bytes the ring buffer takes for `capacity` values. It is allocated (and touched) when the
/// service starts, whatever the load: each slot holds a [`tag_model::TagValue`] and the
/// ring's sequence stamp, as the ring itself reports. PLC codes and addresses are shared
/// strings, not counted per slot.
pub fn buffer_memory_estimate(capacity: usize) -> u64 {
    let slot = ringbuf_core::RingBuffer::<tag_model::TagValue>::bytes_per_slot();
    capacity as u64 * slot as u64
}

// The largest BUFFER_MAX_SIZE accepted (see `number` below) is one the ring can hold: above
// its maximum the ring would panic instead of the setting being refused.
const _: () = assert!(100_000_000 <= ringbuf_core::RingBuffer::<tag_model::TagValue>::MAX_CAPACITY);

/// Refuses a BUFFER_MAX_SIZE whose ring buffer would not fit in `available` bytes of memory
/// (unknown: no check), naming the estimate and the largest size that fits.
pub fn check_buffer_memory(capacity: usize, available: Option<u64>) -> Result<(), ConfigError> {
    let Some(available) = available else {
        return Ok(());
    };
    let needed = buffer_memory_estimate(capacity);
    if needed <= available {
        return Ok(());
    }
    let fits = available / buffer_memory_estimate(1).max(1);
    Err(invalid(
        "BUFFER_MAX_SIZE",
        &capacity.to_string(),
        format!(
            "the ring buffer would take about {} at start, but only {} of memory is \
             available; at most about {fits} fits",
            human_bytes(needed),
            human_bytes(available)
        ),
    ))
}

/// Memory available to a new program without swapping (Linux: `MemAvailable` in
/// /proc/meminfo); `None` where it cannot be read.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `6.7 GiB`, `68.7 MiB`, `512 KiB`.
pub fn human_bytes(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b >= KIB * KIB * KIB {
        format!("{:.1} GiB", b / (KIB * KIB * KIB))
    } else if b >= KIB * KIB {
        format!("{:.1} MiB", b / (KIB * KIB))
    } else {
        format!("{:.0} KiB", (b / KIB).ceil())
    }
}

impl Config {
    /// Reads the process environment and `.env`, and checks that the buffer fits in the
    /// memory available.
    pub fn load() -> Result<Self, ConfigError> {
        let config = Self::from_vars(&Vars::from_env()?)?;
        // In disk mode no ring buffer is allocated.
        if config.durability == Durability::Memory {
            check_buffer_memory(config.buffer_max_size, available_memory())?;
        }
        Ok(config)
    }

    /// Validates `vars` into a configuration.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let config = Self::parse(vars);
        // A setting that is not UTF-8 was read as unset; say so rather than go on without it.
        match vars.not_unicode_error() {
            Some(error) => Err(error),
            None => config,
        }
    }

    fn parse(vars: &Vars) -> Result<Self, ConfigError> {
        // The writer's defaults are the spec's; they are written down only there.
        let defaults = WriterConfig::default();
        let buffer_max_size = number(vars, &["BUFFER_MAX_SIZE"], 100_000, 1..=100_000_000)?;
        let batch_size_max = number(
            vars,
            &["BUFFER_BATCH_SIZE_MAX", "BUFFER_BATCH_SIZE"],
            defaults.batch_size_max,
            1..=1_000_000,
        )?;
        if batch_size_max > buffer_max_size {
            let (name, value) = vars
                .get(&["BUFFER_BATCH_SIZE_MAX", "BUFFER_BATCH_SIZE"])
                .unwrap_or(("BUFFER_BATCH_SIZE_MAX", ""));
            return Err(invalid(
                name,
                value,
                format!("at most BUFFER_MAX_SIZE ({buffer_max_size})"),
            ));
        }
        let batch_threshold = number(
            vars,
            &["BUFFER_BATCH_THRESHOLD"],
            defaults.batch_threshold,
            1..=100_000_000,
        )?;
        if batch_threshold > buffer_max_size {
            let value = vars.get(&["BUFFER_BATCH_THRESHOLD"]).map_or("", |v| v.1);
            return Err(invalid(
                "BUFFER_BATCH_THRESHOLD",
                value,
                format!("at most BUFFER_MAX_SIZE ({buffer_max_size})"),
            ));
        }
        let writer = WriterConfig {
            batch_size_max,
            batch_threshold,
            write_interval: seconds(
                vars,
                &["BUFFER_WRITE_INTERVAL_SEC", "BUFFER_WRITE_INTERVAL"],
                defaults.write_interval,
                0.001,
                3600.0,
            )?,
            retry_max: number(
                vars,
                &["ORACLE_RETRY_MAX"],
                defaults.retry_max,
                0..=oracle_batch::MAX_RETRIES,
            )?,
            retry_base_delay: seconds(
                vars,
                &["ORACLE_RETRY_BASE_DELAY"],
                defaults.retry_base_delay,
                0.0,
                600.0,
            )?,
            metrics_window: Duration::from_secs(number(
                vars,
                &["METRICS_WINDOW_SEC"],
                defaults.metrics_window.as_secs(),
                1..=86_400,
            )?),
            offline_probe_min: seconds(
                vars,
                &["OFFLINE_PROBE_MIN_SEC"],
                defaults.offline_probe_min,
                0.01,
                3600.0,
            )?,
            offline_probe_max: seconds(
                vars,
                &["OFFLINE_PROBE_MAX_SEC"],
                defaults.offline_probe_max,
                0.01,
                86_400.0,
            )?,
            auto_replay: boolean(vars, "BACKUP_AUTO_REPLAY", defaults.auto_replay)?,
            spill_pct: number(vars, &["BUFFER_SPILL_PCT"], defaults.spill_pct, 1..=100)?,
        };
        if writer.offline_probe_max < writer.offline_probe_min {
            let value = vars.get(&["OFFLINE_PROBE_MAX_SEC"]).map_or_else(
                || defaults.offline_probe_max.as_secs_f64().to_string(),
                |v| v.1.to_owned(),
            );
            return Err(invalid(
                "OFFLINE_PROBE_MAX_SEC",
                &value,
                "at least OFFLINE_PROBE_MIN_SEC",
            ));
        }
        let writer_threads = number(vars, &["WRITER_THREADS"], 1, 1..=64)?;
        let durability = durability(vars)?;
        let table = text(vars, &["ORACLE_TABLE"]).unwrap_or_else(|| "TAG_VALUES".into());
        if let Err(error) = oracle_batch::validate_table_name(&table) {
            return Err(invalid("ORACLE_TABLE", &table, error.message()));
        }

        let timestamp_zone = match vars.get(&["TIMESTAMP_ZONE"]) {
            None => TimestampZone::Utc,
            Some((name, value)) => value.parse().map_err(|allowed| {
                invalid(
                    name,
                    value,
                    format!(
                        "{allowed} (utc stores UTC; local the wall-clock time of this machine)"
                    ),
                )
            })?,
        };
        let mapping = match vars.get(&["TABLE_COLUMNS"]) {
            None => None,
            Some((name, value)) => Some(
                value
                    .parse::<ColumnMapping>()
                    .map_err(|e| {
                        invalid(
                            name,
                            value,
                            format!(
                                "{e}; expected column={{template}} pairs separated by commas, \
                                 e.g. tag_name={{plc_code}}.{{tag_address}}, \
                                 tag_value={{value:text}}, timestamp={{timestamp}}, \
                                 quality={{quality}}"
                            ),
                        )
                    })?
                    .with_zone(timestamp_zone),
            ),
        };
        let standard = || ColumnMapping::standard().with_zone(timestamp_zone);

        let oracle_configured = vars.get(&["ORACLE_HOST", "ORACLE_DSN"]).is_some();
        let (sink_name, sink_chosen_by_default) = match vars.get(&["SINK"]) {
            Some((_, value)) => (value.to_ascii_lowercase(), false),
            None if oracle_configured => ("oracle".into(), true),
            None => ("sqlite".into(), true),
        };
        let sink = match sink_name.as_str() {
            "oracle" => SinkConfig::Oracle(OracleConfig {
                mapping: mapping.unwrap_or_else(standard),
                ..oracle_config(vars, table)?
            }),
            "postgres" | "postgresql" => SinkConfig::Postgres(PostgresConfig {
                mapping: mapping.unwrap_or_else(standard),
                ..postgres_config(vars, table)?
            }),
            "sqlite" => SinkConfig::Sqlite {
                path: text(vars, &["SQLITE_PATH"])
                    .map_or_else(|| PathBuf::from("./data/tag_values.db"), PathBuf::from),
                table,
                mapping: mapping.unwrap_or_else(|| SqliteSink::standard_mapping(timestamp_zone)),
            },
            _ => {
                let value = vars.get(&["SINK"]).map_or("", |v| v.1);
                return Err(invalid("SINK", value, "oracle, postgres or sqlite"));
            }
        };

        let api_bind = match vars.get(&["API_BIND"]) {
            None => SocketAddr::from(([127, 0, 0, 1], 8000)),
            Some((name, value)) => parse_bind(value).ok_or_else(|| {
                invalid(
                    name,
                    value,
                    "an address and port such as 127.0.0.1:8000, localhost:8000, or :0 for a \
                     free port on 127.0.0.1",
                )
            })?,
        };
        let log_max_bytes = number(
            vars,
            &["LOG_MAX_BYTES"],
            crate::logging::DEFAULT_LOG_MAX_BYTES,
            0..=1 << 40,
        )?;
        let log_keep = number(
            vars,
            &["LOG_KEEP"],
            crate::logging::DEFAULT_LOG_KEEP,
            0..=1000,
        )?;
        let (log_path, log_file_chosen_by_default) = match text(vars, &["LOG_FILE"]) {
            Some(path) => (Some(PathBuf::from(path)), false),
            None if vars.is_set("LOG_FILE") => (None, false),
            None => (Some(PathBuf::from(DEFAULT_LOG_FILE)), true),
        };
        // The default file is rotated like a chosen one.
        let log_file = log_path.map(|path| crate::logging::LogFile {
            path,
            max_bytes: log_max_bytes,
            keep: log_keep,
        });
        Ok(Config {
            sink,
            sink_chosen_by_default,
            buffer_max_size,
            durability,
            writer,
            writer_threads,
            backup_dir: text(vars, &["BACKUP_DIR", "BACKUP_FILE_PATH"])
                .map_or_else(|| PathBuf::from("./backup"), PathBuf::from),
            backup_rotate_bytes: number(
                vars,
                &["BACKUP_ROTATE_BYTES"],
                csv_backup::DEFAULT_SPOOL_MAX_BYTES,
                1..=1 << 40,
            )?,
            api_bind,
            log_file,
            log_file_chosen_by_default,
            pid_file: text(vars, &["PID_FILE"])
                .map_or_else(|| PathBuf::from(DEFAULT_PID_FILE), PathBuf::from),
            timestamp_zone,
        })
    }

    /// The start-up summary lines, without the password.
    pub fn summary(&self) -> Vec<String> {
        let mut lines = Vec::new();
        match &self.sink {
            SinkConfig::Oracle(oracle) => {
                lines.push(format!("Oracle DSN: {}", oracle.target()));
                lines.push(format!(
                    "Oracle user: {}, table: {}",
                    oracle.user, oracle.table
                ));
                lines.push(oracle_timeouts(oracle));
            }
            SinkConfig::Postgres(postgres) => {
                lines.push(format!("PostgreSQL table: {}", postgres.table));
            }
            SinkConfig::Sqlite { path, table, .. } => {
                lines.push(format!(
                    "SQLite database: {} (table {table})",
                    path.display()
                ));
            }
        }
        let (mapping, standard) = match &self.sink {
            SinkConfig::Oracle(oracle) => (&oracle.mapping, oracle.mapping.is_standard()),
            SinkConfig::Postgres(postgres) => (&postgres.mapping, postgres.mapping.is_standard()),
            SinkConfig::Sqlite { mapping, .. } => (
                mapping,
                mapping.columns() == SqliteSink::standard_mapping(self.timestamp_zone).columns(),
            ),
        };
        if !standard {
            lines.push(format!("Table columns: {mapping}"));
        }
        lines.push(format!(
            "Timestamps the service assigns: {}",
            match self.timestamp_zone {
                TimestampZone::Utc => "UTC",
                TimestampZone::Local => "local time of this machine",
            }
        ));
        let writer = &self.writer;
        match &self.durability {
            Durability::Memory => lines.push(format!(
                "Buffer max size: {} (about {} of memory, allocated at start)",
                self.buffer_max_size,
                human_bytes(buffer_memory_estimate(self.buffer_max_size))
            )),
            Durability::Disk(disk) => lines.push(format!(
                "Buffer: durable log in {} (synced every {} ms, at most {} on disk)",
                disk.dir.display(),
                disk.sync_interval.as_millis(),
                human_bytes(disk.max_bytes)
            )),
        }
        lines.push(format!(
            "Batch size: up to {} (write at {} items or every {} seconds)",
            writer.batch_size_max,
            writer.batch_threshold,
            writer.write_interval.as_secs_f64()
        ));
        lines.push(format!(
            "Retries: {} after {:.1} s, doubling",
            writer.retry_max,
            writer.retry_base_delay.as_secs_f64()
        ));
        if writer.spill_pct < 100 {
            lines.push(format!(
                "While a batch waits for a retry, values past {}% of the buffer go to backup",
                writer.spill_pct
            ));
        }
        lines.push(format!("Backup directory: {}", self.backup_dir.display()));
        lines.push(format!("Writer threads: {}", self.writer_threads));
        lines.push(log_file_line(self.log_file.as_ref()));
        lines
    }
}

/// Where the log goes, for the start-up summary.
pub fn log_file_line(log_file: Option<&crate::logging::LogFile>) -> String {
    match log_file {
        Some(log) => {
            let rotation = match (log.max_bytes, log.keep) {
                (0, _) => "not rotated (LOG_MAX_BYTES=0)".to_owned(),
                (max, keep) => format!("rotated at {}, {keep} older files kept", human_bytes(max)),
            };
            format!(
                "Log file: {} (and stderr; LOG_FILE= turns the file off), {rotation}",
                log.path.display()
            )
        }
        None => "Log file: none (stderr only)".to_owned(),
    }
}

/// The Oracle timeouts in force, for the start-up summary.
fn oracle_timeouts(oracle: &OracleConfig) -> String {
    let login = oracle.login_retry.map_or_else(
        || "not until a restart".to_owned(),
        |t| format!("after {} s", t.as_secs_f64()),
    );
    format!(
        "Oracle timeouts: {}; after a refused login, the next login {login}",
        oracle.timeouts()
    )
}

impl Config {
    /// Warnings about settings that work but may hurt: logged at start-up.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if let SinkConfig::Oracle(oracle) = &self.sink {
            let is_easy_connect = !oracle.connect_string.trim_start().starts_with('(')
                && oracle.connect_string.contains('/');
            if !oracle_batch::oracle::sets_connect_timeout(&oracle.connect_string) {
                let how = if is_easy_connect {
                    "add ?connect_timeout=10&transport_connect_timeout=10&expire_time=1 to it"
                } else {
                    "add (CONNECT_TIMEOUT=10)(TRANSPORT_CONNECT_TIMEOUT=10)(EXPIRE_TIME=1) to its \
                     DESCRIPTION (for a tnsnames.ora alias, there), or set \
                     SQLNET.OUTBOUND_CONNECT_TIMEOUT in sqlnet.ora"
                };
                warnings.push(format!(
                    "ORACLE_DSN sets no connect timeout: when the network to the database drops, \
                     a login can hang for minutes; {how}"
                ));
            }
        }
        warnings
    }
}

/// BUFFER_DURABILITY (memory or disk) and, for disk, BUFFER_DIR, BUFFER_SYNC_MS and
/// BUFFER_DISK_MAX_BYTES.
fn durability(vars: &Vars) -> Result<Durability, ConfigError> {
    // Checked in memory mode too: a bad value is a typo to report, not to ignore.
    let disk = DiskBuffer {
        dir: text(vars, &["BUFFER_DIR"]).map_or_else(|| PathBuf::from("./buffer"), PathBuf::from),
        sync_interval: Duration::from_millis(number(vars, &["BUFFER_SYNC_MS"], 100, 1..=60_000)?),
        max_bytes: number(
            vars,
            &["BUFFER_DISK_MAX_BYTES"],
            DEFAULT_DISK_MAX_BYTES,
            durable_log::MIN_MAX_BYTES..=1 << 50,
        )?,
    };
    let Some((name, value)) = vars.get(&["BUFFER_DURABILITY"]) else {
        return Ok(Durability::Memory);
    };
    match value.to_ascii_lowercase().as_str() {
        "memory" => Ok(Durability::Memory),
        "disk" => Ok(Durability::Disk(disk)),
        _ => Err(invalid(name, value, "memory or disk")),
    }
}

/// `IP:PORT`, `[IPv6]:PORT`, `localhost:PORT`, or `:PORT` (127.0.0.1; `:0` lets the OS pick
/// a free port). Other host names are not resolved: a listening address should not depend on
/// DNS at start-up.
fn parse_bind(text: &str) -> Option<SocketAddr> {
    if let Ok(address) = text.parse() {
        return Some(address);
    }
    let (host, port) = text.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    match host {
        "" | "localhost" => Some(SocketAddr::from(([127, 0, 0, 1], port))),
        _ => None,
    }
}

/// `true`/`false` (also yes/no, on/off, 1/0), or `default`.
fn boolean(vars: &Vars, name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match vars.get(&[name]) {
        None => Ok(default),
        Some((name, value)) => match value.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err(invalid(name, value, "true or false")),
        },
    }
}

/// The pool settings apply to every pooled database: Oracle and PostgreSQL.
fn pool(vars: &Vars) -> Result<(u32, u32, Duration), ConfigError> {
    let pool_min = number(vars, &["ORACLE_POOL_MIN"], 2u32, 0..=1000)?;
    let pool_max = number(vars, &["ORACLE_POOL_MAX"], 5u32, 1..=1000)?;
    if pool_min > pool_max {
        return Err(invalid(
            "ORACLE_POOL_MIN",
            &pool_min.to_string(),
            format!("at most ORACLE_POOL_MAX ({pool_max})"),
        ));
    }
    let timeout = seconds(
        vars,
        &["ORACLE_POOL_TIMEOUT"],
        Duration::from_secs(10),
        0.1,
        600.0,
    )?;
    Ok((pool_min, pool_max, timeout))
}

fn postgres_config(vars: &Vars, table: String) -> Result<PostgresConfig, ConfigError> {
    let Some(url) = text(vars, &["POSTGRES_URL"]) else {
        return Err(invalid(
            "POSTGRES_URL",
            "",
            "required for SINK=postgres, e.g. postgres://user:password@host:5432/dbname",
        ));
    };
    let (pool_min, pool_max, pool_timeout) = pool(vars)?;
    Ok(PostgresConfig {
        url: Secret::new(url),
        table,
        pool_min,
        pool_max,
        pool_timeout,
        mapping: ColumnMapping::standard(),
    })
}

fn oracle_config(vars: &Vars, table: String) -> Result<OracleConfig, ConfigError> {
    let connect_timeout = seconds(
        vars,
        &["ORACLE_CONNECT_TIMEOUT_SEC"],
        oracle_batch::oracle::DEFAULT_CONNECT_TIMEOUT,
        1.0,
        600.0,
    )?;
    let connect_string = match (
        text(vars, &["ORACLE_DSN"]),
        text(vars, &["ORACLE_HOST"]),
        text(vars, &["ORACLE_SERVICE_NAME"]),
    ) {
        (Some(dsn), _, _) => dsn,
        (None, Some(host), Some(service)) => {
            let port = number(vars, &["ORACLE_PORT"], 1521u16, 1..=65_535)?;
            let mut easy = EasyConnect::new(&host, port, &service);
            easy.connect_timeout = Some(connect_timeout);
            easy.connect_string()
        }
        (None, Some(_), None) => {
            return Err(invalid(
                "ORACLE_SERVICE_NAME",
                "",
                "required with ORACLE_HOST (or set ORACLE_DSN)",
            ))
        }
        (None, None, _) => {
            return Err(invalid(
                "ORACLE_HOST",
                "",
                "required for SINK=oracle (or set ORACLE_DSN)",
            ))
        }
    };
    let Some(user) = text(vars, &["ORACLE_USER", "ORACLE_USERNAME"]) else {
        return Err(invalid("ORACLE_USER", "", "required for SINK=oracle"));
    };
    let password = Secret::new(text(vars, &["ORACLE_PASSWORD"]).unwrap_or_default());
    let (pool_min, pool_max, pool_timeout) = pool(vars)?;
    // 0 turns either off: no call timeout; no login after a refusal until a restart.
    let call_timeout = seconds(
        vars,
        &["ORACLE_CALL_TIMEOUT_SEC"],
        oracle_batch::DEFAULT_CALL_TIMEOUT,
        0.0,
        3600.0,
    )?;
    if !call_timeout.is_zero() && call_timeout < Duration::from_millis(1) {
        let value = vars.get(&["ORACLE_CALL_TIMEOUT_SEC"]).map_or("", |v| v.1);
        return Err(invalid(
            "ORACLE_CALL_TIMEOUT_SEC",
            value,
            "0 (no timeout) or a number of seconds from 0.001 to 3600",
        ));
    }
    let login_retry = seconds(
        vars,
        &["ORACLE_LOGIN_RETRY_SEC"],
        oracle_batch::DEFAULT_LOGIN_RETRY,
        0.0,
        86_400.0,
    )?;
    Ok(OracleConfig {
        pool_min,
        pool_max,
        pool_timeout,
        table,
        call_timeout: Some(call_timeout).filter(|t| !t.is_zero()),
        login_retry: Some(login_retry).filter(|t| !t.is_zero()),
        ..OracleConfig::new(connect_string, user, password)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(&Vars::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn defaults_are_the_design_table() {
        let config = config(&[]).unwrap();
        assert!(
            matches!(&config.sink, SinkConfig::Sqlite { path, table, mapping }
            if path == Path::new("./data/tag_values.db") && table == "TAG_VALUES"
                && mapping.names().ends_with(&["inserted_at"]))
        );
        assert_eq!(config.timestamp_zone, TimestampZone::Utc);
        assert!(!config.summary().join("\n").contains("Table columns"));
        assert!(config.sink_chosen_by_default);
        assert_eq!(config.buffer_max_size, 100_000);
        assert_eq!(config.writer, WriterConfig::default());
        assert_eq!(config.writer_threads, 1);
        assert_eq!(config.backup_dir, Path::new("./backup"));
        assert_eq!(config.api_bind.to_string(), "127.0.0.1:8000");
        assert_eq!(
            config.log_file,
            Some(crate::logging::LogFile::new(DEFAULT_LOG_FILE))
        );
        assert!(config.log_file_chosen_by_default);
    }

    #[test]
    fn the_log_file_is_the_default_unless_set_and_off_when_set_empty() {
        let config = config(&[]).unwrap();
        assert!(config.summary().contains(
            &"Log file: ./logs/buffer_writer.log (and stderr; LOG_FILE= turns the file off), \
              rotated at 50.0 MiB, 5 older files kept"
                .to_owned()
        ));
        let config = self::config(&[("LOG_FILE", "")]).unwrap();
        assert_eq!(config.log_file, None);
        assert!(!config.log_file_chosen_by_default);
        assert!(config
            .summary()
            .contains(&"Log file: none (stderr only)".to_owned()));
        let config = self::config(&[("LOG_FILE", " /var/log/bow.log ")]).unwrap();
        assert_eq!(
            config.log_file.map(|log| log.path),
            Some(PathBuf::from("/var/log/bow.log"))
        );
        assert!(!config.log_file_chosen_by_default);
    }

    #[test]
    fn oracle_is_the_default_when_oracle_is_configured() {
        let config = config(&[
            ("ORACLE_HOST", "oracle.example.com"),
            ("ORACLE_SERVICE_NAME", "XEPDB1"),
            ("ORACLE_USERNAME", "scada_user"),
            ("ORACLE_PASSWORD", "your_secure_password"),
        ])
        .unwrap();
        let SinkConfig::Oracle(oracle) = &config.sink else {
            panic!("{config:?}")
        };
        assert_eq!(
            oracle.connect_string,
            "oracle.example.com:1521/XEPDB1?connect_timeout=10&transport_connect_timeout=10\
             &expire_time=1"
        );
        assert_eq!(oracle.target(), "oracle.example.com:1521/XEPDB1");
        assert_eq!(oracle.call_timeout, Some(Duration::from_secs(20)));
        assert_eq!(oracle.login_retry, Some(Duration::from_secs(900)));
        assert!(config.warnings().is_empty(), "{:?}", config.warnings());
        assert_eq!(oracle.user, "scada_user");
        assert_eq!(oracle.password.expose(), "your_secure_password");
        assert_eq!((oracle.pool_min, oracle.pool_max), (2, 5));
        assert_eq!(oracle.pool_timeout, Duration::from_secs(10));
        let shown = format!("{config:?} {}", config.summary().join("\n"));
        assert!(!shown.contains("your_secure_password"), "{shown}");
        assert!(shown.contains("Oracle DSN: oracle.example.com:1521/XEPDB1"));
    }

    #[test]
    fn oracle_timeouts_and_login_retry_are_settings() {
        let base = [
            ("ORACLE_HOST", "fd00::15"),
            ("ORACLE_SERVICE_NAME", "XEPDB1"),
            ("ORACLE_USER", "scada_user"),
        ];
        let oracle = |extra: &[(&str, &str)]| {
            let pairs: Vec<(&str, &str)> = base.iter().chain(extra).copied().collect();
            match config(&pairs).unwrap().sink {
                SinkConfig::Oracle(oracle) => oracle,
                other => panic!("{other:?}"),
            }
        };
        let default = oracle(&[]);
        // An IPv6 address needs brackets in Easy Connect.
        assert_eq!(default.target(), "[fd00::15]:1521/XEPDB1");
        let tuned = oracle(&[
            ("ORACLE_CONNECT_TIMEOUT_SEC", "3"),
            ("ORACLE_CALL_TIMEOUT_SEC", "7.5"),
            ("ORACLE_LOGIN_RETRY_SEC", "3600"),
        ]);
        assert_eq!(
            tuned.connect_string,
            "[fd00::15]:1521/XEPDB1?connect_timeout=3&transport_connect_timeout=3&expire_time=1"
        );
        assert_eq!(tuned.call_timeout, Some(Duration::from_millis(7500)));
        assert_eq!(tuned.login_retry, Some(Duration::from_secs(3600)));
        let off = oracle(&[
            ("ORACLE_CALL_TIMEOUT_SEC", "0"),
            ("ORACLE_LOGIN_RETRY_SEC", "0"),
        ]);
        assert_eq!((off.call_timeout, off.login_retry), (None, None));
        let summary = config(&base).unwrap().summary().join("\n");
        assert!(
            summary.contains(
                "Oracle timeouts: connect 10 s, each call 20 s; after a refused login, the next \
                 login after 900 s"
            ),
            "{summary}"
        );
        for (variable, value, allowed) in [
            (
                "ORACLE_CONNECT_TIMEOUT_SEC",
                "0",
                "a number of seconds from 1 to 600",
            ),
            (
                "ORACLE_CALL_TIMEOUT_SEC",
                "-1",
                "a number of seconds from 0 to 3600",
            ),
            (
                "ORACLE_CALL_TIMEOUT_SEC",
                "0.0001",
                "0 (no timeout) or a number of seconds",
            ),
            (
                "ORACLE_LOGIN_RETRY_SEC",
                "soon",
                "a number of seconds from 0 to 86400",
            ),
        ] {
            let pairs: Vec<(&str, &str)> =
                base.iter().copied().chain([(variable, value)]).collect();
            let error = config(&pairs).unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("{variable}=\"{value}\" is not valid: {allowed}")),
                "{error}"
            );
        }
    }

    #[test]
    fn a_dsn_without_a_connect_timeout_is_warned_about() {
        let warnings = |dsn: &str| {
            config(&[("ORACLE_DSN", dsn), ("ORACLE_USER", "u")])
                .unwrap()
                .warnings()
        };
        let easy = warnings("db.plant:1521/XEPDB1");
        assert_eq!(easy.len(), 1, "{easy:?}");
        assert!(easy[0].contains("?connect_timeout=10&transport_connect_timeout=10"));
        let descriptor =
            warnings("(DESCRIPTION=(ADDRESS=(PROTOCOL=TCP)(HOST=db)(PORT=1521))(CONNECT_DATA=(SERVICE_NAME=X)))");
        assert!(
            descriptor[0].contains("(CONNECT_TIMEOUT=10)"),
            "{descriptor:?}"
        );
        assert!(warnings("db.plant:1521/XEPDB1?connect_timeout=5").is_empty());
        let summary = config(&[
            ("ORACLE_DSN", "db/x?connect_timeout=5"),
            ("ORACLE_USER", "u"),
        ])
        .unwrap()
        .summary()
        .join("\n");
        assert!(summary.contains("Oracle DSN: db/x\n"), "{summary}");
        assert!(summary.contains("connect 5 s"), "{summary}");
    }

    #[test]
    fn both_spellings_are_accepted_and_the_canonical_wins() {
        let config = config(&[
            ("BUFFER_BATCH_SIZE", "100"),
            ("BUFFER_WRITE_INTERVAL", "2.5"),
            ("BACKUP_FILE_PATH", "/var/lib/bow/backup"),
        ])
        .unwrap();
        assert_eq!(config.writer.batch_size_max, 100);
        assert_eq!(config.writer.write_interval, Duration::from_millis(2500));
        assert_eq!(config.backup_dir, Path::new("/var/lib/bow/backup"));
        let config = self::config(&[
            ("BUFFER_BATCH_SIZE", "100"),
            ("BUFFER_BATCH_SIZE_MAX", "200"),
        ])
        .unwrap();
        assert_eq!(config.writer.batch_size_max, 200);
    }

    #[test]
    fn bad_values_name_the_variable_the_value_and_what_is_allowed() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("BUFFER_MAX_SIZE", "lots")],
                "BUFFER_MAX_SIZE=\"lots\" is not valid: a whole number from 1 to 100000000",
            ),
            (
                &[("BUFFER_MAX_SIZE", "0")],
                "BUFFER_MAX_SIZE=\"0\" is not valid: a whole number from 1 to 100000000",
            ),
            (
                &[("BUFFER_MAX_SIZE", "100"), ("BUFFER_BATCH_SIZE", "500")],
                "BUFFER_BATCH_SIZE=\"500\" is not valid: at most BUFFER_MAX_SIZE (100)",
            ),
            (
                &[("BUFFER_WRITE_INTERVAL_SEC", "-1")],
                "BUFFER_WRITE_INTERVAL_SEC=\"-1\" is not valid: a number of seconds from 0.001 to 3600",
            ),
            (
                &[("ORACLE_RETRY_MAX", "99")],
                "ORACLE_RETRY_MAX=\"99\" is not valid: a whole number from 0 to 16",
            ),
            (
                &[("SINK", "mysql")],
                "SINK=\"mysql\" is not valid: oracle, postgres or sqlite",
            ),
            (
                &[("SINK", "oracle")],
                "ORACLE_HOST=\"\" is not valid: required for SINK=oracle (or set ORACLE_DSN)",
            ),
            (
                &[("ORACLE_HOST", "h")],
                "ORACLE_SERVICE_NAME=\"\" is not valid: required with ORACLE_HOST",
            ),
            (
                &[("ORACLE_DSN", "h/s"), ("ORACLE_PORT", "99999")],
                "ORACLE_USER=\"\" is not valid: required for SINK=oracle",
            ),
            (
                &[("ORACLE_DSN", "h/s"), ("ORACLE_USER", "u"), ("ORACLE_POOL_MIN", "9")],
                "ORACLE_POOL_MIN=\"9\" is not valid: at most ORACLE_POOL_MAX (5)",
            ),
            (
                &[("ORACLE_TABLE", "tag values")],
                "ORACLE_TABLE=\"tag values\" is not valid: table name",
            ),
            (
                &[("API_BIND", "localhost")],
                "API_BIND=\"localhost\" is not valid: an address and port such as 127.0.0.1:8000",
            ),
            (
                &[("API_BIND", "plant-pc:8000")],
                "API_BIND=\"plant-pc:8000\" is not valid: an address and port",
            ),
            (
                &[("SINK", "postgres")],
                "POSTGRES_URL=\"\" is not valid: required for SINK=postgres",
            ),
            (
                &[("BACKUP_AUTO_REPLAY", "maybe")],
                "BACKUP_AUTO_REPLAY=\"maybe\" is not valid: true or false",
            ),
            (
                &[("OFFLINE_PROBE_MIN_SEC", "10"), ("OFFLINE_PROBE_MAX_SEC", "5")],
                "OFFLINE_PROBE_MAX_SEC=\"5\" is not valid: at least OFFLINE_PROBE_MIN_SEC",
            ),
            (
                &[("BUFFER_SPILL_PCT", "0")],
                "BUFFER_SPILL_PCT=\"0\" is not valid: a whole number from 1 to 100",
            ),
            (
                &[("BUFFER_SPILL_PCT", "85.5")],
                "BUFFER_SPILL_PCT=\"85.5\" is not valid: a whole number from 1 to 100",
            ),
            (
                &[("LOG_MAX_BYTES", "50M")],
                "LOG_MAX_BYTES=\"50M\" is not valid: a whole number from 0 to 1099511627776",
            ),
            (
                &[("LOG_KEEP", "-1")],
                "LOG_KEEP=\"-1\" is not valid: a whole number from 0 to 1000",
            ),
            (
                &[("WRITER_THREADS", "0")],
                "WRITER_THREADS=\"0\" is not valid: a whole number from 1 to 64",
            ),
            (
                &[("BUFFER_DURABILITY", "ssd")],
                "BUFFER_DURABILITY=\"ssd\" is not valid: memory or disk",
            ),
            (
                &[("BUFFER_DURABILITY", "disk"), ("BUFFER_SYNC_MS", "0")],
                "BUFFER_SYNC_MS=\"0\" is not valid: a whole number from 1 to 60000",
            ),
            (
                &[("BUFFER_SYNC_MS", "fast")],
                "BUFFER_SYNC_MS=\"fast\" is not valid: a whole number from 1 to 60000",
            ),
            (
                &[("BUFFER_DURABILITY", "disk"), ("BUFFER_DISK_MAX_BYTES", "1000")],
                "BUFFER_DISK_MAX_BYTES=\"1000\" is not valid: a whole number from 262144 to",
            ),
        ];
        for (pairs, expected) in cases {
            let error = config(pairs).unwrap_err().to_string();
            assert!(
                error.starts_with(expected),
                "got {error:?}, wanted {expected:?}"
            );
        }
    }

    #[test]
    fn postgres_is_chosen_by_sink_and_its_url_never_shown() {
        let config = config(&[
            ("SINK", "postgres"),
            (
                "POSTGRES_URL",
                "postgres://scada:pg-s3cret@db:5432/historian",
            ),
            ("BACKUP_AUTO_REPLAY", "false"),
        ])
        .unwrap();
        assert!(matches!(&config.sink, SinkConfig::Postgres(pg) if pg.table == "TAG_VALUES"));
        assert!(!config.writer.auto_replay);
        let shown = format!("{config:?} {}", config.summary().join(" "));
        assert!(!shown.contains("pg-s3cret"), "{shown}");
    }

    #[test]
    fn api_bind_takes_localhost_and_a_bare_port() {
        for (text, expected) in [
            (":0", "127.0.0.1:0"),
            (":8001", "127.0.0.1:8001"),
            ("localhost:8000", "127.0.0.1:8000"),
            ("0.0.0.0:80", "0.0.0.0:80"),
            ("[::1]:8000", "[::1]:8000"),
        ] {
            let config = config(&[("API_BIND", text)]).unwrap();
            assert_eq!(config.api_bind.to_string(), expected, "{text}");
        }
    }

    #[test]
    fn a_dotenv_file_may_start_with_a_byte_order_mark() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, "\u{feff}BUFFER_MAX_SIZE=2000\nSINK=sqlite\n").unwrap();
        let config = Config::from_vars(&Vars::from_dotenv(&path).unwrap()).unwrap();
        assert_eq!(config.buffer_max_size, 2000);
        assert!(!config.sink_chosen_by_default);
        let missing = Vars::from_dotenv(&dir.path().join("none")).unwrap();
        assert_eq!(
            Config::from_vars(&missing).unwrap().buffer_max_size,
            100_000
        );
    }

    #[test]
    fn a_setting_that_is_not_utf8_is_refused_by_name_and_others_are_ignored() {
        let mut vars = Vars::from_pairs([("BUFFER_MAX_SIZE", "2000")]);
        vars.not_unicode.insert("JUNK".into(), "\u{fffd}".into());
        assert_eq!(Config::from_vars(&vars).unwrap().buffer_max_size, 2000);
        vars.not_unicode
            .insert("BACKUP_DIR".into(), "/data/\u{fffd}".into());
        vars.not_unicode
            .insert("ORACLE_PASSWORD".into(), "pw\u{fffd}".into());
        let error = Config::from_vars(&vars).unwrap_err().to_string();
        assert_eq!(
            error,
            "BACKUP_DIR=\"/data/\u{fffd}\" is not valid: text in UTF-8 (the value has bytes \
             that are not)"
        );
        let vars = Vars {
            not_unicode: HashMap::from([("ORACLE_PASSWORD".into(), "s3cret\u{fffd}".into())]),
            ..Vars::from_pairs([("ORACLE_DSN", "h/s"), ("ORACLE_USER", "u")])
        };
        let error = Config::from_vars(&vars).unwrap_err().to_string();
        assert!(error.starts_with("ORACLE_PASSWORD=\"(hidden)\""), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }

    #[test]
    fn the_buffer_memory_estimate_is_checked_against_available_memory() {
        // 64-byte values plus the ring's 8-byte stamp.
        assert_eq!(buffer_memory_estimate(1), 72);
        assert_eq!(
            buffer_memory_estimate(1),
            ringbuf_core::RingBuffer::<tag_model::TagValue>::bytes_per_slot() as u64
        );
        assert_eq!(buffer_memory_estimate(100_000_000), 7_200_000_000);
        assert_eq!(human_bytes(buffer_memory_estimate(100_000)), "6.9 MiB");
        let gib = 1u64 << 30;
        assert_eq!(check_buffer_memory(100_000_000, None), Ok(()));
        assert_eq!(check_buffer_memory(100_000_000, Some(8 * gib)), Ok(()));
        let error = check_buffer_memory(100_000_000, Some(2 * gib))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "BUFFER_MAX_SIZE=\"100000000\" is not valid: the ring buffer would take about 6.7 \
             GiB at start, but only 2.0 GiB of memory is available; at most about 29826161 fits"
        );
        let summary = config(&[]).unwrap().summary().join("\n");
        assert!(
            summary
                .contains("Buffer max size: 100000 (about 6.9 MiB of memory, allocated at start)"),
            "{summary}"
        );
        // This machine can tell.
        if cfg!(target_os = "linux") {
            assert!(available_memory().is_some_and(|bytes| bytes > 0));
        }
    }

    #[test]
    fn table_columns_and_timestamp_zone_are_settings() {
        let tag_data = "tag_name={plc_code}.{tag_address}, tag_value={value:text}, \
                        timestamp={timestamp}, quality={quality}";
        for sink in ["sqlite", "postgres", "oracle"] {
            let config = config(&[
                ("SINK", sink),
                ("POSTGRES_URL", "postgres://u:p@h/db"),
                ("ORACLE_HOST", "h"),
                ("ORACLE_SERVICE_NAME", "s"),
                ("ORACLE_USER", "u"),
                ("ORACLE_TABLE", "TAG_DATA"),
                ("TABLE_COLUMNS", tag_data),
                ("TIMESTAMP_ZONE", "Local"),
            ])
            .unwrap();
            let mapping = match &config.sink {
                SinkConfig::Oracle(oracle) => &oracle.mapping,
                SinkConfig::Postgres(postgres) => &postgres.mapping,
                SinkConfig::Sqlite { mapping, .. } => mapping,
            };
            assert_eq!(mapping.to_string(), tag_data, "{sink}");
            assert_eq!(mapping.zone(), TimestampZone::Local, "{sink}");
            assert_eq!(config.timestamp_zone, TimestampZone::Local);
            let summary = config.summary().join("\n");
            assert!(
                summary.contains(&format!("Table columns: {tag_data}")),
                "{summary}"
            );
            assert!(
                summary.contains("Timestamps the service assigns: local time"),
                "{summary}"
            );
        }
        // Without TABLE_COLUMNS: the shipped layout (SQLite fills inserted_at itself).
        let postgres = config(&[
            ("SINK", "postgres"),
            ("POSTGRES_URL", "postgres://u:p@h/db"),
        ])
        .unwrap();
        assert!(matches!(&postgres.sink, SinkConfig::Postgres(pg) if pg.mapping.is_standard()));

        let error = config(&[("TIMESTAMP_ZONE", "CET")])
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("TIMESTAMP_ZONE=\"CET\" is not valid: utc or local"),
            "{error}"
        );
        let error = config(&[("TABLE_COLUMNS", "tag_name={plc_code}.{tag_address}")]).unwrap_err();
        assert_eq!(error.variable, "TABLE_COLUMNS");
        assert!(
            error.allowed.starts_with("no column takes {timestamp}"),
            "{error}"
        );
        let error = config(&[(
            "TABLE_COLUMNS",
            "t={timestamp}, v={value}, n={plc_code}.{tagaddress}",
        )])
        .unwrap_err();
        assert!(
            error
                .allowed
                .starts_with("column n: unknown placeholder {tagaddress}"),
            "{error}"
        );
    }

    #[test]
    fn log_file_rotation_defaults_to_50_mib_and_5_files() {
        // The default file is rotated too.
        let config = config(&[("LOG_MAX_BYTES", "1000"), ("LOG_KEEP", "2")]).unwrap();
        let log = config.log_file.unwrap();
        assert_eq!(
            (log.path.to_str(), log.max_bytes, log.keep),
            (Some(DEFAULT_LOG_FILE), 1000, 2)
        );
        let config = self::config(&[("LOG_FILE", "logs/buffer_writer.log")]).unwrap();
        assert_eq!(
            config.log_file,
            Some(crate::logging::LogFile {
                path: PathBuf::from("logs/buffer_writer.log"),
                max_bytes: 50 * 1024 * 1024,
                keep: 5,
            })
        );
        assert!(config.summary().contains(
            &"Log file: logs/buffer_writer.log (and stderr; LOG_FILE= turns the file off), \
              rotated at 50.0 MiB, 5 older files kept"
                .into()
        ));
        let config = self::config(&[
            ("LOG_FILE", "a.log"),
            ("LOG_MAX_BYTES", "0"),
            ("LOG_KEEP", "0"),
        ])
        .unwrap();
        let log = config.log_file.clone().unwrap();
        assert_eq!((log.max_bytes, log.keep), (0, 0));
        assert!(config.summary().contains(
            &"Log file: a.log (and stderr; LOG_FILE= turns the file off), not rotated \
              (LOG_MAX_BYTES=0)"
                .into()
        ));
    }

    #[test]
    fn empty_values_count_as_unset() {
        let config = config(&[("BUFFER_MAX_SIZE", ""), ("SINK", " ")]).unwrap();
        assert_eq!(config.buffer_max_size, 100_000);
        assert_eq!(config.sink.kind(), "SQLite");
    }

    #[test]
    fn durability_is_memory_unless_disk_is_asked_for() {
        assert_eq!(config(&[]).unwrap().durability, Durability::Memory);
        assert_eq!(
            config(&[("BUFFER_DURABILITY", "Memory")])
                .unwrap()
                .durability,
            Durability::Memory
        );
        assert_eq!(
            config(&[("BUFFER_DURABILITY", "disk")]).unwrap().durability,
            Durability::Disk(DiskBuffer {
                dir: PathBuf::from("./buffer"),
                sync_interval: Duration::from_millis(100),
                max_bytes: 1 << 30,
            })
        );
        let disk = config(&[
            ("BUFFER_DURABILITY", "DISK"),
            ("BUFFER_DIR", "/var/lib/bow/buffer"),
            ("BUFFER_SYNC_MS", "250"),
            ("BUFFER_DISK_MAX_BYTES", "10000000"),
        ])
        .unwrap();
        assert_eq!(
            disk.durability,
            Durability::Disk(DiskBuffer {
                dir: PathBuf::from("/var/lib/bow/buffer"),
                sync_interval: Duration::from_millis(250),
                max_bytes: 10_000_000,
            })
        );
        assert!(disk
            .summary()
            .iter()
            .any(|line| line.contains("durable log in /var/lib/bow/buffer")));
    }
}
