//! Fuzzes the wallet parser, positions_api::Wallet::parse; the
//! properties are `system_tests::fuzz_checks::wallet`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| system_tests::fuzz_checks::wallet(data));
