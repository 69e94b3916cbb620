//! The crate's error type.

/// Everything that can be wrong with FLV bytes or the codec headers inside them.
///
/// The spec's API uses one error type for the whole crate; each variant names the
/// operation's failure and carries the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlvError {
    /// The stream does not start with `FLV` (FLV v10.1 §E.2).
    #[error("not an FLV stream: signature {found:02x?}, expected \"FLV\"")]
    BadSignature {
        /// The bytes seen up to and including the first that differs from `FLV`.
        found: Vec<u8>,
    },
    /// The header's `DataOffset` is smaller than the 9-byte version-1 header or implausibly
    /// large.
    #[error("FLV header DataOffset {offset} outside 9..={max}")]
    InvalidDataOffset {
        /// The declared offset.
        offset: u32,
        /// The largest offset we accept.
        max: u32,
    },
    /// A tag declares more body bytes than [`FlvLimits::max_tag_size`](crate::FlvLimits).
    #[error("FLV tag of {size} bytes exceeds the limit of {max} bytes")]
    TagTooLarge {
        /// The declared `DataSize`.
        size: u32,
        /// The configured limit.
        max: u32,
    },
    /// A body handed to [`try_encode_tag`](crate::try_encode_tag) does not fit the 24-bit
    /// `DataSize` field.
    #[error("tag body of {len} bytes does not fit FLV's 24-bit DataSize (max 16777215)")]
    BodyTooLarge {
        /// The body length.
        len: usize,
    },
    /// A structure ended before a field it declares.
    #[error("{what}: needs {needed} bytes, only {available} present")]
    Truncated {
        /// The structure or field being read.
        what: &'static str,
        /// Bytes the field needs from the start of the structure.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// An Enhanced RTMP `AudioPacketType` the spec reserves (E-RTMP v2 "MUST fail in a
    /// controlled manner").
    #[error("reserved Enhanced RTMP audio packet type {packet_type}")]
    ReservedAudioPacketType {
        /// The 4-bit value.
        packet_type: u8,
    },
    /// A legacy `AACPacketType` other than 0 (sequence header) or 1 (raw).
    #[error("unknown AACPacketType {packet_type}")]
    UnknownAacPacketType {
        /// The value.
        packet_type: u8,
    },
    /// An `AvMultitrackType` the spec reserves (3..=15).
    #[error("reserved AvMultitrackType {multitrack_type}")]
    ReservedMultitrackType {
        /// The 4-bit value.
        multitrack_type: u8,
    },
    /// A Multitrack packet whose inner packet type is again Multitrack, which E-RTMP v2 forbids.
    #[error("multitrack packet nests another multitrack packet type")]
    NestedMultitrack,
    /// A decoder configuration record with a `configurationVersion` other than 1.
    #[error("{what}: configurationVersion {version}, expected 1")]
    UnsupportedConfigVersion {
        /// Which record.
        what: &'static str,
        /// The version byte.
        version: u8,
    },
    /// An AAC `samplingFrequencyIndex` the spec reserves (13, 14).
    #[error("reserved AAC samplingFrequencyIndex {index}")]
    ReservedSamplingIndex {
        /// The 4-bit value.
        index: u8,
    },
    /// A script tag body that is not valid AMF0.
    #[error("script data is not valid AMF0: {0}")]
    Amf(#[from] onair_amf::DecodeError),
    /// A script tag whose first value is not the string `onMetaData` (after an optional
    /// `@setDataFrame`).
    #[error("script data is {name:?}, not onMetaData")]
    NotMetadata {
        /// The handler name found (empty when the first value is not a string).
        name: String,
    },
    /// An `onMetaData` with no object or ECMA array after the name.
    #[error("onMetaData carries no object or ECMA array")]
    MissingMetadataObject,
}
