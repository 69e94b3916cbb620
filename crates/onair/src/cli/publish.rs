//! `onair publish FILE.flv rtmp://host[:1935]/app/KEY [--loop] [--no-pace]`: sends an FLV
//! file to an RTMP server the way an encoder would, in real time.
//!
//! The file is read as it is sent (a 64 KiB read buffer plus the tag being sent), so a
//! file of any length publishes in bounded memory. Tags go out when their timestamp is due
//! relative to the first one, with `sleep_until` on the runtime's timer, never a busy loop.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use onair_client::{ClientError, ClientOptions, RtmpClient, RtmpUrl};
use onair_flv::{FlvDemuxer, FlvHeader, FlvTag};
use onair_media::MediaKind;
use onair_rtmp::session::ClientEvent;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;
use tracing::debug;

use super::{ConnectionArgs, Interrupt, Retry, connection_gone, format_bytes, format_secs};

/// One frame interval for files too short to measure one: 25 fps.
const DEFAULT_FRAME_INTERVAL: u32 = 40;

/// How much of the file is read at once.
const READ_CHUNK: usize = 64 * 1024;

/// Arguments of `onair publish`.
#[derive(clap::Args)]
pub struct PublishArgs {
    /// The FLV file to send.
    pub file: PathBuf,
    /// Where to publish: rtmp://HOST[:1935]/APP/STREAM_KEY. The key is never printed.
    pub url: String,
    /// At the end of the file start over, timestamps continuing from the last one plus one
    /// frame interval, until interrupted.
    #[arg(long = "loop")]
    pub repeat: bool,
    /// Send as fast as the server accepts instead of in real time.
    #[arg(long)]
    pub no_pace: bool,
    /// Use the simple RTMP handshake instead of the digest one OBS and FFmpeg use.
    #[arg(long)]
    pub simple_handshake: bool,
    /// `--timeout`, `--reconnect`, `--reconnect-max`. A reconnected publish goes on from
    /// where the file was, timestamps still increasing, with the metadata and sequence
    /// headers sent again and video from the next keyframe.
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

impl fmt::Debug for PublishArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL holds the stream key.
        f.debug_struct("PublishArgs")
            .field("file", &self.file)
            .field("url", &onair::secret::REDACTED)
            .field("repeat", &self.repeat)
            .field("no_pace", &self.no_pace)
            .field("simple_handshake", &self.simple_handshake)
            .field("connection", &self.connection)
            .finish()
    }
}

/// Runs `onair publish`.
pub async fn run(args: PublishArgs) -> anyhow::Result<()> {
    let url = RtmpUrl::parse(&args.url).context("invalid publish URL")?;
    let shown = url.redacted();
    let mut file = FlvFile::open(args.file.clone()).await?;
    let mut interrupt = Interrupt::new().context("installing the Ctrl-C handler")?;
    let options = args.connection.options(!args.simple_handshake);
    let mut reconnector = args.connection.reconnector();

    let started = Instant::now();
    let mut progress = Progress::default();
    let mut sent = 0u64;
    let mut published = false;
    let outcome = loop {
        let (result, up_for) = match connect(&url, &options, &shown, &mut interrupt).await {
            Ok(Some(mut client)) => {
                announce(&args, &shown, published, &progress);
                let up = Instant::now();
                let outcome = if published {
                    progress.resume(&mut client)
                } else {
                    Ok(())
                };
                let outcome = match outcome {
                    Ok(()) => {
                        stream(
                            &mut client,
                            &mut file,
                            &args,
                            &url,
                            &mut interrupt,
                            &mut progress,
                        )
                        .await
                    }
                    Err(e) => Err(e),
                };
                published = true;
                if let Ok(Ended::Interrupted) = outcome {
                    eprintln!("interrupted: unpublishing");
                }
                sent += client.bytes_written();
                // Also after an error: the server may still be there to hear the unpublish,
                // unless the connection itself is what failed.
                if !outcome.as_ref().is_err_and(connection_gone)
                    && let Err(e) = client.close().await
                    && outcome.is_ok()
                {
                    eprintln!("warning: the connection did not close cleanly: {e:#}");
                }
                (outcome, Some(up.elapsed()))
            }
            Ok(None) if published => break Ok(Ended::Interrupted),
            Ok(None) => bail!("interrupted while connecting"),
            Err(e) => (Err(e), None),
        };
        let error = match result {
            Ok(ended) => break Ok(ended),
            Err(e) => e,
        };
        let Some(reconnector) = reconnector.as_mut() else {
            break Err(error);
        };
        match reconnector
            .after_failure(error, published, up_for, &shown, &mut interrupt)
            .await
        {
            Ok(Retry::Now) => {}
            Ok(Retry::Interrupted) => break Ok(Ended::Interrupted),
            Err(e) => break Err(e),
        }
    };
    let Progress {
        timeline,
        stats,
        passes,
        ..
    } = progress;
    let reconnects = reconnector.map_or(0, |r| r.reconnects);
    eprintln!(
        "published {} tags ({} video, {} audio, {} script; {} of tag data, {} on the wire) in {}, media time {}{}{}",
        stats.tags(),
        stats.video,
        stats.audio,
        stats.script,
        format_bytes(stats.bytes),
        format_bytes(sent),
        format_secs(started.elapsed()),
        format_secs(timeline.span()),
        if passes > 1 {
            format!(", {passes} passes")
        } else {
            String::new()
        },
        match reconnects {
            0 => String::new(),
            1 => ", 1 reconnect".to_owned(),
            n => format!(", {n} reconnects"),
        },
    );
    outcome.map(|_| ())
}

/// Connects and publishes; `None` when interrupted meanwhile.
async fn connect(
    url: &RtmpUrl,
    options: &ClientOptions,
    shown: &str,
    interrupt: &mut Interrupt,
) -> anyhow::Result<Option<RtmpClient>> {
    eprintln!("connecting to {shown}");
    let mut client = tokio::select! {
        client = RtmpClient::connect(url, options) => {
            client.with_context(|| format!("connecting to {shown}"))?
        }
        _ = interrupt.recv() => return Ok(None),
    };
    tokio::select! {
        published = client.publish() => published.map_err(|e| refused(e, shown))?,
        _ = interrupt.recv() => {
            let _ = client.close().await;
            return Ok(None);
        }
    }
    Ok(Some(client))
}

fn announce(args: &PublishArgs, shown: &str, again: bool, progress: &Progress) {
    if again {
        eprintln!(
            "publishing to {shown} again, from media time {} of {}",
            format_secs(progress.timeline.span()),
            args.file.display()
        );
        return;
    }
    eprintln!(
        "publishing {} to {shown}{}{}",
        args.file.display(),
        if args.no_pace { " (not paced)" } else { "" },
        if args.repeat {
            " in a loop; Ctrl-C stops"
        } else {
            ""
        },
    );
}

/// How a publish that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    EndOfFile,
    Interrupted,
}

/// What has been sent so far, for pacing, the summary and a reconnect.
#[derive(Debug, Default)]
struct Progress {
    timeline: Timeline,
    stats: Stats,
    /// Passes over the file begun.
    passes: u64,
    /// Tags read in the current pass.
    tags_in_pass: u64,
    /// What a new connection needs before the media: the latest metadata and sequence
    /// headers sent.
    headers: Headers,
    /// After a reconnect: video waits for a keyframe, as frames that refer to earlier ones
    /// are useless to a viewer that joins the new publish.
    need_keyframe: bool,
    /// When the current connection's pacing began (tags are due relative to it).
    pace_start: Option<Instant>,
}

#[derive(Debug, Default)]
struct Headers {
    metadata: Option<Bytes>,
    video: Option<Bytes>,
    audio: Option<Bytes>,
}

impl Progress {
    /// On a new connection after a lost one: the metadata and sequence headers again (at the
    /// latest timestamp sent, so none goes back), video from the next keyframe, and pacing
    /// anchored at now, so the media missed during the outage is not sent in a burst.
    fn resume(&mut self, client: &mut RtmpClient) -> anyhow::Result<()> {
        let ts = self.timeline.last.unwrap_or(0);
        if let Some(meta) = &self.headers.metadata {
            client.send_metadata(meta.clone());
        }
        if let Some(video) = &self.headers.video {
            client.send_media(MediaKind::Video, ts, video.clone())?;
        }
        if let Some(audio) = &self.headers.audio {
            client.send_media(MediaKind::Audio, ts, audio.clone())?;
        }
        self.need_keyframe = self.headers.video.is_some();
        self.pace_start = None;
        self.timeline.reanchor();
        Ok(())
    }
}

/// Sends the file's tags in time until its end (or forever with `--loop`), a signal, or an
/// error. Called again after a reconnect, it goes on from the next tag of the file.
async fn stream(
    client: &mut RtmpClient,
    file: &mut FlvFile,
    args: &PublishArgs,
    url: &RtmpUrl,
    interrupt: &mut Interrupt,
    progress: &mut Progress,
) -> anyhow::Result<Ended> {
    let pace_start = *progress.pace_start.get_or_insert_with(Instant::now);
    let Progress {
        timeline,
        stats,
        passes,
        tags_in_pass,
        headers,
        need_keyframe,
        ..
    } = progress;
    *passes = (*passes).max(1);
    loop {
        let Some(tag) = file.next_tag().await? else {
            if !args.repeat {
                return Ok(Ended::EndOfFile);
            }
            if *tags_in_pass == 0 {
                bail!("{} has no tags to loop over", args.file.display());
            }
            file.rewind().await?;
            timeline.restart();
            *passes += 1;
            *tags_in_pass = 0;
            continue;
        };
        *tags_in_pass += 1;
        // Metadata describes the stream once; sending it again on every loop would only
        // make players reinitialise.
        if tag.kind == MediaKind::Script && *passes > 1 {
            continue;
        }
        if tag.kind == MediaKind::Video && *need_keyframe {
            let class = onair_flv::classify(tag.kind, &tag.body);
            if !(class.keyframe || class.sequence_header) {
                continue;
            }
            *need_keyframe = !class.keyframe;
        }
        let timestamp = timeline.map(tag.kind, tag.timestamp.as_millis());
        let due = if args.no_pace {
            Instant::now()
        } else {
            timeline.due(pace_start, timestamp)
        };
        // Wait for the tag's time, answering the server (pings, status) meanwhile.
        loop {
            tokio::select! {
                biased;
                _ = interrupt.recv() => return Ok(Ended::Interrupted),
                event = client.next_event() => on_event(event, url)?,
                _ = tokio::time::sleep_until(due) => break,
            }
        }
        send(client, tag, timestamp, stats, headers)?;
        tokio::select! {
            biased;
            _ = interrupt.recv() => return Ok(Ended::Interrupted),
            flushed = client.flush() => flushed.context("sending to the server")?,
        }
    }
}

/// A refused publish as the operator should read it: the server's code and reason, and the
/// URL without its key.
fn refused(e: ClientError, shown: &str) -> anyhow::Error {
    match e {
        // Kept as the cause, so the reconnect loop can tell a final refusal.
        e @ ClientError::Rejected { .. } => {
            anyhow::Error::new(e).context(format!("the server refused to publish to {shown}"))
        }
        other => anyhow::Error::new(other).context(format!("publishing to {shown}")),
    }
}

/// Handles what the server says during a publish: an error status or a server-side
/// unpublish ends the command; the rest is logged at debug level.
fn on_event(event: Result<Option<ClientEvent>, ClientError>, url: &RtmpUrl) -> anyhow::Result<()> {
    match event.context("while publishing")? {
        None => bail!("the server closed the connection"),
        Some(ClientEvent::Rejected { code, description }) => {
            bail!(
                "the server ended the publish: {code} ({})",
                url.scrub(&description)
            )
        }
        Some(ClientEvent::Status {
            code, description, ..
        }) if code == "NetStream.Unpublish.Success" => {
            bail!(
                "the server ended the publish: {code} ({})",
                url.scrub(&description)
            )
        }
        Some(other) => debug!(event = ?other, "server event"),
    }
    Ok(())
}

fn send(
    client: &mut RtmpClient,
    tag: FlvTag,
    timestamp: u32,
    stats: &mut Stats,
    headers: &mut Headers,
) -> anyhow::Result<()> {
    stats.bytes += tag.body.len() as u64;
    match tag.kind {
        MediaKind::Script => {
            stats.script += 1;
            match metadata_body(&tag.body) {
                Some(body) => {
                    headers.metadata = Some(body.clone());
                    client.send_metadata(body);
                }
                // onCuePoint, onTextData and the like: passed on as plain data messages.
                None => client.send_media(MediaKind::Script, timestamp, tag.body)?,
            }
        }
        kind => {
            match kind {
                MediaKind::Video => stats.video += 1,
                _ => stats.audio += 1,
            }
            if onair_flv::classify(kind, &tag.body).sequence_header {
                let slot = match kind {
                    MediaKind::Video => &mut headers.video,
                    _ => &mut headers.audio,
                };
                *slot = Some(tag.body.clone());
            }
            client.send_media(kind, timestamp, tag.body)?;
        }
    }
    Ok(())
}

/// The `"onMetaData", {…}` body of a script tag (a file written from a live stream may still
/// carry the `@setDataFrame` wrapper), or `None` for other script data.
fn metadata_body(body: &Bytes) -> Option<Bytes> {
    onair_flv::is_on_metadata(body).then(|| onair_flv::strip_set_data_frame(body.clone()))
}

#[derive(Debug, Default)]
struct Stats {
    video: u64,
    audio: u64,
    script: u64,
    bytes: u64,
}

impl Stats {
    fn tags(&self) -> u64 {
        self.video + self.audio + self.script
    }
}

/// An FLV file read tag by tag.
struct FlvFile {
    path: PathBuf,
    file: tokio::fs::File,
    demuxer: FlvDemuxer,
    buf: BytesMut,
    /// A tag read along with the header by [`FlvFile::open`].
    peeked: Option<FlvTag>,
}

impl FlvFile {
    /// Opens the file and checks its FLV header.
    async fn open(path: PathBuf) -> anyhow::Result<FlvFile> {
        let file = tokio::fs::File::open(&path)
            .await
            .with_context(|| format!("cannot open {}", path.display()))?;
        let mut flv = FlvFile {
            path,
            file,
            demuxer: FlvDemuxer::default(),
            buf: BytesMut::new(),
            peeked: None,
        };
        flv.peeked = flv.next_tag().await?;
        if flv.header().is_none() {
            bail!(
                "{} is not an FLV file (too short for the FLV header)",
                flv.path.display()
            );
        }
        Ok(flv)
    }

    fn header(&self) -> Option<FlvHeader> {
        self.demuxer.header()
    }

    /// The next tag; `None` at the end of the file.
    async fn next_tag(&mut self) -> anyhow::Result<Option<FlvTag>> {
        if let Some(tag) = self.peeked.take() {
            return Ok(Some(tag));
        }
        loop {
            let decoded = self.demuxer.decode(&mut self.buf);
            match decoded.with_context(|| format!("reading {}", self.path.display()))? {
                Some(tag) => return Ok(Some(tag)),
                None => {
                    self.buf.reserve(READ_CHUNK);
                    let n = self
                        .file
                        .read_buf(&mut self.buf)
                        .await
                        .with_context(|| format!("reading {}", self.path.display()))?;
                    if n == 0 {
                        if !self.buf.is_empty() {
                            eprintln!(
                                "warning: {} ends in the middle of a tag ({} bytes ignored)",
                                self.path.display(),
                                self.buf.len()
                            );
                            self.buf.clear();
                        }
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Back to the first tag.
    async fn rewind(&mut self) -> anyhow::Result<()> {
        use tokio::io::AsyncSeekExt;
        self.file
            .seek(std::io::SeekFrom::Start(0))
            .await
            .with_context(|| format!("rewinding {}", self.path.display()))?;
        self.demuxer = FlvDemuxer::default();
        self.buf.clear();
        self.peeked = None;
        Ok(())
    }
}

/// Maps file timestamps to the timestamps sent, and sent timestamps to the instants they
/// are due.
///
/// The first pass sends the file's own timestamps. After [`restart`](Self::restart) the next
/// pass is shifted so its first tag lands one frame interval after the latest timestamp
/// sent: timestamps keep growing, as a player's decoder and the hub's GOP cache expect.
/// Arithmetic wraps at 2^32 ms like RTMP timestamps do.
#[derive(Debug, Default)]
struct Timeline {
    /// Added to the file's timestamps in this pass.
    offset: u32,
    /// Set by `restart`: the timestamp the next tag gets.
    resume_at: Option<u32>,
    /// The first timestamp sent, the origin of [`span`](Self::span).
    origin: Option<u32>,
    /// The first timestamp sent on this connection, the origin of pacing.
    pace_origin: Option<u32>,
    /// The largest timestamp sent.
    last: Option<u32>,
    last_video: Option<u32>,
    last_audio: Option<u32>,
    video_interval: Option<u32>,
    audio_interval: Option<u32>,
}

impl Timeline {
    /// The timestamp to send a tag of the file at `file_ts` with.
    fn map(&mut self, kind: MediaKind, file_ts: u32) -> u32 {
        if let Some(resume) = self.resume_at.take() {
            self.offset = resume.wrapping_sub(file_ts);
        }
        let ts = file_ts.wrapping_add(self.offset);
        self.origin.get_or_insert(ts);
        self.pace_origin.get_or_insert(ts);
        let (previous, interval) = match kind {
            MediaKind::Video => (&mut self.last_video, &mut self.video_interval),
            MediaKind::Audio => (&mut self.last_audio, &mut self.audio_interval),
            MediaKind::Script => {
                self.last = Some(self.last.map_or(ts, |l| l.max(ts)));
                return ts;
            }
        };
        if let Some(p) = *previous
            && ts > p
        {
            *interval = Some(ts - p);
        }
        *previous = Some(ts);
        self.last = Some(self.last.map_or(ts, |l| l.max(ts)));
        ts
    }

    /// One frame: the latest gap between two video frames, else between two audio frames.
    fn frame_interval(&self) -> u32 {
        self.video_interval
            .or(self.audio_interval)
            .unwrap_or(DEFAULT_FRAME_INTERVAL)
    }

    /// The file starts over: its next tag continues one frame after the last one sent.
    fn restart(&mut self) {
        if let Some(last) = self.last {
            self.resume_at = Some(last.wrapping_add(self.frame_interval()));
        }
        // A gap measured across the seam is not a frame interval.
        self.last_video = None;
        self.last_audio = None;
    }

    /// Pacing starts over: the next tag mapped is due at the new start (after a reconnect).
    fn reanchor(&mut self) {
        self.pace_origin = None;
    }

    /// When a tag with the sent timestamp `ts` is due, for pacing that began at `start`
    /// with the first tag (since the last [`reanchor`](Self::reanchor)). Tags timed before
    /// that one (audio interleaved a little early) are due at once.
    fn due(&self, start: Instant, ts: u32) -> Instant {
        let origin = self.pace_origin.unwrap_or(ts);
        let ahead = ts.wrapping_sub(origin) as i32;
        start + Duration::from_millis(u64::from(ahead.max(0).unsigned_abs()))
    }

    /// Media time covered so far: last timestamp sent minus the first.
    fn span(&self) -> Duration {
        match (self.origin, self.last) {
            (Some(o), Some(l)) => Duration::from_millis(u64::from(l.wrapping_sub(o))),
            _ => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MediaKind::{Audio, Script, Video};

    /// Runs `passes` passes of `file` through a timeline and returns the timestamps sent.
    fn play(file: &[(MediaKind, u32)], passes: usize) -> Vec<u32> {
        let mut t = Timeline::default();
        let mut out = Vec::new();
        for pass in 0..passes {
            if pass > 0 {
                t.restart();
            }
            out.extend(file.iter().map(|&(kind, ts)| t.map(kind, ts)));
        }
        out
    }

    #[test]
    fn the_first_pass_keeps_the_files_timestamps() {
        let file = [
            (Script, 0),
            (Video, 0),
            (Audio, 0),
            (Audio, 23),
            (Video, 40),
            (Audio, 46),
            (Video, 80),
        ];
        assert_eq!(play(&file, 1), vec![0, 0, 0, 23, 40, 46, 80]);
    }

    #[test]
    fn a_loop_continues_one_video_frame_after_the_last_timestamp() {
        let file = [
            (Video, 0),
            (Audio, 10),
            (Video, 40),
            (Audio, 50),
            (Video, 80),
        ];
        assert_eq!(
            play(&file, 3),
            vec![
                0, 10, 40, 50, 80, 120, 130, 160, 170, 200, 240, 250, 280, 290, 320
            ]
        );
    }

    #[test]
    fn a_loop_rebases_a_file_that_does_not_start_at_zero() {
        // The largest timestamp is the audio at 1090, not the last tag: continue after it.
        let file = [(Video, 1000), (Video, 1033), (Audio, 1090), (Video, 1066)];
        assert_eq!(
            play(&file, 2),
            vec![1000, 1033, 1090, 1066, 1123, 1156, 1213, 1189]
        );
    }

    #[test]
    fn audio_only_files_loop_by_the_audio_interval_and_single_frames_by_the_default() {
        assert_eq!(
            play(&[(Audio, 0), (Audio, 21), (Audio, 42)], 2),
            vec![0, 21, 42, 63, 84, 105]
        );
        assert_eq!(play(&[(Video, 5)], 3), vec![5, 45, 85]);
    }

    #[test]
    fn the_seam_does_not_count_as_a_frame_interval() {
        // After the first seam the interval must still be 40, not the 40 + script gap.
        let file = [(Script, 0), (Video, 0), (Video, 40)];
        assert_eq!(play(&file, 3), vec![0, 0, 40, 80, 80, 120, 160, 160, 200]);
    }

    #[test]
    fn loops_wrap_like_rtmp_timestamps() {
        let file = [(Video, u32::MAX - 40), (Video, u32::MAX)];
        assert_eq!(play(&file, 2), vec![u32::MAX - 40, u32::MAX, 39, 79]);
    }

    #[test]
    fn tags_are_due_relative_to_the_first_one() {
        let mut t = Timeline::default();
        let start = Instant::now();
        let first = t.map(Video, 1000);
        assert_eq!(t.due(start, first), start);
        let late = t.map(Video, 2500);
        assert_eq!(t.due(start, late), start + Duration::from_millis(1500));
        // Audio interleaved before the first video is due at once, not in 49 days.
        let early = t.map(Audio, 990);
        assert_eq!(t.due(start, early), start);
        assert_eq!(t.span(), Duration::from_millis(1500));
    }

    #[test]
    fn pacing_continues_across_loops() {
        let mut t = Timeline::default();
        let start = Instant::now();
        t.map(Video, 0);
        t.map(Video, 40);
        t.restart();
        let ts = t.map(Video, 0);
        assert_eq!(ts, 80);
        assert_eq!(t.due(start, ts), start + Duration::from_millis(80));
    }

    #[test]
    fn after_a_reconnect_pacing_starts_over_and_timestamps_go_on() {
        let mut t = Timeline::default();
        let start = Instant::now();
        for ts in [0, 40, 80] {
            t.map(Video, ts);
        }
        // The connection is lost for a while; the next tag is due at the new start, not
        // in a burst to catch up, and its timestamp is the file's, after the last one sent.
        t.reanchor();
        let later = start + Duration::from_secs(5);
        let ts = t.map(Video, 120);
        assert_eq!(ts, 120);
        assert_eq!(t.due(later, ts), later);
        let next = t.map(Video, 160);
        assert_eq!(t.due(later, next), later + Duration::from_millis(40));
        assert_eq!(
            t.span(),
            Duration::from_millis(160),
            "the summary spans both"
        );
    }

    #[test]
    fn metadata_is_recognised_with_or_without_set_data_frame() {
        let meta = onair_amf::encode_all(&[
            "onMetaData".into(),
            onair_amf::Value::object([("width", 640.0.into())]),
        ]);
        assert_eq!(metadata_body(&meta), Some(meta.clone()));
        let wrapped = onair_amf::encode_all(&[
            "@setDataFrame".into(),
            "onMetaData".into(),
            onair_amf::Value::object([("width", 640.0.into())]),
        ]);
        assert_eq!(metadata_body(&wrapped), Some(meta));
        let cue = onair_amf::encode_all(&["onCuePoint".into(), onair_amf::Value::Null]);
        assert_eq!(metadata_body(&cue), None);
    }
}
