//! handshake (in progress)
