//! MP4 (ISO BMFF) samples as FLV tag bodies, in decode order across tracks.
//!
//! `mp4-atom` decodes the boxes (`moov` only: it is read into memory, bounded); the sample
//! tables are walked here one sample at a time, and each sample is read from the file when
//! its turn comes, so a large file costs its index, never its media. Offsets and sizes are
//! checked against the file's length before anything is read: a file cut in `mdat` or before
//! `moov` is refused up front (ISO/IEC 14496-12 §8.6–8.7 for the tables, §8.6.6 edit lists,
//! ISO/IEC 14496-15 for avcC/hvcC).

use std::fs::File;
use std::os::unix::fs::FileExt as _;

use bytes::Bytes;
use mp4_atom::{Codec, Decode as _, Moov, StszSamples, Trak};
use onair_media::{Frame, MediaKind, Timestamp};

use super::import::ImportError;

/// A `moov` larger than this is refused rather than read into memory: an hour of 30 fps
/// video with audio indexes in a few megabytes.
const MAX_MOOV_BYTES: u64 = 256 * 1024 * 1024;

/// What the file's tracks are, for [`super::import::Imported`].
#[derive(Debug, Clone)]
pub(super) struct Facts {
    pub video_codec: &'static str,
    pub audio_codec: Option<&'static str>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// The tracks of one MP4 file, read in decode order.
pub(super) struct Mp4Source {
    file: File,
    len: u64,
    max_frame_bytes: u32,
    video: TrackReader,
    audio: Option<TrackReader>,
    /// Sequence headers, sent before any sample.
    headers: Vec<Frame>,
    /// Subtracted from every timestamp so the first frame is at 0.
    base_ms: i64,
    pub facts: Facts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Avc,
    Hevc,
    Aac,
}

struct TrackReader {
    kind: Kind,
    /// "video track 1", for errors.
    name: String,
    timescale: i128,
    /// Media time (track units) shown at the track's start, from the edit list.
    media_start: i64,
    /// An initial empty edit: the track starts this late (ms).
    delay_ms: i64,
    table: SampleTable,
    /// `stss`, sorted; `None` when every sample is a sync sample.
    sync: Option<Vec<u32>>,
    /// The next sample, with its decode and presentation times in ms.
    peeked: Option<(Sample, i64, i64)>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    number: u32,
    offset: u64,
    size: u32,
    dts: i64,
    cts_offset: i64,
}

/// A cursor over one track's `stbl`, producing each sample's place and times in turn.
struct SampleTable {
    count: u32,
    sizes: StszSamples,
    stts: Vec<(u32, u32)>,
    ctts: Vec<(u32, i64)>,
    stsc: Vec<(u32, u32)>,
    chunks: Vec<u64>,
    next: u32,
    dts: i64,
    stts_at: (usize, u32),
    ctts_at: (usize, u32),
    chunk: usize,
    stsc_at: usize,
    in_chunk: u32,
    chunk_samples: u32,
    pos: u64,
}

impl SampleTable {
    fn new(trak: &Trak, name: &str) -> Result<SampleTable, ImportError> {
        let stbl = &trak.mdia.minf.stbl;
        let count = match &stbl.stsz.samples {
            StszSamples::Identical { count, .. } => *count,
            StszSamples::Different { sizes } => sizes.len() as u32,
        };
        let chunks = match (&stbl.co64, &stbl.stco) {
            (Some(co64), _) => co64.entries.clone(),
            (None, Some(stco)) => stco.entries.iter().map(|&o| u64::from(o)).collect(),
            (None, None) => Vec::new(),
        };
        let covered: u64 = stbl
            .stts
            .entries
            .iter()
            .map(|e| u64::from(e.sample_count))
            .sum();
        if covered < u64::from(count) {
            return Err(corrupt(format!(
                "{name}: stts times {covered} samples, stsz sizes {count}"
            )));
        }
        if count > 0
            && (chunks.is_empty() || stbl.stsc.entries.first().map(|e| e.first_chunk) != Some(1))
        {
            return Err(corrupt(format!(
                "{name}: no chunk table for its {count} samples"
            )));
        }
        Ok(SampleTable {
            count,
            sizes: stbl.stsz.samples.clone(),
            stts: stbl
                .stts
                .entries
                .iter()
                .map(|e| (e.sample_count, e.sample_delta))
                .collect(),
            ctts: stbl.ctts.as_ref().map_or_else(Vec::new, |c| {
                c.entries
                    .iter()
                    .map(|e| (e.sample_count, e.sample_offset))
                    .collect()
            }),
            stsc: stbl
                .stsc
                .entries
                .iter()
                .map(|e| (e.first_chunk, e.samples_per_chunk))
                .collect(),
            chunks,
            next: 0,
            dts: 0,
            stts_at: (0, 0),
            ctts_at: (0, 0),
            chunk: 0,
            stsc_at: 0,
            in_chunk: 0,
            chunk_samples: 0,
            pos: 0,
        })
    }

    fn next(&mut self, name: &str) -> Result<Option<Sample>, ImportError> {
        if self.next >= self.count {
            return Ok(None);
        }
        let number = self.next;
        let size = match &self.sizes {
            StszSamples::Identical { size, .. } => *size,
            StszSamples::Different { sizes } => sizes[number as usize],
        };
        if number == 0 {
            self.enter_chunk(0, name)?;
        }
        // Chunks of zero samples are skipped; the loop ends with the chunk table.
        while self.in_chunk >= self.chunk_samples {
            self.enter_chunk(self.chunk + 1, name)?;
        }
        let offset = self.pos;
        self.pos += u64::from(size);
        self.in_chunk += 1;

        let dts = self.dts;
        let (i, used) = &mut self.stts_at;
        while self.stts.get(*i).is_some_and(|e| e.0 == *used) {
            *i += 1;
            *used = 0;
        }
        // `new` checked that stts times at least `count` samples.
        let delta = self.stts.get(*i).map_or(0, |e| e.1);
        *used += 1;
        self.dts += i64::from(delta);

        let mut cts_offset = 0;
        let (i, used) = &mut self.ctts_at;
        while *i < self.ctts.len() && self.ctts[*i].0 == *used {
            *i += 1;
            *used = 0;
        }
        if *i < self.ctts.len() {
            *used += 1;
            cts_offset = self.ctts[*i].1;
        }
        self.next += 1;
        Ok(Some(Sample {
            number,
            offset,
            size,
            dts,
            cts_offset,
        }))
    }

    fn enter_chunk(&mut self, chunk: usize, name: &str) -> Result<(), ImportError> {
        let Some(&pos) = self.chunks.get(chunk) else {
            return Err(corrupt(format!(
                "{name}: the chunk table ends before sample {}",
                self.next + 1
            )));
        };
        while self
            .stsc
            .get(self.stsc_at + 1)
            .is_some_and(|&(first, _)| (first as usize) <= chunk + 1)
        {
            self.stsc_at += 1;
        }
        self.chunk = chunk;
        self.chunk_samples = self.stsc[self.stsc_at].1;
        self.in_chunk = 0;
        self.pos = pos;
        Ok(())
    }
}

fn corrupt(detail: String) -> ImportError {
    ImportError::Corrupt { detail }
}

fn unsupported(found: String) -> ImportError {
    ImportError::UnsupportedCodec { found }
}

/// The record bytes of a box (`avcC`, `hvcC`) as mp4-atom encodes it back, without the box
/// header.
fn record_of<T: mp4_atom::Encode>(atom: &T) -> Result<Vec<u8>, ImportError> {
    let mut out = Vec::new();
    atom.encode(&mut out)
        .map_err(|e| corrupt(format!("codec configuration: {e}")))?;
    Ok(out.split_off(8.min(out.len())))
}

fn video_name(codec: &Codec) -> String {
    let name = match codec {
        Codec::Vp09(_) => "VP9".to_owned(),
        Codec::Vp08(_) => "VP8".to_owned(),
        Codec::Av01(_) => "AV1".to_owned(),
        Codec::Jpeg(_) => "Motion JPEG".to_owned(),
        Codec::Uncv(_) => "uncompressed video".to_owned(),
        Codec::Unknown(cc, _) if cc.to_string() == "mp4v" => "MPEG-4 Part 2 (mp4v)".to_owned(),
        Codec::Unknown(cc, _) => format!("{cc:?}"),
        other => format!("{other:?}")
            .split('(')
            .next()
            .unwrap_or("unknown")
            .to_owned(),
    };
    format!("video codec {name}")
}

fn audio_name(codec: &Codec) -> String {
    let name = match codec {
        Codec::Mp4a(mp4a) => match mp4a.esds.es_desc.dec_config.object_type_indication {
            0x69 | 0x6B => "MP3".to_owned(),
            oti => format!("MPEG-4 object type 0x{oti:02x}"),
        },
        Codec::Mp3(_) => "MP3".to_owned(),
        Codec::Opus(_) => "Opus".to_owned(),
        Codec::Flac(_) => "FLAC".to_owned(),
        Codec::Ac3(_) => "AC-3".to_owned(),
        Codec::Eac3(_) => "E-AC-3".to_owned(),
        Codec::Samr(_) => "AMR".to_owned(),
        Codec::Unknown(cc, _) => format!("{cc:?}"),
        other => format!("{other:?}")
            .split('(')
            .next()
            .unwrap_or("unknown")
            .to_owned(),
    };
    format!("audio codec {name}")
}

impl Mp4Source {
    pub(super) fn open(mut file: File, max_frame_bytes: u32) -> Result<Mp4Source, ImportError> {
        let len = file.metadata()?.len();
        let moov = read_moov(&mut file, len)?;
        let is_video = |t: &&Trak| t.mdia.hdlr.handler == mp4_atom::FourCC::new(b"vide");
        let is_audio = |t: &&Trak| t.mdia.hdlr.handler == mp4_atom::FourCC::new(b"soun");
        let Some(video_trak) = moov.trak.iter().find(is_video) else {
            return Err(ImportError::NoVideoTrack);
        };
        let audio_trak = moov.trak.iter().find(is_audio);
        if moov.mvex.is_some() && video_trak.mdia.minf.stbl.stsz.samples == StszSamples::default() {
            return Err(corrupt(
                "fragmented MP4 (moof boxes) is not supported: remux it with \
                 `ffmpeg -i in.mp4 -c copy -movflags +faststart out.mp4`"
                    .to_owned(),
            ));
        }
        let movie_timescale = i128::from(moov.mvhd.timescale.max(1));
        let mut headers = Vec::new();

        let video_codec = video_trak.mdia.minf.stbl.stsd.codecs.first();
        let video_name_ = format!("video track {}", video_trak.tkhd.track_id);
        let (kind, record, visual) = match video_codec {
            Some(Codec::Avc1(c)) => (Kind::Avc, record_of(&c.avcc)?, &c.visual),
            Some(Codec::Avc3(c)) => (Kind::Avc, record_of(&c.avcc)?, &c.visual),
            Some(Codec::Hvc1(c)) => (Kind::Hevc, record_of(&c.hvcc)?, &c.visual),
            Some(Codec::Hev1(c)) => (Kind::Hevc, record_of(&c.hvcc)?, &c.visual),
            Some(other) => return Err(unsupported(video_name(other))),
            None => return Err(corrupt(format!("{video_name_}: no sample description"))),
        };
        let (mut width, mut height) = (
            (visual.width > 0).then_some(u32::from(visual.width)),
            (visual.height > 0).then_some(u32::from(visual.height)),
        );
        let mut body = match kind {
            Kind::Hevc => vec![0x80 | 0x10, b'h', b'v', b'c', b'1'],
            _ => vec![0x17, 0, 0, 0, 0],
        };
        if kind == Kind::Avc
            && let Ok(config) = onair_flv::parse_avc_config(&record)
            && let (Some(w), Some(h)) = (config.width, config.height)
        {
            (width, height) = (Some(w), Some(h));
        }
        body.extend_from_slice(&record);
        headers.push(frame(MediaKind::Video, 0, body));
        let video = TrackReader::new(video_trak, kind, video_name_, movie_timescale)?;

        let mut audio = None;
        if let Some(trak) = audio_trak {
            let name = format!("audio track {}", trak.tkhd.track_id);
            match trak.mdia.minf.stbl.stsd.codecs.first() {
                Some(Codec::Mp4a(mp4a))
                    if matches!(
                        mp4a.esds.es_desc.dec_config.object_type_indication,
                        0x40 | 0x66..=0x68
                    ) =>
                {
                    let asc = mp4a
                        .esds
                        .es_desc
                        .dec_config
                        .dec_specific
                        .as_ref()
                        .map(|d| d.raw.clone())
                        .filter(|raw| !raw.is_empty())
                        .ok_or_else(|| {
                            corrupt(format!("{name}: AAC without AudioSpecificConfig"))
                        })?;
                    let mut body = vec![0xAF, 0];
                    body.extend_from_slice(&asc);
                    headers.push(frame(MediaKind::Audio, 0, body));
                    audio = Some(TrackReader::new(trak, Kind::Aac, name, movie_timescale)?);
                }
                Some(other) => return Err(unsupported(audio_name(other))),
                None => return Err(corrupt(format!("{name}: no sample description"))),
            }
        }
        let mut source = Mp4Source {
            file,
            len,
            max_frame_bytes,
            video,
            audio,
            headers,
            base_ms: 0,
            facts: Facts {
                video_codec: if kind == Kind::Hevc { "HEVC" } else { "H.264" },
                audio_codec: audio_trak.map(|_| "AAC"),
                width,
                height,
            },
        };
        if source.video.table.count == 0 {
            return Err(ImportError::NoVideoTrack);
        }
        source.video.peek()?;
        if let Some(a) = &mut source.audio {
            a.peek()?;
        }
        let firsts = [
            source.video.peeked.map(|p| p.1),
            source.audio.as_ref().and_then(|a| a.peeked.map(|p| p.1)),
        ];
        source.base_ms = firsts.into_iter().flatten().min().unwrap_or(0);
        source.headers.reverse();
        Ok(source)
    }

    /// The next frame in decode order, or `None` at the end.
    pub(super) fn next_frame(&mut self) -> Result<Option<Frame>, ImportError> {
        if let Some(header) = self.headers.pop() {
            return Ok(Some(header));
        }
        let take_audio = match (
            &self.video.peeked,
            self.audio.as_ref().and_then(|a| a.peeked.as_ref()),
        ) {
            (Some(v), Some(a)) => a.1 < v.1,
            (None, Some(_)) => true,
            _ => false,
        };
        let track = if take_audio {
            self.audio.as_mut().expect("peeked above")
        } else {
            &mut self.video
        };
        let Some((sample, dts_ms, pts_ms)) = track.peeked.take() else {
            return Ok(None);
        };
        let kind = track.kind;
        let name = track.name.clone();
        track.peek()?;
        if sample.size > self.max_frame_bytes {
            return Err(corrupt(format!(
                "{name}: sample {} declares {} bytes (at most {} accepted)",
                sample.number + 1,
                sample.size,
                self.max_frame_bytes
            )));
        }
        let end = sample.offset.checked_add(u64::from(sample.size));
        if end.is_none_or(|end| end > self.len) {
            return Err(ImportError::Truncated {
                detail: format!(
                    "{name}: sample {} lies at bytes {}..{}, past the end of the file ({} bytes)",
                    sample.number + 1,
                    sample.offset,
                    sample.offset.saturating_add(u64::from(sample.size)),
                    self.len
                ),
            });
        }
        let ts = (dts_ms - self.base_ms).max(0);
        // SI24 composition time.
        let cts = (pts_ms - dts_ms).clamp(-0x80_0000, 0x7F_FFFF) as i32;
        let cts_bytes = &cts.to_be_bytes()[1..];
        let mut body = match kind {
            Kind::Avc => vec![0, 1, cts_bytes[0], cts_bytes[1], cts_bytes[2]],
            Kind::Hevc => vec![
                0,
                b'h',
                b'v',
                b'c',
                b'1',
                cts_bytes[0],
                cts_bytes[1],
                cts_bytes[2],
            ],
            Kind::Aac => vec![0xAF, 1],
        };
        let header_len = body.len();
        body.resize(header_len + sample.size as usize, 0);
        self.file
            .read_exact_at(&mut body[header_len..], sample.offset)?;
        let kind = match kind {
            Kind::Avc | Kind::Hevc => {
                let key = is_sync(self, take_audio, sample.number);
                let frame_type = if key { 1 } else { 2 };
                body[0] = if kind == Kind::Avc {
                    (frame_type << 4) | 7
                } else {
                    // ExVideoTagHeader: IsExHeader, FrameType, PacketType CodedFrames (1).
                    0x80 | (frame_type << 4) | 1
                };
                MediaKind::Video
            }
            Kind::Aac => MediaKind::Audio,
        };
        Ok(Some(frame(kind, ts, body)))
    }
}

fn is_sync(source: &Mp4Source, audio: bool, number: u32) -> bool {
    if audio {
        return true;
    }
    source
        .video
        .sync
        .as_ref()
        .is_none_or(|sync| sync.binary_search(&(number + 1)).is_ok())
}

fn frame(kind: MediaKind, ts: i64, body: Vec<u8>) -> Frame {
    let ts = Timestamp::from_millis(u32::try_from(ts).unwrap_or(u32::MAX));
    onair_flv::frame_from_tag(kind, ts, Bytes::from(body))
}

impl TrackReader {
    fn new(
        trak: &Trak,
        kind: Kind,
        name: String,
        movie_timescale: i128,
    ) -> Result<TrackReader, ImportError> {
        let timescale = i128::from(trak.mdia.mdhd.timescale);
        if timescale == 0 {
            return Err(corrupt(format!("{name}: timescale 0")));
        }
        let mut media_start = 0i64;
        let mut delay_ms = 0i64;
        if let Some(elst) = trak.edts.as_ref().and_then(|e| e.elst.as_ref()) {
            for entry in &elst.entries {
                match entry.media_time {
                    None => {
                        delay_ms +=
                            (i128::from(entry.segment_duration) * 1000 / movie_timescale) as i64;
                    }
                    Some(t) => {
                        media_start = i64::try_from(t).unwrap_or(0);
                        break;
                    }
                }
            }
        }
        let table = SampleTable::new(trak, &name)?;
        let sync = trak.mdia.minf.stbl.stss.as_ref().map(|s| {
            let mut v = s.entries.clone();
            v.sort_unstable();
            v
        });
        Ok(TrackReader {
            kind,
            name,
            timescale,
            media_start,
            delay_ms,
            table,
            peeked: None,
            sync,
        })
    }

    fn ms(&self, t: i64) -> i64 {
        (i128::from(t - self.media_start) * 1000).div_euclid(self.timescale) as i64 + self.delay_ms
    }

    fn peek(&mut self) -> Result<(), ImportError> {
        self.peeked = self
            .table
            .next(&self.name)?
            .map(|s| (s, self.ms(s.dts), self.ms(s.dts + s.cts_offset)));
        Ok(())
    }
}

/// Walks the top-level boxes: checks that each fits in the file (a box past the end is a
/// truncated upload) and returns the decoded `moov`.
fn read_moov(file: &mut File, len: u64) -> Result<Moov, ImportError> {
    let mut pos = 0u64;
    let mut moov = None;
    while pos < len {
        let mut header = [0u8; 16];
        let short = (len - pos).min(16) as usize;
        file.read_exact_at(&mut header[..short], pos)?;
        if short < 8 {
            return Err(ImportError::Truncated {
                detail: format!("a box header at byte {pos} is cut by the end of the file"),
            });
        }
        let size32 = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let kind = String::from_utf8_lossy(&header[4..8]).into_owned();
        let (size, header_len) = match size32 {
            0 => (len - pos, 8),
            1 if short < 16 => {
                return Err(ImportError::Truncated {
                    detail: format!(
                        "the {kind:?} box header at byte {pos} is cut by the end of the file"
                    ),
                });
            }
            1 => (
                u64::from_be_bytes(header[8..16].try_into().expect("8 bytes")),
                16,
            ),
            n => (u64::from(n), 8),
        };
        if size < header_len {
            return Err(corrupt(format!(
                "the {kind:?} box at byte {pos} declares {size} bytes"
            )));
        }
        let end = pos.saturating_add(size);
        if end > len {
            return Err(ImportError::Truncated {
                detail: format!(
                    "the {kind:?} box at byte {pos} needs {size} bytes, the file ends {} bytes later",
                    len - pos
                ),
            });
        }
        if &header[4..8] == b"moov" {
            if size > MAX_MOOV_BYTES {
                return Err(corrupt(format!("a moov box of {size} bytes")));
            }
            let mut bytes = vec![0u8; size as usize];
            file.read_exact_at(&mut bytes, pos)?;
            let decoded = Moov::decode(&mut bytes.as_slice())
                .map_err(|e| corrupt(format!("the moov box does not decode: {e}")))?;
            moov = Some(decoded);
        }
        pos = end;
    }
    moov.ok_or_else(|| ImportError::Truncated {
        detail: "no moov box (the index MP4 writers put at the end): the upload stops short of it"
            .to_owned(),
    })
}
