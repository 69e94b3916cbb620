//! From the length-prefixed NAL units of FLV (ISO/IEC 14496-15 "AVCC"/"HVCC" samples) to
//! the Annex-B byte stream that MPEG-TS carries (H.264 Annex B, H.265 Annex B), with an
//! access unit delimiter per picture and the parameter sets before every IDR picture.

use bytes::Bytes;
use onair_flv::FlvError;

/// The four-byte Annex-B start code.
const START_CODE: &[u8] = &[0, 0, 0, 1];
/// H.264 access unit delimiter (NAL type 9), `primary_pic_type` 7 ("any slice type").
const H264_AUD: &[u8] = &[0, 0, 0, 1, 0x09, 0xF0];
/// H.265 access unit delimiter (NAL type 35, layer 0, TemporalId 0), `pic_type` 2 (any).
const HEVC_AUD: &[u8] = &[0, 0, 0, 1, 0x46, 0x01, 0x50];

/// Which NAL unit syntax a stream uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NalCodec {
    /// H.264: one-byte NAL header, type in the low five bits.
    H264,
    /// H.265: two-byte NAL header, type in bits 1..7 of the first byte.
    Hevc,
}

impl NalCodec {
    fn nal_type(self, nal: &[u8]) -> Option<u8> {
        let &first = nal.first()?;
        Some(match self {
            NalCodec::H264 => first & 0x1F,
            NalCodec::Hevc => (first >> 1) & 0x3F,
        })
    }

    fn is_aud(self, nal_type: u8) -> bool {
        match self {
            NalCodec::H264 => nal_type == 9,
            NalCodec::Hevc => nal_type == 35,
        }
    }

    fn is_sps(self, nal_type: u8) -> bool {
        match self {
            NalCodec::H264 => nal_type == 7,
            NalCodec::Hevc => nal_type == 33,
        }
    }

    /// An IDR picture (H.264 type 5) or an IRAP picture (H.265 types 16..=21).
    fn is_random_access(self, nal_type: u8) -> bool {
        match self {
            NalCodec::H264 => nal_type == 5,
            NalCodec::Hevc => (16..=21).contains(&nal_type),
        }
    }
}

/// Why a decoder configuration record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The `AVCDecoderConfigurationRecord` did not parse.
    #[error("AVC decoder configuration: {0}")]
    Avc(#[from] FlvError),
    /// The `HEVCDecoderConfigurationRecord` ended before a field it declares.
    #[error("HEVCDecoderConfigurationRecord: needs {needed} bytes, only {available} present")]
    HevcTruncated {
        /// Bytes needed from the start of the record.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// `configurationVersion` is not 1.
    #[error("HEVCDecoderConfigurationRecord version {version}, expected 1")]
    HevcVersion {
        /// The version byte.
        version: u8,
    },
    /// The record holds no SPS, so no picture could be decoded from our output.
    #[error("{codec:?} decoder configuration has no sequence parameter set")]
    NoSps {
        /// The codec of the record.
        codec: NalCodec,
    },
}

/// Why a coded sample could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NalError {
    /// A NAL unit's length prefix runs past the end of the sample.
    #[error("NAL unit at offset {offset} declares {length} bytes, only {available} remain")]
    LengthPastEnd {
        /// Offset of the length prefix in the sample.
        offset: usize,
        /// The declared length (or the prefix size, for a cut-off prefix).
        length: usize,
        /// Bytes left after the prefix.
        available: usize,
    },
}

/// The parameter sets and NAL length size of a stream, from its sequence header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterSets {
    /// The NAL syntax.
    pub codec: NalCodec,
    /// Bytes in each sample's NAL length prefix (1 to 4).
    pub nal_length_size: u8,
    /// The parameter sets in decoding order (VPS, SPS, PPS for HEVC; SPS, PPS for H.264),
    /// without start codes.
    pub sets: Vec<Bytes>,
}

impl ParameterSets {
    /// From an `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §5.3.3.1).
    pub fn from_avc_record(record: &[u8]) -> Result<Self, ConfigError> {
        let config = onair_flv::parse_avc_config(record)?;
        if config.sps.is_empty() {
            return Err(ConfigError::NoSps {
                codec: NalCodec::H264,
            });
        }
        let mut sets = config.sps;
        sets.extend(config.pps);
        Ok(ParameterSets {
            codec: NalCodec::H264,
            nal_length_size: config.nal_length_size,
            sets,
        })
    }

    /// From an `HEVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §8.3.3.1): the
    /// 22-byte fixed part, `lengthSizeMinusOne` in byte 21, then `numOfArrays` arrays of
    /// NAL units. VPS (32), SPS (33) and PPS (34) are kept, in that order; SEI arrays are
    /// not repeated before IDRs.
    pub fn from_hevc_record(record: &[u8]) -> Result<Self, ConfigError> {
        let truncated = |needed: usize| ConfigError::HevcTruncated {
            needed,
            available: record.len(),
        };
        if record.len() < 23 {
            return Err(truncated(23));
        }
        if record[0] != 1 {
            return Err(ConfigError::HevcVersion { version: record[0] });
        }
        let nal_length_size = (record[21] & 0x03) + 1;
        let mut by_type: [Vec<Bytes>; 3] = Default::default();
        let mut pos = 23;
        for _ in 0..record[22] {
            let header = *record.get(pos).ok_or(truncated(pos + 1))?;
            let count = match record.get(pos + 1..pos + 3) {
                Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
                _ => return Err(truncated(pos + 3)),
            };
            pos += 3;
            let nal_type = header & 0x3F;
            for _ in 0..count {
                let len = match record.get(pos..pos + 2) {
                    Some(&[hi, lo]) => usize::from(u16::from_be_bytes([hi, lo])),
                    _ => return Err(truncated(pos + 2)),
                };
                let nal = record
                    .get(pos + 2..pos + 2 + len)
                    .ok_or(truncated(pos + 2 + len))?;
                if let Some(slot) = (nal_type as usize).checked_sub(32).filter(|&i| i < 3) {
                    by_type[slot].push(Bytes::copy_from_slice(nal));
                }
                pos += 2 + len;
            }
        }
        if by_type[1].is_empty() {
            return Err(ConfigError::NoSps {
                codec: NalCodec::Hevc,
            });
        }
        Ok(ParameterSets {
            codec: NalCodec::Hevc,
            nal_length_size,
            sets: by_type.into_iter().flatten().collect(),
        })
    }
}

/// Appends to `parts` the Annex-B form of one length-prefixed `sample`: an access unit
/// delimiter, then (for a keyframe or a sample holding an IDR/IRAP picture, unless the
/// sample carries its own SPS) the parameter sets, then each NAL unit behind a start code.
/// The publisher's own delimiters are dropped so there is exactly one per access unit.
/// Empty NAL units are skipped.
///
/// `parts` borrows from `sample` and `params`; nothing is copied. On error `parts` is left
/// as it was.
pub fn to_annex_b<'a>(
    params: &'a ParameterSets,
    sample: &'a [u8],
    keyframe: bool,
    parts: &mut Vec<&'a [u8]>,
) -> Result<(), NalError> {
    let codec = params.codec;
    let prefix = usize::from(params.nal_length_size);
    let start = parts.len();
    parts.push(match codec {
        NalCodec::H264 => H264_AUD,
        NalCodec::Hevc => HEVC_AUD,
    });
    let sets_at = parts.len();
    let mut has_sps = false;
    let mut random_access = keyframe;
    let mut pos = 0;
    while pos < sample.len() {
        let Some(len_bytes) = sample.get(pos..pos + prefix) else {
            parts.truncate(start);
            return Err(NalError::LengthPastEnd {
                offset: pos,
                length: prefix,
                available: sample.len() - pos,
            });
        };
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let body = pos + prefix;
        let Some(nal) = sample.get(body..body.saturating_add(len)) else {
            parts.truncate(start);
            return Err(NalError::LengthPastEnd {
                offset: pos,
                length: len,
                available: sample.len() - body,
            });
        };
        pos = body + len;
        let Some(nal_type) = codec.nal_type(nal) else {
            continue;
        };
        if codec.is_aud(nal_type) {
            continue;
        }
        has_sps |= codec.is_sps(nal_type);
        random_access |= codec.is_random_access(nal_type);
        parts.push(START_CODE);
        parts.push(nal);
    }
    if random_access && !has_sps {
        let sets = params.sets.iter().flat_map(|set| [START_CODE, &set[..]]);
        parts.splice(sets_at..sets_at, sets);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avc_params() -> ParameterSets {
        // AVCDecoderConfigurationRecord: High 4.0, 4-byte lengths, SPS 67640028, PPS 68ee3c80.
        let record =
            hex::decode("01640028ffe1000467640028010004 68ee3c80".replace(' ', "")).unwrap();
        ParameterSets::from_avc_record(&record).unwrap()
    }

    fn convert(params: &ParameterSets, sample: &str, keyframe: bool) -> Result<String, NalError> {
        let sample = hex::decode(sample.replace(' ', "")).unwrap();
        let mut parts = Vec::new();
        to_annex_b(params, &sample, keyframe, &mut parts)?;
        Ok(hex::encode(parts.concat()))
    }

    #[test]
    fn h264_keyframe_gets_aud_sps_pps_then_slices() {
        let params = avc_params();
        // A publisher AUD (dropped), an IDR slice, an empty NAL (skipped).
        let out = convert(&params, "00000002 09f0 00000003 658880 00000000", true).unwrap();
        assert_eq!(
            out,
            "0000000109f0 0000000167640028 0000000168ee3c80 00000001658880".replace(' ', "")
        );
        // A non-key picture: only the delimiter.
        let out = convert(&params, "00000002 4188", false).unwrap();
        assert_eq!(out, "0000000109f0 000000014188".replace(' ', ""));
        // An IDR NAL in a frame the tag did not mark as key still gets the parameter sets.
        let out = convert(&params, "00000001 65", false).unwrap();
        assert_eq!(
            out,
            "0000000109f0 0000000167640028 0000000168ee3c80 0000000165".replace(' ', "")
        );
        // In-band SPS/PPS are not duplicated.
        let out = convert(&params, "00000002 6764 00000002 68ee 00000001 65", true).unwrap();
        assert_eq!(
            out,
            "0000000109f0 000000016764 0000000168ee 0000000165".replace(' ', "")
        );
    }

    #[test]
    fn bad_lengths_are_errors_and_leave_parts_untouched() {
        let params = avc_params();
        assert_eq!(
            convert(&params, "00000009 6588", true),
            Err(NalError::LengthPastEnd {
                offset: 0,
                length: 9,
                available: 2
            })
        );
        assert_eq!(
            convert(&params, "00000001 65 0000", true),
            Err(NalError::LengthPastEnd {
                offset: 5,
                length: 4,
                available: 2
            })
        );
        let mut parts = vec![&b"kept"[..]];
        let sample = [0, 0, 0, 5, 1];
        assert!(to_annex_b(&params, &sample, true, &mut parts).is_err());
        assert_eq!(parts, vec![&b"kept"[..]]);
    }

    #[test]
    fn hevc_record_and_irap_sample() {
        // 22 fixed bytes (lengthSizeMinusOne 3 in byte 21), 3 arrays: VPS, SPS, PPS, and an
        // SEI array that is not kept.
        let record = hex::decode(
            "01 0160000000900000000000 5df000fcfdf8f800000f 04
             a0 0001 0002 4001
             a1 0001 0003 420101
             a2 0001 0002 4401
             27 0001 0002 4e01"
                .replace([' ', '\n'], ""),
        )
        .unwrap();
        let params = ParameterSets::from_hevc_record(&record).unwrap();
        assert_eq!(params.nal_length_size, 4);
        assert_eq!(
            params.sets,
            vec![
                Bytes::from_static(&[0x40, 0x01]),
                Bytes::from_static(&[0x42, 0x01, 0x01]),
                Bytes::from_static(&[0x44, 0x01]),
            ]
        );
        // IDR_W_RADL (19): AUD 35, VPS, SPS, PPS, slice.
        let out = convert(&params, "00000003 260188", false).unwrap();
        assert_eq!(
            out,
            "00000001460150 000000014001 00000001420101 000000014401 00000001260188"
                .replace(' ', "")
        );
        assert!(matches!(
            ParameterSets::from_hevc_record(&record[..30]),
            Err(ConfigError::HevcTruncated { .. })
        ));
        let mut bad = record.clone();
        bad[0] = 0;
        assert_eq!(
            ParameterSets::from_hevc_record(&bad),
            Err(ConfigError::HevcVersion { version: 0 })
        );
        // Only a PPS array: nothing to decode with.
        let no_sps = hex::decode(
            format!("{}01 a2 0001 0002 4401", hex::encode(&record[..22])).replace(' ', ""),
        )
        .unwrap();
        assert_eq!(
            ParameterSets::from_hevc_record(&no_sps),
            Err(ConfigError::NoSps {
                codec: NalCodec::Hevc
            })
        );
    }
}
