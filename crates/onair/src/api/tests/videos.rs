//! The VOD catalogue over REST and HLS: permissions on every path, edits, search,
//! comments with the chat's bans and mutes, views, categories and the latest-replay link.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::Utc;
use onair_store::{NewRecording, RecordingState, Role, Store};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{Api, Reply};

async fn api_with_recordings(store: Store) -> (Api, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "onair-api-videos-{}-{:x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let root = dir.clone();
    let api = Api::with_config(store, move |c| c.hls.recordings_dir = Some(root)).await;
    (api, dir)
}

/// A finished replay of `slug` with a playlist, one segment and a thumbnail on disk, in the
/// catalogue; returns (recording id, video id).
async fn replay_video(api: &Api, slug: &str, n: u32) -> (i64, i64) {
    let channel = api.store().channel_by_slug(slug).await.unwrap().unwrap();
    let path = format!("{slug}/{n}");
    let dir = api.app.hls.root().join(&path);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("index.m3u8"),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:2.0,\n0.ts\n#EXT-X-ENDLIST\n",
    )
    .unwrap();
    std::fs::write(dir.join("0.ts"), vec![0x47; 188]).unwrap();
    std::fs::write(dir.join("media.flv"), tiny_flv()).unwrap();
    // Text, so the test client can read it back; the server serves the bytes as they are.
    std::fs::write(dir.join("thumb.jpg"), "a stand-in for a JPEG").unwrap();
    let rec = api
        .store()
        .create_recording(NewRecording {
            channel_id: channel.id,
            live_session_id: None,
            title: format!("{slug} replay {n}"),
            path: path.clone(),
            started_at: Utc::now(),
        })
        .await
        .unwrap();
    api.store()
        .finish_recording(rec.id, RecordingState::Finished, Utc::now(), 2000, 188)
        .await
        .unwrap();
    let video = api
        .store()
        .ensure_replay_video(rec.id)
        .await
        .unwrap()
        .unwrap();
    api.store()
        .set_video_thumbnail(video.id, Some(&format!("{path}/thumb.jpg")))
        .await
        .unwrap();
    (rec.id, video.id)
}

/// A request to the HLS routes (which the API router does not serve).
async fn hls_get(api: &Api, uri: &str, token: Option<&str>) -> (StatusCode, Option<String>) {
    let mut builder = Request::builder().uri(uri);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = crate::hls::http::router(api.app.hls.clone())
        .oneshot(builder.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let cache = response
        .headers()
        .get(header::CACHE_CONTROL)
        .map(|v| v.to_str().unwrap().to_owned());
    (response.status(), cache)
}

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect()
}

#[track_caller]
fn status(reply: &Reply) -> u16 {
    reply.status.as_u16()
}

async fn private_videos_are_refused_on_every_path_to_others(store: Store) {
    let (api, dir) = api_with_recordings(store).await;
    let (_, alice) = api.account("alice", Role::Streamer).await;
    let (_, bob) = api.account("bob", Role::Viewer).await;
    let (_, admin) = api.account("root", Role::Admin).await;
    api.channel(&alice, "alice").await;
    let (rec, video) = replay_video(&api, "alice", 1).await;
    let v = format!("/api/v1/videos/{video}");

    // Public first: every path serves anyone.
    assert_eq!(status(&api.get(&v, None).await), 200);
    let (code, cache) = hls_get(&api, &format!("/replays/{rec}/index.m3u8"), None).await;
    assert_eq!(
        (code, cache.as_deref()),
        (StatusCode::OK, Some("public, max-age=3600"))
    );
    // A segment too: not kept a year, as the video may turn private.
    let (code, cache) = hls_get(&api, &format!("/replays/{rec}/0.ts"), None).await;
    assert_eq!(
        (code, cache.as_deref()),
        (StatusCode::OK, Some("public, max-age=3600"))
    );
    assert_eq!(
        status(
            &api.get("/api/v1/channels/alice/replays/latest/index.m3u8", None)
                .await
        ),
        302
    );
    for path in [
        format!("/videos/{video}/index.m3u8"),
        format!("/videos/{video}/0.ts"),
        format!("/videos/{video}.flv"),
        format!("/videos/{video}.flv?start=3"),
    ] {
        let (code, cache) = hls_get(&api, &path, None).await;
        assert_eq!(
            (code, cache.as_deref()),
            (StatusCode::OK, Some("public, max-age=3600")),
            "{path}"
        );
    }

    api.patch(&v, Some(&alice), json!({ "visibility": "private" }))
        .await
        .ok(StatusCode::OK);

    // Every path that exists: the owner and admins get it, a stranger or nobody a 404.
    let api_paths = [
        v.clone(),
        format!("{v}/thumbnail.jpg"),
        format!("{v}/comments"),
        format!("/api/v1/replays/{rec}"),
        format!("/api/v1/recordings/{rec}/danmaku"),
    ];
    for path in &api_paths {
        for token in [None, Some(bob.as_str())] {
            api.get(path, token).await.problem(404, "not-found");
        }
        for token in [&alice, &admin] {
            assert_eq!(status(&api.get(path, Some(token)).await), 200, "{path}");
        }
    }
    for path in [
        format!("/replays/{rec}/index.m3u8"),
        format!("/replays/{rec}/0.ts"),
        format!("/videos/{video}/index.m3u8"),
        format!("/videos/{video}/0.ts"),
        format!("/videos/{video}.flv"),
        format!("/videos/{video}.flv?start=3"),
    ] {
        for token in [None, Some(bob.as_str())] {
            assert_eq!(
                hls_get(&api, &path, token).await.0,
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        for token in [&alice, &admin] {
            let (code, cache) = hls_get(&api, &path, Some(token)).await;
            assert_eq!(code, StatusCode::OK, "{path}");
            // No shared cache may keep it for the next person.
            assert_eq!(cache.as_deref(), Some("private, no-cache"), "{path}");
        }
    }
    // Writes a stranger might try answer as if there were no video.
    api.post(
        &format!("{v}/comments"),
        Some(&bob),
        json!({ "text": "hi" }),
    )
    .await
    .problem(404, "not-found");
    api.post(&format!("{v}/views"), None, json!({}))
        .await
        .problem(404, "not-found");
    api.patch(&v, Some(&bob), json!({ "title": "mine" }))
        .await
        .problem(404, "not-found");

    // Never listed to others: the catalogue, the replay lists, the latest-replay link.
    let listed = |token: Option<String>| {
        let api = &api;
        async move {
            let token = token.as_deref();
            (
                ids(&api.get("/api/v1/videos", token).await.ok(StatusCode::OK)),
                api.get("/api/v1/replays", token).await.ok(StatusCode::OK)["total"].clone(),
                api.get("/api/v1/channels/alice/replays", token)
                    .await
                    .ok(StatusCode::OK)["total"]
                    .clone(),
            )
        }
    };
    assert_eq!(listed(None).await, (vec![], json!(0), json!(0)));
    assert_eq!(listed(Some(bob.clone())).await.0, Vec::<i64>::new());
    assert_eq!(listed(Some(alice.clone())).await.0, vec![video]);
    assert_eq!(listed(Some(admin.clone())).await.0, vec![video]);
    api.get("/api/v1/channels/alice/replays/latest/index.m3u8", None)
        .await
        .problem(404, "not-found");

    // Unlisted: served by id, never listed.
    api.patch(&v, Some(&alice), json!({ "visibility": "unlisted" }))
        .await
        .ok(StatusCode::OK);
    assert_eq!(status(&api.get(&v, None).await), 200);
    assert_eq!(
        hls_get(&api, &format!("/replays/{rec}/index.m3u8"), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(listed(None).await, (vec![], json!(0), json!(0)));
    // The latest-replay link is public, so following it would list the unlisted replay.
    api.get("/api/v1/channels/alice/replays/latest/index.m3u8", None)
        .await
        .problem(404, "not-found");
    let _ = std::fs::remove_dir_all(dir);
}

async fn videos_are_edited_searched_counted_and_deleted(store: Store) {
    let (api, dir) = api_with_recordings(store).await;
    let (_, alice) = api.account("alice", Role::Streamer).await;
    let (_, bob) = api.account("bob", Role::Viewer).await;
    let (_, admin) = api.account("root", Role::Admin).await;
    api.channel(&alice, "alice").await;
    let (rec1, v1) = replay_video(&api, "alice", 1).await;
    let (rec2, v2) = replay_video(&api, "alice", 2).await;

    // Categories are the admins'.
    api.post(
        "/api/v1/admin/video-categories",
        Some(&alice),
        json!({ "slug": "games", "name": "Games" }),
    )
    .await
    .problem(403, "forbidden");
    let games = api
        .post(
            "/api/v1/admin/video-categories",
            Some(&admin),
            json!({ "slug": "games", "name": "Games" }),
        )
        .await
        .ok(StatusCode::CREATED);
    let renamed = api
        .patch(
            &format!("/api/v1/admin/video-categories/{}", games["id"]),
            Some(&admin),
            json!({ "name": "Video games" }),
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(renamed["name"], "Video games");
    let list = api
        .get("/api/v1/video-categories", None)
        .await
        .ok(StatusCode::OK);
    assert_eq!(list[0]["slug"], "games");

    // The owner edits; the answer is the video as it now is.
    let edited = api
        .patch(
            &format!("/api/v1/videos/{v1}"),
            Some(&alice),
            json!({
                "title": "Any% run",
                "description": "line one\nline two",
                "category": "games",
                "tags": ["Speedrun"],
            }),
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(edited["category"], "games");
    assert_eq!(edited["tags"], json!(["Speedrun"]));
    assert_eq!(edited["playlist"], format!("/videos/{v1}/index.m3u8"));
    assert_eq!(
        edited["thumbnail"],
        format!("/api/v1/videos/{v1}/thumbnail.jpg")
    );
    api.patch(
        &format!("/api/v1/videos/{v1}"),
        Some(&alice),
        json!({ "description": "bad \u{202e} text" }),
    )
    .await
    .problem(400, "invalid-request");

    let search = async |query: &str| {
        ids(&api
            .get(&format!("/api/v1/videos?{query}"), None)
            .await
            .ok(StatusCode::OK))
    };
    assert_eq!(search("").await, vec![v2, v1]);
    assert_eq!(search("tag=speedrun").await, vec![v1]);
    assert_eq!(search("category=games").await, vec![v1]);
    assert_eq!(search("q=LINE%20TWO").await, vec![v1]);
    assert_eq!(search("channel=alice&limit=1").await, vec![v2]);

    // Views: once per viewer per hour, by account or by address.
    let view = async |token: Option<&str>| {
        api.post(&format!("/api/v1/videos/{v1}/views"), token, json!({}))
            .await
            .ok(StatusCode::OK)
    };
    assert_eq!(
        view(Some(&bob)).await,
        json!({ "counted": true, "view_count": 1 })
    );
    assert_eq!(
        view(Some(&bob)).await,
        json!({ "counted": false, "view_count": 1 })
    );
    assert_eq!(
        view(None).await,
        json!({ "counted": true, "view_count": 2 })
    );
    assert_eq!(view(None).await["counted"], false);
    assert_eq!(search("sort=views").await, vec![v1, v2]);

    // The thumbnail is the file, with the right type.
    let thumb = api
        .get(&format!("/api/v1/videos/{v1}/thumbnail.jpg"), None)
        .await;
    assert_eq!(thumb.status, StatusCode::OK);
    assert_eq!(thumb.headers[header::CONTENT_TYPE], "image/jpeg");

    // The latest replay link follows the newest replay.
    let latest = api
        .get("/api/v1/channels/alice/replays/latest/index.m3u8", None)
        .await;
    assert_eq!(latest.status, StatusCode::FOUND);
    assert_eq!(
        latest.headers[header::LOCATION],
        format!("/replays/{rec2}/index.m3u8")
    );

    // Deleting: not another's; the owner's delete takes the replay and its files.
    api.delete(&format!("/api/v1/videos/{v2}"), Some(&bob))
        .await
        .problem(403, "forbidden");
    assert_eq!(
        status(
            &api.delete(&format!("/api/v1/videos/{v2}"), Some(&alice))
                .await
        ),
        204
    );
    assert_eq!(api.store().recording_by_id(rec2).await.unwrap(), None);
    assert!(!dir.join("alice/2").exists());
    assert_eq!(
        api.get("/api/v1/channels/alice/replays/latest/index.m3u8", None)
            .await
            .headers[header::LOCATION],
        format!("/replays/{rec1}/index.m3u8")
    );
    let _ = std::fs::remove_dir_all(dir);
}

async fn comments_thread_one_level_and_follow_the_chat_rules(store: Store) {
    let (api, dir) = api_with_recordings(store).await;
    let (_, alice) = api.account("alice", Role::Streamer).await;
    let (bob_user, bob) = api.account("bob", Role::Viewer).await;
    let (_, carol) = api.account("carol", Role::Viewer).await;
    api.channel(&alice, "alice").await;
    let (_, v) = replay_video(&api, "alice", 1).await;
    let comments = format!("/api/v1/videos/{v}/comments");

    let top = api
        .post(&comments, Some(&bob), json!({ "text": "great run" }))
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(top["username"], "bob");
    let top_id = top["id"].as_i64().unwrap();
    let reply = api
        .post(
            &comments,
            Some(&carol),
            json!({ "text": "agreed", "parent_id": top_id }),
        )
        .await
        .ok(StatusCode::CREATED);
    // One level only.
    api.post(
        &comments,
        Some(&bob),
        json!({ "text": "deeper", "parent_id": reply["id"] }),
    )
    .await
    .problem(422, "unprocessable");
    let page = api.get(&comments, None).await.ok(StatusCode::OK);
    assert_eq!(ids(&page), vec![top_id]);
    assert_eq!(page["items"][0]["reply_count"], 1);
    let replies = api
        .get(&format!("{comments}?parent={top_id}"), None)
        .await
        .ok(StatusCode::OK);
    assert_eq!(ids(&replies), vec![reply["id"].as_i64().unwrap()]);

    // Edit: the writer only. Delete: the writer, the channel's owner, admins.
    let edited = api
        .patch(
            &format!("{comments}/{top_id}"),
            Some(&bob),
            json!({ "text": "greatest run" }),
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(edited["text"], "greatest run");
    assert!(edited["edited_at"].is_string());
    api.patch(
        &format!("{comments}/{top_id}"),
        Some(&alice),
        json!({ "text": "x" }),
    )
    .await
    .problem(403, "forbidden");
    api.delete(&format!("{comments}/{top_id}"), Some(&carol))
        .await
        .problem(403, "forbidden");
    assert_eq!(
        status(
            &api.delete(&format!("{comments}/{}", reply["id"]), Some(&alice))
                .await
        ),
        204
    );
    assert_eq!(
        status(
            &api.delete(&format!("{comments}/{top_id}"), Some(&bob))
                .await
        ),
        204
    );
    assert_eq!(
        api.get(&comments, None).await.ok(StatusCode::OK)["total"],
        0
    );

    // The chat's mutes and bans in the video's channel apply.
    let channel = api.store().channel_by_slug("alice").await.unwrap().unwrap();
    api.store()
        .mute_in_channel(
            channel.id,
            bob_user.id,
            Utc::now() + chrono::Duration::minutes(5),
            None,
        )
        .await
        .unwrap();
    let muted = api
        .post(&comments, Some(&bob), json!({ "text": "hello?" }))
        .await
        .problem(403, "forbidden");
    assert!(muted["detail"].as_str().unwrap().contains("muted"));
    api.store()
        .unmute_in_channel(channel.id, bob_user.id)
        .await
        .unwrap();
    api.store()
        .ban_in_channel(channel.id, bob_user.id, None)
        .await
        .unwrap();
    api.post(&comments, Some(&bob), json!({ "text": "hello?" }))
        .await
        .problem(403, "forbidden");

    // And so does the chat's rate: 10 per window (carol has sent one), then 429 with
    // Retry-After.
    for n in 0..9 {
        api.post(&comments, Some(&carol), json!({ "text": format!("n{n}") }))
            .await
            .ok(StatusCode::CREATED);
    }
    let limited = api
        .post(&comments, Some(&carol), json!({ "text": "one more" }))
        .await;
    assert!(limited.headers.contains_key(header::RETRY_AFTER));
    limited.problem(429, "rate-limited");

    // One budget with the chat: lines dave sends in the chat (counted where the chat's send
    // path counts them) leave him that many fewer comments.
    let (dave_user, dave) = api.account("dave", Role::Viewer).await;
    let now = std::time::Instant::now();
    for _ in 0..9 {
        api.app.chat.hit_user_rate(dave_user.id, now).unwrap();
    }
    api.post(&comments, Some(&dave), json!({ "text": "after chatting" }))
        .await
        .ok(StatusCode::CREATED);
    api.post(&comments, Some(&dave), json!({ "text": "one too many" }))
        .await
        .problem(429, "rate-limited");
    assert!(api.app.chat.hit_user_rate(dave_user.id, now).is_err());
    let _ = std::fs::remove_dir_all(dir);
}

/// A small FLV as `media.flv` is written: `onMetaData` (duration 6 s, a `keyframes` index),
/// the AVC and AAC sequence headers, then a keyframe and an audio frame every 2 s.
fn tiny_flv() -> Vec<u8> {
    use onair_amf::Value as Amf;
    use onair_flv::{FlvHeader, encode_tag};
    use onair_media::{MediaKind, Timestamp};
    let build = |positions: &[f64]| {
        let numbers = |v: &[f64]| Amf::StrictArray(v.iter().map(|n| Amf::Number(*n)).collect());
        let meta = onair_amf::encode_all(&[
            Amf::String("onMetaData".into()),
            Amf::EcmaArray(vec![
                ("duration".into(), Amf::Number(6.0)),
                (
                    "keyframes".into(),
                    Amf::Object(vec![
                        ("filepositions".into(), numbers(positions)),
                        ("times".into(), numbers(&[0.0, 2.0, 4.0])),
                    ]),
                ),
            ]),
        ]);
        let mut out = FlvHeader {
            has_audio: true,
            has_video: true,
        }
        .encode()
        .to_vec();
        out.extend_from_slice(&encode_tag(MediaKind::Script, Timestamp::ZERO, &meta));
        out.extend_from_slice(&encode_tag(
            MediaKind::Video,
            Timestamp::ZERO,
            &[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f],
        ));
        out.extend_from_slice(&encode_tag(
            MediaKind::Audio,
            Timestamp::ZERO,
            &[0xaf, 0, 0x12, 0x10],
        ));
        let mut at = Vec::new();
        for i in 0..3u32 {
            at.push(out.len() as f64);
            let ts = Timestamp::from_millis(i * 2000);
            out.extend_from_slice(&encode_tag(
                MediaKind::Video,
                ts,
                &[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65, i as u8],
            ));
            out.extend_from_slice(&encode_tag(MediaKind::Audio, ts, &[0xaf, 1, i as u8]));
        }
        (out, at)
    };
    // The index's length does not depend on its numbers: build once to learn them.
    let (_, positions) = build(&[0.0; 3]);
    build(&positions).0
}

/// A request to the media routes, read whole (bodies are bytes, not text).
async fn media(
    api: &Api,
    method: axum::http::Method,
    uri: &str,
    headers: &[(header::HeaderName, &str)],
) -> (StatusCode, axum::http::HeaderMap, bytes::Bytes) {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(name, *value);
    }
    let response = crate::hls::http::router(api.app.hls.clone())
        .oneshot(builder.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (parts.status, parts.headers, body)
}

/// The tags of an FLV stream: (type, timestamp, first body byte).
fn flv_tags(data: &[u8]) -> Vec<(u8, u32, u8)> {
    let mut demuxer = onair_flv::FlvDemuxer::default();
    let mut buf = bytes::BytesMut::from(data);
    let mut tags = Vec::new();
    while let Some(tag) = demuxer.decode(&mut buf).unwrap() {
        tags.push((
            tag.kind.tag_type(),
            tag.timestamp.as_millis(),
            tag.body.first().copied().unwrap_or(0),
        ));
    }
    assert!(buf.is_empty(), "{} bytes after the last tag", buf.len());
    tags
}

async fn videos_play_by_id_over_hls_and_flv(store: Store) {
    use axum::http::Method;
    let (api, dir) = api_with_recordings(store).await;
    let (_, alice) = api.account("alice", Role::Streamer).await;
    api.channel(&alice, "alice").await;
    // An upload: a video with no recording behind it.
    let channel = api.store().channel_by_slug("alice").await.unwrap().unwrap();
    let files = api.app.hls.root().join("alice/upload-1");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(
        files.join("index.m3u8"),
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:2.0,\n0.ts\n#EXT-X-ENDLIST\n",
    )
    .unwrap();
    std::fs::write(files.join("0.ts"), vec![0x47; 376]).unwrap();
    let flv = tiny_flv();
    std::fs::write(files.join("media.flv"), &flv).unwrap();
    let video = api
        .store()
        .create_video(onair_store::NewVideo {
            channel_id: channel.id,
            recording_id: None,
            path: "alice/upload-1".into(),
            title: "an upload".into(),
            duration_ms: 6000,
            ..Default::default()
        })
        .await
        .unwrap();
    let id = video.id;
    let info = api
        .get(&format!("/api/v1/videos/{id}"), None)
        .await
        .ok(StatusCode::OK);
    assert_eq!(info["playlist"], format!("/videos/{id}/index.m3u8"));
    assert_eq!(info["replay_id"], Value::Null);

    let (code, h, body) = media(&api, Method::GET, &format!("/videos/{id}/index.m3u8"), &[]).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "application/vnd.apple.mpegurl");
    assert!(body.starts_with(b"#EXTM3U"));
    let (code, _, body) = media(
        &api,
        Method::GET,
        &format!("/videos/{id}/0.ts"),
        &[(header::RANGE, "bytes=188-")],
    )
    .await;
    assert_eq!((code, body.len()), (StatusCode::PARTIAL_CONTENT, 188));

    // The file, whole, with what range seeking needs.
    let url = format!("/videos/{id}.flv");
    let (code, h, body) = media(&api, Method::GET, &url, &[]).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body, flv);
    assert_eq!(h[header::CONTENT_TYPE], "video/x-flv");
    assert_eq!(h[header::ACCEPT_RANGES], "bytes");
    assert_eq!(h[header::CONTENT_LENGTH], flv.len().to_string().as_str());
    assert_eq!(h[header::CACHE_CONTROL], "public, max-age=3600");
    let etag = h[header::ETAG].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert!(h[header::LAST_MODIFIED].to_str().unwrap().ends_with(" GMT"));
    // HEAD: the same headers, no body.
    let (code, h, body) = media(&api, Method::HEAD, &url, &[]).await;
    assert_eq!((code, body.len()), (StatusCode::OK, 0));
    assert_eq!(h[header::CONTENT_LENGTH], flv.len().to_string().as_str());
    // One range, byte for byte.
    let (code, h, body) = media(&api, Method::GET, &url, &[(header::RANGE, "bytes=100-199")]).await;
    assert_eq!(code, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&body[..], &flv[100..200]);
    assert_eq!(
        h[header::CONTENT_RANGE],
        format!("bytes 100-199/{}", flv.len()).as_str()
    );
    let past = format!("bytes={}-", flv.len());
    let (code, h, body) = media(&api, Method::GET, &url, &[(header::RANGE, past.as_str())]).await;
    assert_eq!(code, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        h[header::CONTENT_RANGE],
        format!("bytes */{}", flv.len()).as_str()
    );
    let problem: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["status"], 416);
    // Validators: a revalidation is a 304; a range of a version since replaced is the
    // whole new file.
    let (code, _, body) = media(
        &api,
        Method::GET,
        &url,
        &[(header::IF_NONE_MATCH, etag.as_str())],
    )
    .await;
    assert_eq!((code, body.len()), (StatusCode::NOT_MODIFIED, 0));
    let (code, _, body) = media(
        &api,
        Method::GET,
        &url,
        &[(header::RANGE, "bytes=0-9"), (header::IF_RANGE, "\"old\"")],
    )
    .await;
    assert_eq!((code, body.len()), (StatusCode::OK, flv.len()));
    let (code, _, body) = media(
        &api,
        Method::GET,
        &url,
        &[
            (header::RANGE, "bytes=0-9"),
            (header::IF_RANGE, etag.as_str()),
        ],
    )
    .await;
    assert_eq!((code, body.len()), (StatusCode::PARTIAL_CONTENT, 10));

    // `?start=3`: header, metadata, both sequence headers at the keyframe's time, then the
    // file from the keyframe at 2 s on, with the file's timestamps.
    let (code, h, body) = media(&api, Method::GET, &format!("{url}?start=3"), &[]).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(h[header::CONTENT_LENGTH], body.len().to_string().as_str());
    assert_eq!(h[header::ACCEPT_RANGES], "none");
    let tags = flv_tags(&body);
    assert_eq!(
        tags,
        vec![
            (18, 0, 0x02),
            (9, 2000, 0x17),
            (8, 2000, 0xaf),
            (9, 2000, 0x17),
            (8, 2000, 0xaf),
            (9, 4000, 0x17),
            (8, 4000, 0xaf),
        ]
    );
    assert_eq!(&body[body.len() - 40..], &flv[flv.len() - 40..]);
    let (code, _, from_zero) = media(&api, Method::GET, &format!("{url}?start=0"), &[]).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(flv_tags(&from_zero).len(), 3 + 6);
    // HEAD of a generated stream: its length, no body.
    let (code, h, body) = media(&api, Method::HEAD, &format!("{url}?start=3"), &[]).await;
    assert_eq!((code, body.len()), (StatusCode::OK, 0));
    assert_eq!(
        h[header::CONTENT_LENGTH],
        tags_len(&api, &url).await.as_str()
    );
    // Past the end, and values that are not seconds.
    let (code, _, body) = media(&api, Method::GET, &format!("{url}?start=6.5"), &[]).await;
    assert_eq!(code, StatusCode::RANGE_NOT_SATISFIABLE);
    let problem: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("6.000 s"),
        "{problem}"
    );
    for bad in ["abc", "-1", "1e3", "", "inf"] {
        let (code, _, body) = media(&api, Method::GET, &format!("{url}?start={bad}"), &[]).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{bad:?}");
        let problem: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["errors"][0]["field"], "start", "{bad:?}");
    }

    // Names are strict; a missing video and a missing file are 404s.
    for path in [
        "/videos/999/index.m3u8".to_owned(),
        "/videos/999.flv".to_owned(),
        "/videos/x.flv".to_owned(),
        format!("/videos/{id}/live.m3u8"),
        format!("/videos/{id}/media.flv"),
        format!("/videos/{id}/..%2Fx.ts"),
        format!("/videos/{id}/7.ts"),
    ] {
        let (code, _, _) = media(&api, Method::GET, &path, &[]).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{path}");
    }
    // `/videos/{id}` itself is the web app's page.
    let (code, h, _) = media(&api, Method::GET, &format!("/videos/{id}"), &[]).await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    // A video recorded before there was an FLV file plays over HLS only, and says so.
    std::fs::remove_file(files.join("media.flv")).unwrap();
    for path in [url.clone(), format!("{url}?start=1")] {
        let (code, _, body) = media(&api, Method::GET, &path, &[]).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{path}");
        let problem: Value = serde_json::from_slice(&body).unwrap();
        assert!(
            problem["detail"].as_str().unwrap().contains("HLS only"),
            "{problem}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The length of the `?start=3` stream, as a GET reads it.
async fn tags_len(api: &Api, url: &str) -> String {
    let (_, _, body) = media(api, axum::http::Method::GET, &format!("{url}?start=3"), &[]).await;
    body.len().to_string()
}

onair_store::store_test!(
    videos_play_by_id_over_hls_and_flv,
    private_videos_are_refused_on_every_path_to_others,
    videos_are_edited_searched_counted_and_deleted,
    comments_thread_one_level_and_follow_the_chat_rules,
);
