//! FLV frames through the HLS segmenter: see `onair_hls::fuzzing::segmenter` for the
//! transport-stream and output invariants checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| onair_hls::fuzzing::segmenter(data));
