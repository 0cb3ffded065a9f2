//! The polling configuration file (TOML) and its validation. Driver options and addresses are
//! read by the drivers themselves (see [`crate::drivers`]); this file knows no protocol.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::driver::{Address, DriverConfig, TagType};
use crate::drivers::{self, Options};
use crate::{DataType, WordOrder};

/// The bundled example: the spec quickstart's three groups on simulated PLCs
/// (`config/polling.toml`).
pub const EXAMPLE_CONFIG: &str = include_str!("../../../config/polling.toml");

/// Default time between two reads of a handshake trigger (`trigger_poll_ms`).
pub const DEFAULT_TRIGGER_POLL: Duration = Duration::from_millis(100);

/// PLCs and the groups that poll them.
#[derive(Clone, Debug)]
pub struct PollingConfig {
    /// The PLCs, by code.
    pub plcs: Vec<PlcConfig>,
    /// The polling groups, in file order.
    pub groups: Vec<GroupConfig>,
}

/// One PLC.
#[derive(Clone, Debug)]
pub struct PlcConfig {
    /// Its code, stored with every value (`PLC01`).
    pub plc_code: Arc<str>,
    /// Its driver and the driver's options.
    pub driver: Arc<dyn DriverConfig>,
}

/// One polling group.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// Unique name (`LINE1_PROCESS1`).
    pub name: String,
    /// When it polls.
    pub mode: Mode,
    /// The PLC it reads.
    pub plc_code: Arc<str>,
    /// The tags read in each poll, in order.
    pub tags: Vec<TagConfig>,
    /// The PLC-side handshake of a HANDSHAKE group, if it has one.
    pub handshake: Option<Handshake>,
}

impl GroupConfig {
    /// The addresses of the tags, in order.
    pub fn addresses(&self) -> Vec<Address> {
        self.tags.iter().map(|t| t.address.clone()).collect()
    }
}

/// One tag of a group.
#[derive(Clone, Debug, PartialEq)]
pub struct TagConfig {
    /// The address, parsed by the PLC's driver; its text is the stored `tag_address`.
    pub address: Address,
    /// Stored value = raw value x scale + offset.
    pub scale: f64,
    /// See `scale`.
    pub offset: f64,
    /// Report-by-exception settings (all off by default: every poll is pushed).
    pub report: Report,
}

/// When a polled value is pushed (report by exception). All `None`: every poll is pushed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Report {
    /// Push when the value moved more than this since the last pushed value.
    pub deadband: Option<f64>,
    /// Push when the value moved more than this percentage of the last pushed value.
    pub deadband_pct: Option<f64>,
    /// Push at least this often, moved or not.
    pub heartbeat: Option<Duration>,
}

impl Report {
    /// Whether any filtering is configured.
    pub fn is_active(&self) -> bool {
        self.deadband.is_some() || self.deadband_pct.is_some() || self.heartbeat.is_some()
    }
}

/// A PLC-side handshake: the PLC sets `trigger` when its data is ready; the group reads on
/// the rising edge, then answers.
#[derive(Clone, Debug, PartialEq)]
pub struct Handshake {
    /// The bit or word the PLC sets (non-zero = set).
    pub trigger: Address,
    /// How often the trigger is read.
    pub trigger_poll: Duration,
    /// What the service does after reading the group's values.
    pub answer: HandshakeAnswer,
}

/// How the service tells the PLC its data was read.
#[derive(Clone, Debug, PartialEq)]
pub enum HandshakeAnswer {
    /// Writes 1 to this address after the read, and 0 once the PLC has reset the trigger.
    Ack(Address),
    /// Writes 0 to the trigger after the read.
    ResetTrigger,
    /// Only reads (the PLC resets the trigger on its own).
    None,
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
    /// The PLC (an OPC UA server) sends what changed: monitored items, no polls.
    Subscription {
        /// How often the server sends the changes (`publishing_interval_ms`).
        publishing_interval: Duration,
        /// How often the server samples each tag (`sampling_interval_ms`, default the
        /// publishing interval).
        sampling_interval: Duration,
    },
}

impl Mode {
    /// `FIXED`, `HANDSHAKE` or `SUBSCRIPTION`.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Fixed { .. } => "FIXED",
            Mode::Handshake => "HANDSHAKE",
            Mode::Subscription { .. } => "SUBSCRIPTION",
        }
    }
}

/// A configuration error: names the file, the PLC or group, the tag and the field.
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
    publishing_interval_ms: Option<u64>,
    sampling_interval_ms: Option<u64>,
    plc_code: String,
    tags: Vec<toml::Value>,
    deadband: Option<f64>,
    deadband_pct: Option<f64>,
    heartbeat_sec: Option<f64>,
    trigger: Option<String>,
    trigger_poll_ms: Option<u64>,
    ack: Option<String>,
    reset_trigger: Option<bool>,
}

/// The keys of a tag table (`{ address = "D200", type = "FLOAT32", ... }`).
const TAG_KEYS: &[&str] = &[
    "address",
    "type",
    "word_order",
    "scale",
    "offset",
    "deadband",
    "deadband_pct",
    "heartbeat_sec",
];

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
            let Some(kind) = drivers::find(&plc.driver) else {
                if plc.driver == "opcua" {
                    return Err(error(format!(
                        "{at}: driver: this program was built without the OPC UA driver \
                         (polling-engine's cargo feature \"opcua\")"
                    )));
                }
                return Err(error(format!(
                    "{at}: driver: unknown driver {:?} (available: {})",
                    plc.driver,
                    drivers::names()
                )));
            };
            let driver = Options::new(&plc.options, kind.name, kind.options)
                .and_then(|mut options| (kind.configure)(&mut options))
                .map_err(|m| error(format!("{at}: {m}")))?;
            plcs.push(PlcConfig {
                plc_code: Arc::from(plc.plc_code),
                driver,
            });
        }

        let mut groups = Vec::new();
        let mut names = HashSet::new();
        for group in raw.group {
            let at = format!("group {:?}", group.name);
            let fail = |m: String| error(format!("{at}: {m}"));
            if group.name.trim().is_empty() {
                return Err(fail("name: must not be empty".into()));
            }
            if !names.insert(group.name.clone()) {
                return Err(fail("name: two groups have this name".into()));
            }
            let mode_name = group.mode.to_ascii_uppercase();
            if mode_name != "SUBSCRIPTION" {
                for (key, given) in [
                    (
                        "publishing_interval_ms",
                        group.publishing_interval_ms.is_some(),
                    ),
                    ("sampling_interval_ms", group.sampling_interval_ms.is_some()),
                ] {
                    if given {
                        return Err(fail(format!("{key}: only a SUBSCRIPTION group has {key}")));
                    }
                }
            }
            let mode = match (mode_name.as_str(), group.interval_ms) {
                ("FIXED", Some(0)) => return Err(fail("interval_ms: must be at least 1".into())),
                ("FIXED", Some(ms)) => Mode::Fixed {
                    interval: Duration::from_millis(ms),
                },
                ("FIXED", None) => {
                    return Err(fail("interval_ms: a FIXED group needs interval_ms".into()))
                }
                ("HANDSHAKE", None) => Mode::Handshake,
                ("HANDSHAKE", Some(_)) => {
                    return Err(fail(
                        "interval_ms: a HANDSHAKE group polls when triggered; remove interval_ms"
                            .into(),
                    ))
                }
                ("SUBSCRIPTION", Some(_)) => {
                    return Err(fail(
                        "interval_ms: a SUBSCRIPTION group is not polled; give \
                         publishing_interval_ms (and sampling_interval_ms)"
                            .into(),
                    ))
                }
                ("SUBSCRIPTION", None) => {
                    let millis = |key: &str, value: Option<u64>| match value {
                        Some(ms @ 1..=3_600_000) => Ok(Some(Duration::from_millis(ms))),
                        Some(_) => Err(fail(format!("{key}: must be from 1 to 3600000"))),
                        None => Ok(None),
                    };
                    let Some(publishing_interval) =
                        millis("publishing_interval_ms", group.publishing_interval_ms)?
                    else {
                        return Err(fail(
                            "publishing_interval_ms: a SUBSCRIPTION group needs \
                             publishing_interval_ms"
                                .into(),
                        ));
                    };
                    let sampling_interval =
                        millis("sampling_interval_ms", group.sampling_interval_ms)?
                            .unwrap_or(publishing_interval);
                    Mode::Subscription {
                        publishing_interval,
                        sampling_interval,
                    }
                }
                (other, _) => {
                    return Err(fail(format!(
                        "mode: {other:?} is not FIXED, HANDSHAKE or SUBSCRIPTION"
                    )))
                }
            };
            let Some(plc) = plcs.iter().find(|p| *p.plc_code == *group.plc_code) else {
                return Err(fail(format!(
                    "plc_code: {:?} is not a configured [[plc]]",
                    group.plc_code
                )));
            };
            if group.tags.is_empty() {
                return Err(fail("tags: must list at least one address".into()));
            }
            if matches!(mode, Mode::Subscription { .. }) && !plc.driver.supports_subscriptions() {
                return Err(fail(format!(
                    "mode: the {} driver of PLC {:?} cannot subscribe; use FIXED",
                    plc.driver.driver_name(),
                    group.plc_code
                )));
            }
            let defaults = report_of(
                "",
                group.deadband,
                group.deadband_pct,
                group.heartbeat_sec,
                Report::default(),
            )
            .map_err(&fail)?;
            let mut seen = HashSet::new();
            let mut tags = Vec::new();
            for (index, raw_tag) in group.tags.iter().enumerate() {
                let tag = tag_of(raw_tag, plc.driver.as_ref(), defaults)
                    .map_err(|m| fail(format!("tags[{index}]: {m}")))?;
                if !seen.insert(Arc::clone(tag.address.text())) {
                    return Err(fail(format!(
                        "tags[{index}]: {:?} is listed twice",
                        tag.address.text()
                    )));
                }
                if matches!(mode, Mode::Subscription { .. }) {
                    check_subscribed(&tag).map_err(|m| fail(format!("tags[{index}]: {m}")))?;
                }
                tags.push(tag);
            }
            let handshake = handshake_of(&group, mode, plc.driver.as_ref()).map_err(&fail)?;
            groups.push(GroupConfig {
                name: group.name,
                mode,
                plc_code: Arc::clone(&plc.plc_code),
                tags,
                handshake,
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

/// Reads `deadband`, `deadband_pct` and `heartbeat_sec` over `defaults`.
fn report_of(
    prefix: &str,
    deadband: Option<f64>,
    deadband_pct: Option<f64>,
    heartbeat_sec: Option<f64>,
    defaults: Report,
) -> Result<Report, String> {
    let mut report = defaults;
    if let Some(value) = deadband {
        if !(value.is_finite() && value >= 0.0) {
            return Err(format!("{prefix}deadband: must be a number of at least 0"));
        }
        report.deadband = Some(value);
        report.deadband_pct = None;
    }
    if let Some(value) = deadband_pct {
        if deadband.is_some() {
            return Err(format!(
                "{prefix}deadband_pct: give deadband or deadband_pct, not both"
            ));
        }
        if !(value.is_finite() && (0.0..=100.0).contains(&value)) {
            return Err(format!("{prefix}deadband_pct: must be from 0 to 100"));
        }
        report.deadband_pct = Some(value);
        report.deadband = None;
    }
    if let Some(seconds) = heartbeat_sec {
        if !(seconds.is_finite() && seconds > 0.0 && seconds <= 86_400.0) {
            return Err(format!(
                "{prefix}heartbeat_sec: must be more than 0 and at most 86400"
            ));
        }
        report.heartbeat = Some(Duration::from_secs_f64(seconds));
    }
    Ok(report)
}

/// A SUBSCRIPTION group's deadband is the server's (absolute, in the tag's stored units); there
/// are no polls to compare a percentage or to beat a heartbeat with.
fn check_subscribed(tag: &TagConfig) -> Result<(), String> {
    let at = tag.address.text();
    if tag.report.deadband_pct.is_some() {
        return Err(format!(
            "{at:?}: deadband_pct: a SUBSCRIPTION group's deadband is the server's absolute \
             deadband; give deadband"
        ));
    }
    if tag.report.heartbeat.is_some() {
        return Err(format!(
            "{at:?}: heartbeat_sec: a SUBSCRIPTION group is sent changes only; use a FIXED \
             group for a heartbeat"
        ));
    }
    Ok(())
}

/// One entry of `tags`: an address string, or a table with the address and its options.
fn tag_of(
    raw: &toml::Value,
    driver: &dyn DriverConfig,
    defaults: Report,
) -> Result<TagConfig, String> {
    let parse = |text: &str, tag: &TagType| {
        driver.parse_address(text, tag).map_err(|why| {
            format!(
                "{text:?} is not a valid {} address: {why}",
                driver.driver_name()
            )
        })
    };
    match raw {
        toml::Value::String(text) => Ok(TagConfig {
            address: parse(text, &TagType::default())?,
            scale: 1.0,
            offset: 0.0,
            report: defaults,
        }),
        toml::Value::Table(table) => {
            if let Some(key) = table.keys().find(|k| !TAG_KEYS.contains(&k.as_str())) {
                return Err(format!(
                    "{key}: unknown tag option (known: {})",
                    TAG_KEYS.join(", ")
                ));
            }
            let text = match table.get("address") {
                Some(toml::Value::String(text)) => text.as_str(),
                _ => return Err("address: a tag table needs address = \"...\"".into()),
            };
            let at = format!("{text:?}: ");
            let string = |key: &str| match table.get(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s.as_str())),
                Some(other) => Err(format!(
                    "{at}{key}: must be a string (found {})",
                    other.type_str()
                )),
            };
            let number = |key: &str| match table.get(key) {
                None => Ok(None),
                Some(toml::Value::Integer(n)) => Ok(Some(*n as f64)),
                Some(toml::Value::Float(x)) if x.is_finite() => Ok(Some(*x)),
                Some(other) => Err(format!(
                    "{at}{key}: must be a number (found {})",
                    other.type_str()
                )),
            };
            let tag_type = TagType {
                data_type: string("type")?
                    .map(|t| t.parse::<DataType>())
                    .transpose()
                    .map_err(|why| format!("{at}type: {why}"))?,
                word_order: string("word_order")?
                    .map(|t| t.parse::<WordOrder>())
                    .transpose()
                    .map_err(|why| format!("{at}word_order: {why}"))?,
            };
            let scale = number("scale")?.unwrap_or(1.0);
            if scale == 0.0 {
                return Err(format!("{at}scale: must not be 0"));
            }
            Ok(TagConfig {
                address: parse(text, &tag_type)?,
                scale,
                offset: number("offset")?.unwrap_or(0.0),
                report: report_of(
                    &at,
                    number("deadband")?,
                    number("deadband_pct")?,
                    number("heartbeat_sec")?,
                    defaults,
                )?,
            })
        }
        other => Err(format!(
            "must be an address string or a table with address = \"...\" (found {})",
            other.type_str()
        )),
    }
}

fn handshake_of(
    group: &RawGroup,
    mode: Mode,
    driver: &dyn DriverConfig,
) -> Result<Option<Handshake>, String> {
    let Some(trigger) = &group.trigger else {
        for (key, given) in [
            ("trigger_poll_ms", group.trigger_poll_ms.is_some()),
            ("ack", group.ack.is_some()),
            ("reset_trigger", group.reset_trigger.is_some()),
        ] {
            if given {
                return Err(format!("{key}: only meaningful with trigger = \"...\""));
            }
        }
        return Ok(None);
    };
    if mode != Mode::Handshake {
        return Err("trigger: only a HANDSHAKE group has a trigger".into());
    }
    let parse = |key: &str, text: &str| {
        driver
            .parse_address(text, &TagType::default())
            .map_err(|why| {
                format!(
                    "{key}: {text:?} is not a valid {} address: {why}",
                    driver.driver_name()
                )
            })
    };
    let trigger = parse("trigger", trigger)?;
    let trigger_poll = match group.trigger_poll_ms {
        None => DEFAULT_TRIGGER_POLL,
        Some(ms @ 1..=3_600_000) => Duration::from_millis(ms),
        Some(_) => return Err("trigger_poll_ms: must be from 1 to 3600000".into()),
    };
    let answer = match (&group.ack, group.reset_trigger.unwrap_or(false)) {
        (Some(_), true) => {
            return Err("ack: give ack or reset_trigger = true, not both".into());
        }
        (Some(ack), false) => {
            let ack = parse("ack", ack)?;
            driver
                .check_writable(&ack)
                .map_err(|why| format!("ack: {:?} cannot be written: {why}", ack.text()))?;
            HandshakeAnswer::Ack(ack)
        }
        (None, true) => {
            driver.check_writable(&trigger).map_err(|why| {
                format!(
                    "reset_trigger: {:?} cannot be written: {why}",
                    trigger.text()
                )
            })?;
            HandshakeAnswer::ResetTrigger
        }
        (None, false) => HandshakeAnswer::None,
    };
    Ok(Some(Handshake {
        trigger,
        trigger_poll,
        answer,
    }))
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
        assert_eq!(&**config.groups[0].tags[0].address.text(), "D100");
        assert_eq!(config.groups[0].tags[0].scale, 1.0);
        assert!(!config.groups[0].tags[0].report.is_active());
        assert_eq!(config.plcs[0].driver.driver_name(), "simulated");
    }

    #[test]
    fn tag_tables_and_group_defaults_give_type_scale_and_deadband() {
        let config = PollingConfig::from_toml(
            r#"
            [[plc]]
            plc_code = "P"
            driver = "simulated"
            [[group]]
            name = "G"
            mode = "FIXED"
            interval_ms = 100
            plc_code = "P"
            deadband = 0.5
            heartbeat_sec = 60
            tags = ["D1", { address = "D2", type = "FLOAT32", scale = 0.1, offset = -5, deadband_pct = 2 }]
            "#,
            "t",
        )
        .unwrap();
        let tags = &config.groups[0].tags;
        assert_eq!(
            tags[0].report,
            Report {
                deadband: Some(0.5),
                deadband_pct: None,
                heartbeat: Some(Duration::from_secs(60))
            }
        );
        assert_eq!((tags[1].scale, tags[1].offset), (0.1, -5.0));
        assert_eq!(
            tags[1].report,
            Report {
                deadband: None,
                deadband_pct: Some(2.0),
                heartbeat: Some(Duration::from_secs(60))
            }
        );
    }
}
