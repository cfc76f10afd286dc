//! A real Redis for tests: Debian's `redis-server` on a loopback port, without persistence, in
//! a directory of its own (a replica writes the data it receives there, and a server started
//! in a shared one would load it), stopped and removed when dropped. `.ci/run` installs it.

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
    /// Its working directory, removed when dropped.
    dir: PathBuf,
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

    /// Starts one on `port` in a new directory, with the configuration file `config` (written
    /// there), if any, and `extra`.
    fn launch(port: u16, config: Option<&str>, extra: &[&str]) -> io::Result<RedisServer> {
        let dir =
            std::env::temp_dir().join(format!("hangar-test-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let config = match config {
            Some(text) => {
                let path = dir.join("redis.conf");
                std::fs::write(&path, text)?;
                Some(path)
            }
            None => None,
        };
        let spawned = Command::new("redis-server")
            .args(config)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(extra)
            .stdout(Stdio::null())
            .spawn();
        let mut child = spawned.map_err(|e| {
            let _ = std::fs::remove_dir_all(&dir);
            io::Error::new(
                e.kind(),
                format!("cannot run redis-server ({e}); install it with `apt-get install redis-server` (.ci/run does)"),
            )
        })?;
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            // Gone already: a port taken since it was found free, for one.
            if let Ok(Some(status)) = child.try_wait() {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(io::Error::other(format!(
                    "redis-server exited ({status}) before listening on port {port}"
                )));
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                let _ = std::fs::remove_dir_all(&dir);
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
            dir,
        })
    }

    /// Starts a Sentinel that watches the primary on `primary_port` under the name `name`, with
    /// a quorum of one and a primary taken for down after one second without an answer; with
    /// `extra` arguments (`--requirepass`…).
    pub fn start_sentinel(
        primary_port: u16,
        name: &str,
        extra: &[&str],
    ) -> io::Result<RedisServer> {
        // Sentinel keeps what it learns in its configuration file, so it needs one.
        let config = format!(
            "sentinel monitor {name} 127.0.0.1 {primary_port} 1\n\
             sentinel down-after-milliseconds {name} 1000\n\
             sentinel failover-timeout {name} 5000\n"
        );
        let mut args = vec!["--sentinel"];
        args.extend_from_slice(extra);
        RedisServer::launch(free_port()?, Some(&config), &args)
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

    /// Starts a Redis Cluster of `primaries` nodes (at least three), each with `replicas`
    /// replicas, its slots spread evenly over the primaries, and waits until every node says
    /// the cluster is up. A node is taken for failed after one second without an answer.
    /// The primaries come first.
    pub fn start_cluster(primaries: usize, replicas: usize) -> io::Result<Vec<RedisServer>> {
        let mut nodes = Vec::new();
        for _ in 0..primaries * (1 + replicas) {
            nodes.push(RedisServer::start_cluster_node()?);
        }
        let addresses = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port));
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()?;
        if !created.status.success() {
            return Err(io::Error::other(format!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&created.stdout),
                String::from_utf8_lossy(&created.stderr)
            )));
        }
        let started = Instant::now();
        for node in &nodes {
            while !cli(node.port, &["cluster", "info"])?.contains("cluster_state:ok") {
                if started.elapsed() > Duration::from_secs(30) {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the Redis Cluster was not up within 30 s",
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(nodes)
    }

    /// One node for [`RedisServer::start_cluster`], started again on other ports when the two
    /// it was given are taken meanwhile.
    fn start_cluster_node() -> io::Result<RedisServer> {
        let mut tries = 0;
        loop {
            // The cluster bus's port is the client port + 10000 unless set: that may be taken.
            let bus = free_port()?.to_string();
            let started = RedisServer::start(&[
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                &bus,
                "--cluster-node-timeout",
                "1000",
                "--repl-diskless-sync-delay",
                "0",
            ]);
            tries += 1;
            match started {
                Err(e) if tries < 3 && e.kind() != io::ErrorKind::NotFound => continue,
                other => return other,
            }
        }
    }

    /// Stops it without closing anything (`SIGSTOP`): it keeps its connections and answers
    /// nothing, as a node cut off by a partition.
    pub fn freeze(&self) -> io::Result<()> {
        self.signal("-STOP")
    }

    /// Lets a frozen server go on (`SIGCONT`): it answers what it was sent meanwhile.
    pub fn thaw(&self) -> io::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> io::Result<()> {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("kill {signal} failed: {status}")))
        }
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
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What `redis-cli -p PORT ARGS…` prints.
pub fn cli(port: u16, args: &[&str]) -> io::Result<String> {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A Redis Cluster node's id.
pub fn cluster_id(node: &RedisServer) -> String {
    cli(node.port, &["cluster", "myid"])
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The position in `nodes` (a cluster's) of the primary holding `key`'s slot, as the cluster
/// says.
pub fn cluster_owner(nodes: &[RedisServer], key: &str) -> io::Result<usize> {
    let first = nodes.first().map_or(0, |node| node.port);
    let slot = cli(first, &["cluster", "keyslot", key])?;
    let slot: u16 = slot
        .trim()
        .parse()
        .map_err(|_| io::Error::other(format!("CLUSTER KEYSLOT said `{slot}`")))?;
    let table = cli(first, &["cluster", "nodes"])?;
    // `ID HOST:PORT@BUS FLAGS PRIMARY PING PONG EPOCH STATE SLOTS…`, a slot range as `0-5460`.
    let holds = |line: &&str| {
        line.split(' ').skip(8).any(|range| {
            let (low, high) = range.split_once('-').unwrap_or((range, range));
            match (low.parse::<u16>(), high.parse::<u16>()) {
                (Ok(low), Ok(high)) => (low..=high).contains(&slot),
                _ => false,
            }
        })
    };
    let id = table
        .lines()
        .find(holds)
        .and_then(|line| line.split(' ').next());
    id.and_then(|id| nodes.iter().position(|node| cluster_id(node) == id))
        .ok_or_else(|| io::Error::other(format!("no node holds slot {slot}:\n{table}")))
}

/// A loopback port nothing listens on (as of the call).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
