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
    assert_eq!(edited["playlist"], format!("/replays/{rec1}/index.m3u8"));
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

onair_store::store_test!(
    private_videos_are_refused_on_every_path_to_others,
    videos_are_edited_searched_counted_and_deleted,
    comments_thread_one_level_and_follow_the_chat_rules,
);
