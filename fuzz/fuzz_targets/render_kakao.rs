#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clawbridge_fuzz::render_kakao(data));
