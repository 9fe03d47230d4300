//! TLS, with rustls and its ring provider (no OpenSSL): the identity a
//! server presents (`ServerIdentity`, served by tiny_http's rustls support,
//! patched to the rustls ureq uses, so a binary holds one TLS stack) and
//! the roots a caller verifies its peers against (`ClientTls`, handed to
//! ureq's `RustlsConnector`, which `transport::connector` chains after the
//! TCP transport). An `http://` URL goes through the same agent untouched.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};

/// Where the operating system keeps its trusted roots, used when no CA
/// file is given (Debian and Ubuntu, Fedora and RHEL, Alpine and macOS):
/// what curl trusts on the same machine.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// A CA file or certificate file larger than this is refused: such files
/// hold a few certificates (the system bundle, the largest, is ~220 KB).
pub const PEM_FILE_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// The certificate chain and private key a server presents, as PEM,
/// checked at start-up to make a working rustls configuration (tiny_http
/// builds its own from the same PEM when it binds).
#[derive(Clone)]
pub struct ServerIdentity {
    pub certificate_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// Which file of a `ServerIdentity` is at fault, and how.
#[derive(Debug, PartialEq, Eq)]
pub enum IdentityError {
    Certificate(String),
    Key(String),
}

impl fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("ServerIdentity")
            .field("certificate_bytes", &self.certificate_pem.len())
            .finish_non_exhaustive()
    }
}

impl ServerIdentity {
    /// Checks `certificate_pem` holds a certificate chain (the server's
    /// first) and `key_pem` an unencrypted private key that goes with it.
    pub fn new(
        certificate_pem: Vec<u8>,
        key_pem: Vec<u8>,
    ) -> Result<ServerIdentity, IdentityError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let chain = CertificateDer::pem_slice_iter(&certificate_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| IdentityError::Certificate(format!("does not parse as PEM: {err}")))?;
        if chain.is_empty() {
            return Err(IdentityError::Certificate(
                "holds no PEM certificate".to_owned(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|err| {
            IdentityError::Key(format!(
                "holds no usable private key (unencrypted PKCS#8, PKCS#1 or SEC1 PEM): {err}"
            ))
        })?;
        rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|err| IdentityError::Key(err.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|err| {
                IdentityError::Key(format!("cannot serve the certificate with this key: {err}"))
            })?;
        Ok(ServerIdentity {
            certificate_pem,
            key_pem,
        })
    }

    pub fn for_tiny_http(&self) -> tiny_http::SslConfig {
        tiny_http::SslConfig {
            certificate: self.certificate_pem.clone(),
            private_key: self.key_pem.clone(),
        }
    }
}

/// The one crypto provider of both sides: ring, as tiny_http's.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The roots a caller trusts for `https://` peers: a CA file's
/// certificates, or the system's. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ClientTls {
    config: TlsConfig,
    /// Where the roots came from, for start-up lines and errors.
    pub source: String,
}

impl ClientTls {
    /// Trusts exactly the certificates of the PEM file `path`.
    pub fn from_ca_file(path: &Path) -> Result<ClientTls, String> {
        let pem = read_pem_file(path)?;
        let roots = certificates_in(&pem).map_err(|err| format!("{}: {err}", path.display()))?;
        if roots.is_empty() {
            return Err(format!("{}: holds no PEM certificate", path.display()));
        }
        Ok(ClientTls::trusting(roots, format!("{}", path.display())))
    }

    /// Trusts the system's roots (the first bundle of `SYSTEM_CA_BUNDLES`
    /// there is), or nothing if there is none: every `https://` call then
    /// fails its verification, and the error says to give a CA file.
    pub fn system() -> ClientTls {
        for bundle in SYSTEM_CA_BUNDLES {
            let path = Path::new(bundle);
            if let Ok(pem) = read_pem_file(path)
                && let Ok(roots) = certificates_in(&pem)
                && !roots.is_empty()
            {
                return ClientTls::trusting(roots, (*bundle).to_owned());
            }
        }
        ClientTls::trusting(Vec::new(), "no CA (no system bundle found)".to_owned())
    }

    /// Trusts nothing: for a caller that makes no `https://` call.
    pub fn none() -> ClientTls {
        ClientTls::trusting(Vec::new(), "no CA".to_owned())
    }

    /// Verifies nothing: only for `--health-check`, which asks its own
    /// process for `GET /health` and sends nothing secret.
    pub fn unverified() -> ClientTls {
        let config = builder().disable_verification(true).build();
        ClientTls {
            config,
            source: "none (unverified)".to_owned(),
        }
    }

    fn trusting(roots: Vec<Certificate<'static>>, source: String) -> ClientTls {
        let config = builder()
            .root_certs(RootCerts::Specific(Arc::new(roots)))
            .build();
        ClientTls { config, source }
    }

    /// For `ureq::config::ConfigBuilder::tls_config`.
    pub fn config(&self) -> TlsConfig {
        self.config.clone()
    }
}

fn builder() -> ureq::tls::TlsConfigBuilder {
    TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(provider())
}

fn read_pem_file(path: &Path) -> Result<Vec<u8>, String> {
    let metadata = std::fs::metadata(path).map_err(|err| format!("{}: {err}", path.display()))?;
    if metadata.len() > PEM_FILE_BYTES_MAX {
        return Err(format!(
            "{}: {} bytes, more than a PEM file of certificates holds ({PEM_FILE_BYTES_MAX})",
            path.display(),
            metadata.len()
        ));
    }
    std::fs::read(path).map_err(|err| format!("{}: {err}", path.display()))
}

/// The certificates of a PEM text (other items ignored).
fn certificates_in(pem: &[u8]) -> Result<Vec<Certificate<'static>>, String> {
    let mut certificates = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(PemItem::Certificate(certificate)) => certificates.push(certificate),
            Ok(_) => {}
            Err(err) => return Err(format!("does not parse as PEM: {err}")),
        }
    }
    Ok(certificates)
}

/// What went wrong, in words, when a call failed in TLS: the peer's
/// certificate is not trusted, or it does not speak TLS. `None` for any
/// other failure. (ureq hands rustls's errors over inside `io::Error`s
/// when they come from the stream.)
pub fn failure(err: &ureq::Error) -> Option<String> {
    let tls_error = match err {
        ureq::Error::Rustls(tls_error) => Some(tls_error),
        ureq::Error::Io(io_error) => io_error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    }?;
    Some(match tls_error {
        rustls::Error::InvalidCertificate(why) => format!(
            "its certificate is not trusted ({why:?}); is the CA that signed it the --ca-file / TLS_CA_FILE?"
        ),
        rustls::Error::InvalidMessage(_) => {
            format!("it does not speak TLS ({tls_error}); is its URL http://?")
        }
        other => format!("TLS failed: {other}"),
    })
}

/// Whether `url` is an `https://` URL.
pub fn is_https(url: &str) -> bool {
    url.starts_with("https://")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{IdentityError, ServerIdentity};

    #[test]
    fn an_identity_without_a_certificate_blames_the_certificate() {
        let outcome = ServerIdentity::new(b"not pem".to_vec(), b"not pem".to_vec());
        assert!(matches!(outcome, Err(IdentityError::Certificate(_))));
    }
}
