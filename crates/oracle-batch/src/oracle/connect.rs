//! The connect string: Easy Connect with timeouts built from host, port and service, and a
//! check of a connect string the user wrote.

use std::net::Ipv6Addr;
use std::time::Duration;

/// Defaults for the Easy Connect string the service builds.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Oracle Net sends a probe on an idle connection this often (EXPIRE_TIME, minutes), so a
/// database host that vanished is noticed and a firewall does not drop the idle session.
pub const DEFAULT_EXPIRE_TIME_MINUTES: u32 = 1;

/// An Easy Connect Plus string (Oracle Client 19c or newer):
/// `host:port/service?connect_timeout=10&transport_connect_timeout=10&expire_time=1`.
///
/// `connect_timeout` bounds the whole connect (TCP, then the listener's handshake),
/// `transport_connect_timeout` the TCP part, so that a host that silently drops packets is
/// given up after seconds instead of the operating system's minutes; `expire_time` turns on
/// dead-connection detection. An IPv6 address is written in brackets.
///
/// ```
/// use std::time::Duration;
/// use oracle_batch::EasyConnect;
///
/// let easy = EasyConnect::new("oracle.example.com", 1521, "XEPDB1");
/// assert_eq!(easy.target(), "oracle.example.com:1521/XEPDB1");
/// assert_eq!(
///     easy.connect_string(),
///     "oracle.example.com:1521/XEPDB1?connect_timeout=10&transport_connect_timeout=10&expire_time=1"
/// );
/// assert_eq!(EasyConnect::new("fd00::15", 1521, "XEPDB1").target(), "[fd00::15]:1521/XEPDB1");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EasyConnect {
    /// Host name or IP address (an IPv6 address with or without brackets).
    pub host: String,
    /// Listener port.
    pub port: u16,
    /// Service name.
    pub service_name: String,
    /// Connect and TCP connect timeout (whole seconds; `None` leaves Oracle's defaults).
    pub connect_timeout: Option<Duration>,
    /// Dead-connection probe interval in minutes (`None`: off).
    pub expire_time_minutes: Option<u32>,
}

impl EasyConnect {
    /// `host:port/service` with the default timeouts.
    pub fn new(host: &str, port: u16, service_name: &str) -> Self {
        EasyConnect {
            host: host.to_owned(),
            port,
            service_name: service_name.to_owned(),
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
            expire_time_minutes: Some(DEFAULT_EXPIRE_TIME_MINUTES),
        }
    }

    /// `host:port/service`, for logs and messages.
    pub fn target(&self) -> String {
        let host = self.host.trim();
        let host = match host.parse::<Ipv6Addr>() {
            Ok(_) => format!("[{host}]"),
            Err(_) => host.to_owned(),
        };
        format!("{host}:{}/{}", self.port, self.service_name)
    }

    /// The string to connect with.
    pub fn connect_string(&self) -> String {
        let mut parameters = Vec::new();
        if let Some(timeout) = self.connect_timeout {
            let seconds = timeout.as_secs().max(1);
            parameters.push(format!("connect_timeout={seconds}"));
            parameters.push(format!("transport_connect_timeout={seconds}"));
        }
        if let Some(minutes) = self.expire_time_minutes {
            parameters.push(format!("expire_time={minutes}"));
        }
        match parameters.is_empty() {
            true => self.target(),
            false => format!("{}?{}", self.target(), parameters.join("&")),
        }
    }
}

/// A connect string without its Easy Connect parameters, for logs: `host:port/service`.
pub fn connect_target(connect_string: &str) -> &str {
    match connect_string.split_once('?') {
        Some((target, _)) if !connect_string.trim_start().starts_with('(') => target,
        _ => connect_string,
    }
}

/// Whether a connect string the user wrote (ORACLE_DSN) bounds the connect time: an Easy
/// Connect `connect_timeout`/`transport_connect_timeout` parameter or a descriptor's
/// `CONNECT_TIMEOUT`/`TRANSPORT_CONNECT_TIMEOUT`. A TNS alias cannot be seen into: the
/// timeout may be in tnsnames.ora or sqlnet.ora (SQLNET.OUTBOUND_CONNECT_TIMEOUT).
pub fn sets_connect_timeout(connect_string: &str) -> bool {
    connect_string
        .to_ascii_lowercase()
        .contains("connect_timeout")
}

/// The connect timeout a connect string sets, as written (`10`, `500ms`): the Easy Connect
/// `connect_timeout` parameter or a descriptor's `CONNECT_TIMEOUT`.
pub fn connect_timeout_in(connect_string: &str) -> Option<String> {
    let lower = connect_string.to_ascii_lowercase();
    let mut rest = lower.as_str();
    while let Some(at) = rest.find("connect_timeout") {
        let transport = rest[..at].ends_with("transport_");
        rest = &rest[at + "connect_timeout".len()..];
        if transport {
            continue;
        }
        let value = rest.trim_start().strip_prefix('=')?.trim_start();
        let value: String = value
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
            .collect();
        return Some(value).filter(|v| !v.is_empty());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_literals_get_brackets_and_others_do_not() {
        let target = |host: &str| EasyConnect::new(host, 1521, "XEPDB1").target();
        assert_eq!(target("::1"), "[::1]:1521/XEPDB1");
        assert_eq!(target("fd00:0:0:1::15"), "[fd00:0:0:1::15]:1521/XEPDB1");
        assert_eq!(target("[fd00::15]"), "[fd00::15]:1521/XEPDB1");
        assert_eq!(target("10.0.0.5"), "10.0.0.5:1521/XEPDB1");
        assert_eq!(target("db.plant"), "db.plant:1521/XEPDB1");
    }

    #[test]
    fn timeouts_go_into_the_string() {
        let mut easy = EasyConnect::new("db", 1522, "ORCL");
        easy.connect_timeout = Some(Duration::from_secs(3));
        easy.expire_time_minutes = Some(2);
        assert_eq!(
            easy.connect_string(),
            "db:1522/ORCL?connect_timeout=3&transport_connect_timeout=3&expire_time=2"
        );
        easy.connect_timeout = Some(Duration::from_millis(200));
        assert!(easy.connect_string().contains("connect_timeout=1&"));
        easy.connect_timeout = None;
        easy.expire_time_minutes = None;
        assert_eq!(easy.connect_string(), "db:1522/ORCL");
        assert_eq!(
            connect_target("db:1522/ORCL?connect_timeout=3"),
            "db:1522/ORCL"
        );
        assert_eq!(connect_target("PRODDB"), "PRODDB");
        let descriptor = "(DESCRIPTION=(ADDRESS=(PROTOCOL=TCP)(HOST=db)(PORT=1521)))";
        assert_eq!(connect_target(descriptor), descriptor);
    }

    #[test]
    fn a_users_connect_string_is_checked_for_a_connect_timeout() {
        assert!(sets_connect_timeout("db:1521/ORCL?connect_timeout=5"));
        assert!(sets_connect_timeout(
            "(DESCRIPTION=(TRANSPORT_CONNECT_TIMEOUT=3)(ADDRESS=(HOST=db)(PORT=1521)))"
        ));
        assert!(!sets_connect_timeout("db:1521/ORCL"));
        let of = connect_timeout_in;
        assert_eq!(
            of("db:1521/O?transport_connect_timeout=3&connect_timeout=10").as_deref(),
            Some("10")
        );
        assert_eq!(
            of("(DESCRIPTION=(CONNECT_TIMEOUT = 500ms)(ADDRESS=))").as_deref(),
            Some("500ms")
        );
        assert_eq!(of("db:1521/O?transport_connect_timeout=3"), None);
        assert_eq!(of("PRODDB"), None);
        assert!(!sets_connect_timeout("PRODDB"));
    }
}
