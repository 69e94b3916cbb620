//! Entry points for the fuzz targets in `fuzz/`: each one feeds arbitrary bytes to a part of the
//! crate and asserts the invariants that must hold for any input, not just "no panic".

pub mod chunk;
pub mod handshake;
pub mod session;
