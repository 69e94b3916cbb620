//! Restream destinations on both backends: creation up to the cap, listing per channel,
//! partial updates, deletion, and the rows going with their channel.

use onair_store::{
    Channel, NewChannel, NewRestream, NewUser, RestreamUpdate, Role, Store, StoreError, store_test,
};

async fn channel(store: &Store, slug: &str) -> Channel {
    let owner = store
        .create_user(NewUser {
            username: slug.to_owned(),
            password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1${slug}"),
            role: Role::Streamer,
        })
        .await
        .expect("create user");
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

fn destination(channel: &Channel, name: &str) -> NewRestream {
    NewRestream {
        channel_id: channel.id,
        name: name.to_owned(),
        url: format!("rtmp://{name}.example.net/live"),
        stream_key: format!("sk-{name}-secret"),
        enabled: true,
    }
}

async fn destinations_up_to_the_cap(store: Store) {
    let alice = channel(&store, "alice").await;
    let bob = channel(&store, "bob").await;
    let first = store
        .create_restream(destination(&alice, "yt"), 2)
        .await
        .unwrap()
        .expect("under the cap");
    assert_eq!(first.channel_id, alice.id);
    assert_eq!(first.name, "yt");
    assert_eq!(first.url, "rtmp://yt.example.net/live");
    assert_eq!(first.stream_key, "sk-yt-secret");
    assert!(first.enabled);
    assert!(
        !format!("{first:?}").contains("sk-yt-secret"),
        "Debug hides the key"
    );
    let second = store
        .create_restream(
            NewRestream {
                enabled: false,
                ..destination(&alice, "twitch")
            },
            2,
        )
        .await
        .unwrap()
        .expect("the second place");
    assert!(!second.enabled);
    assert_eq!(
        store
            .create_restream(destination(&alice, "third"), 2)
            .await
            .unwrap(),
        None,
        "the cap counts the channel's rows"
    );
    store
        .create_restream(destination(&bob, "yt"), 2)
        .await
        .unwrap()
        .expect("another channel has its own places");

    let listed = store.restreams_of_channel(alice.id).await.unwrap();
    assert_eq!(listed, vec![first.clone(), second.clone()], "oldest first");
    assert_eq!(
        store.restream_by_id(first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.restream_by_id(9_999).await.unwrap(), None);

    let missing = store
        .create_restream(
            NewRestream {
                channel_id: 9_999,
                ..destination(&alice, "nowhere")
            },
            5,
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
}

async fn updates_change_only_what_they_name(store: Store) {
    let alice = channel(&store, "alice").await;
    let d = store
        .create_restream(destination(&alice, "yt"), 5)
        .await
        .unwrap()
        .unwrap();
    let disabled = store
        .update_restream(
            d.id,
            RestreamUpdate {
                enabled: Some(false),
                ..RestreamUpdate::default()
            },
        )
        .await
        .unwrap()
        .expect("exists");
    assert_eq!((disabled.name.as_str(), disabled.enabled), ("yt", false));
    assert_eq!(disabled.stream_key, d.stream_key);
    let changed = store
        .update_restream(
            d.id,
            RestreamUpdate {
                name: Some("YouTube".into()),
                url: Some("rtmps://a.example.net:443/live2".into()),
                stream_key: Some("new-key".into()),
                enabled: Some(true),
            },
        )
        .await
        .unwrap()
        .expect("exists");
    assert_eq!(changed.name, "YouTube");
    assert_eq!(changed.url, "rtmps://a.example.net:443/live2");
    assert_eq!(changed.stream_key, "new-key");
    assert!(changed.enabled);
    assert_eq!(changed.created_at, d.created_at);
    assert_eq!(
        store
            .update_restream(9_999, RestreamUpdate::default())
            .await
            .unwrap(),
        None
    );
}

async fn deleting_a_destination_or_its_channel_removes_it(store: Store) {
    let alice = channel(&store, "alice").await;
    let a = store
        .create_restream(destination(&alice, "a"), 5)
        .await
        .unwrap()
        .unwrap();
    let b = store
        .create_restream(destination(&alice, "b"), 5)
        .await
        .unwrap()
        .unwrap();
    assert!(store.delete_restream(a.id).await.unwrap());
    assert!(!store.delete_restream(a.id).await.unwrap(), "already gone");
    assert_eq!(
        store.restreams_of_channel(alice.id).await.unwrap(),
        vec![b.clone()]
    );
    assert!(store.delete_channel(alice.id).await.unwrap());
    assert_eq!(store.restream_by_id(b.id).await.unwrap(), None);
}

store_test!(
    destinations_up_to_the_cap,
    updates_change_only_what_they_name,
    deleting_a_destination_or_its_channel_removes_it,
);
