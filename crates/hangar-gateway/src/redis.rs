//! A small Redis client, enough for the rate limits replicas share: RESP2 over one TCP
//! connection (TLS with `rediss://`) with commands pipelined. It speaks `AUTH`, `SELECT` and
//! `EVALSHA` (falling back to `EVAL` when the server does not know the script), and follows a
//! Redis Cluster's `MOVED` and `ASK` redirections with a connection to each node it is sent to.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The largest reply read: the limits' replies are a few bytes.
const MAX_REPLY: usize = 64 << 10;
/// Arrays nested deeper than this are refused rather than parsed.
const MAX_DEPTH: usize = 8;

/// Where a Redis server is and how to log in.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port`.
    pub address: String,
    /// More addresses the URL gave (`redis://sentinel-0:26379,sentinel-1:26379`), asked in
    /// turn with `address` until one answers: only Sentinels can stand in for each other.
    pub more_addresses: Vec<String>,
    /// `rediss://`: TLS, the server's certificate checked for the URL's host.
    pub tls: bool,
    /// The name of a primary that Sentinel watches: `address` is then a Sentinel's, asked
    /// where the primary is at each new connection.
    pub sentinel: Option<String>,
    /// The ACL user, when not `default`.
    pub username: Option<String>,
    /// The password, from a file (never from the URL, so it is not in the configuration).
    pub password: Option<String>,
    /// The database number.
    pub database: u32,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("address", &self.address)
            .field("more_addresses", &self.more_addresses)
            .field("tls", &self.tls)
            .field("sentinel", &self.sentinel)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .field("database", &self.database)
            .finish()
    }
}

impl Target {
    /// Reads `redis[s]://[user@]host[:port][,host[:port]…][/database]`. A password in the URL
    /// is refused: it belongs in a file such as a mounted Secret.
    pub fn parse(url: &str, password: Option<String>) -> Result<Target, String> {
        // Messages name the URL without anything before an `@`, which may be a password.
        let shown = without_credentials(url);
        let (tls, rest) = match url.split_once("://") {
            Some(("redis", rest)) => (false, rest),
            Some(("rediss", rest)) => (true, rest),
            _ => return Err(format!("`{shown}` is not a `redis://host:port` URL")),
        };
        // The last `@` ends the user part even past a `/`: a password may hold one.
        let (username, rest) = match rest.rsplit_once('@') {
            Some((user, _)) if user.contains(':') => {
                return Err("put the password in `passwordFile`, not in the URL".to_owned());
            }
            Some((user, rest)) => (Some(user.to_owned()).filter(|u| !u.is_empty()), rest),
            None => (None, rest),
        };
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut addresses = Vec::new();
        for host in hosts.split(',') {
            if host.is_empty() {
                return Err(format!("`{shown}` names no host"));
            }
            addresses.push(match host.rsplit_once(':') {
                // The colons of an IPv6 address inside brackets are not a port's.
                Some((_, port)) if !port.contains(']') => {
                    port.parse::<u16>()
                        .map_err(|_| format!("`{port}` in `{shown}` is not a port"))?;
                    host.to_owned()
                }
                _ => format!("{host}:6379"),
            });
        }
        let address = addresses.remove(0);
        let database = match path.trim_end_matches('/') {
            "" => 0,
            number => number
                .parse()
                .map_err(|_| format!("`/{number}` in `{shown}` is not a database number"))?,
        };
        Ok(Target {
            address,
            more_addresses: addresses,
            tls,
            sentinel: None,
            username,
            password,
            database,
        })
    }
}

/// `url` with what comes before its last `@` left out, to name it in a message.
fn without_credentials(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").map_or(("", url), |(s, r)| (s, r));
    match rest.rsplit_once('@') {
        Some((_, host)) => {
            let separator = if scheme.is_empty() { "" } else { "://" };
            format!("{scheme}{separator}…@{host}")
        }
        None => url.to_owned(),
    }
}

/// A Lua script, run by its SHA-1 so its text crosses the network only once per server.
#[derive(Debug)]
pub struct Script {
    source: &'static str,
    sha1: String,
}

impl Script {
    /// The script with this source.
    pub fn new(source: &'static str) -> Script {
        let digest =
            ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, source.as_bytes());
        let sha1 = hangar_ledger::hex(digest.as_ref());
        Script { source, sha1 }
    }
}

/// A reply from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK` and the like.
    Status(String),
    /// An integer.
    Integer(i64),
    /// A string, or nil.
    Bulk(Option<Vec<u8>>),
    /// An array, or nil.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// An array of integers none negative (a script's counts), or `None` for any other reply.
    pub fn counts(&self) -> Option<Vec<u64>> {
        let Reply::Array(Some(items)) = self else {
            return None;
        };
        (items.iter())
            .map(|item| match item {
                Reply::Integer(n) => u64::try_from(*n).ok(),
                _ => None,
            })
            .collect()
    }
}

/// Why a command got no reply.
#[derive(Debug, Error)]
pub enum RedisError {
    /// The connection failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server refused the command before running it (`READONLY`, `LOADING`, `NOPERM`…, see
    /// [`refused_before_running`]), or refused the connection it was to go on (a login, a
    /// Sentinel's refusal, a server that is not the primary, inside [`RedisError::Unsent`]): the
    /// command did not run.
    #[error("Redis said: {0}")]
    Server(String),
    /// The command was never written: its connection could not be made, or failed (or was left)
    /// before its turn, for the reason inside. It did not run. (It was sent once more, on a new
    /// connection, before a caller hears this.)
    #[error("{0}")]
    Unsent(Box<RedisError>),
    /// Any other error reply: a script's own error, or a proxy's `ERR` (Envoy, Twemproxy, a
    /// managed service's front) about a command it may have forwarded. It may have run.
    #[error("Redis said: {0}")]
    Failed(String),
    /// The connection was left while the command was on it, because its server is no longer
    /// the primary: it answered another command `READONLY`, or Sentinel names another. The
    /// command may have run.
    #[error("no longer the primary: {0}")]
    Demoted(String),
    /// The server's answer was not RESP.
    #[error("unreadable reply from Redis: {0}")]
    Protocol(String),
    /// The node the command went to (first, or by a redirection) rests after a failure, so
    /// nothing was sent to it.
    #[error("{0} rests after a failure")]
    Resting(String),
}

impl RedisError {
    /// Whether Redis itself answered with this error (a login, an ACL or a script refused),
    /// rather than not being reached or not answering.
    pub fn answered(&self) -> bool {
        match self {
            RedisError::Server(_) | RedisError::Failed(_) => true,
            RedisError::Unsent(inner) => inner.answered(),
            _ => false,
        }
    }
}

/// A client for one server: one connection, on which commands from every caller are pipelined
/// (those that arrive together leave in one write, and their replies are read together as they
/// come). When the server is a Redis Cluster's node, each other node a redirection names gets a
/// connection of its own, and each slot goes to the node that last said it holds it.
pub struct Client {
    target: Target,
    /// The target's address, as the connections are named.
    address: Arc<str>,
    /// How TLS is spoken, for a `rediss://` target.
    tls: Option<TlsConnector>,
    /// Each connection's task by the address it reaches (the target's, and the cluster nodes'),
    /// started by the first command and again after the connection fails; closed when it ended.
    connections: Mutex<HashMap<Arc<str>, mpsc::UnboundedSender<Pending>>>,
    /// What redirections taught of a Redis Cluster, shared with the connections' tasks, which
    /// say when their node fails.
    cluster: Arc<Mutex<Cluster>>,
    /// Nodes left alone after a failure, until when.
    resting: Mutex<HashMap<Arc<str>, Instant>>,
}

/// What the client knows of a Redis Cluster: nothing for a single server.
#[derive(Debug, Default)]
struct Cluster {
    /// The node a `MOVED` reply placed each slot on.
    slots: HashMap<u16, Arc<str>>,
    /// When the target's node last failed: for a while, slots not placed are asked of another
    /// known node instead, which redirects them as well.
    target_failed: Option<Instant>,
}

/// How long slots not placed are asked of another node after the target's node failed.
const TARGET_REST: Duration = Duration::from_secs(10);

impl Cluster {
    /// The node at `address` failed (to connect, or later): its slots are asked of the target
    /// again, which redirects them to whichever node holds them now, as after a failover.
    fn failed(&mut self, address: &str, is_target: bool) {
        self.slots.retain(|_, on| &**on != address);
        if is_target {
            self.target_failed = Some(Instant::now());
        }
    }
}

/// A command waiting to be written, and where its reply goes.
#[derive(Debug)]
struct Pending {
    command: Vec<u8>,
    /// Sent after `ASKING`, as an `ASK` redirection wants (for this command only).
    asking: bool,
    reply: oneshot::Sender<Answer>,
}

/// How many redirections (or `TRYAGAIN`s) a command follows before it fails: a cluster moving
/// slots sends one or two.
const MAX_REDIRECTIONS: usize = 5;
/// How long a command waits before it is sent again after `TRYAGAIN`.
const TRY_AGAIN_AFTER: Duration = Duration::from_millis(10);

/// A reply, the server's error reply, or why there is none.
type Answer = Result<Result<Reply, String>, RedisError>;

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `target`, speaking TLS with `tls` (which a `rediss://` target needs);
    /// nothing is connected until the first command.
    pub fn new(target: Target, tls: Option<Arc<rustls::ClientConfig>>) -> Client {
        Client {
            address: target.address.as_str().into(),
            target,
            tls: tls.map(TlsConnector::from),
            connections: Mutex::new(HashMap::new()),
            cluster: Arc::new(Mutex::new(Cluster::default())),
            resting: Mutex::new(HashMap::new()),
        }
    }

    /// Where this client connects.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Runs `script` with these keys and arguments, on the cluster node holding the first key's
    /// slot when the server is a Redis Cluster's.
    pub async fn eval(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[&str],
    ) -> Result<Reply, RedisError> {
        let mut node = self.node_for(keys.first().copied().unwrap_or_default());
        self.eval_from(&mut node, script, keys, args).await
    }

    /// The node a command on `key` goes to first: the one last named for its slot, else the
    /// target's (another known node for a while after the target's failed).
    pub fn node_for(&self, key: &str) -> Arc<str> {
        let cluster = self.cluster.lock().unwrap_or_else(|p| p.into_inner());
        if cluster.slots.is_empty() {
            return Arc::clone(&self.address);
        }
        if let Some(node) = cluster.slots.get(&slot(key)) {
            return Arc::clone(node);
        }
        let target_resting = (cluster.target_failed).is_some_and(|at| at.elapsed() < TARGET_REST);
        let elsewhere = target_resting
            .then(|| cluster.slots.values().find(|node| **node != self.address))
            .flatten();
        Arc::clone(elsewhere.unwrap_or(&self.address))
    }

    /// Leaves `node` alone for `rest` (after a failure): a command for it, first or by a
    /// redirection, fails at once with [`RedisError::Resting`] rather than wait for it again.
    pub fn rest(&self, node: Arc<str>, rest: Duration) {
        let now = Instant::now();
        let mut resting = self.resting.lock().unwrap_or_else(|p| p.into_inner());
        resting.retain(|_, until| *until > now);
        resting.insert(node, now + rest);
    }

    /// Whether `node` rests.
    fn resting(&self, node: &str) -> bool {
        let resting = self.resting.lock().unwrap_or_else(|p| p.into_inner());
        resting
            .get(node)
            .is_some_and(|until| Instant::now() < *until)
    }

    /// As [`Client::eval`], sent first to `node` (from [`Client::node_for`]), which is left
    /// naming the last node asked: the one at fault when the call fails or takes too long.
    pub async fn eval_from(
        &self,
        node: &mut Arc<str>,
        script: &Script,
        keys: &[&str],
        args: &[&str],
    ) -> Result<Reply, RedisError> {
        let count = keys.len().to_string();
        let mut command: Vec<&str> = vec!["EVALSHA", &script.sha1, &count];
        command.extend_from_slice(keys);
        command.extend_from_slice(args);
        let mut asking = false;
        for _ in 0..=MAX_REDIRECTIONS {
            if self.resting(node) {
                return Err(RedisError::Resting(node.to_string()));
            }
            let mut reply = self.deliver(node, &command, asking).await?;
            // A restarted or flushed server (or a node not asked before) does not know the
            // script: send its text once.
            if matches!(&reply, Err(message) if message.starts_with("NOSCRIPT")) {
                command[0] = "EVAL";
                command[1] = script.source;
                reply = self.deliver(node, &command, asking).await?;
            }
            let message = match reply {
                Ok(reply) => return Ok(reply),
                Err(message) => message,
            };
            match Redirection::read(&message, node) {
                Some(Redirection::Moved { slot, address }) => {
                    let address: Arc<str> = address.into();
                    let mut cluster = self.cluster.lock().unwrap_or_else(|p| p.into_inner());
                    cluster.slots.insert(slot, Arc::clone(&address));
                    *node = address;
                    asking = false;
                }
                Some(Redirection::Ask { address }) => {
                    *node = address.into();
                    asking = true;
                }
                // A slot moving between nodes, the command's keys not all moved yet: that ends
                // in moments.
                None if message.starts_with("TRYAGAIN") => {
                    tokio::time::sleep(TRY_AGAIN_AFTER).await;
                }
                None if refused_before_running(&message) => {
                    return Err(RedisError::Server(message));
                }
                None => return Err(RedisError::Failed(message)),
            }
        }
        Err(RedisError::Server(format!(
            "more than {MAX_REDIRECTIONS} cluster redirections or TRYAGAINs for one command"
        )))
    }

    /// The cluster nodes a `MOVED` redirection placed slots on, by address.
    pub fn cluster_nodes(&self) -> Vec<String> {
        let cluster = self.cluster.lock().unwrap_or_else(|p| p.into_inner());
        let mut nodes: Vec<String> = cluster.slots.values().map(|n| n.to_string()).collect();
        nodes.sort();
        nodes.dedup();
        nodes
    }

    /// Sends `command` to `node` as [`Client::send`] does, and once more when it was not sent
    /// ([`RedisError::Unsent`]): it did not run, and the new connection its second sending
    /// starts may well take it (after a failover, the new primary's).
    async fn deliver(&self, node: &Arc<str>, command: &[&str], asking: bool) -> Answer {
        match self.send(node, encode(command), asking).await {
            Err(RedisError::Unsent(_)) => self.send(node, encode(command), asking).await,
            answer => answer,
        }
    }

    /// Queues `command` on the connection to `node`, starting one if there is none, and waits
    /// for its reply. A caller that stops waiting leaves the reply to be read and dropped, so
    /// the replies stay in step with the commands.
    async fn send(&self, node: &Arc<str>, command: Vec<u8>, asking: bool) -> Answer {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            command,
            asking,
            reply,
        };
        {
            let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
            let unsent = match connections.get(node) {
                Some(queue) => queue.send(pending).err().map(|e| e.0),
                None => Some(pending),
            };
            // No connection, or its task ended: start another with this command.
            if let Some(pending) = unsent {
                let (queue, commands) = mpsc::unbounded_channel();
                let _ = queue.send(pending);
                let is_target = *node == self.address;
                let target = if is_target {
                    self.target.clone()
                } else {
                    // A cluster node: the target's login and TLS at another address.
                    Target {
                        address: node.to_string(),
                        more_addresses: Vec::new(),
                        sentinel: None,
                        ..self.target.clone()
                    }
                };
                let cluster = Arc::downgrade(&self.cluster);
                let address = Arc::clone(node);
                let failed = move || {
                    if let Some(cluster) = cluster.upgrade() {
                        let mut cluster = cluster.lock().unwrap_or_else(|p| p.into_inner());
                        cluster.failed(&address, is_target);
                    }
                };
                tokio::spawn(drive(target, self.tls.clone(), commands, failed));
                // Tasks of nodes gone (pods replaced) are not kept.
                connections.retain(|_, queue| !queue.is_closed());
                connections.insert(Arc::clone(node), queue);
            }
        }
        answer
            .await
            .unwrap_or_else(|_| Err(RedisError::Io(std::io::ErrorKind::ConnectionAborted.into())))
    }
}

/// A Redis Cluster's error reply sending a command to another node.
#[derive(Debug, PartialEq, Eq)]
enum Redirection {
    /// `MOVED SLOT HOST:PORT`: the slot is on that node now.
    Moved { slot: u16, address: String },
    /// `ASK SLOT HOST:PORT`: the slot is moving there; ask it this once, after `ASKING`.
    Ask { address: String },
}

impl Redirection {
    /// The redirection in `message`, an error reply from the node at `answered_by`: a node
    /// without a name to give leaves the host out (`MOVED 3999 :6381`), meaning its own.
    fn read(message: &str, answered_by: &str) -> Option<Redirection> {
        let mut words = message.split(' ');
        let (kind, slot, node) = (words.next()?, words.next()?, words.next()?);
        let slot: u16 = slot.parse().ok().filter(|slot| *slot < SLOTS)?;
        let (host, port) = node.rsplit_once(':')?;
        port.parse::<u16>().ok()?;
        let host = match host {
            "" => host_of(answered_by),
            // A node that should be named by a host name and has none.
            "?" => return None,
            // Redis writes an IPv6 address bare; brackets are taken too.
            host => host.trim_start_matches('[').trim_end_matches(']'),
        };
        if host.is_empty() {
            return None;
        }
        // An IPv6 address takes brackets before its port.
        let address = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        match kind {
            "MOVED" => Some(Redirection::Moved { slot, address }),
            "ASK" => Some(Redirection::Ask { address }),
            _ => None,
        }
    }
}

/// A Redis Cluster's hash slots.
const SLOTS: u16 = 16384;

/// The cluster slot of `key`: CRC-16/XMODEM of the key, or of its hash tag (what is between
/// the first `{` and the next `}`, when not empty), modulo [`SLOTS`].
pub fn slot(key: &str) -> u16 {
    let key = key.as_bytes();
    let tagged = key.iter().position(|b| *b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|b| *b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    let mut crc: u16 = 0;
    for byte in tagged.unwrap_or(key) {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 == 0 {
                crc << 1
            } else {
                (crc << 1) ^ 0x1021
            };
        }
    }
    crc % SLOTS
}

/// The error codes with which Redis refuses a command before running any of it. A refused
/// `ASKING` (see [`hand_out`]) leaves the command redirected, not run, too.
const REFUSED_BEFORE_RUNNING: &[&str] = &[
    "READONLY",
    "LOADING",
    "BUSY",
    "NOSCRIPT",
    "NOPERM",
    "NOAUTH",
    "WRONGPASS",
    "OOM",
    "MISCONF",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "CROSSSLOT",
    "NOREPLICAS",
    "ASKING refused",
];

/// Those of [`REFUSED_BEFORE_RUNNING`] that a command inside a script meets at the script's
/// first write at the latest: they say what the server is (a replica, short of memory, unable to
/// persist, short of replicas, cut off from its primary, in a cluster that is down), which does
/// not change while a script runs, and Redis checks memory only until a script wrote. Any other
/// refusal (an ACL's `NOPERM`, checked at each command) may come after the script wrote.
const REFUSED_AT_FIRST_WRITE: &[&str] = &[
    "READONLY",
    "OOM",
    "MISCONF",
    "NOREPLICAS",
    "MASTERDOWN",
    "CLUSTERDOWN",
];

/// Whether an error reply says the command was refused before it ran. The error a script's
/// command met (Redis 5 and 6 wrap it: `ERR Error running script (call to f_…):
/// @user_script:10: … -READONLY You can't write…`; Redis 7 names the script's line after it:
/// `READONLY You can't write… script: 6163…, on @user_script:1.`) says so only with a code of
/// [`REFUSED_AT_FIRST_WRITE`]: `take` charges the rates before it takes its place, and a refusal
/// of its `ZADD` would leave them charged.
fn refused_before_running(message: &str) -> bool {
    let (message, codes) = match message.strip_prefix("ERR Error running script") {
        Some(wrapped) => match wrapped.rfind(" -") {
            Some(at) => (&wrapped[at + 2..], REFUSED_AT_FIRST_WRITE),
            None => return false,
        },
        None if message.contains("@user_script") => (message, REFUSED_AT_FIRST_WRITE),
        None => (message, REFUSED_BEFORE_RUNNING),
    };
    codes.iter().any(|code| {
        message
            .strip_prefix(code)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', ':']))
    })
}

/// The longest a connection may take to be made and logged in, once its server is known.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest one Sentinel may take to say where the primary is: a quarter of
/// [`CONNECT_TIMEOUT`], so that past one that never answers (its node powered off, or stalled)
/// the others are still asked in time.
const SENTINEL_TIMEOUT: Duration = Duration::from_millis(500);
/// A connection whose oldest unanswered command has waited this long is taken for dead (a
/// server gone without closing it, as after a failover) and replaced.
pub(crate) const STALLED: Duration = Duration::from_secs(2);

/// The connection's task: connects, then writes what `commands` brings and hands each reply to
/// its command in order, until the connection fails or the client is dropped. On failure
/// `failed` is told first (callers may have stopped waiting long before: the limits' timeout is
/// shorter than a connection's), then every command written gets the error, every one still
/// queued hears that it was not sent (see [`fail_queued`]), and the next command starts a new
/// connection.
async fn drive(
    target: Target,
    tls: Option<TlsConnector>,
    mut commands: mpsc::UnboundedReceiver<Pending>,
    failed: impl FnOnce(),
) {
    // Each step of connecting has a time limit of its own.
    let connected = connect(&target, tls.clone()).await;
    let (connection, address) = match connected {
        Ok(connected) => connected,
        Err(e) => {
            failed();
            return fail_queued(&mut commands, &e);
        }
    };
    let moved = primary_moved(&target, tls, &address);
    match connection {
        Connection::Plain(tcp) => {
            let (reader, writer) = tcp.into_split();
            relay(reader, writer, commands, moved, failed).await;
        }
        Connection::Tls(tls) => {
            let (reader, writer) = tokio::io::split(*tls);
            relay(reader, writer, commands, moved, failed).await;
        }
    }
}

/// How often a connection made through Sentinel asks it again where the primary is.
const SENTINEL_RECHECK: Duration = Duration::from_secs(2);

/// With Sentinel, returns once the Sentinels that answer mostly name another primary than
/// `address`: Sentinel may switch before the old primary learns it is one no longer (or while
/// it is cut off), and writes to it would be lost. They are all asked, together: one cut off
/// with the old primary still names it, and must not hold the connection there. Never returns
/// without Sentinel, nor while no Sentinel answers.
async fn primary_moved(target: &Target, tls: Option<TlsConnector>, address: &str) {
    let Some(primary) = &target.sentinel else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(SENTINEL_RECHECK).await;
        let (named, _) = sentinels_say(target, tls.clone(), primary, false).await;
        let votes_for = |wanted: &str| {
            (named.iter())
                .find(|(a, _)| a == wanted)
                .map_or(0, |(_, v)| *v)
        };
        if let Some((first, votes)) = named.first()
            && first != address
            && *votes > votes_for(address)
        {
            return;
        }
    }
}

/// Writes what `commands` brings to the connection and hands each reply to its command in
/// order (see [`drive`]), until the connection fails (said to `failed`) or `moved` (the
/// primary did) returns.
async fn relay(
    mut reader: impl AsyncRead + Unpin,
    mut writer: impl AsyncWrite + Unpin,
    mut commands: mpsc::UnboundedReceiver<Pending>,
    moved: impl Future<Output = ()>,
    failed: impl FnOnce(),
) {
    let mut moved = std::pin::pin!(moved);
    // Each command written and where its reply goes (nowhere for an `ASKING`).
    let mut waiting: VecDeque<(Instant, Option<oneshot::Sender<Answer>>)> = VecDeque::new();
    let mut buffer = Vec::with_capacity(512);
    let mut out = Vec::with_capacity(512);
    let mut asking_refused = None;
    let error = loop {
        let stalled_at = waiting.front().map(|(sent, _)| *sent + STALLED);
        tokio::select! {
            pending = commands.recv() => {
                let Some(first) = pending else { return };
                out.clear();
                let now = Instant::now();
                let queued = std::iter::once(first).chain(std::iter::from_fn(|| commands.try_recv().ok()));
                // A caller that gave up before its command left (its timeout, while connecting)
                // is not charged for it.
                for pending in queued.filter(|p| !p.reply.is_closed()) {
                    if pending.asking {
                        out.extend_from_slice(ASKING);
                        waiting.push_back((now, None));
                    }
                    out.extend_from_slice(&pending.command);
                    waiting.push_back((now, Some(pending.reply)));
                }
                // A server that stopped reading is as dead as one that stopped answering.
                // (The flush is TLS's: it sends what the TLS layer still holds.)
                let written = async { writer.write_all(&out).await?; writer.flush().await };
                match tokio::time::timeout(STALLED, written).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => break RedisError::Io(e),
                    Err(_) => break RedisError::Io(std::io::ErrorKind::TimedOut.into()),
                }
            }
            // Read even with nothing waiting, so that a connection the server closed while idle
            // (its `timeout`, a load balancer's) is noticed now, not by the next command.
            read = reader.read_buf(&mut buffer) => {
                match read {
                    Ok(0) => break RedisError::Io(std::io::ErrorKind::UnexpectedEof.into()),
                    Err(e) => break RedisError::Io(e),
                    Ok(_) => {}
                }
                match hand_out(&mut buffer, &mut waiting, &mut asking_refused) {
                    Ok(()) => {}
                    Err(e) => break e,
                }
            }
            () = sleep_until(stalled_at) => {
                break RedisError::Io(std::io::ErrorKind::TimedOut.into());
            }
            () = &mut moved => {
                break RedisError::Demoted("Sentinel names another primary".to_owned());
            }
        }
    };
    failed();
    for reply in waiting.into_iter().filter_map(|(_, reply)| reply) {
        let _ = reply.send(Err(copy_error(&error)));
    }
    fail_queued(&mut commands, &error);
}

/// `ASKING`, which lets the next command use a slot the node is taking over.
const ASKING: &[u8] = b"*1\r\n$6\r\nASKING\r\n";

/// Sleeps until `deadline`, or for ever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// Gives each complete reply at the start of `buffer` to the oldest waiting command. A
/// `READONLY` reply ends the connection (after the replies already read are handed out): the
/// server became a replica in a failover, and a new connection reaches the new primary.
///
/// An `ASKING` refused (an ACL user without `+asking`) is the next command's answer, kept in
/// `asking_refused` until that command's reply is read, when that is an error: what it hears
/// (a redirection back) would hide why. A command that worked keeps its answer (the slot
/// finished moving between the redirection and the command).
fn hand_out(
    buffer: &mut Vec<u8>,
    waiting: &mut VecDeque<(Instant, Option<oneshot::Sender<Answer>>)>,
    asking_refused: &mut Option<String>,
) -> Result<(), RedisError> {
    let mut used = 0;
    let mut demoted = None;
    while let Some((reply, length)) = parse(&buffer[used..], 0)? {
        used += length;
        let Some((_, to)) = waiting.pop_front() else {
            return Err(RedisError::Protocol("a reply to no command".to_owned()));
        };
        if let Err(message) = &reply
            && says_replica(message)
        {
            demoted = Some(message.clone());
        }
        let Some(to) = to else {
            *asking_refused = reply.err();
            continue;
        };
        let reply = match (asking_refused.take(), reply) {
            (Some(refused), Err(_)) => Err(format!("ASKING refused: {refused}")),
            (_, reply) => reply,
        };
        // The caller may have stopped waiting: its reply is read all the same.
        let _ = to.send(Ok(reply));
    }
    buffer.drain(..used);
    if let Some(message) = demoted {
        return Err(RedisError::Demoted(message));
    }
    if buffer.len() > MAX_REPLY {
        return Err(RedisError::Protocol(format!(
            "a reply over {MAX_REPLY} bytes"
        )));
    }
    Ok(())
}

/// The error a replica gives a write: `READONLY …` from Redis 7, and inside a script's error
/// (`ERR Error running script … -READONLY You can't write…`) from Redis 5 and 6.
fn says_replica(message: &str) -> bool {
    message.starts_with("READONLY") || message.contains("-READONLY ")
}

/// Ends the connection's task: every command still queued, never written, gets `error` as
/// [`RedisError::Unsent`], and the queue closes (before that, so that a command sent again
/// starts a new connection, as the next command does).
fn fail_queued(commands: &mut mpsc::UnboundedReceiver<Pending>, error: &RedisError) {
    commands.close();
    while let Ok(pending) = commands.try_recv() {
        let unsent = RedisError::Unsent(Box::new(copy_error(error)));
        let _ = pending.reply.send(Err(unsent));
    }
}

/// The same error again, for each command it ends.
fn copy_error(error: &RedisError) -> RedisError {
    match error {
        RedisError::Io(e) => RedisError::Io(std::io::Error::new(e.kind(), e.to_string())),
        RedisError::Server(message) => RedisError::Server(message.clone()),
        RedisError::Demoted(message) => RedisError::Demoted(message.clone()),
        RedisError::Failed(message) => RedisError::Failed(message.clone()),
        RedisError::Protocol(message) => RedisError::Protocol(message.clone()),
        RedisError::Resting(node) => RedisError::Resting(node.clone()),
        RedisError::Unsent(error) => RedisError::Unsent(Box::new(copy_error(error))),
    }
}

/// A connection to Redis, in plain TCP or in TLS.
enum Connection {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection {
    /// Sends one command and reads its reply, failing on the server's error reply.
    async fn call(&mut self, args: &[&str]) -> Result<Reply, RedisError> {
        let answer = match self {
            Connection::Plain(tcp) => call(tcp, args).await?,
            Connection::Tls(tls) => call(tls.as_mut(), args).await?,
        };
        answer.map_err(RedisError::Server)
    }
}

/// A new connection to the target's server (with Sentinel, to the primary it names), through
/// TLS for `rediss://`, logged in and on its database; and the address it reached.
///
/// With Sentinel, the servers the Sentinels name are tried, the most named first (see
/// [`sentinels_say`]), until one is reached within [`CONNECT_TIMEOUT`] and says it is the
/// primary: one Sentinel may be away, cut off with the old primary, or not have seen a failover
/// yet.
async fn connect(
    target: &Target,
    tls: Option<TlsConnector>,
) -> Result<(Connection, String), RedisError> {
    if target.tls && tls.is_none() {
        let why = "a `rediss://` server, but no TLS settings";
        return Err(RedisError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            why,
        )));
    }
    let Some(primary) = &target.sentinel else {
        let address = target.address.clone();
        let server = open_server(&address, target, tls);
        let connection = within(CONNECT_TIMEOUT, &address, server).await?;
        return Ok((connection, address));
    };
    // What a majority says first; when that server fails (the majority has not heard of a
    // failover yet), what every Sentinel says.
    let mut tried: Vec<String> = Vec::new();
    let mut server_failure = None;
    let mut sentinel_failure = None;
    for wait_for_all in [false, true] {
        let (named, refused) = sentinels_say(target, tls.clone(), primary, wait_for_all).await;
        sentinel_failure = sentinel_failure.or(refused);
        for (address, _) in named {
            if tried.contains(&address) {
                continue;
            }
            tried.push(address.clone());
            let server = open_server(&address, target, tls.clone());
            match within(CONNECT_TIMEOUT, &address, server).await {
                Ok(connection) => return Ok((connection, address)),
                Err(e) => server_failure = server_failure.or(Some(e)),
            }
        }
    }
    // The server's refusal says more than a Sentinel's (a login refused, `ROLE` not allowed).
    let failure = server_failure.or(sentinel_failure);
    Err(failure.unwrap_or_else(|| RedisError::Protocol("no Sentinel to ask".to_owned())))
}

/// A connection to the server at `address`, logged in and on the target's database. With
/// Sentinel, only to a server that says it is the primary: Sentinel's answer may be a moment
/// old, or come from a Sentinel that has not seen a failover.
async fn open_server(
    address: &str,
    target: &Target,
    tls: Option<TlsConnector>,
) -> Result<Connection, RedisError> {
    let mut connection = open(address, tls).await?;
    log_in(&mut connection, target).await?;
    if target.database != 0 {
        let database = target.database.to_string();
        connection.call(&["SELECT", &database]).await?;
    }
    if target.sentinel.is_none() {
        return Ok(connection);
    }
    let says_primary = match connection.call(&["ROLE"]).await? {
        Reply::Array(Some(items)) => items.first() == Some(&Reply::Bulk(Some(b"master".to_vec()))),
        _ => false,
    };
    if !says_primary {
        return Err(RedisError::Server(format!(
            "{address}, which Sentinel named, is not a primary"
        )));
    }
    Ok(connection)
}

/// What `future` gives, or a timeout naming `what` when it takes longer than `limit`.
async fn within<T>(
    limit: Duration,
    what: &str,
    future: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, RedisError> {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| {
            let why = format!("{what} did not answer within {} ms", limit.as_millis());
            Err(RedisError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                why,
            )))
        })
}

/// Where the target's Sentinels say the primary named `primary` is: each address named, with
/// how many named it, the most named first (ties in the order they were first named); and why
/// the first Sentinel that did not answer did not. They are asked together, each within
/// [`SENTINEL_TIMEOUT`], and unless `wait_for_all`, no more are waited for once more than half
/// of them name one server: Sentinel elects a new primary by a majority, and one cut off with
/// the old primary still names it.
async fn sentinels_say(
    target: &Target,
    tls: Option<TlsConnector>,
    primary: &str,
    wait_for_all: bool,
) -> (Vec<(String, usize)>, Option<RedisError>) {
    use futures_util::StreamExt as _;
    let sentinels = sentinel_addresses(target);
    let majority = sentinels.len() / 2 + 1;
    let mut answers: futures_util::stream::FuturesUnordered<_> = (sentinels.into_iter())
        .map(|sentinel| ask_sentinel_in_time(sentinel, target, tls.clone(), primary))
        .collect();
    let mut named: Vec<(String, usize)> = Vec::new();
    let mut failure = None;
    while let Some(answer) = answers.next().await {
        match answer {
            Ok(address) => match named.iter_mut().find(|(a, _)| *a == address) {
                Some((_, votes)) => *votes += 1,
                None => named.push((address, 1)),
            },
            Err(e) => failure = failure.or(Some(e)),
        }
        if !wait_for_all && named.iter().any(|(_, votes)| *votes >= majority) {
            break;
        }
    }
    // Stable: among equals, the first named stays first.
    named.sort_by_key(|(_, votes)| std::cmp::Reverse(*votes));
    (named, failure)
}

/// The target's addresses: with Sentinel, the Sentinels'.
fn sentinel_addresses(target: &Target) -> Vec<&str> {
    std::iter::once(&target.address)
        .chain(&target.more_addresses)
        .map(String::as_str)
        .collect()
}

/// [`ask_sentinel`] within [`SENTINEL_TIMEOUT`].
async fn ask_sentinel_in_time(
    address: &str,
    target: &Target,
    tls: Option<TlsConnector>,
    primary: &str,
) -> Result<String, RedisError> {
    let asked = ask_sentinel(address, target, tls, primary);
    within(SENTINEL_TIMEOUT, &format!("Sentinel at {address}"), asked).await
}

/// Asks the Sentinel at `address` where the primary named `primary` is.
async fn ask_sentinel(
    address: &str,
    target: &Target,
    tls: Option<TlsConnector>,
    primary: &str,
) -> Result<String, RedisError> {
    let mut sentinel = open(address, tls).await?;
    // A Sentinel usually shares the servers' login (Bitnami's chart, for one). One without a
    // password refuses it (how depends on its version), and is asked all the same: its refusal
    // is reported only if it then wants a login.
    let refused = match log_in(&mut sentinel, target).await {
        Ok(()) => None,
        Err(RedisError::Server(message)) => Some(message),
        Err(other) => return Err(other),
    };
    let ask = ["SENTINEL", "get-master-addr-by-name", primary];
    let reply = sentinel.call(&ask).await.map_err(|e| match e {
        RedisError::Server(message) => {
            let said = refused.unwrap_or(message);
            RedisError::Server(format!("(Sentinel at {address}) {said}"))
        }
        other => other,
    })?;
    match reply {
        Reply::Array(Some(items)) => match items.as_slice() {
            [Reply::Bulk(Some(host)), Reply::Bulk(Some(port))] => {
                let host = String::from_utf8_lossy(host);
                let port = String::from_utf8_lossy(port);
                // An IPv6 address takes brackets before its port.
                if host.contains(':') {
                    Ok(format!("[{host}]:{port}"))
                } else {
                    Ok(format!("{host}:{port}"))
                }
            }
            _ => Err(RedisError::Protocol(format!(
                "Sentinel's answer: {items:?}"
            ))),
        },
        _ => Err(RedisError::Server(format!(
            "Sentinel at {address} does not watch a primary named `{primary}`"
        ))),
    }
}

/// A connection to `address`, through TLS when `tls` is set (the certificate checked for the
/// address's host).
async fn open(address: &str, tls: Option<TlsConnector>) -> Result<Connection, RedisError> {
    let tcp = TcpStream::connect(address).await?;
    tcp.set_nodelay(true)?;
    let Some(connector) = tls else {
        return Ok(Connection::Plain(tcp));
    };
    let host = host_of(address);
    let name = ServerName::try_from(host.to_owned()).map_err(|_| {
        let why = format!("`{host}` is not a host name for TLS");
        RedisError::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, why))
    })?;
    Ok(Connection::Tls(Box::new(
        connector.connect(name, tcp).await?,
    )))
}

/// Logs in on `connection` when the target has a password.
async fn log_in(connection: &mut Connection, target: &Target) -> Result<(), RedisError> {
    let Some(password) = &target.password else {
        return Ok(());
    };
    match &target.username {
        Some(user) => connection.call(&["AUTH", user, password]).await?,
        None => connection.call(&["AUTH", password]).await?,
    };
    Ok(())
}

/// The host of `host:port`, an IPv6 address without its brackets: what a certificate names.
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Sends one command and reads its reply; the inner error is the server's error reply.
async fn call(
    connection: &mut (impl AsyncRead + AsyncWrite + Unpin),
    args: &[&str],
) -> Result<Result<Reply, String>, RedisError> {
    connection.write_all(&encode(args)).await?;
    connection.flush().await?;
    let mut buffer = Vec::with_capacity(64);
    loop {
        if let Some((reply, used)) = parse(&buffer, 0)? {
            if used != buffer.len() {
                return Err(RedisError::Protocol("more bytes than one reply".to_owned()));
            }
            return Ok(reply);
        }
        if buffer.len() > MAX_REPLY {
            return Err(RedisError::Protocol(format!(
                "a reply over {MAX_REPLY} bytes"
            )));
        }
        if connection.read_buf(&mut buffer).await? == 0 {
            return Err(RedisError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
}

/// A command as a RESP array of bulk strings.
fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
    push_header(&mut out, b'*', args.len());
    for arg in args {
        push_header(&mut out, b'$', arg.len());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `*3\r\n` and the like; by hand, as `format!` cost more than the rest of a command.
fn push_header(out: &mut Vec<u8>, kind: u8, number: usize) {
    out.push(kind);
    out.extend_from_slice(hangar_ledger::decimal(number as u64, &mut [0; 20]));
    out.extend_from_slice(b"\r\n");
}

type Parsed = Option<(Result<Reply, String>, usize)>;

/// One reply from the start of `buffer` and the bytes it took, `None` while incomplete, as a
/// connection reads them (public for the fuzz target).
pub fn read_reply(buffer: &[u8]) -> Result<Parsed, RedisError> {
    parse(buffer, 0)
}

/// The node an error reply from the node at `answered_by` redirects to, if it is a Redis
/// Cluster's `MOVED` or `ASK` (public for the fuzz target).
pub fn redirected_to(message: &str, answered_by: &str) -> Option<String> {
    Redirection::read(message, answered_by).map(|redirection| match redirection {
        Redirection::Moved { address, .. } | Redirection::Ask { address } => address,
    })
}

/// One reply from the start of `buffer` and the bytes it took, or `None` while incomplete.
/// An error reply is `Err` inside (the connection is still good); only an element of an array
/// cannot be one.
fn parse(buffer: &[u8], depth: usize) -> Result<Parsed, RedisError> {
    let Some(end) = buffer.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let (&kind, line) = buffer[..end]
        .split_first()
        .ok_or_else(|| RedisError::Protocol("an empty line".to_owned()))?;
    let text = std::str::from_utf8(line).map_err(|_| RedisError::Protocol("not UTF-8".into()))?;
    let after = end + 2;
    let number = || {
        text.parse::<i64>()
            .map_err(|_| RedisError::Protocol(format!("`{text}` is not a number")))
    };
    let reply = match kind {
        b'+' => Ok(Reply::Status(text.to_owned())),
        b'-' => Err(text.to_owned()),
        b':' => Ok(Reply::Integer(number()?)),
        b'$' => {
            let Ok(length) = usize::try_from(number()?) else {
                return Ok(Some((Ok(Reply::Bulk(None)), after)));
            };
            if buffer.len() < after + length + 2 {
                return Ok(None);
            }
            if &buffer[after + length..after + length + 2] != b"\r\n" {
                return Err(RedisError::Protocol(
                    "a string longer than it said".to_owned(),
                ));
            }
            let value = buffer[after..after + length].to_vec();
            return Ok(Some((Ok(Reply::Bulk(Some(value))), after + length + 2)));
        }
        b'*' => {
            let Ok(count) = usize::try_from(number()?) else {
                return Ok(Some((Ok(Reply::Array(None)), after)));
            };
            if depth >= MAX_DEPTH {
                return Err(RedisError::Protocol("arrays nested too deep".to_owned()));
            }
            let mut items = Vec::with_capacity(count.min(64));
            let mut used = after;
            for _ in 0..count {
                let Some((item, length)) = parse(&buffer[used..], depth + 1)? else {
                    return Ok(None);
                };
                // Not the command's refusal (the command ran): a reply this client cannot read.
                let item = item.map_err(|message| {
                    RedisError::Protocol(format!("an error inside an array: {message}"))
                })?;
                items.push(item);
                used += length;
            }
            return Ok(Some((Ok(Reply::Array(Some(items))), used)));
        }
        other => {
            return Err(RedisError::Protocol(format!(
                "unknown reply type `{}`",
                char::from(other)
            )));
        }
    };
    Ok(Some((reply, after)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_before_running_say_a_command_did_not_run() {
        for refused in [
            "READONLY You can't write against a read only replica.",
            "LOADING Redis is loading the dataset in memory",
            "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
            "NOPERM User hangar has no permissions to run the 'evalsha' command",
            "ASKING refused: NOPERM User hangar has no permissions to run the 'asking' command",
            "ERR Error running script (call to f_1a2b): @user_script:10: @user_script: 10: -READONLY You can't write against a read only replica.",
        ] {
            assert!(refused_before_running(refused), "{refused}");
        }
        for may_have_run in [
            "ERR user_script:12: Script attempted to access nonexistent global variable 'x'",
            "ERR upstream request timeout",
            "ERR Error running script (call to f_1a2b): @user_script:3: user_script:3: attempt to compare nil with number",
            "BUSYGROUP Consumer Group name already exists",
            "OOMKILLER",
        ] {
            assert!(!refused_before_running(may_have_run), "{may_have_run}");
        }
    }

    #[test]
    fn a_refusal_inside_a_script_says_it_did_not_run_only_up_to_the_first_write() {
        // A replica, or a server short of memory, refuses a script at its first write.
        for refused in [
            "READONLY You can't write against a read only replica. script: 6163…, on @user_script:1.",
            "OOM command not allowed when used memory > 'maxmemory'. script: 6163…, on @user_script:1.",
        ] {
            assert!(refused_before_running(refused), "{refused}");
        }
        // An ACL is checked at each command: `take`'s `ZADD` is refused after its `SET` ran.
        for may_have_run in [
            "NOPERM User hangar has no permissions to run the 'zadd' command script: 6163…, on @user_script:111.",
            "ERR Error running script (call to f_6163…): @user_script:111: @user_script: 111: -NOPERM User hangar has no permissions to run the 'zadd' command",
            "ERR The user executing the script can't run this command or subcommand script: 6163…, on @user_script:111.",
            "ERR ACL failure in script: User hangar has no permissions to run the 'zadd' command script: 6163…, on @user_script:111.",
        ] {
            assert!(!refused_before_running(may_have_run), "{may_have_run}");
        }
    }

    #[test]
    fn urls_name_the_server_the_user_and_the_database_but_no_password() {
        let target = Target::parse("redis://limits.hangar.svc:6380/2", None).unwrap();
        assert_eq!(target.address, "limits.hangar.svc:6380");
        assert_eq!(target.database, 2);
        let target = Target::parse("redis://gateway@10.0.0.5", Some("pw".into())).unwrap();
        assert_eq!(target.address, "10.0.0.5:6379");
        assert_eq!(target.username.as_deref(), Some("gateway"));
        assert!(!format!("{target:?}").contains("pw"));
        assert_eq!(
            Target::parse("redis://[::1]", None).unwrap().address,
            "[::1]:6379"
        );
        let target = Target::parse("redis://[::1]:7000/", None).unwrap();
        assert_eq!(
            (target.address.as_str(), host_of(&target.address)),
            ("[::1]:7000", "::1")
        );
        let sentinels =
            Target::parse("redis://gw@sentinel-0:26379,sentinel-1,[::1]:26380/1", None).unwrap();
        assert_eq!(sentinels.address, "sentinel-0:26379");
        assert_eq!(sentinels.more_addresses, ["sentinel-1:6379", "[::1]:26380"]);
        assert_eq!(sentinels.database, 1);
        let target = Target::parse("rediss://limits.hangar.svc", None).unwrap();
        assert!(target.tls);
        assert_eq!(host_of(&target.address), "limits.hangar.svc");
        assert!(!Target::parse("redis://limits", None).unwrap().tls);
        for (url, says) in [
            ("redis://user:secret@host", "passwordFile"),
            ("http://host", "not a `redis://"),
            ("redis://", "no host"),
            ("redis://a,,b", "no host"),
            ("redis://a,b:x", "not a port"),
            ("redis://host:port", "not a port"),
            ("redis://host/zero", "not a database"),
            ("http://user:secret@host", "`http://…@host` is not"),
            ("user:secret@host", "`…@host` is not"),
            ("redis://:ab/secret@host", "passwordFile"),
            ("http://:12/secret@host", "`http://…@host` is not"),
        ] {
            let error = Target::parse(url, None).unwrap_err();
            assert!(error.contains(says), "{url}: {error}");
            assert!(!error.contains("secret"), "{error}");
        }
    }

    #[test]
    fn replies_are_read_whole_or_not_at_all() {
        let cases: [(&[u8], Reply); 5] = [
            (b"+OK\r\n", Reply::Status("OK".into())),
            (b":-12\r\n", Reply::Integer(-12)),
            (b"$3\r\na\r\n\r\n", Reply::Bulk(Some(b"a\r\n".to_vec()))),
            (b"$-1\r\n", Reply::Bulk(None)),
            (
                b"*2\r\n:0\r\n*1\r\n$2\r\nhi\r\n",
                Reply::Array(Some(vec![
                    Reply::Integer(0),
                    Reply::Array(Some(vec![Reply::Bulk(Some(b"hi".to_vec()))])),
                ])),
            ),
        ];
        for (bytes, expected) in cases {
            let (reply, used) = parse(bytes, 0).unwrap().unwrap();
            assert_eq!(reply, Ok(expected));
            assert_eq!(used, bytes.len());
            // Every shorter prefix is incomplete, never misread.
            for cut in 0..bytes.len() {
                assert!(parse(&bytes[..cut], 0).unwrap().is_none(), "{cut}");
            }
        }
        let (error, _) = parse(b"-NOSCRIPT No matching script\r\n", 0)
            .unwrap()
            .unwrap();
        assert_eq!(error, Err("NOSCRIPT No matching script".to_owned()));
    }

    #[test]
    fn hostile_replies_are_errors_not_panics() {
        for bytes in [
            &b"?what\r\n"[..],
            b":twelve\r\n",
            b"\r\n",
            b"*1\r\n-ERR inside\r\n",
            b"$99999999999999999999\r\n",
            b"$1\r\nab\r\n",
        ] {
            assert!(parse(bytes, 0).is_err(), "{bytes:?}");
        }
        let deep = "*1\r\n".repeat(MAX_DEPTH + 1);
        assert!(parse(deep.as_bytes(), 0).is_err());
    }

    #[test]
    fn a_write_refused_by_a_replica_ends_the_connection_in_every_version() {
        for said in [
            // Redis 7.
            "-READONLY You can't write against a read only replica. script: 6163…, on @user_script:1.\r\n",
            // Redis 5 and 6 wrap it in the script's error.
            "-ERR Error running script (call to f_6163…): @user_script:1: @user_script: 1: -READONLY You can't write against a read only replica. \r\n",
        ] {
            let mut buffer = format!(":1\r\n{said}").into_bytes();
            let (first, first_reply) = oneshot::channel();
            let (second, second_reply) = oneshot::channel();
            let mut waiting = VecDeque::from([
                (Instant::now(), Some(first)),
                (Instant::now(), Some(second)),
            ]);
            let ended = hand_out(&mut buffer, &mut waiting, &mut None);
            assert!(matches!(ended, Err(RedisError::Demoted(_))), "{said}");
            // The replies read are handed out all the same, in order.
            assert!(matches!(
                first_reply.blocking_recv(),
                Ok(Ok(Ok(Reply::Integer(1))))
            ));
            assert!(matches!(second_reply.blocking_recv(), Ok(Ok(Err(_)))));
        }
        let mut buffer = b"-ERR unknown command\r\n".to_vec();
        let (to, _reply) = oneshot::channel();
        let mut waiting = VecDeque::from([(Instant::now(), Some(to))]);
        assert!(
            hand_out(&mut buffer, &mut waiting, &mut None).is_ok(),
            "other errors keep it"
        );
    }

    #[test]
    fn keys_fall_in_the_slots_redis_cluster_gives_them() {
        // Each as `CLUSTER KEYSLOT` answered on Redis 7.0.
        for (key, expected) in [
            ("123456789", 12739),
            ("foo", 12182),
            ("hangar:rates:team", 14162),
            ("{user1000}.following", 3443),
            ("user1000", 3443),
            // An empty tag is no tag; only the first tag counts.
            ("foo{}{bar}", 8363),
            ("foo{{bar}}zap", 4015),
            ("foo{bar}{zap}", 5061),
            ("", 0),
            ("{}", 15257),
        ] {
            assert_eq!(slot(key), expected, "{key}");
        }
    }

    #[test]
    fn redirections_name_the_node_to_ask() {
        let read = |message| Redirection::read(message, "10.0.0.1:7000");
        assert_eq!(
            read("MOVED 3999 10.0.0.2:6381"),
            Some(Redirection::Moved {
                slot: 3999,
                address: "10.0.0.2:6381".into()
            })
        );
        assert_eq!(
            read("ASK 3999 redis-1.redis.svc:6379"),
            Some(Redirection::Ask {
                address: "redis-1.redis.svc:6379".into()
            })
        );
        // No host: the answering node's own. An IPv6 address gets brackets.
        assert_eq!(
            read("MOVED 1 :6381"),
            Some(Redirection::Moved {
                slot: 1,
                address: "10.0.0.1:6381".into()
            })
        );
        for bare_or_not in ["MOVED 1 fd00::2:6381", "MOVED 1 [fd00::2]:6381"] {
            assert_eq!(
                read(bare_or_not),
                Some(Redirection::Moved {
                    slot: 1,
                    address: "[fd00::2]:6381".into()
                })
            );
        }
        for other in [
            "MOVED 16384 10.0.0.2:6381",
            "MOVED x 10.0.0.2:6381",
            "MOVED 1 10.0.0.2",
            "MOVED 1",
            "MOVED 1 ?:6381",
            "ASK 1 ]]:9",
            "ERR unknown command",
            "CLUSTERDOWN The cluster is down",
        ] {
            assert_eq!(read(other), None, "{other}");
        }
    }

    #[test]
    fn a_refused_asking_is_the_answer_of_the_command_it_came_with() {
        let (first, first_reply) = oneshot::channel();
        let (second, second_reply) = oneshot::channel();
        let mut waiting = VecDeque::from([
            (Instant::now(), None),
            (Instant::now(), Some(first)),
            (Instant::now(), None),
            (Instant::now(), Some(second)),
        ]);
        // The refusal and the command's own reply come in two reads.
        let mut asking_refused = None;
        let mut buffer = b"-NOPERM no permissions to run the 'asking' command\r\n".to_vec();
        hand_out(&mut buffer, &mut waiting, &mut asking_refused).unwrap();
        buffer.extend_from_slice(b"-MOVED 1 10.0.0.1:7000\r\n+OK\r\n+OK\r\n");
        hand_out(&mut buffer, &mut waiting, &mut asking_refused).unwrap();
        let Ok(Ok(Err(said))) = first_reply.blocking_recv() else {
            panic!("no error for the first command");
        };
        assert!(said.starts_with("ASKING refused: NOPERM"), "{said}");
        // An `ASKING` that worked leaves its command's own answer.
        assert!(matches!(
            second_reply.blocking_recv(),
            Ok(Ok(Ok(Reply::Status(ok)))) if ok == "OK"
        ));
        assert!(waiting.is_empty());
    }

    #[test]
    fn a_command_that_worked_without_its_asking_keeps_its_answer() {
        // The slot finished moving between the `ASK` and the command: the node refused `ASKING`
        // (an ACL user without `+asking`) and ran the command, as it holds the slot now.
        let (to, reply) = oneshot::channel();
        let mut waiting = VecDeque::from([(Instant::now(), None), (Instant::now(), Some(to))]);
        let mut buffer = b"-NOPERM no permissions to run the 'asking' command\r\n:7\r\n".to_vec();
        hand_out(&mut buffer, &mut waiting, &mut None).unwrap();
        assert!(matches!(
            reply.blocking_recv(),
            Ok(Ok(Ok(Reply::Integer(7))))
        ));
    }

    #[test]
    fn an_error_inside_an_array_is_unreadable_not_a_refusal() {
        // The command it answers ran: it must not pass for an error reply, which says it did not.
        let error = parse(b"*2\r\n:1\r\n-ERR inside\r\n", 0).unwrap_err();
        assert!(matches!(error, RedisError::Protocol(_)), "{error:?}");
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        assert_eq!(
            encode(&["GET", "a b"]),
            b"*2\r\n$3\r\nGET\r\n$3\r\na b\r\n".to_vec()
        );
        let long = "x".repeat(1234567);
        let encoded = encode(&["", &long]);
        assert!(encoded.starts_with(b"*2\r\n$0\r\n\r\n$1234567\r\nxx"));
    }

    #[test]
    fn scripts_are_named_by_their_sha1() {
        // SHA-1 of the empty string.
        assert_eq!(
            Script::new("").sha1,
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
    }
}
