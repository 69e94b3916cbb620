//! `onair channel create|list`: channels, so an operator can set up a streamer without the API.

use anyhow::{Context, bail};
use clap::Subcommand;
use onair::channel::is_valid_slug;
use onair::config::Config;
use onair::platform::Platform;
use onair_store::{NewChannel, Page, Role, StoreError};

use super::{audit, format_time, print_table, user, with_platform};

// The REST API's rule, so a channel made here could have been made there.
use onair::api::validate::{TITLE_LEN, is_plain_text};

/// `onair channel …`
#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Create a channel owned by an existing streamer or admin.
    ///
    /// Example: onair channel create alice-live --owner alice --title "Alice live"
    Create {
        /// The public name viewers watch it under: 2-64 of a-z 0-9 _ -, starting with a letter
        /// or digit.
        slug: String,
        /// The owning account's login name.
        #[arg(long)]
        owner: String,
        /// The title (default: the slug).
        #[arg(long)]
        title: Option<String>,
    },
    /// List channels.
    List {
        /// Only this account's channels.
        #[arg(long)]
        owner: Option<String>,
    },
}

/// Runs one `onair channel` command against the configured database.
pub async fn run(command: ChannelCommand, config: Config) -> anyhow::Result<()> {
    with_platform(&config, |platform| async move {
        match command {
            ChannelCommand::Create { slug, owner, title } => {
                create(&platform, &slug, &owner, title).await
            }
            ChannelCommand::List { owner } => list(&platform, owner.as_deref()).await,
        }
    })
    .await
}

async fn create(
    platform: &Platform,
    slug: &str,
    owner: &str,
    title: Option<String>,
) -> anyhow::Result<()> {
    if !is_valid_slug(slug) {
        bail!(
            "invalid channel name {slug:?}: use 2 to 64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit"
        );
    }
    let title = title.unwrap_or_else(|| slug.to_owned());
    if title.trim().is_empty() || !TITLE_LEN.contains(&title.chars().count()) {
        bail!(
            "the title must be {} to {} characters, not only spaces",
            TITLE_LEN.start(),
            TITLE_LEN.end()
        );
    }
    if !is_plain_text(&title) {
        bail!("the title must not contain control or bidirectional formatting characters");
    }
    let owner = user::find(platform, owner).await?;
    if owner.role == Role::Viewer {
        bail!(
            "{:?} is a viewer and cannot own a channel; make them a streamer first: onair user role {} streamer",
            owner.username,
            owner.username
        );
    }
    let channel = match platform
        .store()
        .create_channel(NewChannel {
            slug: slug.to_owned(),
            title,
            owner_id: owner.id,
            category: String::new(),
            tags: vec![],
        })
        .await
    {
        Ok(c) => c,
        Err(StoreError::Conflict { .. }) => bail!("channel {slug:?} already exists"),
        Err(e) => return Err(e).context("creating the channel"),
    };
    eprintln!(
        "created channel {} (id {}) owned by {:?}; issue its stream key with: onair key issue {}",
        channel.slug, channel.id, owner.username, channel.slug
    );
    audit(
        platform,
        "channel.create",
        format!("channel:{}", channel.slug),
        serde_json::json!({ "title": channel.title, "owner_id": owner.id, "via": "cli" }),
    )
    .await;
    Ok(())
}

async fn list(platform: &Platform, owner: Option<&str>) -> anyhow::Result<()> {
    const PAGE: u32 = 100;
    let owner = match owner {
        Some(name) => Some(user::find(platform, name).await?),
        None => None,
    };
    let mut rows = Vec::new();
    let mut offset = 0;
    loop {
        let (channels, total) = platform
            .store()
            .list_channels(owner.as_ref().map(|o| o.id), Page::new(offset, PAGE))
            .await
            .context("listing channels")?;
        let got = channels.len() as u32;
        for c in channels {
            let owner_name = match &owner {
                Some(o) => o.username.clone(),
                None => platform
                    .store()
                    .user_by_id(c.owner_id)
                    .await
                    .context("looking up a channel's owner")?
                    .map_or_else(|| format!("#{}", c.owner_id), |u| u.username),
            };
            rows.push(vec![
                c.id.to_string(),
                c.slug,
                owner_name,
                c.title,
                format_time(Some(c.created_at)),
            ]);
        }
        offset += got;
        if got == 0 || u64::from(offset) >= total {
            break;
        }
    }
    print_table(&["ID", "SLUG", "OWNER", "TITLE", "CREATED"], &rows);
    Ok(())
}
