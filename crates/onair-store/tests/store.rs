//! The storage suite: every case runs against PostgreSQL and SQLite through `store_test!`.
//!
//! `cargo test -p onair-store` runs the SQLite half everywhere and the PostgreSQL half when
//! `ONAIR_TEST_POSTGRES` names a database (CI sets it; see `onair_store::testing`).

use chrono::{DateTime, SubsecRound, Utc};
use onair_store::{
    CategoryCount, ChannelSearch, ChannelUpdate, NewChannel, NewLiveSession, NewRecording, NewUser,
    Page, RecordingState, Role, Store, StoreError, User, store_test,
};
use serde_json::json;

fn at(secs: i64, nanos: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, nanos).expect("a time in range")
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

fn new_channel(owner_id: i64, slug: &str) -> NewChannel {
    NewChannel {
        slug: slug.to_owned(),
        title: format!("{slug} live"),
        owner_id,
        category: "games".to_owned(),
        tags: vec!["speedrun".to_owned(), "en".to_owned()],
    }
}

fn new_session(channel_id: i64, started_at: DateTime<Utc>) -> NewLiveSession {
    NewLiveSession {
        channel_id,
        started_at,
        publisher_addr: "203.0.113.7:50312".to_owned(),
        video_codec: Some("h264".to_owned()),
        audio_codec: Some("aac".to_owned()),
    }
}

store_test!(
    migrations_are_idempotent_and_the_store_answers,
    users_are_created_and_found_by_id_and_name,
    usernames_conflict_regardless_of_case,
    roles_bans_and_passwords_change_and_unknown_users_are_not_found,
    users_are_searched_and_paged,
    channels_are_created_found_updated_and_deleted,
    channel_slugs_conflict_and_owners_must_exist,
    channels_are_listed_by_owner_and_paged,
    stream_keys_are_recorded_touched_and_revoked_once,
    stream_key_jtis_conflict_and_channels_must_exist,
    stream_keys_are_paged_oldest_first_per_channel,
    deleting_a_channel_deletes_its_keys_and_sessions,
    live_sessions_end_once_and_list_newest_first,
    publish_grants_join_key_channel_and_owner,
    recordings_progress_finish_once_and_list_newest_first,
    recordings_paths_conflict_and_channels_must_exist,
    unfinished_and_ended_recordings_and_deletion,
    recent_recordings_span_channels_newest_first_without_failed_ones,
    live_session_codecs_are_set_once_known,
    auth_sessions_are_recorded_revoked_and_pruned,
    open_live_sessions_are_those_never_ended,
    audit_entries_list_newest_first_with_their_detail,
    audit_actors_must_exist,
    settings_are_stored_only_when_absent,
    settings_are_replaced_by_set_setting,
    concurrent_set_if_absent_agree_on_one_value,
    times_round_trip_to_the_microsecond,
    text_and_tags_round_trip_unchanged,
    channels_are_searched_by_text_category_tag_and_id,
    channel_search_text_is_literal_and_paged,
    categories_are_counted_ignoring_case_fullest_first,
);

async fn migrations_are_idempotent_and_the_store_answers(store: Store) {
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    assert_eq!(store.count_users().await.unwrap(), 0);
    assert_eq!(store.open_live_sessions().await.unwrap(), vec![]);
}

async fn users_are_created_and_found_by_id_and_name(store: Store) {
    let before = Utc::now().trunc_subsecs(6);
    let alice = user(&store, "Alice", Role::Streamer).await;
    let after = Utc::now();
    assert_eq!(alice.username, "Alice");
    assert_eq!(alice.role, Role::Streamer);
    assert!(!alice.banned);
    assert!(alice.password_hash.starts_with("$argon2id$"));
    assert!(before <= alice.created_at && alice.created_at <= after);

    assert_eq!(
        store.user_by_id(alice.id).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store.user_by_name("Alice").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store.user_by_name("aLICE").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(store.user_by_name("alic").await.unwrap(), None);
    assert_eq!(store.user_by_id(alice.id + 1000).await.unwrap(), None);

    let bob = user(&store, "bob", Role::Viewer).await;
    assert!(bob.id > alice.id);
    assert_eq!(store.count_users().await.unwrap(), 2);
}

async fn usernames_conflict_regardless_of_case(store: Store) {
    user(&store, "alice", Role::Viewer).await;
    for taken in ["alice", "ALICE"] {
        let error = store
            .create_user(NewUser {
                username: taken.to_owned(),
                password_hash: "$argon2id$x".to_owned(),
                role: Role::Admin,
            })
            .await
            .unwrap_err();
        match error {
            StoreError::Conflict { what, constraint } => {
                assert_eq!(what, format!("username {taken:?}"));
                assert!(constraint.contains("users"), "{constraint}");
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
    assert_eq!(store.count_users().await.unwrap(), 1);
}

async fn roles_bans_and_passwords_change_and_unknown_users_are_not_found(store: Store) {
    let carol = user(&store, "carol", Role::Viewer).await;

    let promoted = store.set_user_role(carol.id, Role::Admin).await.unwrap();
    assert_eq!(promoted.role, Role::Admin);
    let banned = store.set_user_banned(carol.id, true).await.unwrap();
    assert!(banned.banned);
    assert_eq!(banned.role, Role::Admin);
    let stored = store.user_by_id(carol.id).await.unwrap().unwrap();
    assert!(stored.banned);
    assert_eq!(stored.role, Role::Admin);
    assert!(!store.set_user_banned(carol.id, false).await.unwrap().banned);
    let rehashed = store
        .set_user_password_hash(carol.id, "$argon2id$new")
        .await
        .unwrap();
    assert_eq!(rehashed.password_hash, "$argon2id$new");
    assert_eq!(
        store
            .user_by_name("carol")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$argon2id$new"
    );

    let missing = carol.id + 1000;
    for error in [
        store
            .set_user_role(missing, Role::Viewer)
            .await
            .unwrap_err(),
        store.set_user_banned(missing, true).await.unwrap_err(),
        store
            .set_user_password_hash(missing, "$argon2id$x")
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(&error, StoreError::NotFound { what } if *what == format!("user {missing}")),
            "{error:?}"
        );
    }
}

async fn users_are_searched_and_paged(store: Store) {
    for name in [
        "anna", "Joanna", "bob", "annabel", "50%_off", "500_off", "carl",
    ] {
        user(&store, name, Role::Viewer).await;
    }
    let names = |users: Vec<User>| users.into_iter().map(|u| u.username).collect::<Vec<_>>();

    let (all, total) = store.list_users(None, Page::default()).await.unwrap();
    assert_eq!(total, 7);
    assert_eq!(
        names(all),
        [
            "anna", "Joanna", "bob", "annabel", "50%_off", "500_off", "carl"
        ]
    );

    let (found, total) = store
        .list_users(Some("ANN"), Page::default())
        .await
        .unwrap();
    assert_eq!(
        (names(found), total),
        (
            vec!["anna", "Joanna", "annabel"]
                .into_iter()
                .map(String::from)
                .collect(),
            3
        )
    );

    // Wildcards in the search match themselves.
    let (found, total) = store.list_users(Some("%_"), Page::default()).await.unwrap();
    assert_eq!((names(found), total), (vec!["50%_off".to_owned()], 1));
    let (found, total) = store.list_users(Some("0_"), Page::default()).await.unwrap();
    assert_eq!((names(found), total), (vec!["500_off".to_owned()], 1));
    let (found, total) = store
        .list_users(Some("zed"), Page::default())
        .await
        .unwrap();
    assert_eq!((found.len(), total), (0, 0));

    // Pages: in the middle, running past the end, entirely past it, and empty.
    let (page, total) = store.list_users(None, Page::new(2, 2)).await.unwrap();
    assert_eq!(
        (names(page), total),
        (vec!["bob".to_owned(), "annabel".to_owned()], 7)
    );
    let (page, total) = store.list_users(None, Page::new(5, 10)).await.unwrap();
    assert_eq!(
        (names(page), total),
        (vec!["500_off".to_owned(), "carl".to_owned()], 7)
    );
    let (page, total) = store.list_users(None, Page::new(7, 10)).await.unwrap();
    assert_eq!((page.len(), total), (0, 7));
    let (page, total) = store
        .list_users(None, Page::new(u32::MAX, u32::MAX))
        .await
        .unwrap();
    assert_eq!((page.len(), total), (0, 7));
    let (page, total) = store.list_users(Some("ann"), Page::first(0)).await.unwrap();
    assert_eq!((page.len(), total), (0, 3));
    let (page, total) = store
        .list_users(Some("ann"), Page::new(1, 1))
        .await
        .unwrap();
    assert_eq!((names(page), total), (vec!["Joanna".to_owned()], 3));
}

async fn channels_are_created_found_updated_and_deleted(store: Store) {
    let owner = user(&store, "dora", Role::Streamer).await;
    let before = Utc::now().trunc_subsecs(6);
    let channel = store
        .create_channel(new_channel(owner.id, "dora"))
        .await
        .unwrap();
    assert_eq!(channel.slug, "dora");
    assert_eq!(channel.title, "dora live");
    assert_eq!(channel.owner_id, owner.id);
    assert_eq!(channel.category, "games");
    assert_eq!(channel.tags, ["speedrun", "en"]);
    assert!(before <= channel.created_at);

    assert_eq!(
        store.channel_by_id(channel.id).await.unwrap(),
        Some(channel.clone())
    );
    assert_eq!(
        store.channel_by_slug("dora").await.unwrap(),
        Some(channel.clone())
    );
    assert_eq!(store.channel_by_slug("Dora").await.unwrap(), None);
    assert_eq!(store.channel_by_id(channel.id + 1000).await.unwrap(), None);

    // Only what the update sets changes.
    let unchanged = store
        .update_channel(channel.id, ChannelUpdate::default())
        .await
        .unwrap();
    assert_eq!(unchanged, channel);
    let retitled = store
        .update_channel(
            channel.id,
            ChannelUpdate {
                title: Some("Dora plays".to_owned()),
                ..ChannelUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(retitled.title, "Dora plays");
    assert_eq!(
        (retitled.category.as_str(), retitled.tags.clone()),
        ("games", channel.tags.clone())
    );
    let retagged = store
        .update_channel(
            channel.id,
            ChannelUpdate {
                title: None,
                category: Some(String::new()),
                tags: Some(vec!["chill".to_owned()]),
            },
        )
        .await
        .unwrap();
    assert_eq!(retagged.title, "Dora plays");
    assert_eq!(retagged.category, "");
    assert_eq!(retagged.tags, ["chill"]);
    assert_eq!(
        store.channel_by_id(channel.id).await.unwrap(),
        Some(retagged)
    );

    let missing = channel.id + 1000;
    let error = store
        .update_channel(missing, ChannelUpdate::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::NotFound { what } if *what == format!("channel {missing}")),
        "{error:?}"
    );

    assert!(store.delete_channel(channel.id).await.unwrap());
    assert!(!store.delete_channel(channel.id).await.unwrap());
    assert_eq!(store.channel_by_slug("dora").await.unwrap(), None);
}

async fn channel_slugs_conflict_and_owners_must_exist(store: Store) {
    let owner = user(&store, "erin", Role::Streamer).await;
    store
        .create_channel(new_channel(owner.id, "erin"))
        .await
        .unwrap();
    let error = store
        .create_channel(new_channel(owner.id, "erin"))
        .await
        .unwrap_err();
    match error {
        StoreError::Conflict { what, constraint } => {
            assert_eq!(what, "channel slug \"erin\"");
            assert!(constraint.contains("slug"), "{constraint}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    let missing = owner.id + 1000;
    let error = store
        .create_channel(new_channel(missing, "ghost"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::NotFound { what } if *what == format!("user {missing}")),
        "{error:?}"
    );
    assert_eq!(
        store.list_channels(None, Page::default()).await.unwrap().1,
        1
    );
}

async fn channels_are_listed_by_owner_and_paged(store: Store) {
    let fay = user(&store, "fay", Role::Streamer).await;
    let gus = user(&store, "gus", Role::Streamer).await;
    for (owner, slug) in [
        (&fay, "fay-1"),
        (&gus, "gus-1"),
        (&fay, "fay-2"),
        (&fay, "fay-3"),
    ] {
        store
            .create_channel(new_channel(owner.id, slug))
            .await
            .unwrap();
    }
    let slugs = |page: (Vec<onair_store::Channel>, u64)| {
        (
            page.0.into_iter().map(|c| c.slug).collect::<Vec<_>>(),
            page.1,
        )
    };

    assert_eq!(
        slugs(store.list_channels(None, Page::default()).await.unwrap()),
        (
            vec![
                "fay-1".into(),
                "gus-1".into(),
                "fay-2".into(),
                "fay-3".into()
            ],
            4
        )
    );
    assert_eq!(
        slugs(
            store
                .list_channels(Some(fay.id), Page::default())
                .await
                .unwrap()
        ),
        (vec!["fay-1".into(), "fay-2".into(), "fay-3".into()], 3)
    );
    assert_eq!(
        slugs(
            store
                .list_channels(Some(gus.id), Page::default())
                .await
                .unwrap()
        ),
        (vec!["gus-1".into()], 1)
    );
    assert_eq!(
        slugs(
            store
                .list_channels(Some(fay.id), Page::new(1, 1))
                .await
                .unwrap()
        ),
        (vec!["fay-2".into()], 3)
    );
    assert_eq!(
        slugs(
            store
                .list_channels(Some(fay.id), Page::new(3, 5))
                .await
                .unwrap()
        ),
        (vec![], 3)
    );
    assert_eq!(
        slugs(
            store
                .list_channels(Some(gus.id + 1000), Page::default())
                .await
                .unwrap()
        ),
        (vec![], 0)
    );
}

async fn stream_keys_are_recorded_touched_and_revoked_once(store: Store) {
    let owner = user(&store, "hal", Role::Streamer).await;
    let channel = store
        .create_channel(new_channel(owner.id, "hal"))
        .await
        .unwrap();
    let other = store
        .create_channel(new_channel(owner.id, "hal-2"))
        .await
        .unwrap();

    let key = store
        .create_stream_key(channel.id, "jti-1", "OBS at home")
        .await
        .unwrap();
    assert_eq!(
        (key.channel_id, key.jti.as_str(), key.label.as_str()),
        (channel.id, "jti-1", "OBS at home")
    );
    assert_eq!((key.revoked_at, key.last_used_at), (None, None));
    assert!(!key.is_revoked());
    let second = store
        .create_stream_key(channel.id, "jti-2", "")
        .await
        .unwrap();
    store
        .create_stream_key(other.id, "jti-3", "elsewhere")
        .await
        .unwrap();

    assert_eq!(
        store.stream_key_by_jti("jti-1").await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(store.stream_key_by_jti("jti-404").await.unwrap(), None);
    assert_eq!(
        store.list_stream_keys(channel.id).await.unwrap(),
        vec![key.clone(), second.clone()]
    );
    assert_eq!(
        store.list_stream_keys(channel.id + 1000).await.unwrap(),
        vec![]
    );

    assert!(store.touch_stream_key("jti-1", at(10, 0)).await.unwrap());
    assert!(store.touch_stream_key("jti-1", at(20, 0)).await.unwrap());
    assert!(!store.touch_stream_key("jti-404", at(20, 0)).await.unwrap());
    let touched = store.stream_key_by_jti("jti-1").await.unwrap().unwrap();
    assert_eq!(touched.last_used_at, Some(at(20, 0)));

    // The first revocation wins; revoking again, or an unknown key, changes nothing.
    assert!(store.revoke_stream_key("jti-1", at(30, 0)).await.unwrap());
    assert!(!store.revoke_stream_key("jti-1", at(40, 0)).await.unwrap());
    assert!(!store.revoke_stream_key("jti-404", at(40, 0)).await.unwrap());
    let revoked = store.stream_key_by_jti("jti-1").await.unwrap().unwrap();
    assert!(revoked.is_revoked());
    assert_eq!(revoked.revoked_at, Some(at(30, 0)));
    assert_eq!(
        store.list_stream_keys(channel.id).await.unwrap(),
        vec![revoked, second]
    );
    assert!(
        !store
            .stream_key_by_jti("jti-3")
            .await
            .unwrap()
            .unwrap()
            .is_revoked()
    );
}

async fn stream_keys_are_paged_oldest_first_per_channel(store: Store) {
    let owner = user(&store, "joe", Role::Streamer).await;
    let channel = store
        .create_channel(new_channel(owner.id, "joe"))
        .await
        .unwrap();
    let other = store
        .create_channel(new_channel(owner.id, "joe-2"))
        .await
        .unwrap();
    let mut keys = Vec::new();
    for n in 0..3 {
        // Interleaved with another channel's keys, so ids alone do not make a page.
        keys.push(
            store
                .create_stream_key(channel.id, &format!("page-{n}"), "")
                .await
                .unwrap(),
        );
        store
            .create_stream_key(other.id, &format!("other-{n}"), "")
            .await
            .unwrap();
    }
    assert!(store.revoke_stream_key("page-1", at(1, 0)).await.unwrap());
    let revoked = store.stream_key_by_jti("page-1").await.unwrap().unwrap();
    keys[1] = revoked;

    let page = |offset, limit| store.stream_keys_page(channel.id, Page::new(offset, limit));
    assert_eq!(page(0, 2).await.unwrap(), (keys[..2].to_vec(), 3));
    assert_eq!(page(2, 2).await.unwrap(), (keys[2..].to_vec(), 3));
    assert_eq!(page(1, 1).await.unwrap(), (keys[1..2].to_vec(), 3));
    assert_eq!(page(3, 2).await.unwrap(), (vec![], 3));
    assert_eq!(page(0, 0).await.unwrap(), (vec![], 3));
    assert_eq!(page(0, 100).await.unwrap(), (keys.clone(), 3));
    assert_eq!(
        store
            .stream_keys_page(channel.id + other.id + 1000, Page::first(10))
            .await
            .unwrap(),
        (vec![], 0)
    );
}

async fn stream_key_jtis_conflict_and_channels_must_exist(store: Store) {
    let owner = user(&store, "ida", Role::Streamer).await;
    let channel = store
        .create_channel(new_channel(owner.id, "ida"))
        .await
        .unwrap();
    store
        .create_stream_key(channel.id, "jti-dup", "first")
        .await
        .unwrap();

    let error = store
        .create_stream_key(channel.id, "jti-dup", "second")
        .await
        .unwrap_err();
    match error {
        StoreError::Conflict { what, constraint } => {
            assert_eq!(what, "stream key jti \"jti-dup\"");
            assert!(constraint.contains("jti"), "{constraint}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    let missing = channel.id + 1000;
    let error = store
        .create_stream_key(missing, "jti-orphan", "")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::NotFound { what } if *what == format!("channel {missing}")),
        "{error:?}"
    );
    assert_eq!(store.stream_key_by_jti("jti-orphan").await.unwrap(), None);
}

async fn deleting_a_channel_deletes_its_keys_and_sessions(store: Store) {
    let owner = user(&store, "jan", Role::Streamer).await;
    let doomed = store
        .create_channel(new_channel(owner.id, "doomed"))
        .await
        .unwrap();
    let kept = store
        .create_channel(new_channel(owner.id, "kept"))
        .await
        .unwrap();
    store
        .create_stream_key(doomed.id, "jti-doomed", "")
        .await
        .unwrap();
    store
        .create_stream_key(kept.id, "jti-kept", "")
        .await
        .unwrap();
    store
        .start_live_session(new_session(doomed.id, at(0, 0)))
        .await
        .unwrap();
    let kept_session = store
        .start_live_session(new_session(kept.id, at(0, 0)))
        .await
        .unwrap();

    assert!(store.delete_channel(doomed.id).await.unwrap());
    assert_eq!(store.stream_key_by_jti("jti-doomed").await.unwrap(), None);
    assert_eq!(
        store
            .list_live_sessions(doomed.id, Page::default())
            .await
            .unwrap()
            .1,
        0
    );
    assert!(store.stream_key_by_jti("jti-kept").await.unwrap().is_some());
    let open: Vec<i64> = store
        .open_live_sessions()
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(open, [kept_session]);
}

async fn live_sessions_end_once_and_list_newest_first(store: Store) {
    let owner = user(&store, "kim", Role::Streamer).await;
    let channel = store
        .create_channel(new_channel(owner.id, "kim"))
        .await
        .unwrap();

    let first = store
        .start_live_session(new_session(channel.id, at(0, 0)))
        .await
        .unwrap();
    let second = store
        .start_live_session(NewLiveSession {
            video_codec: None,
            ..new_session(channel.id, at(100, 0))
        })
        .await
        .unwrap();
    assert!(second > first);

    // Totals beyond i64 saturate rather than fail.
    assert!(
        store
            .end_live_session(first, at(50, 0), 123_456_789_012, 42)
            .await
            .unwrap()
    );
    assert!(
        !store
            .end_live_session(first, at(60, 0), 1, 1)
            .await
            .unwrap()
    );
    assert!(
        !store
            .end_live_session(second + 1000, at(60, 0), 1, 1)
            .await
            .unwrap()
    );
    assert!(
        store
            .end_live_session(second, at(150, 0), u64::MAX, 0)
            .await
            .unwrap()
    );

    let (sessions, total) = store
        .list_live_sessions(channel.id, Page::default())
        .await
        .unwrap();
    assert_eq!(total, 2);
    let [newest, oldest] = sessions.as_slice() else {
        panic!("expected two sessions, got {sessions:?}");
    };
    assert_eq!(newest.id, second);
    assert_eq!(
        (newest.video_codec.as_deref(), newest.audio_codec.as_deref()),
        (None, Some("aac"))
    );
    assert_eq!(
        (newest.ended_at, newest.bytes_in, newest.peak_viewers),
        (Some(at(150, 0)), i64::MAX.unsigned_abs(), 0)
    );
    assert_eq!(oldest.id, first);
    assert_eq!(oldest.channel_id, channel.id);
    assert_eq!(oldest.started_at, at(0, 0));
    assert_eq!(oldest.ended_at, Some(at(50, 0)));
    assert_eq!(oldest.publisher_addr, "203.0.113.7:50312");
    assert_eq!(oldest.video_codec.as_deref(), Some("h264"));
    assert_eq!(
        (oldest.bytes_in, oldest.peak_viewers),
        (123_456_789_012, 42)
    );

    let (page, total) = store
        .list_live_sessions(channel.id, Page::new(1, 1))
        .await
        .unwrap();
    assert_eq!(
        (page.iter().map(|s| s.id).collect::<Vec<_>>(), total),
        (vec![first], 2)
    );
    let (page, total) = store
        .list_live_sessions(channel.id, Page::new(2, 1))
        .await
        .unwrap();
    assert_eq!((page.len(), total), (0, 2));

    let missing = channel.id + 1000;
    let error = store
        .start_live_session(new_session(missing, at(0, 0)))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::NotFound { what } if *what == format!("channel {missing}")),
        "{error:?}"
    );
}

async fn open_live_sessions_are_those_never_ended(store: Store) {
    let owner = user(&store, "lea", Role::Streamer).await;
    let a = store
        .create_channel(new_channel(owner.id, "lea-a"))
        .await
        .unwrap();
    let b = store
        .create_channel(new_channel(owner.id, "lea-b"))
        .await
        .unwrap();
    let a1 = store
        .start_live_session(new_session(a.id, at(0, 0)))
        .await
        .unwrap();
    let b1 = store
        .start_live_session(new_session(b.id, at(5, 0)))
        .await
        .unwrap();
    let a2 = store
        .start_live_session(new_session(a.id, at(10, 0)))
        .await
        .unwrap();
    store.end_live_session(a1, at(9, 0), 10, 1).await.unwrap();

    let open = store.open_live_sessions().await.unwrap();
    assert_eq!(open.iter().map(|s| s.id).collect::<Vec<_>>(), [b1, a2]);
    assert!(
        open.iter()
            .all(|s| s.ended_at.is_none() && s.bytes_in == 0 && s.peak_viewers == 0)
    );
    assert_eq!(open[0].channel_id, b.id);

    for id in [b1, a2] {
        store.end_live_session(id, at(20, 0), 0, 0).await.unwrap();
    }
    assert_eq!(store.open_live_sessions().await.unwrap(), vec![]);
}

async fn audit_entries_list_newest_first_with_their_detail(store: Store) {
    let admin = user(&store, "root", Role::Admin).await;
    let before = Utc::now().trunc_subsecs(6);
    let ban = store
        .record_audit(
            Some(admin.id),
            "user.ban",
            "user:7",
            &json!({"reason": "spam", "days": 3}),
        )
        .await
        .unwrap();
    assert_eq!(
        (ban.actor_id, ban.action.as_str(), ban.target.as_str()),
        (Some(admin.id), "user.ban", "user:7")
    );
    assert_eq!(ban.detail, json!({"reason": "spam", "days": 3}));
    assert!(before <= ban.created_at);
    let boot = store
        .record_audit(None, "server.start", "server", &serde_json::Value::Null)
        .await
        .unwrap();
    let revoke = store
        .record_audit(
            Some(admin.id),
            "key.revoke",
            "channel:demo",
            &json!(["jti-1", "jti-2"]),
        )
        .await
        .unwrap();

    let (entries, total) = store.list_audit(Page::default()).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(entries, vec![revoke.clone(), boot.clone(), ban.clone()]);
    assert_eq!(boot.actor_id, None);
    assert_eq!(boot.detail, serde_json::Value::Null);

    let (entries, total) = store.list_audit(Page::new(1, 1)).await.unwrap();
    assert_eq!((entries, total), (vec![boot], 3));
    let (entries, total) = store.list_audit(Page::new(3, 10)).await.unwrap();
    assert_eq!((entries.len(), total), (0, 3));
}

async fn audit_actors_must_exist(store: Store) {
    let missing = 4242;
    let error = store
        .record_audit(Some(missing), "user.ban", "user:1", &json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::NotFound { what } if *what == format!("user {missing}")),
        "{error:?}"
    );
    assert_eq!(store.list_audit(Page::default()).await.unwrap().1, 0);
}

async fn settings_are_stored_only_when_absent(store: Store) {
    assert_eq!(store.setting("jwt_secret").await.unwrap(), None);
    assert_eq!(
        store
            .set_setting_if_absent("jwt_secret", "first")
            .await
            .unwrap(),
        "first"
    );
    assert_eq!(
        store
            .set_setting_if_absent("jwt_secret", "second")
            .await
            .unwrap(),
        "first"
    );
    assert_eq!(
        store.setting("jwt_secret").await.unwrap().as_deref(),
        Some("first")
    );
    assert_eq!(store.set_setting_if_absent("other", "").await.unwrap(), "");
    assert_eq!(store.setting("other").await.unwrap().as_deref(), Some(""));
}

async fn settings_are_replaced_by_set_setting(store: Store) {
    store.set_setting("policy", "one").await.unwrap();
    assert_eq!(
        store.setting("policy").await.unwrap().as_deref(),
        Some("one")
    );
    store.set_setting("policy", "two").await.unwrap();
    assert_eq!(
        store.setting("policy").await.unwrap().as_deref(),
        Some("two")
    );
    assert_eq!(
        store
            .set_setting_if_absent("policy", "three")
            .await
            .unwrap(),
        "two"
    );
}

async fn concurrent_set_if_absent_agree_on_one_value(store: Store) {
    // Servers starting together each generate a secret; all must end up with the same one.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.spawn(async move {
            store
                .set_setting_if_absent("jwt_secret", &format!("secret-{i}"))
                .await
        });
    }
    let mut seen = Vec::new();
    while let Some(result) = tasks.join_next().await {
        seen.push(result.expect("task ran").expect("set_if_absent"));
    }
    let stored = store.setting("jwt_secret").await.unwrap().unwrap();
    assert!(stored.starts_with("secret-"), "{stored}");
    assert_eq!(seen, vec![stored; 8]);
}

async fn times_round_trip_to_the_microsecond(store: Store) {
    let owner = user(&store, "max", Role::Streamer).await;
    let channel = store
        .create_channel(new_channel(owner.id, "max"))
        .await
        .unwrap();
    store
        .create_stream_key(channel.id, "jti-time", "")
        .await
        .unwrap();

    // Nanoseconds are cut to microseconds on both backends, never rounded.
    let precise = at(1, 123_456_789);
    assert!(store.touch_stream_key("jti-time", precise).await.unwrap());
    assert!(
        store
            .revoke_stream_key("jti-time", at(2, 999_999_999))
            .await
            .unwrap()
    );
    let key = store.stream_key_by_jti("jti-time").await.unwrap().unwrap();
    assert_eq!(key.last_used_at, Some(at(1, 123_456_000)));
    assert_eq!(key.revoked_at, Some(at(2, 999_999_000)));

    // Whole seconds, and times before 1970, survive too.
    let id = store
        .start_live_session(new_session(
            channel.id,
            DateTime::from_timestamp(-1, 500_000).unwrap(),
        ))
        .await
        .unwrap();
    store.end_live_session(id, at(0, 0), 0, 0).await.unwrap();
    let (sessions, _) = store
        .list_live_sessions(channel.id, Page::default())
        .await
        .unwrap();
    assert_eq!(
        sessions[0].started_at,
        DateTime::from_timestamp(-1, 500_000).unwrap()
    );
    assert_eq!(sessions[0].ended_at, Some(at(0, 0)));
}

async fn text_and_tags_round_trip_unchanged(store: Store) {
    let owner = user(&store, "Zoë", Role::Streamer).await;
    assert_eq!(
        store.user_by_name("Zoë").await.unwrap().map(|u| u.id),
        Some(owner.id)
    );
    let channel = store
        .create_channel(NewChannel {
            slug: "zoe".to_owned(),
            title: "Zoë's \"live\" — 日本語 'quotes'; DROP TABLE users; --".to_owned(),
            owner_id: owner.id,
            category: String::new(),
            tags: vec![],
        })
        .await
        .unwrap();
    assert_eq!(channel.tags, Vec::<String>::new());
    assert_eq!(
        channel.title,
        "Zoë's \"live\" — 日本語 'quotes'; DROP TABLE users; --"
    );
    let tags = vec![
        "日本語".to_owned(),
        "with \"quotes\"".to_owned(),
        String::new(),
        "a,b".to_owned(),
    ];
    let updated = store
        .update_channel(
            channel.id,
            ChannelUpdate {
                tags: Some(tags.clone()),
                ..ChannelUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.tags, tags);
    assert_eq!(
        store.channel_by_slug("zoe").await.unwrap().unwrap().tags,
        tags
    );
    assert_eq!(store.count_users().await.unwrap(), 1);
}

async fn publish_grants_join_key_channel_and_owner(store: Store) {
    let owner = user(&store, "grant-owner", Role::Streamer).await;
    let channel = store
        .create_channel(new_channel(owner.id, "grant-ch"))
        .await
        .unwrap();
    store
        .create_stream_key(channel.id, "grant-jti-1", "OBS")
        .await
        .unwrap();
    let grant = store.publish_grant("grant-jti-1").await.unwrap().unwrap();
    assert_eq!(grant.channel_id, channel.id);
    assert_eq!(grant.channel_slug, "grant-ch");
    assert_eq!(grant.owner_id, owner.id);
    assert!(!grant.owner_banned);
    assert!(grant.allows_publish());
    assert_eq!(store.publish_grant("no-such-jti").await.unwrap(), None);

    store.set_user_banned(owner.id, true).await.unwrap();
    let grant = store.publish_grant("grant-jti-1").await.unwrap().unwrap();
    assert!(grant.owner_banned);
    assert!(
        !grant.allows_publish(),
        "a banned owner's keys do not publish"
    );

    store.set_user_banned(owner.id, false).await.unwrap();
    store.set_user_role(owner.id, Role::Viewer).await.unwrap();
    let grant = store.publish_grant("grant-jti-1").await.unwrap().unwrap();
    assert_eq!(grant.owner_role, Role::Viewer);
    assert!(
        !grant.allows_publish(),
        "a demoted owner's keys do not publish"
    );
    store.set_user_role(owner.id, Role::Admin).await.unwrap();
    assert!(
        store
            .publish_grant("grant-jti-1")
            .await
            .unwrap()
            .unwrap()
            .allows_publish()
    );

    assert!(
        store
            .revoke_stream_key("grant-jti-1", at(5, 0))
            .await
            .unwrap()
    );
    let grant = store.publish_grant("grant-jti-1").await.unwrap().unwrap();
    assert_eq!(grant.revoked_at, Some(at(5, 0)));
    assert!(!grant.allows_publish(), "a revoked key does not publish");

    store.delete_channel(channel.id).await.unwrap();
    assert_eq!(store.publish_grant("grant-jti-1").await.unwrap(), None);
}

async fn auth_sessions_are_recorded_revoked_and_pruned(store: Store) {
    let alice = user(&store, "sess-alice", Role::Viewer).await;
    let bob = user(&store, "sess-bob", Role::Viewer).await;
    let soon = Utc::now().trunc_subsecs(6) + chrono::Duration::hours(1);
    let s1 = store
        .create_auth_session("s1", alice.id, soon)
        .await
        .unwrap();
    assert_eq!(
        (s1.jti.as_str(), s1.user_id, s1.expires_at),
        ("s1", alice.id, soon)
    );
    assert!(s1.is_active(Utc::now()));
    assert!(!s1.is_active(soon), "expiry is exclusive");
    store
        .create_auth_session("s2", alice.id, soon)
        .await
        .unwrap();
    store.create_auth_session("s3", bob.id, soon).await.unwrap();
    assert!(matches!(
        store.create_auth_session("s1", bob.id, soon).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store.create_auth_session("s9", 999_999, soon).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.auth_session("s1").await.unwrap(), Some(s1));
    assert_eq!(store.auth_session("nope").await.unwrap(), None);

    assert!(store.revoke_auth_session("s1", at(1, 0)).await.unwrap());
    assert!(
        !store.revoke_auth_session("s1", at(2, 0)).await.unwrap(),
        "once"
    );
    let s1 = store.auth_session("s1").await.unwrap().unwrap();
    assert_eq!(
        s1.revoked_at,
        Some(at(1, 0)),
        "the first revocation time stays"
    );
    assert!(!s1.is_active(Utc::now()));

    assert_eq!(
        store
            .revoke_user_auth_sessions(alice.id, at(3, 0))
            .await
            .unwrap(),
        1
    );
    assert!(
        !store
            .auth_session("s2")
            .await
            .unwrap()
            .unwrap()
            .is_active(Utc::now())
    );
    assert!(
        store
            .auth_session("s3")
            .await
            .unwrap()
            .unwrap()
            .is_active(Utc::now()),
        "bob's stays"
    );

    store
        .create_auth_session("old", bob.id, at(0, 0))
        .await
        .unwrap();
    assert_eq!(store.prune_auth_sessions(at(10, 0)).await.unwrap(), 1);
    assert_eq!(store.auth_session("old").await.unwrap(), None);
    assert!(store.auth_session("s3").await.unwrap().is_some());
}

async fn live_session_codecs_are_set_once_known(store: Store) {
    let owner = user(&store, "codec-owner", Role::Streamer).await;
    let channel = store
        .create_channel(new_channel(owner.id, "codec-ch"))
        .await
        .unwrap();
    let mut row = new_session(channel.id, at(0, 0));
    row.video_codec = None;
    row.audio_codec = None;
    let id = store.start_live_session(row).await.unwrap();
    assert!(
        store
            .set_live_session_codecs(id, Some("hevc"), None)
            .await
            .unwrap()
    );
    assert!(
        store
            .set_live_session_codecs(id, None, Some("opus"))
            .await
            .unwrap()
    );
    let (sessions, _) = store
        .list_live_sessions(channel.id, Page::default())
        .await
        .unwrap();
    assert_eq!(sessions[0].video_codec.as_deref(), Some("hevc"));
    assert_eq!(
        sessions[0].audio_codec.as_deref(),
        Some("opus"),
        "None keeps the other"
    );
    assert!(
        !store
            .set_live_session_codecs(id + 1000, Some("h264"), None)
            .await
            .unwrap()
    );
}

fn new_recording(channel_id: i64, path: &str, started_at: DateTime<Utc>) -> NewRecording {
    NewRecording {
        channel_id,
        live_session_id: None,
        title: format!("{path} title"),
        path: path.to_owned(),
        started_at,
    }
}

async fn recordings_progress_finish_once_and_list_newest_first(store: Store) {
    let owner = user(&store, "rec-owner", Role::Streamer).await;
    let channel = store
        .create_channel(new_channel(owner.id, "rec-ch"))
        .await
        .unwrap();
    let session = store
        .start_live_session(new_session(channel.id, at(0, 0)))
        .await
        .unwrap();
    let mut first = new_recording(channel.id, "rec-ch/1", at(0, 0));
    first.live_session_id = Some(session);
    let first = store.create_recording(first).await.unwrap();
    assert_eq!(first.state, RecordingState::Recording);
    assert_eq!(
        (first.duration_ms, first.size_bytes, first.ended_at),
        (0, 0, None)
    );
    assert_eq!(first.live_session_id, Some(session));
    assert_eq!(first.title, "rec-ch/1 title");

    assert!(
        store
            .update_recording_progress(first.id, 4_000, 1_000_000)
            .await
            .unwrap()
    );
    let got = store.recording_by_id(first.id).await.unwrap().unwrap();
    assert_eq!((got.duration_ms, got.size_bytes), (4_000, 1_000_000));

    assert!(
        store
            .finish_recording(
                first.id,
                RecordingState::Finished,
                at(20, 0),
                20_000,
                5_000_000
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_recording(first.id, RecordingState::Failed, at(30, 0), 1, 1)
            .await
            .unwrap(),
        "the first end stays"
    );
    assert!(
        !store
            .update_recording_progress(first.id, 1, 1)
            .await
            .unwrap(),
        "a finished recording takes no progress"
    );
    let got = store.recording_by_id(first.id).await.unwrap().unwrap();
    assert_eq!(got.state, RecordingState::Finished);
    assert_eq!(got.ended_at, Some(at(20, 0)));
    assert_eq!((got.duration_ms, got.size_bytes), (20_000, 5_000_000));

    assert!(
        store
            .set_recording_thumbnail(first.id, Some("rec-ch/1/thumb.jpg"))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .recording_by_id(first.id)
            .await
            .unwrap()
            .unwrap()
            .thumbnail
            .as_deref(),
        Some("rec-ch/1/thumb.jpg")
    );
    assert!(
        !store
            .set_recording_thumbnail(first.id + 999, None)
            .await
            .unwrap()
    );

    let second = store
        .create_recording(new_recording(channel.id, "rec-ch/2", at(100, 0)))
        .await
        .unwrap();
    let third = store
        .create_recording(new_recording(channel.id, "rec-ch/3", at(200, 0)))
        .await
        .unwrap();
    let (page, total) = store
        .list_recordings(channel.id, Page::new(0, 2))
        .await
        .unwrap();
    assert_eq!(total, 3);
    assert_eq!(
        page.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![third.id, second.id]
    );
    let (page, _) = store
        .list_recordings(channel.id, Page::new(2, 2))
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![first.id]
    );
    assert_eq!(store.recording_by_id(third.id + 999).await.unwrap(), None);

    store.delete_channel(channel.id).await.unwrap();
    assert_eq!(
        store.recording_by_id(first.id).await.unwrap(),
        None,
        "cascade from the channel"
    );
}

async fn recordings_paths_conflict_and_channels_must_exist(store: Store) {
    let owner = user(&store, "rec-owner2", Role::Streamer).await;
    let channel = store
        .create_channel(new_channel(owner.id, "rec-ch2"))
        .await
        .unwrap();
    store
        .create_recording(new_recording(channel.id, "same/path", at(0, 0)))
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_recording(new_recording(channel.id, "same/path", at(1, 0)))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store
            .create_recording(new_recording(channel.id + 999, "other/path", at(1, 0)))
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn unfinished_and_ended_recordings_and_deletion(store: Store) {
    let owner = user(&store, "rec-owner3", Role::Streamer).await;
    let a = store
        .create_channel(new_channel(owner.id, "rec-a"))
        .await
        .unwrap();
    let b = store
        .create_channel(new_channel(owner.id, "rec-b"))
        .await
        .unwrap();
    let b_old = store
        .create_recording(new_recording(b.id, "b/1", at(0, 0)))
        .await
        .unwrap();
    let a_live = store
        .create_recording(new_recording(a.id, "a/2", at(50, 0)))
        .await
        .unwrap();
    let a_old = store
        .create_recording(new_recording(a.id, "a/1", at(10, 0)))
        .await
        .unwrap();
    for (id, state) in [
        (b_old.id, RecordingState::Finished),
        (a_old.id, RecordingState::Failed),
    ] {
        store
            .finish_recording(id, state, at(60, 0), 1, 1)
            .await
            .unwrap();
    }
    let unfinished = store.unfinished_recordings().await.unwrap();
    assert_eq!(
        unfinished.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![a_live.id]
    );
    let ended = store.ended_recordings().await.unwrap();
    let expected = if a.id < b.id {
        vec![a_old.id, b_old.id]
    } else {
        vec![b_old.id, a_old.id]
    };
    assert_eq!(ended.iter().map(|r| r.id).collect::<Vec<_>>(), expected);

    let deleted = store
        .delete_recording(a_old.id)
        .await
        .unwrap()
        .expect("it existed");
    assert_eq!(deleted.path, "a/1");
    assert_eq!(store.delete_recording(a_old.id).await.unwrap(), None);
    assert_eq!(store.recording_by_id(a_old.id).await.unwrap(), None);
}

async fn recent_recordings_span_channels_newest_first_without_failed_ones(store: Store) {
    let owner = user(&store, "recent-owner", Role::Streamer).await;
    let a = store
        .create_channel(new_channel(owner.id, "recent-a"))
        .await
        .unwrap();
    let b = store
        .create_channel(new_channel(owner.id, "recent-b"))
        .await
        .unwrap();
    let old = store
        .create_recording(new_recording(a.id, "recent-a/1", at(0, 0)))
        .await
        .unwrap();
    let failed = store
        .create_recording(new_recording(b.id, "recent-b/1", at(10, 0)))
        .await
        .unwrap();
    let new = store
        .create_recording(new_recording(b.id, "recent-b/2", at(20, 0)))
        .await
        .unwrap();
    assert!(
        store
            .finish_recording(failed.id, RecordingState::Failed, at(11, 0), 0, 0)
            .await
            .unwrap()
    );
    let (rows, total) = store.recent_recordings(Page::default()).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(
        rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        [new.id, old.id]
    );
    let (rows, total) = store.recent_recordings(Page::new(1, 1)).await.unwrap();
    assert_eq!((rows.len(), rows[0].id, total), (1, old.id, 2));
}

/// Creates channels with these (slug, title, category, tags) for `owner`; returns their ids.
async fn channels_with(
    store: &Store,
    owner: &User,
    rows: &[(&str, &str, &str, &[&str])],
) -> Vec<i64> {
    let mut ids = Vec::new();
    for (slug, title, category, tags) in rows {
        let channel = store
            .create_channel(NewChannel {
                slug: (*slug).to_owned(),
                title: (*title).to_owned(),
                owner_id: owner.id,
                category: (*category).to_owned(),
                tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            })
            .await
            .unwrap();
        ids.push(channel.id);
    }
    ids
}

async fn searched(store: &Store, search: ChannelSearch) -> (Vec<String>, u64) {
    let (channels, total) = store
        .search_channels(&search, Page::default())
        .await
        .unwrap();
    (channels.into_iter().map(|c| c.slug).collect(), total)
}

fn slugs(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

async fn channels_are_searched_by_text_category_tag_and_id(store: Store) {
    let ada = user(&store, "Ada", Role::Streamer).await;
    let ids = channels_with(
        &store,
        &ada,
        &[
            (
                "chess-club",
                "Sunday Blitz",
                "Board Games",
                &["Chess", "en"],
            ),
            ("speedy", "Any% runs", "Games", &["speedrun"]),
            ("lofi", "Beats to study to", "Music", &["chill", "LoFi"]),
            ("quiet", "Nothing here", "", &[]),
        ],
    )
    .await;
    let text = |q: &str| ChannelSearch {
        text: Some(q.to_owned()),
        ..ChannelSearch::default()
    };

    assert_eq!(
        searched(&store, ChannelSearch::default()).await,
        (slugs(&["chess-club", "speedy", "lofi", "quiet"]), 4)
    );
    // Each field matches, in any case: slug, title, category, a tag, the owner's name.
    assert_eq!(
        searched(&store, text("CHESS")).await,
        (slugs(&["chess-club"]), 1)
    );
    assert_eq!(
        searched(&store, text("blitz")).await,
        (slugs(&["chess-club"]), 1)
    );
    assert_eq!(
        searched(&store, text("games")).await,
        (slugs(&["chess-club", "speedy"]), 2)
    );
    assert_eq!(searched(&store, text("lofi")).await, (slugs(&["lofi"]), 1));
    assert_eq!(searched(&store, text("chil")).await, (slugs(&["lofi"]), 1));
    assert_eq!(searched(&store, text("ada")).await.1, 4);
    assert_eq!(searched(&store, text("nobody")).await, (vec![], 0));
    // Tags are matched one by one, not as the JSON text holding them.
    assert_eq!(searched(&store, text(r#"",""#)).await, (vec![], 0));
    assert_eq!(searched(&store, text("chess\",\"en")).await, (vec![], 0));

    // The category is matched whole, in any case.
    let category = |c: &str| ChannelSearch {
        category: Some(c.to_owned()),
        ..ChannelSearch::default()
    };
    assert_eq!(
        searched(&store, category("games")).await,
        (slugs(&["speedy"]), 1)
    );
    assert_eq!(
        searched(&store, category("BOARD GAMES")).await,
        (slugs(&["chess-club"]), 1)
    );
    assert_eq!(searched(&store, category("Board")).await, (vec![], 0));

    // The tag too.
    let tag = |t: &str| ChannelSearch {
        tag: Some(t.to_owned()),
        ..ChannelSearch::default()
    };
    assert_eq!(
        searched(&store, tag("chess")).await,
        (slugs(&["chess-club"]), 1)
    );
    assert_eq!(searched(&store, tag("lofi")).await, (slugs(&["lofi"]), 1));
    assert_eq!(searched(&store, tag("speed")).await, (vec![], 0));

    // Filters combine, and an id list narrows them to those channels.
    assert_eq!(
        searched(
            &store,
            ChannelSearch {
                text: Some("s".into()),
                category: Some("games".into()),
                ..ChannelSearch::default()
            }
        )
        .await,
        (slugs(&["speedy"]), 1)
    );
    assert_eq!(
        searched(
            &store,
            ChannelSearch {
                text: Some("u".into()),
                ids: Some(vec![ids[1], ids[3], 999_999]),
                ..ChannelSearch::default()
            }
        )
        .await,
        (slugs(&["speedy", "quiet"]), 2)
    );
    assert_eq!(
        searched(
            &store,
            ChannelSearch {
                ids: Some(vec![]),
                ..ChannelSearch::default()
            }
        )
        .await,
        (vec![], 0)
    );
}

async fn channel_search_text_is_literal_and_paged(store: Store) {
    let bo = user(&store, "bo", Role::Streamer).await;
    channels_with(
        &store,
        &bo,
        &[
            ("pct", "100% fun", "", &[]),
            ("pct-2", "100 percent", "", &[]),
            ("under", "a_b", "", &[]),
            ("under-2", "axb", "", &[]),
            ("slash", r"back\slash", "", &[]),
            ("slash-2", "backslash", "", &[]),
        ],
    )
    .await;
    let text = |q: &str| ChannelSearch {
        text: Some(q.to_owned()),
        ..ChannelSearch::default()
    };
    // `%`, `_` and `\` are the characters themselves, not LIKE's wildcards and escape.
    assert_eq!(searched(&store, text("0%")).await, (slugs(&["pct"]), 1));
    assert_eq!(searched(&store, text("a_b")).await, (slugs(&["under"]), 1));
    assert_eq!(searched(&store, text(r"k\s")).await, (slugs(&["slash"]), 1));
    assert_eq!(searched(&store, text("%")).await, (slugs(&["pct"]), 1));

    let (page, total) = store
        .search_channels(&text("-2"), Page::new(1, 1))
        .await
        .unwrap();
    assert_eq!(
        (page.into_iter().map(|c| c.slug).collect::<Vec<_>>(), total),
        (slugs(&["under-2"]), 3)
    );
    let (page, total) = store
        .search_channels(&text("-2"), Page::new(0, 0))
        .await
        .unwrap();
    assert_eq!((page.len(), total), (0, 3));
}

async fn categories_are_counted_ignoring_case_fullest_first(store: Store) {
    let cy = user(&store, "cy", Role::Streamer).await;
    assert_eq!(
        store.channel_categories(Page::default()).await.unwrap(),
        (vec![], 0)
    );
    channels_with(
        &store,
        &cy,
        &[
            ("m-1", "m", "Music", &[]),
            ("g-1", "g", "games", &[]),
            ("g-2", "g", "games", &[]),
            ("a-1", "a", "Art", &[]),
            ("none", "n", "", &[]),
            ("m-2", "m", "music", &[]),
        ],
    )
    .await;
    let (categories, total) = store.channel_categories(Page::default()).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(
        categories
            .iter()
            .map(|c| (c.name.to_lowercase(), c.channels))
            .collect::<Vec<_>>(),
        [("games".into(), 2), ("music".into(), 2), ("art".into(), 1)]
    );
    assert!(["Music", "music"].contains(&categories[1].name.as_str()));
    assert_eq!(
        store.channel_categories(Page::new(2, 5)).await.unwrap(),
        (
            vec![CategoryCount {
                name: "Art".into(),
                channels: 1
            }],
            3
        )
    );
}
