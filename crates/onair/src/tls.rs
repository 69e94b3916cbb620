//! The server's certificate for RTMPS and HTTPS: loaded from `[tls]`'s PEM files, checked
//! (the key must match the certificate), and swappable at run time so SIGHUP can bring in a
//! renewed certificate without a restart.
//!
//! Each accepted connection takes the [`ServerConfig`] current at that moment; a connection
//! already past its handshake keeps the certificate it was served.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why a certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file is missing, unreadable or not PEM of the expected kind.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the pair (a key that does not belong to the certificate, a key type
    /// it cannot sign with).
    #[error("{certificate} with {private_key}: {source}")]
    Pair {
        /// The certificate file.
        certificate: PathBuf,
        /// The key file.
        private_key: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
}

/// Reads a PEM certificate chain (leaf first) and its private key and builds the rustls
/// configuration every TLS listener uses.
pub fn load(certificate: &Path, private_key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let file_error = |path: &Path, message: String| TlsError::File {
        path: path.to_owned(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(certificate)
        .map_err(|e| file_error(certificate, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(certificate, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_error(
            certificate,
            "no CERTIFICATE block in the file".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(private_key).map_err(|e| {
        let message = match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "no PRIVATE KEY block in the file".to_owned()
            }
            e => e.to_string(),
        };
        file_error(private_key, message)
    })?;
    // The provider is named rather than taken from a process default, so nothing depends on
    // which rustls features other crates turn on.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|source| TlsError::Pair {
            certificate: certificate.to_owned(),
            private_key: private_key.to_owned(),
            source,
        })?;
    Ok(Arc::new(config))
}

/// The certificate in use, and where it was loaded from.
#[derive(Debug)]
pub struct Certificates {
    current: RwLock<Arc<ServerConfig>>,
    files: RwLock<(PathBuf, PathBuf)>,
}

impl Certificates {
    /// Loads the pair at `certificate` and `private_key`.
    pub fn load(certificate: &Path, private_key: &Path) -> Result<Certificates, TlsError> {
        let config = load(certificate, private_key)?;
        Ok(Certificates {
            current: RwLock::new(config),
            files: RwLock::new((certificate.to_owned(), private_key.to_owned())),
        })
    }

    /// An acceptor over the certificate in use now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().clone())
    }

    /// Re-reads the pair (from `files` when given, else from where it was loaded) and
    /// swaps it in. On error the certificate in use stays.
    pub fn reload(&self, files: Option<(&Path, &Path)>) -> Result<(), TlsError> {
        let (certificate, private_key) = match files {
            Some((c, k)) => (c.to_owned(), k.to_owned()),
            None => self.files.read().clone(),
        };
        let config = load(&certificate, &private_key)?;
        *self.current.write() = config;
        *self.files.write() = (certificate, private_key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("rcgen makes a certificate");
        let c = dir.join(format!("{name}.crt"));
        let k = dir.join(format!("{name}.key"));
        std::fs::write(&c, cert.cert.pem()).expect("write cert");
        std::fs::write(&k, cert.signing_key.serialize_pem()).expect("write key");
        (c, k)
    }

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("onair-tls-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn a_matching_pair_loads_and_a_mismatched_one_is_named() {
        let dir = temp_dir();
        let (c1, k1) = pair(&dir, "one");
        let (_, k2) = pair(&dir, "two");
        load(&c1, &k1).expect("a matching pair loads");
        let e = load(&c1, &k2).expect_err("another certificate's key");
        assert!(matches!(e, TlsError::Pair { .. }), "{e}");
        assert!(e.to_string().contains("two.key"), "{e}");
        let e = load(&k1, &k1).expect_err("a key where the certificate belongs");
        assert!(e.to_string().contains("no CERTIFICATE"), "{e}");
        let e = load(&c1, &c1).expect_err("a certificate where the key belongs");
        assert!(e.to_string().contains("no PRIVATE KEY"), "{e}");
        let e = load(&dir.join("missing.crt"), &k1).expect_err("a missing file");
        assert!(e.to_string().contains("missing.crt"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_bad_reload_keeps_the_certificate_in_use() {
        let dir = temp_dir();
        let (c1, k1) = pair(&dir, "one");
        let (c2, k2) = pair(&dir, "two");
        let certs = Certificates::load(&c1, &k1).expect("loads");
        let before = Arc::as_ptr(&certs.current.read());
        std::fs::write(&c1, "not a certificate").expect("overwrite");
        assert!(certs.reload(None).is_err());
        assert_eq!(Arc::as_ptr(&certs.current.read()), before);
        certs.reload(Some((&c2, &k2))).expect("a good pair reloads");
        assert_ne!(Arc::as_ptr(&certs.current.read()), before);
        let _ = std::fs::remove_dir_all(dir);
    }
}
