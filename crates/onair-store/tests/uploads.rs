//! Resumable uploads on both backends: creation, progress, the one transition to
//! `processing`, completion into a video (all or nothing), failure, expiry and deletion.

use chrono::{Duration, Utc};
use onair_store::{
    Channel, NewChannel, NewUpload, NewUser, NewVideo, Role, Store, StoreError, UploadState, User,
    Visibility, store_test,
};

async fn user(store: &Store, name: &str) -> User {
    store
        .create_user(NewUser {
            username: name.to_owned(),
            password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1${name}"),
            role: Role::Streamer,
        })
        .await
        .expect("create user")
}

async fn channel(store: &Store, owner: &User, slug: &str) -> Channel {
    store
        .create_channel(NewChannel {
            slug: slug.to_owned(),
            title: format!("{slug} live"),
            owner_id: owner.id,
            category: String::new(),
            tags: vec![],
        })
        .await
        .expect("create channel")
}

fn new_upload(name: &str, owner: &User, channel: &Channel, length: u64) -> NewUpload {
    NewUpload {
        user_id: owner.id,
        channel_id: channel.id,
        title: format!("{name} title"),
        filename: format!("{name}.mp4"),
        visibility: Visibility::Unlisted,
        length_bytes: length,
        expires_at: Utc::now() + Duration::hours(24),
    }
}

fn video_of(channel: &Channel, path: &str) -> NewVideo {
    NewVideo {
        channel_id: channel.id,
        path: path.to_owned(),
        title: "uploaded".to_owned(),
        visibility: Visibility::Unlisted,
        duration_ms: 5_000,
        size_bytes: 1234,
        video_codec: Some("H.264".to_owned()),
        audio_codec: Some("AAC".to_owned()),
        width: Some(320),
        height: Some(240),
        ..NewVideo::default()
    }
}

async fn an_upload_counts_its_bytes_and_completes_exactly_once(store: Store) {
    let alice = user(&store, "alice").await;
    let ch = channel(&store, &alice, "alice").await;
    let created = store
        .create_upload(new_upload("a1", &alice, &ch, 100))
        .await
        .unwrap();
    let id = created.id;
    assert_eq!(
        (
            created.state,
            created.received_bytes,
            created.length_bytes,
            created.channel_slug.as_str(),
            created.visibility
        ),
        (
            UploadState::Uploading,
            0,
            100,
            "alice",
            Visibility::Unlisted
        )
    );
    assert_eq!(store.upload_by_id(id).await.unwrap(), Some(created));
    assert_eq!(store.count_unfinished_uploads(alice.id).await.unwrap(), 1);
    // Ids are never reused, even after a deletion.
    let other = store
        .create_upload(new_upload("a2", &alice, &ch, 5))
        .await
        .unwrap();
    assert!(store.delete_upload(other.id).await.unwrap());
    let third = store
        .create_upload(new_upload("a3", &alice, &ch, 5))
        .await
        .unwrap();
    assert!(third.id > other.id && other.id > id);
    assert!(store.delete_upload(third.id).await.unwrap());

    let later = Utc::now() + Duration::hours(48);
    let part = store
        .set_upload_received(id, 40, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (part.state, part.received_bytes),
        (UploadState::Uploading, 40)
    );
    assert!(part.expires_at > Utc::now() + Duration::hours(47));
    // More than the length is refused and changes nothing.
    assert_eq!(
        store.set_upload_received(id, 101, later).await.unwrap(),
        None
    );
    let done = store
        .set_upload_received(id, 100, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.state, UploadState::Processing);
    assert_eq!(store.count_unfinished_uploads(alice.id).await.unwrap(), 0);
    // Once processing, no more bytes count: a second completion sees nothing.
    assert_eq!(
        store.set_upload_received(id, 100, later).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .uploads_in_state(UploadState::Processing)
            .await
            .unwrap()
            .iter()
            .map(|u| u.id)
            .collect::<Vec<_>>(),
        [id]
    );

    let video = store
        .complete_upload(
            id,
            video_of(&ch, "alice/upload-a1"),
            Some("alice/upload-a1/thumb.jpg"),
            later,
        )
        .await
        .unwrap();
    assert_eq!(
        (
            video.recording_id,
            video.path.as_str(),
            video.duration_ms,
            video.width
        ),
        (None, "alice/upload-a1", 5_000, Some(320))
    );
    assert_eq!(
        video.thumbnail.as_deref(),
        Some("alice/upload-a1/thumb.jpg")
    );
    let ready = store.upload_by_id(id).await.unwrap().unwrap();
    assert_eq!(
        (ready.state, ready.video_id),
        (UploadState::Ready, Some(video.id))
    );
    // Completing twice adds no second video.
    let twice = store
        .complete_upload(id, video_of(&ch, "alice/upload-a1-again"), None, later)
        .await;
    assert!(
        matches!(twice, Err(StoreError::NotFound { .. })),
        "{twice:?}"
    );
    assert!(store.video_by_id(video.id).await.unwrap().is_some());
    assert_eq!(
        store.video_by_id(video.id + 1).await.unwrap(),
        None,
        "exactly one video was made"
    );
}

async fn a_completion_for_a_deleted_upload_adds_no_video(store: Store) {
    let alice = user(&store, "alice").await;
    let ch = channel(&store, &alice, "alice").await;
    let id = store
        .create_upload(new_upload("gone", &alice, &ch, 10))
        .await
        .unwrap()
        .id;
    let later = Utc::now() + Duration::hours(1);
    store
        .set_upload_received(id, 10, later)
        .await
        .unwrap()
        .unwrap();
    assert!(store.delete_upload(id).await.unwrap());
    assert!(!store.delete_upload(id).await.unwrap());
    let result = store
        .complete_upload(id, video_of(&ch, "alice/upload-gone"), None, later)
        .await;
    assert!(
        matches!(result, Err(StoreError::NotFound { .. })),
        "{result:?}"
    );
    // The insert was rolled back with the failed update: the schema's first video id is
    // unused.
    assert_eq!(store.video_by_id(1).await.unwrap(), None);
}

async fn a_failed_upload_keeps_its_reason_until_it_expires(store: Store) {
    let alice = user(&store, "alice").await;
    let ch = channel(&store, &alice, "alice").await;
    let id = store
        .create_upload(new_upload("bad", &alice, &ch, 10))
        .await
        .unwrap()
        .id;
    // Only a processing upload can fail.
    let soon = Utc::now() + Duration::hours(1);
    assert!(!store.fail_upload(id, "nope", soon).await.unwrap());
    store
        .set_upload_received(id, 10, soon)
        .await
        .unwrap()
        .unwrap();
    // Being processed, it is never swept, whatever its expiry.
    let far = Utc::now() + Duration::days(3);
    assert!(store.expired_uploads(far, 10).await.unwrap().is_empty());
    assert!(
        store
            .fail_upload(id, "video codec VP9 is not supported", soon)
            .await
            .unwrap()
    );
    let failed = store.upload_by_id(id).await.unwrap().unwrap();
    assert_eq!(
        (failed.state, failed.error.as_deref(), failed.video_id),
        (
            UploadState::Failed,
            Some("video codec VP9 is not supported"),
            None
        )
    );
    assert!(
        store
            .expired_uploads(Utc::now(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let expired = store.expired_uploads(far, 10).await.unwrap();
    assert_eq!(expired.iter().map(|u| u.id).collect::<Vec<_>>(), [id]);
}

async fn uploads_need_their_user_and_channel(store: Store) {
    let alice = user(&store, "alice").await;
    let ch = channel(&store, &alice, "alice").await;
    let mut orphan = new_upload("x", &alice, &ch, 10);
    orphan.channel_id = ch.id + 100;
    let result = store.create_upload(orphan).await;
    assert!(
        matches!(result, Err(StoreError::NotFound { .. })),
        "{result:?}"
    );
    // A channel's deletion takes its uploads with it.
    let id = store
        .create_upload(new_upload("y", &alice, &ch, 10))
        .await
        .unwrap()
        .id;
    store.delete_channel(ch.id).await.unwrap();
    assert_eq!(store.upload_by_id(id).await.unwrap(), None);
}

store_test!(
    an_upload_counts_its_bytes_and_completes_exactly_once,
    a_completion_for_a_deleted_upload_adds_no_video,
    a_failed_upload_keeps_its_reason_until_it_expires,
    uploads_need_their_user_and_channel,
);
