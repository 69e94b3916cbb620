//! [`TestServer`]: the real server, in-process, on port 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use onair::config::{Config, DevKey};
use onair::platform::Platform;
use onair::secret::{SecretText, StreamKey};
use onair::server::RunningServer;
use onair::state::AppState;
use onair_hub::{Hub, Protocol};

use crate::random_name;

/// The server, started in the test's tokio runtime with both listeners on `127.0.0.1:0` and
/// one random dev key for one random channel. Dropping it cancels the server; call
/// [`TestServer::shutdown`] to also wait for the connections to end.
#[derive(Debug)]
pub struct TestServer {
    server: Option<RunningServer>,
    /// Where RTMP listens.
    pub rtmp_addr: SocketAddr,
    /// Where HTTP listens.
    pub http_addr: SocketAddr,
    /// Where RTMPS listens, when `configure` set a certificate (`tls.rtmps_listen` is
    /// loopback port 0 in tests).
    pub rtmps_addr: Option<SocketAddr>,
    /// The channel [`TestServer::key`] publishes to.
    pub channel: String,
    /// The dev stream key of [`TestServer::channel`]; random per test.
    pub key: String,
    /// Where HLS segments and replays are written: a fresh directory per test, removed when
    /// the server is dropped (unless `configure` pointed `hls.recordings_dir` elsewhere).
    pub recordings_dir: std::path::PathBuf,
    owns_recordings_dir: bool,
}

impl TestServer {
    /// Starts a server. `configure` sees the test defaults (loopback port 0, the dev key,
    /// open publishing off, a private in-memory SQLite database) and may change anything.
    ///
    /// # Panics
    ///
    /// If the server cannot start.
    pub async fn start(configure: impl FnOnce(&mut Config)) -> TestServer {
        let channel = random_name("ch");
        let key = random_name("key");
        let mut config = Config::default();
        config.rtmp.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.dev.open = false;
        config.dev.keys = vec![DevKey {
            channel: channel.clone(),
            key: StreamKey::new(key.clone()),
        }];
        config.shutdown_grace = Duration::from_secs(2);
        config.storage.database_url = Some(SecretText::new("sqlite::memory:".into()));
        let own_dir = std::env::temp_dir().join(random_name("onair-e2e-recordings"));
        config.hls.recordings_dir = Some(own_dir.clone());
        config.tls.rtmps_listen = SocketAddr::from(([127, 0, 0, 1], 0));
        configure(&mut config);
        let recordings_dir = config.recordings_dir();
        let owns_recordings_dir = recordings_dir == own_dir;
        let platform = Platform::open(&config.storage, &config.auth)
            .await
            .expect("the test database opens");
        let server = RunningServer::start(config, platform)
            .await
            .expect("the test server starts on port 0");
        TestServer {
            rtmp_addr: server.rtmp_addr,
            http_addr: server.http_addr,
            rtmps_addr: server.rtmps_addr,
            server: Some(server),
            channel,
            key,
            recordings_dir,
            owns_recordings_dir,
        }
    }

    fn running(&self) -> &RunningServer {
        // Invariant: `server` is only taken by `shutdown`, which consumes `self`.
        self.server
            .as_ref()
            .expect("server is running until shutdown")
    }

    /// The hub.
    pub fn hub(&self) -> &Arc<Hub> {
        self.running().hub()
    }

    /// The store and signing key.
    pub fn platform(&self) -> &Arc<Platform> {
        &self.running().state().platform
    }

    /// The shared state: config and metrics.
    pub fn state(&self) -> &Arc<AppState> {
        self.running().state()
    }

    /// `rtmp://127.0.0.1:{port}/live/{key}`: where to publish.
    pub fn publish_url(&self, key: &str) -> String {
        format!(
            "rtmp://{}/{}/{key}",
            self.rtmp_addr,
            self.state().config.rtmp.app
        )
    }

    /// `rtmp://127.0.0.1:{port}/live/{channel}`: where to play.
    pub fn play_url(&self, channel: &str) -> String {
        format!(
            "rtmp://{}/{}/{channel}",
            self.rtmp_addr,
            self.state().config.rtmp.app
        )
    }

    /// `http://127.0.0.1:{port}/live/{channel}.flv`: HTTP-FLV.
    pub fn flv_url(&self, channel: &str) -> String {
        self.http_url(&format!("/live/{channel}.flv"))
    }

    /// `ws://127.0.0.1:{port}/live/{channel}.flv`: WebSocket-FLV, same path as HTTP-FLV.
    pub fn ws_url(&self, channel: &str) -> String {
        format!("ws://{}/live/{channel}.flv", self.http_addr)
    }

    /// `http://127.0.0.1:{port}{path}`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http_addr)
    }

    /// Applies `config`'s run-time options as SIGHUP does (the certificate is re-read).
    pub fn reload(&self, config: &Config) -> onair::server::Reload {
        self.running().reload(config)
    }

    /// `rtmps://127.0.0.1:{port}/live/{name}`: publish or play over TLS.
    ///
    /// # Panics
    ///
    /// If the server has no certificate configured.
    pub fn rtmps_url(&self, name: &str) -> String {
        let addr = self
            .rtmps_addr
            .expect("the server was started with a certificate");
        format!("rtmps://{addr}/{}/{name}", self.state().config.rtmp.app)
    }

    /// Waits up to `timeout` for `channel` to have a publisher.
    pub async fn wait_live(&self, channel: &str, timeout: Duration) -> bool {
        crate::wait_until(timeout, || self.hub().is_live(channel)).await
    }

    /// Video frames the live `channel`'s current publish has sent (0 when it is not live).
    pub fn video_frames(&self, channel: &str) -> u64 {
        self.hub()
            .channel_snapshot(channel)
            .map_or(0, |s| s.video_frames)
    }

    /// Waits up to `timeout` for the live `channel` to carry `media` more of video than it
    /// has now, counted in frames at `fps`: a test that needs the stream to move on (danmaku
    /// spread over the live, a takeover after some seconds) waits for the media itself, not
    /// for the clock.
    pub async fn wait_media(
        &self,
        channel: &str,
        media: Duration,
        fps: u32,
        timeout: Duration,
    ) -> bool {
        let target =
            self.video_frames(channel) + (media.as_secs_f64() * f64::from(fps)).ceil() as u64;
        crate::wait_until(timeout, || self.video_frames(channel) >= target).await
    }

    /// How many viewers of `protocol` the live `channel` has (0 when it is not live).
    pub fn viewers(&self, channel: &str, protocol: Protocol) -> usize {
        self.hub()
            .channel_snapshot(channel)
            .and_then(|s| {
                s.viewers
                    .iter()
                    .find(|(p, _)| *p == protocol)
                    .map(|(_, n)| *n)
            })
            .unwrap_or(0)
    }

    /// Reads one sample from `/metrics` over HTTP (the text exposition format): the value of
    /// the first line that starts with `name` followed by a space or `{`.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = crate::http::get_text(&self.http_url("/metrics"), Duration::from_secs(5))
            .await
            .ok()?;
        parse_metric(&text, name)
    }

    /// Stops the server and waits up to its `shutdown_grace` for connections to end.
    /// Returns whether every connection ended within the configured shutdown grace.
    pub async fn shutdown(mut self) -> bool {
        match self.server.take() {
            Some(server) => {
                let grace = server.state().config.shutdown_grace;
                server.shutdown(grace).await
            }
            None => true,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.state().shutdown.cancel();
        }
        if self.owns_recordings_dir {
            let _ = std::fs::remove_dir_all(&self.recordings_dir);
        }
    }
}

/// The value of metric `name` in a Prometheus text exposition.
pub fn parse_metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let rest = line.strip_prefix(name)?;
            if !(rest.starts_with(' ') || rest.starts_with('{')) {
                return None;
            }
            line.rsplit(' ').next()?.parse().ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_read_by_exact_name() {
        let text = "# HELP onair_peer_errors_total x\nonair_peer_errors_total_extra 9\nonair_peer_errors_total 3\n\
                    onair_channel_viewers{channel=\"a\",protocol=\"rtmp\"} 2\n";
        assert_eq!(parse_metric(text, "onair_peer_errors_total"), Some(3.0));
        assert_eq!(parse_metric(text, "onair_channel_viewers"), Some(2.0));
        assert_eq!(parse_metric(text, "onair_missing"), None);
    }
}
