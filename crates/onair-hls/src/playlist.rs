//! Media playlists (RFC 8216 §4.3): a live sliding window, an EVENT playlist that keeps
//! every segment, and a VOD playlist; rendered as exact text, and parsed back from the
//! text we wrote (to rebuild state after a crash from the playlist on disk).

use std::collections::VecDeque;
use std::fmt::{self, Write as _};
use std::time::Duration;

use crate::segmenter::SegmentInfo;

/// Which kind of media playlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlaylistKind {
    /// A live playlist keeping the last `window` segments (RFC 8216 §6.2.2).
    Live {
        /// How many segments the playlist lists.
        window: usize,
    },
    /// `EXT-X-PLAYLIST-TYPE:EVENT`: segments are only appended, so a late viewer can seek
    /// back to the start.
    Event,
    /// `EXT-X-PLAYLIST-TYPE:VOD` with `EXT-X-ENDLIST`: the finished recording.
    Vod,
}

/// One segment line group of a playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentEntry {
    /// Media sequence number.
    pub sequence: u64,
    /// Duration (EXTINF, written with millisecond precision).
    pub duration: Duration,
    /// Preceded by `EXT-X-DISCONTINUITY`.
    pub discontinuity: bool,
    /// `EXT-X-PROGRAM-DATE-TIME`, Unix milliseconds.
    pub program_date_time_ms: Option<u64>,
    /// The segment's URI, relative to the playlist.
    pub uri: String,
}

impl SegmentEntry {
    /// The entry for a segment the segmenter finished, named by `pattern`.
    pub fn from_segment(info: &SegmentInfo, pattern: &UriPattern) -> Self {
        SegmentEntry {
            sequence: info.sequence,
            duration: info.duration,
            discontinuity: info.discontinuity,
            program_date_time_ms: Some(info.program_date_time_ms),
            uri: pattern.uri(info.sequence),
        }
    }
}

/// Segment names from a pattern with one `{sequence}` placeholder, e.g. `seg-{sequence}.ts`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UriPattern {
    prefix: String,
    suffix: String,
}

/// Why a [`UriPattern`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The pattern must contain `{sequence}` exactly once.
    #[error("segment name pattern {pattern:?} must contain {{sequence}} exactly once")]
    Placeholder {
        /// The pattern.
        pattern: String,
    },
    /// A URI line cannot start with `#` or contain a line break.
    #[error("segment name pattern {pattern:?} cannot start with '#' or contain a line break")]
    Unwritable {
        /// The pattern.
        pattern: String,
    },
}

impl UriPattern {
    /// Parses `pattern`.
    pub fn new(pattern: &str) -> Result<Self, PatternError> {
        const PLACEHOLDER: &str = "{sequence}";
        if pattern.starts_with('#') || pattern.contains(['\r', '\n']) {
            return Err(PatternError::Unwritable {
                pattern: pattern.to_owned(),
            });
        }
        match pattern.split_once(PLACEHOLDER) {
            Some((prefix, suffix)) if !suffix.contains(PLACEHOLDER) => Ok(UriPattern {
                prefix: prefix.to_owned(),
                suffix: suffix.to_owned(),
            }),
            _ => Err(PatternError::Placeholder {
                pattern: pattern.to_owned(),
            }),
        }
    }

    /// The URI of segment `sequence`.
    pub fn uri(&self, sequence: u64) -> String {
        format!("{}{sequence}{}", self.prefix, self.suffix)
    }
}

/// Why [`Playlist::push`] refused a segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// Media sequence numbers must increase by one per segment (RFC 8216 §6.2.1).
    #[error("segment {got} pushed where segment {expected} was due")]
    OutOfOrder {
        /// The next sequence number.
        expected: u64,
        /// The pushed one.
        got: u64,
    },
    /// The playlist ended (`EXT-X-ENDLIST`) or is VOD; nothing can be appended.
    #[error("the playlist has ended")]
    Ended,
    /// A URI line cannot be empty, start with `#` or contain a line break.
    #[error("segment URI {uri:?} cannot be written on a playlist line")]
    Uri {
        /// The URI.
        uri: String,
    },
}

/// Why [`Playlist::parse`] refused a text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The first line is not `#EXTM3U` (RFC 8216 §4.3.1.1).
    #[error("playlist does not start with #EXTM3U")]
    NotM3u,
    /// A tag's value is malformed.
    #[error("line {line}: bad {tag} value {value:?}")]
    BadValue {
        /// 1-based line number.
        line: usize,
        /// The tag.
        tag: &'static str,
        /// The value as written.
        value: String,
    },
    /// `EXT-X-PLAYLIST-TYPE` is neither EVENT nor VOD.
    #[error("line {line}: unknown playlist type {value:?}")]
    PlaylistType {
        /// 1-based line number.
        line: usize,
        /// The value as written.
        value: String,
    },
}

/// A media playlist under construction. [`Display`](fmt::Display) renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Playlist {
    kind: PlaylistKind,
    segments: VecDeque<SegmentEntry>,
    /// The sequence number of the first listed segment, or of the next one if none.
    media_sequence: u64,
    discontinuity_sequence: u64,
    target_duration: u64,
    ended: bool,
    started: bool,
}

impl Playlist {
    /// An empty playlist of `kind`.
    pub fn new(kind: PlaylistKind) -> Self {
        Playlist {
            kind,
            segments: VecDeque::new(),
            media_sequence: 0,
            discontinuity_sequence: 0,
            target_duration: 1,
            ended: kind == PlaylistKind::Vod,
            started: false,
        }
    }

    /// The kind.
    pub fn kind(&self) -> PlaylistKind {
        self.kind
    }

    /// The listed segments, oldest first.
    pub fn segments(&self) -> &VecDeque<SegmentEntry> {
        &self.segments
    }

    /// `EXT-X-MEDIA-SEQUENCE`.
    pub fn media_sequence(&self) -> u64 {
        self.media_sequence
    }

    /// The sequence number the next pushed segment must have.
    pub fn next_sequence(&self) -> u64 {
        self.media_sequence + self.segments.len() as u64
    }

    /// `EXT-X-DISCONTINUITY-SEQUENCE`.
    pub fn discontinuity_sequence(&self) -> u64 {
        self.discontinuity_sequence
    }

    /// `EXT-X-TARGETDURATION` in seconds: the ceiling of the longest segment ever pushed
    /// (at least 1), never decreasing, so every EXTINF rounds to at most it (§4.3.3.1).
    pub fn target_duration(&self) -> u64 {
        self.target_duration
    }

    /// Raises the target duration to at least `seconds`. Players are told a steady value
    /// (RFC 8216 §6.2.1 forbids changing it) when this is set to the segmenter's target
    /// before the first segment.
    pub fn set_min_target_duration(&mut self, seconds: u64) {
        self.target_duration = self.target_duration.max(seconds);
    }

    /// Whether `EXT-X-ENDLIST` is written.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Sets the media sequence of an empty playlist that has never had a segment (a live
    /// playlist continuing after a restart).
    pub fn set_media_sequence(&mut self, sequence: u64) {
        if !self.started {
            self.media_sequence = sequence;
        }
    }

    /// Appends a segment. A live playlist drops its oldest segments beyond the window and
    /// counts each dropped discontinuity in `EXT-X-DISCONTINUITY-SEQUENCE` (§6.2.2).
    pub fn push(&mut self, entry: SegmentEntry) -> Result<(), PushError> {
        if self.ended {
            return Err(PushError::Ended);
        }
        if entry.uri.is_empty() || entry.uri.starts_with('#') || entry.uri.contains(['\r', '\n']) {
            return Err(PushError::Uri { uri: entry.uri });
        }
        if !self.started {
            self.started = true;
            self.media_sequence = entry.sequence;
        } else if entry.sequence != self.next_sequence() {
            return Err(PushError::OutOfOrder {
                expected: self.next_sequence(),
                got: entry.sequence,
            });
        }
        let ceil = entry.duration.as_millis().div_ceil(1000);
        self.target_duration = self
            .target_duration
            .max(u64::try_from(ceil).unwrap_or(u64::MAX));
        self.segments.push_back(entry);
        if let PlaylistKind::Live { window } = self.kind {
            while self.segments.len() > window.max(1) {
                if let Some(removed) = self.segments.pop_front() {
                    self.media_sequence += 1;
                    if removed.discontinuity {
                        self.discontinuity_sequence += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// The stream ended: an EVENT playlist becomes VOD, a live one gets `EXT-X-ENDLIST`.
    pub fn end(&mut self) {
        if self.kind == PlaylistKind::Event {
            self.kind = PlaylistKind::Vod;
        }
        self.ended = true;
    }

    /// The total duration of the listed segments.
    pub fn duration(&self) -> Duration {
        self.segments.iter().map(|s| s.duration).sum()
    }

    /// Parses a playlist this module wrote. A playlist without `EXT-X-PLAYLIST-TYPE` is a
    /// live one and gets `live_window`. Unknown tags and comments are skipped, and a final
    /// EXTINF without its URI line (a write cut short) is dropped.
    pub fn parse(text: &str, live_window: usize) -> Result<Playlist, ParseError> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, first)) if first.trim_end() == "#EXTM3U" => {}
            _ => return Err(ParseError::NotM3u),
        }
        let mut kind = PlaylistKind::Live {
            window: live_window,
        };
        let mut media_sequence = 0;
        let mut discontinuity_sequence = 0;
        let mut target_duration = 1;
        let mut ended = false;
        let mut segments = VecDeque::new();
        let mut pending_discontinuity = false;
        let mut pending_pdt = None;
        let mut pending_duration = None;
        for (index, line) in lines {
            let line_no = index + 1;
            let line = line.trim_end();
            let bad = |tag: &'static str, value: &str| ParseError::BadValue {
                line: line_no,
                tag,
                value: value.to_owned(),
            };
            if line.is_empty() {
                continue;
            }
            let Some(tag) = line.strip_prefix('#') else {
                if let Some(duration) = pending_duration.take() {
                    segments.push_back(SegmentEntry {
                        sequence: media_sequence + segments.len() as u64,
                        duration,
                        discontinuity: std::mem::take(&mut pending_discontinuity),
                        program_date_time_ms: pending_pdt.take(),
                        uri: line.to_owned(),
                    });
                }
                continue;
            };
            let (name, value) = tag.split_once(':').unwrap_or((tag, ""));
            match name {
                "EXT-X-TARGETDURATION" => {
                    target_duration = value
                        .parse()
                        .map_err(|_| bad("EXT-X-TARGETDURATION", value))?;
                }
                "EXT-X-MEDIA-SEQUENCE" => {
                    media_sequence = value
                        .parse()
                        .map_err(|_| bad("EXT-X-MEDIA-SEQUENCE", value))?;
                }
                "EXT-X-DISCONTINUITY-SEQUENCE" => {
                    discontinuity_sequence = value
                        .parse()
                        .map_err(|_| bad("EXT-X-DISCONTINUITY-SEQUENCE", value))?;
                }
                "EXT-X-PLAYLIST-TYPE" => {
                    kind = match value {
                        "EVENT" => PlaylistKind::Event,
                        "VOD" => PlaylistKind::Vod,
                        _ => {
                            return Err(ParseError::PlaylistType {
                                line: line_no,
                                value: value.to_owned(),
                            });
                        }
                    };
                }
                "EXT-X-DISCONTINUITY" => pending_discontinuity = true,
                "EXT-X-PROGRAM-DATE-TIME" => {
                    pending_pdt = Some(
                        parse_date_time(value)
                            .ok_or_else(|| bad("EXT-X-PROGRAM-DATE-TIME", value))?,
                    );
                }
                "EXTINF" => {
                    let seconds = value.split(',').next().unwrap_or_default();
                    pending_duration =
                        Some(parse_seconds(seconds).ok_or_else(|| bad("EXTINF", value))?);
                }
                "EXT-X-ENDLIST" => ended = true,
                _ => {}
            }
        }
        if ended && kind == PlaylistKind::Event {
            kind = PlaylistKind::Vod;
        }
        Ok(Playlist {
            kind,
            started: !segments.is_empty(),
            segments,
            media_sequence,
            discontinuity_sequence,
            target_duration,
            ended: ended || kind == PlaylistKind::Vod,
        })
    }
}

impl fmt::Display for Playlist {
    /// Renders the playlist: version 3 (decimal EXTINF), the header tags, one
    /// DISCONTINUITY / PROGRAM-DATE-TIME / EXTINF / URI group per segment, and ENDLIST when
    /// ended. Lines end in `\n`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::with_capacity(128 + self.segments.len() * 96);
        out.push_str("#EXTM3U\n#EXT-X-VERSION:3\n");
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", self.target_duration);
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence);
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(
                out,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        match self.kind {
            PlaylistKind::Live { .. } => {}
            PlaylistKind::Event => out.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n"),
            PlaylistKind::Vod => out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n"),
        }
        for segment in &self.segments {
            if segment.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if let Some(ms) = segment.program_date_time_ms {
                out.push_str("#EXT-X-PROGRAM-DATE-TIME:");
                push_date_time(&mut out, ms);
                out.push('\n');
            }
            let ms = segment.duration.as_millis();
            let _ = writeln!(out, "#EXTINF:{}.{:03},", ms / 1000, ms % 1000);
            out.push_str(&segment.uri);
            out.push('\n');
        }
        if self.ended {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        f.write_str(&out)
    }
}

/// `1.234` → 1234 ms; at most three decimals, as we write them.
fn parse_seconds(text: &str) -> Option<Duration> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let frac_ms: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse::<u64>().ok()? * 10u64.pow(3 - frac.len() as u32)
    };
    Some(Duration::from_millis(
        whole.checked_mul(1000)?.checked_add(frac_ms)?,
    ))
}

/// Writes `ms` (Unix milliseconds) as ISO 8601 UTC, `2026-11-21T21:24:15.123Z`.
fn push_date_time(out: &mut String, ms: u64) {
    let days = ms / 86_400_000;
    let in_day = ms % 86_400_000;
    let (year, month, day) = civil_from_days(days as i64);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    );
}

/// Parses what [`push_date_time`] writes (also accepting `+00:00` for `Z`).
fn parse_date_time(text: &str) -> Option<u64> {
    let text = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))?;
    let (date, time) = text.split_once('T')?;
    let mut date_parts = date.splitn(3, '-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: u32 = date_parts.next()?.parse().ok()?;
    let day: u32 = date_parts.next()?.parse().ok()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut time_parts = hms.splitn(3, ':');
    let hour: u64 = time_parts.next()?.parse().ok()?;
    let minute: u64 = time_parts.next()?.parse().ok()?;
    let second: u64 = time_parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let millis = parse_seconds(&format!("0.{frac}"))?.as_millis() as u64;
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The inverse of [`civil_from_days`] (Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(sequence: u64, ms: u64, discontinuity: bool, pdt: Option<u64>) -> SegmentEntry {
        SegmentEntry {
            sequence,
            duration: Duration::from_millis(ms),
            discontinuity,
            program_date_time_ms: pdt,
            uri: UriPattern::new("seg-{sequence}.ts").unwrap().uri(sequence),
        }
    }

    /// 2026-11-21T21:24:15.123Z.
    const T0: u64 = 1_795_296_255_123;

    #[test]
    fn date_time_formatting_without_a_date_library() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (T0, "2026-11-21T21:24:15.123Z"),
            (4_107_542_399_999, "2100-02-28T23:59:59.999Z"),
            (253_402_300_799_000, "9999-12-31T23:59:59.000Z"),
        ];
        for (ms, text) in cases {
            let mut out = String::new();
            push_date_time(&mut out, ms);
            assert_eq!(out, text);
            assert_eq!(parse_date_time(text), Some(ms));
        }
        assert_eq!(parse_date_time("2026-11-21T21:24:15.123+00:00"), Some(T0));
        assert_eq!(parse_date_time("2026-13-21T21:24:15.123Z"), None);
        assert_eq!(parse_date_time("2026-11-21 21:24:15Z"), None);
    }

    #[test]
    fn live_window_slides_and_counts_discontinuities() {
        let mut playlist = Playlist::new(PlaylistKind::Live { window: 3 });
        playlist.set_media_sequence(7);
        playlist.push(entry(7, 2000, false, Some(T0))).unwrap();
        playlist
            .push(entry(8, 2002, true, Some(T0 + 2000)))
            .unwrap();
        playlist
            .push(entry(9, 1998, false, Some(T0 + 4002)))
            .unwrap();
        playlist
            .push(entry(10, 2500, false, Some(T0 + 6000)))
            .unwrap();
        assert_eq!(
            playlist.to_string(),
            "#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:3
#EXT-X-MEDIA-SEQUENCE:8
#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T21:24:17.123Z
#EXTINF:2.002,
seg-8.ts
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T21:24:19.125Z
#EXTINF:1.998,
seg-9.ts
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T21:24:21.123Z
#EXTINF:2.500,
seg-10.ts
"
        );
        // Sliding the discontinuity out bumps the discontinuity sequence; the target
        // duration stays at 3 although the longest listed segment is now 2 s.
        playlist.push(entry(11, 2000, false, None)).unwrap();
        playlist.push(entry(12, 2000, false, None)).unwrap();
        assert_eq!(
            playlist.to_string(),
            "#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:3
#EXT-X-MEDIA-SEQUENCE:10
#EXT-X-DISCONTINUITY-SEQUENCE:1
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T21:24:21.123Z
#EXTINF:2.500,
seg-10.ts
#EXTINF:2.000,
seg-11.ts
#EXTINF:2.000,
seg-12.ts
"
        );
        assert_eq!(
            playlist.push(entry(14, 2000, false, None)),
            Err(PushError::OutOfOrder {
                expected: 13,
                got: 14
            })
        );
        playlist.end();
        assert!(
            playlist
                .to_string()
                .ends_with("seg-12.ts\n#EXT-X-ENDLIST\n")
        );
        assert_eq!(
            playlist.push(entry(13, 2000, false, None)),
            Err(PushError::Ended)
        );
    }

    #[test]
    fn event_playlist_keeps_everything_and_becomes_vod() {
        let mut playlist = Playlist::new(PlaylistKind::Event);
        playlist.set_min_target_duration(2);
        for i in 0..4 {
            playlist
                .push(entry(i, 1_960 + i * 10, i == 2, Some(T0 + i * 2000)))
                .unwrap();
        }
        let event = "#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:EVENT
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T21:24:15.123Z
#EXTINF:1.960,
seg-0.ts
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T21:24:17.123Z
#EXTINF:1.970,
seg-1.ts
#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T21:24:19.123Z
#EXTINF:1.980,
seg-2.ts
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T21:24:21.123Z
#EXTINF:1.990,
seg-3.ts
";
        assert_eq!(playlist.to_string(), event);
        assert_eq!(playlist.duration(), Duration::from_millis(7_900));
        playlist.end();
        assert_eq!(playlist.kind(), PlaylistKind::Vod);
        let vod = event.replace("TYPE:EVENT", "TYPE:VOD") + "#EXT-X-ENDLIST\n";
        assert_eq!(playlist.to_string(), vod);

        // Crash recovery: the EVENT text on disk parses back to the same playlist, which
        // can then be finalised.
        let mut recovered = Playlist::parse(event, 6).unwrap();
        assert_eq!(recovered.kind(), PlaylistKind::Event);
        assert_eq!(recovered.next_sequence(), 4);
        recovered.end();
        assert_eq!(recovered.to_string(), vod);
        assert_eq!(Playlist::parse(&vod, 6).unwrap(), playlist);
    }

    #[test]
    fn vod_playlist_and_empty_playlists() {
        let mut vod = Playlist::new(PlaylistKind::Vod);
        assert_eq!(vod.push(entry(0, 1000, false, None)), Err(PushError::Ended));
        assert_eq!(
            vod.to_string(),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-ENDLIST\n"
        );
        let live = Playlist::new(PlaylistKind::Live { window: 6 });
        assert_eq!(Playlist::parse(&live.to_string(), 6).unwrap(), live);
    }

    #[test]
    fn patterns_and_bad_uris() {
        let pattern = UriPattern::new("live/{sequence}.ts?v=1").unwrap();
        assert_eq!(pattern.uri(42), "live/42.ts?v=1");
        assert!(matches!(
            UriPattern::new("seg.ts"),
            Err(PatternError::Placeholder { .. })
        ));
        assert!(matches!(
            UriPattern::new("{sequence}-{sequence}.ts"),
            Err(PatternError::Placeholder { .. })
        ));
        assert!(matches!(
            UriPattern::new("#{sequence}"),
            Err(PatternError::Unwritable { .. })
        ));
        let mut playlist = Playlist::new(PlaylistKind::Event);
        let mut bad = entry(0, 1000, false, None);
        bad.uri = "a\nb".into();
        assert!(matches!(playlist.push(bad), Err(PushError::Uri { .. })));
    }

    #[test]
    fn parser_errors_and_tolerance() {
        assert_eq!(Playlist::parse("", 6), Err(ParseError::NotM3u));
        assert_eq!(
            Playlist::parse("#EXT-X-VERSION:3\n", 6),
            Err(ParseError::NotM3u)
        );
        assert_eq!(
            Playlist::parse("#EXTM3U\n#EXTINF:abc,\nx.ts\n", 6),
            Err(ParseError::BadValue {
                line: 2,
                tag: "EXTINF",
                value: "abc,".into()
            })
        );
        assert_eq!(
            Playlist::parse("#EXTM3U\n#EXT-X-PLAYLIST-TYPE:LIVE\n", 6),
            Err(ParseError::PlaylistType {
                line: 2,
                value: "LIVE".into()
            })
        );
        // CRLF line ends, an unknown tag, a comment, and a dangling EXTINF from a cut write.
        let parsed = Playlist::parse(
            "#EXTM3U\r\n#EXT-X-TARGETDURATION:4\r\n#EXT-X-MEDIA-SEQUENCE:3\r\n#EXT-X-INDEPENDENT-SEGMENTS\r\n# note\r\n#EXTINF:3.5,\r\na.ts\r\n#EXTINF:2,",
            6,
        )
        .unwrap();
        assert_eq!(parsed.segments().len(), 1);
        assert_eq!(parsed.segments()[0].duration, Duration::from_millis(3500));
        assert_eq!(parsed.segments()[0].sequence, 3);
        assert_eq!(parsed.next_sequence(), 4);
        assert_eq!(parsed.target_duration(), 4);
    }

    proptest! {
        #[test]
        fn render_parse_round_trip(
            kind in prop_oneof![
                (1usize..8).prop_map(|window| PlaylistKind::Live { window }),
                Just(PlaylistKind::Event),
            ],
            first in 0u64..1_000_000,
            min_target in 0u64..5,
            segments in proptest::collection::vec(
                (0u64..20_000, any::<bool>(), proptest::option::of(0u64..4_102_444_800_000)),
                0..20,
            ),
            end in any::<bool>(),
        ) {
            let window = match kind { PlaylistKind::Live { window } => window, _ => 6 };
            let mut playlist = Playlist::new(kind);
            playlist.set_min_target_duration(min_target);
            for (i, (ms, discontinuity, pdt)) in segments.into_iter().enumerate() {
                playlist.push(entry(first + i as u64, ms, discontinuity, pdt)).unwrap();
            }
            if end {
                playlist.end();
            }
            let text = playlist.to_string();
            let parsed = Playlist::parse(&text, window).unwrap();
            prop_assert_eq!(parsed.to_string(), text);
            prop_assert_eq!(parsed.segments(), playlist.segments());
            prop_assert_eq!(parsed.kind(), playlist.kind());
            prop_assert_eq!(parsed.next_sequence(), playlist.next_sequence());
            for segment in parsed.segments() {
                let rounded = (segment.duration.as_millis() + 500) / 1000;
                prop_assert!(rounded as u64 <= parsed.target_duration());
            }
        }
    }
}
