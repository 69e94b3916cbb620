//! The FLV file header (FLV v10.1 §E.2) and `PreviousTagSize0`.

use bytes::Bytes;

use crate::FlvError;

/// Length of the version-1 FLV header, without `PreviousTagSize0`.
pub const FLV_HEADER_LEN: usize = 9;

/// The largest `DataOffset` we skip over. Version 1 headers are 9 bytes; the field exists
/// for future versions, so a little slack is allowed, but not enough to buffer a file.
const MAX_DATA_OFFSET: u32 = 1024;

/// The FLV file header: which media types the stream says it carries.
///
/// flv.js and mpegts.js wait for a sequence header of every flagged type before playing,
/// so the flags must match what the publisher really sends (protocol notes §4.8, #8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct FlvHeader {
    /// `TypeFlagsAudio`.
    pub has_audio: bool,
    /// `TypeFlagsVideo`.
    pub has_video: bool,
}

impl FlvHeader {
    /// The 9-byte header followed by `PreviousTagSize0` (always 0): 13 bytes, exactly what
    /// an HTTP-FLV response starts with.
    pub fn encode(&self) -> Bytes {
        let flags = (u8::from(self.has_audio) << 2) | u8::from(self.has_video);
        let mut out = Vec::with_capacity(FLV_HEADER_LEN + 4);
        out.extend_from_slice(b"FLV");
        out.push(1);
        out.push(flags);
        out.extend_from_slice(&(FLV_HEADER_LEN as u32).to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        Bytes::from(out)
    }

    /// Parses the header and `PreviousTagSize0` from the start of `buf`.
    ///
    /// Returns `Ok(None)` while `buf` is a prefix of a valid header, and otherwise the header
    /// and the number of bytes it occupies (`DataOffset` + 4). The version byte and reserved
    /// bits are not checked, and the value of `PreviousTagSize0` is ignored: files in the
    /// wild differ there and neither changes how the tags read.
    pub fn parse(buf: &[u8]) -> Result<Option<(FlvHeader, usize)>, FlvError> {
        // Fail on the first wrong byte, reporting the bytes up to it, so that the error does
        // not depend on how the input was split.
        if let Some(wrong) = buf.iter().zip(b"FLV").position(|(a, b)| a != b) {
            return Err(FlvError::BadSignature {
                found: buf[..=wrong].to_vec(),
            });
        }
        if buf.len() < FLV_HEADER_LEN {
            return Ok(None);
        }
        let flags = buf[4];
        let offset = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]);
        if !(FLV_HEADER_LEN as u32..=MAX_DATA_OFFSET).contains(&offset) {
            return Err(FlvError::InvalidDataOffset {
                offset,
                max: MAX_DATA_OFFSET,
            });
        }
        // `offset` is at most MAX_DATA_OFFSET, so this cannot overflow.
        let consumed = offset as usize + 4;
        if buf.len() < consumed {
            return Ok(None);
        }
        let header = FlvHeader {
            has_audio: flags & 0x04 != 0,
            has_video: flags & 0x01 != 0,
        };
        Ok(Some((header, consumed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_13_byte_prelude() {
        let header = FlvHeader {
            has_audio: true,
            has_video: true,
        };
        assert_eq!(hex::encode(header.encode()), "464c5601050000000900000000");
        let video_only = FlvHeader {
            has_audio: false,
            has_video: true,
        };
        assert_eq!(
            hex::encode(video_only.encode()),
            "464c5601010000000900000000"
        );
    }

    #[test]
    fn parses_every_flag_combination() {
        for has_audio in [false, true] {
            for has_video in [false, true] {
                let header = FlvHeader {
                    has_audio,
                    has_video,
                };
                assert_eq!(
                    FlvHeader::parse(&header.encode()).unwrap(),
                    Some((header, 13))
                );
            }
        }
    }

    #[test]
    fn any_prefix_asks_for_more() {
        let bytes = FlvHeader {
            has_audio: true,
            has_video: false,
        }
        .encode();
        for len in 0..bytes.len() {
            assert_eq!(
                FlvHeader::parse(&bytes[..len]).unwrap(),
                None,
                "prefix {len}"
            );
        }
    }

    #[test]
    fn skips_a_larger_data_offset() {
        let bytes = hex::decode("464c5601050000000c aabbcc 00000000".replace(' ', "")).unwrap();
        let (header, consumed) = FlvHeader::parse(&bytes).unwrap().unwrap();
        assert!(header.has_audio && header.has_video);
        assert_eq!(consumed, 16);
    }

    #[test]
    fn rejects_bad_signature_and_offsets() {
        assert!(matches!(
            FlvHeader::parse(b"FLX"),
            Err(FlvError::BadSignature { .. })
        ));
        assert!(matches!(
            FlvHeader::parse(b"G"),
            Err(FlvError::BadSignature { .. })
        ));
        let short = hex::decode("464c56010500000008").unwrap();
        assert!(matches!(
            FlvHeader::parse(&short),
            Err(FlvError::InvalidDataOffset { offset: 8, .. })
        ));
        let huge = hex::decode("464c560105ffffffff").unwrap();
        let err = FlvHeader::parse(&huge).unwrap_err();
        assert!(err.to_string().contains("4294967295"), "{err}");
    }
}
