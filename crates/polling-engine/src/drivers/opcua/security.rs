//! Security policy and mode, the client's certificate in the PKI folder, and what to tell the
//! operator when the server's certificate is not trusted yet.
//!
//! The PKI folder is async-opcua's layout: `own/cert.der` and `private/private.pem` (this
//! client), `trusted/` (server certificates the operator trusts) and `rejected/` (where an
//! unknown server certificate is put on the first connect, for the operator to move).

use std::path::{Path, PathBuf};

use opcua::crypto::{CertificateStore, SecurityPolicy, X509Data, X509};
use opcua::types::{ApplicationDescription, ByteString, MessageSecurityMode};

/// The names `security_policy` accepts (the policy URIs' last parts, as servers list them).
const POLICIES: &[(&str, SecurityPolicy)] = &[
    ("None", SecurityPolicy::None),
    ("Basic256Sha256", SecurityPolicy::Basic256Sha256),
    ("Aes128_Sha256_RsaOaep", SecurityPolicy::Aes128Sha256RsaOaep),
    ("Aes256_Sha256_RsaPss", SecurityPolicy::Aes256Sha256RsaPss),
];

/// The message security of the session's channel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Security {
    /// `security_policy`.
    pub policy: SecurityPolicy,
    /// `security_mode`.
    pub mode: MessageSecurityMode,
}

impl Security {
    /// Reads `security_policy` and `security_mode` (the mode defaults to None with policy None,
    /// SignAndEncrypt otherwise).
    pub fn parse(policy: Option<&str>, mode: Option<&str>) -> Result<Security, String> {
        let policy = match policy {
            None => SecurityPolicy::None,
            Some(name) => POLICIES
                .iter()
                .find(|(known, _)| *known == name)
                .map(|(_, policy)| *policy)
                .ok_or_else(|| {
                    let known: Vec<&str> = POLICIES.iter().map(|(n, _)| *n).collect();
                    format!(
                        "security_policy: {name:?} is not a security policy this client supports \
                         (known: {}; Basic128Rsa15 and Basic256 are deprecated)",
                        known.join(", ")
                    )
                })?,
        };
        let mode = match mode {
            None if policy == SecurityPolicy::None => MessageSecurityMode::None,
            None => MessageSecurityMode::SignAndEncrypt,
            Some("None") => MessageSecurityMode::None,
            Some("Sign") => MessageSecurityMode::Sign,
            Some("SignAndEncrypt") => MessageSecurityMode::SignAndEncrypt,
            Some(other) => {
                return Err(format!(
                    "security_mode: {other:?} is not a security mode (known: None, Sign, \
                     SignAndEncrypt)"
                ))
            }
        };
        match (policy, mode) {
            (SecurityPolicy::None, MessageSecurityMode::None) => {}
            (SecurityPolicy::None, _) => {
                return Err(
                    "security_mode: Sign and SignAndEncrypt need a security_policy (e.g. \
                     Basic256Sha256)"
                        .into(),
                )
            }
            (_, MessageSecurityMode::None) => {
                return Err(format!(
                    "security_mode: None cannot be used with security_policy {:?}; give Sign or \
                     SignAndEncrypt, or security_policy = \"None\"",
                    policy.to_str()
                ))
            }
            _ => {}
        }
        Ok(Security { policy, mode })
    }

    /// `Basic256Sha256/SignAndEncrypt`, for messages.
    pub fn describe(&self) -> String {
        let mode = match self.mode {
            MessageSecurityMode::Sign => "Sign",
            MessageSecurityMode::SignAndEncrypt => "SignAndEncrypt",
            _ => "None",
        };
        format!("{}/{mode}", self.policy.to_str())
    }
}

/// The client's PKI folder and its certificate and key (relative to the folder, or absolute).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pki {
    /// `pki_dir` (default `pki`, relative to the working directory).
    pub dir: PathBuf,
    /// `certificate` (default `own/cert.der`).
    pub certificate: PathBuf,
    /// `private_key` (default `private/private.pem`).
    pub private_key: PathBuf,
    /// Whether the operator named the certificate and key: then they must exist, and are
    /// never created.
    pub given: bool,
}

impl Pki {
    /// The PKI of `pki_dir`, `certificate`, `private_key`; given paths must exist now.
    pub fn parse(
        dir: Option<&str>,
        certificate: Option<&str>,
        private_key: Option<&str>,
    ) -> Result<Pki, String> {
        let dir = PathBuf::from(dir.unwrap_or("pki"));
        let pki = match (certificate, private_key) {
            (None, None) => Pki {
                certificate: PathBuf::from("own/cert.der"),
                private_key: PathBuf::from("private/private.pem"),
                dir,
                given: false,
            },
            (Some(certificate), Some(private_key)) => Pki {
                certificate: PathBuf::from(certificate),
                private_key: PathBuf::from(private_key),
                dir,
                given: true,
            },
            (Some(_), None) => return Err("certificate: give private_key too".into()),
            (None, Some(_)) => return Err("private_key: give certificate too".into()),
        };
        if pki.given {
            for (key, path) in [
                ("certificate", pki.certificate_path()),
                ("private_key", pki.private_key_path()),
            ] {
                if !path.is_file() {
                    return Err(format!(
                        "{key}: {} does not exist (a path relative to pki_dir {}, or absolute; \
                         leave certificate and private_key out to have them created)",
                        path.display(),
                        pki.dir.display()
                    ));
                }
            }
            let extension = pki.certificate.extension().and_then(|e| e.to_str());
            if !matches!(extension, Some("der" | "pem")) {
                return Err(format!(
                    "certificate: {} must be a .der or .pem file",
                    pki.certificate.display()
                ));
            }
        }
        Ok(pki)
    }

    /// The certificate's path on disk.
    pub fn certificate_path(&self) -> PathBuf {
        self.dir.join(&self.certificate)
    }

    /// The private key's path on disk.
    pub fn private_key_path(&self) -> PathBuf {
        self.dir.join(&self.private_key)
    }

    /// `trusted/`, where the operator puts the server's certificate.
    pub fn trusted_dir(&self) -> PathBuf {
        self.dir.join("trusted")
    }

    /// `rejected/`, where an unknown server certificate is put.
    pub fn rejected_dir(&self) -> PathBuf {
        self.dir.join("rejected")
    }

    /// Creates the folders, and the client's certificate and key when missing (a self-signed
    /// RSA 2048 certificate for `application`, valid for 10 years). Logs what it created.
    pub fn prepare(&self, application: &ApplicationDescription) -> Result<(), String> {
        for dir in [self.trusted_dir(), self.rejected_dir()] {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create the PKI folder {}: {e}", dir.display()))?;
        }
        let (certificate, key) = (self.certificate_path(), self.private_key_path());
        if certificate.is_file() && key.is_file() {
            return Ok(());
        }
        if self.given {
            return Err(format!(
                "the client certificate {} or its key {} is missing",
                certificate.display(),
                key.display()
            ));
        }
        for path in [&certificate, &key] {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    format!("cannot create the PKI folder {}: {e}", parent.display())
                })?;
            }
        }
        let mut data = X509Data::from(application.clone());
        data.certificate_duration_days = 3650;
        CertificateStore::create_certificate_and_key(&data, true, &certificate, &key).map_err(
            |e| {
                format!(
                    "cannot create the client certificate {} and key {}: {e}",
                    certificate.display(),
                    key.display()
                )
            },
        )?;
        restrict(&key);
        log::info!(
            "OPC UA: created the client certificate {} (application URI {}) and its private key \
             {}; servers that check clients must trust this certificate",
            certificate.display(),
            application.application_uri,
            key.display()
        );
        Ok(())
    }

    /// What to tell the operator when `server_certificate` was not trusted.
    pub fn untrusted_hint(&self, server_certificate: &ByteString) -> String {
        let saved = X509::from_byte_string(server_certificate)
            .map(|cert| {
                self.rejected_dir()
                    .join(CertificateStore::cert_file_name(&cert))
            })
            .map(|path| path.display().to_string())
            .unwrap_or_else(|_| format!("{}/", self.rejected_dir().display()));
        format!(
            "the server's certificate is not trusted; it was saved as {saved}: after checking it \
             is your server's, move it to {}/ (or set trust_server_cert = \"always\")",
            self.trusted_dir().display()
        )
    }
}

/// The private key readable by its owner only (Unix; on Windows the folder's ACL applies).
fn restrict(key: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Err(error) = std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)) {
            log::warn!("cannot make {} private (mode 600): {error}", key.display());
        }
    }
    #[cfg(not(unix))]
    let _ = key;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_and_modes() {
        let none = Security::parse(None, None).unwrap();
        assert_eq!(none.mode, MessageSecurityMode::None);
        let secure = Security::parse(Some("Basic256Sha256"), None).unwrap();
        assert_eq!(secure.describe(), "Basic256Sha256/SignAndEncrypt");
        let sign = Security::parse(Some("Basic256Sha256"), Some("Sign")).unwrap();
        assert_eq!(sign.mode, MessageSecurityMode::Sign);
        let error = Security::parse(Some("Basic128"), None).unwrap_err();
        assert!(error.contains("known: None, Basic256Sha256"), "{error}");
        let error = Security::parse(Some("None"), Some("Sign")).unwrap_err();
        assert!(error.contains("need a security_policy"), "{error}");
        let error = Security::parse(Some("Basic256Sha256"), Some("None")).unwrap_err();
        assert!(error.contains("cannot be used"), "{error}");
        let error = Security::parse(None, Some("Encrypt")).unwrap_err();
        assert!(
            error.contains("known: None, Sign, SignAndEncrypt"),
            "{error}"
        );
    }

    #[test]
    fn given_certificates_must_exist_and_missing_ones_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let pki_dir = dir.path().join("pki");
        let text = pki_dir.to_str().unwrap();
        let error =
            Pki::parse(Some(text), Some("own/mine.der"), Some("private/mine.pem")).unwrap_err();
        assert!(error.starts_with("certificate: "), "{error}");
        assert!(error.contains("does not exist"), "{error}");
        assert!(Pki::parse(Some(text), Some("a.der"), None)
            .unwrap_err()
            .contains("give private_key too"));

        let pki = Pki::parse(Some(text), None, None).unwrap();
        let application = ApplicationDescription {
            application_uri: "urn:test:client".into(),
            application_name: "test client".into(),
            ..Default::default()
        };
        pki.prepare(&application).unwrap();
        assert!(pki.certificate_path().is_file());
        assert!(pki.private_key_path().is_file());
        assert!(pki.trusted_dir().is_dir() && pki.rejected_dir().is_dir());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(pki.private_key_path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // The second start keeps them.
        let before = std::fs::read(pki.certificate_path()).unwrap();
        pki.prepare(&application).unwrap();
        assert_eq!(std::fs::read(pki.certificate_path()).unwrap(), before);
        // And now they can be named.
        assert!(Pki::parse(
            Some(text),
            Some("own/cert.der"),
            Some("private/private.pem")
        )
        .is_ok());
    }
}
