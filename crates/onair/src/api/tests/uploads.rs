//! tus uploads through the router: creation, HEAD, PATCH in pieces, the offset rule, a body
//! that breaks off (what arrived is kept, the upload resumes), limits, other accounts, a
//! refused file (failed, nothing left), termination, the sweep and the restart of an import.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine as _;
use bytes::Bytes;
use onair_store::{Role, Store, UploadState};
use serde_json::Value;

use super::{Api, Reply};

const TUS: (&str, &str) = ("tus-resumable", "1.0.0");

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn api(store: Store, edit: impl FnOnce(&mut crate::config::Config)) -> Api {
    let dir = std::env::temp_dir().join(format!(
        "onair-api-uploads-{}-{:x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    Api::with_config(store, move |c| {
        c.hls.recordings_dir = Some(dir);
        edit(c);
    })
    .await
}

/// Sends a request with these headers and body.
async fn send(
    api: &Api,
    method: Method,
    uri: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Body,
) -> Reply {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    api.send(
        builder.body(body).unwrap(),
        "192.0.2.1:40000".parse().unwrap(),
    )
    .await
}

fn metadata(channel: &str, title: &str) -> String {
    format!(
        "channel {},title {},filename {},filetype {}",
        b64(channel),
        b64(title),
        b64("clip.mp4"),
        b64("video/mp4")
    )
}

async fn create(api: &Api, token: &str, channel: &str, length: u64) -> Reply {
    let meta = metadata(channel, "My clip");
    let length = length.to_string();
    send(
        api,
        Method::POST,
        "/api/v1/uploads",
        Some(token),
        &[TUS, ("upload-length", &length), ("upload-metadata", &meta)],
        Body::empty(),
    )
    .await
}

async fn patch(api: &Api, token: &str, location: &str, offset: u64, bytes: &[u8]) -> Reply {
    let offset = offset.to_string();
    let length = bytes.len().to_string();
    send(
        api,
        Method::PATCH,
        location,
        Some(token),
        &[
            TUS,
            ("content-type", "application/offset+octet-stream"),
            ("upload-offset", &offset),
            ("content-length", &length),
        ],
        Body::from(bytes.to_vec()),
    )
    .await
}

async fn head(api: &Api, token: &str, location: &str) -> Reply {
    send(
        api,
        Method::HEAD,
        location,
        Some(token),
        &[TUS],
        Body::empty(),
    )
    .await
}

fn offset_of(reply: &Reply) -> u64 {
    reply.headers["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

async fn wait_state(api: &Api, token: &str, location: &str) -> Value {
    for _ in 0..400 {
        let status = api.get(location, Some(token)).await.ok(StatusCode::OK);
        if status["state"] != "uploading" && status["state"] != "processing" {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("upload {location} never finished processing");
}

async fn a_file_in_three_patches_is_refused_when_it_is_no_video_and_leaves_nothing(store: Store) {
    let api = api(store, |_| {}).await;
    let (_, alice) = api.account("alice", Role::Streamer).await;
    api.channel(&alice, "alice").await;

    let options = send(
        &api,
        Method::OPTIONS,
        "/api/v1/uploads",
        None,
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(options.status, StatusCode::NO_CONTENT);
    assert_eq!(options.headers["tus-version"], "1.0.0");
    assert_eq!(
        options.headers["tus-extension"],
        "creation,expiration,termination"
    );
    assert_eq!(options.headers["tus-max-size"], (4u64 << 30).to_string());

    let bytes: Vec<u8> = (0..30_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let created = create(&api, &alice, "alice", bytes.len() as u64).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.headers["tus-resumable"], "1.0.0");
    assert!(created.headers.contains_key("upload-expires"));
    let location = created.headers[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let id = created.json["id"].as_i64().unwrap();
    assert_eq!(location, format!("/api/v1/uploads/{id}"));
    assert_eq!(created.json["state"], "uploading");
    assert_eq!(created.json["title"], "My clip");
    assert_eq!(created.json["filename"], "clip.mp4");
    assert_eq!(created.json["visibility"], "public");

    let first = head(&api, &alice, &location).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        (
            offset_of(&first),
            first.headers["upload-length"].to_str().unwrap()
        ),
        (0, "30000")
    );
    assert_eq!(first.headers[header::CACHE_CONTROL], "no-store");

    let mut offset = 0;
    for piece in bytes.chunks(10_000).take(2) {
        let reply = patch(&api, &alice, &location, offset, piece).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
        offset = offset_of(&reply);
    }
    assert_eq!(offset, 20_000);
    // The bytes so far are on disk, exactly.
    let part = api.app.uploads.part_path(id);
    assert_eq!(std::fs::read(&part).unwrap(), &bytes[..20_000]);
    // A PATCH at the wrong offset is 409 and changes nothing.
    patch(&api, &alice, &location, 10_000, &bytes[10_000..20_000])
        .await
        .problem(409, "conflict");
    assert_eq!(offset_of(&head(&api, &alice, &location).await), 20_000);
    let last = patch(&api, &alice, &location, 20_000, &bytes[20_000..]).await;
    assert_eq!(last.status, StatusCode::NO_CONTENT, "{}", last.text);
    assert_eq!(offset_of(&last), 30_000);

    // Random bytes are no MP4 or FLV: failed, with the import's reason, no video, no files.
    let done = wait_state(&api, &alice, &location).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["video_id"], Value::Null);
    assert_eq!(done["problem"]["status"], 422);
    assert!(
        done["problem"]["detail"]
            .as_str()
            .unwrap()
            .contains("not an MP4 or FLV file"),
        "{done}"
    );
    let videos = api
        .get("/api/v1/videos", Some(&alice))
        .await
        .ok(StatusCode::OK);
    assert_eq!(videos["total"], 0);
    assert_eq!(
        files_under(api.app.hls.root()),
        Vec::<std::path::PathBuf>::new()
    );
    // A failed upload takes no more bytes.
    patch(&api, &alice, &location, 30_000, b"more")
        .await
        .problem(409, "conflict");
}

async fn a_body_that_breaks_off_keeps_what_arrived_and_the_upload_resumes(store: Store) {
    let api = api(store, |_| {}).await;
    let (_, alice) = api.account("alice", Role::Streamer).await;
    api.channel(&alice, "alice").await;
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
    let created = create(&api, &alice, "alice", bytes.len() as u64).await;
    let location = created.headers[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let id = created.json["id"].as_i64().unwrap();

    // 12 000 bytes, then the connection is lost.
    let arrived = bytes[..12_000].to_vec();
    let stream = futures_util::stream::iter(vec![
        Ok(Bytes::from(arrived[..5_000].to_vec())),
        Ok(Bytes::from(arrived[5_000..].to_vec())),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by peer",
        )),
    ]);
    let cut = send(
        &api,
        Method::PATCH,
        &location,
        Some(&alice),
        &[
            TUS,
            ("content-type", "application/offset+octet-stream"),
            ("upload-offset", "0"),
        ],
        Body::from_stream(stream),
    )
    .await;
    let problem = cut.problem(400, "invalid-request");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("resume from Upload-Offset 12000"),
        "{problem}"
    );
    let resumed_at = offset_of(&head(&api, &alice, &location).await);
    assert_eq!(resumed_at, 12_000);
    let rest = patch(&api, &alice, &location, resumed_at, &bytes[12_000..40_000]).await;
    assert_eq!(offset_of(&rest), 40_000);
    assert_eq!(
        std::fs::read(api.app.uploads.part_path(id)).unwrap(),
        &bytes[..40_000],
        "the resumed upload holds the same bytes"
    );

    // A body longer than what is left is refused whole: nothing of it is kept.
    let mut too_long = bytes[40_000..].to_vec();
    too_long.extend_from_slice(b"extra");
    patch(&api, &alice, &location, 40_000, &too_long)
        .await
        .problem(413, "payload-too-large");
    // The same without a Content-Length (chunked): refused as it passes the length.
    let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from(too_long))]);
    send(
        &api,
        Method::PATCH,
        &location,
        Some(&alice),
        &[
            TUS,
            ("content-type", "application/offset+octet-stream"),
            ("upload-offset", "40000"),
        ],
        Body::from_stream(stream),
    )
    .await
    .problem(413, "payload-too-large");
    assert_eq!(offset_of(&head(&api, &alice, &location).await), 40_000);
    assert_eq!(
        std::fs::metadata(api.app.uploads.part_path(id))
            .unwrap()
            .len(),
        40_000
    );

    // Termination removes the row and the bytes.
    let deleted = send(
        &api,
        Method::DELETE,
        &location,
        Some(&alice),
        &[TUS],
        Body::empty(),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        head(&api, &alice, &location).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(!api.app.uploads.part_path(id).exists());
    assert_eq!(api.store().upload_by_id(id).await.unwrap(), None);
}

async fn limits_versions_media_types_and_other_accounts(store: Store) {
    let api = api(store, |c| {
        c.vod.max_upload_bytes = 1000;
        c.vod.max_unfinished_uploads = 2;
    })
    .await;
    let (_, alice) = api.account("alice", Role::Streamer).await;
    let (_, bob) = api.account("bob", Role::Streamer).await;
    let (_, vic) = api.account("vic", Role::Viewer).await;
    let (_, root) = api.account("root", Role::Admin).await;
    api.channel(&alice, "alice").await;
    api.channel(&bob, "bob").await;

    create(&api, &alice, "alice", 1001)
        .await
        .problem(413, "payload-too-large");
    create(&api, &alice, "bob", 10)
        .await
        .problem(404, "not-found");
    create(&api, &vic, "alice", 10)
        .await
        .problem(403, "forbidden");
    let reply = send(
        &api,
        Method::POST,
        "/api/v1/uploads",
        Some(&alice),
        &[
            ("upload-length", "10"),
            ("upload-metadata", &metadata("alice", "t")),
        ],
        Body::empty(),
    )
    .await;
    assert_eq!(reply.headers["tus-version"], "1.0.0");
    reply.problem(412, "precondition-failed");
    // Metadata: missing title, bad visibility, not base64; each named.
    for (meta, field) in [
        (format!("channel {}", b64("alice")), "Upload-Metadata.title"),
        (
            format!("{},visibility {}", metadata("alice", "t"), b64("secret")),
            "Upload-Metadata.visibility",
        ),
        ("channel ###".to_owned(), "Upload-Metadata"),
    ] {
        send(
            &api,
            Method::POST,
            "/api/v1/uploads",
            Some(&alice),
            &[TUS, ("upload-length", "10"), ("upload-metadata", &meta)],
            Body::empty(),
        )
        .await
        .invalid(&[field]);
    }
    send(
        &api,
        Method::POST,
        "/api/v1/uploads",
        Some(&alice),
        &[
            TUS,
            ("upload-length", "ten"),
            ("upload-metadata", &metadata("alice", "t")),
        ],
        Body::empty(),
    )
    .await
    .invalid(&["Upload-Length"]);

    let first = create(&api, &alice, "alice", 100)
        .await
        .ok(StatusCode::CREATED);
    let location = format!("/api/v1/uploads/{}", first["id"]);
    // An admin may upload into anyone's channel.
    let admins = create(&api, &root, "alice", 100)
        .await
        .ok(StatusCode::CREATED);
    create(&api, &alice, "alice", 100)
        .await
        .ok(StatusCode::CREATED);
    create(&api, &alice, "alice", 100)
        .await
        .problem(409, "conflict");

    // Another streamer's upload does not exist for them; an admin sees it.
    assert_eq!(
        head(&api, &bob, &location).await.status,
        StatusCode::NOT_FOUND
    );
    api.get(&location, Some(&bob))
        .await
        .problem(404, "not-found");
    patch(&api, &bob, &location, 0, b"x")
        .await
        .problem(404, "not-found");
    assert_eq!(
        api.get(&location, Some(&root)).await.ok(StatusCode::OK)["id"],
        first["id"]
    );
    assert_eq!(admins["channel"], "alice");

    // The PATCH rules, checked before any byte is read.
    send(
        &api,
        Method::PATCH,
        &location,
        Some(&alice),
        &[
            TUS,
            ("content-type", "application/json"),
            ("upload-offset", "0"),
        ],
        Body::from("{}"),
    )
    .await
    .problem(415, "unsupported-media-type");
    send(
        &api,
        Method::PATCH,
        &location,
        Some(&alice),
        &[
            ("content-type", "application/offset+octet-stream"),
            ("upload-offset", "0"),
        ],
        Body::from("x"),
    )
    .await
    .problem(412, "precondition-failed");
    send(
        &api,
        Method::PATCH,
        &location,
        Some(&alice),
        &[TUS, ("content-type", "application/offset+octet-stream")],
        Body::from("x"),
    )
    .await
    .invalid(&["Upload-Offset"]);
    patch(&api, &alice, &location, 0, &[0; 101])
        .await
        .problem(413, "payload-too-large");
    api.get("/api/v1/uploads/0", Some(&alice))
        .await
        .invalid(&["id"]);
    api.get("/api/v1/uploads/999999", Some(&alice))
        .await
        .problem(404, "not-found");
    api.get(&location, None).await.problem(401, "unauthorized");
}

async fn the_sweep_removes_expired_uploads_and_stray_files(store: Store) {
    let api = api(store, |c| c.vod.upload_expiry = Duration::from_millis(200)).await;
    let (_, alice) = api.account("alice", Role::Streamer).await;
    api.channel(&alice, "alice").await;
    let created = create(&api, &alice, "alice", 100)
        .await
        .ok(StatusCode::CREATED);
    let id = created["id"].as_i64().unwrap();
    let uploads = &api.app.uploads;
    let stray = uploads.part_path(id + 1000);
    std::fs::write(&stray, b"left by a crash").unwrap();
    let kept = create(&api, &alice, "alice", 100)
        .await
        .ok(StatusCode::CREATED);
    let kept_id = kept["id"].as_i64().unwrap();
    assert!(uploads.part_path(id).exists());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // An expired upload is gone for its owner at once, before any sweep.
    api.get(&format!("/api/v1/uploads/{id}"), Some(&alice))
        .await
        .problem(404, "not-found");
    // The second one moves its expiry on by receiving a byte.
    api.store()
        .set_upload_received(kept_id, 1, chrono::Utc::now() + chrono::Duration::hours(1))
        .await
        .unwrap();
    let (rows, files) = uploads.sweep().await.unwrap();
    assert_eq!((rows, files), (1, 1));
    assert_eq!(api.store().upload_by_id(id).await.unwrap(), None);
    assert!(!uploads.part_path(id).exists());
    assert!(!stray.exists());
    assert!(uploads.part_path(kept_id).exists());
    assert!(api.store().upload_by_id(kept_id).await.unwrap().is_some());
}

async fn an_import_a_stop_interrupted_runs_again_at_start(store: Store) {
    let api = api(store, |_| {}).await;
    let (_, alice) = api.account("alice", Role::Streamer).await;
    api.channel(&alice, "alice").await;
    let created = create(&api, &alice, "alice", 4)
        .await
        .ok(StatusCode::CREATED);
    let id = created["id"].as_i64().unwrap();
    std::fs::write(api.app.uploads.part_path(id), b"junk").unwrap();
    // As a stop between the last byte and the import would leave it.
    let row = api
        .store()
        .set_upload_received(id, 4, chrono::Utc::now() + chrono::Duration::hours(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.state, UploadState::Processing);
    api.app.uploads.resume().await;
    let done = wait_state(&api, &alice, &format!("/api/v1/uploads/{id}")).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert!(!api.app.uploads.part_path(id).exists());
}

onair_store::store_test!(
    a_file_in_three_patches_is_refused_when_it_is_no_video_and_leaves_nothing,
    a_body_that_breaks_off_keeps_what_arrived_and_the_upload_resumes,
    limits_versions_media_types_and_other_accounts,
    the_sweep_removes_expired_uploads_and_stray_files,
    an_import_a_stop_interrupted_runs_again_at_start,
);
