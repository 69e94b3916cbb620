//! ffmpeg as a publisher and ffprobe as a player.

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// Frames a second of the test pattern's video.
pub const TEST_PATTERN_FPS: u32 = 25;

/// Which tracks a test-pattern publish carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracks {
    /// H.264 video and AAC audio.
    Both,
    /// AAC only (`-vn`).
    AudioOnly,
    /// H.264 only (`-an`).
    VideoOnly,
}

/// A running ffmpeg. Killed when dropped; its stderr is kept for diagnostics.
#[derive(Debug)]
pub struct Ffmpeg {
    child: Child,
    stderr: Arc<Mutex<String>>,
    reader: JoinHandle<()>,
}

impl Ffmpeg {
    /// Publishes `seconds` of a 320x240 25 fps test pattern and a 440 Hz tone, in real time
    /// (`-re`), as H.264 (GOP 25) and AAC to `url`.
    ///
    /// # Panics
    ///
    /// If ffmpeg cannot be started (check [`crate::require_tool`] first).
    pub fn publish_test_pattern(url: &str, seconds: u32) -> Ffmpeg {
        Ffmpeg::publish(url, seconds, Tracks::Both)
    }

    /// Like [`Ffmpeg::publish_test_pattern`] with a choice of tracks.
    ///
    /// # Panics
    ///
    /// If ffmpeg cannot be started.
    pub fn publish(url: &str, seconds: u32, tracks: Tracks) -> Ffmpeg {
        let mut args: Vec<String> = ["-hide_banner", "-nostdin", "-nostats", "-loglevel", "info"]
            .map(String::from)
            .to_vec();
        let pattern = format!("testsrc2=size=320x240:rate={TEST_PATTERN_FPS}");
        let video_in = ["-re", "-f", "lavfi", "-i", pattern.as_str()];
        let audio_in = [
            "-re",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
        ];
        let video_out = [
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
        ];
        let audio_out = ["-c:a", "aac", "-b:a", "64k"];
        let strs = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match tracks {
            Tracks::Both => {
                args.extend(strs(&video_in));
                args.extend(strs(&audio_in));
                args.extend(strs(&video_out));
                args.extend(strs(&audio_out));
            }
            Tracks::AudioOnly => {
                args.extend(strs(&audio_in));
                args.push("-vn".into());
                args.extend(strs(&audio_out));
            }
            Tracks::VideoOnly => {
                args.extend(strs(&video_in));
                args.push("-an".into());
                args.extend(strs(&video_out));
            }
        }
        args.extend([
            "-t".to_string(),
            seconds.to_string(),
            "-f".into(),
            "flv".into(),
            url.to_string(),
        ]);
        Ffmpeg::spawn("ffmpeg", &args)
    }

    /// Runs `program` with `args`, stdout discarded and stderr kept.
    ///
    /// # Panics
    ///
    /// If the program cannot be started.
    pub fn spawn(program: &str, args: &[String]) -> Ffmpeg {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr is piped");
        let reader = tokio::spawn(keep_lines(pipe, stderr.clone()));
        Ffmpeg {
            child,
            stderr,
            reader,
        }
    }

    /// Waits up to `timeout` for ffmpeg to exit; `None` if it is still running. Its stderr
    /// is complete once this returns `Some`.
    pub async fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()?
            .ok()?;
        // The pipe closes when the process exits, so the reader ends promptly.
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.reader).await;
        Some(status)
    }

    /// Whether ffmpeg is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything ffmpeg wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Kills ffmpeg and waits for it.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

impl Drop for Ffmpeg {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn keep_lines(pipe: impl AsyncRead + Unpin, out: Arc<Mutex<String>>) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Ok(mut s) = out.lock() {
            s.push_str(&line);
            s.push('\n');
        }
    }
}

/// What ffprobe saw when it played a stream.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// Whether ffprobe exited with success.
    pub success: bool,
    /// Video packets as received (before decoding).
    pub video_packets: usize,
    /// Audio packets as received.
    pub audio_packets: usize,
    /// Video frames the decoder produced.
    pub video_frames: usize,
    /// Audio frames the decoder produced.
    pub audio_frames: usize,
    /// Whether the first video packet is flagged as a keyframe (`K` in ffprobe's flags).
    /// Decoded frames cannot show this: the H.264 decoder drops what precedes a keyframe.
    pub first_video_packet_keyframe: Option<bool>,
    /// Whether the first decoded video frame is a keyframe.
    pub first_video_frame_keyframe: Option<bool>,
    /// Codec of the video stream (`h264`).
    pub video_codec: Option<String>,
    /// Codec of the audio stream (`aac`).
    pub audio_codec: Option<String>,
    /// ffprobe's stderr.
    pub stderr: String,
}

/// Plays `url` with ffprobe for `media_seconds` of media (`-read_intervals %+N`), listing
/// every packet and decoded frame, bounded by `timeout` (ffprobe is killed after it).
pub async fn ffprobe(url: &str, media_seconds: u32, timeout: Duration) -> Probe {
    let args: Vec<String> = [
        "-v",
        "error",
        "-show_entries",
        "packet=codec_type,flags,pts_time:frame=media_type,key_frame:stream=codec_type,codec_name",
        "-read_intervals",
        &format!("%+{media_seconds}"),
        "-of",
        "json",
        url,
    ]
    .map(String::from)
    .to_vec();
    let child = Command::new("ffprobe")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start ffprobe: {e}"));
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            return Probe {
                stderr: format!("ffprobe failed: {e}"),
                ..Probe::default()
            };
        }
        Err(_) => {
            return Probe {
                stderr: format!("ffprobe still running after {timeout:?}; killed"),
                ..Probe::default()
            };
        }
    };
    let mut probe = Probe {
        success: output.status.success(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        ..Probe::default()
    };
    let json: serde_json::Value = match serde_json::from_slice(&output.stdout) {
        Ok(v) => v,
        Err(e) => {
            probe
                .stderr
                .push_str(&format!("\n(ffprobe output is not JSON: {e})"));
            return probe;
        }
    };
    let items = |name: &str| {
        json.get(name)
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default()
    };
    let text =
        |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    // With packets and frames both shown, ffprobe interleaves them in one array.
    for item in items("packets_and_frames")
        .iter()
        .chain(&items("packets"))
        .chain(&items("frames"))
    {
        match (
            text(item, "type").as_deref(),
            text(item, "codec_type"),
            text(item, "media_type"),
        ) {
            (Some("packet") | None, Some(kind), _) => {
                let key = text(item, "flags").is_some_and(|f| f.starts_with('K'));
                match kind.as_str() {
                    "video" => {
                        probe.first_video_packet_keyframe.get_or_insert(key);
                        probe.video_packets += 1;
                    }
                    "audio" => probe.audio_packets += 1,
                    _ => {}
                }
            }
            (Some("frame") | None, _, Some(kind)) => {
                let key = item.get("key_frame").and_then(|k| k.as_i64()) == Some(1);
                match kind.as_str() {
                    "video" => {
                        probe.first_video_frame_keyframe.get_or_insert(key);
                        probe.video_frames += 1;
                    }
                    "audio" => probe.audio_frames += 1,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    for stream in items("streams") {
        match text(&stream, "codec_type").as_deref() {
            Some("video") => probe.video_codec = text(&stream, "codec_name"),
            Some("audio") => probe.audio_codec = text(&stream, "codec_name"),
            _ => {}
        }
    }
    probe
}
