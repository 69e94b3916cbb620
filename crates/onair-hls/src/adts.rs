//! ADTS framing for raw AAC frames (ISO/IEC 13818-7 §6.2, `adts_fixed_header` and
//! `adts_variable_header`), built from the stream's `AudioSpecificConfig`.

/// The ADTS header length without CRC (`protection_absent` = 1).
pub const ADTS_HEADER_LEN: usize = 7;
/// The largest `aac_frame_length` (13 bits), header included.
const MAX_FRAME_LEN: usize = (1 << 13) - 1;

/// Sampling frequencies by `sampling_frequency_index` (ISO/IEC 14496-3 Table 1.18).
const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Why an AAC stream cannot be carried in ADTS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdtsError {
    /// The `AudioSpecificConfig` did not parse.
    #[error("AudioSpecificConfig: {0}")]
    Config(#[from] onair_flv::FlvError),
    /// ADTS `profile` is two bits: only object types 1–4 (and SBR/PS over AAC-LC) fit.
    #[error("AAC object type {object_type} cannot be signalled in ADTS")]
    ObjectType {
        /// The `audioObjectType`.
        object_type: u8,
    },
    /// An explicit sampling rate that has no ADTS frequency index.
    #[error("sample rate {sample_rate} Hz has no ADTS sampling_frequency_index")]
    SampleRate {
        /// The rate in Hz.
        sample_rate: u32,
    },
    /// The frame does not fit the 13-bit `aac_frame_length`.
    #[error("AAC frame of {len} bytes exceeds ADTS's {max}-byte limit")]
    FrameTooLarge {
        /// The raw frame length.
        len: usize,
        /// The largest raw frame that fits.
        max: usize,
    },
}

/// The fixed part of every ADTS header of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AdtsConfig {
    /// `profile`: `audioObjectType` − 1 (1 = AAC-LC).
    pub profile: u8,
    /// `sampling_frequency_index`.
    pub frequency_index: u8,
    /// `channel_configuration`.
    pub channel_configuration: u8,
}

impl AdtsConfig {
    /// From an `AudioSpecificConfig` (ISO/IEC 14496-3 §1.6.2.1), validated with
    /// [`onair_flv::parse_aac_config`]. HE-AAC (object type 5 or 29 with explicit SBR
    /// signalling) is framed as its AAC-LC core at the core rate, as ffmpeg does; decoders
    /// find the SBR data implicitly.
    pub fn from_audio_specific_config(asc: &[u8]) -> Result<Self, AdtsError> {
        onair_flv::parse_aac_config(asc)?;
        // parse_aac_config accepted it, so the 5-bit object type and 4-bit index are there.
        let bits = u32::from_be_bytes([
            asc.first().copied().unwrap_or(0),
            asc.get(1).copied().unwrap_or(0),
            asc.get(2).copied().unwrap_or(0),
            asc.get(3).copied().unwrap_or(0),
        ]);
        let object_type = (bits >> 27) as u8;
        let profile = match object_type {
            1..=4 => object_type - 1,
            5 | 29 => 1,
            object_type => return Err(AdtsError::ObjectType { object_type }),
        };
        let mut frequency_index = ((bits >> 23) & 0x0F) as u8;
        let mut channel_configuration = ((bits >> 19) & 0x0F) as u8;
        if frequency_index == 15 {
            // An explicit 24-bit rate follows the index; channels come after it.
            let explicit = read_bits(asc, 9, 24);
            frequency_index = SAMPLE_RATES
                .iter()
                .position(|&rate| rate == explicit)
                .ok_or(AdtsError::SampleRate {
                    sample_rate: explicit,
                })? as u8;
            channel_configuration = read_bits(asc, 33, 4) as u8;
        }
        Ok(AdtsConfig {
            profile,
            frequency_index,
            channel_configuration,
        })
    }

    /// The largest raw frame one ADTS header can carry.
    pub const MAX_PAYLOAD: usize = MAX_FRAME_LEN - ADTS_HEADER_LEN;

    /// The 7-byte header for a raw frame of `payload_len` bytes.
    pub fn header(&self, payload_len: usize) -> Result<[u8; ADTS_HEADER_LEN], AdtsError> {
        if payload_len > Self::MAX_PAYLOAD {
            return Err(AdtsError::FrameTooLarge {
                len: payload_len,
                max: Self::MAX_PAYLOAD,
            });
        }
        let len = payload_len + ADTS_HEADER_LEN;
        Ok([
            0xFF,
            // syncword low bits, ID 0 (MPEG-4), layer 00, protection_absent 1.
            0xF1,
            (self.profile << 6)
                | ((self.frequency_index & 0x0F) << 2)
                | ((self.channel_configuration >> 2) & 0x01),
            ((self.channel_configuration & 0x03) << 6) | (len >> 11) as u8,
            (len >> 3) as u8,
            // adts_buffer_fullness 0x7FF: variable bit rate.
            (((len & 0x07) as u8) << 5) | 0x1F,
            // Buffer fullness low bits; number_of_raw_data_blocks_in_frame 0 (one block).
            0xFC,
        ])
    }
}

/// `count` (≤ 32) bits starting at bit `at`, reading zeros past the end.
fn read_bits(data: &[u8], at: usize, count: usize) -> u32 {
    (at..at + count).fold(0, |acc, bit| {
        let byte = data.get(bit / 8).copied().unwrap_or(0);
        (acc << 1) | u32::from((byte >> (7 - bit % 8)) & 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_for_aac_lc_44100_stereo() {
        let config = AdtsConfig::from_audio_specific_config(&[0x12, 0x10]).unwrap();
        assert_eq!(
            config,
            AdtsConfig {
                profile: 1,
                frequency_index: 4,
                channel_configuration: 2
            }
        );
        assert_eq!(hex::encode(config.header(10).unwrap()), "fff15080023ffc");
        // 48 kHz stereo, 371-byte frame (378 with header).
        let config = AdtsConfig::from_audio_specific_config(&[0x11, 0x90]).unwrap();
        assert_eq!(hex::encode(config.header(371).unwrap()), "fff14c802f5ffc");
        assert_eq!(
            config.header(8185),
            Err(AdtsError::FrameTooLarge {
                len: 8185,
                max: 8184
            })
        );
        assert!(config.header(8184).is_ok());
    }

    #[test]
    fn he_aac_is_framed_as_its_lc_core() {
        // HE-AAC v1: object type 5, core 24 kHz (index 6), stereo, extension 48 kHz (3),
        // underlying type 2.
        let asc = [0x2B, 0x11, 0x88, 0x00];
        let config = AdtsConfig::from_audio_specific_config(&asc).unwrap();
        assert_eq!(
            config,
            AdtsConfig {
                profile: 1,
                frequency_index: 6,
                channel_configuration: 2
            }
        );
    }

    #[test]
    fn explicit_rates_and_unsupported_configs() {
        // LC, index 15, explicit 44100 (0x00AC44), mono.
        let asc = [0x17, 0x80, 0x56, 0x22, 0x08];
        let config = AdtsConfig::from_audio_specific_config(&asc).unwrap();
        assert_eq!(
            (config.frequency_index, config.channel_configuration),
            (4, 1)
        );
        // Explicit 44 000 Hz has no index.
        let asc = [0x17, 0x80, 0x55, 0xF0, 0x08];
        assert_eq!(
            AdtsConfig::from_audio_specific_config(&asc),
            Err(AdtsError::SampleRate { sample_rate: 44000 })
        );
        // Object type 23 (ER AAC-LD).
        assert_eq!(
            AdtsConfig::from_audio_specific_config(&[0xB9, 0x90]),
            Err(AdtsError::ObjectType { object_type: 23 })
        );
        assert!(matches!(
            AdtsConfig::from_audio_specific_config(&[0x12]),
            Err(AdtsError::Config(_))
        ));
    }
}
