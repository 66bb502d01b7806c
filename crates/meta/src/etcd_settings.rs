//! How to reach etcd, log in and use TLS: plain data, in every build (the
//! `evenkeel` binary takes them from flags whether or not it was built with
//! the `etcd` feature, whose `EtcdStore::connect` uses them).

use std::time::Duration;

/// An etcd user; `Debug` leaves the password out.
#[derive(Clone, PartialEq, Eq)]
pub struct EtcdUser {
    pub name: String,
    pub password: String,
}

impl std::fmt::Debug for EtcdUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdUser").field("name", &self.name).field("password", &"<hidden>").finish()
    }
}

/// PEM files for TLS to etcd: the CA that signed etcd's certificate, and
/// this client's certificate and key when etcd asks for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTls {
    pub ca: std::path::PathBuf,
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
}

/// How to reach etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdOptions {
    /// Client URLs of the etcd members, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Longest wait for the first connection.
    pub connect_timeout: Duration,
    /// Longest wait for one unary request's answer.
    pub request_timeout: Duration,
    /// Events a watcher may have queued before it is dropped with `WatchLagged`.
    pub watch_buffer: usize,
    /// Prefix of every key this store writes in etcd (empty: none). The
    /// cluster's keys start with `/evenkeel/`; a namespace such as
    /// `/team-a` keeps two clusters on one etcd apart (`/team-a/evenkeel/...`).
    /// Two clusters' namespaces must not be prefixes of one another
    /// (`/a` and `/ab`): a read of every key of one would see the other's.
    pub namespace: String,
    /// For an etcd with authentication on; the client renews its token
    /// when etcd expires it.
    pub user: Option<EtcdUser>,
    /// For an etcd that serves TLS (`https://` endpoints).
    pub tls: Option<EtcdTls>,
}

impl EtcdOptions {
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdOptions {
            endpoints,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            watch_buffer: 1024,
            namespace: String::new(),
            user: None,
            tls: None,
        }
    }
}
