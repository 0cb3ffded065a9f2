//! A password that cannot leak through Debug, Display or logs.

use std::fmt;

/// A secret string (a database password). Its `Debug` prints `***`, it has no `Display`, and
/// [`Secret::redact`] scrubs it from any text, such as a driver's error message.
///
/// ```
/// use oracle_batch::Secret;
///
/// let password = Secret::new("tiger");
/// assert_eq!(format!("{password:?}"), "***");
/// assert_eq!(password.redact("login tiger failed"), "login *** failed");
/// assert_eq!(password.expose(), "tiger");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for handing to a driver. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `text` with every occurrence of the secret replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        if self.0.is_empty() {
            text.to_owned()
        } else {
            text.replace(&self.0, "***")
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}
