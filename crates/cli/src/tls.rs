//! TLS on the RESP endpoint, as Redis 6's `tls-port` offers it: the
//! router's certificate and key (PEM), and optionally a CA whose
//! certificates clients must present (Redis's `tls-auth-clients yes` with
//! `tls-ca-cert-file`).
//!
//! Read when the process starts; a file that cannot be read or parsed, a
//! key that does not match the certificate, or a CA file without a
//! certificate stops the start with the file named. The certificate and
//! key, and the client CA, are then followed
//! ([`evenkeel_rpc::tls::ReloadingCert`], `ReloadingRoots`): a renewal is
//! served without a restart. rustls on ring; TLS 1.2 and 1.3 (rustls's safe defaults).

use anyhow::Context;
use evenkeel_rpc::tls::{ReloadingCert, ReloadingRoots, provider};
use std::path::PathBuf;
use std::sync::Arc;

/// The counter of the RESP endpoint's and the admin API's TLS file reloads.
const RELOADS: &str = "evenkeel_tls_certificate_reloads_total";

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
    /// The server configuration the router (or the admin API) handshakes
    /// with. Its certificate and key, and the client CA, are reloaded when
    /// their files change ([`ReloadingCert`], [`ReloadingRoots`]).
    pub fn server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(provider());
        let certified = ReloadingCert::new(self.cert.clone(), self.key.clone(), provider.clone(), RELOADS).map_err(anyhow::Error::msg)?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().context("TLS protocol versions")?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let roots = ReloadingRoots::new(ca.clone(), provider, RELOADS).map_err(anyhow::Error::msg).context("tls_client_ca")?;
                builder.with_client_cert_verifier(Arc::new(roots))
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(builder.with_cert_resolver(Arc::new(certified))))
    }
}

/// The name every process's internal certificate carries (a DNS subject
/// alternative name) unless `--internal-tls-name` says otherwise.
pub const DEFAULT_INTERNAL_TLS_NAME: &str = "evenkeel";

/// Mutual TLS on the cluster's internal gRPC (`--internal-tls-ca`,
/// `--internal-tls-cert`, `--internal-tls-key`, `--internal-tls-name`):
/// the files read and checked now (the key belongs to the certificate, the
/// CA file holds CA certificates), an error naming the file; the gRPC
/// layer follows them from then on.
pub fn load_internal(ca: PathBuf, cert: PathBuf, key: PathBuf, name: String) -> anyhow::Result<evenkeel_rpc::ClusterTls> {
    evenkeel_rpc::ClusterTls::load(ca, cert, key, name).map_err(anyhow::Error::msg).context("--internal-tls-ca, --internal-tls-cert, --internal-tls-key")
}
