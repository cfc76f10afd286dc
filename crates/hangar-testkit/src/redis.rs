//! A real Redis for tests: Debian's `redis-server` on a loopback port, without persistence,
//! stopped when dropped. `.ci/run` installs it.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`.
pub struct RedisServer {
    port: u16,
    tls: bool,
    child: Child,
    /// A Sentinel's configuration file (Sentinel rewrites it), removed when dropped.
    config: Option<PathBuf>,
}

impl RedisServer {
    /// Starts one on a free port, with `extra` arguments (`--requirepass`, `--timeout`…).
    pub fn start(extra: &[&str]) -> io::Result<RedisServer> {
        RedisServer::start_on(free_port()?, extra)
    }

    /// Starts one on `port`, and waits until it accepts connections.
    pub fn start_on(port: u16, extra: &[&str]) -> io::Result<RedisServer> {
        RedisServer::launch(port, None, extra)
    }

    /// Starts one on `port` with the configuration file `config`, if any, and `extra`.
    fn launch(port: u16, config: Option<&Path>, extra: &[&str]) -> io::Result<RedisServer> {
        let mut child = Command::new("redis-server")
            .args(config)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot run redis-server ({e}); install it with `apt-get install redis-server` (.ci/run does)"),
                )
            })?;
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("redis-server did not listen on port {port} within 10 s"),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(RedisServer {
            port,
            tls: false,
            child,
            config: None,
        })
    }

    /// Starts a Sentinel that watches the primary on `primary_port` under the name `name`, with
    /// a quorum of one and a primary taken for down after one second without an answer.
    pub fn start_sentinel(primary_port: u16, name: &str) -> io::Result<RedisServer> {
        let port = free_port()?;
        let config = std::env::temp_dir().join(format!("hangar-test-sentinel-{port}.conf"));
        std::fs::write(
            &config,
            format!(
                "sentinel monitor {name} 127.0.0.1 {primary_port} 1\n\
                 sentinel down-after-milliseconds {name} 1000\n\
                 sentinel failover-timeout {name} 5000\n"
            ),
        )?;
        let started = RedisServer::launch(port, Some(&config), &["--sentinel"]);
        let mut server = started.inspect_err(|_| {
            let _ = std::fs::remove_file(&config);
        })?;
        server.config = Some(config);
        Ok(server)
    }

    /// Starts one that speaks only TLS, with the PEM certificate and key at `cert` and `key`.
    /// It trusts the CA at `ca` for clients' certificates, which it asks for only when `extra`
    /// holds `--tls-auth-clients yes`.
    pub fn start_tls(
        cert: &Path,
        key: &Path,
        ca: &Path,
        extra: &[&str],
    ) -> io::Result<RedisServer> {
        let port = free_port()?;
        let tls_port = port.to_string();
        let files = [cert, key, ca].map(|path| path.display().to_string());
        let mut args = vec!["--port", "0", "--tls-port", &tls_port];
        args.extend(["--tls-cert-file", &files[0], "--tls-key-file", &files[1]]);
        args.extend(["--tls-ca-cert-file", &files[2], "--tls-auth-clients", "no"]);
        args.extend_from_slice(extra);
        let mut server = RedisServer::start_on(port, &args)?;
        server.tls = true;
        Ok(server)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`, or `rediss://…` when it speaks TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(config) = &self.config {
            let _ = std::fs::remove_file(config);
        }
    }
}

/// A loopback port nothing listens on (as of the call).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
