//! Arbitrary bytes into the RTMP chunk decoder; the invariants live in
//! `onair_rtmp::fuzzing::chunk`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    onair_rtmp::fuzzing::chunk::chunk(data);
});
