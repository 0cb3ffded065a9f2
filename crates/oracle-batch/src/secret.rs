//! A password that cannot leak through Debug, Display or logs.

use std::fmt;

/// A secret string (a database password). Its `Debug` prints `***`, it has no `Display`, and
/// [`Secret::redact`] masks it in a driver's error message, should one ever echo it.
///
/// The first line of defence is that no message this workspace writes contains the password;
/// `redact` is the safety net for text from elsewhere, and masks whole tokens only, so that
/// it neither garbles a message nor points at a short password (`p` does not turn "open" into
/// "o***en").
///
/// ```
/// use oracle_batch::Secret;
///
/// let password = Secret::new("Tr0ub4dor&3");
/// assert_eq!(format!("{password:?}"), "***");
/// assert_eq!(password.redact("login Tr0ub4dor&3 failed"), "login *** failed");
/// assert_eq!(password.expose(), "Tr0ub4dor&3");
/// // A one-letter password leaves words alone, and is masked where it is a credential.
/// let short = Secret::new("p");
/// assert_eq!(short.redact("cannot open p.db"), "cannot open p.db");
/// assert_eq!(short.redact("postgres://scada:p@db/historian"), "postgres://scada:***@db/historian");
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

    /// `text` with the secret replaced by `***` where it stands as a whole token:
    ///
    /// - always where it is a credential: `user:SECRET@host`, `user/SECRET@db`,
    ///   `password=SECRET`, `pwd=SECRET`, `IDENTIFIED BY SECRET`;
    /// - elsewhere, where no letter, digit or `_` touches it on either side, unless the
    ///   secret is shorter than 4 characters or made of letters only. Masking every "open" or
    ///   "password" in a message would garble it and, by the gap it leaves, show what the
    ///   password is; such a password is only masked as a credential.
    pub fn redact(&self, text: &str) -> String {
        let secret = self.0.as_str();
        if secret.is_empty() || !text.contains(secret) {
            return text.to_owned();
        }
        let standalone = secret.chars().count() >= 4 && !secret.chars().all(char::is_alphabetic);
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for (at, _) in text.match_indices(secret) {
            let before = &text[..at];
            let after = &text[at + secret.len()..];
            let whole_token = !ends_with_word_char(before) && !starts_with_word_char(after);
            if (standalone && whole_token) || is_credential(before, after) {
                out.push_str(&text[last..at]);
                out.push_str("***");
                last = at + secret.len();
            }
        }
        out.push_str(&text[last..]);
        out
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn ends_with_word_char(text: &str) -> bool {
    text.chars().next_back().is_some_and(is_word_char)
}

fn starts_with_word_char(text: &str) -> bool {
    text.chars().next().is_some_and(is_word_char)
}

/// Whether the text around an occurrence makes it a credential.
fn is_credential(before: &str, after: &str) -> bool {
    // user:SECRET@host (URLs) and user/SECRET@db (Oracle's connect form).
    if after.starts_with('@') && (before.ends_with(':') || before.ends_with('/')) {
        return true;
    }
    if starts_with_word_char(after) {
        return false;
    }
    let key = before
        .strip_suffix(['"', '\''])
        .unwrap_or(before)
        .to_ascii_lowercase();
    ["password=", "password:", "pwd=", "identified by "]
        .iter()
        .any(|marker| key.ends_with(marker))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages the drivers and this workspace really produce.
    const MESSAGES: [&str; 6] = [
        "OCI Error: ORA-01017: invalid username/password; logon denied",
        "DPI Error: DPI-1047: Cannot locate a 64-bit Oracle Client library: \"libclntsh.so: \
         cannot open shared object file: No such file or directory\"",
        "OCI Error: ORA-12541: TNS:no listener",
        "Oracle scada_user@db.plant:1521/XEPDB1 (table TAG_VALUES, pool 2..5)",
        "SQLite database ./data/tag_values.db: unable to open database file",
        "error connecting to server: Connection refused (os error 111)",
    ];

    #[test]
    fn a_one_character_password_garbles_nothing() {
        for password in ["p", "o", "a", "1", ":", "/", "e"] {
            let secret = Secret::new(password);
            for message in MESSAGES {
                assert_eq!(secret.redact(message), message, "password {password:?}");
            }
        }
    }

    #[test]
    fn a_common_word_password_garbles_nothing() {
        for password in [
            "password", "oracle", "open", "Oracle", "database", "file", "denied",
        ] {
            let secret = Secret::new(password);
            for message in MESSAGES {
                assert_eq!(secret.redact(message), message, "password {password:?}");
            }
        }
    }

    #[test]
    fn a_password_in_a_credential_position_is_masked_whatever_it_is() {
        for password in ["p", "password", "open", "Tr0ub4dor&3", "s3cr3t-pg"] {
            let secret = Secret::new(password);
            for (text, masked) in [
                (
                    format!("postgres://scada:{password}@db:5432/historian"),
                    "postgres://scada:***@db:5432/historian",
                ),
                (
                    format!("scada_user/{password}@db.plant:1521/XEPDB1"),
                    "scada_user/***@db.plant:1521/XEPDB1",
                ),
                (
                    format!("host=db user=scada password={password} dbname=h"),
                    "host=db user=scada password=*** dbname=h",
                ),
                (format!("PASSWORD='{password}'"), "PASSWORD='***'"),
                (
                    format!("ALTER USER scada IDENTIFIED BY {password};"),
                    "ALTER USER scada IDENTIFIED BY ***;",
                ),
            ] {
                assert_eq!(secret.redact(&text), masked, "password {password:?}");
            }
        }
    }

    #[test]
    fn a_strong_password_is_masked_as_a_whole_token_only() {
        let secret = Secret::new("Tr0ub4dor&3");
        assert_eq!(
            secret.redact("logon denied for Tr0ub4dor&3, retry Tr0ub4dor&3."),
            "logon denied for ***, retry ***."
        );
        // Part of a longer token: not the password standing alone, left as it is.
        assert_eq!(secret.redact("xTr0ub4dor&3"), "xTr0ub4dor&3");
        assert_eq!(secret.redact("Tr0ub4dor&3x"), "Tr0ub4dor&3x");
        assert_eq!(Secret::new("").redact("anything"), "anything");
        // Non-ASCII neighbours count as letters.
        assert_eq!(Secret::new("pw-42").redact("äpw-42"), "äpw-42");
    }
}
