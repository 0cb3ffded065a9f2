//! `driver = "opcua"`: an OPC UA client through `async-opcua` (pure-Rust crypto). FIXED and
//! HANDSHAKE groups send one Read per poll for all their nodes (split only where the server's
//! MaxNodesPerRead requires); SUBSCRIPTION groups create one subscription with a monitored
//! item per tag (server-side absolute deadband where the tag has one).
//!
//! Built only with polling-engine's `opcua` cargo feature.

mod node_id;
mod security;
mod session;
mod values;

use std::sync::Arc;
use std::time::Duration;

use opcua::types::ApplicationDescription;

use crate::driver::{Address, DriverConfig, PlcDriver, ReadPlan, TagType};
use crate::drivers::{DriverKind, Options};

pub use node_id::{Namespace, NodeAddress};
pub use security::{Pki, Security};
pub use values::TimestampSource;

/// `driver = "opcua"`.
pub const KIND: DriverKind = DriverKind {
    name: "opcua",
    options: &[
        "endpoint",
        "security_policy",
        "security_mode",
        "user",
        "password",
        "password_env",
        "pki_dir",
        "certificate",
        "private_key",
        "trust_server_cert",
        "application_uri",
        "timestamp",
        "timeout_ms",
        "connect_timeout_ms",
        "keep_alive_ms",
    ],
    configure: |options| Ok(Arc::new(OpcUaConfig::from_options(options)?)),
};

/// How the client identifies itself.
#[derive(Clone, PartialEq, Eq)]
pub enum Identity {
    /// No user.
    Anonymous,
    /// `user` and `password` (or `password_env`).
    User {
        /// The user name.
        name: String,
        /// The password: a secret, never printed (see the `Debug` impl).
        password: String,
    },
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Anonymous => f.write_str("Anonymous"),
            Identity::User { name, .. } => write!(f, "User({name:?}, password: <secret>)"),
        }
    }
}

/// The options of a `driver = "opcua"` PLC.
#[derive(Clone, Debug, PartialEq)]
pub struct OpcUaConfig {
    /// `opc.tcp://host:port/path`: connected to as given, whatever host the server
    /// advertises in its endpoints.
    pub endpoint: String,
    /// Policy and mode of the channel.
    pub security: Security,
    /// Anonymous, or user and password.
    pub identity: Identity,
    /// The client's certificate and the trust lists.
    pub pki: Pki,
    /// `trust_server_cert = "always"`: trust any server certificate (and store it in
    /// `trusted/`); `"pki"` (default): only those in `trusted/`.
    pub trust_always: bool,
    /// This client's application URI (in its certificate).
    pub application_uri: String,
    /// Which timestamp is stored.
    pub timestamp: TimestampSource,
    /// How long one request may take (`timeout_ms`).
    pub timeout: Duration,
    /// How long connecting, with its endpoint discovery and session, may take.
    pub connect_timeout: Duration,
    /// How often the session's liveness is checked (a Read of the server's state).
    pub keep_alive: Duration,
}

impl OpcUaConfig {
    fn from_options(options: &Options<'_>) -> Result<Self, String> {
        let endpoint = options.required_string("endpoint")?.trim().to_owned();
        check_endpoint(&endpoint).map_err(|why| format!("endpoint: {endpoint:?} {why}"))?;
        let security = Security::parse(
            options.string("security_policy")?,
            options.string("security_mode")?,
        )?;
        let identity = match (
            options.string("user")?,
            options.string("password")?,
            options.string("password_env")?,
        ) {
            (None, None, None) => Identity::Anonymous,
            (Some(_), Some(_), Some(_)) => {
                return Err("password_env: give password or password_env, not both".into())
            }
            (Some(name), Some(password), None) => Identity::User {
                name: name.to_owned(),
                password: password.to_owned(),
            },
            (Some(name), None, Some(variable)) => match std::env::var(variable) {
                Ok(password) if !password.is_empty() => Identity::User {
                    name: name.to_owned(),
                    password,
                },
                _ => {
                    return Err(format!(
                        "password_env: the environment variable {variable} is not set (or empty)"
                    ))
                }
            },
            (Some(_), None, None) => {
                return Err("user: give password (or password_env) with the user".into())
            }
            (None, _, _) => return Err("password: give user with the password".into()),
        };
        if let Identity::User { name, .. } = &identity {
            if name.is_empty() {
                return Err("user: must not be empty".into());
            }
        }
        let pki = Pki::parse(
            options.string("pki_dir")?,
            options.string("certificate")?,
            options.string("private_key")?,
        )?;
        let trust_always = match options.string("trust_server_cert")? {
            None | Some("pki") => false,
            Some("always") => true,
            Some(other) => {
                return Err(format!(
                    "trust_server_cert: {other:?} is not a choice (known: pki, always)"
                ))
            }
        };
        let application_uri = options
            .string("application_uri")?
            .unwrap_or("urn:buffer-oracle-writer:client")
            .to_owned();
        if application_uri.is_empty() {
            return Err("application_uri: must not be empty".into());
        }
        Ok(OpcUaConfig {
            endpoint,
            security,
            identity,
            pki,
            trust_always,
            application_uri,
            timestamp: options.parsed("timestamp")?.unwrap_or_default(),
            timeout: options
                .millis("timeout_ms", 1)?
                .unwrap_or(Duration::from_secs(5)),
            connect_timeout: options
                .millis("connect_timeout_ms", 1)?
                .unwrap_or(Duration::from_secs(10)),
            keep_alive: options
                .millis("keep_alive_ms", 100)?
                .unwrap_or(Duration::from_secs(5)),
        })
    }

    /// This client as the server sees it (and as its certificate says).
    pub(crate) fn application(&self) -> ApplicationDescription {
        ApplicationDescription {
            application_uri: self.application_uri.as_str().into(),
            product_uri: "urn:buffer-oracle-writer".into(),
            application_name: "buffer-oracle-writer".into(),
            ..Default::default()
        }
    }
}

/// `opc.tcp://host:port/path` with a host and, if given, a valid port.
fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let Some(rest) = endpoint.strip_prefix("opc.tcp://") else {
        return Err("must start with opc.tcp:// (e.g. opc.tcp://192.168.0.10:4840/)".into());
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => (host, Some(port)),
        _ => (authority, None),
    };
    if host.is_empty() {
        return Err("has no host".into());
    }
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(1..) => {}
            _ => return Err(format!("has no valid port ({port:?})")),
        }
    }
    Ok(())
}

/// One tag of a plan: the text (for messages) and the parsed NodeId.
#[derive(Clone, Debug)]
pub(crate) struct PlannedNode {
    pub text: Arc<str>,
    pub node: NodeAddress,
}

impl DriverConfig for OpcUaConfig {
    fn driver_name(&self) -> &'static str {
        "opcua"
    }

    fn parse_address(&self, text: &str, tag: &TagType) -> Result<Address, String> {
        if tag.data_type.is_some() || tag.word_order.is_some() {
            return Err(
                "an OPC UA node has its own type: remove type and word_order from this tag".into(),
            );
        }
        if text.len() > tag_model::TAG_ADDRESS_MAX_BYTES {
            return Err(format!(
                "a NodeId is stored as tag_address, which holds at most {} bytes",
                tag_model::TAG_ADDRESS_MAX_BYTES
            ));
        }
        let node: NodeAddress = text.parse()?;
        Ok(Address::new(text, node))
    }

    fn plan(&self, addresses: &[Address]) -> ReadPlan {
        let nodes: Vec<PlannedNode> = addresses
            .iter()
            .filter_map(|a| {
                Some(PlannedNode {
                    text: Arc::clone(a.text()),
                    node: a.parsed::<NodeAddress>()?.clone(),
                })
            })
            .collect();
        ReadPlan::new(1, nodes)
    }

    fn open(&self, plc_code: &Arc<str>) -> Box<dyn PlcDriver> {
        Box::new(session::OpcUaDriver::new(
            Arc::clone(plc_code),
            Arc::new(self.clone()),
        ))
    }

    fn supports_subscriptions(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked() {
        assert!(check_endpoint("opc.tcp://127.0.0.1:4840/test").is_ok());
        assert!(check_endpoint("opc.tcp://plc-gw").is_ok());
        assert!(check_endpoint("opc.tcp://[::1]:4840").is_ok());
        assert!(check_endpoint("http://x:4840")
            .unwrap_err()
            .contains("opc.tcp://"));
        assert!(check_endpoint("opc.tcp://:4840")
            .unwrap_err()
            .contains("no host"));
        assert!(check_endpoint("opc.tcp://h:99999/")
            .unwrap_err()
            .contains("port"));
    }

    #[test]
    fn the_password_is_not_in_debug_output() {
        let identity = Identity::User {
            name: "operator".into(),
            password: "s3cret-pass".into(),
        };
        let text = format!("{identity:?}");
        assert!(
            text.contains("operator") && !text.contains("s3cret"),
            "{text}"
        );
    }
}
