//! RTMP messages (rtmp-v1-0-spec §5.4 protocol control, §6.2 user control, §7.1 message types):
//! the meaning of a [`RawMessage`]'s payload.
//!
//! ```
//! use bytes::Bytes;
//! use onair_rtmp::chunk::RawMessage;
//! use onair_rtmp::message::Message;
//!
//! let raw = RawMessage {
//!     csid: 2,
//!     timestamp: 0,
//!     type_id: 5,
//!     message_stream_id: 0,
//!     payload: Bytes::from_static(&[0x00, 0x26, 0x25, 0xa0]),
//! };
//! let msg = Message::decode(&raw).unwrap();
//! assert_eq!(msg, Message::WindowAckSize(2_500_000));
//! assert_eq!(msg.encode_payload(), raw.payload);
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use onair_amf::Value;

use crate::chunk::RawMessage;

/// Set Chunk Size (§5.4.1).
pub const TYPE_SET_CHUNK_SIZE: u8 = 1;
/// Abort Message (§5.4.2).
pub const TYPE_ABORT: u8 = 2;
/// Acknowledgement (§5.4.3).
pub const TYPE_ACKNOWLEDGEMENT: u8 = 3;
/// User Control Message (§6.2).
pub const TYPE_USER_CONTROL: u8 = 4;
/// Window Acknowledgement Size (§5.4.4).
pub const TYPE_WINDOW_ACK_SIZE: u8 = 5;
/// Set Peer Bandwidth (§5.4.5).
pub const TYPE_SET_PEER_BANDWIDTH: u8 = 6;
/// Audio (§7.1.4).
pub const TYPE_AUDIO: u8 = 8;
/// Video (§7.1.5).
pub const TYPE_VIDEO: u8 = 9;
/// Data message, AMF3 (§7.1.2).
pub const TYPE_DATA_AMF3: u8 = 15;
/// Shared object message, AMF3 (§7.1.3).
pub const TYPE_SHARED_OBJECT_AMF3: u8 = 16;
/// Command message, AMF3 (§7.1.1).
pub const TYPE_COMMAND_AMF3: u8 = 17;
/// Data message, AMF0 (§7.1.2).
pub const TYPE_DATA_AMF0: u8 = 18;
/// Shared object message, AMF0 (§7.1.3).
pub const TYPE_SHARED_OBJECT_AMF0: u8 = 19;
/// Command message, AMF0 (§7.1.1).
pub const TYPE_COMMAND_AMF0: u8 = 20;
/// Aggregate message (§7.1.6).
pub const TYPE_AGGREGATE: u8 = 22;

/// An interpreted RTMP message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Type 1: the sender's new chunk size (§5.4.1). Kept as sent; the chunk decoder validates it.
    SetChunkSize(u32),
    /// Type 2: discard the partial message on a chunk stream (§5.4.2).
    Abort {
        /// The chunk stream whose partial message is dropped.
        csid: u32,
    },
    /// Type 3: bytes received so far, wrapping at 2^32 (§5.4.3).
    Acknowledgement {
        /// Total bytes the sender has received.
        sequence_number: u32,
    },
    /// Type 4: a stream event (§6.2, §7.1.7).
    UserControl(UserControl),
    /// Type 5: acknowledge after this many bytes (§5.4.4).
    WindowAckSize(u32),
    /// Type 6: limit the peer's output bandwidth (§5.4.5).
    SetPeerBandwidth {
        /// The window size in bytes.
        size: u32,
        /// How to apply it.
        limit_type: LimitType,
    },
    /// Type 8: one audio tag body (FLV AUDIODATA).
    Audio(Bytes),
    /// Type 9: one video tag body (FLV VIDEODATA).
    Video(Bytes),
    /// Type 18 (AMF0) or 15 (AMF3): metadata and other data, e.g. `@setDataFrame`.
    Data {
        /// Sent as type 15.
        amf3: bool,
        /// The values in order.
        values: Vec<Value>,
    },
    /// Type 20 (AMF0) or 17 (AMF3): a command such as `connect` or `publish` (§7.1.1).
    Command {
        /// Sent as type 17.
        amf3: bool,
        /// Command name.
        name: String,
        /// Transaction id; 0 when no reply is expected.
        transaction_id: f64,
        /// Command object; [`Value::Null`] when the sender gave none.
        command_object: Value,
        /// Further arguments.
        args: Vec<Value>,
    },
    /// Type 19 (AMF0) or 16 (AMF3): shared-object events, kept opaque (OnAir does not serve
    /// shared objects).
    SharedObject {
        /// Sent as type 16.
        amf3: bool,
        /// The raw body.
        payload: Bytes,
    },
    /// Type 22: several audio/video/data messages in one; see [`split_aggregate`].
    Aggregate(Bytes),
    /// Any other type id, passed through rather than treated as an error: new types must not
    /// end a session.
    Unknown {
        /// The type id.
        type_id: u8,
        /// The raw body.
        payload: Bytes,
    },
}

/// User Control events (§7.1.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserControl {
    /// Event 0: a stream became functional.
    StreamBegin(u32),
    /// Event 1: playback of a stream ended.
    StreamEof(u32),
    /// Event 2: no more data on a stream for now.
    StreamDry(u32),
    /// Event 3: the client's buffer length for a stream.
    SetBufferLength {
        /// The stream id.
        stream_id: u32,
        /// Buffer length in milliseconds.
        buffer_ms: u32,
    },
    /// Event 4: the stream is a recorded stream.
    StreamIsRecorded(u32),
    /// Event 6: ping with the sender's timestamp; answer with [`UserControl::PingResponse`].
    PingRequest(u32),
    /// Event 7: answer to a ping, echoing its timestamp.
    PingResponse(u32),
    /// Any other event (e.g. 26/27 SWF verification), kept as sent.
    Unknown {
        /// The event type.
        event_type: u16,
        /// The event data.
        data: Bytes,
    },
}

/// Set Peer Bandwidth limit type (§5.4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitType {
    /// 0: limit output to the window size.
    Hard,
    /// 1: limit to the window size or the current limit, whichever is smaller.
    Soft,
    /// 2: hard if the previous limit was hard, otherwise ignore.
    Dynamic,
}

impl LimitType {
    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            LimitType::Hard => 0,
            LimitType::Soft => 1,
            LimitType::Dynamic => 2,
        }
    }
}

/// Why a message payload could not be interpreted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// A fixed-size payload was shorter than its type requires.
    #[error("message type {type_id}: payload of {actual} bytes, {needed} needed")]
    Truncated {
        /// The message type.
        type_id: u8,
        /// Bytes the type requires.
        needed: usize,
        /// Bytes present.
        actual: usize,
    },
    /// A User Control event's data was shorter than the event requires.
    #[error("user control event {event_type}: data of {actual} bytes, {needed} needed")]
    UserControlTruncated {
        /// The event type.
        event_type: u16,
        /// Bytes the event requires.
        needed: usize,
        /// Bytes present.
        actual: usize,
    },
    /// Set Peer Bandwidth with a limit type other than 0, 1 or 2.
    #[error("set peer bandwidth: unknown limit type {value}")]
    UnknownLimitType {
        /// The limit type byte.
        value: u8,
    },
    /// The AMF body of a data or command message did not decode.
    #[error("message type {type_id}: {source}")]
    Amf {
        /// The message type.
        type_id: u8,
        /// The AMF error.
        #[source]
        source: onair_amf::DecodeError,
    },
    /// A command whose first value is not a string.
    #[error("command message does not start with a name string (found {found})")]
    CommandName {
        /// Debug rendering of the first value, or "nothing".
        found: String,
    },
    /// A command whose second value is not a number.
    #[error("command {name:?}: transaction id missing or not a number (found {found})")]
    TransactionId {
        /// The command name.
        name: String,
        /// Debug rendering of the second value, or "nothing".
        found: String,
    },
    /// An aggregate sub-message that does not fit in the aggregate body.
    #[error("aggregate: sub-message at offset {offset} needs {needed} bytes, {remaining} remain")]
    AggregateTruncated {
        /// Offset of the sub-message header in the aggregate body.
        offset: usize,
        /// Bytes the sub-message needs (header, body and back pointer).
        needed: usize,
        /// Bytes left in the aggregate body.
        remaining: usize,
    },
}

fn be_u32(payload: &[u8], type_id: u8) -> Result<u32, MessageError> {
    match payload.get(..4) {
        Some(b) => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(MessageError::Truncated {
            type_id,
            needed: 4,
            actual: payload.len(),
        }),
    }
}

fn describe(value: Option<&Value>) -> String {
    value.map_or_else(|| "nothing".to_owned(), |v| format!("{v:?}"))
}

fn decode_values(payload: &[u8], type_id: u8, amf3: bool) -> Result<Vec<Value>, MessageError> {
    let decoded = if amf3 {
        // Types 15/17: a format byte 0, then AMF0 values with 0x11 switching one value to AMF3
        // (E-RTMP v2 "AMF3 clarification").
        onair_amf::amf3::decode_command_payload(payload)
    } else {
        onair_amf::decode_all(payload)
    };
    decoded.map_err(|source| MessageError::Amf { type_id, source })
}

fn decode_command(payload: &[u8], type_id: u8, amf3: bool) -> Result<Message, MessageError> {
    let mut values = decode_values(payload, type_id, amf3)?.into_iter();
    let name = match values.next() {
        Some(Value::String(name) | Value::LongString(name)) => name,
        other => {
            return Err(MessageError::CommandName {
                found: describe(other.as_ref()),
            });
        }
    };
    let transaction_id = match values.next() {
        Some(Value::Number(tx)) => tx,
        other => {
            return Err(MessageError::TransactionId {
                name,
                found: describe(other.as_ref()),
            });
        }
    };
    // `onStatus` and friends always carry the object, but some clients end a command right after
    // the transaction id; a missing object reads as null (§7.1.1 allows null there).
    let command_object = values.next().unwrap_or(Value::Null);
    Ok(Message::Command {
        amf3,
        name,
        transaction_id,
        command_object,
        args: values.collect(),
    })
}

impl UserControl {
    fn decode(payload: &Bytes) -> Result<UserControl, MessageError> {
        let Some(head) = payload.get(..2) else {
            return Err(MessageError::Truncated {
                type_id: TYPE_USER_CONTROL,
                needed: 2,
                actual: payload.len(),
            });
        };
        let event_type = u16::from_be_bytes([head[0], head[1]]);
        let data = &payload[2..];
        let word = |index: usize| -> Result<u32, MessageError> {
            match data.get(index * 4..index * 4 + 4) {
                Some(b) => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
                None => Err(MessageError::UserControlTruncated {
                    event_type,
                    needed: index * 4 + 4,
                    actual: data.len(),
                }),
            }
        };
        Ok(match event_type {
            0 => UserControl::StreamBegin(word(0)?),
            1 => UserControl::StreamEof(word(0)?),
            2 => UserControl::StreamDry(word(0)?),
            3 => UserControl::SetBufferLength {
                stream_id: word(0)?,
                buffer_ms: word(1)?,
            },
            4 => UserControl::StreamIsRecorded(word(0)?),
            6 => UserControl::PingRequest(word(0)?),
            7 => UserControl::PingResponse(word(0)?),
            _ => UserControl::Unknown {
                event_type,
                data: payload.slice(2..),
            },
        })
    }

    /// The event type on the wire (§7.1.7).
    pub fn event_type(&self) -> u16 {
        match self {
            UserControl::StreamBegin(_) => 0,
            UserControl::StreamEof(_) => 1,
            UserControl::StreamDry(_) => 2,
            UserControl::SetBufferLength { .. } => 3,
            UserControl::StreamIsRecorded(_) => 4,
            UserControl::PingRequest(_) => 6,
            UserControl::PingResponse(_) => 7,
            UserControl::Unknown { event_type, .. } => *event_type,
        }
    }

    fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(10);
        out.put_u16(self.event_type());
        match self {
            UserControl::StreamBegin(id)
            | UserControl::StreamEof(id)
            | UserControl::StreamDry(id)
            | UserControl::StreamIsRecorded(id)
            | UserControl::PingRequest(id)
            | UserControl::PingResponse(id) => out.put_u32(*id),
            UserControl::SetBufferLength {
                stream_id,
                buffer_ms,
            } => {
                out.put_u32(*stream_id);
                out.put_u32(*buffer_ms);
            }
            UserControl::Unknown { data, .. } => out.put_slice(data),
        }
        out.freeze()
    }
}

fn encode_values(values: &[&Value], amf3: bool) -> Bytes {
    let mut out = Vec::with_capacity(
        usize::from(amf3) + values.iter().map(|v| v.encoded_len()).sum::<usize>(),
    );
    if amf3 {
        // Format byte 0 followed by plain AMF0 values: valid for types 15/17 (E-RTMP v2).
        out.push(0);
    }
    for value in values {
        value.encode(&mut out);
    }
    Bytes::from(out)
}

impl Message {
    /// Interprets a message payload. Unknown type ids and user control events decode to their
    /// `Unknown` variants; bytes after a fixed-size payload are ignored.
    pub fn decode(raw: &RawMessage) -> Result<Message, MessageError> {
        let payload = &raw.payload;
        let type_id = raw.type_id;
        Ok(match type_id {
            TYPE_SET_CHUNK_SIZE => Message::SetChunkSize(be_u32(payload, type_id)?),
            TYPE_ABORT => Message::Abort {
                csid: be_u32(payload, type_id)?,
            },
            TYPE_ACKNOWLEDGEMENT => Message::Acknowledgement {
                sequence_number: be_u32(payload, type_id)?,
            },
            TYPE_USER_CONTROL => Message::UserControl(UserControl::decode(payload)?),
            TYPE_WINDOW_ACK_SIZE => Message::WindowAckSize(be_u32(payload, type_id)?),
            TYPE_SET_PEER_BANDWIDTH => {
                let size = be_u32(payload, type_id)?;
                let limit_type = match payload.get(4) {
                    Some(0) => LimitType::Hard,
                    Some(1) => LimitType::Soft,
                    Some(2) => LimitType::Dynamic,
                    Some(&value) => return Err(MessageError::UnknownLimitType { value }),
                    None => {
                        return Err(MessageError::Truncated {
                            type_id,
                            needed: 5,
                            actual: payload.len(),
                        });
                    }
                };
                Message::SetPeerBandwidth { size, limit_type }
            }
            TYPE_AUDIO => Message::Audio(payload.clone()),
            TYPE_VIDEO => Message::Video(payload.clone()),
            TYPE_DATA_AMF0 | TYPE_DATA_AMF3 => {
                let amf3 = type_id == TYPE_DATA_AMF3;
                Message::Data {
                    amf3,
                    values: decode_values(payload, type_id, amf3)?,
                }
            }
            TYPE_COMMAND_AMF0 => decode_command(payload, type_id, false)?,
            TYPE_COMMAND_AMF3 => decode_command(payload, type_id, true)?,
            TYPE_SHARED_OBJECT_AMF0 | TYPE_SHARED_OBJECT_AMF3 => Message::SharedObject {
                amf3: type_id == TYPE_SHARED_OBJECT_AMF3,
                payload: payload.clone(),
            },
            TYPE_AGGREGATE => Message::Aggregate(payload.clone()),
            _ => Message::Unknown {
                type_id,
                payload: payload.clone(),
            },
        })
    }

    /// The message type id this message is sent as.
    pub fn type_id(&self) -> u8 {
        match self {
            Message::SetChunkSize(_) => TYPE_SET_CHUNK_SIZE,
            Message::Abort { .. } => TYPE_ABORT,
            Message::Acknowledgement { .. } => TYPE_ACKNOWLEDGEMENT,
            Message::UserControl(_) => TYPE_USER_CONTROL,
            Message::WindowAckSize(_) => TYPE_WINDOW_ACK_SIZE,
            Message::SetPeerBandwidth { .. } => TYPE_SET_PEER_BANDWIDTH,
            Message::Audio(_) => TYPE_AUDIO,
            Message::Video(_) => TYPE_VIDEO,
            Message::Data { amf3: true, .. } => TYPE_DATA_AMF3,
            Message::Data { amf3: false, .. } => TYPE_DATA_AMF0,
            Message::Command { amf3: true, .. } => TYPE_COMMAND_AMF3,
            Message::Command { amf3: false, .. } => TYPE_COMMAND_AMF0,
            Message::SharedObject { amf3: true, .. } => TYPE_SHARED_OBJECT_AMF3,
            Message::SharedObject { amf3: false, .. } => TYPE_SHARED_OBJECT_AMF0,
            Message::Aggregate(_) => TYPE_AGGREGATE,
            Message::Unknown { type_id, .. } => *type_id,
        }
    }

    /// The payload this message is sent with. Media and opaque bodies are returned as they are
    /// (a reference-count increment); AMF3-typed data and commands are written as the format
    /// byte 0 followed by AMF0 values, which E-RTMP v2 permits.
    pub fn encode_payload(&self) -> Bytes {
        let u32_payload = |value: u32| Bytes::copy_from_slice(&value.to_be_bytes());
        match self {
            Message::SetChunkSize(size) => u32_payload(*size),
            Message::Abort { csid } => u32_payload(*csid),
            Message::Acknowledgement { sequence_number } => u32_payload(*sequence_number),
            Message::UserControl(event) => event.encode(),
            Message::WindowAckSize(size) => u32_payload(*size),
            Message::SetPeerBandwidth { size, limit_type } => {
                let mut out = BytesMut::with_capacity(5);
                out.put_u32(*size);
                out.put_u8(limit_type.to_u8());
                out.freeze()
            }
            Message::Audio(payload)
            | Message::Video(payload)
            | Message::Aggregate(payload)
            | Message::SharedObject { payload, .. }
            | Message::Unknown { payload, .. } => payload.clone(),
            Message::Data { amf3, values } => {
                encode_values(&values.iter().collect::<Vec<_>>(), *amf3)
            }
            Message::Command {
                amf3,
                name,
                transaction_id,
                command_object,
                args,
            } => {
                let name = Value::String(name.clone());
                let transaction_id = Value::Number(*transaction_id);
                let values: Vec<&Value> = [&name, &transaction_id, command_object]
                    .into_iter()
                    .chain(args)
                    .collect();
                encode_values(&values, *amf3)
            }
        }
    }
}

/// Length of an aggregate sub-message header: an FLV tag header (FLV spec v10.1 §E.4.1).
const SUB_HEADER_LEN: usize = 11;
/// Length of the back pointer (FLV PreviousTagSize) after each sub-message body.
const BACK_POINTER_LEN: usize = 4;

/// Splits an aggregate message (type 22, §7.1.6) into its sub-messages.
///
/// The body is a sequence of [11-byte FLV tag header, body, 4-byte back pointer]. Sub-message
/// timestamps are shifted by (aggregate timestamp − first sub-message timestamp), wrapping; the
/// aggregate's message stream id and csid replace the sub-messages' own. Bodies are slices of the
/// aggregate payload. The back pointer must be present but its value is not checked: encoders
/// disagree on whether it counts the header, and the sizes alone delimit the sub-messages.
pub fn split_aggregate(raw: &RawMessage) -> Result<Vec<RawMessage>, MessageError> {
    let body = &raw.payload;
    let mut out = Vec::new();
    let mut offset = 0;
    let mut shift = None;
    while offset < body.len() {
        let remaining = body.len() - offset;
        let Some(h) = body.get(offset..offset + SUB_HEADER_LEN) else {
            return Err(MessageError::AggregateTruncated {
                offset,
                needed: SUB_HEADER_LEN + BACK_POINTER_LEN,
                remaining,
            });
        };
        // FLV TagType is the low 5 bits; the top 3 are reserved and the filter flag.
        let type_id = h[0] & 0x1f;
        let size = usize::from(h[1]) << 16 | usize::from(h[2]) << 8 | usize::from(h[3]);
        // TimestampExtended (h[7]) holds bits 24..32.
        let timestamp = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let needed = SUB_HEADER_LEN + size + BACK_POINTER_LEN;
        if needed > remaining {
            return Err(MessageError::AggregateTruncated {
                offset,
                needed,
                remaining,
            });
        }
        let shift = *shift.get_or_insert(raw.timestamp.wrapping_sub(timestamp));
        let start = offset + SUB_HEADER_LEN;
        out.push(RawMessage {
            csid: raw.csid,
            timestamp: timestamp.wrapping_add(shift),
            type_id,
            message_stream_id: raw.message_stream_id,
            payload: body.slice(start..start + size),
        });
        offset += needed;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn raw(type_id: u8, hex_str: &str) -> RawMessage {
        let clean: String = hex_str.split_whitespace().collect();
        RawMessage {
            csid: 3,
            timestamp: 0,
            type_id,
            message_stream_id: 0,
            payload: hex::decode(clean).expect("test vector is valid hex").into(),
        }
    }

    /// Decodes the vector, checks the expected message and that encoding gives the same bytes.
    fn check(type_id: u8, hex_str: &str, expected: Message) {
        let raw = raw(type_id, hex_str);
        let msg = Message::decode(&raw).unwrap();
        assert_eq!(msg, expected);
        assert_eq!(msg.type_id(), type_id);
        assert_eq!(msg.encode_payload(), raw.payload);
    }

    #[test]
    fn protocol_control_messages_decode_and_encode() {
        check(1, "00001000", Message::SetChunkSize(4096));
        check(2, "00000005", Message::Abort { csid: 5 });
        check(
            3,
            "ffffffff",
            Message::Acknowledgement {
                sequence_number: u32::MAX,
            },
        );
        check(5, "002625a0", Message::WindowAckSize(2_500_000));
        check(
            6,
            "002625a0 02",
            Message::SetPeerBandwidth {
                size: 2_500_000,
                limit_type: LimitType::Dynamic,
            },
        );
        check(
            6,
            "00000001 00",
            Message::SetPeerBandwidth {
                size: 1,
                limit_type: LimitType::Hard,
            },
        );
        check(
            6,
            "00000001 01",
            Message::SetPeerBandwidth {
                size: 1,
                limit_type: LimitType::Soft,
            },
        );
    }

    #[test]
    fn user_control_events_decode_and_encode() {
        check(
            4,
            "0000 00000001",
            Message::UserControl(UserControl::StreamBegin(1)),
        );
        check(
            4,
            "0001 00000001",
            Message::UserControl(UserControl::StreamEof(1)),
        );
        check(
            4,
            "0002 00000001",
            Message::UserControl(UserControl::StreamDry(1)),
        );
        check(
            4,
            "0003 00000001 0000012c",
            Message::UserControl(UserControl::SetBufferLength {
                stream_id: 1,
                buffer_ms: 300,
            }),
        );
        check(
            4,
            "0004 00000001",
            Message::UserControl(UserControl::StreamIsRecorded(1)),
        );
        check(
            4,
            "0006 00abcdef",
            Message::UserControl(UserControl::PingRequest(0x00ab_cdef)),
        );
        check(
            4,
            "0007 00abcdef",
            Message::UserControl(UserControl::PingResponse(0x00ab_cdef)),
        );
        check(
            4,
            "001a 0102",
            Message::UserControl(UserControl::Unknown {
                event_type: 26,
                data: Bytes::from_static(&[1, 2]),
            }),
        );
    }

    #[test]
    fn truncated_control_payloads_are_typed_errors() {
        let decode = |type_id, hex_str| Message::decode(&raw(type_id, hex_str));
        assert_eq!(
            decode(1, "000010"),
            Err(MessageError::Truncated {
                type_id: 1,
                needed: 4,
                actual: 3
            })
        );
        assert_eq!(
            decode(3, ""),
            Err(MessageError::Truncated {
                type_id: 3,
                needed: 4,
                actual: 0
            })
        );
        assert_eq!(
            decode(6, "002625a0"),
            Err(MessageError::Truncated {
                type_id: 6,
                needed: 5,
                actual: 4
            })
        );
        assert_eq!(
            decode(6, "002625a0 03"),
            Err(MessageError::UnknownLimitType { value: 3 })
        );
        assert_eq!(
            decode(4, "00"),
            Err(MessageError::Truncated {
                type_id: 4,
                needed: 2,
                actual: 1
            })
        );
        assert_eq!(
            decode(4, "0003 00000001 0000"),
            Err(MessageError::UserControlTruncated {
                event_type: 3,
                needed: 8,
                actual: 6
            })
        );
        assert_eq!(
            decode(4, "0006"),
            Err(MessageError::UserControlTruncated {
                event_type: 6,
                needed: 4,
                actual: 0
            })
        );
    }

    #[test]
    fn unknown_types_and_opaque_bodies_pass_through() {
        check(
            7,
            "0102",
            Message::Unknown {
                type_id: 7,
                payload: Bytes::from_static(&[1, 2]),
            },
        );
        check(8, "af01", Message::Audio(Bytes::from_static(&[0xaf, 1])));
        check(9, "1701", Message::Video(Bytes::from_static(&[0x17, 1])));
        check(
            19,
            "00",
            Message::SharedObject {
                amf3: false,
                payload: Bytes::from_static(&[0]),
            },
        );
        check(
            16,
            "00",
            Message::SharedObject {
                amf3: true,
                payload: Bytes::from_static(&[0]),
            },
        );
        check(22, "", Message::Aggregate(Bytes::new()));
    }

    /// `connect(1, {app: "live"})` as FFmpeg writes it (AMF0 spec §2.2, §2.4, §2.5).
    const CONNECT: &str =
        "02 0007 636f6e6e656374  00 3ff0000000000000  03 0003 617070 02 0004 6c697665 000009";

    fn connect(amf3: bool) -> Message {
        Message::Command {
            amf3,
            name: "connect".into(),
            transaction_id: 1.0,
            command_object: Value::Object(vec![("app".into(), Value::String("live".into()))]),
            args: vec![],
        }
    }

    #[test]
    fn amf0_command_decodes_and_encodes() {
        check(20, CONNECT, connect(false));
        let publish =
            "02 0007 7075626c697368 00 0000000000000000 05 02 0003 6b6579 02 0004 6c697665";
        check(
            20,
            publish,
            Message::Command {
                amf3: false,
                name: "publish".into(),
                transaction_id: 0.0,
                command_object: Value::Null,
                args: vec![Value::String("key".into()), Value::String("live".into())],
            },
        );
    }

    #[test]
    fn amf3_command_starts_with_a_format_byte() {
        check(17, &format!("00 {CONNECT}"), connect(true));
    }

    #[test]
    fn command_without_object_reads_null() {
        let msg = Message::decode(&raw(20, "02 0004 706c6179 00 0000000000000000")).unwrap();
        assert!(
            matches!(msg, Message::Command { command_object: Value::Null, ref args, .. } if args.is_empty())
        );
    }

    #[test]
    fn malformed_commands_are_typed_errors() {
        assert!(matches!(
            Message::decode(&raw(20, "00 3ff0000000000000")),
            Err(MessageError::CommandName { .. })
        ));
        assert!(matches!(
            Message::decode(&raw(20, "")),
            Err(MessageError::CommandName { .. })
        ));
        assert!(matches!(
            Message::decode(&raw(20, "02 0004 706c6179 05")),
            Err(MessageError::TransactionId { ref name, .. }) if name == "play"
        ));
        assert!(matches!(
            Message::decode(&raw(20, "02 0004 706c61")),
            Err(MessageError::Amf { type_id: 20, .. })
        ));
    }

    #[test]
    fn data_message_keeps_values_in_order() {
        check(
            18,
            "02 000d 40736574446174614672616d65 02 000a 6f6e4d65746144617461 08 00000001 0005 7769647468 00 409e000000000000 000009",
            Message::Data {
                amf3: false,
                values: vec![
                    Value::String("@setDataFrame".into()),
                    Value::String("onMetaData".into()),
                    Value::EcmaArray(vec![("width".into(), Value::Number(1920.0))]),
                ],
            },
        );
        check(
            15,
            "00 02 0004 74657374",
            Message::Data {
                amf3: true,
                values: vec![Value::String("test".into())],
            },
        );
    }

    fn aggregate(timestamp: u32, hex_str: &str) -> RawMessage {
        RawMessage {
            csid: 7,
            timestamp,
            type_id: 22,
            message_stream_id: 1,
            ..raw(22, hex_str)
        }
    }

    #[test]
    fn aggregate_splits_and_renormalises_timestamps() {
        // Two tags at 0x01000010 and 0x01000030 (extended byte 0x01), stream id 5 in the tags.
        let agg = aggregate(
            1000,
            "09 000002 000010 01 000005 1701 0000000d
             08 000001 000030 01 000005 af   00000000",
        );
        let subs = split_aggregate(&agg).unwrap();
        assert_eq!(
            subs,
            vec![
                RawMessage {
                    csid: 7,
                    timestamp: 1000,
                    type_id: 9,
                    message_stream_id: 1,
                    payload: Bytes::from_static(&[0x17, 1])
                },
                RawMessage {
                    csid: 7,
                    timestamp: 1032,
                    type_id: 8,
                    message_stream_id: 1,
                    payload: Bytes::from_static(&[0xaf])
                },
            ]
        );
        // The second back pointer (0, should be 12) is tolerated.
    }

    #[test]
    fn aggregate_timestamps_wrap() {
        let agg = aggregate(
            5,
            "09 000000 fffff0 ff 000000 0000000b  09 000000 000010 00 000000 0000000b",
        );
        let ts: Vec<u32> = split_aggregate(&agg)
            .unwrap()
            .iter()
            .map(|m| m.timestamp)
            .collect();
        assert_eq!(ts, vec![5, 5 + 0x20]);
    }

    #[test]
    fn aggregate_sizes_must_fit() {
        assert_eq!(
            split_aggregate(&aggregate(0, "09 000005 000000 00 000000 0102")),
            Err(MessageError::AggregateTruncated {
                offset: 0,
                needed: 20,
                remaining: 13
            })
        );
        assert_eq!(
            split_aggregate(&aggregate(
                0,
                "09 000000 000000 00 000000 0000000b  09 0000"
            )),
            Err(MessageError::AggregateTruncated {
                offset: 15,
                needed: 15,
                remaining: 3
            })
        );
        assert_eq!(
            split_aggregate(&aggregate(0, "09 000001 000000 00 000000 aa 000000")),
            Err(MessageError::AggregateTruncated {
                offset: 0,
                needed: 16,
                remaining: 15
            })
        );
        assert_eq!(split_aggregate(&aggregate(0, "")), Ok(vec![]));
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<f64>()
                .prop_filter("NaN never equals itself", |n| !n.is_nan())
                .prop_map(Value::Number),
            any::<bool>().prop_map(Value::Boolean),
            "[a-zA-Z0-9 ./:?=_-]{0,24}".prop_map(Value::String),
            Just(Value::Null),
            Just(Value::Undefined),
        ];
        leaf.prop_recursive(2, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(("[a-z]{1,8}", inner.clone()), 0..4).prop_map(Value::Object),
                prop::collection::vec(("[a-z]{1,8}", inner.clone()), 0..4)
                    .prop_map(Value::EcmaArray),
                prop::collection::vec(inner, 0..4).prop_map(Value::StrictArray),
            ]
        })
    }

    fn arb_user_control() -> impl Strategy<Value = UserControl> {
        prop_oneof![
            any::<u32>().prop_map(UserControl::StreamBegin),
            any::<u32>().prop_map(UserControl::StreamEof),
            any::<u32>().prop_map(UserControl::StreamDry),
            (any::<u32>(), any::<u32>()).prop_map(|(stream_id, buffer_ms)| {
                UserControl::SetBufferLength {
                    stream_id,
                    buffer_ms,
                }
            }),
            any::<u32>().prop_map(UserControl::StreamIsRecorded),
            any::<u32>().prop_map(UserControl::PingRequest),
            any::<u32>().prop_map(UserControl::PingResponse),
            (8u16.., prop::collection::vec(any::<u8>(), 0..8)).prop_map(|(event_type, data)| {
                UserControl::Unknown {
                    event_type,
                    data: data.into(),
                }
            }),
        ]
    }

    fn arb_bytes() -> impl Strategy<Value = Bytes> {
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
    }

    pub(crate) fn arb_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            any::<u32>().prop_map(Message::SetChunkSize),
            any::<u32>().prop_map(|csid| Message::Abort { csid }),
            any::<u32>().prop_map(|sequence_number| Message::Acknowledgement { sequence_number }),
            arb_user_control().prop_map(Message::UserControl),
            any::<u32>().prop_map(Message::WindowAckSize),
            (
                any::<u32>(),
                prop_oneof![
                    Just(LimitType::Hard),
                    Just(LimitType::Soft),
                    Just(LimitType::Dynamic)
                ]
            )
                .prop_map(|(size, limit_type)| Message::SetPeerBandwidth { size, limit_type }),
            arb_bytes().prop_map(Message::Audio),
            arb_bytes().prop_map(Message::Video),
            (any::<bool>(), prop::collection::vec(arb_value(), 0..4))
                .prop_map(|(amf3, values)| Message::Data { amf3, values }),
            (
                any::<bool>(),
                "[a-zA-Z@|]{1,16}",
                any::<f64>().prop_filter("NaN never equals itself", |n| !n.is_nan()),
                arb_value(),
                prop::collection::vec(arb_value(), 0..3),
            )
                .prop_map(|(amf3, name, transaction_id, command_object, args)| {
                    Message::Command {
                        amf3,
                        name,
                        transaction_id,
                        command_object,
                        args,
                    }
                }),
            (any::<bool>(), arb_bytes())
                .prop_map(|(amf3, payload)| Message::SharedObject { amf3, payload }),
            arb_bytes().prop_map(Message::Aggregate),
            (
                prop_oneof![Just(0u8), Just(7), Just(10), 23u8..],
                arb_bytes()
            )
                .prop_map(|(type_id, payload)| Message::Unknown { type_id, payload }),
        ]
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(msg in arb_message()) {
            let raw = RawMessage { csid: 3, timestamp: 0, type_id: msg.type_id(), message_stream_id: 0, payload: msg.encode_payload() };
            prop_assert_eq!(Message::decode(&raw).unwrap(), msg);
        }

        #[test]
        fn any_payload_decodes_to_a_stable_message_or_a_described_error(
            (type_id, payload) in prop_oneof![
                (any::<u8>(), prop::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)),
                // Valid payloads cut short reach the AMF and fixed-size error paths far more
                // often than random bytes do.
                (arb_message(), any::<prop::sample::Index>()).prop_map(|(msg, cut)| {
                    let payload = msg.encode_payload();
                    let cut = cut.index(payload.len() + 1);
                    (msg.type_id(), payload.slice(..cut))
                }),
            ],
        ) {
            let raw = RawMessage { csid: 3, timestamp: 0, type_id, message_stream_id: 0, payload };
            match Message::decode(&raw) {
                Ok(msg) => {
                    prop_assert_eq!(msg.type_id(), type_id);
                    let encoded = msg.encode_payload();
                    if !matches!(msg, Message::Data { .. } | Message::Command { .. }) {
                        // Fixed-size bodies ignore trailing bytes; every other body is kept whole.
                        prop_assert!(
                            raw.payload.starts_with(&encoded),
                            "{:?} re-encodes as {:?}", raw.payload, encoded
                        );
                    }
                    let again = RawMessage { payload: encoded, ..raw.clone() };
                    // Debug text, because a decoded AMF number may be NaN, which is not equal to
                    // itself.
                    match Message::decode(&again) {
                        Ok(again) => prop_assert_eq!(format!("{again:?}"), format!("{msg:?}")),
                        Err(e) => prop_assert!(false, "{:?} re-encoded fails: {}", msg, e),
                    }
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
            match split_aggregate(&raw) {
                Ok(subs) => {
                    // Sub-messages tile the body exactly: header, body and back pointer each.
                    let total: usize = subs
                        .iter()
                        .map(|m| SUB_HEADER_LEN + m.payload.len() + BACK_POINTER_LEN)
                        .sum();
                    prop_assert_eq!(total, raw.payload.len());
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }

        #[test]
        fn aggregate_of_tags_splits_back(
            base in any::<u32>(),
            aggregate_ts in any::<u32>(),
            tags in prop::collection::vec((prop_oneof![Just(8u8), Just(9u8), Just(18u8)], 0u32..100_000, arb_bytes()), 0..6),
        ) {
            let mut body = BytesMut::new();
            let mut ts = base;
            let mut expected = Vec::new();
            for (type_id, step, payload) in tags {
                body.put_u8(type_id);
                body.put_uint(payload.len() as u64, 3);
                body.put_uint(u64::from(ts & 0xFF_FFFF), 3);
                body.put_u8((ts >> 24) as u8);
                body.put_uint(0, 3);
                body.put_slice(&payload);
                body.put_u32(11 + payload.len() as u32);
                expected.push(RawMessage {
                    csid: 7,
                    timestamp: ts.wrapping_sub(base).wrapping_add(aggregate_ts),
                    type_id,
                    message_stream_id: 1,
                    payload,
                });
                ts = ts.wrapping_add(step);
            }
            let agg = RawMessage { csid: 7, timestamp: aggregate_ts, type_id: 22, message_stream_id: 1, payload: body.freeze() };
            prop_assert_eq!(split_aggregate(&agg).unwrap(), expected);
        }
    }
}
