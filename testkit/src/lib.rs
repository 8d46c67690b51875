//! Test helpers shared by every crate's integration tests: real `nats-server -js` and
//! `prometheus` processes on free loopback ports with temporary storage, stopped and removed on
//! drop. Tests never use a server that was already running on the machine.
//!
//! Binaries are found on `PATH` (`make test` installs them from Debian's packages), or at
//! `NATS_SERVER_BIN` / `PROMETHEUS_BIN`. [`corpus`] builds realistic events for benchmarks;
//! [`cluster`] runs a 3-node JetStream cluster whose nodes can be killed and restarted;
//! [`sse`] reads Server-Sent Events.

pub mod cluster;
pub mod corpus;
pub mod sse;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A free TCP port on 127.0.0.1 (bound, then released for the child to take).
///
/// Ports come from below the kernel's ephemeral range (`ip_local_port_range`), from a start that
/// differs per process and then in turn, so that a port handed out here is not taken meanwhile
/// by the local end of some outgoing connection (measured: a cluster node's route port, picked
/// with `bind(0)`, was in use by the time the node started while other tests ran) nor handed out
/// twice by one process. Falls back to a kernel-chosen port when no such range exists.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u32, ephemeral_low.min(65_536));
    if high > low + 1_000 {
        let span = high - low;
        let seed = std::process::id().wrapping_mul(2_654_435_761)
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
        let _ = NEXT.compare_exchange(0, seed % span + 1, Ordering::Relaxed, Ordering::Relaxed);
        for _ in 0..span {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let port = (low + n % span) as u16;
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

fn binary(env: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).chain([
        "/usr/sbin".into(),
        "/usr/bin".into(),
        "/usr/local/bin".into(),
    ]) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("{name} not found on PATH (nor {env}): run `make test`, which installs it");
}

fn wait_for_tcp(addr: SocketAddr, child: &mut Child, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let out = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} exited with {status} before listening on {addr}:\n{out}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let out = std::fs::read_to_string(log).unwrap_or_default();
    panic!("{what} did not listen on {addr} within 20 s:\n{out}");
}

fn stop(child: &mut Child) {
    // SIGTERM first so the server flushes; then make sure.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A real `nats-server -js` on a free loopback port with its store in a temporary directory.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
    extra_args: Vec<String>,
}

impl NatsServer {
    /// Starts a JetStream-enabled server.
    pub fn start() -> Self {
        Self::start_with_args(&[])
    }

    /// Starts a server with extra command-line arguments (e.g. `-c FILE`).
    pub fn start_with_args(extra: &[&str]) -> Self {
        Self::start_on(free_port(), extra)
    }

    /// Starts a server listening for clients on `port` (e.g. one of [`free_port`] that a
    /// cluster's other nodes must know in advance), with extra arguments.
    pub fn start_on(port: u16, extra: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("inventory-nats-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        let mut server = Self {
            child: None,
            port,
            dir,
            extra_args: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let bin = binary("NATS_SERVER_BIN", "nats-server");
        let log = self.dir.path().join("nats.log");
        let store = self.dir.path().join("store");
        let mut cmd = Command::new(bin);
        cmd.args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(&store)
            .arg("-l")
            .arg(&log)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start nats-server: {e}"));
        wait_for_tcp(
            SocketAddr::from(([127, 0, 0, 1], self.port)),
            &mut child,
            "nats-server",
            &log,
        );
        self.child = Some(child);
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's temporary directory (store and log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's process id while it runs (benchmarks read its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server (SIGTERM), keeping its store.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child);
        }
    }

    /// Kills the server with SIGKILL (a crash: nothing is flushed), keeping its store.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the server process is running (neither stopped nor killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Restarts the server on the same port with the same store (a broker restart); after
    /// [`NatsServer::stop`] or [`NatsServer::kill`], starts it again.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A real Prometheus on a free loopback port with a temporary TSDB, scraping nothing unless told.
pub struct Prometheus {
    child: Option<Child>,
    port: u16,
    _dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus with the given scrape targets (`host:port`, metrics at `/metrics`).
    pub fn start(scrape_targets: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("inventory-prom-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        let port = free_port();
        let config = dir.path().join("prometheus.yml");
        let targets = scrape_targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let body = format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: test\n    static_configs:\n      - targets: [{targets}]\n"
        );
        std::fs::File::create(&config)
            .and_then(|mut f| f.write_all(body.as_bytes()))
            .unwrap_or_else(|e| panic!("write prometheus.yml: {e}"));
        let log = dir.path().join("prometheus.log");
        let log_file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("log file: {e}"));
        let err_file = log_file
            .try_clone()
            .unwrap_or_else(|e| panic!("log file: {e}"));
        let mut child = Command::new(binary("PROMETHEUS_BIN", "prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start prometheus: {e}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_for_tcp(addr, &mut child, "prometheus", &log);
        // Listening is not ready: wait for /-/ready.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if http_get_status(addr, "/-/ready") == Some(200) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child: Some(child),
            port,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child);
        }
    }
}

/// Minimal blocking HTTP/1.0 GET returning the status code (for readiness probes in helpers).
fn http_get_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = [0u8; 32];
    let n = s.read(&mut buf).ok()?;
    let head = std::str::from_utf8(&buf[..n]).ok()?;
    head.split_whitespace().nth(1)?.parse().ok()
}

/// A real `moto` server (AWS API mock, `moto[server]` from PyPI, installed into `.venv` by
/// `make test`) on a free loopback port, stopped on drop. Every test gets its own, empty one.
///
/// Found as `moto_server` beside `$INVENTORY_TEST_PYTHON`, else in the workspace's
/// `.venv/bin`; when only the interpreter is there, `python -m moto.server` is run.
pub struct Moto {
    child: Option<Child>,
    port: u16,
    _dir: TempDir,
}

impl Moto {
    /// Starts moto with default settings (no IAM authentication: any access key works).
    pub fn start() -> Self {
        Self::start_with_env(&[])
    }

    /// Starts moto with extra environment variables, e.g. `("INITIAL_NO_AUTH_ACTION_COUNT",
    /// "0")` to make it check credentials like AWS does.
    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("inventory-moto-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        let port = free_port();
        let log = dir.path().join("moto.log");
        let log_file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("log file: {e}"));
        let err_file = log_file
            .try_clone()
            .unwrap_or_else(|e| panic!("log file: {e}"));
        let bin_dir = match std::env::var_os("INVENTORY_TEST_PYTHON") {
            Some(python) => Path::new(&python)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin"),
        };
        let script = bin_dir.join("moto_server");
        let mut cmd = if script.is_file() {
            Command::new(script)
        } else {
            let python = bin_dir.join("python3");
            if !python.is_file() {
                panic!(
                    "moto not found in {}: run `make test` (or `.venv/bin/pip install -r tests/interop/requirements.txt`)",
                    bin_dir.display()
                );
            }
            let mut c = Command::new(python);
            c.args(["-m", "moto.server"]);
            c
        };
        cmd.args(["-H", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err_file);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto: {e}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_for_tcp(addr, &mut child, "moto", &log);
        // Listening is not serving: wait until it answers HTTP.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && http_get_status(addr, "/moto-api/").is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child: Some(child),
            port,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:<port>`: the endpoint URL of every AWS service it mocks.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child);
        }
    }
}
