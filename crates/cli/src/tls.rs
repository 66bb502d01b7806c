//! TLS on the RESP endpoint, as Redis 6's `tls-port` offers it: the
//! router's certificate and key (PEM), and optionally a CA whose
//! certificates clients must present (Redis's `tls-auth-clients yes` with
//! `tls-ca-cert-file`).
//!
//! Read once when the process starts; a file that cannot be read or parsed,
//! a key that does not match the certificate, or a CA file without a
//! certificate stops the start with the file named. rustls on ring; TLS
//! 1.2 and 1.3 (rustls's safe defaults).

use anyhow::{Context, bail};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the RESP endpoint's TLS material is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, the router's own first.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Clients must present a certificate this CA signed.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// The server configuration the router handshakes with.
    pub fn server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let chain = certificates(&self.cert)?;
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| anyhow::anyhow!("{e}")).with_context(|| format!("tls_key {}: no private key read (PEM, PKCS#8, PKCS#1 or SEC1)", self.key.display()))?;
        // rustls 0.23.48 deprecates ring's provider for lacking
        // post-quantum key exchange (aws-lc-rs has it, at the cost of a
        // C library built with every build); ring's suites and groups are
        // what Redis's OpenSSL builds offer clients today.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().context("TLS protocol versions")?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in certificates(ca)? {
                    roots.add(cert).with_context(|| format!("tls_client_ca {}: a certificate that is no CA certificate", ca.display()))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().with_context(|| format!("tls_client_ca {}", ca.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder.with_single_cert(chain, key).with_context(|| format!("tls_cert {} with tls_key {} (does the key belong to the certificate?)", self.cert.display(), self.key.display()))?;
        Ok(Arc::new(config))
    }
}

/// Mutual TLS on the cluster's internal gRPC (`--internal-tls-ca`,
/// `--internal-tls-cert`, `--internal-tls-key`, `--internal-tls-name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalTls {
    /// This process's certificate and key; `client_ca` is the cluster's CA.
    pub files: TlsFiles,
    /// The name every process's certificate carries (a DNS subject
    /// alternative name), checked instead of the address a node registered.
    pub name: String,
}

/// [`InternalTls::name`] unless configured otherwise.
pub const DEFAULT_INTERNAL_TLS_NAME: &str = "evenkeel";

impl InternalTls {
    /// The files read and checked (the key matches the certificate, the CA
    /// file holds a CA certificate) as the gRPC layer takes them.
    pub fn load(&self) -> anyhow::Result<evenkeel_rpc::ClusterTls> {
        self.files.server_config().context("--internal-tls-*")?;
        let ca = self.files.client_ca.as_ref().context("--internal-tls-ca is required")?;
        let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
        Ok(evenkeel_rpc::ClusterTls { ca_pem: read(ca)?, cert_pem: read(&self.files.cert)?, key_pem: read(&self.files.key)?, server_name: self.name.clone() })
    }
}

/// The certificates of a PEM file (at least one).
fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let read = CertificateDer::pem_file_iter(path).map_err(|e| anyhow::anyhow!("{e}")).with_context(|| format!("reading {}", path.display()))?;
    let certs = read.collect::<Result<Vec<_>, _>>().map_err(|e| anyhow::anyhow!("{e}")).with_context(|| format!("{}: not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        bail!("{}: no certificate in it (PEM, -----BEGIN CERTIFICATE-----)", path.display());
    }
    Ok(certs)
}
