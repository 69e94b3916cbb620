//! Several nodes as one platform (issue 14, the chat half): three in-process servers on
//! 127.0.0.1, 127.0.0.2 and 127.0.0.3 sharing one PostgreSQL schema and the real NATS server
//! (a subject prefix per test, so parallel runs never cross), with real WebSocket chat
//! clients spread over them. Chat order is the same on every node and is the id order; a ban
//! through one node's API refuses a send on another within a second; slow mode set on one
//! node applies on another; likes and the audience reach every node; a node whose NATS is
//! unreachable keeps its own chat and says it is degraded.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use onair::secret::SecretText;
use onair_e2e::{TestServer, random_name, require_nats, wait_until};
use onair_store::{NewChannel, Role, User};
use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const TIMEOUT: Duration = Duration::from_secs(10);

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

struct Client(Socket);

impl Client {
    async fn join(node: &TestServer, channel: &str) -> Client {
        let url = format!("ws://{}/api/v1/channels/{channel}/chat", node.http_addr);
        let (socket, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connects in time")
            .expect("chat socket opens");
        let mut client = Client(socket);
        assert_eq!(client.next_where(|_| true).await["type"], "history");
        client
    }

    async fn signed_in(node: &TestServer, channel: &str, token: &str) -> Client {
        let mut c = Client::join(node, channel).await;
        c.send(json!({"type": "auth", "v": 1, "token": token}))
            .await;
        c.next_of("ack").await;
        c
    }

    async fn send(&mut self, frame: Value) {
        self.0.send(Message::text(frame.to_string())).await.unwrap();
    }

    async fn next_of(&mut self, kind: &str) -> Value {
        self.next_where(|v| v["type"] == kind).await
    }

    /// The next frame `wanted` accepts, within 10 s.
    async fn next_where(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        tokio::time::timeout(TIMEOUT, async {
            loop {
                let msg = self
                    .0
                    .next()
                    .await
                    .expect("socket open")
                    .expect("no socket error");
                if let Message::Text(text) = msg {
                    let v: Value = serde_json::from_str(&text).unwrap();
                    if wanted(&v) {
                        return v;
                    }
                }
            }
        })
        .await
        .expect("the frame within 10 s")
    }
}

/// One PostgreSQL schema every node of a test opens (the harness gives each server its own
/// database otherwise).
struct SharedSchema {
    admin_url: String,
    schema: String,
    url: String,
}

impl SharedSchema {
    async fn create() -> Option<SharedSchema> {
        let admin_url = onair_store::testing::postgres_url()?;
        let schema = random_name("onair_cluster").replace('-', "_");
        let mut admin = PgConnection::connect(&admin_url).await.unwrap();
        admin
            .execute(format!("CREATE SCHEMA \"{schema}\"").as_str())
            .await
            .unwrap();
        let _ = admin.close().await;
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{sep}options=-c%20search_path%3D{schema}");
        Some(SharedSchema {
            admin_url,
            schema,
            url,
        })
    }

    async fn remove(self) {
        let mut admin = PgConnection::connect(&self.admin_url).await.unwrap();
        let _ = admin
            .execute(format!("DROP SCHEMA \"{}\" CASCADE", self.schema).as_str())
            .await;
        let _ = admin.close().await;
    }
}

/// Node `i` on 127.0.0.`i`, port 0, in the cluster of `prefix`.
async fn node(i: u8, db: &str, nats: &str, prefix: &str) -> TestServer {
    let (db, nats, prefix) = (db.to_owned(), nats.to_owned(), prefix.to_owned());
    TestServer::start(move |c| {
        let ip = [127, 0, 0, i];
        c.rtmp.listen = SocketAddr::from((ip, 0));
        c.http.listen = SocketAddr::from((ip, 0));
        c.tls.rtmps_listen = SocketAddr::from((ip, 0));
        c.storage.database_url = Some(SecretText::new(db));
        c.cluster.nats_url = Some(SecretText::new(nats));
        c.cluster.node_id = Some(format!("node-{i}"));
        c.cluster.subject_prefix = prefix;
        // 50 messages per client as fast as it can send them.
        c.chat.user_messages = 1000;
        c.chat.flood_frames_per_second = 1000;
        c.chat.viewers_interval = Duration::from_millis(300);
    })
    .await
}

fn connected(node: &TestServer) -> bool {
    node.state().cluster.as_ref().is_some_and(|c| c.connected())
}

/// A JSON request; returns the status and the body.
async fn call(
    node: &TestServer,
    method: &str,
    path: &str,
    token: &str,
    body: Value,
) -> (u16, String) {
    let mut stream = TcpStream::connect(node.http_addr).await.unwrap();
    let body = body.to_string();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        node.http_addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    (text[9..12].parse().unwrap(), text)
}

async fn get(node: &TestServer, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(node.http_addr).await.unwrap();
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        node.http_addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    (text[9..12].parse().unwrap(), text)
}

async fn account(node: &TestServer, name: &str, role: Role) -> (User, String) {
    let platform = node.platform();
    let user = platform
        .create_user(name, "password-123", role)
        .await
        .unwrap();
    let (token, _) = platform.issue_access_token(&user).await.unwrap();
    (user, token.expose().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_deliver_one_order_and_share_moderation_slow_mode_likes_and_audience() {
    let Some(nats) = require_nats() else { return };
    let Some(db) = SharedSchema::create().await else {
        return;
    };
    let prefix = random_name("t");
    // The first node migrates the schema and makes the signing key; the others find both.
    let n1 = node(1, &db.url, &nats, &prefix).await;
    let n2 = node(2, &db.url, &nats, &prefix).await;
    let n3 = node(3, &db.url, &nats, &prefix).await;
    let nodes = [&n1, &n2, &n3];
    assert!(
        wait_until(TIMEOUT, || nodes.iter().all(|n| connected(n))).await,
        "every node connects to NATS"
    );

    let (owner, owner_token) = account(&n1, "owner", Role::Streamer).await;
    n1.platform()
        .store()
        .create_channel(NewChannel {
            slug: "room".into(),
            title: "room".into(),
            owner_id: owner.id,
            category: String::new(),
            tags: vec![],
        })
        .await
        .unwrap();
    // A sender and a reader on each node; tokens made on node 1 work on every node.
    let mut senders = Vec::new();
    let mut readers = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let (_, token) = account(&n1, &format!("sender{i}"), Role::Viewer).await;
        senders.push(Client::signed_in(n, "room", &token).await);
        readers.push(Client::join(n, "room").await);
    }

    // 3 × 50 messages at once, one sender per node.
    const PER_SENDER: usize = 50;
    let started = Instant::now();
    let sends = senders.iter_mut().enumerate().map(|(i, c)| async move {
        for k in 0..PER_SENDER {
            c.send(json!({"type": "chat", "v": 1, "text": format!("s{i}-{k}")}))
                .await;
        }
    });
    futures_util::future::join_all(sends).await;
    let mut seen = Vec::new();
    for c in senders.iter_mut().chain(readers.iter_mut()) {
        let mut got = Vec::new();
        while got.len() < 3 * PER_SENDER {
            let f = c.next_of("chat").await;
            got.push((
                f["id"].as_i64().unwrap(),
                f["text"].as_str().unwrap().to_owned(),
            ));
        }
        seen.push(got);
    }
    println!(
        "3 nodes, 6 clients: {} messages each, all delivered within {:?}",
        3 * PER_SENDER,
        started.elapsed()
    );
    let mut fetched = 0.0;
    for n in nodes {
        fetched += n
            .metric("onair_cluster_chat_gap_fetched_total")
            .await
            .unwrap_or_default();
    }
    println!("messages read from the store to fill gaps, over the 3 nodes: {fetched}");
    for (i, got) in seen.iter().enumerate() {
        assert_eq!(got, &seen[0], "client {i} saw another order than client 0");
    }
    assert!(
        seen[0].windows(2).all(|w| w[0].0 < w[1].0),
        "the order is the id order: {:?}",
        seen[0].iter().map(|m| m.0).collect::<Vec<_>>()
    );
    let channel = n1
        .platform()
        .store()
        .channel_by_slug("room")
        .await
        .unwrap()
        .unwrap();
    let stored = n1
        .platform()
        .store()
        .recent_chat_messages(channel.id, 500)
        .await
        .unwrap();
    let stored: Vec<_> = stored.iter().map(|m| (m.id, m.text.clone())).collect();
    assert_eq!(seen[0], stored, "every stored message, each once");
    for i in 0..3 {
        let mine: Vec<_> = seen[0]
            .iter()
            .filter(|(_, t)| t.starts_with(&format!("s{i}-")))
            .map(|(_, t)| t.clone())
            .collect();
        let sent: Vec<_> = (0..PER_SENDER).map(|k| format!("s{i}-{k}")).collect();
        assert_eq!(
            mine, sent,
            "sender {i}'s messages in the order it sent them"
        );
    }

    // The audience: every node's room counts the members of all three (6).
    for r in readers.iter_mut() {
        let f = r
            .next_where(|v| v["type"] == "viewers" && v["chat"] == 6)
            .await;
        assert_eq!(f["total"], 6);
    }

    // Likes on node 3 reach node 1's room.
    senders[2]
        .send(json!({"type": "like", "v": 1, "count": 7}))
        .await;
    let like = readers[0].next_of("like").await;
    assert_eq!(
        (like["count"].as_u64(), like["total"].as_u64()),
        (Some(7), Some(7))
    );

    // A ban through node 1's API refuses a send on node 3 within a second, with the error a
    // ban on node 3 itself gives; node 2's room is told.
    let (eve, eve_token) = account(&n1, "eve", Role::Viewer).await;
    let mut eve_client = Client::signed_in(&n3, "room", &eve_token).await;
    let (status, body) = call(
        &n1,
        "POST",
        "/api/v1/channels/room/bans",
        &owner_token,
        json!({"user_id": eve.id}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let banned_at = Instant::now();
    eve_client
        .send(json!({"type": "chat", "v": 1, "text": "let me", "nonce": "e1"}))
        .await;
    let refusal = eve_client
        .next_where(|v| v["type"] == "error" || v["type"] == "ack")
        .await;
    let took = banned_at.elapsed();
    assert_eq!(refusal["code"], "channel_banned", "{refusal}");
    assert!(took < Duration::from_secs(1), "refused after {took:?}");
    let notice = readers[1]
        .next_where(|v| v["type"] == "system" && v["event"] == "user_banned")
        .await;
    assert_eq!(notice["user_id"], eve.id);

    // Slow mode set through node 2 applies on node 1.
    let (_, sam_token) = account(&n1, "sam", Role::Viewer).await;
    let mut sam_client = Client::signed_in(&n1, "room", &sam_token).await;
    let (status, body) = call(
        &n2,
        "PUT",
        "/api/v1/channels/room/slow-mode",
        &owner_token,
        json!({"seconds": 30}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let notice = readers[0]
        .next_where(|v| v["type"] == "system" && v["event"] == "slow_mode")
        .await;
    assert_eq!(notice["seconds"], 30);
    sam_client
        .send(json!({"type": "chat", "v": 1, "text": "one", "nonce": "a"}))
        .await;
    assert_eq!(sam_client.next_of("ack").await["nonce"], "a");
    sam_client
        .send(json!({"type": "chat", "v": 1, "text": "two", "nonce": "b"}))
        .await;
    let refusal = sam_client.next_of("error").await;
    assert_eq!(
        (refusal["code"].as_str(), refusal["nonce"].as_str()),
        (Some("slow_mode"), Some("b"))
    );

    for n in nodes {
        let (status, body) = get(n, "/readyz").await;
        assert_eq!(status, 200);
        assert!(body.ends_with("ready\ncluster: connected\n"), "{body}");
        assert_eq!(n.metric("onair_cluster_connected").await, Some(1.0));
    }
    drop((senders, readers, eve_client, sam_client));
    for n in [n1, n2, n3] {
        n.shutdown().await;
    }
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_nats_is_unreachable_keeps_its_chat_and_says_it_is_degraded() {
    let Some(db) = SharedSchema::create().await else {
        return;
    };
    // Nothing listens on port 1: every connection attempt is refused.
    let prefix = random_name("t");
    let n = node(1, &db.url, "nats://127.0.0.1:1", &prefix).await;
    let other = node(2, &db.url, "nats://127.0.0.1:1", &prefix).await;
    let (owner, owner_token) = account(&n, "owner", Role::Streamer).await;
    n.platform()
        .store()
        .create_channel(NewChannel {
            slug: "alone".into(),
            title: "alone".into(),
            owner_id: owner.id,
            category: String::new(),
            tags: vec![],
        })
        .await
        .unwrap();
    let mut a = Client::signed_in(&n, "alone", &owner_token).await;
    let mut b = Client::join(&n, "alone").await;
    // The other node's room is open before anything is said: it hears of nothing either.
    let (_, viewer_token) = account(&n, "viewer", Role::Viewer).await;
    let mut c = Client::signed_in(&other, "alone", &viewer_token).await;
    let mut d = Client::join(&other, "alone").await;
    a.send(json!({"type": "chat", "v": 1, "text": "still here", "nonce": "n"}))
        .await;
    let seen = b.next_of("chat").await;
    assert_eq!(seen["text"], "still here");
    assert!(a.next_of("ack").await["id"].as_i64().is_some());

    let (status, body) = get(&n, "/readyz").await;
    assert_eq!(status, 200, "still ready: it serves its own members");
    assert!(body.ends_with("ready\ncluster: degraded\n"), "{body}");
    assert_eq!(n.metric("onair_cluster_connected").await, Some(0.0));
    assert!(
        n.metric("onair_cluster_publish_failures_total")
            .await
            .is_some_and(|v| v >= 1.0),
        "the message that could not be published is counted"
    );

    // Without NATS the shared store still orders the room: a message taken on the other node
    // is numbered after "still here", so the other node's members get the one they never
    // heard of from the store first, after the reorder hold.
    c.send(json!({"type": "chat", "v": 1, "text": "over here"}))
        .await;
    let first = d.next_of("chat").await;
    let second = d.next_of("chat").await;
    assert_eq!(
        (first["text"].as_str(), second["text"].as_str()),
        (Some("still here"), Some("over here"))
    );
    assert!(first["id"].as_i64() < second["id"].as_i64());
    assert_eq!(
        other.metric("onair_cluster_chat_gap_fetched_total").await,
        Some(1.0)
    );
    drop((a, b, c, d));
    n.shutdown().await;
    other.shutdown().await;
    db.remove().await;
}

/// A TCP proxy to NATS whose connections can be cut, and new ones refused, until restored:
/// NATS lost and found again, as a node sees it.
struct CuttableProxy {
    addr: SocketAddr,
    cut: tokio::sync::watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl CuttableProxy {
    async fn start(upstream: SocketAddr) -> CuttableProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, _) = tokio::sync::watch::channel(false);
        let watcher = cut.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut cut = watcher.subscribe();
                if *cut.borrow() {
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        CuttableProxy { addr, cut, accept }
    }

    fn cut(&self) {
        self.cut.send_replace(true);
    }

    fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_back_on_nats_reads_what_it_missed_from_the_store() {
    let Some(nats) = require_nats() else { return };
    let Some(db) = SharedSchema::create().await else {
        return;
    };
    let upstream = nats
        .trim_start_matches("nats://")
        .parse::<SocketAddr>()
        .expect("ONAIR_TEST_NATS as nats://ip:port");
    let proxy = CuttableProxy::start(upstream).await;
    let prefix = random_name("t");
    let n1 = node(1, &db.url, &nats, &prefix).await;
    let n2 = node(2, &db.url, &format!("nats://{}", proxy.addr), &prefix).await;
    assert!(wait_until(TIMEOUT, || connected(&n1) && connected(&n2)).await);
    let (owner, owner_token) = account(&n1, "owner", Role::Streamer).await;
    n1.platform()
        .store()
        .create_channel(NewChannel {
            slug: "lossy".into(),
            title: "lossy".into(),
            owner_id: owner.id,
            category: String::new(),
            tags: vec![],
        })
        .await
        .unwrap();
    let mut speaker = Client::signed_in(&n1, "lossy", &owner_token).await;
    let (_, viewer_token) = account(&n1, "viewer", Role::Viewer).await;
    let mut listener = Client::signed_in(&n2, "lossy", &viewer_token).await;

    proxy.cut();
    assert!(
        wait_until(TIMEOUT, || !connected(&n2)).await,
        "node 2 sees NATS gone"
    );
    let (status, body) = get(&n2, "/readyz").await;
    assert_eq!(status, 200);
    assert!(body.ends_with("cluster: degraded\n"), "{body}");
    // While node 2 hears nothing: slow mode and a message, the room's last one.
    let (status, body) = call(
        &n1,
        "PUT",
        "/api/v1/channels/lossy/slow-mode",
        &owner_token,
        json!({"seconds": 60}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    speaker
        .send(json!({"type": "chat", "v": 1, "text": "while you were away"}))
        .await;
    speaker.next_of("ack").await;

    proxy.restore();
    assert!(
        wait_until(TIMEOUT, || connected(&n2)).await,
        "node 2 reconnects"
    );
    // Both come from the store after the reconnection, in either order.
    let (mut slow_mode, mut missed) = (None, None);
    while slow_mode.is_none() || missed.is_none() {
        let f = listener
            .next_where(|v| {
                v["type"] == "chat" || (v["type"] == "system" && v["event"] == "slow_mode")
            })
            .await;
        if f["type"] == "chat" {
            missed = Some(f);
        } else {
            slow_mode = Some(f);
        }
    }
    assert_eq!(slow_mode.unwrap()["seconds"], 60);
    assert_eq!(missed.unwrap()["text"], "while you were away");
    listener
        .send(json!({"type": "chat", "v": 1, "text": "one", "nonce": "a"}))
        .await;
    listener.next_of("ack").await;
    listener
        .send(json!({"type": "chat", "v": 1, "text": "two", "nonce": "b"}))
        .await;
    assert_eq!(listener.next_of("error").await["code"], "slow_mode");
    drop((speaker, listener));
    n1.shutdown().await;
    n2.shutdown().await;
    db.remove().await;
}
