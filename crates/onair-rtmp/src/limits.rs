//! Every bound the RTMP layer enforces on what a peer may make it hold.
//!
//! The bounds are deliberately generous where real encoders need room: a 1 MB message cap drops
//! OBS on scene changes (nginx-rtmp #324, #503) and a cap on the csid *value* disconnects encoders
//! that use high chunk stream ids (nginx-rtmp #246). Memory is bounded instead by the number of
//! live chunk streams and by a per-connection budget for partially reassembled messages.

/// Limits applied to one connection's incoming chunk stream.
///
/// Exceeding any of them ends the connection with a typed
/// [`ChunkError`](crate::chunk::ChunkError) naming the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpLimits {
    /// Largest message length a peer may announce. Default `0xFF_FFFF`, the 24-bit maximum the
    /// chunk header can carry (rtmp-v1-0-spec §5.3.1.2.1).
    pub max_message_len: u32,
    /// Largest chunk size a peer may set with Set Chunk Size. Default `0x7FFF_FFFF`, the 31-bit
    /// maximum of §5.4.1. Sizes above `0xFF_FFFF` behave as `0xFF_FFFF` because no message is
    /// longer than that, so a large chunk size costs no memory.
    pub max_chunk_size: u32,
    /// How many chunk streams may carry state at once. Default 64. The csid *value* may be
    /// anything from 2 to 65599 (§5.3.1.1).
    pub max_chunk_streams: usize,
    /// Sum of the lengths of all partially reassembled messages on the connection, in bytes.
    /// Default 32 MiB. A message that arrives in a single chunk is a slice of the read buffer and
    /// does not count.
    pub max_partial_bytes: usize,
}

impl Default for RtmpLimits {
    fn default() -> Self {
        Self {
            max_message_len: 0xFF_FFFF,
            max_chunk_size: 0x7FFF_FFFF,
            max_chunk_streams: 64,
            max_partial_bytes: 32 * 1024 * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limits_allow_the_protocol_maxima() {
        let limits = RtmpLimits::default();
        assert_eq!(limits.max_message_len, 0xFF_FFFF);
        assert_eq!(limits.max_chunk_size, 0x7FFF_FFFF);
        assert_eq!(limits.max_chunk_streams, 64);
        assert!(limits.max_partial_bytes >= limits.max_message_len as usize);
    }
}
