#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lifeline_server::playback::request::fuzz_request(data));
