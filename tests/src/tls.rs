//! Certificates for the TLS tests: a [`TestCa`] of its own per test issues server
//! certificates as PEM files (what an operator points `[tls]` at), and [`connect`] is a
//! rustls client that trusts only the root it is given, so a test can tell which
//! certificate the server presented and that a client of another CA is refused.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A certificate authority made for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

/// A server certificate written as PEM files.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// The certificate chain (leaf, then the CA).
    pub certificate: PathBuf,
    /// The leaf's private key.
    pub private_key: PathBuf,
    /// The leaf, to compare with what a client was shown.
    pub leaf: CertificateDer<'static>,
}

impl TestCa {
    /// A new CA with a fresh key.
    ///
    /// # Panics
    ///
    /// If rcgen cannot make the key or certificate.
    pub fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("CA key");
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    /// The CA's certificate: the one root a client of this CA trusts.
    pub fn root(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// Issues a certificate for `localhost` and `127.0.0.1` and writes it (chain and key) to
    /// `certificate` and `private_key`, replacing what is there.
    ///
    /// # Panics
    ///
    /// If rcgen fails or the files cannot be written.
    pub fn issue_to(&self, certificate: &Path, private_key: &Path) -> IssuedCert {
        let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("leaf params");
        let key = KeyPair::generate().expect("leaf key");
        let leaf = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        let chain = format!("{}{}", leaf.pem(), self.issuer.pem());
        std::fs::write(certificate, chain).expect("writing the certificate");
        std::fs::write(private_key, key.serialize_pem()).expect("writing the key");
        IssuedCert {
            certificate: certificate.to_owned(),
            private_key: private_key.to_owned(),
            leaf: leaf.der().clone(),
        }
    }

    /// Issues a certificate into `dir` as `{name}.crt` and `{name}.key`.
    pub fn issue(&self, dir: &Path, name: &str) -> IssuedCert {
        self.issue_to(
            &dir.join(format!("{name}.crt")),
            &dir.join(format!("{name}.key")),
        )
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

/// Opens a TLS connection to `addr` as `localhost`, trusting only `root`. Fails when the
/// server's certificate does not chain to it.
pub async fn connect(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
) -> io::Result<TlsStream<TcpStream>> {
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).map_err(io::Error::other)?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(io::Error::other)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from("localhost").map_err(io::Error::other)?;
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// The leaf certificate the server presented on `stream`.
///
/// # Panics
///
/// If the handshake left no peer certificate (it cannot, for a server).
pub fn presented(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    let (_, conn) = stream.get_ref();
    conn.peer_certificates()
        .and_then(|chain| chain.first())
        .expect("the server presented a certificate")
        .clone()
        .into_owned()
}
