//! The segmenter: FLV tag bodies in, transport-stream segments out.
//!
//! Feed every frame the hub delivers with [`Segmenter::handle_frame`], then drain
//! [`Segmenter::poll_output`]. A segment is announced with [`Output::SegmentStarted`], its
//! bytes follow as [`Output::Data`] as soon as they are produced (nothing is accumulated
//! beyond one frame's packets), and [`Output::SegmentFinished`] reports its exact duration
//! once the next segment's first frame (or [`Segmenter::finish`]) fixes where it ends.
//!
//! Timing:
//! - Output time starts at 0 at the first frame and follows the publisher's timestamps
//!   (read across their 32-bit wrap). A step of more than 10 s either way, or a
//!   [`Segmenter::mark_discontinuity`], continues the output from the end of the last frame
//!   instead, and each track's DTS never decreases, so timestamps never go backwards.
//! - PTS = DTS + the FLV composition time; DTS is written only when it differs. The PCR is
//!   the DTS of the PES it rides on, held back if audio and video interleave out of order.
//! - With video, a segment starts at a keyframe, and cuts at the first keyframe at least
//!   `target − 100 ms` after the segment start; audio-only streams cut at the first frame at
//!   least `target` after it. Durations are differences of start times, so they add up
//!   exactly to the span of the stream.
//! - EXT-X-PROGRAM-DATE-TIME is the wall clock of the first frame (as passed in) plus the
//!   media time since; it is re-anchored after every discontinuity.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use onair_flv::{AudioPacket, FlvError, VideoFrameType, VideoPacket};
use onair_media::{AudioCodec, Frame, MediaKind, Timestamp, VideoCodec};

use crate::adts::{AdtsConfig, AdtsError};
use crate::annexb::{ConfigError, NalCodec, NalError, ParameterSets, to_annex_b};
use crate::ts::{Pes, Program, StreamType, Track, TsMuxer};

/// A step between consecutive input timestamps larger than this, either way, is a
/// publisher-side timestamp reset: the output continues from where it was instead of
/// jumping (protocol notes §3 #10: players stall when timestamps leap or go back).
const MAX_TIMESTAMP_JUMP_MS: i64 = 10_000;
/// Keyframe timestamps jitter by a few milliseconds around the GOP length; a keyframe this
/// close to the target still cuts, so a 2 s GOP does not make 4 s segments.
const CUT_TOLERANCE_MS: i64 = 100;

/// How to cut segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmenterConfig {
    /// The duration after which the next keyframe (or, for audio-only streams, the next
    /// frame) starts a new segment. Default 2 s.
    pub target_duration: Duration,
    /// The media sequence number of the first segment; a restarted server passes the next
    /// number after the segments it already has on disk.
    pub first_sequence: u64,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        SegmenterConfig {
            target_duration: Duration::from_secs(2),
            first_sequence: 0,
        }
    }
}

/// A finished segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Its media sequence number.
    pub sequence: u64,
    /// Exact duration, from the first frame's timestamp to the next segment's (or to the
    /// end of the last frame, for the segment closed by [`Segmenter::finish`] or
    /// [`Segmenter::mark_discontinuity`]).
    pub duration: Duration,
    /// Bytes of transport stream emitted for it.
    pub bytes: u64,
    /// Whether it starts with a video keyframe (always false for audio-only streams).
    pub keyframe_start: bool,
    /// Wall-clock time of its start, Unix milliseconds (for EXT-X-PROGRAM-DATE-TIME): the
    /// arrival time of the stream's first frame plus the media time since.
    pub program_date_time_ms: u64,
    /// Whether it follows a discontinuity (it was announced with the same flag).
    pub discontinuity: bool,
}

/// A codec HLS-over-TS cannot carry; frames of it are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnsupportedCodec {
    /// A video codec other than H.264 or HEVC.
    Video(VideoCodec),
    /// An audio codec other than AAC.
    Audio(AudioCodec),
}

/// What the segmenter has to say; drain after every call that changes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// A new segment begins; the following [`Output::Data`] belongs to it.
    SegmentStarted {
        /// Its media sequence number.
        sequence: u64,
        /// It follows a discontinuity: a republish, a codec or track change.
        discontinuity: bool,
    },
    /// Transport-stream packets (a multiple of 188 bytes) of the current segment.
    Data(Bytes),
    /// The current segment is complete.
    SegmentFinished(SegmentInfo),
    /// Frames of this codec arrive and are dropped. Reported once per codec change.
    UnsupportedCodec(UnsupportedCodec),
}

/// Why a frame was refused. The segmenter's state is unchanged by a refused frame, so the
/// caller logs the error and keeps feeding frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The FLV audio or video tag header did not parse.
    #[error("tag header: {0}")]
    Tag(#[from] FlvError),
    /// The video sequence header did not parse.
    #[error("video sequence header: {0}")]
    VideoConfig(#[from] ConfigError),
    /// The audio sequence header cannot be turned into ADTS headers, or a frame is too
    /// large for one.
    #[error("AAC: {0}")]
    Adts(#[from] AdtsError),
    /// A coded video sample's NAL units are malformed.
    #[error("video sample: {0}")]
    Nal(#[from] NalError),
    /// Coded media arrived before its sequence header.
    #[error("{kind:?} frame before any sequence header")]
    MissingSequenceHeader {
        /// Audio or video.
        kind: MediaKind,
    },
    /// E-RTMP multitrack tags are not muxed into HLS.
    #[error("{kind:?} multitrack tags are not supported in HLS")]
    Multitrack {
        /// Audio or video.
        kind: MediaKind,
    },
}

#[derive(Debug, Clone)]
struct OpenSegment {
    sequence: u64,
    start_ms: i64,
    bytes: u64,
    keyframe_start: bool,
    program_date_time_ms: u64,
    discontinuity: bool,
}

/// Maps input timestamps (32-bit wrapping milliseconds, possibly reset by the publisher)
/// onto one output timeline that never goes backwards per track.
#[derive(Debug, Clone, Default)]
struct Timeline {
    last_input: Option<(Timestamp, i64)>,
    offset: i64,
    rebase_to: Option<i64>,
    /// Per track (video, audio): last output DTS and the step before it.
    last: [Option<(i64, i64)>; 2],
}

impl Timeline {
    fn map(&mut self, timestamp: Timestamp, track: Track) -> i64 {
        let extended = match self.last_input {
            None => {
                // The output starts at 0 whatever the publisher's clock says, so the 33-bit
                // PTS/PCR fields wrap only after 26.5 hours of stream, not at a random
                // moment of the first day (FLV timestamps are 32-bit milliseconds).
                let first = i64::from(timestamp.as_millis());
                self.offset = -first;
                first
            }
            Some((previous, extended)) => {
                let step = i64::from(timestamp.since(previous));
                if step.abs() > MAX_TIMESTAMP_JUMP_MS && self.rebase_to.is_none() {
                    self.rebase_to = Some(self.end());
                }
                extended + step
            }
        };
        self.last_input = Some((timestamp, extended));
        let rebased = match self.rebase_to.take() {
            Some(target) => {
                self.offset = target - extended;
                true
            }
            None => false,
        };
        let slot = track_index(track);
        let floor = self.last[slot].map_or(0, |(dts, _)| dts);
        let dts = (extended + self.offset).max(floor);
        // The frame step estimates how long the track's last frame lasts. A rebased frame
        // says nothing about it, and feeding the rebase distance back into the next rebase
        // target made each jump larger than the last (found by fuzzing).
        let step = self.last[slot].map_or(0, |(last, step)| {
            if dts > last && !rebased {
                (dts - last).min(MAX_TIMESTAMP_JUMP_MS)
            } else {
                step
            }
        });
        self.last[slot] = Some((dts, step));
        dts
    }

    /// Where the media seen so far ends: the latest frame plus its track's frame step.
    fn end(&self) -> i64 {
        self.last
            .iter()
            .flatten()
            .map(|&(dts, step)| dts + step)
            .max()
            .unwrap_or(0)
    }
}

fn track_index(track: Track) -> usize {
    match track {
        Track::Video => 0,
        Track::Audio => 1,
    }
}

/// The HLS segmenter state machine. See the [module docs](self).
#[derive(Debug)]
pub struct Segmenter {
    config: SegmenterConfig,
    /// Shared so a frame's Annex-B parts can borrow it while the state machine moves on.
    video: Option<Arc<ParameterSets>>,
    audio: Option<AdtsConfig>,
    reported_video: Option<VideoCodec>,
    reported_audio: Option<AudioCodec>,
    muxer: TsMuxer,
    current: Option<OpenSegment>,
    next_sequence: u64,
    /// The next segment starts after a discontinuity.
    discontinuity: bool,
    /// The tracks changed: the next frame that can start a segment cuts, whatever the
    /// elapsed time.
    program_changed: bool,
    timeline: Timeline,
    /// Wall clock and output time of the first frame after a (re)start.
    wall_anchor: Option<(u64, i64)>,
    buf: BytesMut,
    outputs: VecDeque<Output>,
}

impl Segmenter {
    /// A segmenter with `config`.
    pub fn new(config: SegmenterConfig) -> Self {
        let next_sequence = config.first_sequence;
        Segmenter {
            config,
            video: None,
            audio: None,
            reported_video: None,
            reported_audio: None,
            muxer: TsMuxer::new(Program::default()),
            current: None,
            next_sequence,
            discontinuity: false,
            program_changed: false,
            timeline: Timeline::default(),
            wall_anchor: None,
            buf: BytesMut::new(),
            outputs: VecDeque::new(),
        }
    }

    /// The sequence number the next segment will get.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// The program (tracks and codecs) that the next segment would announce.
    pub fn program(&self) -> Program {
        Program {
            video: self.video.as_ref().map(|p| match p.codec {
                NalCodec::H264 => StreamType::H264,
                NalCodec::Hevc => StreamType::Hevc,
            }),
            audio: self.audio.map(|_| StreamType::AacAdts),
        }
    }

    /// Handles one frame as the hub delivers it: an FLV audio, video or script tag body.
    /// `now_unix_ms` is the wall clock when it arrived; it dates the segments
    /// (EXT-X-PROGRAM-DATE-TIME). Script frames are ignored.
    pub fn handle_frame(&mut self, now_unix_ms: u64, frame: &Frame) -> Result<(), FrameError> {
        let result = match frame.kind {
            MediaKind::Video => self.handle_video(now_unix_ms, frame),
            MediaKind::Audio => self.handle_audio(now_unix_ms, frame),
            MediaKind::Script => Ok(()),
        };
        self.flush_data();
        result
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The publisher went away and a new one (or the same one, reconnected) will continue
    /// this stream: the open segment is finished now, and the next segment is flagged as a
    /// discontinuity (EXT-X-DISCONTINUITY). Output timestamps continue from the end of the
    /// last frame, so they never go backwards whatever the new publisher sends.
    pub fn mark_discontinuity(&mut self) {
        self.finish();
        self.discontinuity = true;
    }

    /// The stream ended: the open segment, if any, is finished at the end of its last frame.
    /// Frames fed afterwards start a new segment whose timestamps continue from there.
    pub fn finish(&mut self) {
        let end = self.timeline.end();
        self.close_segment(end);
        self.timeline.rebase_to = Some(end);
        self.wall_anchor = None;
    }

    fn handle_video(&mut self, now: u64, frame: &Frame) -> Result<(), FrameError> {
        let info = onair_flv::parse_video_tag(&frame.data)?;
        if info.multitrack.is_some() {
            return Err(FrameError::Multitrack {
                kind: MediaKind::Video,
            });
        }
        let payload = &frame.data[info.payload_offset.min(frame.data.len())..];
        let mut codec = info.codec;
        // Old OBS sends HEVC under CodecID 7: its coded frames look like H.264 and only the
        // sequence header tells (protocol notes §4.7).
        if codec == VideoCodec::H264
            && !info.enhanced
            && self
                .video
                .as_ref()
                .is_some_and(|p| p.codec == NalCodec::Hevc)
            && !matches!(info.packet, VideoPacket::SequenceStart)
        {
            codec = VideoCodec::Hevc;
        }
        let nal_codec = match codec {
            VideoCodec::H264 => NalCodec::H264,
            VideoCodec::Hevc => NalCodec::Hevc,
            other => {
                if matches!(
                    info.packet,
                    VideoPacket::CodedFrames { .. } | VideoPacket::SequenceStart
                ) && self.reported_video != Some(other)
                {
                    self.reported_video = Some(other);
                    self.outputs
                        .push_back(Output::UnsupportedCodec(UnsupportedCodec::Video(other)));
                }
                return Ok(());
            }
        };
        match info.packet {
            VideoPacket::SequenceStart => {
                let params = match nal_codec {
                    NalCodec::H264 => ParameterSets::from_avc_record(payload)?,
                    NalCodec::Hevc => ParameterSets::from_hevc_record(payload)?,
                };
                if self.video.as_ref().map(|p| p.codec) != Some(params.codec) {
                    self.program_changed = true;
                }
                self.video = Some(Arc::new(params));
                self.reported_video = None;
                Ok(())
            }
            VideoPacket::CodedFrames { composition_time } => {
                let Some(params) = self.video.clone() else {
                    return Err(FrameError::MissingSequenceHeader {
                        kind: MediaKind::Video,
                    });
                };
                let keyframe = matches!(
                    info.frame_type,
                    VideoFrameType::Key | VideoFrameType::GeneratedKey
                );
                let mut parts = Vec::with_capacity(16);
                to_annex_b(&params, payload, keyframe, &mut parts)?;
                let dts = self.timeline.map(frame.timestamp, Track::Video);
                // A negative composition offset (E-RTMP allows SI24) cannot put a picture
                // before its decode time; it is clamped so PTS ≥ DTS.
                let pts = dts + i64::from(composition_time).max(0);
                if self.prepare(now, dts, Track::Video, keyframe) {
                    self.mux(Track::Video, pts, dts, keyframe, &parts);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn handle_audio(&mut self, now: u64, frame: &Frame) -> Result<(), FrameError> {
        let info = onair_flv::parse_audio_tag(&frame.data)?;
        if info.multitrack.is_some() {
            return Err(FrameError::Multitrack {
                kind: MediaKind::Audio,
            });
        }
        if info.codec != AudioCodec::Aac {
            if matches!(
                info.packet,
                AudioPacket::CodedFrames | AudioPacket::SequenceStart | AudioPacket::Raw
            ) && self.reported_audio != Some(info.codec)
            {
                self.reported_audio = Some(info.codec);
                self.outputs
                    .push_back(Output::UnsupportedCodec(UnsupportedCodec::Audio(
                        info.codec,
                    )));
            }
            return Ok(());
        }
        let payload = &frame.data[info.payload_offset.min(frame.data.len())..];
        match info.packet {
            AudioPacket::SequenceStart => {
                let config = AdtsConfig::from_audio_specific_config(payload)?;
                if self.audio.is_none() {
                    self.program_changed = true;
                }
                self.audio = Some(config);
                self.reported_audio = None;
                Ok(())
            }
            AudioPacket::CodedFrames => {
                let Some(config) = self.audio else {
                    return Err(FrameError::MissingSequenceHeader {
                        kind: MediaKind::Audio,
                    });
                };
                let header = config.header(payload.len())?;
                let dts = self.timeline.map(frame.timestamp, Track::Audio);
                if self.prepare(now, dts, Track::Audio, false) {
                    self.mux(Track::Audio, dts, dts, true, &[&header, payload]);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Opens or cuts segments before a coded frame at output time `dts`; returns whether
    /// the frame belongs in the output (frames before a stream's first keyframe do not).
    fn prepare(&mut self, now: u64, dts: i64, track: Track, keyframe: bool) -> bool {
        let program = self.program();
        if !program.has(track) {
            return false;
        }
        let can_start = if program.video.is_some() {
            track == Track::Video && keyframe
        } else {
            true
        };
        let anchor = *self.wall_anchor.get_or_insert((now, dts));
        match &self.current {
            Some(open) if !self.program_changed => {
                let elapsed = dts - open.start_ms;
                let target =
                    i64::try_from(self.config.target_duration.as_millis()).unwrap_or(i64::MAX);
                // Keyframe timestamps jitter, audio frames do not: only keyframes get the
                // tolerance.
                let threshold = if program.video.is_some() {
                    target.saturating_sub(CUT_TOLERANCE_MS)
                } else {
                    target
                };
                if can_start && elapsed >= threshold {
                    self.close_segment(dts);
                    self.open_segment(dts, anchor, keyframe);
                }
                true
            }
            _ => {
                if !can_start {
                    // Mid-segment frames of a track the open program already has keep
                    // flowing until the new program can start.
                    let old = self.muxer.program();
                    let same_stream = match track {
                        Track::Video => old.video == program.video,
                        Track::Audio => old.audio == program.audio,
                    };
                    return self.current.is_some() && same_stream;
                }
                if self.current.is_some() {
                    self.close_segment(dts);
                    self.discontinuity = true;
                }
                self.program_changed = false;
                self.open_segment(dts, anchor, keyframe);
                true
            }
        }
    }

    fn open_segment(&mut self, start_ms: i64, anchor: (u64, i64), keyframe: bool) {
        let (wall, anchor_ms) = anchor;
        let program_date_time_ms = wall.saturating_add_signed(start_ms - anchor_ms);
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let discontinuity = std::mem::take(&mut self.discontinuity);
        self.outputs.push_back(Output::SegmentStarted {
            sequence,
            discontinuity,
        });
        self.muxer.set_program(self.program());
        self.muxer.write_tables(&mut self.buf);
        self.current = Some(OpenSegment {
            sequence,
            start_ms,
            bytes: 0,
            keyframe_start: keyframe && self.program().video.is_some(),
            program_date_time_ms,
            discontinuity,
        });
    }

    fn close_segment(&mut self, end_ms: i64) {
        self.flush_data();
        if let Some(open) = self.current.take() {
            let duration = u64::try_from(end_ms - open.start_ms).unwrap_or(0);
            self.outputs.push_back(Output::SegmentFinished(SegmentInfo {
                sequence: open.sequence,
                duration: Duration::from_millis(duration),
                bytes: open.bytes,
                keyframe_start: open.keyframe_start,
                program_date_time_ms: open.program_date_time_ms,
                discontinuity: open.discontinuity,
            }));
        }
    }

    fn mux(&mut self, track: Track, pts: i64, dts: i64, random_access: bool, payload: &[&[u8]]) {
        // The timeline never produces negative times; 90 kHz ticks from milliseconds.
        let to_ticks = |ms: i64| u64::try_from(ms).unwrap_or(0) * 90;
        let pes = Pes {
            track,
            pts: to_ticks(pts),
            dts: to_ticks(dts),
            random_access,
            payload,
        };
        // prepare() only admits tracks of the current program and pts ≥ dts by
        // construction, so the muxer cannot refuse this packet.
        let _ = self.muxer.write_pes(&mut self.buf, &pes);
    }

    /// Emits the packets produced so far as one `Data` output for the open segment.
    fn flush_data(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let data = self.buf.split().freeze();
        if let Some(open) = &mut self.current {
            open.bytes += data.len() as u64;
        }
        self.outputs.push_back(Output::Data(data));
    }
}

impl Default for Segmenter {
    fn default() -> Self {
        Segmenter::new(SegmenterConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::OutputChecker;
    use crate::ts::{AUDIO_PID, VIDEO_PID};

    const AVC_CONFIG: &[u8] = &[
        0x17, 0, 0, 0, 0, 0x01, 0x64, 0x00, 0x28, 0xFF, 0xE1, 0x00, 0x04, 0x67, 0x64, 0x00, 0x28,
        0x01, 0x00, 0x04, 0x68, 0xEE, 0x3C, 0x80,
    ];
    const AAC_CONFIG: &[u8] = &[0xAF, 0x00, 0x12, 0x10];
    const WALL: u64 = 1_795_296_255_123;

    fn video(ms: u32, key: bool, cts: u8) -> Frame {
        let first = if key { 0x17 } else { 0x27 };
        let nal = if key { 0x65 } else { 0x41 };
        let body = vec![first, 1, 0, 0, cts, 0, 0, 0, 3, nal, 0x88, 0x80];
        Frame::new(MediaKind::Video, Timestamp::from_millis(ms), body.into()).with_keyframe(key)
    }

    fn audio(ms: u32) -> Frame {
        Frame::new(
            MediaKind::Audio,
            Timestamp::from_millis(ms),
            Bytes::from_static(&[0xAF, 0x01, 0x21, 0x10, 0x04, 0x60]),
        )
    }

    fn config(kind: MediaKind, body: &'static [u8]) -> Frame {
        Frame::new(kind, Timestamp::ZERO, Bytes::from_static(body)).with_sequence_header(true)
    }

    /// Feeds frames (wall clock = WALL + timestamp), then finishes; returns the checker.
    fn run(segmenter: &mut Segmenter, frames: &[Frame]) -> OutputChecker {
        let mut checker = OutputChecker::default();
        for frame in frames {
            segmenter
                .handle_frame(WALL + u64::from(frame.timestamp.as_millis()), frame)
                .unwrap();
            checker.drain(segmenter);
        }
        checker
    }

    /// 30 fps video with a keyframe every `gop` frames and 1024-sample 44.1 kHz audio, from
    /// `start` ms for `frames` video frames.
    fn av_stream(start: u32, frames: u32, gop: u32) -> Vec<Frame> {
        let mut out = vec![
            config(MediaKind::Video, AVC_CONFIG),
            config(MediaKind::Audio, AAC_CONFIG),
        ];
        let mut audio_index = 0u32;
        for i in 0..frames {
            let ms = start + i * 1000 / 30;
            while start + audio_index * 1024 * 1000 / 44_100 <= ms {
                out.push(audio(start + audio_index * 1024 * 1000 / 44_100));
                audio_index += 1;
            }
            out.push(video(ms, i % gop == 0, if i % gop == 0 { 0 } else { 66 }));
        }
        out
    }

    fn durations(checker: &OutputChecker) -> Vec<u128> {
        checker
            .finished
            .iter()
            .map(|s| s.duration.as_millis())
            .collect()
    }

    #[test]
    fn cuts_on_keyframes_at_the_target_with_exact_durations() {
        let mut segmenter = Segmenter::default();
        // 10 s at 30 fps, keyframe every 1 s (30 frames), starting at 5 s.
        let frames = av_stream(5_000, 300, 30);
        let mut checker = run(&mut segmenter, &frames);
        segmenter.finish();
        checker.drain(&mut segmenter);
        checker.ts.finish();
        // Keyframes at 5000, 6000, …; cuts at 7000, 9000, 11000, 13000. The last segment
        // ends one frame step (33 ms) after the last frame at 14 966.
        assert_eq!(durations(&checker), vec![2000, 2000, 2000, 2000, 1999]);
        let sequences: Vec<u64> = checker.finished.iter().map(|s| s.sequence).collect();
        assert_eq!(sequences, vec![0, 1, 2, 3, 4]);
        assert!(
            checker
                .finished
                .iter()
                .all(|s| s.keyframe_start && !s.discontinuity)
        );
        let pdts: Vec<u64> = checker
            .finished
            .iter()
            .map(|s| s.program_date_time_ms - WALL)
            .collect();
        assert_eq!(pdts, vec![5000, 7000, 9000, 11000, 13000]);
        // Every video PES at a segment start is a random access point with PCR.
        let video: Vec<_> = checker
            .ts
            .pes()
            .iter()
            .filter(|p| p.pid == VIDEO_PID)
            .collect();
        assert_eq!(video.len(), 300);
        assert!(
            video
                .iter()
                .step_by(30)
                .all(|p| p.random_access && p.dts.is_none())
        );
        // Non-key frames carry a composition offset: PTS = DTS + 66 ms.
        assert_eq!(video[1].pts - video[1].dts.unwrap(), 66 * 90);
        // Output time starts at 0 at the first frame (5 s in the input).
        assert_eq!(video[0].pts, 0);
        assert_eq!(video[1].dts, Some(33 * 90));
        assert!(checker.ts.pes_count(AUDIO_PID) > 400);
        assert_eq!(checker.ts.pcr_count(), 300);
    }

    #[test]
    fn durations_sum_to_the_input_span_with_jittered_gops() {
        let mut segmenter = Segmenter::new(SegmenterConfig {
            target_duration: Duration::from_secs(2),
            first_sequence: 40,
        });
        // Irregular GOPs: keyframes every 25 frames (833 ms) → cuts at the first keyframe
        // at or after 1.9 s.
        let frames = av_stream(0, 200, 25);
        let mut checker = run(&mut segmenter, &frames);
        segmenter.finish();
        checker.drain(&mut segmenter);
        let total: u128 = durations(&checker).iter().sum();
        // Last video frame at 199 * 1000 / 30 = 6633 ms, plus its 33/34 ms step.
        assert_eq!(total, 6633 + 33);
        assert_eq!(checker.finished[0].sequence, 40);
        // Keyframes at 0, 833, 1666, 2500, 3333, 4166, 5000, 5833: cuts at 2500 and 5000.
        assert_eq!(durations(&checker), vec![2500, 2500, 1666]);
        assert_eq!(segmenter.next_sequence(), 43);
    }

    #[test]
    fn audio_only_cuts_on_any_frame() {
        let mut segmenter = Segmenter::default();
        let mut frames = vec![config(MediaKind::Audio, AAC_CONFIG)];
        // 23 ms frames (1024 samples at 44.1 kHz, rounded as FLV does) for 5 s.
        frames.extend((0..220).map(|i| audio(i * 1024 * 1000 / 44_100)));
        let mut checker = run(&mut segmenter, &frames);
        segmenter.finish();
        checker.drain(&mut segmenter);
        checker.ts.finish();
        let d = durations(&checker);
        assert_eq!(d.len(), 3);
        // Cut at the first frame at or after 2 s: frames are 23 or 24 ms apart.
        assert!(
            d[..2].iter().all(|&ms| (2000..=2023).contains(&ms)),
            "{d:?}"
        );
        let at = |i: u32| u128::from(i * 1024 * 1000 / 44_100);
        assert_eq!(d.iter().sum::<u128>(), at(219) + (at(219) - at(218)));
        assert!(checker.finished.iter().all(|s| !s.keyframe_start));
        assert_eq!(checker.ts.pes_count(VIDEO_PID), 0);
        // PCR rides on the audio PID, one per frame.
        assert_eq!(checker.ts.pcr_count(), 220);
    }

    #[test]
    fn frames_before_the_first_keyframe_and_before_configs_are_dropped() {
        let mut segmenter = Segmenter::default();
        assert_eq!(
            segmenter.handle_frame(WALL, &video(0, true, 0)),
            Err(FrameError::MissingSequenceHeader {
                kind: MediaKind::Video
            })
        );
        assert_eq!(
            segmenter.handle_frame(WALL, &audio(0)),
            Err(FrameError::MissingSequenceHeader {
                kind: MediaKind::Audio
            })
        );
        let frames = [
            config(MediaKind::Video, AVC_CONFIG),
            config(MediaKind::Audio, AAC_CONFIG),
            audio(0),
            video(10, false, 0),
            video(40, true, 0),
            audio(45),
        ];
        let checker = run(&mut segmenter, &frames);
        assert_eq!(checker.ts.pes().len(), 2);
        assert_eq!(checker.ts.pes()[0].pts, 40 * 90);
    }

    #[test]
    fn republish_marks_a_discontinuity_and_time_keeps_going_forward() {
        let mut segmenter = Segmenter::default();
        let mut checker = run(&mut segmenter, &av_stream(0, 100, 30));
        segmenter.mark_discontinuity();
        checker.drain(&mut segmenter);
        // The new publisher starts again at 0 ms.
        let frames = av_stream(0, 100, 30);
        for frame in &frames {
            segmenter.handle_frame(WALL + 60_000, frame).unwrap();
            checker.drain(&mut segmenter);
        }
        segmenter.finish();
        checker.drain(&mut segmenter);
        checker.ts.finish();
        let flags: Vec<bool> = checker.finished.iter().map(|s| s.discontinuity).collect();
        // Frames 0–3300 ms, the last step 34 ms: [0, 2000), [2000, 3334); after the
        // republish the new publisher's 0 ms lands at 3334: [3334, 5334), [5334, 6668).
        assert_eq!(flags, vec![false, false, true, false]);
        assert_eq!(durations(&checker), vec![2000, 1334, 2000, 1334]);
        // The TsChecker asserted that DTS never went back on either PID.
        let first_after = checker
            .ts
            .pes()
            .iter()
            .filter(|p| p.pid == VIDEO_PID)
            .nth(100)
            .unwrap();
        assert_eq!(first_after.pts, 3334 * 90);
        // Its wall clock is the new arrival time, not the old anchor.
        assert_eq!(checker.finished[2].program_date_time_ms, WALL + 60_000);
    }

    #[test]
    fn publisher_timestamp_reset_without_republish_is_smoothed() {
        let mut segmenter = Segmenter::default();
        let mut frames = av_stream(50_000, 90, 30);
        // The encoder restarts its clock at 0 without a new sequence header.
        frames.extend(av_stream(0, 90, 30).into_iter().skip(2));
        let mut checker = run(&mut segmenter, &frames);
        segmenter.finish();
        checker.drain(&mut segmenter);
        let total: u128 = durations(&checker).iter().sum();
        // 3 s before the reset, continued seamlessly, 3 s after.
        assert!((5_900..=6_100).contains(&total), "{total}");
    }

    #[test]
    fn unsupported_codecs_are_reported_once_and_never_panic() {
        let mut segmenter = Segmenter::default();
        let opus = Frame::new(
            MediaKind::Audio,
            Timestamp::ZERO,
            Bytes::from_static(&[0x91, b'O', b'p', b'u', b's', 0xFC]),
        );
        let vp6 = Frame::new(
            MediaKind::Video,
            Timestamp::ZERO,
            Bytes::from_static(&[0x14, 0, 0]),
        );
        for _ in 0..3 {
            segmenter.handle_frame(WALL, &opus).unwrap();
            segmenter.handle_frame(WALL, &vp6).unwrap();
        }
        let outputs: Vec<Output> = std::iter::from_fn(|| segmenter.poll_output()).collect();
        assert_eq!(
            outputs,
            vec![
                Output::UnsupportedCodec(UnsupportedCodec::Audio(AudioCodec::Opus)),
                Output::UnsupportedCodec(UnsupportedCodec::Video(VideoCodec::Vp6)),
            ]
        );
        // Malformed bodies are typed errors.
        let truncated = Frame::new(
            MediaKind::Video,
            Timestamp::ZERO,
            Bytes::from_static(&[0x17]),
        );
        assert!(matches!(
            segmenter.handle_frame(WALL, &truncated),
            Err(FrameError::Tag(_))
        ));
        let bad_config = Frame::new(
            MediaKind::Video,
            Timestamp::ZERO,
            Bytes::from_static(&[0x17, 0, 0, 0, 0, 2]),
        );
        assert!(matches!(
            segmenter.handle_frame(WALL, &bad_config),
            Err(FrameError::VideoConfig(_))
        ));
    }

    #[test]
    fn a_late_audio_track_starts_a_new_segment_with_both_streams() {
        let mut segmenter = Segmenter::default();
        let mut frames = vec![config(MediaKind::Video, AVC_CONFIG)];
        frames.extend((0..45).map(|i| video(i * 33, i % 30 == 0, 0)));
        frames.push(config(MediaKind::Audio, AAC_CONFIG));
        frames.extend((45..70).flat_map(|i| [audio(i * 33), video(i * 33, i % 30 == 0, 0)]));
        let mut checker = run(&mut segmenter, &frames);
        segmenter.finish();
        checker.drain(&mut segmenter);
        // Cut at the keyframe at 60 * 33 ms; the audio frame just before it is dropped, as
        // the open segment's PMT has no audio stream. The last frame (2277 ms) ends 33 ms on.
        assert_eq!(durations(&checker), vec![1980, 330]);
        assert!(checker.finished[1].discontinuity);
        assert_eq!(checker.ts.pes_count(AUDIO_PID), 9);
    }
    #[test]
    fn input_clock_wrapping_at_2_32_ms_stays_continuous() {
        let mut segmenter = Segmenter::default();
        let start = u32::MAX - 2_000;
        let mut frames = vec![config(MediaKind::Video, AVC_CONFIG)];
        frames
            .extend((0..150u32).map(|i| video(start.wrapping_add(i * 1000 / 30), i % 30 == 0, 0)));
        let mut checker = run(&mut segmenter, &frames);
        segmenter.finish();
        checker.drain(&mut segmenter);
        // The last frame (4966 ms) ends one 33 ms step later.
        assert_eq!(durations(&checker), vec![2000, 2000, 999]);
        assert_eq!(checker.ts.pes().last().unwrap().pts, 4966 * 90);
    }
}
