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
        let mut server = EtcdServer { child: None, client_port: free_port(), peer_port: free_port(), dir };
        for _ in 0..5 {
            if server.spawn() {
                return server;
            }
            (server.client_port, server.peer_port) = (free_port(), free_port());
        }
        panic!("etcd exited at start five times (ports taken?)");
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
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new("etcd")
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
    fn healthy(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.client_port)) else { return false };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        if stream.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
            return false;
        }
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.contains(r#""health":"true""#)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
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
