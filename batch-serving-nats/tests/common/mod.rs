//! A real nats-server per test, on a free loopback port, that the test can
//! kill and start again. The binary comes from `NATS_SERVER`, `PATH`, or the
//! copy `scripts/nats-server.sh` caches in `.nats/`. Without one the tests
//! skip loudly, unless `BATCH_SERVING_REQUIRE_NATS=1` makes that a failure.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

mod harness;
#[allow(unused_imports)]
pub use harness::*;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct NatsServer {
    binary: PathBuf,
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
    _dir: TempDir,
}

/// A scratch folder removed on drop (no tempfile crate for one folder).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn find_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return Some(PathBuf::from(path));
    }
    let cached =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.nats/nats-server-2.15.1/nats-server");
    if cached.is_file() {
        return Some(cached);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl NatsServer {
    /// Starts a server, or returns `None` (after saying so) when there is
    /// no binary and the run does not require one.
    pub fn start() -> Option<NatsServer> {
        Self::start_with(&[], None)
    }

    /// Starts a server with extra flags and, optionally, a config file's
    /// text.
    pub fn start_with(flags: &[&str], config: Option<&str>) -> Option<NatsServer> {
        let Some(binary) = find_binary() else {
            if std::env::var("BATCH_SERVING_REQUIRE_NATS").as_deref() == Ok("1") {
                panic!(
                    "BATCH_SERVING_REQUIRE_NATS=1 but no nats-server: run `source scripts/nats-server.sh && nats_server`"
                );
            }
            eprintln!(
                "SKIPPED: no nats-server (set NATS_SERVER, or run `source scripts/nats-server.sh && nats_server`)"
            );
            return None;
        };
        let dir =
            std::env::temp_dir().join(format!("bs-nats-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut args: Vec<String> = vec!["-a".into(), "127.0.0.1".into()];
        if let Some(config) = config {
            let file = dir.join("server.conf");
            std::fs::write(&file, config).unwrap();
            args.push("-c".into());
            args.push(file.display().to_string());
        }
        args.extend(flags.iter().map(|flag| flag.to_string()));
        let mut server = NatsServer {
            binary,
            port: 0,
            args,
            child: None,
            _dir: TempDir(dir),
        };
        // A free port can be taken by another test's server between our
        // probe and the server's bind; that server then exits, and a new
        // port is tried.
        for _ in 0..10 {
            server.port = free_port();
            if server.try_start() {
                return Some(server);
            }
        }
        panic!("nats-server would not start on any of 10 free ports");
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server process at once (SIGKILL: no goodbye to clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, and waits until it takes
    /// connections.
    pub fn restart(&mut self) {
        assert!(
            self.try_start(),
            "nats-server did not start again on {}",
            self.port
        );
    }

    /// Starts the server on `self.port`; false when it exits instead of
    /// listening (the port was taken).
    fn try_start(&mut self) -> bool {
        self.kill();
        let child = Command::new(&self.binary)
            .args(&self.args)
            .args(["-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        for _ in 0..500 {
            if self.exited() {
                return false;
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                // What answered may be another test's server on a port ours
                // failed to bind; ours has exited by now if so.
                std::thread::sleep(Duration::from_millis(50));
                return !self.exited();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("nats-server did not listen on {}", self.port);
    }

    fn exited(&mut self) -> bool {
        let gone = self
            .child
            .as_mut()
            .is_none_or(|child| child.try_wait().ok().flatten().is_some());
        if gone {
            self.child = None;
        }
        gone
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Connects a client that retries quickly, as the tests restart servers.
pub async fn connect(server: &NatsServer) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .reconnect_delay_callback(|attempt| Duration::from_millis(20 * attempt.min(10) as u64))
        .connect(server.url())
        .await
        .unwrap()
}
