//! AMF0 (and RTMP AMF3 command payload) decoding: round-trip and boundedness invariants are
//! asserted inside `onair_amf::fuzzing::amf0`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    onair_amf::fuzzing::amf0(data);
});
