//! Small helpers shared by the binary's modules.

/// The current time in epoch milliseconds (core's one clock).
pub use clawbridge_core::clock::now_ms;
/// A random number in `[0, 1)` for backoff jitter (clawbridge-http's one jitter).
pub use clawbridge_http::jitter;

/// A fresh OpenClaw-style pairing code.
///
/// # Panics
/// If the operating system has no randomness source (nothing secure could run then).
pub fn pairing_code() -> String {
    let mut bytes = [0u8; clawbridge_core::pairing::CODE_LEN];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    clawbridge_core::pairing::code_from_random(bytes)
}

/// Identifies this process in leases and claims: several replicas may share one database.
pub fn worker_id() -> String {
    let mut bytes = [0u8; 3];
    let _ = getrandom::fill(&mut bytes);
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!("{host}-{}-{:02x}{:02x}{:02x}", std::process::id(), bytes[0], bytes[1], bytes[2])
}

/// Formats epoch milliseconds as UTC `YYYY-MM-DD HH:MM:SS` for people reading `status`.
pub use clawbridge_core::time::format_utc as format_epoch_ms;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_dates() {
        assert_eq!(format_epoch_ms(0), "1970-01-01 00:00:00");
        assert_eq!(format_epoch_ms(1_795_233_278_136), "2026-11-21 03:54:38");
        assert_eq!(format_epoch_ms(951_782_400_000), "2000-02-29 00:00:00");
    }

    #[test]
    fn jitter_is_in_range_and_codes_are_well_formed() {
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
            assert!(clawbridge_core::pairing::is_well_formed(&pairing_code()));
        }
    }
}
