#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lifeline_hls::fuzzing::fuzz_mux(data));
