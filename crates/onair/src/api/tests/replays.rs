//! `/channels/{slug}/replays`, `/replays/{id}` and the admin retention policy.

use axum::http::{Method, StatusCode};
use chrono::{Duration, Utc};
use onair_store::{NewRecording, RecordingState, Role, Store};
use serde_json::json;

use super::Api;

/// A recording of `channel_id` that started `days_ago` days ago, with `size` bytes of files
/// on disk under the server's recordings root; finished unless `live`.
async fn recording(api: &Api, channel_id: i64, days_ago: i64, size: u64, live: bool) -> i64 {
    let started_at = Utc::now() - Duration::days(days_ago);
    let path = format!("c{channel_id}/{}", started_at.format("%Y%m%dT%H%M%S%3fZ"));
    let dir = api.app.hls.root().join(&path);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("0.ts"), vec![0x47; 188]).unwrap();
    let rec = api
        .store()
        .create_recording(NewRecording {
            channel_id,
            live_session_id: None,
            title: "a live".into(),
            path,
            started_at,
        })
        .await
        .unwrap();
    if !live {
        api.store()
            .finish_recording(rec.id, RecordingState::Finished, started_at, 60_000, size)
            .await
            .unwrap();
    }
    rec.id
}

async fn with_recordings_dir(store: Store) -> (Api, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "onair-api-replays-{}-{:x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let root = dir.clone();
    let api = Api::with_config(store, move |c| c.hls.recordings_dir = Some(root)).await;
    (api, dir)
}

async fn replays_are_listed_read_and_deleted_by_their_owner(store: Store) {
    let (api, dir) = with_recordings_dir(store).await;
    let (_, alice) = api.account("alice", Role::Streamer).await;
    let (_, bob) = api.account("bob", Role::Streamer).await;
    let (_, admin) = api.account("root", Role::Admin).await;
    let channel = api.channel(&alice, "alice").await;
    let channel_id = channel["id"].as_i64().unwrap();
    let old = recording(&api, channel_id, 3, 1000, false).await;
    let live = recording(&api, channel_id, 0, 0, true).await;

    let page = api
        .get("/api/v1/channels/alice/replays?limit=1", None)
        .await
        .ok(StatusCode::OK);
    assert_eq!(page["total"], 2);
    assert_eq!(page["items"][0]["id"], live, "newest first");
    assert_eq!(page["items"][0]["state"], "recording");
    let one = api
        .get(&format!("/api/v1/replays/{old}"), None)
        .await
        .ok(StatusCode::OK);
    assert_eq!(one["channel"], "alice");
    assert_eq!(one["state"], "finished");
    assert_eq!(one["duration_ms"], 60_000);
    assert_eq!(one["playlist"], format!("/replays/{old}/index.m3u8"));
    api.get("/api/v1/replays/999999", None)
        .await
        .problem(404, "not-found");
    api.get("/api/v1/replays/abc", None).await.invalid(&["id"]);
    api.get("/api/v1/channels/nobody/replays", None)
        .await
        .problem(404, "not-found");

    let uri = format!("/api/v1/replays/{old}");
    api.delete(&uri, None).await.problem(401, "unauthorized");
    api.delete(&uri, Some(&bob)).await.problem(404, "not-found");
    api.delete(&format!("/api/v1/replays/{live}"), Some(&alice))
        .await
        .problem(409, "conflict");
    let path = api
        .store()
        .recording_by_id(old)
        .await
        .unwrap()
        .unwrap()
        .path;
    assert!(dir.join(&path).exists());
    let reply = api.delete(&uri, Some(&alice)).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    assert!(!dir.join(&path).exists(), "the files went with the row");
    api.get(&uri, None).await.problem(404, "not-found");
    assert!(
        api.audit()
            .await
            .iter()
            .any(|(action, target, _)| action == "replay.delete"
                && *target == format!("replay:{old}"))
    );

    // An admin may delete anyone's replay once it is finished.
    api.store()
        .finish_recording(live, RecordingState::Finished, Utc::now(), 1, 1)
        .await
        .unwrap();
    let reply = api
        .delete(&format!("/api/v1/replays/{live}"), Some(&admin))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    let _ = std::fs::remove_dir_all(dir);
}

async fn deleting_a_channel_deletes_its_replays_files(store: Store) {
    let (api, dir) = with_recordings_dir(store).await;
    let (_, alice) = api.account("alice", Role::Streamer).await;
    let channel = api.channel(&alice, "alice").await;
    let channel_id = channel["id"].as_i64().unwrap();
    let mut paths = Vec::new();
    for days_ago in [1, 2, 3] {
        let id = recording(&api, channel_id, days_ago, 10, false).await;
        let rec = api.store().recording_by_id(id).await.unwrap().unwrap();
        assert!(dir.join(&rec.path).exists());
        paths.push(rec.path);
    }
    let reply = api.delete("/api/v1/me/channels/alice", Some(&alice)).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    for path in &paths {
        assert!(!dir.join(path).exists(), "{path} outlived its channel");
    }
    let _ = std::fs::remove_dir_all(dir);
}

async fn the_retention_policy_is_set_by_admins_and_applied_at_once(store: Store) {
    let (api, dir) = with_recordings_dir(store).await;
    let (_, alice) = api.account("alice", Role::Streamer).await;
    let (_, admin) = api.account("root", Role::Admin).await;
    let channel_id = api.channel(&alice, "alice").await["id"].as_i64().unwrap();
    let oldest = recording(&api, channel_id, 40, 3 << 20, false).await;
    let middle = recording(&api, channel_id, 10, 3 << 20, false).await;
    let newest = recording(&api, channel_id, 1, 3 << 20, false).await;
    let live = recording(&api, channel_id, 0, 0, true).await;

    let uri = "/api/v1/admin/replays/retention";
    api.get(uri, Some(&alice)).await.problem(403, "forbidden");
    let policy = api.get(uri, Some(&admin)).await.ok(StatusCode::OK);
    assert_eq!(
        policy,
        json!({ "max_age_seconds": null, "max_bytes_per_channel": null })
    );
    api.call(
        Method::PUT,
        uri,
        Some(&admin),
        Some(json!({ "max_age_seconds": 5, "max_bytes_per_channel": 10 })),
    )
    .await
    .invalid(&["max_age_seconds", "max_bytes_per_channel"]);

    // 30 days drops the 40-day-old one; 7 MiB per channel then drops the next oldest.
    let applied = api
        .call(
            Method::PUT,
            uri,
            Some(&admin),
            Some(json!({ "max_age_seconds": 30 * 86_400, "max_bytes_per_channel": 7 << 20 })),
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(applied["deleted"], 1);
    assert_eq!(applied["policy"]["max_bytes_per_channel"], 7 << 20);
    let left: Vec<i64> = api
        .store()
        .list_recordings(channel_id, onair_store::Page::default())
        .await
        .unwrap()
        .0
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, vec![live, newest, middle]);
    let applied = api
        .call(
            Method::PUT,
            uri,
            Some(&admin),
            Some(json!({ "max_age_seconds": null, "max_bytes_per_channel": 4 << 20 })),
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(applied["deleted"], 1, "the live recording is never deleted");
    assert!(api.store().recording_by_id(oldest).await.unwrap().is_none());
    assert!(api.store().recording_by_id(middle).await.unwrap().is_none());
    assert!(api.store().recording_by_id(live).await.unwrap().is_some());
    let policy = api.get(uri, Some(&admin)).await.ok(StatusCode::OK);
    assert_eq!(policy["max_bytes_per_channel"], 4 << 20);
    let _ = std::fs::remove_dir_all(dir);
}

async fn recent_replays_list_every_channel_newest_first(store: Store) {
    let (api, dir) = with_recordings_dir(store).await;
    let (_, alice) = api.account("alice", Role::Streamer).await;
    let (_, bob) = api.account("bob", Role::Streamer).await;
    let a = api.channel(&alice, "alice").await["id"].as_i64().unwrap();
    let b = api.channel(&bob, "bob").await["id"].as_i64().unwrap();
    let old = recording(&api, a, 2, 10, false).await;
    let live = recording(&api, b, 0, 0, true).await;

    let page = api.get("/api/v1/replays", None).await.ok(StatusCode::OK);
    assert_eq!(page["total"], 2);
    assert_eq!(page["items"][0]["id"], live);
    assert_eq!(page["items"][0]["channel"], "bob");
    assert_eq!(page["items"][1]["id"], old);
    assert_eq!(page["items"][1]["channel"], "alice");
    let page = api
        .get("/api/v1/replays?offset=1&limit=1", None)
        .await
        .ok(StatusCode::OK);
    assert_eq!(page["items"][0]["id"], old);
    api.get("/api/v1/replays?limit=0", None)
        .await
        .invalid(&["limit"]);
    let _ = std::fs::remove_dir_all(dir);
}

onair_store::store_test!(
    recent_replays_list_every_channel_newest_first,
    replays_are_listed_read_and_deleted_by_their_owner,
    deleting_a_channel_deletes_its_replays_files,
    the_retention_policy_is_set_by_admins_and_applied_at_once,
);
