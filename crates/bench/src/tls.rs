//! TLS for the tools that connect to a `rediss://` endpoint (import and
//! export), and the crypto provider every TLS piece of the project uses.

use crate::config::Target;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// The crypto provider every TLS piece of the project uses (rustls on ring).
pub use evenkeel_rpc::tls::provider;

/// A TLS session over `tcp` with `target`, whose certificate must chain to
/// the CA of `target.tls_ca` and name its host; presenting
/// `target.client_cert` when the server asks for one.
pub async fn connect(tcp: TcpStream, target: &Target) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let ca = target.tls_ca.as_ref().ok_or_else(|| format!("{}: a rediss:// endpoint needs --tls-ca FILE, the PEM file of the CA that signed its certificate", target.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca).map_err(|e| format!("--tls-ca {}: {e}", ca.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("--tls-ca {}: {e}", ca.display()))?;
        roots.add(cert).map_err(|e| format!("--tls-ca {}: {e}", ca.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("--tls-ca {}: no certificate in it (PEM)", ca.display()));
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(provider())).with_safe_default_protocol_versions().map_err(|e| e.to_string())?.with_root_certificates(roots);
    let config = match &target.client_cert {
        None => builder.with_no_client_auth(),
        Some(c) => {
            let chain = CertificateDer::pem_file_iter(&c.cert).and_then(|certs| certs.collect::<Result<Vec<_>, _>>()).map_err(|e| format!("--tls-cert {}: {e}", c.cert.display()))?;
            if chain.is_empty() {
                return Err(format!("--tls-cert {}: no certificate in it (PEM)", c.cert.display()));
            }
            let key = PrivateKeyDer::from_pem_file(&c.key).map_err(|e| format!("--tls-key {}: {e}", c.key.display()))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("--tls-cert {} with --tls-key {}: {e}", c.cert.display(), c.key.display()))?
        }
    };
    let name = ServerName::try_from(target.host.clone()).map_err(|e| format!("{}: {e}", target.display()))?;
    tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(|e| format!("TLS with {}: {e}", target.display()))
}
