//! MPEG-2 transport stream packets (ISO/IEC 13818-1): PAT and PMT sections, PES packets with
//! PTS/DTS, PCR in adaptation fields, per-PID continuity counters and stuffing.
//!
//! The muxer gathers a PES payload from a list of slices (start codes, parameter sets, the
//! publisher's NAL units) straight into 188-byte packets, so the frame is read in place and
//! copied exactly once, into the output.

use bytes::{BufMut, BytesMut};

/// Every transport stream packet is exactly this long (§2.4.3.2).
pub const PACKET_LEN: usize = 188;
/// The first byte of every packet.
pub const SYNC_BYTE: u8 = 0x47;
/// The Program Association Table's PID (§2.4.4.3).
pub const PAT_PID: u16 = 0x0000;
/// The PID of our one Program Map Table (ffmpeg's default, which players are used to).
pub const PMT_PID: u16 = 0x1000;
/// The video elementary stream's PID.
pub const VIDEO_PID: u16 = 0x0100;
/// The audio elementary stream's PID.
pub const AUDIO_PID: u16 = 0x0101;
/// `program_number` of our one program.
pub const PROGRAM_NUMBER: u16 = 1;

/// Ticks of the 90 kHz system clock base in 100 ms, the longest gap between PCRs that
/// §2.7.2 allows.
const PCR_INTERVAL: u64 = 9_000;
/// PTS, DTS and the PCR base are 33-bit fields.
const TIMESTAMP_MASK: u64 = (1 << 33) - 1;

/// An elementary stream type in the PMT (§2.4.4.9, Table 2-34).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StreamType {
    /// 0x1B: H.264 / AVC video in Annex-B byte stream format.
    H264,
    /// 0x24: H.265 / HEVC video in Annex-B byte stream format.
    Hevc,
    /// 0x0F: AAC audio with ADTS framing (ISO/IEC 13818-7).
    AacAdts,
}

impl StreamType {
    /// The `stream_type` byte.
    pub fn id(self) -> u8 {
        match self {
            StreamType::H264 => 0x1B,
            StreamType::Hevc => 0x24,
            StreamType::AacAdts => 0x0F,
        }
    }
}

/// Which elementary stream a PES packet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Track {
    /// The video stream, PID [`VIDEO_PID`], `stream_id` 0xE0.
    Video,
    /// The audio stream, PID [`AUDIO_PID`], `stream_id` 0xC0.
    Audio,
}

impl Track {
    /// The track's PID.
    pub fn pid(self) -> u16 {
        match self {
            Track::Video => VIDEO_PID,
            Track::Audio => AUDIO_PID,
        }
    }

    fn stream_id(self) -> u8 {
        match self {
            Track::Video => 0xE0,
            Track::Audio => 0xC0,
        }
    }
}

/// The streams of our one program: video, audio, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Program {
    /// The video stream's type, if the program has video.
    pub video: Option<StreamType>,
    /// The audio stream's type, if the program has audio.
    pub audio: Option<StreamType>,
}

impl Program {
    /// The PID that carries the PCR: video if present (decoders lock onto the stream that
    /// needs the clock most), otherwise audio.
    pub fn pcr_pid(&self) -> u16 {
        if self.video.is_some() {
            VIDEO_PID
        } else {
            AUDIO_PID
        }
    }

    /// Whether the program carries `track`.
    pub fn has(&self, track: Track) -> bool {
        match track {
            Track::Video => self.video.is_some(),
            Track::Audio => self.audio.is_some(),
        }
    }
}

/// One access unit to packetise.
#[derive(Debug, Clone, Copy)]
pub struct Pes<'a> {
    /// The stream it belongs to.
    pub track: Track,
    /// Presentation time, 90 kHz, not yet wrapped to 33 bits.
    pub pts: u64,
    /// Decode time, 90 kHz. Written only when it differs from `pts` (§2.4.3.7).
    pub dts: u64,
    /// Sets `random_access_indicator` (and forces a PCR on the PCR PID): a keyframe, or any
    /// audio frame.
    pub random_access: bool,
    /// The elementary stream bytes, gathered in order.
    pub payload: &'a [&'a [u8]],
}

/// Why [`TsMuxer::write_pes`] refused a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MuxError {
    /// The program announced in the PMT has no stream for this track.
    #[error("the program has no {track:?} stream")]
    TrackNotInProgram {
        /// The track of the refused packet.
        track: Track,
    },
    /// `pts` is earlier than `dts`, which no decoder can honour.
    #[error("PTS {pts} precedes DTS {dts}")]
    PtsBeforeDts {
        /// The presentation time.
        pts: u64,
        /// The decode time.
        dts: u64,
    },
}

/// A transport stream muxer for one program. It owns the continuity counters and the PCR
/// history, which carry over from segment to segment.
#[derive(Debug, Clone)]
pub struct TsMuxer {
    program: Program,
    /// The next `continuity_counter` for PAT, PMT, video and audio.
    cc: [u8; 4],
    /// The last PCR base written (90 kHz, unwrapped).
    last_pcr: Option<u64>,
}

impl TsMuxer {
    /// A muxer for `program`; counters start at 0.
    pub fn new(program: Program) -> Self {
        TsMuxer {
            program,
            cc: [0; 4],
            last_pcr: None,
        }
    }

    /// The program announced by [`write_tables`](Self::write_tables).
    pub fn program(&self) -> Program {
        self.program
    }

    /// Changes the program; continuity counters carry on. Call
    /// [`write_tables`](Self::write_tables) afterwards, at a segment start.
    pub fn set_program(&mut self, program: Program) {
        self.program = program;
    }

    /// The last PCR written, in 90 kHz ticks.
    pub fn last_pcr(&self) -> Option<u64> {
        self.last_pcr
    }

    /// Appends one PAT and one PMT packet; every segment starts with them so that each one
    /// decodes on its own (RFC 8216 §3.2).
    pub fn write_tables(&mut self, out: &mut BytesMut) {
        // PAT (§2.4.4.3): one program, pointing at the PMT.
        let mut pat = [0u8; 12];
        pat[..8].copy_from_slice(&[
            0x00, // table_id
            0xB0, // section_syntax_indicator, '0', reserved, section_length high bits
            13,   // section_length: 5 header bytes + 4 program bytes + 4 CRC bytes
            0x00, 0x01, // transport_stream_id
            0xC1, // reserved, version 0, current_next_indicator
            0x00, 0x00, // section_number, last_section_number
        ]);
        pat[8..10].copy_from_slice(&PROGRAM_NUMBER.to_be_bytes());
        pat[10..12].copy_from_slice(&(0xE000 | PMT_PID).to_be_bytes());
        self.write_section(out, PAT_PID, &pat);

        // PMT (§2.4.4.8).
        let mut pmt = Vec::with_capacity(32);
        let streams = [
            (self.program.video, VIDEO_PID),
            (self.program.audio, AUDIO_PID),
        ];
        let count = streams.iter().filter(|(t, _)| t.is_some()).count();
        let section_length = 9 + 5 * count + 4;
        pmt.push(0x02); // table_id
        pmt.push(0xB0 | (section_length >> 8) as u8);
        pmt.push(section_length as u8);
        pmt.extend_from_slice(&PROGRAM_NUMBER.to_be_bytes());
        pmt.extend_from_slice(&[0xC1, 0x00, 0x00]);
        pmt.extend_from_slice(&(0xE000 | self.program.pcr_pid()).to_be_bytes());
        pmt.extend_from_slice(&[0xF0, 0x00]); // program_info_length 0
        for (stream_type, pid) in streams {
            if let Some(stream_type) = stream_type {
                pmt.push(stream_type.id());
                pmt.extend_from_slice(&(0xE000 | pid).to_be_bytes());
                pmt.extend_from_slice(&[0xF0, 0x00]); // ES_info_length 0
            }
        }
        self.write_section(out, PMT_PID, &pmt);
    }

    /// Appends one PES packet as transport packets. The first packet of a PES on the PCR
    /// PID carries a PCR; before a PES on another PID, a PCR-only packet is inserted on the
    /// PCR PID when the last PCR is 100 ms old or more (§2.7.2). PCRs never go backwards.
    pub fn write_pes(&mut self, out: &mut BytesMut, pes: &Pes<'_>) -> Result<(), MuxError> {
        if !self.program.has(pes.track) {
            return Err(MuxError::TrackNotInProgram { track: pes.track });
        }
        if pes.pts < pes.dts {
            return Err(MuxError::PtsBeforeDts {
                pts: pes.pts,
                dts: pes.dts,
            });
        }
        let pid = pes.track.pid();
        let pcr_pid = self.program.pcr_pid();
        let pcr = if pid == pcr_pid {
            Some(self.next_pcr(pes.dts))
        } else {
            if self
                .last_pcr
                .is_none_or(|last| pes.dts >= last + PCR_INTERVAL)
            {
                let pcr = self.next_pcr(pes.dts);
                self.write_pcr_only(out, pcr_pid, pcr);
            }
            None
        };

        let payload_len: usize = pes.payload.iter().map(|p| p.len()).sum();
        let (header, header_len) = pes_header(pes, payload_len);
        let mut parts = Gather::new(&header[..header_len], pes.payload);
        let cc_index = cc_index(pid);
        let mut first = true;
        loop {
            let remaining = parts.remaining();
            let mut af = [0u8; 7];
            let mut af_used = 0;
            if first && (pcr.is_some() || pes.random_access) {
                let mut flags = 0;
                if pes.random_access {
                    flags |= 0x40;
                }
                if let Some(pcr) = pcr {
                    flags |= 0x10;
                    af[1..7].copy_from_slice(&encode_pcr(pcr));
                    af_used = 7;
                } else {
                    af_used = 1;
                }
                af[0] = flags;
            }
            // An adaptation field is its length byte plus its contents.
            let af_min = if af_used > 0 { 1 + af_used } else { 0 };
            let take = remaining.min(PACKET_LEN - 4 - af_min);
            let af_total = PACKET_LEN - 4 - take;

            let cc = self.take_cc(cc_index);
            out.reserve(PACKET_LEN);
            out.put_u8(SYNC_BYTE);
            out.put_u16(if first { 0x4000 } else { 0 } | pid);
            out.put_u8(if af_total > 0 { 0x30 } else { 0x10 } | cc);
            if af_total > 0 {
                out.put_u8((af_total - 1) as u8);
                if af_total > 1 {
                    let contents = if af_used > 0 {
                        out.put_slice(&af[..af_used]);
                        af_used
                    } else {
                        out.put_u8(0x00);
                        1
                    };
                    out.put_bytes(0xFF, af_total - 1 - contents);
                }
            }
            parts.copy_to(out, take);
            first = false;
            if take == remaining {
                return Ok(());
            }
        }
    }

    /// The PCR to write for a PES with decode time `dts`: the DTS itself, held back to the
    /// last PCR if audio and video interleave slightly out of order.
    fn next_pcr(&mut self, dts: u64) -> u64 {
        let pcr = self.last_pcr.map_or(dts, |last| last.max(dts));
        self.last_pcr = Some(pcr);
        pcr
    }

    /// An adaptation-field-only packet carrying a PCR. With no payload, the continuity
    /// counter repeats the previous packet's value (§2.4.3.3).
    fn write_pcr_only(&mut self, out: &mut BytesMut, pid: u16, pcr: u64) {
        let cc = self.cc[cc_index(pid)].wrapping_sub(1) & 0x0F;
        out.reserve(PACKET_LEN);
        out.put_u8(SYNC_BYTE);
        out.put_u16(pid);
        out.put_u8(0x20 | cc);
        out.put_u8(183);
        out.put_u8(0x10);
        out.put_slice(&encode_pcr(pcr));
        out.put_bytes(0xFF, PACKET_LEN - 12);
    }

    /// One PSI section with its CRC in a single packet, pointer_field 0, 0xFF stuffing.
    fn write_section(&mut self, out: &mut BytesMut, pid: u16, section: &[u8]) {
        let cc = self.take_cc(cc_index(pid));
        let start = out.len();
        out.reserve(PACKET_LEN);
        out.put_u8(SYNC_BYTE);
        out.put_u16(0x4000 | pid);
        out.put_u8(0x10 | cc);
        out.put_u8(0x00); // pointer_field
        out.put_slice(section);
        out.put_u32(crc32_mpeg2(section));
        let used = out.len() - start;
        out.put_bytes(0xFF, PACKET_LEN - used);
    }

    fn take_cc(&mut self, index: usize) -> u8 {
        let cc = self.cc[index];
        self.cc[index] = (cc + 1) & 0x0F;
        cc
    }
}

fn cc_index(pid: u16) -> usize {
    match pid {
        PAT_PID => 0,
        PMT_PID => 1,
        VIDEO_PID => 2,
        _ => 3,
    }
}

/// The PES header (§2.4.3.6) for `pes`: at most 19 bytes.
fn pes_header(pes: &Pes<'_>, payload_len: usize) -> ([u8; 19], usize) {
    let with_dts = pes.dts != pes.pts;
    let header_data_len = if with_dts { 10 } else { 5 };
    // PES_packet_length counts the bytes after itself; 0 ("unbounded") is how a video PES
    // too long for 16 bits is written (§2.4.3.7).
    let pes_len = 3 + header_data_len + payload_len;
    let pes_len = if pes_len > 0xFFFF { 0 } else { pes_len as u16 };
    let mut h = [0u8; 19];
    h[..4].copy_from_slice(&[0, 0, 1, pes.track.stream_id()]);
    h[4..6].copy_from_slice(&pes_len.to_be_bytes());
    h[6] = 0x80; // '10' marker, no scrambling, no priority, no alignment, no copyright
    h[7] = if with_dts { 0xC0 } else { 0x80 };
    h[8] = header_data_len as u8;
    h[9..14].copy_from_slice(&encode_timestamp(if with_dts { 0x3 } else { 0x2 }, pes.pts));
    if with_dts {
        h[14..19].copy_from_slice(&encode_timestamp(0x1, pes.dts));
    }
    (h, 9 + header_data_len)
}

/// A 33-bit PTS or DTS with its 4-bit prefix and marker bits.
fn encode_timestamp(prefix: u8, ts: u64) -> [u8; 5] {
    let ts = ts & TIMESTAMP_MASK;
    [
        (prefix << 4) | (((ts >> 30) as u8 & 0x07) << 1) | 1,
        (ts >> 22) as u8,
        (((ts >> 15) as u8) << 1) | 1,
        (ts >> 7) as u8,
        ((ts as u8) << 1) | 1,
    ]
}

/// `program_clock_reference_base` (33 bits), 6 reserved bits, extension 0 (§2.4.3.5).
fn encode_pcr(base: u64) -> [u8; 6] {
    let base = base & TIMESTAMP_MASK;
    [
        (base >> 25) as u8,
        (base >> 17) as u8,
        (base >> 9) as u8,
        (base >> 1) as u8,
        (((base & 1) as u8) << 7) | 0x7E,
        0x00,
    ]
}

/// CRC-32/MPEG-2 (§Annex A): polynomial 0x04C11DB7, initial value all ones, no reflection,
/// no final XOR.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    data.iter().fold(0xFFFF_FFFF, |crc, &byte| {
        CRC_TABLE[usize::from((crc >> 24) as u8 ^ byte)] ^ (crc << 8)
    })
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// Reads a header slice and then a list of payload slices as one sequence.
struct Gather<'a> {
    head: &'a [u8],
    parts: &'a [&'a [u8]],
    remaining: usize,
}

impl<'a> Gather<'a> {
    fn new(head: &'a [u8], parts: &'a [&'a [u8]]) -> Self {
        let remaining = head.len() + parts.iter().map(|p| p.len()).sum::<usize>();
        Gather {
            head,
            parts,
            remaining,
        }
    }

    fn remaining(&self) -> usize {
        self.remaining
    }

    fn copy_to(&mut self, out: &mut BytesMut, mut n: usize) {
        self.remaining -= n;
        while n > 0 {
            if self.head.is_empty() {
                let Some((&next, rest)) = self.parts.split_first() else {
                    return;
                };
                self.head = next;
                self.parts = rest;
                continue;
            }
            let take = n.min(self.head.len());
            out.put_slice(&self.head[..take]);
            self.head = &self.head[take..];
            n -= take;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::TsChecker;

    /// CRC-32/MPEG-2 computed bit by bit, independently of the table.
    fn crc_bitwise(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &byte in data {
            for bit in (0..8).rev() {
                let input = u32::from((byte >> bit) & 1);
                let top = crc >> 31;
                crc <<= 1;
                if top ^ input == 1 {
                    crc ^= 0x04C1_1DB7;
                }
            }
        }
        crc
    }

    const AUD: &[u8] = &[0, 0, 0, 1, 0x09, 0xF0];
    const ADTS: &[u8] = &[0xFF, 0xF1, 0x50, 0x80, 0x01, 0x3F, 0xFC];

    fn av() -> Program {
        Program {
            video: Some(StreamType::H264),
            audio: Some(StreamType::AacAdts),
        }
    }

    #[test]
    fn crc_matches_the_check_value_and_a_bitwise_implementation() {
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
        assert_eq!(crc_bitwise(b"123456789"), 0x0376_E6E7);
        for len in 0..64u8 {
            let data: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37) ^ len).collect();
            assert_eq!(crc32_mpeg2(&data), crc_bitwise(&data));
        }
    }

    #[test]
    fn pat_and_pmt_bytes_and_crc() {
        let mut muxer = TsMuxer::new(av());
        let mut out = BytesMut::new();
        muxer.write_tables(&mut out);
        assert_eq!(out.len(), 2 * PACKET_LEN);
        let pat = &out[..PACKET_LEN];
        assert_eq!(
            hex::encode(&pat[..21]),
            "474000100000b00d0001c100000001f0002ab104b2"
        );
        assert!(pat[21..].iter().all(|&b| b == 0xFF));
        let pmt = &out[PACKET_LEN..];
        assert_eq!(
            hex::encode(&pmt[..31]),
            "475000100002b0170001c10000e100f0001be100f0000fe101f0002f44b99b"
        );
        // Each section's CRC, recomputed independently over the section it ends.
        for (packet, len) in [(pat, 16), (pmt, 26)] {
            let section = &packet[5..5 + len - 4];
            let crc = u32::from_be_bytes(packet[5 + len - 4..5 + len].try_into().unwrap());
            assert_eq!(crc, crc_bitwise(section));
            // Running the CRC over the section including its CRC gives 0.
            assert_eq!(crc_bitwise(&packet[5..5 + len]), 0);
        }
    }

    #[test]
    fn audio_only_and_video_only_programs() {
        let mut out = BytesMut::new();
        let mut audio = TsMuxer::new(Program {
            video: None,
            audio: Some(StreamType::AacAdts),
        });
        audio.write_tables(&mut out);
        // PCR_PID is the audio PID; one stream entry.
        assert_eq!(
            hex::encode(&out[PACKET_LEN + 5..PACKET_LEN + 22]),
            "02b0120001c10000e101f0000fe101f000"
        );
        let mut out = BytesMut::new();
        let mut video = TsMuxer::new(Program {
            video: Some(StreamType::Hevc),
            audio: None,
        });
        video.write_tables(&mut out);
        assert_eq!(
            hex::encode(&out[PACKET_LEN + 5..PACKET_LEN + 22]),
            "02b0120001c10000e100f00024e100f000"
        );
        let err = video.write_pes(
            &mut out,
            &Pes {
                track: Track::Audio,
                pts: 0,
                dts: 0,
                random_access: true,
                payload: &[],
            },
        );
        assert_eq!(
            err,
            Err(MuxError::TrackNotInProgram {
                track: Track::Audio
            })
        );
    }

    #[test]
    fn pes_header_with_pts_and_dts_exact_bytes() {
        let mut muxer = TsMuxer::new(av());
        let mut out = BytesMut::new();
        let payload: &[&[u8]] = &[&[0, 0, 0, 1, 0x09, 0xF0], &[0, 0, 0, 1, 0x65, 0x88]];
        // DTS 1 s, PTS 1.08 s.
        muxer
            .write_pes(
                &mut out,
                &Pes {
                    track: Track::Video,
                    pts: 97_200,
                    dts: 90_000,
                    random_access: true,
                    payload,
                },
            )
            .unwrap();
        assert_eq!(out.len(), PACKET_LEN);
        // Header: PUSI, PID 0x100, adaptation field + payload, CC 0.
        assert_eq!(hex::encode(&out[..4]), "47410030");
        // Adaptation field: length, random_access + PCR flags, PCR base 90000.
        let af_len = usize::from(out[4]);
        assert_eq!(af_len, 188 - 4 - 1 - 19 - 12);
        assert_eq!(hex::encode(&out[5..12]), "500000afc87e00");
        assert!(out[12..5 + af_len].iter().all(|&b| b == 0xFF));
        let pes = &out[5 + af_len..];
        assert_eq!(
            hex::encode(pes),
            "000001e0001980c00a 310005f761 110005bf21 00000001 09f0 000000016588".replace(' ', "")
        );

        // PTS only when PTS == DTS.
        let mut out = BytesMut::new();
        muxer
            .write_pes(
                &mut out,
                &Pes {
                    track: Track::Audio,
                    pts: 90_000,
                    dts: 90_000,
                    random_access: false,
                    payload: &[&[0xAA; 4]],
                },
            )
            .unwrap();
        let pes = &out[out.len() - 18..];
        assert_eq!(
            hex::encode(pes),
            "000001c0000c808005 210005bf21 aaaaaaaa".replace(' ', "")
        );
    }

    #[test]
    fn large_pes_spans_packets_with_counters_pcr_and_stuffing() {
        let mut muxer = TsMuxer::new(av());
        let mut out = BytesMut::new();
        let big = vec![0x5A; 70_000];
        let mut checker = TsChecker::default();
        muxer.write_tables(&mut out);
        for i in 0..40u64 {
            let video: &[&[u8]] = &[AUD, &big[..(i as usize * 1789) % big.len()]];
            muxer
                .write_pes(
                    &mut out,
                    &Pes {
                        track: Track::Video,
                        pts: i * 3000 + 6000,
                        dts: i * 3000,
                        random_access: i % 10 == 0,
                        payload: video,
                    },
                )
                .unwrap();
            muxer
                .write_pes(
                    &mut out,
                    &Pes {
                        track: Track::Audio,
                        pts: i * 1920,
                        dts: i * 1920,
                        random_access: true,
                        payload: &[ADTS, &big[..i as usize * 7]],
                    },
                )
                .unwrap();
        }
        checker.check(&out);
        assert_eq!(checker.pes_count(VIDEO_PID), 40);
        assert_eq!(checker.pes_count(AUDIO_PID), 40);
        // One PCR per video PES; audio never needed a PCR-only packet.
        assert_eq!(checker.pcr_count(), 40);
        // The 70 000-byte-class PES uses PES_packet_length 0 and still round-trips its bytes.
        assert_eq!(
            checker.payload_bytes(VIDEO_PID),
            (0..40)
                .map(|i| (i * 1789) % big.len() + 19 + AUD.len())
                .sum::<usize>()
        );
    }

    #[test]
    fn audio_only_program_gets_pcr_on_audio_and_video_gaps_get_pcr_only_packets() {
        let mut muxer = TsMuxer::new(Program {
            video: None,
            audio: Some(StreamType::AacAdts),
        });
        let mut out = BytesMut::new();
        for i in 0..5 {
            muxer
                .write_pes(
                    &mut out,
                    &Pes {
                        track: Track::Audio,
                        pts: i * 2090,
                        dts: i * 2090,
                        random_access: true,
                        payload: &[ADTS],
                    },
                )
                .unwrap();
        }
        let mut checker = TsChecker::default();
        checker.check(&out);
        assert_eq!(checker.pcr_count(), 5);

        // Video stalls while audio flows: PCR-only packets keep the clock on the video PID.
        let mut muxer = TsMuxer::new(av());
        let mut out = BytesMut::new();
        let frame: &[&[u8]] = &[AUD];
        muxer
            .write_pes(
                &mut out,
                &Pes {
                    track: Track::Video,
                    pts: 0,
                    dts: 0,
                    random_access: true,
                    payload: frame,
                },
            )
            .unwrap();
        for i in 1..=10 {
            muxer
                .write_pes(
                    &mut out,
                    &Pes {
                        track: Track::Audio,
                        pts: i * 2090,
                        dts: i * 2090,
                        random_access: true,
                        payload: &[ADTS],
                    },
                )
                .unwrap();
        }
        let mut checker = TsChecker::default();
        checker.check(&out);
        // The video PCR at 0, then PCR-only packets at the first audio frames 100 ms or more
        // after the last PCR: 10 450 and 20 900.
        assert_eq!(checker.pcr_count(), 3);
        assert_eq!(muxer.last_pcr(), Some(20_900));
    }
}
