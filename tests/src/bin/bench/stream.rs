//! The synthetic H.264/AAC-shaped stream the publisher sends, and the probe every media
//! payload carries so a viewer can tell when it was sent.
//!
//! Every audio and video payload (except the sequence headers) has, right after its FLV tag
//! header bytes, a probe: `MAGIC` (u32), the send time in nanoseconds since the run's epoch
//! (u64) and a sequence number (u64), all big-endian. The publisher and the viewers live in
//! one process and share the epoch (an `Instant`), so "received − sent" is the latency the
//! server (and the loopback) added.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use onair_amf::Value;
use onair_media::MediaKind;

/// "OnAB", the first four bytes of every probe.
pub const MAGIC: u32 = 0x4f6e_4142;
/// Magic, send time, sequence number.
const PROBE_LEN: usize = 4 + 8 + 8;
/// FLV `VideoTagHeader` of an AVC NALU packet: frame type | codec 7, packet type 1, composition time 0.
const VIDEO_HEADER_LEN: usize = 5;
/// FLV `AudioTagHeader` of an AAC raw packet: 0xAF (AAC, 44 kHz, 16-bit, stereo), packet type 1.
const AUDIO_HEADER_LEN: usize = 2;

/// Video frames per second.
pub const FPS: u32 = 30;
/// A keyframe every this many frames (2 s, what OBS's default "keyframe interval" gives).
pub const GOP: u64 = 60;
/// A keyframe is this many times the size of an inter frame.
const KEY_TO_INTER: u64 = 5;
/// AAC: 1024 samples per frame at 44.1 kHz.
pub const AUDIO_FRAME: Duration = Duration::from_nanos(1_024 * 1_000_000_000 / 44_100);
/// The audio bitrate; the video gets the rest of `--bitrate`.
const AUDIO_BPS: u64 = 128_000;

/// Sizes of the payloads, derived from the target bitrate.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Bytes of an inter frame's payload.
    pub inter: usize,
    /// Bytes of a keyframe's payload.
    pub key: usize,
    /// Bytes of an audio frame's payload.
    pub audio: usize,
}

impl Shape {
    /// The shape for `bitrate` bits per second in total (audio is 128 kbps of it).
    pub fn for_bitrate(bitrate: u64) -> Shape {
        let video_bps = bitrate.saturating_sub(AUDIO_BPS).max(100_000);
        // One GOP has 1 keyframe and GOP-1 inter frames: (GOP - 1 + KEY_TO_INTER) inter-sized units.
        let gop_bytes = video_bps / 8 * GOP / u64::from(FPS);
        let inter = (gop_bytes / (GOP - 1 + KEY_TO_INTER)) as usize;
        let audio_frames_per_s = 1.0 / AUDIO_FRAME.as_secs_f64();
        let audio = (AUDIO_BPS as f64 / 8.0 / audio_frames_per_s).round() as usize;
        Shape {
            inter: inter.max(VIDEO_HEADER_LEN + PROBE_LEN),
            key: (inter * KEY_TO_INTER as usize).max(VIDEO_HEADER_LEN + PROBE_LEN),
            audio: audio.max(AUDIO_HEADER_LEN + PROBE_LEN),
        }
    }

    /// The bitrate this shape really produces.
    pub fn bitrate(&self) -> f64 {
        let video =
            (self.key + (GOP as usize - 1) * self.inter) as f64 * 8.0 * f64::from(FPS) / GOP as f64;
        let audio = self.audio as f64 * 8.0 / AUDIO_FRAME.as_secs_f64();
        video + audio
    }
}

/// A video payload of `size` bytes carrying a probe.
pub fn video_payload(keyframe: bool, size: usize, sent_ns: u64, seq: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(size);
    b.put_slice(&[if keyframe { 0x17 } else { 0x27 }, 1, 0, 0, 0]);
    put_probe(&mut b, sent_ns, seq);
    fill(&mut b, size);
    b.freeze()
}

/// An audio payload of `size` bytes carrying a probe.
pub fn audio_payload(size: usize, sent_ns: u64, seq: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(size);
    b.put_slice(&[0xaf, 1]);
    put_probe(&mut b, sent_ns, seq);
    fill(&mut b, size);
    b.freeze()
}

fn put_probe(b: &mut BytesMut, sent_ns: u64, seq: u64) {
    b.put_u32(MAGIC);
    b.put_u64(sent_ns);
    b.put_u64(seq);
}

/// Pads to `size` with a pattern that is not all zeros, so nothing on the path can take a
/// shortcut on it.
fn fill(b: &mut BytesMut, size: usize) {
    while b.len() < size {
        b.put_u8((b.len() as u8).wrapping_mul(31));
    }
}

/// `onMetaData` for a 1280×720 30 fps H.264 + AAC stream.
pub fn metadata(shape: &Shape) -> Bytes {
    let kbps = shape.bitrate() / 1000.0;
    let props = [
        ("duration", Value::from(0.0)),
        ("width", 1280.0.into()),
        ("height", 720.0.into()),
        ("videodatarate", (kbps - 128.0).into()),
        ("framerate", f64::from(FPS).into()),
        ("videocodecid", 7.0.into()),
        ("audiodatarate", 128.0.into()),
        ("audiosamplerate", 44_100.0.into()),
        ("audiosamplesize", 16.0.into()),
        ("stereo", true.into()),
        ("audiocodecid", 10.0.into()),
        ("encoder", "onair-bench".into()),
    ];
    let array = Value::EcmaArray(props.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
    onair_amf::encode_all(&["onMetaData".into(), array])
}

/// The AVC sequence header: an `AVCDecoderConfigurationRecord` with one 1280×720 Baseline SPS
/// and one PPS.
pub fn avc_sequence_header() -> Bytes {
    const SPS: [u8; 9] = [0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe4];
    const PPS: [u8; 4] = [0x68, 0xce, 0x38, 0x80];
    let mut b = BytesMut::new();
    b.put_slice(&[0x17, 0, 0, 0, 0]);
    b.put_slice(&[1, SPS[1], SPS[2], SPS[3], 0xff, 0xe1]);
    b.put_u16(SPS.len() as u16);
    b.put_slice(&SPS);
    b.put_u8(1);
    b.put_u16(PPS.len() as u16);
    b.put_slice(&PPS);
    b.freeze()
}

/// The AAC sequence header: AAC-LC, 44.1 kHz, stereo (`AudioSpecificConfig` 0x12 0x10).
pub fn aac_sequence_header() -> Bytes {
    Bytes::from_static(&[0xaf, 0, 0x12, 0x10])
}

/// What a viewer reads off a media payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Nanoseconds since the epoch when the publisher sent it.
    pub sent_ns: u64,
    /// The publisher's sequence number.
    pub seq: u64,
    /// A video keyframe.
    pub keyframe: bool,
}

/// The probe of a payload, or `None` for sequence headers, metadata and foreign payloads.
pub fn probe(kind: MediaKind, body: &[u8]) -> Option<Probe> {
    let at = match kind {
        MediaKind::Video => VIDEO_HEADER_LEN,
        MediaKind::Audio => AUDIO_HEADER_LEN,
        MediaKind::Script => return None,
    };
    let p = body.get(at..at + PROBE_LEN)?;
    let word =
        |r: std::ops::Range<usize>| p[r].iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
    if word(0..4) != u64::from(MAGIC) {
        return None;
    }
    Some(Probe {
        sent_ns: word(4..12),
        seq: word(12..20),
        keyframe: kind == MediaKind::Video && body[0] >> 4 == 1,
    })
}

/// The measurement window in send time: a payload counts if `start <= sent < end`.
///
/// Set once, before the window opens, so every payload sent inside it is judged against the
/// final bounds; attributing by send time keeps in-flight data at the edges from skewing the
/// delivered fraction.
#[derive(Debug)]
pub struct Window {
    start: AtomicU64,
    end: AtomicU64,
}

impl Window {
    /// A window that contains nothing yet.
    pub fn unset() -> Window {
        Window {
            start: AtomicU64::new(u64::MAX),
            end: AtomicU64::new(u64::MAX),
        }
    }

    /// Opens the window over `[start, end)` nanoseconds since the epoch.
    pub fn set(&self, start: u64, end: u64) {
        self.end.store(end, Ordering::Release);
        self.start.store(start, Ordering::Release);
    }

    /// Whether a payload sent at `sent_ns` is inside.
    pub fn contains(&self, sent_ns: u64) -> bool {
        sent_ns >= self.start.load(Ordering::Acquire) && sent_ns < self.end.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_shape_is_about_2_6_mbps() {
        let shape = Shape::for_bitrate(2_600_000);
        let got = shape.bitrate();
        assert!((got - 2_600_000.0).abs() < 5_000.0, "{got}");
        assert_eq!(shape.key, shape.inter * 5);
    }

    #[test]
    fn probes_round_trip() {
        let v = video_payload(true, 9000, 123_456_789, 7);
        assert_eq!(v.len(), 9000);
        assert_eq!(
            probe(MediaKind::Video, &v),
            Some(Probe {
                sent_ns: 123_456_789,
                seq: 7,
                keyframe: true
            })
        );
        let a = audio_payload(371, 5, 8);
        assert_eq!(
            probe(MediaKind::Audio, &a),
            Some(Probe {
                sent_ns: 5,
                seq: 8,
                keyframe: false
            })
        );
        assert_eq!(probe(MediaKind::Video, &avc_sequence_header()), None);
        assert_eq!(probe(MediaKind::Audio, &aac_sequence_header()), None);
    }

    #[test]
    fn the_sequence_headers_parse() {
        let avc = onair_flv::parse_avc_config(&avc_sequence_header()[5..]).unwrap();
        assert_eq!(avc.width, Some(1280));
        assert_eq!(avc.height, Some(720));
        let meta = onair_flv::parse_metadata(&metadata(&Shape::for_bitrate(2_600_000))).unwrap();
        assert_eq!(meta.width, Some(1280.0));
    }
}
