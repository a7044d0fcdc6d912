//! `kapso-whatsapp-poller`: the Go bridge's daemon name before v0.2.0 — same as `kapso-whatsapp-bridge`.

fn main() -> std::process::ExitCode {
    clawbridge::commands::compat::daemon_main("kapso-whatsapp-poller")
}
