//! Sans-IO RTMP: the handshake, the chunk stream, messages and the server and client sessions.
//!
//! (The crate documentation — spec table and driving-loop example — is completed with the sessions.)
#![deny(missing_docs)]

pub mod chunk;
#[doc(hidden)]
pub mod fuzzing;
pub mod handshake;
pub mod limits;
pub mod message;
pub mod session;
