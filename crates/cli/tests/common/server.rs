//! The real binary as a child process: `evenkeel up` on fresh loopback
//! ports, stopped by a signal of the test's choosing.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use redis::aio::MultiplexedConnection;
use std::fs::File;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running `evenkeel up`; killed on drop so a failing test leaves no
/// process behind. Its output goes to a log file shown when a test fails.
pub struct Server {
    pub child: Child,
    pub log: PathBuf,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    launch: Launch,
}

/// What a start was asked for, kept to start again on fresh ports.
#[derive(Clone)]
struct Launch {
    data_dir: PathBuf,
    log_dir: PathBuf,
    run: usize,
    extra: Vec<String>,
    /// Starts that lost their ports (see [`Server::wait_ready`]).
    port_retries: usize,
}

/// How often a start that lost its ports to another socket is tried again.
const PORT_RETRIES: usize = 5;

impl Server {
    /// Starts `evenkeel up --nodes 3` on `data_dir` with `extra` arguments
    /// (for example `--config FILE`); `run` names its log file.
    pub fn start(data_dir: &Path, log_dir: &Path, run: usize, extra: &[&str]) -> Server {
        let launch = Launch {
            data_dir: data_dir.to_path_buf(),
            log_dir: log_dir.to_path_buf(),
            run,
            extra: extra.iter().map(|a| a.to_string()).collect(),
            port_retries: 0,
        };
        Server::spawn(launch)
    }

    fn spawn(launch: Launch) -> Server {
        let (addr, admin) = (free_addr(), free_addr());
        let log = match launch.port_retries {
            0 => launch.log_dir.join(format!("run-{}.log", launch.run)),
            n => launch.log_dir.join(format!("run-{}-port-retry-{n}.log", launch.run)),
        };
        let out = File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_evenkeel"))
            .args(["up", "--nodes", "3", "--data-dir"])
            .arg(&launch.data_dir)
            .args(["--listen", &addr.to_string(), "--admin", &admin.to_string()])
            .args(&launch.extra)
            .env("RUST_LOG", "info,h2=warn,tower=warn,hyper=warn,fjall=warn,lsm_tree=warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("the evenkeel binary starts");
        Server { child, log, addr, admin, launch }
    }

    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Polls PING until the router answers, failing early if the process died.
    ///
    /// The ports were free when [`free_addr`] looked, but another socket
    /// (any process's outgoing connection draws from the same range) may
    /// take one before the child binds it. A child that exits for that
    /// alone is started again on fresh ports, at most [`PORT_RETRIES`]
    /// times; `addr` and `admin` then name the new ports.
    pub async fn wait_ready(&mut self) -> MultiplexedConnection {
        let deadline = Instant::now() + Duration::from_secs(30);
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(10));
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let tail = self.log_tail();
                if tail.contains("Address already in use") && self.launch.port_retries < PORT_RETRIES {
                    eprintln!("evenkeel lost a port before binding it; starting again on fresh ports:\n{tail}");
                    let launch = Launch { port_retries: self.launch.port_retries + 1, ..self.launch.clone() };
                    *self = Server::spawn(launch);
                    continue;
                }
                panic!("evenkeel exited with {status} while starting:\n{tail}");
            }
            let client = redis::Client::open(format!("redis://{}/", self.addr)).unwrap();
            if let Ok(mut con) = client.get_multiplexed_async_connection_with_config(&config).await {
                let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut con).await;
                if pong.as_deref() == Ok("PONG") {
                    return con;
                }
            }
            assert!(Instant::now() < deadline, "evenkeel did not answer PING within 30 s:\n{}", self.log_tail());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends `signal` and waits (bounded) for the process to exit.
    pub async fn stop(&mut self, signal: Signal, within: Duration) -> ExitStatus {
        kill(self.pid(), signal).expect("signal delivered");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "evenkeel did not exit within {within:?} of {signal}:\n{}", self.log_tail());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = kill(self.pid(), Signal::SIGKILL);
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- evenkeel log ({}) ---\n{}", self.log.display(), self.log_tail());
        }
    }
}

/// A loopback address nobody listens on right now.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}
