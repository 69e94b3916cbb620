//! `onair key issue|revoke|list`: stream keys. A key is shown once, when it is issued; the
//! store keeps only its jti, the handle to list and revoke it by.

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use onair::config::Config;
use onair::platform::Platform;
use onair_auth::Jti;

use super::{audit, format_time, parse_duration, print_table, with_platform};

// The REST API's rules, so a key issued here could have been issued there.
use onair::api::validate::{KEY_TTL_MAX, KEY_TTL_MIN, LABEL_MAX};

/// Shortest and longest key lifetimes (a minute to ten years).
const TTL_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(KEY_TTL_MIN)..=Duration::from_secs(KEY_TTL_MAX);

/// `onair key …`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Issue a stream key for a channel. The key is printed once, alone on stdout.
    ///
    /// Example: KEY=$(onair key issue demo --label "OBS at home")
    Issue {
        /// The channel's slug.
        channel: String,
        /// A name for the key, to tell keys apart in `onair key list`.
        #[arg(long, default_value = "")]
        label: String,
        /// How long the key works: 30d, 12h, … (default: [auth] stream_key_ttl, else until
        /// revoked).
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<Duration>,
    },
    /// Revoke a key by its jti (from `onair key list`). A running server ends a live publish
    /// that uses it within a second.
    Revoke {
        /// The key's jti: 32 hex digits.
        jti: String,
    },
    /// List a channel's keys: jti, label, created, last used, revoked. Never the keys.
    List {
        /// The channel's slug.
        channel: String,
    },
}

/// Runs one `onair key` command against the configured database.
pub async fn run(command: KeyCommand, config: Config) -> anyhow::Result<()> {
    let rtmp_hint = rtmp_hint(&config);
    with_platform(&config, |platform| async move {
        match command {
            KeyCommand::Issue {
                channel,
                label,
                ttl,
            } => issue(&platform, &channel, &label, ttl, &rtmp_hint).await,
            KeyCommand::Revoke { jti } => revoke(&platform, &jti).await,
            KeyCommand::List { channel } => list(&platform, &channel).await,
        }
    })
    .await
}

async fn issue(
    platform: &Platform,
    slug: &str,
    label: &str,
    ttl: Option<Duration>,
    rtmp_hint: &str,
) -> anyhow::Result<()> {
    if label.chars().count() > LABEL_MAX {
        bail!("the label must be at most {LABEL_MAX} characters");
    }
    if !onair::api::validate::is_plain_text(label) {
        bail!("the label must not contain control or bidirectional formatting characters");
    }
    if let Some(ttl) = ttl
        && !TTL_RANGE.contains(&ttl)
    {
        bail!("--ttl must be between 1 minute and 10 years");
    }
    let channel = channel(platform, slug).await?;
    let issued = platform
        .issue_stream_key(channel.id, label, ttl)
        .await
        .context("issuing the key")?;
    // Alone on stdout, so `KEY=$(onair key issue …)` captures exactly the key.
    println!("{}", issued.token.expose());
    let expires = issued.expires_at.map_or_else(
        || "never (until revoked)".to_owned(),
        |t| format_time(Some(t)),
    );
    eprintln!(
        "issued a stream key for channel {} (jti {}, expires {expires}); it is shown only now.\n\
         OBS: Settings > Stream > Service: Custom, Server: {rtmp_hint}, Stream Key: the key above.\n\
         Viewers watch the channel name, not the key: {rtmp_hint}/{}",
        channel.slug, issued.row.jti, channel.slug
    );
    audit(
        platform,
        "key.issue",
        format!("key:{}", issued.row.jti),
        serde_json::json!({
            "channel": channel.slug,
            "label": issued.row.label,
            "expires_at": issued.expires_at,
            "via": "cli",
        }),
    )
    .await;
    Ok(())
}

async fn revoke(platform: &Platform, jti: &str) -> anyhow::Result<()> {
    // A pasted key instead of its jti must not be echoed back.
    let jti = Jti::from_str(jti)
        .map_err(|_| anyhow::anyhow!("not a jti (32 hex digits; see onair key list CHANNEL)"))?;
    let key = platform
        .store()
        .stream_key_by_jti(jti.as_str())
        .await
        .context("looking up the key")?
        .with_context(|| format!("no stream key with jti {}", jti.as_str()))?;
    let revoked = platform
        .revoke_stream_key(jti.as_str())
        .await
        .context("revoking the key")?;
    if !revoked {
        eprintln!(
            "key {} was already revoked at {}",
            key.jti,
            format_time(key.revoked_at)
        );
        return Ok(());
    }
    eprintln!(
        "revoked key {}; a live publish with it ends within a second",
        key.jti
    );
    audit(
        platform,
        "key.revoke",
        format!("key:{}", key.jti),
        serde_json::json!({ "channel_id": key.channel_id, "via": "cli" }),
    )
    .await;
    Ok(())
}

async fn list(platform: &Platform, slug: &str) -> anyhow::Result<()> {
    let channel = channel(platform, slug).await?;
    let keys = platform
        .store()
        .list_stream_keys(channel.id)
        .await
        .context("listing the keys")?;
    let rows: Vec<Vec<String>> = keys
        .into_iter()
        .map(|k| {
            vec![
                k.jti,
                if k.label.is_empty() {
                    "-".to_owned()
                } else {
                    k.label
                },
                format_time(Some(k.created_at)),
                format_time(k.last_used_at),
                format_time(k.revoked_at),
            ]
        })
        .collect();
    print_table(&["JTI", "LABEL", "CREATED", "LAST USED", "REVOKED"], &rows);
    Ok(())
}

async fn channel(platform: &Platform, slug: &str) -> anyhow::Result<onair_store::Channel> {
    platform
        .store()
        .channel_by_slug(slug)
        .await
        .context("looking up the channel")?
        .with_context(|| {
            format!(
                "no channel {slug:?} (create it with: onair channel create {slug} --owner NAME)"
            )
        })
}

/// Where OBS publishes, from the configured listener: `rtmp://HOST:PORT/APP`.
fn rtmp_hint(config: &Config) -> String {
    if config.rtmp.public_url.is_some() {
        return config.rtmp.publish_url();
    }
    let listen = config.rtmp.listen;
    // A wildcard listener says nothing about the address encoders reach.
    let host = if listen.ip().is_unspecified() {
        "HOST".to_owned()
    } else {
        match listen {
            std::net::SocketAddr::V6(a) => format!("[{}]", a.ip()),
            std::net::SocketAddr::V4(a) => a.ip().to_string(),
        }
    };
    format!("rtmp://{host}:{}/{}", listen.port(), config.rtmp.app)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rtmp_hint_follows_the_listener() {
        let mut config = Config::default();
        assert_eq!(rtmp_hint(&config), "rtmp://HOST:1935/live");
        config.rtmp.listen = "10.1.2.3:1936".parse().unwrap();
        config.rtmp.app = "in".into();
        assert_eq!(rtmp_hint(&config), "rtmp://10.1.2.3:1936/in");
        config.rtmp.listen = "[::1]:1935".parse().unwrap();
        assert_eq!(rtmp_hint(&config), "rtmp://[::1]:1935/in");
        config.rtmp.public_url = Some("rtmp://live.example.com/in".into());
        assert_eq!(rtmp_hint(&config), "rtmp://live.example.com/in");
    }
}
