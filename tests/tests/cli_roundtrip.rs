//! `onair publish` and `onair play` as real processes against an in-process server: what
//! one publishes from an FLV file, the other writes to an FLV file byte for byte.
//!
//! The tests run the `onair` binary from the target directory this test was built into
//! ([`onair_binary`] builds it first when it is stale).
//!
//! The server needs no external tools, so these tests never skip.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use onair::config::{Config, DevKey};
use onair::platform::Platform;
use onair::secret::StreamKey;
use onair::server::RunningServer;
use onair_amf::Value;
use onair_e2e::binary::{TempDir, onair_binary};
use onair_flv::{FlvDemuxer, FlvHeader};
use onair_media::{MediaKind, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::timeout;

const CHANNEL: &str = "cli";
const KEY: &str = "sk-cli-roundtrip-7f3a9c2e51";
/// Longest any one step may take; generous for a loaded CI machine, never needed in a
/// passing run.
const STEP: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avc_and_aac_round_trip_byte_exact_through_publish_and_play_to_a_file() {
    let dir = TempDir::new("avc");
    let input = synthetic_flv(Codecs::AvcAac, 1);
    let source = dir.path().join("in.flv");
    std::fs::write(&source, &input).expect("writing the input FLV");
    let output = dir.path().join("out.flv");

    let received = round_trip(&source, Sink::File(output.clone())).await;
    assert!(
        received.is_empty(),
        "play -o FILE wrote {} bytes to stdout",
        received.len()
    );
    let written = std::fs::read(&output).expect("reading the output FLV");
    assert_same_media(&input, &written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enhanced_rtmp_hvc1_and_opus_pass_through_to_stdout_unchanged() {
    let dir = TempDir::new("hvc1");
    let input = synthetic_flv(Codecs::Hvc1Opus, 2);
    let source = dir.path().join("in.flv");
    std::fs::write(&source, &input).expect("writing the input FLV");

    let written = round_trip(&source, Sink::Stdout).await;
    assert_same_media(&input, &written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_publish_exits_non_zero_with_the_servers_status_and_no_key() {
    let dir = TempDir::new("refused");
    let source = dir.path().join("in.flv");
    std::fs::write(&source, synthetic_flv(Codecs::AvcAac, 3)).expect("writing the input FLV");
    let server = start_server().await;
    let wrong_key = "sk-not-a-real-key-0042";
    let url = format!("rtmp://{}/live/{wrong_key}", server.rtmp_addr);

    let publish = spawn(&["publish", path_str(&source), &url], Stdio::null()).await;
    let out = timeout(STEP, publish.wait_with_output())
        .await
        .expect("publish did not exit")
        .expect("publish");
    let stderr = String::from_utf8_lossy(&out.stderr);

    assert!(
        !out.status.success(),
        "a refused publish must fail; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("NetStream.Publish.Rejected"),
        "the status code is shown:\n{stderr}"
    );
    assert!(
        stderr.contains("unknown stream key"),
        "the server's description is shown:\n{stderr}"
    );
    assert!(
        stderr.contains("/live/[redacted]"),
        "the URL is shown redacted:\n{stderr}"
    );
    assert!(!stderr.contains(wrong_key), "the key leaked:\n{stderr}");
    assert!(!server.hub().is_live(CHANNEL));
    server.shutdown(Duration::from_secs(5)).await;
}

/// Where `onair play` writes.
enum Sink {
    File(PathBuf),
    Stdout,
}

/// Starts a server, a player (`onair play`) and, once the player is subscribed, a publisher
/// (`onair publish FILE`); waits for both to finish and returns the player's stdout.
async fn round_trip(source: &Path, sink: Sink) -> Vec<u8> {
    let server = start_server().await;
    let play_url = format!("rtmp://{}/live/{CHANNEL}", server.rtmp_addr);
    let publish_url = format!("rtmp://{}/live/{KEY}", server.rtmp_addr);

    // --duration only bounds a broken run: the player ends on UnpublishNotify.
    let mut play_args = vec!["play", &play_url, "--duration", "120s", "-o"];
    let output_arg;
    match &sink {
        Sink::File(path) => {
            output_arg = path.to_string_lossy().into_owned();
            play_args.push(&output_arg);
        }
        Sink::Stdout => play_args.push("-"),
    }
    let mut play = spawn(&play_args, Stdio::piped()).await;
    let play_stdout = collect(play.stdout.take().expect("piped stdout"));
    // "playing …" is printed after NetStream.Play.Start, which the server sends after the
    // viewer subscribed: from then on the viewer receives every frame of the publish.
    let (playing, play_stderr) = watch_for(play.stderr.take().expect("piped stderr"), "playing ");
    let started = timeout(STEP, playing).await.expect("play never started");
    assert!(
        started.is_ok(),
        "play exited before it started:\n{}",
        play_stderr.await.expect("stderr task")
    );

    let publish = spawn(&["publish", path_str(source), &publish_url], Stdio::null()).await;
    let published = timeout(STEP, publish.wait_with_output())
        .await
        .expect("publish did not exit")
        .expect("publish");
    let publish_stderr = String::from_utf8_lossy(&published.stderr);
    assert!(
        published.status.success(),
        "publish failed:\n{publish_stderr}"
    );
    assert!(
        publish_stderr.contains("/live/[redacted]"),
        "{publish_stderr}"
    );
    assert!(
        publish_stderr.contains("published "),
        "a summary is printed:\n{publish_stderr}"
    );

    let status: ExitStatus = timeout(STEP, play.wait())
        .await
        .expect("play did not exit")
        .expect("play");
    let play_stderr = play_stderr.await.expect("stderr task");
    assert!(status.success(), "play failed:\n{play_stderr}");
    assert!(
        play_stderr.contains("the stream ended"),
        "play stops on UnpublishNotify:\n{play_stderr}"
    );
    for (who, text) in [("publish", &*publish_stderr), ("play", &*play_stderr)] {
        assert!(!text.contains(KEY), "{who} printed the stream key:\n{text}");
    }
    eprintln!("onair publish:\n{publish_stderr}onair play:\n{play_stderr}");
    let received = play_stdout.await.expect("stdout task");
    server.shutdown(Duration::from_secs(5)).await;
    received
}

/// Asserts that `written` (from `onair play`) carries the media of `input` (the file
/// published), tag body for tag body and timestamp for timestamp, from the first keyframe the
/// viewer got to the end, after both sequence headers and metadata, under the same header
/// flags.
fn assert_same_media(input: &[u8], written: &[u8]) {
    let (in_header, in_tags) = demux(input);
    let (out_header, out_tags) = demux(written);
    assert_eq!(out_header, in_header, "FLV header flags");

    let script = |tags: &[Tag]| tags.iter().filter(|t| t.kind == MediaKind::Script).count();
    assert_eq!(script(&in_tags), 1);
    let out_meta = out_tags
        .iter()
        .find(|t| t.kind == MediaKind::Script)
        .expect("no metadata in the output");
    assert!(
        onair_flv::parse_metadata(&out_meta.body).is_ok(),
        "the output's script tag is onMetaData"
    );

    let media = |tags: Vec<Tag>| -> Vec<Tag> {
        tags.into_iter()
            .filter(|t| t.kind != MediaKind::Script)
            .collect()
    };
    let (in_media, out_media) = (media(in_tags), media(out_tags));
    let first_key = out_media
        .iter()
        .position(Tag::is_keyframe)
        .expect("the output has no keyframe");
    let start = in_media
        .iter()
        .position(|t| t.body == out_media[first_key].body)
        .expect("the output's first keyframe is not in the input");
    assert!(in_media[start].is_keyframe());
    let (expected, got) = (&in_media[start..], &out_media[first_key..]);
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert_eq!(
            (g.kind, g.timestamp),
            (e.kind, e.timestamp),
            "media tag {i} from the first keyframe on"
        );
        assert!(
            g.body == e.body,
            "media tag {i} from the first keyframe on: {:?} body differs",
            g.kind
        );
    }
    assert_eq!(
        got.len(),
        expected.len(),
        "media tags from the first keyframe on: the output ends {} tags early (the last sent: {:?} at {} ms)",
        expected.len().saturating_sub(got.len()),
        expected.last().map(|t| t.kind),
        expected.last().map_or(0, |t| t.timestamp),
    );
    let headers: Vec<&Tag> = in_media.iter().filter(|t| t.is_sequence_header()).collect();
    assert_eq!(
        headers.len(),
        2,
        "the input has one audio and one video sequence header"
    );
    for h in headers {
        assert!(
            out_media[..first_key]
                .iter()
                .any(|t| t.kind == h.kind && t.body == h.body),
            "the {:?} sequence header precedes the first keyframe",
            h.kind
        );
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Tag {
    kind: MediaKind,
    timestamp: u32,
    body: Bytes,
}

impl Tag {
    fn is_keyframe(&self) -> bool {
        let class = onair_flv::classify(self.kind, &self.body);
        class.keyframe && !class.sequence_header
    }

    fn is_sequence_header(&self) -> bool {
        onair_flv::classify(self.kind, &self.body).sequence_header
    }
}

fn demux(bytes: &[u8]) -> (FlvHeader, Vec<Tag>) {
    let mut demuxer = FlvDemuxer::default();
    let mut buf = BytesMut::from(bytes);
    let mut tags = Vec::new();
    while let Some(tag) = demuxer.decode(&mut buf).expect("valid FLV") {
        tags.push(Tag {
            kind: tag.kind,
            timestamp: tag.timestamp.as_millis(),
            body: tag.body,
        });
    }
    assert!(
        buf.is_empty(),
        "{} trailing bytes after the last tag",
        buf.len()
    );
    (demuxer.header().expect("an FLV header"), tags)
}

/// Which codecs the synthetic file carries.
#[derive(Debug, Clone, Copy)]
enum Codecs {
    /// Legacy FLV: AVC (CodecID 7) and AAC (SoundFormat 10).
    AvcAac,
    /// Enhanced RTMP: `hvc1` video and `Opus` audio, FourCC-signalled.
    Hvc1Opus,
}

/// About 3 s of a 25 fps stream with 1 s GOPs and 48 kHz audio: metadata, both sequence
/// headers, then interleaved frames whose payloads are random bytes (so every body is
/// unique and a byte slip anywhere shows).
fn synthetic_flv(codecs: Codecs, seed: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = FlvHeader {
        has_audio: true,
        has_video: true,
    }
    .encode()
    .to_vec();
    let mut tag = |kind: MediaKind, ts: u32, body: &[u8]| {
        out.extend_from_slice(&onair_flv::encode_tag(
            kind,
            Timestamp::from_millis(ts),
            body,
        ));
    };
    let (video_codec, audio_codec) = match codecs {
        Codecs::AvcAac => (Value::Number(7.0), Value::Number(10.0)),
        Codecs::Hvc1Opus => (fourcc_number(b"hvc1"), fourcc_number(b"Opus")),
    };
    let metadata = onair_amf::encode_all(&[
        "onMetaData".into(),
        Value::EcmaArray(vec![
            ("duration".into(), Value::Number(3.0)),
            ("width".into(), Value::Number(1280.0)),
            ("height".into(), Value::Number(720.0)),
            ("framerate".into(), Value::Number(25.0)),
            ("videocodecid".into(), video_codec),
            ("audiosamplerate".into(), Value::Number(48_000.0)),
            ("audiocodecid".into(), audio_codec),
            ("encoder".into(), "onair-e2e synthetic".into()),
        ]),
    ]);
    tag(MediaKind::Script, 0, &metadata);
    tag(MediaKind::Video, 0, &video_sequence_header(codecs));
    tag(MediaKind::Audio, 0, &audio_sequence_header(codecs));

    const VIDEO_INTERVAL: u32 = 40;
    const AUDIO_INTERVAL: u32 = 20;
    const END: u32 = 3_000;
    let (mut next_video, mut next_audio, mut frame) = (0u32, 0u32, 0u32);
    while next_video < END || next_audio < END {
        if next_video <= next_audio && next_video < END {
            let keyframe = frame.is_multiple_of(25);
            let mut payload = vec![
                0u8;
                if keyframe {
                    rng.random_range(4_000..12_000)
                } else {
                    rng.random_range(300..3_000)
                }
            ];
            rng.fill(&mut payload[..]);
            tag(
                MediaKind::Video,
                next_video,
                &video_frame(codecs, keyframe, frame, &payload),
            );
            next_video += VIDEO_INTERVAL;
            frame += 1;
        } else {
            let mut payload = vec![0u8; rng.random_range(100..400)];
            rng.fill(&mut payload[..]);
            tag(MediaKind::Audio, next_audio, &audio_frame(codecs, &payload));
            next_audio += AUDIO_INTERVAL;
        }
    }
    out
}

fn fourcc_number(fourcc: &[u8; 4]) -> Value {
    Value::Number(f64::from(u32::from_be_bytes(*fourcc)))
}

fn video_sequence_header(codecs: Codecs) -> Vec<u8> {
    match codecs {
        // FrameType 1 | CodecID 7, AVCPacketType 0, CompositionTime 0, then an
        // AVCDecoderConfigurationRecord with one SPS and one PPS.
        Codecs::AvcAac => [
            &[0x17, 0, 0, 0, 0][..],
            &[
                1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f, 1, 0, 2, 0x68, 0xeb,
            ],
        ]
        .concat(),
        // IsExHeader | FrameType 1 | PacketType 0 (SequenceStart), FourCC, then the start of an
        // HEVCDecoderConfigurationRecord (configurationVersion 1, Main profile).
        Codecs::Hvc1Opus => [
            &[0x90][..],
            b"hvc1",
            &[
                1, 1, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 0x5d, 0xf0, 0, 0xfc, 0xfd, 0xf8, 0xf8, 0,
                0, 0x0f, 0,
            ],
        ]
        .concat(),
    }
}

fn audio_sequence_header(codecs: Codecs) -> Vec<u8> {
    match codecs {
        // SoundFormat 10 (AAC) 44 kHz 16-bit stereo, AACPacketType 0, AudioSpecificConfig
        // (AAC-LC, 48 kHz, stereo).
        Codecs::AvcAac => vec![0xaf, 0, 0x11, 0x90],
        // SoundFormat 9 (ExHeader) | AudioPacketType 0 (SequenceStart), FourCC, OpusHead.
        Codecs::Hvc1Opus => [
            &[0x90][..],
            b"Opus",
            b"OpusHead",
            &[1, 2, 0x38, 1, 0x80, 0xbb, 0, 0, 0, 0, 0],
        ]
        .concat(),
    }
}

fn video_frame(codecs: Codecs, keyframe: bool, frame: u32, payload: &[u8]) -> Vec<u8> {
    let frame_type: u8 = if keyframe { 1 } else { 2 };
    match codecs {
        // AVCPacketType 1 (NALUs), CompositionTime 0.
        Codecs::AvcAac => [&[frame_type << 4 | 7, 1, 0, 0, 0][..], payload].concat(),
        // Alternate CodedFrames (PacketType 1, with an SI24 composition time) and
        // CodedFramesX (PacketType 3, without).
        Codecs::Hvc1Opus if frame.is_multiple_of(2) => [
            &[0x80 | frame_type << 4 | 1][..],
            b"hvc1",
            &[0, 0, 40],
            payload,
        ]
        .concat(),
        Codecs::Hvc1Opus => [&[0x80 | frame_type << 4 | 3][..], b"hvc1", payload].concat(),
    }
}

fn audio_frame(codecs: Codecs, payload: &[u8]) -> Vec<u8> {
    match codecs {
        Codecs::AvcAac => [&[0xaf, 1][..], payload].concat(),
        // ExHeader | AudioPacketType 1 (CodedFrames).
        Codecs::Hvc1Opus => [&[0x91][..], b"Opus", payload].concat(),
    }
}

async fn start_server() -> RunningServer {
    let mut config = Config::default();
    config.rtmp.listen = "127.0.0.1:0".parse().expect("literal address");
    config.http.listen = "127.0.0.1:0".parse().expect("literal address");
    config.dev.keys = vec![DevKey {
        channel: CHANNEL.into(),
        key: StreamKey::new(KEY.into()),
    }];
    // The player ends on UnpublishNotify, which the server sends once the publisher has
    // not come back within this grace.
    config.hub.republish_grace = Duration::from_millis(200);
    config.storage.database_url = Some(onair::secret::SecretText::new("sqlite::memory:".into()));
    let platform = Platform::open(&config.storage, &config.auth)
        .await
        .expect("in-memory database");
    timeout(STEP, RunningServer::start(config, platform))
        .await
        .expect("server start timed out")
        .expect("server start")
}

/// Runs `onair ARGS…` with stderr piped and `stdout` as given.
async fn spawn(args: &[&str], stdout: Stdio) -> Child {
    Command::new(onair_binary().await)
        .args(args)
        .env("ONAIR_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawning onair")
}

/// Reads `stream` to its end in a task.
fn collect(stream: impl AsyncRead + Unpin + Send + 'static) -> JoinHandle<Vec<u8>> {
    tokio::spawn(async move {
        let mut stream = stream;
        let mut bytes = Vec::new();
        stream
            .read_to_end(&mut bytes)
            .await
            .expect("reading a child's output");
        bytes
    })
}

/// Reads `stream` line by line in a task: the oneshot fires at the first line containing
/// `needle`, and the task returns everything read when the stream ends.
fn watch_for(
    stream: impl AsyncRead + Unpin + Send + 'static,
    needle: &'static str,
) -> (tokio::sync::oneshot::Receiver<()>, JoinHandle<String>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        let mut tx = Some(tx);
        let mut all = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains(needle)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    (rx, task)
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}
