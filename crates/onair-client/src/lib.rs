//! A small async RTMP client: `onair_rtmp`'s sans-IO [`ClientSession`] driven over a tokio
//! [`TcpStream`].
//!
//! It backs the `onair publish` and `onair play` commands. It is a crate of its own because
//! it has a clean boundary (an RTMP URL in; handshake, connect, publish or play, media out)
//! and needs nothing of the server: no store, hub, HTTP or configuration, so a tool or a test
//! can use it without building the server.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use bytes::Bytes;
//! use onair_client::{ClientOptions, RtmpClient, RtmpUrl};
//! use onair_media::MediaKind;
//!
//! let url = RtmpUrl::parse("rtmp://127.0.0.1/live/my-stream-key")?;
//! println!("publishing to {}", url.redacted()); // rtmp://127.0.0.1:1935/live/[redacted]
//! let mut client = RtmpClient::connect(&url, &ClientOptions::default()).await?;
//! client.publish().await?; // Err(ClientError::Rejected { code, description }) if refused
//! client.send_media(MediaKind::Video, 0, Bytes::from_static(&[0x17, 0, 0, 0, 0]))?;
//! client.flush().await?;
//! client.close().await?; // FCUnpublish + deleteStream, then a graceful TCP close
//! # Ok(()) }
//! ```
//!
//! Keys never reach an error message or a log line: [`RtmpUrl`]'s `Debug` and
//! [`RtmpUrl::redacted`] hide the stream name, [`UrlError`] never quotes the URL, and a
//! server's status description is scrubbed of the name before it is shown.

#![deny(missing_docs)]

pub mod backoff;

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use onair_media::MediaKind;
use onair_rtmp::session::{ClientConfig, ClientEvent, ClientOutput, ClientSession, SessionError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

/// What the stream name (a key, when publishing) prints as.
const REDACTED: &str = "[redacted]";

/// The port `rtmp://` URLs use when they name none.
pub const DEFAULT_PORT: u16 = 1935;

/// How much the client reads from the socket at once.
const READ_CHUNK: usize = 64 * 1024;

/// `rtmp://host[:port]/app/name`, split the way OBS and FFmpeg split it: the first path
/// segment is the application, the rest (slashes and `?query` included) is the stream name,
/// which is the stream key when publishing and the channel when playing.
#[derive(Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port, [`DEFAULT_PORT`] when the URL names none.
    pub port: u16,
    /// The application, `live` in `rtmp://host/live/key`.
    pub app: String,
    /// The stream name: a key when publishing. Never log it; use [`RtmpUrl::redacted`].
    pub name: String,
}

/// Why a string is not an `rtmp://host[:port]/app/name` URL. The messages never quote the
/// URL itself, which may carry a stream key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// The scheme is not `rtmp`.
    #[error("unsupported URL scheme {scheme:?}: expected rtmp://host[:port]/app/name")]
    Scheme {
        /// The scheme found (empty when there is no `://`).
        scheme: String,
    },
    /// There is no host before the path.
    #[error("the URL has no host: expected rtmp://host[:port]/app/name")]
    MissingHost,
    /// The port is not a number in 1..=65535.
    #[error("invalid port {port:?} in the URL")]
    Port {
        /// The port text.
        port: String,
    },
    /// There is no application segment.
    #[error("the URL has no application: expected rtmp://host[:port]/app/name")]
    MissingApp,
    /// There is nothing after the application.
    #[error(
        "the URL has no stream name after the application {app:?}: expected rtmp://host[:port]/{app}/name"
    )]
    MissingName {
        /// The application found.
        app: String,
    },
}

impl RtmpUrl {
    /// Parses `rtmp://host[:port]/app/name`. The host may be an IPv6 literal in brackets.
    pub fn parse(url: &str) -> Result<RtmpUrl, UrlError> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(UrlError::Scheme {
                scheme: String::new(),
            });
        };
        if !scheme.eq_ignore_ascii_case("rtmp") {
            return Err(UrlError::Scheme {
                scheme: scheme.to_owned(),
            });
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = split_host_port(authority)?;
        let (app, name) = path.split_once('/').unwrap_or((path, ""));
        if app.is_empty() {
            return Err(UrlError::MissingApp);
        }
        if name.is_empty() {
            return Err(UrlError::MissingName {
                app: app.to_owned(),
            });
        }
        Ok(RtmpUrl {
            host,
            port,
            app: app.to_owned(),
            name: name.to_owned(),
        })
    }

    /// `rtmp://host:port/app`, the `tcUrl` sent in `connect`.
    pub fn tc_url(&self) -> String {
        format!("rtmp://{}/{}", self.authority(), self.app)
    }

    /// `host:port`, with IPv6 hosts in brackets: what [`TcpStream::connect`] takes.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The URL with the stream name hidden, `rtmp://host:port/live/[redacted]`: what publish
    /// progress and errors print.
    pub fn redacted(&self) -> String {
        format!("{}/{REDACTED}", self.tc_url())
    }

    /// The whole URL, name included. For play URLs, whose name is a public channel; never
    /// for publish URLs.
    pub fn full(&self) -> String {
        format!("{}/{}", self.tc_url(), self.name)
    }

    /// `text` with every occurrence of the stream name replaced by `[redacted]`, for showing
    /// what a server said (some servers echo the name in their status descriptions).
    pub fn scrub(&self, text: &str) -> String {
        let key = self
            .name
            .split_once('?')
            .map_or(self.name.as_str(), |(key, _query)| key);
        let mut out = text.replace(&self.name, REDACTED);
        if !key.is_empty() {
            out = out.replace(key, REDACTED);
        }
        out
    }
}

impl fmt::Debug for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtmpUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("app", &self.app)
            .field("name", &REDACTED)
            .finish()
    }
}

fn split_host_port(authority: &str) -> Result<(String, u16), UrlError> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(UrlError::MissingHost)?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| UrlError::Port { port: p.to_owned() })?,
            ),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::MissingHost);
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => return Err(UrlError::Port { port: p.to_owned() }),
        },
    };
    Ok((host.to_owned(), port))
}

/// How an [`RtmpClient`] connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Use the digest handshake, as OBS and FFmpeg do (true), or the simple one.
    pub digest_handshake: bool,
    /// The chunk size we send with.
    pub chunk_size: u32,
    /// The longest [`RtmpClient::connect`], [`RtmpClient::publish`], [`RtmpClient::play`]
    /// or [`RtmpClient::close`] may wait for the server.
    pub timeout: Duration,
    /// Fail with [`ClientError::Silent`] when the server sends nothing at all for this long.
    /// A third of it without a byte from the server sends a keep-alive PingRequest, which
    /// ours, nginx-rtmp and SRS answer, so a quiet live server never trips it (publishers
    /// hear little else: nginx-rtmp pings only every 60 s). `None` disables both, for a
    /// server that neither pings nor answers pings.
    pub idle_timeout: Option<Duration>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            digest_handshake: true,
            chunk_size: 4096,
            timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(10)),
        }
    }
}

/// Why the client stopped. Messages never contain the stream name. The underlying I/O or
/// protocol error is the [`source`](std::error::Error::source), not repeated in the message:
/// print the chain (`{:#}` with anyhow) to see it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The TCP connection could not be opened.
    #[error("cannot connect to {authority}")]
    Connect {
        /// `host:port`.
        authority: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("connection to the server failed")]
    Io(#[from] std::io::Error),
    /// The server's bytes broke the protocol.
    #[error("the server broke the RTMP protocol")]
    Session(#[from] SessionError),
    /// The server refused `connect`, `publish` or `play`, or ended the stream with an error.
    #[error("{code}: {description}")]
    Rejected {
        /// The status code, e.g. `NetStream.Publish.BadName`.
        code: String,
        /// The server's reason, with the stream name scrubbed.
        description: String,
    },
    /// The server closed the connection.
    #[error("the server closed the connection while {during}")]
    Closed {
        /// What the client was waiting for.
        during: &'static str,
    },
    /// The server sent nothing at all for [`ClientOptions::idle_timeout`], keep-alive pings
    /// unanswered: it, or the network to it, is gone.
    #[error(
        "the server sent nothing for {idle:?} (keep-alive pings unanswered): the connection is dead"
    )]
    Silent {
        /// The configured idle timeout.
        idle: Duration,
    },
    /// The server did not answer in time.
    #[error("no answer from the server within {after:?} while {during}")]
    TimedOut {
        /// What the client was waiting for.
        during: &'static str,
        /// The configured [`ClientOptions::timeout`].
        after: Duration,
    },
}

/// Status codes of refusals that trying again cannot fix: the name or key is wrong, the key
/// is not allowed, or the server denies it (our server sends `NetStream.Publish.Rejected` for
/// unknown, expired and revoked keys and banned owners, as OBS's librtmp stops on it).
const FINAL_REFUSALS: &[&str] = &[
    "NetConnection.Connect.Rejected",
    "NetConnection.Connect.InvalidApp",
    "NetStream.Publish.BadName",
    "NetStream.Publish.Rejected",
    "NetStream.Publish.Denied",
    "NetStream.Play.StreamNotFound",
];

impl ClientError {
    /// Whether this is a refusal that will not change by trying again (a bad key or name,
    /// an authorisation error), so a reconnecting client should stop and say why. Lost,
    /// refused or silent connections and other statuses are worth a retry.
    pub fn is_final_refusal(&self) -> bool {
        matches!(self, ClientError::Rejected { code, .. } if FINAL_REFUSALS.contains(&code.as_str()))
    }
}

/// A byte stream RTMP runs over: a [`TcpStream`], or a TLS stream over one for `rtmps://`
/// (which the caller sets up and hands to [`RtmpClient::connect_over`]).
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// An RTMP connection: the socket plus the sans-IO [`ClientSession`].
///
/// Every method that waits is cancel-safe: dropping its future loses neither bytes read nor
/// bytes queued, so it can sit in a `select!` next to a timer or a signal.
pub struct RtmpClient {
    url: RtmpUrl,
    options: ClientOptions,
    socket: Box<dyn Transport>,
    session: ClientSession,
    out: VecDeque<Bytes>,
    events: VecDeque<ClientEvent>,
    read_buf: BytesMut,
    bytes_read: u64,
    bytes_written: u64,
}

impl fmt::Debug for RtmpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtmpClient")
            .field("url", &self.url)
            .field("session", &self.session)
            .field("bytes_read", &self.bytes_read)
            .field("bytes_written", &self.bytes_written)
            .finish_non_exhaustive()
    }
}

impl RtmpClient {
    /// Opens the TCP connection, does the handshake and `connect`s to the URL's application.
    /// Returns once the server accepted the connect.
    pub async fn connect(
        url: &RtmpUrl,
        options: &ClientOptions,
    ) -> Result<RtmpClient, ClientError> {
        let within = options.timeout;
        let authority = url.authority();
        let socket = tokio::time::timeout(within, TcpStream::connect(&authority))
            .await
            .map_err(|_| ClientError::TimedOut {
                during: "opening the TCP connection",
                after: within,
            })?
            .map_err(|source| ClientError::Connect { authority, source })?;
        // Media is batched by the caller; Nagle would only hold frames back.
        socket.set_nodelay(true)?;
        Self::connect_over(url, options, Box::new(socket)).await
    }

    /// Does the handshake and `connect` over a stream the caller opened (a TLS stream for
    /// `rtmps://`). Returns once the server accepted the connect, within
    /// [`ClientOptions::timeout`].
    pub async fn connect_over(
        url: &RtmpUrl,
        options: &ClientOptions,
        socket: Box<dyn Transport>,
    ) -> Result<RtmpClient, ClientError> {
        let idle = options.idle_timeout.unwrap_or(Duration::ZERO);
        let config = ClientConfig {
            app: url.app.clone(),
            tc_url: url.tc_url(),
            chunk_size: options.chunk_size,
            digest_handshake: options.digest_handshake,
            keepalive: idle / 3,
            idle_timeout: idle,
            ..ClientConfig::default()
        };
        let session = ClientSession::new(config, Instant::now(), rand::random());
        let mut client = RtmpClient {
            url: url.clone(),
            options: options.clone(),
            socket,
            session,
            out: VecDeque::new(),
            events: VecDeque::new(),
            read_buf: BytesMut::with_capacity(READ_CHUNK),
            bytes_read: 0,
            bytes_written: 0,
        };
        client
            .wait_for("connecting", |e| matches!(e, ClientEvent::Connected))
            .await?;
        Ok(client)
    }

    /// Publishes to the URL's stream name (the key) and waits for `NetStream.Publish.Start`.
    pub async fn publish(&mut self) -> Result<(), ClientError> {
        self.session.publish(&self.url.name);
        self.wait_for("publishing", |e| matches!(e, ClientEvent::PublishStarted))
            .await
    }

    /// Plays the URL's stream name (the channel) and waits for `NetStream.Play.Start`. Media
    /// that arrives with the answer is kept for [`next_event`](Self::next_event).
    pub async fn play(&mut self) -> Result<(), ClientError> {
        self.session.play(&self.url.name);
        self.wait_for("starting playback", |e| {
            matches!(e, ClientEvent::PlayStarted)
        })
        .await
    }

    /// Plays the URL's stream name from `start_ms` for `duration_ms` (RTMP 1.0 §7.2.2.1:
    /// `start_ms` -2 live or recorded, ≥ 0 a position in a recorded stream; `duration_ms` -1
    /// to the end) and waits for `NetStream.Play.Start`.
    pub async fn play_range(&mut self, start_ms: f64, duration_ms: f64) -> Result<(), ClientError> {
        self.session
            .play_range(&self.url.name, start_ms, duration_ms);
        self.wait_for("starting playback", |e| {
            matches!(e, ClientEvent::PlayStarted)
        })
        .await
    }

    /// Pauses (`paused` true) or resumes the play at `position_ms` and writes the command.
    /// The server's `NetStream.Pause.Notify`/`Unpause.Notify` come as events.
    pub async fn pause(&mut self, paused: bool, position_ms: f64) -> Result<(), ClientError> {
        self.session.pause(paused, position_ms);
        self.flush().await
    }

    /// Asks a recorded play to continue from `position_ms` and writes the command;
    /// `NetStream.Seek.Notify` and `NetStream.Play.Start` come as events, then media from the
    /// keyframe at or before that position.
    pub async fn seek(&mut self, position_ms: f64) -> Result<(), ClientError> {
        self.session.seek(position_ms);
        self.flush().await
    }

    /// Turns the play's audio on or off and writes the command.
    pub async fn receive_audio(&mut self, enabled: bool) -> Result<(), ClientError> {
        self.session.receive_audio(enabled);
        self.flush().await
    }

    /// Turns the play's video on or off and writes the command; back on, it resumes at the
    /// next keyframe.
    pub async fn receive_video(&mut self, enabled: bool) -> Result<(), ClientError> {
        self.session.receive_video(enabled);
        self.flush().await
    }

    /// Queues one audio, video or script-data message on the publish stream; write it with
    /// [`flush`](Self::flush) (or any waiting method).
    pub fn send_media(
        &mut self,
        kind: MediaKind,
        timestamp: u32,
        payload: Bytes,
    ) -> Result<(), ClientError> {
        self.session.send_media(kind, timestamp, payload)?;
        self.drain();
        Ok(())
    }

    /// Queues stream metadata (AMF0 `"onMetaData"` + object), sent as `@setDataFrame`.
    pub fn send_metadata(&mut self, payload: Bytes) {
        self.session.send_metadata(payload);
        self.drain();
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        self.drain();
        self.write_queued().await
    }

    /// The next event from the server, writing queued bytes (and the session's answers to
    /// pings and acknowledgement windows) on the way. `None` when the server closed the
    /// connection.
    pub async fn next_event(&mut self) -> Result<Option<ClientEvent>, ClientError> {
        loop {
            self.drain();
            self.write_queued().await?;
            if let Some(event) = self.events.pop_front() {
                return Ok(Some(event));
            }
            if !self.read().await? {
                return Ok(None);
            }
        }
    }

    /// Ends the publish (`FCUnpublish` + `deleteStream`) or play (`deleteStream`), then
    /// closes the connection gracefully: our side first, then reading until the server
    /// closes too, so it has read everything we sent before the socket goes away. Waits at
    /// most [`ClientOptions::timeout`].
    pub async fn close(mut self) -> Result<(), ClientError> {
        let within = self.options.timeout;
        let goodbye = async {
            self.session.close();
            self.flush().await?;
            self.socket.shutdown().await?;
            let mut sink = vec![0u8; READ_CHUNK];
            while self.socket.read(&mut sink).await? != 0 {}
            Ok(())
        };
        tokio::time::timeout(within, goodbye)
            .await
            .map_err(|_| ClientError::TimedOut {
                during: "closing the connection",
                after: within,
            })?
    }

    /// The URL this client connected to.
    pub fn url(&self) -> &RtmpUrl {
        &self.url
    }

    /// Bytes written to the socket so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Bytes read from the socket so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Runs the connection until `done` matches an event; error statuses fail the wait.
    /// Media and end-of-stream events that arrive meanwhile are kept for `next_event`.
    async fn wait_for(
        &mut self,
        during: &'static str,
        done: impl Fn(&ClientEvent) -> bool,
    ) -> Result<(), ClientError> {
        let within = self.options.timeout;
        let wait = async {
            let mut kept = VecDeque::new();
            let result = loop {
                let Some(event) = self.next_event().await? else {
                    break Err(ClientError::Closed { during });
                };
                match event {
                    e if done(&e) => break Ok(()),
                    ClientEvent::Rejected { code, description } => {
                        break Err(ClientError::Rejected {
                            code,
                            description: self.url.scrub(&description),
                        });
                    }
                    e @ (ClientEvent::Media { .. }
                    | ClientEvent::Metadata { .. }
                    | ClientEvent::StreamEof
                    | ClientEvent::PlayStatus { .. }
                    | ClientEvent::UnpublishNotify) => kept.push_back(e),
                    other => debug!(event = ?other, during, "event while waiting"),
                }
            };
            kept.append(&mut self.events);
            self.events = kept;
            result
        };
        tokio::time::timeout(within, wait)
            .await
            .map_err(|_| ClientError::TimedOut {
                during,
                after: within,
            })?
    }

    /// Moves the session's output into the write queue and the event queue.
    fn drain(&mut self) {
        while let Some(output) = self.session.poll_output() {
            match output {
                ClientOutput::Transmit(bytes) => self.out.push_back(bytes),
                ClientOutput::Event(event) => self.events.push_back(event),
            }
        }
    }

    /// Writes the queue from its front, dropping each buffer only once it is all written, so
    /// a cancelled call loses nothing. The session's timers run meanwhile: a server that
    /// stops reading stops sending too, and is declared dead after the idle timeout instead
    /// of leaving us blocked in a write for ever.
    async fn write_queued(&mut self) -> Result<(), ClientError> {
        while let Some(front) = self.out.front_mut() {
            let timer = self.session.poll_timeout();
            tokio::select! {
                written = self.socket.write(front) => {
                    let n = written?;
                    if n == 0 {
                        return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
                    }
                    self.bytes_written += n as u64;
                    front.advance(n);
                    if front.is_empty() {
                        self.out.pop_front();
                    }
                }
                _ = sleep_until_opt(timer) => {
                    self.run_timers()?;
                    self.drain();
                }
            }
        }
        self.socket.flush().await?;
        Ok(())
    }

    /// Reads once and feeds the session, or runs its timers when one is due first (a
    /// keep-alive ping, or the idle deadline: [`ClientError::Silent`]); false at end of
    /// stream.
    async fn read(&mut self) -> Result<bool, ClientError> {
        self.read_buf.clear();
        self.read_buf.reserve(READ_CHUNK);
        let timer = self.session.poll_timeout();
        let n = tokio::select! {
            read = self.socket.read_buf(&mut self.read_buf) => read?,
            _ = sleep_until_opt(timer) => {
                self.run_timers()?;
                return Ok(true);
            }
        };
        if n == 0 {
            return Ok(false);
        }
        self.bytes_read += n as u64;
        self.session.handle_input(Instant::now(), &self.read_buf)?;
        Ok(true)
    }

    fn run_timers(&mut self) -> Result<(), ClientError> {
        self.session
            .handle_timeout(Instant::now())
            .map_err(|e| match e {
                SessionError::TimedOut { idle } => ClientError::Silent { idle },
                other => ClientError::Session(other),
            })
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(host: &str, port: u16, app: &str, name: &str) -> RtmpUrl {
        RtmpUrl {
            host: host.into(),
            port,
            app: app.into(),
            name: name.into(),
        }
    }

    #[test]
    fn urls_split_into_host_port_app_and_name() {
        assert_eq!(
            RtmpUrl::parse("rtmp://example.com/live/key").unwrap(),
            url("example.com", 1935, "live", "key")
        );
        assert_eq!(
            RtmpUrl::parse("rtmp://127.0.0.1:19350/live/demo").unwrap(),
            url("127.0.0.1", 19350, "live", "demo")
        );
        assert_eq!(
            RtmpUrl::parse("RTMP://[::1]:1936/app/a/b?x=1").unwrap(),
            url("::1", 1936, "app", "a/b?x=1")
        );
        assert_eq!(
            RtmpUrl::parse("rtmp://[::1]/live/k").unwrap(),
            url("::1", 1935, "live", "k")
        );
        assert_eq!(
            RtmpUrl::parse("  rtmp://h/live/sk_123?token=9 ").unwrap(),
            url("h", 1935, "live", "sk_123?token=9")
        );
    }

    #[test]
    fn bad_urls_are_refused_without_quoting_the_key() {
        let cases = [
            (
                "http://h/live/secret-key",
                UrlError::Scheme {
                    scheme: "http".into(),
                },
            ),
            (
                "rtmps://h/live/secret-key",
                UrlError::Scheme {
                    scheme: "rtmps".into(),
                },
            ),
            (
                "h/live/secret-key",
                UrlError::Scheme {
                    scheme: String::new(),
                },
            ),
            ("rtmp:///live/secret-key", UrlError::MissingHost),
            ("rtmp://:1935/live/secret-key", UrlError::MissingHost),
            (
                "rtmp://h:0/live/secret-key",
                UrlError::Port { port: "0".into() },
            ),
            (
                "rtmp://h:70000/live/secret-key",
                UrlError::Port {
                    port: "70000".into(),
                },
            ),
            (
                "rtmp://h:x/live/secret-key",
                UrlError::Port { port: "x".into() },
            ),
            (
                "rtmp://[::1]x/live/secret-key",
                UrlError::Port { port: "x".into() },
            ),
            ("rtmp://h", UrlError::MissingApp),
            ("rtmp://h//secret-key", UrlError::MissingApp),
            (
                "rtmp://h/live",
                UrlError::MissingName { app: "live".into() },
            ),
            (
                "rtmp://h/live/",
                UrlError::MissingName { app: "live".into() },
            ),
        ];
        for (input, expected) in cases {
            let err = RtmpUrl::parse(input).unwrap_err();
            assert_eq!(err, expected, "{input}");
            assert!(!err.to_string().contains("secret-key"), "{input}: {err}");
        }
    }

    #[test]
    fn only_refusals_that_cannot_change_are_final() {
        let rejected = |code: &str| ClientError::Rejected {
            code: code.into(),
            description: String::new(),
        };
        for code in [
            "NetStream.Publish.BadName",
            "NetStream.Publish.Rejected",
            "NetStream.Publish.Denied",
            "NetStream.Play.StreamNotFound",
            "NetConnection.Connect.Rejected",
        ] {
            assert!(rejected(code).is_final_refusal(), "{code}");
        }
        for code in ["NetStream.Play.Failed", "NetStream.Publish.Failed", ""] {
            assert!(!rejected(code).is_final_refusal(), "{code:?}");
        }
        let lost = [
            ClientError::Closed { during: "playing" },
            ClientError::Silent {
                idle: Duration::from_secs(10),
            },
            ClientError::Connect {
                authority: "h:1935".into(),
                source: std::io::ErrorKind::ConnectionRefused.into(),
            },
        ];
        for e in lost {
            assert!(!e.is_final_refusal(), "{e}");
        }
    }

    #[test]
    fn printed_forms_hide_the_name() {
        let u = RtmpUrl::parse("rtmp://h:1936/live/sk-secret?x=1").unwrap();
        assert_eq!(u.tc_url(), "rtmp://h:1936/live");
        assert_eq!(u.redacted(), "rtmp://h:1936/live/[redacted]");
        assert_eq!(u.full(), "rtmp://h:1936/live/sk-secret?x=1");
        assert!(!format!("{u:?}").contains("sk-secret"));
        assert_eq!(
            u.scrub("bad key sk-secret (sk-secret?x=1)"),
            "bad key [redacted] ([redacted])"
        );
        let v6 = RtmpUrl::parse("rtmp://[::1]/live/k").unwrap();
        assert_eq!(v6.authority(), "[::1]:1935");
        assert_eq!(v6.redacted(), "rtmp://[::1]:1935/live/[redacted]");
    }
}
