//! The property lives in `ferricorn_http::fuzzing::websocket`, so stable tests replay it too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferricorn_http::fuzzing::websocket(data));
