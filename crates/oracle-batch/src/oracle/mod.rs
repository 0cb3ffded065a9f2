//! Oracle Database: what every Oracle sink shares, and the ODPI-C sink.
//!
//! - `errors.rs`: the error classes and what the service does for each (see
//!   `docs/oracle.md`), the advice in messages, which per-row errors are data errors.
//! - `login.rs`: account-lockout protection ([`LoginGate`]).
//! - `connect.rs`: the Easy Connect string with timeouts ([`EasyConnect`]).
//! - `pool.rs`: the r2d2 pool over a driver seam: gated logins, call timeouts, dead
//!   connections discarded together.
//! - `sql.rs`: the statements (insert, least-privilege probe).
//!
//! A second Oracle sink (thin mode, say) implements [`pool::OracleLogin`] or calls the gate,
//! the classification and the SQL builders directly, so that both sinks behave alike.

pub(crate) mod connect;
pub(crate) mod errors;
pub(crate) mod login;
pub(crate) mod pool;
pub(crate) mod sql;

pub use connect::{
    connect_target, connect_timeout_in, sets_connect_timeout, EasyConnect, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_EXPIRE_TIME_MINUTES,
};
pub use errors::{
    classify, is_row_data_error, DriverFault, ErrorClass, OracleError, OracleErrorSource,
    ROW_DATA_ORA,
};
pub use login::{LoginGate, LOGIN_RETRY_CAP};
