//! Account-lockout protection: once the database refuses a login, nobody logs in again for a
//! long while.
//!
//! Oracle's default profile locks an account after 10 failed logins (FAILED_LOGIN_ATTEMPTS),
//! and only a successful login resets the count. A pool that keeps its idle connections
//! topped up (r2d2 retries a failed open every few seconds, for ever), writer threads and the
//! offline probe would reach 10 within a minute of a password rotation. So every login of a
//! sink goes through one [`LoginGate`]:
//!
//! - after a refusal (ORA-01017, 28000, 28001, 01005) no login is attempted until the retry
//!   delay has passed (ORACLE_LOGIN_RETRY_SEC, 15 minutes by default, doubling after each
//!   further refusal up to a day), or never again until a restart when it is 0. Callers get
//!   the refusal at once, without a round trip;
//! - until a login has succeeded (at start, and after a refusal), one login at a time: a
//!   second caller does not wait, it is told a login is in progress. So a wrong password costs
//!   one failed login, not one per pool slot and thread.
//!
//! Connections already open stay usable: a password change does not end existing sessions.

use std::sync::{Mutex, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use super::errors::{ErrorClass, OracleError, OracleErrorSource};

/// The longest wait between two logins after repeated refusals.
pub const LOGIN_RETRY_CAP: Duration = Duration::from_secs(24 * 3600);

/// Lets logins through, one at a time until one succeeds, and none for a long while after the
/// database refused one. Share one per database account (clones of a sink share theirs).
#[derive(Debug)]
pub struct LoginGate {
    retry_after: Option<Duration>,
    state: Mutex<GateState>,
    /// Held by the one login allowed while the password is not known to be good.
    trial: Mutex<()>,
}

#[derive(Debug)]
enum GateState {
    /// No login has succeeded yet: one at a time.
    Untested,
    /// A login succeeded and none was refused since: logins run freely.
    Accepted,
    /// The database refused a login: none until `until` (never when `None`).
    Refused {
        error: OracleError,
        until: Option<Instant>,
        wait: Duration,
    },
}

impl LoginGate {
    /// A gate that allows the next login `retry_after` after a refusal (doubling after each
    /// further one, up to [`LOGIN_RETRY_CAP`]); `None`: not before a restart.
    pub fn new(retry_after: Option<Duration>) -> Self {
        LoginGate {
            retry_after: retry_after.filter(|d| !d.is_zero()),
            state: Mutex::new(GateState::Untested),
            trial: Mutex::new(()),
        }
    }

    /// Runs `attempt` (one login) unless logins are stopped, at time `now`. A refusal the
    /// attempt returns stops logins; a success lets them run freely.
    pub fn login<C>(
        &self,
        now: Instant,
        attempt: impl FnOnce() -> Result<C, OracleError>,
    ) -> Result<C, OracleError> {
        if self.check(now)? {
            return self.settle(now, attempt());
        }
        let _trial = match self.trial.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Err(OracleError::new(
                    OracleErrorSource::LoginPending,
                    "another login to the database is in progress and has not succeeded yet; \
                     one login at a time until one does, so that a wrong password is tried \
                     only once",
                ))
            }
        };
        // The trial that held the lock a moment ago may have been refused.
        self.check(now)?;
        self.settle(now, attempt())
    }

    /// Whether logins stopped after a refusal (and the refusal).
    pub fn refusal(&self, now: Instant) -> Option<OracleError> {
        self.check(now).err()
    }

    /// `Ok(true)`: log in freely; `Ok(false)`: one at a time; `Err`: stopped.
    fn check(&self, now: Instant) -> Result<bool, OracleError> {
        match &*self.lock() {
            GateState::Accepted => Ok(true),
            GateState::Untested => Ok(false),
            GateState::Refused {
                until: Some(until), ..
            } if now >= *until => Ok(false),
            GateState::Refused { error, until, .. } => Err(stopped(error, *until, now)),
        }
    }

    fn settle<C>(&self, now: Instant, result: Result<C, OracleError>) -> Result<C, OracleError> {
        let mut state = self.lock();
        match &result {
            Ok(_) => *state = GateState::Accepted,
            Err(error) if error.class.stops_logins() => {
                let wait = match &*state {
                    GateState::Refused { wait, .. } => (*wait * 2).min(LOGIN_RETRY_CAP),
                    _ => self.retry_after.unwrap_or(LOGIN_RETRY_CAP),
                };
                let until = self.retry_after.map(|_| now + wait);
                match until {
                    Some(_) => log::error!(
                        "The database refused the login ({}): no further login for {}, so that \
                         retries cannot lock the account (ORACLE_LOGIN_RETRY_SEC). Connections \
                         already open go on working. Fix the credentials and restart the \
                         service, or wait",
                        error.message,
                        human_duration(wait)
                    ),
                    None => log::error!(
                        "The database refused the login ({}): no further login until the \
                         service is restarted (ORACLE_LOGIN_RETRY_SEC=0), so that retries \
                         cannot lock the account",
                        error.message
                    ),
                }
                *state = GateState::Refused {
                    error: error.clone(),
                    until,
                    wait,
                };
            }
            // Unreachable, timed out ...: says nothing about the password.
            Err(_) => {}
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The refusal, as later callers get it.
fn stopped(error: &OracleError, until: Option<Instant>, now: Instant) -> OracleError {
    let next = match until {
        Some(until) => format!(
            "the next login is in {} (ORACLE_LOGIN_RETRY_SEC), or at a restart",
            human_duration(until.saturating_duration_since(now))
        ),
        None => "no login until the service is restarted (ORACLE_LOGIN_RETRY_SEC=0)".to_owned(),
    };
    OracleError {
        source: error.source,
        class: ErrorClass::LoginRefused,
        message: format!(
            "{}; logins stopped so that retries cannot lock the account: {next}",
            error.message
        ),
    }
}

/// `45 s`, `15 min`, `2 h 5 min`.
pub(crate) fn human_duration(duration: Duration) -> String {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    match seconds {
        0..=119 => format!("{seconds} s"),
        120..=7199 => format!("{} min", seconds.div_ceil(60)),
        _ => {
            let minutes = seconds.div_ceil(60);
            match minutes % 60 {
                0 => format!("{} h", minutes / 60),
                rest => format!("{} h {rest} min", minutes / 60),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::sync::{Arc, Barrier};

    use super::*;

    fn refused() -> OracleError {
        OracleError::new(
            OracleErrorSource::Database(1017),
            "ORA-01017: invalid username/password; logon denied",
        )
    }

    fn unreachable() -> OracleError {
        OracleError::new(
            OracleErrorSource::Database(12541),
            "ORA-12541: TNS:no listener",
        )
    }

    const MINUTES_15: Duration = Duration::from_secs(900);

    #[test]
    fn a_refused_login_stops_logins_until_the_retry_delay() {
        let gate = LoginGate::new(Some(MINUTES_15));
        let start = Instant::now();
        let logins = Cell::new(0);
        let refuse = || {
            logins.set(logins.get() + 1);
            Err::<(), _>(refused())
        };
        assert_eq!(
            gate.login(start, refuse).unwrap_err().class,
            ErrorClass::LoginRefused
        );
        // Pool slots, writer threads and probes keep asking for a minute: none gets through.
        for second in 1..=60 {
            let error = gate
                .login(start + Duration::from_secs(second), refuse)
                .unwrap_err();
            assert_eq!(error.class, ErrorClass::LoginRefused);
            assert_eq!(error.source, OracleErrorSource::Database(1017));
            assert!(error.message.starts_with("ORA-01017"), "{}", error.message);
            assert!(
                error.message.contains("ORACLE_LOGIN_RETRY_SEC"),
                "{}",
                error.message
            );
        }
        assert_eq!(logins.get(), 1, "one failed login, not one per caller");
        let error = gate.refusal(start + Duration::from_secs(60)).unwrap();
        assert!(
            error.message.contains("the next login is in 14 min"),
            "{}",
            error.message
        );
        // After the delay: one more try; refused again, the wait doubles.
        let later = start + MINUTES_15;
        gate.login(later, refuse).unwrap_err();
        assert_eq!(logins.get(), 2);
        gate.login(later + MINUTES_15, refuse).unwrap_err();
        assert_eq!(logins.get(), 2, "the second wait is twice as long");
        gate.login(later + 2 * MINUTES_15, || Ok(())).unwrap();
        // Accepted: logins run again, and a transient failure changes nothing.
        gate.login(later + 2 * MINUTES_15, || Err::<(), _>(unreachable()))
            .unwrap_err();
        assert!(gate.refusal(later + 2 * MINUTES_15).is_none());
    }

    #[test]
    fn the_wait_doubles_up_to_a_day() {
        let gate = LoginGate::new(Some(Duration::from_secs(3600)));
        let mut now = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..8 {
            gate.login(now, || Err::<(), _>(refused())).unwrap_err();
            let GateState::Refused { wait, .. } = &*gate.lock() else {
                panic!("not refused")
            };
            waits.push(wait.as_secs() / 3600);
            now += *wait;
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 24, 24, 24]);
    }

    #[test]
    fn zero_means_no_login_until_a_restart() {
        let gate = LoginGate::new(Some(Duration::ZERO));
        let start = Instant::now();
        gate.login(start, || Err::<(), _>(refused())).unwrap_err();
        let error = gate
            .login(start + Duration::from_secs(365 * 86_400), || Ok(()))
            .unwrap_err();
        assert!(
            error.message.contains("until the service is restarted"),
            "{}",
            error.message
        );
    }

    #[test]
    fn transient_failures_do_not_stop_logins() {
        let gate = LoginGate::new(Some(MINUTES_15));
        let now = Instant::now();
        for _ in 0..20 {
            assert_eq!(
                gate.login(now, || Err::<(), _>(unreachable()))
                    .unwrap_err()
                    .class,
                ErrorClass::Unreachable
            );
        }
        gate.login(now, || Ok(())).unwrap();
    }

    /// Until a login succeeded, a second caller is not let in while one is in progress; once
    /// one has, logins run side by side.
    #[test]
    fn one_login_at_a_time_until_one_succeeds() {
        let gate = Arc::new(LoginGate::new(Some(MINUTES_15)));
        let in_login = Arc::new(Barrier::new(2));
        let done = Arc::new(Barrier::new(2));
        let first = {
            let (gate, in_login, done) = (gate.clone(), in_login.clone(), done.clone());
            std::thread::spawn(move || {
                gate.login(Instant::now(), || {
                    in_login.wait();
                    done.wait();
                    Ok(())
                })
            })
        };
        in_login.wait();
        let error = gate.login(Instant::now(), || Ok(())).unwrap_err();
        assert_eq!(error.source, OracleErrorSource::LoginPending);
        assert!(error.class.kind().to_string() == "transient");
        done.wait();
        first.join().unwrap().unwrap();
        // Accepted: two logins at once are fine.
        let both = Arc::new(Barrier::new(2));
        let second = {
            let (gate, both) = (gate.clone(), both.clone());
            std::thread::spawn(move || {
                gate.login(Instant::now(), || {
                    both.wait();
                    Ok(())
                })
            })
        };
        gate.login(Instant::now(), || {
            both.wait();
            Ok(())
        })
        .unwrap();
        second.join().unwrap().unwrap();
    }

    #[test]
    fn durations_read_well() {
        let cases = [
            (0, "0 s"),
            (45, "45 s"),
            (119, "119 s"),
            (900, "15 min"),
            (899, "15 min"),
            (7200, "2 h"),
            (7500, "2 h 5 min"),
            (86_400, "24 h"),
        ];
        for (seconds, text) in cases {
            assert_eq!(human_duration(Duration::from_secs(seconds)), text);
        }
    }
}
