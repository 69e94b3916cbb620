//! `[cluster]`: this node's link to the others over NATS, the [`ChatBus`] of the chat.
//!
//! Only built when `cluster.nats_url` is set. Events go out as JSON on
//! `{prefix}.chat.{channel}` (`{prefix}.chat.stats` for the audience) through a bounded queue
//! and one publishing task, so the chat never waits for NATS; everything under
//! `{prefix}.chat.>` comes in to [`ChatService::receive`]. The client connects and reconnects
//! in the background: with NATS away the node serves its own members alone (its sends are
//! stored, delivered here and counted as publish failures), says so on `/readyz` and in
//! `onair_cluster_connected`, and at each (re)connection re-reads from the store what it
//! may have missed ([`ChatService::resync`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::connection::State;
use bytes::Bytes;
use onair_chat::{BusEvent, ChatBus, ChatService};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::ClusterConfig;
use crate::secret::SecretText;

/// Events queued for NATS at most; past it they are counted as failures and dropped (the
/// other nodes repair from the store).
const QUEUE: usize = 4096;

/// How long one publish may take before it counts as failed.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);

/// This node in the cluster.
#[derive(Debug)]
pub struct Cluster {
    node_id: String,
    prefix: String,
    url: SecretText,
    connected: Arc<AtomicBool>,
    publish_failures: AtomicU64,
    outbox: mpsc::Sender<(String, Bytes)>,
    inbox: parking_lot::Mutex<Option<mpsc::Receiver<(String, Bytes)>>>,
}

impl Cluster {
    /// The node of `config` (`nats_url` set); call [`Cluster::run`] to connect.
    pub fn new(config: &ClusterConfig, url: SecretText) -> Arc<Cluster> {
        let (outbox, inbox) = mpsc::channel(QUEUE);
        Arc::new(Cluster {
            node_id: config.node_id.clone().unwrap_or_else(default_node_id),
            prefix: config.subject_prefix.clone(),
            url,
            connected: Arc::default(),
            publish_failures: AtomicU64::new(0),
            outbox,
            inbox: parking_lot::Mutex::new(Some(inbox)),
        })
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node_id
    }

    /// Whether NATS is reachable now.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Events that did not reach NATS (not connected, queue full, publish error).
    pub fn publish_failures(&self) -> u64 {
        self.publish_failures.load(Ordering::Relaxed)
    }

    fn subject(&self, event: &BusEvent) -> String {
        match event {
            BusEvent::Message { channel, .. }
            | BusEvent::Room { channel, .. }
            | BusEvent::SlowMode { channel, .. } => {
                // Channel names are [a-z0-9_-] (channel.rs), valid subject tokens.
                format!("{}.chat.room.{channel}", self.prefix)
            }
            _ => format!("{}.chat.stats", self.prefix),
        }
    }

    /// Connects (retrying in the background), publishes what the chat hands over and hands
    /// the chat what the others send, until `shutdown`.
    pub async fn run(self: Arc<Self>, chat: Arc<ChatService>, shutdown: CancellationToken) {
        let Some(mut outbox) = self.inbox.lock().take() else {
            return;
        };
        let reconnected = Arc::new(Notify::new());
        let connected = self.connected.clone();
        let notify = reconnected.clone();
        let node = self.node_id.clone();
        let options = async_nats::ConnectOptions::new()
            .name(format!("onair {}", self.node_id))
            // Our own events are applied here before they are sent.
            .no_echo()
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((250 * attempts.max(1) as u64).min(2000))
            })
            .event_callback(move |event| {
                let connected = connected.clone();
                let notify = notify.clone();
                let node = node.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            info!(node, "cluster: connected to NATS");
                            connected.store(true, Ordering::Relaxed);
                            notify.notify_one();
                        }
                        async_nats::Event::Disconnected => {
                            warn!(
                                node,
                                "cluster: lost NATS; serving this node's members alone"
                            );
                            connected.store(false, Ordering::Relaxed);
                        }
                        async_nats::Event::SlowConsumer(_) => {
                            // Events dropped by the client: the stats and the next message
                            // show the gap, which the store fills.
                            warn!(node, "cluster: NATS events dropped (slow consumer)");
                        }
                        other => debug!(node, event = %other, "cluster: NATS event"),
                    }
                }
            });
        let client = match options.connect(self.url.expose().as_str()).await {
            Ok(client) => client,
            Err(e) => {
                // With retry_on_initial_connect only a malformed URL ends here.
                warn!(error = %e, "cluster: cannot use cluster.nats_url; this node stays alone");
                return;
            }
        };
        let mut inbound = match client.subscribe(format!("{}.chat.>", self.prefix)).await {
            Ok(sub) => sub,
            Err(e) => {
                warn!(error = %e, "cluster: cannot subscribe; this node stays alone");
                return;
            }
        };
        let publisher = {
            let client = client.clone();
            let cluster = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    let (subject, payload) = tokio::select! {
                        _ = shutdown.cancelled() => break,
                        next = outbox.recv() => match next {
                            Some(next) => next,
                            None => break,
                        },
                    };
                    if client.connection_state() != State::Connected {
                        cluster.publish_failures.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let sent =
                        tokio::time::timeout(PUBLISH_TIMEOUT, client.publish(subject, payload))
                            .await;
                    if !matches!(sent, Ok(Ok(()))) {
                        cluster.publish_failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                () = reconnected.notified() => chat.resync().await,
                message = futures_util::StreamExt::next(&mut inbound) => {
                    let Some(message) = message else { break };
                    match serde_json::from_slice::<BusEvent>(&message.payload) {
                        Ok(event) => chat.receive(event),
                        Err(e) => debug!(subject = %message.subject, error = %e, "cluster: event not understood; ignored"),
                    }
                }
            }
        }
        publisher.abort();
        let _ = client.drain().await;
    }
}

impl ChatBus for Cluster {
    fn publish(&self, event: BusEvent) {
        let subject = self.subject(&event);
        let payload = match serde_json::to_vec(&event) {
            Ok(payload) => Bytes::from(payload),
            Err(_) => return,
        };
        if self.outbox.try_send((subject, payload)).is_err() {
            self.publish_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn node_id(&self) -> &str {
        &self.node_id
    }
}

/// The host name and a random suffix, so two processes on one host differ.
fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "onair".into());
    format!("{host}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_differ_between_processes_on_one_host() {
        let (a, b) = (default_node_id(), default_node_id());
        assert_ne!(a, b);
        assert!(a.len() > 7, "{a}");
    }

    #[test]
    fn room_events_go_to_the_rooms_subject_and_stats_to_their_own() {
        let config = ClusterConfig {
            node_id: Some("n1".into()),
            subject_prefix: "t1".into(),
            ..ClusterConfig::default()
        };
        let cluster = Cluster::new(&config, SecretText::new("nats://127.0.0.1:4222".into()));
        assert_eq!(cluster.node(), "n1");
        let room = BusEvent::SlowMode {
            channel: "demo".into(),
            channel_id: 1,
            seconds: 2,
        };
        assert_eq!(cluster.subject(&room), "t1.chat.room.demo");
        let stats = BusEvent::Stats {
            node: "n1".into(),
            rooms: vec![],
        };
        assert_eq!(cluster.subject(&stats), "t1.chat.stats");
        assert!(!cluster.connected());
        assert_eq!(cluster.publish_failures(), 0);
    }
}
