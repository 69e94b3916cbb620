//! Publishing with the platform's signed stream keys, with real ffmpeg: a valid key goes live
//! under the channel's slug; revoked, forged, expired and malformed keys are refused with the
//! reason logged and the key nowhere in the logs; revoking a key (through the server, or only
//! in the store as `onair key revoke` does) or banning the owner ends a live publish within a
//! second; a publish leaves its live-session row; and the real binary's first start prints an
//! admin and a key that work, once, and keep working after a restart.
//!
//! The in-process tests share one log capture (the process's global subscriber) and search it
//! for their own random keys only, so they may run in parallel. Where a refusal's reason must
//! be tied to one attempt, it is read from that ffmpeg's stderr: the server sends the reason in
//! its `onStatus` and ffmpeg prints it.

use std::process::Stdio;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use onair::platform::IssuedKey;
use onair_auth::{Jti, SigningKey};
use onair_e2e::binary::{Launch, OnairProcess, TempDir, onair_binary, parse_bootstrap};
use onair_e2e::flv::End;
use onair_e2e::{
    Ffmpeg, FlvReader, TagSummary, TestServer, ffprobe, http, logs, random_name, require_ffmpeg,
    wait_until, wait_until_async,
};
use onair_store::{Channel, NewChannel, Page, Role, User};
use tokio::process::Command;
use tokio::time::Instant;

const LIVE_TIMEOUT: Duration = Duration::from_secs(15);
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// What the issue asks: revoking a key, or banning its owner, ends its live publish within this.
const END_BOUND: Duration = Duration::from_secs(1);
/// How long ffmpeg publishes when the test means to end the publish itself.
const LONG_PUBLISH_SECONDS: u32 = 30;

/// A streamer with one channel and one key, made through the platform as the API would.
struct Streamer {
    owner: User,
    channel: Channel,
    key: IssuedKey,
}

impl Streamer {
    async fn create(server: &TestServer) -> Streamer {
        let platform = server.platform();
        let owner = platform
            .create_user(&random_name("u"), "a good password", Role::Streamer)
            .await
            .expect("creating the streamer");
        let channel = platform
            .store()
            .create_channel(NewChannel {
                slug: random_name("ch"),
                title: "Stream key test".into(),
                owner_id: owner.id,
                category: String::new(),
                tags: vec![],
            })
            .await
            .expect("creating the channel");
        let key = issue(server, &channel).await;
        Streamer {
            owner,
            channel,
            key,
        }
    }

    fn slug(&self) -> &str {
        &self.channel.slug
    }
}

async fn issue(server: &TestServer, channel: &Channel) -> IssuedKey {
    server
        .platform()
        .issue_stream_key(channel.id, "e2e", None)
        .await
        .expect("issuing a key")
}

/// Publishes a long test pattern with `key` and waits until `slug` is live.
async fn go_live(server: &TestServer, key: &str, slug: &str) -> Ffmpeg {
    let ffmpeg = Ffmpeg::publish_test_pattern(&server.publish_url(key), LONG_PUBLISH_SECONDS);
    assert!(
        server.wait_live(slug, LIVE_TIMEOUT).await,
        "{slug} not live; ffmpeg said:\n{}",
        ffmpeg.stderr()
    );
    ffmpeg
}

/// Publishes with `key`, which must be refused; returns ffmpeg's stderr, which carries the
/// server's reason. Afterwards nothing is live or playable under `slug`.
async fn refused(server: &TestServer, key: &str, slug: &str) -> String {
    let mut ffmpeg = Ffmpeg::publish_test_pattern(&server.publish_url(key), 3);
    let status = ffmpeg
        .wait(EXIT_TIMEOUT)
        .await
        .expect("a refused ffmpeg exits");
    let said = ffmpeg.stderr();
    assert!(!status.success(), "the publish must be refused:\n{said}");
    assert!(!server.hub().is_live(slug), "{slug} went live");
    let response = http::request("GET", &server.flv_url(slug), &[], IO_TIMEOUT)
        .await
        .expect("GET answers");
    assert_eq!(response.status, 404, "nothing playable under {slug}");
    said
}

/// Measures how long after `start` the publish on `slug` ends: when the hub no longer has it
/// live, and when ffmpeg exits. Asserts both within [`END_BOUND`].
async fn assert_ended_within_bound(
    what: &str,
    server: &TestServer,
    slug: &str,
    ffmpeg: &mut Ffmpeg,
    start: Instant,
) {
    let hub_ended = wait_until(EXIT_TIMEOUT, || !server.hub().is_live(slug)).await;
    let hub_after = start.elapsed();
    let exited = ffmpeg.wait(EXIT_TIMEOUT).await;
    let ffmpeg_after = start.elapsed();
    eprintln!(
        "{what}: the publish ended {} ms after (hub), ffmpeg exited {} ms after",
        hub_after.as_millis(),
        ffmpeg_after.as_millis()
    );
    assert!(hub_ended, "{what}: {slug} is still live");
    assert!(exited.is_some(), "{what}: ffmpeg still publishing");
    assert!(
        hub_after <= END_BOUND && ffmpeg_after <= END_BOUND,
        "{what}: the publish must end within {END_BOUND:?}; it took {hub_after:?} (hub) and \
         {ffmpeg_after:?} (ffmpeg exit)"
    );
}

/// Reads `url` (HTTP-FLV) until a second of video and audio arrived.
async fn assert_plays(url: &str) {
    let (_, _, mut viewer) = FlvReader::http(url, IO_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{url} does not play: {e:#}"));
    let reading = viewer
        .read_media(Duration::from_secs(1), Duration::from_secs(10))
        .await;
    let summary = TagSummary::of(&reading.tags);
    assert_eq!(reading.end, End::Done, "{summary:?}");
    assert!(
        summary.video_frames > 0 && summary.audio_frames > 0,
        "{summary:?}"
    );
    assert_eq!(summary.first_video_keyframe, Some(true), "{summary:?}");
}

/// Asserts that no captured log line contains `secret`.
fn assert_not_logged(captured: &logs::Captured, what: &str, secret: &str) {
    let leaks = captured.containing(secret);
    assert!(
        leaks.is_empty(),
        "{what} reached the logs in {} line(s):\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_key_goes_live_under_the_slug_and_plays_over_http_flv() {
    if !require_ffmpeg() {
        return;
    }
    let captured = logs::capture();
    let server = TestServer::start(|_| {}).await;
    let s = Streamer::create(&server).await;
    let key = s.key.token.expose().to_owned();

    let mut ffmpeg = go_live(&server, &key, s.slug()).await;
    let live = server.state().live_now();
    assert_eq!(live.len(), 1, "{live:#?}");
    assert_eq!(live[0].channel, s.slug());
    assert_eq!(live[0].channel_id, Some(s.channel.id));
    assert_eq!(live[0].key_jti.as_deref(), Some(s.key.row.jti.as_str()));

    assert_plays(&server.flv_url(s.slug())).await;
    let probe = ffprobe(&server.flv_url(s.slug()), 1, Duration::from_secs(15)).await;
    assert_eq!(probe.video_codec.as_deref(), Some("h264"), "{probe:#?}");
    assert_eq!(probe.audio_codec.as_deref(), Some("aac"), "{probe:#?}");
    assert!(
        probe.video_frames > 0 && probe.audio_frames > 0,
        "{probe:#?}"
    );
    let by_key = http::request("GET", &server.flv_url(&key), &[], IO_TIMEOUT)
        .await
        .expect("GET answers");
    assert!(
        matches!(by_key.status, 400 | 404),
        "the key is not a playable name: {}",
        by_key.status
    );

    ffmpeg.kill().await;
    server.shutdown().await;
    assert!(
        captured
            .lines()
            .iter()
            .any(|l| l.contains("publish started") && l.contains(s.slug())),
        "the capture saw the publish under the slug"
    );
    assert_not_logged(captured, "the stream key", &key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_forged_expired_and_malformed_keys_are_refused_with_the_reason_and_never_logged() {
    if !require_ffmpeg() {
        return;
    }
    let captured = logs::capture();
    let server = TestServer::start(|_| {}).await;
    let s = Streamer::create(&server).await;
    let platform = server.platform();

    let revoked = issue(&server, &s.channel).await;
    assert!(
        platform
            .revoke_stream_key(&revoked.row.jti)
            .await
            .expect("revoking")
    );
    // Signed with another secret, for a key row that exists: only the signature is wrong.
    let forged = onair_auth::issue_stream_key(
        &SigningKey::generate(rand::random()),
        s.channel.id,
        Jti::from_str(&s.key.row.jti).expect("a stored jti"),
        SystemTime::now(),
        None,
    )
    .expect("signing the forgery");
    // Ours, for a stored key, but issued two hours ago for one hour.
    let expired_jti = onair::platform::random_jti();
    platform
        .store()
        .create_stream_key(s.channel.id, expired_jti.as_str(), "expired")
        .await
        .expect("the expired key's row");
    let expired = onair_auth::issue_stream_key(
        platform.signing_key(),
        s.channel.id,
        expired_jti,
        SystemTime::now() - Duration::from_secs(7200),
        Some(Duration::from_secs(3600)),
    )
    .expect("signing the expired key");
    let junk = random_name("junk");
    let cases = [
        ("revoked", revoked.token.expose().to_owned(), "revoked"),
        ("forged", forged.expose().to_owned(), "invalid stream key"),
        ("expired", expired.expose().to_owned(), "expired"),
        (
            "malformed",
            "eyJhbGciOi.x.y".to_owned(),
            "invalid stream key",
        ),
        ("junk", junk.clone(), "unknown stream key"),
    ];

    for (what, key, reason) in &cases {
        let said = refused(&server, key, s.slug()).await;
        assert!(
            said.contains(reason),
            "the {what} key's refusal says {reason:?}; ffmpeg said:\n{said}"
        );
    }
    // The valid key still works: the refusals were about the keys, not the channel.
    let mut ffmpeg = go_live(&server, s.key.token.expose(), s.slug()).await;
    ffmpeg.kill().await;
    server.shutdown().await;

    let lines = captured.lines();
    for (what, _, reason) in &cases {
        assert!(
            lines
                .iter()
                .any(|l| l.contains("publish refused") && l.contains(reason)),
            "no \"publish refused\" line says {reason:?} (the {what} key)"
        );
    }
    for (what, key, _) in &cases {
        assert_not_logged(captured, &format!("the {what} key"), key);
    }
    assert_not_logged(captured, "the valid key", s.key.token.expose());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_a_key_while_live_ends_that_publish_within_a_second_and_only_the_new_key_works() {
    if !require_ffmpeg() {
        return;
    }
    let captured = logs::capture();
    let server = TestServer::start(|c| c.hub.republish_grace = Duration::from_millis(300)).await;
    let s = Streamer::create(&server).await;
    let old = s.key.token.expose().to_owned();
    let mut ffmpeg = go_live(&server, &old, s.slug()).await;
    let (_, _, mut viewer) = FlvReader::http(&server.flv_url(s.slug()), IO_TIMEOUT)
        .await
        .expect("http-flv");
    let before = viewer
        .read_media(Duration::from_millis(500), Duration::from_secs(10))
        .await;
    assert_eq!(
        before.end,
        End::Done,
        "the viewer plays before the rotation"
    );
    let watching = tokio::spawn(async move { viewer.read_until(EXIT_TIMEOUT, |_| false).await });

    // Rotate as the API does: a new key first, so the streamer is never without one.
    let new = issue(&server, &s.channel).await;
    let start = Instant::now();
    assert!(
        server
            .platform()
            .revoke_stream_key(&s.key.row.jti)
            .await
            .expect("revoking")
    );
    assert!(
        server.state().kick_key(&s.key.row.jti),
        "the key was live on this node"
    );
    assert_ended_within_bound("revoke + kick", &server, s.slug(), &mut ffmpeg, start).await;
    let reading = watching.await.expect("viewer task");
    assert_eq!(reading.end, End::Closed, "the viewer's stream ends");

    let said = refused(&server, &old, s.slug()).await;
    assert!(said.contains("revoked"), "ffmpeg said:\n{said}");

    let mut ffmpeg = go_live(&server, new.token.expose(), s.slug()).await;
    assert_plays(&server.flv_url(s.slug())).await;
    ffmpeg.kill().await;
    server.shutdown().await;
    assert_not_logged(captured, "the old key", &old);
    assert_not_logged(captured, "the new key", new.token.expose());
}

/// `onair key revoke` changes only the store; the server's key check finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_only_in_the_store_ends_its_publish_within_a_second() {
    if !require_ffmpeg() {
        return;
    }
    let captured = logs::capture();
    let server = TestServer::start(|_| {}).await;
    let s = Streamer::create(&server).await;
    let mut ffmpeg = go_live(&server, s.key.token.expose(), s.slug()).await;

    let start = Instant::now();
    assert!(
        server
            .platform()
            .revoke_stream_key(&s.key.row.jti)
            .await
            .expect("revoking")
    );
    assert_ended_within_bound("revoke in the store", &server, s.slug(), &mut ffmpeg, start).await;
    let said = refused(&server, s.key.token.expose(), s.slug()).await;
    assert!(said.contains("revoked"), "ffmpeg said:\n{said}");
    server.shutdown().await;
    assert!(
        captured
            .lines()
            .iter()
            .any(|l| l.contains("live publish ended")
                && l.contains(s.slug())
                && l.contains("stream key revoked")),
        "the watch loop logged why it ended the publish"
    );
    assert_not_logged(captured, "the key", s.key.token.expose());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banning_the_owner_ends_the_publish_within_a_second() {
    if !require_ffmpeg() {
        return;
    }
    let captured = logs::capture();
    let server = TestServer::start(|_| {}).await;
    let s = Streamer::create(&server).await;
    let mut ffmpeg = go_live(&server, s.key.token.expose(), s.slug()).await;

    let start = Instant::now();
    server
        .platform()
        .store()
        .set_user_banned(s.owner.id, true)
        .await
        .expect("banning");
    assert_ended_within_bound("owner banned", &server, s.slug(), &mut ffmpeg, start).await;
    let said = refused(&server, s.key.token.expose(), s.slug()).await;
    assert!(said.contains("banned"), "ffmpeg said:\n{said}");

    server
        .platform()
        .store()
        .set_user_banned(s.owner.id, false)
        .await
        .expect("unbanning");
    let mut ffmpeg = go_live(&server, s.key.token.expose(), s.slug()).await;
    ffmpeg.kill().await;
    server.shutdown().await;
    assert_not_logged(captured, "the key", s.key.token.expose());
}

/// With `hub.takeover`, a second key of the channel replaces the live publisher: the first
/// publish's session row must still be ended (the registry already belongs to its successor).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_ends_both_live_sessions() {
    if !require_ffmpeg() {
        return;
    }
    logs::capture();
    let server = TestServer::start(|c| c.hub.takeover = true).await;
    let s = Streamer::create(&server).await;
    let second = issue(&server, &s.channel).await;
    let mut first = go_live(&server, s.key.token.expose(), s.slug()).await;
    let before = server.state().lives.channel_of_key(&s.key.row.jti);
    assert_eq!(before.as_deref(), Some(s.slug()));
    let mut replacing = Ffmpeg::publish_test_pattern(&server.publish_url(second.token.expose()), 3);
    let took_over = wait_until(LIVE_TIMEOUT, || {
        server
            .state()
            .lives
            .channel_of_key(&second.row.jti)
            .is_some()
    })
    .await;
    assert!(
        took_over,
        "the second key never took over:\n{}",
        replacing.stderr()
    );
    first
        .wait(EXIT_TIMEOUT)
        .await
        .expect("the replaced publisher is ended");
    replacing
        .wait(EXIT_TIMEOUT)
        .await
        .expect("ffmpeg finishes its 3 s");

    let store = server.platform().store().clone();
    let channel_id = s.channel.id;
    let both_ended = wait_until_async(Duration::from_secs(10), || {
        let store = store.clone();
        async move {
            store
                .list_live_sessions(channel_id, Page::default())
                .await
                .is_ok_and(|(rows, _)| rows.len() == 2 && rows.iter().all(|r| r.ended_at.is_some()))
        }
    })
    .await;
    let (sessions, _) = store
        .list_live_sessions(channel_id, Page::default())
        .await
        .expect("listing sessions");
    assert!(both_ended, "a session was left open: {sessions:#?}");
    assert!(sessions.iter().all(|s| s.bytes_in > 0), "{sessions:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_leaves_one_ended_live_session_and_marks_its_key_used() {
    if !require_ffmpeg() {
        return;
    }
    logs::capture();
    let server = TestServer::start(|_| {}).await;
    let s = Streamer::create(&server).await;
    assert_eq!(s.key.row.last_used_at, None);
    let mut ffmpeg = Ffmpeg::publish_test_pattern(&server.publish_url(s.key.token.expose()), 3);
    assert!(
        server.wait_live(s.slug(), LIVE_TIMEOUT).await,
        "not live; ffmpeg said:\n{}",
        ffmpeg.stderr()
    );
    let status = ffmpeg
        .wait(EXIT_TIMEOUT)
        .await
        .expect("ffmpeg finishes its 3 s");
    assert!(status.success(), "{}", ffmpeg.stderr());

    let store = server.platform().store().clone();
    let channel_id = s.channel.id;
    // The row is closed by a task after the publisher's connection ends.
    let ended = wait_until_async(Duration::from_secs(10), || {
        let store = store.clone();
        async move {
            store
                .list_live_sessions(channel_id, Page::default())
                .await
                .is_ok_and(|(rows, _)| {
                    rows.iter().all(|r| r.ended_at.is_some()) && !rows.is_empty()
                })
        }
    })
    .await;
    let (sessions, total) = store
        .list_live_sessions(channel_id, Page::default())
        .await
        .expect("listing sessions");
    assert!(ended, "the session was not ended: {sessions:#?}");
    assert_eq!(total, 1, "{sessions:#?}");
    let session = &sessions[0];
    assert!(session.bytes_in > 0, "{session:#?}");
    assert_eq!(session.video_codec.as_deref(), Some("h264"), "{session:#?}");
    assert_eq!(session.audio_codec.as_deref(), Some("aac"), "{session:#?}");
    assert!(
        session.publisher_addr.starts_with("127.0.0.1:"),
        "{session:#?}"
    );
    assert!(session.ended_at >= Some(session.started_at), "{session:#?}");

    let key = store
        .stream_key_by_jti(&s.key.row.jti)
        .await
        .expect("reading the key")
        .expect("the key row");
    let used = key.last_used_at.expect("the key's last use is recorded");
    assert!(
        used >= s.key.row.created_at && used <= session.started_at + chrono::Duration::seconds(5),
        "{key:#?} {session:#?}"
    );
    server.shutdown().await;
}

/// Publishes three seconds with `key` and plays `demo` over HTTP-FLV meanwhile.
async fn publish_and_play_demo(server: &OnairProcess, key: &str) {
    let mut ffmpeg = Ffmpeg::publish_test_pattern(&server.publish_url(key), 3);
    let url = server.flv_url("demo");
    let live = wait_until_async(LIVE_TIMEOUT, || {
        let url = url.clone();
        async move {
            http::request("GET", &url, &[], IO_TIMEOUT)
                .await
                .is_ok_and(|r| r.status == 200)
        }
    })
    .await;
    assert!(live, "demo not playable; ffmpeg said:\n{}", ffmpeg.stderr());
    assert_plays(&url).await;
    let status = ffmpeg.wait(EXIT_TIMEOUT).await.expect("ffmpeg finishes");
    assert!(status.success(), "{}", ffmpeg.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_prints_a_working_admin_and_key_once_and_the_key_survives_a_restart() {
    if !require_ffmpeg() {
        return;
    }
    let data = TempDir::new("first-start");

    let first = OnairProcess::start(data.path()).await;
    let (password, key) = parse_bootstrap(&first.bootstrap_block().await);
    assert!(key.starts_with("eyJ"), "a signed key: {key}");
    publish_and_play_demo(&first, &key).await;
    let (stdout, stderr) = first.stop().await;
    assert_eq!(
        stdout.matches("first start").count(),
        1,
        "one first-start block:\n{stdout}"
    );
    assert!(stderr.contains("first start: created an admin"), "{stderr}");
    assert!(!stderr.contains(&key), "the key reached the log:\n{stderr}");
    assert!(
        !stderr.contains(&password),
        "the password reached the log:\n{stderr}"
    );

    let second = OnairProcess::start(data.path()).await;
    publish_and_play_demo(&second, &key).await;
    let (stdout, stderr) = second.stop().await;
    assert!(
        stdout.is_empty(),
        "a second start prints nothing on stdout:\n{stdout}"
    );
    assert!(!stderr.contains("first start"), "{stderr}");
    assert!(!stderr.contains(&key), "the key reached the log:\n{stderr}");

    // The printed password is the admin's.
    let platform = onair::platform::Platform::open(
        &onair::config::StorageConfig {
            database_url: None,
            data_dir: data.path().to_owned(),
        },
        &onair::config::AuthConfig::default(),
    )
    .await
    .expect("opening the data directory");
    assert!(matches!(
        platform.login("admin", &password).await.expect("login"),
        onair::platform::LoginOutcome::Ok(u) if u.role == Role::Admin
    ));
    platform.store().close().await;
}

/// `onair key revoke` in another process, on the database of a running `onair`: the publish
/// ends within a second of the revocation being stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_revokes_a_key_of_a_running_server_and_the_publish_ends_within_a_second() {
    if !require_ffmpeg() {
        return;
    }
    let data = TempDir::new("cli-revoke");
    let server = OnairProcess::start(data.path()).await;
    let (_, key) = parse_bootstrap(&server.bootstrap_block().await);
    let mut ffmpeg = Ffmpeg::publish_test_pattern(&server.publish_url(&key), LONG_PUBLISH_SECONDS);
    let url = server.flv_url("demo");
    let live = wait_until_async(LIVE_TIMEOUT, || {
        let url = url.clone();
        async move {
            http::request("GET", &url, &[], IO_TIMEOUT)
                .await
                .is_ok_and(|r| r.status == 200)
        }
    })
    .await;
    assert!(live, "demo not live; ffmpeg said:\n{}", ffmpeg.stderr());

    let binary = onair_binary().await;
    let cli = |args: &[&str]| {
        let mut command = Command::new(&binary);
        command
            .env_clear()
            .env("ONAIR_STORAGE_DATA_DIR", data.path())
            .env("ONAIR_LOG", "warn")
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    };
    let list = tokio::time::timeout(EXIT_TIMEOUT, cli(&["key", "list", "demo"]).output())
        .await
        .expect("key list finishes")
        .expect("running key list");
    assert!(list.status.success(), "{list:?}");
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    let jti = list
        .lines()
        .nth(1)
        .and_then(|row| row.split_whitespace().next())
        .unwrap_or_else(|| panic!("a key row:\n{list}"))
        .to_owned();
    assert!(!list.contains(&key));

    let revoke = tokio::time::timeout(EXIT_TIMEOUT, cli(&["key", "revoke", &jti]).output())
        .await
        .expect("key revoke finishes")
        .expect("running key revoke");
    let cli_exited = SystemTime::now();
    assert!(revoke.status.success(), "{revoke:?}");
    let exited = ffmpeg.wait(EXIT_TIMEOUT).await;
    let ffmpeg_exited = SystemTime::now();
    assert!(exited.is_some(), "ffmpeg still publishing after the revoke");

    // Measured from the revocation time the CLI stored, not from the CLI's exit, which comes
    // after it.
    let platform = onair::platform::Platform::open(
        &onair::config::StorageConfig {
            database_url: None,
            data_dir: data.path().to_owned(),
        },
        &onair::config::AuthConfig::default(),
    )
    .await
    .expect("opening the data directory");
    let row = platform
        .store()
        .stream_key_by_jti(&jti)
        .await
        .expect("reading the key")
        .expect("the key row");
    platform.store().close().await;
    let revoked_at: SystemTime = row.revoked_at.expect("revoked").into();
    let latency = ffmpeg_exited.duration_since(revoked_at).unwrap_or_default();
    eprintln!(
        "onair key revoke: ffmpeg exited {} ms after the revocation was stored ({} ms after the CLI exited)",
        latency.as_millis(),
        ffmpeg_exited
            .duration_since(cli_exited)
            .unwrap_or_default()
            .as_millis()
    );
    assert!(
        latency <= END_BOUND,
        "the publish must end within {END_BOUND:?} of the revocation; it took {latency:?}"
    );
    let (_, stderr) = server.stop().await;
    assert!(
        stderr.contains("stream key revoked"),
        "the server logged why it ended the publish:\n{stderr}"
    );
    assert!(!stderr.contains(&key), "the key reached the log:\n{stderr}");
}

/// A first start that cannot listen (issue #18: RTMP and HTTP on one port) creates nothing,
/// says why in one line even with a backtrace asked for, and the next start that can listen
/// prints a working admin password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_that_cannot_listen_creates_nothing_and_the_next_one_prints_the_admin() {
    let data = TempDir::new("failed-first-start");
    let storage = onair::config::StorageConfig {
        database_url: None,
        data_dir: data.path().to_owned(),
    };
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to occupy");
    let port = taken.local_addr().expect("its address").port();
    let launch = Launch::default()
        .env("ONAIR_HTTP_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_BACKTRACE", "1");
    let (status, stdout, stderr) = OnairProcess::run_to_exit(data.path(), &launch).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    // The log lines are JSON; what is not is the error, alone on its line.
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_err())
        .collect();
    assert_eq!(errors.len(), 1, "one error line:\n{stderr}");
    let error = errors[0];
    assert!(
        error.starts_with(&format!("error: cannot listen on 127.0.0.1:{port} (http)")),
        "{error}"
    );
    assert!(
        error.contains("nothing was created") && error.contains("prints its password"),
        "the error says what the next start does: {error}"
    );
    let platform = onair::platform::Platform::open(&storage, &onair::config::AuthConfig::default())
        .await
        .expect("the database exists");
    assert_eq!(platform.store().count_users().await.unwrap(), 0);
    platform.store().close().await;
    drop(taken);

    let server = OnairProcess::start(data.path()).await;
    let (password, _) = parse_bootstrap(&server.bootstrap_block().await);
    server.stop().await;
    let platform = onair::platform::Platform::open(&storage, &onair::config::AuthConfig::default())
        .await
        .expect("the database exists");
    assert!(matches!(
        platform.login("admin", &password).await.expect("login"),
        onair::platform::LoginOutcome::Ok(u) if u.role == Role::Admin
    ));
    platform.store().close().await;

    // RTMP and HTTP on one port is a configuration error, found before the database is
    // opened.
    let fresh = TempDir::new("one-port");
    let one_port = Launch::default()
        .env("ONAIR_RTMP_LISTEN", "127.0.0.1:18935")
        .env("ONAIR_HTTP_LISTEN", "127.0.0.1:18935");
    let (status, _, stderr) = OnairProcess::run_to_exit(fresh.path(), &one_port).await;
    assert_eq!(status.code(), Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(
            "error: loading the configuration: environment variable ONAIR_HTTP_LISTEN: http.listen"
        ),
        "{stderr}"
    );
    assert!(
        !fresh.path().join("onair.db").exists(),
        "nothing is created for a configuration that cannot work"
    );
}

/// A first start whose set-up fails half-way (here a trigger makes the demo channel's insert
/// fail, after the admin exists) names the way back in its one-line error, and that way
/// works: `onair user password admin` prints a password that logs in, and the commands it
/// names create the demo channel and its key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_that_fails_half_way_names_the_commands_that_recover_the_admin() {
    use sqlx::{Connection, Executor, SqliteConnection};

    let data = TempDir::new("half-way-first-start");
    let storage = onair::config::StorageConfig {
        database_url: None,
        data_dir: data.path().to_owned(),
    };
    onair::platform::Platform::open(&storage, &onair::config::AuthConfig::default())
        .await
        .expect("creating the database")
        .store()
        .close()
        .await;
    let db = format!("sqlite://{}", data.path().join("onair.db").display());
    let mut sql = SqliteConnection::connect(&db).await.expect("the database");
    sql.execute(
        "CREATE TRIGGER refuse_channels BEFORE INSERT ON channels \
         BEGIN SELECT RAISE(ABORT, 'the disk is full'); END",
    )
    .await
    .expect("creating the trigger");

    let (status, stdout, stderr) = OnairProcess::run_to_exit(data.path(), &Launch::default()).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_err())
        .collect();
    assert_eq!(errors.len(), 1, "one error line:\n{stderr}");
    assert!(
        errors[0].starts_with("error: first-start set-up failed")
            && errors[0].contains("onair user password admin")
            && errors[0].contains("onair channel create demo --owner admin")
            && errors[0].contains("onair key issue demo"),
        "{}",
        errors[0]
    );
    sql.execute("DROP TRIGGER refuse_channels")
        .await
        .expect("dropping the trigger");
    sql.close().await.expect("closing");

    let binary = onair_binary().await;
    let operator = |args: &[&str]| {
        let mut command = Command::new(&binary);
        command
            .env_clear()
            .env("ONAIR_STORAGE_DATA_DIR", data.path())
            .env("ONAIR_LOG", "warn")
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    };
    let reset = tokio::time::timeout(
        EXIT_TIMEOUT,
        operator(&["user", "password", "admin"]).output(),
    )
    .await
    .expect("user password finishes")
    .expect("running user password");
    assert!(reset.status.success(), "{reset:?}");
    let password = String::from_utf8_lossy(&reset.stdout).trim().to_owned();
    for args in [
        &["channel", "create", "demo", "--owner", "admin"][..],
        &["key", "issue", "demo"][..],
    ] {
        let done = tokio::time::timeout(EXIT_TIMEOUT, operator(args).output())
            .await
            .expect("the command finishes")
            .expect("running the command");
        assert!(done.status.success(), "{args:?}: {done:?}");
    }
    let platform = onair::platform::Platform::open(&storage, &onair::config::AuthConfig::default())
        .await
        .expect("the database exists");
    assert!(matches!(
        platform.login("admin", &password).await.expect("login"),
        onair::platform::LoginOutcome::Ok(u) if u.role == Role::Admin
    ));
    assert!(
        platform
            .store()
            .channel_by_slug("demo")
            .await
            .unwrap()
            .is_some()
    );
    platform.store().close().await;
}
