//! Decoder configuration records carried by sequence-header tags: AVC
//! (ISO/IEC 14496-15 §5.3.3.1), HEVC detection (§8.3.3.1) and AAC `AudioSpecificConfig`
//! (ISO/IEC 14496-3 §1.6.2.1).

use bytes::Bytes;

use crate::FlvError;

/// An `AVCDecoderConfigurationRecord` (the body of an AVC sequence header after its
/// 5-byte tag header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    /// `AVCProfileIndication` (66 baseline, 77 main, 100 high, …).
    pub profile: u8,
    /// `AVCLevelIndication` (31 = level 3.1).
    pub level: u8,
    /// Bytes in each NAL unit's length prefix (`lengthSizeMinusOne + 1`: 1, 2 or 4).
    pub nal_length_size: u8,
    /// Sequence parameter sets, without length prefixes.
    pub sps: Vec<Bytes>,
    /// Picture parameter sets, without length prefixes.
    pub pps: Vec<Bytes>,
    /// Picture width in pixels after cropping, from the first SPS, if it parses.
    pub width: Option<u32>,
    /// Picture height in pixels after cropping, from the first SPS, if it parses.
    pub height: Option<u32>,
}

/// Parses an `AVCDecoderConfigurationRecord`.
///
/// Trailing bytes (the High-profile chroma/bit-depth extension) are ignored. Width and
/// height come from the first SPS when it parses (H.264 §7.3.2.1.1); an SPS we cannot read
/// leaves them `None` rather than failing, since they only feed statistics.
pub fn parse_avc_config(record: &[u8]) -> Result<AvcConfig, FlvError> {
    const WHAT: &str = "AVCDecoderConfigurationRecord";
    if record.len() < 6 {
        return Err(FlvError::Truncated {
            what: WHAT,
            needed: 6,
            available: record.len(),
        });
    }
    if record[0] != 1 {
        return Err(FlvError::UnsupportedConfigVersion {
            what: WHAT,
            version: record[0],
        });
    }
    let mut pos = 5;
    let sps_count = record[5] & 0x1F;
    pos += 1;
    let mut sps = Vec::with_capacity(usize::from(sps_count));
    for _ in 0..sps_count {
        let (nal, next) = length_prefixed(record, pos, WHAT)?;
        sps.push(Bytes::copy_from_slice(nal));
        pos = next;
    }
    let pps_count = *record.get(pos).ok_or(FlvError::Truncated {
        what: WHAT,
        needed: pos + 1,
        available: record.len(),
    })?;
    pos += 1;
    let mut pps = Vec::new();
    for _ in 0..pps_count {
        let (nal, next) = length_prefixed(record, pos, WHAT)?;
        pps.push(Bytes::copy_from_slice(nal));
        pos = next;
    }
    let dimensions = sps.first().and_then(|nal| sps_dimensions(nal));
    Ok(AvcConfig {
        profile: record[1],
        level: record[3],
        nal_length_size: (record[4] & 0x03) + 1,
        sps,
        pps,
        width: dimensions.map(|d| d.0),
        height: dimensions.map(|d| d.1),
    })
}

/// A 16-bit length and that many bytes, starting at `pos`. Returns the bytes and the
/// position after them.
fn length_prefixed<'a>(
    record: &'a [u8],
    pos: usize,
    what: &'static str,
) -> Result<(&'a [u8], usize), FlvError> {
    let truncated = |needed| FlvError::Truncated {
        what,
        needed,
        available: record.len(),
    };
    let len = match record.get(pos..pos + 2) {
        Some(&[hi, lo]) => usize::from(u16::from_be_bytes([hi, lo])),
        _ => return Err(truncated(pos + 2)),
    };
    let end = pos + 2 + len;
    let nal = record.get(pos + 2..end).ok_or(truncated(end))?;
    Ok((nal, end))
}

/// Whether `record` is an `HEVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §8.3.3.1).
///
/// Used to catch HEVC mis-signalled as AVC (CodecID 7) by old OBS builds: the record has
/// `configurationVersion` 1, its NAL arrays parse exactly within the record, and it holds an
/// SPS array (NAL type 33) whose first NAL unit's own header says type 33. An
/// `AVCDecoderConfigurationRecord` fails the array walk or the NAL header check.
pub fn is_hevc_config(record: &[u8]) -> bool {
    const WHAT: &str = "HEVCDecoderConfigurationRecord";
    if record.len() < 23 || record[0] != 1 {
        return false;
    }
    let arrays = record[22];
    let mut pos = 23;
    let mut has_sps = false;
    for _ in 0..arrays {
        let Some(&header) = record.get(pos) else {
            return false;
        };
        let nal_type = header & 0x3F;
        let count = match record.get(pos + 1..pos + 3) {
            Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
            _ => return false,
        };
        pos += 3;
        for _ in 0..count {
            let Ok((nal, next)) = length_prefixed(record, pos, WHAT) else {
                return false;
            };
            // HEVC NAL header: forbidden_zero_bit, nal_unit_type (6 bits), … (H.265 §7.3.1.2).
            if nal_type == 33 && nal.first().map(|b| (b >> 1) & 0x3F) == Some(33) {
                has_sps = true;
            }
            pos = next;
        }
    }
    has_sps
}

/// An AAC `AudioSpecificConfig` (the body of an AAC sequence header after its 2-byte tag
/// header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AacConfig {
    /// `audioObjectType` (2 = AAC-LC, 5 = SBR/HE-AAC, 29 = PS/HE-AACv2), escape-decoded.
    pub object_type: u8,
    /// Output sample rate in Hz: for explicitly signalled SBR/PS (object type 5 or 29) the
    /// extension rate, otherwise the core rate.
    pub sample_rate: u32,
    /// `channelConfiguration` (1–6 channels, 7 = 7.1 i.e. 8 channels, 0 = defined in a
    /// program config element and reported as 0).
    pub channels: u8,
}

/// Sampling frequencies by `samplingFrequencyIndex` (ISO/IEC 14496-3 Table 1.18).
const AAC_SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Parses an `AudioSpecificConfig`: object type (with the 31 escape), sampling frequency
/// (index or explicit 24-bit rate), channel configuration, and for SBR/PS the extension
/// sampling frequency.
pub fn parse_aac_config(asc: &[u8]) -> Result<AacConfig, FlvError> {
    let mut bits = BitReader::new(asc, "AudioSpecificConfig");
    let object_type = read_object_type(&mut bits)?;
    let mut sample_rate = read_sample_rate(&mut bits)?;
    let channel_config = bits.bits(4)? as u8;
    let channels = match channel_config {
        7 => 8,
        other => other,
    };
    if object_type == 5 || object_type == 29 {
        // §1.6.2.1: explicit SBR signalling carries the output (extension) rate next.
        sample_rate = read_sample_rate(&mut bits)?;
        let _underlying = read_object_type(&mut bits)?;
    }
    // The leading object type is reported: it is what the stream announces (HE-AAC stays
    // 5 or 29 rather than the underlying 2).
    Ok(AacConfig {
        object_type,
        sample_rate,
        channels,
    })
}

fn read_object_type(bits: &mut BitReader<'_>) -> Result<u8, FlvError> {
    let object_type = bits.bits(5)? as u8;
    if object_type == 31 {
        // `audioObjectTypeExt`: 32 + 6 bits, at most 95.
        return Ok(32 + bits.bits(6)? as u8);
    }
    Ok(object_type)
}

fn read_sample_rate(bits: &mut BitReader<'_>) -> Result<u32, FlvError> {
    let index = bits.bits(4)? as u8;
    match index {
        15 => bits.bits(24),
        // Indexes 0..=12 are in the table.
        0..=12 => Ok(AAC_SAMPLE_RATES[usize::from(index)]),
        index => Err(FlvError::ReservedSamplingIndex { index }),
    }
}

/// Width and height from an H.264 SPS NAL unit (with its 1-byte NAL header), or `None` if
/// it does not parse or the numbers are implausible.
fn sps_dimensions(nal: &[u8]) -> Option<(u32, u32)> {
    // Drop emulation-prevention bytes (00 00 03 → 00 00, H.264 §7.4.1) so the RBSP reads
    // as written.
    let mut rbsp = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &byte in nal.get(1..)? {
        if zeros >= 2 && byte == 3 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        rbsp.push(byte);
    }
    let mut r = BitReader::new(&rbsp, "SPS");
    let profile_idc = r.bits(8).ok()?;
    r.bits(16).ok()?; // constraint flags, level_idc
    r.ue().ok()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue().ok()?;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bits(1).ok()? == 1;
        }
        r.ue().ok()?; // bit_depth_luma_minus8
        r.ue().ok()?; // bit_depth_chroma_minus8
        r.bits(1).ok()?; // qpprime_y_zero_transform_bypass_flag
        if r.bits(1).ok()? == 1 {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bits(1).ok()? == 1 {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue().ok()?; // log2_max_frame_num_minus4
    match r.ue().ok()? {
        0 => {
            r.ue().ok()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.bits(1).ok()?;
            r.se().ok()?;
            r.se().ok()?;
            let cycle = r.ue().ok()?;
            if cycle > 255 {
                return None;
            }
            for _ in 0..cycle {
                r.se().ok()?;
            }
        }
        _ => {}
    }
    r.ue().ok()?; // max_num_ref_frames
    r.bits(1).ok()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = r.ue().ok()?.checked_add(1)?;
    let height_map_units = r.ue().ok()?.checked_add(1)?;
    let frame_mbs_only = r.bits(1).ok()?;
    if frame_mbs_only == 0 {
        r.bits(1).ok()?; // mb_adaptive_frame_field_flag
    }
    r.bits(1).ok()?; // direct_8x8_inference_flag
    let (mut crop_x, mut crop_y) = (0, 0);
    if r.bits(1).ok()? == 1 {
        let left = r.ue().ok()?;
        let right = r.ue().ok()?;
        let top = r.ue().ok()?;
        let bottom = r.ue().ok()?;
        // §7.4.2.1.1: CropUnitX/Y depend on ChromaArrayType and frame_mbs_only_flag.
        let chroma_array_type = if separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        let (sub_width, sub_height) = match chroma_array_type {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let (unit_x, unit_y) = if chroma_array_type == 0 {
            (1, 2 - frame_mbs_only)
        } else {
            (sub_width, sub_height * (2 - frame_mbs_only))
        };
        crop_x = left.checked_add(right)?.checked_mul(unit_x)?;
        crop_y = top.checked_add(bottom)?.checked_mul(unit_y)?;
    }
    let width = width_mbs.checked_mul(16)?.checked_sub(crop_x)?;
    let height = height_map_units
        .checked_mul(16)?
        .checked_mul(2 - frame_mbs_only)?
        .checked_sub(crop_y)?;
    // H.264 level 6.2 tops out at 139264 macroblocks per frame; anything beyond 16384
    // pixels a side is a misparse.
    if width == 0 || height == 0 || width > 16384 || height > 16384 {
        return None;
    }
    Some((width, height))
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            let delta = i64::from(r.se().ok()?);
            next = (last + delta + 256).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

/// A big-endian bit reader with exp-Golomb codes (H.264 §9.1).
struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8], what: &'static str) -> Self {
        BitReader { data, bit: 0, what }
    }

    /// Up to 32 bits.
    fn bits(&mut self, count: u32) -> Result<u32, FlvError> {
        debug_assert!(count <= 32);
        let end = self.bit + count as usize;
        if end > self.data.len() * 8 {
            return Err(FlvError::Truncated {
                what: self.what,
                needed: end.div_ceil(8),
                available: self.data.len(),
            });
        }
        let mut value = 0u64;
        for i in self.bit..end {
            // `i < end <= data.len() * 8`, checked above.
            let bit = (self.data[i / 8] >> (7 - i % 8)) & 1;
            value = (value << 1) | u64::from(bit);
        }
        self.bit = end;
        Ok(value as u32)
    }

    /// `ue(v)`, limited to 31 leading zeros (values below 2^32 − 1).
    fn ue(&mut self) -> Result<u32, FlvError> {
        let mut zeros = 0;
        while self.bits(1)? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(FlvError::Truncated {
                    what: self.what,
                    needed: self.data.len() + 1,
                    available: self.data.len(),
                });
            }
        }
        if zeros == 0 {
            return Ok(0);
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }

    /// `se(v)`.
    fn se(&mut self) -> Result<i32, FlvError> {
        let k = i64::from(self.ue()?);
        let value = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        Ok(value as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(hex_str: &str) -> Vec<u8> {
        hex::decode(hex_str.replace(' ', "")).unwrap()
    }

    /// Test-only bit writer for building SPS NAL units.
    #[derive(Default)]
    struct BitWriter {
        bits: Vec<bool>,
    }

    impl BitWriter {
        fn put(&mut self, value: u32, count: u32) {
            for i in (0..count).rev() {
                self.bits.push((value >> i) & 1 == 1);
            }
        }

        fn ue(&mut self, value: u32) {
            let coded = u64::from(value) + 1;
            let len = 64 - coded.leading_zeros();
            self.put(0, len - 1);
            for i in (0..len).rev() {
                self.bits.push((coded >> i) & 1 == 1);
            }
        }

        /// RBSP trailing bits, then bytes with emulation prevention, behind NAL header 0x67.
        fn into_nal(mut self) -> Vec<u8> {
            self.bits.push(true);
            while !self.bits.len().is_multiple_of(8) {
                self.bits.push(false);
            }
            let rbsp: Vec<u8> = self
                .bits
                .chunks(8)
                .map(|byte| byte.iter().fold(0u8, |acc, &b| (acc << 1) | u8::from(b)))
                .collect();
            let mut nal = vec![0x67];
            let mut zeros = 0;
            for byte in rbsp {
                if zeros >= 2 && byte <= 3 {
                    nal.push(3);
                    zeros = 0;
                }
                zeros = if byte == 0 { zeros + 1 } else { 0 };
                nal.push(byte);
            }
            nal
        }
    }

    /// An SPS for `profile` with the given macroblock sizes and optional crop.
    fn make_sps(
        profile: u32,
        width_mbs: u32,
        height_units: u32,
        frame_mbs_only: bool,
        crop: Option<[u32; 4]>,
    ) -> Vec<u8> {
        make_sps_with(
            profile,
            40,
            0,
            width_mbs,
            height_units,
            frame_mbs_only,
            crop,
        )
    }

    fn make_sps_with(
        profile: u32,
        level: u32,
        sps_id: u32,
        width_mbs: u32,
        height_units: u32,
        frame_mbs_only: bool,
        crop: Option<[u32; 4]>,
    ) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.put(profile, 8);
        w.put(0, 8); // constraint flags
        w.put(level, 8);
        w.ue(sps_id);
        if profile == 100 {
            w.ue(1); // chroma_format_idc 4:2:0
            w.ue(0);
            w.ue(0);
            w.put(0, 1);
            w.put(1, 1); // seq_scaling_matrix_present_flag
            for i in 0..8 {
                // List 0 present with deltas, the rest absent.
                w.put(u32::from(i == 0), 1);
                if i == 0 {
                    // Deltas of +1 (se 1 = ue 1) so nextScale never reaches 0, which
                    // would end the list early (§7.3.2.1.1.1).
                    for _ in 0..16 {
                        w.ue(1);
                    }
                }
            }
        }
        w.ue(0); // log2_max_frame_num_minus4
        w.ue(1); // pic_order_cnt_type 1
        w.put(0, 1);
        w.ue(0);
        w.ue(0);
        w.ue(2); // num_ref_frames_in_pic_order_cnt_cycle
        w.ue(1);
        w.ue(2);
        w.ue(4); // max_num_ref_frames
        w.put(0, 1);
        w.ue(width_mbs - 1);
        w.ue(height_units - 1);
        w.put(u32::from(frame_mbs_only), 1);
        if !frame_mbs_only {
            w.put(0, 1);
        }
        w.put(1, 1);
        match crop {
            Some(offsets) => {
                w.put(1, 1);
                for offset in offsets {
                    w.ue(offset);
                }
            }
            None => w.put(0, 1),
        }
        w.put(0, 1); // vui_parameters_present_flag
        w.into_nal()
    }

    fn avcc(sps: &[u8], pps: &[u8]) -> Vec<u8> {
        let mut record = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
        record.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        record.extend_from_slice(sps);
        record.push(1);
        record.extend_from_slice(&(pps.len() as u16).to_be_bytes());
        record.extend_from_slice(pps);
        record
    }

    #[test]
    fn parses_avcc_with_dimensions() {
        let sps = make_sps(100, 80, 45, true, None);
        let config = parse_avc_config(&avcc(&sps, &[0x68, 0xeb, 0xe3, 0xcb])).unwrap();
        assert_eq!(config.profile, 100);
        assert_eq!(config.level, 40);
        assert_eq!(config.nal_length_size, 4);
        assert_eq!(config.sps, vec![Bytes::from(sps)]);
        assert_eq!(&config.pps[0][..], &[0x68, 0xeb, 0xe3, 0xcb][..]);
        assert_eq!((config.width, config.height), (Some(1280), Some(720)));
    }

    #[test]
    fn cropping_and_field_coding() {
        // 1920x1088 coded, cropped by 8 lines (bottom offset 4 in 4:2:0 units) to 1080.
        let sps = make_sps(100, 120, 68, true, Some([0, 0, 0, 4]));
        let config = parse_avc_config(&avcc(&sps, &[0x68])).unwrap();
        assert_eq!((config.width, config.height), (Some(1920), Some(1080)));
        // Baseline (no chroma fields), interlaced: map units are field pairs, and the crop
        // unit doubles to 4 lines.
        let sps = make_sps(66, 45, 18, false, Some([2, 2, 0, 2]));
        let config = parse_avc_config(&avcc(&sps, &[0x68])).unwrap();
        assert_eq!(
            (config.width, config.height),
            (Some(720 - 8), Some(576 - 8))
        );
    }

    #[test]
    fn emulation_prevention_bytes_are_removed() {
        // Constraint flags 0, level 0 and sps id 63 (0000001000000) make `00 00 02`, which
        // the writer escapes as `00 00 03 02`; the reader must drop the 03.
        let sps = make_sps_with(66, 0, 63, 1, 1, true, Some([0, 0, 0, 0]));
        assert_eq!(&sps[..6], &[0x67, 66, 0, 0, 3, 2]);
        let config = parse_avc_config(&avcc(&sps, &[0x68])).unwrap();
        assert_eq!((config.width, config.height), (Some(16), Some(16)));
    }

    #[test]
    fn unreadable_sps_leaves_dimensions_unknown() {
        let config = parse_avc_config(&bytes("01 640028 ff e1 0002 6764 00")).unwrap();
        assert_eq!((config.width, config.height), (None, None));
        assert!(config.pps.is_empty());
    }

    #[test]
    fn avcc_errors_carry_values() {
        let err = parse_avc_config(&bytes("02 640028 ff e1")).unwrap_err();
        assert!(matches!(
            err,
            FlvError::UnsupportedConfigVersion { version: 2, .. }
        ));
        let err = parse_avc_config(&bytes("01 640028 ff e1 0010 6764")).unwrap_err();
        assert!(
            matches!(
                err,
                FlvError::Truncated {
                    needed: 24,
                    available: 10,
                    ..
                }
            ),
            "{err}"
        );
        assert!(parse_avc_config(&bytes("01 640028 ff")).is_err());
    }

    #[test]
    fn hevc_record_detection() {
        let hvcc = bytes(crate::video::tests::HVCC);
        assert!(is_hevc_config(&hvcc));
        assert!(!is_hevc_config(&avcc(
            &make_sps(100, 80, 45, true, None),
            &[0x68]
        )));
        // An SPS array whose NAL header disagrees is not HEVC.
        let mut wrong = hvcc.clone();
        let last = wrong.len() - 4;
        wrong[last] = 0x67;
        assert!(!is_hevc_config(&wrong));
        // Truncated arrays are not HEVC either.
        assert!(!is_hevc_config(&hvcc[..hvcc.len() - 1]));
    }

    #[test]
    fn aac_lc_he_aac_and_explicit_rates() {
        // AAC-LC, 44.1 kHz (index 4), stereo: 00010 0100 0010 000.
        assert_eq!(
            parse_aac_config(&[0x12, 0x10]).unwrap(),
            AacConfig {
                object_type: 2,
                sample_rate: 44100,
                channels: 2
            }
        );
        // AAC-LC 48 kHz mono: 00010 0011 0001 000.
        assert_eq!(
            parse_aac_config(&[0x11, 0x88]).unwrap(),
            AacConfig {
                object_type: 2,
                sample_rate: 48000,
                channels: 1
            }
        );
        // HE-AAC (5), core 24 kHz (6), stereo, extension 48 kHz (3), underlying LC (2):
        // 00101 0110 0010 0011 00010 → 2b 11 88 (+ padding).
        assert_eq!(
            parse_aac_config(&[0x2b, 0x11, 0x88, 0x00]).unwrap(),
            AacConfig {
                object_type: 5,
                sample_rate: 48000,
                channels: 2
            }
        );
        // Explicit rate 0x00bb80 = 48000: 00010 1111 <24 bits> 0010.
        let explicit = [0x17, 0x80, 0x5d, 0xc0, 0x10];
        assert_eq!(
            parse_aac_config(&explicit).unwrap(),
            AacConfig {
                object_type: 2,
                sample_rate: 48000,
                channels: 2
            }
        );
        // Escaped object type 31 + 6 bits (42 = USAC would be 32 + 10).
        let escaped = [0xf9, 0x48, 0x40];
        let config = parse_aac_config(&escaped).unwrap();
        assert_eq!(config.object_type, 42);
        // channelConfiguration 7 is 7.1.
        assert_eq!(parse_aac_config(&[0x12, 0x38]).unwrap().channels, 8);
    }

    #[test]
    fn aac_errors() {
        assert!(matches!(
            parse_aac_config(&[0x16, 0x90]),
            Err(FlvError::ReservedSamplingIndex { index: 13 })
        ));
        assert!(matches!(
            parse_aac_config(&[0x12]),
            Err(FlvError::Truncated { .. })
        ));
        assert!(matches!(
            parse_aac_config(&[]),
            Err(FlvError::Truncated { .. })
        ));
    }

    #[test]
    fn exp_golomb_reader() {
        // 1 | 010 | 011 | 00100 | 00101 → ue 0, 1, 2, 3, 4.
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data, "test");
        let values: Vec<u32> = (0..5).map(|_| r.ue().unwrap()).collect();
        assert_eq!(values, [0, 1, 2, 3, 4]);
        let mut r = BitReader::new(&data, "test");
        let signed: Vec<i32> = (0..5).map(|_| r.se().unwrap()).collect();
        assert_eq!(signed, [0, 1, -1, 2, -2]);
        // 40 zero bits never loop past the data.
        assert!(BitReader::new(&[0; 5], "test").ue().is_err());
    }
}
