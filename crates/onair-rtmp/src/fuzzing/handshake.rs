//! fuzzing: handshake (in progress)
