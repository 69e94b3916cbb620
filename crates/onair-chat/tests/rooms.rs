//! The chat over in-memory Sink/Stream pairs, no sockets: each case on SQLite and PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use onair_chat::{
    BoxFuture, ChatConfig, ChatHost, ChatService, ChatUser, Connection, Inbound, Outbound, serve,
};
use onair_store::{NewChannel, NewUser, Role, Store, StoreError, User, store_test};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Tokens are `user:{id}`; anything else is invalid.
struct Host {
    store: Store,
}

impl ChatHost for Host {
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<ChatUser>, StoreError>> {
        Box::pin(async move {
            let Some(id) = token.strip_prefix("user:").and_then(|s| s.parse().ok()) else {
                return Ok(None);
            };
            Ok(self.store.user_by_id(id).await?.map(|u| ChatUser {
                id: u.id,
                name: u.username,
                admin: u.role == Role::Admin,
                session: None,
            }))
        })
    }

    fn video_viewers(&self, _channel: &str) -> u64 {
        7
    }

    fn live_since(&self, _channel: &str) -> Option<DateTime<Utc>> {
        None
    }
}

struct Client {
    tx: mpsc::Sender<Inbound>,
    rx: mpsc::Receiver<Outbound>,
}

impl Client {
    async fn send(&self, frame: Value) {
        self.tx
            .send(Inbound::Text(frame.to_string()))
            .await
            .unwrap();
    }

    /// The next text frame, skipping pings and audience frames. The 10 s deadline covers the
    /// skipping too, so periodic frames cannot keep a waiting test alive.
    async fn next(&mut self) -> Value {
        tokio::time::timeout(Duration::from_secs(10), self.next_any(|_| true))
            .await
            .expect("a frame within 10 s")
    }

    /// The next text frame of this type, skipping others, within 10 s.
    async fn next_of(&mut self, kind: &str) -> Value {
        tokio::time::timeout(
            Duration::from_secs(10),
            self.next_any(|v| v["type"] == kind),
        )
        .await
        .unwrap_or_else(|_| panic!("a {kind} frame within 10 s"))
    }

    async fn next_any(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        loop {
            let out = self.rx.recv().await.expect("connection open");
            if let Outbound::Text(text) = out {
                let v: Value = serde_json::from_str(&text).unwrap();
                if v["type"] != "viewers" && wanted(&v) {
                    return v;
                }
            }
        }
    }
}

async fn connect(service: &Arc<ChatService>, slug: &str) -> Client {
    connect_until(service, slug, CancellationToken::new()).await
}

/// [`connect`], served until `shutdown` is cancelled.
async fn connect_until(
    service: &Arc<ChatService>,
    slug: &str,
    shutdown: CancellationToken,
) -> Client {
    let membership = service.join(slug).await.unwrap();
    let (in_tx, in_rx) = mpsc::channel(64);
    let (out_tx, out_rx) = mpsc::channel(1024);
    let inbound =
        futures_util::stream::unfold(
            in_rx,
            |mut rx| async move { rx.recv().await.map(|f| (f, rx)) },
        );
    let outbound = futures_util::sink::unfold(out_tx, |tx, f: Outbound| async move {
        tx.send(f).await.map(|()| tx)
    });
    tokio::spawn(serve(
        Connection::new(membership),
        Box::pin(inbound),
        Box::pin(outbound),
        shutdown,
    ));
    Client {
        tx: in_tx,
        rx: out_rx,
    }
}

async fn setup(store: &Store, config: ChatConfig) -> (Arc<ChatService>, User, User) {
    let owner = store
        .create_user(NewUser {
            username: "owner".into(),
            password_hash: "x".into(),
            role: Role::Streamer,
        })
        .await
        .unwrap();
    let viewer = store
        .create_user(NewUser {
            username: "viewer".into(),
            password_hash: "x".into(),
            role: Role::Viewer,
        })
        .await
        .unwrap();
    store
        .create_channel(NewChannel {
            slug: "demo".into(),
            title: "Demo".into(),
            owner_id: owner.id,
            category: String::new(),
            tags: vec![],
        })
        .await
        .unwrap();
    let host = Arc::new(Host {
        store: store.clone(),
    });
    (ChatService::new(store.clone(), host, config), owner, viewer)
}

async fn signed_in(service: &Arc<ChatService>, user: &User) -> Client {
    signed_in_until(service, user, CancellationToken::new()).await
}

/// [`signed_in`], served until `shutdown` is cancelled.
async fn signed_in_until(
    service: &Arc<ChatService>,
    user: &User,
    shutdown: CancellationToken,
) -> Client {
    let mut c = connect_until(service, "demo", shutdown).await;
    assert_eq!(c.next().await["type"], "history");
    c.send(json!({"type": "auth", "v": 1, "token": format!("user:{}", user.id), "nonce": "a"}))
        .await;
    let ack = c.next().await;
    assert_eq!(
        (ack["type"].as_str(), ack["nonce"].as_str()),
        (Some("ack"), Some("a"))
    );
    c
}

store_test!(
    two_clients_see_each_others_messages_in_order_and_anonymous_clients_only_read,
    history_on_join_and_danmaku_defaults,
    limits_answer_with_error_frames_and_keep_the_connection,
    moderation_reaches_open_connections,
    likes_are_batched_and_gifts_are_charged_once,
    a_store_outage_gives_error_frames,
    lifting_a_mute_or_a_ban_lets_the_user_send_and_tells_the_room,
    a_gift_to_a_channel_deleted_meanwhile_is_refused_as_not_found,
    a_busy_room_batches_broadcasts_in_order_with_acks_after_them,
    a_shutdown_hands_out_the_last_messages_before_the_goodbye,
);

async fn two_clients_see_each_others_messages_in_order_and_anonymous_clients_only_read(
    store: Store,
) {
    let (service, owner, viewer) = setup(&store, ChatConfig::default()).await;
    let mut a = signed_in(&service, &owner).await;
    let b = signed_in(&service, &viewer).await;
    let mut anon = connect(&service, "demo").await;
    assert_eq!(anon.next().await["type"], "history");
    for i in 0..5 {
        a.send(json!({"type": "chat", "v": 1, "text": format!("a{i}"), "nonce": format!("n{i}")}))
            .await;
        b.send(json!({"type": "chat", "v": 1, "text": format!("b{i}")}))
            .await;
    }
    let mut seen = Vec::new();
    while seen.len() < 10 {
        let f = anon.next_of("chat").await;
        seen.push((
            f["id"].as_i64().unwrap(),
            f["text"].as_str().unwrap().to_owned(),
        ));
    }
    let mut ids: Vec<_> = seen.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        seen.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        "in id order"
    );
    // What a sees is what the anonymous reader saw, and a's own acks carry the stored ids.
    let mut a_seen = Vec::new();
    let mut acks = Vec::new();
    while a_seen.len() < 10 || acks.len() < 5 {
        let f = a.next().await;
        match f["type"].as_str() {
            Some("chat") => a_seen.push((
                f["id"].as_i64().unwrap(),
                f["text"].as_str().unwrap().to_owned(),
            )),
            Some("ack") => acks.push(f["id"].as_i64().unwrap()),
            _ => {}
        }
    }
    assert_eq!(a_seen, seen);
    for ack in acks {
        assert!(seen.iter().any(|(id, t)| *id == ack && t.starts_with('a')));
    }
    anon.send(json!({"type": "chat", "v": 1, "text": "hi", "nonce": "x"}))
        .await;
    let e = anon.next_of("error").await;
    assert_eq!(
        (e["code"].as_str(), e["nonce"].as_str()),
        (Some("unauthenticated"), Some("x"))
    );
    anon.send(json!({"type": "auth", "v": 1, "token": "forged"}))
        .await;
    assert_eq!(anon.next_of("error").await["code"], "invalid_token");
}

async fn history_on_join_and_danmaku_defaults(store: Store) {
    let config = ChatConfig {
        history: 3,
        ..ChatConfig::default()
    };
    let (service, owner, _) = setup(&store, config).await;
    let mut a = signed_in(&service, &owner).await;
    for i in 0..5 {
        a.send(json!({"type": "chat", "v": 1, "text": format!("m{i}")}))
            .await;
        a.next_of("ack").await;
    }
    a.send(json!({"type": "danmaku", "v": 1, "text": "wow", "color": "#FF0000"}))
        .await;
    let d = a.next_of("danmaku").await;
    assert_eq!(
        (
            d["color"].as_str(),
            d["mode"].as_str(),
            d["offset_ms"].as_i64()
        ),
        (Some("#ff0000"), Some("scroll"), Some(0))
    );
    let mut late = connect(&service, "demo").await;
    let h = late.next().await;
    let texts: Vec<_> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["type"].as_str().unwrap().to_owned(),
                m["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        texts,
        [
            ("chat".to_owned(), "m3".to_owned()),
            ("chat".into(), "m4".into()),
            ("danmaku".into(), "wow".into())
        ]
    );
}

async fn limits_answer_with_error_frames_and_keep_the_connection(store: Store) {
    let config = ChatConfig {
        user_messages: 3,
        user_window: Duration::from_secs(60),
        max_message_chars: 10,
        flood_frames: 8,
        flood_window: Duration::from_secs(60),
        ..ChatConfig::default()
    };
    let (service, owner, viewer) = setup(&store, config).await;
    let mut v = signed_in(&service, &viewer).await;
    v.send(json!({"type": "chat", "v": 1, "text": "x".repeat(11)}))
        .await;
    assert_eq!(v.next_of("error").await["code"], "too_long");
    v.send(json!({"type": "chat", "v": 1, "text": "   "})).await;
    assert_eq!(v.next_of("error").await["code"], "empty");
    v.send(json!({"type": "chat", "v": 2, "text": "hi"})).await;
    assert_eq!(v.next_of("error").await["code"], "unsupported_version");
    for _ in 0..3 {
        v.send(json!({"type": "chat", "v": 1, "text": "ok"})).await;
        v.next_of("ack").await;
    }
    v.send(json!({"type": "chat", "v": 1, "text": "more"}))
        .await;
    let e = v.next_of("error").await;
    assert_eq!(e["code"], "rate_limited");
    assert!(e["retry_after_ms"].as_u64().unwrap() > 0);
    // Frame 9 on this connection (auth was 1): the flood guard, still no disconnect.
    v.send(json!({"type": "like", "v": 1})).await;
    assert_eq!(v.next_of("error").await["code"], "flood");
    // Slow mode stops a viewer but not the owner.
    let channel = store.channel_by_slug("demo").await.unwrap().unwrap();
    let mut o = signed_in(&service, &owner).await;
    service
        .set_slow_mode(&channel, Some(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(o.next_of("system").await["event"], "slow_mode");
    let w_user = store
        .create_user(NewUser {
            username: "w".into(),
            password_hash: "x".into(),
            role: Role::Viewer,
        })
        .await
        .unwrap();
    let mut w = signed_in(&service, &w_user).await;
    w.send(json!({"type": "chat", "v": 1, "text": "one"})).await;
    w.next_of("ack").await;
    w.send(json!({"type": "chat", "v": 1, "text": "two"})).await;
    assert_eq!(w.next_of("error").await["code"], "slow_mode");
    for t in ["o1", "o2"] {
        o.send(json!({"type": "chat", "v": 1, "text": t})).await;
        o.next_of("ack").await;
    }
    // A new service on the same store (a restart) keeps the slow mode.
    let restarted = ChatService::new(
        store.clone(),
        Arc::new(Host {
            store: store.clone(),
        }),
        ChatConfig::default(),
    );
    let mut w = signed_in(&restarted, &w_user).await;
    w.send(json!({"type": "chat", "v": 1, "text": "three"}))
        .await;
    w.next_of("ack").await;
    w.send(json!({"type": "chat", "v": 1, "text": "four"}))
        .await;
    assert_eq!(w.next_of("error").await["code"], "slow_mode");
}

async fn moderation_reaches_open_connections(store: Store) {
    let (service, owner, viewer) = setup(&store, ChatConfig::default()).await;
    let channel = store.channel_by_slug("demo").await.unwrap().unwrap();
    let mut o = signed_in(&service, &owner).await;
    let mut v = signed_in(&service, &viewer).await;
    v.send(json!({"type": "chat", "v": 1, "text": "spam"}))
        .await;
    let id = v.next_of("ack").await["id"].as_i64().unwrap();
    service
        .delete_message(&channel, id, owner.id)
        .await
        .unwrap();
    let s = o.next_of("system").await;
    assert_eq!(
        (s["event"].as_str(), s["message_id"].as_i64()),
        (Some("message_deleted"), Some(id))
    );
    let until = Utc::now() + chrono::Duration::minutes(5);
    service
        .mute(&channel, viewer.id, until, owner.id)
        .await
        .unwrap();
    v.send(json!({"type": "chat", "v": 1, "text": "muted?"}))
        .await;
    let e = v.next_of("error").await;
    assert_eq!(e["code"], "muted");
    assert!(e["until"].is_string());
    // A gift would put a muted user's name in front of the room; a like does not.
    let rose = store
        .list_gifts()
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.name == "rose")
        .unwrap();
    store.credit_wallet(viewer.id, 100, None, "").await.unwrap();
    v.send(json!({"type": "gift", "v": 1, "gift_id": rose.id, "idempotency_key": "m1"}))
        .await;
    assert_eq!(v.next_of("error").await["code"], "muted");
    v.send(json!({"type": "like", "v": 1})).await;
    assert!(
        v.next_of("ack").await["id"].is_null(),
        "a muted user may like"
    );
    store
        .unmute_in_channel(channel.id, viewer.id)
        .await
        .unwrap();
    service.ban(&channel, viewer.id, owner.id).await.unwrap();
    v.send(json!({"type": "chat", "v": 1, "text": "banned?"}))
        .await;
    assert_eq!(v.next_of("error").await["code"], "channel_banned");
    v.send(json!({"type": "like", "v": 1})).await;
    assert_eq!(v.next_of("error").await["code"], "channel_banned");
    v.send(json!({"type": "gift", "v": 1, "gift_id": rose.id, "idempotency_key": "b1"}))
        .await;
    assert_eq!(v.next_of("error").await["code"], "channel_banned");
    assert_eq!(
        store.wallet_balance(viewer.id).await.unwrap(),
        100,
        "no refused gift was charged"
    );
    store.unban_in_channel(channel.id, viewer.id).await.unwrap();
    store.set_user_banned(viewer.id, true).await.unwrap();
    v.send(json!({"type": "chat", "v": 1, "text": "global?"}))
        .await;
    assert_eq!(v.next_of("error").await["code"], "banned");
}

async fn likes_are_batched_and_gifts_are_charged_once(store: Store) {
    let config = ChatConfig {
        like_interval: Duration::from_millis(100),
        ..ChatConfig::default()
    };
    let (service, owner, viewer) = setup(&store, config).await;
    let shutdown = CancellationToken::new();
    tokio::spawn(service.clone().run(shutdown.clone()));
    let mut v = signed_in(&service, &viewer).await;
    for _ in 0..5 {
        v.send(json!({"type": "like", "v": 1, "count": 2})).await;
    }
    let mut total = 0;
    while total < 10 {
        let l = v.next_of("like").await;
        total = l["total"].as_u64().unwrap();
    }
    assert_eq!(total, 10);
    let rose = store
        .list_gifts()
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.name == "rose")
        .unwrap();
    v.send(json!({"type": "gift", "v": 1, "gift_id": rose.id, "idempotency_key": "g1"}))
        .await;
    assert_eq!(v.next_of("error").await["code"], "insufficient_balance");
    store.credit_wallet(viewer.id, 7, None, "").await.unwrap();
    v.send(json!({"type": "gift", "v": 1, "gift_id": rose.id, "idempotency_key": "g1"}))
        .await;
    let g = v.next_of("gift").await;
    assert_eq!(
        (g["value"].as_i64(), g["gift"]["name"].as_str()),
        (Some(5), Some("rose"))
    );
    let ack = v.next_of("ack").await;
    assert_eq!(ack["balance"], 2);
    v.send(json!({"type": "gift", "v": 1, "gift_id": rose.id, "idempotency_key": "g1"}))
        .await;
    let again = v.next_of("ack").await;
    assert_eq!(
        (again["id"].clone(), again["replayed"].clone()),
        (ack["id"].clone(), json!(true))
    );
    assert_eq!(store.wallet_balance(viewer.id).await.unwrap(), 2);
    assert_eq!(store.wallet_balance(owner.id).await.unwrap(), 5);
    shutdown.cancel();
}

async fn a_store_outage_gives_error_frames(store: Store) {
    let (service, _owner, viewer) = setup(&store, ChatConfig::default()).await;
    let mut v = signed_in(&service, &viewer).await;
    store.close().await;
    v.send(json!({"type": "chat", "v": 1, "text": "lost?", "nonce": "n"}))
        .await;
    let e = v.next_of("error").await;
    assert_eq!(
        (e["code"].as_str(), e["nonce"].as_str()),
        (Some("store_unavailable"), Some("n"))
    );
    // The connection stays open and answers every send (a like, too, needs the store to
    // tell whether its sender is banned).
    v.send(json!({"type": "like", "v": 1, "nonce": "l"})).await;
    let e = v.next_of("error").await;
    assert_eq!(
        (e["code"].as_str(), e["nonce"].as_str()),
        (Some("store_unavailable"), Some("l"))
    );
}

async fn lifting_a_mute_or_a_ban_lets_the_user_send_and_tells_the_room(store: Store) {
    let (service, owner, viewer) = setup(&store, ChatConfig::default()).await;
    let channel = store.channel_by_slug("demo").await.unwrap().unwrap();
    let mut v = signed_in(&service, &viewer).await;
    let until = Utc::now() + chrono::Duration::minutes(10);
    service
        .mute(&channel, viewer.id, until, owner.id)
        .await
        .unwrap();
    v.send(json!({"type": "chat", "v": 1, "text": "hello?"}))
        .await;
    assert_eq!(v.next_of("error").await["code"], "muted");
    assert!(service.unmute(&channel, viewer.id).await.unwrap());
    let e = v.next_of("system").await;
    assert_eq!(
        (e["event"].as_str(), e["user_id"].as_i64()),
        (Some("user_unmuted"), Some(viewer.id))
    );
    assert!(
        !service.unmute(&channel, viewer.id).await.unwrap(),
        "nothing left to lift"
    );
    v.send(json!({"type": "chat", "v": 1, "text": "hello"}))
        .await;
    assert_eq!(v.next_of("chat").await["text"], "hello");

    service.ban(&channel, viewer.id, owner.id).await.unwrap();
    v.send(json!({"type": "chat", "v": 1, "text": "still?"}))
        .await;
    assert_eq!(v.next_of("error").await["code"], "channel_banned");
    assert!(service.unban(&channel, viewer.id).await.unwrap());
    assert_eq!(v.next_of("system").await["event"], "user_unbanned");
    assert!(!service.unban(&channel, viewer.id).await.unwrap());
    v.send(json!({"type": "chat", "v": 1, "text": "back"}))
        .await;
    assert_eq!(v.next_of("chat").await["text"], "back");
}

async fn a_gift_to_a_channel_deleted_meanwhile_is_refused_as_not_found(store: Store) {
    let (service, _owner, viewer) = setup(&store, ChatConfig::default()).await;
    let channel = store.channel_by_slug("demo").await.unwrap().unwrap();
    let rose = store
        .list_gifts()
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.name == "rose")
        .unwrap();
    store.credit_wallet(viewer.id, 100, None, "").await.unwrap();
    assert!(store.delete_channel(channel.id).await.unwrap());
    let user = ChatUser {
        id: viewer.id,
        name: viewer.username.clone(),
        admin: false,
        session: None,
    };
    let sent = service
        .send_gift(&channel, &user, rose.id, 1, "k".into())
        .await;
    let Err(onair_chat::GiftError::Refused(refusal)) = sent else {
        panic!("sent to a deleted channel: {sent:?}")
    };
    assert_eq!(refusal.code, onair_chat::protocol::ErrorCode::NotFound);
    assert_eq!(store.wallet_balance(viewer.id).await.unwrap(), 100);
    let sent = service
        .send_gift(&channel, &user, 999_999, 1, "k2".into())
        .await;
    let Err(onair_chat::GiftError::Refused(refusal)) = sent else {
        panic!("an unknown gift was sent: {sent:?}")
    };
    assert_eq!(refusal.code, onair_chat::protocol::ErrorCode::UnknownGift);
}

/// A room of `batch_min_members` or more hands its members the broadcasts of a window in one
/// queue entry: every member still gets every frame once, in id order, each sender's ack
/// after its own message, and a client joining meanwhile gets no message twice.
async fn a_busy_room_batches_broadcasts_in_order_with_acks_after_them(store: Store) {
    let config = ChatConfig {
        batch_min_members: 3,
        broadcast_window: Duration::from_millis(100),
        // However light the load: this test is about what a batch holds.
        batch_writes_per_second: 0,
        user_messages: 1000,
        flood_frames: 1000,
        ..ChatConfig::default()
    };
    let (service, owner, viewer) = setup(&store, config).await;
    let mut a = signed_in(&service, &owner).await;
    let mut b = signed_in(&service, &viewer).await;
    // A member read without `serve`, to see the queue entries themselves.
    let mut raw = service.join("demo").await.unwrap();
    let mut anon = connect(&service, "demo").await;
    assert_eq!(anon.next().await["type"], "history");
    for i in 0..10 {
        a.send(json!({"type": "chat", "v": 1, "text": format!("a{i}"), "nonce": format!("a{i}")}))
            .await;
        b.send(json!({"type": "chat", "v": 1, "text": format!("b{i}"), "nonce": format!("b{i}")}))
            .await;
    }
    let mut anon_ids = Vec::new();
    while anon_ids.len() < 20 {
        anon_ids.push(anon.next_of("chat").await["id"].as_i64().unwrap());
    }
    let mut sorted = anon_ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, anon_ids, "every message once, in id order");
    for (client, prefix) in [(&mut a, "a"), (&mut b, "b")] {
        let mut seen = Vec::new();
        let mut acks = 0;
        while seen.len() < 20 || acks < 10 {
            let f = client.next().await;
            match f["type"].as_str() {
                Some("chat") => seen.push(f["id"].as_i64().unwrap()),
                Some("ack") => {
                    assert!(f["nonce"].as_str().unwrap().starts_with(prefix));
                    let id = f["id"].as_i64().unwrap();
                    assert!(seen.contains(&id), "the message {id} comes before its ack");
                    acks += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(seen, anon_ids, "{prefix} sees what the others see");
    }
    let mut entries = 0;
    let mut batches = 0;
    let mut raw_ids = Vec::new();
    while raw_ids.len() < 20 {
        let out = tokio::time::timeout(Duration::from_secs(10), raw.rx.recv())
            .await
            .expect("a frame within 10 s")
            .expect("open");
        let texts: Vec<String> = match out {
            Outbound::Text(t) => vec![t.to_string()],
            Outbound::Batch(frames) => {
                batches += 1;
                frames.iter().map(|t| t.to_string()).collect()
            }
            other => panic!("unexpected {other:?}"),
        };
        for t in texts {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "chat" {
                raw_ids.push(v["id"].as_i64().unwrap());
            }
        }
        entries += 1;
    }
    assert_eq!(raw_ids, anon_ids);
    assert!(
        batches >= 1 && entries < 20,
        "20 messages in {entries} queue entries, {batches} batches"
    );
    // A client joining now gets the messages in its history, never again from a batch.
    a.send(json!({"type": "chat", "v": 1, "text": "pending"}))
        .await;
    let mut late = connect(&service, "demo").await;
    let history = late.next().await;
    assert_eq!(history["type"], "history");
    let mut known: Vec<i64> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    a.send(json!({"type": "chat", "v": 1, "text": "after"}))
        .await;
    loop {
        let f = late.next_of("chat").await;
        let id = f["id"].as_i64().unwrap();
        assert!(!known.contains(&id), "message {id} twice");
        known.push(id);
        if f["text"] == "after" {
            break;
        }
    }
    drop(raw);
}

/// At shutdown a busy room's messages still waiting out its window reach every member, the
/// sender's ack too, and only then the closing frame.
async fn a_shutdown_hands_out_the_last_messages_before_the_goodbye(store: Store) {
    let config = ChatConfig {
        batch_min_members: 2,
        // Far longer than the test: only the shutdown hands the message out.
        broadcast_window: Duration::from_secs(60),
        batch_writes_per_second: 0,
        ..ChatConfig::default()
    };
    let (service, owner, viewer) = setup(&store, config).await;
    let channel = store.channel_by_slug("demo").await.unwrap().unwrap();
    let shutdown = CancellationToken::new();
    let mut a = signed_in_until(&service, &owner, shutdown.clone()).await;
    let mut b = signed_in_until(&service, &viewer, shutdown.clone()).await;
    a.send(json!({"type": "chat", "v": 1, "text": "last words", "nonce": "l"}))
        .await;
    let stored = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let history = store.recent_chat_messages(channel.id, 10).await.unwrap();
            if history.iter().any(|m| m.text == "last words") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(stored.is_ok(), "the message is stored");
    shutdown.cancel();
    for (client, name) in [(&mut a, "sender"), (&mut b, "viewer")] {
        let mut texts = Vec::new();
        let closed = loop {
            let out = tokio::time::timeout(Duration::from_secs(10), client.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("the {name} hears the end within 10 s"));
            match out {
                Some(Outbound::Text(t)) => texts.push(serde_json::from_str::<Value>(&t).unwrap()),
                Some(Outbound::Batch(frames)) => texts.extend(
                    frames
                        .iter()
                        .map(|t| serde_json::from_str::<Value>(t).unwrap()),
                ),
                Some(Outbound::Close(why)) => break why,
                Some(_) => {}
                None => panic!("the {name} got no closing frame after {texts:?}"),
            }
        };
        assert_eq!(closed, "server shutting down");
        assert!(
            texts
                .iter()
                .any(|f| f["type"] == "chat" && f["text"] == "last words"),
            "the {name} gets the last message before the goodbye: {texts:?}"
        );
    }
}
