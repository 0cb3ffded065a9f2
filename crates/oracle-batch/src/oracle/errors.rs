//! Which Oracle errors are which, and what the service does about each: shared by every
//! Oracle sink (this crate's ODPI-C sink, and a thin-mode one), so that both react alike.
//!
//! An error is classified by where the driver says it came from (an ORA- code from the
//! database, a DPI- code from the client library, or a fault of the driver itself), never by
//! searching its text. `docs/oracle.md` lists the classes; a test below keeps it in step.

use std::time::Duration;

use crate::secret::Secret;
use crate::sink::{FailureCause, FailureKind, SinkError};

/// Where an error came from, as the driver reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OracleErrorSource {
    /// The database or Oracle Net: `ORA-NNNNN`.
    Database(u32),
    /// The client library (ODPI-C): `DPI-NNNN`; 0 when the driver gave no code.
    Client(u32),
    /// The driver itself, not the database.
    Driver(DriverFault),
    /// No connection came free in time, and no login failure was seen meanwhile.
    PoolTimeout,
    /// A login was not attempted: another one was in progress and its outcome is not known
    /// yet (see [`LoginGate`](super::LoginGate)).
    LoginPending,
}

/// Faults of the driver rather than of the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverFault {
    /// A value did not convert (a NULL or a type where the table has another): the table's
    /// layout does not match.
    Conversion,
    /// A bind, column or attribute the statement does not have: the SQL and the table
    /// disagree.
    Usage,
    /// A query expected a row and got none.
    NoData,
    /// An internal error of the driver, or one it did not categorise.
    Internal,
}

/// What kind of trouble an error means, and so what the service does about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
    /// Oracle Client is missing, too old or unusable (DPI-1047, 1049, 1050, 1072). Set-up:
    /// start-up stops; the writer backs up and does not retry at speed.
    ClientLibrary,
    /// The database refused the login (ORA-01017, 28000, 28001, 01005). Set-up, and no more
    /// logins: each failed one counts towards the profile's FAILED_LOGIN_ATTEMPTS, after which
    /// Oracle locks the account. The next login is tried after ORACLE_LOGIN_RETRY_SEC.
    LoginRefused,
    /// Configuration or privileges are wrong: missing table or column, no INSERT privilege,
    /// unresolvable connect identifier (ORA-00903, 00904, 00942, 01031, 01950, 12154 ...), or
    /// the driver could not map a value. Set-up.
    Setup,
    /// The connection died (DPI-1080, DPI-1010, ORA-03113, 03135 ...). Transient: the batch
    /// is rolled back and retried on a new connection; idle pooled connections are discarded,
    /// not tried one by one.
    ConnectionLost,
    /// A round trip took longer than ORACLE_CALL_TIMEOUT_SEC (DPI-1067, ORA-03156). Transient,
    /// handled as a lost connection.
    CallTimeout,
    /// No database to talk to: no listener, connect timeout, unknown service, database down
    /// or starting (ORA-12541, 12170, 12514, 01033, 01034 ...). Transient.
    Unreachable,
    /// The database is there but cannot take the work now: locks, deadlock, no sessions,
    /// full tablespace or undo (ORA-00054, 00060, 00018, 01653, 01688, 30036 ...). Transient.
    Busy,
    /// Anything else. Transient: retried, then backed up, which loses nothing.
    Unknown,
}

impl ErrorClass {
    /// Retry soon, or wait for an operator.
    pub fn kind(self) -> FailureKind {
        match self {
            ErrorClass::ClientLibrary | ErrorClass::LoginRefused | ErrorClass::Setup => {
                FailureKind::Setup
            }
            _ => FailureKind::Transient,
        }
    }

    /// What failed, for tools that report it.
    pub fn cause(self) -> FailureCause {
        match self {
            ErrorClass::ClientLibrary => FailureCause::ClientLibrary,
            ErrorClass::LoginRefused => FailureCause::Credentials,
            _ => FailureCause::Other,
        }
    }

    /// The connection cannot be trusted any more: drop it and the idle ones with it.
    pub fn drops_connections(self) -> bool {
        matches!(self, ErrorClass::ConnectionLost | ErrorClass::CallTimeout)
    }

    /// Every further login would count as another failed one: stop logging in.
    pub fn stops_logins(self) -> bool {
        self == ErrorClass::LoginRefused
    }
}

/// Client library errors that need another installation.
pub(crate) const CLIENT_LIBRARY_DPI: &[u32] = &[1047, 1049, 1050, 1072];
/// The database refused the login itself; each such attempt counts as a failed login.
pub(crate) const LOGIN_REFUSED_ORA: &[u32] = &[1005, 1017, 28000, 28001];
/// Configuration, privileges, schema.
pub(crate) const SETUP_ORA: &[u32] = &[
    903, 904, 932, 942, 980, 1031, 1045, 1435, 1950, 12154, 12162, 28009, 28040,
];
/// Connection gone; ODPI-C reports most of these as DPI-1080 on an open connection.
pub(crate) const CONNECTION_LOST_ORA: &[u32] = &[
    22, 28, 31, 45, 603, 1012, 1089, 1092, 2396, 3113, 3114, 3135, 12537, 12547, 12570, 12583,
    28511,
];
pub(crate) const CONNECTION_LOST_DPI: &[u32] = &[1010, 1080];
/// A round trip timed out (DPI-1067 when a call timeout is set).
pub(crate) const CALL_TIMEOUT_ORA: &[u32] = &[3136, 3156, 12161];
pub(crate) const CALL_TIMEOUT_DPI: &[u32] = &[1067];
/// No database to talk to, or not yet.
pub(crate) const UNREACHABLE_ORA: &[u32] = &[
    1033, 1034, 1090, 12170, 12505, 12514, 12516, 12518, 12519, 12520, 12521, 12526, 12527, 12528,
    12535, 12541, 12543, 12545, 12560, 12571,
];
/// There, but cannot take the work now.
pub(crate) const BUSY_ORA: &[u32] = &[
    18, 20, 51, 54, 60, 1013, 1555, 1653, 1654, 1688, 1691, 4021, 4031, 24418, 25408, 30036,
];

/// Errors that belong to one row's data when array DML reports them per row through batch
/// errors: only these send a row to a rejected file. Any other per-row error (a full
/// tablespace, a deadlock, a quota) fails the whole batch, which is rolled back and handled
/// by its class. ORA-00001 (the key is stored already) is not here: it is a repeat.
pub const ROW_DATA_ORA: &[u32] = &[
    1400, 1401, 1407, 1426, 1438, 1722, 1830, 1839, 1840, 1841, 1843, 1847, 1858, 1861, 2290, 2291,
    12899,
];

/// Whether a per-row batch error is about that row's data.
pub fn is_row_data_error(code: u32) -> bool {
    ROW_DATA_ORA.contains(&code)
}

/// The class of an error from its source.
pub fn classify(source: OracleErrorSource) -> ErrorClass {
    match source {
        OracleErrorSource::Client(code) if CLIENT_LIBRARY_DPI.contains(&code) => {
            ErrorClass::ClientLibrary
        }
        OracleErrorSource::Client(code) if CONNECTION_LOST_DPI.contains(&code) => {
            ErrorClass::ConnectionLost
        }
        OracleErrorSource::Client(code) if CALL_TIMEOUT_DPI.contains(&code) => {
            ErrorClass::CallTimeout
        }
        OracleErrorSource::Client(_) => ErrorClass::Unknown,
        OracleErrorSource::Database(code) => {
            let class_of = [
                (LOGIN_REFUSED_ORA, ErrorClass::LoginRefused),
                (SETUP_ORA, ErrorClass::Setup),
                (CONNECTION_LOST_ORA, ErrorClass::ConnectionLost),
                (CALL_TIMEOUT_ORA, ErrorClass::CallTimeout),
                (UNREACHABLE_ORA, ErrorClass::Unreachable),
                (BUSY_ORA, ErrorClass::Busy),
            ];
            class_of
                .iter()
                .find(|(codes, _)| codes.contains(&code))
                .map_or(ErrorClass::Unknown, |&(_, class)| class)
        }
        OracleErrorSource::Driver(DriverFault::Conversion | DriverFault::Usage) => {
            ErrorClass::Setup
        }
        OracleErrorSource::Driver(DriverFault::NoData) => ErrorClass::Setup,
        OracleErrorSource::Driver(DriverFault::Internal) => ErrorClass::Unknown,
        OracleErrorSource::PoolTimeout | OracleErrorSource::LoginPending => ErrorClass::Unreachable,
    }
}

/// A classified Oracle error: its source and class, and the driver's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OracleError {
    /// Where it came from.
    pub source: OracleErrorSource,
    /// What it means.
    pub class: ErrorClass,
    /// The driver's message, e.g. `OCI Error: ORA-12541: TNS:no listener`.
    pub message: String,
}

impl OracleError {
    /// Classifies an error from its source.
    pub fn new(source: OracleErrorSource, message: impl Into<String>) -> Self {
        OracleError {
            source,
            class: classify(source),
            message: message.into(),
        }
    }

    /// The error as the writer and the tools see it: the message with advice on what to do,
    /// its kind and cause, and never the password.
    pub fn to_sink_error(&self, context: &ErrorContext<'_>) -> SinkError {
        let text = match hint(self.source, context) {
            Some(hint) => format!("{} ({hint})", self.message),
            None => self.message.clone(),
        };
        let text = context.password.redact(&text);
        let error = match self.class.kind() {
            FailureKind::Setup => SinkError::setup(text),
            FailureKind::Transient => SinkError::transient(text),
        };
        error.with_cause(self.class.cause())
    }
}

/// What the advice may mention. Never holds the password except to mask it.
#[derive(Clone, Copy, Debug)]
pub struct ErrorContext<'a> {
    /// Where the sink connects, without Easy Connect parameters (`db.plant:1521/XEPDB1`).
    pub target: &'a str,
    /// The user.
    pub user: &'a str,
    /// The table.
    pub table: &'a str,
    /// The call timeout in force, for the advice on DPI-1067.
    pub call_timeout: Option<Duration>,
    /// Masked in every message.
    pub password: &'a Secret,
}

fn hint(source: OracleErrorSource, context: &ErrorContext<'_>) -> Option<String> {
    let ErrorContext {
        target,
        user,
        table,
        call_timeout,
        ..
    } = *context;
    let text = match source {
        OracleErrorSource::Client(1047) => "the Oracle Client library was not found: install \
             Oracle Instant Client (64-bit, Basic or Basic Light, 19c or newer) and libaio, and \
             put its folder on LD_LIBRARY_PATH (PATH on Windows); or set SINK=sqlite to run on \
             the embedded database"
            .to_owned(),
        OracleErrorSource::Client(1072) | OracleErrorSource::Client(1050) => {
            "the Oracle Client library found is too old for this program: install Oracle \
             Instant Client 19c or newer and put its folder first on LD_LIBRARY_PATH (PATH on \
             Windows)"
                .to_owned()
        }
        OracleErrorSource::Client(1067) => format!(
            "a call to the database took longer than the call timeout ({}, \
             ORACLE_CALL_TIMEOUT_SEC): the network or the database stalled; the connection is \
             dropped and the batch retried on a new one",
            call_timeout.map_or_else(|| "none".to_owned(), |t| format!("{} s", t.as_secs_f64()))
        ),
        OracleErrorSource::Client(1080) | OracleErrorSource::Client(1010) => {
            "the connection to the database was lost: the batch is rolled back and retried on \
             a new connection"
                .to_owned()
        }
        OracleErrorSource::Database(1017) => format!(
            "invalid user name or password for {user}: check ORACLE_USER and ORACLE_PASSWORD"
        ),
        OracleErrorSource::Database(1005) => {
            "ORACLE_PASSWORD is empty: set it to the password of ORACLE_USER".to_owned()
        }
        OracleErrorSource::Database(28000) => {
            format!("the account {user} is locked: ask the DBA to unlock it")
        }
        OracleErrorSource::Database(28001) => {
            format!("the password of {user} has expired: ask the DBA to reset it")
        }
        OracleErrorSource::Database(942) => format!(
            "table {table} does not exist or {user} cannot see it: create it with \
             sql/oracle/create_tag_values.sql or set ORACLE_TABLE"
        ),
        OracleErrorSource::Database(903) => format!(
            "{table} is not a valid Oracle table name (a reserved word?): set ORACLE_TABLE to \
             another name"
        ),
        OracleErrorSource::Database(904) => format!(
            "table {table} lacks a column this writer uses: compare it with \
             sql/oracle/create_tag_values.sql"
        ),
        OracleErrorSource::Database(1031) => {
            format!("{user} may not insert into {table}: GRANT INSERT ON {table} TO {user}")
        }
        OracleErrorSource::Database(1950) => format!(
            "{user} has no quota on the tablespace of {table}: ask the DBA for \
             ALTER USER {user} QUOTA ... ON <tablespace>"
        ),
        OracleErrorSource::Database(1045) => format!("{user} lacks CREATE SESSION: grant it"),
        OracleErrorSource::Database(12154) => format!(
            "the connect identifier {target:?} could not be resolved: check ORACLE_DSN, or \
             ORACLE_HOST, ORACLE_PORT and ORACLE_SERVICE_NAME"
        ),
        OracleErrorSource::Database(12541) => format!(
            "no listener at {target}: is the database up, and are ORACLE_HOST and ORACLE_PORT \
             right?"
        ),
        OracleErrorSource::Database(12514) | OracleErrorSource::Database(12505) => format!(
            "the listener does not know the service in {target}: check ORACLE_SERVICE_NAME, or \
             wait if the database is still starting"
        ),
        OracleErrorSource::Database(12545) => {
            format!("the host in {target} is unknown: check ORACLE_HOST (or ORACLE_DSN) and DNS")
        }
        OracleErrorSource::Database(12170) => format!(
            "connecting to {target} timed out (ORACLE_CONNECT_TIMEOUT_SEC): check the host name, \
             the network and firewalls on the way to the listener port"
        ),
        OracleErrorSource::Database(1653 | 1654 | 1688 | 1691) => format!(
            "the tablespace of {table} is full: the DBA must add space; batches are retried and \
             backed up meanwhile"
        ),
        OracleErrorSource::Database(30036) => {
            "the undo tablespace is full: the DBA must add space".to_owned()
        }
        OracleErrorSource::Driver(DriverFault::Conversion | DriverFault::Usage) => format!(
            "the columns of {table} do not match what this writer expects: compare them with \
             sql/oracle/create_tag_values.sql"
        ),
        OracleErrorSource::PoolTimeout => format!(
            "no connection to {target} came free in time (ORACLE_POOL_TIMEOUT): the database \
             is slow to accept logins, or every pooled connection is busy"
        ),
        _ => return None,
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(password: &Secret) -> ErrorContext<'_> {
        ErrorContext {
            target: "db.plant:1521/XEPDB1",
            user: "scada_user",
            table: "TAG_VALUES",
            call_timeout: Some(Duration::from_secs(20)),
            password,
        }
    }

    fn all_codes() -> Vec<(&'static str, &'static [u32])> {
        vec![
            ("DPI", CLIENT_LIBRARY_DPI),
            ("DPI", CONNECTION_LOST_DPI),
            ("DPI", CALL_TIMEOUT_DPI),
            ("ORA", LOGIN_REFUSED_ORA),
            ("ORA", SETUP_ORA),
            ("ORA", CONNECTION_LOST_ORA),
            ("ORA", CALL_TIMEOUT_ORA),
            ("ORA", UNREACHABLE_ORA),
            ("ORA", BUSY_ORA),
            ("ORA", ROW_DATA_ORA),
        ]
    }

    #[test]
    fn each_code_is_in_one_class_only() {
        let mut seen = std::collections::HashSet::new();
        for (prefix, codes) in all_codes() {
            for &code in codes {
                assert!(seen.insert((prefix, code)), "{prefix}-{code} twice");
            }
        }
    }

    #[test]
    fn classes_as_the_reference_notes_and_the_issue_say() {
        use ErrorClass::*;
        use OracleErrorSource::{Client, Database, Driver};
        let cases = [
            (Client(1047), ClientLibrary),
            (Client(1072), ClientLibrary),
            (Client(1050), ClientLibrary),
            (Database(1017), LoginRefused),
            (Database(28000), LoginRefused),
            (Database(28001), LoginRefused),
            (Database(1005), LoginRefused),
            (Database(903), Setup),
            (Database(904), Setup),
            (Database(942), Setup),
            (Database(1031), Setup),
            (Database(1950), Setup),
            (Database(12154), Setup),
            (Client(1080), ConnectionLost),
            (Client(1010), ConnectionLost),
            (Database(3113), ConnectionLost),
            (Database(3135), ConnectionLost),
            (Client(1067), CallTimeout),
            (Database(3156), CallTimeout),
            (Database(12170), Unreachable),
            (Database(12541), Unreachable),
            (Database(12514), Unreachable),
            (Database(1033), Unreachable),
            (Database(1034), Unreachable),
            (Database(54), Busy),
            (Database(60), Busy),
            (Database(1653), Busy),
            (Database(1688), Busy),
            (Database(30036), Busy),
            (Database(25408), Busy),
            (Database(99999), Unknown),
            (Client(9999), Unknown),
            (Driver(DriverFault::Conversion), Setup),
            (Driver(DriverFault::Usage), Setup),
            (Driver(DriverFault::Internal), Unknown),
            (OracleErrorSource::PoolTimeout, Unreachable),
        ];
        for (source, class) in cases {
            assert_eq!(classify(source), class, "{source:?}");
        }
        assert_eq!(Setup.kind(), FailureKind::Setup);
        assert_eq!(LoginRefused.kind(), FailureKind::Setup);
        assert_eq!(ClientLibrary.cause(), FailureCause::ClientLibrary);
        assert_eq!(LoginRefused.cause(), FailureCause::Credentials);
        for transient in [ConnectionLost, CallTimeout, Unreachable, Busy, Unknown] {
            assert_eq!(transient.kind(), FailureKind::Transient, "{transient:?}");
        }
        assert!(CallTimeout.drops_connections() && ConnectionLost.drops_connections());
        assert!(!Busy.drops_connections() && !Unreachable.drops_connections());
        assert!(LoginRefused.stops_logins() && !Setup.stops_logins());
    }

    #[test]
    fn only_data_errors_reject_a_row() {
        for code in [1400, 1438, 1426, 12899, 1722, 1840, 1841, 1847, 2290, 2291] {
            assert!(is_row_data_error(code), "ORA-{code}");
        }
        for code in [1, 1653, 1688, 1950, 30036, 60, 54, 3113, 942] {
            assert!(!is_row_data_error(code), "ORA-{code}");
        }
    }

    #[test]
    fn errors_say_what_to_do_and_never_show_the_password() {
        let password = Secret::new("Tr0ub4dor&3");
        let cases = [
            (
                OracleErrorSource::Client(1047),
                "DPI-1047: Cannot locate",
                &[
                    "install Oracle Instant Client",
                    "LD_LIBRARY_PATH",
                    "SINK=sqlite",
                ][..],
            ),
            (
                OracleErrorSource::Client(1072),
                "DPI-1072: the Oracle Client library version is unsupported",
                &["19c or newer"],
            ),
            (
                OracleErrorSource::Client(1067),
                "DPI-1067: call timeout of 20000 ms exceeded with ORA-3156",
                &["ORACLE_CALL_TIMEOUT_SEC", "20 s", "retried"],
            ),
            (
                OracleErrorSource::Database(1017),
                "ORA-01017: invalid username/password; logon denied",
                &["check ORACLE_USER and ORACLE_PASSWORD"],
            ),
            (
                OracleErrorSource::Database(903),
                "ORA-00903: invalid table name",
                &["set ORACLE_TABLE"],
            ),
            (
                OracleErrorSource::Database(942),
                "ORA-00942: table or view does not exist",
                &["sql/oracle/create_tag_values.sql"],
            ),
            (
                OracleErrorSource::Database(1031),
                "ORA-01031: insufficient privileges",
                &["GRANT INSERT ON TAG_VALUES TO scada_user"],
            ),
            (
                OracleErrorSource::Database(12541),
                "ORA-12541: TNS:no listener",
                &["no listener at db.plant:1521/XEPDB1"],
            ),
            (
                OracleErrorSource::Database(12514),
                "ORA-12514: TNS:listener does not currently know of service",
                &["check ORACLE_SERVICE_NAME"],
            ),
        ];
        for (source, message, advice) in cases {
            let error = OracleError::new(source, format!("{message} for Tr0ub4dor&3"))
                .to_sink_error(&context(&password));
            assert!(error.message().starts_with(message), "{error}");
            for advice in advice {
                assert!(error.message().contains(advice), "{error} lacks {advice}");
            }
            assert!(!error.message().contains("Tr0ub4dor&3"), "{error}");
            assert_eq!(error.kind(), classify(source).kind());
            assert_eq!(error.cause(), classify(source).cause());
        }
    }

    /// docs/oracle.md lists every code this module knows, so the page cannot fall behind.
    #[test]
    fn the_operator_page_lists_every_code() {
        let page = include_str!("../../../../docs/oracle.md");
        for (prefix, codes) in all_codes() {
            for &code in codes {
                let spelled = match prefix {
                    "DPI" => format!("DPI-{code:04}"),
                    _ => format!("ORA-{code:05}"),
                };
                assert!(page.contains(&spelled), "docs/oracle.md lacks {spelled}");
            }
        }
    }
}
