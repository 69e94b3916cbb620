//! Several `onair` processes as one cluster on this machine (issue 14): node `i` on
//! 127.0.0.`i+1`, all sharing one fresh PostgreSQL database and one NATS server, with a
//! live-registry bucket and a subject prefix of the run's own so runs never cross.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::{Connection, Executor, PgConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::server::{Listen, ServerProcess};

/// The token edges show the origin; the same on every node of a run, and never printed.
const RELAY_TOKEN: &str = "onair-bench-relay-token";
/// How long a node may take to see the channel live on another node.
const SERVING_LIMIT: Duration = Duration::from_secs(15);

/// Where the cluster's shared services are.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// PostgreSQL server the nodes share, as a URL of a database to connect to while a fresh
    /// one is created for each run (and dropped after).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub postgres: String,
    /// NATS server (with JetStream) the nodes share.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub nats: String,
}

/// The servers of one run: one process on its own, or the nodes of a [`Cluster`].
#[derive(Debug)]
pub enum Servers {
    /// A single node (no NATS, its own database).
    Single(Node),
    /// Nodes sharing a database and NATS.
    Cluster(Cluster),
}

impl Servers {
    /// The nodes; the first is the single server or the cluster's first node.
    pub fn nodes(&self) -> &[Node] {
        match self {
            Servers::Single(node) => std::slice::from_ref(node),
            Servers::Cluster(c) => &c.nodes,
        }
    }

    /// [`Servers::nodes`], mutable (to ask whether a process still runs).
    pub fn nodes_mut(&mut self) -> &mut [Node] {
        match self {
            Servers::Single(node) => std::slice::from_mut(node),
            Servers::Cluster(c) => &mut c.nodes,
        }
    }

    /// Stops every node and, for a cluster, removes what the run made in NATS and
    /// PostgreSQL.
    pub async fn stop(self) {
        match self {
            Servers::Single(node) => node.process.stop(),
            Servers::Cluster(c) => c.stop().await,
        }
    }
}

/// The running nodes of one run and what they share.
#[derive(Debug)]
pub struct Cluster {
    /// The nodes, in the order they were started (the first one migrated the database).
    pub nodes: Vec<Node>,
    database: FreshDatabase,
    nats: String,
    bucket: String,
}

/// One node: its name (`cluster.node_id`) and process.
#[derive(Debug)]
pub struct Node {
    /// The name it has in the cluster and in the bench's output.
    pub name: String,
    /// The server.
    pub process: ServerProcess,
}

impl Cluster {
    /// Starts one node per name, one after the other (the first migrates the fresh database
    /// and makes the signing key, the rest find both), all pinned to `core` when given.
    /// `env` is added to every node's settings.
    pub async fn start(
        args: &ClusterArgs,
        binary: &Path,
        names: &[String],
        core: Option<usize>,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Cluster> {
        let run = run_name();
        let database = FreshDatabase::create(&args.postgres, &run).await?;
        let mut cluster = Cluster {
            nodes: Vec::with_capacity(names.len()),
            database,
            nats: args.nats.clone(),
            bucket: run.clone(),
        };
        for (i, name) in names.iter().enumerate() {
            let started = cluster.start_node(binary, i, name, core, env);
            match started {
                Ok(process) => cluster.nodes.push(Node {
                    name: name.clone(),
                    process,
                }),
                Err(e) => {
                    cluster.stop().await;
                    return Err(e.context(format!("starting node {name}")));
                }
            }
        }
        Ok(cluster)
    }

    fn start_node(
        &self,
        binary: &Path,
        i: usize,
        name: &str,
        core: Option<usize>,
        env: &[(&str, &str)],
    ) -> anyhow::Result<ServerProcess> {
        let ip = Ipv4Addr::new(127, 0, 0, u8::try_from(i + 1).context("at most 254 nodes")?);
        let listen = Listen::free_on(ip)?;
        let advertise = format!("http://{}", listen.http);
        let mut settings: Vec<(&str, &str)> = vec![
            ("ONAIR_STORAGE_DATABASE_URL", &self.database.url),
            ("ONAIR_CLUSTER_NATS_URL", &self.nats),
            ("ONAIR_CLUSTER_NODE_ID", name),
            ("ONAIR_CLUSTER_LIVES_BUCKET", &self.bucket),
            ("ONAIR_CLUSTER_SUBJECT_PREFIX", &self.bucket),
            ("ONAIR_CLUSTER_RELAY_TOKEN", RELAY_TOKEN),
            ("ONAIR_CLUSTER_ADVERTISE_HTTP", &advertise),
        ];
        // Each node its own files (uploads, HLS); the database is what they share.
        let data = self.data_dir(name);
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        let data = data.display().to_string();
        settings.push(("ONAIR_STORAGE_DATA_DIR", &data));
        settings.extend_from_slice(env);
        let log = std::env::temp_dir().join(format!("{}-{name}.log", self.bucket));
        ServerProcess::start_at(
            binary,
            listen,
            core.map(|c| c.to_string()).as_deref(),
            log,
            &settings,
        )
    }

    fn data_dir(&self, node: &str) -> PathBuf {
        std::env::temp_dir().join(format!("{}-{node}", self.bucket))
    }

    /// One line naming the run's database, bucket and the nodes' addresses.
    pub fn describe(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("{} rtmp {} http {}", n.name, n.process.rtmp, n.process.http))
            .collect();
        format!(
            "cluster: database {}, NATS bucket and subject prefix {}, logs {}; {}",
            self.database.name,
            self.bucket,
            std::env::temp_dir()
                .join(format!("{}-<node>.log", self.bucket))
                .display(),
            nodes.join(", ")
        )
    }

    /// Kills every node, then deletes the bucket and drops the database (failures to clean
    /// up are printed, not returned: the figures are already taken).
    pub async fn stop(mut self) {
        for node in std::mem::take(&mut self.nodes) {
            node.process.stop();
            let _ = std::fs::remove_dir_all(self.data_dir(&node.name));
        }
        if let Err(e) = delete_bucket(&self.nats, &self.bucket).await {
            eprintln!("deleting the NATS bucket {}: {e:#}", self.bucket);
        }
        if let Err(e) = self.database.drop().await {
            eprintln!("dropping the database: {e:#}");
        }
    }
}

/// A name no other run of this or another bench process has: `onair_bench_<pid>_<n>`.
fn run_name() -> String {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    format!(
        "onair_bench_{}_{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    )
}

async fn delete_bucket(nats: &str, bucket: &str) -> anyhow::Result<()> {
    let config = onair::config::ClusterConfig {
        lives_bucket: bucket.to_owned(),
        ..Default::default()
    };
    let url = onair::secret::SecretText::new(nats.to_owned());
    let registry = tokio::time::timeout(
        Duration::from_secs(5),
        onair::relay::Registry::open(&url, &config),
    )
    .await
    .context("NATS did not answer within 5 s")??;
    Ok(registry.delete_bucket().await?)
}

/// A PostgreSQL database made for one run.
#[derive(Debug)]
struct FreshDatabase {
    /// The server's URL the bench connects to for `CREATE` and `DROP`.
    admin: String,
    name: String,
    /// The URL of the new database, for the nodes.
    url: String,
}

impl FreshDatabase {
    async fn create(admin: &str, name: &str) -> anyhow::Result<FreshDatabase> {
        let mut conn = PgConnection::connect(admin)
            .await
            .context("connecting to PostgreSQL (--postgres)")?;
        conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .with_context(|| format!("creating database {name}"))?;
        let _ = conn.close().await;
        Ok(FreshDatabase {
            admin: admin.to_owned(),
            name: name.to_owned(),
            url: with_database(admin, name)?,
        })
    }

    async fn drop(self) -> anyhow::Result<()> {
        let mut conn = PgConnection::connect(&self.admin).await?;
        // FORCE: a killed node's connections may not be gone from the server yet.
        conn.execute(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name).as_str())
            .await
            .with_context(|| format!("dropping database {}", self.name))?;
        let _ = conn.close().await;
        Ok(())
    }
}

/// `url` with its database (the path) replaced by `name`, the query kept.
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base
        .find("://")
        .map(|i| i + 3)
        .context("the PostgreSQL URL has no scheme")?;
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

/// Waits until `http` answers `GET path` with 200 and a first body byte: for HTTP-FLV on an
/// edge, that the edge sees the channel live on its origin and its pull has a feed.
pub async fn wait_serving(http: SocketAddr, path: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + SERVING_LIMIT;
    let mut last = String::new();
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(3), get_status(http, path)).await {
            Ok(Ok(200)) => return Ok(()),
            Ok(Ok(status)) => last = format!("HTTP {status}"),
            Ok(Err(e)) => last = format!("{e:#}"),
            Err(_) => last = "no answer within 3 s".into(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{http} did not serve {path} within {SERVING_LIMIT:?} (last: {last})")
}

/// The status of `GET path`, once the response head and a first body byte are in.
async fn get_status(http: SocketAddr, path: &str) -> anyhow::Result<u16> {
    let mut s = tokio::net::TcpStream::connect(http).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n")
            && buf.len() > end + 4
        {
            let head = String::from_utf8_lossy(&buf[..end]);
            return head
                .get(9..12)
                .and_then(|c| c.parse().ok())
                .context("no HTTP status line");
        }
        if s.read_buf(&mut buf).await? == 0 {
            let head = String::from_utf8_lossy(&buf);
            return head
                .get(9..12)
                .and_then(|c| c.parse().ok())
                .context("closed before an HTTP status line");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_swapped_in_the_url() {
        let f = |u| with_database(u, "fresh").unwrap();
        assert_eq!(
            f("postgres://postgres@127.0.0.1:5432/postgres"),
            "postgres://postgres@127.0.0.1:5432/fresh"
        );
        assert_eq!(
            f("postgres://u:p@h/db?sslmode=disable"),
            "postgres://u:p@h/fresh?sslmode=disable"
        );
        assert_eq!(f("postgres://h:5432"), "postgres://h:5432/fresh");
    }
}
