//! The property lives in `ferricorn_http::fuzzing::handshake`, so stable tests replay it too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferricorn_http::fuzzing::handshake(data));
