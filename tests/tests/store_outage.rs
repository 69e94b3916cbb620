//! The database goes away while a channel is live: the live stream and its viewer carry on,
//! a new publish is refused with a clear reason instead of hanging, and `/readyz` says the
//! server is not ready. Twice: a store that is closed (every call fails at once), and a
//! PostgreSQL behind a proxy that stops passing bytes (every call would wait), after which the
//! server must use the database again.

use std::str::FromStr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use onair::secret::SecretText;
use onair_e2e::flv::End;
use onair_e2e::proxy::FreezableProxy;
use onair_e2e::{Ffmpeg, FlvReader, TestServer, http, logs, require_ffmpeg};
use onair_store::{NewChannel, Role};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection};
use tokio_tungstenite::tungstenite::Message;

const LIVE_TIMEOUT: Duration = Duration::from_secs(15);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A streamer `{name}-owner` with a channel and a stored stream key for each slug.
async fn owner_with_keys(
    platform: &onair::platform::Platform,
    name: &str,
    slugs: [&str; 2],
) -> (onair_store::User, Vec<String>) {
    let owner = platform
        .create_user(&format!("{name}-owner"), "password-123", Role::Streamer)
        .await
        .unwrap();
    let mut keys = Vec::new();
    for slug in slugs {
        let channel = platform
            .store()
            .create_channel(NewChannel {
                slug: slug.into(),
                title: slug.into(),
                owner_id: owner.id,
                category: String::new(),
                tags: vec![],
            })
            .await
            .unwrap();
        let key = platform
            .issue_stream_key(channel.id, "OBS", None)
            .await
            .unwrap();
        keys.push(key.token.expose().to_owned());
    }
    (owner, keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_outlast_the_database_and_new_publishes_are_refused_clearly() {
    if !require_ffmpeg() {
        return;
    }
    let captured = logs::capture();
    let server = TestServer::start(|_| {}).await;
    let platform = server.platform();
    let (_, keys) = owner_with_keys(platform, "outage", ["outage-a", "outage-b"]).await;

    let mut live = Ffmpeg::publish_test_pattern(&server.publish_url(&keys[0]), 10);
    assert!(
        server.wait_live("outage-a", LIVE_TIMEOUT).await,
        "not live; ffmpeg said:\n{}",
        live.stderr()
    );
    let (_, _, mut viewer) = FlvReader::http(&server.flv_url("outage-a"), IO_TIMEOUT)
        .await
        .expect("http-flv opens");

    platform.store().close().await;

    // The live stream keeps flowing to its viewer for more than two of the watch loop's
    // store checks after the database went away.
    let reading = viewer
        .read_media(Duration::from_secs(2), Duration::from_secs(6))
        .await;
    assert_eq!(
        reading.end,
        End::Done,
        "the viewer lost the stream when the database went away"
    );
    assert!(server.hub().is_live("outage-a"));

    let mut refused = Ffmpeg::publish_test_pattern(&server.publish_url(&keys[1]), 3);
    let status = refused
        .wait(Duration::from_secs(20))
        .await
        .expect("the refused ffmpeg exits");
    assert!(
        !status.success(),
        "a publish the server cannot check must be refused"
    );
    assert!(!server.hub().is_live("outage-b"));
    let reasons = captured.containing("cannot check the key now");
    assert!(
        !reasons.is_empty(),
        "the refusal's reason is not in the log"
    );

    let ready = http::request("GET", &server.http_url("/readyz"), &[], IO_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(ready.status, 503, "/readyz must fail without the database");

    for key in &keys {
        assert!(
            captured.containing(key).is_empty(),
            "a stream key reached the log"
        );
    }
    live.kill().await;
    server.shutdown().await;
}

/// `url` with its host and port replaced by `addr` and its database by `database`; user,
/// password and parameters are kept.
fn via(url: &str, addr: std::net::SocketAddr, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let (authority, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let query = tail.split_once('?').map(|(_, q)| q);
    let userinfo = authority.rsplit_once('@').map(|(u, _)| u);
    let mut out = format!("{scheme}://");
    if let Some(userinfo) = userinfo {
        out.push_str(userinfo);
        out.push('@');
    }
    out.push_str(&format!("{addr}/{database}"));
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// The first chat frame from `socket` that `wanted` accepts, within `timeout`.
async fn chat_frame_where(
    socket: &mut ChatSocket,
    wanted: impl Fn(&serde_json::Value) -> bool,
    timeout: Duration,
) -> Option<serde_json::Value> {
    tokio::time::timeout(timeout, async {
        loop {
            let message = socket
                .next()
                .await
                .expect("chat socket open")
                .expect("no socket error");
            if let Message::Text(text) = message {
                let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
                if wanted(&frame) {
                    return frame;
                }
            }
        }
    })
    .await
    .ok()
}

/// One chat frame of `kind` from `socket`, skipping others.
async fn chat_frame(socket: &mut ChatSocket, kind: &str, timeout: Duration) -> serde_json::Value {
    chat_frame_where(socket, |f| f["type"] == kind, timeout)
        .await
        .unwrap_or_else(|| panic!("no {kind} frame within {timeout:?}"))
}

/// The ack or error answering the frame sent with `nonce`.
async fn answer(socket: &mut ChatSocket, nonce: &str) -> serde_json::Value {
    chat_frame_where(socket, |f| f["nonce"] == nonce, Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("no answer to {nonce} within 30 s"))
}

type ChatSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_stops_answering_holds_nothing_up_and_is_used_again_once_it_answers() {
    if !require_ffmpeg() {
        return;
    }
    let Some(admin_url) = onair_store::testing::postgres_url() else {
        return;
    };
    let options = PgConnectOptions::from_str(&admin_url).expect("a PostgreSQL URL");
    let upstream = tokio::net::lookup_host((options.get_host(), options.get_port()))
        .await
        .expect("the database's address")
        .next()
        .expect("one address");
    let database = format!("onair_hang_{}", std::process::id());
    let mut admin = PgConnection::connect(&admin_url).await.unwrap();
    // What an earlier run that failed half-way left behind.
    let leftovers: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'onair\\_hang\\_%'")
            .fetch_all(&mut admin)
            .await
            .unwrap();
    for name in leftovers {
        admin
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await
            .unwrap();
    }
    admin
        .execute(format!("CREATE DATABASE {database}").as_str())
        .await
        .unwrap();
    let proxy = FreezableProxy::start(upstream).await;
    let url = via(&admin_url, proxy.addr(), &database);
    let server = TestServer::start(|c| c.storage.database_url = Some(SecretText::new(url))).await;

    let platform = server.platform();
    let (owner, keys) = owner_with_keys(platform, "hang", ["hang-a", "hang-b"]).await;
    let (token, _) = platform.issue_access_token(&owner).await.unwrap();

    let mut live = Ffmpeg::publish_test_pattern(&server.publish_url(&keys[0]), 120);
    assert!(
        server.wait_live("hang-a", LIVE_TIMEOUT).await,
        "not live; ffmpeg said:\n{}",
        live.stderr()
    );
    let (_, _, mut viewer) = FlvReader::http(&server.flv_url("hang-a"), IO_TIMEOUT)
        .await
        .expect("http-flv opens");
    let chat_url = format!("ws://{}/api/v1/channels/hang-a/chat", server.http_addr);
    let (mut chat, _) = tokio_tungstenite::connect_async(chat_url).await.unwrap();
    chat_frame(&mut chat, "history", IO_TIMEOUT).await;
    let send = |text: &str| {
        Message::text(
            serde_json::json!({"type": "chat", "v": 1, "text": text, "nonce": text}).to_string(),
        )
    };
    chat.send(Message::text(
        serde_json::json!({"type": "auth", "v": 1, "token": token.expose()}).to_string(),
    ))
    .await
    .unwrap();
    chat_frame(&mut chat, "ack", IO_TIMEOUT).await;
    chat.send(send("before")).await.unwrap();
    assert_eq!(
        chat_frame(&mut chat, "ack", IO_TIMEOUT).await["nonce"],
        "before"
    );

    proxy.freeze();
    let frozen_at = Instant::now();

    // All at once, each with its own bound: the chat answers with an error instead of
    // waiting forever, a new publish is refused, /readyz fails, and the live goes on.
    let chat_during = async {
        chat.send(send("during")).await.unwrap();
        let error = chat_frame(&mut chat, "error", Duration::from_secs(30)).await;
        (error, frozen_at.elapsed())
    };
    let refused_publish = async {
        let mut refused = Ffmpeg::publish_test_pattern(&server.publish_url(&keys[1]), 3);
        let status = refused
            .wait(Duration::from_secs(40))
            .await
            .expect("the refused ffmpeg exits");
        (status, frozen_at.elapsed())
    };
    let ready = async {
        http::request("GET", &server.http_url("/readyz"), &[], IO_TIMEOUT)
            .await
            .unwrap()
            .status
    };
    let watching = viewer.read_media(Duration::from_secs(6), Duration::from_secs(20));
    let ((error, chat_took), (status, publish_took), ready, reading) =
        tokio::join!(chat_during, refused_publish, ready, watching);
    println!(
        "database frozen: chat error after {:.1} s, publish refused after {:.1} s",
        chat_took.as_secs_f64(),
        publish_took.as_secs_f64()
    );
    assert_eq!(error["nonce"], "during");
    assert_eq!(error["code"], "store_unavailable", "{error}");
    assert!(
        !status.success(),
        "a publish the server cannot check must be refused"
    );
    assert!(!server.hub().is_live("hang-b"));
    assert_eq!(ready, 503, "/readyz must fail while the database hangs");
    assert_eq!(
        reading.end,
        End::Done,
        "the viewer lost the stream while the database hung"
    );
    assert!(server.hub().is_live("hang-a"), "the live was ended");

    // Once the database answers again, so does the chat: connections that hung are given up
    // and new ones made.
    proxy.thaw();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let nonce = format!("after-{attempt}");
        chat.send(send(&nonce)).await.unwrap();
        let frame = answer(&mut chat, &nonce).await;
        if frame["type"] == "ack" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the chat never recovered: {frame}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(server.hub().is_live("hang-a"));

    live.kill().await;
    server.shutdown().await;
    drop(proxy);
    admin
        .execute(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)").as_str())
        .await
        .unwrap();
}
