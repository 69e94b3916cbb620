//! The document's promises, walked operation by operation: what the README and the OpenAPI
//! document say is what the server does.
//!
//! - **Lists.** Every GET whose 200 answer is a page envelope (`{items, total, offset,
//!   limit}`) is called on fixtures that give it at least two items, with `limit=1`,
//!   `offset=1`, `offset` at the total, `limit=0`, `limit=101` and `offset` past 1000000; the
//!   envelope, the counts and the order must agree. No other GET may answer a bare array,
//!   except the ones [`PLAIN_ARRAYS`] names with the reason.
//! - **Errors.** Every error status the document lists for an operation must be produced by
//!   a request here, and every request here must get exactly its status, as problem+json with
//!   a type of that status. The statuses an operation has because of what it is for come from
//!   [`cases`], one request per (method, path, status). Those every operation shares, which
//!   the document adds in one place (`add_shared_responses`), come from one rule each: 401 is a
//!   secured operation called without a token; 500 and 503 are the operation called (with a
//!   token, if it takes one) while the database has lost its tables, then while the store is
//!   closed. A status with no request fails the test: produce it, or take it out of the
//!   document if nothing can.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use axum::http::{Method, header};
use chrono::Utc;
use onair_store::{
    MessageKind, NewChatMessage, NewLiveSession, NewRecording, RecordingState, Role, Store,
};
use serde_json::{Value, json};

use super::{Api, PASSWORD, Reply};
use crate::api::validate::{LIMIT_DEFAULT, LIMIT_MAX, OFFSET_MAX};

/// GETs that answer a plain JSON array by design, and why they are not paged.
const PLAIN_ARRAYS: [(&str, &str); 4] = [
    (
        "/api/v1/video-categories",
        "the catalogue's categories: a short list admins keep, shown whole as a filter",
    ),
    (
        "/api/v1/gifts",
        "the gift catalogue: a handful of rows, seeded by a migration",
    ),
    (
        "/api/v1/channels/{slug}/restreams",
        "a channel's restream destinations: at most restream.max_per_channel (5), shown whole \
         with each one's live status",
    ),
    (
        "/api/v1/recordings/{id}/danmaku",
        "a window by position in the replay (from_ms..to_ms), capped at 5000; a player asks \
         for the next window as it plays",
    ),
];

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// What the walk needs to hold: accounts, channels with at least two of everything, and the
/// ids the requests name.
struct Fixtures {
    admin: String,
    alice: String,
    viewer: String,
    /// A viewer banned from alice's chat.
    walt: String,
    /// A key of alice's channel that works.
    jti: String,
    /// A key of alice's channel that is revoked.
    revoked_jti: String,
    /// A replay being recorded (it cannot be deleted), and a finished one.
    recording_id: i64,
    finished_id: i64,
    message_id: i64,
    viewer_id: i64,
    bob_id: i64,
    heart_gift: i64,
    /// Alice's private video, and a comment of hers on her public replay video (whose id is
    /// `finished_id`, so `{id}` names both).
    private_video: i64,
    comment_id: i64,
    category_id: i64,
    /// Alice's upload, nothing received of its 100 bytes; she may start no other.
    upload_id: i64,
    /// One of the restream destinations that fill alice-2's places.
    restream_id: i64,
    /// Publishers held for the walk: alice and bob are live.
    _live: Vec<onair_hub::Publisher>,
}

async fn fixtures(api: &Api) -> Fixtures {
    let store = api.store();
    let (_, admin) = api.account("root", Role::Admin).await;
    let (_, alice) = api.account("alice", Role::Streamer).await;
    let (bob, bob_token) = api.account("bob", Role::Streamer).await;
    let (vic, viewer) = api.account("vic", Role::Viewer).await;
    let (mallory, _) = api.account("mallory", Role::Viewer).await;
    store.set_user_banned(mallory.id, true).await.unwrap();
    let (walt, walt_token) = api.account("walt", Role::Viewer).await;

    let channel = api.channel(&alice, "alice").await;
    let channel_id = channel["id"].as_i64().unwrap();
    api.channel(&alice, "alice-2").await;
    let bob_channel = api.channel(&bob_token, "bob").await;
    // Two categories, so the category list has a second page.
    for (channel, category) in [(&channel, "Games"), (&bob_channel, "Music")] {
        store
            .update_channel(
                channel["id"].as_i64().unwrap(),
                onair_store::ChannelUpdate {
                    category: Some(category.into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }

    let jti = api.key(&alice, "alice", "obs").await["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    api.key(&alice, "alice", "spare").await;
    let revoked_jti = api.key(&alice, "alice", "old").await["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    api.delete(
        &format!("/api/v1/me/channels/alice/keys/{revoked_jti}"),
        Some(&alice),
    )
    .await
    .ok(axum::http::StatusCode::NO_CONTENT);

    for minutes in [20, 10] {
        let started = Utc::now() - chrono::Duration::minutes(minutes);
        let session = store
            .start_live_session(NewLiveSession {
                channel_id,
                started_at: started,
                publisher_addr: "198.51.100.7:50000".into(),
                video_codec: Some("h264".into()),
                audio_codec: Some("aac".into()),
            })
            .await
            .unwrap();
        store
            .end_live_session(session, started + chrono::Duration::minutes(5), 1000, 3)
            .await
            .unwrap();
    }
    let mut recordings = Vec::new();
    for n in 0..2 {
        let rec = store
            .create_recording(NewRecording {
                channel_id,
                live_session_id: None,
                title: format!("replay {n}"),
                path: format!("alice/{n}"),
                started_at: Utc::now() - chrono::Duration::hours(2 - n),
            })
            .await
            .unwrap();
        recordings.push(rec.id);
    }
    assert!(
        store
            .finish_recording(
                recordings[0],
                RecordingState::Finished,
                Utc::now(),
                60_000,
                1 << 20,
            )
            .await
            .unwrap()
    );
    // The catalogue: the finished replay is video `finished_id` (both tables start at 1),
    // a second public video so the list has two pages, a private one, two comments.
    let replay_video = store
        .ensure_replay_video(recordings[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replay_video.id, recordings[0]);
    let new_video = |title: &str, visibility| onair_store::NewVideo {
        channel_id,
        path: format!("alice/{title}"),
        title: title.into(),
        visibility,
        ..Default::default()
    };
    store
        .create_video(new_video("upload", onair_store::Visibility::Public))
        .await
        .unwrap();
    let private_video = store
        .create_video(new_video("draft", onair_store::Visibility::Private))
        .await
        .unwrap()
        .id;
    let alice_user = store.user_by_name("alice").await.unwrap().unwrap();
    let mut comments = Vec::new();
    for text in ["first", "second"] {
        let comment = store
            .create_video_comment(onair_store::NewVideoComment {
                video_id: replay_video.id,
                user_id: alice_user.id,
                parent_id: None,
                text: text.into(),
            })
            .await
            .unwrap();
        comments.push(comment.id);
    }
    let category_id = store
        .create_video_category("games", "Games")
        .await
        .unwrap()
        .id;
    store.create_video_category("music", "Music").await.unwrap();
    let mut messages = Vec::new();
    for text in ["hello", "again"] {
        let message = store
            .insert_chat_message(NewChatMessage {
                channel_id,
                user_id: vic.id,
                kind: MessageKind::Chat,
                text: text.into(),
                color: None,
                mode: None,
                live_session_id: None,
                offset_ms: None,
            })
            .await
            .unwrap();
        messages.push(message.id);
    }
    // Walt may not gift in alice's channel: banned from its chat.
    store
        .ban_in_channel(channel_id, walt.id, None)
        .await
        .unwrap();
    let heart_gift = store
        .list_gifts()
        .await
        .unwrap()
        .into_iter()
        .next()
        .expect("the migrations seed the gift catalogue")
        .id;
    let upload_id = store
        .create_upload(onair_store::NewUpload {
            user_id: alice_user.id,
            channel_id,
            title: "upload".into(),
            filename: String::new(),
            visibility: onair_store::Visibility::Public,
            length_bytes: 100,
            expires_at: Utc::now() + chrono::Duration::hours(1),
        })
        .await
        .unwrap()
        .id;
    // alice-2 (not live, so no push starts) has every restream place taken.
    let alice_2 = store.channel_by_slug("alice-2").await.unwrap().unwrap();
    let mut restream_id = 0;
    for n in 0..crate::config::RestreamConfig::default().max_per_channel {
        restream_id = store
            .create_restream(
                onair_store::NewRestream {
                    channel_id: alice_2.id,
                    name: format!("cdn {n}"),
                    url: "rtmp://127.0.0.1:9/live".into(),
                    stream_key: format!("restream-key-{n}"),
                    enabled: true,
                },
                100,
            )
            .await
            .unwrap()
            .unwrap()
            .id;
    }
    let live = vec![
        api.go_live("alice", Some(&jti)).await,
        api.go_live("bob", None).await,
    ];
    Fixtures {
        admin,
        alice,
        viewer,
        walt: walt_token,
        jti,
        revoked_jti,
        recording_id: recordings[1],
        finished_id: recordings[0],
        message_id: messages[0],
        viewer_id: vic.id,
        bob_id: bob.id,
        heart_gift,
        private_video,
        comment_id: comments[0],
        category_id,
        upload_id,
        restream_id,
        _live: live,
    }
}

/// Which server a request goes to: both share the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Server {
    /// `auth.registration = true`, so registering reaches the store.
    Open,
    /// The default `auth.registration = false`.
    Closed,
}

/// One request and the status it must get.
#[derive(Debug)]
struct Case<'a> {
    method: Method,
    /// The operation's path as the document spells it.
    template: &'a str,
    status: u16,
    uri: String,
    token: Option<String>,
    body: Option<Value>,
    /// A body sent as it is, with its content type, instead of `body`'s JSON.
    raw_body: Option<(&'static str, Vec<u8>)>,
    /// More request headers (tus's).
    headers: Vec<(&'static str, String)>,
    server: Server,
    /// Sent this many times from one address; the last answer counts (the login limiter).
    attempts: usize,
}

impl<'a> Case<'a> {
    fn new(method: Method, template: &'a str, status: u16) -> Self {
        Case {
            method,
            template,
            status,
            uri: template.to_owned(),
            token: None,
            body: None,
            raw_body: None,
            headers: Vec::new(),
            server: Server::Open,
            attempts: 1,
        }
    }

    fn raw_body(mut self, content_type: &'static str, body: Vec<u8>) -> Self {
        self.raw_body = Some((content_type, body));
        self
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn uri(mut self, uri: impl Into<String>) -> Self {
        self.uri = uri.into();
        self
    }

    fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    fn on(mut self, server: Server) -> Self {
        self.server = server;
        self
    }

    fn attempts(mut self, n: usize) -> Self {
        self.attempts = n;
        self
    }
}

/// The requests for the statuses particular to each operation.
fn cases(f: &Fixtures) -> Vec<Case<'static>> {
    use Method as M;
    let (admin, alice, vic) = (f.admin.as_str(), f.alice.as_str(), f.viewer.as_str());
    let credentials =
        |user: &str, password: &str| json!({ "username": user, "password": password });
    // The open server allows one attempt a minute per address and per account: the second
    // is refused however slowly the first one's password hashing runs.
    let attempts = 2;
    let jti = f.jti.as_str();
    let revoked = f.revoked_jti.as_str();
    let video = format!("/api/v1/videos/{}", f.finished_id);
    let private = f.private_video;
    let comment = format!("{video}/comments/{}", f.comment_id);
    let category = format!("/api/v1/admin/video-categories/{}", f.category_id);
    let upload = format!("/api/v1/uploads/{}", f.upload_id);
    let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
    let meta = |channel: &str| format!("channel {},title {}", b64(channel), b64("a clip"));
    let tus = |case: Case<'static>| case.header("tus-resumable", "1.0.0");
    let bytes = "application/offset+octet-stream";
    let creation = |token: &str, length: &str, channel: &str| {
        tus(Case::new(M::POST, "/api/v1/uploads", 0))
            .token(token)
            .header("upload-length", length)
            .header("upload-metadata", meta(channel))
    };
    let status = |mut case: Case<'static>, status: u16| {
        case.status = status;
        case
    };
    let uploads = vec![
        status(creation(alice, "ten", "alice"), 400),
        status(creation(vic, "10", "alice"), 403),
        status(creation(alice, "10", "bob"), 404),
        // The fixtures' upload is alice's one unfinished upload allowed.
        status(creation(alice, "10", "alice"), 409),
        Case::new(M::POST, "/api/v1/uploads", 412)
            .token(alice)
            .header("upload-length", "10")
            .header("upload-metadata", meta("alice")),
        status(creation(alice, "1001", "alice"), 413),
        Case::new(M::GET, "/api/v1/uploads/{id}", 400)
            .uri("/api/v1/uploads/0")
            .token(alice),
        Case::new(M::GET, "/api/v1/uploads/{id}", 403)
            .uri(upload.clone())
            .token(vic),
        Case::new(M::GET, "/api/v1/uploads/{id}", 404)
            .uri("/api/v1/uploads/999999")
            .token(admin),
        tus(Case::new(M::PATCH, "/api/v1/uploads/{id}", 400))
            .uri(upload.clone())
            .token(alice)
            .raw_body(bytes, b"x".to_vec()),
        tus(Case::new(M::PATCH, "/api/v1/uploads/{id}", 403))
            .uri(upload.clone())
            .token(vic)
            .header("upload-offset", "0")
            .raw_body(bytes, b"x".to_vec()),
        tus(Case::new(M::PATCH, "/api/v1/uploads/{id}", 404))
            .uri("/api/v1/uploads/999999")
            .token(alice)
            .header("upload-offset", "0")
            .raw_body(bytes, b"x".to_vec()),
        tus(Case::new(M::PATCH, "/api/v1/uploads/{id}", 409))
            .uri(upload.clone())
            .token(alice)
            .header("upload-offset", "5")
            .raw_body(bytes, b"x".to_vec()),
        Case::new(M::PATCH, "/api/v1/uploads/{id}", 412)
            .uri(upload.clone())
            .token(alice)
            .header("upload-offset", "0")
            .raw_body(bytes, b"x".to_vec()),
        // One byte past the upload's length, refused before any is written.
        tus(Case::new(M::PATCH, "/api/v1/uploads/{id}", 413))
            .uri(upload.clone())
            .token(alice)
            .header("upload-offset", "0")
            .header("content-length", "101")
            .raw_body(bytes, vec![0; 101]),
        tus(Case::new(M::PATCH, "/api/v1/uploads/{id}", 415))
            .uri(upload.clone())
            .token(alice)
            .header("upload-offset", "0")
            .raw_body("application/json", b"{}".to_vec()),
        tus(Case::new(M::DELETE, "/api/v1/uploads/{id}", 400))
            .uri("/api/v1/uploads/0")
            .token(alice),
        tus(Case::new(M::DELETE, "/api/v1/uploads/{id}", 403))
            .uri(upload.clone())
            .token(vic),
        tus(Case::new(M::DELETE, "/api/v1/uploads/{id}", 404))
            .uri("/api/v1/uploads/999999")
            .token(alice),
        Case::new(M::DELETE, "/api/v1/uploads/{id}", 412)
            .uri(upload.clone())
            .token(alice),
    ];
    let mut all = uploads;
    all.extend(vec![
        // /auth
        Case::new(M::POST, "/api/v1/auth/register", 400).body(credentials("x", "long enough")),
        Case::new(M::POST, "/api/v1/auth/register", 403)
            .body(credentials("newcomer", "long enough"))
            .on(Server::Closed),
        Case::new(M::POST, "/api/v1/auth/register", 409).body(credentials("bob", "long enough")),
        Case::new(M::POST, "/api/v1/auth/register", 429)
            .body(credentials("vic", "long enough"))
            .attempts(attempts),
        Case::new(M::POST, "/api/v1/auth/login", 400).body(credentials("", "x")),
        Case::new(M::POST, "/api/v1/auth/login", 401).body(credentials("alice", "wrong password")),
        Case::new(M::POST, "/api/v1/auth/login", 403).body(credentials("mallory", PASSWORD)),
        Case::new(M::POST, "/api/v1/auth/login", 429)
            .body(credentials("nobody", "wrong password"))
            .attempts(attempts),
        // /me
        Case::new(M::GET, "/api/v1/me/channels", 400)
            .uri("/api/v1/me/channels?limit=0")
            .token(alice),
        Case::new(M::GET, "/api/v1/me/channels", 403).token(vic),
        Case::new(M::POST, "/api/v1/me/channels", 400)
            .token(alice)
            .body(json!({ "slug": "Bad Slug", "title": "t" })),
        Case::new(M::POST, "/api/v1/me/channels", 403)
            .token(vic)
            .body(json!({ "slug": "vic", "title": "t" })),
        Case::new(M::POST, "/api/v1/me/channels", 409)
            .token(alice)
            .body(json!({ "slug": "bob", "title": "t" })),
        Case::new(M::GET, "/api/v1/me/channels/{slug}", 400)
            .uri("/api/v1/me/channels/Bad!")
            .token(alice),
        Case::new(M::GET, "/api/v1/me/channels/{slug}", 403)
            .uri("/api/v1/me/channels/alice")
            .token(vic),
        Case::new(M::GET, "/api/v1/me/channels/{slug}", 404)
            .uri("/api/v1/me/channels/bob")
            .token(alice),
        Case::new(M::PATCH, "/api/v1/me/channels/{slug}", 400)
            .uri("/api/v1/me/channels/alice")
            .token(alice)
            .body(json!({ "title": "" })),
        Case::new(M::PATCH, "/api/v1/me/channels/{slug}", 403)
            .uri("/api/v1/me/channels/alice")
            .token(vic)
            .body(json!({ "title": "mine" })),
        Case::new(M::PATCH, "/api/v1/me/channels/{slug}", 404)
            .uri("/api/v1/me/channels/bob")
            .token(alice)
            .body(json!({ "title": "mine" })),
        Case::new(M::PATCH, "/api/v1/me/channels/{slug}", 422)
            .uri("/api/v1/me/channels/alice")
            .token(alice)
            .body(json!({})),
        Case::new(M::DELETE, "/api/v1/me/channels/{slug}", 400)
            .uri("/api/v1/me/channels/Bad!")
            .token(alice),
        Case::new(M::DELETE, "/api/v1/me/channels/{slug}", 403)
            .uri("/api/v1/me/channels/alice")
            .token(vic),
        Case::new(M::DELETE, "/api/v1/me/channels/{slug}", 404)
            .uri("/api/v1/me/channels/bob")
            .token(alice),
        Case::new(M::GET, "/api/v1/me/channels/{slug}/keys", 400)
            .uri("/api/v1/me/channels/alice/keys?limit=101")
            .token(alice),
        Case::new(M::GET, "/api/v1/me/channels/{slug}/keys", 403)
            .uri("/api/v1/me/channels/alice/keys")
            .token(vic),
        Case::new(M::GET, "/api/v1/me/channels/{slug}/keys", 404)
            .uri("/api/v1/me/channels/bob/keys")
            .token(alice),
        Case::new(M::POST, "/api/v1/me/channels/{slug}/keys", 400)
            .uri("/api/v1/me/channels/alice/keys")
            .token(alice)
            .body(json!({ "label": "l".repeat(65) })),
        Case::new(M::POST, "/api/v1/me/channels/{slug}/keys", 403)
            .uri("/api/v1/me/channels/alice/keys")
            .token(vic)
            .body(json!({})),
        Case::new(M::POST, "/api/v1/me/channels/{slug}/keys", 404)
            .uri("/api/v1/me/channels/bob/keys")
            .token(alice)
            .body(json!({})),
        Case::new(M::DELETE, "/api/v1/me/channels/{slug}/keys/{jti}", 400)
            .uri(format!("/api/v1/me/channels/Bad!/keys/{jti}"))
            .token(alice),
        Case::new(M::DELETE, "/api/v1/me/channels/{slug}/keys/{jti}", 403)
            .uri(format!("/api/v1/me/channels/alice/keys/{jti}"))
            .token(vic),
        Case::new(M::DELETE, "/api/v1/me/channels/{slug}/keys/{jti}", 404)
            .uri("/api/v1/me/channels/alice/keys/0000")
            .token(alice),
        Case::new(M::DELETE, "/api/v1/me/channels/{slug}/keys/{jti}", 409)
            .uri(format!("/api/v1/me/channels/alice/keys/{revoked}"))
            .token(alice),
        Case::new(M::POST, "/api/v1/me/channels/{slug}/keys/{jti}/rotate", 400)
            .uri(format!("/api/v1/me/channels/Bad!/keys/{jti}/rotate"))
            .token(alice),
        Case::new(M::POST, "/api/v1/me/channels/{slug}/keys/{jti}/rotate", 403)
            .uri(format!("/api/v1/me/channels/alice/keys/{jti}/rotate"))
            .token(vic),
        Case::new(M::POST, "/api/v1/me/channels/{slug}/keys/{jti}/rotate", 404)
            .uri(format!("/api/v1/me/channels/bob/keys/{jti}/rotate"))
            .token(alice),
        Case::new(M::POST, "/api/v1/me/channels/{slug}/keys/{jti}/rotate", 409)
            .uri(format!("/api/v1/me/channels/alice/keys/{revoked}/rotate"))
            .token(alice),
        Case::new(M::GET, "/api/v1/me/channels/{slug}/live", 400)
            .uri("/api/v1/me/channels/Bad!/live")
            .token(alice),
        Case::new(M::GET, "/api/v1/me/channels/{slug}/live", 403)
            .uri("/api/v1/me/channels/alice/live")
            .token(vic),
        Case::new(M::GET, "/api/v1/me/channels/{slug}/live", 404)
            .uri("/api/v1/me/channels/bob/live")
            .token(alice),
        Case::new(M::GET, "/api/v1/me/channels/{slug}/sessions", 400)
            .uri("/api/v1/me/channels/alice/sessions?offset=1000001")
            .token(alice),
        Case::new(M::GET, "/api/v1/me/channels/{slug}/sessions", 403)
            .uri("/api/v1/me/channels/alice/sessions")
            .token(vic),
        Case::new(M::GET, "/api/v1/me/channels/{slug}/sessions", 404)
            .uri("/api/v1/me/channels/bob/sessions")
            .token(alice),
        // /admin
        Case::new(M::GET, "/api/v1/admin/users", 400)
            .uri(format!("/api/v1/admin/users?search={}", "x".repeat(65)))
            .token(admin),
        Case::new(M::GET, "/api/v1/admin/users", 403).token(alice),
        Case::new(M::POST, "/api/v1/admin/users", 400)
            .token(admin)
            .body(json!({ "username": "dave", "password": "long enough", "role": "king" })),
        Case::new(M::POST, "/api/v1/admin/users", 403)
            .token(alice)
            .body(json!({ "username": "dave", "password": "long enough", "role": "admin" })),
        Case::new(M::POST, "/api/v1/admin/users", 409)
            .token(admin)
            .body(json!({ "username": "Alice", "password": "long enough", "role": "viewer" })),
        Case::new(M::GET, "/api/v1/admin/users/{id}", 400)
            .uri("/api/v1/admin/users/abc")
            .token(admin),
        Case::new(M::GET, "/api/v1/admin/users/{id}", 403)
            .uri(format!("/api/v1/admin/users/{}", f.bob_id))
            .token(alice),
        Case::new(M::GET, "/api/v1/admin/users/{id}", 404)
            .uri("/api/v1/admin/users/999999")
            .token(admin),
        Case::new(M::PATCH, "/api/v1/admin/users/{id}", 400)
            .uri(format!("/api/v1/admin/users/{}", f.bob_id))
            .token(admin)
            .body(json!({ "banned": "yes" })),
        Case::new(M::PATCH, "/api/v1/admin/users/{id}", 403)
            .uri(format!("/api/v1/admin/users/{}", f.bob_id))
            .token(alice)
            .body(json!({ "banned": true })),
        Case::new(M::PATCH, "/api/v1/admin/users/{id}", 404)
            .uri("/api/v1/admin/users/999999")
            .token(admin)
            .body(json!({ "banned": true })),
        Case::new(M::PATCH, "/api/v1/admin/users/{id}", 422)
            .uri(format!("/api/v1/admin/users/{}", f.bob_id))
            .token(admin)
            .body(json!({})),
        Case::new(M::GET, "/api/v1/admin/channels", 400)
            .uri("/api/v1/admin/channels?limit=0")
            .token(admin),
        Case::new(M::GET, "/api/v1/admin/channels", 403).token(alice),
        Case::new(M::GET, "/api/v1/admin/channels/{slug}/keys", 400)
            .uri("/api/v1/admin/channels/NO!/keys")
            .token(admin),
        Case::new(M::GET, "/api/v1/admin/channels/{slug}/keys", 403)
            .uri("/api/v1/admin/channels/alice/keys")
            .token(alice),
        Case::new(M::GET, "/api/v1/admin/channels/{slug}/keys", 404)
            .uri("/api/v1/admin/channels/nobody/keys")
            .token(admin),
        Case::new(M::DELETE, "/api/v1/admin/keys/{jti}", 403)
            .uri(format!("/api/v1/admin/keys/{jti}"))
            .token(alice),
        Case::new(M::DELETE, "/api/v1/admin/keys/{jti}", 404)
            .uri("/api/v1/admin/keys/unknown")
            .token(admin),
        Case::new(M::DELETE, "/api/v1/admin/keys/{jti}", 409)
            .uri(format!("/api/v1/admin/keys/{revoked}"))
            .token(admin),
        Case::new(M::GET, "/api/v1/admin/live", 400)
            .uri("/api/v1/admin/live?limit=0")
            .token(admin),
        Case::new(M::GET, "/api/v1/admin/live", 403).token(alice),
        Case::new(M::POST, "/api/v1/admin/live/{slug}/kick", 400)
            .uri("/api/v1/admin/live/b%20b/kick")
            .token(admin),
        Case::new(M::POST, "/api/v1/admin/live/{slug}/kick", 403)
            .uri("/api/v1/admin/live/alice/kick")
            .token(alice),
        Case::new(M::POST, "/api/v1/admin/live/{slug}/kick", 404)
            .uri("/api/v1/admin/live/alice-2/kick")
            .token(admin),
        Case::new(M::GET, "/api/v1/admin/audit", 400)
            .uri("/api/v1/admin/audit?offset=-1")
            .token(admin),
        Case::new(M::GET, "/api/v1/admin/audit", 403).token(alice),
        Case::new(M::GET, "/api/v1/admin/replays/retention", 403).token(alice),
        Case::new(M::PUT, "/api/v1/admin/replays/retention", 400)
            .token(admin)
            .body(json!({ "max_age_seconds": 5 })),
        Case::new(M::PUT, "/api/v1/admin/replays/retention", 403)
            .token(alice)
            .body(json!({})),
        Case::new(M::POST, "/api/v1/admin/users/{id}/wallet", 400)
            .uri(format!("/api/v1/admin/users/{}/wallet", f.viewer_id))
            .token(admin)
            .body(json!({ "amount": 0 })),
        Case::new(M::POST, "/api/v1/admin/users/{id}/wallet", 403)
            .uri(format!("/api/v1/admin/users/{}/wallet", f.viewer_id))
            .token(alice)
            .body(json!({ "amount": 5 })),
        Case::new(M::POST, "/api/v1/admin/users/{id}/wallet", 404)
            .uri("/api/v1/admin/users/999999/wallet")
            .token(admin)
            .body(json!({ "amount": 5 })),
        // Public
        Case::new(M::GET, "/api/v1/channels", 400).uri("/api/v1/channels?live=yes"),
        Case::new(M::GET, "/api/v1/categories", 400).uri("/api/v1/categories?limit=0"),
        Case::new(M::GET, "/api/v1/channels/{slug}", 400).uri("/api/v1/channels/Bad!"),
        Case::new(M::GET, "/api/v1/channels/{slug}", 404).uri("/api/v1/channels/nobody"),
        Case::new(M::GET, "/api/v1/channels/{slug}/replays", 400)
            .uri("/api/v1/channels/alice/replays?limit=0"),
        Case::new(M::GET, "/api/v1/channels/{slug}/replays", 404)
            .uri("/api/v1/channels/nobody/replays"),
        Case::new(M::GET, "/api/v1/replays", 400).uri("/api/v1/replays?limit=0"),
        Case::new(M::GET, "/api/v1/replays/{id}", 400).uri("/api/v1/replays/0"),
        Case::new(M::GET, "/api/v1/replays/{id}", 404).uri("/api/v1/replays/999999"),
        Case::new(M::DELETE, "/api/v1/replays/{id}", 400)
            .uri("/api/v1/replays/abc")
            .token(alice),
        Case::new(M::DELETE, "/api/v1/replays/{id}", 403)
            .uri(format!("/api/v1/replays/{}", f.finished_id))
            .token(vic),
        Case::new(M::DELETE, "/api/v1/replays/{id}", 404)
            .uri("/api/v1/replays/999999")
            .token(alice),
        Case::new(M::DELETE, "/api/v1/replays/{id}", 409)
            .uri(format!("/api/v1/replays/{}", f.recording_id))
            .token(alice),
        // Chat
        Case::new(M::GET, "/api/v1/channels/{slug}/messages", 400)
            .uri("/api/v1/channels/alice/messages?limit=101"),
        Case::new(M::GET, "/api/v1/channels/{slug}/messages", 404)
            .uri("/api/v1/channels/nobody/messages"),
        Case::new(M::DELETE, "/api/v1/channels/{slug}/messages/{id}", 403)
            .uri(format!("/api/v1/channels/alice/messages/{}", f.message_id))
            .token(vic),
        Case::new(M::DELETE, "/api/v1/channels/{slug}/messages/{id}", 404)
            .uri("/api/v1/channels/alice/messages/999999")
            .token(alice),
        Case::new(M::GET, "/api/v1/recordings/{id}/danmaku", 400).uri(format!(
            "/api/v1/recordings/{}/danmaku?from_ms=-1",
            f.finished_id
        )),
        Case::new(M::GET, "/api/v1/recordings/{id}/danmaku", 404)
            .uri("/api/v1/recordings/999999/danmaku"),
        Case::new(M::POST, "/api/v1/channels/{slug}/gifts", 400)
            .uri("/api/v1/channels/alice/gifts")
            .token(vic)
            .body(json!({ "gift_id": f.heart_gift })),
        Case::new(M::POST, "/api/v1/channels/{slug}/gifts", 403)
            .uri("/api/v1/channels/alice/gifts")
            .token(&f.walt)
            .body(json!({ "gift_id": f.heart_gift, "idempotency_key": "k1" })),
        Case::new(M::POST, "/api/v1/channels/{slug}/gifts", 404)
            .uri("/api/v1/channels/nobody/gifts")
            .token(vic)
            .body(json!({ "gift_id": f.heart_gift, "idempotency_key": "k2" })),
        Case::new(M::POST, "/api/v1/channels/{slug}/gifts", 409)
            .uri("/api/v1/channels/alice/gifts")
            .token(vic)
            .body(json!({ "gift_id": f.heart_gift, "idempotency_key": "k3" })),
        Case::new(M::POST, "/api/v1/channels/{slug}/gifts", 422)
            .uri("/api/v1/channels/alice/gifts")
            .token(vic)
            .body(json!({ "gift_id": 999_999, "idempotency_key": "k4" })),
        Case::new(M::GET, "/api/v1/channels/{slug}/restreams", 400)
            .uri("/api/v1/channels/Not%20a%20slug/restreams")
            .token(alice),
        Case::new(M::GET, "/api/v1/channels/{slug}/restreams", 403)
            .uri("/api/v1/channels/alice-2/restreams")
            .token(vic),
        Case::new(M::GET, "/api/v1/channels/{slug}/restreams", 404)
            .uri("/api/v1/channels/nobody/restreams")
            .token(alice),
        Case::new(M::POST, "/api/v1/channels/{slug}/restreams", 400)
            .uri("/api/v1/channels/alice-2/restreams")
            .token(alice)
            .body(json!({ "name": "", "url": "rtmp://cdn.example/live", "stream_key": "k" })),
        Case::new(M::POST, "/api/v1/channels/{slug}/restreams", 403)
            .uri("/api/v1/channels/alice-2/restreams")
            .token(vic)
            .body(json!({ "name": "cdn", "url": "rtmp://cdn.example/live", "stream_key": "k" })),
        Case::new(M::POST, "/api/v1/channels/{slug}/restreams", 404)
            .uri("/api/v1/channels/nobody/restreams")
            .token(alice)
            .body(json!({ "name": "cdn", "url": "rtmp://cdn.example/live", "stream_key": "k" })),
        Case::new(M::POST, "/api/v1/channels/{slug}/restreams", 409)
            .uri("/api/v1/channels/alice-2/restreams")
            .token(alice)
            .body(json!({ "name": "sixth", "url": "rtmp://cdn.example/live", "stream_key": "k" })),
        Case::new(M::POST, "/api/v1/channels/{slug}/restreams", 422)
            .uri("/api/v1/channels/alice-2/restreams")
            .token(alice)
            .body(json!({ "name": "cdn", "url": "http://cdn.example/live", "stream_key": "k" })),
        Case::new(M::PATCH, "/api/v1/channels/{slug}/restreams/{id}", 400)
            .uri(format!(
                "/api/v1/channels/alice-2/restreams/{}",
                f.restream_id
            ))
            .token(alice)
            .body(json!({ "name": "" })),
        Case::new(M::PATCH, "/api/v1/channels/{slug}/restreams/{id}", 403)
            .uri(format!(
                "/api/v1/channels/alice-2/restreams/{}",
                f.restream_id
            ))
            .token(vic)
            .body(json!({ "enabled": false })),
        Case::new(M::PATCH, "/api/v1/channels/{slug}/restreams/{id}", 404)
            .uri("/api/v1/channels/alice-2/restreams/999999")
            .token(alice)
            .body(json!({ "enabled": false })),
        Case::new(M::PATCH, "/api/v1/channels/{slug}/restreams/{id}", 422)
            .uri(format!(
                "/api/v1/channels/alice-2/restreams/{}",
                f.restream_id
            ))
            .token(alice)
            .body(json!({ "url": "srt://cdn.example:9000" })),
        Case::new(M::DELETE, "/api/v1/channels/{slug}/restreams/{id}", 400)
            .uri("/api/v1/channels/alice-2/restreams/zero")
            .token(alice),
        Case::new(M::DELETE, "/api/v1/channels/{slug}/restreams/{id}", 403)
            .uri(format!(
                "/api/v1/channels/alice-2/restreams/{}",
                f.restream_id
            ))
            .token(vic),
        Case::new(M::DELETE, "/api/v1/channels/{slug}/restreams/{id}", 404)
            .uri("/api/v1/channels/alice/restreams/999999")
            .token(alice),
        Case::new(M::POST, "/api/v1/channels/{slug}/mutes", 400)
            .uri("/api/v1/channels/alice/mutes")
            .token(alice)
            .body(json!({ "user_id": f.viewer_id, "seconds": 0 })),
        Case::new(M::POST, "/api/v1/channels/{slug}/mutes", 403)
            .uri("/api/v1/channels/alice/mutes")
            .token(vic)
            .body(json!({ "user_id": f.bob_id, "seconds": 60 })),
        Case::new(M::POST, "/api/v1/channels/{slug}/mutes", 404)
            .uri("/api/v1/channels/nobody/mutes")
            .token(alice)
            .body(json!({ "user_id": f.viewer_id, "seconds": 60 })),
        Case::new(M::DELETE, "/api/v1/channels/{slug}/mutes/{user_id}", 403)
            .uri(format!("/api/v1/channels/alice/mutes/{}", f.bob_id))
            .token(vic),
        Case::new(M::DELETE, "/api/v1/channels/{slug}/mutes/{user_id}", 404)
            .uri(format!("/api/v1/channels/alice/mutes/{}", f.viewer_id))
            .token(alice),
        Case::new(M::POST, "/api/v1/channels/{slug}/bans", 403)
            .uri("/api/v1/channels/alice/bans")
            .token(vic)
            .body(json!({ "user_id": f.bob_id })),
        Case::new(M::POST, "/api/v1/channels/{slug}/bans", 404)
            .uri("/api/v1/channels/nobody/bans")
            .token(alice)
            .body(json!({ "user_id": f.viewer_id })),
        Case::new(M::DELETE, "/api/v1/channels/{slug}/bans/{user_id}", 403)
            .uri(format!("/api/v1/channels/alice/bans/{}", f.bob_id))
            .token(vic),
        Case::new(M::DELETE, "/api/v1/channels/{slug}/bans/{user_id}", 404)
            .uri(format!("/api/v1/channels/alice/bans/{}", f.viewer_id))
            .token(alice),
        Case::new(M::PUT, "/api/v1/channels/{slug}/slow-mode", 400)
            .uri("/api/v1/channels/alice/slow-mode")
            .token(alice)
            .body(json!({ "seconds": 3601 })),
        Case::new(M::PUT, "/api/v1/channels/{slug}/slow-mode", 403)
            .uri("/api/v1/channels/alice/slow-mode")
            .token(vic)
            .body(json!({ "seconds": 5 })),
        Case::new(M::PUT, "/api/v1/channels/{slug}/slow-mode", 404)
            .uri("/api/v1/channels/nobody/slow-mode")
            .token(alice)
            .body(json!({ "seconds": 5 })),
        // The catalogue. A private video is 404 to anyone but its owner and admins.
        Case::new(M::GET, "/api/v1/videos", 400).uri("/api/v1/videos?sort=loudest"),
        Case::new(M::GET, "/api/v1/videos/{id}", 400).uri("/api/v1/videos/0"),
        Case::new(M::GET, "/api/v1/videos/{id}", 404)
            .uri(format!("/api/v1/videos/{private}"))
            .token(vic),
        Case::new(M::PATCH, "/api/v1/videos/{id}", 400)
            .uri(video.clone())
            .token(alice)
            .body(json!({ "title": "" })),
        Case::new(M::PATCH, "/api/v1/videos/{id}", 403)
            .uri(video.clone())
            .token(vic)
            .body(json!({ "title": "mine now" })),
        Case::new(M::PATCH, "/api/v1/videos/{id}", 404)
            .uri(format!("/api/v1/videos/{private}"))
            .token(vic)
            .body(json!({ "title": "seen" })),
        Case::new(M::PATCH, "/api/v1/videos/{id}", 422)
            .uri(video.clone())
            .token(alice)
            .body(json!({ "category": "no-such-category" })),
        Case::new(M::DELETE, "/api/v1/videos/{id}", 400)
            .uri("/api/v1/videos/0")
            .token(alice),
        Case::new(M::DELETE, "/api/v1/videos/{id}", 403)
            .uri(video.clone())
            .token(vic),
        Case::new(M::DELETE, "/api/v1/videos/{id}", 404)
            .uri(format!("/api/v1/videos/{private}"))
            .token(vic),
        Case::new(M::GET, "/api/v1/videos/{id}/thumbnail.jpg", 400)
            .uri("/api/v1/videos/0/thumbnail.jpg"),
        Case::new(M::GET, "/api/v1/videos/{id}/thumbnail.jpg", 404)
            .uri(format!("{video}/thumbnail.jpg")),
        Case::new(M::POST, "/api/v1/videos/{id}/views", 400).uri("/api/v1/videos/0/views"),
        Case::new(M::POST, "/api/v1/videos/{id}/views", 404)
            .uri(format!("/api/v1/videos/{private}/views")),
        Case::new(M::GET, "/api/v1/videos/{id}/comments", 400)
            .uri(format!("{video}/comments?parent=0")),
        Case::new(M::GET, "/api/v1/videos/{id}/comments", 404)
            .uri(format!("/api/v1/videos/{private}/comments")),
        Case::new(M::POST, "/api/v1/videos/{id}/comments", 400)
            .uri(format!("{video}/comments"))
            .token(vic)
            .body(json!({ "text": " " })),
        Case::new(M::POST, "/api/v1/videos/{id}/comments", 403)
            .uri(format!("{video}/comments"))
            .token(&f.walt)
            .body(json!({ "text": "let me in" })),
        Case::new(M::POST, "/api/v1/videos/{id}/comments", 404)
            .uri(format!("/api/v1/videos/{private}/comments"))
            .token(vic)
            .body(json!({ "text": "hello?" })),
        Case::new(M::POST, "/api/v1/videos/{id}/comments", 422)
            .uri(format!("{video}/comments"))
            .token(admin)
            .body(json!({ "text": "deep", "parent_id": 999_999 })),
        // The chat's limit: 10 messages per window, so the eleventh comment is refused.
        Case::new(M::POST, "/api/v1/videos/{id}/comments", 429)
            .uri(format!("{video}/comments"))
            .token(vic)
            .body(json!({ "text": "again and again" }))
            .attempts(11),
        Case::new(M::PATCH, "/api/v1/videos/{id}/comments/{comment_id}", 400)
            .uri(comment.clone())
            .token(alice)
            .body(json!({ "text": "" })),
        Case::new(M::PATCH, "/api/v1/videos/{id}/comments/{comment_id}", 403)
            .uri(comment.clone())
            .token(vic)
            .body(json!({ "text": "not yours" })),
        Case::new(M::PATCH, "/api/v1/videos/{id}/comments/{comment_id}", 404)
            .uri(format!("{video}/comments/999999"))
            .token(alice)
            .body(json!({ "text": "where" })),
        Case::new(M::DELETE, "/api/v1/videos/{id}/comments/{comment_id}", 400)
            .uri(format!("{video}/comments/0"))
            .token(alice),
        Case::new(M::DELETE, "/api/v1/videos/{id}/comments/{comment_id}", 403)
            .uri(comment.clone())
            .token(vic),
        Case::new(M::DELETE, "/api/v1/videos/{id}/comments/{comment_id}", 404)
            .uri(format!("{video}/comments/999999"))
            .token(alice),
        Case::new(M::POST, "/api/v1/admin/video-categories", 400)
            .token(admin)
            .body(json!({ "slug": "Not A Slug", "name": "x" })),
        Case::new(M::POST, "/api/v1/admin/video-categories", 403)
            .token(vic)
            .body(json!({ "slug": "talk", "name": "Talk" })),
        Case::new(M::POST, "/api/v1/admin/video-categories", 409)
            .token(admin)
            .body(json!({ "slug": "games", "name": "Games again" })),
        Case::new(M::PATCH, "/api/v1/admin/video-categories/{id}", 400)
            .uri(category.clone())
            .token(admin)
            .body(json!({ "name": "" })),
        Case::new(M::PATCH, "/api/v1/admin/video-categories/{id}", 403)
            .uri(category.clone())
            .token(vic)
            .body(json!({ "name": "Mine" })),
        Case::new(M::PATCH, "/api/v1/admin/video-categories/{id}", 404)
            .uri("/api/v1/admin/video-categories/999999")
            .token(admin)
            .body(json!({ "name": "Gone" })),
        Case::new(M::PATCH, "/api/v1/admin/video-categories/{id}", 409)
            .uri(category.clone())
            .token(admin)
            .body(json!({ "slug": "music" })),
        Case::new(M::DELETE, "/api/v1/admin/video-categories/{id}", 400)
            .uri("/api/v1/admin/video-categories/0")
            .token(admin),
        Case::new(M::DELETE, "/api/v1/admin/video-categories/{id}", 403)
            .uri(category.clone())
            .token(vic),
        Case::new(M::DELETE, "/api/v1/admin/video-categories/{id}", 404)
            .uri("/api/v1/admin/video-categories/999999")
            .token(admin),
        Case::new(
            M::GET,
            "/api/v1/channels/{slug}/replays/latest/index.m3u8",
            400,
        )
        .uri("/api/v1/channels/Not_A_Slug!/replays/latest/index.m3u8"),
        Case::new(
            M::GET,
            "/api/v1/channels/{slug}/replays/latest/index.m3u8",
            404,
        )
        .uri("/api/v1/channels/nobody/replays/latest/index.m3u8"),
    ]);
    all
}

/// An instance of `template` that reaches its handler's store calls: for the shared 401, 500
/// and 503.
fn sample<'a>(method: &Method, template: &'a str, status: u16, f: &Fixtures) -> Case<'a> {
    let uri = template
        .replace("{slug}", "alice")
        .replace("{jti}", &f.jti)
        .replace("{user_id}", &f.viewer_id.to_string())
        .replace("{comment_id}", &f.comment_id.to_string())
        .replace("{id}", &f.finished_id.to_string());
    let mut case = Case::new(method.clone(), template, status).uri(uri);
    // Of the operations that reach the store before anything else can fail, only the public
    // writes need a body (a secured one asks the store about its token first); each gets a
    // name of its own, so the login limiter's count per account never decides.
    if let Some(what) = ["login", "register"]
        .into_iter()
        .find(|w| template == format!("/api/v1/auth/{w}"))
    {
        case = case.body(json!({ "username": format!("{what}{status}"), "password": PASSWORD }));
    }
    case
}

/// Every operation of the document: (method, path, operation object).
fn operations(doc: &Value) -> Vec<(Method, &str, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                out.push((method, path.as_str(), op));
            }
        }
    }
    out
}

/// The schema `value` names, following a `$ref` into the components.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("not a schema reference: {reference}"));
            &doc["components"]["schemas"][name]
        }
        None => value,
    }
}

/// The JSON schema of an operation's 200 answer, resolved.
fn ok_schema<'a>(doc: &'a Value, op: &'a Value) -> Option<&'a Value> {
    let schema = op["responses"]["200"]["content"]["application/json"].get("schema")?;
    Some(resolve(doc, schema))
}

fn is_envelope(schema: &Value) -> bool {
    let Some(properties) = schema["properties"].as_object() else {
        return false;
    };
    let names: BTreeSet<&str> = properties.keys().map(String::as_str).collect();
    names == BTreeSet::from(["items", "total", "offset", "limit"])
}

/// Whether `uri` (query aside) is an instance of `template`.
fn instance_of(template: &str, uri: &str) -> bool {
    let path = uri.split('?').next().unwrap_or(uri);
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| {
            if t.starts_with('{') && t.ends_with('}') {
                !p.is_empty()
            } else {
                t == p
            }
        })
}

/// The problem types a status may carry.
fn problem_types(status: u16) -> &'static [&'static str] {
    match status {
        400 => &["invalid-request"],
        401 => &["unauthorized", "bad-credentials"],
        403 => &["forbidden", "account-banned", "registration-closed"],
        404 => &["not-found"],
        408 => &["request-timeout"],
        409 => &["conflict"],
        412 => &["precondition-failed"],
        413 => &["payload-too-large"],
        415 => &["unsupported-media-type"],
        422 => &["unprocessable"],
        429 => &["rate-limited"],
        500 => &["internal"],
        503 => &["unavailable", "busy"],
        _ => &[],
    }
}

/// What is wrong with `reply` as the answer to `case`, if anything.
fn check_problem(case: &Case<'_>, reply: &Reply) -> Option<String> {
    let what = format!("{} {} (for {})", case.method, case.uri, case.status);
    if reply.status.as_u16() != case.status {
        return Some(format!(
            "{what}: got {}: {}",
            reply.status,
            brief(&reply.text)
        ));
    }
    let content_type = reply
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if content_type != Some("application/problem+json") {
        return Some(format!("{what}: content type {content_type:?}"));
    }
    let kind = reply.json["type"].as_str().unwrap_or_default();
    let known = problem_types(case.status)
        .iter()
        .any(|slug| kind == format!("https://onair.dev/problems/{slug}"));
    if !known || reply.json["status"] != case.status {
        return Some(format!("{what}: problem {}", brief(&reply.text)));
    }
    None
}

/// Sends `case` (all its attempts from `peer`) to `api`; returns the last answer.
async fn send(api: &Api, case: &Case<'_>, peer: SocketAddr) -> Reply {
    let mut reply = None;
    for _ in 0..case.attempts {
        let mut request = api.request(
            case.method.clone(),
            &case.uri,
            case.token.as_deref(),
            case.body.clone(),
        );
        if let Some((content_type, body)) = &case.raw_body {
            let headers = request.headers_mut();
            headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
            *request.body_mut() = axum::body::Body::from(body.clone());
        }
        for (name, value) in &case.headers {
            request.headers_mut().insert(*name, value.parse().unwrap());
        }
        reply = Some(api.send(request, peer).await);
    }
    reply.expect("every case makes at least one attempt")
}

/// Calls one page operation every way the contract allows and refuses, on `uri` (the
/// operation with its path parameters filled in).
async fn walk_page(api: &Api, path: &str, uri: &str, token: Option<&str>) -> Vec<String> {
    let get = |query: String| {
        let at = if query.is_empty() {
            uri.to_owned()
        } else {
            format!("{uri}?{query}")
        };
        async move { (api.get(&at, token).await, at) }
    };
    // The whole list in one page is what every other page is checked against.
    let (reference, at) = get(format!("limit={LIMIT_MAX}")).await;
    let Some(total) = reference.json["total"].as_u64() else {
        return vec![format!(
            "GET {at}: {} {}",
            reference.status,
            brief(&reference.text)
        )];
    };
    if !(2..=u64::from(LIMIT_MAX)).contains(&total) {
        return vec![format!(
            "GET {path}: the fixtures give {total} items; the walk needs 2 to {LIMIT_MAX}"
        )];
    }
    let ids: Vec<Value> = reference.json["items"]
        .as_array()
        .map(|a| a.iter().map(identity).collect())
        .unwrap_or_default();
    let window = |from: u64, to: u64| {
        let (from, to) = (from as usize, (to.min(total) as usize).min(ids.len()));
        ids.get(from..to).unwrap_or(&[]).to_vec()
    };
    let default = u64::from(LIMIT_DEFAULT);
    let limit_max = u64::from(LIMIT_MAX);
    let offset_max = u64::from(OFFSET_MAX);
    let mut failures = Vec::new();
    // (query, offset and limit the envelope must echo, the items it must hold)
    let expected = [
        (format!("limit={LIMIT_MAX}"), 0, limit_max, window(0, total)),
        (String::new(), 0, default, window(0, default)),
        ("limit=1".to_owned(), 0, 1, window(0, 1)),
        ("offset=1".to_owned(), 1, default, window(1, 1 + default)),
        ("offset=1&limit=1".to_owned(), 1, 1, window(1, 2)),
        (format!("offset={total}"), total, default, vec![]),
        (
            format!("offset={OFFSET_MAX}&limit={LIMIT_MAX}"),
            offset_max,
            limit_max,
            vec![],
        ),
    ];
    if ids.len() as u64 != total {
        failures.push(format!("GET {at}: {} items of {total}", ids.len()));
    }
    for (query, offset, limit, want) in expected {
        let (reply, at) = get(query).await;
        let got: Vec<Value> = reply.json["items"]
            .as_array()
            .map(|a| a.iter().map(identity).collect())
            .unwrap_or_default();
        let envelope = (
            reply.json["total"].as_u64(),
            reply.json["offset"].as_u64(),
            reply.json["limit"].as_u64(),
        );
        if reply.status != 200
            || envelope != (Some(total), Some(offset), Some(limit))
            || got != want
        {
            failures.push(format!(
                "GET {at}: want total {total}, offset {offset}, limit {limit}, items {want:?}; \
                 got {} {}",
                reply.status,
                brief(&reply.text)
            ));
        }
    }
    for (query, field) in [
        ("limit=0".to_owned(), "limit"),
        (format!("limit={}", LIMIT_MAX + 1), "limit"),
        (format!("offset={}", OFFSET_MAX + 1), "offset"),
    ] {
        let (reply, at) = get(query).await;
        let named = reply.json["errors"][0]["field"].as_str() == Some(field);
        if reply.status != 400 || !named {
            failures.push(format!(
                "GET {at}: want 400 naming {field}; got {} {}",
                reply.status,
                brief(&reply.text)
            ));
        }
    }
    failures
}

/// The start of a body, for a failure message.
fn brief(text: &str) -> &str {
    match text.char_indices().nth(400) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

/// What tells the items of a page apart: figures such as a live's bitrate change between two
/// calls, ids do not.
fn identity(item: &Value) -> Value {
    ["id", "jti", "channel", "slug"]
        .iter()
        .find_map(|k| item.get(*k).cloned())
        .unwrap_or_else(|| item.clone())
}

/// The `offset` and `limit` parameters as documented: the bounds the walk tests.
fn page_parameters(path: &str, op: &Value) -> Vec<String> {
    let mut failures = Vec::new();
    let params = op["parameters"].as_array().cloned().unwrap_or_default();
    for (name, min, max) in [
        ("offset", 0, u64::from(OFFSET_MAX)),
        ("limit", 1, u64::from(LIMIT_MAX)),
    ] {
        let found = params
            .iter()
            .find(|p| p["name"] == name && p["in"] == "query");
        let bounds = found.map(|p| {
            (
                p["schema"]["minimum"].as_u64(),
                p["schema"]["maximum"].as_u64(),
            )
        });
        if bounds != Some((Some(min), Some(max))) {
            failures.push(format!(
                "GET {path}: query parameter {name} must be documented as {min}..={max}, is {bounds:?}"
            ));
        }
    }
    failures
}

async fn every_promise_of_the_document_holds(store: Store) {
    let doc = serde_json::to_value(crate::api::openapi()).unwrap();
    let api = Api::with_config(store.clone(), |c| {
        c.auth.registration = true;
        c.auth.login_attempts_per_minute = 1;
        c.vod.max_upload_bytes = 1000;
        c.vod.max_unfinished_uploads = 1;
    })
    .await;
    let closed = Api::new(store.clone()).await;
    let f = fixtures(&api).await;
    let ops = operations(&doc);
    let mut failures = Vec::new();

    // Lists.
    let mut pages = BTreeSet::new();
    for (method, path, op) in &ops {
        if *method != Method::GET {
            continue;
        }
        let Some(schema) = ok_schema(&doc, op) else {
            continue;
        };
        if schema["type"] == "array" {
            if !PLAIN_ARRAYS.iter().any(|(p, _)| p == path) {
                failures.push(format!(
                    "GET {path} answers a bare array: answer Page<…> with PageQuery, or name it in PLAIN_ARRAYS with why"
                ));
            }
            continue;
        }
        let takes_paging = op["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["name"] == "limit"));
        if !is_envelope(schema) {
            if takes_paging {
                failures.push(format!("GET {path} takes limit but answers no envelope"));
            }
            continue;
        }
        let required: BTreeSet<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if required != BTreeSet::from(["items", "total", "offset", "limit"]) {
            failures.push(format!("GET {path}: envelope requires {required:?}"));
        }
        failures.extend(page_parameters(path, op));
        let uri = sample(method, path, 200, &f).uri;
        let token = if path.starts_with("/api/v1/admin/") {
            Some(f.admin.as_str())
        } else if op.get("security").is_some() {
            Some(f.alice.as_str())
        } else {
            None
        };
        failures.extend(walk_page(&api, path, &uri, token).await);
        pages.insert(*path);
    }
    for (path, _) in PLAIN_ARRAYS {
        let answers_array = ops.iter().any(|(m, p, op)| {
            *m == Method::GET
                && *p == path
                && ok_schema(&doc, op).is_some_and(|s| s["type"] == "array")
        });
        assert!(
            answers_array,
            "PLAIN_ARRAYS names {path}, which is no GET answering an array"
        );
    }
    // Among them the three that once answered bare arrays and ignored ?limit= (#17).
    for path in [
        "/api/v1/me/channels/{slug}/keys",
        "/api/v1/admin/channels/{slug}/keys",
        "/api/v1/admin/live",
    ] {
        assert!(
            pages.contains(path),
            "{path} not walked as a page: {pages:?}"
        );
    }

    // Errors: which statuses each operation documents, and a request for each.
    let mut documented = BTreeSet::new();
    for (method, path, op) in &ops {
        for status in op["responses"].as_object().unwrap().keys() {
            let status: u16 = status.parse().unwrap();
            if status >= 400 {
                documented.insert((method.to_string(), *path, status));
            }
        }
    }
    let particular = cases(&f);
    let mut covered = BTreeSet::new();
    for case in &particular {
        let key = (case.method.to_string(), case.template, case.status);
        if !documented.contains(&key) {
            failures.push(format!(
                "{} {} {}: a request for a status the document does not list",
                key.0, key.1, key.2
            ));
        }
        if !instance_of(case.template, &case.uri) {
            failures.push(format!(
                "{} is not an instance of {}",
                case.uri, case.template
            ));
        }
        covered.insert(key);
    }
    let shared = |status: u16| {
        documented
            .iter()
            .filter(move |(_, _, s)| *s == status)
            .filter(|key| !covered.contains(*key))
            .map(|(m, p, s)| (Method::from_bytes(m.as_bytes()).unwrap(), *p, *s))
            .collect::<Vec<_>>()
    };
    let secured: BTreeSet<(String, &str)> = ops
        .iter()
        .filter(|(_, _, op)| op.get("security").is_some())
        .map(|(m, p, _)| (m.to_string(), *p))
        .collect();
    let mut unauthorized = Vec::new();
    for (method, path, status) in shared(401) {
        if secured.contains(&(method.to_string(), path)) {
            unauthorized.push(sample(&method, path, status, &f));
        } else {
            failures.push(format!(
                "{method} {path} 401: public, so no request without a token makes it; add one to cases()"
            ));
        }
    }
    let internal: Vec<Case> = shared(500)
        .into_iter()
        .map(|(m, p, s)| sample(&m, p, s, &f).token(&f.admin))
        .collect();
    let unavailable: Vec<Case> = shared(503)
        .into_iter()
        .map(|(m, p, s)| sample(&m, p, s, &f).token(&f.admin))
        .collect();
    // What the extractors answer before any handler runs, documented on every operation with
    // parameters (400) or a body (413, 415) by `add_shared_responses`.
    let mut extracted: Vec<Case> = Vec::new();
    for (method, path, status) in shared(400) {
        let op = ops
            .iter()
            .find(|(m, p, _)| m.to_string().eq_ignore_ascii_case(method.as_str()) && *p == path)
            .map(|(_, _, op)| *op);
        let case = sample(&method, path, status, &f).token(&f.admin);
        let case = if path.contains("{id}") || path.contains("{user_id}") {
            // An id past 64 bits is malformed, not unknown.
            let huge = "99999999999999999999";
            case.uri(
                path.replace("{slug}", "alice")
                    .replace("{jti}", &f.jti)
                    .replace("{id}", huge)
                    .replace("{user_id}", huge),
            )
        } else if path.contains("{slug}") {
            case.uri(
                path.replace("{slug}", "Not%20a%20slug")
                    .replace("{jti}", &f.jti),
            )
        } else if path.contains("{jti}") {
            case.uri(path.replace("{jti}", "not%20a%20jti"))
        } else if op.is_some_and(|op| op.get("parameters").is_some()) {
            let base = case.uri.clone();
            case.uri(format!("{base}?limit=not-a-number"))
        } else {
            case
        };
        let case = match op.and_then(|op| op.get("requestBody")) {
            Some(_) => case.body(serde_json::json!({})),
            None => case,
        };
        extracted.push(case);
    }
    for (method, path, status) in shared(413) {
        // One byte past the API's body limit.
        let mut big = b"{\"pad\": \"".to_vec();
        big.resize(super::super::BODY_LIMIT + 1, b'a');
        extracted.push(
            sample(&method, path, status, &f)
                .token(&f.admin)
                .raw_body("application/json", big),
        );
    }
    for (method, path, status) in shared(415) {
        extracted.push(
            sample(&method, path, status, &f)
                .token(&f.admin)
                .raw_body("text/plain", b"not json".to_vec()),
        );
    }
    // 408 is the connection driver's (`http/connections.rs`), answered when a body does not
    // arrive within `http.body_timeout`; a router called in memory never waits for a body.
    // tests/tests/connections.rs produces it over a real socket.
    let mut all_covered: BTreeSet<(String, &str, u16)> = covered.clone();
    for (method, path, status) in shared(408) {
        all_covered.insert((method.to_string(), path, status));
    }
    for case in unauthorized
        .iter()
        .chain(&internal)
        .chain(&unavailable)
        .chain(&extracted)
    {
        all_covered.insert((case.method.to_string(), case.template, case.status));
    }
    for (method, path, status) in documented.difference(&all_covered) {
        failures.push(format!(
            "{method} {path} documents {status}, and no request here produces it: add one to \
             cases(), or take the status out of the document if nothing can"
        ));
    }

    // Each request from an address of its own, so the login limiter counts only its own.
    let mut peers = (0u32..).map(|n| SocketAddr::from(([10, 17, (n >> 8) as u8, n as u8], 4000)));
    let mut run = async |cases: &[Case], failures: &mut Vec<String>| {
        for case in cases {
            let target = match case.server {
                Server::Open => &api,
                Server::Closed => &closed,
            };
            let reply = send(target, case, peers.next().unwrap()).await;
            failures.extend(check_problem(case, &reply));
        }
    };
    run(&particular, &mut failures).await;
    run(&unauthorized, &mut failures).await;
    run(&extracted, &mut failures).await;
    // Every query fails from here on: the database has lost the tables every operation
    // reads first (the caller's account, the channel, the replay, the gift catalogue, the
    // video and the video categories).
    for table in [
        "users",
        "channels",
        "recordings",
        "gifts",
        "videos",
        "video_categories",
    ] {
        onair_store::testing::execute(
            &store,
            &format!("ALTER TABLE {table} RENAME TO {table}_gone"),
        )
        .await
        .unwrap();
    }
    run(&internal, &mut failures).await;
    store.close().await;
    run(&unavailable, &mut failures).await;

    assert!(
        failures.is_empty(),
        "{} broken promises:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn instances_of_templates() {
    assert!(instance_of("/a/{x}/b", "/a/1/b?q=1"));
    assert!(!instance_of("/a/{x}/b", "/a/1/c"));
    assert!(!instance_of("/a/{x}", "/a/1/b"));
    assert!(!instance_of("/a/{x}", "/a/"));
}

onair_store::store_test!(every_promise_of_the_document_holds);
