//! Chat, likes, moderation, gifts and wallets: every case runs on PostgreSQL and SQLite
//! through `store_test!`.

use std::collections::HashSet;

use chrono::{Duration, Utc};
use onair_store::{
    Channel, ChatRestriction, GiftOutcome, MessageKind, NewChannel, NewChatMessage, NewLiveSession,
    NewRecording, NewUser, Page, RecordingPart, Role, SendGift, Store, StoreError, User,
    store_test,
};

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

fn chat(channel: &Channel, user: &User, text: &str) -> NewChatMessage {
    NewChatMessage {
        channel_id: channel.id,
        user_id: user.id,
        kind: MessageKind::Chat,
        text: text.to_owned(),
        color: None,
        mode: None,
        live_session_id: None,
        offset_ms: None,
    }
}

fn gift(sender: &User, channel: &Channel, gift_id: i64, key: &str) -> SendGift {
    SendGift {
        sender_id: sender.id,
        channel_id: channel.id,
        gift_id,
        count: 1,
        idempotency_key: key.to_owned(),
        live_session_id: None,
    }
}

store_test!(
    messages_are_stored_with_their_sender_and_listed_newest_first,
    history_is_the_last_messages_oldest_first_without_deleted_ones,
    deletion_happens_once_and_names_who_deleted,
    messages_need_a_channel_and_a_user,
    danmaku_of_a_recorded_session_are_found_by_offset,
    a_recording_continued_after_a_republish_places_each_sessions_danmaku,
    likes_are_one_counter_per_channel_and_session,
    mutes_and_channel_bans_restrict_and_lift,
    platform_bans_show_in_the_restriction,
    an_ended_sign_in_shows_in_the_restriction,
    the_gift_catalogue_is_seeded_and_cheapest_first,
    admin_credits_add_up_and_are_recorded,
    a_gift_moves_coins_from_sender_to_owner,
    an_insufficient_balance_is_refused_and_changes_nothing,
    a_retried_key_returns_the_original_and_charges_once,
    unknown_gifts_and_channels_are_not_found,
    concurrent_sends_from_one_wallet_never_overdraw,
    concurrent_retries_of_one_key_charge_once,
    crossing_gifts_between_two_streamers_never_deadlock,
    room_numbers_are_dense_per_room_and_follow_the_ids_under_concurrent_senders,
    messages_are_read_back_by_number_deleted_ones_included,
);

async fn room_numbers_are_dense_per_room_and_follow_the_ids_under_concurrent_senders(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let ch = channel(&store, &alice, "alice").await;
    let other = channel(&store, &alice, "other").await;
    assert_eq!(store.chat_room_seq(ch.id).await.unwrap(), 0);
    // 40 concurrent senders in one room and a few in another: every number once, no gaps, and
    // the id order is the number order (what the cluster's delivery order rests on).
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..40 {
        let store = store.clone();
        let new = chat(
            if i % 8 == 0 { &other } else { &ch },
            &alice,
            &format!("m{i}"),
        );
        sends.spawn(async move { store.insert_chat_message(new).await.unwrap() });
    }
    let stored = sends.join_all().await;
    for (room, expected) in [(&ch, 35), (&other, 5)] {
        let mut mine: Vec<_> = stored.iter().filter(|m| m.channel_id == room.id).collect();
        mine.sort_by_key(|m| m.id);
        let seqs: Vec<i64> = mine.iter().map(|m| m.seq).collect();
        assert_eq!(
            seqs,
            (1..=expected).collect::<Vec<i64>>(),
            "room {}",
            room.slug
        );
        assert_eq!(store.chat_room_seq(room.id).await.unwrap(), expected);
    }
    // A refused insert (no such user) gives its number back.
    let mut bad = chat(&ch, &alice, "nobody");
    bad.user_id = 999_999;
    assert!(matches!(
        store.insert_chat_message(bad).await,
        Err(StoreError::NotFound { .. })
    ));
    let next = store
        .insert_chat_message(chat(&ch, &alice, "next"))
        .await
        .unwrap();
    assert_eq!(next.seq, 36);
}

async fn messages_are_read_back_by_number_deleted_ones_included(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let ch = channel(&store, &alice, "alice").await;
    let mut ids = Vec::new();
    for i in 1..=6 {
        let m = store
            .insert_chat_message(chat(&ch, &alice, &format!("m{i}")))
            .await
            .unwrap();
        ids.push(m.id);
    }
    store.delete_chat_message(ids[2], alice.id).await.unwrap();
    let got = store.chat_messages_by_seq(ch.id, 1, 5, 10).await.unwrap();
    let seqs: Vec<i64> = got.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [2, 3, 4, 5]);
    assert!(
        got[1].deleted_at.is_some(),
        "a deleted number is still told"
    );
    let got = store.chat_messages_by_seq(ch.id, 0, 6, 2).await.unwrap();
    assert_eq!(got.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2]);
    // History up to a number leaves out later and deleted messages.
    let history = store
        .recent_chat_messages_through(ch.id, 4, 10)
        .await
        .unwrap();
    let texts: Vec<_> = history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["m1", "m2", "m4"]);
    let history = store
        .recent_chat_messages_through(ch.id, 6, 2)
        .await
        .unwrap();
    let texts: Vec<_> = history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["m5", "m6"]);
}

async fn messages_are_stored_with_their_sender_and_listed_newest_first(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let bob = user(&store, "bob", Role::Viewer).await;
    let ch = channel(&store, &alice, "alice").await;
    let before = Utc::now() - Duration::seconds(1);
    let first = store
        .insert_chat_message(chat(&ch, &bob, "hi ✨"))
        .await
        .unwrap();
    assert_eq!(first.username, "bob");
    assert_eq!(first.text, "hi ✨");
    assert_eq!(first.kind, MessageKind::Chat);
    assert!(first.created_at > before && first.deleted_at.is_none());
    let second = store
        .insert_chat_message(chat(&ch, &alice, "welcome"))
        .await
        .unwrap();
    assert!(second.id > first.id);
    assert_eq!(
        store.chat_message_by_id(first.id).await.unwrap(),
        Some(first.clone())
    );

    let (page, total) = store
        .list_chat_messages(ch.id, Page::first(10))
        .await
        .unwrap();
    assert_eq!(total, 2);
    assert_eq!(page, vec![second.clone(), first.clone()]);
    let (page, total) = store
        .list_chat_messages(ch.id, Page::new(1, 10))
        .await
        .unwrap();
    assert_eq!((page, total), (vec![first], 2));
}

async fn history_is_the_last_messages_oldest_first_without_deleted_ones(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let ch = channel(&store, &alice, "alice").await;
    let other = channel(&store, &alice, "other").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            store
                .insert_chat_message(chat(&ch, &alice, &format!("m{i}")))
                .await
                .unwrap()
                .id,
        );
    }
    store
        .insert_chat_message(chat(&other, &alice, "elsewhere"))
        .await
        .unwrap();
    store.delete_chat_message(ids[4], alice.id).await.unwrap();
    let recent = store.recent_chat_messages(ch.id, 3).await.unwrap();
    let texts: Vec<_> = recent.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["m1", "m2", "m3"]);
}

async fn deletion_happens_once_and_names_who_deleted(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let bob = user(&store, "bob", Role::Viewer).await;
    let ch = channel(&store, &alice, "alice").await;
    let m = store
        .insert_chat_message(chat(&ch, &bob, "spam"))
        .await
        .unwrap();
    let deleted = store
        .delete_chat_message(m.id, alice.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted.deleted_by, Some(alice.id));
    assert!(deleted.deleted_at.is_some());
    assert_eq!(
        store.delete_chat_message(m.id, alice.id).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .delete_chat_message(m.id + 100, alice.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .list_chat_messages(ch.id, Page::first(5))
            .await
            .unwrap()
            .1,
        0
    );
}

async fn messages_need_a_channel_and_a_user(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let ch = channel(&store, &alice, "alice").await;
    let mut bad = chat(&ch, &alice, "x");
    bad.channel_id += 100;
    assert!(matches!(
        store.insert_chat_message(bad).await,
        Err(StoreError::NotFound { .. })
    ));
    let mut bad = chat(&ch, &alice, "x");
    bad.user_id += 100;
    assert!(matches!(
        store.insert_chat_message(bad).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// A live session of `channel` that started now; returns its id.
async fn live_session(store: &Store, channel: &Channel) -> i64 {
    store
        .start_live_session(NewLiveSession {
            channel_id: channel.id,
            started_at: Utc::now(),
            publisher_addr: "203.0.113.7:5000".into(),
            video_codec: None,
            audio_codec: None,
        })
        .await
        .unwrap()
}

async fn danmaku_of_a_recorded_session_are_found_by_offset(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let ch = channel(&store, &alice, "alice").await;
    assert_eq!(store.open_live_session_of(ch.id).await.unwrap(), None);
    let session = live_session(&store, &ch).await;
    assert_eq!(
        store.open_live_session_of(ch.id).await.unwrap(),
        Some(session)
    );
    let recording = store
        .create_recording(NewRecording {
            channel_id: ch.id,
            live_session_id: Some(session),
            title: "t".into(),
            path: "alice/1".into(),
            started_at: Utc::now(),
        })
        .await
        .unwrap();
    assert_eq!(recording.live_session_id, Some(session));
    for (offset, text) in [(500, "a"), (1500, "b"), (2500, "c"), (1500, "b2")] {
        let mut m = chat(&ch, &alice, text);
        m.kind = MessageKind::Danmaku;
        m.color = Some("#ffcc00".into());
        m.mode = Some("top".into());
        m.live_session_id = Some(session);
        m.offset_ms = Some(offset);
        store.insert_chat_message(m).await.unwrap();
    }
    let mut line = chat(&ch, &alice, "a chat line, not danmaku");
    line.live_session_id = Some(session);
    line.offset_ms = Some(1000);
    store.insert_chat_message(line).await.unwrap();
    let found = store
        .danmaku_between(session, 1000, 2500, 100)
        .await
        .unwrap();
    let texts: Vec<_> = found
        .iter()
        .map(|m| (m.offset_ms.unwrap(), m.text.as_str()))
        .collect();
    assert_eq!(texts, [(1500, "b"), (1500, "b2"), (2500, "c")]);
    assert_eq!(found[0].mode.as_deref(), Some("top"));
    assert_eq!(found[0].color.as_deref(), Some("#ffcc00"));
    assert_eq!(
        store
            .danmaku_between(session, 0, 10_000, 1)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn a_recording_continued_after_a_republish_places_each_sessions_danmaku(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let ch = channel(&store, &alice, "alice").await;
    let sessions = [
        live_session(&store, &ch).await,
        live_session(&store, &ch).await,
    ];
    let recording = store
        .create_recording(NewRecording {
            channel_id: ch.id,
            live_session_id: Some(sessions[0]),
            title: "t".into(),
            path: "alice/parts".into(),
            started_at: Utc::now(),
        })
        .await
        .unwrap();
    // The second session began 60 s into the replay; adding it again keeps that.
    store
        .add_recording_part(recording.id, sessions[1], 60_000)
        .await
        .unwrap();
    store
        .add_recording_part(recording.id, sessions[1], 5)
        .await
        .unwrap();
    assert_eq!(
        store.recording_parts(recording.id).await.unwrap(),
        [
            RecordingPart {
                live_session_id: sessions[0],
                offset_ms: 0
            },
            RecordingPart {
                live_session_id: sessions[1],
                offset_ms: 60_000
            },
        ]
    );
    for (session, offset, text) in [
        (sessions[1], 1_000, "second-1s"),
        (sessions[0], 59_000, "first-59s"),
        (sessions[0], 1_000, "first-1s"),
        (sessions[1], 30_000, "second-30s"),
    ] {
        let mut m = chat(&ch, &alice, text);
        m.kind = MessageKind::Danmaku;
        m.live_session_id = Some(session);
        m.offset_ms = Some(offset);
        store.insert_chat_message(m).await.unwrap();
    }
    let placed = |from, to, limit| {
        let store = store.clone();
        async move {
            store
                .recording_danmaku(recording.id, from, to, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|m| (m.offset_ms.unwrap(), m.text))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        placed(0, i64::MAX, 100).await,
        [
            (1_000, "first-1s".to_owned()),
            (59_000, "first-59s".to_owned()),
            (61_000, "second-1s".to_owned()),
            (90_000, "second-30s".to_owned()),
        ]
    );
    // A window across the join, in replay time, and the limit over both parts.
    assert_eq!(
        placed(50_000, 70_000, 100).await,
        [
            (59_000, "first-59s".to_owned()),
            (61_000, "second-1s".to_owned())
        ]
    );
    assert_eq!(placed(0, i64::MAX, 3).await.len(), 3);
    assert_eq!(placed(2_000, 50_000, 100).await, []);

    assert!(matches!(
        store
            .add_recording_part(recording.id + 100, sessions[1], 0)
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .add_recording_part(recording.id, sessions[1] + 100, 0)
            .await,
        Err(StoreError::NotFound { .. })
    ));
    // Deleting the recording deletes its parts.
    store.delete_recording(recording.id).await.unwrap();
    assert_eq!(store.recording_parts(recording.id).await.unwrap(), []);
}

async fn likes_are_one_counter_per_channel_and_session(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let ch = channel(&store, &alice, "alice").await;
    assert_eq!(store.likes(ch.id, None).await.unwrap(), 0);
    assert_eq!(store.add_likes(ch.id, None, 3).await.unwrap(), 3);
    assert_eq!(store.add_likes(ch.id, None, 4).await.unwrap(), 7);
    assert_eq!(store.add_likes(ch.id, Some(9), 1).await.unwrap(), 1);
    assert_eq!(store.likes(ch.id, None).await.unwrap(), 7);
    assert_eq!(store.likes(ch.id, Some(9)).await.unwrap(), 1);
    assert!(matches!(
        store.add_likes(ch.id + 50, None, 1).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn mutes_and_channel_bans_restrict_and_lift(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let bob = user(&store, "bob", Role::Viewer).await;
    let ch = channel(&store, &alice, "alice").await;
    let other = channel(&store, &alice, "other").await;
    let now = Utc::now();
    assert!(
        store
            .chat_restriction(ch.id, bob.id, None, now)
            .await
            .unwrap()
            .is_clear()
    );

    let until = now + Duration::minutes(10);
    store
        .mute_in_channel(ch.id, bob.id, until, Some(alice.id))
        .await
        .unwrap();
    let r = store
        .chat_restriction(ch.id, bob.id, None, now)
        .await
        .unwrap();
    assert_eq!(
        r.muted_until.map(|t| t.timestamp()),
        Some(until.timestamp())
    );
    assert!(
        store
            .chat_restriction(other.id, bob.id, None, now)
            .await
            .unwrap()
            .is_clear()
    );
    // A mute that ran out restricts nothing.
    assert!(
        store
            .chat_restriction(ch.id, bob.id, None, until + Duration::seconds(1))
            .await
            .unwrap()
            .is_clear()
    );
    assert!(store.unmute_in_channel(ch.id, bob.id).await.unwrap());
    assert!(!store.unmute_in_channel(ch.id, bob.id).await.unwrap());

    assert!(
        store
            .ban_in_channel(ch.id, bob.id, Some(alice.id))
            .await
            .unwrap()
    );
    assert!(
        !store
            .ban_in_channel(ch.id, bob.id, Some(alice.id))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .chat_restriction(ch.id, bob.id, None, now)
            .await
            .unwrap(),
        ChatRestriction {
            banned: false,
            channel_banned: true,
            muted_until: None,
            signed_out: false,
        }
    );
    assert!(store.unban_in_channel(ch.id, bob.id).await.unwrap());
    assert!(
        store
            .chat_restriction(ch.id, bob.id, None, now)
            .await
            .unwrap()
            .is_clear()
    );
    assert!(matches!(
        store.ban_in_channel(ch.id, bob.id + 100, None).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn platform_bans_show_in_the_restriction(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let bob = user(&store, "bob", Role::Viewer).await;
    let ch = channel(&store, &alice, "alice").await;
    store.set_user_banned(bob.id, true).await.unwrap();
    let r = store
        .chat_restriction(ch.id, bob.id, None, Utc::now())
        .await
        .unwrap();
    assert!(r.banned && !r.channel_banned);
    assert!(matches!(
        store
            .chat_restriction(ch.id, bob.id + 100, None, Utc::now())
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn an_ended_sign_in_shows_in_the_restriction(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let bob = user(&store, "bob", Role::Viewer).await;
    let ch = channel(&store, &alice, "alice").await;
    let now = Utc::now();
    let expires = now + Duration::minutes(15);
    store
        .create_auth_session("bob-1", bob.id, expires)
        .await
        .unwrap();
    store
        .create_auth_session("alice-1", alice.id, expires)
        .await
        .unwrap();
    let signed_out = |jti: Option<&'static str>, at| {
        let store = store.clone();
        async move {
            store
                .chat_restriction(ch.id, bob.id, jti, at)
                .await
                .unwrap()
                .signed_out
        }
    };
    assert!(!signed_out(Some("bob-1"), now).await);
    assert!(!signed_out(None, now).await);
    // Expired, unknown, or another user's sign-in.
    assert!(signed_out(Some("bob-1"), expires + Duration::seconds(1)).await);
    assert!(signed_out(Some("nobody"), now).await);
    assert!(signed_out(Some("alice-1"), now).await);
    // Logged out.
    store.revoke_auth_session("bob-1", now).await.unwrap();
    let r = store
        .chat_restriction(ch.id, bob.id, Some("bob-1"), now)
        .await
        .unwrap();
    assert!(r.signed_out && !r.is_clear());
    assert!(!signed_out(None, now).await);
}

async fn the_gift_catalogue_is_seeded_and_cheapest_first(store: Store) {
    let gifts = store.list_gifts().await.unwrap();
    let names: Vec<_> = gifts.iter().map(|g| (g.name.as_str(), g.price)).collect();
    assert_eq!(
        names,
        [("heart", 1), ("rose", 5), ("cake", 20), ("rocket", 100)]
    );
    assert_eq!(
        store.gift_by_id(gifts[1].id).await.unwrap(),
        Some(gifts[1].clone())
    );
    assert_eq!(store.gift_by_id(999).await.unwrap(), None);
}

async fn admin_credits_add_up_and_are_recorded(store: Store) {
    let admin = user(&store, "root", Role::Admin).await;
    let bob = user(&store, "bob", Role::Viewer).await;
    assert_eq!(store.wallet_balance(bob.id).await.unwrap(), 0);
    assert_eq!(
        store
            .credit_wallet(bob.id, 50, Some(admin.id), "welcome")
            .await
            .unwrap(),
        50
    );
    assert_eq!(
        store
            .credit_wallet(bob.id, 7, Some(admin.id), "")
            .await
            .unwrap(),
        57
    );
    assert_eq!(store.wallet_balance(bob.id).await.unwrap(), 57);
    assert!(matches!(
        store
            .credit_wallet(bob.id + 100, 5, Some(admin.id), "")
            .await,
        Err(StoreError::NotFound { .. })
    ));
    // The CHECK refuses a non-positive credit; nothing changes.
    assert!(
        store
            .credit_wallet(bob.id, 0, Some(admin.id), "")
            .await
            .is_err()
    );
    assert_eq!(store.wallet_balance(bob.id).await.unwrap(), 57);
}

async fn rose(store: &Store) -> i64 {
    store
        .list_gifts()
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.name == "rose")
        .unwrap()
        .id
}

async fn a_gift_moves_coins_from_sender_to_owner(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let bob = user(&store, "bob", Role::Viewer).await;
    let ch = channel(&store, &alice, "alice").await;
    store.credit_wallet(bob.id, 12, None, "").await.unwrap();
    let mut send = gift(&bob, &ch, rose(&store).await, "k1");
    send.count = 2;
    let GiftOutcome::Sent { event, balance } = store.send_gift(send).await.unwrap() else {
        panic!("not sent");
    };
    assert_eq!(
        (event.value, event.count, event.recipient_id, balance),
        (10, 2, alice.id, 2)
    );
    assert_eq!(store.wallet_balance(bob.id).await.unwrap(), 2);
    assert_eq!(store.wallet_balance(alice.id).await.unwrap(), 10);
    assert_eq!(
        store.gift_event_by_key(bob.id, "k1").await.unwrap(),
        Some(event)
    );
}

async fn an_insufficient_balance_is_refused_and_changes_nothing(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let bob = user(&store, "bob", Role::Viewer).await;
    let ch = channel(&store, &alice, "alice").await;
    let rose = rose(&store).await;
    // No wallet at all.
    assert_eq!(
        store.send_gift(gift(&bob, &ch, rose, "k1")).await.unwrap(),
        GiftOutcome::InsufficientBalance {
            balance: 0,
            needed: 5
        }
    );
    store.credit_wallet(bob.id, 4, None, "").await.unwrap();
    assert_eq!(
        store.send_gift(gift(&bob, &ch, rose, "k1")).await.unwrap(),
        GiftOutcome::InsufficientBalance {
            balance: 4,
            needed: 5
        }
    );
    assert_eq!(store.wallet_balance(bob.id).await.unwrap(), 4);
    assert_eq!(store.wallet_balance(alice.id).await.unwrap(), 0);
    assert_eq!(store.count_gift_events_by(bob.id).await.unwrap(), 0);
    // The refused key left nothing behind: once topped up, it goes through.
    store.credit_wallet(bob.id, 1, None, "").await.unwrap();
    assert!(matches!(
        store.send_gift(gift(&bob, &ch, rose, "k1")).await.unwrap(),
        GiftOutcome::Sent { balance: 0, .. }
    ));
}

async fn a_retried_key_returns_the_original_and_charges_once(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let bob = user(&store, "bob", Role::Viewer).await;
    let carol = user(&store, "carol", Role::Viewer).await;
    let ch = channel(&store, &alice, "alice").await;
    let rose = rose(&store).await;
    store.credit_wallet(bob.id, 100, None, "").await.unwrap();
    store.credit_wallet(carol.id, 100, None, "").await.unwrap();
    let GiftOutcome::Sent { event, .. } = store
        .send_gift(gift(&bob, &ch, rose, "same"))
        .await
        .unwrap()
    else {
        panic!("not sent");
    };
    for _ in 0..3 {
        assert_eq!(
            store
                .send_gift(gift(&bob, &ch, rose, "same"))
                .await
                .unwrap(),
            GiftOutcome::Replayed {
                event: event.clone()
            }
        );
    }
    assert_eq!(store.wallet_balance(bob.id).await.unwrap(), 95);
    assert_eq!(store.wallet_balance(alice.id).await.unwrap(), 5);
    // Keys are per sender: carol's "same" is her own send.
    assert!(matches!(
        store
            .send_gift(gift(&carol, &ch, rose, "same"))
            .await
            .unwrap(),
        GiftOutcome::Sent { balance: 95, .. }
    ));
}

async fn unknown_gifts_and_channels_are_not_found(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let ch = channel(&store, &alice, "alice").await;
    let rose = rose(&store).await;
    assert!(matches!(
        store.send_gift(gift(&alice, &ch, 999, "k")).await,
        Err(StoreError::NotFound { .. })
    ));
    let mut send = gift(&alice, &ch, rose, "k");
    send.channel_id += 100;
    assert!(matches!(
        store.send_gift(send).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// 100 sends race from one wallet holding coins for exactly 37: the conditional debit lets
/// exactly 37 through, on real concurrent connections (a multi-thread runtime; a file-backed
/// SQLite with a pool of several connections, or PostgreSQL).
async fn concurrent_sends_from_one_wallet_never_overdraw(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let bob = user(&store, "bob", Role::Viewer).await;
    let ch = channel(&store, &alice, "alice").await;
    let rose = rose(&store).await;
    store.credit_wallet(bob.id, 37 * 5, None, "").await.unwrap();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let store = store.clone();
            let send = gift(&bob, &ch, rose, &format!("key-{i}"));
            tokio::spawn(async move { store.send_gift(send).await })
        })
        .collect();
    let (mut sent, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap().unwrap() {
            GiftOutcome::Sent { balance, .. } => {
                assert!(balance >= 0);
                sent += 1;
            }
            GiftOutcome::InsufficientBalance { .. } => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((sent, refused), (37, 63));
    assert_eq!(store.wallet_balance(bob.id).await.unwrap(), 0);
    assert_eq!(store.wallet_balance(alice.id).await.unwrap(), 37 * 5);
    assert_eq!(store.count_gift_events_by(bob.id).await.unwrap(), 37);
}

async fn concurrent_retries_of_one_key_charge_once(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let bob = user(&store, "bob", Role::Viewer).await;
    let ch = channel(&store, &alice, "alice").await;
    let rose = rose(&store).await;
    store.credit_wallet(bob.id, 100, None, "").await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            let send = gift(&bob, &ch, rose, "one-key");
            tokio::spawn(async move { store.send_gift(send).await })
        })
        .collect();
    let mut ids = HashSet::new();
    let mut sent = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            GiftOutcome::Sent { event, .. } => {
                sent += 1;
                ids.insert(event.id);
            }
            GiftOutcome::Replayed { event } => {
                ids.insert(event.id);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((sent, ids.len()), (1, 1));
    assert_eq!(store.wallet_balance(bob.id).await.unwrap(), 95);
    assert_eq!(store.wallet_balance(alice.id).await.unwrap(), 5);
}

/// Two streamers gifting each other at once lock the same two wallets from opposite ends;
/// every send must still go through (no deadlock abort) and the coins add up.
async fn crossing_gifts_between_two_streamers_never_deadlock(store: Store) {
    let alice = user(&store, "alice", Role::Streamer).await;
    let bob = user(&store, "bob", Role::Streamer).await;
    let alice_ch = channel(&store, &alice, "alice").await;
    let bob_ch = channel(&store, &bob, "bob").await;
    let rose = rose(&store).await;
    let price = store.gift_by_id(rose).await.unwrap().unwrap().price;
    store
        .credit_wallet(alice.id, 1000 * price, None, "")
        .await
        .unwrap();
    store
        .credit_wallet(bob.id, 1000 * price, None, "")
        .await
        .unwrap();
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let store = store.clone();
            // Even: alice gifts on bob's channel; odd: bob on alice's.
            let send = if i % 2 == 0 {
                gift(&alice, &bob_ch, rose, &format!("a-{i}"))
            } else {
                gift(&bob, &alice_ch, rose, &format!("b-{i}"))
            };
            tokio::spawn(async move { store.send_gift(send).await })
        })
        .collect();
    for task in tasks {
        match task.await.unwrap() {
            Ok(GiftOutcome::Sent { .. }) => {}
            other => panic!("a crossing send failed: {other:?}"),
        }
    }
    assert_eq!(store.wallet_balance(alice.id).await.unwrap(), 1000 * price);
    assert_eq!(store.wallet_balance(bob.id).await.unwrap(), 1000 * price);
}
