//! Starts (or finds) ministack, the Python AWS emulator the tests use as
//! Route 53, and stops it again.
//!
//! When `MINISTACK_ENDPOINT` is set, a test script has already started a
//! shared emulator and `Ministack` only hands out its address; each test then
//! keeps to hosted zones it created itself. Otherwise every `Ministack` runs
//! its own emulator from the virtualenv that `scripts/ministack-venv` builds,
//! in a process group of its own, and ends that group when dropped.
//!
//! Known gap: a test process killed outright (SIGKILL) never runs `Drop`, so
//! its emulator outlives it. `scripts/ministack stop` cannot find such a
//! process either; look for `ministack` in `ps`.

use std::env;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Set by `scripts/ministack start` users to share one running emulator.
pub const MINISTACK_ENDPOINT_VAR: &str = "MINISTACK_ENDPOINT";

/// Where `scripts/ministack-venv` puts the virtualenv, when set.
pub const VENV_VAR: &str = "ROUTE53_AGENT_VENV";

/// ministack answers 200 here once it accepts requests.
const HEALTH_PATH: &str = "/_ministack/health";

/// ministack is usually healthy within a second or two; a loaded CI machine
/// with two cores gets much more slack.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long ministack gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Attempts at starting, each on a fresh port, since the port chosen can be
/// taken by someone else between choosing it and ministack binding it.
const START_ATTEMPTS: u32 = 3;

/// A Route 53 emulator that is ready for requests.
pub struct Ministack {
    endpoint: String,
    /// `None` when the emulator belongs to whoever set `MINISTACK_ENDPOINT`.
    process: Option<EmulatorProcess>,
}

impl Ministack {
    /// Uses the emulator at `MINISTACK_ENDPOINT`, or starts one of its own
    /// on a free loopback port and waits until it is healthy.
    ///
    /// This blocks the calling thread for as long as ministack takes to
    /// start (about a second). Panics with instructions when the virtualenv
    /// is missing, and with the end of ministack's log when it fails.
    pub fn start() -> Ministack {
        if let Some(endpoint) = env::var(MINISTACK_ENDPOINT_VAR)
            .ok()
            .filter(|e| !e.trim().is_empty())
        {
            let endpoint = endpoint.trim().trim_end_matches('/').to_string();
            return Ministack {
                endpoint,
                process: None,
            };
        }

        let program = venv_dir().join("bin").join("ministack");
        assert!(
            program.exists(),
            "ministack is not installed at {}: run scripts/ministack-venv first \
             (or set {MINISTACK_ENDPOINT_VAR} to a running emulator)",
            program.display()
        );

        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match EmulatorProcess::spawn(&program) {
                Ok(process) => {
                    return Ministack {
                        endpoint: format!("http://{}", process.addr),
                        process: Some(process),
                    };
                }
                Err(failure) => failures.push(failure),
            }
        }
        panic!("ministack did not start:\n{}", failures.join("\n\n"));
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// Whether this value started the emulator (and so stops it on drop).
    pub fn is_owned(&self) -> bool {
        self.process.is_some()
    }
}

/// The virtualenv `scripts/ministack-venv` creates.
pub fn venv_dir() -> PathBuf {
    if let Some(dir) = env::var_os(VENV_VAR).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/route53-agent/venv")
}

/// A ministack process this test started, leader of its own process group.
struct EmulatorProcess {
    child: Child,
    addr: SocketAddr,
    log_path: PathBuf,
}

impl EmulatorProcess {
    /// Starts ministack on a free port and waits for it to be healthy. On
    /// failure the process is stopped and the error holds the log's tail.
    fn spawn(program: &PathBuf) -> Result<EmulatorProcess, String> {
        let addr = free_loopback_addr().map_err(|e| format!("finding a free port: {e}"))?;
        let log_path = env::temp_dir().join(format!(
            "route53-agent-ministack-{}-{}.log",
            std::process::id(),
            addr.port()
        ));
        let log = File::create(&log_path)
            .map_err(|e| format!("creating log file {}: {e}", log_path.display()))?;
        let log_for_stderr = log
            .try_clone()
            .map_err(|e| format!("duplicating log file handle: {e}"))?;

        let child = Command::new(program)
            .env("BIND_HOST", addr.ip().to_string())
            .env("GATEWAY_PORT", addr.port().to_string())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_for_stderr)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("running {}: {e}", program.display()))?;
        let mut process = EmulatorProcess {
            child,
            addr,
            log_path,
        };

        match process.wait_until_healthy() {
            Ok(()) => Ok(process),
            Err(reason) => Err(format!(
                "ministack on {addr} {reason}; end of {}:\n{}",
                process.log_path.display(),
                process.log_tail()
            )),
        }
    }

    fn wait_until_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited early ({status})"));
            }
            if is_healthy(self.addr) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("was not healthy after {STARTUP_TIMEOUT:?}"));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log_path) {
            let _ = file.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Sends `signal` to every process in the group this process leads.
    fn signal_group(&self, signal: libc::c_int) {
        let Ok(pgid) = libc::pid_t::try_from(self.child.id()) else {
            return;
        };
        // SAFETY: kill(2) takes plain integers and touches no memory of ours;
        // a negative pid addresses the process group that `process_group(0)`
        // made this child lead.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        self.signal_group(libc::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        // Anything still in the group, the leader included, goes now.
        self.signal_group(libc::SIGKILL);
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log_path);
    }
}

/// A loopback address whose port was free a moment ago.
fn free_loopback_addr() -> std::io::Result<SocketAddr> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()
}

/// One plain HTTP/1.1 request to the health path; true on a 200 answer.
fn is_healthy(addr: SocketAddr) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        write!(
            stream,
            "GET {HEALTH_PATH} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut head = [0u8; 16];
        let read = stream.read(&mut head)?;
        Ok(head[..read].starts_with(b"HTTP/1.1 200"))
    };
    attempt().unwrap_or(false)
}
