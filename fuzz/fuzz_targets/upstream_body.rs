//! Fuzzes the upstream body parser, positions_api::source::http::parse_body; the
//! properties are `system_tests::fuzz_checks::upstream_body`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| system_tests::fuzz_checks::upstream_body(data));
