//! A throwaway single-member etcd server for tests: the `etcd` binary on
//! PATH (Debian's `etcd-server`), a temporary data directory, loopback
//! ports; killed when dropped. Shared by the metadata store's conformance
//! suite and the cli's cluster-on-etcd test (`#[path]`).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct EtcdServer {
    child: Option<Child>,
    client_port: u16,
    peer_port: u16,
    dir: tempfile::TempDir,
    /// Serving TLS with these, client certificates required.
    tls: Option<TestCerts>,
}

/// A throwaway CA, a server certificate for 127.0.0.1 and a client
/// certificate, made with the `openssl` command (EC P-256, valid a day).
const EC: [&str; 5] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap_or_else(|e| panic!("cannot run `openssl` ({e}): the TLS test needs it (Debian: apt-get install openssl)"));
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

pub struct TestCerts {
    dir: tempfile::TempDir,
}

impl TestCerts {
    pub fn new() -> TestCerts {
        let dir = tempfile::tempdir().expect("temporary directory");
        openssl(dir.path(), &[&["req", "-x509"][..], &EC, &["-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=evenkeel test CA"]].concat());
        std::fs::write(dir.path().join("server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n").unwrap();
        std::fs::write(dir.path().join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        let certs = TestCerts { dir };
        certs.issue("server", "server");
        certs.issue("client", "client");
        certs
    }

    /// A certificate `{name}.crt` (subject `CN={name}`) and its key
    /// `{name}.key` from the same CA, for what `{like}` is for (server or
    /// client): a renewal.
    pub fn issue(&self, name: &str, like: &str) {
        let (key, csr, crt, ext) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"), format!("{like}.ext"));
        openssl(self.dir.path(), &[&["req"][..], &EC, &["-keyout", &key, "-out", &csr, "-subj", &format!("/CN={name}")]].concat());
        openssl(self.dir.path(), &["x509", "-req", "-in", &csr, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", &crt, "-days", "1", "-extfile", &ext]);
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind a loopback port").local_addr().expect("local address").port()
}

impl EtcdServer {
    /// Starts etcd and waits until it reports itself healthy. Ports are
    /// picked free and may be taken by another test before etcd binds
    /// them: then etcd exits, and it starts again on other ports.
    pub fn start() -> EtcdServer {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut server = EtcdServer { child: None, client_port: free_port(), peer_port: free_port(), dir, tls: None };
        for _ in 0..5 {
            if server.spawn() {
                return server;
            }
            (server.client_port, server.peer_port) = (free_port(), free_port());
        }
        panic!("etcd exited at start five times (ports taken?)");
    }

    /// Starts etcd serving TLS to clients with `certs`, and requiring a
    /// client certificate signed by its CA.
    pub fn start_tls(certs: TestCerts) -> EtcdServer {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut server = EtcdServer { child: None, client_port: free_port(), peer_port: free_port(), dir, tls: Some(certs) };
        for _ in 0..5 {
            if server.spawn() {
                return server;
            }
            (server.client_port, server.peer_port) = (free_port(), free_port());
        }
        panic!("etcd exited at start five times (ports taken?)");
    }

    pub fn certs(&self) -> &TestCerts {
        self.tls.as_ref().expect("a TLS server")
    }

    /// Starts it again on its data directory and ports (after [`Self::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        for _ in 0..50 {
            if self.spawn() {
                return;
            }
            // The old process's ports may linger a moment.
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("etcd did not restart on its ports");
    }

    /// Spawns etcd; true once it is healthy, false if it exited.
    fn spawn(&mut self) -> bool {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut etcd = Command::new("etcd");
        if let Some(certs) = &self.tls {
            etcd.arg(format!("--cert-file={}", certs.path("server.crt").display()))
                .arg(format!("--key-file={}", certs.path("server.key").display()))
                .arg(format!("--trusted-ca-file={}", certs.path("ca.crt").display()))
                .arg("--client-cert-auth");
        }
        let child = etcd
            .arg("--name=test")
            .arg(format!("--data-dir={}", self.dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=test={peer}"))
            .arg("--log-level=error")
            .arg("--logger=zap")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `etcd` ({e}): the etcd feature's tests need the etcd binary on PATH (Debian: apt-get install etcd-server)"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.healthy() {
            if self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()).is_some() {
                self.child = None;
                return false;
            }
            assert!(Instant::now() < deadline, "etcd was not healthy on {} within 30 s", self.client_port);
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// etcd's own `/health` answer on the client port: this etcd, serving.
    /// (With TLS: its port accepting, the child alive; a client retries.)
    fn healthy(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.client_port)) else { return false };
        if self.tls.is_some() {
            std::thread::sleep(Duration::from_millis(200));
            return true;
        }
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        if stream.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
            return false;
        }
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.contains(r#""health":"true""#)
    }

    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    pub fn options(&self) -> evenkeel_meta::EtcdOptions {
        evenkeel_meta::EtcdOptions::new(vec![self.endpoint()])
    }

    /// Kills the server now (as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}
