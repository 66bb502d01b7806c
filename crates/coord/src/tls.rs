//! The admin API over TLS (`--admin-tls-cert`, `--admin-tls-key`).
//!
//! [`TlsListener`] is an axum listener whose connections arrive with their
//! TLS handshake done ([`evenkeel_rpc::tls::Handshaking`]: each handshake
//! in a task of its own, bounded in number and time, so a client that
//! opens a connection and sends nothing holds up no one else). Failed or
//! late handshakes are counted in
//! `evenkeel_admin_tls_handshake_failures_total{reason}`; a connection
//! past the bound is closed at once (`reason="busy"`).

use axum::serve::Listener;
use evenkeel_rpc::tls::Handshaking;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;

/// Connections of a TCP listener, handshaken with `config`.
pub struct TlsListener(Handshaking);

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<TlsListener> {
        Ok(TlsListener(Handshaking::new(listener, config, "admin API", "evenkeel_admin_tls_handshake_failures_total")?))
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        self.0.accept().await
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.0.local_addr())
    }
}
