//! One push: the channel played from the hub, published to one destination.
//!
//! The task keeps one hub subscription for the whole live, so what it reads never goes back
//! in time; each connection to the destination starts at a keyframe (the newest one, after a
//! reconnect) with the metadata and sequence headers sent first, stamped with that keyframe's
//! time. [`Timeline`] holds that rule and the one that a timestamp never goes backwards on a
//! track, across every connection of the live.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use onair_client::backoff::{Backoff, BackoffPolicy};
use onair_client::{ClientError, ClientOptions, RtmpClient};
use onair_hub::{Delivery, Entry, Protocol, RecvError, Subscriber};
use onair_media::{Frame, MediaKind, Timestamp};
use onair_rtmp::session::ClientEvent;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{PushState, Restreams, Shared, Target};
use crate::metrics::Metrics;

/// Most payload bytes one hub delivery hands the push, as for viewers: a destination slower
/// than the stream leaves its backlog in the ring, where the hub's lag check skips it.
const BATCH_BYTES: usize = 256 * 1024;

/// Longest a push waits for the destination to take its goodbye (`FCUnpublish`,
/// `deleteStream`, the close).
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What one running push needs.
pub(super) struct Push {
    pub(super) restreams: Arc<Restreams>,
    pub(super) destination: i64,
    pub(super) run: u64,
    pub(super) target: Target,
    pub(super) stop: CancellationToken,
    /// Cancelled when this push has ended.
    pub(super) done: CancellationToken,
    /// The push of the same destination this one replaces, still closing maybe.
    pub(super) predecessor: Option<CancellationToken>,
    pub(super) shared: Arc<Shared>,
}

/// Why a connection to the destination ended without an error.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The live is over.
    LiveEnded,
    /// Disabled, deleted, replaced or shutting down.
    Stopped,
}

/// Why a connection to the destination failed.
#[derive(Debug, thiserror::Error)]
enum PushError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the destination ended the publish ({0})")]
    Ended(&'static str),
    #[error("fell behind the live edge too often; starting over from the newest keyframe")]
    TooSlow,
    #[error(
        "{0} is a loopback, private or link-local address, which restream.allow_private_addresses forbids"
    )]
    PrivateAddress(String),
    #[error("no TLS for rtmps://: {0}")]
    NoTls(String),
    #[error("the TLS handshake with {authority} failed")]
    Tls {
        authority: String,
        source: std::io::Error,
    },
}

impl PushError {
    fn is_final(&self) -> bool {
        match self {
            PushError::Client(e) => e.is_final_refusal(),
            PushError::NoTls(_) | PushError::PrivateAddress(_) => true,
            PushError::Ended(_) | PushError::TooSlow | PushError::Tls { .. } => false,
        }
    }
}

impl Push {
    pub(super) async fn run(self, mut subscriber: Subscriber) {
        subscriber.set_batch_bytes(BATCH_BYTES);
        let metrics = self.restreams.metrics.clone();
        let policy = BackoffPolicy {
            max: self.restreams.config.max_backoff,
            ..BackoffPolicy::default()
        };
        let mut backoff = Backoff::new(policy);
        let mut timeline = Timeline::default();
        let mut batch = Vec::new();
        if let Some(before) = &self.predecessor {
            // Its goodbye is bounded by CLOSE_WAIT; past that the destination times it out.
            tokio::select! {
                _ = before.cancelled() => {}
                _ = tokio::time::sleep(CLOSE_WAIT) => {}
                _ = self.stop.cancelled() => {}
            }
        }
        info!(url = %self.target.url.redacted(), "restream started");
        loop {
            if self.stop.is_cancelled() || !subscriber.is_live() {
                break;
            }
            self.shared.update(|s| {
                s.state = PushState::Connecting;
                s.live_since = None;
            });
            let mut up_since = None;
            let result = self
                .connection(&mut subscriber, &mut timeline, &mut batch, &mut up_since)
                .await;
            let error = match result {
                Ok(End::LiveEnded) | Ok(End::Stopped) => break,
                Err(PushError::TooSlow) => {
                    // The old subscription is spent; a new one starts at the GOP cache, and the
                    // timeline drops what it already sent.
                    subscriber = self
                        .restreams
                        .hub
                        .subscribe(subscriber.channel(), Protocol::Restream);
                    subscriber.set_batch_bytes(BATCH_BYTES);
                    PushError::TooSlow
                }
                Err(e) => e,
            };
            Metrics::inc(&metrics.restream_failures);
            let shown = self.target.url.scrub(&format!("{error:#}"));
            let shown = match std::error::Error::source(&error) {
                Some(cause) => format!("{shown}: {}", self.target.url.scrub(&cause.to_string())),
                None => shown,
            };
            let retry = if error.is_final() {
                None
            } else {
                backoff.next(up_since.map(|at: Instant| at.elapsed()), rand::random())
            };
            let Some(retry) = retry else {
                warn!(
                    error = shown,
                    "restream refused for good; no more attempts in this live"
                );
                self.shared.update(|s| {
                    s.state = PushState::Failed;
                    s.last_error = Some(shown);
                    s.live_since = None;
                });
                self.wait_for_end(&mut subscriber, &mut batch).await;
                break;
            };
            warn!(error = shown, retry_in = ?retry.delay, attempt = retry.attempt, "restream failed; retrying");
            self.shared.update(|s| {
                s.state = PushState::Retrying;
                s.last_error = Some(shown);
                s.attempts = retry.attempt;
                s.live_since = None;
            });
            tokio::select! {
                _ = tokio::time::sleep(retry.delay) => {}
                _ = self.stop.cancelled() => break,
            }
        }
        info!(
            bytes = self
                .shared
                .bytes_sent
                .load(std::sync::atomic::Ordering::Relaxed),
            "restream ended"
        );
        self.done.cancel();
        self.restreams.finished(self.destination, self.run);
    }

    /// One connection: connect, publish, then frames until the live ends, the push is
    /// stopped or the connection fails.
    async fn connection(
        &self,
        subscriber: &mut Subscriber,
        timeline: &mut Timeline,
        batch: &mut Vec<Arc<Entry>>,
        up_since: &mut Option<Instant>,
    ) -> Result<End, PushError> {
        let options = ClientOptions::default();
        let connect = async {
            let tcp = self.open_tcp(&options).await?;
            let mut client = if self.target.tls {
                self.connect_tls(&options, tcp).await?
            } else {
                RtmpClient::connect_over(&self.target.url, &options, Box::new(tcp)).await?
            };
            client.publish().await?;
            Ok::<_, PushError>(client)
        };
        let mut client = tokio::select! {
            c = connect => c?,
            _ = self.stop.cancelled() => return Ok(End::Stopped),
        };
        *up_since = Some(Instant::now());
        Metrics::inc(&self.restreams.metrics.restream_connects);
        self.shared.update(|s| {
            s.state = PushState::Live;
            s.attempts = 0;
            s.live_since = Some(chrono::Utc::now());
        });
        info!(url = %self.target.url.redacted(), "restream publishing");
        // A reconnect starts at the newest keyframe rather than where the last connection
        // stopped: the destination's viewers want the live edge, not the backlog.
        subscriber.jump_to_live_edge();
        timeline.restart();
        let end = loop {
            tokio::select! {
                delivery = subscriber.recv(batch) => match delivery {
                    Ok(Delivery::Frames) => {
                        let mut bytes = 0u64;
                        for entry in batch.iter() {
                            timeline.feed(entry.frame(), |kind, ts, frame| {
                                bytes += frame.data.len() as u64;
                                if kind == MediaKind::Script {
                                    client.send_metadata(frame.data.clone());
                                    Ok(())
                                } else {
                                    client.send_media(kind, ts.as_millis(), frame.data.clone())
                                }
                            })?;
                        }
                        client.flush().await?;
                        self.shared.add_bytes(bytes);
                        self.restreams.metrics.restream_bytes_out.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(Delivery::PublisherLeft) => break End::LiveEnded,
                    Ok(Delivery::PublisherBack) => {}
                    Err(RecvError::TooSlow { .. }) => return Err(PushError::TooSlow),
                    Err(_) => break End::Stopped,
                },
                event = client.next_event() => match event? {
                    None => return Err(PushError::Ended("it closed the connection")),
                    Some(ClientEvent::Rejected { code, description }) => {
                        return Err(ClientError::Rejected { code, description: client.url().scrub(&description) }.into());
                    }
                    Some(ClientEvent::UnpublishNotify) => {
                        return Err(PushError::Ended("unpublish notify"));
                    }
                    Some(other) => debug!(event = ?other, "event from the destination"),
                },
                _ = self.stop.cancelled() => break End::Stopped,
            }
        };
        // A goodbye the destination does not take in time changes nothing for us, and must
        // not hold a shutdown or the push that replaces this one.
        match tokio::time::timeout(CLOSE_WAIT, client.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => debug!(error = %e, "restream close"),
            Err(_) => debug!("the destination did not take the goodbye in time"),
        }
        Ok(end)
    }

    /// The TCP connection to the destination: its name resolved once, an address that is
    /// not private (unless `restream.allow_private_addresses`) taken, so what was checked is
    /// what is connected to.
    async fn open_tcp(&self, options: &ClientOptions) -> Result<TcpStream, PushError> {
        let authority = self.target.url.authority();
        let within = options.timeout;
        let timed_out = || ClientError::TimedOut {
            during: "opening the TCP connection",
            after: within,
        };
        let connect_error = |source| ClientError::Connect {
            authority: authority.clone(),
            source,
        };
        let addresses = tokio::time::timeout(within, tokio::net::lookup_host(&authority))
            .await
            .map_err(|_| timed_out())?
            .map_err(connect_error)?;
        let allow_private = self.restreams.config.allow_private_addresses;
        let allowed: Vec<SocketAddr> = addresses
            .filter(|a| allow_private || is_public(a.ip()))
            .collect();
        if allowed.is_empty() {
            return Err(PushError::PrivateAddress(authority));
        }
        let mut last = None;
        for address in allowed {
            match tokio::time::timeout(within, TcpStream::connect(address)).await {
                Ok(Ok(tcp)) => {
                    // Frames are batched per delivery; Nagle would only hold them back.
                    tcp.set_nodelay(true).map_err(ClientError::Io)?;
                    return Ok(tcp);
                }
                Ok(Err(e)) => last = Some(e),
                Err(_) => return Err(timed_out().into()),
            }
        }
        // Invariant: `allowed` was not empty, so the loop set `last` or returned.
        Err(connect_error(last.expect("at least one address was tried")).into())
    }

    /// `rtmps://`: the TLS handshake on `tcp` (the destination's host name checked against
    /// its certificate), then RTMP over it, within the client's timeout.
    async fn connect_tls(
        &self,
        options: &ClientOptions,
        tcp: TcpStream,
    ) -> Result<RtmpClient, PushError> {
        let connector = self.restreams.tls().map_err(PushError::NoTls)?;
        let url = &self.target.url;
        let within = options.timeout;
        let name = rustls_pki_types::ServerName::try_from(url.host.clone())
            .map_err(|e| PushError::NoTls(format!("{}: {e}", url.host)))?;
        let tls = tokio::time::timeout(within, connector.connect(name, tcp))
            .await
            .map_err(|_| ClientError::TimedOut {
                during: "the TLS handshake",
                after: within,
            })?
            .map_err(|source| PushError::Tls {
                authority: url.authority(),
                source,
            })?;
        Ok(RtmpClient::connect_over(url, options, Box::new(tls)).await?)
    }

    /// After a final refusal: the status stays failed until the live ends or the push is
    /// stopped; nothing is sent, and the frames are read only to see the end.
    async fn wait_for_end(&self, subscriber: &mut Subscriber, batch: &mut Vec<Arc<Entry>>) {
        loop {
            tokio::select! {
                delivery = subscriber.recv(batch) => match delivery {
                    Ok(Delivery::PublisherLeft) | Err(_) => return,
                    Ok(_) => {}
                },
                _ = self.stop.cancelled() => return,
            }
        }
    }
}

/// Whether `ip` is an address on the public internet: not loopback, private (RFC 1918, IPv6
/// unique local), link-local, shared (RFC 6598), unspecified, broadcast or documentation.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || (a == 100 && (64..128).contains(&b))
                || a == 0)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// What goes out on each connection of one live, in order: metadata and sequence headers
/// remembered across connections, each connection starting at a keyframe (or, for a stream
/// with no video, at once), and per-track timestamps that never go backwards.
#[derive(Debug, Default)]
pub struct Timeline {
    metadata: Option<Frame>,
    video_header: Option<Frame>,
    audio_header: Option<Frame>,
    has_video: bool,
    /// The current connection has not had its first keyframe yet.
    starting: bool,
    /// The newest timestamp sent on each track (audio, video, script), over every connection.
    last: [Option<Timestamp>; 3],
}

fn track(kind: MediaKind) -> usize {
    match kind {
        MediaKind::Audio => 0,
        MediaKind::Video => 1,
        MediaKind::Script => 2,
    }
}

impl Timeline {
    /// A new connection: it starts at the next keyframe, headers first.
    pub fn restart(&mut self) {
        self.starting = true;
    }

    /// The newest timestamp sent on any track.
    fn newest(&self) -> Option<Timestamp> {
        self.last
            .iter()
            .flatten()
            .copied()
            .reduce(|a, b| if b.since(a) > 0 { b } else { a })
    }

    /// Takes one frame from the hub and hands `send` what to send for it, with the timestamp
    /// to send it at: nothing (a frame before the connection's first keyframe, or one older
    /// than what this live already sent), the frame, or the headers and then the frame.
    pub fn feed<E>(
        &mut self,
        frame: &Frame,
        mut send: impl FnMut(MediaKind, Timestamp, &Frame) -> Result<(), E>,
    ) -> Result<(), E> {
        if frame.kind == MediaKind::Script {
            self.metadata = Some(frame.clone());
        } else if frame.sequence_header {
            match frame.kind {
                MediaKind::Video => {
                    self.has_video = true;
                    self.video_header = Some(frame.clone());
                }
                _ => self.audio_header = Some(frame.clone()),
            }
        } else if frame.kind == MediaKind::Video {
            self.has_video = true;
        }
        let header = frame.kind == MediaKind::Script || frame.sequence_header;
        if self.starting {
            // Headers wait for the keyframe they are sent with.
            if header {
                return Ok(());
            }
            let opens = match frame.kind {
                MediaKind::Video => frame.keyframe,
                _ => !self.has_video,
            };
            // A keyframe older than what went out already (a fresh subscription's GOP cache)
            // would take the destination back in time.
            let fresh = self.newest().is_none_or(|n| frame.timestamp.since(n) >= 0);
            if !(opens && fresh) {
                return Ok(());
            }
            self.starting = false;
            let at = frame.timestamp;
            for h in [&self.metadata, &self.video_header, &self.audio_header]
                .into_iter()
                .flatten()
            {
                send(h.kind, at, h)?;
            }
            self.last[track(frame.kind)] = Some(at);
            return send(frame.kind, at, frame);
        }
        let t = track(frame.kind);
        let at = match self.last[t] {
            Some(last) if frame.timestamp.since(last) < 0 => last,
            _ => frame.timestamp,
        };
        if !header {
            self.last[t] = Some(at);
        }
        send(frame.kind, at, frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn video(ts: u32, key: bool) -> Frame {
        Frame::new(
            MediaKind::Video,
            Timestamp::from_millis(ts),
            Bytes::from_static(&[0x27, 1]),
        )
        .with_keyframe(key)
    }
    fn audio(ts: u32) -> Frame {
        Frame::new(
            MediaKind::Audio,
            Timestamp::from_millis(ts),
            Bytes::from_static(&[0xaf, 1]),
        )
    }
    fn header(kind: MediaKind) -> Frame {
        Frame::new(kind, Timestamp::ZERO, Bytes::from_static(&[0x17, 0])).with_sequence_header(true)
    }
    fn metadata() -> Frame {
        Frame::new(
            MediaKind::Script,
            Timestamp::ZERO,
            Bytes::from_static(b"\x02\x00\x0aonMetaData"),
        )
    }

    /// (kind, timestamp, header?) of what goes out for `frames`.
    fn out(t: &mut Timeline, frames: &[Frame]) -> Vec<(MediaKind, u32, bool)> {
        let mut sent = Vec::new();
        for f in frames {
            t.feed(f, |kind, at, f| {
                sent.push((
                    kind,
                    at.as_millis(),
                    f.sequence_header || kind == MediaKind::Script,
                ));
                Ok::<_, ()>(())
            })
            .unwrap();
        }
        sent
    }

    #[test]
    fn a_connection_starts_at_a_keyframe_with_the_headers_stamped_at_it() {
        let mut t = Timeline::default();
        t.restart();
        let sent = out(
            &mut t,
            &[
                metadata(),
                header(MediaKind::Video),
                header(MediaKind::Audio),
                audio(990),
                video(1000, true),
                audio(1010),
                video(1040, false),
            ],
        );
        use MediaKind::*;
        assert_eq!(
            sent,
            vec![
                (Script, 1000, true),
                (Video, 1000, true),
                (Audio, 1000, true),
                (Video, 1000, false),
                (Audio, 1010, false),
                (Video, 1040, false),
            ]
        );
    }

    #[test]
    fn a_reconnect_resends_the_headers_and_never_goes_back_in_time() {
        let mut t = Timeline::default();
        t.restart();
        out(
            &mut t,
            &[
                header(MediaKind::Video),
                header(MediaKind::Audio),
                video(0, true),
                audio(20),
                video(5000, true),
                audio(5020),
            ],
        );
        // A new subscription's GOP cache starts at the keyframe at 5000, already sent.
        t.restart();
        let sent = out(
            &mut t,
            &[
                video(5000, true),
                audio(5020),
                video(5040, false),
                video(10_000, true),
                audio(10_010),
            ],
        );
        use MediaKind::*;
        assert_eq!(
            sent,
            vec![
                (Video, 10_000, true),
                (Audio, 10_000, true),
                (Video, 10_000, false),
                (Audio, 10_010, false),
            ]
        );
        // A track that jitters backwards is held at its newest time.
        assert_eq!(out(&mut t, &[audio(10_005)]), vec![(Audio, 10_010, false)]);
    }

    #[test]
    fn only_public_addresses_are_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "142.250.74.14", "2a00:1450:4007::200e"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn audio_only_starts_at_once() {
        let mut t = Timeline::default();
        t.restart();
        let sent = out(&mut t, &[header(MediaKind::Audio), audio(40), audio(60)]);
        use MediaKind::*;
        assert_eq!(
            sent,
            vec![(Audio, 40, true), (Audio, 40, false), (Audio, 60, false)]
        );
    }

    #[test]
    fn a_header_that_changes_mid_stream_goes_out_at_once() {
        let mut t = Timeline::default();
        t.restart();
        out(&mut t, &[header(MediaKind::Video), video(0, true)]);
        let sent = out(&mut t, &[header(MediaKind::Video), video(40, true)]);
        use MediaKind::*;
        assert_eq!(sent, vec![(Video, 0, true), (Video, 40, false)]);
    }
}
