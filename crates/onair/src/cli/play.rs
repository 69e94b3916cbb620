//! `onair play rtmp://host[:1935]/app/CHANNEL [-o out.flv | -o -] [--duration 10s]
//! [--frames N] [--seek SECONDS] [--pause-after SECONDS[:RESUME_AFTER]] [--reconnect]`:
//! plays a stream over RTMP and writes it as an FLV file.
//!
//! The FLV header's audio/video flags must be right before the first tag is written, and
//! players trust them (flv.js waits forever for a track the header promises). So, like the
//! server's HTTP-FLV output, the tags are held until metadata or both an audio and a video
//! tag say what the stream carries, or for at most [`TRACK_PROBE`] after the first tag.
//!
//! With `--reconnect` one file spans every connection: one header, and each new session's
//! timestamps offset to follow the last one written (a new publish starts its timeline
//! anew), sequence headers and metadata written again only when they changed.

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

use super::{
    ConnectionArgs, Interrupt, Retry, connection_gone, format_bytes, format_secs, parse_duration,
};

/// How long the header waits for the second track after the first tag, as the server's
/// HTTP-FLV does.
const TRACK_PROBE: Duration = Duration::from_secs(1);

/// The gap left between the last tag of one session and the first of the next when no
/// frame interval was measured: one frame at 25 fps.
const DEFAULT_FRAME_INTERVAL: u32 = 40;

/// How far past `--seek` + `--duration` a recorded stream may run before we stop it
/// ourselves: the server was asked for that duration, and its own end (Play.Complete), which
/// comes first, is the one to report.
const DURATION_SLACK_MS: u32 = 1000;

/// Arguments of `onair play`.
#[derive(Debug, clap::Args)]
pub struct PlayArgs {
    /// What to play: rtmp://HOST[:1935]/APP/CHANNEL (or a recorded stream, e.g. APP vod).
    pub url: String,
    /// Write the FLV to this file, or to stdout with `-`. Without it, stdout unless that is
    /// a terminal.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Stop after this much playback (e.g. 10s, 500ms, 2m): for a live stream counted from
    /// the start of playback, for a recorded one (--seek) in media time, and sent to the
    /// server as the play duration.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many video frames (sequence headers do not count).
    #[arg(long, value_name = "N")]
    pub frames: Option<u64>,
    /// Play a recorded stream from this position (seconds, e.g. 30 or 12.5): the play
    /// command's start.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub seek: Option<f64>,
    /// Pause after this many seconds of playback, resume RESUME_AFTER seconds later (default
    /// 2), printing when each happened and the timestamps around the pause.
    #[arg(long, value_name = "SECONDS[:RESUME_AFTER]", value_parser = parse_pause)]
    pub pause_after: Option<PauseAfter>,
    /// Use the simple RTMP handshake instead of the digest one.
    #[arg(long)]
    pub simple_handshake: bool,
    /// `--timeout`, `--reconnect`, `--reconnect-max`. Across a reconnect the output stays
    /// one valid FLV whose timestamps never go back.
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// `--pause-after SECONDS[:RESUME_AFTER]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PauseAfter {
    /// Playback before the pause.
    pub after: Duration,
    /// How long the pause lasts.
    pub resume_after: Duration,
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 && s < f64::from(u32::MAX) / 1000.0 => Ok(s),
        _ => Err(format!(
            "{text:?} is not a number of seconds (0 or more, e.g. 30 or 12.5)"
        )),
    }
}

fn parse_pause(text: &str) -> Result<PauseAfter, String> {
    let (after, resume) = text.split_once(':').unwrap_or((text, "2"));
    let secs = |t: &str| parse_seconds(t).map(Duration::from_secs_f64);
    Ok(PauseAfter {
        after: secs(after)?,
        resume_after: secs(resume)?,
    })
}

/// Why playback ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Duration,
    Frames,
    Unpublished,
    Complete,
    Interrupted,
}

impl Stop {
    fn describe(self) -> &'static str {
        match self {
            Stop::Duration => "--duration reached",
            Stop::Frames => "--frames reached",
            Stop::Unpublished => "the stream ended",
            Stop::Complete => "the VOD ended (NetStream.Play.Complete)",
            Stop::Interrupted => "interrupted",
        }
    }
}

/// What the play asks of the server and when it stops, across reconnects.
#[derive(Debug)]
struct Playback {
    /// `--seek` in ms: a recorded stream.
    seek_ms: Option<u32>,
    /// `--duration` in ms.
    duration_ms: Option<u32>,
    frames: Option<u64>,
    /// For a live stream: when `--duration` is up (set at the first Play.Start).
    stop_at: Option<Instant>,
    /// For a recorded stream: the first media timestamp, from which `--duration` counts.
    first_media: Option<u32>,
    /// The last media timestamp the server sent (its own timeline, not the file's), where a
    /// recorded play resumes after a reconnect.
    last_source_ts: Option<u32>,
    pause: PauseState,
    /// With `--reconnect`: an unpublish or end of stream waits for more instead of ending.
    keep_going: bool,
}

/// `--pause-after`'s progress.
#[derive(Debug, Clone, Copy)]
enum PauseState {
    /// Nothing asked.
    None,
    /// Waiting for the first Play.Start.
    Armed(PauseAfter),
    /// The pause goes out at this instant.
    PauseAt(Instant, PauseAfter),
    /// Paused; unpause at this instant.
    ResumeAt(Instant, PauseAfter),
    /// Unpaused; the first media timestamp after it is still to be printed.
    Resumed,
    Done,
}

impl Playback {
    fn new(args: &PlayArgs) -> Playback {
        let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        Playback {
            // parse_seconds bounds it below u32::MAX ms.
            seek_ms: args.seek.map(|s| (s * 1000.0).round() as u32),
            duration_ms: args.duration.map(ms),
            frames: args.frames,
            stop_at: None,
            first_media: None,
            last_source_ts: None,
            pause: args.pause_after.map_or(PauseState::None, PauseState::Armed),
            keep_going: args.connection.reconnect,
        }
    }

    fn recorded(&self) -> bool {
        self.seek_ms.is_some()
    }

    /// The play command's start and duration (ms): where a recorded stream is (its last
    /// timestamp after a reconnect) and what is left of `--duration`; for live -2 and the
    /// duration, as the RTMP spec reads them.
    fn range(&self) -> (f64, f64) {
        let Some(seek) = self.seek_ms else {
            return (-2.0, self.duration_ms.map_or(-1.0, f64::from));
        };
        let at = self.last_source_ts.unwrap_or(seek);
        let left = self.duration_ms.map_or(-1.0, |d| {
            let end = u64::from(self.first_media.unwrap_or(seek).max(seek)) + u64::from(d);
            end.saturating_sub(u64::from(at)) as f64
        });
        (f64::from(at), left)
    }

    /// A recorded stream's media stop: past `--duration` (and the slack) from its start.
    fn past_duration(&self, ts: u32) -> bool {
        let (Some(seek), Some(d), Some(first)) = (self.seek_ms, self.duration_ms, self.first_media)
        else {
            return false;
        };
        let end = u64::from(first.max(seek)) + u64::from(d) + u64::from(DURATION_SLACK_MS);
        u64::from(ts) > end
    }

    /// Playback (re)started: arms the live `--duration` and the pause on the first start.
    fn started(&mut self, now: Instant) {
        if !self.recorded() && self.stop_at.is_none() {
            self.stop_at = self
                .duration_ms
                .map(|d| now + Duration::from_millis(d.into()));
        }
        if let PauseState::Armed(p) = self.pause {
            self.pause = PauseState::PauseAt(now + p.after, p);
        }
    }

    fn pause_deadline(&self) -> Option<Instant> {
        match self.pause {
            PauseState::PauseAt(at, _) | PauseState::ResumeAt(at, _) => Some(at),
            _ => None,
        }
    }
}

/// Runs `onair play`.
pub async fn run(args: PlayArgs) -> anyhow::Result<()> {
    let url = RtmpUrl::parse(&args.url).context("invalid play URL")?;
    let shown = url.full();
    let (writer, target) = open_output(args.output.as_ref()).await?;
    let mut interrupt = Interrupt::new().context("installing the Ctrl-C handler")?;
    let options = args.connection.options(!args.simple_handshake);
    let mut reconnector = args.connection.reconnector();
    let mut playback = Playback::new(&args);

    let started = Instant::now();
    let mut out = FlvOutput::new(writer);
    let mut played = false;
    let ended = loop {
        let (result, up_for) =
            match connect(&url, &options, &shown, &playback, &mut interrupt).await {
                Ok(Some(mut client)) => {
                    if played {
                        eprintln!("playing {shown} again, into the same {target}");
                        out.seam();
                    } else {
                        eprintln!("playing {shown} to {target}");
                    }
                    played = true;
                    let up = Instant::now();
                    playback.started(up);
                    let ended = receive(&mut client, &mut out, &mut interrupt, &mut playback).await;
                    // A goodbye would only wait for a server that cannot hear it.
                    if !ended.as_ref().is_err_and(connection_gone)
                        && let Err(e) = client.close().await
                    {
                        debug!(error = %e, "closing the connection");
                    }
                    (ended, Some(up.elapsed()))
                }
                Ok(None) => break Ok(Stop::Interrupted),
                Err(e) => (Err(e), None),
            };
        let error = match result {
            Ok(stop) => break Ok(stop),
            Err(e) => e,
        };
        let Some(reconnector) = reconnector.as_mut() else {
            break Err(error);
        };
        match reconnector
            .after_failure(error, false, up_for, &shown, &mut interrupt)
            .await
        {
            Ok(Retry::Now) => {}
            Ok(Retry::Interrupted) => break Ok(Stop::Interrupted),
            Err(e) => break Err(e),
        }
    };
    if !played && matches!(ended, Ok(Stop::Interrupted)) {
        bail!("interrupted while connecting");
    }
    let written = out
        .finish()
        .await
        .with_context(|| format!("writing {target}"));
    let reconnects = reconnector.map_or(0, |r| r.reconnects);
    eprintln!(
        "wrote {} tags ({} video frames, {} audio, {} script; {}) to {target} in {}{}{}",
        out.tags(),
        out.video_frames,
        out.audio,
        out.script,
        format_bytes(out.bytes),
        format_secs(started.elapsed()),
        match reconnects {
            0 => String::new(),
            1 => ", 1 reconnect".to_owned(),
            n => format!(", {n} reconnects"),
        },
        match &ended {
            Ok(stop) => format!(": {}", stop.describe()),
            Err(_) => String::new(),
        },
    );
    if let Ok(Stop::Complete) = ended {
        eprintln!("the VOD ended: the server sent NetStream.Play.Complete");
    }
    ended?;
    written
}

/// Connects and starts the play; `None` when interrupted meanwhile.
async fn connect(
    url: &RtmpUrl,
    options: &ClientOptions,
    shown: &str,
    playback: &Playback,
    interrupt: &mut Interrupt,
) -> anyhow::Result<Option<RtmpClient>> {
    eprintln!("connecting to {shown}");
    let mut client = tokio::select! {
        client = RtmpClient::connect(url, options) => client.with_context(|| format!("connecting to {shown}"))?,
        _ = interrupt.recv() => return Ok(None),
    };
    let (start, duration) = playback.range();
    tokio::select! {
        played = client.play_range(start, duration) => played.map_err(|e| refused(e, shown))?,
        _ = interrupt.recv() => {
            let _ = client.close().await;
            return Ok(None);
        }
    }
    Ok(Some(client))
}

/// Moves the stream from the server into the FLV until a stop condition.
async fn receive(
    client: &mut RtmpClient,
    out: &mut FlvOutput,
    interrupt: &mut Interrupt,
    playback: &mut Playback,
) -> anyhow::Result<Stop> {
    if playback.frames == Some(0) {
        return Ok(Stop::Frames);
    }
    // Play.Stop came: what follows (Play.Complete, StreamEOF, a close) is the end.
    let mut stopped = false;
    loop {
        let probe_until = out.probe_deadline();
        tokio::select! {
            biased;
            _ = interrupt.recv() => return Ok(Stop::Interrupted),
            _ = sleep_until_opt(playback.stop_at) => return Ok(Stop::Duration),
            _ = sleep_until_opt(playback.pause_deadline()) => pause_or_resume(client, out, playback).await?,
            _ = sleep_until_opt(probe_until) => out.settle().await?,
            event = client.next_event() => match event.context("while playing")? {
                // A recorded stream that stopped has ended; a live one may come back.
                None if stopped && (playback.recorded() || !playback.keep_going) => {
                    return Ok(Stop::Unpublished);
                }
                None => bail!("the server closed the connection"),
                Some(ClientEvent::Media { kind, timestamp, payload }) => {
                    if playback.past_duration(timestamp) {
                        return Ok(Stop::Duration);
                    }
                    playback.first_media.get_or_insert(timestamp);
                    playback.last_source_ts = Some(timestamp);
                    let written = out.push(kind, timestamp, payload).await?;
                    if let PauseState::Resumed = playback.pause {
                        eprintln!("first timestamp after the pause: {written} ms");
                        playback.pause = PauseState::Done;
                    }
                    if playback.frames.is_some_and(|n| out.video_frames >= n) {
                        return Ok(Stop::Frames);
                    }
                }
                Some(ClientEvent::Metadata { timestamp, payload }) => {
                    out.push(MediaKind::Script, timestamp, payload).await?;
                }
                Some(ClientEvent::PlayStatus { code, .. }) if code == "NetStream.Play.Complete" => {
                    return Ok(Stop::Complete);
                }
                Some(ClientEvent::UnpublishNotify | ClientEvent::StreamEof) => {
                    if !playback.keep_going {
                        return Ok(Stop::Unpublished);
                    }
                    // A server that keeps the connection may start the next publish at 0.
                    debug!("the publisher went away; waiting for the next one");
                    out.seam();
                }
                Some(ClientEvent::Status { code, .. }) if code == "NetStream.Play.Stop" => {
                    // A recorded stream's end: Play.Complete and StreamEOF follow.
                    stopped = true;
                }
                Some(ClientEvent::Rejected { code, description }) => {
                    bail!("the server ended playback: {code} ({description})")
                }
                Some(other) => debug!(event = ?other, "server event"),
            },
        }
    }
}

/// `--pause-after`'s timer fired: sends the pause or the unpause and says so.
async fn pause_or_resume(
    client: &mut RtmpClient,
    out: &FlvOutput,
    playback: &mut Playback,
) -> anyhow::Result<()> {
    let position = f64::from(playback.last_source_ts.unwrap_or(0));
    let last = out
        .last_media
        .map_or_else(|| "none yet".to_owned(), |t| format!("{t} ms"));
    match playback.pause {
        PauseState::PauseAt(_, p) => {
            client.pause(true, position).await.context("pausing")?;
            eprintln!(
                "paused after {} of playback; last timestamp before the pause: {last}",
                format_secs(p.after)
            );
            playback.pause = PauseState::ResumeAt(Instant::now() + p.resume_after, p);
        }
        PauseState::ResumeAt(_, p) => {
            client.pause(false, position).await.context("resuming")?;
            eprintln!(
                "resumed after {} paused; last timestamp received: {last}",
                format_secs(p.resume_after)
            );
            playback.pause = PauseState::Resumed;
        }
        _ => {}
    }
    Ok(())
}

fn refused(e: ClientError, shown: &str) -> anyhow::Error {
    match e {
        e @ ClientError::Rejected { .. } => {
            anyhow::Error::new(e).context(format!("the server refused to play {shown}"))
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
    timeline: OutTimeline,
    /// The last video and audio sequence headers and metadata written: one that comes again
    /// unchanged (a new session, a server's skip) is not written twice.
    last_video_header: Option<Bytes>,
    last_audio_header: Option<Bytes>,
    last_metadata: Option<Bytes>,
    /// The timestamp of the last audio or video tag, as written.
    last_media: Option<u32>,
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
            timeline: OutTimeline::default(),
            last_video_header: None,
            last_audio_header: None,
            last_metadata: None,
            last_media: None,
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

    /// A new session (or a new publish on the same one) begins: its timestamps are offset
    /// to follow the last written.
    fn seam(&mut self) {
        self.timeline.seam();
    }

    /// Writes (or holds) one message; returns the timestamp it gets in the file.
    async fn push(&mut self, kind: MediaKind, timestamp: u32, body: Bytes) -> std::io::Result<u32> {
        let timestamp = self.timeline.map(kind, timestamp);
        let sequence_header = onair_flv::classify(kind, &body).sequence_header;
        let last = match kind {
            MediaKind::Video if sequence_header => Some(&mut self.last_video_header),
            MediaKind::Audio if sequence_header => Some(&mut self.last_audio_header),
            MediaKind::Script if onair_flv::is_on_metadata(&body) => Some(&mut self.last_metadata),
            _ => None,
        };
        if let Some(last) = last {
            if last.as_ref() == Some(&body) {
                return Ok(timestamp);
            }
            *last = Some(body.clone());
        }
        match kind {
            MediaKind::Video if sequence_header => self.video_headers += 1,
            MediaKind::Video => self.video_frames += 1,
            MediaKind::Audio => self.audio += 1,
            MediaKind::Script => self.script += 1,
        }
        if kind != MediaKind::Script {
            self.last_media = Some(timestamp);
        }
        if self.header_written {
            self.write_tag(kind, timestamp, &body).await?;
            // A pipe reader (ffplay) should see each frame as it arrives.
            self.writer.flush().await?;
            return Ok(timestamp);
        }
        self.probe.see(kind, &body, Instant::now());
        self.held.push((kind, timestamp, body));
        if self.probe.certain {
            self.settle().await?;
        }
        Ok(timestamp)
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

/// The file's timestamps across sessions. The first session's are written as they come;
/// at each [`seam`](Self::seam) the next session's first audio or video tag is placed one
/// frame after the last tag written and the rest of that session follows it, never below
/// where the previous one ended. Arithmetic wraps at 2^32 ms like RTMP's.
#[derive(Debug, Default)]
struct OutTimeline {
    offset: u32,
    /// The next audio or video tag sets `offset`.
    seam_pending: bool,
    /// Since the last seam: nothing is written below this.
    floor: Option<u32>,
    /// The latest timestamp written.
    last: Option<u32>,
    last_video: Option<u32>,
    video_interval: Option<u32>,
}

impl OutTimeline {
    fn seam(&mut self) {
        if self.last.is_some() {
            self.seam_pending = true;
            self.floor = self.last;
        }
        // A gap across the seam is not a frame interval.
        self.last_video = None;
    }

    fn map(&mut self, kind: MediaKind, ts: u32) -> u32 {
        if self.seam_pending
            && kind != MediaKind::Script
            && let Some(last) = self.last
        {
            self.seam_pending = false;
            let resume = last.wrapping_add(self.video_interval.unwrap_or(DEFAULT_FRAME_INTERVAL));
            self.offset = resume.wrapping_sub(ts);
        }
        let mut out = ts.wrapping_add(self.offset);
        if let Some(floor) = self.floor
            && before(out, floor)
        {
            out = floor;
        }
        if kind == MediaKind::Video {
            if let Some(previous) = self.last_video
                && before(previous, out)
            {
                self.video_interval = Some(out.wrapping_sub(previous));
            }
            self.last_video = Some(out);
        }
        if self.last.is_none_or(|last| before(last, out)) {
            self.last = Some(out);
        }
        out
    }
}

/// `a` is earlier than `b` in RTMP's serial arithmetic.
fn before(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) > 0
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

    /// Maps `(kind, ts)` messages through a timeline, a seam before each `None`.
    fn written(messages: &[Option<(MediaKind, u32)>]) -> Vec<u32> {
        let mut t = OutTimeline::default();
        let mut out = Vec::new();
        for m in messages {
            match m {
                None => t.seam(),
                Some((kind, ts)) => out.push(t.map(*kind, *ts)),
            }
        }
        out
    }

    #[test]
    fn the_first_session_keeps_its_timestamps() {
        use MediaKind::{Audio, Script, Video};
        let first = [
            Some((Script, 0)),
            Some((Video, 5000)),
            Some((Audio, 4990)),
            Some((Video, 5040)),
        ];
        assert_eq!(written(&first), [0, 5000, 4990, 5040]);
        // A seam before anything was written changes nothing either.
        assert_eq!(written(&[None, Some((Video, 700))]), [700]);
    }

    #[test]
    fn a_new_session_follows_the_last_tag_one_frame_later_and_never_goes_back() {
        use MediaKind::{Audio, Script, Video};
        let messages = [
            Some((Video, 1000)),
            Some((Audio, 1010)),
            Some((Video, 1040)),
            Some((Audio, 1050)),
            None,
            // The new publish starts at 0: metadata first (held at the floor), then audio
            // a little before the video.
            Some((Script, 0)),
            Some((Audio, 0)),
            Some((Video, 20)),
            Some((Video, 60)),
        ];
        assert_eq!(
            written(&messages),
            [1000, 1010, 1040, 1050, 1050, 1090, 1110, 1150]
        );

        // A session whose timestamps are ahead (a live join far into the publish) comes
        // back down to follow the file, and one whose audio starts before its first video
        // is held at the floor.
        let messages = [
            Some((Video, 0)),
            Some((Video, 40)),
            None,
            Some((Video, 90_000)),
            Some((Audio, 89_900)),
            Some((Video, 90_040)),
        ];
        assert_eq!(written(&messages), [0, 40, 80, 40, 120]);
    }

    #[test]
    fn seams_wrap_like_rtmp_timestamps() {
        use MediaKind::Video;
        let messages = [
            Some((Video, u32::MAX - 40)),
            Some((Video, u32::MAX)),
            None,
            Some((Video, 0)),
            Some((Video, 40)),
        ];
        assert_eq!(written(&messages), [u32::MAX - 40, u32::MAX, 39, 79]);
    }

    #[test]
    fn pause_and_seek_arguments_parse() {
        assert_eq!(
            parse_pause("2:1"),
            Ok(PauseAfter {
                after: Duration::from_secs(2),
                resume_after: Duration::from_secs(1)
            })
        );
        assert_eq!(
            parse_pause("1.5"),
            Ok(PauseAfter {
                after: Duration::from_millis(1500),
                resume_after: Duration::from_secs(2)
            })
        );
        for bad in ["", "x", "-1", "2:", "2:x", "inf", "NaN"] {
            assert!(parse_pause(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_seconds("30"), Ok(30.0));
        assert!(parse_seconds("5000000").is_err(), "past u32 ms");
    }

    #[test]
    fn a_recorded_play_resumes_where_it_was_with_what_is_left() {
        let args = PlayArgs {
            url: "rtmp://h/vod/1".into(),
            output: None,
            duration: Some(Duration::from_secs(10)),
            frames: None,
            seek: Some(30.0),
            pause_after: None,
            simple_handshake: false,
            connection: ConnectionArgs {
                timeout: Duration::from_secs(10),
                reconnect: true,
                reconnect_max: None,
            },
        };
        let mut p = Playback::new(&args);
        assert_eq!(p.range(), (30_000.0, 10_000.0));
        p.first_media = Some(29_960);
        p.last_source_ts = Some(36_000);
        assert_eq!(p.range(), (36_000.0, 4000.0));
        assert!(!p.past_duration(41_000), "the server's own end comes first");
        assert!(p.past_duration(41_001));

        let live = PlayArgs { seek: None, ..args };
        let p = Playback::new(&live);
        assert_eq!(p.range(), (-2.0, 10_000.0));
        assert!(!p.past_duration(u32::MAX), "live stops by the clock");
    }

    #[tokio::test]
    async fn unchanged_headers_are_written_once_and_changed_ones_again() {
        const AVC_HEADER: &[u8] = &[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f];
        const AVC_HEADER_2: &[u8] = &[0x17, 0, 0, 0, 0, 1, 0x4d, 0, 0x1f];
        const AAC_HEADER: &[u8] = &[0xaf, 0, 0x12, 0x10];
        let (w, mut r) = tokio::io::duplex(1 << 16);
        let mut out = FlvOutput::new(Box::new(w));
        let meta = metadata(vec![("width", 640.0.into()), ("audiocodecid", 10.0.into())]);
        for (kind, ts, body) in [
            (MediaKind::Script, 0, meta.clone()),
            (MediaKind::Video, 0, Bytes::from_static(AVC_HEADER)),
            (MediaKind::Audio, 0, Bytes::from_static(AAC_HEADER)),
            (MediaKind::Video, 0, Bytes::from_static(AVC_KEY)),
        ] {
            out.push(kind, ts, body).await.unwrap();
        }
        out.seam();
        for (kind, ts, body) in [
            (MediaKind::Script, 0, meta.clone()),
            (MediaKind::Video, 0, Bytes::from_static(AVC_HEADER)),
            (MediaKind::Audio, 0, Bytes::from_static(AAC_HEADER)),
            (MediaKind::Video, 0, Bytes::from_static(AVC_KEY)),
            (MediaKind::Video, 40, Bytes::from_static(AVC_HEADER_2)),
            (MediaKind::Video, 40, Bytes::from_static(AVC_KEY)),
        ] {
            out.push(kind, ts, body).await.unwrap();
        }
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
            tags,
            vec![
                (MediaKind::Script, 0, meta),
                (MediaKind::Video, 0, Bytes::from_static(AVC_HEADER)),
                (MediaKind::Audio, 0, Bytes::from_static(AAC_HEADER)),
                (MediaKind::Video, 0, Bytes::from_static(AVC_KEY)),
                // The second session: one frame later, repeats dropped, the new header kept.
                (MediaKind::Video, 40, Bytes::from_static(AVC_KEY)),
                (MediaKind::Video, 80, Bytes::from_static(AVC_HEADER_2)),
                (MediaKind::Video, 80, Bytes::from_static(AVC_KEY)),
            ]
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
