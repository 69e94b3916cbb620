//! The chat with real WebSocket clients (tokio-tungstenite) against a real server: order,
//! anonymous readers, history, limits, moderation on open connections, gifts (also 100 at
//! once), a restart, a store outage that leaves the video alone, like batches, a client that
//! never reads, the idle timeout, and danmaku found again with the replay of the live (also
//! when the publisher came back within the grace and the replay has two parts).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use onair::config::Config;
use onair::secret::SecretText;
use onair_e2e::ffmpeg::TEST_PATTERN_FPS as FPS;
use onair_e2e::{Ffmpeg, FlvReader, TestServer, require_ffmpeg};
use onair_store::{NewChannel, Role, User};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const TIMEOUT: Duration = Duration::from_secs(10);

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

struct Client(Socket);

impl Client {
    async fn join(server: &TestServer, channel: &str) -> Client {
        let url = format!("ws://{}/api/v1/channels/{channel}/chat", server.http_addr);
        let (socket, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connects in time")
            .expect("chat socket opens");
        let mut client = Client(socket);
        assert_eq!(client.next().await["type"], "history");
        client
    }

    async fn signed_in(server: &TestServer, channel: &str, token: &str) -> Client {
        let mut c = Client::join(server, channel).await;
        c.send(json!({"type": "auth", "v": 1, "token": token}))
            .await;
        assert_eq!(c.next_of("ack").await["type"], "ack");
        c
    }

    async fn send(&mut self, frame: Value) {
        self.0.send(Message::text(frame.to_string())).await.unwrap();
    }

    /// The next frame, skipping audience updates. The 10 s deadline covers the skipping too:
    /// audience frames arrive every few seconds and must not keep a waiting test alive.
    async fn next(&mut self) -> Value {
        tokio::time::timeout(TIMEOUT, self.next_any(|_| true))
            .await
            .expect("a frame within 10 s")
    }

    /// The next frame of this type, skipping others, within 10 s.
    async fn next_of(&mut self, kind: &str) -> Value {
        tokio::time::timeout(TIMEOUT, self.next_any(|v| v["type"] == kind))
            .await
            .unwrap_or_else(|_| panic!("a {kind} frame within 10 s"))
    }

    async fn next_any(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        loop {
            let msg = self
                .0
                .next()
                .await
                .expect("socket open")
                .expect("no socket error");
            if let Message::Text(text) = msg {
                let v: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["v"], 1);
                if v["type"] != "viewers" && wanted(&v) {
                    return v;
                }
            }
        }
    }
}

/// A JSON request; returns the status and the body.
async fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(server.http_addr).await.unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        server.http_addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&raw);
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

async fn account(server: &TestServer, name: &str, role: Role) -> (User, String) {
    let platform = server.platform();
    let user = platform
        .create_user(name, "password-123", role)
        .await
        .unwrap();
    let (token, _) = platform.issue_access_token(&user).await.unwrap();
    (user, token.expose().to_owned())
}

async fn channel(server: &TestServer, owner: &User, slug: &str) -> onair_store::Channel {
    server
        .platform()
        .store()
        .create_channel(NewChannel {
            slug: slug.into(),
            title: slug.into(),
            owner_id: owner.id,
            category: String::new(),
            tags: vec![],
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_see_each_other_in_order_and_anonymous_clients_only_read() {
    let server = TestServer::start(|_| {}).await;
    let (owner, owner_token) = account(&server, "owner", Role::Streamer).await;
    let (_, viewer_token) = account(&server, "viewer", Role::Viewer).await;
    channel(&server, &owner, "room").await;
    let mut a = Client::signed_in(&server, "room", &owner_token).await;
    let mut b = Client::signed_in(&server, "room", &viewer_token).await;
    let mut anon = Client::join(&server, "room").await;
    for i in 0..5 {
        a.send(json!({"type": "chat", "v": 1, "text": format!("a{i}")}))
            .await;
        b.send(json!({"type": "chat", "v": 1, "text": format!("b{i}")}))
            .await;
    }
    let mut seen = [Vec::new(), Vec::new(), Vec::new()];
    for (i, c) in [&mut a, &mut b, &mut anon].into_iter().enumerate() {
        while seen[i].len() < 10 {
            let f = c.next_of("chat").await;
            seen[i].push((
                f["id"].as_i64().unwrap(),
                f["text"].as_str().unwrap().to_owned(),
            ));
        }
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0], seen[2]);
    assert!(
        seen[0].windows(2).all(|w| w[0].0 < w[1].0),
        "in stored order"
    );
    let a_texts: Vec<_> = seen[0]
        .iter()
        .filter(|(_, t)| t.starts_with('a'))
        .map(|(_, t)| t.clone())
        .collect();
    assert_eq!(a_texts, ["a0", "a1", "a2", "a3", "a4"]);

    anon.send(json!({"type": "chat", "v": 1, "text": "let me in", "nonce": "x"}))
        .await;
    let e = anon.next_of("error").await;
    assert_eq!(
        (e["code"].as_str(), e["nonce"].as_str()),
        (Some("unauthenticated"), Some("x"))
    );
    anon.send(json!({"type": "auth", "v": 1, "token": "not-a-token"}))
        .await;
    assert_eq!(anon.next_of("error").await["code"], "invalid_token");

    // A new viewer gets the room's history, oldest first.
    let url = format!("ws://{}/api/v1/channels/room/chat", server.http_addr);
    let (mut late, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let Some(Ok(Message::Text(history))) = late.next().await else {
        panic!("no history")
    };
    let history: Value = serde_json::from_str(&history).unwrap();
    let ids: Vec<_> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, seen[0].iter().map(|(id, _)| *id).collect::<Vec<_>>());
    // And the REST history is newest first.
    let (status, page) = call(
        &server,
        "GET",
        "/api/v1/channels/room/messages?limit=3",
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(page["total"], 10);
    assert_eq!(page["items"][0]["id"].as_i64(), Some(seen[0][9].0));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_ends_the_sockets_sign_in_until_it_signs_in_again_and_a_refresh_needs_no_refusal()
{
    let server = TestServer::start(|_| {}).await;
    let (owner, _) = account(&server, "owner", Role::Streamer).await;
    let (viewer, token) = account(&server, "viewer", Role::Viewer).await;
    channel(&server, &owner, "logout").await;
    let mut v = Client::signed_in(&server, "logout", &token).await;
    v.send(json!({"type": "chat", "v": 1, "text": "before", "nonce": "c1"}))
        .await;
    assert_eq!(v.next_of("ack").await["nonce"], "c1");

    let (status, _) = call(&server, "POST", "/api/v1/auth/logout", Some(&token), None).await;
    assert_eq!(status, 204);
    v.send(json!({"type": "chat", "v": 1, "text": "after", "nonce": "c2"}))
        .await;
    let e = v.next_of("error").await;
    assert_eq!(
        (e["code"].as_str(), e["nonce"].as_str()),
        (Some("unauthenticated"), Some("c2"))
    );
    assert!(
        e["message"].as_str().unwrap().contains("sign-in has ended"),
        "{e}"
    );
    // The old token is refused; a new one signs the same socket in again.
    v.send(json!({"type": "auth", "v": 1, "token": token, "nonce": "a1"}))
        .await;
    assert_eq!(v.next_of("error").await["code"], "invalid_token");
    let (fresh, _) = server.platform().issue_access_token(&viewer).await.unwrap();
    v.send(json!({"type": "auth", "v": 1, "token": fresh.expose(), "nonce": "a2"}))
        .await;
    assert_eq!(v.next_of("ack").await["nonce"], "a2");
    v.send(json!({"type": "like", "v": 1, "nonce": "l1"})).await;
    assert_eq!(v.next_of("ack").await["nonce"], "l1");

    // After a refresh the socket takes the new token without a refused send first; another
    // account's token is refused and changes nothing.
    let (status, refreshed) = call(
        &server,
        "POST",
        "/api/v1/auth/refresh",
        Some(fresh.expose()),
        None,
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    let refreshed = refreshed["access_token"].as_str().unwrap();
    v.send(json!({"type": "auth", "v": 1, "token": refreshed, "nonce": "a3"}))
        .await;
    assert_eq!(v.next_of("ack").await["nonce"], "a3");
    let (owner_token, _) = server.platform().issue_access_token(&owner).await.unwrap();
    v.send(json!({"type": "auth", "v": 1, "token": owner_token.expose(), "nonce": "a4"}))
        .await;
    assert_eq!(v.next_of("error").await["code"], "already_authenticated");
    v.send(json!({"type": "chat", "v": 1, "text": "refreshed", "nonce": "c3"}))
        .await;
    assert_eq!(v.next_of("ack").await["nonce"], "c3");

    // A ban over the admin API ends every sign-in too; the socket is told of the ban.
    let (_, admin_token) = account(&server, "admin", Role::Admin).await;
    let (status, _) = call(
        &server,
        "PATCH",
        &format!("/api/v1/admin/users/{}", viewer.id),
        Some(&admin_token),
        Some(json!({"banned": true})),
    )
    .await;
    assert_eq!(status, 200);
    v.send(json!({"type": "chat", "v": 1, "text": "banned", "nonce": "c4"}))
        .await;
    let e = v.next_of("error").await;
    assert_eq!(
        (e["code"].as_str(), e["nonce"].as_str()),
        (Some("banned"), Some("c4"))
    );

    // Only the sends that were acked were stored (newest first).
    let (status, page) = call(
        &server,
        "GET",
        "/api/v1/channels/logout/messages",
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let texts: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["refreshed", "before"]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_and_slow_mode_answer_with_error_frames() {
    let server = TestServer::start(|c: &mut Config| {
        c.chat.user_messages = 3;
        c.chat.user_window = Duration::from_secs(60);
    })
    .await;
    let (owner, owner_token) = account(&server, "owner", Role::Streamer).await;
    let (_, viewer_token) = account(&server, "viewer", Role::Viewer).await;
    let (_, other_token) = account(&server, "other", Role::Viewer).await;
    channel(&server, &owner, "limits").await;
    let mut v = Client::signed_in(&server, "limits", &viewer_token).await;
    for _ in 0..3 {
        v.send(json!({"type": "chat", "v": 1, "text": "hi"})).await;
        v.next_of("ack").await;
    }
    v.send(json!({"type": "chat", "v": 1, "text": "one more"}))
        .await;
    assert_eq!(v.next_of("error").await["code"], "rate_limited");
    v.send(json!({"type": "chat", "v": 1, "text": "x".repeat(201)}))
        .await;
    assert_eq!(v.next_of("error").await["code"], "too_long");

    let (status, _) = call(
        &server,
        "PUT",
        "/api/v1/channels/limits/slow-mode",
        Some(&viewer_token),
        Some(json!({"seconds": 30})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(
        &server,
        "PUT",
        "/api/v1/channels/limits/slow-mode",
        Some(&owner_token),
        Some(json!({"seconds": 30})),
    )
    .await;
    assert_eq!(status, 204);
    let mut o = Client::signed_in(&server, "limits", &other_token).await;
    o.send(json!({"type": "chat", "v": 1, "text": "first"}))
        .await;
    o.next_of("ack").await;
    o.send(json!({"type": "chat", "v": 1, "text": "second"}))
        .await;
    let e = o.next_of("error").await;
    assert_eq!(e["code"], "slow_mode");
    assert!(e["retry_after_ms"].as_u64().unwrap() > 20_000);
    // Still connected: a like is accepted.
    o.send(json!({"type": "like", "v": 1})).await;
    o.next_of("ack").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_mute_ban_and_a_global_ban_reach_open_connections() {
    let server = TestServer::start(|_| {}).await;
    let (owner, owner_token) = account(&server, "owner", Role::Streamer).await;
    let (admin, admin_token) = account(&server, "root", Role::Admin).await;
    let (viewer, viewer_token) = account(&server, "viewer", Role::Viewer).await;
    let _ = admin;
    channel(&server, &owner, "mod").await;
    let mut o = Client::signed_in(&server, "mod", &owner_token).await;
    let mut v = Client::signed_in(&server, "mod", &viewer_token).await;
    v.send(json!({"type": "chat", "v": 1, "text": "spam"}))
        .await;
    let id = v.next_of("ack").await["id"].as_i64().unwrap();
    let (status, _) = call(
        &server,
        "DELETE",
        &format!("/api/v1/channels/mod/messages/{id}"),
        Some(&viewer_token),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(
        &server,
        "DELETE",
        &format!("/api/v1/channels/mod/messages/{id}"),
        Some(&owner_token),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let s = o.next_of("system").await;
    assert_eq!(
        (s["event"].as_str(), s["message_id"].as_i64()),
        (Some("message_deleted"), Some(id))
    );

    let (status, _) = call(
        &server,
        "POST",
        "/api/v1/channels/mod/mutes",
        Some(&owner_token),
        Some(json!({"user_id": viewer.id, "seconds": 600})),
    )
    .await;
    assert_eq!(status, 204);
    v.send(json!({"type": "chat", "v": 1, "text": "still here"}))
        .await;
    let e = v.next_of("error").await;
    assert_eq!(e["code"], "muted");
    assert!(e["until"].as_str().is_some());
    server
        .platform()
        .store()
        .unmute_in_channel(
            server
                .platform()
                .store()
                .channel_by_slug("mod")
                .await
                .unwrap()
                .unwrap()
                .id,
            viewer.id,
        )
        .await
        .unwrap();

    let (status, _) = call(
        &server,
        "POST",
        "/api/v1/channels/mod/bans",
        Some(&admin_token),
        Some(json!({"user_id": viewer.id})),
    )
    .await;
    assert_eq!(status, 204);
    v.send(json!({"type": "chat", "v": 1, "text": "banned?"}))
        .await;
    assert_eq!(v.next_of("error").await["code"], "channel_banned");
    // Nor may they gift over REST (a gift shows their name to the room).
    let (_, gifts) = call(&server, "GET", "/api/v1/gifts", None, None).await;
    let gift_id = gifts[0]["id"].as_i64().expect("a gift in the catalogue");
    let (status, problem) = call(
        &server,
        "POST",
        "/api/v1/channels/mod/gifts",
        Some(&viewer_token),
        Some(json!({"gift_id": gift_id, "idempotency_key": "banned-1"})),
    )
    .await;
    assert_eq!(status, 403, "{problem}");

    // A platform ban from the admin API counts at the next send of an open connection.
    let (_, other_token) = account(&server, "other", Role::Viewer).await;
    let other = server
        .platform()
        .store()
        .user_by_name("other")
        .await
        .unwrap()
        .unwrap();
    let mut w = Client::signed_in(&server, "mod", &other_token).await;
    server
        .platform()
        .store()
        .set_user_banned(other.id, true)
        .await
        .unwrap();
    w.send(json!({"type": "chat", "v": 1, "text": "hello"}))
        .await;
    assert_eq!(w.next_of("error").await["code"], "banned");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gifts_are_paid_once_and_never_overdraw_under_100_concurrent_sends() {
    let server = TestServer::start(|_| {}).await;
    let (owner, _) = account(&server, "owner", Role::Streamer).await;
    let (_, admin_token) = account(&server, "root", Role::Admin).await;
    let (viewer, viewer_token) = account(&server, "viewer", Role::Viewer).await;
    channel(&server, &owner, "gifts").await;
    let (_, gifts) = call(&server, "GET", "/api/v1/gifts", None, None).await;
    let rose = gifts
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "rose")
        .unwrap()
        .clone();
    let rose_id = rose["id"].as_i64().unwrap();
    let mut watcher = Client::join(&server, "gifts").await;
    let mut v = Client::signed_in(&server, "gifts", &viewer_token).await;

    v.send(json!({"type": "gift", "v": 1, "gift_id": rose_id, "idempotency_key": "ws-1"}))
        .await;
    assert_eq!(v.next_of("error").await["code"], "insufficient_balance");
    let (status, _) = call(
        &server,
        "POST",
        &format!("/api/v1/admin/users/{}/wallet", viewer.id),
        Some(&viewer_token),
        Some(json!({"amount": 5})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, wallet) = call(
        &server,
        "POST",
        &format!("/api/v1/admin/users/{}/wallet", viewer.id),
        Some(&admin_token),
        Some(json!({"amount": 5 + 37 * 5, "reason": "test"})),
    )
    .await;
    assert_eq!((status, wallet["balance"].as_i64()), (200, Some(190)));

    v.send(json!({"type": "gift", "v": 1, "gift_id": rose_id, "idempotency_key": "ws-1"}))
        .await;
    let ack = v.next_of("ack").await;
    assert_eq!(ack["balance"], 185);
    let g = watcher.next_of("gift").await;
    assert_eq!(
        (g["value"].as_i64(), g["user"]["name"].as_str()),
        (Some(5), Some("viewer"))
    );
    v.send(json!({"type": "gift", "v": 1, "gift_id": rose_id, "idempotency_key": "ws-1"}))
        .await;
    let again = v.next_of("ack").await;
    assert_eq!(
        (&again["id"], &again["replayed"]),
        (&ack["id"], &json!(true))
    );

    let sends: Vec<_> = (0..100)
        .map(|i| {
            let token = viewer_token.clone();
            let addr = server.http_addr;
            tokio::spawn(async move {
                let body = json!({"gift_id": rose_id, "idempotency_key": format!("rest-{i}")});
                let head = format!(
                    "POST /api/v1/channels/gifts/gifts HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.to_string().len()
                );
                let mut s = TcpStream::connect(addr).await.unwrap();
                s.write_all(head.as_bytes()).await.unwrap();
                let mut raw = Vec::new();
                tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut raw)).await.unwrap().unwrap();
                (i, String::from_utf8_lossy(&raw)[9..12].to_owned())
            })
        })
        .collect();
    let mut created = 0;
    let mut refused = 0;
    let mut a_created_key = None;
    for send in sends {
        let (i, status) = send.await.unwrap();
        match status.as_str() {
            "201" => {
                created += 1;
                a_created_key = Some(format!("rest-{i}"));
            }
            "409" => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((created, refused), (37, 63));
    let (_, wallet) = call(
        &server,
        "GET",
        "/api/v1/me/wallet",
        Some(&viewer_token),
        None,
    )
    .await;
    assert_eq!(wallet["balance"], 0);
    let store = server.platform().store();
    assert_eq!(store.wallet_balance(owner.id).await.unwrap(), 38 * 5);
    assert_eq!(store.count_gift_events_by(viewer.id).await.unwrap(), 38);
    // A retried REST key answers the original and charges nothing. Which 37 of the 100 keys
    // were paid depends on the race, so retry one that was.
    let (status, replay) = call(
        &server,
        "POST",
        "/api/v1/channels/gifts/gifts",
        Some(&viewer_token),
        Some(json!({"gift_id": rose_id, "idempotency_key": a_created_key.unwrap()})),
    )
    .await;
    assert_eq!(status, 200, "{replay}");
    assert_eq!(replay["replayed"], true);
    assert_eq!(store.count_gift_events_by(viewer.id).await.unwrap(), 38);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_and_slow_mode_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("onair-chat-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("onair.db").display());
    let configure = |c: &mut Config| c.storage.database_url = Some(SecretText::new(url.clone()));
    let server = TestServer::start(configure).await;
    let (owner, token) = account(&server, "owner", Role::Streamer).await;
    channel(&server, &owner, "kept").await;
    let mut a = Client::signed_in(&server, "kept", &token).await;
    let mut ids = Vec::new();
    for text in ["before", "the", "restart"] {
        a.send(json!({"type": "chat", "v": 1, "text": text})).await;
        ids.push(a.next_of("ack").await["id"].as_i64().unwrap());
    }
    let (status, _) = call(
        &server,
        "PUT",
        "/api/v1/channels/kept/slow-mode",
        Some(&token),
        Some(json!({"seconds": 30})),
    )
    .await;
    assert_eq!(status, 204);
    drop(a);
    server.shutdown().await;

    let server = TestServer::start(configure).await;
    let url = format!("ws://{}/api/v1/channels/kept/chat", server.http_addr);
    let (mut b, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let Some(Ok(Message::Text(history))) = b.next().await else {
        panic!("no history")
    };
    let history: Value = serde_json::from_str(&history).unwrap();
    let got: Vec<_> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_i64().unwrap(),
                m["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        ids.into_iter()
            .zip(["before", "the", "restart"].map(String::from))
            .collect::<Vec<_>>()
    );
    // The slow mode set before the restart still holds.
    let (_, viewer_token) = account(&server, "viewer", Role::Viewer).await;
    let mut v = Client::signed_in(&server, "kept", &viewer_token).await;
    v.send(json!({"type": "chat", "v": 1, "text": "one"})).await;
    v.next_of("ack").await;
    v.send(json!({"type": "chat", "v": 1, "text": "two"})).await;
    assert_eq!(v.next_of("error").await["code"], "slow_mode");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_gives_error_frames_while_the_video_goes_on() {
    if !require_ffmpeg() {
        return;
    }
    let server = TestServer::start(|_| {}).await;
    let (owner, token) = account(&server, "owner", Role::Streamer).await;
    let ch = channel(&server, &owner, "outage").await;
    let key = server
        .platform()
        .issue_stream_key(ch.id, "OBS", None)
        .await
        .unwrap();
    let live = Ffmpeg::publish_test_pattern(&server.publish_url(key.token.expose()), 20);
    assert!(
        server.wait_live("outage", Duration::from_secs(15)).await,
        "not live: {}",
        live.stderr()
    );
    let (_, _, mut viewer) = FlvReader::http(&server.flv_url("outage"), Duration::from_secs(5))
        .await
        .expect("http-flv opens");
    let mut c = Client::signed_in(&server, "outage", &token).await;
    c.send(json!({"type": "danmaku", "v": 1, "text": "live!"}))
        .await;
    let d = c.next_of("danmaku").await;
    assert!(d["offset_ms"].as_i64().unwrap() >= 0);

    server.platform().store().close().await;
    c.send(json!({"type": "chat", "v": 1, "text": "anyone?", "nonce": "n"}))
        .await;
    let e = c.next_of("error").await;
    assert_eq!(
        (e["code"].as_str(), e["nonce"].as_str()),
        (Some("store_unavailable"), Some("n"))
    );
    // The video keeps flowing to its viewer after the store went away.
    let mut tags = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(2), viewer.next_tag()).await {
            Ok(Ok(Some(_))) => tags += 1,
            other => panic!("video stopped: {other:?}"),
        }
    }
    assert!(tags > 30, "only {tags} tags");
    server.shutdown().await;
}

/// A client of `slug`'s room with a 4 KiB receive buffer: the server's socket to it fills
/// as soon as it stops reading.
async fn small_buffer_client(
    server: &TestServer,
    slug: &str,
) -> tokio_tungstenite::WebSocketStream<TcpStream> {
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let tcp = tcp.connect(server.http_addr).await.unwrap();
    let url = format!("ws://{}/api/v1/channels/{slug}/chat", server.http_addr);
    tokio_tungstenite::client_async(url, tcp).await.unwrap().0
}

/// Reads a sender's socket until `count` acks came (a sender that does not read would be
/// the slow client itself).
async fn read_acks<S>(mut socket: S, count: usize)
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut acks = 0;
    while acks < count {
        match tokio::time::timeout(Duration::from_secs(30), socket.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.as_str().contains(r#""type":"ack""#) => acks += 1,
            Ok(Some(Ok(_))) => {}
            other => panic!("sender socket after {acks} acks: {other:?}"),
        }
    }
}

/// Reads `socket` until the server ends it: the close frame's code and reason (`None` when the
/// connection just ended) and how many `chat` frames came before.
async fn read_to_end<S>(
    socket: &mut tokio_tungstenite::WebSocketStream<S>,
) -> (Option<(u16, String)>, usize)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut chats = 0;
    loop {
        match tokio::time::timeout(TIMEOUT, socket.next())
            .await
            .expect("the server ends the connection within 10 s")
        {
            Some(Ok(Message::Text(t))) => {
                if t.as_str().contains(r#""type":"chat""#) {
                    chats += 1;
                }
            }
            Some(Ok(Message::Close(frame))) => {
                return (
                    frame.map(|f| (u16::from(f.code), f.reason.as_str().to_owned())),
                    chats,
                );
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return (None, chats),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_likes_arrive_as_few_like_frames_with_summed_counts() {
    let server = TestServer::start(|c: &mut Config| {
        c.chat.flood_frames_per_second = 1000;
    })
    .await;
    let (owner, token) = account(&server, "owner", Role::Streamer).await;
    channel(&server, &owner, "likes").await;
    let mut liker = Client::signed_in(&server, "likes", &token).await;
    let mut watcher = Client::join(&server, "likes").await;
    const SENDS: u64 = 60;
    for _ in 0..SENDS {
        liker
            .send(json!({"type": "like", "v": 1, "count": 3}))
            .await;
    }
    for _ in 0..SENDS {
        liker.next_of("ack").await;
    }
    let (mut frames, mut sum, mut last_total) = (0u64, 0u64, 0u64);
    while sum < 3 * SENDS {
        let f = watcher.next_of("like").await;
        frames += 1;
        sum += f["count"].as_u64().unwrap();
        last_total = f["total"].as_u64().unwrap();
    }
    assert_eq!(sum, 3 * SENDS, "every like counted once");
    assert_eq!(last_total, 3 * SENDS, "the running total");
    // Likes are added up per like_interval (500 ms): 60 sends in a burst take far fewer
    // frames than sends, however the burst falls across batch boundaries.
    assert!(frames < SENDS / 2, "{frames} like frames for {SENDS} sends");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_dropped_while_others_keep_receiving() {
    let server = TestServer::start(|c: &mut Config| {
        c.chat.client_queue = 16;
        c.chat.max_message_chars = 10_000;
        c.chat.user_messages = 100_000;
        c.chat.flood_frames_per_second = 100_000;
    })
    .await;
    let (owner, token) = account(&server, "owner", Role::Streamer).await;
    channel(&server, &owner, "slow").await;
    // A small receive buffer, so the server's socket fills after a few MB (its send buffer).
    let mut stalled = small_buffer_client(&server, "slow").await;

    let mut watcher = Client::join(&server, "slow").await;
    let (mut sender_tx, sender_rx) = Client::signed_in(&server, "slow", &token).await.0.split();
    // ~10 KB a message: 800 of them are more than the stalled client's socket buffers hold.
    const MESSAGES: usize = 800;
    let text = "x".repeat(10_000);
    let sending = tokio::spawn(async move {
        for _ in 0..MESSAGES {
            let frame = json!({"type": "chat", "v": 1, "text": text});
            sender_tx
                .send(Message::text(frame.to_string()))
                .await
                .unwrap();
        }
        sender_tx
    });
    // The sender reads too (its own acks and broadcasts), or it would be the slow one.
    let draining = tokio::spawn(read_acks(sender_rx, MESSAGES));
    let mut seen = 0;
    while seen < MESSAGES {
        watcher.next_of("chat").await;
        seen += 1;
    }
    let _sender = sending.await.unwrap();
    draining.await.unwrap();

    // Only now does the stalled client read: what was in flight, then the end.
    let (close, chats) = read_to_end(&mut stalled).await;
    assert!(
        chats < MESSAGES,
        "the stalled client got all {chats} messages: it was never dropped"
    );
    if let Some((code, reason)) = close {
        assert_eq!((code, reason.as_str()), (1008, "too slow"));
    }
    // The watcher is still in the room.
    watcher
        .0
        .send(Message::text(
            json!({"type": "auth", "v": 1, "token": token}).to_string(),
        ))
        .await
        .unwrap();
    assert_eq!(watcher.next_of("ack").await["type"], "ack");
    server.shutdown().await;
}

/// The room writes each member's frames itself (issue 13); a socket that is full leaves the
/// rest to the member's own task. A client that stops reading for a while must still get
/// every message once it reads again, whole and in order, however the writes were split.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_for_a_while_gets_every_message_in_order() {
    const MESSAGES: usize = 300;
    let server = TestServer::start(|c: &mut Config| {
        c.chat.client_queue = 4 * MESSAGES;
        c.chat.max_message_chars = 10_000;
        c.chat.user_messages = 100_000;
        c.chat.flood_frames_per_second = 100_000;
    })
    .await;
    let (owner, token) = account(&server, "owner", Role::Streamer).await;
    channel(&server, &owner, "pause").await;
    // A small receive buffer: the server's socket fills long before 3 MB of messages.
    let mut paused = small_buffer_client(&server, "pause").await;
    let mut watcher = Client::join(&server, "pause").await;
    let kept_before = metric(&server, "onair_chat_wire_kept_total").await;
    let (mut sender_tx, sender_rx) = Client::signed_in(&server, "pause", &token).await.0.split();
    // The sender reads its acks and broadcasts, or it would be the one whose socket fills.
    let draining = tokio::spawn(read_acks(sender_rx, MESSAGES));
    let send = |i: usize| {
        let text = format!("{i:04} {}", "x".repeat(9_990));
        Message::text(json!({"type": "chat", "v": 1, "text": text}).to_string())
    };
    // The first half while the client does not read...
    for i in 0..MESSAGES / 2 {
        sender_tx.send(send(i)).await.unwrap();
    }
    for _ in 0..MESSAGES / 2 {
        watcher.next_of("chat").await;
    }
    assert!(
        metric(&server, "onair_chat_wire_kept_total").await > kept_before,
        "the paused client's socket took every write whole: nothing here was left to its task"
    );
    // ...and the second half while it reads again, so the socket drains and fills while
    // the room still writes: nothing may pass what the client's task has yet to write.
    let reading = tokio::spawn(async move {
        let mut next = 0;
        while next < MESSAGES {
            let frame = match tokio::time::timeout(TIMEOUT, paused.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    serde_json::from_str::<Value>(t.as_str()).unwrap()
                }
                Ok(Some(Ok(_))) => continue,
                other => panic!("after {next} messages: {other:?}"),
            };
            if frame["type"] != "chat" {
                continue;
            }
            let text = frame["text"].as_str().unwrap();
            assert_eq!(text.len(), 9_995, "message {next} arrived cut");
            assert_eq!(&text[..4], format!("{next:04}"), "out of order");
            next += 1;
            // A slow reader: the socket keeps filling and draining.
            if next % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    for i in MESSAGES / 2..MESSAGES {
        sender_tx.send(send(i)).await.unwrap();
    }
    for _ in MESSAGES / 2..MESSAGES {
        watcher.next_of("chat").await;
    }
    draining.await.unwrap();
    reading.await.unwrap();
    assert_eq!(metric(&server, "onair_chat_dropped_slow_total").await, 0);
    server.shutdown().await;
}

/// A history larger than a new socket takes at once: the rest is left to the client's task,
/// which must be woken for it at once, not at the next ping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_the_socket_cannot_take_at_once_still_arrives_whole_and_promptly() {
    const MESSAGES: usize = 50;
    let server = TestServer::start(|c: &mut Config| {
        c.chat.history = MESSAGES as u32;
        c.chat.max_message_chars = 10_000;
        c.chat.user_messages = 100_000;
        c.chat.flood_frames_per_second = 100_000;
        // Far past the test's deadline: only the nudge can finish the history in time.
        c.chat.ping_interval = Duration::from_secs(60);
        c.chat.idle_timeout = Duration::from_secs(120);
    })
    .await;
    let (owner, token) = account(&server, "owner", Role::Streamer).await;
    channel(&server, &owner, "big").await;
    let mut sender = Client::signed_in(&server, "big", &token).await;
    for i in 0..MESSAGES {
        let text = format!("{i:04} {}", "h".repeat(9_990));
        sender
            .send(json!({"type": "chat", "v": 1, "text": text}))
            .await;
        sender.next_of("ack").await;
    }
    let kept_before = metric(&server, "onair_chat_wire_kept_total").await;
    // 500 KB of history into a 4 KiB receive buffer: the first write cannot take it all.
    let mut joiner = small_buffer_client(&server, "big").await;
    let history = loop {
        match tokio::time::timeout(TIMEOUT, joiner.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let frame: Value = serde_json::from_str(t.as_str()).unwrap();
                if frame["type"] == "history" {
                    break frame;
                }
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("no history within 10 s: {other:?}"),
        }
    };
    assert_eq!(history["messages"].as_array().unwrap().len(), MESSAGES);
    assert!(
        metric(&server, "onair_chat_wire_kept_total").await > kept_before,
        "the history went out in one write: this test did not test the rest"
    );
    sender
        .send(json!({"type": "chat", "v": 1, "text": "after"}))
        .await;
    loop {
        let frame = match tokio::time::timeout(TIMEOUT, joiner.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str::<Value>(t.as_str()).unwrap(),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no message after the history: {other:?}"),
        };
        if frame["type"] == "chat" {
            assert_eq!(frame["text"], "after");
            break;
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_dropped_after_the_idle_timeout() {
    let server = TestServer::start(|c: &mut Config| {
        c.chat.ping_interval = Duration::from_millis(100);
        c.chat.idle_timeout = Duration::from_millis(500);
        c.chat.viewers_interval = Duration::from_millis(100);
    })
    .await;
    let (owner, token) = account(&server, "owner", Role::Streamer).await;
    channel(&server, &owner, "idle").await;
    // A bare socket that does the upgrade and then never writes a byte: no pong, no frame.
    // (A WebSocket client would answer the pings once read, and its pongs would meet a closed
    // socket.)
    let mut silent = TcpStream::connect(server.http_addr).await.unwrap();
    silent
        .write_all(
            b"GET /api/v1/channels/idle/chat HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n\
              Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
              Sec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
    let mut active = Client::signed_in(&server, "idle", &token).await;
    // The active client keeps reading (and so answering pings) until the audience shows the
    // silent one gone.
    let mut audiences = Vec::new();
    loop {
        let msg = tokio::time::timeout(TIMEOUT, active.0.next())
            .await
            .expect("a frame within 10 s")
            .expect("socket open")
            .expect("no socket error");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "viewers" {
                audiences.push(v["chat"].as_u64().unwrap());
                if v["chat"] == 1 {
                    break;
                }
            }
        }
    }
    assert!(
        audiences.contains(&2) || audiences.len() == 1,
        "both were counted before: {audiences:?}"
    );
    let mut raw = Vec::new();
    tokio::time::timeout(TIMEOUT, silent.read_to_end(&mut raw))
        .await
        .expect("the server ends the connection within 10 s")
        .unwrap();
    assert!(raw.starts_with(b"HTTP/1.1 101"), "upgraded");
    // The last frame: close (0x88), 2-byte code 1001, then the reason.
    let mut close = vec![0x88, 2 + 12, 0x03, 0xe9];
    close.extend_from_slice(b"idle timeout");
    assert!(
        raw.ends_with(&close),
        "ends with a close frame 1001 \"idle timeout\": {:?}",
        String::from_utf8_lossy(&raw[raw.len().saturating_sub(40)..])
    );
    active
        .send(json!({"type": "chat", "v": 1, "text": "still here"}))
        .await;
    assert_eq!(active.next_of("chat").await["text"], "still here");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn danmaku_sent_while_live_come_back_with_the_replay_at_their_offsets() {
    if !require_ffmpeg() {
        return;
    }
    let server = TestServer::start(|c: &mut Config| {
        c.hub.republish_grace = Duration::from_secs(1);
    })
    .await;
    let (owner, token) = account(&server, "owner", Role::Streamer).await;
    let ch = channel(&server, &owner, "replayed").await;
    // A stored key, so the live is recorded as a replay.
    let key = server
        .platform()
        .issue_stream_key(ch.id, "OBS", None)
        .await
        .unwrap();
    let mut live = Ffmpeg::publish_test_pattern(&server.publish_url(key.token.expose()), 10);
    assert!(
        server.wait_live("replayed", Duration::from_secs(15)).await,
        "not live: {}",
        live.stderr()
    );
    let store = server.platform().store().clone();
    let mut c = Client::signed_in(&server, "replayed", &token).await;
    // The ingest writes the session row from its own task; the danmaku offsets count from it.
    let session = live_session(&store, ch.id, 1).await;
    let mut sent = Vec::new();
    for i in 0..3 {
        if i > 0 {
            // Spread over the live: the offsets are what the test checks.
            assert!(
                server
                    .wait_media("replayed", Duration::from_millis(1500), FPS, TIMEOUT)
                    .await,
                "the live did not move on"
            );
        }
        let at = chrono::Utc::now();
        c.send(json!({"type": "danmaku", "v": 1, "text": format!("d{i}"), "color": "#FF0000"}))
            .await;
        let d = c.next_of("danmaku").await;
        assert_eq!(d["text"], format!("d{i}"));
        sent.push(((at - session.started_at).num_milliseconds(), d));
    }
    c.send(json!({"type": "chat", "v": 1, "text": "not a danmaku"}))
        .await;
    c.next_of("chat").await;
    let status = live
        .wait(Duration::from_secs(40))
        .await
        .expect("ffmpeg ends");
    assert!(status.success(), "ffmpeg failed:\n{}", live.stderr());

    let recording = finished_recording(&store, ch.id).await;
    assert_eq!(recording.live_session_id, Some(session.id));

    let path = format!("/api/v1/recordings/{}/danmaku", recording.id);
    let (status, all) = call(&server, "GET", &path, None, None).await;
    assert_eq!(status, 200, "{all}");
    let all = all.as_array().unwrap();
    let texts: Vec<_> = all.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["d0", "d1", "d2"], "danmaku only, in offset order");
    for ((sent_offset, frame), stored) in sent.iter().zip(all) {
        let offset = stored["offset_ms"].as_i64().unwrap();
        assert_eq!(stored["offset_ms"], frame["offset_ms"], "as broadcast live");
        assert!(
            (offset - sent_offset).abs() <= 1000,
            "{}: offset {offset} ms, sent {sent_offset} ms after the live began",
            stored["text"]
        );
        assert_eq!(stored["color"], "#ff0000");
    }
    // A range around the middle one returns only it.
    let middle = all[1]["offset_ms"].as_i64().unwrap();
    let (status, some) = call(
        &server,
        "GET",
        &format!("{path}?from_ms={}&to_ms={}", middle - 200, middle + 200),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let texts: Vec<_> = some
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["d1"]);
    let (status, _) = call(
        &server,
        "GET",
        &format!("{path}?from_ms=5&to_ms=1"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 400);
    server.shutdown().await;
}

/// The `n`th live session of a channel (1 = its first), once the ingest has written it.
async fn live_session(
    store: &onair_store::Store,
    channel_id: i64,
    n: usize,
) -> onair_store::LiveSession {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let (mut sessions, _) = store
            .list_live_sessions(channel_id, onair_store::Page::default())
            .await
            .unwrap();
        if sessions.len() >= n {
            // Newest first.
            return sessions.swap_remove(sessions.len() - n);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no live session row {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The channel's one recording, once it is finished.
async fn finished_recording(store: &onair_store::Store, channel_id: i64) -> onair_store::Recording {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let (rows, _) = store
            .list_recordings(channel_id, onair_store::Page::default())
            .await
            .unwrap();
        if let Some(r) = rows
            .iter()
            .find(|r| r.state == onair_store::RecordingState::Finished)
        {
            assert_eq!(rows.len(), 1, "one recording: {rows:?}");
            return r.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no finished recording"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn danmaku_of_a_publisher_back_within_the_grace_land_after_the_first_part_of_the_replay() {
    replay_in_two_parts(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn danmaku_of_a_publisher_that_took_over_land_after_the_first_part_of_the_replay() {
    replay_in_two_parts(true).await;
}

/// Two publishes with one key make one recording in two parts: one after the other within the
/// grace, or (`takeover`) the second taking the channel from the first while it is live, which
/// switches publishers at once. Either way the second session's danmaku land where its part
/// of the replay begins: the replay playlist's length before its discontinuity.
async fn replay_in_two_parts(takeover: bool) {
    if !require_ffmpeg() {
        return;
    }
    // Long enough for ffmpeg to start again on a busy machine.
    let server = TestServer::start(|c: &mut Config| {
        c.hub.republish_grace = Duration::from_secs(15);
        c.hub.takeover = takeover;
    })
    .await;
    let (owner, token) = account(&server, "owner", Role::Streamer).await;
    let ch = channel(&server, &owner, "parts").await;
    let key = server
        .platform()
        .issue_stream_key(ch.id, "OBS", None)
        .await
        .unwrap();
    let store = server.platform().store().clone();
    let mut c = Client::signed_in(&server, "parts", &token).await;
    let mut sent = Vec::new();
    let mut first = None;
    for part in 1..=2 {
        // Taken over after about 4 s, the first publish need not end by itself.
        let seconds = if takeover && part == 1 { 60 } else { 4 };
        let mut live =
            Ffmpeg::publish_test_pattern(&server.publish_url(key.token.expose()), seconds);
        assert!(
            server.wait_live("parts", Duration::from_secs(15)).await,
            "not live: {}",
            live.stderr()
        );
        let session = live_session(&store, ch.id, part).await;
        assert!(
            server
                .wait_media("parts", Duration::from_secs(1), FPS, TIMEOUT)
                .await,
            "part {part} did not move on"
        );
        c.send(json!({"type": "danmaku", "v": 1, "text": format!("part{part}")}))
            .await;
        let d = c.next_of("danmaku").await;
        assert_eq!(d["text"], format!("part{part}"));
        sent.push((session.id, d["offset_ms"].as_i64().unwrap()));
        if takeover && part == 1 {
            assert!(
                server
                    .wait_media("parts", Duration::from_secs(3), FPS, TIMEOUT)
                    .await,
                "part 1 did not move on"
            );
            first = Some(live);
            continue;
        }
        let status = live
            .wait(Duration::from_secs(40))
            .await
            .expect("ffmpeg ends");
        assert!(status.success(), "ffmpeg failed:\n{}", live.stderr());
        // Back well within the 15 s grace.
        assert!(
            wait_not_live(&server, "parts").await,
            "still live after ffmpeg ended"
        );
    }
    if let Some(mut first) = first {
        // Cut off by the takeover.
        first
            .wait(Duration::from_secs(10))
            .await
            .expect("the first ffmpeg was cut off");
    }
    let recording = finished_recording(&store, ch.id).await;
    let parts = store.recording_parts(recording.id).await.unwrap();
    assert_eq!(
        parts.iter().map(|p| p.live_session_id).collect::<Vec<_>>(),
        [sent[0].0, sent[1].0],
        "both sessions are parts of the one recording"
    );
    let second_starts = parts[1].offset_ms;
    // Where the replay's second part begins: the EXTINFs before its discontinuity.
    let replay = onair_e2e::http::get_text(
        &server.http_url(&format!("/replays/{}/index.m3u8", recording.id)),
        TIMEOUT,
    )
    .await
    .unwrap();
    let before = replay
        .split("#EXT-X-DISCONTINUITY")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|l| l.trim_end_matches(',').parse::<f64>().unwrap())
        .sum::<f64>();
    assert_eq!(
        replay.matches("#EXT-X-DISCONTINUITY\n").count(),
        1,
        "{replay}"
    );
    assert!(
        (second_starts as f64 - before * 1000.0).abs() <= 2.0,
        "second part at {second_starts} ms, the replay's first part is {before} s:\n{replay}"
    );
    assert!(
        (2_500..=6_000).contains(&second_starts),
        "second part at {second_starts} ms"
    );

    let path = format!("/api/v1/recordings/{}/danmaku", recording.id);
    let (status, all) = call(&server, "GET", &path, None, None).await;
    assert_eq!(status, 200, "{all}");
    let placed: Vec<(&str, i64)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["text"].as_str().unwrap(),
                m["offset_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        placed,
        [("part1", sent[0].1), ("part2", second_starts + sent[1].1)],
        "the second session's danmaku move by where its part begins"
    );
    // A window that starts after the first part finds only the second's.
    let (_, later) = call(
        &server,
        "GET",
        &format!("{path}?from_ms={second_starts}"),
        None,
        None,
    )
    .await;
    assert_eq!(later.as_array().unwrap().len(), 1, "{later}");
    server.shutdown().await;
}

async fn wait_not_live(server: &TestServer, channel: &str) -> bool {
    onair_e2e::wait_until(TIMEOUT, || !server.hub().is_live(channel)).await
}

/// `GET /metrics`: the value of the series `name` (no labels).
async fn metric(server: &TestServer, name: &str) -> u64 {
    let mut stream = TcpStream::connect(server.http_addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&raw);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_lift_mutes_and_bans_over_rest_audited_and_counted_on_metrics() {
    let server = TestServer::start(|_| {}).await;
    let (owner, owner_token) = account(&server, "owner", Role::Streamer).await;
    let (_, admin_token) = account(&server, "root", Role::Admin).await;
    let (viewer, viewer_token) = account(&server, "viewer", Role::Viewer).await;
    channel(&server, &owner, "lift").await;
    let mut watcher = Client::join(&server, "lift").await;
    let mut v = Client::signed_in(&server, "lift", &viewer_token).await;
    assert_eq!(metric(&server, "onair_chat_clients").await, 2);
    let messages0 = metric(&server, "onair_chat_messages_total").await;
    let refused0 = metric(&server, "onair_chat_refused_total").await;

    let mute = format!("/api/v1/channels/lift/mutes/{}", viewer.id);
    let ban = format!("/api/v1/channels/lift/bans/{}", viewer.id);
    let (status, _) = call(&server, "DELETE", &mute, Some(&owner_token), None).await;
    assert_eq!(status, 404, "nothing to lift yet");
    let (status, _) = call(
        &server,
        "POST",
        "/api/v1/channels/lift/mutes",
        Some(&owner_token),
        Some(json!({"user_id": viewer.id, "seconds": 600})),
    )
    .await;
    assert_eq!(status, 204);
    v.send(json!({"type": "chat", "v": 1, "text": "muted?"}))
        .await;
    assert_eq!(v.next_of("error").await["code"], "muted");
    let (status, _) = call(&server, "DELETE", &mute, Some(&viewer_token), None).await;
    assert_eq!(status, 403, "only the owner or an admin");
    let (status, _) = call(&server, "DELETE", &mute, Some(&owner_token), None).await;
    assert_eq!(status, 204);
    let e = watcher.next_of("system").await;
    assert_eq!(e["event"], "user_muted");
    let e = watcher.next_of("system").await;
    assert_eq!(
        (e["event"].as_str(), e["user_id"].as_i64()),
        (Some("user_unmuted"), Some(viewer.id))
    );
    v.send(json!({"type": "chat", "v": 1, "text": "free"}))
        .await;
    assert_eq!(v.next_of("chat").await["text"], "free");

    let (status, _) = call(
        &server,
        "POST",
        "/api/v1/channels/lift/bans",
        Some(&owner_token),
        Some(json!({"user_id": viewer.id})),
    )
    .await;
    assert_eq!(status, 204);
    v.send(json!({"type": "chat", "v": 1, "text": "banned?"}))
        .await;
    assert_eq!(v.next_of("error").await["code"], "channel_banned");
    let (status, _) = call(&server, "DELETE", &ban, Some(&admin_token), None).await;
    assert_eq!(status, 204, "an admin lifts it too");
    let (status, _) = call(&server, "DELETE", &ban, Some(&admin_token), None).await;
    assert_eq!(status, 404);
    v.send(json!({"type": "chat", "v": 1, "text": "back"}))
        .await;
    assert_eq!(v.next_of("chat").await["text"], "back");

    let (status, audit) = call(
        &server,
        "GET",
        "/api/v1/admin/audit?limit=100",
        Some(&admin_token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let actions: Vec<(&str, &str)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["target"].as_str().unwrap()))
        .filter(|(a, _)| a.starts_with("chat."))
        .collect();
    assert_eq!(
        actions,
        [
            ("chat.unban", "channel:lift"),
            ("chat.ban", "channel:lift"),
            ("chat.unmute", "channel:lift"),
            ("chat.mute", "channel:lift"),
        ],
        "newest first"
    );
    assert_eq!(
        metric(&server, "onair_chat_messages_total").await,
        messages0 + 2
    );
    assert_eq!(
        metric(&server, "onair_chat_refused_total").await,
        refused0 + 2
    );
    server.shutdown().await;
}
