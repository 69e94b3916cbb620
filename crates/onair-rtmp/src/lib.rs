//! Sans-IO RTMP: the handshake, the chunk stream, messages, and the server and client sessions.
//!
//! Bytes and the current time go in, bytes and events come out. Nothing here owns a socket,
//! reads the clock, draws randomness or spawns a task, so the same code serves the OnAir
//! server, the `onair publish`/`onair play` CLI, the simulated tests and the fuzzers.
//!
//! | spec | what we follow | where |
//! | --- | --- | --- |
//! | Adobe RTMP 1.0 (Dec 2012) §5.2 | C0/C1/C2 handshake, version 3 | [`handshake`] |
//! | Flash Player 9 "digest" handshake (not in the Adobe spec; clean-room RTMPE notes, nginx-rtmp) | HMAC-SHA256 digest in C1/S1 at either offset scheme, signed S2; C2 not verified | [`handshake`] |
//! | RTMP 1.0 §5.3 | chunk stream: fmt 0–3 headers, 1–3-byte basic headers, extended timestamps (also on type-3 chunks, with or without the repeat) | [`chunk`] |
//! | RTMP 1.0 §5.4 | protocol control: Set Chunk Size (per direction, at once), Abort, Acknowledgement (total bytes, wrapping), Window Ack Size, Set Peer Bandwidth | [`message`], [`session`] |
//! | RTMP 1.0 §6–7 | message types 8/9/15–20/22, User Control events (StreamBegin, EOF, SetBufferLength, Ping), aggregates | [`message`] |
//! | RTMP 1.0 §7.2 | NetConnection `connect`/`createStream`, NetStream `publish`/`play`/`pause`/`seek`/`deleteStream`, `onStatus` | [`session`] |
//! | Enhanced RTMP v1 / v2 (veovera) | `fourCcList`, `videoFourCcInfoMap`/`audioFourCcInfoMap`, `capsEx` in `connect` and its `_result`; E-RTMP media passes through untouched | [`session`] |
//! | AMF0 / AMF3 (via `onair-amf`) | command and data payloads; AMF3 (types 15/17) decoded, replies in AMF0 | [`message`] |
//!
//! Where the specification and deployed clients disagree, we follow the clients and cite them:
//! OBS pipelines `releaseStream`/`FCPublish`/`createStream`, FFmpeg waits for
//! `NetStream.Publish.Start`, old OBS omits the extended timestamp on type-3 chunks, SRS sends
//! its chunk size before the connect `_result`.
//!
//! # Driving a session
//!
//! A driver feeds what it reads to `handle_input`, drains `poll_output` after every mutation,
//! and runs `handle_timeout` at `poll_timeout`. Here a [`ServerSession`] and a
//! [`ClientSession`] are joined in memory, as a real driver would join one to a socket:
//!
//! ```
//! use std::time::Instant;
//! use bytes::Bytes;
//! use onair_media::MediaKind;
//! use onair_rtmp::{
//!     ClientConfig, ClientEvent, ClientOutput, ClientSession, ServerConfig, ServerEvent,
//!     ServerOutput, ServerSession,
//! };
//!
//! let now = Instant::now(); // the driver's clock; the sessions only compare instants
//! let mut server = ServerSession::new(ServerConfig::default(), now, [1; 1528]);
//! let mut client = ClientSession::new(ClientConfig::default(), now, [2; 1528]);
//! client.publish("my-stream-key");
//!
//! let mut media = Vec::new();
//! for _round in 0..10 {
//!     while let Some(out) = client.poll_output() {
//!         match out {
//!             // A driver queues these and writes them with one writev per wake-up.
//!             ClientOutput::Transmit(bytes) => server.handle_input(now, &bytes)?,
//!             ClientOutput::Event(ClientEvent::PublishStarted) => {
//!                 client.send_media(MediaKind::Video, 0, Bytes::from_static(&[0x17, 0, 0, 0, 0]))?;
//!             }
//!             ClientOutput::Event(_) => {}
//!         }
//!     }
//!     while let Some(out) = server.poll_output() {
//!         match out {
//!             ServerOutput::Transmit(bytes) => client.handle_input(now, &bytes)?,
//!             // Check the key (asynchronously, in a real server), then answer.
//!             ServerOutput::Event(ServerEvent::PublishRequested { request, key, .. }) => {
//!                 assert_eq!(key, "my-stream-key");
//!                 server.accept_publish(request);
//!             }
//!             ServerOutput::Event(ServerEvent::Media { kind, payload, .. }) => media.push((kind, payload)),
//!             ServerOutput::Event(_) => {}
//!         }
//!     }
//! }
//! assert_eq!(media, [(MediaKind::Video, Bytes::from_static(&[0x17, 0, 0, 0, 0]))]);
//!
//! // Timers: the driver sleeps until `poll_timeout` and then calls `handle_timeout`, which sends
//! // pings and fails a connection whose peer went silent.
//! let wake = server.poll_timeout().expect("ping and idle timers are armed");
//! server.handle_timeout(wake)?;
//! # Ok::<(), onair_rtmp::SessionError>(())
//! ```
//!
//! To send one media frame to many players, chunk it once with [`encode_standalone`] and
//! [`media_raw_message`], and write the same [`Bytes`](bytes::Bytes) to every player whose
//! [`ServerSession::chunk_size_out`] matches (see the [`session`] docs for the csid rule).
#![deny(missing_docs)]

pub mod chunk;
// Under `test` too: the unit tests share its checkers, and must not rely on the dev-dependency
// through which Cargo.toml turns the feature on for the integration tests.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod handshake;
pub mod limits;
pub mod message;
pub mod session;

pub use chunk::{ChunkDecoder, ChunkEncoder, ChunkError, RawMessage, encode_standalone};
pub use handshake::{ClientHandshake, HandshakeError, HandshakeKind, ServerHandshake};
pub use limits::RtmpLimits;
pub use message::{Message, MessageError, UserControl, split_aggregate};
pub use session::{
    ClientConfig, ClientEvent, ClientOutput, ClientSession, MEDIA_CSID_AUDIO, MEDIA_CSID_DATA,
    MEDIA_CSID_VIDEO, Reject, RequestId, ServerConfig, ServerEvent, ServerOutput, ServerSession,
    SessionError, media_raw_message,
};
