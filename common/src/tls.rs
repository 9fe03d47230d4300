//! TLS, with rustls and its ring provider (no OpenSSL): the identity a
//! server presents (`ServerIdentity`, served by tiny_http's rustls support,
//! patched to the rustls ureq uses, so a binary holds one TLS stack) and
//! the roots a caller verifies its peers against (`ClientTls`, handed to
//! ureq's `RustlsConnector`, which `transport::agent` chains after the TCP
//! transport). An `http://` URL goes through the same agent untouched.
//!
//! All of it is the `tls` Cargo feature (on by default; it is about 1.5 MB
//! of each binary). Built without it, the same names exist and every TLS
//! setting is refused at start-up with `NO_TLS`.

use std::fmt;
use std::path::Path;
#[cfg(feature = "tls")]
use std::sync::Arc;

use ureq::config::ConfigBuilder;
#[cfg(feature = "tls")]
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};
use ureq::typestate::AgentScope;

/// Whether this build speaks TLS (the `tls` feature).
pub const BUILT_WITH_TLS: bool = cfg!(feature = "tls");

/// What a TLS setting or an `https://` URL gets in a build without TLS.
pub const NO_TLS: &str =
    "this build has no TLS (it was built without the `tls` feature; the default build has it)";

#[cfg(feature = "tls")]
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
        #[cfg(not(feature = "tls"))]
        {
            drop((certificate_pem, key_pem));
            Err(IdentityError::Certificate(NO_TLS.to_owned()))
        }
        #[cfg(feature = "tls")]
        {
            check_identity(&certificate_pem, &key_pem)?;
            Ok(ServerIdentity {
                certificate_pem,
                key_pem,
            })
        }
    }

    pub fn for_tiny_http(&self) -> tiny_http::SslConfig {
        tiny_http::SslConfig {
            certificate: self.certificate_pem.clone(),
            private_key: self.key_pem.clone(),
        }
    }
}

/// Builds the rustls configuration tiny_http will build from the same PEM,
/// so that whatever it would refuse is refused at start-up, by flag.
#[cfg(feature = "tls")]
fn check_identity(certificate_pem: &[u8], key_pem: &[u8]) -> Result<(), IdentityError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let chain = CertificateDer::pem_slice_iter(certificate_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| IdentityError::Certificate(format!("does not parse as PEM: {err}")))?;
    if chain.is_empty() {
        return Err(IdentityError::Certificate(
            "holds no PEM certificate".to_owned(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|err| {
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
    Ok(())
}

/// The one crypto provider of both sides: ring, as tiny_http's.
#[cfg(feature = "tls")]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The roots a caller trusts for `https://` peers: a CA file's
/// certificates, or the system's. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ClientTls {
    #[cfg(feature = "tls")]
    config: TlsConfig,
    /// Where the roots came from, for start-up lines and errors.
    pub source: String,
}

impl ClientTls {
    /// Trusts exactly the certificates of the PEM file `path`.
    pub fn from_ca_file(path: &Path) -> Result<ClientTls, String> {
        #[cfg(not(feature = "tls"))]
        return Err(format!("{}: {NO_TLS}", path.display()));
        #[cfg(feature = "tls")]
        {
            let pem = read_pem_file(path)?;
            let roots =
                certificates_in(&pem).map_err(|err| format!("{}: {err}", path.display()))?;
            if roots.is_empty() {
                return Err(format!("{}: holds no PEM certificate", path.display()));
            }
            Ok(ClientTls::trusting(roots, format!("{}", path.display())))
        }
    }

    /// Trusts the system's roots (the first bundle of `SYSTEM_CA_BUNDLES`
    /// there is), or nothing if there is none: every `https://` call then
    /// fails its verification, and the error says to give a CA file.
    pub fn system() -> ClientTls {
        #[cfg(feature = "tls")]
        for bundle in SYSTEM_CA_BUNDLES {
            let path = Path::new(bundle);
            if let Ok(pem) = read_pem_file(path)
                && let Ok(roots) = certificates_in(&pem)
                && !roots.is_empty()
            {
                return ClientTls::trusting(roots, (*bundle).to_owned());
            }
        }
        ClientTls::nothing("no CA (no system bundle found)")
    }

    /// Trusts nothing: for a caller that makes no `https://` call.
    pub fn none() -> ClientTls {
        ClientTls::nothing("no CA")
    }

    /// Verifies nothing: only for `--health-check`, which asks its own
    /// process for `GET /health` and sends nothing secret.
    pub fn unverified() -> ClientTls {
        ClientTls {
            #[cfg(feature = "tls")]
            config: builder().disable_verification(true).build(),
            source: "none (unverified)".to_owned(),
        }
    }

    fn nothing(source: &str) -> ClientTls {
        #[cfg(feature = "tls")]
        return ClientTls::trusting(Vec::new(), source.to_owned());
        #[cfg(not(feature = "tls"))]
        ClientTls {
            source: source.to_owned(),
        }
    }

    #[cfg(feature = "tls")]
    fn trusting(roots: Vec<Certificate<'static>>, source: String) -> ClientTls {
        let config = builder()
            .root_certs(RootCerts::Specific(Arc::new(roots)))
            .build();
        ClientTls { config, source }
    }

    /// `builder` with these roots for its `https://` calls (without TLS,
    /// `builder` as it is: such calls fail, see `failure`).
    pub fn configure(&self, builder: ConfigBuilder<AgentScope>) -> ConfigBuilder<AgentScope> {
        #[cfg(feature = "tls")]
        return builder.tls_config(self.config.clone());
        #[cfg(not(feature = "tls"))]
        builder
    }
}

#[cfg(feature = "tls")]
fn builder() -> ureq::tls::TlsConfigBuilder {
    TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(provider())
}

#[cfg(feature = "tls")]
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
#[cfg(feature = "tls")]
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
    if matches!(err, ureq::Error::TlsRequired) {
        return Some(format!("an https:// URL, but {NO_TLS}"));
    }
    #[cfg(not(feature = "tls"))]
    return None;
    #[cfg(feature = "tls")]
    {
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
}

/// Whether `url` is an `https://` URL.
pub fn is_https(url: &str) -> bool {
    url.starts_with("https://")
}

#[cfg(all(test, feature = "tls"))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{IdentityError, ServerIdentity};

    #[test]
    fn an_identity_without_a_certificate_blames_the_certificate() {
        let outcome = ServerIdentity::new(b"not pem".to_vec(), b"not pem".to_vec());
        assert!(matches!(outcome, Err(IdentityError::Certificate(_))));
    }
}
