//! How to log in to etcd and reach it over TLS: plain data, in every build
//! (the `evenkeel` binary takes them from flags whether or not it was built
//! with the `etcd` feature, whose `EtcdOptions` uses them).

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
