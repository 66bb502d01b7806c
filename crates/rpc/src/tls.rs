//! TLS material that follows its files, and mutual TLS on the cluster's
//! internal gRPC.
//!
//! [`ReloadingCert`] is a certificate and key a server serves (the RESP
//! endpoint, the admin API, a node's gRPC) or a client presents (a router
//! or coordinator calling a node); [`ReloadingRoots`] is a CA that checks
//! the other side, both ways. Each follows its files
//! ([`crate::followed`]): a renewed certificate, a rotated key or a
//! changed CA bundle is used by the next handshake, without a restart and
//! without closing a connection. A change that does not load is logged
//! and what was in use kept.
//!
//! [`ClusterTls`] puts them together for the internal gRPC. tonic's own
//! TLS takes a fixed identity, so nodes handshake their callers themselves
//! ([`Handshaking`], handed to tonic as its incoming connections) and
//! callers connect through [`ClusterTls::connector`]; both with rustls
//! configurations whose certificate and verifiers are the followed ones.
//! A CA rotation is then: append the new CA to every process's CA file,
//! move the certificates to ones the new CA signed, remove the old CA.

use crate::followed::{Followed, RELOAD_CHECK_EVERY};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::server::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// rustls on ring, for every TLS piece of the project. rustls 0.23.48
/// deprecates ring's provider for lacking post-quantum key exchange
/// (aws-lc-rs has it, at the cost of a C library built with every build);
/// ring's suites and groups are what Redis's OpenSSL builds offer clients
/// today.
#[allow(deprecated)]
pub fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// A certificate and key that follow their files: a renewed certificate
/// (a new one from the CA, a rotated key) is used without a restart. At
/// most every `every` (10 s unless a test says otherwise) a handshake
/// reads both files; a changed pair is checked again (the key must belong
/// to the certificate) before new handshakes use it, and one that does not
/// load is logged and the pair in use kept, so a renewal written in two
/// steps (certificate, then key) is taken once both are there. Counted in
/// the `reloads` counter given (`outcome`).
#[derive(Debug)]
pub struct ReloadingCert {
    pair: Followed<CertifiedKey>,
    every: Duration,
}

impl ReloadingCert {
    /// Reads the pair now; an error names the file.
    pub fn new(cert: PathBuf, key: PathBuf, provider: Arc<CryptoProvider>, reloads: &'static str) -> Result<ReloadingCert, String> {
        let (shown_cert, shown_key) = (cert.clone(), key.clone());
        let parse = move |contents: &[Vec<u8>]| load_pair(&shown_cert, &contents[0], &shown_key, &contents[1], &provider);
        Ok(ReloadingCert { pair: Followed::new("the TLS certificate and key", reloads, vec![cert, key], parse)?, every: RELOAD_CHECK_EVERY })
    }

    /// Reads the files again at most every `every` instead of 10 s.
    pub fn every(self, every: Duration) -> ReloadingCert {
        ReloadingCert { every, ..self }
    }

    /// The pair to use, reloaded first if the files changed and the last
    /// look is at least `every` old.
    pub fn current(&self, every: Duration) -> Arc<CertifiedKey> {
        self.pair.current(every)
    }
}

impl rustls::server::ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current(self.every))
    }
}

impl rustls::client::ResolvesClientCert for ReloadingCert {
    fn resolve(&self, _root_hint_subjects: &[&[u8]], _sigschemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.current(self.every))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A certificate chain and its key (the contents of the files named),
/// parsed and checked to belong together.
pub fn load_pair(cert: &Path, cert_pem: &[u8], key: &Path, key_pem: &[u8], provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let chain = parse_certificates(cert, cert_pem)?;
    let key_der = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("tls_key {}: no private key read (PEM, PKCS#8, PKCS#1 or SEC1): {e}", key.display()))?;
    CertifiedKey::from_der(chain, key_der, provider).map_err(|e| format!("tls_cert {} with tls_key {} (does the key belong to the certificate?): {e}", cert.display(), key.display()))
}

/// The CA certificates of `pem`, the contents of `path` (at least one).
pub fn roots(path: &Path, pem: &[u8]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in parse_certificates(path, pem)? {
        roots.add(cert).map_err(|e| format!("{}: a certificate that is no CA certificate: {e}", path.display()))?;
    }
    Ok(roots)
}

/// The certificates of `pem`, the contents of `path` (at least one).
pub fn parse_certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|e| format!("{}: not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it (PEM, -----BEGIN CERTIFICATE-----)", path.display()));
    }
    Ok(certs)
}

/// The two checks a CA makes, built from one reading of its file.
#[derive(Debug)]
struct Verifiers {
    /// A server checking its callers' certificates (required).
    clients: Arc<dyn ClientCertVerifier>,
    /// A caller checking a server's certificate (and the name in it).
    servers: Arc<dyn ServerCertVerifier>,
}

/// A CA file followed like [`ReloadingCert`]'s: the verifiers it makes
/// (callers' certificates required, on the server side; the server's
/// certificate and name, on the client side) are rebuilt when it changes.
#[derive(Debug)]
pub struct ReloadingRoots {
    verifiers: Followed<Verifiers>,
    every: Duration,
}

impl ReloadingRoots {
    /// Reads `ca` now; an error names it.
    pub fn new(ca: PathBuf, provider: Arc<CryptoProvider>, reloads: &'static str) -> Result<ReloadingRoots, String> {
        let shown = ca.clone();
        let parse = move |contents: &[Vec<u8>]| {
            let roots = Arc::new(roots(&shown, &contents[0])?);
            let clients = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone()).build().map_err(|e| format!("{}: {e}", shown.display()))?;
            let servers = WebPkiServerVerifier::builder_with_provider(roots, provider.clone()).build().map_err(|e| format!("{}: {e}", shown.display()))?;
            Ok(Verifiers { clients, servers })
        };
        Ok(ReloadingRoots { verifiers: Followed::new("the TLS CA file", reloads, vec![ca], parse)?, every: RELOAD_CHECK_EVERY })
    }

    /// Reads the file again at most every `every` instead of 10 s.
    pub fn every(self, every: Duration) -> ReloadingRoots {
        ReloadingRoots { every, ..self }
    }

    fn current(&self) -> Arc<Verifiers> {
        self.verifiers.current(self.every)
    }

    /// What checks do not reload: the signature schemes (the provider's).
    fn schemes(&self) -> Vec<SignatureScheme> {
        self.verifiers.get().servers.supported_verify_schemes()
    }
}

impl ClientCertVerifier for ReloadingRoots {
    // No hints: each process has one certificate to present.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(&self, end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>], now: UnixTime) -> Result<ClientCertVerified, rustls::Error> {
        self.current().clients.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifiers.get().clients.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifiers.get().clients.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

impl ServerCertVerifier for ReloadingRoots {
    fn verify_server_cert(&self, end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>], server_name: &ServerName<'_>, ocsp_response: &[u8], now: UnixTime) -> Result<ServerCertVerified, rustls::Error> {
        self.current().servers.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifiers.get().servers.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifiers.get().servers.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

/// The counter of the internal TLS files' reloads (`outcome`).
pub const INTERNAL_RELOADS: &str = "evenkeel_internal_tls_reloads_total";

/// Mutual TLS between the processes of a cluster: every node serves its
/// gRPC with the certificate of `cert` and `key` and asks its callers for
/// one the CA of `ca` signed; every caller (router, coordinator) presents
/// the same certificate and checks the node's against the CA under the
/// name `server_name` (node addresses are whatever each node registered,
/// so certificates name the cluster, not the address). The three files
/// are followed (see the module documentation).
#[derive(Clone)]
pub struct ClusterTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub server_name: String,
    name: ServerName<'static>,
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

impl PartialEq for ClusterTls {
    fn eq(&self, other: &Self) -> bool {
        (&self.ca, &self.cert, &self.key, &self.server_name) == (&other.ca, &other.cert, &other.key, &other.server_name)
    }
}

impl std::fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTls").field("ca", &self.ca).field("cert", &self.cert).field("key", &self.key).field("server_name", &self.server_name).finish()
    }
}

impl ClusterTls {
    /// Reads and checks the files now (the key belongs to the certificate,
    /// the CA file holds CA certificates, the name is a DNS name or an IP
    /// address); an error names what failed. Then followed every 10 s.
    pub fn load(ca: PathBuf, cert: PathBuf, key: PathBuf, server_name: String) -> Result<ClusterTls, String> {
        ClusterTls::load_every(ca, cert, key, server_name, RELOAD_CHECK_EVERY)
    }

    /// [`ClusterTls::load`], the files read again at most every `every`.
    pub fn load_every(ca: PathBuf, cert: PathBuf, key: PathBuf, server_name: String, every: Duration) -> Result<ClusterTls, String> {
        let provider = Arc::new(provider());
        let name = ServerName::try_from(server_name.clone()).map_err(|e| format!("--internal-tls-name {server_name:?}: {e}"))?;
        let pair = Arc::new(ReloadingCert::new(cert.clone(), key.clone(), provider.clone(), INTERNAL_RELOADS)?.every(every));
        let roots = Arc::new(ReloadingRoots::new(ca.clone(), provider.clone(), INTERNAL_RELOADS)?.every(every));
        let versions = |e: rustls::Error| format!("TLS protocol versions: {e}");
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().map_err(versions)?.with_client_cert_verifier(roots.clone()).with_cert_resolver(pair.clone());
        let mut client = rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions().map_err(versions)?.dangerous().with_custom_certificate_verifier(roots).with_client_cert_resolver(pair);
        // gRPC is HTTP/2.
        server.alpn_protocols = vec![b"h2".to_vec()];
        client.alpn_protocols = vec![b"h2".to_vec()];
        Ok(ClusterTls { ca, cert, key, server_name, name, server: Arc::new(server), client: Arc::new(client) })
    }

    /// What a node handshakes its callers with.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server.clone()
    }

    /// What a caller handshakes a node with.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        self.client.clone()
    }

    /// A connector for tonic: TCP (no Nagle: a gRPC reply is several small
    /// frames) to the URI's host and port, then the TLS handshake, the
    /// node's certificate checked for [`ClusterTls::server_name`].
    pub fn connector(&self) -> impl tower::Service<http::Uri, Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>, Error = std::io::Error, Future: Send> + Clone + Send + 'static {
        let (connector, name) = (TlsConnector::from(self.client.clone()), self.name.clone());
        tower::service_fn(move |uri: http::Uri| {
            let (connector, name) = (connector.clone(), name.clone());
            async move {
                let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
                let port = uri.port_u16().ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{uri}: no port")))?;
                let tcp = TcpStream::connect((host.as_str(), port)).await?;
                tcp.set_nodelay(true)?;
                Ok(hyper_util::rt::TokioIo::new(connector.connect(name, tcp).await?))
            }
        })
    }
}

/// How long a caller has to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once.
pub const HANDSHAKES_MAX: usize = 256;

/// The connections of a TCP listener, arriving with their TLS handshake
/// done. A task accepts connections (TCP_NODELAY set) and handshakes each
/// in a task of its own (at most [`HANDSHAKES_MAX`] at once, each bounded
/// by [`HANDSHAKE_TIMEOUT`]), so a caller that connects and sends nothing
/// holds up no one. Failed handshakes are counted in the counter given
/// (`reason`: refused, timeout, or busy for a connection past the bound,
/// closed at once). A stream of connections for tonic
/// (`serve_with_incoming`); the admin API's listener wraps it too.
pub struct Handshaking {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Handshaking {
    /// `what` names the endpoint in logs ("admin API").
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>, what: &'static str, failures: &'static str) -> std::io::Result<Handshaking> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        let failed = move |reason: &'static str| metrics::counter!(failures, "reason" => reason).increment(1);
        let accepting = tokio::spawn(async move {
            let handshakes = Arc::new(Semaphore::new(HANDSHAKES_MAX));
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and similar: back off.
                        tracing::warn!(error = %e, "{what}: accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                    failed("busy");
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "{what}: TLS handshake failed");
                            failed("refused");
                        }
                        Err(_) => failed("timeout"),
                    }
                });
            }
        });
        Ok(Handshaking { local, ready, accepting })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The next handshaken connection and its peer; never ends while the
    /// listener lives.
    pub async fn accept(&mut self) -> (TlsStream<TcpStream>, SocketAddr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task ended (it only ends when aborted, with
            // this): nothing more will come.
            None => std::future::pending().await,
        }
    }
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl tokio_stream::Stream for Handshaking {
    type Item = std::io::Result<TlsStream<TcpStream>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.ready.poll_recv(cx).map(|c| c.map(|(tls, _)| Ok(tls)))
    }
}

#[cfg(test)]
mod tests;
