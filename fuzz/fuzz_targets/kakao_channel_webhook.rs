#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clawbridge_fuzz::kakao_channel_webhook(data));
