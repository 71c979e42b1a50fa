//! A real nats-server per test, on a free loopback port, that the test can
//! kill and start again. The binary comes from `NATS_SERVER`, `PATH`, or the
//! copy `scripts/nats-server.sh` caches in `.nats/`. Without one the tests
//! skip loudly, unless `BATCH_SERVING_REQUIRE_NATS=1` makes that a failure.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

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
        let port = free_port();
        let mut args: Vec<String> = vec![
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
        ];
        if let Some(config) = config {
            let file = dir.join("server.conf");
            std::fs::write(&file, config).unwrap();
            args.push("-c".into());
            args.push(file.display().to_string());
        }
        args.extend(flags.iter().map(|flag| flag.to_string()));
        let mut server = NatsServer {
            binary,
            port,
            args,
            child: None,
            _dir: TempDir(dir),
        };
        server.restart();
        Some(server)
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
        self.kill();
        let child = Command::new(&self.binary)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("nats-server did not listen on {}", self.port);
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
