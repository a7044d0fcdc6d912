//! `kapso-whatsapp-cli`: the Go bridge's CLI name (`send`, `status`, `preflight`), served by clawbridge.

fn main() -> std::process::ExitCode {
    clawbridge::commands::compat::cli_main()
}
