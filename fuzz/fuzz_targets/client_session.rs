#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rtmp_proto::fuzzing::client_session(data));
