//! Fuzzes the glob matcher, cache_core::glob::Pattern and escape; the
//! properties are `system_tests::fuzz_checks::glob`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| system_tests::fuzz_checks::glob(data));
