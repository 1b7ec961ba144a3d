//! Fuzzes the Redis value envelope, cache_redis::envelope::decode::<Positions>; the
//! properties are `system_tests::fuzz_checks::envelope`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| system_tests::fuzz_checks::envelope(data));
