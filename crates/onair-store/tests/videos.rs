//! The VOD catalogue on both backends: videos, the replay backfill, search and visibility,
//! categories, comments and view counting.

use chrono::{DateTime, Utc};
use onair_store::{
    Channel, NewChannel, NewLiveSession, NewRecording, NewUser, NewVideo, NewVideoComment, Page,
    RecordingState, Role, Store, StoreError, User, VideoSearch, VideoSort, VideoUpdate, Visibility,
    store_test,
};

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("a time in range")
}

async fn user(store: &Store, name: &str, role: Role) -> User {
    store
        .create_user(NewUser {
            username: name.to_owned(),
            password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1${name}"),
            role,
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

fn video(channel: &Channel, title: &str, visibility: Visibility) -> NewVideo {
    NewVideo {
        channel_id: channel.id,
        path: format!("{}/{title}", channel.slug),
        title: title.to_owned(),
        visibility,
        duration_ms: 12_000,
        size_bytes: 4096,
        video_codec: Some("h264".to_owned()),
        audio_codec: Some("aac".to_owned()),
        width: Some(1280),
        height: Some(720),
        ..NewVideo::default()
    }
}

/// A finished recording of a live session with known codecs.
async fn finished_recording(store: &Store, channel: &Channel, path: &str, secs: i64) -> i64 {
    let session = store
        .start_live_session(NewLiveSession {
            channel_id: channel.id,
            started_at: at(secs),
            publisher_addr: "203.0.113.7:50312".to_owned(),
            video_codec: Some("h264".to_owned()),
            audio_codec: Some("aac".to_owned()),
        })
        .await
        .expect("live session");
    let recording = store
        .create_recording(NewRecording {
            channel_id: channel.id,
            live_session_id: Some(session),
            title: format!("{path} title"),
            path: path.to_owned(),
            started_at: at(secs),
        })
        .await
        .expect("recording");
    assert!(
        store
            .finish_recording(
                recording.id,
                RecordingState::Finished,
                at(secs + 60),
                60_000,
                1_000_000
            )
            .await
            .unwrap()
    );
    recording.id
}

store_test!(
    videos_are_created_found_updated_and_deleted,
    finished_replays_become_videos_once,
    search_filters_sorts_and_hides_unlisted_and_others_private,
    the_latest_replay_skips_private_and_unlisted_ones,
    categories_are_managed_and_clear_from_videos_when_deleted,
    comments_thread_one_level_and_are_edited_and_deleted,
    views_count_once_per_viewer_per_hour,
);

async fn videos_are_created_found_updated_and_deleted(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let ch = channel(&store, &alice, "alice").await;
    let v = store
        .create_video(video(&ch, "first", Visibility::Public))
        .await
        .unwrap();
    assert_eq!(v.owner_id, alice.id);
    assert_eq!(v.channel_slug, "alice");
    assert_eq!(v.visibility, Visibility::Public);
    assert_eq!((v.width, v.height), (Some(1280), Some(720)));
    assert_eq!(v.thumbnail, None);
    assert_eq!(v.view_count, 0);
    assert_eq!(store.video_by_id(v.id).await.unwrap(), Some(v.clone()));

    let games = store.create_video_category("games", "Games").await.unwrap();
    let updated = store
        .update_video(
            v.id,
            VideoUpdate {
                title: Some("renamed".into()),
                description: Some("a run".into()),
                category_id: Some(Some(games.id)),
                tags: Some(vec!["Speedrun".into()]),
                visibility: Some(Visibility::Private),
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.title, "renamed");
    assert_eq!(updated.description, "a run");
    assert_eq!(updated.category.as_deref(), Some("games"));
    assert_eq!(updated.tags, vec!["Speedrun".to_owned()]);
    assert_eq!(updated.visibility, Visibility::Private);
    assert!(!updated.visible_to(None));
    assert!(updated.visible_to(Some((alice.id, false))));
    assert!(!updated.visible_to(Some((alice.id + 1, false))));
    assert!(updated.visible_to(Some((alice.id + 1, true))));

    // `None` keeps; `Some(None)` clears the category.
    let kept = store
        .update_video(
            v.id,
            VideoUpdate {
                category_id: Some(None),
                ..VideoUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(kept.title, "renamed");
    assert_eq!(kept.category, None);
    assert!(matches!(
        store
            .update_video(
                v.id,
                VideoUpdate {
                    category_id: Some(Some(9999)),
                    ..VideoUpdate::default()
                }
            )
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.update_video(9999, VideoUpdate::default()).await,
        Err(StoreError::NotFound { .. })
    ));

    assert!(
        store
            .set_video_thumbnail(v.id, Some("alice/first/thumb.jpg"))
            .await
            .unwrap()
    );
    assert_eq!(
        store.video_by_id(v.id).await.unwrap().unwrap().thumbnail,
        Some("alice/first/thumb.jpg".to_owned())
    );
    assert!(!store.set_video_thumbnail(9999, None).await.unwrap());

    let deleted = store.delete_video(v.id).await.unwrap().unwrap();
    assert_eq!(deleted.id, v.id);
    assert_eq!(store.video_by_id(v.id).await.unwrap(), None);
    assert_eq!(store.delete_video(v.id).await.unwrap(), None);

    let mut missing = video(&ch, "x", Visibility::Public);
    missing.channel_id = 9999;
    assert!(matches!(
        store.create_video(missing).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn finished_replays_become_videos_once(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let ch = channel(&store, &alice, "alice").await;
    let old = finished_recording(&store, &ch, "alice/old", 0).await;
    let recording = store
        .create_recording(NewRecording {
            channel_id: ch.id,
            live_session_id: None,
            title: "still on".into(),
            path: "alice/live".into(),
            started_at: at(500),
        })
        .await
        .unwrap();

    // Only finished recordings become videos, and only once however often it runs.
    assert_eq!(store.backfill_replay_videos().await.unwrap(), 1);
    assert_eq!(store.backfill_replay_videos().await.unwrap(), 0);
    let v = store.video_by_recording(old).await.unwrap().unwrap();
    assert_eq!(v.path, "alice/old");
    assert_eq!(v.title, "alice/old title");
    assert_eq!(v.duration_ms, 60_000);
    assert_eq!(v.size_bytes, 1_000_000);
    assert_eq!(v.video_codec.as_deref(), Some("h264"));
    assert_eq!(v.audio_codec.as_deref(), Some("aac"));
    assert_eq!(v.created_at, at(60));
    assert_eq!(v.visibility, Visibility::Public);
    assert_eq!(store.ensure_replay_video(recording.id).await.unwrap(), None);

    let new = finished_recording(&store, &ch, "alice/new", 1000).await;
    let made = store.ensure_replay_video(new).await.unwrap().unwrap();
    assert_eq!(made.recording_id, Some(new));
    assert_eq!(store.ensure_replay_video(new).await.unwrap(), Some(made));
    assert!(matches!(
        store
            .create_video(NewVideo {
                recording_id: Some(new),
                ..video(&ch, "dup", Visibility::Public)
            })
            .await,
        Err(StoreError::Conflict { .. })
    ));

    // Deleting the recording takes its video with it.
    store.delete_recording(old).await.unwrap();
    assert_eq!(store.video_by_recording(old).await.unwrap(), None);
}

async fn search_filters_sorts_and_hides_unlisted_and_others_private(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let bob = user(&store, "bob", Role::Streamer).await;
    let admin = user(&store, "root", Role::Admin).await;
    let a = channel(&store, &alice, "alice").await;
    let b = channel(&store, &bob, "bob").await;
    let games = store.create_video_category("games", "Games").await.unwrap();

    let public = store
        .create_video(video(&a, "Mario run", Visibility::Public))
        .await
        .unwrap();
    let unlisted = store
        .create_video(video(&a, "secret link", Visibility::Unlisted))
        .await
        .unwrap();
    let private = store
        .create_video(video(&a, "draft", Visibility::Private))
        .await
        .unwrap();
    let bobs = store
        .create_video(video(&b, "cooking", Visibility::Public))
        .await
        .unwrap();
    store
        .update_video(
            bobs.id,
            VideoUpdate {
                category_id: Some(Some(games.id)),
                tags: Some(vec!["Pasta".into(), "en".into()]),
                description: Some("Carbonara 100%".into()),
                ..VideoUpdate::default()
            },
        )
        .await
        .unwrap();

    let ids = |search: VideoSearch| {
        let store = store.clone();
        async move {
            let (rows, count) = store.search_videos(&search, Page::first(10)).await.unwrap();
            assert_eq!(count, rows.len() as u64);
            rows.into_iter().map(|v| v.id).collect::<Vec<_>>()
        }
    };

    // Newest first; the unlisted and private ones are not listed to strangers.
    assert_eq!(ids(VideoSearch::default()).await, vec![bobs.id, public.id]);
    // Alice sees her own private video; nobody is shown an unlisted one.
    assert_eq!(
        ids(VideoSearch {
            viewer: Some(alice.id),
            ..VideoSearch::default()
        })
        .await,
        vec![bobs.id, private.id, public.id]
    );
    assert_eq!(
        ids(VideoSearch {
            viewer: Some(bob.id),
            ..VideoSearch::default()
        })
        .await,
        vec![bobs.id, public.id]
    );
    assert_eq!(
        ids(VideoSearch {
            viewer: Some(admin.id),
            admin: true,
            ..VideoSearch::default()
        })
        .await,
        vec![bobs.id, private.id, public.id]
    );
    assert!(!ids(VideoSearch::default()).await.contains(&unlisted.id));

    // Text matches title, description and tags, ignoring case; `%` is literal.
    let text = |t: &str| VideoSearch {
        text: Some(t.to_owned()),
        ..VideoSearch::default()
    };
    assert_eq!(ids(text("MARIO")).await, vec![public.id]);
    assert_eq!(ids(text("100%")).await, vec![bobs.id]);
    assert_eq!(ids(text("pas")).await, vec![bobs.id]);
    assert_eq!(ids(text("0%c")).await, Vec::<i64>::new());
    assert_eq!(
        ids(VideoSearch {
            tag: Some("pasta".into()),
            ..VideoSearch::default()
        })
        .await,
        vec![bobs.id]
    );
    assert_eq!(
        ids(VideoSearch {
            tag: Some("pas".into()),
            ..VideoSearch::default()
        })
        .await,
        Vec::<i64>::new()
    );
    assert_eq!(
        ids(VideoSearch {
            category: Some("games".into()),
            ..VideoSearch::default()
        })
        .await,
        vec![bobs.id]
    );
    assert_eq!(
        ids(VideoSearch {
            channel_id: Some(a.id),
            ..VideoSearch::default()
        })
        .await,
        vec![public.id]
    );

    // Most viewed first.
    store
        .record_video_view(public.id, "u:1", at(0))
        .await
        .unwrap();
    assert_eq!(
        ids(VideoSearch {
            sort: VideoSort::Views,
            ..VideoSearch::default()
        })
        .await,
        vec![public.id, bobs.id]
    );

    // Paging keeps the total.
    let (rows, count) = store
        .search_videos(&VideoSearch::default(), Page::new(1, 1))
        .await
        .unwrap();
    assert_eq!(count, 2);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, public.id);
}

async fn the_latest_replay_skips_private_and_unlisted_ones(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let ch = channel(&store, &alice, "alice").await;
    assert_eq!(store.latest_public_replay(ch.id).await.unwrap(), None);
    let first = finished_recording(&store, &ch, "alice/1", 0).await;
    let first = store.ensure_replay_video(first).await.unwrap().unwrap();
    // An upload is not a replay, however new.
    store
        .create_video(video(&ch, "upload", Visibility::Public))
        .await
        .unwrap();
    assert_eq!(
        store
            .latest_public_replay(ch.id)
            .await
            .unwrap()
            .map(|v| v.id),
        Some(first.id)
    );
    let second = finished_recording(&store, &ch, "alice/2", 100).await;
    let second = store.ensure_replay_video(second).await.unwrap().unwrap();
    assert_eq!(
        store
            .latest_public_replay(ch.id)
            .await
            .unwrap()
            .map(|v| v.id),
        Some(second.id)
    );
    store
        .update_video(
            second.id,
            VideoUpdate {
                visibility: Some(Visibility::Private),
                ..VideoUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .latest_public_replay(ch.id)
            .await
            .unwrap()
            .map(|v| v.id),
        Some(first.id)
    );
    // Unlisted is served by its URL but never listed, and the link lists it.
    store
        .update_video(
            first.id,
            VideoUpdate {
                visibility: Some(Visibility::Unlisted),
                ..VideoUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(store.latest_public_replay(ch.id).await.unwrap(), None);
}

async fn categories_are_managed_and_clear_from_videos_when_deleted(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let ch = channel(&store, &alice, "alice").await;
    let music = store.create_video_category("music", "Music").await.unwrap();
    let art = store.create_video_category("art", "Art").await.unwrap();
    assert!(matches!(
        store.create_video_category("music", "Other").await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        store.video_categories().await.unwrap(),
        vec![art.clone(), music.clone()]
    );
    assert_eq!(
        store.video_category_by_slug("art").await.unwrap(),
        Some(art.clone())
    );
    let renamed = store
        .update_video_category(art.id, None, Some("Fine art"))
        .await
        .unwrap();
    assert_eq!(
        (renamed.slug.as_str(), renamed.name.as_str()),
        ("art", "Fine art")
    );
    assert!(matches!(
        store
            .update_video_category(art.id, Some("music"), None)
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store.update_video_category(9999, None, Some("x")).await,
        Err(StoreError::NotFound { .. })
    ));

    let v = store
        .create_video(video(&ch, "song", Visibility::Public))
        .await
        .unwrap();
    store
        .update_video(
            v.id,
            VideoUpdate {
                category_id: Some(Some(music.id)),
                ..VideoUpdate::default()
            },
        )
        .await
        .unwrap();
    assert!(store.delete_video_category(music.id).await.unwrap());
    assert!(!store.delete_video_category(music.id).await.unwrap());
    let v = store.video_by_id(v.id).await.unwrap().unwrap();
    assert_eq!((v.category_id, v.category), (None, None));
}

async fn comments_thread_one_level_and_are_edited_and_deleted(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let bob = user(&store, "bob", Role::Viewer).await;
    let ch = channel(&store, &alice, "alice").await;
    let v = store
        .create_video(video(&ch, "one", Visibility::Public))
        .await
        .unwrap();
    let other = store
        .create_video(video(&ch, "two", Visibility::Public))
        .await
        .unwrap();
    let comment = |video_id, user_id, parent_id, text: &str| NewVideoComment {
        video_id,
        user_id,
        parent_id,
        text: text.to_owned(),
    };

    let top = store
        .create_video_comment(comment(v.id, bob.id, None, "nice"))
        .await
        .unwrap();
    assert_eq!(top.username, "bob");
    assert_eq!(top.parent_id, None);
    assert_eq!(top.reply_count, 0);
    let reply = store
        .create_video_comment(comment(v.id, alice.id, Some(top.id), "thanks"))
        .await
        .unwrap();
    assert_eq!(reply.parent_id, Some(top.id));

    // No reply to a reply, nor to a comment of another video, nor on a missing video.
    assert!(matches!(
        store
            .create_video_comment(comment(v.id, bob.id, Some(reply.id), "deeper"))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .create_video_comment(comment(other.id, bob.id, Some(top.id), "elsewhere"))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .create_video_comment(comment(9999, bob.id, None, "nowhere"))
            .await,
        Err(StoreError::NotFound { .. })
    ));

    let (tops, count) = store
        .list_video_comments(v.id, None, Page::first(10))
        .await
        .unwrap();
    assert_eq!(count, 1);
    assert_eq!(tops[0].id, top.id);
    assert_eq!(tops[0].reply_count, 1);
    let (replies, count) = store
        .list_video_comments(v.id, Some(top.id), Page::first(10))
        .await
        .unwrap();
    assert_eq!(count, 1);
    assert_eq!(replies[0].id, reply.id);

    let edited = store
        .edit_video_comment(top.id, "very nice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(edited.text, "very nice");
    assert!(edited.edited_at.is_some());

    let deleted = store
        .delete_video_comment(reply.id, alice.id)
        .await
        .unwrap()
        .unwrap();
    assert!(deleted.deleted_at.is_some());
    assert_eq!(
        store
            .delete_video_comment(reply.id, alice.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.edit_video_comment(reply.id, "x").await.unwrap(), None);
    let (tops, _) = store
        .list_video_comments(v.id, None, Page::first(10))
        .await
        .unwrap();
    assert_eq!(tops[0].reply_count, 0);
    let (replies, count) = store
        .list_video_comments(v.id, Some(top.id), Page::first(10))
        .await
        .unwrap();
    assert_eq!((replies.len(), count), (0, 0));
    assert!(
        store
            .video_comment_by_id(reply.id)
            .await
            .unwrap()
            .unwrap()
            .deleted_at
            .is_some()
    );

    // Deleting the video takes its comments.
    store.delete_video(v.id).await.unwrap();
    assert_eq!(store.video_comment_by_id(top.id).await.unwrap(), None);
}

async fn views_count_once_per_viewer_per_hour(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let ch = channel(&store, &alice, "alice").await;
    let v = store
        .create_video(video(&ch, "one", Visibility::Public))
        .await
        .unwrap();
    let hour = 3600 * 10;
    assert!(
        store
            .record_video_view(v.id, "u:7", at(hour))
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_video_view(v.id, "u:7", at(hour + 1800))
            .await
            .unwrap()
    );
    assert!(
        store
            .record_video_view(v.id, "a:ff00", at(hour + 10))
            .await
            .unwrap()
    );
    assert!(
        store
            .record_video_view(v.id, "u:7", at(hour + 3600))
            .await
            .unwrap()
    );
    assert_eq!(
        store.video_by_id(v.id).await.unwrap().unwrap().view_count,
        3
    );
    // The hour rolls from the last counted view; a clock hour is no boundary. at(2800) is
    // a whole Unix hour, so these straddle one a minute apart.
    assert_eq!(at(2800).timestamp() % 3600, 0);
    let mut counted = Vec::new();
    for secs in [2790, 2850, 2790 + 3599, 2790 + 3600, 2790 + 3601] {
        counted.push(
            store
                .record_video_view(v.id, "u:8", at(secs))
                .await
                .unwrap(),
        );
    }
    assert_eq!(counted, [true, false, false, true, false]);
    assert_eq!(
        store.video_by_id(v.id).await.unwrap().unwrap().view_count,
        5
    );
    assert!(matches!(
        store.record_video_view(9999, "u:7", at(0)).await,
        Err(StoreError::NotFound { .. })
    ));
}
