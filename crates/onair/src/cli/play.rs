//! `onair play rtmp://host[:1935]/app/CHANNEL [-o out.flv | -o -] [--duration 10s]
//! [--frames N]`: plays a stream over RTMP and writes it as an FLV file.
//!
//! The FLV header's audio/video flags must be right before the first tag is written, and
//! players trust them (flv.js waits forever for a track the header promises). So, like the
//! server's HTTP-FLV output, the tags are held until metadata or both an audio and a video
//! tag say what the stream carries, or for at most [`TRACK_PROBE`] after the first tag.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use onair_client::{ClientError, ClientOptions, RtmpClient, RtmpUrl};
use onair_flv::FlvHeader;
use onair_media::{MediaKind, Timestamp};
use onair_rtmp::session::ClientEvent;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::time::Instant;
use tracing::debug;

use super::{Interrupt, format_bytes, format_secs, parse_duration};

/// How long the header waits for the second track after the first tag, as the server's
/// HTTP-FLV does.
const TRACK_PROBE: Duration = Duration::from_secs(1);

/// A server silent for this long is gone.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Arguments of `onair play`.
#[derive(Debug, clap::Args)]
pub struct PlayArgs {
    /// What to play: rtmp://HOST[:1935]/APP/CHANNEL.
    pub url: String,
    /// Write the FLV to this file, or to stdout with `-`. Without it, stdout unless that is
    /// a terminal.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Stop after this long (e.g. 10s, 500ms, 2m), counted from the start of playback.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many video frames (sequence headers do not count).
    #[arg(long, value_name = "N")]
    pub frames: Option<u64>,
    /// Use the simple RTMP handshake instead of the digest one.
    #[arg(long)]
    pub simple_handshake: bool,
}

/// Why playback ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Duration,
    Frames,
    Unpublished,
    Interrupted,
}

impl Stop {
    fn describe(self) -> &'static str {
        match self {
            Stop::Duration => "--duration reached",
            Stop::Frames => "--frames reached",
            Stop::Unpublished => "the stream ended",
            Stop::Interrupted => "interrupted",
        }
    }
}

/// Runs `onair play`.
pub async fn run(args: PlayArgs) -> anyhow::Result<()> {
    let url = RtmpUrl::parse(&args.url).context("invalid play URL")?;
    let shown = url.full();
    let (writer, target) = open_output(args.output.as_ref()).await?;
    let mut interrupt = Interrupt::new().context("installing the Ctrl-C handler")?;
    let options = ClientOptions {
        digest_handshake: !args.simple_handshake,
        // Our server pings every 10 s and nginx-rtmp every 60 s, even before a publisher
        // comes: a minute and a half of silence is a dead connection.
        idle_timeout: Some(IDLE_TIMEOUT),
        ..ClientOptions::default()
    };

    eprintln!("connecting to {shown}");
    let mut client = tokio::select! {
        client = RtmpClient::connect(&url, &options) => client.with_context(|| format!("connecting to {shown}"))?,
        _ = interrupt.recv() => bail!("interrupted while connecting"),
    };
    tokio::select! {
        played = client.play() => played.map_err(|e| refused(e, &shown))?,
        _ = interrupt.recv() => {
            let _ = client.close().await;
            bail!("interrupted while waiting for the server to start playback");
        }
    }
    eprintln!("playing {shown} to {target}");

    let started = Instant::now();
    let stop_at = args.duration.map(|d| started + d);
    let mut out = FlvOutput::new(writer);
    let ended = receive(&mut client, &mut out, &mut interrupt, stop_at, args.frames).await;
    let written = out
        .finish()
        .await
        .with_context(|| format!("writing {target}"));
    if let Err(e) = client.close().await {
        debug!(error = %e, "closing the connection");
    }
    eprintln!(
        "wrote {} tags ({} video frames, {} audio, {} script; {}) to {target} in {}{}",
        out.tags(),
        out.video_frames,
        out.audio,
        out.script,
        format_bytes(out.bytes),
        format_secs(started.elapsed()),
        match &ended {
            Ok(stop) => format!(": {}", stop.describe()),
            Err(_) => String::new(),
        },
    );
    ended?;
    written
}

/// Moves the stream from the server into the FLV until a stop condition.
async fn receive(
    client: &mut RtmpClient,
    out: &mut FlvOutput,
    interrupt: &mut Interrupt,
    stop_at: Option<Instant>,
    frames: Option<u64>,
) -> anyhow::Result<Stop> {
    if frames == Some(0) {
        return Ok(Stop::Frames);
    }
    loop {
        let probe_until = out.probe_deadline();
        tokio::select! {
            biased;
            _ = interrupt.recv() => return Ok(Stop::Interrupted),
            _ = sleep_until_opt(stop_at) => return Ok(Stop::Duration),
            _ = sleep_until_opt(probe_until) => out.settle().await?,
            event = client.next_event() => match event.context("while playing")? {
                None => bail!("the server closed the connection"),
                Some(ClientEvent::Media { kind, timestamp, payload }) => {
                    out.push(kind, timestamp, payload).await?;
                    if frames.is_some_and(|n| out.video_frames >= n) {
                        return Ok(Stop::Frames);
                    }
                }
                Some(ClientEvent::Metadata { timestamp, payload }) => {
                    out.push(MediaKind::Script, timestamp, payload).await?;
                }
                Some(ClientEvent::UnpublishNotify | ClientEvent::StreamEof) => return Ok(Stop::Unpublished),
                Some(ClientEvent::Status { code, .. })
                    if code == "NetStream.Play.Stop" || code == "NetStream.Play.Complete" =>
                {
                    return Ok(Stop::Unpublished);
                }
                Some(ClientEvent::Rejected { code, description }) => {
                    bail!("the server ended playback: {code} ({description})")
                }
                Some(other) => debug!(event = ?other, "server event"),
            },
        }
    }
}

fn refused(e: ClientError, shown: &str) -> anyhow::Error {
    match e {
        ClientError::Rejected { code, description } => {
            anyhow::anyhow!("the server refused to play {shown}: {code} ({description})")
        }
        other => anyhow::Error::new(other).context(format!("playing {shown}")),
    }
}

type Output = Box<dyn AsyncWrite + Unpin + Send>;

/// Opens the output, returning it and how to name it in messages.
async fn open_output(path: Option<&PathBuf>) -> anyhow::Result<(Output, String)> {
    match path {
        Some(p) if p.as_os_str() != "-" => {
            let file = tokio::fs::File::create(p)
                .await
                .with_context(|| format!("cannot create {}", p.display()))?;
            Ok((Box::new(file), p.display().to_string()))
        }
        Some(_) => Ok((Box::new(tokio::io::stdout()), "stdout".to_owned())),
        None if std::io::stdout().is_terminal() => {
            bail!("stdout is a terminal: give an output file with -o FILE, or redirect stdout")
        }
        None => Ok((Box::new(tokio::io::stdout()), "stdout".to_owned())),
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The FLV being written: the header once the tracks are known, then one tag per message.
struct FlvOutput {
    writer: BufWriter<Output>,
    probe: TrackProbe,
    /// Tags received before the header could be written.
    held: Vec<(MediaKind, u32, Bytes)>,
    header_written: bool,
    video_frames: u64,
    video_headers: u64,
    audio: u64,
    script: u64,
    bytes: u64,
}

impl FlvOutput {
    fn new(writer: Output) -> Self {
        FlvOutput {
            writer: BufWriter::new(writer),
            probe: TrackProbe::default(),
            held: Vec::new(),
            header_written: false,
            video_frames: 0,
            video_headers: 0,
            audio: 0,
            script: 0,
            bytes: 0,
        }
    }

    fn tags(&self) -> u64 {
        self.video_frames + self.video_headers + self.audio + self.script
    }

    /// While the header waits: when it stops waiting.
    fn probe_deadline(&self) -> Option<Instant> {
        if self.header_written {
            None
        } else {
            self.probe.deadline()
        }
    }

    async fn push(&mut self, kind: MediaKind, timestamp: u32, body: Bytes) -> std::io::Result<()> {
        match kind {
            MediaKind::Video if onair_flv::classify(kind, &body).sequence_header => {
                self.video_headers += 1
            }
            MediaKind::Video => self.video_frames += 1,
            MediaKind::Audio => self.audio += 1,
            MediaKind::Script => self.script += 1,
        }
        if self.header_written {
            self.write_tag(kind, timestamp, &body).await?;
            // A pipe reader (ffplay) should see each frame as it arrives.
            return self.writer.flush().await;
        }
        self.probe.see(kind, &body, Instant::now());
        self.held.push((kind, timestamp, body));
        if self.probe.certain {
            self.settle().await?;
        }
        Ok(())
    }

    /// Writes the header with what is known now, and the held tags.
    async fn settle(&mut self) -> std::io::Result<()> {
        if self.header_written {
            return Ok(());
        }
        self.header_written = true;
        let header = self.probe.header();
        debug!(
            audio = header.has_audio,
            video = header.has_video,
            "FLV header"
        );
        self.writer.write_all(&header.encode()).await?;
        self.bytes += header.encode().len() as u64;
        for (kind, timestamp, body) in std::mem::take(&mut self.held) {
            self.write_tag(kind, timestamp, &body).await?;
        }
        self.writer.flush().await
    }

    async fn write_tag(
        &mut self,
        kind: MediaKind,
        timestamp: u32,
        body: &[u8],
    ) -> std::io::Result<()> {
        let tag = onair_flv::encode_tag(kind, Timestamp::from_millis(timestamp), body);
        self.bytes += tag.len() as u64;
        self.writer.write_all(&tag).await
    }

    /// Writes what is held (a header even for an empty stream, so the file is valid FLV)
    /// and flushes.
    async fn finish(&mut self) -> std::io::Result<()> {
        self.settle().await?;
        self.writer.flush().await?;
        self.writer.get_mut().shutdown().await
    }
}

/// What the first tags say about the stream's tracks.
///
/// A track is settled once a tag of it arrived or metadata speaks of it (`hasAudio`, or an
/// audio codec or sample rate; likewise for video). Metadata that describes only the video
/// does not settle the audio: the probe then waits for an audio tag, at most until the
/// deadline, instead of writing a header that hides the audio.
#[derive(Debug, Default)]
struct TrackProbe {
    audio: bool,
    video: bool,
    audio_settled: bool,
    video_settled: bool,
    /// Both tracks are settled; no need to wait.
    certain: bool,
    first_at: Option<Instant>,
}

impl TrackProbe {
    fn see(&mut self, kind: MediaKind, body: &[u8], now: Instant) {
        self.first_at.get_or_insert(now);
        match kind {
            MediaKind::Audio => (self.audio, self.audio_settled) = (true, true),
            MediaKind::Video => (self.video, self.video_settled) = (true, true),
            MediaKind::Script => {
                if let Ok(meta) = onair_flv::parse_metadata(body) {
                    let flag = |key: &str| {
                        meta.properties
                            .iter()
                            .find(|(k, _)| k == key)
                            .and_then(|(_, v)| v.as_bool())
                    };
                    let audio = flag("hasAudio").or((meta.audio_codec.is_some()
                        || meta.audiosamplerate.is_some())
                    .then_some(true));
                    let video = flag("hasVideo")
                        .or((meta.video_codec.is_some() || meta.width.is_some()).then_some(true));
                    if let Some(audio) = audio {
                        self.audio |= audio;
                        self.audio_settled = true;
                    }
                    if let Some(video) = video {
                        self.video |= video;
                        self.video_settled = true;
                    }
                }
            }
        }
        self.certain = self.audio_settled && self.video_settled;
    }

    fn deadline(&self) -> Option<Instant> {
        self.first_at.map(|t| t + TRACK_PROBE)
    }

    fn header(&self) -> FlvHeader {
        FlvHeader {
            has_audio: self.audio,
            has_video: self.video,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onair_amf::Value;

    const AVC_KEY: &[u8] = &[0x17, 1, 0, 0, 0, 0x65];
    const AAC_RAW: &[u8] = &[0xaf, 1, 0x21];

    fn metadata(props: Vec<(&str, Value)>) -> Bytes {
        onair_amf::encode_all(&[
            "onMetaData".into(),
            Value::EcmaArray(props.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
        ])
    }

    #[test]
    fn both_tracks_settle_the_header_at_once() {
        let now = Instant::now();
        let mut p = TrackProbe::default();
        p.see(MediaKind::Video, AVC_KEY, now);
        assert!(!p.certain);
        assert_eq!(p.deadline(), Some(now + TRACK_PROBE));
        p.see(MediaKind::Audio, AAC_RAW, now);
        assert!(p.certain);
        assert_eq!(
            p.header(),
            FlvHeader {
                has_audio: true,
                has_video: true
            }
        );
    }

    #[test]
    fn metadata_naming_both_tracks_settles_the_header() {
        let mut p = TrackProbe::default();
        let both = metadata(vec![
            ("width", 640.0.into()),
            ("videocodecid", 7.0.into()),
            ("audiocodecid", 10.0.into()),
        ]);
        p.see(MediaKind::Script, &both, Instant::now());
        assert!(p.certain);
        assert_eq!(
            p.header(),
            FlvHeader {
                has_audio: true,
                has_video: true
            }
        );

        let mut p = TrackProbe::default();
        p.see(
            MediaKind::Script,
            &metadata(vec![("hasVideo", false.into()), ("hasAudio", true.into())]),
            Instant::now(),
        );
        assert!(p.certain);
        assert_eq!(
            p.header(),
            FlvHeader {
                has_audio: true,
                has_video: false
            }
        );
    }

    #[test]
    fn metadata_about_video_only_still_waits_for_audio() {
        let now = Instant::now();
        let mut p = TrackProbe::default();
        p.see(
            MediaKind::Script,
            &metadata(vec![("width", 640.0.into())]),
            now,
        );
        assert!(!p.certain);
        assert_eq!(
            p.header(),
            FlvHeader {
                has_audio: false,
                has_video: true
            },
            "the header if no audio comes"
        );
        p.see(MediaKind::Audio, AAC_RAW, now);
        assert!(p.certain);
        assert_eq!(
            p.header(),
            FlvHeader {
                has_audio: true,
                has_video: true
            }
        );
    }

    #[test]
    fn one_track_without_metadata_waits_for_the_probe() {
        let now = Instant::now();
        let mut p = TrackProbe::default();
        p.see(MediaKind::Audio, AAC_RAW, now);
        p.see(MediaKind::Audio, AAC_RAW, now + Duration::from_millis(500));
        assert!(!p.certain);
        assert_eq!(
            p.deadline(),
            Some(now + TRACK_PROBE),
            "the probe runs from the first tag"
        );
        assert_eq!(
            p.header(),
            FlvHeader {
                has_audio: true,
                has_video: false
            }
        );
    }

    #[tokio::test]
    async fn held_tags_follow_the_header_in_order() {
        let (w, mut r) = tokio::io::duplex(1 << 16);
        let mut out = FlvOutput::new(Box::new(w));
        out.push(MediaKind::Video, 0, Bytes::from_static(AVC_KEY))
            .await
            .unwrap();
        assert!(!out.header_written);
        out.push(MediaKind::Audio, 5, Bytes::from_static(AAC_RAW))
            .await
            .unwrap();
        assert!(out.header_written);
        out.push(MediaKind::Video, 40, Bytes::from_static(AVC_KEY))
            .await
            .unwrap();
        out.finish().await.unwrap();
        drop(out);
        let mut bytes = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut r, &mut bytes)
            .await
            .unwrap();

        let mut demuxer = onair_flv::FlvDemuxer::default();
        let mut buf = bytes::BytesMut::from(&bytes[..]);
        let mut tags = Vec::new();
        while let Some(tag) = demuxer.decode(&mut buf).unwrap() {
            tags.push((tag.kind, tag.timestamp.as_millis(), tag.body));
        }
        assert_eq!(
            demuxer.header(),
            Some(FlvHeader {
                has_audio: true,
                has_video: true
            })
        );
        assert_eq!(
            tags,
            vec![
                (MediaKind::Video, 0, Bytes::from_static(AVC_KEY)),
                (MediaKind::Audio, 5, Bytes::from_static(AAC_RAW)),
                (MediaKind::Video, 40, Bytes::from_static(AVC_KEY)),
            ]
        );
    }
}
