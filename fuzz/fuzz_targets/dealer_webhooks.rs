#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clawbridge_fuzz::dealer_webhooks(data));
