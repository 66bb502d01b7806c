//! TLS on the RESP endpoint, as Redis 6's `tls-port` offers it: the
//! router's certificate and key (PEM), and optionally a CA whose
//! certificates clients must present (Redis's `tls-auth-clients yes` with
//! `tls-ca-cert-file`).
//!
//! Read when the process starts; a file that cannot be read or parsed, a
//! key that does not match the certificate, or a CA file without a
//! certificate stops the start with the file named. The certificate and
//! key are then followed ([`ReloadingCert`]): a renewal is served without
//! a restart. rustls on ring; TLS 1.2 and 1.3 (rustls's safe defaults).

use anyhow::{Context, bail};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use evenkeel_bench::tls::provider;
use evenkeel_coord::followed::{Followed, RELOAD_CHECK_EVERY};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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
    /// with. Its certificate and key are reloaded when their files change
    /// ([`ReloadingCert`]); the client CA is read once.
    pub fn server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(provider());
        let certified = ReloadingCert::new(self.cert.clone(), self.key.clone(), provider.clone())?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().context("TLS protocol versions")?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
                let roots = roots(ca, &pem).context("tls_client_ca")?;
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().with_context(|| format!("tls_client_ca {}", ca.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(builder.with_cert_resolver(Arc::new(certified))))
    }
}

/// A certificate and key that follow their files
/// ([`evenkeel_coord::followed`]): a renewed certificate (a new one from the
/// CA, a rotated key) is served without a restart and without closing a
/// connection. At most every 10 s a handshake reads both files; a changed
/// pair is checked again (the key must belong to the certificate) before
/// new handshakes use it, and one that does not load is logged and the
/// pair in use kept, so a renewal written in two steps (certificate, then
/// key) is taken once both are there. Counted in
/// `evenkeel_tls_certificate_reloads_total{outcome}`.
#[derive(Debug)]
pub struct ReloadingCert(Followed<rustls::sign::CertifiedKey>);

impl ReloadingCert {
    /// Reads the pair now; an error names the file.
    pub fn new(cert: PathBuf, key: PathBuf, provider: Arc<rustls::crypto::CryptoProvider>) -> anyhow::Result<ReloadingCert> {
        let (shown_cert, shown_key) = (cert.clone(), key.clone());
        let parse = move |contents: &[Vec<u8>]| load_pair(&shown_cert, &contents[0], &shown_key, &contents[1], &provider).map_err(|e| format!("{e:#}"));
        Ok(ReloadingCert(Followed::new("the TLS certificate and key", "evenkeel_tls_certificate_reloads_total", vec![cert, key], parse).map_err(anyhow::Error::msg)?))
    }

    /// The pair to serve, reloaded first if the files changed and the last
    /// look is at least `every` old.
    pub fn current(&self, every: Duration) -> Arc<rustls::sign::CertifiedKey> {
        self.0.current(every)
    }
}

impl rustls::server::ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.current(RELOAD_CHECK_EVERY))
    }
}

/// A certificate chain and its key (the contents of the files named),
/// parsed and checked to belong together.
fn load_pair(cert: &Path, cert_pem: &[u8], key: &Path, key_pem: &[u8], provider: &rustls::crypto::CryptoProvider) -> anyhow::Result<rustls::sign::CertifiedKey> {
    let chain = parse_certificates(cert, cert_pem)?;
    let key_der = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| anyhow::anyhow!("{e}")).with_context(|| format!("tls_key {}: no private key read (PEM, PKCS#8, PKCS#1 or SEC1)", key.display()))?;
    rustls::sign::CertifiedKey::from_der(chain, key_der, provider).with_context(|| format!("tls_cert {} with tls_key {} (does the key belong to the certificate?)", cert.display(), key.display()))
}

/// Mutual TLS on the cluster's internal gRPC (`--internal-tls-ca`,
/// `--internal-tls-cert`, `--internal-tls-key`, `--internal-tls-name`).
#[derive(Debug, Clone, PartialEq)]
pub struct InternalTls {
    /// This process's certificate and key; `client_ca` is the cluster's CA.
    pub files: TlsFiles,
    /// The name every process's certificate carries (a DNS subject
    /// alternative name), checked instead of the address a node registered.
    pub name: String,
    /// What the files hold, as the gRPC layer takes it.
    pub tls: evenkeel_rpc::ClusterTls,
}

/// [`InternalTls::name`] unless configured otherwise.
pub const DEFAULT_INTERNAL_TLS_NAME: &str = "evenkeel";

impl InternalTls {
    /// Reads `files` once and checks them (the key belongs to the
    /// certificate, the CA file holds CA certificates); an error names the
    /// file.
    pub fn load(files: TlsFiles, name: String) -> anyhow::Result<InternalTls> {
        let ca = files.client_ca.as_ref().context("--internal-tls-ca is required")?;
        let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
        let tls = evenkeel_rpc::ClusterTls { ca_pem: read(ca)?, cert_pem: read(&files.cert)?, key_pem: read(&files.key)?, server_name: name.clone() };
        load_pair(&files.cert, &tls.cert_pem, &files.key, &tls.key_pem, &provider()).context("--internal-tls-cert, --internal-tls-key")?;
        roots(ca, &tls.ca_pem).context("--internal-tls-ca")?;
        Ok(InternalTls { files, name, tls })
    }
}

/// The CA certificates of `pem`, the contents of `path` (at least one).
fn roots(path: &Path, pem: &[u8]) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in parse_certificates(path, pem)? {
        roots.add(cert).with_context(|| format!("{}: a certificate that is no CA certificate", path.display()))?;
    }
    Ok(roots)
}

/// The certificates of `pem`, the contents of `path` (at least one).
fn parse_certificates(path: &Path, pem: &[u8]) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|e| anyhow::anyhow!("{e}")).with_context(|| format!("{}: not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        bail!("{}: no certificate in it (PEM, -----BEGIN CERTIFICATE-----)", path.display());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate and key made by the `openssl` command.
    fn pair(dir: &Path, name: &str) -> (Vec<u8>, Vec<u8>) {
        let (cert, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        let out = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", &format!("/CN={name}")])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("the openssl command runs (Debian: apt-get install openssl)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (std::fs::read(cert).unwrap(), std::fs::read(key).unwrap())
    }

    /// The server's certificate and key files, holding `cert` and `key`.
    fn served_files(dir: &Path, cert: &[u8], key: &[u8]) -> (PathBuf, PathBuf) {
        let files = (dir.join("server.crt"), dir.join("server.key"));
        std::fs::write(&files.0, cert).unwrap();
        std::fs::write(&files.1, key).unwrap();
        files
    }

    fn der(pem: &[u8]) -> Vec<u8> {
        CertificateDer::pem_slice_iter(pem).next().unwrap().unwrap().to_vec()
    }

    #[test]
    fn a_renewed_certificate_is_served_once_both_files_hold_it_and_a_broken_one_never() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (pair(dir.path(), "a"), pair(dir.path(), "b"));
        let (cert, key) = served_files(dir.path(), &a.0, &a.1);
        let r = ReloadingCert::new(cert.clone(), key.clone(), Arc::new(provider())).unwrap();
        let served = |every| r.current(every).cert[0].to_vec();
        assert_eq!(served(Duration::ZERO), der(&a.0));
        // Half a renewal: B's certificate with A's key does not load.
        std::fs::write(&cert, &b.0).unwrap();
        assert_eq!(served(Duration::ZERO), der(&a.0));
        // Not looked at again before `every` has passed.
        std::fs::write(&key, &b.1).unwrap();
        assert_eq!(served(Duration::from_secs(3600)), der(&a.0));
        assert_eq!(served(Duration::ZERO), der(&b.0));
        // A file that is not PEM: the pair in use stays.
        std::fs::write(&cert, b"not a certificate").unwrap();
        assert_eq!(served(Duration::ZERO), der(&b.0));
        std::fs::write(&cert, &a.0).unwrap();
        std::fs::write(&key, &a.1).unwrap();
        assert_eq!(served(Duration::ZERO), der(&a.0));
    }

    #[test]
    fn a_bad_pair_stops_the_start_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (pair(dir.path(), "a"), pair(dir.path(), "b"));
        let (cert, key) = served_files(dir.path(), &a.0, &b.1);
        let files = TlsFiles { cert: cert.clone(), key: key.clone(), client_ca: None };
        let e = format!("{:#}", files.server_config().unwrap_err());
        assert!(e.contains("does the key belong to the certificate"), "{e}");
        let files = TlsFiles { cert: key.clone(), key, client_ca: None };
        let e = format!("{:#}", files.server_config().unwrap_err());
        assert!(e.contains("no certificate in it"), "{e}");
    }
}
