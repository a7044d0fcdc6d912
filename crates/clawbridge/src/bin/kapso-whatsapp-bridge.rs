//! `kapso-whatsapp-bridge`: the Go bridge's daemon name — `clawbridge serve` with WhatsApp only.

fn main() -> std::process::ExitCode {
    clawbridge::commands::compat::daemon_main("kapso-whatsapp-bridge")
}
