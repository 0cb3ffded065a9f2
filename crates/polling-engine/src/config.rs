//! The polling configuration file (TOML) and its validation.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::simulated::{SimulatedOptions, SimulatedPlc};

/// The bundled example: the spec quickstart's three groups on simulated PLCs
/// (`config/polling.toml`).
pub const EXAMPLE_CONFIG: &str = include_str!("../../../config/polling.toml");

/// PLCs and the groups that poll them.
#[derive(Clone, Debug, PartialEq)]
pub struct PollingConfig {
    /// The PLCs, by code.
    pub plcs: Vec<PlcConfig>,
    /// The polling groups, in file order.
    pub groups: Vec<GroupConfig>,
}

/// One PLC.
#[derive(Clone, Debug, PartialEq)]
pub struct PlcConfig {
    /// Its code, stored with every value (`PLC01`).
    pub plc_code: Arc<str>,
    /// How to talk to it.
    pub driver: DriverConfig,
}

/// The drivers this crate knows.
#[derive(Clone, Debug, PartialEq)]
pub enum DriverConfig {
    /// `driver = "simulated"`.
    Simulated(SimulatedOptions),
}

impl DriverConfig {
    fn check_address(&self, address: &str) -> Result<(), String> {
        match self {
            DriverConfig::Simulated(_) => SimulatedPlc::check_address(address),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            DriverConfig::Simulated(_) => "simulated",
        }
    }
}

/// One polling group.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupConfig {
    /// Unique name (`LINE1_PROCESS1`).
    pub name: String,
    /// When it polls.
    pub mode: Mode,
    /// The PLC it reads.
    pub plc_code: Arc<str>,
    /// The addresses read in each poll, in order.
    pub tags: Vec<Arc<str>>,
}

/// When a group polls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// On a fixed schedule.
    Fixed {
        /// Time between polls.
        interval: Duration,
    },
    /// Once per trigger.
    Handshake,
}

/// A configuration error: names the file, the PLC or group, and the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct ConfigError {
    /// The file (or "built-in example").
    pub origin: String,
    /// What is wrong, starting with where: `group "LINE1": interval_ms: must be at least 1`.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    plc: Vec<RawPlc>,
    #[serde(default)]
    group: Vec<RawGroup>,
}

#[derive(Deserialize)]
struct RawPlc {
    plc_code: String,
    driver: String,
    #[serde(flatten)]
    options: toml::Table,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: String,
    mode: String,
    interval_ms: Option<u64>,
    plc_code: String,
    tags: Vec<String>,
}

impl PollingConfig {
    /// Reads and validates a configuration file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            message: format!("cannot read the polling configuration: {e}"),
        })?;
        Self::from_toml(&text, &origin)
    }

    /// The bundled example ([`EXAMPLE_CONFIG`]).
    pub fn example() -> Result<Self, ConfigError> {
        Self::from_toml(EXAMPLE_CONFIG, "built-in example (config/polling.toml)")
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let error = |message: String| ConfigError {
            origin: origin.to_owned(),
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| error(e.to_string()))?;

        let mut plcs = Vec::new();
        let mut codes = HashSet::new();
        for (index, plc) in raw.plc.into_iter().enumerate() {
            let at = format!("plc[{index}] {:?}", plc.plc_code);
            if plc.plc_code.is_empty() || plc.plc_code.len() > tag_model::PLC_CODE_MAX_BYTES {
                return Err(error(format!("{at}: plc_code: must be 1 to 50 bytes")));
            }
            if !codes.insert(plc.plc_code.clone()) {
                return Err(error(format!("{at}: plc_code: defined twice")));
            }
            let driver = match plc.driver.as_str() {
                "simulated" => DriverConfig::Simulated(
                    simulated_options(&plc.options).map_err(|m| error(format!("{at}: {m}")))?,
                ),
                other => {
                    return Err(error(format!(
                        "{at}: driver: unknown driver {other:?} (available: simulated)"
                    )))
                }
            };
            plcs.push(PlcConfig {
                plc_code: Arc::from(plc.plc_code),
                driver,
            });
        }

        let mut groups = Vec::new();
        let mut names = HashSet::new();
        for group in raw.group {
            let at = format!("group {:?}", group.name);
            if group.name.trim().is_empty() {
                return Err(error(format!("{at}: name: must not be empty")));
            }
            if !names.insert(group.name.clone()) {
                return Err(error(format!("{at}: name: two groups have this name")));
            }
            let mode = match (group.mode.to_ascii_uppercase().as_str(), group.interval_ms) {
                ("FIXED", Some(0)) => {
                    return Err(error(format!("{at}: interval_ms: must be at least 1")))
                }
                ("FIXED", Some(ms)) => Mode::Fixed {
                    interval: Duration::from_millis(ms),
                },
                ("FIXED", None) => {
                    return Err(error(format!(
                        "{at}: interval_ms: a FIXED group needs interval_ms"
                    )))
                }
                ("HANDSHAKE", None) => Mode::Handshake,
                ("HANDSHAKE", Some(_)) => {
                    return Err(error(format!(
                        "{at}: interval_ms: a HANDSHAKE group polls when triggered; remove \
                         interval_ms"
                    )))
                }
                (other, _) => {
                    return Err(error(format!(
                        "{at}: mode: {other:?} is not FIXED or HANDSHAKE"
                    )))
                }
            };
            let Some(plc) = plcs.iter().find(|p| *p.plc_code == *group.plc_code) else {
                return Err(error(format!(
                    "{at}: plc_code: {:?} is not a configured [[plc]]",
                    group.plc_code
                )));
            };
            if group.tags.is_empty() {
                return Err(error(format!("{at}: tags: must list at least one address")));
            }
            let mut seen = HashSet::new();
            for (index, tag) in group.tags.iter().enumerate() {
                plc.driver.check_address(tag).map_err(|why| {
                    error(format!(
                        "{at}: tags[{index}]: {tag:?} is not a valid {} address: {why}",
                        plc.driver.name()
                    ))
                })?;
                if !seen.insert(tag.as_str()) {
                    return Err(error(format!(
                        "{at}: tags[{index}]: {tag:?} is listed twice"
                    )));
                }
            }
            groups.push(GroupConfig {
                name: group.name,
                mode,
                plc_code: Arc::clone(&plc.plc_code),
                tags: group.tags.into_iter().map(Arc::from).collect(),
            });
        }
        if groups.is_empty() {
            return Err(error(
                "no [[group]] is defined: nothing would be polled".into(),
            ));
        }
        Ok(PollingConfig { plcs, groups })
    }
}

/// The options of `driver = "simulated"`, in the order the README lists them.
const SIMULATED_OPTIONS: &[&str] = &[
    "latency_ms",
    "fail_every",
    "offline_after_ms",
    "offline_for_ms",
];

fn simulated_options(options: &toml::Table) -> Result<SimulatedOptions, String> {
    let mut result = SimulatedOptions::default();
    let mut offline_after = None;
    for (key, value) in options {
        // The name first: a misspelt option is reported as unknown, whatever its value.
        if !SIMULATED_OPTIONS.contains(&key.as_str()) {
            return Err(format!(
                "{key}: unknown option of the simulated driver (known: plc_code, driver, {})",
                SIMULATED_OPTIONS.join(", ")
            ));
        }
        let number = value
            .as_integer()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| format!("{key}: must be a whole number of at least 0"))?;
        match key.as_str() {
            "latency_ms" => result.latency = Duration::from_millis(number),
            "fail_every" => result.fail_every = number,
            "offline_after_ms" => offline_after = Some(Duration::from_millis(number)),
            _ => result.offline_for = Duration::from_millis(number),
        }
    }
    result.offline_after = offline_after;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_example_has_the_quickstart_groups() {
        let config = PollingConfig::from_toml(EXAMPLE_CONFIG, "example").unwrap();
        let summary: Vec<(String, Mode)> = config
            .groups
            .iter()
            .map(|g| (g.name.clone(), g.mode))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "LINE1_PROCESS1".to_owned(),
                    Mode::Fixed {
                        interval: Duration::from_millis(1000)
                    }
                ),
                (
                    "LINE2_PROCESS2".to_owned(),
                    Mode::Fixed {
                        interval: Duration::from_millis(5000)
                    }
                ),
                ("MANUAL_TRIGGER".to_owned(), Mode::Handshake),
            ]
        );
        assert_eq!(&*config.groups[0].plc_code, "PLC01");
        assert_eq!(&*config.groups[0].tags[0], "D100");
        assert_eq!(PollingConfig::example().unwrap(), config);
    }
}
