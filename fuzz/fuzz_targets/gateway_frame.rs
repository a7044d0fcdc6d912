#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clawbridge_fuzz::gateway_frame(data));
