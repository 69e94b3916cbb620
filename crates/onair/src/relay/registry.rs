//! The live registry across nodes: one JetStream KV entry per channel live anywhere, naming
//! the node that holds it. Entries expire with the bucket's `max_age` (`cluster.lease`), so
//! a node that stops refreshing (a crash, a partition) loses its channels within the lease.

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::config::ClusterConfig;
use crate::secret::SecretText;

/// Who holds a live channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The node's `cluster.node_id`.
    pub node: String,
    /// Where the node's HTTP listener is reached (`cluster.advertise_http`).
    pub http: String,
    /// When the publish started there.
    pub started_at: DateTime<Utc>,
}

/// Why the registry could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The NATS server could not be reached.
    #[error("cannot reach NATS: {0}")]
    Connect(String),
    /// The bucket could not be opened or created.
    #[error("cannot open the KV bucket {bucket:?}: {message}")]
    Bucket {
        /// The bucket.
        bucket: String,
        /// The server's or client's reason.
        message: String,
    },
    /// A read, write or delete failed.
    #[error("KV {op} of {channel:?} failed: {message}")]
    Call {
        /// `get`, `put` or `delete`.
        op: &'static str,
        /// The channel.
        channel: String,
        /// The reason.
        message: String,
    },
}

/// The bucket, once NATS is reached.
#[derive(Clone)]
pub struct Registry {
    kv: kv::Store,
    js: jetstream::Context,
    bucket: String,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// Connects to `nats_url` (`cluster.nats_url`) and opens `cluster.lives_bucket`, creating
    /// it with `max_age = cluster.lease` when no node has yet.
    pub async fn open(
        nats_url: &SecretText,
        config: &ClusterConfig,
    ) -> Result<Registry, RegistryError> {
        // The URL may carry credentials (`nats://user:pw@host`): only the error is logged.
        let client = async_nats::connect(nats_url.expose().as_str())
            .await
            .map_err(|e| RegistryError::Connect(e.to_string()))?;
        let js = jetstream::new(client);
        let bucket = config.lives_bucket.clone();
        let kv = match js.get_key_value(bucket.as_str()).await {
            Ok(kv) => kv,
            Err(_) => {
                // The KV layout made by hand: `create_key_value` first reads the account
                // info, whose 2.9 form this client cannot parse; the stream is what it would
                // create.
                let created = js
                    .create_stream(jetstream::stream::Config {
                        name: format!("KV_{bucket}"),
                        subjects: vec![format!("$KV.{bucket}.>")],
                        description: Some("OnAir: which node holds each live channel".into()),
                        max_messages_per_subject: 1,
                        max_age: config.lease,
                        duplicate_window: config.lease,
                        discard: jetstream::stream::DiscardPolicy::New,
                        allow_rollup: true,
                        deny_delete: true,
                        allow_direct: true,
                        num_replicas: 1,
                        // A lease is worthless after a restart of NATS: memory is enough.
                        storage: jetstream::stream::StorageType::Memory,
                        ..Default::default()
                    })
                    .await;
                if created.is_ok() {
                    info!(bucket, lease = ?config.lease, "created the live registry bucket");
                }
                // Also when another node created it between our two calls.
                js.get_key_value(bucket.as_str())
                    .await
                    .map_err(|e| RegistryError::Bucket {
                        bucket: bucket.clone(),
                        message: match created {
                            Err(c) => format!("{c}; then {e}"),
                            Ok(_) => e.to_string(),
                        },
                    })?
            }
        };
        if let Ok(status) = kv.status().await
            && status.max_age() != config.lease
        {
            warn!(
                bucket,
                bucket_lease = ?status.max_age(),
                lease = ?config.lease,
                "the live registry bucket has another lease than cluster.lease; the bucket's applies"
            );
        }
        Ok(Registry { kv, js, bucket })
    }

    /// Deletes the whole bucket, every node's claims with it: for tests, which make a bucket
    /// each, and for an operator retiring a cluster.
    pub async fn delete_bucket(&self) -> Result<(), RegistryError> {
        self.js
            .delete_stream(format!("KV_{}", self.bucket))
            .await
            .map(|_| ())
            .map_err(|e| RegistryError::Bucket {
                bucket: self.bucket.clone(),
                message: e.to_string(),
            })
    }

    /// Claims (or refreshes the claim on) `channel` for `holder`.
    pub async fn put(&self, channel: &str, holder: &Holder) -> Result<(), RegistryError> {
        // Invariant: a struct of strings and a date always serialises.
        let value = serde_json::to_vec(holder).expect("a Holder serialises");
        self.kv
            .put(channel, Bytes::from(value))
            .await
            .map(|_| ())
            .map_err(|e| call("put", channel, e))
    }

    /// Gives up the claim on `channel` (its publish ended here).
    pub async fn remove(&self, channel: &str) -> Result<(), RegistryError> {
        self.kv
            .delete(channel)
            .await
            .map_err(|e| call("delete", channel, e))
    }

    /// Who holds `channel` now, if anyone: `None` once its entry was removed or expired.
    pub async fn holder(&self, channel: &str) -> Result<Option<Holder>, RegistryError> {
        let value = self
            .kv
            .get(channel)
            .await
            .map_err(|e| call("get", channel, e))?;
        Ok(
            value.and_then(|v| match serde_json::from_slice::<Holder>(&v) {
                Ok(h) => Some(h),
                Err(e) => {
                    warn!(channel, error = %e, "unreadable live registry entry; ignored");
                    None
                }
            }),
        )
    }
}

fn call(op: &'static str, channel: &str, e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Call {
        op,
        channel: channel.to_owned(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The real NATS of the test machines, or `None` (a skip, which CI refuses).
    fn nats() -> Option<(SecretText, ClusterConfig)> {
        let up = std::net::TcpStream::connect_timeout(
            &"127.0.0.1:4222".parse().expect("an address"),
            Duration::from_secs(2),
        )
        .is_ok();
        if !up {
            assert!(
                !onair_store::testing::is_ci(),
                "NATS missing at 127.0.0.1:4222, and CI=true: CI never skips a test"
            );
            println!("skipped: NATS missing at 127.0.0.1:4222");
            return None;
        }
        let url = SecretText::new("nats://127.0.0.1:4222".into());
        Some((
            url,
            ClusterConfig {
                lives_bucket: format!("test-lives-{:016x}", rand::random::<u64>()),
                lease: Duration::from_secs(1),
                ..ClusterConfig::default()
            },
        ))
    }

    #[tokio::test]
    async fn a_claim_reads_back_until_removed_or_its_lease_runs_out() {
        let Some((url, config)) = nats() else { return };
        let registry = Registry::open(&url, &config)
            .await
            .expect("the bucket opens");
        let holder = Holder {
            node: "origin".into(),
            http: "http://127.0.0.1:8080".into(),
            started_at: Utc::now(),
        };
        registry.put("demo", &holder).await.expect("put");
        assert_eq!(
            registry.holder("demo").await.expect("get"),
            Some(holder.clone())
        );
        assert_eq!(registry.holder("other").await.expect("get"), None);
        registry.remove("demo").await.expect("delete");
        assert_eq!(registry.holder("demo").await.expect("get"), None);

        // A second node opens the same bucket; a claim nobody refreshes is gone after the
        // lease (1 s here) with no delete.
        let again = Registry::open(&url, &config)
            .await
            .expect("the bucket opens twice");
        again.put("demo", &holder).await.expect("put");
        let mut gone = false;
        for _ in 0..40 {
            if registry.holder("demo").await.expect("get").is_none() {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(gone, "the claim outlived its lease");
        registry
            .delete_bucket()
            .await
            .expect("the test's bucket is deleted");
    }
}
