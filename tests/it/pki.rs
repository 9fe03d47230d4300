//! Certificates made in the test: a CA, and a server certificate it signs
//! for `127.0.0.1` and `localhost`, written as PEM files (the key mode 600,
//! as the servers demand). Nothing is committed, so nothing expires.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// The PEM files of one test CA and one server certificate it signed.
#[derive(Clone)]
pub struct TestPki {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl TestPki {
    /// A CA named `name` and a server certificate it signs, in `dir`.
    pub fn new(dir: &Path, name: &str) -> TestPki {
        fs::create_dir_all(dir).expect("create the PKI folder");
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("Harbour test CA {name}"));
        let ca = ca_params.self_signed(&ca_key).expect("a self-signed CA");

        let server_key = KeyPair::generate().expect("a server key");
        let mut server_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("server params");
        server_params
            .distinguished_name
            .push(DnType::CommonName, "harbour test server");
        let server = server_params
            .signed_by(&server_key, &ca, &ca_key)
            .expect("a server certificate");

        let pki = TestPki {
            ca_file: dir.join(format!("{name}-ca.pem")),
            cert_file: dir.join(format!("{name}-server.pem")),
            key_file: dir.join(format!("{name}-server.key")),
        };
        fs::write(&pki.ca_file, ca.pem()).expect("write the CA");
        fs::write(&pki.cert_file, server.pem()).expect("write the certificate");
        write_private(&pki.key_file, &server_key.serialize_pem());
        pki
    }

    /// The flags that make a server serve HTTPS with this certificate.
    pub fn server_args(&self) -> Vec<String> {
        vec![
            "--tls-cert-file".to_owned(),
            path_text(&self.cert_file),
            "--tls-key-file".to_owned(),
            path_text(&self.key_file),
        ]
    }

    /// The CA file's path, as a flag value.
    pub fn ca_arg(&self) -> String {
        path_text(&self.ca_file)
    }
}

/// Writes a file only its owner may read.
pub fn write_private(path: &Path, text: &str) {
    fs::write(path, text).expect("write a private file");
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod 600");
}

fn path_text(path: &Path) -> String {
    path.to_str().expect("temp paths are UTF-8").to_owned()
}
