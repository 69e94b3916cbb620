//! Arbitrary bytes into RTMP server and client sessions (after a valid handshake and connect, and
//! from the first byte); the invariants live in `onair_rtmp::fuzzing::session`.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The library takes time as an argument; the sessions only compare instants, so any base works.
    onair_rtmp::fuzzing::session::session(Instant::now(), data);
});
