//! The committed seed corpus (`fuzz/corpus/hls_segmenter`) through the fuzz harness, so it
//! runs in every `cargo test`, with or without the nightly toolchain cargo-fuzz needs; and the
//! seeds generated here, which must be in that corpus as generated. After changing a
//! generator: `ONAIR_WRITE_CORPUS=1 cargo test -p onair-hls --test fuzz_corpus`.

use onair_hls::fuzzing::{run_segmenter, segmenter};
use onair_hls::ts::{AUDIO_PID, VIDEO_PID};

#[path = "../../../fuzz/seed_corpus.rs"]
mod seed_corpus;
use seed_corpus::{check_seeds, run_corpus};

#[test]
fn hls_segmenter_corpus_keeps_the_invariants() {
    run_corpus("hls_segmenter", segmenter);
}

#[test]
fn hls_segmenter_corpus_holds_the_generated_seeds() {
    check_seeds("hls_segmenter", seeds(), segmenter);
}

/// What a seed must make the segmenter do, so that it is worth its bytes.
struct Expect {
    segments: usize,
    discontinuity: bool,
    video_pes: usize,
    audio_pes: usize,
    unsupported: usize,
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let seeds = [
        (
            "h264-aac-gops.bin",
            h264_aac_gops(),
            Expect {
                segments: 3,
                discontinuity: false,
                video_pes: 180,
                audio_pes: 180,
                unsupported: 0,
            },
        ),
        (
            "hevc-legacy-and-ertmp.bin",
            hevc(),
            Expect {
                segments: 4,
                discontinuity: false,
                video_pes: 120,
                audio_pes: 60,
                unsupported: 0,
            },
        ),
        (
            "discontinuity-and-jumps.bin",
            discontinuity_and_jumps(),
            Expect {
                segments: 8,
                discontinuity: true,
                video_pes: 120,
                audio_pes: 120,
                unsupported: 0,
            },
        ),
        (
            "late-publisher-clock.bin",
            late_publisher_clock(),
            Expect {
                segments: 3,
                discontinuity: false,
                video_pes: 90,
                audio_pes: 0,
                unsupported: 0,
            },
        ),
        (
            "unsupported-junk-and-broken-nals.bin",
            unsupported_and_junk(),
            Expect {
                segments: 3,
                discontinuity: false,
                video_pes: 12,
                audio_pes: 12,
                unsupported: 4,
            },
        ),
    ];
    seeds
        .into_iter()
        .map(|(name, script, expect)| {
            let checker = run_segmenter(&script).expect("the script configures the segmenter");
            let finished = &checker.finished;
            assert!(
                finished.len() >= expect.segments,
                "{name}: {} segments",
                finished.len()
            );
            assert_eq!(
                finished.iter().any(|s| s.discontinuity),
                expect.discontinuity,
                "{name}"
            );
            let video = checker.ts.pes_count(VIDEO_PID);
            let audio = checker.ts.pes_count(AUDIO_PID);
            assert!(video >= expect.video_pes, "{name}: {video} video PES");
            assert!(audio >= expect.audio_pes, "{name}: {audio} audio PES");
            assert!(
                checker.unsupported >= expect.unsupported,
                "{name}: {} unsupported",
                checker.unsupported
            );
            (name, script)
        })
        .collect()
}

/// The byte script `fuzzing::segmenter` reads: a header (target duration, first sequence,
/// the timestamp's top byte), then operations, each an op byte and a step byte (the
/// timestamp moves by step / 4 ms; 0xF0..=0xF7 jump back and 0xF8..=0xFF forward) and the
/// op's own bytes.
struct Script(Vec<u8>);

/// Steps for 33 ms (a 30 fps frame) and 0 ms.
const FRAME: u8 = 132;
const SAME: u8 = 0;

impl Script {
    fn new(target_ms: u32, first_sequence: u8, timestamp_top: u8) -> Self {
        let target = u8::try_from((target_ms - 100) / 20).expect("target 100..=5200 ms");
        Script(vec![target, first_sequence, timestamp_top])
    }

    fn op(&mut self, op: u8, step: u8, rest: &[u8]) -> &mut Self {
        self.0.extend_from_slice(&[op, step]);
        self.0.extend_from_slice(rest);
        self
    }

    fn avc_config(&mut self) -> &mut Self {
        self.op(0, SAME, &[])
    }

    fn hevc_config(&mut self) -> &mut Self {
        self.op(1, SAME, &[])
    }

    /// AAC sequence header `variant` 0 (LC 44.1 kHz stereo), 1 (48 kHz) or 2 (HE-AAC).
    fn aac_config(&mut self, variant: u8) -> &mut Self {
        self.op(2, variant, &[])
    }

    /// A coded video frame; `ertmp` writes an E-RTMP CodedFrames header (HEVC only). Op
    /// values are chosen so that op % 12 is a video op with the flag bits set.
    fn video(&mut self, key: bool, ertmp: bool, step: u8, cts: u8, nals: &[(u8, u8)]) -> &mut Self {
        let op = match (key, ertmp) {
            (false, false) => 0x03,
            (true, false) => 0x10,
            (false, true) => 0x27,
            (true, true) => 0x33,
        };
        let mut rest = vec![cts, nals.len() as u8];
        for &(len, nal_type) in nals {
            rest.extend_from_slice(&[len, nal_type]);
        }
        self.op(op, step, &rest)
    }

    /// An AAC frame of 3 * `units` bytes.
    fn audio(&mut self, step: u8, units: u8) -> &mut Self {
        self.op(6, step, &[units])
    }

    fn discontinuity(&mut self) -> &mut Self {
        self.op(10, SAME, &[])
    }

    fn finish(&mut self) -> &mut Self {
        self.op(11, SAME, &[])
    }

    /// `seconds` of 30 fps video with a keyframe every `gop` frames, and audio after each
    /// frame unless `audio` is false.
    fn gops(&mut self, seconds: u32, gop: u32, hevc_ertmp: bool, audio: bool) -> &mut Self {
        for i in 0..seconds * 30 {
            let key = i % gop == 0;
            let ertmp = hevc_ertmp && (i / gop) % 2 == 1;
            let (nal, len) = match (key, hevc_ertmp) {
                (true, true) => (0x26, 40),
                (false, true) => (0x02, 12),
                (true, false) => (0x65, 40),
                (false, false) => (0x41, 12),
            };
            let cts = if key { 0 } else { 0x21 };
            self.video(key, ertmp, FRAME, cts, &[(len, nal)]);
            if audio {
                self.audio(SAME, 8);
            }
        }
        self
    }
}

fn h264_aac_gops() -> Vec<u8> {
    let mut s = Script::new(2000, 0, 0);
    s.avc_config().aac_config(0).gops(6, 60, false, true);
    s.0
}

fn hevc() -> Vec<u8> {
    let mut s = Script::new(1000, 7, 0);
    s.hevc_config().aac_config(1);
    // Audio on every other frame only: a 24 kHz-like cadence against 30 fps.
    for i in 0..120u32 {
        let key = i % 30 == 0;
        let ertmp = (i / 30) % 2 == 1;
        let nal = if key { 0x26 } else { 0x02 };
        s.video(
            key,
            ertmp,
            FRAME,
            if key { 0 } else { 0x42 },
            &[(30, nal), (4, 0x4E)],
        );
        if i % 2 == 0 {
            s.audio(SAME, 6);
        }
    }
    s.0
}

fn discontinuity_and_jumps() -> Vec<u8> {
    let mut s = Script::new(500, 0, 0);
    s.avc_config().aac_config(0).gops(1, 15, false, true);
    s.discontinuity().avc_config().gops(1, 15, false, true);
    // 10 s back, then 60 s forward: the publisher's clock jumped.
    s.video(true, false, 0xF2, 0, &[(40, 0x65)])
        .gops(1, 15, false, true);
    s.video(true, false, 0xFB, 0, &[(40, 0x65)])
        .gops(1, 15, false, true);
    s.finish()
        .avc_config()
        .aac_config(2)
        .gops(1, 15, false, true);
    s.0
}

/// A video-only publisher whose clock starts near 2^32 ms: PTS and PCR would start past
/// 2^33 ticks unless the muxer rebased them.
fn late_publisher_clock() -> Vec<u8> {
    let mut s = Script::new(1000, 200, 0xFF);
    s.avc_config().gops(3, 30, false, false);
    s.0
}

/// Frames before any config, codecs TS cannot carry, junk bodies of each kind, a NAL unit
/// whose length runs past the frame, then a normal stream.
fn unsupported_and_junk() -> Vec<u8> {
    let mut s = Script::new(100, 0, 0);
    s.video(false, false, FRAME, 0, &[(12, 0x41)])
        .audio(SAME, 4);
    for variant in 0..4 {
        s.op(8, variant, &[]);
    }
    for kind in 0..3 {
        s.op(9, kind, &[5, 0x17, 0x01, 0xFF, 0xFF, 0xFF]);
    }
    s.avc_config().aac_config(0);
    s.video(true, false, FRAME, 0, &[(0xFF, 0x65)]);
    s.video(true, false, FRAME, 0, &[(20, 0x65), (0, 0x06), (8, 0x0C)]);
    for i in 0..12 {
        s.video(
            i % 4 == 0,
            false,
            FRAME,
            0,
            &[(16, if i % 4 == 0 { 0x65 } else { 0x41 })],
        );
        s.audio(SAME, 5);
    }
    s.0
}
