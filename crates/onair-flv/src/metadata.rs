//! `onMetaData` script data (FLV v10.1 §E.5) and the `@setDataFrame` wrapper publishers
//! put around it (protocol notes §4.5 step 4).

use bytes::Bytes;
use onair_amf::{Decoder, Value};
use onair_media::{AudioCodec, FourCc, VideoCodec};

use crate::FlvError;

/// `@setDataFrame` as an AMF0 string: marker 0x02, length 13, the name.
const SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";

/// The stream description a publisher sends in `onMetaData`, as far as OnAir uses it.
///
/// Every field is optional: encoders differ in what they write, and a value of the wrong
/// AMF type is treated as absent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamMetadata {
    /// `width` in pixels.
    pub width: Option<f64>,
    /// `height` in pixels.
    pub height: Option<f64>,
    /// `framerate` in frames per second.
    pub framerate: Option<f64>,
    /// `videodatarate` in kbit/s.
    pub videodatarate: Option<f64>,
    /// `audiodatarate` in kbit/s.
    pub audiodatarate: Option<f64>,
    /// `audiosamplerate` in Hz.
    pub audiosamplerate: Option<f64>,
    /// `stereo`.
    pub stereo: Option<bool>,
    /// `duration` in seconds (0 for live streams).
    pub duration: Option<f64>,
    /// `videocodecid`: a legacy CodecID (7, 12) or, from E-RTMP encoders, a FourCC as a
    /// number or a string.
    pub video_codec: Option<VideoCodec>,
    /// `audiocodecid`: a legacy SoundFormat (10, 2) or an E-RTMP FourCC.
    pub audio_codec: Option<AudioCodec>,
    /// `encoder` (e.g. `"obs-output module (libobs version 30.1.2)"`).
    pub encoder: Option<String>,
    /// Every property as sent, in order, for anything not named above.
    pub properties: Vec<(String, Value)>,
}

/// Parses `"onMetaData", {…}` — or `"@setDataFrame", "onMetaData", {…}` as publishers send
/// it — where `{…}` is an ECMA array (OBS, FFmpeg) or an object.
pub fn parse_metadata(script_body: &[u8]) -> Result<StreamMetadata, FlvError> {
    let mut decoder = Decoder::new(strip_prefix(script_body));
    let name = decoder.next_value()?;
    match name.as_ref().and_then(Value::as_str) {
        Some("onMetaData") => {}
        other => {
            return Err(FlvError::NotMetadata {
                name: other.unwrap_or_default().to_owned(),
            });
        }
    }
    let object = decoder
        .next_value()?
        .ok_or(FlvError::MissingMetadataObject)?;
    let properties = match object {
        Value::Object(properties) | Value::EcmaArray(properties) => properties,
        _ => return Err(FlvError::MissingMetadataObject),
    };
    let number = |key: &str| lookup(&properties, key).and_then(Value::as_number);
    let codec_id = |key: &str| -> Option<CodecId> {
        match lookup(&properties, key)? {
            Value::Number(n) => Some(CodecId::Number(*n)),
            value => {
                let text = value.as_str()?;
                let bytes: [u8; 4] = text.as_bytes().try_into().ok()?;
                Some(CodecId::FourCc(FourCc(bytes)))
            }
        }
    };
    Ok(StreamMetadata {
        width: number("width"),
        height: number("height"),
        framerate: number("framerate").or_else(|| number("fps")),
        videodatarate: number("videodatarate"),
        audiodatarate: number("audiodatarate"),
        audiosamplerate: number("audiosamplerate"),
        stereo: lookup(&properties, "stereo").and_then(Value::as_bool),
        duration: number("duration"),
        video_codec: codec_id("videocodecid").and_then(CodecId::video),
        audio_codec: codec_id("audiocodecid").and_then(CodecId::audio),
        encoder: lookup(&properties, "encoder")
            .and_then(Value::as_str)
            .map(str::to_owned),
        properties,
    })
}

/// Whether a script-tag body is `"onMetaData", …` once one `@setDataFrame` wrapper is
/// stripped, as [`parse_metadata`] reads it; `false` for `onCuePoint`, `onTextData` and other
/// script data. Only the name is decoded, so a driver can route a tag without parsing it.
pub fn is_on_metadata(script_body: &[u8]) -> bool {
    let name = Decoder::new(strip_prefix(script_body)).next_value();
    matches!(name, Ok(Some(ref name)) if name.as_str() == Some("onMetaData"))
}

fn lookup<'a>(properties: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    properties.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// A `videocodecid`/`audiocodecid` value.
enum CodecId {
    Number(f64),
    FourCc(FourCc),
}

impl CodecId {
    /// A small number is a legacy id; a large one is a FourCC packed big-endian, as OBS
    /// writes it for E-RTMP codecs.
    fn fourcc(&self) -> Result<FourCc, u8> {
        match *self {
            CodecId::FourCc(fourcc) => Ok(fourcc),
            CodecId::Number(n) if (0.0..16.0).contains(&n) && n.fract() == 0.0 => Err(n as u8),
            CodecId::Number(n) if (0.0..=f64::from(u32::MAX)).contains(&n) && n.fract() == 0.0 => {
                Ok(FourCc((n as u32).to_be_bytes()))
            }
            CodecId::Number(_) => Ok(FourCc([0; 4])),
        }
    }

    fn video(self) -> Option<VideoCodec> {
        match self.fourcc() {
            Ok(FourCc([0, 0, 0, 0])) => None,
            Ok(fourcc) => Some(crate::video::video_codec_of(fourcc)),
            Err(id) => {
                // The legacy CodecID nibble, parsed as a key frame of that codec.
                crate::parse_video_tag(&[0x10 | id, 1, 0, 0, 0])
                    .ok()
                    .map(|info| info.codec)
            }
        }
    }

    fn audio(self) -> Option<AudioCodec> {
        match self.fourcc() {
            Ok(FourCc([0, 0, 0, 0])) => None,
            Ok(fourcc) => Some(crate::audio::audio_codec_of(fourcc)),
            Err(9) => None,
            Err(id) => crate::parse_audio_tag(&[id << 4, 1])
                .ok()
                .map(|info| info.codec),
        }
    }
}

/// `"@setDataFrame", "onMetaData", {…}` → `"onMetaData", {…}`: a zero-copy slice of the
/// same buffer. Bodies without the prefix come back unchanged.
///
/// Publishers wrap metadata in `@setDataFrame` to ask the server to store it; viewers must
/// get the bare `onMetaData` (SRS and nginx-rtmp strip it the same way).
pub fn strip_set_data_frame(script_body: Bytes) -> Bytes {
    let len = script_body.len() - strip_prefix(&script_body).len();
    script_body.slice(len..)
}

fn strip_prefix(body: &[u8]) -> &[u8] {
    body.strip_prefix(SET_DATA_FRAME).unwrap_or(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use onair_amf::encode_all;

    fn obs_metadata() -> Vec<Value> {
        vec![
            Value::from("@setDataFrame"),
            Value::from("onMetaData"),
            Value::EcmaArray(vec![
                ("duration".into(), Value::Number(0.0)),
                ("width".into(), Value::Number(1920.0)),
                ("height".into(), Value::Number(1080.0)),
                ("videodatarate".into(), Value::Number(6000.0)),
                ("framerate".into(), Value::Number(60.0)),
                (
                    "videocodecid".into(),
                    Value::Number(f64::from(u32::from_be_bytes(*b"hvc1"))),
                ),
                ("audiodatarate".into(), Value::Number(160.0)),
                ("audiosamplerate".into(), Value::Number(48000.0)),
                ("audiosamplesize".into(), Value::Number(16.0)),
                ("audiochannels".into(), Value::Number(2.0)),
                ("stereo".into(), Value::Boolean(true)),
                ("audiocodecid".into(), Value::Number(10.0)),
                (
                    "encoder".into(),
                    Value::from("obs-output module (libobs version 30.1.2)"),
                ),
                ("filesize".into(), Value::Number(0.0)),
            ]),
        ]
    }

    #[test]
    fn parses_obs_metadata_with_set_data_frame() {
        let body = encode_all(&obs_metadata());
        let meta = parse_metadata(&body).unwrap();
        assert_eq!(meta.width, Some(1920.0));
        assert_eq!(meta.height, Some(1080.0));
        assert_eq!(meta.framerate, Some(60.0));
        assert_eq!(meta.videodatarate, Some(6000.0));
        assert_eq!(meta.audiodatarate, Some(160.0));
        assert_eq!(meta.audiosamplerate, Some(48000.0));
        assert_eq!(meta.stereo, Some(true));
        assert_eq!(meta.duration, Some(0.0));
        assert_eq!(meta.video_codec, Some(VideoCodec::Hevc));
        assert_eq!(meta.audio_codec, Some(AudioCodec::Aac));
        assert_eq!(
            meta.encoder.as_deref(),
            Some("obs-output module (libobs version 30.1.2)")
        );
        assert_eq!(meta.properties.len(), 14);
    }

    #[test]
    fn parses_bare_on_metadata_with_an_object_and_ffmpeg_ids() {
        let body = encode_all(&[
            Value::from("onMetaData"),
            Value::object([
                ("width", Value::Number(640.0)),
                ("videocodecid", Value::Number(7.0)),
                ("audiocodecid", Value::from("Opus")),
                ("height", Value::from("not a number")),
            ]),
        ]);
        let meta = parse_metadata(&body).unwrap();
        assert_eq!(meta.width, Some(640.0));
        assert_eq!(meta.height, None);
        assert_eq!(meta.video_codec, Some(VideoCodec::H264));
        assert_eq!(meta.audio_codec, Some(AudioCodec::Opus));
        assert_eq!(meta.encoder, None);
    }

    #[test]
    fn rejects_other_script_data() {
        let other = encode_all(&[
            Value::from("onCuePoint"),
            Value::object([("name", Value::from("x"))]),
        ]);
        assert!(
            matches!(parse_metadata(&other), Err(FlvError::NotMetadata { name }) if name == "onCuePoint")
        );
        let number = encode_all(&[Value::Number(1.0)]);
        assert!(
            matches!(parse_metadata(&number), Err(FlvError::NotMetadata { name }) if name.is_empty())
        );
        let bare = encode_all(&[Value::from("onMetaData")]);
        assert!(matches!(
            parse_metadata(&bare),
            Err(FlvError::MissingMetadataObject)
        ));
        let not_object = encode_all(&[Value::from("onMetaData"), Value::Number(3.0)]);
        assert!(matches!(
            parse_metadata(&not_object),
            Err(FlvError::MissingMetadataObject)
        ));
        assert!(matches!(
            parse_metadata(&[0x02, 0x00]),
            Err(FlvError::Amf(_))
        ));
    }

    #[test]
    fn is_on_metadata_reads_only_the_name_after_one_wrapper() {
        assert!(is_on_metadata(&encode_all(&obs_metadata())));
        assert!(is_on_metadata(&encode_all(&obs_metadata()[1..])));
        // The name alone is enough: parse_metadata would say the object is missing.
        assert!(is_on_metadata(&encode_all(&[Value::from("onMetaData")])));
        let long = encode_all(&[Value::LongString("onMetaData".into()), Value::Null]);
        assert!(is_on_metadata(&long));

        let cue = encode_all(&[Value::from("@setDataFrame"), Value::from("onCuePoint")]);
        assert!(!is_on_metadata(&cue));
        assert!(!is_on_metadata(&encode_all(&[Value::from("onTextData")])));
        let wrapper_only = encode_all(&[Value::from("@setDataFrame")]);
        assert!(!is_on_metadata(&wrapper_only));
        // One wrapper is stripped, as publishers send one; a second is not metadata.
        let twice = encode_all(&[
            Value::from("@setDataFrame"),
            Value::from("@setDataFrame"),
            Value::from("onMetaData"),
        ]);
        assert!(!is_on_metadata(&twice));
        assert!(!is_on_metadata(&encode_all(&[Value::Number(1.0)])));
        assert!(!is_on_metadata(&[]));
        // A name cut short is a decode error, not metadata.
        let cut = encode_all(&[Value::from("onMetaData")]).slice(..5);
        assert!(!is_on_metadata(&cut));
    }

    #[test]
    fn strip_set_data_frame_is_a_zero_copy_slice() {
        let values = obs_metadata();
        let body = encode_all(&values);
        let stripped = strip_set_data_frame(body.clone());
        assert_eq!(stripped, encode_all(&values[1..]));
        assert_eq!(stripped.as_ptr(), body[16..].as_ptr());
        // Already bare: unchanged, same buffer.
        let again = strip_set_data_frame(stripped.clone());
        assert_eq!(again.as_ptr(), stripped.as_ptr());
        assert_eq!(again.len(), stripped.len());
        assert_eq!(strip_set_data_frame(Bytes::new()), Bytes::new());
        assert_eq!(parse_metadata(&stripped).unwrap().width, Some(1920.0));
    }
}
