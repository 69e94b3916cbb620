//! The retention policy for replays: a maximum age and a maximum total size per channel.
//! The policy comes from the store (an admin sets it through the API) or, until an admin has,
//! from `[hls]` in the config. A background task applies it hourly; the API applies it at
//! once when the policy changes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use onair_store::{Recording, StoreError};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Hls, files};

/// The settings key the admin's policy is stored under, as JSON.
pub const SETTING: &str = "recordings.retention";
/// How often the policy is applied.
pub const INTERVAL: Duration = Duration::from_secs(3600);

/// What to keep. Unset bounds keep everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Replays that ended longer ago than this many seconds are deleted.
    pub max_age_seconds: Option<u64>,
    /// Per channel, the oldest replays are deleted while the channel's replays take more
    /// bytes than this.
    pub max_bytes_per_channel: Option<u64>,
}

impl RetentionPolicy {
    /// The ids of `ended` recordings (as `Store::ended_recordings` lists them: by channel, then
    /// oldest first) that the policy deletes at `now`.
    pub fn expired(&self, ended: &[Recording], now: DateTime<Utc>) -> Vec<i64> {
        let mut doomed = Vec::new();
        let cutoff = self.max_age_seconds.and_then(|s| {
            chrono::Duration::try_seconds(i64::try_from(s).unwrap_or(i64::MAX))
                .and_then(|d| now.checked_sub_signed(d))
        });
        let mut by_channel: HashMap<i64, Vec<&Recording>> = HashMap::new();
        for rec in ended {
            let ended_at = rec.ended_at.unwrap_or(rec.started_at);
            if cutoff.is_some_and(|c| ended_at < c) {
                doomed.push(rec.id);
            } else {
                by_channel.entry(rec.channel_id).or_default().push(rec);
            }
        }
        if let Some(max) = self.max_bytes_per_channel {
            for recs in by_channel.values_mut() {
                recs.sort_by_key(|r| (r.started_at, r.id));
                let mut total: u64 = recs.iter().map(|r| r.size_bytes).sum();
                for rec in recs.iter() {
                    if total <= max {
                        break;
                    }
                    total -= rec.size_bytes;
                    doomed.push(rec.id);
                }
            }
        }
        doomed.sort_unstable();
        doomed
    }
}

impl Hls {
    /// The policy in force: the admin's, else the config's.
    pub async fn retention_policy(&self) -> Result<RetentionPolicy, StoreError> {
        let stored = self.platform.store().setting(SETTING).await?;
        Ok(stored
            .and_then(|text| match serde_json::from_str(&text) {
                Ok(p) => Some(p),
                Err(e) => {
                    warn!(error = %e, "stored retention policy does not parse; using the config's");
                    None
                }
            })
            .unwrap_or(RetentionPolicy {
                max_age_seconds: self.config.retention_max_age.map(|d| d.as_secs()),
                max_bytes_per_channel: self.config.retention_max_bytes,
            }))
    }

    /// Applies the policy now: deletes each expired replay's row, then its files. Returns how
    /// many were deleted.
    pub async fn apply_retention(&self) -> Result<usize, StoreError> {
        let policy = self.retention_policy().await?;
        if policy == RetentionPolicy::default() {
            return Ok(0);
        }
        let store = self.platform.store();
        let ended = store.ended_recordings().await?;
        let doomed = policy.expired(&ended, Utc::now());
        let mut deleted = 0;
        for id in doomed {
            if let Some(rec) = store.delete_recording(id).await? {
                self.remove_files(&rec).await;
                deleted += 1;
            }
        }
        if deleted > 0 {
            info!(deleted, "retention policy deleted replays");
        }
        Ok(deleted)
    }

    /// Deletes a recording's directory (its row is gone already).
    pub async fn remove_files(&self, rec: &Recording) {
        let root = self.root.clone();
        let path = rec.path.clone();
        match tokio::task::spawn_blocking(move || files::remove_recording(&root, &path)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(recording = rec.id, error = %e, "cannot delete a replay's files"),
            Err(e) => warn!(recording = rec.id, error = %e, "replay deletion task failed"),
        }
    }
}

/// Applies the retention policy every [`INTERVAL`] until `shutdown`.
pub async fn run(hls: Arc<Hls>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = hls.apply_retention().await {
            debug!(error = %e, "cannot apply the retention policy; will retry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onair_store::RecordingState;

    fn rec(id: i64, channel_id: i64, days_ago: i64, size: u64) -> Recording {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let at = now - chrono::Duration::days(days_ago);
        Recording {
            id,
            channel_id,
            live_session_id: None,
            title: String::new(),
            path: format!("c{channel_id}/{id}"),
            state: RecordingState::Finished,
            started_at: at,
            ended_at: Some(at),
            duration_ms: 1000,
            size_bytes: size,
            thumbnail: None,
        }
    }

    #[test]
    fn age_and_size_bounds_pick_the_oldest() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let ended = [
            rec(1, 1, 40, 100),
            rec(2, 1, 20, 300),
            rec(3, 1, 10, 300),
            rec(4, 1, 1, 300),
            rec(5, 2, 50, 10),
            rec(6, 2, 2, 10),
        ];
        assert!(RetentionPolicy::default().expired(&ended, now).is_empty());
        let by_age = RetentionPolicy {
            max_age_seconds: Some(30 * 86_400),
            max_bytes_per_channel: None,
        };
        assert_eq!(by_age.expired(&ended, now), vec![1, 5]);
        let by_size = RetentionPolicy {
            max_age_seconds: None,
            max_bytes_per_channel: Some(700),
        };
        // Channel 1 holds 1000 bytes: dropping 1 (100) leaves 900, dropping 2 leaves 600.
        assert_eq!(by_size.expired(&ended, now), vec![1, 2]);
        let both = RetentionPolicy {
            max_age_seconds: Some(30 * 86_400),
            max_bytes_per_channel: Some(600),
        };
        assert_eq!(both.expired(&ended, now), vec![1, 2, 5]);
    }
}
