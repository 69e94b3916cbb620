//! FLV demuxing in any split, with re-encoding and tag-body parsing: see
//! `onair_flv::fuzzing::flv_demux` for the invariants checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| onair_flv::fuzzing::flv_demux(data));
