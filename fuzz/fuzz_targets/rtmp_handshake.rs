//! Arbitrary bytes as either peer's side of the RTMP handshake; the invariants live in
//! `onair_rtmp::fuzzing::handshake`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    onair_rtmp::fuzzing::handshake::handshake(data);
});
