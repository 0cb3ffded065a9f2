//! The r2d2 pool under an Oracle sink, over a seam ([`OracleLogin`], [`OracleSession`]) that a
//! driver implements and tests fake:
//!
//! - every login, the pool's background ones included, goes through the sink's
//!   [`LoginGate`], so a refused password stops all of them;
//! - every connection gets the call timeout when it is opened
//!   (`CustomizeConnection::on_acquire`), so no round trip blocks for longer;
//! - connections are not pinged at checkout (on a half-open network each ping would wait out
//!   the call timeout, one idle connection after another); instead, after a lost connection
//!   or a timed-out call, the idle connections are discarded together ([`discard_idle`]);
//! - a caller waiting for a connection learns of a set-up failure of a background login at
//!   once ([`checkout`]), not after the pool timeout.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use r2d2::{CustomizeConnection, ManageConnection, NopErrorHandler, Pool, PooledConnection};

use super::errors::{OracleError, OracleErrorSource};
use super::login::LoginGate;
use crate::sink::FailureKind;

/// One login, as a driver does it.
pub trait OracleLogin: Send + Sync + 'static {
    /// The driver's connection.
    type Session: OracleSession;
    /// Logs in once.
    fn login(&self) -> Result<Self::Session, OracleError>;
}

/// What the pool needs of a driver's connection.
pub trait OracleSession: Send + 'static {
    /// Bounds every later round trip (`None`: no bound).
    fn set_call_timeout(&mut self, timeout: Option<Duration>) -> Result<(), OracleError>;
    /// One round trip.
    fn ping(&mut self) -> Result<(), OracleError>;
    /// The driver knows the connection is closed or broken.
    fn is_closed(&mut self) -> bool;
}

/// A pooled connection and whether the sink found it unusable. Derefs to the driver's
/// connection.
#[derive(Debug)]
pub struct Pooled<S> {
    /// The driver's connection.
    pub session: S,
    broken: AtomicBool,
}

impl<S> Pooled<S> {
    /// Drops the connection when it goes back to the pool, instead of keeping it.
    pub fn mark_broken(&self) {
        self.broken.store(true, Ordering::Relaxed);
    }
}

impl<S> std::ops::Deref for Pooled<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.session
    }
}

impl<S> std::ops::DerefMut for Pooled<S> {
    fn deref_mut(&mut self) -> &mut S {
        &mut self.session
    }
}

/// Login protection and the last login failure, shared by the pool and the sink's clones.
#[derive(Debug)]
pub struct LoginState {
    /// The account's gate.
    pub gate: LoginGate,
    last_failure: Mutex<Option<OracleError>>,
}

impl LoginState {
    /// A fresh state; see [`LoginGate::new`] for `login_retry`.
    pub fn new(login_retry: Option<Duration>) -> Self {
        LoginState {
            gate: LoginGate::new(login_retry),
            last_failure: Mutex::new(None),
        }
    }

    fn record(&self, failure: Option<OracleError>) {
        *self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = failure;
    }

    /// Why the last login failed, unless one succeeded since.
    pub fn last_failure(&self) -> Option<OracleError> {
        self.last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The error type the pool passes around.
#[derive(Debug)]
pub struct PoolError(pub OracleError);

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for PoolError {}

/// The r2d2 manager: logins through the gate, failures remembered.
pub struct GatedManager<L> {
    login: L,
    state: Arc<LoginState>,
}

impl<L: OracleLogin> ManageConnection for GatedManager<L> {
    type Connection = Pooled<L::Session>;
    type Error = PoolError;

    fn connect(&self) -> Result<Self::Connection, PoolError> {
        match self.state.gate.login(Instant::now(), || self.login.login()) {
            Ok(session) => {
                self.state.record(None);
                Ok(Pooled {
                    session,
                    broken: AtomicBool::new(false),
                })
            }
            Err(error) => {
                if error.source != OracleErrorSource::LoginPending {
                    self.state.record(Some(error.clone()));
                }
                Err(PoolError(error))
            }
        }
    }

    fn is_valid(&self, connection: &mut Self::Connection) -> Result<(), PoolError> {
        connection.session.ping().map_err(PoolError)
    }

    fn has_broken(&self, connection: &mut Self::Connection) -> bool {
        connection.broken.load(Ordering::Relaxed) || connection.session.is_closed()
    }
}

impl<L> fmt::Debug for GatedManager<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GatedManager")
    }
}

/// Sets the call timeout on each connection the pool opens.
#[derive(Debug)]
struct CallTimeout {
    timeout: Option<Duration>,
    state: Arc<LoginState>,
}

impl<S: OracleSession> CustomizeConnection<Pooled<S>, PoolError> for CallTimeout {
    fn on_acquire(&self, connection: &mut Pooled<S>) -> Result<(), PoolError> {
        connection
            .session
            .set_call_timeout(self.timeout)
            .map_err(|error| {
                self.state.record(Some(error.clone()));
                PoolError(error)
            })
    }
}

/// Pool sizes and times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSettings {
    /// Connections kept open.
    pub min: u32,
    /// Most connections.
    pub max: u32,
    /// How long a caller waits for a connection.
    pub timeout: Duration,
    /// Bound of each round trip on every connection.
    pub call_timeout: Option<Duration>,
}

/// The pool type of a driver.
pub type OraclePool<L> = Pool<GatedManager<L>>;
/// A connection checked out of it.
pub type OracleConnection<L> = PooledConnection<GatedManager<L>>;

/// Creates the pool without connecting (logins start in the background), so start-up never
/// hangs on an unreachable database.
pub fn build_pool<L: OracleLogin>(
    login: L,
    state: Arc<LoginState>,
    settings: &PoolSettings,
) -> OraclePool<L> {
    Pool::builder()
        .min_idle(Some(settings.min))
        .max_size(settings.max)
        .connection_timeout(settings.timeout.max(Duration::from_millis(100)))
        .test_on_check_out(false)
        // Connect failures are reported by `checkout`, classified and without secrets.
        .error_handler(Box::new(NopErrorHandler))
        .connection_customizer(Box::new(CallTimeout {
            timeout: settings.call_timeout,
            state: Arc::clone(&state),
        }))
        .build_unchecked(GatedManager { login, state })
}

/// How often a caller waiting for a connection looks at the login failures meanwhile.
const CHECKOUT_SLICE: Duration = Duration::from_millis(50);

/// A connection within `timeout`. Fails at once when logins are stopped or the last login
/// failed for a set-up reason (no client library, say); otherwise, after `timeout`, with why
/// the last login failed (or that none came free).
pub fn checkout<L: OracleLogin>(
    pool: &OraclePool<L>,
    state: &LoginState,
    timeout: Duration,
) -> Result<OracleConnection<L>, OracleError> {
    if let Some(connection) = pool.try_get() {
        return Ok(connection);
    }
    let deadline = Instant::now() + timeout;
    loop {
        let now = Instant::now();
        if let Some(refusal) = state.gate.refusal(now) {
            return Err(refusal);
        }
        if let Some(failure) = state
            .last_failure()
            .filter(|f| f.class.kind() == FailureKind::Setup)
        {
            return Err(failure);
        }
        if now >= deadline {
            return Err(state.last_failure().unwrap_or_else(|| {
                OracleError::new(
                    OracleErrorSource::PoolTimeout,
                    format!(
                        "no database connection within {:.1} s",
                        timeout.as_secs_f64()
                    ),
                )
            }));
        }
        if let Ok(connection) = pool.get_timeout(CHECKOUT_SLICE.min(deadline - now)) {
            return Ok(connection);
        }
    }
}

/// Discards every idle connection: after a lost connection or a timed-out call the others
/// are most likely dead too, and finding out one by one would cost a call timeout each.
pub fn discard_idle<L: OracleLogin>(pool: &OraclePool<L>) -> usize {
    let mut idle = Vec::new();
    while let Some(connection) = pool.try_get() {
        connection.mark_broken();
        idle.push(connection);
    }
    idle.len()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::oracle::errors::ErrorClass;

    /// A driver that counts logins, remembers which connections were closed, and fails as
    /// told.
    #[derive(Clone, Default)]
    struct Fake {
        logins: Arc<AtomicUsize>,
        closed: Arc<Mutex<Vec<usize>>>,
        fail_with: Arc<Mutex<Option<OracleError>>>,
    }

    #[derive(Debug)]
    struct FakeSession {
        id: usize,
        call_timeout: Option<Duration>,
        closed: Arc<Mutex<Vec<usize>>>,
    }

    impl Drop for FakeSession {
        fn drop(&mut self) {
            self.closed.lock().unwrap().push(self.id);
        }
    }

    impl OracleLogin for Fake {
        type Session = FakeSession;
        fn login(&self) -> Result<FakeSession, OracleError> {
            let id = self.logins.fetch_add(1, Ordering::SeqCst);
            if let Some(error) = self.fail_with.lock().unwrap().clone() {
                return Err(error);
            }
            Ok(FakeSession {
                id,
                call_timeout: None,
                closed: Arc::clone(&self.closed),
            })
        }
    }

    impl OracleSession for FakeSession {
        fn set_call_timeout(&mut self, timeout: Option<Duration>) -> Result<(), OracleError> {
            self.call_timeout = timeout;
            Ok(())
        }
        fn ping(&mut self) -> Result<(), OracleError> {
            Ok(())
        }
        fn is_closed(&mut self) -> bool {
            false
        }
    }

    fn settings(min: u32) -> PoolSettings {
        PoolSettings {
            min,
            max: 5,
            timeout: Duration::from_secs(2),
            call_timeout: Some(Duration::from_secs(20)),
        }
    }

    fn pool(fake: &Fake, min: u32) -> (OraclePool<Fake>, Arc<LoginState>) {
        let state = Arc::new(LoginState::new(Some(Duration::from_secs(900))));
        (
            build_pool(fake.clone(), state.clone(), &settings(min)),
            state,
        )
    }

    fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn every_pooled_connection_gets_the_call_timeout() {
        let fake = Fake::default();
        let (pool, state) = pool(&fake, 2);
        let connections: Vec<_> = (0..5)
            .map(|_| checkout(&pool, &state, Duration::from_secs(10)).unwrap())
            .collect();
        for connection in &connections {
            assert_eq!(
                connection.session.call_timeout,
                Some(Duration::from_secs(20))
            );
        }
    }

    /// r2d2 reopens a failed connection every few seconds for ever; with a refused password
    /// that would lock the account. Through the gate, one failed login is all it costs.
    #[test]
    fn a_refused_login_is_not_retried_in_the_background() {
        let fake = Fake::default();
        *fake.fail_with.lock().unwrap() = Some(OracleError::new(
            OracleErrorSource::Database(1017),
            "ORA-01017: invalid username/password; logon denied",
        ));
        let (pool, state) = pool(&fake, 3);
        let started = Instant::now();
        let error = checkout(&pool, &state, Duration::from_secs(10)).unwrap_err();
        assert_eq!(error.class, ErrorClass::LoginRefused);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "waited out the pool timeout"
        );
        // The pool's background threads retry every 200 ms to 1 s (half the 2 s timeout).
        std::thread::sleep(Duration::from_secs(3));
        for _ in 0..20 {
            let error = checkout(&pool, &state, Duration::from_millis(100)).unwrap_err();
            assert_eq!(error.class, ErrorClass::LoginRefused);
        }
        assert_eq!(fake.logins.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_missing_client_library_is_reported_at_once() {
        let fake = Fake::default();
        *fake.fail_with.lock().unwrap() = Some(OracleError::new(
            OracleErrorSource::Client(1047),
            "DPI-1047: Cannot locate a 64-bit Oracle Client library",
        ));
        let (pool, state) = pool(&fake, 0);
        let started = Instant::now();
        let error = checkout(&pool, &state, Duration::from_secs(10)).unwrap_err();
        assert_eq!(error.class, ErrorClass::ClientLibrary);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn an_unreachable_database_is_reported_after_the_timeout_with_the_reason() {
        let fake = Fake::default();
        *fake.fail_with.lock().unwrap() = Some(OracleError::new(
            OracleErrorSource::Database(12541),
            "ORA-12541: TNS:no listener",
        ));
        let (pool, state) = pool(&fake, 0);
        let error = checkout(&pool, &state, Duration::from_millis(500)).unwrap_err();
        assert_eq!(error.class, ErrorClass::Unreachable);
        assert_eq!(error.message, "ORA-12541: TNS:no listener");
        // The database comes back: the next checkout gets a connection.
        *fake.fail_with.lock().unwrap() = None;
        checkout(&pool, &state, Duration::from_secs(10)).unwrap();
        assert!(state.last_failure().is_none());
    }

    #[test]
    fn discarding_closes_every_idle_connection_and_leaves_busy_ones() {
        let fake = Fake::default();
        let (pool, state) = pool(&fake, 2);
        wait_until("two idle connections", || {
            pool.state().idle_connections == 2
        });
        let busy = checkout(&pool, &state, Duration::from_secs(10)).unwrap();
        wait_until("the pool to refill", || pool.state().idle_connections == 2);
        let idle_ids: Vec<usize> = (0..fake.logins.load(Ordering::SeqCst))
            .filter(|&id| id != busy.session.id)
            .collect();
        let discarded = discard_idle(&pool);
        assert!(discarded >= 2, "{discarded}");
        let closed = fake.closed.lock().unwrap().clone();
        for id in &idle_ids {
            assert!(
                closed.contains(id),
                "idle connection {id} still open: {closed:?}"
            );
        }
        assert!(!closed.contains(&busy.session.id));
        // The pool opens new ones in the background, and the busy one goes back in use.
        wait_until("the pool to refill", || pool.state().idle_connections >= 2);
        let id = busy.session.id;
        drop(busy);
        assert!(!fake.closed.lock().unwrap().contains(&id));
    }
}
